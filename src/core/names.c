#include "names.h"

#include "common.h"

#include <stdatomic.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static int is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int ipc_name_valid(const char *s, size_t len)
{
	if (len < 1 || len > IPC_NAME_MAX || !is_alpha(s[0]))
		return 0;
	for (size_t i = 1; i < len; i++)
		if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
			return 0;
	return 1;
}

uint64_t ipc_hash64(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 14695981039346656037ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static const char digits62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static void encode(uint64_t h, char first_base, char out[12])
{
	out[0] = (char)(first_base + (char)(h % 26));
	h /= 26;
	for (int i = 10; i >= 1; i--) {
		out[i] = digits62[h % 62];
		h /= 62;
	}
	out[11] = 0;
}

void ipc_hash_name(const void *data, size_t len, char out[12])
{
	encode(ipc_hash64(data, len), 'a', out);
}

/* splitmix64 finaliser */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

void ipc_uid(char out[12])
{
	static _Atomic uint64_t counter;
	uint64_t seed = 0;
	if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
		seed = 0;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t x = seed ^ mix((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec);
	x = mix(x ^ ((uint64_t)getpid() << 32) ^ atomic_fetch_add(&counter, 1));
	encode(x, 'A', out);
}
