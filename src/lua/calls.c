/* The calling conventions every binding shares (object.h): errors that
 * name the object, the timeout argument, the blocking-call helper and
 * option fields. */
#include "object.h"

#include "../core/signals.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int ipcl_raise(lua_State *L, const ipc_error *err)
{
	return ipcl_error(L, "%s", err->msg);
}

int ipcl_raise_obj(lua_State *L, ipcl_handle *h, const ipc_error *err)
{
	if (!h->seg)
		return ipcl_error(L, "%s: %s", h->type->ops->name, err->msg);
	return ipcl_error(L, "%s \"%s\": %s", h->type->ops->name, h->seg->name, err->msg);
}

void ipcl_check_fail(lua_State *L, int idx, const ipcl_type *t)
{
	ipcl_handle *h = ipcl_test(L, idx);
	if (!h || h->type != t) {
		if (idx == 1)
			ipcl_selferror(L, t->ops->name);
		ipcl_typeerror(L, idx, t->ops->name);
	}
	if (!h->seg) {
		lua_getfield(L, idx, "name");
		ipcl_error(L, "attempt to use a closed %s \"%s\"", t->ops->name,
		           lua_tostring(L, -1));
	}
	abort(); /* not reached: every branch above raises */
}

ipc_deadline ipcl_opt_timeout(lua_State *L, int idx)
{
	return ipc_deadline_in(ipcl_timeout_arg_slow(L, idx));
}

lua_Number ipcl_timeout_arg_slow(lua_State *L, int idx)
{
	if (lua_isnoneornil(L, idx))
		return -1;
	if (lua_type(L, idx) != LUA_TNUMBER)
		ipcl_typeerror(L, idx, "number (timeout in milliseconds)");
	lua_Number ms = lua_tonumber(L, idx);
	if (isnan(ms) || ms < 0)
		ipcl_argerror(L, idx, "timeout must be a non-negative number of milliseconds");
	return isinf(ms) ? -1 : ms;
}

int ipcl_block(lua_State *L, ipcl_handle *h, lua_Number ms, ipcl_block_fn fn, void *ctx)
{
	unsigned snap = ipc_signal_count();
	ipc_deadline dl = ipc_deadline_in(ms); /* ms < 0: forever */
	ipc_error err;
	int r = fn(h, &dl, snap, ctx, &err);
	return ipcl_result(L, h, r, &err);
}

int ipcl_result(lua_State *L, ipcl_handle *h, int r, const ipc_error *err)
{
	if (r == IPC_ERR)
		return ipcl_raise_obj(L, h, err);
	ipcl_check_interrupt(L, r);
	return r == IPC_OK;
}

void ipcl_check_interrupt(lua_State *L, int r)
{
	if (r == IPC_INTERRUPTED)
		ipcl_error(L, "interrupted");
}

/* Lua has no octal literals: mode = 0644 is decimal 644. */
#define MODE_HINT                                                                                  \
	"; mode is a number of permission bits: write tonumber(\"644\", 8) or 420, not "           \
	"\"0644\" or 0644"

lua_Integer ipcl_opt_int_field(lua_State *L, int opts, const char *key, lua_Integer def,
                               lua_Integer min, lua_Integer max, const char *fname)
{
	if (!opts)
		return def;
	int t = lua_getfield(L, opts, key);
	lua_Integer v = def;
	if (t != LUA_TNIL) {
		int isint = 0;
		v = lua_tointegerx(L, -1, &isint);
		/* "5" is not silently 5, nor 5.5 silently 5 */
		if (t != LUA_TNUMBER || !isint)
			luaL_error(L, "bad option '%s' to '%s' (integer expected, got %s%s)", key,
			           fname, t == LUA_TNUMBER ? "a fraction" : luaL_typename(L, -1),
			           strcmp(key, "mode") == 0 ? MODE_HINT : "");
		if (v < min || v > max)
			luaL_error(L, "bad option '%s' to '%s' (%I out of range %I..%I%s)", key,
			           fname, v, min, max, strcmp(key, "mode") == 0 ? MODE_HINT : "");
	}
	lua_pop(L, 1);
	return v;
}

int ipcl_opt_bool_field(lua_State *L, int opts, const char *key, int def, const char *fname)
{
	if (!opts)
		return def;
	int t = lua_getfield(L, opts, key);
	int v = def;
	if (t == LUA_TBOOLEAN)
		v = lua_toboolean(L, -1);
	else if (t != LUA_TNIL)
		luaL_error(L, "bad option '%s' to '%s' (boolean expected, got %s)", key, fname,
		           luaL_typename(L, -1));
	lua_pop(L, 1);
	return v;
}
