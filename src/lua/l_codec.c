/* ipc.encode / ipc.decode: walk Lua values into the core codec format
 * (src/core/codec.h, docs/design.md) and back.  What is not Lua-specific
 * (the output buffer, the path with its cycle and depth checks, the sorted
 * scratch of hash-part pairs, error paths) is src/core/codec_walk.c; this
 * file reads Lua values and tables.
 *
 * Encoding.  All C memory of an encode belongs to a userdata (the
 * ipc_cwalk, with __gc), so a Lua error raised anywhere in the walk leaks
 * nothing.  One per Lua state is cached in the registry between calls; it
 * is taken out while in use, so an encode that raises just drops it.
 *
 * The walk makes no Lua call that can run a garbage-collection step (no
 * allocation through the Lua API: only lua_type/to*, rawget(i), next,
 * rawseti into a table made before the walk, push of existing values).  So
 * no finalizer can run and change a table under us, and the string pointers
 * kept in C (keys, values) stay valid until the walk ends.
 *
 * Tables: items 1..n (n = first border counting from 1) form the array
 * part, in order.  The other pairs are collected (scalars kept in C, table
 * keys/values anchored in a scratch table) and sorted into the canonical
 * key order of codec.h, so equal tables without table keys encode to equal
 * strings.  Cycles (a table met again while on the current path) and
 * nesting deeper than IPC_CODEC_MAX_DEPTH are errors; a sub-table shared
 * without a cycle is encoded once per reference.
 *
 * Decoding trusts nothing: the core reader checks every read, checks counts
 * against the bytes left before a table is preallocated, and checks keys
 * (nil, NaN, order, duplicates) with ipc_keyseq. */
#include "../core/codec.h"
#include "../core/codec_walk.h"
#include "codec.h"
#include "modules.h"
#include "object.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENC_META "interprocess.codec.buffer"
#define KEEP_ANCHOR 65536 /* keep the anchor table up to this many entries */
#define PATH_MAX_LEN 2048 /* " at value..." of an error message */

typedef struct enc_state {
	lua_State *L;
	ipc_cwalk *w;
	int arg;            /* argument number for messages */
	int anchor;         /* stack index of the anchor table */
	size_t anchor_used; /* highest anchor index set */
} enc_state;

static const char cache_key = 'c';

static int mem_gc(lua_State *L)
{
	ipc_cwalk_free(lua_touserdata(L, 1));
	return 0;
}

/* Raise "bad argument #N to 'f' (<what> at value.a[2])". */
static int enc_fail(enc_state *st, const char *what)
{
	char path[PATH_MAX_LEN];
	ipc_cwalk_path(st->w, path, sizeof path);
	luaL_checkstack(st->L, 4, "ipc.encode");
	return ipcl_argerror(st->L, st->arg, lua_pushfstring(st->L, "%s%s", what, path));
}

static int enc_fail_type(enc_state *st, int t, const char *as)
{
	lua_State *L = st->L;
	const char *tn = t == LUA_TLIGHTUSERDATA ? "light userdata" : lua_typename(L, t);
	lua_pushfstring(L, "cannot encode a %s%s", tn, as);
	return enc_fail(st, lua_tostring(L, -1));
}

static int enc_nomem(enc_state *st)
{
	return luaL_error(st->L, "ipc.encode: not enough memory");
}

static void check_buf(enc_state *st)
{
	if (st->w->out.failed == 1)
		enc_nomem(st);
	if (st->w->out.failed)
		enc_fail(st, "encoded value too large (over 2 GiB)");
}

/* ---- the walk ---- */

/* Scalar kind of the value at idx, IPC_K_TABLE, or -1 (cannot encode). */
static int classify(lua_State *L, int idx, ipc_cval *sc)
{
	switch (lua_type(L, idx)) {
	case LUA_TBOOLEAN:
		return sc->kind = lua_toboolean(L, idx) ? IPC_K_TRUE : IPC_K_FALSE;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx)) {
			sc->u.i = (int64_t)lua_tointeger(L, idx);
			return sc->kind = IPC_K_INT;
		}
		sc->u.d = (double)lua_tonumber(L, idx);
		return sc->kind = IPC_K_FLOAT;
	case LUA_TSTRING:
		sc->u.s = lua_tolstring(L, idx, &sc->n);
		return sc->kind = IPC_K_STR;
	case LUA_TTABLE:
		return sc->kind = IPC_K_TABLE;
	default:
		return sc->kind = -1;
	}
}

static void anchor_set(enc_state *st, size_t at)
{
	lua_rawseti(st->L, st->anchor, (lua_Integer)at);
	if (at > st->anchor_used)
		st->anchor_used = at;
}

static void enc_value(enc_state *st, int idx, int type);
static void enc_table(enc_state *st, int t);

static void enc_table(enc_state *st, int t)
{
	lua_State *L = st->L;
	ipc_cwalk *w = st->w;
	ipc_wbuf *b = &w->out;
	int r = ipc_cwalk_enter(w, lua_topointer(L, t));
	if (r == IPC_CW_CYCLE)
		enc_fail(st, "cannot encode a cycle");
	if (r == IPC_CW_DEEP)
		enc_fail(st, "nesting deeper than 200");
	luaL_checkstack(L, 8, "ipc.encode");
	ipc_clevel *lv = ipc_cwalk_level(w);

	/* The array part is 1..narr, narr the first border counting from 1.
	 * Guess it with lua_rawlen (a border, cheap); if the array loop below
	 * meets a hole, the first border is known: start this table again. */
	lua_Integer narr = (lua_Integer)lua_rawlen(L, t);
	size_t mark = b->len, base = w->nent;
	int retried = 0;
again:
	lua_pushnil(L);
	while (lua_next(L, t)) {
		ipc_cval k;
		if (lua_isinteger(L, -2)) {
			lua_Integer i = lua_tointeger(L, -2);
			if (i >= 1 && i <= narr) {
				lua_pop(L, 1);
				continue;
			}
		}
		int kt = classify(L, -2, &k);
		if (kt == IPC_K_STR)
			ipc_cval_key_prefix(&k);
		if (kt < 0)
			enc_fail_type(st, lua_type(L, -2), " as a table key");
		ipc_cpair *e = ipc_cwalk_new_pair(w);
		if (!e)
			enc_nomem(st);
		size_t slot = w->nent;
		e->k = k;
		int vt = classify(L, -1, &e->v);
		if (vt < 0) {
			lv->mode = IPC_AT_VALUE;
			lv->ent = slot - 1;
			enc_fail_type(st, lua_type(L, -1), "");
		}
		/* a table key or value: anchored, its anchor index in n */
		if (vt == IPC_K_TABLE) {
			e->v.n = 2 * slot;
			anchor_set(st, 2 * slot); /* pops the value */
		} else {
			lua_pop(L, 1);
		}
		if (kt == IPC_K_TABLE) {
			e->k.n = 2 * slot - 1;
			lua_pushvalue(L, -1);
			anchor_set(st, 2 * slot - 1);
		}
	}
	size_t nhash = w->nent - base;
	if (nhash > 1 && ipc_cwalk_sort(w, base, nhash) != 0)
		enc_nomem(st);

	ipc_enc_table(b, (uint64_t)narr, (uint64_t)nhash);
	check_buf(st);
	int top = lua_gettop(L) + 1;
	lv->mode = IPC_AT_INDEX;
	for (lua_Integer i = 1; i <= narr; i++) {
		lv->index = (int64_t)i;
		int vt = lua_rawgeti(L, t, i);
		if (vt == LUA_TNIL) {
			lua_pop(L, 1);
			if (retried)
				enc_fail(st, "table changed while being encoded");
			retried = 1;
			b->len = mark;
			w->nent = base;
			lv->mode = IPC_AT_NONE;
			narr = i - 1;
			goto again;
		}
		enc_value(st, top, vt);
		lua_pop(L, 1);
	}
	for (size_t j = 0; j < nhash; j++) {
		const ipc_cpair *e = &w->ent[base + j]; /* re-read: ent may move */
		lv->ent = base + j;
		if (e->k.kind == IPC_K_TABLE) {
			lv->mode = IPC_AT_KEY;
			lua_rawgeti(L, st->anchor, (lua_Integer)e->k.n);
			enc_table(st, top);
			lua_pop(L, 1);
			e = &w->ent[base + j];
		} else {
			ipc_cval_put(b, &e->k);
		}
		lv->mode = IPC_AT_VALUE;
		if (e->v.kind == IPC_K_TABLE) {
			lua_rawgeti(L, st->anchor, (lua_Integer)e->v.n);
			enc_table(st, top);
			lua_pop(L, 1);
		} else {
			ipc_cval_put(b, &e->v);
			if (b->failed)
				check_buf(st);
		}
	}
	check_buf(st);
	ipc_cwalk_leave(w);
	w->nent = base;
}

static void enc_value(enc_state *st, int idx, int type)
{
	lua_State *L = st->L;
	ipc_wbuf *b = &st->w->out;
	switch (type) {
	case LUA_TNIL:
		ipc_enc_nil(b);
		break;
	case LUA_TBOOLEAN:
		ipc_enc_bool(b, lua_toboolean(L, idx));
		break;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx))
			ipc_enc_int(b, (int64_t)lua_tointeger(L, idx));
		else
			ipc_enc_float(b, (double)lua_tonumber(L, idx));
		break;
	case LUA_TSTRING: {
		size_t n;
		const char *s = lua_tolstring(L, idx, &n);
		ipc_enc_string(b, s, n);
		if (b->failed)
			check_buf(st);
		break;
	}
	case LUA_TTABLE:
		enc_table(st, idx);
		break;
	default:
		enc_fail_type(st, type, "");
	}
}

/* Push the cached walk state (or a new one) and its anchor table. */
static ipc_cwalk *take_mem(lua_State *L)
{
	ipc_cwalk *w;
	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &cache_key) == LUA_TUSERDATA) {
		lua_pushnil(L);
		lua_rawsetp(L, LUA_REGISTRYINDEX, &cache_key); /* in use: not shared */
		w = lua_touserdata(L, -1);
		lua_getiuservalue(L, -1, 1);
		return w;
	}
	lua_pop(L, 1);
	w = lua_newuserdatauv(L, sizeof *w, 1);
	ipc_cwalk_init(w);
	if (luaL_newmetatable(L, ENC_META)) {
		lua_pushcfunction(L, mem_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_setmetatable(L, -2);
	lua_createtable(L, 64, 0);
	lua_pushvalue(L, -1);
	lua_setiuservalue(L, -3, 1);
	return w;
}

/* Stack: walk state, anchor.  Trim and clear them and cache them again. */
static void give_back_mem(lua_State *L, ipc_cwalk *w, size_t anchor_used)
{
	ipc_cwalk_reset(w);
	if (anchor_used > KEEP_ANCHOR) {
		lua_createtable(L, 64, 0);
		lua_setiuservalue(L, -3, 1);
	} else {
		for (size_t i = 1; i <= anchor_used; i++) {
			lua_pushnil(L);
			lua_rawseti(L, -2, (lua_Integer)i);
		}
	}
	lua_pop(L, 1);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &cache_key);
}

void ipcl_encode(lua_State *L, int idx)
{
	idx = lua_absindex(L, idx);
	luaL_checkstack(L, 8, "ipc.encode");
	ipc_cwalk *w = take_mem(L);
	enc_state st;
	st.L = L;
	st.w = w;
	st.arg = idx;
	st.anchor = lua_gettop(L);
	st.anchor_used = 0;
	ipc_enc_magic(&w->out);
	enc_value(&st, idx, lua_type(L, idx));
	check_buf(&st);
	lua_pushlstring(L, (const char *)w->out.data, w->out.len);
	lua_insert(L, -3);
	give_back_mem(L, w, st.anchor_used);
}

/* ---- decoding ---- */

static int l_decode(lua_State *L);

/* From ipc.decode: "ipc.decode: <reason> at byte N"; from another function
 * (shm:load, kv:get): "load: stored value is corrupt (ipc.decode: ...)". */
static int dec_fail(lua_State *L, const ipc_reader *r)
{
	lua_Debug ar;
	if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "nf", &ar)) {
		int self = lua_tocfunction(L, -1) == l_decode;
		lua_pop(L, 1);
		if (!self && ar.name)
			return luaL_error(L,
			                  "%s: stored value is corrupt (ipc.decode: %s at byte %I)",
			                  ar.name, r->err, (lua_Integer)r->err_pos + 1);
	}
	return luaL_error(L, "ipc.decode: %s at byte %I", r->err, (lua_Integer)r->err_pos + 1);
}

static int size_hint(uint64_t n)
{
	return n > (1u << 24) ? 1 << 24 : (int)n;
}

static void dec_push(lua_State *L, ipc_reader *r, const ipc_item *it);

static void dec_table(lua_State *L, ipc_reader *r, const ipc_item *t)
{
	ipc_item it;
	ipc_keyseq ks;
	luaL_checkstack(L, 6, "ipc.decode");
	lua_createtable(L, size_hint(t->narr), size_hint(t->nhash));
	for (uint64_t i = 1; i <= t->narr; i++) {
		if (ipc_read_item(r, &it) != 0)
			dec_fail(L, r);
		if (it.type == IPC_V_NIL) {
			ipc_reader_fail(r, it.pos, "nil value in table");
			dec_fail(L, r);
		}
		dec_push(L, r, &it);
		lua_rawseti(L, -2, (lua_Integer)i);
	}
	ipc_keyseq_init(&ks, t->narr);
	for (uint64_t j = 0; j < t->nhash; j++) {
		if (ipc_read_item(r, &it) != 0 || ipc_keyseq_next(r, &ks, &it) != 0)
			dec_fail(L, r);
		dec_push(L, r, &it);
		if (ipc_read_item(r, &it) != 0)
			dec_fail(L, r);
		if (it.type == IPC_V_NIL) {
			ipc_reader_fail(r, it.pos, "nil value in table");
			dec_fail(L, r);
		}
		dec_push(L, r, &it);
		lua_rawset(L, -3);
	}
	ipc_reader_leave(r);
}

static void dec_push(lua_State *L, ipc_reader *r, const ipc_item *it)
{
	switch (it->type) {
	case IPC_V_NIL:
		lua_pushnil(L);
		break;
	case IPC_V_BOOL:
		lua_pushboolean(L, it->b);
		break;
	case IPC_V_INT:
		lua_pushinteger(L, (lua_Integer)it->i);
		break;
	case IPC_V_FLOAT:
		lua_pushnumber(L, (lua_Number)it->d);
		break;
	case IPC_V_STRING:
		lua_pushlstring(L, it->s, it->len);
		break;
	default:
		dec_table(L, r, it);
		break;
	}
}

void ipcl_decode(lua_State *L, const char *s, size_t len)
{
	ipc_reader r;
	ipc_item it;
	luaL_checkstack(L, 4, "ipc.decode");
	if (ipc_reader_init(&r, s, len) != 0 || ipc_read_item(&r, &it) != 0)
		dec_fail(L, &r);
	dec_push(L, &r, &it);
	if (ipc_reader_finish(&r) != 0)
		dec_fail(L, &r);
}

/* ---- ipc.encode / ipc.decode ---- */

static int l_encode(lua_State *L)
{
	ipcl_checkany(L, 1);
	ipcl_encode(L, 1);
	return 1;
}

static int l_decode(lua_State *L)
{
	size_t len;
	if (lua_type(L, 1) != LUA_TSTRING)
		return ipcl_typeerror(L, 1, "string");
	const char *s = lua_tolstring(L, 1, &len);
	ipcl_decode(L, s, len);
	return 1;
}

void ipcl_open_codec(lua_State *L)
{
	static const luaL_Reg fns[] = {{"encode", l_encode}, {"decode", l_decode}, {NULL, NULL}};
	luaL_setfuncs(L, fns, 0);
}
