/* kv storage engine: chunks, chains, hash index, crash repair.
 * The protocol and every repair case: docs/design.md. */
#include "kv.h"

#include "failpoint.h"
#include "names.h"
#include "wait.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A 64-byte chunk.  A record's first chunk carries the record header. */
typedef struct kv_chunk {
	uint32_t next; /* next chunk of this record (or of the free list), 0 = end */
	union {
		struct {
			uint32_t next_rec; /* next record in the bucket's chain */
			uint32_t hash;
			uint32_t klen;
			uint32_t vlen;
			unsigned char data[IPC_KV_FIRST_DATA];
		} h;
		unsigned char data[IPC_KV_NEXT_DATA];
	} u;
} kv_chunk;

_Static_assert(sizeof(kv_chunk) == IPC_KV_CHUNK, "chunk size");
_Static_assert(sizeof(ipc_kv_body) <= 128, "kv body header");

typedef struct kv_geometry {
	uint64_t nchunks, nbuckets, off_buckets, off_marks, off_chunks, total;
} kv_geometry;

static void geometry(uint64_t size, kv_geometry *g)
{
	g->nchunks = size / IPC_KV_CHUNK;
	g->nbuckets = 16;
	while (g->nbuckets < g->nchunks / 2)
		g->nbuckets <<= 1;
	g->off_buckets = 128;
	g->off_marks = g->off_buckets + IPC_ALIGN_UP(g->nbuckets * 4, 64);
	g->off_chunks = g->off_marks + IPC_ALIGN_UP((g->nchunks + 63) / 64 * 8, 64);
	g->total = g->off_chunks + g->nchunks * IPC_KV_CHUNK;
}

static int kv_layout(const uint64_t *params, uint64_t *body_size, ipc_error *err)
{
	if (params[0] < IPC_KV_SIZE_MIN || params[0] > IPC_KV_SIZE_MAX)
		return ipc_fail(err, 0, "size %llu out of range (%d..2^36)",
		                (unsigned long long)params[0], IPC_KV_SIZE_MIN);
	kv_geometry g;
	geometry(params[0], &g);
	*body_size = g.total;
	return IPC_OK;
}

static void format_free_list(ipc_kv *kv);

static int kv_init(void *body, const uint64_t *params, ipc_error *err)
{
	ipc_segment seg;
	ipc_header hdr;
	memset(&seg, 0, sizeof seg);
	memset(&hdr, 0, sizeof hdr);
	hdr.params[0] = params[0];
	seg.hdr = &hdr;
	seg.body = body;
	ipc_kv kv;
	kv_layout(params, &seg.body_size, err);
	if (ipc_kv_view(&kv, &seg))
		return ipc_fail(err, 0, "bad kv geometry");
	if (ipc_rlock_init(&kv.b->lock, err))
		return IPC_ERR;
	format_free_list(&kv); /* buckets start zero-filled: empty */
	kv.b->count = 0;
	return IPC_OK;
}

const ipc_type_ops ipc_kv_ops = {IPC_T_KV, "kv", 0, kv_layout, kv_init, NULL};

int ipc_kv_view(ipc_kv *kv, ipc_segment *seg)
{
	kv_geometry g;
	geometry(seg->hdr->params[0], &g);
	if (g.total != seg->body_size)
		return IPC_ERR;
	unsigned char *body = seg->body;
	kv->seg = seg;
	kv->b = (ipc_kv_body *)(void *)body;
	kv->buckets = (uint32_t *)(void *)(body + g.off_buckets);
	kv->marks = (uint64_t *)(void *)(body + g.off_marks);
	kv->chunks = body + g.off_chunks;
	kv->nchunks = (uint32_t)g.nchunks;
	kv->nbuckets = (uint32_t)g.nbuckets;
	return IPC_OK;
}

uint64_t ipc_kv_chunks_for(uint64_t bytes)
{
	if (bytes <= IPC_KV_FIRST_DATA)
		return 1;
	return 1 + (bytes - IPC_KV_FIRST_DATA + IPC_KV_NEXT_DATA - 1) / IPC_KV_NEXT_DATA;
}

int ipc_kv_buf_reserve(ipc_kv_buf *b, size_t need)
{
	if (need <= b->cap)
		return IPC_OK;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	char *p = realloc(b->p, cap);
	if (!p)
		return IPC_ERR;
	b->p = p;
	b->cap = cap;
	return IPC_OK;
}

void ipc_kv_buf_free(ipc_kv_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->cap = b->len = 0;
}

/* The single store that commits a mutation.  The fences keep the compiler
 * from moving any other store of ours across it: a process can die between
 * any two instructions, so program order is what the repair sees. */
static void commit(uint32_t *word, uint32_t value)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(word, value, __ATOMIC_RELEASE);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static kv_chunk *chunk(ipc_kv *kv, uint32_t idx)
{
	return (kv_chunk *)(void *)(kv->chunks + (size_t)(idx - 1) * IPC_KV_CHUNK);
}

static int idx_ok(ipc_kv *kv, uint32_t idx)
{
	return idx != 0 && idx <= kv->nchunks;
}

static uint32_t key_hash(const void *key, size_t klen)
{
	uint64_t h = ipc_hash64(key, klen);
	return (uint32_t)(h ^ (h >> 32));
}

/* Is the header of the record starting at c plausible? */
static int header_ok(ipc_kv *kv, const kv_chunk *c)
{
	return c->u.h.klen <= IPC_KV_KEY_MAX &&
	       ipc_kv_chunks_for((uint64_t)c->u.h.klen + c->u.h.vlen) <= kv->nchunks;
}

static int corrupt(ipc_kv *kv, ipc_error *err)
{
	uint32_t cut = ipc_kv_repair(kv);
	kv->b->repairs++;
	return ipc_fail(err, EUCLEAN,
	                "table was found corrupt and has been repaired (%u index chain%s cut); "
	                "retry",
	                cut, cut == 1 ? "" : "s");
}

/* Copy out (out != NULL) or compare with cmp the payload bytes [off,
 * off+len) of the record starting at chunk rec.  Returns 1 (copied /
 * equal), 0 (different) or -1 (broken chain). */
static int rec_io(ipc_kv *kv, uint32_t rec, uint64_t off, uint64_t len, char *out, const char *cmp)
{
	if (len == 0)
		return 1;
	kv_chunk *c = chunk(kv, rec);
	unsigned char *data = c->u.h.data;
	uint64_t avail = IPC_KV_FIRST_DATA, steps = 1;
	for (;;) {
		if (off < avail) {
			uint64_t n = avail - off;
			if (n > len)
				n = len;
			if (cmp) {
				if (memcmp(data + off, cmp, n) != 0)
					return 0;
				cmp += n;
			} else {
				memcpy(out, data + off, n);
				out += n;
			}
			len -= n;
			off = 0;
			if (len == 0)
				return 1;
		} else {
			off -= avail;
		}
		uint32_t next = c->next;
		if (!idx_ok(kv, next) || ++steps > kv->nchunks)
			return -1;
		c = chunk(kv, next);
		data = c->u.data;
		avail = IPC_KV_NEXT_DATA;
	}
}

/* Find key: *link is the index word that points (or would point) at its
 * record; *rec the record (0 when absent).  1 found, 0 absent, IPC_ERR. */
static int find(ipc_kv *kv, const void *key, uint32_t klen, uint32_t hash, uint32_t **linkp,
                uint32_t *recp, ipc_error *err)
{
	uint32_t *link = &kv->buckets[hash & (kv->nbuckets - 1)];
	uint64_t steps = 0;
	for (;;) {
		uint32_t idx = __atomic_load_n(link, __ATOMIC_RELAXED);
		if (idx == 0) {
			*linkp = link;
			*recp = 0;
			return 0;
		}
		if (!idx_ok(kv, idx) || ++steps > kv->nchunks)
			return corrupt(kv, err);
		kv_chunk *c = chunk(kv, idx);
		if (c->u.h.hash == hash && c->u.h.klen == klen) {
			if (!header_ok(kv, c))
				return corrupt(kv, err);
			int r = rec_io(kv, idx, 0, klen, NULL, key);
			if (r < 0)
				return corrupt(kv, err);
			if (r) {
				*linkp = link;
				*recp = idx;
				return 1;
			}
		}
		link = &c->u.h.next_rec;
	}
}

int ipc_kv_get(ipc_kv *kv, const void *key, size_t klen, ipc_kv_buf *out, ipc_error *err)
{
	if (klen > IPC_KV_KEY_MAX)
		return 0;
	uint32_t *link, rec;
	int r = find(kv, key, (uint32_t)klen, key_hash(key, klen), &link, &rec, err);
	if (r <= 0)
		return r;
	kv_chunk *c = chunk(kv, rec);
	uint32_t vlen = c->u.h.vlen;
	if (ipc_kv_buf_reserve(out, vlen ? vlen : 1))
		return ipc_fail(err, ENOMEM, "out of memory (%u bytes)", vlen);
	if (rec_io(kv, rec, klen, vlen, out->p, NULL) < 0)
		return corrupt(kv, err);
	out->len = vlen;
	return 1;
}

/* Put the record's chunks back on the free list (after it was unlinked). */
static int free_record(ipc_kv *kv, uint32_t rec, ipc_error *err)
{
	kv_chunk *c = chunk(kv, rec);
	uint64_t n = ipc_kv_chunks_for((uint64_t)c->u.h.klen + c->u.h.vlen);
	uint32_t tail = rec;
	for (uint64_t i = 1; i < n; i++) {
		tail = chunk(kv, tail)->next;
		if (!idx_ok(kv, tail))
			return corrupt(kv, err);
	}
	if (chunk(kv, tail)->next != 0 || kv->b->free_count > kv->nchunks - n)
		return corrupt(kv, err);
	chunk(kv, tail)->next = kv->b->free_head;
	ipc_failpoint("kv.free.spliced");
	kv->b->free_head = rec;
	kv->b->free_count += (uint32_t)n;
	return IPC_OK;
}

/* Sequential writer over a fresh chain of chunks. */
typedef struct kv_writer {
	ipc_kv *kv;
	kv_chunk *c;
	unsigned char *data;
	uint64_t avail, off;
} kv_writer;

static int put(kv_writer *w, const char *src, uint64_t len)
{
	while (len > 0) {
		if (w->off == w->avail) {
			uint32_t next = w->c->next;
			if (!idx_ok(w->kv, next))
				return -1;
			w->c = chunk(w->kv, next);
			w->data = w->c->u.data;
			w->avail = IPC_KV_NEXT_DATA;
			w->off = 0;
		}
		uint64_t n = w->avail - w->off;
		if (n > len)
			n = len;
		memcpy(w->data + w->off, src, n);
		w->off += n;
		src += n;
		len -= n;
	}
	return 0;
}

int ipc_kv_set(ipc_kv *kv, const void *key, size_t klen, const void *val, size_t vlen,
               ipc_error *err)
{
	ipc_kv_body *b = kv->b;
	if (klen > IPC_KV_KEY_MAX)
		return ipc_fail(err, EINVAL, "key is %zu bytes (at most %d)", klen, IPC_KV_KEY_MAX);
	uint64_t need = ipc_kv_chunks_for((uint64_t)klen + vlen);
	if (vlen > UINT32_MAX || need > kv->nchunks)
		return ipc_fail(
		    err, ENOSPC,
		    "is full: the record (%zu bytes) needs %llu chunks of %d bytes, the "
		    "whole table has %u",
		    klen + vlen, (unsigned long long)need, IPC_KV_CHUNK, kv->nchunks);
	uint32_t hash = key_hash(key, klen), *link, old;
	int r = find(kv, key, (uint32_t)klen, hash, &link, &old, err);
	if (r < 0)
		return r;
	uint32_t fc = b->free_count;
	if (fc > kv->nchunks)
		return corrupt(kv, err);
	/* The new record is written before the old one is freed, so an
	 * overwrite needs room for both for a moment. */
	if (need > fc)
		return ipc_fail(err, ENOSPC,
		                "is full: storing %zu bytes needs %llu free chunks of %d bytes, %u "
		                "free (%u in all)",
		                klen + vlen, (unsigned long long)need, IPC_KV_CHUNK, fc,
		                kv->nchunks);
	/* Take the first `need` chunks of the free list: they already form a
	 * chain.  Validate before touching anything. */
	uint32_t first = b->free_head, idx = first, last = 0;
	for (uint64_t i = 0; i < need; i++) {
		if (!idx_ok(kv, idx))
			return corrupt(kv, err);
		last = idx;
		idx = chunk(kv, idx)->next;
	}
	b->free_head = idx;
	b->free_count = fc - (uint32_t)need;
	ipc_failpoint("kv.set.allocated");
	chunk(kv, last)->next = 0;
	kv_chunk *c = chunk(kv, first);
	c->u.h.next_rec = old ? chunk(kv, old)->u.h.next_rec : 0;
	c->u.h.hash = hash;
	c->u.h.klen = (uint32_t)klen;
	c->u.h.vlen = (uint32_t)vlen;
	kv_writer w = {kv, c, c->u.h.data, IPC_KV_FIRST_DATA, 0};
	if (put(&w, key, klen) || put(&w, val, vlen))
		return corrupt(kv, err);
	ipc_failpoint("kv.set.written");
	/* Commit: one aligned store makes the new record the live one. */
	commit(link, first);
	ipc_failpoint("kv.set.committed");
	b->gen++;
	__atomic_store_n(&b->sets, b->sets + 1, __ATOMIC_RELAXED); /* under lock */
	if (old)
		return free_record(kv, old, err);
	b->count++;
	return IPC_OK;
}

int ipc_kv_delete(ipc_kv *kv, const void *key, size_t klen, ipc_error *err)
{
	if (klen > IPC_KV_KEY_MAX)
		return 0;
	uint32_t *link, rec;
	int r = find(kv, key, (uint32_t)klen, key_hash(key, klen), &link, &rec, err);
	if (r <= 0)
		return r;
	/* Commit: one store unlinks it. */
	commit(link, chunk(kv, rec)->u.h.next_rec);
	ipc_failpoint("kv.delete.committed");
	kv->b->gen++;
	if (kv->b->count > 0)
		kv->b->count--;
	if (free_record(kv, rec, err))
		return IPC_ERR;
	return 1;
}

/* Every chunk on the free list, in index order. */
static void format_free_list(ipc_kv *kv)
{
	for (uint32_t i = 1; i <= kv->nchunks; i++) {
		chunk(kv, i)->next = i < kv->nchunks ? i + 1 : 0;
		if (i == kv->nchunks / 2)
			ipc_failpoint("kv.clear.formatting");
	}
	kv->b->free_head = kv->nchunks ? 1 : 0;
	kv->b->free_count = kv->nchunks;
}

void ipc_kv_clear(ipc_kv *kv)
{
	for (uint32_t i = 0; i < kv->nbuckets; i++) {
		commit(&kv->buckets[i], 0);
		if (i == kv->nbuckets / 2)
			ipc_failpoint("kv.clear.unlinking");
	}
	format_free_list(kv);
	kv->b->count = 0;
	kv->b->gen++;
}

int ipc_kv_keys(ipc_kv *kv, ipc_kv_buf *out, uint32_t *n, ipc_error *err)
{
	uint64_t steps = 0;
	out->len = 0;
	*n = 0;
	for (uint32_t bi = 0; bi < kv->nbuckets; bi++) {
		uint32_t idx = kv->buckets[bi];
		while (idx) {
			if (!idx_ok(kv, idx) || ++steps > kv->nchunks)
				return corrupt(kv, err);
			kv_chunk *c = chunk(kv, idx);
			uint32_t klen = c->u.h.klen;
			if (!header_ok(kv, c))
				return corrupt(kv, err);
			if (ipc_kv_buf_reserve(out, out->len + 4 + klen))
				return ipc_fail(err, ENOMEM, "out of memory");
			memcpy(out->p + out->len, &klen, 4);
			if (rec_io(kv, idx, 0, klen, out->p + out->len + 4, NULL) < 0)
				return corrupt(kv, err);
			out->len += 4 + klen;
			(*n)++;
			idx = c->u.h.next_rec;
		}
	}
	return IPC_OK;
}

/* ---- repair: mark & sweep ---- */

static int marked(ipc_kv *kv, uint32_t idx)
{
	return (int)((kv->marks[(idx - 1) / 64] >> ((idx - 1) % 64)) & 1);
}

static void mark(ipc_kv *kv, uint32_t idx)
{
	kv->marks[(idx - 1) / 64] |= (uint64_t)1 << ((idx - 1) % 64);
}

/* Is idx the head of a complete record that belongs in bucket bi and
 * shares no chunk with records already marked?  Returns its chunk count
 * or 0. */
static uint64_t record_valid(ipc_kv *kv, uint32_t idx, uint32_t bi)
{
	if (!idx_ok(kv, idx) || marked(kv, idx))
		return 0;
	kv_chunk *c = chunk(kv, idx);
	if (!header_ok(kv, c) || (c->u.h.hash & (kv->nbuckets - 1)) != bi)
		return 0;
	uint64_t n = ipc_kv_chunks_for((uint64_t)c->u.h.klen + c->u.h.vlen);
	uint32_t j = idx;
	for (uint64_t i = 1; i < n; i++) {
		j = chunk(kv, j)->next;
		if (!idx_ok(kv, j) || marked(kv, j))
			return 0;
	}
	/* A chain that revisits a chunk never ends, so this also rules out
	 * cycles inside the record. */
	if (chunk(kv, j)->next != 0)
		return 0;
	/* The key must hash to what the record says, or lookups miss it. */
	char key[IPC_KV_KEY_MAX];
	uint32_t klen = c->u.h.klen;
	if (rec_io(kv, idx, 0, klen, key, NULL) < 0 || key_hash(key, klen) != c->u.h.hash)
		return 0;
	return n;
}

uint32_t ipc_kv_repair(ipc_kv *kv)
{
	ipc_kv_body *b = kv->b;
	uint32_t count = 0, cut = 0;
	memset(kv->marks, 0, (size_t)(kv->nchunks + 63) / 64 * 8);
	for (uint32_t bi = 0; bi < kv->nbuckets; bi++) {
		uint32_t *link = &kv->buckets[bi];
		uint32_t idx;
		/* Each pass marks at least one chunk: bounded by nchunks. */
		while ((idx = *link) != 0) {
			uint64_t n = record_valid(kv, idx, bi);
			if (!n) {
				commit(link, 0);
				cut++;
				break;
			}
			uint32_t j = idx;
			mark(kv, j);
			for (uint64_t i = 1; i < n; i++) {
				j = chunk(kv, j)->next;
				mark(kv, j);
			}
			count++;
			link = &chunk(kv, idx)->u.h.next_rec;
		}
	}
	ipc_failpoint("kv.repair.marked");
	uint32_t head = 0, nfree = 0;
	for (uint32_t i = kv->nchunks; i >= 1; i--) {
		if (!marked(kv, i)) {
			chunk(kv, i)->next = head;
			head = i;
			nfree++;
		}
	}
	b->free_head = head;
	b->free_count = nfree;
	b->count = count;
	return cut;
}

/* The previous holder died inside a critical section: rebuild the
 * bookkeeping from what the index reaches. */
static void repair_died(void *ctx)
{
	ipc_kv *kv = ctx;
	ipc_kv_repair(kv);
	kv->b->repairs++;
}

int ipc_kv_lock(ipc_kv *kv, const ipc_deadline *dl, unsigned sigsnap, ipc_error *err)
{
	/* held for as long as an update's function runs: no bound */
	return ipc_lock_long(&kv->b->lock, dl, sigsnap, repair_died, kv, err);
}

void ipc_kv_unlock(ipc_kv *kv)
{
	ipc_rlock_unlock(&kv->b->lock);
}
