/* Shared definitions for the pure C core: results, errors, deadlines.
 * Nothing in src/core/ includes Lua headers. */
#ifndef IPC_COMMON_H
#define IPC_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Results of operations that may wait.  Errors are reported as IPC_ERR with
 * the message in an ipc_error. */
enum {
	IPC_OK = 0,
	IPC_TIMEOUT = 1,     /* deadline passed: not an error */
	IPC_INTERRUPTED = 2, /* a signal (SIGINT...) arrived while waiting */
	IPC_ERR = -1
};

typedef struct ipc_error {
	int code; /* errno when the OS failed, else 0 */
	char msg[320];
} ipc_error;

/* Fill err and return IPC_ERR. */
int ipc_fail(ipc_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Same, appending ": strerror(code)". */
int ipc_fail_os(ipc_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A deadline on CLOCK_MONOTONIC.  forever: no deadline; otherwise at_ns. */
typedef struct ipc_deadline {
	int forever;
	int64_t at_ns;
} ipc_deadline;

int64_t ipc_now_ns(void); /* CLOCK_MONOTONIC */
/* ms < 0 means forever (callers validate user input before). */
ipc_deadline ipc_deadline_in(double ms);
ipc_deadline ipc_deadline_never(void);
/* Nanoseconds left (>= 0); INT64_MAX when forever. */
int64_t ipc_deadline_left(const ipc_deadline *dl);
int ipc_deadline_passed(const ipc_deadline *dl);

#define IPC_ALIGN_UP(x, a) (((x) + ((a)-1)) & ~((size_t)(a)-1))

#endif
