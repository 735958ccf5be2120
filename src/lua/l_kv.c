/* ipc.kv: a shared table of string keys and ipc.encode-able values.
 *
 * The storage engine (src/core/kv.c) only sees bytes: values are encoded
 * before the lock is taken and decoded after it is released.  The lock is
 * never held across a Lua call that could raise, except inside the
 * lua_pcall of update's function (and incr's arithmetic), after which the
 * lock is released before any error is rethrown. */
#include "../core/kv.h"
#include "../core/signals.h"
#include "codec.h"
#include "modules.h"
#include "object.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

typedef struct kvl {
	ipc_kv kv;
	ipc_kv_buf buf; /* values and keys are copied out here under the lock */
} kvl;

static const ipcl_type kv_type;

static ipcl_handle *check_kv(lua_State *L)
{
	return ipcl_check(L, 1, &kv_type);
}

static kvl *K(ipcl_handle *h)
{
	return IPCL_EXTRA(h, kvl);
}

static const char *check_key(lua_State *L, int arg, size_t *len)
{
	if (lua_type(L, arg) != LUA_TSTRING)
		ipcl_typeerror(L, arg, "string (key)");
	const char *k = lua_tolstring(L, arg, len);
	if (*len > IPC_KV_KEY_MAX)
		ipcl_argerror(L, arg,
		              lua_pushfstring(L, "key is %I bytes (at most %d)", (lua_Integer)*len,
		                              IPC_KV_KEY_MAX));
	return k;
}

/* Raise an error from the engine (the lock is already released). */
static int kv_raise(lua_State *L, ipcl_handle *h, const ipc_error *err)
{
	if (err->code == ENOSPC) /* the message starts with "is full: " */
		return ipcl_error(L, "kv \"%s\" %s", h->seg ? h->seg->name : "", err->msg);
	return ipcl_raise_obj(L, h, err);
}

static void kv_lock(lua_State *L, ipcl_handle *h, const char *fname)
{
	ipc_error err;
	ipc_deadline dl = ipc_deadline_never();
	int r = ipc_kv_lock(&K(h)->kv, &dl, ipc_signal_count(), &err);
	if (r == IPC_OK)
		return;
	ipcl_check_interrupt(L, r);
	if (err.code == EDEADLK)
		luaL_error(
		    L,
		    "kv \"%s\": cannot call '%s' inside an update of the same table (it stays "
		    "locked until the update function returns)",
		    h->seg->name, fname);
	ipcl_raise_obj(L, h, &err);
}

static void kv_unlock(ipcl_handle *h)
{
	ipc_kv_unlock(&K(h)->kv);
}

/* Do not keep a huge buffer around after one huge value or keys(). */
static void trim_buffer(kvl *k)
{
	if (k->buf.cap > ((size_t)1 << 20))
		ipc_kv_buf_free(&k->buf);
}

/* t:get(k) -> value or nil */
static int f_get(lua_State *L)
{
	ipcl_handle *h = check_kv(L);
	size_t klen;
	const char *key = check_key(L, 2, &klen);
	kvl *k = K(h);
	ipc_error err;
	kv_lock(L, h, "get");
	int r = ipc_kv_get(&k->kv, key, klen, &k->buf, &err);
	kv_unlock(h);
	if (r < 0)
		return kv_raise(L, h, &err);
	if (r == 0) {
		lua_pushnil(L);
		return 1;
	}
	/* Decode from a Lua copy: a finalizer run during decoding could reuse
	 * this handle's buffer. */
	lua_pushlstring(L, k->buf.p, k->buf.len);
	trim_buffer(k);
	size_t len;
	const char *s = lua_tolstring(L, -1, &len);
	ipcl_decode(L, s, len);
	return 1;
}

static int do_delete(lua_State *L, ipcl_handle *h, const char *key, size_t klen, const char *fname)
{
	ipc_error err;
	kv_lock(L, h, fname);
	int r = ipc_kv_delete(&K(h)->kv, key, klen, &err);
	kv_unlock(h);
	if (r < 0)
		return kv_raise(L, h, &err);
	return r;
}

/* t:set(k, v) -> true; v == nil deletes */
static int f_set(lua_State *L)
{
	ipcl_handle *h = check_kv(L);
	size_t klen, vlen;
	const char *key = check_key(L, 2, &klen);
	ipcl_checkany(L, 3);
	if (lua_isnil(L, 3)) {
		do_delete(L, h, key, klen, "set");
		lua_pushboolean(L, 1);
		return 1;
	}
	ipcl_encode(L, 3);
	const char *val = lua_tolstring(L, -1, &vlen);
	ipc_error err;
	kv_lock(L, h, "set");
	int r = ipc_kv_set(&K(h)->kv, key, klen, val, vlen, &err);
	kv_unlock(h);
	if (r != IPC_OK)
		return kv_raise(L, h, &err);
	lua_pushboolean(L, 1);
	return 1;
}

/* t:delete(k) -> existed */
static int f_delete(lua_State *L)
{
	ipcl_handle *h = check_kv(L);
	size_t klen;
	const char *key = check_key(L, 2, &klen);
	lua_pushboolean(L, do_delete(L, h, key, klen, "delete"));
	return 1;
}

/* t:keys() -> array of keys (in no particular order) */
static int f_keys(lua_State *L)
{
	ipcl_handle *h = check_kv(L);
	kvl *k = K(h);
	ipc_error err;
	uint32_t n;
	kv_lock(L, h, "keys");
	int r = ipc_kv_keys(&k->kv, &k->buf, &n, &err);
	kv_unlock(h);
	if (r != IPC_OK)
		return kv_raise(L, h, &err);
	lua_pushlstring(L, k->buf.p ? k->buf.p : "", k->buf.len);
	trim_buffer(k);
	size_t len;
	const char *s = lua_tolstring(L, -1, &len);
	lua_createtable(L, (int)n, 0);
	size_t pos = 0;
	for (uint32_t i = 1; i <= n && pos + 4 <= len; i++) {
		uint32_t kl;
		memcpy(&kl, s + pos, 4);
		pos += 4;
		lua_pushlstring(L, s + pos, kl);
		lua_rawseti(L, -2, (lua_Integer)i);
		pos += kl;
	}
	return 1;
}

/* t:count() -> number of keys */
static int f_count(lua_State *L)
{
	ipcl_handle *h = check_kv(L);
	kv_lock(L, h, "count");
	uint32_t n = K(h)->kv.b->count;
	kv_unlock(h);
	lua_pushinteger(L, (lua_Integer)n);
	return 1;
}

/* t:clear() -> number of keys removed */
static int f_clear(lua_State *L)
{
	ipcl_handle *h = check_kv(L);
	kv_lock(L, h, "clear");
	uint32_t n = K(h)->kv.b->count;
	ipc_kv_clear(&K(h)->kv);
	kv_unlock(h);
	lua_pushinteger(L, (lua_Integer)n);
	return 1;
}

/* ---- read-modify-write under the lock (incr, update) ---- */

typedef struct kv_txn {
	const char *old; /* encoded old value (valid until the function runs) */
	size_t oldlen;
	int found;
	ipcl_handle *h;
	const char *key;
} kv_txn;

static void push_old(lua_State *L, kv_txn *t)
{
	if (t->found)
		ipcl_decode(L, t->old, t->oldlen);
	else
		lua_pushnil(L);
}

/* Protected: (fn, txn) -> fn(old), its encoding or nil */
static int update_body(lua_State *L)
{
	kv_txn *t = lua_touserdata(L, 2);
	lua_pushvalue(L, 1);
	push_old(L, t);
	t->old = NULL; /* fn may close the handle, freeing the buffer */
	lua_call(L, 1, 1);
	if (lua_isnil(L, -1))
		lua_pushnil(L);
	else
		ipcl_encode(L, -1);
	return 2;
}

/* Protected: (n, txn) -> old + n, its encoding */
static int incr_body(lua_State *L)
{
	kv_txn *t = lua_touserdata(L, 2);
	push_old(L, t);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_pushinteger(L, 0);
	} else if (lua_type(L, -1) != LUA_TNUMBER) {
		return ipcl_error(L, "kv \"%s\": key \"%s\" holds a %s value, not a number",
		                  t->h->seg->name, t->key, luaL_typename(L, -1));
	}
	lua_pushvalue(L, 1);
	lua_arith(L, LUA_OPADD);
	ipcl_encode(L, -1);
	return 2;
}

/* Lock, copy the old value out, run body(arg, txn) protected, store its
 * second result (nil deletes), unlock, then rethrow or return its first
 * result. */
static int run_locked(lua_State *L, ipcl_handle *h, const char *fname, lua_CFunction body, int arg)
{
	size_t klen;
	const char *key = check_key(L, 2, &klen);
	luaL_checkstack(L, 8, NULL);
	kvl *k = K(h);
	ipc_kv kv = k->kv; /* the handle may be closed by the function */
	ipc_segment *seg = h->seg;
	ipc_error err;
	kv_txn t = {NULL, 0, 0, h, key};
	kv_lock(L, h, fname);
	int r = ipc_kv_get(&kv, key, klen, &k->buf, &err);
	if (r < 0) {
		ipc_kv_unlock(&kv);
		return kv_raise(L, h, &err);
	}
	t.found = r;
	t.old = k->buf.p;
	t.oldlen = k->buf.len;
	seg->refs++; /* keep the mapping if the function closes every handle */
	/* None of these three pushes allocates: nothing can raise before the
	 * protected call. */
	lua_pushcfunction(L, body);
	lua_pushvalue(L, arg);
	lua_pushlightuserdata(L, &t);
	int status = lua_pcall(L, 2, 2, 0);
	r = IPC_OK;
	if (status == LUA_OK) {
		size_t vlen;
		const char *val = lua_tolstring(L, -1, &vlen);
		if (val)
			r = ipc_kv_set(&kv, key, klen, val, vlen, &err);
		else
			r = ipc_kv_delete(&kv, key, klen, &err) < 0 ? IPC_ERR : IPC_OK;
	}
	ipc_kv_unlock(&kv);
	if (status != LUA_OK) {
		ipc_seg_release(seg);
		return lua_error(L);
	}
	if (r != IPC_OK) {
		char msg[sizeof err.msg + IPC_NAME_MAX + 16];
		snprintf(msg, sizeof msg, err.code == ENOSPC ? "kv \"%s\" %s" : "kv \"%s\": %s",
		         seg->name, err.msg);
		ipc_seg_release(seg);
		return ipcl_error(L, "%s", msg);
	}
	ipc_seg_release(seg);
	lua_pop(L, 1);
	return 1;
}

/* t:incr(k [, n]) -> new value (missing key counts as 0) */
static int f_incr(lua_State *L)
{
	ipcl_handle *h = check_kv(L);
	check_key(L, 2, &(size_t){0});
	if (lua_isnoneornil(L, 3)) {
		lua_settop(L, 2);
		lua_pushinteger(L, 1);
	} else if (lua_type(L, 3) != LUA_TNUMBER) {
		ipcl_typeerror(L, 3, "number");
	}
	return run_locked(L, h, "incr", incr_body, 3);
}

/* t:update(k, fn) -> fn(old), which is stored (nil deletes) */
static int f_update(lua_State *L)
{
	ipcl_handle *h = check_kv(L);
	check_key(L, 2, &(size_t){0});
	ipcl_checktype(L, 3, LUA_TFUNCTION);
	return run_locked(L, h, "update", update_body, 3);
}

static void kv_parse_opts(lua_State *L, int opts, uint64_t *params, const char *fname)
{
	params[0] =
	    (uint64_t)ipcl_opt_int_field(L, opts, "size", (lua_Integer)IPC_KV_SIZE_DEFAULT,
	                                 IPC_KV_SIZE_MIN, (lua_Integer)IPC_KV_SIZE_MAX, fname);
}

static void kv_push_info(lua_State *L, ipcl_handle *h)
{
	ipc_kv *kv = &K(h)->kv;
	ipc_error err;
	/* info() must not hang `ipcsh ls` behind a long update: after a short
	 * wait the counters are read unlocked (aligned words: at worst a
	 * moment stale) and busy = true says so.  EDEADLK: called inside an
	 * update of this table (ipc.list() from its function). */
	ipc_deadline dl = ipc_deadline_in(100);
	int r = ipc_kv_lock(kv, &dl, ipc_signal_count(), &err);
	ipcl_check_interrupt(L, r);
	if (r == IPC_ERR && err.code != EDEADLK)
		ipcl_raise_obj(L, h, &err);
	uint64_t count = __atomic_load_n(&kv->b->count, __ATOMIC_RELAXED);
	uint64_t nfree = __atomic_load_n(&kv->b->free_count, __ATOMIC_RELAXED);
	uint64_t repairs = __atomic_load_n(&kv->b->repairs, __ATOMIC_RELAXED);
	uint64_t sets = __atomic_load_n(&kv->b->sets, __ATOMIC_RELAXED);
	if (r == IPC_OK)
		kv_unlock(h);
	if (r == IPC_TIMEOUT) {
		lua_pushboolean(L, 1);
		lua_setfield(L, -2, "busy");
	}
	uint64_t size = (uint64_t)kv->nchunks * IPC_KV_CHUNK;
	if (nfree > kv->nchunks)
		nfree = kv->nchunks;
	lua_pushinteger(L, (lua_Integer)count);
	lua_setfield(L, -2, "count");
	lua_createtable(L, 0, 1); /* rate counters (ipcsh top) */
	lua_pushinteger(L, (lua_Integer)sets);
	lua_setfield(L, -2, "sets");
	lua_setfield(L, -2, "counters");
	lua_pushinteger(L, (lua_Integer)size);
	lua_setfield(L, -2, "size");
	lua_pushinteger(L, (lua_Integer)(size - nfree * IPC_KV_CHUNK));
	lua_setfield(L, -2, "used");
	lua_pushinteger(L, (lua_Integer)(nfree * IPC_KV_CHUNK));
	lua_setfield(L, -2, "free");
	lua_pushinteger(L, IPC_KV_CHUNK);
	lua_setfield(L, -2, "chunk_size");
	lua_pushinteger(L, IPC_KV_KEY_MAX);
	lua_setfield(L, -2, "max_key");
	lua_pushinteger(L, (lua_Integer)repairs);
	lua_setfield(L, -2, "repairs");
}

static int kv_on_open(lua_State *L, ipcl_handle *h)
{
	if (ipc_kv_view(&K(h)->kv, h->seg) != IPC_OK)
		return ipcl_error(L, "kv \"%s\" is corrupt (its size does not match its segment)",
		                  h->seg->name);
	return 0;
}

static void kv_on_close(ipcl_handle *h)
{
	ipc_kv_buf_free(&K(h)->buf);
}

static const luaL_Reg kv_methods[] = {{"get", f_get},   {"set", f_set},       {"delete", f_delete},
                                      {"keys", f_keys}, {"count", f_count},   {"clear", f_clear},
                                      {"incr", f_incr}, {"update", f_update}, {NULL, NULL}};

static const char *const kv_options[] = {"size", NULL};

static const ipcl_type kv_type = {&ipc_kv_ops,  kv_methods,  kv_options, kv_parse_opts,
                                  kv_push_info, sizeof(kvl), kv_on_open, kv_on_close};

void ipcl_open_kv(lua_State *L)
{
	ipcl_register_type(L, &kv_type);
}
