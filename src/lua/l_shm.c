/* ipc.shm: raw shared memory.  Offsets are 0-based byte offsets. */
#include "../core/shm.h"
#include "codec.h"
#include "modules.h"
#include "object.h"

#include <string.h>

static const ipcl_type shm_type;

static uint64_t shm_size(ipcl_handle *h)
{
	return h->seg->hdr->params[0];
}

static uint64_t check_range(lua_State *L, ipcl_handle *h, int arg, lua_Integer off, lua_Integer len)
{
	uint64_t size = shm_size(h);
	if (len < 0 || !ipc_shm_range_ok(size, off, (uint64_t)len))
		ipcl_argerror(L, arg,
		              lua_pushfstring(L, "range %I+%I is outside the object (size %I)", off,
		                              len, (lua_Integer)size));
	return (uint64_t)off;
}

static int f_size(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &shm_type);
	lua_pushinteger(L, (lua_Integer)shm_size(h));
	return 1;
}

static int f_read(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &shm_type);
	lua_Integer off = ipcl_optinteger(L, 2, 0);
	lua_Integer size = (lua_Integer)shm_size(h);
	lua_Integer len = ipcl_optinteger(L, 3, off >= 0 && off <= size ? size - off : 0);
	check_range(L, h, lua_isnoneornil(L, 3) ? 2 : 3, off, len);
	lua_pushlstring(L, (const char *)h->seg->body + off, (size_t)len);
	return 1;
}

static int f_write(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &shm_type);
	lua_Integer off = ipcl_checkinteger(L, 2);
	size_t len;
	const char *s = ipcl_checklstring(L, 3, &len);
	check_range(L, h, 3, off, (lua_Integer)len);
	memcpy((char *)h->seg->body + off, s, len);
	lua_pushboolean(L, 1);
	return 1;
}

/* s:pack(offset, fmt, ...) -> next offset */
static int f_pack(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &shm_type);
	lua_Integer off = ipcl_checkinteger(L, 2);
	ipcl_checkstring(L, 3);
	int n = lua_gettop(L);
	lua_getglobal(L, "string");
	lua_getfield(L, -1, "pack");
	for (int i = 3; i <= n; i++)
		lua_pushvalue(L, i);
	lua_call(L, n - 2, 1);
	size_t len;
	const char *s = lua_tolstring(L, -1, &len);
	check_range(L, h, 3, off, (lua_Integer)len);
	memcpy((char *)h->seg->body + off, s, len);
	lua_pushinteger(L, off + (lua_Integer)len);
	return 1;
}

static int packsize(lua_State *L)
{
	lua_getglobal(L, "string");
	lua_getfield(L, -1, "packsize");
	lua_pushvalue(L, 1);
	lua_call(L, 1, 1);
	return 1;
}

/* s:unpack(fmt [, offset]) -> values..., next offset */
static int f_unpack(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &shm_type);
	ipcl_checkstring(L, 2);
	lua_Integer off = ipcl_optinteger(L, 3, 0);
	lua_Integer size = (lua_Integer)shm_size(h);
	if (off < 0 || off > size)
		ipcl_argerror(
		    L, 3,
		    lua_pushfstring(L, "offset %I is outside the object (size %I)", off, size));
	/* Fixed-size formats read exactly their size; variable ones ('s', 'z')
	 * see the rest of the object. */
	lua_Integer len = size - off;
	lua_pushcfunction(L, packsize);
	lua_pushvalue(L, 2);
	if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
		lua_Integer need = lua_tointeger(L, -1);
		check_range(L, h, 3, off, need);
		len = need;
	}
	lua_pop(L, 1);
	int base = lua_gettop(L);
	lua_getglobal(L, "string");
	lua_getfield(L, -1, "unpack");
	lua_pushvalue(L, 2);
	lua_pushlstring(L, (const char *)h->seg->body + off, (size_t)len);
	lua_call(L, 2, LUA_MULTRET);
	int nres = lua_gettop(L) - base - 1;
	/* last result is string.unpack's 1-based position: make it an offset */
	lua_Integer pos = lua_tointeger(L, -1);
	lua_pop(L, 1);
	lua_pushinteger(L, off + pos - 1);
	return nres;
}

static lua_Integer aligned_offset(lua_State *L, ipcl_handle *h)
{
	lua_Integer off = ipcl_checkinteger(L, 2);
	if (off % 8 != 0)
		ipcl_argerror(L, 2, "offset must be a multiple of 8");
	check_range(L, h, 2, off, 8);
	return off;
}

static int f_add(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &shm_type);
	lua_Integer off = aligned_offset(L, h);
	lua_Integer delta = luaL_checkinteger(L, 3);
	int64_t v;
	if (ipc_shm_add(h->seg->body, (uint64_t)off, delta, &v) != 0)
		return luaL_argerror(
		    L, 3,
		    lua_pushfstring(L,
		                    "overflow: %I + %I is outside the 64-bit integer "
		                    "range (value left unchanged)",
		                    (lua_Integer)v, delta));
	lua_pushinteger(L, v);
	return 1;
}

static int f_cas(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &shm_type);
	lua_Integer off = aligned_offset(L, h);
	lua_Integer expected = luaL_checkinteger(L, 3);
	lua_Integer desired = luaL_checkinteger(L, 4);
	lua_pushboolean(L, ipc_shm_cas(h->seg->body, (uint64_t)off, expected, desired));
	return 1;
}

/* store/load: [8-byte length][encoded value] at offset 0. */
static int f_store(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &shm_type);
	ipcl_checkany(L, 2);
	ipcl_encode(L, 2);
	size_t len;
	const char *s = lua_tolstring(L, -1, &len);
	uint64_t size = shm_size(h);
	if (size < 8 || len > size - 8)
		return luaL_error(L,
		                  "bad argument #1 to 'store' (encoded value is %I bytes; the "
		                  "object holds at most %I)",
		                  (lua_Integer)len, (lua_Integer)(size < 8 ? 0 : size - 8));
	uint64_t n = len;
	memcpy((char *)h->seg->body + 8, s, len);
	memcpy(h->seg->body, &n, 8);
	lua_pushboolean(L, 1);
	return 1;
}

static int f_load(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &shm_type);
	uint64_t size = shm_size(h), n;
	if (size < 8)
		return ipcl_error(L, "shm \"%s\" is too small to hold a stored value",
		                  h->seg->name);
	memcpy(&n, h->seg->body, 8);
	if (n == 0) {
		lua_pushnil(L);
		return 1;
	}
	if (n > size - 8)
		return ipcl_error(L, "shm \"%s\": no valid stored value (length %I)", h->seg->name,
		                  (lua_Integer)n);
	ipcl_decode(L, (const char *)h->seg->body + 8, (size_t)n);
	return 1;
}

static void shm_parse_opts(lua_State *L, int opts, uint64_t *params, const char *fname)
{
	params[0] =
	    (uint64_t)ipcl_opt_int_field(L, opts, "size", 0, 0, (lua_Integer)IPC_BODY_MAX, fname);
}

static void shm_push_info(lua_State *L, ipcl_handle *h)
{
	lua_pushinteger(L, (lua_Integer)shm_size(h));
	lua_setfield(L, -2, "size");
}

static int shm_on_open(lua_State *L, ipcl_handle *h)
{
	(void)L, (void)h;
	return 0;
}

static const luaL_Reg shm_methods[] = {
    {"size", f_size}, {"read", f_read}, {"write", f_write}, {"pack", f_pack}, {"unpack", f_unpack},
    {"add", f_add},   {"cas", f_cas},   {"store", f_store}, {"load", f_load}, {NULL, NULL}};

static const char *const shm_options[] = {"size", NULL};

static const ipcl_type shm_type = {&ipc_shm_ops,  shm_methods, shm_options, shm_parse_opts,
                                   shm_push_info, 0,           shm_on_open, NULL};

void ipcl_open_shm(lua_State *L)
{
	ipcl_register_type(L, &shm_type);
}
