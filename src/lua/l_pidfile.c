/* ipc.pidfile(path): one instance at a time.  Ownership is an OFD lock held
 * through an open fd (see src/core/pidfile.h), so it ends with the owner. */
#include "../core/pidfile.h"
#include "modules.h"
#include "object.h"

#include <string.h>

static const ipcl_udata_type pidfile_type;

static ipc_pidfile *check_pidfile(lua_State *L)
{
	ipc_pidfile *p = ipcl_check_udata(L, 1, &pidfile_type);
	if (!p->path)
		ipcl_error(L, "attempt to use a closed pidfile");
	return p;
}

/* p:create() -> true | false, pid */
static int f_create(lua_State *L)
{
	ipc_pidfile *p = check_pidfile(L);
	int32_t owner;
	ipc_error err;
	int r = ipc_pidfile_create(p, &owner, &err);
	if (r == IPC_ERR)
		return ipcl_raise(L, &err);
	lua_pushboolean(L, r == IPC_OK);
	if (r == IPC_OK)
		return 1;
	if (owner > 0)
		lua_pushinteger(L, owner);
	else
		lua_pushnil(L);
	return 2;
}

/* p:read() -> pid of the live owner, or nil */
static int f_read(lua_State *L)
{
	ipc_pidfile *p = check_pidfile(L);
	int32_t owner;
	ipc_error err;
	if (ipc_pidfile_read(p, &owner, &err) != IPC_OK)
		return ipcl_raise(L, &err);
	if (owner > 0)
		lua_pushinteger(L, owner);
	else
		lua_pushnil(L);
	return 1;
}

static int f_is_owner(lua_State *L)
{
	ipc_pidfile *p = check_pidfile(L);
	lua_pushboolean(L, ipc_pidfile_is_owner(p));
	return 1;
}

/* p:remove() -> true when this handle owned the file (it is unlinked and
 * released now), false otherwise (the file is left alone). */
static int f_remove(lua_State *L)
{
	ipc_pidfile *p = check_pidfile(L);
	lua_pushboolean(L, ipc_pidfile_remove(p));
	return 1;
}

/* __close: the scope that owned the file ends; give it up. */
static int f_close(lua_State *L)
{
	ipc_pidfile *p = ipcl_check_udata(L, 1, &pidfile_type);
	if (p->path)
		ipc_pidfile_remove(p);
	return 0;
}

/* __gc: a handle collected while owning keeps the ownership until the
 * process exits (a forgotten handle must not let a second instance in). */
static int f_gc(lua_State *L)
{
	ipc_pidfile *p = ipcl_check_udata(L, 1, &pidfile_type);
	ipc_pidfile_abandon(p);
	return 0;
}

static int f_tostring(lua_State *L)
{
	ipc_pidfile *p = ipcl_check_udata(L, 1, &pidfile_type);
	lua_pushfstring(L, "pidfile \"%s\"%s", p->path ? p->path : "?", p->path ? "" : " (closed)");
	return 1;
}

/* p.path */
static int f_field(lua_State *L, void *obj, const char *key)
{
	ipc_pidfile *p = obj;
	if (strcmp(key, "path") != 0)
		return 0;
	if (p->path)
		lua_pushstring(L, p->path);
	else
		lua_pushnil(L);
	return 1;
}

/* ipc.pidfile(path) */
static int l_pidfile(lua_State *L)
{
	if (lua_type(L, 1) != LUA_TSTRING)
		return ipcl_typeerror(L, 1, "string (path)");
	size_t len;
	const char *path = lua_tolstring(L, 1, &len);
	if (len == 0 || strlen(path) != len)
		return ipcl_argerror(L, 1, "path must be a non-empty string without zero bytes");
	ipc_pidfile *p = ipcl_new_udata(L, &pidfile_type, 0); /* closed: no path */
	p->fd = -1;
	ipc_error err;
	if (ipc_pidfile_init(p, path, &err) != IPC_OK)
		return ipcl_raise(L, &err);
	return 1;
}

static const luaL_Reg pidfile_methods[] = {{"create", f_create},
                                           {"read", f_read},
                                           {"is_owner", f_is_owner},
                                           {"remove", f_remove},
                                           {NULL, NULL}};
static const luaL_Reg pidfile_meta[] = {
    {"__gc", f_gc}, {"__close", f_close}, {"__tostring", f_tostring}, {NULL, NULL}};

static const ipcl_udata_type pidfile_type = {
    {NULL, pidfile_methods, NULL, NULL, NULL, sizeof(ipc_pidfile), NULL, NULL},
    "pidfile",
    pidfile_meta,
    f_field};

void ipcl_open_pidfile(lua_State *L)
{
	ipcl_register_udata(L, &pidfile_type);
	lua_pushcfunction(L, l_pidfile);
	lua_setfield(L, -2, "pidfile");
}
