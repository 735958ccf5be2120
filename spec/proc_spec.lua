local H = require 'spec.helper'
local ipc = H.ipc

-- State letter of /proc/PID/stat ('Z' zombie ...), nil once the pid is gone.
local function proc_state(pid)
  local s = H.read_file('/proc/' .. pid .. '/stat')
  return s and s:match('%) (%a)')
end

-- Environment for a child interpreter started with ipc.spawn.
local function interp_env()
  local env = { PATH = os.getenv('PATH') }
  if not H.under_ipcsh then env.LUA_CPATH = os.getenv('IPCSH_SO_DIR') .. '/?.so;;' end
  for _, k in ipairs({ 'IPCSH_DIR', 'LD_PRELOAD', 'ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS' }) do
    env[k] = os.getenv(k)
  end
  return env
end


local function guard(c) H.guard(c, finally) end

describe('ipc.pid, ipc.clock, ipc.sleep', function()
  it('pid is this process; a forked child has its own', function()
    local self = tonumber(io.open('/proc/self/stat'):read('l'):match('^(%d+)'))
    -- /proc/self in io.open is this process (no shell in between)
    assert.equal(self, ipc.pid())
    local s <close> = ipc.shm(H.name(), { size = 16, cleanup = true })
    local h = ipc.fork(function() s:pack(0, '<i8', ipc.pid()) end)
    assert.equal(0, h:wait(10000))
    assert.equal(h.pid, s:unpack('<i8', 0))
    assert.not_equal(ipc.pid(), h.pid)
  end)

  it('clock is monotonic milliseconds and sleep waits that long', function()
    local t0 = ipc.clock()
    assert.is_number(t0)
    assert.is_true(ipc.sleep(50))
    local dt = ipc.clock() - t0
    assert.is_true(dt >= 50, 'slept ' .. dt)
    assert.is_true(dt < 2000, 'slept ' .. dt)
    assert.is_true(ipc.sleep(0))
    assert.has_error(function() ipc.sleep(-1) end)
    assert.has_error(function() ipc.sleep(0 / 0) end)
    assert.has_error(function() ipc.sleep('x') end)
  end)
end)

describe('ipc.fork', function()
  it('exit status 0 when fn returns, 1 when it raises, os.exit codes', function()
    assert.equal(0, ipc.fork(function() end):wait())
    assert.equal(0, ipc.fork(function() return 5 end):wait())
    assert.equal(7, ipc.fork(function() os.exit(7) end):wait())
    assert.equal(0, ipc.fork(function() os.exit(true) end):wait())
    assert.equal(1, ipc.fork(function() os.exit(false) end):wait())
    assert.equal(3, ipc.fork(function() os.exit(3, true) end):wait())
    assert.equal(9, ipc.fork(function(a, b) os.exit(a + b) end, 4, 5):wait())
  end)

  it('a raised error is printed with a traceback, like lua does', function()
    local st, out, err = H.run([[
      local h = ipc.fork(function() local function inner() error('boom!') end inner() end)
      io.write('status ', tostring(h:wait()), '\n')
      local h2 = ipc.fork(function() error(setmetatable({}, { __tostring = function() return 'custom' end })) end)
      io.write('status ', tostring(h2:wait()), '\n')
      local h3 = ipc.fork(function() error({}) end)
      io.write('status ', tostring(h3:wait()), '\n')
    ]])
    assert.equal(0, st, err)
    assert.equal('status 1\nstatus 1\nstatus 1\n', out)
    assert.matches('boom!', err, 1, true)
    assert.matches('stack traceback:', err, 1, true)
    assert.matches('in local \'inner\'', err, 1, true)
    assert.matches('custom', err, 1, true)
    assert.matches('(error object is a table value)', err, 1, true)
  end)

  it('output is flushed: nothing lost, nothing written twice', function()
    local st, out, err = H.run([[
      io.write('before ')            -- buffered (stdout is a file)
      local h = ipc.fork(function()
        io.write('child ')          -- buffered in the child: flushed at its exit
      end)
      assert(h:wait() == 0)
      local h2 = ipc.fork(function() io.write('exit ') os.exit(0) end)
      assert(h2:wait() == 0)
      local h3 = ipc.fork(function() io.write('err ') error('x') end)
      assert(h3:wait() == 1)
      io.write('after\n')
    ]])
    assert.equal(0, st, err)
    assert.equal('before child exit err after\n', out)
  end)

  it('parent and 4 children share a counter in an shm', function()
    local s <close> = ipc.shm(H.name(), { size = 64, cleanup = true })
    local kids = {}
    for i = 1, 4 do
      kids[i] = ipc.fork(function(n)
        for _ = 1, n do s:add(0, 1) end
      end, 5000)
    end
    for _ = 1, 5000 do s:add(0, 1) end
    for i = 1, 4 do assert.equal(0, kids[i]:wait(30000)) end
    assert.equal(25000, s:unpack('<i8', 0))
  end)

  it('a forked child never removes the parent\'s cleanup=true objects', function()
    local name = H.name()
    local c = H.spawn([[
      local dir, name = ...
      local s = ipc.shm(name, { size = 16, cleanup = true })
      local codes = {}
      codes[1] = ipc.fork(function() end):wait()
      codes[2] = ipc.fork(function() os.exit(0) end):wait()
      codes[3] = ipc.fork(function() os.exit(4, true) end):wait()
      codes[4] = ipc.fork(function() error('x') end):wait()
      codes[5] = ipc.fork(function() ipc.sleep(30000) end)
      codes[5]:kill('TERM')
      codes[5] = select(3, codes[5]:wait())
      ipc.open(name)                 -- still there after all of them
      print(table.concat(codes, ' '))
      io.stdout:flush()
      ready()
      while not io.open(dir .. '/go') do ipc.sleep(2) end
    ]], name)
    guard(c)
    assert.truthy(c:wait_ready())
    assert.equal('0 0 4 1 15\n', H.read_file(c.dir .. '/out'))
    local s = ipc.shm(name, { assert = 'exists' })
    s:close()
    -- the parent itself still cleans up when it exits
    H.write_file(c.dir .. '/go', '1')
    assert.equal(0, c:wait())
    assert.has_error(function() ipc.shm(name, { assert = 'exists' }) end)
  end)

  it('wait(timeout) returns nil on a running child, then the real result', function()
    local h = ipc.fork(function() ipc.sleep(30000) end)
    local t0 = ipc.clock()
    assert.is_nil(h:wait(100))
    local dt = ipc.clock() - t0
    assert.is_true(dt >= 99, 'waited ' .. dt)
    assert.is_true(dt < 3000, 'waited ' .. dt)
    t0 = ipc.clock()
    assert.is_nil(h:wait(0))
    assert.is_true(ipc.clock() - t0 < 1000)
    assert.is_true(h:kill())
    local a, b, c = h:wait(10000)
    assert.same({ nil, 'signal', 15 }, { a, b, c })
    -- repeated waits give the same answer; the child is gone
    a, b, c = h:wait()
    assert.same({ nil, 'signal', 15 }, { a, b, c })
    a, b, c = h:wait(0)
    assert.same({ nil, 'signal', 15 }, { a, b, c })
    local ok, msg = h:kill()
    assert.is_false(ok)
    assert.matches('exited', msg)
  end)

  it('a wait wakes promptly when the child exits', function()
    local h = ipc.fork(function() ipc.sleep(150) os.exit(2) end)
    local t0 = ipc.clock()
    assert.equal(2, h:wait(20000))
    local dt = ipc.clock() - t0
    assert.is_true(dt < 5000, 'waited ' .. dt)
  end)

  it('kill takes signal names and numbers', function()
    for _, sig in ipairs({ { 'KILL', 9 }, { 'SIGUSR2', 12 }, { 'usr1', 10 }, { 9, 9 }, { 'alrm', 14 } }) do
      local h = ipc.fork(function() ipc.sleep(30000) end)
      assert.is_true(h:kill(sig[1]))
      local a, b, c = h:wait(10000)
      assert.same({ nil, 'signal', sig[2] }, { a, b, c })
    end
    local h = ipc.fork(function() ipc.sleep(30000) end)
    assert.has_error(function() h:kill('NOPE') end)
    assert.has_error(function() h:kill(-1) end)
    assert.has_error(function() h:kill(1.5) end)
    assert.has_error(function() h:kill({}) end)
    assert.is_true(h:kill(0)) -- existence check
    assert.is_true(h:kill('KILL'))
    assert.equal(9, select(3, h:wait(10000)))
  end)

  it('handles: .pid, tostring, ipc.type, bad arguments', function()
    local h = ipc.fork(function() end)
    assert.is_number(h.pid)
    assert.equal('process ' .. h.pid, tostring(h))
    assert.equal('process', ipc.type(h))
    assert.has_error(function() h:wait(-1) end)
    assert.has_error(function() h:wait(0 / 0) end)
    assert.has_error(function() h:wait('x') end)
    assert.equal(0, h:wait())
    local ok, err = pcall(ipc.fork, 42)
    assert.is_false(ok)
    assert.matches('bad argument #1', err, 1, true)
    assert.has_error(function() ipc.fork() end)
    assert.has_error(function() h.wait({}) end)
  end)

  it('works from a coroutine; a handle is only usable by its parent', function()
    local co = coroutine.wrap(function()
      local h = ipc.fork(function(x) os.exit(x) end, 6)
      coroutine.yield(h)
    end)
    local h = co()
    assert.equal(6, h:wait(10000))
    local sleeper = ipc.fork(function() ipc.sleep(30000) end)
    local g = ipc.fork(function()
      local ok, err = pcall(sleeper.wait, sleeper, 0)
      os.exit((not ok and err:match('not a child')) and 0 or 1)
    end)
    assert.equal(0, g:wait(10000))
    assert.is_true(sleeper:kill('KILL'))
    assert.equal(9, select(3, sleeper:wait(10000)))
  end)

  it('wait reaps the zombie', function()
    local h = ipc.fork(function() end)
    assert.truthy(H.wait_until(function() return proc_state(h.pid) == 'Z' end, 10000))
    assert.equal(0, h:wait())
    assert.is_nil(proc_state(h.pid))
  end)

  it('a collected handle is reaped without blocking', function()
    local h = ipc.fork(function() end)
    local pid = h.pid
    assert.truthy(H.wait_until(function() return proc_state(pid) == 'Z' end, 10000))
    h = nil
    collectgarbage() collectgarbage()
    assert.is_nil(proc_state(pid))

    -- still running when collected: reaped later, never waited for
    h = ipc.fork(function() ipc.sleep(300) end)
    pid = h.pid
    h = nil
    local t0 = ipc.clock()
    collectgarbage() collectgarbage()
    assert.is_true(ipc.clock() - t0 < 250)
    assert.truthy(H.wait_until(function() return proc_state(pid) == 'Z' end, 10000))
    ipc.fork(function() end):wait() -- any later fork/spawn sweeps
    assert.is_nil(proc_state(pid))
  end)

  it('SIGINT interrupts a wait promptly', function()
    local c = H.spawn([[
      local dir = ...
      local h = ipc.fork(function() ipc.sleep(5000) end)
      local f = io.open(dir .. '/grandchild', 'w') f:write(h.pid) f:close()
      ready()
      local ok, err = pcall(h.wait, h)
      print(ok, err)
      h:kill(9)
      os.exit(ok and 0 or 3)
    ]])
    guard(c)
    assert.truthy(c:wait_ready())
    local grandchild = tonumber(H.read_file(c.dir .. '/grandchild'))
    H.sleep(50)
    local t0 = ipc.clock()
    c:kill('INT')
    local st = c:wait(10000)
    local dt = ipc.clock() - t0
    H.sh('kill -9 ' .. grandchild)
    -- either the error "interrupted" reached Lua, or the default action of
    -- SIGINT ended the process: never the child's 5 s
    assert.truthy(st == 3 or st == 130 or st == 1, 'status ' .. tostring(st))
    if st == 3 then assert.matches('interrupted', c.out) end
    assert.is_true(dt < 2000, 'took ' .. dt)
  end)
end)

describe('ipc.spawn', function()
  it('runs a program with argv, env (complete) and cwd', function()
    local dir = H.tmpname('cwd')
    assert.equal(0, H.sh('mkdir -p ' .. H.quote(dir)))
    local st, out, err = H.run([[
      local dir = select(2, ...)
      local h = ipc.spawn({ 'sh', '-c', 'echo "$X"; pwd; echo "${HOME-unset}"; printf "%s|" "$@"; echo',
                            'sh', 'a b', '', 'c' }, { env = { X = 'it works', N = 5 }, cwd = dir })
      assert(h:wait(20000) == 0)
    ]], dir)
    assert.equal(0, st, err)
    assert.equal(('it works\n%s\nunset\na b||c|\n'):format(dir), out)
    os.remove(dir)
  end)

  it('inherits the environment and cwd when not given; returns exit codes', function()
    local cwd = io.popen('pwd'):read('l')
    local st, out, err = H.run([[
      local h = ipc.spawn({ 'sh', '-c', 'echo "$IPCSH_SPEC_VAR"; pwd; exit 3' })
      io.write(tostring(h:wait(20000)), '\n')
      io.write(tostring(ipc.spawn({ '/bin/sh', '-c', 'kill -9 $$' }):wait(20000)), '\n')
      io.write(tostring(ipc.spawn({ 'true' }):wait(20000)), '\n')
    ]])
    assert.equal(0, st, err)
    local inherited = os.getenv('IPCSH_SPEC_VAR') or ''
    assert.equal(inherited .. '\n' .. cwd .. '\n3\nnil\n0\n', out)
  end)

  it('spawns an interpreter that runs our module', function()
    local dir = H.tmpname('spawned')
    assert.equal(0, H.sh('mkdir -p ' .. H.quote(dir)))
    H.write_file(dir .. '/s.lua', [[
      local ipc = require 'interprocess'
      local s = ipc.shm(arg[1])
      s:add(0, 42)
      os.exit(ipc.pid() == s:unpack('<i8', 8) and 0 or 5)
    ]])
    local s <close> = ipc.shm(H.name(), { size = 16, cleanup = true })
    local h = ipc.spawn({ H.lua, 's.lua', s.name }, { cwd = dir, env = interp_env() })
    s:pack(8, '<i8', h.pid)
    -- the child may have read the pid before we stored it: a race the test
    -- does not care about; only the counter matters
    local code = h:wait(20000)
    assert.truthy(code == 0 or code == 5)
    assert.equal(42, s:unpack('<i8', 0))
    os.remove(dir .. '/s.lua')
    os.remove(dir)
  end)

  it('a missing program is a Lua error', function()
    local ok, err = pcall(ipc.spawn, { 'no-such-program-ipcsh' })
    assert.is_false(ok)
    assert.matches("spawn: cannot run 'no-such-program-ipcsh': No such file or directory", err, 1,
      true)
    ok, err = pcall(ipc.spawn, { '/nonexistent/prog' })
    assert.matches("spawn: cannot run '/nonexistent/prog': No such file or directory", err, 1, true)
    ok, err = pcall(ipc.spawn, { '/etc/passwd' })
    assert.matches("spawn: cannot run '/etc/passwd': Permission denied", err, 1, true)
    ok, err = pcall(ipc.spawn, { 'true' }, { cwd = '/nonexistent' })
    assert.matches("spawn: cannot change to directory '/nonexistent': No such file or directory",
      err, 1, true)
  end)

  it('a failed spawn leaves no zombie behind', function()
    -- our zombie children, from /proc/PID/task/PID/children (no ps: it is
    -- not safe under the sanitizer's LD_PRELOAD)
    local me = ipc.pid()
    local function children()
      local list = H.read_file(('/proc/%d/task/%d/children'):format(me, me))
      if not list then return nil end
      local n = 0
      for pid in list:gmatch('%d+') do
        if proc_state(pid) == 'Z' then n = n + 1 end
      end
      return n
    end
    local before = children()
    if not before then return pending('no /proc/PID/task/PID/children here') end
    for _ = 1, 5 do pcall(ipc.spawn, { 'no-such-program-ipcsh' }) end
    for _ = 1, 5 do pcall(ipc.spawn, { 'true' }, { cwd = '/nonexistent' }) end
    assert.equal(before, children())
  end)

  it('rejects bad arguments', function()
    assert.has_error(function() ipc.spawn() end)
    assert.has_error(function() ipc.spawn('ls') end)
    assert.has_error(function() ipc.spawn({}) end)
    assert.has_error(function() ipc.spawn({ 'ls', {} }) end)
    assert.has_error(function() ipc.spawn({ '' }) end)
    assert.has_error(function() ipc.spawn({ 'ls\0x' }) end)
    assert.has_error(function() ipc.spawn({ 'true' }, { bogus = 1 }) end)
    assert.has_error(function() ipc.spawn({ 'true' }, { env = 'X=1' }) end)
    assert.has_error(function() ipc.spawn({ 'true' }, { env = { ['A=B'] = '1' } }) end)
    assert.has_error(function() ipc.spawn({ 'true' }, { env = { A = {} } }) end)
    assert.has_error(function() ipc.spawn({ 'true' }, { env = { [1] = 'x' } }) end)
    assert.has_error(function() ipc.spawn({ 'true' }, { cwd = 5 }) end)
    assert.has_error(function() ipc.spawn({ 'true' }, 'x') end)
    local ok, err = pcall(ipc.spawn, { 'true' }, { bogus = 1 })
    assert.matches("unknown option 'bogus'", err, 1, true)
  end)
end)
