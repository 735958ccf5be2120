/* The encoder's walk state, without Lua: what a binding needs besides
 * reading its own values (src/lua/l_codec.c is the Lua one).
 *
 *  - the output buffer (ipc_wbuf, starting in inline storage);
 *  - the path from the root to the table being encoded: cycle and depth
 *    checks, and where the walk is inside each level, for error messages
 *    ("at value.a[2]");
 *  - the scratch of a table's hash part: its pairs kept as C scalars,
 *    sorted into the canonical key order of codec.h before they are
 *    written (so equal tables without table keys encode to equal strings);
 *  - trimming what grew large, so a cached walk state stays small.
 * A table key or value is not kept here: the binding anchors it somewhere
 * of its own and records the anchor's index in n. */
#ifndef IPC_CODEC_WALK_H
#define IPC_CODEC_WALK_H

#include "codec.h"

/* One key or value kept in C: kind IPC_K_* (codec.h). */
typedef struct ipc_cval {
	int kind;
	size_t n;     /* IPC_K_STR: length; IPC_K_TABLE: the binding's anchor index */
	uint64_t pfx; /* IPC_K_STR keys: first 8 bytes, big-endian, 0-padded */
	union {
		int64_t i;
		double d;
		const char *s; /* must stay valid until the walk ends */
	} u;
} ipc_cval;

/* One pair of a hash part. */
typedef struct ipc_cpair {
	ipc_cval k, v;
} ipc_cpair;

/* Where the walk is inside one level (for error messages). */
enum { IPC_AT_NONE, IPC_AT_INDEX, IPC_AT_VALUE, IPC_AT_KEY };
typedef struct ipc_clevel {
	int mode;
	int64_t index; /* IPC_AT_INDEX: the array index */
	size_t ent;    /* IPC_AT_VALUE, IPC_AT_KEY: the pair's index in ent */
} ipc_clevel;

#define IPC_CWALK_INLINE 256

typedef struct ipc_cwalk {
	ipc_wbuf out;
	ipc_cpair *ent; /* hash-part pairs of the tables on the path, stacked */
	size_t nent, cap;
	ipc_cpair *tmp; /* merge sort scratch */
	size_t tcap;
	int depth; /* tables on the current path */
	const void *path[IPC_CODEC_MAX_DEPTH];
	ipc_clevel lv[IPC_CODEC_MAX_DEPTH];
	unsigned char inline_buf[IPC_CWALK_INLINE];
} ipc_cwalk;

/* Results of ipc_cwalk_enter. */
enum { IPC_CW_OK = 0, IPC_CW_CYCLE = 1, IPC_CW_DEEP = 2 };

void ipc_cwalk_init(ipc_cwalk *w);
/* Free everything (the struct itself is the caller's). */
void ipc_cwalk_free(ipc_cwalk *w);
/* Ready for the next encoding; memory that grew large is freed. */
void ipc_cwalk_reset(ipc_cwalk *w);

/* Enter the table identified by `table` (any stable address): IPC_CW_OK,
 * or IPC_CW_CYCLE (it is already on the path) or IPC_CW_DEEP (over
 * IPC_CODEC_MAX_DEPTH), in which case nothing was entered.  Its level
 * starts in mode IPC_AT_NONE. */
int ipc_cwalk_enter(ipc_cwalk *w, const void *table);
static inline ipc_clevel *ipc_cwalk_level(ipc_cwalk *w)
{
	return &w->lv[w->depth - 1];
}
static inline void ipc_cwalk_leave(ipc_cwalk *w)
{
	w->depth--;
}

/* A new pair at ent[nent++] (uninitialised), or NULL: out of memory. */
ipc_cpair *ipc_cwalk_new_pair(ipc_cwalk *w);
/* Sort ent[base .. base+n) by key: 0, or -1 (out of memory). */
int ipc_cwalk_sort(ipc_cwalk *w, size_t base, size_t n);

/* Fill v->pfx of a string key (used by the sort). */
void ipc_cval_key_prefix(ipc_cval *v);
/* Write a scalar (not a table). */
void ipc_cval_put(ipc_wbuf *b, const ipc_cval *v);

/* The path to where the walk is, as " at value.a[2]" ("" at the root), in
 * buf (always terminated; long paths keep their first and last 6 steps). */
void ipc_cwalk_path(const ipc_cwalk *w, char *buf, size_t size);

#endif
