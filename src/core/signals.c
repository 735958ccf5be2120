#include "signals.h"

#include "procid.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The cleanup registry: any number of entries, in chunks that are only
 * ever appended (never moved or freed while the process runs), so the
 * signal handler can walk them at any moment without a lock.  An entry is
 * live while pid is this process: it is filled first and published by
 * storing pid last, and retired by clearing pid before its path is freed;
 * retired entries (removed objects, a parent's entries in a forked child)
 * are reused.  The handler only reads. */
#define CHUNK 64

typedef struct cleanup_entry {
	char *volatile path;
	unsigned long dev, ino;
	volatile sig_atomic_t pid;
} cleanup_entry;

typedef struct cleanup_chunk {
	struct cleanup_chunk *volatile next;
	cleanup_entry e[CHUNK];
} cleanup_chunk;

/* The first chunk is static: most processes need no more, and nothing is
 * left on the heap when the module is unloaded (lua5.4 dlcloses it). */
static cleanup_chunk first_chunk;
static cleanup_chunk *volatile chunks = &first_chunk;
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
	for (cleanup_chunk *c = chunks; c; c = c->next)
		for (int i = 0; i < CHUNK; i++) {
			cleanup_entry *e = &c->e[i];
			struct stat st;
			const char *path = e->path;
			if (e->pid != pid || !path)
				continue;
			if (stat(path, &st) == 0 && st.st_dev == e->dev && st.st_ino == e->ino)
				unlink(path);
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

static int installed; /* ipc_signals_install ran at least once */

void ipc_signals_check(void)
{
	struct sigaction cur;
	if (installed && sigaction(SIGINT, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
	    cur.sa_sigaction == on_signal)
		return;
	ipc_signals_install();
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
	installed = 1;
}

/* Take an entry out of the handler's view, then free its path. */
static void retire(cleanup_entry *e)
{
	e->pid = 0;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	char *path = e->path;
	e->path = NULL;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	free(path);
}

/* A retired entry (or a new chunk's first): NULL when out of memory. */
static cleanup_entry *free_entry(int pid)
{
	cleanup_chunk **link = (cleanup_chunk **)&chunks;
	for (cleanup_chunk *c = chunks; c; c = c->next) {
		for (int i = 0; i < CHUNK; i++)
			if (c->e[i].pid != pid) {
				if (c->e[i].path)
					retire(&c->e[i]); /* a parent's entry, in a forked child */
				return &c->e[i];
			}
		link = (cleanup_chunk **)&c->next;
	}
	cleanup_chunk *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	*link = c; /* appended whole: the handler sees it empty or not at all */
	return &c->e[0];
}

void ipc_cleanup_add(const char *path, unsigned long dev, unsigned long ino)
{
	int pid = (int)getpid();
	cleanup_entry *e = NULL;
	for (cleanup_chunk *c = chunks; c && !e; c = c->next)
		for (int i = 0; i < CHUNK; i++)
			if (c->e[i].pid == pid && c->e[i].path && strcmp(c->e[i].path, path) == 0) {
				e = &c->e[i];
				break;
			}
	if (e) {
		if (e->dev == dev && e->ino == ino)
			return;
		retire(e); /* the name holds a new object now: record that one */
	}
	char *copy = strdup(path);
	if (!copy || !(e = free_entry(pid))) {
		free(copy);
		return;
	}
	e->path = copy;
	e->dev = dev;
	e->ino = ino;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	e->pid = pid; /* publish last: the handler may run any time */
}

void ipc_cleanup_forget(const char *path)
{
	for (cleanup_chunk *c = chunks; c; c = c->next)
		for (int i = 0; i < CHUNK; i++)
			if (c->e[i].pid && c->e[i].path && strcmp(c->e[i].path, path) == 0)
				retire(&c->e[i]);
}

/* Chunks after the first are heap memory: give them back when the module
 * is unloaded, with the signals whose handler walks them blocked.  Its
 * atexit handler would run after this (at the same dlclose): the cleanup
 * happens here first, as it would there. */
__attribute__((destructor)) static void free_chunks(void)
{
	ipc_cleanup_run();
	sigset_t set, old;
	sigemptyset(&set);
	for (int i = 0; i < 3; i++)
		sigaddset(&set, handled[i]);
	sigprocmask(SIG_BLOCK, &set, &old);
	cleanup_chunk *c = first_chunk.next;
	first_chunk.next = NULL;
	while (c) {
		cleanup_chunk *next = c->next;
		for (int i = 0; i < CHUNK; i++)
			free(c->e[i].path);
		free(c);
		c = next;
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
}

void ipc_cleanup_run(void)
{
	unlink_ours();
	for (cleanup_chunk *c = chunks; c; c = c->next)
		for (int i = 0; i < CHUNK; i++)
			if (c->e[i].path)
				retire(&c->e[i]);
}
