/* ipcsh_run_command: run a program to completion (for `ipcsh lock`). */
#include "../core/signals.h"
#include "cli.h"

#include <errno.h>
#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
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
		execvp(argv[0], argv);
		int e = errno;
		fprintf(stderr, "ipcsh: %s: %s\n", argv[0], strerror(e));
		_exit(e == ENOENT ? 127 : 126);
	}
	running_child = pid;
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

/* run(argv_table) -> status | nil, message */
static int native_run(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_Integer n = luaL_len(L, 1);
	luaL_argcheck(L, n >= 1 && n < 100000, 1, "argv must be a non-empty array");
	char **argv = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, 1, i);
		size_t len;
		const char *s = lua_tolstring(L, -1, &len);
		if (!s || strlen(s) != len)
			return luaL_argerror(L, 1, "argv items must be strings without NULs");
		argv[i - 1] = (char *)s; /* kept alive: the table holds the strings */
		lua_pop(L, 1);
	}
	argv[n] = NULL;
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
	lua_createtable(L, 0, 1);
	lua_pushcfunction(L, native_run);
	lua_setfield(L, -2, "run");
}
