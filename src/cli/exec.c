/* Running the command of `ipcsh lock`: ipcsh_run_command (plain fork, exec,
 * wait) and native.lock_run, which runs it under a lock keeper process.
 *
 * Why a keeper: the lock belongs to the process that took it, and dies with
 * it.  If ipcsh itself held the lock, `kill -9` of ipcsh would free the lock
 * while the command (and what it started) went on.  So ipcsh (the wrapper,
 * W) forks a keeper K; K takes the lock, makes itself a child subreaper,
 * runs the command C and holds the lock until C *and every descendant of C*
 * have exited: orphans of C's tree are reparented to K (PR_SET_CHILD_
 * SUBREAPER), so "K has no children left" means "nothing C started lives",
 * even for double-forked or setsid() daemons.  Only then does K unlock and
 * exit.  W reports C's exit status as soon as C exits (like flock(1), whose
 * lock lives on in the command's leftover children); killing W does not
 * touch the lock.  C gets PR_SET_PDEATHSIG(SIGKILL) so it does not outlive
 * a killed keeper.  See docs/design.md "ipcsh lock". */
#include "../core/signals.h"
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t running_child;
static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP};
#define NFORWARDED (int)(sizeof forwarded / sizeof forwarded[0])

/* A signal from the terminal already reached the child (same process
 * group); one sent to us alone (kill, a supervisor) is passed on. */
static void forward_signal(int sig, siginfo_t *info, void *uc)
{
	(void)uc;
	if (running_child > 0 && (!info || info->si_code != SI_KERNEL))
		kill(running_child, sig);
}

/* The forwarded signals are blocked across fork() until running_child
 * names the child: one arriving in between would otherwise be dropped (the
 * forwarder sees no child) and both processes would wait for ever. */
static void block_forwarded(sigset_t *old)
{
	sigset_t set;
	sigemptyset(&set);
	for (int i = 0; i < NFORWARDED; i++)
		sigaddset(&set, forwarded[i]);
	sigprocmask(SIG_BLOCK, &set, old);
}

/* Our forwarder becomes the handler the module's own signal handler chains
 * to (ipc_signals_install keeps the module's handler on top), so cleanup
 * objects and interrupted waits still see the signal.  Off: back to the
 * default disposition, as the runner leaves it between calls. */
static void set_forwarding(int on)
{
	for (int i = 0; i < NFORWARDED; i++) {
		if (on) {
			struct sigaction sa;
			memset(&sa, 0, sizeof sa);
			sa.sa_sigaction = forward_signal;
			sa.sa_flags = SA_SIGINFO;
			sigemptyset(&sa.sa_mask);
			sigaction(forwarded[i], &sa, NULL);
		} else {
			struct sigaction dfl;
			memset(&dfl, 0, sizeof dfl);
			dfl.sa_handler = SIG_DFL;
			sigemptyset(&dfl.sa_mask);
			sigaction(forwarded[i], &dfl, NULL);
		}
	}
	ipc_signals_install();
}

int ipcsh_run_command(char *const argv[])
{
	fflush(stdout);
	fflush(stderr);
	set_forwarding(1);
	sigset_t mask;
	block_forwarded(&mask);
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		sigprocmask(SIG_SETMASK, &mask, NULL);
		set_forwarding(0);
		errno = e;
		return -1;
	}
	if (pid == 0) {
		struct sigaction dfl;
		memset(&dfl, 0, sizeof dfl);
		dfl.sa_handler = SIG_DFL;
		sigemptyset(&dfl.sa_mask);
		for (int i = 0; i < NFORWARDED; i++)
			sigaction(forwarded[i], &dfl, NULL);
		sigprocmask(SIG_SETMASK, &mask, NULL);
		execvp(argv[0], argv);
		int e = errno;
		fprintf(stderr, "ipcsh: %s: %s\n", argv[0], strerror(e));
		_exit(e == ENOENT ? 127 : 126);
	}
	running_child = pid;
	sigprocmask(SIG_SETMASK, &mask, NULL);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			status = -1;
			break;
		}
	}
	running_child = 0;
	set_forwarding(0);
	if (status == -1)
		return -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}

/* ---- the lock keeper ---------------------------------------------------- */

/* Keeper -> wrapper messages, one fixed-size record per write (atomic: less
 * than PIPE_BUF).  EOF without 'S' means the keeper exited: its exit status is
 * the command's (lock already released), or it was killed. */
typedef struct keeper_msg {
	char tag;  /* 'T' not locked (timeout), 'E' error, 'C' command started,
	            * 'S' command exited while its descendants live on */
	int value; /* 'C': the command's pid; 'S': its status */
	char text[256];
} keeper_msg;

static volatile pid_t keeper_child; /* in the keeper: the command */

static void keeper_forward(int sig)
{
	if (keeper_child > 0)
		kill(keeper_child, sig);
}

static void send_msg(int fd, char tag, int value, const char *text)
{
	keeper_msg m;
	memset(&m, 0, sizeof m);
	m.tag = tag;
	m.value = value;
	if (text)
		snprintf(m.text, sizeof m.text, "%s", text);
	ssize_t n;
	do
		n = write(fd, &m, sizeof m);
	while (n < 0 && errno == EINTR);
}

static int status_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}

static void set_default(const sigset_t *unblock)
{
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	for (int i = 0; i < NFORWARDED; i++)
		sigaction(forwarded[i], &dfl, NULL);
	if (unblock)
		sigprocmask(SIG_UNBLOCK, unblock, NULL);
}

/* The keeper's life (never returns).  Stack: acquire, release, argv. */
static void keeper(lua_State *L, int fd, pid_t wrapper, char **argv, int close_early,
                   const sigset_t *mask)
{
	/* A wrapper killed while we still wait for the lock takes us along:
	 * nothing has run yet, and a lock we hold dies with us. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != wrapper)
		_exit(128 + SIGKILL);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
		send_msg(fd, 'E', 0, "cannot become a child subreaper");
		_exit(2);
	}
	/* The wrapper may be gone when we report: no SIGPIPE for us, ever. */
	signal(SIGPIPE, SIG_IGN);
	/* SIGTERM/SIGHUP kill us (no command yet); SIGINT interrupts the wait */
	set_default(NULL);
	ipc_signals_install();
	sigprocmask(SIG_SETMASK, mask, NULL); /* blocked by the wrapper across fork */
	lua_pushvalue(L, 1);
	if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
		const char *msg = lua_tostring(L, -1);
		send_msg(fd, 'E', 0, msg ? msg : "error while locking");
		_exit(2);
	}
	if (!lua_toboolean(L, -1)) {
		send_msg(fd, 'T', 0, NULL);
		_exit(1);
	}
	lua_pop(L, 1);
	/* Locked.  From here the command must not run unless we hold it: block
	 * the forwarded signals while the command is forked, then forward them. */
	sigset_t set, old;
	sigemptyset(&set);
	for (int i = 0; i < NFORWARDED; i++)
		sigaddset(&set, forwarded[i]);
	sigprocmask(SIG_BLOCK, &set, &old);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = keeper_forward;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < NFORWARDED; i++)
		sigaction(forwarded[i], &sa, NULL);
	prctl(PR_SET_PDEATHSIG, 0); /* the lock is ours now: outlive the wrapper */
	pid_t self = getpid();
	pid_t c = fork();
	if (c < 0) {
		send_msg(fd, 'E', 0, strerror(errno));
		_exit(2);
	}
	if (c == 0) {
		set_default(&set);
		signal(SIGPIPE, SIG_DFL);
		sigprocmask(SIG_SETMASK, &old, NULL);
		/* The command dies with its keeper (the lock's owner). */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != self)
			_exit(128 + SIGKILL);
		close(fd);
		execvp(argv[0], argv);
		int e = errno;
		fprintf(stderr, "ipcsh: lock: %s: %s\n", argv[0], strerror(e));
		_exit(e == ENOENT ? 127 : 126);
	}
	keeper_child = c;
	send_msg(fd, 'C', (int)c, NULL);
	sigprocmask(SIG_SETMASK, &old, NULL);
	int status = 0;
	while (waitpid(c, &status, 0) < 0 && errno == EINTR)
		;
	keeper_child = 0;
	int code = status_code(status);
	/* Reap what C left behind: orphans of its tree are our children now.
	 * With close_early (flock -o) the lock ends with C itself. */
	int lingering = 0;
	while (!close_early) {
		pid_t p = waitpid(-1, NULL, lingering ? 0 : WNOHANG);
		if (p > 0)
			continue;
		if (p < 0 && errno == EINTR)
			continue;
		if (p < 0) /* ECHILD: nothing of the command's tree is alive */
			break;
		/* p == 0: descendants live on.  Report C's status now (the wrapper
		 * returns, as flock(1) does) and hold the lock until they end. */
		send_msg(fd, 'S', code, NULL);
		close(fd);
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
		}
		lingering = 1;
	}
	lua_pushvalue(L, 2);
	lua_pcall(L, 0, 0, 0); /* unlock; dying would release it too */
	_exit(code);
}

/* The array of strings at idx as a NULL-ended argv, in a userdata pushed on
 * the stack; the strings stay alive as long as the table does. */
static char **check_argv(lua_State *L, int idx)
{
	lua_Integer n = luaL_len(L, idx);
	luaL_argcheck(L, n >= 1 && n < 100000, idx, "argv must be a non-empty array");
	char **argv = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, idx, i);
		size_t len;
		const char *s = lua_tolstring(L, -1, &len);
		if (!s || strlen(s) != len)
			luaL_argerror(L, idx, "argv items must be strings without NULs");
		argv[i - 1] = (char *)s;
		lua_pop(L, 1);
	}
	argv[n] = NULL;
	return argv;
}

/* lock_run(acquire, release, argv [, close_early])
 *   -> "done", status [, note] | "conflict" | nil, msg
 * acquire() runs in the keeper and returns true when it got the lock, false
 * on timeout; release() runs in the keeper once the command's tree is gone
 * (with close_early: once the command itself has exited). */
static int native_lock_run(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TFUNCTION);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	luaL_checktype(L, 3, LUA_TTABLE);
	int close_early = lua_toboolean(L, 4);
	lua_settop(L, 3);
	char **argv = check_argv(L, 3);
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0) {
		luaL_pushfail(L);
		lua_pushfstring(L, "cannot create a pipe: %s", strerror(errno));
		return 2;
	}
	fflush(stdout);
	fflush(stderr);
	/* SIGCHLD ignored (inherited through exec) would make children reap
	 * themselves: the keeper could not learn the command's status. */
	signal(SIGCHLD, SIG_DFL);
	set_forwarding(1);
	pid_t wrapper = getpid();
	sigset_t mask;
	block_forwarded(&mask);
	pid_t k = fork();
	if (k < 0) {
		int e = errno;
		sigprocmask(SIG_SETMASK, &mask, NULL);
		set_forwarding(0);
		close(fds[0]);
		close(fds[1]);
		luaL_pushfail(L);
		lua_pushfstring(L, "cannot fork: %s", strerror(e));
		return 2;
	}
	if (k == 0) {
		close(fds[0]);
		keeper(L, fds[1], wrapper, argv, close_early, &mask);
	}
	close(fds[1]);
	running_child = k; /* until the command starts, signals go to the keeper */
	sigprocmask(SIG_SETMASK, &mask, NULL);
	keeper_msg m;
	int started = 0, result = -1;
	char error[sizeof m.text] = "";
	for (;;) {
		size_t got = 0;
		while (got < sizeof m) {
			ssize_t r = read(fds[0], (char *)&m + got, sizeof m - got);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		if (got < sizeof m)
			break; /* EOF: the keeper exited */
		m.text[sizeof m.text - 1] = '\0';
		if (m.tag == 'C') {
			started = 1;
			running_child = (pid_t)m.value;
		} else if (m.tag == 'S') {
			result = m.value;
			break; /* the keeper lingers, holding the lock */
		} else if (m.tag == 'T') {
			result = -2;
		} else if (m.tag == 'E') {
			snprintf(error, sizeof error, "%s", m.text);
		}
	}
	close(fds[0]);
	int status = 0;
	if (result == -1 || result == -2 || error[0]) {
		while (waitpid(k, &status, 0) < 0) {
			if (errno != EINTR) {
				status = -1;
				break;
			}
		}
	}
	running_child = 0;
	set_forwarding(0);
	if (result == -2) {
		lua_pushliteral(L, "conflict");
		return 1;
	}
	if (error[0]) {
		luaL_pushfail(L);
		lua_pushstring(L, error);
		return 2;
	}
	if (result >= 0) {
		lua_pushliteral(L, "done");
		lua_pushinteger(L, result);
		return 2;
	}
	if (status != -1 && started && WIFEXITED(status)) {
		lua_pushliteral(L, "done");
		lua_pushinteger(L, WEXITSTATUS(status));
		return 2;
	}
	if (status != -1 && WIFSIGNALED(status)) {
		/* before the command started: a signal we passed on while it
		 * waited for the lock (no command ran); after: the lock is lost */
		lua_pushliteral(L, "done");
		lua_pushinteger(L, 128 + WTERMSIG(status));
		if (!started)
			return 2;
		lua_pushfstring(L, "the lock keeper (pid %d) was killed by signal %d", (int)k,
		                WTERMSIG(status));
		return 3;
	}
	luaL_pushfail(L);
	lua_pushfstring(L, "the lock keeper (pid %d) ended unexpectedly", (int)k);
	return 2;
}

/* run(argv_table) -> status | nil, message */
static int native_run(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	char **argv = check_argv(L, 1);
	int st = ipcsh_run_command(argv);
	if (st < 0) {
		luaL_pushfail(L);
		lua_pushfstring(L, "cannot run '%s': %s", argv[0], strerror(errno));
		return 2;
	}
	lua_pushinteger(L, st);
	return 1;
}

void ipcsh_push_native(lua_State *L)
{
	lua_createtable(L, 0, 2);
	lua_pushcfunction(L, native_run);
	lua_setfield(L, -2, "run");
	lua_pushcfunction(L, native_lock_run);
	lua_setfield(L, -2, "lock_run");
}
