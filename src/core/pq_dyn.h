/* libpq, loaded on first use (dlopen), not linked: linking it would make
 * every ipcsh start load libpq and the twenty libraries it depends on (about
 * 5 ms), for a feature few scripts use.  Include this instead of
 * <libpq-fe.h>: the PQ* names below resolve through ipc_pq. */
#ifndef IPC_PQ_DYN_H
#define IPC_PQ_DYN_H

#include "common.h"

#include <libpq-fe.h>

/* clang-format off */
#define IPC_PQ_FUNCS(X) \
	X(PQbackendPID) X(PQcancel) X(PQclear) X(PQcmdTuples) X(PQconnectdbParams) \
	X(PQconsumeInput) X(PQerrorMessage) X(PQfinish) X(PQfreeCancel) X(PQfreemem) \
	X(PQftype) X(PQgetCancel) X(PQgetResult) X(PQgetisnull) X(PQgetlength) \
	X(PQgetvalue) X(PQisBusy) X(PQnfields) X(PQnotifies) X(PQntuples) \
	X(PQresultErrorField) X(PQresultErrorMessage) X(PQresultStatus) X(PQsendPrepare) \
	X(PQsendQuery) X(PQsendQueryParams) X(PQsendQueryPrepared) X(PQsetNoticeProcessor) \
	X(PQsocket) X(PQstatus)
/* clang-format on */

#define IPC_PQ_FIELD(f) __typeof__(&f) f;
struct ipc_pq_api {
	IPC_PQ_FUNCS(IPC_PQ_FIELD)
};
#undef IPC_PQ_FIELD
extern struct ipc_pq_api ipc_pq;

/* Load libpq once; IPC_OK, or IPC_ERR naming what is missing. */
int ipc_pq_load(ipc_error *err);

#ifndef IPC_PQ_DYN_IMPL
#define PQbackendPID ipc_pq.PQbackendPID
#define PQcancel ipc_pq.PQcancel
#define PQclear ipc_pq.PQclear
#define PQcmdTuples ipc_pq.PQcmdTuples
#define PQconnectdbParams ipc_pq.PQconnectdbParams
#define PQconsumeInput ipc_pq.PQconsumeInput
#define PQerrorMessage ipc_pq.PQerrorMessage
#define PQfinish ipc_pq.PQfinish
#define PQfreeCancel ipc_pq.PQfreeCancel
#define PQfreemem ipc_pq.PQfreemem
#define PQftype ipc_pq.PQftype
#define PQgetCancel ipc_pq.PQgetCancel
#define PQgetResult ipc_pq.PQgetResult
#define PQgetisnull ipc_pq.PQgetisnull
#define PQgetlength ipc_pq.PQgetlength
#define PQgetvalue ipc_pq.PQgetvalue
#define PQisBusy ipc_pq.PQisBusy
#define PQnfields ipc_pq.PQnfields
#define PQnotifies ipc_pq.PQnotifies
#define PQntuples ipc_pq.PQntuples
#define PQresultErrorField ipc_pq.PQresultErrorField
#define PQresultErrorMessage ipc_pq.PQresultErrorMessage
#define PQresultStatus ipc_pq.PQresultStatus
#define PQsendPrepare ipc_pq.PQsendPrepare
#define PQsendQuery ipc_pq.PQsendQuery
#define PQsendQueryParams ipc_pq.PQsendQueryParams
#define PQsendQueryPrepared ipc_pq.PQsendQueryPrepared
#define PQsetNoticeProcessor ipc_pq.PQsetNoticeProcessor
#define PQsocket ipc_pq.PQsocket
#define PQstatus ipc_pq.PQstatus
#endif

#endif
