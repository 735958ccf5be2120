-- `ipcsh lock`: flock(1)-style options, and the lock keeper: the command
-- (and everything it starts) never runs without the lock, even when the
-- ipcsh wrapper is killed.  Real processes of $IPCSH_BIN, real signals.
local H = require 'spec.helper'
local ipc = H.ipc

local function ipcsh(args, stdin_redirect)
  return H.sh(H.quote(H.bin) .. ' ' .. args .. ' ' .. (stdin_redirect or '</dev/null'))
end

local elapsed_ms, wait_file = H.elapsed_ms, H.wait_file

-- Files background() made, removed after each test.
local made = {}
after_each(function()
  for _, f in ipairs(made) do os.remove(f) os.remove(f .. '.tmp') end
  made = {}
end)

-- Run `ipcsh ARGS` in the background.  Returns the path its exit status
-- lands in and the path holding its pid (the wrapper's own: exec).
local function background(args)
  local status, pidf = H.tmpname('bgstatus'), H.tmpname('bgpid')
  made[#made + 1] = status -- odd: status files (end_holder waits for them)
  made[#made + 1] = pidf
  assert(os.execute(('(sh -c %s </dev/null >/dev/null 2>&1; echo $? >%s.tmp; mv %s.tmp %s) &'):format(
    H.quote(('echo $$ >%s.tmp; mv %s.tmp %s; exec %s %s'):format(H.quote(pidf), H.quote(pidf),
      H.quote(pidf), H.quote(H.bin), args)),
    H.quote(status), H.quote(status), H.quote(status))))
  return status, pidf
end

local ended = {} -- status files read by status_of
local function status_of(path, ms)
  local s = wait_file(path, ms)
  if s then ended[path] = true end
  return s and tonumber(s:match('%d+'))
end

-- For busted's finally: let a holder loop (`while [ ! -e RELEASE ]`) end,
-- also when the test failed half-way, wait for every background ipcsh of
-- the test to end, and remove the file.
local function end_holder(release)
  H.write_file(release, 'x')
  H.wait_until(function()
    for i = 1, #made, 2 do
      if not ended[made[i]] and not H.read_file(made[i]) then return false end
    end
    return true
  end, 15000)
  os.remove(release)
end

-- /proc/PID/stat: state, ppid, sid and start time; nil when it is gone
-- (or vanishes while we read it).
local function proc_stat(pid)
  local f = io.open('/proc/' .. pid .. '/stat')
  if not f then return nil end
  local s = f:read('a')
  f:close()
  local rest = s and s:match('^%d+ %(.*%) (.*)$')
  if not rest then return nil end
  local fields = {}
  for w in rest:gmatch('%S+') do fields[#fields + 1] = w end
  -- fields[1] is stat field 3 (state): field n is fields[n - 2]
  return { state = fields[1], ppid = tonumber(fields[2]), sid = tonumber(fields[4]),
           start = fields[20] }
end

-- Is the process pid, started at start, still running (not a zombie)?
local function alive(pid, start)
  local st = proc_stat(pid)
  return st ~= nil and st.start == start and st.state ~= 'Z'
end

local function wait_gone(pid, start)
  return H.wait_until(function() return not alive(pid, start) end, 15000)
end

local function kill(sig, pid)
  assert(os.execute(('kill -%s %d'):format(sig, pid)))
end

-- The shell command a second `ipcsh lock` runs: it records, for each pid,
-- its /proc stat line (or "gone") at the moment it got the lock.
local function recorder(marker, pids)
  local parts = {}
  for _, p in ipairs(pids) do
    parts[#parts + 1] = ('(cat /proc/%d/stat 2>/dev/null || echo "%d gone")'):format(p, p)
  end
  return ('{ %s; } >%s.tmp; mv %s.tmp %s'):format(table.concat(parts, '; '),
    H.quote(marker), H.quote(marker), H.quote(marker))
end

-- Assert the recorder saw none of the processes alive.
local function assert_none_alive(marker, procs)
  local text = assert(H.read_file(marker))
  for _, p in ipairs(procs) do
    local line = text:match('\n?(' .. p.pid .. ' [^\n]*)')
    assert.truthy(line, 'no record of ' .. p.pid .. ' in ' .. text)
    if not line:match('^%d+ gone$') then
      local fields = {}
      for w in line:match('%) (.*)$'):gmatch('%S+') do fields[#fields + 1] = w end
      assert.is_false(fields[20] == p.start and fields[1] ~= 'Z',
        'the second lock ran while ' .. p.what .. ' (pid ' .. p.pid .. ') was alive: ' .. line)
    end
  end
end

-- Start `ipcsh lock NAME` running a shell that starts a grandchild
-- (`sleep 300 &`) and waits for it.  Returns the wrapper's status path,
-- the wrapper's pid and the command's and grandchild's {pid, start}.
local function start_tree(name, extra)
  local pids = H.tmpname('pids')
  local status, pidf = background(('lock %s %s -- sh -c %s'):format(extra or '', name, H.quote(
    ('sleep 300 & echo "$$ $!" >%s.tmp; mv %s.tmp %s; wait'):format(H.quote(pids), H.quote(pids),
      H.quote(pids)))))
  local line = assert(wait_file(pids), 'the command did not start')
  local cpid, gpid = line:match('(%d+) (%d+)')
  cpid, gpid = tonumber(cpid), tonumber(gpid)
  local wpid = tonumber(assert(wait_file(pidf)))
  local c, g = proc_stat(cpid), proc_stat(gpid)
  assert.truthy(c and g, 'command or grandchild already gone')
  os.remove(pids) os.remove(pidf)
  return status, wpid, { pid = cpid, start = c.start, what = 'the command' },
    { pid = gpid, start = g.start, what = 'the grandchild' }
end

describe('ipcsh lock: usage and flock(1) options', function()
  it('rejects bad usage with exit 2 before locking anything', function()
    for _, args in ipairs({ 'lock', 'lock 1bad -- true', 'lock Name', 'lock Name --',
      'lock Name --timeout -1 -- true', 'lock Name --timeout abc -- true',
      'lock Name --timeout', 'lock Name --frobnicate -- true', 'lock -q Name true',
      'lock -s -x Name true', 'lock -sx Name true', 'lock -n -w 1 Name true',
      'lock -w 1 --timeout 5 Name true', 'lock -w -1 Name true', 'lock -w abc Name true',
      'lock -w nan Name true', 'lock -E 256 Name true', 'lock -E -1 Name true', 'lock -E x Name true',
      "lock -c 'true' Name -- true", "lock Name -c", 'lock Name -w' }) do
      local code, out, err = ipcsh(args)
      assert.equal(2, code, args)
      assert.equal('', out, args)
      assert.matches('^ipcsh: lock: ', err)
      assert.not_matches('%.lua:%d+:', err)
    end
  end)

  it('runs the command holding the lock and passes its exit status through', function()
    local name = H.name('Lock')
    local code, out = ipcsh('lock ' .. name .. ' -- sh -c ' .. H.quote('echo running; exit 7'))
    assert.equal(7, code)
    assert.equal('running\n', out)
    code = ipcsh('lock ' .. name .. ' --timeout 1000 -- true')
    assert.equal(0, code)
    -- without --, the first word after the name starts the command
    code, out = ipcsh('lock ' .. name .. ' echo -n hi')
    assert.equal(0, code)
    assert.equal('hi', out)
    -- -c STRING runs with sh -c, before or after the name
    code, out = ipcsh('lock ' .. name .. ' -c ' .. H.quote('echo "$0:$1"; exit 4'))
    assert.equal(4, code)
    assert.equal('/bin/sh:\n', out)
    code, out = ipcsh('lock --command=' .. H.quote('echo c') .. ' ' .. name)
    assert.equal(0, code)
    assert.equal('c\n', out)
    -- stdin reaches the command
    local infile = H.tmpname('in')
    H.write_file(infile, 'in put\n')
    code, out = ipcsh('lock ' .. name .. ' cat', '<' .. H.quote(infile))
    os.remove(infile)
    assert.equal(0, code)
    assert.equal('in put\n', out)
    -- a command killed by a signal: 128 + signal
    code = ipcsh('lock ' .. name .. ' -- sh -c ' .. H.quote('kill -9 $$'))
    assert.equal(137, code)
    -- a command that cannot run: 127, with a message naming it
    local err
    code, _, err = ipcsh('lock ' .. name .. ' -- /nonexistent/program')
    assert.equal(127, code)
    assert.matches('/nonexistent/program', err, 1, true)
    -- the lock is free again at once after each of these
    assert.equal(0, (ipcsh('lock -n ' .. name .. ' true')))
    ipc.remove(name)
  end)

  it('a conflict is silent and exits 1 or the -E code; -n -w --timeout bound the wait', function()
    local name = H.name('Lock')
    local held, release = H.tmpname('held'), H.tmpname('release')
    finally(function() end_holder(release) end) -- a failed test leaves no holder behind
    local holder = background(('lock %s -- sh -c %s'):format(name, H.quote(
      ('touch %s; while [ ! -e %s ]; do sleep 0.01; done; exit 3'):format(
        H.quote(held), H.quote(release)))))
    assert.truthy(wait_file(held), 'holder did not start')
    for _, args in ipairs({ '-n', '--nonblock', '--timeout 0', '-w 0', '-w0', '--wait=0', '-x -n',
      '-nx', '-s -n' }) do
      local code, out, err = ipcsh(('lock %s %s -c %s'):format(args, name, H.quote('echo ran')))
      assert.equal(1, code, args)
      assert.equal('', out .. err, args)
    end
    assert.equal(7, (ipcsh('lock -n -E 7 ' .. name .. ' true')))
    assert.equal(0, (ipcsh('lock -nE0 ' .. name .. ' -c false')))
    assert.equal(9, (ipcsh('lock --conflict-exit-code=9 -w 0.05 ' .. name .. ' true')))
    for _, args in ipairs({ '-w 0.3', '-w0.3', '--wait 0.3', '--timeout 300', '--timeout=300' }) do
      local ms, code = elapsed_ms(function() return ipcsh('lock ' .. args .. ' ' .. name .. ' true') end)
      assert.equal(1, code, args)
      assert.is_true(ms >= 290, args .. ' returned after ' .. ms .. ' ms')
    end
    H.write_file(release, 'x')
    assert.equal(3, status_of(holder))
    assert.equal(0, (ipcsh('lock -n ' .. name .. ' -- true')))
    os.remove(held) os.remove(release) os.remove(holder)
    ipc.remove(name)
  end)

  it('-s/--shared holders share; -x and plain locks wait for them', function()
    local name = H.name('Lock')
    local held, release = H.tmpname('held'), H.tmpname('release')
    finally(function() end_holder(release) end) -- a failed test leaves no holder behind
    local holder = background(('lock %s --shared -- sh -c %s'):format(name, H.quote(
      ('touch %s; while [ ! -e %s ]; do sleep 0.01; done'):format(H.quote(held), H.quote(release)))))
    assert.truthy(wait_file(held), 'holder did not start')
    assert.equal(0, (ipcsh('lock ' .. name .. ' --shared --timeout 0 -- true')))
    assert.equal(0, (ipcsh('lock -sn ' .. name .. ' true')))
    assert.equal(1, (ipcsh('lock ' .. name .. ' --timeout 0 -- true')))
    assert.equal(1, (ipcsh('lock -x -n ' .. name .. ' true')))
    local code, out = ipcsh('info ' .. name)
    assert.equal(0, code)
    assert.matches('state: shared', out, 1, true)
    H.write_file(release, 'x')
    assert.equal(0, status_of(holder))
    assert.equal(0, (ipcsh('lock ' .. name .. ' --timeout 0 -- true')))
    os.remove(held) os.remove(release) os.remove(holder)
    ipc.remove(name)
  end)

  it('a NAME with a / is a path: the lock is named ipc.hash(normalised absolute path)', function()
    local dir = H.tmpname('lockdir')
    assert(os.execute('mkdir -p ' .. H.quote(dir .. '/sub')))
    local path = dir .. '/backup.lock'
    local hashed = ipc.hash(path)
    local held, release = H.tmpname('held'), H.tmpname('release')
    finally(function() end_holder(release) end) -- a failed test leaves no holder behind
    local holder = background(('lock -n %s -c %s'):format(H.quote(dir .. '/sub/../backup.lock'),
      H.quote(('touch %s; while [ ! -e %s ]; do sleep 0.01; done'):format(H.quote(held),
        H.quote(release)))))
    assert.truthy(wait_file(held), 'holder did not start')
    -- the same file by other spellings conflicts; the file is never made
    assert.equal(1, (ipcsh('lock -n ' .. H.quote(path) .. ' true')))
    assert.equal(1, (H.sh('cd ' .. H.quote(dir) .. ' && ' .. H.quote(H.bin) ..
      ' lock -n ./backup.lock true')))
    assert.is_nil(H.read_file(path))
    local code, out = ipcsh('info ' .. hashed)
    assert.equal(0, code)
    assert.matches('type: mutex', out, 1, true)
    assert.matches('state: exclusive', out, 1, true)
    H.write_file(release, 'x')
    assert.equal(0, status_of(holder))
    assert.equal(0, (ipcsh('lock -n ' .. H.quote(path) .. ' true')))
    os.remove(held) os.remove(release) os.remove(holder)
    os.execute('rm -rf ' .. H.quote(dir))
    ipc.remove(hashed)
  end)
end)

describe('ipcsh lock: the command never runs without the lock', function()
  it('SIGKILL of the wrapper: no second lock while the command or its grandchild lives', function()
    local name = H.name('Keep')
    local status, wpid, c, g = start_tree(name)
    local marker = H.tmpname('marker')
    local second = background(('lock --timeout 120000 %s -- sh -c %s'):format(name,
      H.quote(recorder(marker, { c.pid, g.pid }))))
    finally(function()
      for _, p in ipairs({ c, g }) do if alive(p.pid, p.start) then kill(9, p.pid) end end
    end)
    kill(9, wpid)
    assert.equal(137, status_of(status))
    -- the wrapper is gone; both still run, and the lock is still held
    assert.is_true(alive(c.pid, c.start) and alive(g.pid, g.start))
    assert.equal(1, (ipcsh('lock -n ' .. name .. ' true')))
    assert.is_nil(H.read_file(marker))
    -- the command ends; its orphaned grandchild still holds the lock
    kill(9, c.pid)
    assert.truthy(wait_gone(c.pid, c.start))
    assert.is_true(alive(g.pid, g.start))
    assert.equal(1, (ipcsh('lock -n ' .. name .. ' true')))
    assert.is_nil(H.read_file(marker))
    kill(9, g.pid)
    assert.equal(0, status_of(second, 60000))
    assert_none_alive(marker, { c, g })
    os.remove(marker) os.remove(status) os.remove(second)
    ipc.remove(name)
  end)

  for _, sig in ipairs({ 'TERM', 'INT' }) do
    it('SIG' .. sig .. ' to the wrapper is forwarded to the command; the lock outlives it ' ..
      'while the grandchild lives', function()
      local name = H.name('Keep')
      local status, wpid, c, g = start_tree(name)
      local marker = H.tmpname('marker')
      finally(function()
        for _, p in ipairs({ c, g }) do if alive(p.pid, p.start) then kill(9, p.pid) end end
      end)
      kill(sig, wpid)
      -- the shell died of the signal; ipcsh reports it as the command's status
      local signo = sig == 'TERM' and 15 or 2
      assert.equal(128 + signo, status_of(status))
      assert.truthy(wait_gone(c.pid, c.start))
      assert.is_true(alive(g.pid, g.start))
      local second = background(('lock --timeout 120000 %s -- sh -c %s'):format(name,
        H.quote(recorder(marker, { c.pid, g.pid }))))
      assert.equal(1, (ipcsh('lock -n ' .. name .. ' true')))
      assert.is_nil(H.read_file(marker))
      kill(9, g.pid)
      assert.equal(0, status_of(second, 60000))
      assert_none_alive(marker, { c, g })
      os.remove(marker) os.remove(status) os.remove(second)
      ipc.remove(name)
    end)
  end

  it('a setsid() daemon started by the command keeps the lock until it exits', function()
    local name = H.name('Keep')
    local dpid = H.tmpname('dpid')
    local code = ipcsh(('lock %s -- sh -c %s'):format(name, H.quote(
      ('setsid sh -c %s >/dev/null 2>&1 &'):format(H.quote(('sleep 300 & echo $! >%s.tmp; mv %s.tmp %s')
        :format(dpid, dpid, dpid))))))
    -- like flock(1): the wrapper returns when the command does
    assert.equal(0, code)
    local pid = tonumber((assert(wait_file(dpid), 'the daemon did not start')))
    local d = assert(proc_stat(pid))
    local daemon = { pid = pid, start = d.start, what = 'the daemon' }
    finally(function() if alive(pid, d.start) then kill(9, pid) end end)
    local mine = assert(proc_stat(ipc.pid()))
    assert.are_not.equal(mine.sid, d.sid) -- it left our session
    local marker = H.tmpname('marker')
    local second = background(('lock --timeout 120000 %s -- sh -c %s'):format(name,
      H.quote(recorder(marker, { pid }))))
    assert.equal(1, (ipcsh('lock -n ' .. name .. ' true')))
    assert.is_nil(H.read_file(marker))
    kill(9, pid)
    assert.equal(0, status_of(second, 60000))
    assert_none_alive(marker, { daemon })
    os.remove(marker) os.remove(dpid) os.remove(second)
    ipc.remove(name)
  end)

  it('a wrapper killed while it waits for the lock never runs its command', function()
    local name = H.name('Keep')
    local held, release = H.tmpname('held'), H.tmpname('release')
    finally(function() end_holder(release) end) -- a failed test leaves no holder behind
    local holder = background(('lock %s -- sh -c %s'):format(name, H.quote(
      ('touch %s; while [ ! -e %s ]; do sleep 0.01; done'):format(H.quote(held), H.quote(release)))))
    assert.truthy(wait_file(held), 'holder did not start')
    local ran = H.tmpname('ran')
    local waiter, wpidf = background(('lock %s -- touch %s'):format(name, H.quote(ran)))
    local wpid = tonumber(assert(wait_file(wpidf)))
    -- its keeper: the child of the wrapper that waits in the mutex
    local keeper = H.wait_until(function()
      local info = ipc.mutex(name):info()
      return (info.waiters or 0) > 0 and info
    end, 15000)
    assert.truthy(keeper, 'the second lock never waited')
    local kids = {}
    local p = io.popen('ls /proc')
    for k in p:read('a'):gmatch('%d+') do
      local st = proc_stat(tonumber(k))
      if st and st.ppid == wpid then kids[#kids + 1] = { pid = tonumber(k), start = st.start } end
    end
    p:close()
    assert.equal(1, #kids, 'the wrapper should have one child, its keeper')
    kill(9, wpid)
    assert.equal(137, status_of(waiter))
    assert.truthy(wait_gone(kids[1].pid, kids[1].start), 'the keeper outlived its waiting wrapper')
    H.write_file(release, 'x')
    assert.equal(0, status_of(holder))
    assert.equal(0, (ipcsh('lock -w 30 ' .. name .. ' true')))
    assert.is_nil(H.read_file(ran))
    os.remove(held) os.remove(release) os.remove(holder) os.remove(waiter)
    ipc.remove(name)
  end)

  it('SIGINT/SIGTERM/SIGHUP to a wrapper waiting for the lock: 128+N, the command never runs',
    function()
    local name = H.name('Keep')
    local held, release = H.tmpname('held'), H.tmpname('release')
    finally(function() end_holder(release) end)
    local holder = background(('lock %s -- sh -c %s'):format(name, H.quote(
      ('touch %s; while [ ! -e %s ]; do sleep 0.01; done'):format(H.quote(held), H.quote(release)))))
    assert.truthy(wait_file(held), 'holder did not start')
    local m <close> = ipc.mutex(name)
    local ran = H.tmpname('ran')
    for _, c in ipairs({ { 'INT', 130 }, { 'TERM', 143 }, { 'HUP', 129 } }) do
      local waiter, wpidf = background(('lock %s -- touch %s'):format(name, H.quote(ran)))
      local wpid = tonumber(assert(wait_file(wpidf)))
      assert.truthy(H.wait_until(function() return (m:info().waiters or 0) > 0 end, 15000),
        'the second lock never waited')
      kill(c[1], wpid)
      -- the wrapper returns only after its keeper is gone
      assert.equal(c[2], status_of(waiter), c[1])
      assert.truthy(H.wait_until(function() return (m:info().waiters or 0) == 0 end, 15000))
      os.remove(waiter)
    end
    H.write_file(release, 'x')
    assert.equal(0, status_of(holder))
    assert.equal(0, (ipcsh('lock -w 30 ' .. name .. ' true')))
    assert.is_nil(H.read_file(ran))
    os.remove(held) os.remove(holder)
    m:remove()
  end)

  it('-o/--close: the lock ends with the command itself, not its leftover children', function()
    local name = H.name('Keep')
    local kid = H.tmpname('kid')
    local code = ipcsh(('lock -o %s -c %s'):format(name, H.quote(
      ('sleep 300 >/dev/null 2>&1 & echo $! >%s.tmp; mv %s.tmp %s'):format(kid, kid, kid))))
    assert.equal(0, code)
    local pid = tonumber((assert(wait_file(kid))))
    local st = assert(proc_stat(pid))
    finally(function() if alive(pid, st.start) then kill(9, pid) end end)
    assert.is_true(alive(pid, st.start))
    assert.equal(0, (ipcsh('lock -n ' .. name .. ' true')))
    -- the long spelling, while the child still lives
    code = ipcsh(('lock --close -n %s true'):format(name))
    assert.equal(0, code)
    os.remove(kid)
    ipc.remove(name)
  end)

  it('the holder shown by info is the keeper, the parent of the command', function()
    local name = H.name('Keep')
    local status, wpid, c, g = start_tree(name)
    finally(function()
      for _, p in ipairs({ c, g }) do if alive(p.pid, p.start) then kill(9, p.pid) end end
    end)
    local m <close> = ipc.mutex(name)
    local holders = m:info().holders
    local keeper = assert(proc_stat(c.pid)).ppid
    assert.same({ keeper }, holders)
    assert.equal(wpid, assert(proc_stat(keeper)).ppid)
    kill(9, g.pid)
    assert.equal(0, status_of(status))
    assert.equal(0, (ipcsh('lock -w 30 ' .. name .. ' true')))
    os.remove(status)
    m:remove()
  end)
end)
