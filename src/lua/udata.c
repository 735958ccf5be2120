/* The userdata that are not named objects (pidfile, process handles,
 * connections): the same header and checks as named handles (object.h),
 * a metatable per type in the registry. */
#include "object.h"

#include <stdlib.h>
#include <string.h>

void ipcl_check_udata_fail(lua_State *L, int idx, const ipcl_udata_type *t)
{
	if (idx == 1)
		ipcl_selferror(L, t->name);
	ipcl_typeerror(L, idx, t->name);
	abort(); /* not reached */
}

void *ipcl_new_udata(lua_State *L, const ipcl_udata_type *t, int nuv)
{
	size_t size = sizeof(ipcl_handle) + t->base.extra;
	ipcl_handle *h = lua_newuserdatauv(L, size, nuv);
	memset(h, 0, size);
	h->magic = IPCL_UDATA_MAGIC;
	h->type = &t->base;
	lua_pushfstring(L, "ipcsh.%s", t->name);
	lua_rawget(L, LUA_REGISTRYINDEX);
	lua_setmetatable(L, -2);
	return h->extra;
}

/* __index with fields: the type's field hook, then the methods (upvalue 1). */
static int udata_index(lua_State *L)
{
	const ipcl_udata_type *t = lua_touserdata(L, lua_upvalueindex(2));
	void *obj = ipcl_test_udata(L, 1, t);
	if (obj && lua_type(L, 2) == LUA_TSTRING && t->field(L, obj, lua_tostring(L, 2)))
		return 1;
	lua_pushvalue(L, 2);
	lua_rawget(L, lua_upvalueindex(1));
	return 1;
}

void ipcl_register_udata(lua_State *L, const ipcl_udata_type *t)
{
	lua_pushfstring(L, "ipcsh.%s", t->name);
	luaL_newmetatable(L, lua_tostring(L, -1));
	/* rebuilt on every load (luaopen must be idempotent) */
	lua_pushstring(L, t->name);
	lua_setfield(L, -2, "__name");
	if (t->meta)
		luaL_setfuncs(L, t->meta, 0);
	lua_createtable(L, 0, 8);
	if (t->base.methods)
		luaL_setfuncs(L, t->base.methods, 0);
	if (t->field) {
		lua_pushlightuserdata(L, (void *)t);
		lua_pushcclosure(L, udata_index, 2);
	}
	lua_setfield(L, -2, "__index");
	lua_pop(L, 2);
}
