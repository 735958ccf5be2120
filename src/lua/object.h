/* The Lua side of named objects: one handle userdata per ipc.TYPE() call,
 * sharing the process's single mapping of the object (ipc_segment). */
#ifndef IPCL_OBJECT_H
#define IPCL_OBJECT_H

#include "../core/common.h"
#include "../core/segment.h"

#include <lauxlib.h>
#include <lua.h>

#define IPCL_HANDLE_MAGIC 0x1bc5a7e1u /* a named object's handle */
#define IPCL_UDATA_MAGIC 0x1bc5a7e2u  /* any other userdata of ours */

typedef struct ipcl_handle ipcl_handle;

typedef struct ipcl_type {
	const ipc_type_ops *ops;
	const luaL_Reg *methods;    /* type-specific methods */
	const char *const *options; /* type-specific option keys (NULL-ended) */
	/* Read type-specific creation options from the table at opts (0 when
	 * there is none) into params; raise a Lua error on bad values.  fname
	 * is the constructor name for messages. */
	void (*parse_opts)(lua_State *L, int opts, uint64_t *params, const char *fname);
	/* Add live-state fields to the info table on top of the stack. */
	void (*push_info)(lua_State *L, ipcl_handle *h);
	size_t extra; /* bytes of per-handle private data */
	/* Optional: per-handle set-up after opening / before closing. */
	int (*on_open)(lua_State *L, ipcl_handle *h);
	void (*on_close)(ipcl_handle *h);
} ipcl_type;

/* Userdata that are not named objects (pidfile, process handle, PostgreSQL
 * connection): base.ops is NULL, base.methods and base.extra (the size of
 * the object) apply.  Registered with ipcl_register_udata, made by
 * ipcl_new_udata, checked by ipcl_check_udata. */
typedef struct ipcl_udata_type {
	ipcl_type base;
	const char *name;
	const luaL_Reg *meta; /* __gc, __close, __tostring... */
	/* __index for fields (p.path) besides the methods: push the field
	 * `key` of the object and return 1, or return 0 */
	int (*field)(lua_State *L, void *obj, const char *key);
} ipcl_udata_type;

struct ipcl_handle {
	uint32_t magic;
	const ipcl_type *type;
	ipc_segment *seg; /* NULL once closed */
	/* type->extra bytes follow, 8-aligned (what Lua guarantees) */
	_Alignas(8) unsigned char extra[];
};

/* Register a type: its metatable, methods and the constructor ipc.NAME in
 * the module table at the top of the stack. */
void ipcl_register_type(lua_State *L, const ipcl_type *t);

/* Handle of any type at idx (NULL when not a handle).  Inline: it runs on
 * every method call.  lua_rawlen is 0 for a light userdata, so a pointer
 * that is not one of our full userdata is never dereferenced. */
static inline ipcl_handle *ipcl_test(lua_State *L, int idx)
{
	ipcl_handle *h = lua_touserdata(L, idx);
	if (!h || lua_rawlen(L, idx) < sizeof(ipcl_handle) || h->magic != IPCL_HANDLE_MAGIC)
		return NULL;
	return h;
}

/* Raises "bad argument" (wrong type) or "attempt to use a closed mutex". */
_Noreturn void ipcl_check_fail(lua_State *L, int idx, const ipcl_type *t);

/* Handle at idx of type t, open; raises otherwise. */
static inline ipcl_handle *ipcl_check(lua_State *L, int idx, const ipcl_type *t)
{
	ipcl_handle *h = ipcl_test(L, idx);
	if (!h || h->type != t || !h->seg)
		ipcl_check_fail(L, idx, t);
	return h;
}
const ipcl_type *ipcl_find_type(uint32_t id);

/* --- the other userdata (ipcl_type with ops == NULL) -------------------
 * Same header (magic, type) as a handle, so one check serves every
 * userdata of the module and ipc.type() reads the type from it. */
void ipcl_register_udata(lua_State *L, const ipcl_udata_type *t);
/* A zeroed object of type t (t->extra bytes) with nuv user values, its
 * metatable set, pushed; returns the object. */
void *ipcl_new_udata(lua_State *L, const ipcl_udata_type *t, int nuv);
/* The object at idx when it is a t, else NULL. */
static inline void *ipcl_test_udata(lua_State *L, int idx, const ipcl_udata_type *t)
{
	ipcl_handle *h = lua_touserdata(L, idx);
	if (!h || lua_rawlen(L, idx) < sizeof(ipcl_handle) || h->magic != IPCL_UDATA_MAGIC ||
	    h->type != &t->base)
		return NULL;
	return h->extra;
}
/* The object at idx; raises "bad argument" (q.send(x) vs q:send(x) for
 * argument 1) when it is not a t. */
_Noreturn void ipcl_check_udata_fail(lua_State *L, int idx, const ipcl_udata_type *t);
static inline void *ipcl_check_udata(lua_State *L, int idx, const ipcl_udata_type *t)
{
	void *p = ipcl_test_udata(L, idx, t);
	if (!p)
		ipcl_check_udata_fail(L, idx, t);
	return p;
}

/* Raise a Lua error from a core error. */
int ipcl_raise(lua_State *L, const ipc_error *err);
/* Raise an error naming the object: 'mutex "jobs": <msg>'. */
int ipcl_raise_obj(lua_State *L, ipcl_handle *h, const ipc_error *err);

/* Optional timeout argument at idx (nil / math.huge: forever; >= 0 ms). */
ipc_deadline ipcl_opt_timeout(lua_State *L, int idx);

/* --- the blocking-call pattern -----------------------------------------
 * A blocking method checks its handle and arguments, tries the uncontended
 * operation, and only when that fails reads the clock for the deadline,
 * takes the signal snapshot and calls the blocking core function:
 *
 *     ipcl_handle *h = ipcl_check(L, 1, &sem_type);
 *     lua_Number ms = ipcl_timeout_arg(L, 2);        (checked, no clock read)
 *     int ok = fast_try(h) || ipcl_block(L, h, ms, sem_block, NULL);
 *
 * ipcl_block maps the core result: IPC_OK -> 1, IPC_TIMEOUT -> 0,
 * IPC_INTERRUPTED raises "NAME: interrupted", IPC_ERR raises the error
 * naming the object ('wait: semaphore "s": ...').  h is a named object's
 * handle; ctx is passed through to fn (the mutex of c:wait(m), ...). */
typedef int (*ipcl_block_fn)(ipcl_handle *h, const ipc_deadline *dl, unsigned sigsnap, void *ctx,
                             ipc_error *err);
int ipcl_block(lua_State *L, ipcl_handle *h, lua_Number ms, ipcl_block_fn fn, void *ctx);
/* ipcl_block's mapping alone, for a core call that takes its deadline and
 * signal snapshot itself (the queue: only once it has to wait). */
int ipcl_result(lua_State *L, ipcl_handle *h, int r, const ipc_error *err);

/* The optional timeout argument at idx, checked: milliseconds, or -1 for
 * forever (none, nil, math.huge).  Raises on a bad value.  No clock read:
 * ipcl_block turns it into a deadline when the call has to wait. */
lua_Number ipcl_timeout_arg_slow(lua_State *L, int idx);
static inline lua_Number ipcl_timeout_arg(lua_State *L, int idx)
{
	return lua_gettop(L) < idx ? -1 : ipcl_timeout_arg_slow(L, idx);
}

/* For a blocking call's result: IPC_INTERRUPTED raises "interrupted". */
void ipcl_check_interrupt(lua_State *L, int r);

/* Read an integer option field (or default) with range checking. */
lua_Integer ipcl_opt_int_field(lua_State *L, int opts, const char *key, lua_Integer def,
                               lua_Integer min, lua_Integer max, const char *fname);
int ipcl_opt_bool_field(lua_State *L, int opts, const char *key, int def, const char *fname);

/* --- errors that name the function the user called (errors.c) ---------
 * Argument errors read "bad argument #2 to 'send' (...)" however the
 * function was reached (pcall(q.send, q, 5) included); ipcl_error prefixes
 * the name: "lock: mutex \"jobs\": already locked by this process". */
void ipcl_name_functions(lua_State *L, int module); /* at the end of luaopen */
const char *ipcl_fname(lua_State *L);               /* "send", "ipc.queue" */
int ipcl_argerror(lua_State *L, int arg, const char *extramsg);
int ipcl_typeerror(lua_State *L, int arg, const char *tname);
/* Argument 1 is not a tname: explains q.send(x) vs q:send(x). */
int ipcl_selferror(lua_State *L, const char *tname);
int ipcl_error(lua_State *L, const char *fmt, ...);
void ipcl_checktype(lua_State *L, int arg, int t);
void ipcl_checkany(lua_State *L, int arg);
lua_Integer ipcl_checkinteger(lua_State *L, int arg);
lua_Integer ipcl_optinteger(lua_State *L, int arg, lua_Integer def);
const char *ipcl_checklstring(lua_State *L, int arg, size_t *len);
#define ipcl_checkstring(L, arg) ipcl_checklstring(L, (arg), NULL)

/* Types other bindings refer to (condition takes a mutex). */
extern const ipcl_type ipcl_mutex_type;

#define IPCL_EXTRA(h, T) ((T *)(void *)(h)->extra)

#endif
