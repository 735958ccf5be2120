#include "proc.h"

#include "procid.h"
#include "signals.h"
#include "wait.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ---- children whose handles were collected before they ended ---- */

static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t *pending;
static size_t npending, cap_pending;

/* At exit or when the module is unloaded: the list goes with it. */
__attribute__((destructor)) static void pending_free(void)
{
	free(pending);
	pending = NULL;
	npending = cap_pending = 0;
}

static void proc_atfork_child(void)
{
	npending = 0; /* our parent's children are not ours */
}

void ipc_child_sweep(void)
{
	pthread_mutex_lock(&pending_lock);
	size_t j = 0;
	for (size_t i = 0; i < npending; i++) {
		int st;
		pid_t r = waitpid(pending[i], &st, WNOHANG);
		if (r == 0 || (r < 0 && errno == EINTR))
			pending[j++] = pending[i];
	}
	npending = j;
	pthread_mutex_unlock(&pending_lock);
}

static void remember(pid_t pid)
{
	pthread_mutex_lock(&pending_lock);
	if (npending == cap_pending) {
		size_t cap = cap_pending ? cap_pending * 2 : 16;
		pid_t *a = realloc(pending, cap * sizeof *a);
		if (a) {
			pending = a;
			cap_pending = cap;
		}
	}
	if (npending < cap_pending)
		pending[npending++] = pid;
	pthread_mutex_unlock(&pending_lock);
}

/* ---- handles ---- */

static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
	/* pidfd_open sets close-on-exec itself */
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	return -1;
#endif
}

void ipc_child_init(ipc_child *c, pid_t pid)
{
	ipc_atfork_child(proc_atfork_child);
	c->pid = pid;
	c->reaped = 0;
	c->status = 0;
	c->parent = ipc_self_pid();
	/* Race-free: an unreaped child's pid cannot be reused. */
	c->pidfd = open_pidfd(pid);
}

static void close_pidfd(ipc_child *c)
{
	if (c->pidfd >= 0)
		close(c->pidfd);
	c->pidfd = -1;
}

/* waitpid(WNOHANG) once: 1 reaped now (or before), 0 running, -1 error. */
static int try_reap(ipc_child *c, ipc_error *err)
{
	if (c->reaped)
		return 1;
	if (c->parent != ipc_self_pid())
		return ipc_fail(err, ECHILD, "process %d is not a child of this process",
		                (int)c->pid),
		       -1;
	for (;;) {
		int st;
		pid_t r = waitpid(c->pid, &st, WNOHANG);
		if (r == c->pid) {
			c->reaped = 1;
			c->status = st;
			close_pidfd(c);
			return 1;
		}
		if (r == 0)
			return 0;
		if (errno == EINTR)
			continue;
		return ipc_fail_os(err, errno, "process %d: cannot wait", (int)c->pid), -1;
	}
}

int ipc_child_wait(ipc_child *c, const ipc_deadline *dl, unsigned sigsnap, ipc_error *err)
{
	int64_t pause = 1000000; /* polling without a pidfd: 1 ms, growing */
	for (;;) {
		int r = try_reap(c, err);
		if (r != 0)
			return r > 0 ? IPC_OK : IPC_ERR;
		/* The signal first (the wait module's order): one that arrived
		 * during the last slice must not be lost to the timeout.  One
		 * landing between this check and the sleep is seen after at most
		 * one slice. */
		int64_t slice;
		r = ipc_wait_slice(dl, IPC_SLICE_NS, sigsnap, &slice);
		if (r != IPC_OK)
			return r;
		if (c->pidfd >= 0) {
			struct pollfd pfd = {c->pidfd, POLLIN, 0};
			int ms = (int)((slice + 999999) / 1000000);
			ipc_wait_enter();
			int pr = poll(&pfd, 1, ms);
			int e = errno;
			ipc_wait_leave();
			if (pr < 0 && e != EINTR)
				close_pidfd(c); /* fall back to polling */
		} else {
			if (slice > pause)
				slice = pause;
			if (pause < 10000000)
				pause *= 2;
			struct timespec ts = {0, (long)slice};
			ipc_wait_enter();
			nanosleep(&ts, NULL);
			ipc_wait_leave();
		}
	}
}

int ipc_child_kill(ipc_child *c, int sig, ipc_error *err)
{
	/* Reap first: the pid of a reaped child may belong to someone else. */
	int r = try_reap(c, err);
	if (r != 0)
		return r > 0 ? 1 : IPC_ERR;
	int rc;
#ifdef SYS_pidfd_send_signal
	if (c->pidfd >= 0)
		rc = (int)syscall(SYS_pidfd_send_signal, c->pidfd, sig, NULL, 0);
	else
#endif
		rc = kill(c->pid, sig);
	if (rc == 0)
		return IPC_OK;
	if (errno == ESRCH)
		return 1;
	return ipc_fail_os(err, errno, "process %d: cannot send signal %d", (int)c->pid, sig);
}

void ipc_child_forget(ipc_child *c)
{
	if (c->pid > 0 && !c->reaped && c->parent == ipc_self_pid()) {
		ipc_error err;
		if (try_reap(c, &err) == 0)
			remember(c->pid);
		ipc_child_sweep();
	}
	close_pidfd(c);
	c->pid = 0;
}

/* ---- spawning ---- */

enum { STAGE_CHDIR = 1, STAGE_EXEC = 2 };
typedef struct child_report {
	int stage, err;
} child_report;

static void report_and_exit(int fd, int stage, int e)
{
	child_report rep = {stage, e};
	ssize_t n = write(fd, &rep, sizeof rep);
	(void)n;
	_exit(127);
}

/* Full paths to try for argv0, built before fork (no malloc in the child). */
static char **candidates(const char *argv0, ipc_error *err)
{
	if (strchr(argv0, '/')) {
		char **v = calloc(2, sizeof *v);
		if (v && !(v[0] = strdup(argv0))) {
			free(v);
			v = NULL;
		}
		if (!v)
			ipc_fail(err, ENOMEM, "out of memory");
		return v;
	}
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/bin:/usr/bin";
	size_t n = 2;
	for (const char *s = path; *s; s++)
		n += *s == ':';
	char **v = calloc(n, sizeof *v);
	if (!v) {
		ipc_fail(err, ENOMEM, "out of memory");
		return NULL;
	}
	size_t k = 0;
	const char *s = path;
	for (;;) {
		const char *e = strchr(s, ':');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		size_t sz = len + strlen(argv0) + 3;
		char *full = malloc(sz);
		if (!full) {
			for (size_t i = 0; i < k; i++)
				free(v[i]);
			free(v);
			ipc_fail(err, ENOMEM, "out of memory");
			return NULL;
		}
		if (len == 0) /* an empty entry means the current directory */
			snprintf(full, sz, "./%s", argv0);
		else
			snprintf(full, sz, "%.*s/%s", (int)len, s, argv0);
		v[k++] = full;
		if (!e)
			break;
		s = e + 1;
	}
	return v;
}

static void free_strv(char **v)
{
	if (!v)
		return;
	for (size_t i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

/* In the child: only async-signal-safe calls from here on. */
static void child_exec(int wfd, char **paths, char *const argv[], char **sh_argv,
                       char *const envp[], const char *cwd, const sigset_t *mask)
{
	for (int s = 1; s < NSIG; s++) {
		struct sigaction sa;
		if (sigaction(s, NULL, &sa) != 0)
			continue;
		if (!(sa.sa_flags & SA_SIGINFO) &&
		    (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN))
			continue;
		signal(s, SIG_DFL);
	}
	sigprocmask(SIG_SETMASK, mask, NULL);
	if (cwd && chdir(cwd) != 0)
		report_and_exit(wfd, STAGE_CHDIR, errno);
	int best = ENOENT;
	for (size_t i = 0; paths[i]; i++) {
		execve(paths[i], argv, envp);
		int e = errno;
		if (e == ENOEXEC) {
			/* not a binary and no #!: run it with the shell, like execvp */
			sh_argv[1] = paths[i];
			execve("/bin/sh", sh_argv, envp);
			e = errno;
		}
		if (e == EACCES)
			best = EACCES;
		else if (e != ENOENT && e != ENOTDIR && e != ESTALE && e != ENODEV &&
		         e != ETIMEDOUT) {
			report_and_exit(wfd, STAGE_EXEC, e);
		}
	}
	report_and_exit(wfd, STAGE_EXEC, best);
}

int ipc_spawn(ipc_child *c, char *const argv[], char *const envp[], const char *cwd, ipc_error *err)
{
	c->pid = 0;
	c->pidfd = -1;
	c->reaped = 0;
	ipc_child_sweep();
	char **paths = candidates(argv[0], err);
	if (!paths)
		return IPC_ERR;
	size_t argc = 0;
	while (argv[argc])
		argc++;
	char **sh_argv = calloc(argc + 2, sizeof *sh_argv);
	if (!sh_argv) {
		free_strv(paths);
		return ipc_fail(err, ENOMEM, "out of memory");
	}
	sh_argv[0] = "sh";
	for (size_t i = 1; i < argc; i++)
		sh_argv[i + 1] = argv[i];
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		int e = errno;
		free(sh_argv);
		free_strv(paths);
		return ipc_fail_os(err, e, "spawn: cannot create a pipe");
	}
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid_t pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		child_exec(pfd[1], paths, argv, sh_argv, envp ? envp : environ, cwd, &old);
	}
	int fork_errno = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(pfd[1]);
	free(sh_argv);
	free_strv(paths);
	if (pid < 0) {
		close(pfd[0]);
		return ipc_fail_os(err, fork_errno, "spawn: cannot fork");
	}
	child_report rep;
	ssize_t n;
	do
		n = read(pfd[0], &rep, sizeof rep);
	while (n < 0 && errno == EINTR);
	close(pfd[0]);
	if (n == (ssize_t)sizeof rep) {
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		if (rep.stage == STAGE_CHDIR)
			return ipc_fail_os(err, rep.err, "spawn: cannot change to directory '%s'",
			                   cwd);
		return ipc_fail_os(err, rep.err, "spawn: cannot run '%s'", argv[0]);
	}
	ipc_child_init(c, pid);
	return IPC_OK;
}

/* ---- signal names ---- */

static const struct {
	const char *name;
	int sig;
} signames[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},       {"QUIT", SIGQUIT}, {"ILL", SIGILL},
    {"TRAP", SIGTRAP}, {"ABRT", SIGABRT},     {"IOT", SIGIOT},   {"BUS", SIGBUS},
    {"FPE", SIGFPE},   {"KILL", SIGKILL},     {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},
    {"USR2", SIGUSR2}, {"PIPE", SIGPIPE},     {"ALRM", SIGALRM}, {"TERM", SIGTERM},
    {"CHLD", SIGCHLD}, {"CONT", SIGCONT},     {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},
    {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},     {"URG", SIGURG},   {"XCPU", SIGXCPU},
    {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH},
    {"IO", SIGIO},     {"POLL", SIGPOLL},     {"PWR", SIGPWR},   {"SYS", SIGSYS},
};

int ipc_signal_number(const char *name)
{
	if (strncasecmp(name, "SIG", 3) == 0)
		name += 3;
	for (size_t i = 0; i < sizeof signames / sizeof signames[0]; i++)
		if (strcasecmp(name, signames[i].name) == 0)
			return signames[i].sig;
	return 0;
}
