/* ipc.encode / ipc.decode: walk Lua values into the core codec format
 * (src/core/codec.h) and back.
 *
 * Encoding.  Memory is owned by a userdata (enc_mem) with a __gc, so a Lua
 * error (bad value, out of memory) raised anywhere in the walk leaks
 * nothing.  Tables: the array items 1..n (n = the first border found by
 * counting from 1) go first, in order; the other keys are collected, their
 * key/value pairs anchored in a scratch Lua table, and sorted (booleans,
 * integers, floats, strings, then table keys in traversal order) so that
 * equal tables with no table keys encode to equal strings.  Cycles (a table
 * met again while it is on the current path) and nesting deeper than
 * IPC_CODEC_MAX_DEPTH are errors; shared sub-tables that are not cycles are
 * encoded once per reference.
 *
 * Decoding never trusts the input: every read is bounds-checked by the core
 * reader, counts are checked against the bytes left before a table is
 * preallocated, nil / NaN keys, nil values and duplicate keys are errors. */
#include "../core/codec.h"
#include "codec.h"
#include "modules.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENC_META "interprocess.codec.buffer"
#define ENC_INLINE 256

enum { K_FALSE, K_TRUE, K_INT, K_FLOAT, K_STR, K_TABLE };

typedef struct hkey {
	int kind;
	lua_Integer i;
	lua_Number d;
	const char *s; /* K_STR: the anchored key string */
	size_t n;
	size_t slot; /* key at anchor[2*slot-1], value at anchor[2*slot] */
} hkey;

/* Everything malloc'd during one encode; freed by __gc after an error. */
typedef struct enc_mem {
	ipc_wbuf out;
	hkey *keys;
	size_t nkeys, kcap;
	unsigned char inline_buf[ENC_INLINE];
} enc_mem;

/* Where the walk is inside one table level (for error paths). */
enum { AT_INDEX, AT_VALUE, AT_KEY };
typedef struct enc_level {
	int mode;
	lua_Integer index; /* AT_INDEX */
	size_t slot;       /* AT_VALUE, AT_KEY */
} enc_level;

typedef struct enc_state {
	lua_State *L;
	enc_mem *m;
	int arg;    /* argument number for messages */
	int anchor; /* stack index: scratch table, or nil until needed */
	int depth;  /* tables on the current path */
	const void *path[IPC_CODEC_MAX_DEPTH];
	enc_level lv[IPC_CODEC_MAX_DEPTH];
} enc_state;

static int mem_gc(lua_State *L)
{
	enc_mem *m = lua_touserdata(L, 1);
	ipc_wbuf_free(&m->out);
	free(m->keys);
	m->keys = NULL;
	m->nkeys = m->kcap = 0;
	return 0;
}

/* ---- error messages with the path to the bad value ---- */

static int is_ident(const char *s, size_t n)
{
	if (n == 0 || n > 40 || !(s[0] == '_' || ((s[0] | 32) >= 'a' && (s[0] | 32) <= 'z')))
		return 0;
	for (size_t i = 1; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(c == '_' || (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z')))
			return 0;
	}
	return 1;
}

/* One path component for level d into buf. */
static void path_component(enc_state *st, int d, char *buf, size_t size)
{
	lua_State *L = st->L;
	const enc_level *lv = &st->lv[d];
	if (lv->mode == AT_INDEX) {
		snprintf(buf, size, "[%lld]", (long long)lv->index);
		return;
	}
	if (lv->mode == AT_KEY) {
		snprintf(buf, size, "<key>");
		return;
	}
	lua_rawgeti(L, st->anchor, (lua_Integer)(2 * lv->slot - 1));
	switch (lua_type(L, -1)) {
	case LUA_TSTRING: {
		size_t n;
		const char *s = lua_tolstring(L, -1, &n);
		if (is_ident(s, n)) {
			snprintf(buf, size, ".%s", s);
			break;
		}
		size_t o = 0;
		buf[o++] = '[';
		buf[o++] = '"';
		for (size_t i = 0; i < n && o + 12 < size; i++) {
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
	case LUA_TNUMBER:
		if (lua_isinteger(L, -1))
			snprintf(buf, size, "[%lld]", (long long)lua_tointeger(L, -1));
		else
			snprintf(buf, size, "[%.17g]", (double)lua_tonumber(L, -1));
		break;
	case LUA_TBOOLEAN:
		snprintf(buf, size, "[%s]", lua_toboolean(L, -1) ? "true" : "false");
		break;
	default:
		snprintf(buf, size, "[table]");
		break;
	}
	lua_pop(L, 1);
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
	if (st->depth > 0) {
		luaL_addstring(&B, " at value");
		for (int d = 0; d < st->depth; d++) {
			if (st->depth > 12 && d == 6) {
				luaL_addstring(&B, "...");
				d = st->depth - 6;
			}
			path_component(st, d, comp, sizeof comp);
			luaL_addstring(&B, comp);
		}
	}
	luaL_pushresult(&B);
	return luaL_argerror(L, st->arg, lua_tostring(L, -1));
}

static int enc_fail_type(enc_state *st, int idx, const char *as)
{
	lua_State *L = st->L;
	int t = lua_type(L, idx);
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

static void enc_value(enc_state *st, int idx);

static int hkey_cmp(const void *a, const void *b)
{
	const hkey *x = a, *y = b;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	switch (x->kind) {
	case K_INT:
		return x->i < y->i ? -1 : x->i > y->i;
	case K_FLOAT:
		return x->d < y->d ? -1 : x->d > y->d;
	case K_STR: {
		int c = memcmp(x->s, y->s, x->n < y->n ? x->n : y->n);
		if (c)
			return c;
		return x->n < y->n ? -1 : x->n > y->n;
	}
	default:
		return x->slot < y->slot ? -1 : x->slot > y->slot;
	}
}

static hkey *new_key(enc_state *st)
{
	enc_mem *m = st->m;
	if (m->nkeys == m->kcap) {
		size_t cap = m->kcap ? m->kcap * 2 : 32;
		hkey *k = cap < (size_t)-1 / sizeof *k ? realloc(m->keys, cap * sizeof *k) : NULL;
		if (!k)
			luaL_error(st->L, "ipc.encode: not enough memory");
		m->keys = k;
		m->kcap = cap;
	}
	return &m->keys[m->nkeys++];
}

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

	/* array part: 1..narr all non-nil */
	lua_Integer narr = 0;
	while (lua_rawgeti(L, t, narr + 1) != LUA_TNIL) {
		lua_pop(L, 1);
		narr++;
	}
	lua_pop(L, 1);

	/* the other keys, anchored with their values */
	size_t base = st->m->nkeys;
	lua_pushnil(L);
	while (lua_next(L, t)) {
		int kt = lua_type(L, -2);
		if (kt == LUA_TNUMBER && lua_isinteger(L, -2)) {
			lua_Integer k = lua_tointeger(L, -2);
			if (k >= 1 && k <= narr) {
				lua_pop(L, 1);
				continue;
			}
		}
		if (kt != LUA_TBOOLEAN && kt != LUA_TNUMBER && kt != LUA_TSTRING &&
		    kt != LUA_TTABLE)
			enc_fail_type(st, -2, " as a table key");
		if (lua_isnil(L, st->anchor)) {
			lua_createtable(L, 32, 0);
			lua_replace(L, st->anchor);
		}
		hkey *h = new_key(st);
		h->slot = st->m->nkeys;
		switch (kt) {
		case LUA_TBOOLEAN:
			h->kind = lua_toboolean(L, -2) ? K_TRUE : K_FALSE;
			break;
		case LUA_TNUMBER:
			if (lua_isinteger(L, -2)) {
				h->kind = K_INT;
				h->i = lua_tointeger(L, -2);
			} else {
				h->kind = K_FLOAT;
				h->d = lua_tonumber(L, -2);
			}
			break;
		case LUA_TSTRING:
			h->kind = K_STR;
			h->s = lua_tolstring(L, -2, &h->n);
			break;
		default:
			h->kind = K_TABLE;
			break;
		}
		lua_Integer slot = (lua_Integer)h->slot;
		lua_rawseti(L, st->anchor, 2 * slot); /* pops the value */
		lua_pushvalue(L, -1);
		lua_rawseti(L, st->anchor, 2 * slot - 1);
	}
	size_t nhash = st->m->nkeys - base;
	if (nhash > 1)
		qsort(st->m->keys + base, nhash, sizeof(hkey), hkey_cmp);

	ipc_enc_table(b, (uint64_t)narr, (uint64_t)nhash);
	check_buf(st);
	st->path[st->depth] = ptr;
	enc_level *lv = &st->lv[st->depth++];
	int top = lua_gettop(L) + 1;
	lv->mode = AT_INDEX;
	for (lua_Integer i = 1; i <= narr; i++) {
		lv->index = i;
		if (lua_rawgeti(L, t, i) == LUA_TNIL)
			enc_fail(st, "table changed while being encoded");
		enc_value(st, top);
		lua_pop(L, 1);
	}
	for (size_t j = 0; j < nhash; j++) {
		const hkey *h = &st->m->keys[base + j]; /* re-read: keys may move */
		lua_Integer slot = (lua_Integer)h->slot;
		lv->slot = h->slot;
		switch (h->kind) {
		case K_FALSE:
		case K_TRUE:
			ipc_enc_bool(b, h->kind == K_TRUE);
			break;
		case K_INT:
			ipc_enc_int(b, (int64_t)h->i);
			break;
		case K_FLOAT:
			ipc_enc_float(b, (double)h->d);
			break;
		case K_STR:
			ipc_enc_string(b, h->s, h->n);
			break;
		default:
			lv->mode = AT_KEY;
			lua_rawgeti(L, st->anchor, 2 * slot - 1);
			enc_table(st, top);
			lua_pop(L, 1);
			break;
		}
		lv->mode = AT_VALUE;
		lua_rawgeti(L, st->anchor, 2 * slot);
		enc_value(st, top);
		lua_pop(L, 1);
	}
	check_buf(st);
	st->depth--;
	st->m->nkeys = base;
}

static void enc_value(enc_state *st, int idx)
{
	lua_State *L = st->L;
	ipc_wbuf *b = &st->m->out;
	switch (lua_type(L, idx)) {
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
		enc_fail_type(st, idx, "");
	}
}

void ipcl_encode(lua_State *L, int idx)
{
	idx = lua_absindex(L, idx);
	luaL_checkstack(L, 8, "ipc.encode");
	enc_mem *m = lua_newuserdatauv(L, sizeof *m, 0);
	ipc_wbuf_init(&m->out, m->inline_buf, sizeof m->inline_buf);
	m->keys = NULL;
	m->nkeys = m->kcap = 0;
	if (luaL_newmetatable(L, ENC_META)) {
		lua_pushcfunction(L, mem_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_setmetatable(L, -2);
	lua_pushnil(L); /* anchor */
	enc_state st;
	st.L = L;
	st.m = m;
	st.arg = idx;
	st.anchor = lua_gettop(L);
	st.depth = 0;
	ipc_enc_magic(&m->out);
	enc_value(&st, idx);
	check_buf(&st);
	lua_pushlstring(L, (const char *)m->out.data, m->out.len);
	ipc_wbuf_free(&m->out);
	free(m->keys);
	m->keys = NULL;
	m->nkeys = m->kcap = 0;
	lua_replace(L, -3);
	lua_pop(L, 1);
}

/* ---- decoding ---- */

static int dec_fail(lua_State *L, const ipc_reader *r)
{
	lua_Debug ar;
	if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.name &&
	    strcmp(ar.name, "decode") != 0)
		return luaL_error(L, "%s: stored value is corrupt (ipc.decode: %s at byte %I)",
		                  ar.name, r->err, (lua_Integer)r->err_pos + 1);
	return luaL_error(L, "ipc.decode: %s at byte %I", r->err, (lua_Integer)r->err_pos + 1);
}

static int size_hint(uint64_t n)
{
	return n > (1u << 24) ? 1 << 24 : (int)n;
}

static void dec_value(lua_State *L, ipc_reader *r);

static void dec_table(lua_State *L, ipc_reader *r, const ipc_item *it)
{
	luaL_checkstack(L, 6, "ipc.decode");
	uint64_t narr = it->narr, nhash = it->nhash;
	lua_createtable(L, size_hint(narr), size_hint(nhash));
	for (uint64_t i = 1; i <= narr; i++) {
		size_t at = r->pos;
		dec_value(L, r);
		if (lua_isnil(L, -1)) {
			ipc_reader_fail(r, at, "nil value in table");
			dec_fail(L, r);
		}
		lua_rawseti(L, -2, (lua_Integer)i);
	}
	for (uint64_t j = 0; j < nhash; j++) {
		size_t at = r->pos;
		dec_value(L, r);
		int kt = lua_type(L, -1);
		if (kt == LUA_TNIL) {
			ipc_reader_fail(r, at, "nil table key");
			dec_fail(L, r);
		}
		if (kt == LUA_TNUMBER && !lua_isinteger(L, -1) && isnan(lua_tonumber(L, -1))) {
			ipc_reader_fail(r, at, "NaN table key");
			dec_fail(L, r);
		}
		size_t vat = r->pos;
		dec_value(L, r);
		if (lua_isnil(L, -1)) {
			ipc_reader_fail(r, vat, "nil value in table");
			dec_fail(L, r);
		}
		lua_pushvalue(L, -2);
		if (lua_rawget(L, -4) != LUA_TNIL) {
			ipc_reader_fail(r, at, "duplicate table key");
			dec_fail(L, r);
		}
		lua_pop(L, 1);
		lua_rawset(L, -3);
	}
	ipc_reader_leave(r);
}

static void dec_value(lua_State *L, ipc_reader *r)
{
	ipc_item it;
	if (ipc_read_item(r, &it) != 0)
		dec_fail(L, r);
	switch (it.type) {
	case IPC_V_NIL:
		lua_pushnil(L);
		break;
	case IPC_V_BOOL:
		lua_pushboolean(L, it.b);
		break;
	case IPC_V_INT:
		lua_pushinteger(L, (lua_Integer)it.i);
		break;
	case IPC_V_FLOAT:
		lua_pushnumber(L, (lua_Number)it.d);
		break;
	case IPC_V_STRING:
		lua_pushlstring(L, it.s, it.len);
		break;
	default:
		dec_table(L, r, &it);
		break;
	}
}

void ipcl_decode(lua_State *L, const char *s, size_t len)
{
	ipc_reader r;
	luaL_checkstack(L, 4, "ipc.decode");
	if (ipc_reader_init(&r, s, len) != 0)
		dec_fail(L, &r);
	dec_value(L, &r);
	if (ipc_reader_finish(&r) != 0)
		dec_fail(L, &r);
}

/* ---- ipc.encode / ipc.decode ---- */

static int l_encode(lua_State *L)
{
	luaL_checkany(L, 1);
	ipcl_encode(L, 1);
	return 1;
}

static int l_decode(lua_State *L)
{
	size_t len;
	if (lua_type(L, 1) != LUA_TSTRING)
		return luaL_typeerror(L, 1, "string");
	const char *s = lua_tolstring(L, 1, &len);
	ipcl_decode(L, s, len);
	return 1;
}

void ipcl_open_codec(lua_State *L)
{
	static const luaL_Reg fns[] = {{"encode", l_encode}, {"decode", l_decode}, {NULL, NULL}};
	luaL_setfuncs(L, fns, 0);
}
