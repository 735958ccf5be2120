/* The wait module's C contract (src/core/wait.h), compiled by
 * spec/wait_spec.lua against the core sources.  Each mode prints one line
 * and exits 0, or prints what failed and exits 1.  No check here depends
 * on how fast the machine is: only lower bounds of time and outcomes.
 *   wait_test budget    the budget of a word not seen yet
 *   wait_test shrink    budgets after 60 waits that time out (helper, raw)
 *   wait_test until     ipc_wait_until's results */
#include "signals.h"
#include "wait.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int failed;

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			printf("failed: %s (line %d)\n", #c, __LINE__);                            \
			failed = 1;                                                                \
		}                                                                                  \
	} while (0)

static uint32_t words[4];

static int never(void *ctx)
{
	(void)ctx;
	return 0;
}

static int word_set(void *ctx)
{
	return __atomic_load_n((uint32_t *)ctx, __ATOMIC_ACQUIRE) != 0;
}

static int broken(void *ctx)
{
	(void)ctx;
	return IPC_ERR;
}

static int slices;
static void count_slice(void *ctx)
{
	(void)ctx;
	slices++;
}

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void *set_later(void *p)
{
	nap_ms(30);
	__atomic_store_n((uint32_t *)p, 1, __ATOMIC_RELEASE);
	ipc_wake_word(p, -1);
	return NULL;
}

static void *interrupt_later(void *p)
{
	nap_ms(30);
	pthread_kill(*(pthread_t *)p, SIGINT);
	return NULL;
}

static void quiet(int sig)
{
	(void)sig;
}

static int shrink(void)
{
	ipc_deadline dl;
	/* through ipc_wait_until (a wait whose deadline passed before its spin
	 * teaches nothing: 60 rounds of 5 ms leave room for preemption) */
	for (int i = 0; i < 60; i++) {
		dl = ipc_deadline_in(5);
		ipc_wait_spec w = {&words[0], never, NULL, NULL, 0};
		CHECK(ipc_wait_until(&w, &dl, ipc_signal_count()) == IPC_TIMEOUT);
	}
	/* read now: words[1] may share its table entry */
	long long b0 = (long long)ipc_spin_budget(&words[0]);
	/* through the raw pair: a spin that gives up, then the sleep */
	for (int i = 0; i < 60; i++) {
		dl = ipc_deadline_in(5);
		CHECK(ipc_spin_word(&words[1], 0) == 0);
		CHECK(ipc_wait_word(&words[1], 0, &dl, 0, ipc_signal_count()) == IPC_TIMEOUT);
	}
	printf("%lld %lld\n", b0, (long long)ipc_spin_budget(&words[1]));
	return failed;
}

static int until(void)
{
	unsigned snap = ipc_signal_count();
	ipc_deadline forever = ipc_deadline_never();

	/* ready at once: no spin, no sleep */
	uint32_t one = 1;
	ipc_wait_spec w = {&one, word_set, NULL, &one, 0};
	CHECK(ipc_wait_until(&w, &forever, snap) == IPC_OK);

	/* an error from ready stops the wait with it */
	ipc_wait_spec e = {&words[0], broken, NULL, NULL, 0};
	CHECK(ipc_wait_until(&e, &forever, snap) == IPC_ERR);

	/* a change and a wake from another thread ends the wait */
	pthread_t t;
	words[2] = 0;
	pthread_create(&t, NULL, set_later, &words[2]);
	ipc_wait_spec s = {&words[2], word_set, NULL, &words[2], 0};
	CHECK(ipc_wait_until(&s, &forever, snap) == IPC_OK);
	pthread_join(t, NULL);

	/* the deadline: never early; slices call on_slice while unchanged */
	int64_t t0 = ipc_now_ns();
	ipc_deadline dl = ipc_deadline_in(100);
	ipc_wait_spec sl = {&words[3], never, count_slice, NULL, 20 * 1000000LL};
	CHECK(ipc_wait_until(&sl, &dl, snap) == IPC_TIMEOUT);
	CHECK(ipc_now_ns() - t0 >= 100 * 1000000LL);
	CHECK(slices >= 1);

	/* a signal (one of ours) since the snapshot interrupts.  A handler of
	 * the program's own goes first, so ours chains to it and the process
	 * survives a signal that lands before the wait has begun. */
	signal(SIGINT, quiet);
	ipc_signals_install();
	snap = ipc_signal_count();
	pthread_t self = pthread_self();
	pthread_create(&t, NULL, interrupt_later, &self);
	ipc_wait_spec in = {&words[3], never, NULL, NULL, 0};
	CHECK(ipc_wait_until(&in, &forever, snap) == IPC_INTERRUPTED);
	pthread_join(t, NULL);
	/* the snapshot taken after it: the next wait is not interrupted */
	dl = ipc_deadline_in(10);
	CHECK(ipc_wait_until(&in, &dl, ipc_signal_count()) == IPC_TIMEOUT);
	if (!failed)
		printf("ok\n");
	return failed;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "budget") == 0) {
		printf("%lld\n", (long long)ipc_spin_budget(&words[0]));
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "shrink") == 0)
		return shrink();
	if (argc == 2 && strcmp(argv[1], "until") == 0)
		return until();
	fprintf(stderr, "usage: wait_test budget|shrink|until\n");
	return 2;
}
