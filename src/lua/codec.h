/* The value codec (ipc.encode / ipc.decode) for other bindings (kv, shm). */
#ifndef IPCL_CODEC_H
#define IPCL_CODEC_H

#include <lua.h>
#include <stddef.h>

/* Push the encoding of the value at idx as a string; raises a Lua error
 * for values that cannot be encoded. */
void ipcl_encode(lua_State *L, int idx);
/* Push the value decoded from s; raises a Lua error on bad input. */
void ipcl_decode(lua_State *L, const char *s, size_t len);

#endif
