/* select: see select.h and docs/design.md, "select protocol". */
#include "select.h"

#include "event.h"
#include "semaphore.h"
#include "wait.h"

#include <string.h>

int ipc_select_item(ipc_sel_item *it, ipc_segment *seg, ipc_error *err)
{
	memset(it, 0, sizeof *it);
	it->seg = seg;
	it->slot = -1;
	it->type = (int)seg->hdr->type;
	switch (it->type) {
	case IPC_T_QUEUE:
		ipc_queue_view(&it->q, seg);
		return IPC_OK;
	case IPC_T_EVENT:
		it->ev0 = ipc_event_sel_start(seg);
		return IPC_OK;
	case IPC_T_SEMAPHORE:
	case IPC_T_MUTEX:
		return IPC_OK;
	}
	return ipc_fail(err, 0, "\"%s\" cannot be waited on by select", seg->name);
}

static int arm_one(ipc_sel_item *it, ipc_error *err)
{
	switch (it->type) {
	case IPC_T_QUEUE:
		it->word = &it->q.q->recv_seq;
		return ipc_queue_sel_arm(&it->q, &it->slot, &it->seen, &it->slice, err);
	case IPC_T_SEMAPHORE:
		return ipc_sem_sel_arm(it->seg, &it->slot, &it->word, &it->seen, &it->slice, err);
	case IPC_T_EVENT:
		return ipc_event_sel_arm(it->seg, it->ev0, &it->ref, &it->word, &it->seen,
		                         &it->slice, err);
	default: /* mutex: polled (see select.h) */
		it->word = NULL;
		it->slice = IPC_SELECT_MUTEX_POLL_NS;
		return 0;
	}
}

static void disarm_one(ipc_sel_item *it)
{
	switch (it->type) {
	case IPC_T_QUEUE:
		ipc_queue_sel_disarm(&it->q, it->slot);
		break;
	case IPC_T_SEMAPHORE:
		ipc_sem_sel_disarm(it->seg, it->slot);
		break;
	case IPC_T_EVENT:
		ipc_event_sel_disarm(it->seg, it->ref);
		break;
	default:
		break;
	}
	it->armed = 0;
	it->slot = -1;
	it->ref = NULL;
}

int ipc_select_arm(ipc_sel_item *it, int n, ipc_error *err)
{
	for (int i = 0; i < n; i++) {
		int r = arm_one(&it[i], err);
		if (r == 0) {
			it[i].armed = 1;
			continue;
		}
		/* ready (1) or failed: leave the others as they were */
		ipc_select_disarm(it, i);
		return r;
	}
	return 0;
}

void ipc_select_disarm(ipc_sel_item *it, int n)
{
	for (int i = 0; i < n; i++)
		if (it[i].armed)
			disarm_one(&it[i]);
}

int ipc_select_sleep(ipc_sel_item *it, int n, const ipc_deadline *dl, unsigned sigsnap)
{
	const uint32_t *words[IPC_SELECT_MAX + 1];
	uint32_t seen[IPC_SELECT_MAX + 1];
	int64_t slice = 0;
	int nw = 0;
	for (int i = 0; i < n && i < IPC_SELECT_MAX; i++) {
		if (it[i].slice > 0 && (slice == 0 || it[i].slice < slice))
			slice = it[i].slice;
		if (it[i].armed && it[i].word) {
			words[nw] = it[i].word;
			seen[nw++] = it[i].seen;
		}
	}
	uint32_t none = 0; /* only mutexes: sleep on a word no one wakes */
	if (nw == 0) {
		words[nw] = &none;
		seen[nw++] = 0;
	}
	return ipc_wait_words(words, seen, nw, dl, slice, sigsnap, NULL);
}
