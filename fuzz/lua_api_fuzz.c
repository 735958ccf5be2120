/* libFuzzer harness: the Lua side's argument parsing, in one Lua state with
 * the interprocess module (src/lua/ + src/core/ + the embedded Lua parts).
 *
 * The input is split at NUL bytes into strings; byte 0 picks the target:
 *  - even: the command line.  require("interprocess.cli").main(strings) must
 *    return an exit code (0, 1, 2, 127 or 130) and never raise.  Commands
 *    are never run (native.run and os.execute are stubs), stdin/stdout/
 *    stderr are stubs, and the blocking methods (wait, receive, lock,
 *    lock_shared, send) have their timeouts clamped to 5 ms, so `ipcsh wait
 *    S` cannot block the fuzzer.  IPCSH_DIR is a private temporary
 *    directory, emptied after every input: no real object is touched.
 *  - odd: the constructors' option parsing.  strings[1] picks the type,
 *    strings[2] the name ("" for none, "-" for the opts-only form), the rest
 *    are "key=value" options (numbers, true/false, strings; magnitudes
 *    capped at 2^20 so no huge segment is allocated).  ipc.TYPE(...) may
 *    raise a Lua error; when it gives a handle, info(), tostring and close
 *    must work.
 * Build and run: fuzz/README.md. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int luaopen_interprocess(lua_State *L);
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *L;
static char tmpdir[64];

static void remove_tmpdir(void)
{
	rmdir(tmpdir); /* emptied after every input */
}

static const char prelude[] =
    "local ipc = ...\n"
    "local sink = { write = function(self) return self end, flush = function() end,\n"
    "  read = function() return 'message' end, lines = function() return function() end end,\n"
    "  close = function() end, setvbuf = function() end }\n"
    "io.stdout, io.stderr, io.stdin = sink, sink, sink\n"
    "io.write = function() end\n"
    "io.read = function() return 'message' end\n"
    "print = function() end\n"
    "os.execute = function() return true, 'exit', 0 end\n"
    "os.exit = function() error('os.exit called') end\n"
    "local function clamp(t)\n"
    "  if t == nil then return 5 end\n"
    "  if type(t) == 'number' and t > 5 then return 5 end\n"
    "  return t\n"
    "end\n"
    "for _, tn in ipairs({ 'semaphore', 'queue', 'mutex', 'event', 'barrier' }) do\n"
    "  local o = ipc[tn]('Zprobe' .. tn, tn == 'barrier' and { count = 2 } or {})\n"
    "  local methods = getmetatable(getmetatable(o).__index).__index\n"
    "  for _, m in ipairs({ 'wait', 'receive', 'lock', 'lock_shared' }) do\n"
    "    local f = methods[m]\n"
    "    if f then methods[m] = function(self, t, ...) return f(self, clamp(t), ...) end end\n"
    "  end\n"
    "  if methods.send then\n"
    "    local f = methods.send\n"
    "    methods.send = function(self, msg, prio, t) return f(self, msg, prio, clamp(t)) end\n"
    "  end\n"
    "  o:remove() o:close()\n"
    "end\n"
    "local cli = require 'interprocess.cli'\n"
    "local native = { run = function(argv) return 0 end }\n"
    "local codes = { [0] = true, [1] = true, [2] = true, [127] = true, [130] = true }\n"
    "local function clean()\n"
    "  for _, i in ipairs(ipc.list()) do ipc.remove(i.name) end\n"
    "  collectgarbage()\n"
    "end\n"
    "function fuzz_cli(args)\n"
    "  local ok, code = pcall(cli.main, args, native)\n"
    "  clean()\n"
    "  if not ok then return 'cli.main raised: ' .. tostring(code) end\n"
    "  if math.type(code) ~= 'integer' or not codes[code] then\n"
    "    return 'cli.main returned ' .. tostring(code)\n"
    "  end\n"
    "end\n"
    "local types = { 'shm', 'mutex', 'semaphore', 'queue', 'condition', 'event', 'barrier', 'kv' }\n"
    "local function value(s)\n"
    "  if s == 'true' then return true elseif s == 'false' then return false end\n"
    "  local n = tonumber(s)\n"
    "  if n then\n"
    "    if n ~= n then return n end\n"
    "    if n > 1048576 then n = 1048576 elseif n < -1048576 then n = -1048576 end\n"
    "    return n\n"
    "  end\n"
    "  return s\n"
    "end\n"
    "function fuzz_ctor(args)\n"
    "  local tn = types[(#(args[1] or '') % #types) + 1]\n"
    "  local opts = {}\n"
    "  for i = 3, #args do\n"
    "    local k, v = args[i]:match('^([^=]*)=(.*)$')\n"
    "    if k then opts[k] = value(v) else opts[#opts + 1] = value(args[i]) end\n"
    "  end\n"
    "  opts.dir = nil -- objects stay in the private temporary directory\n"
    "  local name = args[2]\n"
    "  local ok, o\n"
    "  if name == nil or name == '' then ok, o = pcall(ipc[tn], opts)\n"
    "  elseif name == '-' then ok, o = pcall(ipc[tn])\n"
    "  else ok, o = pcall(ipc[tn], name, opts) end\n"
    "  if ok then\n"
    "    if ipc.type(o) ~= tn then clean() return 'ipc.' .. tn .. ' gave ' .. tostring(o) end\n"
    "    o:info() tostring(o) o:close()\n"
    "  elseif type(o) ~= 'string' then\n"
    "    clean() return 'non-string error ' .. tostring(o)\n"
    "  end\n"
    "  clean()\n"
    "end\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char tmpl[] = "/dev/shm/ipcsh-luafuzz.XXXXXX";
	char *dir = mkdtemp(tmpl);
	if (!dir)
		abort();
	setenv("IPCSH_DIR", dir, 1);
	snprintf(tmpdir, sizeof tmpdir, "%s", dir);
	atexit(remove_tmpdir);
	L = luaL_newstate();
	luaL_openlibs(L);
	luaL_requiref(L, "interprocess", luaopen_interprocess, 0);
	lua_pushvalue(L, -1);
	lua_setglobal(L, "ipc");
	if (luaL_loadbuffer(L, prelude, sizeof prelude - 1, "=prelude") != LUA_OK) {
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
		abort();
	}
	lua_insert(L, -2);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
		abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 4096)
		return 0;
	int top = lua_gettop(L);
	lua_getglobal(L, (data[0] & 1) ? "fuzz_ctor" : "fuzz_cli");
	lua_newtable(L);
	size_t start = 1;
	int n = 0;
	for (size_t i = 1; i <= size && n < 64; i++) {
		if (i == size || data[i] == 0) {
			lua_pushlstring(L, (const char *)data + start, i - start);
			lua_rawseti(L, -2, ++n);
			start = i + 1;
		}
	}
	if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_isnil(L, -1)) {
		fprintf(stderr, "lua_api_fuzz: %s\n", lua_tostring(L, -1));
		abort();
	}
	lua_settop(L, top);
	return 0;
}
