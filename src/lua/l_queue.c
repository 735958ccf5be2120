/* ipc.queue: messages, each delivered to one receiver, by priority.
 *
 * A received message is copied out of the segment into this handle's own
 * buffer (max_size bytes, allocated at open) while the internal lock is
 * held, and only turned into a Lua string after the lock is dropped: no Lua
 * call that can raise ever runs under the lock. */
#include "../core/queue.h"
#include "../core/signals.h"
#include "modules.h"
#include "object.h"

#include <stdlib.h>
#include <string.h>

typedef struct queue_extra {
	ipc_queue v;
	unsigned char *buf; /* max_size bytes (at least 1) */
} queue_extra;

static const ipcl_type queue_type;

static queue_extra *qx(ipcl_handle *h)
{
	return IPCL_EXTRA(h, queue_extra);
}

/* The receive buffer; with() lends the handle's own to its message while
 * fn runs, so a nested receive gets a fresh one. */
static unsigned char *receive_buffer(lua_State *L, ipcl_handle *h)
{
	queue_extra *x = qx(h);
	if (!x->buf && !(x->buf = malloc(x->v.max_size ? x->v.max_size : 1)))
		ipcl_error(L, "queue \"%s\": cannot allocate a %I-byte receive buffer",
		           h->seg->name, (lua_Integer)x->v.max_size);
	return x->buf;
}

static uint32_t check_priority(lua_State *L, int arg)
{
	if (lua_isnoneornil(L, arg))
		return 0;
	int isint;
	lua_Integer p = lua_tointegerx(L, arg, &isint);
	if (!isint) {
		if (lua_type(L, arg) == LUA_TNUMBER)
			ipcl_argerror(L, arg, "priority must be an integer");
		ipcl_typeerror(L, arg, "integer (priority)");
	}
	if (p < 0 || p > (lua_Integer)IPC_QUEUE_MAX_PRIO)
		ipcl_argerror(L, arg, "priority out of range 0..2147483647");
	return (uint32_t)p;
}

/* q:send(msg [, priority [, timeout_ms]]) -> true, or false when still full.
 * The common call, q:send(msg), reads no optional argument and computes no
 * deadline (none: forever, and the core takes its signal snapshot only if
 * it has to wait). */
static int f_send(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &queue_type);
	queue_extra *x = qx(h);
	size_t len;
	if (lua_type(L, 2) != LUA_TSTRING)
		ipcl_typeerror(L, 2, "string");
	const char *msg = lua_tolstring(L, 2, &len);
	uint32_t prio = 0;
	ipc_deadline dl = {1, 0};
	if (lua_gettop(L) > 2) {
		prio = check_priority(L, 3);
		dl = ipcl_opt_timeout(L, 4);
	}
	if (len > x->v.max_size)
		ipcl_argerror(L, 2,
		              lua_pushfstring(L, "message is %I bytes; this queue takes at most %I",
		                              (lua_Integer)len, (lua_Integer)x->v.max_size));
	ipc_error err;
	int r = ipc_queue_send(&x->v, msg, len, prio, &dl, &err);
	if (r != IPC_OK)
		ipcl_result(L, h, r, &err);
	lua_pushboolean(L, r == IPC_OK);
	return 1;
}

/* q:receive([timeout_ms]) -> msg, priority, or nil on timeout */
static int f_receive(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &queue_type);
	queue_extra *x = qx(h);
	ipc_deadline dl = {1, 0};
	if (lua_gettop(L) > 1)
		dl = ipcl_opt_timeout(L, 2);
	unsigned char *buf = receive_buffer(L, h);
	ipc_error err;
	size_t len;
	uint32_t prio;
	int r = ipc_queue_receive(&x->v, buf, &len, &prio, NULL, &dl, &err);
	if (r != IPC_OK) {
		ipcl_result(L, h, r, &err);
		lua_pushnil(L);
		return 1;
	}
	lua_pushlstring(L, (const char *)buf, len);
	lua_pushinteger(L, (lua_Integer)prio);
	return 2;
}

/* Protected part of with(): [fn, buf, len, prio] -> fn(msg, prio) */
static int with_call(lua_State *L)
{
	const char *buf = lua_touserdata(L, 2);
	size_t len = (size_t)lua_tointeger(L, 3);
	lua_Integer prio = lua_tointeger(L, 4);
	lua_settop(L, 1);
	lua_pushlstring(L, buf, len);
	lua_pushinteger(L, prio);
	lua_call(L, 2, LUA_MULTRET);
	return lua_gettop(L);
}

/* q:with(fn [, timeout_ms]) -> true, fn's results; or false on timeout.
 * The message stays in the queue, in flight, until fn returns; if fn
 * raises it goes back (ahead of later messages of its priority) and the
 * error propagates; if this process dies, another receiver gets it. */
static int f_with(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &queue_type);
	ipcl_checktype(L, 2, LUA_TFUNCTION);
	ipc_deadline dl = ipcl_opt_timeout(L, 3);
	lua_settop(L, 2);
	/* everything that can raise happens before the receive */
	luaL_checkstack(L, 8, NULL);
	lua_pushboolean(L, 1);           /* 3: the first result */
	lua_pushcfunction(L, with_call); /* 4 */
	lua_pushvalue(L, 2);             /* 5: fn */
	/* fn may close the handle: keep the mapping (and the buffer) alive */
	queue_extra *x = qx(h);
	ipc_queue v = x->v;
	unsigned char *buf = receive_buffer(L, h);
	ipc_segment *seg = h->seg;
	ipc_error err;
	ipc_qticket t;
	size_t len;
	uint32_t prio;
	int r = ipc_queue_receive(&v, buf, &len, &prio, &t, &dl, &err);
	ipcl_result(L, h, r, &err);
	if (r != IPC_OK) {
		lua_pushboolean(L, 0);
		return 1;
	}
	seg->refs++;
	x->buf = NULL; /* a nested call or close must not reuse or free it */
	lua_pushlightuserdata(L, buf);
	lua_pushinteger(L, (lua_Integer)len);
	lua_pushinteger(L, (lua_Integer)prio);
	int status = lua_pcall(L, 4, LUA_MULTRET, 0);
	r = status == LUA_OK ? ipc_queue_ack(&v, &t, &err) : ipc_queue_nack(&v, &t, &err);
	if (h->seg == seg && x->buf == NULL)
		x->buf = buf; /* still open, and no nested call took a new buffer */
	else
		free(buf);
	ipc_seg_release(seg);
	if (status != LUA_OK)
		return lua_error(L);
	if (r == IPC_ERR)
		return ipcl_error(L, "queue \"%s\": %s", seg->name, err.msg);
	return lua_gettop(L) - 2;
}

static int f_count(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &queue_type);
	lua_pushinteger(L, (lua_Integer)ipc_queue_count(&qx(h)->v));
	return 1;
}

static int f_max_count(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &queue_type);
	lua_pushinteger(L, (lua_Integer)qx(h)->v.max_count);
	return 1;
}

static int f_max_size(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &queue_type);
	lua_pushinteger(L, (lua_Integer)qx(h)->v.max_size);
	return 1;
}

static int f_clear(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &queue_type);
	ipc_error err;
	int64_t n = ipc_queue_clear(&qx(h)->v, &err);
	if (n < 0)
		return ipcl_raise_obj(L, h, &err);
	lua_pushinteger(L, (lua_Integer)n);
	return 1;
}

static void queue_parse_opts(lua_State *L, int opts, uint64_t *params, const char *fname)
{
	params[0] = (uint64_t)ipcl_opt_int_field(L, opts, "max_count", 100, 1,
	                                         (lua_Integer)IPC_QUEUE_MAX_COUNT, fname);
	params[1] = (uint64_t)ipcl_opt_int_field(L, opts, "max_size", 1024, 0,
	                                         (lua_Integer)IPC_QUEUE_MAX_SIZE, fname);
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
	lua_pushinteger(L, v);
	lua_setfield(L, -2, k);
}

static void queue_push_info(lua_State *L, ipcl_handle *h)
{
	ipc_queue_stats st;
	ipc_error err;
	if (ipc_queue_stat(&qx(h)->v, &st, &err) != IPC_OK)
		ipcl_raise_obj(L, h, &err);
	set_int(L, "count", st.count);
	set_int(L, "max_count", st.max_count);
	set_int(L, "max_size", st.max_size);
	set_int(L, "in_flight", st.in_flight);
	set_int(L, "waiting_receivers", st.recv_waiters);
	set_int(L, "waiting_senders", st.send_waiters);
	set_int(L, "waiters", (lua_Integer)st.recv_waiters + st.send_waiters);
	set_int(L, "wakeups", (lua_Integer)st.wakeups);
	set_int(L, "repairs", (lua_Integer)st.repairs);
	lua_createtable(L, 0, 2); /* rate counters (ipcsh top) */
	set_int(L, "sent", (lua_Integer)st.sent);
	set_int(L, "received", (lua_Integer)st.received);
	lua_setfield(L, -2, "counters");
}

static int queue_on_open(lua_State *L, ipcl_handle *h)
{
	queue_extra *x = qx(h);
	ipc_queue_view(&x->v, h->seg);
	receive_buffer(L, h);
	return 0;
}

static void queue_on_close(ipcl_handle *h)
{
	queue_extra *x = qx(h);
	free(x->buf);
	x->buf = NULL;
}

static const luaL_Reg queue_methods[] = {
    {"send", f_send},           {"receive", f_receive},   {"with", f_with},   {"count", f_count},
    {"max_count", f_max_count}, {"max_size", f_max_size}, {"clear", f_clear}, {NULL, NULL}};

static const char *const queue_options[] = {"max_count", "max_size", NULL};

static const ipcl_type queue_type = {&ipc_queue_ops,   queue_methods,   queue_options,
                                     queue_parse_opts, queue_push_info, sizeof(queue_extra),
                                     queue_on_open,    queue_on_close};

void ipcl_open_queue(lua_State *L)
{
	ipcl_register_type(L, &queue_type);
}
