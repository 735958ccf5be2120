/* PostgreSQL connection handling for the remote objects (see pg.h). */
#include "pg.h"

#include <fcntl.h>

#ifdef IPCSH_WITH_PG
#include "signals.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PG_SLICE_MS 20

static void copy_msg(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	while (n > 0 && (src[n - 1] == '\n' || src[n - 1] == ' '))
		n--; /* libpq messages end with a newline */
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = 0;
}

static int lost(ipc_pg *c, ipc_error *err)
{
	char m[256];
	c->lost = 1;
	copy_msg(m, sizeof m, PQerrorMessage(c->conn));
	return ipc_fail(err, 0, "connection to PostgreSQL lost%s%s", m[0] ? ": " : "", m);
}

static int usable(ipc_pg *c, ipc_error *err)
{
	if (c->owner_pid != (int)getpid())
		return ipc_fail(err, 0,
		                "PostgreSQL connection belongs to another process (forked "
		                "child?): call ipc.connect again");
	if (c->lost || PQstatus(c->conn) != CONNECTION_OK)
		return lost(c, err);
	return IPC_OK;
}

/* Server notices (e.g. "lock not held" warnings) are not ours to print. */
static void quiet_notice(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

ipc_pg *ipc_pg_connect(const char *conninfo, const char *appname, int bound_s, ipc_error *err)
{
	/* Client-side keepalives so that this side, too, learns of a partition
	 * within about bound_s (the server side is set by net.lua).  They come
	 * before dbname: a URL that sets them wins. */
	char idle[16], intvl[16], cnt[16], uto[24];
	int iv = bound_s >= 10 ? bound_s / 5 : 1;
	int id = bound_s - 3 * iv > 0 ? bound_s - 3 * iv : 1;
	snprintf(idle, sizeof idle, "%d", id);
	snprintf(intvl, sizeof intvl, "%d", iv);
	snprintf(cnt, sizeof cnt, "%d", 3);
	snprintf(uto, sizeof uto, "%d", bound_s * 1000);
	const char *keys[] = {"keepalives",       "keepalives_idle",  "keepalives_interval",
	                      "keepalives_count", "tcp_user_timeout", "dbname",
	                      "application_name", "client_encoding",  NULL};
	const char *vals[] = {"1",     idle,   intvl, cnt, uto, conninfo ? conninfo : "",
	                      appname, "UTF8", NULL};
	if (ipc_pq_load(err) != IPC_OK)
		return NULL;
	ipc_pg *c = calloc(1, sizeof *c);
	if (!c) {
		ipc_fail_os(err, ENOMEM, "ipc.connect");
		return NULL;
	}
	/* expand_dbname=1: dbname may be a URL or a keyword string; the later
	 * keywords only fill what it leaves unset... except application_name,
	 * which we want to set: libpq gives later keywords precedence. */
	c->conn = PQconnectdbParams(keys, vals, 1);
	if (!c->conn || PQstatus(c->conn) != CONNECTION_OK) {
		char m[256];
		copy_msg(m, sizeof m, c->conn ? PQerrorMessage(c->conn) : "out of memory");
		ipc_fail(err, 0, "cannot connect to PostgreSQL: %s", m);
		if (c->conn)
			PQfinish(c->conn);
		free(c);
		return NULL;
	}
	PQsetNoticeProcessor(c->conn, quiet_notice, NULL);
	c->owner_pid = (int)getpid();
	return c;
}

void ipc_pg_close(ipc_pg *c)
{
	if (!c)
		return;
	/* A forked child must not send Terminate on its parent's session: point
	 * its copy of the socket at /dev/null first, then free as usual. */
	if (c->owner_pid != (int)getpid() && PQsocket(c->conn) >= 0) {
		int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (nul >= 0) {
			dup2(nul, PQsocket(c->conn));
			close(nul);
		}
	}
	PQfinish(c->conn);
	free(c);
}

/* Wait for the socket to become readable for at most one slice. */
static int wait_socket(ipc_pg *c, int ms)
{
	struct pollfd p = {PQsocket(c->conn), POLLIN, 0};
	if (p.fd < 0)
		return -1;
	ipc_wait_enter();
	int r = poll(&p, 1, ms);
	ipc_wait_leave();
	if (r < 0 && errno != EINTR)
		return -1;
	return 0;
}

static int slice_ms(const ipc_deadline *dl)
{
	int64_t left = ipc_deadline_left(dl);
	if (left >= (int64_t)PG_SLICE_MS * 1000000)
		return PG_SLICE_MS;
	return (int)((left + 999999) / 1000000);
}

/* Collect every result; keep the last non-null one. */
static int collect(ipc_pg *c, PGresult **res, ipc_error *err)
{
	PGresult *r, *last = NULL;
	int rc = IPC_OK;
	while ((r = PQgetResult(c->conn)) != NULL) {
		ExecStatusType st = PQresultStatus(r);
		if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE ||
		    st == PGRES_NONFATAL_ERROR) {
			if (rc == IPC_OK) {
				char m[256];
				const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
				copy_msg(m, sizeof m, PQresultErrorMessage(r));
				rc = ipc_fail(err, 0, "PostgreSQL: %s%s%s%s", m,
				              state ? " (SQLSTATE " : "", state ? state : "",
				              state ? ")" : "");
			}
			PQclear(r);
			continue;
		}
		if (last)
			PQclear(last);
		last = r;
	}
	if (PQstatus(c->conn) != CONNECTION_OK) {
		if (last)
			PQclear(last);
		return lost(c, err);
	}
	if (rc != IPC_OK || !res) {
		if (last)
			PQclear(last);
		return rc;
	}
	*res = last;
	return IPC_OK;
}

static void cancel(ipc_pg *c)
{
	PGcancel *k = PQgetCancel(c->conn);
	char buf[256];
	if (k) {
		PQcancel(k, buf, sizeof buf);
		PQfreeCancel(k);
	}
}

/* Wait for the statement just sent; cancel it at the deadline / on a
 * signal.  A result that arrives anyway is kept (the work was done). */
static int await_result(ipc_pg *c, PGresult **res, ipc_deadline dl, unsigned sigsnap,
                        ipc_error *err)
{
	int why = IPC_OK;      /* set once we cancelled */
	ipc_signals_install(); /* lua.c may have replaced our SIGINT handler */
	for (;;) {
		if (!PQconsumeInput(c->conn))
			return lost(c, err);
		if (!PQisBusy(c->conn))
			break;
		if (why == IPC_OK) {
			if (ipc_signal_since(sigsnap))
				why = IPC_INTERRUPTED;
			else if (ipc_deadline_passed(&dl))
				why = IPC_TIMEOUT;
			if (why != IPC_OK)
				cancel(c);
		}
		if (wait_socket(c, why != IPC_OK ? PG_SLICE_MS : slice_ms(&dl)) < 0)
			return lost(c, err);
	}
	int rc = collect(c, res, err);
	if (rc == IPC_ERR && why != IPC_OK && strstr(err->msg, "57014")) /* query_canceled */
		return why;
	return rc;
}

int ipc_pg_exec(ipc_pg *c, const char *sql, const char *stmt, int n, const unsigned *types,
                const char *const *vals, const int *lens, PGresult **res, ipc_deadline dl,
                unsigned sigsnap, ipc_error *err)
{
	int fmts[32];
	*res = NULL;
	if (usable(c, err) != IPC_OK)
		return IPC_ERR;
	if (n > 32)
		return ipc_fail(err, 0, "too many query parameters");
	for (int i = 0; i < n; i++)
		fmts[i] = 1;
	int sent =
	    stmt ? PQsendQueryPrepared(c->conn, stmt, n, vals, lens, fmts, 1)
	         : PQsendQueryParams(c->conn, sql, n, (const Oid *)types, vals, lens, fmts, 1);
	if (!sent)
		return lost(c, err);
	return await_result(c, res, dl, sigsnap, err);
}

int ipc_pg_prepare(ipc_pg *c, const char *stmt, const char *sql, int n, const unsigned *types,
                   unsigned sigsnap, ipc_error *err)
{
	PGresult *res = NULL;
	if (usable(c, err) != IPC_OK)
		return IPC_ERR;
	if (!PQsendPrepare(c->conn, stmt, sql, n, (const Oid *)types))
		return lost(c, err);
	int rc = await_result(c, &res, ipc_deadline_never(), sigsnap, err);
	if (res)
		PQclear(res);
	return rc;
}

int ipc_pg_script(ipc_pg *c, const char *sql, ipc_error *err)
{
	if (usable(c, err) != IPC_OK)
		return IPC_ERR;
	if (!PQsendQuery(c->conn, sql))
		return lost(c, err);
	for (;;) {
		if (!PQconsumeInput(c->conn))
			return lost(c, err);
		if (!PQisBusy(c->conn))
			break;
		if (wait_socket(c, PG_SLICE_MS) < 0)
			return lost(c, err);
	}
	return collect(c, NULL, err);
}

int ipc_pg_wait_notify(ipc_pg *c, PGnotify **n, ipc_deadline dl, unsigned sigsnap, ipc_error *err)
{
	if (usable(c, err) != IPC_OK)
		return IPC_ERR;
	ipc_signals_install();
	for (;;) {
		if (!PQconsumeInput(c->conn))
			return lost(c, err);
		if ((*n = PQnotifies(c->conn)) != NULL)
			return IPC_OK;
		if (ipc_signal_since(sigsnap))
			return IPC_INTERRUPTED;
		if (ipc_deadline_passed(&dl))
			return IPC_TIMEOUT;
		if (wait_socket(c, slice_ms(&dl)) < 0)
			return lost(c, err);
	}
}

/* The socket has data: 1 when that is the end of the stream (or an error). */
static int at_eof(int fd)
{
	char b;
	ssize_t r = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

int ipc_pg_alive(ipc_pg *c)
{
	if (c->lost || c->owner_pid != (int)getpid())
		return !c->lost;
	int fd = PQsocket(c->conn);
	if (fd < 0 || PQstatus(c->conn) != CONNECTION_OK) {
		c->lost = 1;
		return 0;
	}
	/* Twice: a server that ends the session sends a message, then EOF. */
	for (int i = 0; i < 2; i++) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 0) <= 0)
			break;
		if (at_eof(fd) || !PQconsumeInput(c->conn) || PQstatus(c->conn) != CONNECTION_OK) {
			c->lost = 1;
			return 0;
		}
	}
	return 1;
}

#else
typedef int ipc_pg_unused; /* ISO C forbids an empty translation unit */
#endif
