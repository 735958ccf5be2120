/* A PostgreSQL connection for the remote objects (ipc.connect): connect,
 * run one parameterised statement with a deadline that stays interruptible,
 * and wait for LISTEN/NOTIFY wake-ups.  Pure C over libpq; compiled only
 * with IPCSH_WITH_PG (the Makefile defines it when libpq is installed). */
#ifndef IPC_PG_H
#define IPC_PG_H

#include "common.h"

#ifdef IPCSH_WITH_PG
#include "pq_dyn.h"

typedef struct ipc_pg {
	PGconn *conn;
	int owner_pid; /* the process that connected; a forked child must not use it */
	int lost;      /* the connection broke: every later call fails */
} ipc_pg;

/* Connect with a URL or keyword string (NULL/"": libpq's defaults), with
 * client keepalives that give up on a silent server after about bound_s
 * seconds.  NULL with err filled on failure. */
ipc_pg *ipc_pg_connect(const char *conninfo, const char *appname, int bound_s, ipc_error *err);
void ipc_pg_close(ipc_pg *c);

/* Run sql with n parameters (binary format, given type oids; vals[i] NULL
 * is SQL NULL); with stmt, the statement prepared under that name instead
 * (sql unused).  Results come back in binary format.  Waits until dl, in
 * slices, returning IPC_TIMEOUT or IPC_INTERRUPTED (signal since sigsnap)
 * after cancelling the statement; if the statement still completed, its
 * result is kept (IPC_OK).  On IPC_OK *res is the last result (caller
 * PQclear()s it).  An SQL error or a broken connection is IPC_ERR. */
int ipc_pg_exec(ipc_pg *c, const char *sql, const char *stmt, int n, const unsigned *types,
                const char *const *vals, const int *lens, PGresult **res, ipc_deadline dl,
                unsigned sigsnap, ipc_error *err);
/* Prepare sql under the name stmt (IPC_OK, IPC_INTERRUPTED or IPC_ERR). */
int ipc_pg_prepare(ipc_pg *c, const char *stmt, const char *sql, int n, const unsigned *types,
                   unsigned sigsnap, ipc_error *err);
/* Constant SQL (may hold several statements, no user data), no results. */
int ipc_pg_script(ipc_pg *c, const char *sql, ipc_error *err);

/* Wait for one notification until dl: IPC_OK with *n set (caller PQfreemem)
 * or IPC_TIMEOUT / IPC_INTERRUPTED / IPC_ERR. */
int ipc_pg_wait_notify(ipc_pg *c, PGnotify **n, ipc_deadline dl, unsigned sigsnap, ipc_error *err);
/* Cheap liveness check without a round trip: notices an EOF already on the
 * socket.  1 alive, 0 lost. */
int ipc_pg_alive(ipc_pg *c);
#endif

#endif
