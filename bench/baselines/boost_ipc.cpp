// Baseline: Boost.Interprocess named objects (what the R package
// "interprocess" wraps).  "once" opens the object once and reuses the handle;
// "perop" opens it for every operation, as the R package does.
//   boost_ipc mutex_pair once|perop DUR_MS         named_sharable_mutex lock+unlock
//   boost_ipc shared_pair once|perop DUR_MS        lock_sharable+unlock_sharable
//   boost_ipc sem_pair once|perop DUR_MS           named_semaphore post+wait
//   boost_ipc queue_pair once|perop SIZE DUR_MS    message_queue send+receive
//   boost_ipc mutex_contend N DUR_MS               N processes, pairs/s
//   boost_ipc queue_thru once|perop SIZE NP NC TOTAL   msgs/s
//   boost_ipc sem_pingpong ROUNDS | queue_pingpong SIZE ROUNDS
#include <boost/interprocess/ipc/message_queue.hpp>
#include <boost/interprocess/sync/named_semaphore.hpp>
#include <boost/interprocess/sync/named_sharable_mutex.hpp>
#include <memory>
#include <string>
#include <vector>

extern "C" {
#include "bench.h"
}

namespace bi = boost::interprocess;

static std::string base = "ipcbench_" + std::to_string(getpid());
static std::string n_mutex = base + "_m", n_sem = base + "_s", n_qa = base + "_qa",
                   n_qb = base + "_qb", n_sa = base + "_sa", n_sb = base + "_sb";
static size_t msgsize = 16;
static double dur;
static int nprod, ncons;
static long total;
static bool perop;

static void cleanup()
{
	bi::named_sharable_mutex::remove(n_mutex.c_str());
	bi::named_semaphore::remove(n_sem.c_str());
	bi::named_semaphore::remove(n_sa.c_str());
	bi::named_semaphore::remove(n_sb.c_str());
	bi::message_queue::remove(n_qa.c_str());
	bi::message_queue::remove(n_qb.c_str());
}

static void qsend(bi::message_queue &q, const char *buf)
{
	q.send(buf, msgsize, 0);
}

static void qrecv(bi::message_queue &q, char *buf)
{
	bi::message_queue::size_type got;
	unsigned prio;
	q.receive(buf, msgsize, got, prio);
}

static void contend_worker(team *t, int i, void *)
{
	bi::named_sharable_mutex m(bi::open_only, n_mutex.c_str());
	double end = team_arrive(t) + dur;
	long long n = 0;
	do {
		for (int k = 0; k < 64; k++) {
			m.lock();
			m.unlock();
		}
		n += 64;
	} while (now_ms() < end);
	t->count[i] = n;
}

static void thru_worker(team *t, int i, void *)
{
	std::vector<char> buf(msgsize, 'x');
	std::unique_ptr<bi::message_queue> q(new bi::message_queue(bi::open_only, n_qa.c_str()));
	team_arrive(t);
	if (i < nprod) {
		for (long k = 0; k < total / nprod; k++) {
			if (perop) {
				bi::message_queue q1(bi::open_only, n_qa.c_str());
				qsend(q1, buf.data());
			} else
				qsend(*q, buf.data());
		}
	} else {
		for (long k = 0; k < total / ncons; k++) {
			if (perop) {
				bi::message_queue q1(bi::open_only, n_qa.c_str());
				qrecv(q1, buf.data());
			} else
				qrecv(*q, buf.data());
		}
		t->finish_ms[i] = now_ms();
	}
}

static int run(char **argv)
{
	std::string mode = argv[1];
	if (mode == "mutex_pair" || mode == "shared_pair") {
		perop = std::string(argv[2]) == "perop";
		dur = atof(argv[3]);
		bi::named_sharable_mutex m(bi::create_only, n_mutex.c_str());
		bool sh = mode == "shared_pair";
		if (perop && sh)
			TIMED_NS(dur, 100,
			         bi::named_sharable_mutex m1(bi::open_only, n_mutex.c_str());
			         m1.lock_sharable(); m1.unlock_sharable());
		else if (perop)
			TIMED_NS(dur, 100,
			         bi::named_sharable_mutex m1(bi::open_only, n_mutex.c_str());
			         m1.lock(); m1.unlock());
		else if (sh)
			TIMED_NS(dur, 1000, m.lock_sharable(); m.unlock_sharable());
		else
			TIMED_NS(dur, 1000, m.lock(); m.unlock());
	} else if (mode == "sem_pair") {
		perop = std::string(argv[2]) == "perop";
		dur = atof(argv[3]);
		bi::named_semaphore s(bi::create_only, n_sem.c_str(), 0);
		if (perop)
			TIMED_NS(dur, 100, bi::named_semaphore s1(bi::open_only, n_sem.c_str());
			         s1.post(); s1.wait());
		else
			TIMED_NS(dur, 1000, s.post(); s.wait());
	} else if (mode == "queue_pair") {
		perop = std::string(argv[2]) == "perop";
		msgsize = (size_t)atol(argv[3]);
		dur = atof(argv[4]);
		std::vector<char> buf(msgsize, 'x');
		bi::message_queue q(bi::create_only, n_qa.c_str(), 100, msgsize);
		if (perop)
			TIMED_NS(dur, 100, bi::message_queue q1(bi::open_only, n_qa.c_str());
			         qsend(q1, buf.data()); qrecv(q1, buf.data()));
		else
			TIMED_NS(dur, 1000, qsend(q, buf.data()); qrecv(q, buf.data()));
	} else if (mode == "mutex_contend") {
		int n = atoi(argv[2]);
		dur = atof(argv[3]);
		bi::named_sharable_mutex m(bi::create_only, n_mutex.c_str());
		team *t = team_new();
		if (team_run(t, n, contend_worker, nullptr))
			return 1;
		printf("rate %.0f\n", (double)team_total(t, n) / (dur / 1e3));
	} else if (mode == "queue_thru") {
		perop = std::string(argv[2]) == "perop";
		msgsize = (size_t)atol(argv[3]);
		nprod = atoi(argv[4]);
		ncons = atoi(argv[5]);
		total = atol(argv[6]);
		bi::message_queue q(bi::create_only, n_qa.c_str(), 100, msgsize);
		team *t = team_new();
		if (team_run(t, nprod + ncons, thru_worker, nullptr))
			return 1;
		printf("rate %.0f\n",
		       (double)total / ((team_last_finish(t, nprod, ncons) - t->start_ms) / 1e3));
	} else if (mode == "sem_pingpong" || mode == "queue_pingpong") {
		bool isq = mode == "queue_pingpong";
		if (isq)
			msgsize = (size_t)atol(argv[2]);
		long rounds = atol(argv[isq ? 3 : 2]), warm = rounds / 10 + 10;
		std::vector<char> buf(msgsize, 'x');
		std::vector<double> lat((size_t)rounds);
		bi::named_semaphore sa(bi::create_only, n_sa.c_str(), 0),
		    sb(bi::create_only, n_sb.c_str(), 0);
		bi::message_queue qa(bi::create_only, n_qa.c_str(), 100, msgsize),
		    qb(bi::create_only, n_qb.c_str(), 100, msgsize);
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			for (long k = 0; k < rounds + warm; k++) {
				if (isq) {
					qrecv(qa, buf.data());
					qsend(qb, buf.data());
				} else {
					sa.wait();
					sb.post();
				}
			}
			_exit(0);
		}
		for (long k = 0; k < rounds + warm; k++) {
			uint64_t t0 = now_ns();
			if (isq) {
				qsend(qa, buf.data());
				qrecv(qb, buf.data());
			} else {
				sa.post();
				sb.wait();
			}
			if (k >= warm)
				lat[(size_t)(k - warm)] = (double)(now_ns() - t0);
		}
		waitpid(pid, nullptr, 0);
		report_latency(lat.data(), (size_t)rounds);
	} else {
		fprintf(stderr, "boost_ipc: unknown mode %s\n", mode.c_str());
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: boost_ipc MODE ARGS\n");
		return 2;
	}
	int rc;
	try {
		rc = run(argv);
	} catch (std::exception &e) {
		fprintf(stderr, "boost_ipc: %s\n", e.what());
		rc = 1;
	}
	cleanup();
	return rc;
}
