/* Processes and time: ipc.pid, ipc.sleep, ipc.clock, ipc.fork, ipc.spawn and
 * the child handles they return. */
#include "../core/common.h"
#include "../core/proc.h"
#include "../core/procid.h"
#include "../core/signals.h"
#include "modules.h"
#include "object.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct lproc {
	ipc_child c;
	lua_Integer pid; /* kept after close, for tostring */
	int open;
} lproc;

static int l_pid(lua_State *L)
{
	lua_pushinteger(L, ipc_self_pid());
	return 1;
}

static int l_clock(lua_State *L)
{
	lua_pushnumber(L, (lua_Number)ipc_now_ns() / 1e6);
	return 1;
}

/* ipc.sleep(ms): returns true; raises "interrupted" on SIGINT/TERM/HUP. */
static int l_sleep(lua_State *L)
{
	if (lua_type(L, 1) != LUA_TNUMBER)
		ipcl_typeerror(L, 1, "number (milliseconds)");
	lua_Number ms = lua_tonumber(L, 1);
	if (isnan(ms) || ms < 0)
		return ipcl_argerror(L, 1,
		                     "sleep time must be a non-negative number of milliseconds");
	unsigned snap = ipc_signal_count();
	ipc_signals_install();
	ipc_deadline dl = ipc_deadline_in(ms);
	for (;;) {
		int64_t left = ipc_deadline_left(&dl);
		if (left <= 0)
			break;
		if (ipc_signal_count() != snap)
			return ipcl_error(L, "interrupted");
		struct timespec ts = {(time_t)(left / 1000000000), (long)(left % 1000000000)};
		ipc_wait_enter();
		nanosleep(&ts, NULL);
		ipc_wait_leave();
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* ---- child handles ---- */

static const ipcl_udata_type process_type;

static lproc *new_proc(lua_State *L)
{
	lproc *p = ipcl_new_udata(L, &process_type, 0); /* closed until a child is attached */
	p->c.pidfd = -1;
	return p;
}

static lproc *check_proc(lua_State *L)
{
	lproc *p = ipcl_check_udata(L, 1, &process_type);
	if (!p->open)
		ipcl_error(L, "attempt to use a closed process");
	return p;
}

/* exit code | nil, "signal", signo */
static int push_status(lua_State *L, int st)
{
	if (WIFEXITED(st)) {
		lua_pushinteger(L, WEXITSTATUS(st));
		return 1;
	}
	lua_pushnil(L);
	if (WIFSIGNALED(st)) {
		lua_pushliteral(L, "signal");
		lua_pushinteger(L, WTERMSIG(st));
		return 3;
	}
	return 1;
}

/* h:wait([timeout_ms]) -> code | nil (timeout) | nil, "signal", signo */
static int m_wait(lua_State *L)
{
	lproc *p = check_proc(L);
	ipc_deadline dl = ipcl_opt_timeout(L, 2);
	ipc_signals_install();
	unsigned snap = ipc_signal_count();
	ipc_error err;
	int r = ipc_child_wait(&p->c, &dl, snap, &err);
	if (r == IPC_ERR)
		return ipcl_raise(L, &err);
	ipcl_check_interrupt(L, r);
	if (r == IPC_TIMEOUT) {
		lua_pushnil(L);
		return 1;
	}
	return push_status(L, p->c.status);
}

static int check_signal(lua_State *L, int idx)
{
	switch (lua_type(L, idx)) {
	case LUA_TNONE:
	case LUA_TNIL:
		return SIGTERM;
	case LUA_TNUMBER: {
		int isint;
		lua_Integer s = lua_tointegerx(L, idx, &isint);
		if (!isint || s < 0 || s >= NSIG)
			ipcl_argerror(L, idx, "invalid signal number");
		return (int)s;
	}
	case LUA_TSTRING: {
		int s = ipc_signal_number(lua_tostring(L, idx));
		if (!s)
			ipcl_argerror(
			    L, idx,
			    lua_pushfstring(L, "unknown signal '%s'", lua_tostring(L, idx)));
		return s;
	}
	default:
		return ipcl_typeerror(L, idx, "signal number or name");
	}
}

/* h:kill([signal]) -> true | false, "process has exited" */
static int m_kill(lua_State *L)
{
	lproc *p = check_proc(L);
	int sig = check_signal(L, 2);
	ipc_error err;
	int r = ipc_child_kill(&p->c, sig, &err);
	if (r == IPC_ERR)
		return ipcl_raise(L, &err);
	if (r == 1) {
		lua_pushboolean(L, 0);
		lua_pushliteral(L, "process has exited");
		return 2;
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* __gc and __close: never block; an unfinished child is reaped later. */
static int m_close(lua_State *L)
{
	lproc *p = ipcl_check_udata(L, 1, &process_type);
	if (p->open) {
		ipc_child_forget(&p->c);
		p->open = 0;
	}
	return 0;
}

static int m_tostring(lua_State *L)
{
	lproc *p = ipcl_check_udata(L, 1, &process_type);
	lua_pushfstring(L, "process %I%s", p->pid, p->open ? "" : " (closed)");
	return 1;
}

/* h.pid */
static int m_field(lua_State *L, void *obj, const char *key)
{
	if (strcmp(key, "pid") != 0)
		return 0;
	lua_pushinteger(L, ((lproc *)obj)->pid);
	return 1;
}

/* ---- ipc.fork ---- */

/* The interpreter's name for error messages, as lua.c would print it. */
static const char *progname(lua_State *L)
{
	const char *name = "lua";
	if (lua_getglobal(L, "arg") == LUA_TTABLE) {
		for (lua_Integer i = -1; i > -64; i--) {
			if (lua_rawgeti(L, -1, i) != LUA_TSTRING) {
				lua_pop(L, 1);
				break;
			}
			name = lua_tostring(L, -1);
			lua_pop(L, 1); /* still referenced by the arg table */
		}
	}
	lua_pop(L, 1);
	return name;
}

static int child_msgh(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);
	if (!msg) {
		if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
			return 1;
		msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	}
	luaL_traceback(L, L, msg, 1);
	return 1;
}

/* os.exit in a forked child: flush and _exit, so nothing of the parent's
 * (atexit handlers, its cleanup=true objects) runs in the child.  With
 * close = true the stock os.exit (upvalue 1) closes the state and exits:
 * lua_close may unload this very module, so it cannot be done from here. */
static int child_os_exit(lua_State *L)
{
	int status;
	if (lua_toboolean(L, 2) && lua_type(L, lua_upvalueindex(1)) == LUA_TFUNCTION) {
		fflush(NULL);
		lua_pushvalue(L, lua_upvalueindex(1));
		lua_insert(L, 1);
		lua_call(L, lua_gettop(L) - 1, 0);
	}
	if (lua_isboolean(L, 1))
		status = lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE;
	else
		status = (int)ipcl_optinteger(L, 1, EXIT_SUCCESS);
	fflush(NULL);
	_exit(status);
	return 0;
}

/* In the child: run fn(...) (stack: fn, args...; nargs args) and exit. */
static void run_child(lua_State *L, int nargs)
{
	if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE) == LUA_TTABLE &&
	    lua_getfield(L, -1, "os") == LUA_TTABLE) {
		lua_getfield(L, -1, "exit");
		lua_pushcclosure(L, child_os_exit, 1);
		lua_setfield(L, -2, "exit");
	}
	lua_settop(L, nargs + 1);
	lua_pushcfunction(L, child_msgh);
	lua_insert(L, 1);
	int status = 0;
	if (lua_pcall(L, nargs, 0, 1) != LUA_OK) {
		fprintf(stderr, "%s: %s\n", progname(L), lua_tostring(L, -1));
		status = 1;
	}
	fflush(NULL);
	_exit(status);
}

/* ipc.fork(fn, ...) -> process handle */
static int l_fork(lua_State *L)
{
	ipcl_checktype(L, 1, LUA_TFUNCTION);
	int nargs = lua_gettop(L) - 1;
	lproc *p = new_proc(L);
	ipc_child_sweep();
	fflush(NULL); /* or buffered output would be written twice */
	pid_t pid = fork();
	if (pid < 0)
		return ipcl_error(L, "%s", strerror(errno));
	if (pid == 0) {
		lua_pop(L, 1); /* the handle */
		run_child(L, nargs);
	}
	ipc_child_init(&p->c, pid);
	p->pid = pid;
	p->open = 1;
	return 1;
}

/* ---- ipc.spawn ---- */

static const char *const spawn_options[] = {"env", "cwd", NULL};

/* ipc.spawn(argv [, opts]) -> process handle */
static int l_spawn(lua_State *L)
{
	ipcl_checktype(L, 1, LUA_TTABLE);
	int opts = 0;
	if (!lua_isnoneornil(L, 2)) {
		ipcl_checktype(L, 2, LUA_TTABLE);
		opts = 2;
	}
	lua_settop(L, 2);
	lua_Integer argc = (lua_Integer)lua_rawlen(L, 1);
	if (argc < 1)
		return ipcl_argerror(L, 1, "argv must hold at least the program name");
	if (argc > 1000000)
		return ipcl_argerror(L, 1, "argv is too long");
	/* Strings are anchored in this table while we use their pointers. */
	lua_newtable(L);
	int anchor = lua_gettop(L);
	char **argv = lua_newuserdatauv(L, (size_t)(argc + 1) * sizeof *argv, 0);
	for (lua_Integer i = 1; i <= argc; i++) {
		int t = lua_rawgeti(L, 1, i);
		if (t != LUA_TSTRING && t != LUA_TNUMBER)
			return ipcl_argerror(L, 1,
			                     lua_pushfstring(L, "argv[%I] must be a string, got %s",
			                                     i, luaL_typename(L, -1)));
		size_t len;
		const char *s = lua_tolstring(L, -1, &len);
		if (strlen(s) != len || (i == 1 && len == 0))
			return ipcl_argerror(
			    L, 1,
			    lua_pushfstring(
			        L, "argv[%I] must be a non-empty string without zero bytes", i));
		argv[i - 1] = (char *)s;
		lua_rawseti(L, anchor, i);
	}
	argv[argc] = NULL;
	char **envp = NULL;
	const char *cwd = NULL;
	if (opts) {
		lua_pushnil(L);
		while (lua_next(L, opts)) {
			int known = 0;
			if (lua_type(L, -2) == LUA_TSTRING)
				for (int i = 0; spawn_options[i]; i++)
					known |= strcmp(lua_tostring(L, -2), spawn_options[i]) == 0;
			if (!known)
				return luaL_error(
				    L, "bad argument #2 to 'spawn' (unknown option '%s')",
				    lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2)
				                                   : luaL_typename(L, -2));
			lua_pop(L, 1);
		}
		int t = lua_getfield(L, opts, "cwd");
		if (t == LUA_TSTRING) {
			size_t len;
			cwd = lua_tolstring(L, -1, &len);
			if (strlen(cwd) != len || len == 0)
				return luaL_error(
				    L, "bad option 'cwd' to 'spawn' (a non-empty path without "
				       "zero bytes expected)");
			lua_rawseti(L, anchor, argc + 1);
		} else if (t != LUA_TNIL) {
			return luaL_error(L,
			                  "bad option 'cwd' to 'spawn' (string expected, got %s)",
			                  luaL_typename(L, -1));
		} else {
			lua_pop(L, 1);
		}
		t = lua_getfield(L, opts, "env");
		if (t == LUA_TTABLE) {
			int env = lua_gettop(L);
			size_t n = 0;
			lua_pushnil(L);
			while (lua_next(L, env)) {
				n++;
				lua_pop(L, 1);
			}
			envp = lua_newuserdatauv(L, (n + 1) * sizeof *envp, 0);
			lua_rawseti(L, anchor, argc + 2);
			size_t k = 0;
			lua_pushnil(L);
			while (lua_next(L, env)) {
				size_t klen, vlen;
				if (lua_type(L, -2) != LUA_TSTRING)
					return luaL_error(
					    L,
					    "bad option 'env' to 'spawn' (names must be "
					    "strings, got %s)",
					    luaL_typename(L, -2));
				const char *name = lua_tolstring(L, -2, &klen);
				if (klen == 0 || strlen(name) != klen || strchr(name, '='))
					return luaL_error(
					    L,
					    "bad option 'env' to 'spawn' (invalid variable "
					    "name '%s')",
					    name);
				int vt = lua_type(L, -1);
				if (vt != LUA_TSTRING && vt != LUA_TNUMBER)
					return luaL_error(
					    L,
					    "bad option 'env' to 'spawn' (value of '%s' must "
					    "be a string, got %s)",
					    name, luaL_typename(L, -1));
				lua_pushvalue(
				    L, -1); /* convert a copy, not the key's value in place */
				const char *val = lua_tolstring(L, -1, &vlen);
				if (strlen(val) != vlen)
					return luaL_error(
					    L,
					    "bad option 'env' to 'spawn' (value of '%s' holds "
					    "a zero byte)",
					    name);
				const char *kv = lua_pushfstring(L, "%s=%s", name, val);
				envp[k++] = (char *)kv;
				lua_rawseti(L, anchor, argc + 2 + (lua_Integer)k);
				lua_pop(L, 2);
			}
			envp[k] = NULL;
		} else if (t != LUA_TNIL) {
			return luaL_error(L, "bad option 'env' to 'spawn' (table expected, got %s)",
			                  luaL_typename(L, -1));
		}
		lua_pop(L, 1);
	}
	lproc *p = new_proc(L);
	ipc_error err;
	fflush(NULL);
	if (ipc_spawn(&p->c, argv, envp, cwd, &err) != IPC_OK)
		return ipcl_raise(L, &err);
	p->pid = p->c.pid;
	p->open = 1;
	return 1;
}

static const luaL_Reg process_methods[] = {{"wait", m_wait}, {"kill", m_kill}, {NULL, NULL}};
static const luaL_Reg process_meta[] = {
    {"__gc", m_close}, {"__close", m_close}, {"__tostring", m_tostring}, {NULL, NULL}};
static const ipcl_udata_type process_type = {
    {NULL, process_methods, NULL, NULL, NULL, sizeof(lproc), NULL, NULL},
    "process",
    process_meta,
    m_field};

void ipcl_open_proc(lua_State *L)
{
	static const luaL_Reg fns[] = {{"pid", l_pid},   {"clock", l_clock}, {"sleep", l_sleep},
	                               {"fork", l_fork}, {"spawn", l_spawn}, {NULL, NULL}};
	ipcl_register_udata(L, &process_type);
	luaL_setfuncs(L, fns, 0);
}
