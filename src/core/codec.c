/* The value codec: writer buffer and the bounds-checked reader.  See
 * codec.h for the grammar and docs/design.md for the details. */
#include "codec.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void ipc_wbuf_init(ipc_wbuf *b, void *storage, size_t cap)
{
	b->data = storage;
	b->cap = storage ? cap : 0;
	b->len = 0;
	b->failed = 0;
	b->heap = 0;
}

void ipc_wbuf_free(ipc_wbuf *b)
{
	if (b->heap)
		free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->heap = 0;
}

int ipc_wbuf_grow(ipc_wbuf *b, size_t n)
{
	if (b->failed)
		return -1;
	if (n > IPC_CODEC_MAX_SIZE + 32 - b->len) {
		b->failed = 2;
		return -1;
	}
	size_t need = b->len + n;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	unsigned char *p = b->heap ? realloc(b->data, cap) : malloc(cap);
	if (!p) {
		b->failed = 1;
		return -1;
	}
	if (!b->heap && b->len)
		memcpy(p, b->data, b->len);
	b->heap = 1;
	b->data = p;
	b->cap = cap;
	return 0;
}

int ipc_reader_fail(ipc_reader *r, size_t pos, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->err, sizeof r->err, fmt, ap);
	va_end(ap);
	r->err_pos = pos;
	return -1;
}

int ipc_reader_init(ipc_reader *r, const void *p, size_t len)
{
	r->p = p;
	r->pos = 0;
	r->len = len;
	r->owed = 0;
	r->depth = 0;
	r->err_pos = 0;
	r->err[0] = 0;
	if (len == 0)
		return ipc_reader_fail(r, 0, "empty input");
	if (r->p[0] != IPC_CODEC_MAGIC)
		return ipc_reader_fail(r, 0,
		                       "not an encoded value (first byte 0x%02x, expected 0x%02x "
		                       "for format version %d)",
		                       r->p[0], IPC_CODEC_MAGIC, IPC_CODEC_VERSION);
	r->pos = 1;
	r->owed = 1; /* the root value */
	return 0;
}

/* A varint at r->pos; item is the offset of the item for messages. */
static int read_varint(ipc_reader *r, size_t item, uint64_t *out)
{
	uint64_t v = 0;
	for (unsigned shift = 0, i = 0;; shift += 7, i++) {
		if (r->pos >= r->len)
			return ipc_reader_fail(r, item, "truncated input");
		unsigned c = r->p[r->pos++];
		if (i == 9 && c > 1)
			return ipc_reader_fail(r, item, "bad varint (more than 64 bits)");
		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			if (c == 0 && i > 0)
				return ipc_reader_fail(r, item, "bad varint (overlong)");
			*out = v;
			return 0;
		}
	}
}

/* Bytes left for the current item once the announced ones are set aside. */
static size_t room(const ipc_reader *r)
{
	size_t rem = r->len - r->pos;
	return r->owed > rem ? 0 : rem - r->owed;
}

int ipc_read_item(ipc_reader *r, ipc_item *it)
{
	size_t at = r->pos;
	it->pos = at;
	if (r->owed == 0)
		return ipc_reader_fail(r, at, "no value expected here");
	if (at >= r->len)
		return ipc_reader_fail(r, at, "truncated input");
	r->owed--;
	unsigned tag = r->p[r->pos++];
	if (tag >= IPC_TAG_FIXINT) {
		it->type = IPC_V_INT;
		it->i = tag & 0x7f;
		return 0;
	}
	if (tag >= IPC_TAG_SHORTSTR) {
		size_t n = tag & 0x3f;
		if (n > room(r))
			return r->len - r->pos < n
			           ? ipc_reader_fail(r, at, "truncated input")
			           : ipc_reader_fail(r, at, "string length %zu exceeds input", n);
		it->type = IPC_V_STRING;
		it->s = (const char *)r->p + r->pos;
		it->len = n;
		r->pos += n;
		return 0;
	}
	uint64_t u, m;
	switch (tag) {
	case IPC_TAG_NIL:
		it->type = IPC_V_NIL;
		return 0;
	case IPC_TAG_FALSE:
	case IPC_TAG_TRUE:
		it->type = IPC_V_BOOL;
		it->b = tag == IPC_TAG_TRUE;
		return 0;
	case IPC_TAG_INT:
		if (read_varint(r, at, &u) != 0)
			return -1;
		it->type = IPC_V_INT;
		it->i = ipc_unzigzag(u);
		if (it->i >= 0 && it->i <= IPC_FIXINT_MAX)
			return ipc_reader_fail(r, at,
			                       "non-canonical integer (use the 1-byte form)");
		return 0;
	case IPC_TAG_FLOAT:
		if (r->len - r->pos < 8)
			return ipc_reader_fail(r, at, "truncated input");
		u = 0;
		for (int i = 0; i < 8; i++)
			u |= (uint64_t)r->p[r->pos + i] << (8 * i);
		r->pos += 8;
		memcpy(&it->d, &u, 8);
		it->type = IPC_V_FLOAT;
		return 0;
	case IPC_TAG_STR:
		if (read_varint(r, at, &u) != 0)
			return -1;
		if (u <= IPC_SHORTSTR_MAX)
			return ipc_reader_fail(r, at, "non-canonical string (use the short form)");
		if (u > room(r))
			return ipc_reader_fail(r, at, "string length %llu exceeds input",
			                       (unsigned long long)u);
		it->type = IPC_V_STRING;
		it->s = (const char *)r->p + r->pos;
		it->len = (size_t)u;
		r->pos += (size_t)u;
		return 0;
	case IPC_TAG_TABLE: {
		if (read_varint(r, at, &u) != 0 || read_varint(r, at, &m) != 0)
			return -1;
		size_t left = room(r);
		/* each array item takes >= 1 byte, each pair >= 2 */
		if (u > left || m > (left - u) / 2)
			return ipc_reader_fail(r, at,
			                       "table size (%llu items, %llu pairs) exceeds input",
			                       (unsigned long long)u, (unsigned long long)m);
		if (r->depth >= IPC_CODEC_MAX_DEPTH)
			return ipc_reader_fail(r, at, "nesting deeper than %d",
			                       IPC_CODEC_MAX_DEPTH);
		r->depth++;
		r->owed += (size_t)u + 2 * (size_t)m;
		it->type = IPC_V_TABLE;
		it->narr = u;
		it->nhash = m;
		return 0;
	}
	default:
		return ipc_reader_fail(r, at, "bad tag 0x%02x", tag);
	}
}

int ipc_reader_finish(ipc_reader *r)
{
	if (r->owed != 0 || r->depth != 0)
		return ipc_reader_fail(r, r->pos, "truncated input");
	if (r->pos != r->len)
		return ipc_reader_fail(r, r->pos, "trailing garbage (%zu bytes)", r->len - r->pos);
	return 0;
}

static int cmp_keys(const ipc_keyseq *ks, int kind, const ipc_item *key)
{
	switch (kind) {
	case IPC_K_INT:
		return key->i < ks->i ? -1 : key->i > ks->i;
	case IPC_K_FLOAT:
		return key->d < ks->d ? -1 : key->d > ks->d;
	case IPC_K_STR: {
		int c = memcmp(key->s, ks->s, key->len < ks->n ? key->len : ks->n);
		if (c)
			return c;
		return key->len < ks->n ? -1 : key->len > ks->n;
	}
	default: /* booleans: kind says it all; tables: unordered */
		return kind == IPC_K_TABLE ? 1 : 0;
	}
}

int ipc_keyseq_next(ipc_reader *r, ipc_keyseq *ks, const ipc_item *key)
{
	int kind;
	switch (key->type) {
	case IPC_V_NIL:
		return ipc_reader_fail(r, key->pos, "nil table key");
	case IPC_V_BOOL:
		kind = key->b ? IPC_K_TRUE : IPC_K_FALSE;
		break;
	case IPC_V_INT:
		if (key->i >= 1 && (uint64_t)key->i <= ks->narr + 1)
			return ipc_reader_fail(r, key->pos,
			                       "integer key %lld belongs in the array part",
			                       (long long)key->i);
		kind = IPC_K_INT;
		break;
	case IPC_V_FLOAT:
		if (isnan(key->d))
			return ipc_reader_fail(r, key->pos, "NaN table key");
		if (key->d >= -0x1p63 && key->d < 0x1p63 && key->d == floor(key->d))
			return ipc_reader_fail(r, key->pos,
			                       "float key with an integer value (not canonical)");
		kind = IPC_K_FLOAT;
		break;
	case IPC_V_STRING:
		kind = IPC_K_STR;
		break;
	default:
		kind = IPC_K_TABLE;
		break;
	}
	if (kind < ks->kind)
		return ipc_reader_fail(r, key->pos, "table keys out of order");
	if (kind == ks->kind) {
		int c = cmp_keys(ks, kind, key);
		if (c == 0)
			return ipc_reader_fail(r, key->pos, "duplicate table key");
		if (c < 0)
			return ipc_reader_fail(r, key->pos, "table keys out of order");
	}
	ks->kind = kind;
	if (kind == IPC_K_INT)
		ks->i = key->i;
	else if (kind == IPC_K_FLOAT)
		ks->d = key->d;
	else if (kind == IPC_K_STR) {
		ks->s = key->s;
		ks->n = key->len;
	}
	return 0;
}

static int skip_table(ipc_reader *r, const ipc_item *t);

static int skip_value(ipc_reader *r, ipc_item *it)
{
	if (ipc_read_item(r, it) != 0)
		return -1;
	return it->type == IPC_V_TABLE ? skip_table(r, it) : 0;
}

static int skip_table(ipc_reader *r, const ipc_item *t)
{
	ipc_item it;
	ipc_keyseq ks;
	for (uint64_t i = 0; i < t->narr; i++) {
		if (skip_value(r, &it) != 0)
			return -1;
		if (it.type == IPC_V_NIL)
			return ipc_reader_fail(r, it.pos, "nil value in table");
	}
	ipc_keyseq_init(&ks, t->narr);
	for (uint64_t i = 0; i < t->nhash; i++) {
		if (ipc_read_item(r, &it) != 0 || ipc_keyseq_next(r, &ks, &it) != 0)
			return -1;
		if (it.type == IPC_V_TABLE && skip_table(r, &it) != 0)
			return -1;
		if (skip_value(r, &it) != 0)
			return -1;
		if (it.type == IPC_V_NIL)
			return ipc_reader_fail(r, it.pos, "nil value in table");
	}
	ipc_reader_leave(r);
	return 0;
}

int ipc_codec_validate(const void *p, size_t len, ipc_reader *r)
{
	ipc_item it;
	if (ipc_reader_init(r, p, len) != 0 || skip_value(r, &it) != 0)
		return -1;
	return ipc_reader_finish(r);
}
