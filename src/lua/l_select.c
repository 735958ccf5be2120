/* ipc.select(list [, timeout_ms]): the first of several objects that can
 * complete its wait.  The waiting is in src/core/select.c; the operation
 * itself is each type's own method with a zero timeout, so its results and
 * errors are exactly those of q:receive, s:wait, e:wait and m:lock. */
#include "../core/event.h"
#include "../core/mutex.h"
#include "../core/select.h"
#include "../core/signals.h"
#include "modules.h"
#include "object.h"

#include <lauxlib.h>
#include <string.h>

/* Where the next select starts trying: after the object served last, so
 * that no ready object is starved by one earlier in the list. */
static unsigned next_start;

static _Noreturn void bad_entry(lua_State *L, lua_Integer i, const char *what)
{
	luaL_error(L, "bad argument #1 to 'select' (entry %d %s)", (int)i, what);
	for (;;) /* luaL_error does not return */
		;
}

/* Check entry i of the list (on the top of the stack); its handle. */
static ipcl_handle *check_entry(lua_State *L, lua_Integer i)
{
	ipcl_handle *h = ipcl_test(L, -1);
	if (!h) {
		if (luaL_getmetafield(L, -1, "__name") == LUA_TSTRING &&
		    strncmp(lua_tostring(L, -1), "ipcsh.net.", 10) == 0)
			luaL_error(L,
			           "select: remote objects are not supported (entry %d is a "
			           "remote %s; see docs/distributed.md)",
			           (int)i, lua_tostring(L, -1) + 10);
		bad_entry(L, i,
		          lua_pushfstring(L, "is a %s, not a queue, semaphore, event or mutex",
		                          luaL_typename(L, -1)));
	}
	const char *tname = h->type->ops->name;
	if (!h->seg)
		bad_entry(L, i, lua_pushfstring(L, "is a closed %s", tname));
	uint32_t id = h->type->ops->id;
	if (id != IPC_T_QUEUE && id != IPC_T_SEMAPHORE && id != IPC_T_EVENT && id != IPC_T_MUTEX)
		bad_entry(L, i,
		          lua_pushfstring(L,
		                          "is a %s: select takes queues, semaphores, events "
		                          "and mutexes",
		                          tname));
	if (id == IPC_T_MUTEX && ipc_mutex_held(h->seg) != IPC_HELD_NONE)
		bad_entry(L, i,
		          lua_pushfstring(L, "is mutex \"%s\", already held by this process",
		                          h->seg->name));
	return h;
}

/* Try entry k's own operation with a zero timeout.  On success the
 * results are left on the stack after the object; returns their count
 * (object included), or 0 with the stack as it was. */
static int try_one(lua_State *L, ipc_sel_item *it, int k)
{
	int top = lua_gettop(L);
	if (it->type == IPC_T_EVENT && !ipc_event_sel_passed(it->seg, it->ev0))
		return 0;
	if (it->type == IPC_T_EVENT && (it->seg->hdr->params[0] == 0)) {
		/* manual reset: passing takes nothing (a pulse since the start counts) */
		lua_rawgeti(L, 1, k + 1);
		lua_pushboolean(L, 1);
		return 2;
	}
	const char *op = it->type == IPC_T_QUEUE   ? "receive"
	                 : it->type == IPC_T_MUTEX ? "lock"
	                                           : "wait";
	lua_rawgeti(L, 1, k + 1);
	lua_getfield(L, -1, op);
	lua_pushvalue(L, -2);
	lua_pushinteger(L, 0);
	lua_call(L, 2, LUA_MULTRET);
	if (!lua_toboolean(L, top + 2)) {
		lua_settop(L, top);
		return 0;
	}
	return lua_gettop(L) - top;
}

/* ipc.select(list [, timeout_ms]) -> obj, results... | nil */
static int f_select(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	ipc_deadline dl = ipcl_opt_timeout(L, 2);
	lua_settop(L, 2);
	lua_Integer n = (lua_Integer)lua_rawlen(L, 1); /* raw: no user code runs */
	if (n < 1)
		return luaL_error(L, "bad argument #1 to 'select' (empty list)");
	if (n > IPC_SELECT_MAX)
		return luaL_error(L, "bad argument #1 to 'select' (%d objects, at most %d)", (int)n,
		                  IPC_SELECT_MAX);
	ipc_sel_item *items = lua_newuserdatauv(L, sizeof(ipc_sel_item) * (size_t)n, 0); /* 3 */
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, 1, i);
		ipcl_handle *h = check_entry(L, i);
		for (lua_Integer j = 0; j < i - 1; j++)
			if (items[j].seg == h->seg)
				bad_entry(L, i,
				          lua_pushfstring(L, "is the same object as entry %d",
				                          (int)j + 1));
		ipc_error err;
		if (ipc_select_item(&items[i - 1], h->seg, &err) != IPC_OK)
			return ipcl_raise(L, &err);
		lua_pop(L, 1);
	}
	unsigned snap = ipc_signal_count();
	for (;;) {
		unsigned start = next_start % (unsigned)n;
		for (lua_Integer t = 0; t < n; t++) {
			int k = (int)((start + (unsigned)t) % (unsigned)n);
			int nres = try_one(L, &items[k], k);
			if (nres) {
				next_start = (unsigned)k + 1;
				return nres;
			}
		}
		if (ipc_deadline_left(&dl) <= 0) {
			lua_pushnil(L);
			return 1;
		}
		ipc_error err;
		int r = ipc_select_arm(items, (int)n, &err);
		if (r == IPC_ERR)
			return luaL_error(L, "select: %s", err.msg);
		if (r == 1)
			continue;
		r = ipc_select_sleep(items, (int)n, &dl, snap);
		ipc_select_disarm(items, (int)n);
		ipcl_check_interrupt(L, r);
	}
}

void ipcl_open_select(lua_State *L)
{
	lua_pushcfunction(L, f_select);
	lua_setfield(L, -2, "select");
}
