/* Baseline: POSIX message queues (mq_send/mq_receive), capacity 100.
 *   posix_mq pair SIZE DUR_MS               one process: send+receive, ns/pair
 *   posix_mq thru SIZE NPROD NCONS TOTAL    producers -> consumers, msgs/s
 *   posix_mq pingpong SIZE ROUNDS           round trip through two queues */
#include "bench.h"

#include <fcntl.h>
#include <mqueue.h>

static char qname[2][64];
static long msgsize;
static long total;
static int nprod, ncons;

static mqd_t open_q(int i, int create)
{
	if (!create)
		return mq_open(qname[i], O_RDWR);
	struct mq_attr a = {.mq_maxmsg = 100, .mq_msgsize = msgsize};
	mqd_t q = mq_open(qname[i], O_RDWR | O_CREAT | O_EXCL, 0600, &a);
	if (q == (mqd_t)-1 && errno == EINVAL) {
		FILE *f = fopen("/proc/sys/fs/mqueue/msg_max", "r");
		long mx = 10;
		if (f) {
			if (fscanf(f, "%ld", &mx) != 1)
				mx = 10;
			fclose(f);
		}
		a.mq_maxmsg = mx;
		q = mq_open(qname[i], O_RDWR | O_CREAT | O_EXCL, 0600, &a);
		printf("note capacity %ld (msg_max; 100 needs CAP_SYS_RESOURCE)\n", mx);
		fflush(stdout);
	}
	if (q == (mqd_t)-1)
		die("mq_open");
	return q;
}

static void snd(mqd_t q, const char *buf)
{
	while (mq_send(q, buf, (size_t)msgsize, 0) != 0)
		if (errno != EINTR)
			die("mq_send");
}

static void rcv(mqd_t q, char *buf)
{
	while (mq_receive(q, buf, (size_t)msgsize, NULL) < 0)
		if (errno != EINTR)
			die("mq_receive");
}

static void thru_worker(team *t, int i, void *arg)
{
	(void)arg;
	char buf[65536];
	memset(buf, 'x', sizeof buf);
	mqd_t q = open_q(0, 0);
	team_arrive(t);
	if (i < nprod) {
		for (long k = 0; k < total / nprod; k++)
			snd(q, buf);
	} else {
		for (long k = 0; k < total / ncons; k++)
			rcv(q, buf);
		t->finish_ms[i] = now_ms();
	}
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: posix_mq MODE SIZE ...\n");
		return 2;
	}
	snprintf(qname[0], sizeof qname[0], "/ipcbench-%d-a", (int)getpid());
	snprintf(qname[1], sizeof qname[1], "/ipcbench-%d-b", (int)getpid());
	msgsize = atol(argv[2]);
	char buf[65536];
	memset(buf, 'x', sizeof buf);
	const char *mode = argv[1];
	int rc = 0;
	if (!strcmp(mode, "pair")) {
		mqd_t q = open_q(0, 1);
		TIMED_NS(atof(argv[3]), 200, snd(q, buf); rcv(q, buf));
	} else if (!strcmp(mode, "thru") && argc > 5) {
		nprod = atoi(argv[3]);
		ncons = atoi(argv[4]);
		total = atol(argv[5]);
		open_q(0, 1);
		team *t = team_new();
		if (team_run(t, nprod + ncons, thru_worker, NULL))
			rc = 1;
		else
			printf("rate %.0f\n",
			       (double)total /
			           ((team_last_finish(t, nprod, ncons) - t->start_ms) / 1e3));
	} else if (!strcmp(mode, "pingpong")) {
		long rounds = atol(argv[3]), warm = rounds / 10 + 10;
		mqd_t a = open_q(0, 1), b = open_q(1, 1);
		double *lat = malloc(sizeof(double) * (size_t)rounds);
		pid_t pid = fork();
		if (pid == 0) {
			for (long k = 0; k < rounds + warm; k++) {
				rcv(a, buf);
				snd(b, buf);
			}
			_exit(0);
		}
		for (long k = 0; k < rounds + warm; k++) {
			uint64_t t0 = now_ns();
			snd(a, buf);
			rcv(b, buf);
			if (k >= warm)
				lat[k - warm] = (double)(now_ns() - t0);
		}
		waitpid(pid, NULL, 0);
		report_latency(lat, (size_t)rounds);
	} else {
		fprintf(stderr, "posix_mq: unknown mode %s\n", mode);
		rc = 2;
	}
	mq_unlink(qname[0]);
	mq_unlink(qname[1]);
	return rc;
}
