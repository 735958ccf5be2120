/* Error messages that name the function the user called.
 *
 * luaL_argerror takes the name from the call site's debug information, which
 * has none when the function is reached through pcall(q.send, q, ...), a
 * table of callbacks or a C caller: the message then says '?'.  Every C
 * function of the module is recorded once, at luaopen, under the name the
 * user knows it by ("ipc.queue", "send"), and these helpers use that name. */
#include "object.h"

#include <stdarg.h>
#include <string.h>

#define FNAMES "ipcsh.fnames" /* registry: function -> name (weak keys) */

/* Record every function value of the table at idx under prefix..key. */
static void name_table(lua_State *L, int names, int idx, const char *prefix)
{
	idx = lua_absindex(L, idx);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TFUNCTION) {
			lua_pushvalue(L, -1);
			if (lua_rawget(L, names) == LUA_TNIL) {
				lua_pushvalue(L, -2);
				lua_pushfstring(L, "%s%s", prefix, lua_tostring(L, -4));
				lua_rawset(L, names);
			}
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
}

/* The methods of each of our metatables (registry "ipcsh.*"): handles keep
 * them in __methods_mt.__index, pidfile and process handles in the upvalue
 * of their __index function, guards in an __index table. */
static void name_metatable_methods(lua_State *L, int names, int mt)
{
	if (lua_getfield(L, mt, "__methods_mt") == LUA_TTABLE &&
	    lua_getfield(L, -1, "__index") == LUA_TTABLE) {
		name_table(L, names, -1, "");
		lua_pop(L, 2);
		return;
	}
	lua_settop(L, mt);
	int t = lua_getfield(L, mt, "__index");
	if (t == LUA_TFUNCTION && lua_getupvalue(L, -1, 1)) {
		if (lua_type(L, -1) == LUA_TTABLE)
			name_table(L, names, -1, "");
		lua_pop(L, 1);
	} else if (t == LUA_TTABLE) {
		name_table(L, names, -1, "");
	}
	lua_settop(L, mt);
}

void ipcl_name_functions(lua_State *L, int module)
{
	module = lua_absindex(L, module);
	if (luaL_getsubtable(L, LUA_REGISTRYINDEX, FNAMES) == 0) {
		lua_createtable(L, 0, 1);
		lua_pushliteral(L, "k");
		lua_setfield(L, -2, "__mode");
		lua_setmetatable(L, -2);
	}
	int names = lua_gettop(L);
	name_table(L, names, module, "ipc.");
	lua_pushnil(L);
	while (lua_next(L, LUA_REGISTRYINDEX)) {
		if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TTABLE &&
		    strncmp(lua_tostring(L, -2), "ipcsh.", 6) == 0)
			name_metatable_methods(L, names, lua_gettop(L));
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

const char *ipcl_fname(lua_State *L)
{
	lua_Debug ar;
	const char *name = NULL;
	lua_getfield(L, LUA_REGISTRYINDEX, FNAMES);
	/* level 0 is normally the function itself; a C helper running in a
	 * protected call (kv's incr body) finds its C caller one level up, but
	 * never a function beyond a Lua frame (a user's callback) */
	for (int level = 0; !name && level < 4 && lua_getstack(L, level, &ar); level++) {
		lua_getinfo(L, "Sf", &ar);
		if (lua_type(L, -2) == LUA_TTABLE && lua_rawget(L, -2) == LUA_TSTRING)
			name = lua_tostring(L, -1); /* kept alive by the registry */
		lua_pop(L, 1);
		if (strcmp(ar.what, "C") != 0)
			break;
	}
	lua_pop(L, 1);
	if (!name && lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.name)
		name = ar.name;
	return name ? name : "ipc";
}

/* "ipc.queue" -> "queue": argument errors use the short name, as Lua's own
 * functions do ("bad argument #1 to 'insert'"). */
static const char *short_name(const char *name)
{
	const char *dot = strrchr(name, '.');
	return dot ? dot + 1 : name;
}

static int called_as_method(lua_State *L)
{
	lua_Debug ar;
	return lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.namewhat &&
	       strcmp(ar.namewhat, "method") == 0;
}

int ipcl_argerror(lua_State *L, int arg, const char *extramsg)
{
	const char *name = short_name(ipcl_fname(L));
	if (called_as_method(L)) {
		arg--; /* do not count self */
		if (arg == 0)
			return luaL_error(L, "calling '%s' on bad self (%s)", name, extramsg);
	}
	return luaL_error(L, "bad argument #%d to '%s' (%s)", arg, name, extramsg);
}

static const char *typename_of(lua_State *L, int arg)
{
	if (luaL_getmetafield(L, arg, "__ipc_type") == LUA_TSTRING ||
	    luaL_getmetafield(L, arg, "__name") == LUA_TSTRING)
		return lua_tostring(L, -1);
	if (lua_type(L, arg) == LUA_TLIGHTUSERDATA)
		return "light userdata";
	return luaL_typename(L, arg);
}

int ipcl_typeerror(lua_State *L, int arg, const char *tname)
{
	return ipcl_argerror(L, arg,
	                     lua_pushfstring(L, "%s expected, got %s", tname, typename_of(L, arg)));
}

int ipcl_selferror(lua_State *L, const char *tname)
{
	/* q.send("x") instead of q:send("x"): say how to call it */
	if (!called_as_method(L) && !lua_isuserdata(L, 1)) {
		const char *m = short_name(ipcl_fname(L));
		return ipcl_argerror(L, 1,
		                     lua_pushfstring(L,
		                                     "%s expected, got %s; call it with a "
		                                     "colon: %s:%s(...)",
		                                     tname, typename_of(L, 1),
		                                     strchr(tname, ' ') ? "obj" : tname, m));
	}
	return ipcl_typeerror(L, 1, tname);
}

int ipcl_error(lua_State *L, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	const char *fname = ipcl_fname(L);
	lua_pushvfstring(L, fmt, ap);
	va_end(ap);
	return luaL_error(L, "%s: %s", fname, lua_tostring(L, -1));
}

void ipcl_checktype(lua_State *L, int arg, int t)
{
	if (lua_type(L, arg) != t)
		ipcl_typeerror(L, arg, lua_typename(L, t));
}

void ipcl_checkany(lua_State *L, int arg)
{
	if (lua_type(L, arg) == LUA_TNONE)
		ipcl_argerror(L, arg, "value expected");
}

lua_Integer ipcl_checkinteger(lua_State *L, int arg)
{
	int isint;
	lua_Integer v = lua_tointegerx(L, arg, &isint);
	if (!isint || lua_type(L, arg) != LUA_TNUMBER) {
		if (lua_type(L, arg) == LUA_TNUMBER)
			ipcl_argerror(L, arg, "number has no integer representation");
		else
			ipcl_typeerror(L, arg, "integer");
	}
	return v;
}

lua_Integer ipcl_optinteger(lua_State *L, int arg, lua_Integer def)
{
	return lua_isnoneornil(L, arg) ? def : ipcl_checkinteger(L, arg);
}

const char *ipcl_checklstring(lua_State *L, int arg, size_t *len)
{
	if (lua_type(L, arg) != LUA_TSTRING)
		ipcl_typeerror(L, arg, "string");
	return lua_tolstring(L, arg, len);
}
