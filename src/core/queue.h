/* queue: a crash-consistent priority message queue in one segment.
 *
 * params[0] = max_count (messages), params[1] = max_size (bytes each).
 * Body layout (docs/design.md):
 *   ipc_qhdr | cells[max_count] | heap[max_count] | free[max_count] | data
 * The cells are the truth (FREE / READY / INFLIGHT, with seq, priority,
 * length and, when in flight, the receiver's token); the heap, the free
 * ring and the counters are derived from them and rebuilt by the next
 * locker when a process dies holding the internal lock. */
#ifndef IPC_QUEUE_H
#define IPC_QUEUE_H

#include "procid.h"
#include "rlock.h"
#include "segment.h"

#include <stdint.h>

#define IPC_QUEUE_MAX_COUNT 1000000u
#define IPC_QUEUE_MAX_SIZE (64u << 20)         /* 64 MiB per message */
#define IPC_QUEUE_MAX_DATA ((uint64_t)1 << 30) /* max_count * slot <= 1 GiB */
#define IPC_QUEUE_WAIT_SLOTS 128
#define IPC_QUEUE_MAX_PRIO 2147483647u

enum { IPC_QC_FREE = 0, IPC_QC_READY = 1, IPC_QC_INFLIGHT = 2 };
enum { IPC_QW_RECV = 1, IPC_QW_SEND = 2 };

typedef struct ipc_qcell {
	uint32_t state; /* IPC_QC_*: written last (release) when a cell changes */
	uint32_t len;
	uint32_t prio;
	uint32_t reserved;
	uint64_t seq;   /* order of sending: FIFO within a priority */
	uint64_t owner; /* INFLIGHT: the receiver's token */
} ipc_qcell;

typedef struct ipc_qentry { /* a heap entry: the cell's key, copied */
	uint64_t seq;
	uint32_t prio;
	uint32_t cell;
} ipc_qentry;

typedef struct ipc_qwaiter { /* a registered sleeper (token 0: slot free) */
	uint64_t token;
	uint32_t kind; /* IPC_QW_RECV / IPC_QW_SEND */
	uint32_t reserved;
} ipc_qwaiter;

typedef struct ipc_qhdr {
	ipc_rlock lock;
	uint64_t next_seq;
	uint32_t count;     /* READY messages == heap length (derived) */
	uint32_t in_flight; /* INFLIGHT cells (derived) */
	uint32_t nfree;     /* free ring length (derived) */
	uint32_t free_head; /* free ring: the next cell to use is free[free_head] */
	uint32_t reserved;
	uint32_t recv_waiters, send_waiters; /* registered sleepers (derived) */
	/* wakes issued to sleepers that have not re-checked yet: a wake is
	 * only issued while waiters > wakes (no storm of useless wake calls) */
	uint32_t recv_wakes, send_wakes;
	uint64_t repairs;        /* times the derived state was rebuilt */
	uint64_t wakeups;        /* times a sleeper came back to re-check */
	uint64_t sent, received; /* messages, for rates (ipcsh top); under lock */
	int64_t last_sweep_ns;   /* last check for dead registered sleepers */
	/* Futex words, each on its own line: recv_seq is bumped when the
	 * queue stops being empty (and when messages are put back), send_seq
	 * when it stops being full (and when in-flight cells are freed). */
	_Alignas(64) uint32_t recv_seq;
	_Alignas(64) uint32_t send_seq;
	_Alignas(64) ipc_qwaiter waiters[IPC_QUEUE_WAIT_SLOTS];
} ipc_qhdr;

/* A process's view of one queue: pointers into its mapping. */
typedef struct ipc_queue {
	ipc_qhdr *q;
	ipc_qcell *cells;
	ipc_qentry *heap;
	uint32_t *freelist;
	unsigned char *data;
	uint32_t max_count;
	uint32_t max_size;
	uint64_t slot;            /* bytes per message in data */
	int64_t *last_reclaim_ns; /* per-process (segment-local) */
} ipc_queue;

/* A message taken in flight by ipc_queue_receive (for with()). */
typedef struct ipc_qticket {
	uint32_t cell;
	uint32_t prio;
	uint64_t seq;
	ipc_token owner;
} ipc_qticket;

typedef struct ipc_queue_stats {
	uint32_t count, in_flight, max_count, max_size;
	uint32_t recv_waiters, send_waiters;
	uint64_t repairs, wakeups;
	uint64_t sent, received; /* messages so far */
} ipc_queue_stats;

extern const ipc_type_ops ipc_queue_ops;

/* Point v at the queue mapped by seg. */
void ipc_queue_view(ipc_queue *v, ipc_segment *seg);

/* Send len bytes (len <= max_size, checked) at priority prio (<= 2^31-1).
 * IPC_OK, IPC_TIMEOUT (still full at the deadline), IPC_INTERRUPTED, or
 * IPC_ERR. */
int ipc_queue_send(ipc_queue *v, const void *msg, size_t len, uint32_t prio, const ipc_deadline *dl,
                   ipc_error *err);

/* Take the first message (highest priority, oldest) into buf (max_size
 * bytes).  With ticket != NULL the message stays in the queue, in flight
 * and owned by this process, until ipc_queue_ack / ipc_queue_nack (or until
 * a receiver finds this process dead and puts it back). */
int ipc_queue_receive(ipc_queue *v, void *buf, size_t *len, uint32_t *prio, ipc_qticket *ticket,
                      const ipc_deadline *dl, ipc_error *err);
/* Done with an in-flight message: free it. */
int ipc_queue_ack(ipc_queue *v, const ipc_qticket *t, ipc_error *err);
/* Put an in-flight message back, ahead of later ones of its priority. */
int ipc_queue_nack(ipc_queue *v, const ipc_qticket *t, ipc_error *err);

/* Remove every queued (not in-flight) message: the number removed, or
 * IPC_ERR (< 0). */
int64_t ipc_queue_clear(ipc_queue *v, ipc_error *err);

/* A snapshot (after forgetting sleepers that died). */
int ipc_queue_stat(ipc_queue *v, ipc_queue_stats *st, ipc_error *err);

static inline uint32_t ipc_queue_count(const ipc_queue *v)
{
	return __atomic_load_n(&v->q->count, __ATOMIC_RELAXED);
}

/* ipc.select hooks (src/core/select.c).  arm: 1 when a message is ready
 * (nothing registered); else 0 after registering this process as a
 * receiving sleeper: *slot (-1: no slot free, poll), *seen (the value of
 * q->recv_seq to sleep on) and *slice (0 or the longest sleep).  disarm:
 * unregister, and pass one wake on if messages wait and other sleepers are
 * registered (the wake this process absorbed may have been theirs). */
int ipc_queue_sel_arm(ipc_queue *v, int *slot, uint32_t *seen, int64_t *slice, ipc_error *err);
void ipc_queue_sel_disarm(ipc_queue *v, int slot);

#endif
