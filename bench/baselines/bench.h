/* Shared helpers for the C/C++ baselines of `make bench`.
 *
 * Every baseline program prints its result as "key value" lines on stdout,
 * the protocol bench/driver.lua reads:
 *   ns X        nanoseconds per operation (or per pair)
 *   rate X      operations (pairs, messages) per second, all processes together
 *   p50 X       round-trip latency percentiles in ns (p50, p99; "pct P X" lines
 *   p99 X       give the whole distribution for the plot)
 *   skip WHY    the baseline cannot run here (never a made-up figure)
 * Multi-process runs fork; the children rendezvous on a counter in shared
 * memory so late starters (the machine may be loaded) do not skew the clock. */
#ifndef BENCH_H
#define BENCH_H

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void die(const char *what)
{
	fprintf(stderr, "%s: %s\n", what, strerror(errno));
	exit(2);
}

static inline void *shared_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	memset(p, 0, size);
	return p;
}

/* Run `body` (which does CHUNK operations) until dur_ms have passed; print the
 * cost of one operation in ns. */
#define TIMED_NS(dur_ms, chunk, body)                                                              \
	do {                                                                                       \
		long long n_ = 0;                                                                  \
		double t0_ = now_ms(), t_;                                                         \
		do {                                                                               \
			for (int k_ = 0; k_ < (chunk); k_++) {                                     \
				body;                                                              \
			}                                                                          \
			n_ += (chunk);                                                             \
			t_ = now_ms();                                                             \
		} while (t_ - t0_ < (dur_ms));                                                     \
		printf("ns %.2f\n", (t_ - t0_) * 1e6 / (double)n_);                                \
	} while (0)

/* Rendezvous and results of forked workers. */
typedef struct {
	int ready; /* __atomic builtins: this header is also used from C++ */
	int go;
	double start_ms;
	long long count[64];
	double finish_ms[64];
} team;

static inline team *team_new(void)
{
	return (team *)shared_alloc(sizeof(team));
}

/* Child side: announce, then wait for the common start time. */
static inline double team_arrive(team *t)
{
	__atomic_fetch_add(&t->ready, 1, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&t->go, __ATOMIC_SEQ_CST))
		usleep(100);
	while (now_ms() < t->start_ms)
		;
	return t->start_ms;
}

/* Parent side: fork n workers running fn(i, arg), release them together, wait
 * for all of them.  Returns 0, or -1 if one failed. */
static inline int team_run(team *t, int n, void (*fn)(team *, int, void *), void *arg)
{
	pid_t pids[64];
	for (int i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			die("fork");
		if (pids[i] == 0) {
			fn(t, i, arg);
			fflush(stdout);
			_exit(0);
		}
	}
	double limit = now_ms() + 30000;
	while (__atomic_load_n(&t->ready, __ATOMIC_SEQ_CST) < n && now_ms() < limit)
		usleep(200);
	t->start_ms = now_ms() + 2;
	__atomic_store_n(&t->go, 1, __ATOMIC_SEQ_CST);
	int bad = 0;
	for (int i = 0; i < n; i++) {
		int st;
		if (waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			bad = 1;
	}
	return bad ? -1 : 0;
}

static inline long long team_total(team *t, int n)
{
	long long s = 0;
	for (int i = 0; i < n; i++)
		s += t->count[i];
	return s;
}

static inline double team_last_finish(team *t, int first, int n)
{
	double m = 0;
	for (int i = first; i < first + n; i++)
		if (t->finish_ms[i] > m)
			m = t->finish_ms[i];
	return m;
}

static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Print p50/p99 and the distribution of round-trip samples (ns). */
static inline void report_latency(double *ns, size_t n)
{
	static const double pcts[] = {1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9};
	qsort(ns, n, sizeof *ns, cmp_double);
	for (size_t i = 0; i < sizeof pcts / sizeof pcts[0]; i++) {
		size_t k = (size_t)(pcts[i] / 100.0 * (double)(n - 1) + 0.5);
		printf("pct %g %.0f\n", pcts[i], ns[k]);
		if (pcts[i] == 50)
			printf("p50 %.0f\n", ns[k]);
		if (pcts[i] == 99)
			printf("p99 %.0f\n", ns[k]);
	}
}

#endif
