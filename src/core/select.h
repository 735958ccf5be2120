/* select: wait on several queues, semaphores, events and mutexes at once.
 *
 * The caller (src/lua/l_select.c) owns the loop, because "try" is each
 * type's own zero-timeout operation:
 *     for (;;) {
 *         try each object, in a rotating order      -> done on the first success
 *         deadline passed                           -> timeout
 *         ipc_select_arm: register on every object  -> 1: something is ready, loop
 *         ipc_select_sleep: futex_waitv on all words
 *         ipc_select_disarm: unregister, pass wakes on
 *     }
 * See docs/design.md, "select protocol". */
#ifndef IPC_SELECT_H
#define IPC_SELECT_H

#include "common.h"
#include "queue.h"
#include "segment.h"

#define IPC_SELECT_MAX 64
/* A mutex cannot be registered on: a selector polls it this often. */
#define IPC_SELECT_MUTEX_POLL_NS (5 * 1000000LL)

typedef struct ipc_sel_item {
	int type; /* IPC_T_QUEUE, _SEMAPHORE, _EVENT or _MUTEX */
	ipc_segment *seg;
	ipc_queue q;  /* queues: the view */
	uint32_t ev0; /* events: the state when the select began */
	/* while armed */
	int armed;
	int slot;
	void *ref;
	uint32_t *word;
	uint32_t seen;
	int64_t slice;
} ipc_sel_item;

/* Fill it for seg (type from its header).  IPC_ERR for another type. */
int ipc_select_item(ipc_sel_item *it, ipc_segment *seg, ipc_error *err);

/* Register on every object.  0: all armed; 1: one was ready (everything
 * disarmed again, try again); IPC_ERR (everything disarmed). */
int ipc_select_arm(ipc_sel_item *it, int n, ipc_error *err);

/* Sleep until a wake on an armed object's word, the deadline, a slice or a
 * signal: IPC_OK, IPC_TIMEOUT or IPC_INTERRUPTED.  Stays armed. */
int ipc_select_sleep(ipc_sel_item *it, int n, const ipc_deadline *dl, unsigned sigsnap);

/* Unregister from every armed object, passing wakes on. */
void ipc_select_disarm(ipc_sel_item *it, int n);

#endif
