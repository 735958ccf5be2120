#include "procid.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

int32_t ipc_self_pid_;
ipc_token ipc_self_token_;
static void (*child_hooks[16])(void);
static int nchild_hooks;

/* Field 22 of /proc/PID/stat: start time in clock ticks since boot.  The
 * command name (field 2) may hold spaces and parentheses, so parse from the
 * last ')'. Returns 0 when unreadable. */
static uint64_t start_ticks(int32_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	p++;
	/* p is at the space before field 3; field 22 is 19 spaces on */
	for (int field = 3; field < 22 && p; field++) {
		p = strchr(p + 1, ' ');
	}
	if (!p)
		return 0;
	return strtoull(p + 1, NULL, 10);
}

static ipc_token make_token(int32_t pid, uint64_t ticks)
{
	return (ipc_token)(uint32_t)pid | (ticks & ((1ULL << 42) - 1)) << 22;
}

void ipc_procid_refresh_(void)
{
	int32_t pid = (int32_t)getpid();
	ipc_self_token_ = make_token(pid, start_ticks(pid));
	ipc_self_pid_ = pid;
}

static void after_fork_child(void)
{
	ipc_procid_refresh_();
	for (int i = 0; i < nchild_hooks; i++)
		child_hooks[i]();
}

void ipc_procid_init(void)
{
	static int done;
	if (done)
		return;
	done = 1;
	ipc_procid_refresh_();
	pthread_atfork(NULL, NULL, after_fork_child);
}

void ipc_atfork_child(void (*fn)(void))
{
	for (int i = 0; i < nchild_hooks; i++)
		if (child_hooks[i] == fn)
			return;
	if (nchild_hooks < 16)
		child_hooks[nchild_hooks++] = fn;
}

int ipc_pid_alive(int32_t pid)
{
	if (pid <= 0)
		return 0;
	if (kill(pid, 0) == 0 || errno == EPERM) {
		/* a zombie has exited: it holds nothing any more */
		char path[64], buf[512];
		snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return 1;
		ssize_t n = read(fd, buf, sizeof buf - 1);
		close(fd);
		if (n <= 0)
			return 1;
		buf[n] = 0;
		char *p = strrchr(buf, ')');
		if (p && (p[2] == 'Z' || p[2] == 'X'))
			return 0;
		return 1;
	}
	return 0;
}

int ipc_token_alive(ipc_token t)
{
	int32_t pid = IPC_TOKEN_PID(t);
	if (!ipc_pid_alive(pid))
		return 0;
	uint64_t want = t >> 22;
	if (want == 0)
		return 1;
	uint64_t have = start_ticks(pid) & ((1ULL << 42) - 1);
	return have == 0 || have == want;
}
