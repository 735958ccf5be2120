-- The ipcsh runner behaves like the stock lua5.4 command: each case runs
-- under both, and stdout, stderr (with the program name replaced) and the
-- exit status must be the same.
local H = require 'spec.helper'

local LUA = 'lua5.4'

local function replace_plain(s, from, to)
  local out, i = {}, 1
  while true do
    local a, b = s:find(from, i, true)
    if not a then break end
    out[#out + 1] = s:sub(i, a - 1) .. to
    i = b + 1
  end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end

local dir

-- Run a shell command line in dir, with %P replaced by the interpreter.
local function run_with(prog, cmdline)
  local cmd = replace_plain(cmdline, '%P', H.quote(prog))
  local code, out, err = H.sh('cd ' .. H.quote(dir) .. ' && ' .. cmd)
  return code, replace_plain(out, prog, 'LUA'), replace_plain(err, prog, 'LUA')
end

-- Both interpreters give the same result; returns it.
local function same(cmdline)
  local c1, o1, e1 = run_with(LUA, cmdline)
  local c2, o2, e2 = run_with(H.bin, cmdline)
  assert.are.equal(o1, o2, 'stdout of: ' .. cmdline)
  assert.are.equal(e1, e2, 'stderr of: ' .. cmdline)
  assert.are.equal(c1, c2, 'exit status of: ' .. cmdline)
  return c1, o1, e1
end

local function script(name, code)
  H.write_file(dir .. '/' .. name, code)
end

describe('ipcsh runner (parity with lua5.4)', function()
  setup(function()
    dir = H.tmpname('runner')
    assert(os.execute('mkdir -p ' .. H.quote(dir)))
    script('args.lua', [[
for i = -6, #arg do print(i, arg[i]) end
print('...', select('#', ...), ...)
]])
    script('exit3.lua', 'io.write("before\\n") os.exit(3)')
    script('exitfalse.lua', 'os.exit(false)')
    script('exittrue.lua', 'os.exit(true)')
    script('error.lua', [[
local function inner(x) error('boom ' .. x) end
local function outer() inner(42) end
outer()
]])
    script('errtable.lua', 'error({ code = 1 })')
    script('errnil.lua', 'error()')
    script('errtostring.lua',
      'error(setmetatable({}, { __tostring = function() return "custom error" end }))')
    script('syntax.lua', 'print("a"\nlocal = 3\n')
    script('shebang.lua', '#!/usr/bin/env lua5.4\nprint("after shebang", ...)\n')
    script('mymod.lua', 'print("loading mymod", ...) return { value = 7 }')
    script('init.lua', 'print("init from file") INITVAR = "set"')
    script('warn.lua', 'warn("visible?") print("done")')
  end)

  teardown(function()
    os.execute('rm -rf ' .. H.quote(dir))
  end)

  it('builds the arg table and ... like lua (negative indices for options)', function()
    local code, out = same([[%P -e 'x = 1' -l mymod args.lua one 'two words' '' </dev/null]])
    assert.equal(0, code)
    assert.matches('\n0\targs.lua\n', out, 1, true)
    assert.matches('%-1\tmymod\n', out)
    assert.matches('...\t3\tone\ttwo words\t\n', out, 1, true)
    same([[%P args.lua </dev/null]])
    same([[%P -- args.lua -e x </dev/null]])
    same([[%P -W -i args.lua a </dev/null | grep -v -e '^Lua 5' -e '^ipcsh ']])
  end)

  it('takes exit codes from os.exit', function()
    assert.equal(3, (same('%P exit3.lua')))
    assert.equal(1, (same('%P exitfalse.lua')))
    assert.equal(0, (same('%P exittrue.lua')))
    assert.equal(5, (same([[%P -e 'os.exit(5)']])))
  end)

  it('reports errors with a traceback on stderr and exits 1', function()
    local code, _, err = same('%P error.lua')
    assert.equal(1, code)
    assert.matches('^LUA: error.lua:1: boom 42\nstack traceback:\n', err)
    assert.matches("in local 'outer'", err, 1, true)
    same('%P errtable.lua')
    same('%P errnil.lua')
    same('%P errtostring.lua')
    same([[%P -e 'error("from -e")']])
    same([[%P -e 'local t = nil; print(t.x)']])
  end)

  it('reports syntax errors and missing files', function()
    local code, _, err = same('%P syntax.lua')
    assert.equal(1, code)
    assert.matches('^LUA: syntax.lua:2:', err)
    assert.equal(1, (same('%P no-such-file.lua')))
  end)

  it('runs a script from stdin with -', function()
    local code, out = same([[printf 'print("stdin", ...) return 1' | %P - a b]])
    assert.equal(0, code)
    assert.equal('stdin\ta\tb\n', out)
    same([[printf 'error("in stdin")' | %P - ]])
    same([[printf 'print(arg[0], arg[-1], arg[1])' | %P - x]])
    -- no script, stdin not a terminal: run stdin
    same([[printf 'print("piped")' | %P]])
  end)

  it('runs -e and -l in command-line order, -l g=mod too', function()
    local code, out = same(
      [[%P -e 'print(1)' -l mymod -e 'print(mymod.value)' -l m2=mymod -e 'print(m2 == mymod)' </dev/null]])
    assert.equal(0, code)
    assert.equal('1\nloading mymod\tmymod\t./mymod.lua\n7\ntrue\n', out)
    local _, o = same([[%P '-eprint(10)' -lmymod </dev/null]])
    assert.equal('10\nloading mymod\tmymod\t./mymod.lua\n', o)
    same([[%P -e 'error("stop")' -e 'print("not reached")' </dev/null]])
    same([[%P -l nosuchmodule </dev/null]])
  end)

  it('skips a #! first line', function()
    local code, out = same('%P shebang.lua x')
    assert.equal(0, code)
    assert.equal('after shebang\tx\n', out)
  end)

  it('runs LUA_INIT (code and @file), LUA_INIT_5_4 first, and -E ignores them', function()
    local _, out = same([[LUA_INIT='print("init code")' %P -e 'print(2)']])
    assert.equal('init code\n2\n', out)
    _, out = same([[LUA_INIT=@init.lua %P -e 'print(INITVAR)']])
    assert.equal('init from file\nset\n', out)
    _, out = same([[LUA_INIT='print(1)' LUA_INIT_5_4='print(54)' %P -e '']])
    assert.equal('54\n', out)
    same([[LUA_INIT='error("bad init")' %P -e 'print(3)']])
    same([[LUA_INIT=@missing.lua %P -e 'print(3)']])
    _, out = same([[LUA_INIT='print(1)' LUA_PATH='/nowhere/?.lua' %P -E -e 'print(package.path:find("nowhere"))']])
    assert.equal('nil\n', out)
    _, out = same([[LUA_PATH='/nowhere/?.lua' %P -e 'print(package.path:find("nowhere") ~= nil)']])
    assert.equal('true\n', out)
  end)

  it('turns warnings on with -W', function()
    local _, _, err = same('%P -W warn.lua')
    assert.equal('Lua warning: visible?\n', err)
    _, _, err = same('%P warn.lua')
    assert.equal('', err)
  end)

  it('rejects unknown options like lua (exit 1, message first)', function()
    for _, opt in ipairs({ '-x', '-e', '-vx', '--x', '-l' }) do
      local c1, o1, e1 = run_with(LUA, '%P ' .. opt .. ' </dev/null')
      local c2, o2, e2 = run_with(H.bin, '%P ' .. opt .. ' </dev/null')
      assert.equal(c1, c2)
      assert.equal(o1, o2)
      assert.equal(e1:match('^[^\n]*'), e2:match('^[^\n]*'))
      assert.matches('usage: LUA [options] [script [args]]', e2, 1, true)
    end
  end)

  it('runs an interactive session from piped input with -i', function()
    local session = table.concat({
      'x = 20', 'x + 1', 'for i = 1, 2 do', 'print(i)', 'end', 'error("oops")',
      '=x * 2', 'return 1, nil, "s"', 'local t = {', '1,', '}', 'print(#t)', '',
    }, '\n')
    H.write_file(dir .. '/session.txt', session)
    -- lua prints one version line, ipcsh two: compare what follows
    local c1, o1, e1 = run_with(LUA, '%P -i <session.txt')
    local c2, o2, e2 = run_with(H.bin, '%P -i <session.txt')
    assert.equal(c1, c2)
    assert.equal(o1:gsub('^[^\n]*\n', ''), (o2:gsub('^[^\n]*\n[^\n]*\n', '')))
    assert.equal(e1, e2)
    assert.matches('> x + 1\n21\n', o2, 1, true)
    assert.matches('stdin:1: oops', e2, 1, true)
    -- a script first, then the REPL sees its globals
    same([[printf 'print(ARG0)\n' | %P -e 'ARG0 = arg[0]' -i args.lua a | grep -v -e '^Lua 5' -e '^ipcsh ']])
  end)

  it('prints both its own and Lua\'s version with -v', function()
    local _, lua_out = run_with(LUA, '%P -v')
    local code, out = run_with(H.bin, '%P -v')
    assert.equal(0, code)
    local version = H.ipc.version
    assert.is_string(version)
    assert.matches('ipcsh ' .. version:gsub('%p', '%%%0'), out)
    assert.truthy(out:find(lua_out, 1, true), 'lua copyright line missing: ' .. out)
    -- -v with a script runs the script too
    local _, out2 = run_with(H.bin, '%P -v args.lua z')
    assert.matches('args.lua', out2, 1, true)
  end)

  it('raises "interrupted!" on SIGINT like lua', function()
    script('loop.lua', [[
local f = io.open(arg[1], 'w') f:write('x') f:close()
local n = 0
while true do n = n + 1 end
]])
    for _, prog in ipairs({ LUA, H.bin }) do
      local marker = H.tmpname('int')
      local code, _, err = run_with(prog, ([[
%%P loop.lua %s & pid=$!
i=0; while [ ! -e %s ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done
kill -INT $pid; wait $pid]]):format(H.quote(marker), H.quote(marker)))
      os.remove(marker)
      assert.equal(1, code, prog)
      assert.matches('^LUA: interrupted!\nstack traceback:\n', err)
    end
  end)
end)

describe('ipcsh runner (its own parts)', function()
  it('has the module compiled in: global ipc and require "interprocess"', function()
    local code, out = H.sh(H.quote(H.bin) .. [[ -e 'print(ipc == require "interprocess", #ipc.uid())' </dev/null]])
    assert.equal(0, code)
    assert.equal('true\t11\n', out)
    -- loading it again (package.loaded cleared) is safe
    code, out = H.sh(H.quote(H.bin) .. [[ -e '
      package.loaded.interprocess = nil
      local m = require "interprocess"
      print(m ~= ipc, type(m.shm), m.version == ipc.version)' </dev/null]])
    assert.equal(0, code)
    assert.equal('true\tfunction\ttrue\n', out)
  end)

  it('prints its usage with the commands for -h and --help', function()
    for _, opt in ipairs({ '-h', '--help' }) do
      local code, out = H.sh(H.quote(H.bin) .. ' ' .. opt)
      assert.equal(0, code)
      assert.matches('usage: ', out, 1, true)
      for _, cmd in ipairs({ 'ls', 'info', 'rm', 'lock', 'send', 'recv', 'post', 'wait' }) do
        assert.matches('\n  ' .. cmd .. ' ', out, 1, true)
      end
    end
  end)

  it('runs a script named like a command as ./NAME', function()
    local d = H.tmpname('cmdname')
    assert(os.execute('mkdir -p ' .. H.quote(d)))
    H.write_file(d .. '/ls', 'print("script ls", ...)')
    local code, out = H.sh('cd ' .. H.quote(d) .. ' && ' .. H.quote(H.bin) .. ' ./ls a')
    os.execute('rm -rf ' .. H.quote(d))
    assert.equal(0, code)
    assert.equal('script ls\ta\n', out)
  end)

  it('interrupts a blocking wait on SIGINT and runs cleanup', function()
    local marker = H.tmpname('int')
    local name = H.name('Int')
    local code, _, err = H.sh(([[
%s -e '
  local o = ipc.shm(%q, { size = 8, cleanup = true })
  local f = io.open(%q, "w") f:write("x") f:close()
  ipc.sleep(60000)' & pid=$!
i=0; while [ ! -e %s ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done
kill -INT $pid; wait $pid]]):format(H.quote(H.bin), name, marker, H.quote(marker)))
    os.remove(marker)
    assert.equal(1, code)
    assert.matches('interrupted', err)
    assert.is_false(H.ipc.remove(name))
  end)

  it('runs busted (busted --lua=ipcsh)', function()
    local d = H.tmpname('busted')
    assert(os.execute('mkdir -p ' .. H.quote(d)))
    H.write_file(d .. '/x_spec.lua', [[
describe('under ipcsh', function()
  it('has ipc', function() assert.is_table(require('interprocess')) end)
  it('fails when it should', function() assert.equal(1, 2) end)
end)]])
    local code, out = H.sh('cd ' .. H.quote(d) .. ' && busted --lua=' .. H.quote(H.bin)
      .. ' -o TAP x_spec.lua')
    os.execute('rm -rf ' .. H.quote(d))
    assert.equal(1, code)
    assert.matches('ok 1 - under ipcsh has ipc', out, 1, true)
    assert.matches('not ok 2 - under ipcsh fails when it should', out, 1, true)
  end)
end)
