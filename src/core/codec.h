/* The value codec: a versioned, self-delimiting binary format for nil,
 * booleans, integers, floats, strings and tables of these.  Pure C; the
 * encoder's walk state is codec_walk.h, the Lua walk src/lua/l_codec.c.
 * The format is described byte by byte in docs/design.md.
 *
 *   encoding := MAGIC value          MAGIC = 0xC0 | IPC_CODEC_VERSION
 *   value    := 0x00                           nil
 *             | 0x01 | 0x02                    false | true
 *             | 0x80..0xFF                     integer 0..127 (tag & 0x7F)
 *             | 0x03 varint                    integer, zigzag
 *             | 0x04 b0..b7                    float, IEEE-754 bits, little-endian
 *             | 0x40..0x7F bytes               string of (tag & 0x3F) bytes
 *             | 0x05 varint bytes              string of any length
 *             | 0x06 varint(n) varint(m) value*n (value value)*m
 *                                              table: n array items (keys 1..n)
 *                                              then m key/value pairs
 *   varint   := LEB128, 7 bits per byte, low first, at most 10 bytes,
 *               no redundant trailing zero byte. */
#ifndef IPC_CODEC_H
#define IPC_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define IPC_CODEC_VERSION 1
#define IPC_CODEC_MAGIC (0xC0 | IPC_CODEC_VERSION)
#define IPC_CODEC_MAX_DEPTH 200 /* tables nested in tables, root = 1 */
/* Largest encoding the writer produces (a runaway DAG is an error, not an
 * endless allocation). */
#define IPC_CODEC_MAX_SIZE ((size_t)1 << 31)

enum {
	IPC_TAG_NIL = 0x00,
	IPC_TAG_FALSE = 0x01,
	IPC_TAG_TRUE = 0x02,
	IPC_TAG_INT = 0x03,
	IPC_TAG_FLOAT = 0x04,
	IPC_TAG_STR = 0x05,
	IPC_TAG_TABLE = 0x06,
	IPC_TAG_SHORTSTR = 0x40, /* 0x40..0x7F: length in the low 6 bits */
	IPC_TAG_FIXINT = 0x80    /* 0x80..0xFF: integer 0..127 */
};

#define IPC_SHORTSTR_MAX 63
#define IPC_FIXINT_MAX 127

/* ---- writer: a growable malloc'd buffer ---- */

typedef struct ipc_wbuf {
	unsigned char *data;
	size_t len, cap;
	int failed; /* sticky: 1 out of memory, 2 over IPC_CODEC_MAX_SIZE */
	int heap;   /* data is malloc'd (else caller's initial storage) */
} ipc_wbuf;

/* Start empty, or in caller-supplied storage of cap bytes (grown into the
 * heap when it is too small). */
void ipc_wbuf_init(ipc_wbuf *b, void *storage, size_t cap);
void ipc_wbuf_free(ipc_wbuf *b);
/* Make room for n more bytes: 0, or -1 (b->failed set; later writes are
 * dropped until the caller notices). */
int ipc_wbuf_grow(ipc_wbuf *b, size_t n);

static inline int ipc_wbuf_reserve(ipc_wbuf *b, size_t n)
{
	return b->cap - b->len >= n ? 0 : ipc_wbuf_grow(b, n);
}

static inline unsigned ipc_varint_put(unsigned char *p, uint64_t v)
{
	unsigned n = 0;
	while (v >= 0x80) {
		p[n++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (unsigned char)v;
	return n;
}

static inline uint64_t ipc_zigzag(int64_t v)
{
	return ((uint64_t)v << 1) ^ (uint64_t)(v < 0 ? -1 : 0);
}

static inline int64_t ipc_unzigzag(uint64_t u)
{
	return (int64_t)((u >> 1) ^ ((uint64_t)0 - (u & 1)));
}

static inline void ipc_enc_magic(ipc_wbuf *b)
{
	if (ipc_wbuf_reserve(b, 1) == 0)
		b->data[b->len++] = IPC_CODEC_MAGIC;
}

static inline void ipc_enc_nil(ipc_wbuf *b)
{
	if (ipc_wbuf_reserve(b, 1) == 0)
		b->data[b->len++] = IPC_TAG_NIL;
}

static inline void ipc_enc_bool(ipc_wbuf *b, int v)
{
	if (ipc_wbuf_reserve(b, 1) == 0)
		b->data[b->len++] = v ? IPC_TAG_TRUE : IPC_TAG_FALSE;
}

static inline void ipc_enc_int(ipc_wbuf *b, int64_t v)
{
	if (ipc_wbuf_reserve(b, 11) != 0)
		return;
	if (v >= 0 && v <= IPC_FIXINT_MAX) {
		b->data[b->len++] = (unsigned char)(IPC_TAG_FIXINT | v);
		return;
	}
	b->data[b->len++] = IPC_TAG_INT;
	b->len += ipc_varint_put(b->data + b->len, ipc_zigzag(v));
}

static inline void ipc_enc_float(ipc_wbuf *b, double v)
{
	uint64_t u;
	if (ipc_wbuf_reserve(b, 9) != 0)
		return;
	memcpy(&u, &v, 8);
	unsigned char *p = b->data + b->len;
	p[0] = IPC_TAG_FLOAT;
	for (int i = 0; i < 8; i++)
		p[1 + i] = (unsigned char)(u >> (8 * i));
	b->len += 9;
}

static inline void ipc_enc_string(ipc_wbuf *b, const void *s, size_t n)
{
	if (n > IPC_CODEC_MAX_SIZE) {
		b->failed = 2;
		return;
	}
	if (ipc_wbuf_reserve(b, n + 11) != 0)
		return;
	if (n <= IPC_SHORTSTR_MAX) {
		b->data[b->len++] = (unsigned char)(IPC_TAG_SHORTSTR | n);
	} else {
		b->data[b->len++] = IPC_TAG_STR;
		b->len += ipc_varint_put(b->data + b->len, n);
	}
	if (n)
		memcpy(b->data + b->len, s, n);
	b->len += n;
}

/* A table header; then narr values (keys 1..narr) and nhash key/value
 * pairs must follow. */
static inline void ipc_enc_table(ipc_wbuf *b, uint64_t narr, uint64_t nhash)
{
	if (ipc_wbuf_reserve(b, 21) != 0)
		return;
	b->data[b->len++] = IPC_TAG_TABLE;
	b->len += ipc_varint_put(b->data + b->len, narr);
	b->len += ipc_varint_put(b->data + b->len, nhash);
}

/* ---- reader: bounds-checked pull parser ---- */

enum { IPC_V_NIL, IPC_V_BOOL, IPC_V_INT, IPC_V_FLOAT, IPC_V_STRING, IPC_V_TABLE };

typedef struct ipc_item {
	int type; /* IPC_V_* */
	int b;    /* IPC_V_BOOL */
	int64_t i;
	double d;
	const char *s; /* IPC_V_STRING: points into the input */
	size_t len;
	uint64_t narr, nhash; /* IPC_V_TABLE */
	size_t pos;           /* offset of the item's tag */
} ipc_item;

typedef struct ipc_reader {
	const unsigned char *p;
	size_t pos, len;
	/* Bytes still owed: one per announced item not yet started.  Every
	 * length and count is checked against len - pos - owed, so what a
	 * decoder preallocates never exceeds the input's size in total. */
	size_t owed;
	int depth; /* open tables */
	size_t err_pos;
	char err[96];
} ipc_reader;

/* Check the magic byte.  0 or -1 (r->err, r->err_pos set). */
int ipc_reader_init(ipc_reader *r, const void *p, size_t len);
/* Read the next item.  For a table, the caller reads it->narr values and
 * it->nhash pairs, then calls ipc_reader_leave.  0 or -1. */
int ipc_read_item(ipc_reader *r, ipc_item *it);
static inline void ipc_reader_leave(ipc_reader *r)
{
	r->depth--;
}
/* After the root value: the whole input must have been used.  0 or -1. */
int ipc_reader_finish(ipc_reader *r);
/* Set an error found by the caller (nil key, duplicate key...): -1. */
int ipc_reader_fail(ipc_reader *r, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Keys of a table's hash part must come in strictly increasing order:
 * false < true < integers < floats < strings (bytewise, then shorter
 * first) < tables (any order among themselves).  So there are no
 * duplicates, and a value without table keys has exactly one encoding.
 * Integer keys 1..narr+1 belong in the array part; floats with an integer
 * value in the 64-bit range are integer keys in Lua; nil and NaN are not
 * keys.  ipc_keyseq checks all of this without building anything. */
enum { IPC_K_FALSE, IPC_K_TRUE, IPC_K_INT, IPC_K_FLOAT, IPC_K_STR, IPC_K_TABLE };

typedef struct ipc_keyseq {
	int kind; /* of the previous key; -1 before the first */
	int64_t i;
	double d;
	const char *s;
	size_t n;
	uint64_t narr;
} ipc_keyseq;

static inline void ipc_keyseq_init(ipc_keyseq *ks, uint64_t narr)
{
	ks->kind = -1;
	ks->narr = narr;
}
/* key: the item just read for the next key.  0 or -1. */
int ipc_keyseq_next(ipc_reader *r, ipc_keyseq *ks, const ipc_item *key);

/* Check a whole encoding without building anything: 0 or -1 with the
 * message in r. */
int ipc_codec_validate(const void *p, size_t len, ipc_reader *r);

#endif
