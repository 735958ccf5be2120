/* libFuzzer harness for the Lua side (src/lua/l_codec.c): ipcl_decode on
 * every input inside a protected call; when it succeeds, ipcl_encode of the
 * result must give back the input exactly (unless the value has table keys,
 * whose order is the encoder's traversal order).  See fuzz/README.md. */
#include "../src/lua/codec.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

static int has_table_keys(lua_State *L, int t)
{
	int found = 0;
	lua_pushnil(L);
	while (!found && lua_next(L, t)) {
		if (lua_type(L, -2) == LUA_TTABLE ||
		    (lua_type(L, -1) == LUA_TTABLE && has_table_keys(L, lua_gettop(L))))
			found = 1;
		lua_pop(L, 1);
	}
	if (found)
		lua_pop(L, 1);
	return found;
}

static int roundtrip(lua_State *L)
{
	size_t len, elen;
	const char *s = lua_tolstring(L, 1, &len);
	ipcl_decode(L, s, len); /* 2: the value */
	ipcl_encode(L, 2);      /* 3: its encoding */
	const char *e = lua_tolstring(L, 3, &elen);
	if ((elen != len || memcmp(e, s, len) != 0) &&
	    !(lua_type(L, 2) == LUA_TTABLE && has_table_keys(L, 2)))
		abort(); /* accepted input that is not canonical */
	return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static lua_State *L;
	if (!L)
		L = luaL_newstate();
	lua_pushcfunction(L, roundtrip);
	lua_pushlstring(L, (const char *)data, size);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		const char *msg = lua_tostring(L, -1);
		if (!msg || strncmp(msg, "ipc.decode: ", 12) != 0)
			abort(); /* every decode error is ours and says so */
		lua_pop(L, 1);
	}
	if (lua_gettop(L) != 0)
		abort();
	return 0;
}
