/* Each binding file adds its functions to the module table on the top of
 * the stack. */
#ifndef IPCL_MODULES_H
#define IPCL_MODULES_H

#include <lua.h>

int luaopen_interprocess(lua_State *L);

void ipcl_open_object(lua_State *L);    /* list, remove, open, type, uid, hash */
void ipcl_open_shm(lua_State *L);       /* ipc.shm */
void ipcl_open_mutex(lua_State *L);     /* ipc.mutex */
void ipcl_open_semaphore(lua_State *L); /* ipc.semaphore */
void ipcl_open_queue(lua_State *L);     /* ipc.queue */
void ipcl_open_condition(lua_State *L); /* ipc.condition */
void ipcl_open_event(lua_State *L);     /* ipc.event */
void ipcl_open_barrier(lua_State *L);   /* ipc.barrier */
void ipcl_open_kv(lua_State *L);        /* ipc.kv */
void ipcl_open_codec(lua_State *L);     /* ipc.encode, ipc.decode */
void ipcl_open_pidfile(lua_State *L);   /* ipc.pidfile */
void ipcl_open_proc(lua_State *L);      /* fork, spawn, pid, sleep, clock */
void ipcl_open_net(lua_State *L);       /* ipc.connect (PostgreSQL) */
void ipcl_open_select(lua_State *L);    /* ipc.select */

/* The Lua sources from lua/, embedded at build time (build/embedded.c). */
typedef struct ipcl_embedded {
	const char *module; /* "interprocess.cli" */
	const char *chunkname;
	const unsigned char *data;
	unsigned long size;
} ipcl_embedded;
extern const ipcl_embedded ipcl_embedded_files[];

#endif
