/* libipcsh: the C API of include/ipcsh.h, a thin layer over src/core/ (the
 * code ipcsh and interprocess.so use).  It checks arguments, fills the
 * Lua defaults and turns core results into IPCSH_* with an ipcsh_error.
 *
 * Waits pass IPC_UNINTERRUPTIBLE: the library installs no signal handlers,
 * so a signal never ends a wait early (the header documents this). */
#define IPCSH_BUILDING 1
#include "ipcsh.h"

#include "../core/mutex.h"
#include "../core/names.h"
#include "../core/procid.h"
#include "../core/queue.h"
#include "../core/segment.h"
#include "../core/semaphore.h"
#include "../core/signals.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ipcsh_mutex {
	ipc_segment *seg;
};

struct ipcsh_semaphore {
	ipc_segment *seg;
};

struct ipcsh_queue {
	ipc_segment *seg;
	ipc_queue v;
	unsigned char *buf; /* max_size bytes: receives into a smaller cap */
};

static int fail(ipcsh_error *err, int code, const char *fn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Fill err ("FN: message") and return IPCSH_ERR. */
static int fail(ipcsh_error *err, int code, const char *fn, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		int n = snprintf(err->message, sizeof err->message, "%s: ", fn);
		va_start(ap, fmt);
		vsnprintf(err->message + n, sizeof err->message - (size_t)n, fmt, ap);
		va_end(ap);
		err->code = code;
	}
	return IPCSH_ERR;
}

static int fail_core(ipcsh_error *err, const char *fn, const ipc_error *e)
{
	return fail(err, e->code, fn, "%s", e->msg);
}

static void ok(ipcsh_error *err)
{
	if (err) {
		err->code = 0;
		err->message[0] = '\0';
	}
}

static ipc_deadline deadline(long long timeout_ms)
{
	return timeout_ms < 0 ? ipc_deadline_never() : ipc_deadline_in((double)timeout_ms);
}

/* Open NAME as ops with the common options; NULL with err set. */
static ipc_segment *open_seg(const char *fn, const char *name, const ipc_type_ops *ops,
                             int assert_mode, unsigned mode, const uint64_t *params,
                             ipcsh_error *err)
{
	if (!name || !ipc_name_valid(name, strlen(name))) {
		fail(err, EINVAL, fn,
		     "invalid name \"%.200s\": a letter followed by letters or digits, 1 to 250 "
		     "characters",
		     name ? name : "(null)");
		return NULL;
	}
	if (assert_mode < IPCSH_OPEN_ANY || assert_mode > IPCSH_OPEN_EXISTS) {
		fail(err, EINVAL, fn, "bad assert_mode %d (IPCSH_OPEN_ANY, _CREATE or _EXISTS)",
		     assert_mode);
		return NULL;
	}
	if (mode > 0777) {
		fail(err, EINVAL, fn, "bad mode 0%o (permission bits, at most 0777)", mode);
		return NULL;
	}
	ipc_procid_init(); /* pid/token, refreshed in forked children */
	ipc_open_opts o;
	memset(&o, 0, sizeof o);
	o.assert_mode = assert_mode == IPCSH_OPEN_CREATE   ? IPC_OPEN_CREATE
	                : assert_mode == IPCSH_OPEN_EXISTS ? IPC_OPEN_EXISTS
	                                                   : IPC_OPEN_ANY;
	o.mode = mode ? mode : 0600;
	memcpy(o.params, params, sizeof o.params);
	ipc_segment *seg;
	ipc_error e;
	int created;
	if (ipc_seg_open(&seg, name, ops, &o, &created, &e) != IPC_OK) {
		fail_core(err, fn, &e);
		return NULL;
	}
	ok(err);
	return seg;
}

/* --- mutex ------------------------------------------------------------- */

ipcsh_mutex *ipcsh_mutex_open(const char *name, const ipcsh_mutex_opts *opts, ipcsh_error *err)
{
	static const char fn[] = "ipcsh_mutex_open";
	uint64_t params[IPC_NPARAMS] = {0};
	ipcsh_mutex *m = malloc(sizeof *m);
	if (!m) {
		fail(err, ENOMEM, fn, "out of memory");
		return NULL;
	}
	m->seg = open_seg(fn, name, &ipc_mutex_ops, opts ? opts->assert_mode : 0,
	                  opts ? opts->mode : 0, params, err);
	if (!m->seg) {
		free(m);
		return NULL;
	}
	return m;
}

static int mutex_lock(const char *fn, ipcsh_mutex *m, int shared, long long timeout_ms,
                      ipcsh_error *err)
{
	if (!m)
		return fail(err, EINVAL, fn, "NULL mutex");
	int held = ipc_mutex_held(m->seg);
	if (held != IPC_HELD_NONE)
		return fail(err, EDEADLK, fn, "mutex \"%s\": already locked by this process (%s)",
		            m->seg->name, held == IPC_HELD_SHARED ? "shared" : "exclusive");
	ipc_deadline dl = deadline(timeout_ms);
	ipc_error e;
	int r = ipc_mutex_lock(m->seg, shared, &dl, IPC_UNINTERRUPTIBLE, &e);
	if (r == IPC_ERR)
		return fail(err, e.code, fn, "mutex \"%s\": %s", m->seg->name, e.msg);
	ok(err);
	return r == IPC_OK ? IPCSH_OK : IPCSH_TIMEOUT;
}

int ipcsh_mutex_lock(ipcsh_mutex *m, long long timeout_ms, ipcsh_error *err)
{
	return mutex_lock("ipcsh_mutex_lock", m, 0, timeout_ms, err);
}

int ipcsh_mutex_lock_shared(ipcsh_mutex *m, long long timeout_ms, ipcsh_error *err)
{
	return mutex_lock("ipcsh_mutex_lock_shared", m, 1, timeout_ms, err);
}

int ipcsh_mutex_unlock(ipcsh_mutex *m, ipcsh_error *err)
{
	static const char fn[] = "ipcsh_mutex_unlock";
	if (!m)
		return fail(err, EINVAL, fn, "NULL mutex");
	ipc_error e;
	int r = ipc_mutex_unlock(m->seg, &e);
	if (r == IPC_ERR)
		return fail(err, e.code, fn, "mutex \"%s\": %s", m->seg->name, e.msg);
	if (r == IPC_TIMEOUT)
		return fail(err, EPERM, fn, "mutex \"%s\": not locked by this process",
		            m->seg->name);
	ok(err);
	return IPCSH_OK;
}

void ipcsh_mutex_close(ipcsh_mutex *m)
{
	if (!m)
		return;
	ipc_seg_release(m->seg);
	free(m);
}

/* --- semaphore --------------------------------------------------------- */

ipcsh_semaphore *ipcsh_semaphore_open(const char *name, const ipcsh_semaphore_opts *opts,
                                      ipcsh_error *err)
{
	static const char fn[] = "ipcsh_semaphore_open";
	uint64_t params[IPC_NPARAMS] = {0};
	long long value = opts ? opts->value : 0;
	long long max = opts && opts->max ? opts->max : IPC_SEM_MAX;
	if (value < 0 || max < 1 || value > max) {
		fail(err, EINVAL, fn, "bad options: value %lld, max %lld (0 <= value <= max)",
		     value, max);
		return NULL;
	}
	params[0] = (uint64_t)value;
	params[1] = (uint64_t)max;
	params[2] = opts && opts->undo ? 1 : 0;
	ipcsh_semaphore *s = malloc(sizeof *s);
	if (!s) {
		fail(err, ENOMEM, fn, "out of memory");
		return NULL;
	}
	s->seg = open_seg(fn, name, &ipc_semaphore_ops, opts ? opts->assert_mode : 0,
	                  opts ? opts->mode : 0, params, err);
	if (!s->seg) {
		free(s);
		return NULL;
	}
	return s;
}

int ipcsh_semaphore_post(ipcsh_semaphore *s, unsigned n, ipcsh_error *err)
{
	static const char fn[] = "ipcsh_semaphore_post";
	if (!s)
		return fail(err, EINVAL, fn, "NULL semaphore");
	if (n < 1)
		return fail(err, EINVAL, fn, "count must be >= 1");
	ipc_error e;
	if (ipc_sem_post(s->seg, (int64_t)n, &e) != IPC_OK) {
		/* the core's only non-OS failure here is passing max */
		int code = e.code ? e.code : strstr(e.msg, "exceed max") ? ERANGE : 0;
		return fail(err, code, fn, "semaphore \"%s\": %s", s->seg->name, e.msg);
	}
	ok(err);
	return IPCSH_OK;
}

int ipcsh_semaphore_wait(ipcsh_semaphore *s, long long timeout_ms, ipcsh_error *err)
{
	static const char fn[] = "ipcsh_semaphore_wait";
	if (!s)
		return fail(err, EINVAL, fn, "NULL semaphore");
	ipc_deadline dl = deadline(timeout_ms);
	ipc_error e;
	int r = ipc_sem_wait(s->seg, &dl, IPC_UNINTERRUPTIBLE, &e);
	if (r == IPC_ERR)
		return fail(err, e.code, fn, "semaphore \"%s\": %s", s->seg->name, e.msg);
	ok(err);
	return r == IPC_OK ? IPCSH_OK : IPCSH_TIMEOUT;
}

long long ipcsh_semaphore_value(ipcsh_semaphore *s)
{
	return s ? (long long)ipc_sem_value(s->seg) : -1;
}

void ipcsh_semaphore_close(ipcsh_semaphore *s)
{
	if (!s)
		return;
	ipc_seg_release(s->seg);
	free(s);
}

/* --- queue ------------------------------------------------------------- */

ipcsh_queue *ipcsh_queue_open(const char *name, const ipcsh_queue_opts *opts, ipcsh_error *err)
{
	static const char fn[] = "ipcsh_queue_open";
	uint64_t params[IPC_NPARAMS] = {0};
	long long max_count = opts && opts->max_count ? opts->max_count : 100;
	long long max_size = opts && opts->max_size ? opts->max_size : 1024;
	if (max_count < 1 || max_count > (long long)IPC_QUEUE_MAX_COUNT) {
		fail(err, EINVAL, fn, "bad option max_count %lld (1..%u)", max_count,
		     IPC_QUEUE_MAX_COUNT);
		return NULL;
	}
	if (max_size < 1 || max_size > (long long)IPC_QUEUE_MAX_SIZE) {
		fail(err, EINVAL, fn, "bad option max_size %lld (1..%u)", max_size,
		     IPC_QUEUE_MAX_SIZE);
		return NULL;
	}
	params[0] = (uint64_t)max_count;
	params[1] = (uint64_t)max_size;
	ipcsh_queue *q = calloc(1, sizeof *q);
	if (!q) {
		fail(err, ENOMEM, fn, "out of memory");
		return NULL;
	}
	q->seg = open_seg(fn, name, &ipc_queue_ops, opts ? opts->assert_mode : 0,
	                  opts ? opts->mode : 0, params, err);
	if (!q->seg) {
		free(q);
		return NULL;
	}
	ipc_queue_view(&q->v, q->seg);
	/* an existing queue keeps its own max_size (it may be 0) */
	if (!(q->buf = malloc(q->v.max_size ? q->v.max_size : 1))) {
		fail(err, ENOMEM, fn, "queue \"%s\": cannot allocate a %u-byte buffer", name,
		     q->v.max_size);
		ipc_seg_release(q->seg);
		free(q);
		return NULL;
	}
	return q;
}

int ipcsh_queue_send(ipcsh_queue *q, const void *buf, size_t len, long long priority,
                     long long timeout_ms, ipcsh_error *err)
{
	static const char fn[] = "ipcsh_queue_send";
	if (!q)
		return fail(err, EINVAL, fn, "NULL queue");
	if (!buf && len > 0)
		return fail(err, EINVAL, fn, "NULL buffer of %zu bytes", len);
	if (priority < 0 || priority > (long long)IPC_QUEUE_MAX_PRIO)
		return fail(err, EINVAL, fn, "priority %lld out of range 0..2147483647", priority);
	if (len > q->v.max_size)
		return fail(err, EMSGSIZE, fn,
		            "queue \"%s\": message is %zu bytes; this queue takes at most %u",
		            q->seg->name, len, q->v.max_size);
	ipc_deadline dl = deadline(timeout_ms);
	ipc_error e;
	int r = ipc_queue_send(&q->v, buf ? buf : "", len, (uint32_t)priority, &dl, &e);
	if (r == IPC_ERR)
		return fail(err, e.code, fn, "queue \"%s\": %s", q->seg->name, e.msg);
	ok(err);
	return r == IPC_OK ? IPCSH_OK : IPCSH_TIMEOUT;
}

int ipcsh_queue_receive(ipcsh_queue *q, void *buf, size_t cap, size_t *len, long long *priority,
                        long long timeout_ms, ipcsh_error *err)
{
	static const char fn[] = "ipcsh_queue_receive";
	if (!q)
		return fail(err, EINVAL, fn, "NULL queue");
	if (!buf && cap > 0)
		return fail(err, EINVAL, fn, "NULL buffer of %zu bytes", cap);
	ipc_deadline dl = deadline(timeout_ms);
	ipc_error e;
	size_t n;
	uint32_t prio;
	int r;
	if (cap >= q->v.max_size && buf) {
		/* every message fits: straight into the caller's buffer */
		r = ipc_queue_receive(&q->v, buf, &n, &prio, NULL, &dl, &e);
	} else {
		/* take it in flight, and put it back if it does not fit */
		ipc_qticket t;
		r = ipc_queue_receive(&q->v, q->buf, &n, &prio, &t, &dl, &e);
		if (r == IPC_OK) {
			int fits = n <= cap;
			if (fits && n)
				memcpy(buf, q->buf, n);
			r = fits ? ipc_queue_ack(&q->v, &t, &e) : ipc_queue_nack(&q->v, &t, &e);
			if (r == IPC_OK && !fits) {
				if (len)
					*len = n;
				return fail(err, EMSGSIZE, fn,
				            "queue \"%s\": the message is %zu bytes, the buffer "
				            "%zu; it stays in the queue",
				            q->seg->name, n, cap);
			}
		}
	}
	if (r == IPC_ERR)
		return fail(err, e.code, fn, "queue \"%s\": %s", q->seg->name, e.msg);
	ok(err);
	if (r != IPC_OK)
		return IPCSH_TIMEOUT;
	if (len)
		*len = n;
	if (priority)
		*priority = (long long)prio;
	return IPCSH_OK;
}

void ipcsh_queue_close(ipcsh_queue *q)
{
	if (!q)
		return;
	ipc_seg_release(q->seg);
	free(q->buf);
	free(q);
}

/* --- any object -------------------------------------------------------- */

int ipcsh_remove(const char *name, ipcsh_error *err)
{
	static const char fn[] = "ipcsh_remove";
	if (!name || !ipc_name_valid(name, strlen(name)))
		return fail(err, EINVAL, fn, "invalid name \"%.200s\"", name ? name : "(null)");
	ipc_error e;
	int r = ipc_seg_unlink(name, &e);
	if (r == IPC_ERR)
		return fail_core(err, fn, &e);
	if (r == 0)
		return fail(err, ENOENT, fn, "no object \"%s\"", name);
	ok(err);
	return IPCSH_OK;
}
