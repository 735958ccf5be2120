/* Baseline: a single-producer single-consumer ring buffer in shared memory
 * that sleeps on futexes when full/empty (no crash safety at all): about the
 * best a 1 -> 1 queue can do on this machine.
 *   futex_ring thru SIZE TOTAL     1 producer -> 1 consumer process, msgs/s */
#include "bench.h"

#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#define CAP 100

typedef struct {
	_Atomic uint32_t head; /* messages written */
	char pad1[60];
	_Atomic uint32_t tail; /* messages read */
	char pad2[60];
	_Atomic uint32_t pwait, cwait;
	char pad3[56];
	char slots[];
} ring;

static ring *r;
static size_t msgsize;
static long total;

static void fwait(_Atomic uint32_t *w, uint32_t v)
{
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, v, NULL, NULL, 0);
}

static void fwake(_Atomic uint32_t *w)
{
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static char *slot(uint32_t i)
{
	return r->slots + (size_t)(i % CAP) * (msgsize + 8);
}

static void send_msg(uint32_t h, const char *buf)
{
	for (int spin = 0;; spin++) {
		uint32_t t = atomic_load(&r->tail);
		if (h - t < CAP)
			break;
		if (spin < 100)
			continue;
		atomic_store(&r->pwait, 1);
		t = atomic_load(&r->tail);
		if (h - t < CAP) {
			atomic_store(&r->pwait, 0);
			break;
		}
		fwait(&r->tail, t);
		atomic_store(&r->pwait, 0);
	}
	char *s = slot(h);
	memcpy(s, &msgsize, sizeof msgsize);
	memcpy(s + 8, buf, msgsize);
	atomic_store(&r->head, h + 1);
	if (atomic_load(&r->cwait))
		fwake(&r->head);
}

static void recv_msg(uint32_t t, char *buf)
{
	for (int spin = 0;; spin++) {
		uint32_t h = atomic_load(&r->head);
		if (h != t)
			break;
		if (spin < 100)
			continue;
		atomic_store(&r->cwait, 1);
		h = atomic_load(&r->head);
		if (h != t) {
			atomic_store(&r->cwait, 0);
			break;
		}
		fwait(&r->head, h);
		atomic_store(&r->cwait, 0);
	}
	char *s = slot(t);
	size_t len;
	memcpy(&len, s, sizeof len);
	memcpy(buf, s + 8, len);
	atomic_store(&r->tail, t + 1);
	if (atomic_load(&r->pwait))
		fwake(&r->tail);
}

static void worker(team *t, int i, void *arg)
{
	(void)arg;
	char buf[65536];
	memset(buf, 'x', sizeof buf);
	team_arrive(t);
	if (i == 0) {
		for (long k = 0; k < total; k++)
			send_msg((uint32_t)k, buf);
	} else {
		for (long k = 0; k < total; k++)
			recv_msg((uint32_t)k, buf);
		t->finish_ms[i] = now_ms();
	}
}

int main(int argc, char **argv)
{
	if (argc < 4 || strcmp(argv[1], "thru")) {
		fprintf(stderr, "usage: futex_ring thru SIZE TOTAL\n");
		return 2;
	}
	msgsize = (size_t)atol(argv[2]);
	total = atol(argv[3]);
	if (msgsize > 65536)
		return 2;
	r = shared_alloc(sizeof(ring) + CAP * (msgsize + 8));
	team *t = team_new();
	if (team_run(t, 2, worker, NULL))
		return 1;
	printf("rate %.0f\n", (double)total / ((t->finish_ms[1] - t->start_ms) / 1e3));
	return 0;
}
