/* Baseline: raw C primitives in shared memory, the floor for what a
 * crash-safe lock or counter costs.
 *   c_pshared mutex_pair DUR_MS         robust pshared pthread_mutex lock+unlock
 *   c_pshared rwlock_shared_pair DUR_MS pshared pthread_rwlock rdlock+unlock
 *   c_pshared mutex_contend N DUR_MS    N processes on one robust mutex: pairs/s
 *   c_pshared sem_pair DUR_MS           pshared sem_t post+wait
 *   c_pshared sem_pingpong ROUNDS       two sem_t, two processes: round trip */
#include "bench.h"

#include <pthread.h>
#include <semaphore.h>

typedef struct {
	pthread_mutex_t m;
	pthread_rwlock_t rw;
	sem_t a, b;
} shared;

static shared *sh;
static double dur;

static void lock(pthread_mutex_t *m)
{
	int r = pthread_mutex_lock(m);
	if (r == EOWNERDEAD)
		pthread_mutex_consistent(m);
	else if (r != 0) {
		errno = r;
		die("pthread_mutex_lock");
	}
}

static void setup(void)
{
	sh = shared_alloc(sizeof *sh);
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&sh->m, &ma);
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setpshared(&ra, PTHREAD_PROCESS_SHARED);
	pthread_rwlock_init(&sh->rw, &ra);
	sem_init(&sh->a, 1, 0);
	sem_init(&sh->b, 1, 0);
}

static void contend_worker(team *t, int i, void *arg)
{
	(void)arg;
	double end = team_arrive(t) + dur;
	long long n = 0;
	do {
		for (int k = 0; k < 64; k++) {
			lock(&sh->m);
			pthread_mutex_unlock(&sh->m);
		}
		n += 64;
	} while (now_ms() < end);
	t->count[i] = n;
}

static void pong(team *t, int i, void *arg)
{
	long rounds = *(long *)arg;
	(void)i;
	team_arrive(t);
	for (long k = 0; k < rounds; k++) {
		while (sem_wait(&sh->a) != 0)
			;
		sem_post(&sh->b);
	}
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: c_pshared MODE ARGS\n");
		return 2;
	}
	const char *mode = argv[1];
	setup();
	if (!strcmp(mode, "mutex_pair")) {
		dur = atof(argv[2]);
		TIMED_NS(dur, 1000, lock(&sh->m); pthread_mutex_unlock(&sh->m));
	} else if (!strcmp(mode, "rwlock_shared_pair")) {
		dur = atof(argv[2]);
		TIMED_NS(dur, 1000, pthread_rwlock_rdlock(&sh->rw); pthread_rwlock_unlock(&sh->rw));
	} else if (!strcmp(mode, "sem_pair")) {
		dur = atof(argv[2]);
		TIMED_NS(dur, 1000, sem_post(&sh->a); sem_wait(&sh->a));
	} else if (!strcmp(mode, "mutex_contend") && argc > 3) {
		int n = atoi(argv[2]);
		dur = atof(argv[3]);
		team *t = team_new();
		if (team_run(t, n, contend_worker, NULL))
			return 1;
		printf("rate %.0f\n", (double)team_total(t, n) / (dur / 1e3));
	} else if (!strcmp(mode, "sem_pingpong")) {
		long rounds = atol(argv[2]), warm = rounds / 10 + 10;
		long all = rounds + warm;
		double *lat = malloc(sizeof(double) * (size_t)rounds);
		team *t = team_new();
		pid_t pid = fork();
		if (pid == 0) {
			pong(t, 0, &all);
			_exit(0);
		}
		while (__atomic_load_n(&t->ready, __ATOMIC_SEQ_CST) < 1)
			usleep(100);
		t->start_ms = now_ms();
		__atomic_store_n(&t->go, 1, __ATOMIC_SEQ_CST);
		for (long k = 0; k < all; k++) {
			uint64_t t0 = now_ns();
			sem_post(&sh->a);
			while (sem_wait(&sh->b) != 0)
				;
			if (k >= warm)
				lat[k - warm] = (double)(now_ns() - t0);
		}
		waitpid(pid, NULL, 0);
		report_latency(lat, (size_t)rounds);
	} else {
		fprintf(stderr, "c_pshared: unknown mode %s\n", mode);
		return 2;
	}
	return 0;
}
