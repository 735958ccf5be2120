/* ipc.encode / ipc.decode: walk Lua values into the core codec format
 * (src/core/codec.h, docs/design.md) and back.
 *
 * Encoding.  All C memory of an encode belongs to a userdata (enc_mem,
 * with __gc), so a Lua error raised anywhere in the walk leaks nothing.  One
 * enc_mem per Lua state is cached in the registry between calls; it is
 * taken out while in use, so an encode that raises just drops it.
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
#include "codec.h"
#include "modules.h"
#include "object.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENC_META "interprocess.codec.buffer"
#define ENC_INLINE 256
#define KEEP_BUF (1u << 20) /* keep a grown output buffer up to this */
#define KEEP_ENTRIES 16384  /* ... and the pair scratch up to this */
#define KEEP_ANCHOR 65536   /* ... and the anchor table up to this */

/* One key or value kept in C: kind IPC_K_*. */
typedef struct scalar {
	int kind;
	size_t n;     /* IPC_K_STR: length; IPC_K_TABLE: anchor index */
	uint64_t pfx; /* IPC_K_STR keys: first 8 bytes, big-endian, 0-padded */
	union {
		lua_Integer i;
		lua_Number d;
		const char *s;
	} u;
} scalar;

/* One pair of a hash part.  A table key or value is kept in the anchor
 * table at index n (keys at odd, values at even indexes). */
typedef struct hent {
	scalar k, v;
} hent;

typedef struct enc_mem {
	ipc_wbuf out;
	hent *ent;
	size_t nent, cap;
	hent *tmp; /* merge sort scratch */
	size_t tcap;
	unsigned char inline_buf[ENC_INLINE];
} enc_mem;

/* Where the walk is inside one level (for error paths). */
enum { AT_NONE, AT_INDEX, AT_VALUE, AT_KEY };
typedef struct enc_level {
	int mode;
	lua_Integer index; /* AT_INDEX */
	size_t ent;        /* AT_VALUE, AT_KEY: index in enc_mem.ent */
} enc_level;

typedef struct enc_state {
	lua_State *L;
	enc_mem *m;
	int arg;            /* argument number for messages */
	int anchor;         /* stack index of the anchor table */
	size_t anchor_used; /* highest anchor index set */
	int depth;          /* tables on the current path */
	const void *path[IPC_CODEC_MAX_DEPTH];
	enc_level lv[IPC_CODEC_MAX_DEPTH];
} enc_state;

static const char cache_key = 'c';

static void mem_release(enc_mem *m)
{
	ipc_wbuf_free(&m->out);
	free(m->ent);
	m->ent = NULL;
	m->nent = m->cap = 0;
	free(m->tmp);
	m->tmp = NULL;
	m->tcap = 0;
}

static int mem_gc(lua_State *L)
{
	mem_release(lua_touserdata(L, 1));
	return 0;
}

/* ---- error messages with the path to the bad value ---- */

static int is_ident(const char *s, size_t n)
{
	if (n == 0 || n > 40)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		int alpha = c == '_' || ((c | 32) >= 'a' && (c | 32) <= 'z');
		if (!(alpha || (i > 0 && c >= '0' && c <= '9')))
			return 0;
	}
	return 1;
}

static void render_key(const scalar *k, char *buf, size_t size)
{
	switch (k->kind) {
	case IPC_K_FALSE:
	case IPC_K_TRUE:
		snprintf(buf, size, "[%s]", k->kind == IPC_K_TRUE ? "true" : "false");
		break;
	case IPC_K_INT:
		snprintf(buf, size, "[%lld]", (long long)k->u.i);
		break;
	case IPC_K_FLOAT:
		snprintf(buf, size, "[%.17g]", (double)k->u.d);
		break;
	case IPC_K_STR: {
		const char *s = k->u.s;
		if (is_ident(s, k->n)) {
			snprintf(buf, size, ".%.*s", (int)k->n, s);
			break;
		}
		size_t o = 0;
		buf[o++] = '[';
		buf[o++] = '"';
		for (size_t i = 0; i < k->n && o + 12 < size; i++) {
			unsigned char c = (unsigned char)s[i];
			if (i == 24) {
				o += (size_t)snprintf(buf + o, size - o, "...");
				break;
			}
			if (c == '"' || c == '\\')
				o += (size_t)snprintf(buf + o, size - o, "\\%c", c);
			else if (c < 32 || c >= 127)
				o += (size_t)snprintf(buf + o, size - o, "\\%u", c);
			else
				buf[o++] = (char)c;
		}
		snprintf(buf + o, size - o, "\"]");
		break;
	}
	default:
		snprintf(buf, size, "[table]");
		break;
	}
}

static void path_component(enc_state *st, int d, char *buf, size_t size)
{
	const enc_level *lv = &st->lv[d];
	buf[0] = 0;
	if (lv->mode == AT_INDEX)
		snprintf(buf, size, "[%lld]", (long long)lv->index);
	else if (lv->mode == AT_KEY)
		snprintf(buf, size, "<key>");
	else if (lv->mode == AT_VALUE)
		render_key(&st->m->ent[lv->ent].k, buf, size);
}

/* Raise "bad argument #N to 'f' (<what> at value.a[2])". */
static int enc_fail(enc_state *st, const char *what)
{
	lua_State *L = st->L;
	luaL_Buffer B;
	char comp[128];
	luaL_checkstack(L, 4, "ipc.encode");
	luaL_buffinit(L, &B);
	luaL_addstring(&B, what);
	int n = st->depth;
	while (n > 0 && st->lv[n - 1].mode == AT_NONE)
		n--;
	if (n > 0) {
		luaL_addstring(&B, " at value");
		for (int d = 0; d < n; d++) {
			if (n > 12 && d == 6) {
				luaL_addstring(&B, "...");
				d = n - 6;
			}
			path_component(st, d, comp, sizeof comp);
			luaL_addstring(&B, comp);
		}
	}
	luaL_pushresult(&B);
	return ipcl_argerror(L, st->arg, lua_tostring(L, -1));
}

static int enc_fail_type(enc_state *st, int t, const char *as)
{
	lua_State *L = st->L;
	const char *tn = t == LUA_TLIGHTUSERDATA ? "light userdata" : lua_typename(L, t);
	lua_pushfstring(L, "cannot encode a %s%s", tn, as);
	return enc_fail(st, lua_tostring(L, -1));
}

static void check_buf(enc_state *st)
{
	if (st->m->out.failed == 1)
		luaL_error(st->L, "ipc.encode: not enough memory");
	if (st->m->out.failed)
		enc_fail(st, "encoded value too large (over 2 GiB)");
}

/* ---- the walk ---- */

/* Scalar kind of the value at idx, IPC_K_TABLE, or -1 (cannot encode). */
static int classify(lua_State *L, int idx, scalar *sc)
{
	switch (lua_type(L, idx)) {
	case LUA_TBOOLEAN:
		return sc->kind = lua_toboolean(L, idx) ? IPC_K_TRUE : IPC_K_FALSE;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx)) {
			sc->u.i = lua_tointeger(L, idx);
			return sc->kind = IPC_K_INT;
		}
		sc->u.d = lua_tonumber(L, idx);
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

static void put_scalar(ipc_wbuf *b, const scalar *sc)
{
	switch (sc->kind) {
	case IPC_K_FALSE:
	case IPC_K_TRUE:
		ipc_enc_bool(b, sc->kind == IPC_K_TRUE);
		break;
	case IPC_K_INT:
		ipc_enc_int(b, (int64_t)sc->u.i);
		break;
	case IPC_K_FLOAT:
		ipc_enc_float(b, (double)sc->u.d);
		break;
	case IPC_K_STR:
		ipc_enc_string(b, sc->u.s, sc->n);
		break;
	}
}

static inline int key_cmp(const void *a, const void *b)
{
	const scalar *x = &((const hent *)a)->k, *y = &((const hent *)b)->k;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	switch (x->kind) {
	case IPC_K_INT:
		return x->u.i < y->u.i ? -1 : x->u.i > y->u.i;
	case IPC_K_FLOAT:
		return x->u.d < y->u.d ? -1 : x->u.d > y->u.d;
	case IPC_K_STR: {
		/* same order as memcmp then length, mostly without memcmp */
		if (x->pfx != y->pfx)
			return x->pfx < y->pfx ? -1 : 1;
		size_t n = x->n < y->n ? x->n : y->n;
		if (n > 8) {
			int c = memcmp(x->u.s + 8, y->u.s + 8, n - 8);
			if (c)
				return c;
		}
		return x->n < y->n ? -1 : x->n > y->n;
	}
	default: /* table keys keep their traversal order */
		return x->n < y->n ? -1 : x->n > y->n;
	}
}

static void insertion_sort(hent *e, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		hent x = e[i];
		size_t j = i;
		while (j > 0 && key_cmp(&x, &e[j - 1]) < 0) {
			e[j] = e[j - 1];
			j--;
		}
		e[j] = x;
	}
}

/* Sort n entries: insertion sort for small hash parts (records, the common
 * case), else bottom-up merge sort of 16-entry runs through m->tmp. */
static void sort_ents(enc_state *st, size_t base, size_t n)
{
	enc_mem *m = st->m;
	enum { RUN = 16 };
	if (n <= RUN) {
		insertion_sort(m->ent + base, n);
		return;
	}
	if (m->tcap < n) {
		hent *t = n < (size_t)-1 / sizeof *t ? malloc(n * sizeof *t) : NULL;
		if (!t)
			luaL_error(st->L, "ipc.encode: not enough memory");
		free(m->tmp);
		m->tmp = t;
		m->tcap = n;
	}
	hent *src = m->ent + base, *dst = m->tmp;
	for (size_t i = 0; i < n; i += RUN)
		insertion_sort(src + i, n - i < RUN ? n - i : RUN);
	for (size_t w = RUN; w < n; w *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * w) {
			size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
			size_t i = lo, j = mid, k = lo;
			while (i < mid && j < hi)
				dst[k++] = key_cmp(&src[j], &src[i]) < 0 ? src[j++] : src[i++];
			while (i < mid)
				dst[k++] = src[i++];
			while (j < hi)
				dst[k++] = src[j++];
		}
		hent *x = src;
		src = dst;
		dst = x;
	}
	if (src != m->ent + base)
		memcpy(m->ent + base, src, n * sizeof *src);
}

static hent *new_ent(enc_state *st)
{
	enc_mem *m = st->m;
	if (m->nent == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		hent *e = cap < (size_t)-1 / sizeof *e ? realloc(m->ent, cap * sizeof *e) : NULL;
		if (!e)
			luaL_error(st->L, "ipc.encode: not enough memory");
		m->ent = e;
		m->cap = cap;
	}
	return &m->ent[m->nent++];
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
	ipc_wbuf *b = &st->m->out;
	const void *ptr = lua_topointer(L, t);
	for (int i = 0; i < st->depth; i++)
		if (st->path[i] == ptr)
			enc_fail(st, "cannot encode a cycle");
	if (st->depth >= IPC_CODEC_MAX_DEPTH)
		enc_fail(st, "nesting deeper than 200");
	luaL_checkstack(L, 8, "ipc.encode");
	st->path[st->depth] = ptr;
	enc_level *lv = &st->lv[st->depth++];
	lv->mode = AT_NONE;

	/* The array part is 1..narr, narr the first border counting from 1.
	 * Guess it with lua_rawlen (a border, cheap); if the array loop below
	 * meets a hole, the first border is known: start this table again. */
	lua_Integer narr = (lua_Integer)lua_rawlen(L, t);
	size_t mark = b->len, base = st->m->nent;
	int retried = 0;
again:
	lua_pushnil(L);
	while (lua_next(L, t)) {
		scalar k;
		if (lua_isinteger(L, -2)) {
			k.u.i = lua_tointeger(L, -2);
			if (k.u.i >= 1 && k.u.i <= narr) {
				lua_pop(L, 1);
				continue;
			}
		}
		int kt = classify(L, -2, &k);
		if (kt == IPC_K_STR) {
			k.pfx = 0;
			for (size_t i = 0; i < 8; i++)
				k.pfx = k.pfx << 8 | (i < k.n ? (unsigned char)k.u.s[i] : 0);
		}
		if (kt < 0)
			enc_fail_type(st, lua_type(L, -2), " as a table key");
		hent *e = new_ent(st);
		size_t slot = st->m->nent;
		e->k = k;
		int vt = classify(L, -1, &e->v);
		if (vt < 0) {
			lv->mode = AT_VALUE;
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
	size_t nhash = st->m->nent - base;
	if (nhash > 1)
		sort_ents(st, base, nhash);

	ipc_enc_table(b, (uint64_t)narr, (uint64_t)nhash);
	check_buf(st);
	int top = lua_gettop(L) + 1;
	lv->mode = AT_INDEX;
	for (lua_Integer i = 1; i <= narr; i++) {
		lv->index = i;
		int vt = lua_rawgeti(L, t, i);
		if (vt == LUA_TNIL) {
			lua_pop(L, 1);
			if (retried)
				enc_fail(st, "table changed while being encoded");
			retried = 1;
			b->len = mark;
			st->m->nent = base;
			lv->mode = AT_NONE;
			narr = i - 1;
			goto again;
		}
		enc_value(st, top, vt);
		lua_pop(L, 1);
	}
	for (size_t j = 0; j < nhash; j++) {
		const hent *e = &st->m->ent[base + j]; /* re-read: ent may move */
		lv->ent = base + j;
		if (e->k.kind == IPC_K_TABLE) {
			lv->mode = AT_KEY;
			lua_rawgeti(L, st->anchor, (lua_Integer)e->k.n);
			enc_table(st, top);
			lua_pop(L, 1);
			e = &st->m->ent[base + j];
		} else {
			put_scalar(b, &e->k);
		}
		lv->mode = AT_VALUE;
		if (e->v.kind == IPC_K_TABLE) {
			lua_rawgeti(L, st->anchor, (lua_Integer)e->v.n);
			enc_table(st, top);
			lua_pop(L, 1);
		} else {
			put_scalar(b, &e->v);
			if (b->failed)
				check_buf(st);
		}
	}
	check_buf(st);
	st->depth--;
	st->m->nent = base;
}

static void enc_value(enc_state *st, int idx, int type)
{
	lua_State *L = st->L;
	ipc_wbuf *b = &st->m->out;
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

/* Push the cached enc_mem (or a new one) and its anchor table. */
static enc_mem *take_mem(lua_State *L)
{
	enc_mem *m;
	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &cache_key) == LUA_TUSERDATA) {
		lua_pushnil(L);
		lua_rawsetp(L, LUA_REGISTRYINDEX, &cache_key); /* in use: not shared */
		m = lua_touserdata(L, -1);
		lua_getiuservalue(L, -1, 1);
		return m;
	}
	lua_pop(L, 1);
	m = lua_newuserdatauv(L, sizeof *m, 1);
	ipc_wbuf_init(&m->out, m->inline_buf, sizeof m->inline_buf);
	m->ent = m->tmp = NULL;
	m->nent = m->cap = m->tcap = 0;
	if (luaL_newmetatable(L, ENC_META)) {
		lua_pushcfunction(L, mem_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_setmetatable(L, -2);
	lua_createtable(L, 64, 0);
	lua_pushvalue(L, -1);
	lua_setiuservalue(L, -3, 1);
	return m;
}

/* Stack: mem, anchor.  Trim and clear them and cache them again. */
static void give_back_mem(lua_State *L, enc_mem *m, size_t anchor_used)
{
	if (m->out.heap && m->out.cap > KEEP_BUF)
		ipc_wbuf_free(&m->out);
	if (!m->out.heap)
		ipc_wbuf_init(&m->out, m->inline_buf, sizeof m->inline_buf);
	m->out.len = 0;
	m->out.failed = 0;
	if (m->cap > KEEP_ENTRIES) {
		free(m->ent);
		m->ent = NULL;
		m->cap = 0;
	}
	if (m->tcap > KEEP_ENTRIES) {
		free(m->tmp);
		m->tmp = NULL;
		m->tcap = 0;
	}
	m->nent = 0;
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
	enc_mem *m = take_mem(L);
	enc_state st;
	st.L = L;
	st.m = m;
	st.arg = idx;
	st.anchor = lua_gettop(L);
	st.anchor_used = 0;
	st.depth = 0;
	ipc_enc_magic(&m->out);
	enc_value(&st, idx, lua_type(L, idx));
	check_buf(&st);
	lua_pushlstring(L, (const char *)m->out.data, m->out.len);
	lua_insert(L, -3);
	give_back_mem(L, m, st.anchor_used);
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
