/* libFuzzer harness: name validation and hashing (src/core/names.c).
 * ipc_name_valid must agree with the rule "a letter, then letters, digits,
 * '_', '-' or '.', 1-250 characters in all"; ipc_hash_name must give 11 characters,
 * a lowercase letter first, followed by letters and digits, and be a
 * function of its input. */
#include "../src/core/names.h"
#include "../src/core/segment.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int digit(int c) { return c >= '0' && c <= '9'; }
static int punct(int c) { return c == '_' || c == '-' || c == '.'; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	int want = size >= 1 && size <= IPC_NAME_MAX && alpha(data[0]);
	for (size_t i = 1; want && i < size; i++)
		if (!alpha(data[i]) && !digit(data[i]) && !punct(data[i]))
			want = 0;
	int got = ipc_name_valid(s, size) ? 1 : 0;
	if (got != want)
		abort();
	char h1[12], h2[12];
	ipc_hash_name(data, size, h1);
	ipc_hash_name(s, size, h2);
	if (memcmp(h1, h2, 12) != 0 || h1[11] != 0 || strlen(h1) != 11 || !(h1[0] >= 'a' && h1[0] <= 'z'))
		abort();
	for (int i = 1; i < 11; i++)
		if (!alpha(h1[i]) && !digit(h1[i]))
			abort();
	if (!ipc_name_valid(h1, 11))
		abort();
	free(s);
	return 0;
}
