/* The encoder's walk state: see codec_walk.h. */
#include "codec_walk.h"

#include <stdio.h>
#include <stdlib.h>

#define KEEP_BUF (1u << 20) /* keep a grown output buffer up to this */
#define KEEP_ENTRIES 16384  /* ... and the pair scratch up to this */

void ipc_cwalk_init(ipc_cwalk *w)
{
	ipc_wbuf_init(&w->out, w->inline_buf, sizeof w->inline_buf);
	w->ent = w->tmp = NULL;
	w->nent = w->cap = w->tcap = 0;
	w->depth = 0;
}

void ipc_cwalk_free(ipc_cwalk *w)
{
	ipc_wbuf_free(&w->out);
	free(w->ent);
	w->ent = NULL;
	w->nent = w->cap = 0;
	free(w->tmp);
	w->tmp = NULL;
	w->tcap = 0;
}

void ipc_cwalk_reset(ipc_cwalk *w)
{
	if (w->out.heap && w->out.cap > KEEP_BUF)
		ipc_wbuf_free(&w->out);
	if (!w->out.heap)
		ipc_wbuf_init(&w->out, w->inline_buf, sizeof w->inline_buf);
	w->out.len = 0;
	w->out.failed = 0;
	if (w->cap > KEEP_ENTRIES) {
		free(w->ent);
		w->ent = NULL;
		w->cap = 0;
	}
	if (w->tcap > KEEP_ENTRIES) {
		free(w->tmp);
		w->tmp = NULL;
		w->tcap = 0;
	}
	w->nent = 0;
	w->depth = 0;
}

int ipc_cwalk_enter(ipc_cwalk *w, const void *table)
{
	for (int i = 0; i < w->depth; i++)
		if (w->path[i] == table)
			return IPC_CW_CYCLE;
	if (w->depth >= IPC_CODEC_MAX_DEPTH)
		return IPC_CW_DEEP;
	w->path[w->depth] = table;
	w->lv[w->depth++].mode = IPC_AT_NONE;
	return IPC_CW_OK;
}

ipc_cpair *ipc_cwalk_new_pair(ipc_cwalk *w)
{
	if (w->nent == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		ipc_cpair *e =
		    cap < (size_t)-1 / sizeof *e ? realloc(w->ent, cap * sizeof *e) : NULL;
		if (!e)
			return NULL;
		w->ent = e;
		w->cap = cap;
	}
	return &w->ent[w->nent++];
}

/* ---- the canonical key order (codec.h) ---- */

void ipc_cval_key_prefix(ipc_cval *v)
{
	v->pfx = 0;
	for (size_t i = 0; i < 8; i++)
		v->pfx = v->pfx << 8 | (i < v->n ? (unsigned char)v->u.s[i] : 0);
}

static inline int key_cmp(const ipc_cpair *a, const ipc_cpair *b)
{
	const ipc_cval *x = &a->k, *y = &b->k;
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

static void insertion_sort(ipc_cpair *e, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		ipc_cpair x = e[i];
		size_t j = i;
		while (j > 0 && key_cmp(&x, &e[j - 1]) < 0) {
			e[j] = e[j - 1];
			j--;
		}
		e[j] = x;
	}
}

/* Insertion sort for small hash parts (records, the common case), else
 * bottom-up merge sort of 16-entry runs through w->tmp. */
int ipc_cwalk_sort(ipc_cwalk *w, size_t base, size_t n)
{
	enum { RUN = 16 };
	if (n <= RUN) {
		insertion_sort(w->ent + base, n);
		return 0;
	}
	if (w->tcap < n) {
		ipc_cpair *t = n < (size_t)-1 / sizeof *t ? malloc(n * sizeof *t) : NULL;
		if (!t)
			return -1;
		free(w->tmp);
		w->tmp = t;
		w->tcap = n;
	}
	ipc_cpair *src = w->ent + base, *dst = w->tmp;
	for (size_t i = 0; i < n; i += RUN)
		insertion_sort(src + i, n - i < RUN ? n - i : RUN);
	for (size_t width = RUN; width < n; width *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * width) {
			size_t mid = lo + width < n ? lo + width : n;
			size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
			size_t i = lo, j = mid, k = lo;
			while (i < mid && j < hi)
				dst[k++] = key_cmp(&src[j], &src[i]) < 0 ? src[j++] : src[i++];
			while (i < mid)
				dst[k++] = src[i++];
			while (j < hi)
				dst[k++] = src[j++];
		}
		ipc_cpair *x = src;
		src = dst;
		dst = x;
	}
	if (src != w->ent + base)
		memcpy(w->ent + base, src, n * sizeof *src);
	return 0;
}

void ipc_cval_put(ipc_wbuf *b, const ipc_cval *v)
{
	switch (v->kind) {
	case IPC_K_FALSE:
	case IPC_K_TRUE:
		ipc_enc_bool(b, v->kind == IPC_K_TRUE);
		break;
	case IPC_K_INT:
		ipc_enc_int(b, v->u.i);
		break;
	case IPC_K_FLOAT:
		ipc_enc_float(b, v->u.d);
		break;
	case IPC_K_STR:
		ipc_enc_string(b, v->u.s, v->n);
		break;
	}
}

/* ---- the path to the bad value, for error messages ---- */

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

static void render_key(const ipc_cval *k, char *buf, size_t size)
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
		snprintf(buf, size, "[%.17g]", k->u.d);
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

static void path_component(const ipc_cwalk *w, int d, char *buf, size_t size)
{
	const ipc_clevel *lv = &w->lv[d];
	buf[0] = 0;
	if (lv->mode == IPC_AT_INDEX)
		snprintf(buf, size, "[%lld]", (long long)lv->index);
	else if (lv->mode == IPC_AT_KEY)
		snprintf(buf, size, "<key>");
	else if (lv->mode == IPC_AT_VALUE)
		render_key(&w->ent[lv->ent].k, buf, size);
}

static void append(char *buf, size_t size, size_t *o, const char *s)
{
	size_t n = strlen(s);
	if (*o + n >= size)
		n = size - 1 - *o;
	memcpy(buf + *o, s, n);
	*o += n;
	buf[*o] = 0;
}

void ipc_cwalk_path(const ipc_cwalk *w, char *buf, size_t size)
{
	char comp[128];
	size_t o = 0;
	buf[0] = 0;
	int n = w->depth;
	while (n > 0 && w->lv[n - 1].mode == IPC_AT_NONE)
		n--;
	if (n == 0)
		return;
	append(buf, size, &o, " at value");
	for (int d = 0; d < n; d++) {
		if (n > 12 && d == 6) {
			append(buf, size, &o, "...");
			d = n - 6;
		}
		path_component(w, d, comp, sizeof comp);
		append(buf, size, &o, comp);
	}
}
