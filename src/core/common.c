#include "common.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ipc_fail(ipc_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	err->code = code;
	return IPC_ERR;
}

int ipc_fail_os(ipc_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n < sizeof err->msg)
		snprintf(err->msg + n, sizeof err->msg - (size_t)n, ": %s", strerror(code));
	err->code = code;
	return IPC_ERR;
}

int64_t ipc_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

ipc_deadline ipc_deadline_never(void)
{
	ipc_deadline dl = {1, 0};
	return dl;
}

ipc_deadline ipc_deadline_in(double ms)
{
	ipc_deadline dl = {0, 0};
	if (ms < 0 || isinf(ms) || ms > 9.0e12) {
		dl.forever = 1;
		return dl;
	}
	dl.at_ns = ipc_now_ns() + (int64_t)(ms * 1e6);
	return dl;
}

int64_t ipc_deadline_left(const ipc_deadline *dl)
{
	if (dl->forever)
		return INT64_MAX;
	int64_t left = dl->at_ns - ipc_now_ns();
	return left > 0 ? left : 0;
}

int ipc_deadline_passed(const ipc_deadline *dl)
{
	return !dl->forever && ipc_now_ns() >= dl->at_ns;
}
