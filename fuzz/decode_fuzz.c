/* libFuzzer harness for the core decoder (src/core/codec.c).
 *
 * For every input: ipc_codec_validate must return without reading out of
 * bounds (ASan), and when it accepts the input, copying the value item by
 * item through the ipc_enc_* writers must give back the very same bytes
 * (the format is canonical: one encoding per value, keys copied in order).
 * Build and run: see fuzz/README.md. */
#include "../src/core/codec.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int copy_value(ipc_reader *r, ipc_wbuf *out);

static int copy_table(ipc_reader *r, ipc_wbuf *out, const ipc_item *t)
{
	ipc_enc_table(out, t->narr, t->nhash);
	for (uint64_t i = 0; i < t->narr + 2 * t->nhash; i++)
		if (copy_value(r, out) != 0)
			return -1;
	ipc_reader_leave(r);
	return 0;
}

static int copy_value(ipc_reader *r, ipc_wbuf *out)
{
	ipc_item it;
	if (ipc_read_item(r, &it) != 0)
		return -1;
	switch (it.type) {
	case IPC_V_NIL:
		ipc_enc_nil(out);
		return 0;
	case IPC_V_BOOL:
		ipc_enc_bool(out, it.b);
		return 0;
	case IPC_V_INT:
		ipc_enc_int(out, it.i);
		return 0;
	case IPC_V_FLOAT:
		ipc_enc_float(out, it.d);
		return 0;
	case IPC_V_STRING:
		ipc_enc_string(out, it.s, it.len);
		return 0;
	default:
		return copy_table(r, out, &it);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ipc_reader r;
	/* a private copy of exactly size bytes, so any over-read is caught */
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	for (size_t i = 0; i < size; i++)
		buf[i] = data[i];
	int ok = ipc_codec_validate(buf, size, &r) == 0;
	if (!ok && (r.err[0] == 0 || r.err_pos > size)) {
		fprintf(stderr, "error without a message or position\n");
		abort();
	}
	if (ok) {
		ipc_wbuf out;
		ipc_wbuf_init(&out, NULL, 0);
		ipc_reader r2;
		if (ipc_reader_init(&r2, buf, size) != 0)
			abort();
		ipc_enc_magic(&out);
		if (copy_value(&r2, &out) != 0 || ipc_reader_finish(&r2) != 0)
			abort(); /* validate accepted what the item reader rejects */
		if (!out.failed &&
		    (out.len != size || (size && memcmp(out.data, buf, size) != 0))) {
			fprintf(stderr, "accepted input is not canonical\n");
			abort();
		}
		ipc_wbuf_free(&out);
	}
	free(buf);
	return 0;
}
