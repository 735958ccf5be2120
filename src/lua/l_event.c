/* ipc.event: a set/clear flag processes wait on (manual or auto reset). */
#include "../core/event.h"
#include "../core/signals.h"
#include "modules.h"
#include "object.h"

static const ipcl_type event_type;

static int f_set(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &event_type);
	ipc_error err;
	int r = ipc_event_set(h->seg, ipc_signal_count(), &err);
	if (r == IPC_ERR)
		return ipcl_raise_obj(L, h, &err);
	ipcl_check_interrupt(L, r);
	lua_pushboolean(L, 1);
	return 1;
}

static int f_clear(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &event_type);
	ipc_event_clear(h->seg);
	lua_pushboolean(L, 1);
	return 1;
}

static int f_is_set(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &event_type);
	lua_pushboolean(L, ipc_event_is_set(h->seg));
	return 1;
}

static int event_block(ipcl_handle *h, const ipc_deadline *dl, unsigned sigsnap, void *ctx,
                       ipc_error *err)
{
	(void)ctx;
	return ipc_event_wait(h->seg, dl, sigsnap, err);
}

/* e:wait([timeout_ms]) -> true | false */
static int f_wait(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &event_type);
	lua_Number ms = ipcl_timeout_arg(L, 2);
	lua_pushboolean(L, ipcl_block(L, h, ms, event_block, NULL));
	return 1;
}

static void event_parse_opts(lua_State *L, int opts, uint64_t *params, const char *fname)
{
	params[0] = (uint64_t)ipcl_opt_bool_field(L, opts, "auto_reset", 0, fname);
	params[1] = (uint64_t)ipcl_opt_bool_field(L, opts, "set", 0, fname);
}

static void event_push_info(lua_State *L, ipcl_handle *h)
{
	ipc_event_state st;
	ipc_error err;
	if (ipc_event_info(h->seg, &st, &err) != IPC_OK) {
		ipcl_raise_obj(L, h, &err);
		return;
	}
	lua_pushstring(L, st.is_set ? "set" : "clear");
	lua_setfield(L, -2, "state");
	lua_pushboolean(L, st.auto_reset);
	lua_setfield(L, -2, "auto_reset");
	lua_pushinteger(L, st.waiters);
	lua_setfield(L, -2, "waiters");
	lua_createtable(L, st.waiters, 0);
	for (int i = 0; i < st.waiters; i++) {
		lua_pushinteger(L, st.pids[i]);
		lua_rawseti(L, -2, i + 1);
	}
	lua_setfield(L, -2, "waiter_pids");
	lua_createtable(L, 0, 1); /* rate counters (ipcsh top) */
	lua_pushinteger(L, (lua_Integer)st.sets);
	lua_setfield(L, -2, "sets");
	lua_setfield(L, -2, "counters");
}

static const luaL_Reg event_methods[] = {
    {"set", f_set}, {"clear", f_clear}, {"is_set", f_is_set}, {"wait", f_wait}, {NULL, NULL}};

static const char *const event_options[] = {"auto_reset", "set", NULL};

static const ipcl_type event_type = {
    &ipc_event_ops, event_methods, event_options, event_parse_opts, event_push_info, 0, NULL, NULL};

void ipcl_open_event(lua_State *L)
{
	ipcl_register_type(L, &event_type);
}
