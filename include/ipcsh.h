/* libipcsh: ipcsh's crash-safe inter-process objects for C programs.
 *
 *     #include <ipcsh.h>        cc prog.c $(pkg-config --cflags --libs ipcsh)
 *
 * The objects are the ones the Lua module `interprocess` and the `ipcsh`
 * runner use, built from the same code: a queue created here can be drained
 * by `ipc.queue("jobs"):receive()` in a Lua script, a mutex locked here is
 * the mutex `ipcsh lock NAME` waits for.  Names, the object directory
 * ($IPCSH_DIR or the per-user default), permissions and defaults are the
 * Lua ones (docs/manual.md).
 *
 * Results.  Functions that can fail return IPCSH_OK, IPCSH_TIMEOUT (a wait
 * reached its deadline: not an error) or IPCSH_ERR; open functions return a
 * handle or NULL.  On IPCSH_ERR / NULL the ipcsh_error (when the pointer is
 * not NULL) holds `code`, an errno value (EINVAL bad argument, ENOENT /
 * EEXIST for the assert modes, EDEADLK relock, EPERM unlock without holding,
 * EMSGSIZE message too long or buffer too small, ERANGE past a semaphore's
 * max, ENOMEM, or what the operating system reported), or 0 when none
 * applies (a corrupt object, a name that holds another type), and
 * `message`, one line that starts with the function's name:
 *     ipcsh_queue_open: queue "jobs": "jobs" is a mutex, not a queue
 *
 * Timeouts are `long long` milliseconds on the monotonic clock: negative
 * waits forever, 0 never blocks, a positive value waits at most that long.
 *
 * Options.  Passing NULL options opens the object, creating it with the
 * defaults Lua uses when it does not exist.  An options struct should be
 * zero-initialised ({0}) and then set field by field: every zero field
 * means "the default".  Creation sizes apply only when the object is
 * created; an existing object keeps its own.
 *
 * Ownership and crash safety.  Locks and in-flight state belong to the
 * process, exactly as in Lua: locking a mutex this process already holds is
 * an error (EDEADLK), not a deadlock; a forked child holds none of its
 * parent's locks; a process that dies, even by SIGKILL at any instant,
 * releases everything it held (the next user repairs the object), and a
 * waiter that dies leaves no trace.  Closing a process's last handle of an
 * object releases what the process still holds in it.
 *
 * Signals.  libipcsh installs no signal handlers.  A wait is not
 * interrupted by a signal: the handler runs and the wait goes on until it
 * succeeds or its deadline passes (as with SA_RESTART).  A program that
 * must react to signals waits with a finite timeout in a loop and checks a
 * flag its handler sets.  Handles survive fork(); the child owns no locks.
 *
 * Threads.  The handles and the library's per-process bookkeeping are not
 * thread-safe: call libipcsh from one thread at a time.  Lock ownership is
 * per process, never per thread.
 *
 * Every function returns promptly on bad arguments (NULL handle, invalid
 * name, out-of-range option) with IPCSH_ERR / NULL and code EINVAL; none of
 * them crashes, truncates silently or leaves a half-made object. */
#ifndef IPCSH_H
#define IPCSH_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(IPCSH_BUILDING)
#define IPCSH_API __attribute__((visibility("default")))
#else
#define IPCSH_API
#endif

#define IPCSH_VERSION "0.1.0"

enum { IPCSH_OK = 0, IPCSH_TIMEOUT = 1, IPCSH_ERR = -1 };

typedef struct ipcsh_error {
	int code;          /* errno value, or 0 (see above) */
	char message[256]; /* "ipcsh_FUNCTION: what went wrong" */
} ipcsh_error;

/* assert_mode of every options struct (Lua's opts.assert). */
enum {
	IPCSH_OPEN_ANY = 0,    /* open, or create when missing (the default) */
	IPCSH_OPEN_CREATE = 1, /* create; EEXIST when it already exists */
	IPCSH_OPEN_EXISTS = 2  /* open; ENOENT when it does not exist */
};

/* Object names: a letter followed by letters, digits, '_', '-' or '.',
 * 1 to 250 characters (the Lua rule).  `mode` is the permission bits of a
 * new object, 0 meaning 0600. */

/* --- mutex: shared and exclusive locks -------------------------------- */

typedef struct ipcsh_mutex ipcsh_mutex;

typedef struct ipcsh_mutex_opts {
	int assert_mode; /* IPCSH_OPEN_* */
	unsigned mode;   /* 0: 0600 */
} ipcsh_mutex_opts;

/* Open or create the mutex NAME.  Returns a handle, or NULL with err set
 * (EINVAL bad name or option, ENOENT / EEXIST per assert_mode, 0 when the
 * name holds another type or a corrupt object, else the OS error).  Never
 * blocks for long: creation is atomic (an opener sees no object or a whole
 * one). */
IPCSH_API ipcsh_mutex *ipcsh_mutex_open(const char *name, const ipcsh_mutex_opts *opts,
                                        ipcsh_error *err);

/* Take the mutex exclusively, waiting at most timeout_ms (negative:
 * forever).  IPCSH_OK: held by this process until ipcsh_mutex_unlock, the
 * last handle's close or the process's death.  IPCSH_TIMEOUT: still taken
 * at the deadline.  IPCSH_ERR: EDEADLK when this process already holds it
 * (shared or exclusive), EINVAL for a NULL handle.  A holder that died is
 * detected at once and its lock taken over; writers are not starved by a
 * stream of readers.  Signals do not interrupt the wait. */
IPCSH_API int ipcsh_mutex_lock(ipcsh_mutex *m, long long timeout_ms, ipcsh_error *err);

/* Take the mutex shared: many processes at once, none while one holds it
 * exclusively (or waits for it).  Results and errors as ipcsh_mutex_lock;
 * also IPCSH_ERR when 256 processes already hold it shared. */
IPCSH_API int ipcsh_mutex_lock_shared(ipcsh_mutex *m, long long timeout_ms, ipcsh_error *err);

/* Release the lock (shared or exclusive) this process holds.  IPCSH_OK,
 * or IPCSH_ERR with EPERM when this process does not hold it.  Never
 * blocks. */
IPCSH_API int ipcsh_mutex_unlock(ipcsh_mutex *m, ipcsh_error *err);

/* Free the handle (NULL is ignored).  The object stays; when this was the
 * process's last handle of it, a lock this process holds is released. */
IPCSH_API void ipcsh_mutex_close(ipcsh_mutex *m);

/* --- semaphore: a counter ---------------------------------------------- */

typedef struct ipcsh_semaphore ipcsh_semaphore;

typedef struct ipcsh_semaphore_opts {
	int assert_mode; /* IPCSH_OPEN_* */
	unsigned mode;   /* 0: 0600 */
	long long value; /* initial count, >= 0 (default 0) */
	long long max;   /* upper bound, >= 1; 0: none (LLONG_MAX) */
	int undo;        /* nonzero: permits taken by a process that dies
	                    without posting them back are returned */
} ipcsh_semaphore_opts;

/* Open or create the semaphore NAME.  NULL with err set as for
 * ipcsh_mutex_open (EINVAL also for value < 0, max < 0 or value > max). */
IPCSH_API ipcsh_semaphore *ipcsh_semaphore_open(const char *name, const ipcsh_semaphore_opts *opts,
                                                ipcsh_error *err);

/* Add n (>= 1) to the count, waking up to n waiters.  IPCSH_OK, or
 * IPCSH_ERR: EINVAL for n == 0, ERANGE when the count would pass max
 * (nothing is added).  Never blocks for long. */
IPCSH_API int ipcsh_semaphore_post(ipcsh_semaphore *s, unsigned n, ipcsh_error *err);

/* Take one permit, waiting at most timeout_ms (negative: forever).
 * IPCSH_OK, IPCSH_TIMEOUT (count still 0 at the deadline) or IPCSH_ERR.
 * Signals do not interrupt the wait. */
IPCSH_API int ipcsh_semaphore_wait(ipcsh_semaphore *s, long long timeout_ms, ipcsh_error *err);

/* The current count (a snapshot), or -1 for a NULL handle. */
IPCSH_API long long ipcsh_semaphore_value(ipcsh_semaphore *s);

/* Free the handle (NULL is ignored).  The object stays; with undo, the
 * permits this process still holds are returned when its last handle
 * closes or it dies. */
IPCSH_API void ipcsh_semaphore_close(ipcsh_semaphore *s);

/* --- queue: messages, each delivered to exactly one receiver ----------- */

typedef struct ipcsh_queue ipcsh_queue;

typedef struct ipcsh_queue_opts {
	int assert_mode;     /* IPCSH_OPEN_* */
	unsigned mode;       /* 0: 0600 */
	long long max_count; /* messages held at most, 1..1000000; 0: 100 */
	long long max_size;  /* bytes per message, 1..64 MiB; 0: 1024 */
} ipcsh_queue_opts;

/* Open or create the queue NAME.  NULL with err set as for
 * ipcsh_mutex_open (EINVAL also for sizes out of range). */
IPCSH_API ipcsh_queue *ipcsh_queue_open(const char *name, const ipcsh_queue_opts *opts,
                                        ipcsh_error *err);

/* Send len bytes (binary-safe; len <= the queue's max_size) at priority
 * 0..2147483647, waiting at most timeout_ms (negative: forever) while the
 * queue is full.  IPCSH_OK: the whole message is queued.  IPCSH_TIMEOUT:
 * still full at the deadline, nothing queued.  IPCSH_ERR: EMSGSIZE when
 * len > max_size, EINVAL for a bad priority, NULL handle or NULL buf with
 * len > 0.  A sender killed at any instant leaves the message either
 * wholly queued or not at all.  Signals do not interrupt the wait. */
IPCSH_API int ipcsh_queue_send(ipcsh_queue *q, const void *buf, size_t len, long long priority,
                               long long timeout_ms, ipcsh_error *err);

/* Receive the first message (highest priority, then oldest) into buf (cap
 * bytes), waiting at most timeout_ms (negative: forever) while the queue
 * is empty.  IPCSH_OK: *len (when len is not NULL) is its length and
 * *priority (when not NULL) its priority.  IPCSH_TIMEOUT: still empty at
 * the deadline.  IPCSH_ERR with EMSGSIZE when the message is longer than
 * cap: it stays first in the queue and *len tells the size needed (a cap
 * of the queue's max_size always suffices).  A receiver killed at any
 * instant leaves the queue consistent: each message is either still queued
 * or was delivered.  Signals do not interrupt the wait. */
IPCSH_API int ipcsh_queue_receive(ipcsh_queue *q, void *buf, size_t cap, size_t *len,
                                  long long *priority, long long timeout_ms, ipcsh_error *err);

/* Free the handle (NULL is ignored).  The object and its messages stay. */
IPCSH_API void ipcsh_queue_close(ipcsh_queue *q);

/* --- any object ---------------------------------------------------------- */

/* Remove the object NAME (of any type) from the namespace: later opens
 * create a new one, handles already open keep working on the old one until
 * closed.  IPCSH_OK, or IPCSH_ERR with ENOENT when there was no such
 * object, EINVAL for a bad name, else the OS error.  Never blocks. */
IPCSH_API int ipcsh_remove(const char *name, ipcsh_error *err);

#ifdef __cplusplus
}
#endif

#endif
