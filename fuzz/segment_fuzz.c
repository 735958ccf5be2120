/* libFuzzer harness: hostile segment files (src/core/segment.c and every
 * type's read paths).
 *
 * Input: byte 0 selects the mode and the type.
 *  - raw mode (bit 7 clear): the rest of the input is written as the file
 *    $IPCSH_DIR/ipcs.F and opened as each of the eight types with
 *    ipc_seg_open(IPC_OPEN_EXISTS).  The header must be rejected (or
 *    accepted) without a crash or an out-of-bounds read.
 *  - body mode (bit 7 set): a VALID header is built for type (byte0 & 7)+1
 *    with params taken from bytes 1..12 (six little-endian 16-bit values, so
 *    the layouts stay small), the body is the rest of the input (zero
 *    padded to the layout's size), and after opening, the type's read
 *    operations run on the hostile body: queue stat + non-blocking receive,
 *    kv get/keys/set (after ipc_kv_lock), semaphore value, mutex state, event
 *    / barrier info, condition waiters.  The internal locks are re-initialised
 *    first: a hostile lock word can only make a locker wait (a liveness
 *    matter, not memory safety), and would turn every input into a hang.
 * Build and run: fuzz/README.md. */
#include "../src/core/barrier.h"
#include "../src/core/condition.h"
#include "../src/core/event.h"
#include "../src/core/kv.h"
#include "../src/core/signals.h"
#include "../src/core/mutex.h"
#include "../src/core/names.h"
#include "../src/core/queue.h"
#include "../src/core/segment.h"
#include "../src/core/semaphore.h"
#include "../src/core/shm.h"

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const ipc_type_ops *const all_ops[8] = {
	&ipc_shm_ops,       &ipc_mutex_ops, &ipc_semaphore_ops, &ipc_queue_ops,
	&ipc_condition_ops, &ipc_event_ops, &ipc_barrier_ops,   &ipc_kv_ops,
};

static char path[4096];
static char tmpdir[64];

static void remove_tmpdir(void)
{
	unlink(path);
	rmdir(tmpdir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char tmpl[] = "/tmp/ipcsh-segfuzz.XXXXXX";
	char *dir = mkdtemp(tmpl);
	if (!dir)
		abort();
	setenv("IPCSH_DIR", dir, 1);
	snprintf(tmpdir, sizeof tmpdir, "%s", dir);
	atexit(remove_tmpdir);
	snprintf(path, sizeof path, "%s/ipcs.F", dir);
	return 0;
}

static int write_file(const void *a, size_t na, const void *b, size_t nb, uint64_t pad)
{
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		abort();
	if ((na && write(fd, a, na) != (ssize_t)na) || (nb && write(fd, b, nb) != (ssize_t)nb))
		abort();
	if (pad && ftruncate(fd, (off_t)(na + nb + pad)) != 0)
		abort();
	close(fd);
	return 0;
}

static void reinit_locks(ipc_segment *seg)
{
	ipc_error err;
	if (seg->body_size < 2 * sizeof(ipc_rlock))
		return;
	ipc_rlock_init((ipc_rlock *)seg->body, &err);
	if (seg->ops == &ipc_mutex_ops)
		ipc_rlock_init((ipc_rlock *)seg->body + 1, &err);
}

static void exercise(ipc_segment *seg)
{
	ipc_error err;
	reinit_locks(seg);
	switch (seg->ops->id) {
	case IPC_T_QUEUE: {
		ipc_queue v;
		ipc_queue_stats st;
		ipc_queue_view(&v, seg);
		ipc_queue_stat(&v, &st, &err);
		ipc_deadline dl = ipc_deadline_in(0);
		size_t len = 0;
		uint32_t prio = 0;
		char *buf = malloc(v.max_size ? v.max_size : 1);
		ipc_qticket t;
		if (ipc_queue_receive(&v, buf, &len, &prio, &t, &dl, &err) == IPC_OK)
			ipc_queue_nack(&v, &t, &err);
		if (ipc_queue_receive(&v, buf, &len, &prio, NULL, &dl, &err) == IPC_OK && len > v.max_size)
			abort();
		ipc_queue_send(&v, "x", 1, 1, &dl, &err);
		ipc_queue_clear(&v, &err);
		free(buf);
		break;
	}
	case IPC_T_KV: {
		ipc_kv kv;
		if (ipc_kv_view(&kv, seg) != IPC_OK)
			break;
		ipc_deadline kdl = ipc_deadline_in(0);
		if (ipc_kv_lock(&kv, &kdl, IPC_UNINTERRUPTIBLE, &err) != IPC_OK)
			break;
		ipc_kv_buf out = { 0 };
		uint32_t n = 0;
		ipc_kv_get(&kv, "k", 1, &out, &err);
		ipc_kv_keys(&kv, &out, &n, &err);
		ipc_kv_set(&kv, "key", 3, "value", 5, &err);
		ipc_kv_get(&kv, "key", 3, &out, &err);
		ipc_kv_delete(&kv, "k", 1, &err);
		ipc_kv_unlock(&kv);
		ipc_kv_buf_free(&out);
		break;
	}
	case IPC_T_SEMAPHORE:
		ipc_sem_value(seg);
		ipc_sem_waiters(seg);
		break;
	case IPC_T_MUTEX: {
		ipc_mutex_state st;
		ipc_mutex_state_get(seg, &st, &err);
		break;
	}
	case IPC_T_EVENT: {
		ipc_event_state st;
		ipc_event_info(seg, &st, &err);
		ipc_event_is_set(seg);
		break;
	}
	case IPC_T_BARRIER: {
		ipc_barrier_state st;
		ipc_barrier_info(seg, &st, &err);
		break;
	}
	case IPC_T_CONDITION:
		ipc_cond_waiters(seg);
		break;
	default:
		break;
	}
}

static void open_as_each(int run_ops)
{
	for (int t = 0; t < 8; t++) {
		ipc_segment *seg = NULL;
		ipc_error err;
		ipc_open_opts o;
		memset(&o, 0, sizeof o);
		o.assert_mode = IPC_OPEN_EXISTS;
		o.mode = 0600;
		int created = 0;
		if (ipc_seg_open(&seg, "F", all_ops[t], &o, &created, &err) == IPC_OK) {
			if (created)
				abort();
			if (run_ops)
				exercise(seg);
			ipc_seg_release(seg);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (!(data[0] & 0x80)) {
		write_file(data + 1, size - 1, NULL, 0, 0);
		open_as_each(0);
		return 0;
	}
	if (size < 13)
		return 0;
	uint32_t type = (uint32_t)(data[0] & 7) + 1;
	ipc_header h;
	memset(&h, 0, sizeof h);
	memcpy(h.magic, IPC_MAGIC, 8);
	h.version = IPC_LAYOUT_VERSION;
	h.type = type;
	h.header_size = IPC_HEADER_SIZE;
	for (int k = 0; k < IPC_NPARAMS; k++)
		h.params[k] = (uint64_t)data[1 + 2 * k] | (uint64_t)data[2 + 2 * k] << 8;
	uint64_t body = 0;
	ipc_error err;
	if (all_ops[type - 1]->layout(h.params, &body, &err) != IPC_OK || body > (1u << 22))
		return 0;
	h.total_size = IPC_HEADER_SIZE + body;
	h.creator_pid = 1;
	h.name_len = 1;
	h.name[0] = 'F';
	h.checksum = ipc_hash64(&h, offsetof(ipc_header, checksum));
	char hdr[IPC_HEADER_SIZE];
	memset(hdr, 0, sizeof hdr);
	memcpy(hdr, &h, sizeof h);
	size_t nb = size - 13;
	if (nb > body)
		nb = (size_t)body;
	write_file(hdr, sizeof hdr, data + 13, nb, body - nb);
	open_as_each(1);
	return 0;
}
