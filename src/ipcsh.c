/* ipcsh: a Lua 5.4 runner with the options, arg table, exit codes and error
 * output of the stock `lua` command, the interprocess module compiled in
 * (global `ipc`), and the operator commands (`ipcsh ls`, ...) implemented
 * in lua/interprocess/cli.lua. */
#include "cli/cli.h"
#include "core/signals.h"
#include "lua/modules.h"

#include <lauxlib.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_PROMPT "> "
#define DEFAULT_PROMPT2 ">> "

/* Name for error messages ("ipcsh: ..."); NULL inside the REPL, where
 * messages are printed bare as lua does. */
static const char *progname = "ipcsh";

/* The state running a protected call, for the SIGINT handler. */
static lua_State *interruptible;
static volatile sig_atomic_t interrupt_pending;

typedef struct options {
	int script;      /* argv index of the script, or argc when none */
	int interactive; /* -i */
	int version;     /* -v (also implied by -i) */
	int no_env;      /* -E */
	int has_exec;    /* some -e */
	int from_stdin;  /* the script is "-" */
	int help;        /* -h, --help */
} options;

static const char *const commands[] = {"ls",   "info", "rm",   "lock", "send",
                                       "recv", "post", "wait", "top",  NULL};

/* ---- messages ---------------------------------------------------------- */

static void print_message(const char *msg)
{
	if (progname)
		fprintf(stderr, "%s: ", progname);
	fprintf(stderr, "%s\n", msg);
	fflush(stderr);
}

static void print_usage(FILE *to)
{
	fprintf(to,
	        "usage: %s [options] [script [args]]\n"
	        "Available options are:\n"
	        "  -e stat   execute string 'stat'\n"
	        "  -i        enter interactive mode after executing 'script'\n"
	        "  -l mod    require library 'mod' into global 'mod'\n"
	        "  -l g=mod  require library 'mod' into global 'g'\n"
	        "  -v        show version information\n"
	        "  -E        ignore environment variables\n"
	        "  -W        turn warnings on\n"
	        "  -h        show this help\n"
	        "  --        stop handling options\n"
	        "  -         stop handling options and execute stdin\n"
	        "Commands (first argument):\n"
	        "  ls [--json]                       list objects and their state\n"
	        "  info NAME [--json]                one object's state\n"
	        "  rm NAME...                        remove objects\n"
	        "  lock NAME [--shared] [--timeout MS] -- CMD [ARGS...]\n"
	        "                                    run CMD holding the lock\n"
	        "  send QUEUE [--priority N] [--timeout MS] MESSAGE   (MESSAGE - : stdin)\n"
	        "  recv QUEUE [--timeout MS]         print one message\n"
	        "  post SEM [N]                      post N (default 1)\n"
	        "  wait SEM [--timeout MS]           wait for the semaphore\n"
	        "  top [PATTERN] [--interval MS] [--once] [--json]   live view with rates\n"
	        "Exit status of commands: 0 ok, 1 timed out (lock: CMD's status), 2 usage.\n",
	        progname);
	fflush(to);
}

static void print_version(lua_State *L)
{
	lua_getglobal(L, "ipc");
	lua_getfield(L, -1, "version");
	printf("ipcsh %s\n%s\n", lua_tostring(L, -1) ? lua_tostring(L, -1) : "?", LUA_COPYRIGHT);
	lua_pop(L, 2);
	fflush(stdout);
}

/* ---- protected calls, tracebacks and SIGINT --------------------------- */

static int add_traceback(lua_State *L)
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

static void interrupt_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	lua_sethook(L, NULL, 0, 0);
	interrupt_pending = 0;
	luaL_error(L, "interrupted!");
}

static void set_sigint(void (*handler)(int))
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	/* keep the module's handler first: it counts the signal (waits return)
	 * and chains to ours, or does the cleanup=true work for SIG_DFL */
	ipc_signals_install();
}

/* SIGINT during a call: stop the Lua code at the next instruction.  A second
 * SIGINT before that happened (stuck in C code) ends the process by the
 * signal's default action, after the module's cleanup. */
static void on_sigint(int sig)
{
	if (interrupt_pending) {
		set_sigint(SIG_DFL);
		raise(sig);
		return;
	}
	interrupt_pending = 1;
	lua_sethook(interruptible, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* Call the function below nargs arguments with a traceback handler and
 * SIGINT raising "interrupted!". */
static int call_protected(lua_State *L, int nargs, int nresults)
{
	int base = lua_gettop(L) - nargs;
	lua_pushcfunction(L, add_traceback);
	lua_insert(L, base);
	interruptible = L;
	interrupt_pending = 0;
	set_sigint(on_sigint);
	int status = lua_pcall(L, nargs, nresults, base);
	set_sigint(SIG_DFL);
	interrupt_pending = 0;
	lua_remove(L, base);
	return status;
}

/* Print the error on the stack (if any) and pop it. */
static int report(lua_State *L, int status)
{
	if (status != LUA_OK) {
		const char *msg = lua_tostring(L, -1);
		print_message(msg ? msg : "(error object is not a string)");
		lua_pop(L, 1);
	}
	return status;
}

static int run_chunk(lua_State *L, int status)
{
	if (status == LUA_OK)
		status = call_protected(L, 0, 0);
	return report(L, status);
}

static int run_string(lua_State *L, const char *code, const char *chunkname)
{
	return run_chunk(L, luaL_loadbuffer(L, code, strlen(code), chunkname));
}

static int run_file(lua_State *L, const char *path)
{
	return run_chunk(L, luaL_loadfile(L, path));
}

/* -l [g=]mod: g = require(mod) */
static int require_into_global(lua_State *L, const char *spec)
{
	const char *eq = strchr(spec, '=');
	const char *mod = eq ? eq + 1 : spec;
	lua_getglobal(L, "require");
	lua_pushstring(L, mod);
	int status = call_protected(L, 1, 1);
	if (status == LUA_OK) {
		if (eq)
			lua_pushlstring(L, spec, (size_t)(eq - spec));
		else
			lua_pushstring(L, spec);
		lua_insert(L, -2);
		lua_setglobal(L, lua_tostring(L, -2));
		lua_pop(L, 1);
	}
	return report(L, status);
}

/* ---- options ---------------------------------------------------------- */

/* The value of -e/-l: attached ("-eCODE") or the next argument. */
static const char *option_value(char **argv, int *i)
{
	if (argv[*i][2])
		return argv[*i] + 2;
	const char *v = argv[*i + 1];
	if (!v || v[0] == '-')
		return NULL;
	(*i)++;
	return v;
}

/* Scan options up to the script.  Returns 0, or 1 after printing the
 * error and the usage. */
static int parse_options(int argc, char **argv, options *o)
{
	memset(o, 0, sizeof *o);
	int i;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-')
			break;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			o->help = 1;
			continue;
		}
		int bad_extra = a[1] && a[2] && strchr("-iEvW", a[1]);
		switch (a[1]) {
		case '\0': /* "-": the script is stdin */
			o->from_stdin = 1;
			o->script = i;
			return 0;
		case '-':
			if (bad_extra)
				goto unknown;
			o->script = i + 1;
			return 0;
		case 'i':
			if (bad_extra)
				goto unknown;
			o->interactive = o->version = 1;
			break;
		case 'v':
			if (bad_extra)
				goto unknown;
			o->version = 1;
			break;
		case 'E':
			if (bad_extra)
				goto unknown;
			o->no_env = 1;
			break;
		case 'W':
			if (bad_extra)
				goto unknown;
			break;
		case 'e':
		case 'l':
			if (!option_value(argv, &i)) {
				char buf[64];
				snprintf(buf, sizeof buf, "'-%c' needs argument", a[1]);
				print_message(buf);
				print_usage(stderr);
				return 1;
			}
			if (a[1] == 'e')
				o->has_exec = 1;
			break;
		default:
			goto unknown;
		}
	}
	o->script = i;
	return 0;
unknown:
	fprintf(stderr, "%s: unrecognized option '%s'\n", progname, argv[i]);
	print_usage(stderr);
	return 1;
}

/* Run -e, -l and -W in command-line order (argv[1 .. script-1]). */
static int run_option_actions(lua_State *L, char **argv, int script)
{
	for (int i = 1; i < script; i++) {
		char opt = argv[i][1];
		if (argv[i][0] != '-')
			continue;
		if (opt == 'W') {
			lua_warning(L, "@on", 0);
			continue;
		}
		if (opt != 'e' && opt != 'l')
			continue;
		const char *v = option_value(argv, &i);
		int status =
		    opt == 'e' ? run_string(L, v, "=(command line)") : require_into_global(L, v);
		if (status != LUA_OK)
			return status;
	}
	return LUA_OK;
}

/* arg[0] = script, negative indices for the interpreter and options,
 * positive for the script's arguments.  With no script, arg[0] is the
 * interpreter. */
static void create_arg_table(lua_State *L, int argc, char **argv, int script)
{
	if (script >= argc)
		script = 0;
	lua_createtable(L, argc - script - 1 > 0 ? argc - script - 1 : 0, script + 1);
	for (int i = 0; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, i - script);
	}
	lua_setglobal(L, "arg");
}

static int run_lua_init(lua_State *L)
{
	const char *name = "=LUA_INIT_5_4";
	const char *init = getenv("LUA_INIT_5_4");
	if (!init) {
		name = "=LUA_INIT";
		init = getenv("LUA_INIT");
	}
	if (!init)
		return LUA_OK;
	if (init[0] == '@')
		return run_file(L, init + 1);
	return run_string(L, init, name);
}

/* The script with arg[1..#arg] as its arguments. */
static int run_script(lua_State *L, char **argv, const options *o)
{
	const char *path = argv[o->script];
	if (o->from_stdin)
		path = NULL;
	int status = luaL_loadfile(L, path);
	if (status == LUA_OK) {
		if (lua_getglobal(L, "arg") != LUA_TTABLE)
			return luaL_error(L, "'arg' is not a table");
		int n = (int)luaL_len(L, -1);
		luaL_checkstack(L, n + 3, "too many arguments to script");
		for (int i = 1; i <= n; i++)
			lua_rawgeti(L, -i, i);
		lua_remove(L, -n - 1);
		status = call_protected(L, n, LUA_MULTRET);
	}
	return report(L, status);
}

/* ---- the REPL ---------------------------------------------------------- */

static int is_incomplete(lua_State *L, int status)
{
	size_t len;
	const char *msg;
	if (status != LUA_ERRSYNTAX)
		return 0;
	msg = lua_tolstring(L, -1, &len);
	return msg && len >= 5 && strcmp(msg + len - 5, "<eof>") == 0;
}

/* Read a line with _PROMPT or _PROMPT2; pushes it, or returns 0 at EOF. */
static int push_line(lua_State *L, int first)
{
	int top = lua_gettop(L);
	const char *prompt = first ? DEFAULT_PROMPT : DEFAULT_PROMPT2;
	if (lua_getglobal(L, first ? "_PROMPT" : "_PROMPT2") != LUA_TNIL)
		prompt = luaL_tolstring(L, -1, NULL);
	char *line = ipcsh_read_line(prompt);
	lua_settop(L, top);
	if (!line)
		return 0;
	if (first && line[0] == '=') /* 5.2 style "=expr" */
		lua_pushfstring(L, "return %s", line + 1);
	else
		lua_pushstring(L, line);
	ipcsh_free_line(line);
	return 1;
}

/* Compile one statement: "return LINE" first (an expression), else the
 * line, reading more lines while the chunk is incomplete.  Leaves the
 * function or the error; returns -1 at end of input. */
static int read_statement(lua_State *L)
{
	lua_settop(L, 0);
	if (!push_line(L, 1))
		return -1;
	const char *line = lua_tostring(L, 1);
	const char *expr = lua_pushfstring(L, "return %s", line);
	int status = luaL_loadbuffer(L, expr, strlen(expr), "=stdin");
	if (status == LUA_OK) {
		ipcsh_add_history(line);
		lua_remove(L, -2);
		lua_remove(L, 1);
		return LUA_OK;
	}
	lua_pop(L, 2);
	for (;;) {
		size_t len;
		const char *code = lua_tolstring(L, 1, &len);
		status = luaL_loadbuffer(L, code, len, "=stdin");
		if (!is_incomplete(L, status))
			break;
		lua_pop(L, 1);
		if (!push_line(L, 0)) {
			/* input ended inside a statement: report it as it stands */
			status = luaL_loadbuffer(L, code, len, "=stdin");
			break;
		}
		lua_pushliteral(L, "\n");
		lua_insert(L, -2);
		lua_concat(L, 3);
	}
	ipcsh_add_history(lua_tostring(L, 1));
	lua_remove(L, 1);
	return status;
}

static void print_results(lua_State *L)
{
	int n = lua_gettop(L);
	if (n == 0)
		return;
	luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
	lua_getglobal(L, "print");
	lua_insert(L, 1);
	if (lua_pcall(L, n, 0, 0) != LUA_OK) {
		print_message(
		    lua_pushfstring(L, "error calling 'print' (%s)", lua_tostring(L, -1)));
	}
}

static void run_repl(lua_State *L)
{
	const char *saved = progname;
	progname = NULL;
	int status;
	while ((status = read_statement(L)) != -1) {
		if (status == LUA_OK)
			status = call_protected(L, 0, LUA_MULTRET);
		if (status == LUA_OK)
			print_results(L);
		else
			report(L, status);
	}
	lua_settop(L, 0);
	fputs("\n", stdout);
	fflush(stdout);
	progname = saved;
}

/* ---- the state -------------------------------------------------------- */

/* Standard libraries, the compiled-in module (preload + global ipc). */
static void open_libraries(lua_State *L, int no_env)
{
	if (no_env) {
		lua_pushboolean(L, 1);
		lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
	}
	luaL_openlibs(L);
	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
	lua_pushcfunction(L, luaopen_interprocess);
	lua_setfield(L, -2, "interprocess");
	lua_pop(L, 1);
	luaL_requiref(L, "interprocess", luaopen_interprocess, 0);
	lua_setglobal(L, "ipc");
}

/* The lua-compatible runner.  Returns 1 for success. */
static int run_lua(lua_State *L, int argc, char **argv)
{
	options o;
	if (parse_options(argc, argv, &o) != 0)
		return 0;
	if (o.help) {
		print_usage(stdout);
		return 1;
	}
	open_libraries(L, o.no_env);
	if (o.version)
		print_version(L);
	create_arg_table(L, argc, argv, o.script);
	lua_gc(L, LUA_GCRESTART);
	lua_gc(L, LUA_GCGEN, 0, 0);
	if (!o.no_env && run_lua_init(L) != LUA_OK)
		return 0;
	if (run_option_actions(L, argv, o.script) != LUA_OK)
		return 0;
	if (o.script < argc && run_script(L, argv, &o) != LUA_OK)
		return 0;
	if (o.interactive) {
		run_repl(L);
	} else if (o.script >= argc && !o.has_exec && !o.version) {
		if (isatty(STDIN_FILENO)) {
			print_version(L);
			run_repl(L);
		} else if (run_file(L, NULL) != LUA_OK) {
			return 0;
		}
	}
	return 1;
}

/* `ipcsh COMMAND args...`: interprocess.cli's main(args, native) -> code */
static int run_cli(lua_State *L, int argc, char **argv)
{
	open_libraries(L, 0);
	lua_gc(L, LUA_GCRESTART);
	lua_getglobal(L, "require");
	lua_pushliteral(L, "interprocess.cli");
	if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
		report(L, LUA_ERRRUN);
		return 2;
	}
	lua_getfield(L, -1, "main");
	lua_createtable(L, argc - 1, 0);
	for (int i = 1; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, i);
	}
	ipcsh_push_native(L);
	/* no "interrupted!" hook here: SIGINT ends a command (after the
	 * module's cleanup) or makes its wait return as interrupted */
	if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
		report(L, LUA_ERRRUN);
		return 2;
	}
	int isnum;
	lua_Integer code = lua_tointegerx(L, -1, &isnum);
	return isnum ? (int)(code & 0xff) : 2;
}

static int is_command(const char *word)
{
	/* `ipcsh --db URL COMMAND ...`: the commands against PostgreSQL */
	if (strcmp(word, "--db") == 0 || strncmp(word, "--db=", 5) == 0)
		return 1;
	for (int i = 0; commands[i]; i++)
		if (strcmp(word, commands[i]) == 0)
			return 1;
	return 0;
}

/* The whole run inside one protected call, so memory errors while setting
 * up are reported too. */
static int protected_main(lua_State *L)
{
	int argc = (int)lua_tointeger(L, 1);
	char **argv = lua_touserdata(L, 2);
	luaL_checkversion(L);
	int code;
	if (argc > 1 && is_command(argv[1]))
		code = run_cli(L, argc, argv);
	else
		code = run_lua(L, argc, argv) ? EXIT_SUCCESS : EXIT_FAILURE;
	lua_pushinteger(L, code);
	return 1;
}

int main(int argc, char **argv)
{
	if (argv[0] && argv[0][0])
		progname = argv[0];
	lua_State *L = luaL_newstate();
	if (!L) {
		print_message("cannot create state: not enough memory");
		return EXIT_FAILURE;
	}
	lua_gc(L, LUA_GCSTOP);
	lua_pushcfunction(L, protected_main);
	lua_pushinteger(L, argc);
	lua_pushlightuserdata(L, argv);
	int status = lua_pcall(L, 2, 1, 0);
	int code = status == LUA_OK ? (int)lua_tointeger(L, -1) : EXIT_FAILURE;
	report(L, status);
	lua_close(L);
	return code;
}
