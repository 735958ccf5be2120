/* ipc.semaphore: a counter; opts.value, opts.max, opts.undo. */
#include "../core/semaphore.h"
#include "modules.h"
#include "object.h"

static const ipcl_type sem_type;

static int s_post(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &sem_type);
	lua_Integer n = 1;
	if (lua_gettop(L) >= 2) {
		n = ipcl_optinteger(L, 2, 1);
		if (n < 1)
			return ipcl_argerror(L, 2, "count must be >= 1");
	}
	if (n != 1 || !ipc_sem_post1_fast(h->seg)) {
		ipc_error err;
		if (ipc_sem_post(h->seg, n, &err) != IPC_OK)
			return ipcl_raise_obj(L, h, &err);
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int sem_block(ipcl_handle *h, const ipc_deadline *dl, unsigned sigsnap, void *ctx,
                     ipc_error *err)
{
	(void)ctx;
	return ipc_sem_wait(h->seg, dl, sigsnap, err);
}

/* Wait (timeout argument at tidx); 1 taken, 0 timed out.  Inline: it is
 * s:wait's hot path. */
static inline int do_wait(lua_State *L, ipcl_handle *h, int tidx)
{
	lua_Number ms = ipcl_timeout_arg(L, tidx);
	return ipc_sem_trywait_fast(h->seg) || ipcl_block(L, h, ms, sem_block, NULL);
}

static int s_wait(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &sem_type);
	lua_pushboolean(L, do_wait(L, h, 2));
	return 1;
}

static int s_value(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &sem_type);
	lua_pushinteger(L, ipc_sem_value(h->seg));
	return 1;
}

/* s:with(fn [, timeout]) -> true, fn()... | false; posts back even on error */
static int s_with(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &sem_type);
	ipcl_checktype(L, 2, LUA_TFUNCTION);
	lua_settop(L, 3);
	int ok = do_wait(L, h, 3);
	lua_pushboolean(L, ok);
	if (!ok)
		return 1;
	int base = lua_gettop(L) - 1;
	lua_pushvalue(L, 2);
	int status = lua_pcall(L, 0, LUA_MULTRET, 0);
	if (h->seg) {
		ipc_error err;
		if (ipc_sem_post(h->seg, 1, &err) != IPC_OK && status == LUA_OK)
			return ipcl_raise_obj(L, h, &err);
	}
	if (status != LUA_OK)
		return lua_error(L);
	return lua_gettop(L) - base;
}

static void sem_parse_opts(lua_State *L, int opts, uint64_t *params, const char *fname)
{
	lua_Integer max = ipcl_opt_int_field(L, opts, "max", IPC_SEM_MAX, 1, IPC_SEM_MAX, fname);
	params[0] = (uint64_t)ipcl_opt_int_field(L, opts, "value", 0, 0, IPC_SEM_MAX, fname);
	params[1] = (uint64_t)max;
	params[2] = (uint64_t)ipcl_opt_bool_field(L, opts, "undo", 0, fname);
	if (params[0] > params[1])
		luaL_error(L, "bad option 'value' to '%s' (%I exceeds max %I)", fname,
		           (lua_Integer)params[0], max);
}

static void sem_push_info(lua_State *L, ipcl_handle *h)
{
	ipc_sem_body *b = h->seg->body;
	lua_pushinteger(L, ipc_sem_value(h->seg));
	lua_setfield(L, -2, "value");
	if (b->max != IPC_SEM_MAX) {
		lua_pushinteger(L, b->max);
		lua_setfield(L, -2, "max");
	}
	lua_pushboolean(L, b->undo != 0);
	lua_setfield(L, -2, "undo");
	lua_pushinteger(L, ipc_sem_waiters(h->seg));
	lua_setfield(L, -2, "waiters");
	lua_createtable(L, 0, 2); /* rate counters (ipcsh top) */
	lua_pushinteger(L, (lua_Integer)__atomic_load_n(&b->n_posted, __ATOMIC_RELAXED));
	lua_setfield(L, -2, "posted");
	lua_pushinteger(L, (lua_Integer)__atomic_load_n(&b->n_taken, __ATOMIC_RELAXED));
	lua_setfield(L, -2, "taken");
	lua_setfield(L, -2, "counters");
}

static const luaL_Reg sem_methods[] = {
    {"post", s_post}, {"wait", s_wait}, {"value", s_value}, {"with", s_with}, {NULL, NULL}};

static const char *const sem_options[] = {"value", "max", "undo", NULL};

static const ipcl_type sem_type = {&ipc_semaphore_ops, sem_methods, sem_options, sem_parse_opts,
                                   sem_push_info,      0,           NULL,        NULL};

void ipcl_open_semaphore(lua_State *L)
{
	ipcl_register_type(L, &sem_type);
}
