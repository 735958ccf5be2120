/* Object names, the documented 64-bit hash, and unique ids. */
#ifndef IPC_NAMES_H
#define IPC_NAMES_H

#include <stddef.h>
#include <stdint.h>

#ifndef IPC_NAME_MAX
#define IPC_NAME_MAX 250
#endif

/* A letter followed by letters, digits, '_', '-' or '.', 1..250 characters
 * in all.  The leading letter keeps "." and ".." (and every hidden or
 * temporary file, which start with '.') out of the name space. */
int ipc_name_valid(const char *s, size_t len);
#define IPC_NAME_RULE                                                                              \
	"a name is a letter followed by letters, digits, '_', '-' or '.', 1 to 250 characters"

/* FNV-1a, 64-bit: offset basis 14695981039346656037, prime 1099511628211. */
uint64_t ipc_hash64(const void *data, size_t len);

/* 11 characters + NUL: a lowercase letter ('a' + h % 26) followed by the
 * ten base-62 digits (0-9A-Za-z, most significant first) of h / 26. */
void ipc_hash_name(const void *data, size_t len, char out[12]);

/* 11 characters + NUL: an uppercase letter, then ten base-62 digits, from
 * 64 bits mixing a random seed, time, pid and a counter. */
void ipc_uid(char out[12]);

#endif
