/* The value codec: writer buffer and the bounds-checked reader.  See
 * codec.h for the grammar and docs/design/codec.md for the details. */
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

static int skip_value(ipc_reader *r, int *type, double *d)
{
	ipc_item it;
	if (ipc_read_item(r, &it) != 0)
		return -1;
	*type = it.type;
	*d = it.type == IPC_V_FLOAT ? it.d : 0;
	if (it.type != IPC_V_TABLE)
		return 0;
	int t;
	double kd;
	for (uint64_t i = 0; i < it.narr; i++) {
		size_t at = r->pos;
		if (skip_value(r, &t, &kd) != 0)
			return -1;
		if (t == IPC_V_NIL)
			return ipc_reader_fail(r, at, "nil value in table");
	}
	for (uint64_t i = 0; i < it.nhash; i++) {
		size_t at = r->pos;
		if (skip_value(r, &t, &kd) != 0)
			return -1;
		if (t == IPC_V_NIL)
			return ipc_reader_fail(r, at, "nil table key");
		if (t == IPC_V_FLOAT && isnan(kd))
			return ipc_reader_fail(r, at, "NaN table key");
		at = r->pos;
		if (skip_value(r, &t, &kd) != 0)
			return -1;
		if (t == IPC_V_NIL)
			return ipc_reader_fail(r, at, "nil value in table");
	}
	ipc_reader_leave(r);
	return 0;
}

int ipc_codec_validate(const void *p, size_t len, ipc_reader *r)
{
	int t;
	double d;
	if (ipc_reader_init(r, p, len) != 0 || skip_value(r, &t, &d) != 0)
		return -1;
	return ipc_reader_finish(r);
}
