#include "signals.h"

#include "procid.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_CLEANUP 1024
#define PATH_MAX_LEN 4096

typedef struct cleanup_entry {
	char *path;
	unsigned long dev, ino;
	int pid;
} cleanup_entry;

static cleanup_entry cleanup[MAX_CLEANUP];
static volatile sig_atomic_t ncleanup;
static volatile unsigned sigcount;
static volatile sig_atomic_t in_wait;
static const int handled[] = {SIGINT, SIGTERM, SIGHUP};
static struct sigaction previous[3];

unsigned ipc_signal_count(void)
{
	return sigcount == IPC_UNINTERRUPTIBLE ? 0 : sigcount;
}

int ipc_signal_since(unsigned sigsnap)
{
	return sigsnap != IPC_UNINTERRUPTIBLE && ipc_signal_count() != sigsnap;
}

/* Only async-signal-safe calls: stat, unlink, getpid. */
static void unlink_ours(void)
{
	int pid = (int)getpid();
	for (int i = 0; i < ncleanup; i++) {
		cleanup_entry *e = &cleanup[i];
		struct stat st;
		if (!e->path || e->pid != pid)
			continue;
		if (stat(e->path, &st) == 0 && st.st_dev == e->dev && st.st_ino == e->ino)
			unlink(e->path);
	}
}

static void on_signal(int sig, siginfo_t *info, void *uc)
{
	sigcount++;
	for (int i = 0; i < 3; i++) {
		if (handled[i] != sig)
			continue;
		struct sigaction *prev = &previous[i];
		if (prev->sa_flags & SA_SIGINFO) {
			if (prev->sa_sigaction)
				prev->sa_sigaction(sig, info, uc);
			return;
		}
		if (prev->sa_handler == SIG_IGN)
			return;
		if (prev->sa_handler != SIG_DFL) {
			prev->sa_handler(sig);
			return;
		}
		if (sig == SIGINT && in_wait)
			return; /* the wait returns IPC_INTERRUPTED */
		unlink_ours();
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
}

void ipc_wait_enter(void)
{
	in_wait = in_wait + 1;
}
void ipc_wait_leave(void)
{
	in_wait = in_wait - 1;
}

static void at_exit(void)
{
	ipc_cleanup_run();
}

void ipc_signals_install(void)
{
	static int done;
	struct sigaction sa, cur;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO; /* no SA_RESTART: a futex wait returns EINTR */
	sigemptyset(&sa.sa_mask);
	if (!done) {
		done = 1;
		atexit(at_exit);
	}
	for (int i = 0; i < 3; i++) {
		/* (Re)install when someone (lua.c, a script) replaced ours. */
		if (sigaction(handled[i], NULL, &cur) != 0)
			continue;
		if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_signal)
			continue;
		previous[i] = cur;
		sigaction(handled[i], &sa, NULL);
	}
}

void ipc_cleanup_add(const char *path, unsigned long dev, unsigned long ino)
{
	int pid = (int)getpid();
	for (int i = 0; i < ncleanup; i++) {
		cleanup_entry *e = &cleanup[i];
		/* the same path again (or after forget): reuse the entry for
		 * the file that is there now; pid last, as the handler reads it */
		if (e->path && (e->pid == pid || e->pid == 0) && strcmp(e->path, path) == 0) {
			e->pid = 0;
			atomic_signal_fence(memory_order_seq_cst);
			e->dev = dev;
			e->ino = ino;
			atomic_signal_fence(memory_order_seq_cst);
			e->pid = pid;
			return;
		}
	}
	if (ncleanup >= MAX_CLEANUP)
		return;
	char *copy = strdup(path);
	if (!copy)
		return;
	cleanup_entry *e = &cleanup[ncleanup];
	e->dev = dev;
	e->ino = ino;
	e->pid = pid;
	e->path = copy;
	ncleanup = ncleanup + 1; /* publish last: the handler may run any time */
}

void ipc_cleanup_forget(const char *path)
{
	for (int i = 0; i < ncleanup; i++)
		if (cleanup[i].path && strcmp(cleanup[i].path, path) == 0)
			cleanup[i].pid = 0;
}

void ipc_cleanup_run(void)
{
	unlink_ours();
	int n = ncleanup;
	ncleanup = 0;
	for (int i = 0; i < n; i++) {
		free(cleanup[i].path);
		cleanup[i].path = NULL;
	}
}
