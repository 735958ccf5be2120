local H = require 'spec.helper'
local ipc = H.ipc

-- Run code in a child whose environment arms the failpoint fp: the child
-- kills itself (SIGKILL) at that instant inside a critical section.
-- Returns its exit status (137 when it died there).
local function run_failpoint(fp, code, ...)
  return (H.run_env({ IPCSH_FAILPOINT = fp }, code, ...))
end

-- A child that opens the event, marks ready, waits once and prints the
-- result (and records a success in the shm counter when given).
local WAITER = [[
  local name, shmname, timeout = select(2, ...)
  local e = ipc.event(name)
  ready()
  local ok = e:wait(tonumber(timeout))
  if ok and shmname ~= '' then ipc.shm(shmname):add(0, 1) end
  io.write(tostring(ok))
]]

local function waiters(e) return e:info().waiters end

describe('event', function()
  it('set, is_set, wait, clear, timeout', function()
    local e <close> = ipc.event(H.name(), { cleanup = true })
    assert.is_false(e:is_set())
    assert.is_false(e:wait(0))
    assert.is_true(e:set())
    assert.is_true(e:is_set())
    local t0 = H.clock()
    assert.is_true(e:wait(100))
    assert.is_true(e:wait(100)) -- manual reset: stays set
    assert.is_true(H.clock() - t0 < 50)
    assert.is_true(e:clear())
    assert.is_false(e:is_set())
    t0 = H.clock()
    assert.is_false(e:wait(100))
    local dt = H.clock() - t0
    assert.is_true(dt >= 100 and dt < 600, 'elapsed ' .. dt)
    local i = e:info()
    assert.equal('event', i.type)
    assert.equal('clear', i.state)
    assert.equal(false, i.auto_reset)
    assert.equal(0, i.waiters)
  end)

  it('opts.set gives the initial state; an existing event keeps its own', function()
    local name = H.name()
    local e <close> = ipc.event(name, { set = true, auto_reset = true, cleanup = true })
    assert.is_true(e:is_set())
    local e2 <close> = ipc.event(name, { set = false })
    assert.is_true(e2:is_set())
    assert.is_true(e2:info().auto_reset)
  end)

  it('manual reset releases all of 5 waiting children', function()
    local name = H.name()
    local e <close> = ipc.event(name, { cleanup = true })
    local kids = {}
    for i = 1, 5 do kids[i] = H.spawn(WAITER, name, '', '20000') end
    assert.truthy(H.wait_until(function() return waiters(e) == 5 end, 10000))
    e:set()
    for i = 1, 5 do
      assert.equal(0, kids[i]:wait(10000))
      assert.equal('true', kids[i].out)
    end
    assert.equal(0, waiters(e))
    assert.is_true(e:is_set())
  end)

  it('manual reset: a set+clear pulse still releases every waiter', function()
    local name = H.name()
    local e <close> = ipc.event(name, { cleanup = true })
    local kids = {}
    for i = 1, 3 do kids[i] = H.spawn(WAITER, name, '', '20000') end
    assert.truthy(H.wait_until(function() return waiters(e) == 3 end, 10000))
    e:set()
    e:clear()
    for i = 1, 3 do
      assert.equal(0, kids[i]:wait(10000))
      assert.equal('true', kids[i].out)
    end
  end)

  it('auto reset: 3 waiters and 3 quick sets release each exactly once', function()
    local name, sname = H.name(), H.name()
    local e <close> = ipc.event(name, { auto_reset = true, cleanup = true })
    local s <close> = ipc.shm(sname, { size = 8, cleanup = true })
    local kids = {}
    for i = 1, 3 do kids[i] = H.spawn(WAITER, name, sname, '20000') end
    assert.truthy(H.wait_until(function() return waiters(e) == 3 end, 10000))
    e:set(); e:set(); e:set()
    for i = 1, 3 do
      assert.equal(0, kids[i]:wait(10000))
      assert.equal('true', kids[i].out)
    end
    assert.equal(3, s:unpack('<i8', 0))
    -- no set left over
    assert.is_false(e:is_set())
    assert.is_false(e:wait(0))
  end)

  it('auto reset: each set releases exactly one of several waiting children', function()
    local name, sname = H.name(), H.name()
    local e <close> = ipc.event(name, { auto_reset = true, cleanup = true })
    local s <close> = ipc.shm(sname, { size = 8, cleanup = true })
    local kids = {}
    for i = 1, 4 do kids[i] = H.spawn(WAITER, name, sname, '20000') end
    assert.truthy(H.wait_until(function() return waiters(e) == 4 end, 10000))
    e:set()
    assert.truthy(H.wait_until(function() return s:unpack('<i8', 0) == 1 end, 5000))
    H.sleep(200)
    assert.equal(1, s:unpack('<i8', 0))
    assert.equal(3, waiters(e))
    e:set(); e:set(); e:set()
    for i = 1, 4 do assert.equal(0, kids[i]:wait(10000)) end
    assert.equal(4, s:unpack('<i8', 0))
    assert.is_false(e:is_set())
  end)

  it('auto reset: sets go to the waiters oldest first', function()
    local name = H.name()
    local e <close> = ipc.event(name, { auto_reset = true, cleanup = true })
    local kids = {}
    for i = 1, 3 do
      kids[i] = H.spawn(WAITER, name, '', '20000')
      assert.truthy(H.wait_until(function() return waiters(e) == i end, 10000))
    end
    for i = 1, 3 do
      e:set()
      assert.equal(0, kids[i]:wait(10000), 'waiter ' .. i .. ' was not released')
      assert.equal('true', kids[i].out)
      for j = i + 1, 3 do assert.is_nil(kids[j]:wait(0)) end -- still waiting
      assert.equal(3 - i, waiters(e))
    end
  end)

  it('auto reset: a set with no waiter is kept for the next waiter only', function()
    local name = H.name()
    local e <close> = ipc.event(name, { auto_reset = true, cleanup = true })
    e:set()
    assert.is_true(e:is_set())
    local st, out = H.run([[ io.write(tostring(ipc.event(select(2, ...)):wait(0))) ]], name)
    assert.equal(0, st)
    assert.equal('true', out)
    assert.is_false(e:is_set())
    assert.is_false(e:wait(0))
    e:set(); e:set() -- not counted: still one
    assert.is_true(e:wait(0))
    assert.is_false(e:wait(0))
  end)

  it('a waiter killed while waiting leaves no trace', function()
    local name, sname = H.name(), H.name()
    local e <close> = ipc.event(name, { auto_reset = true, cleanup = true })
    local s <close> = ipc.shm(sname, { size = 8, cleanup = true })
    local a = H.spawn(WAITER, name, sname, '20000')
    assert.truthy(H.wait_until(function() return waiters(e) == 1 end, 10000))
    local b = H.spawn(WAITER, name, sname, '20000')
    assert.truthy(H.wait_until(function() return waiters(e) == 2 end, 10000))
    a:kill(9)
    assert.equal(137, a:wait(10000))
    -- the set picks the dead (oldest) waiter's slot, reaps it, and hands
    -- the set to the live one
    e:set()
    assert.equal(0, b:wait(10000))
    assert.equal('true', b.out)
    assert.equal(1, s:unpack('<i8', 0))
    assert.is_false(e:is_set())
    assert.equal(0, waiters(e))
    -- a dead waiter disappears from info() too
    local c = H.spawn(WAITER, name, sname, '20000')
    assert.truthy(H.wait_until(function() return waiters(e) == 1 end, 10000))
    c:kill(9)
    assert.equal(137, c:wait(10000))
    assert.equal(0, waiters(e))
  end)

  for _, auto in ipairs({ false, true }) do
    it('survives kill -9 of processes in a tight set/clear/wait loop (auto_reset='
      .. tostring(auto) .. ')', function()
      local name = H.name()
      local e <close> = ipc.event(name, { auto_reset = auto, cleanup = true })
      local LOOP = [[
        local e = ipc.event(select(2, ...))
        ready()
        local n = 0
        while true do
          e:set(); e:wait(1); e:clear(); e:wait(0); e:set(); e:wait(2)
          n = n + 1
          if n % 50 == 0 then e:info() end
        end
      ]]
      local other = H.spawn(LOOP, name)
      assert.truthy(other:wait_ready())
      for i = 1, 32 do
        local c = H.spawn(LOOP, name)
        assert.truthy(c:wait_ready())
        H.sleep(math.random(0, 30))
        c:kill(9)
        assert.equal(137, c:wait(10000))
      end
      other:kill(9)
      assert.equal(137, other:wait(10000))
      -- still works: info, set/wait, and a waiting child is released
      assert.equal(0, waiters(e))
      e:clear()
      assert.is_false(e:wait(0))
      e:set()
      assert.is_true(e:wait(100))
      e:clear()
      local k = H.spawn(WAITER, name, '', '20000')
      assert.truthy(H.wait_until(function() return waiters(e) == 1 end, 10000))
      e:set()
      assert.equal(0, k:wait(10000))
      assert.equal('true', k.out)
    end)
  end

  it('a setter killed inside the lock after granting, before waking', function()
    local name, sname = H.name(), H.name()
    local e <close> = ipc.event(name, { auto_reset = true, cleanup = true })
    local s <close> = ipc.shm(sname, { size = 8, cleanup = true })
    local a = H.spawn(WAITER, name, sname, '20000')
    assert.truthy(H.wait_until(function() return waiters(e) == 1 end, 10000))
    assert.equal(137, run_failpoint('event.granted', [[ ipc.event(...):set() ]], name))
    -- the grant stands: the waiter is released (repair wakes it, or its
    -- next slice sees the grant)
    assert.equal(0, a:wait(5000))
    assert.equal('true', a.out)
    -- the lock was repaired: everything still works
    assert.is_false(e:is_set())
    e:set()
    assert.is_true(e:wait(0))
    local b = H.spawn(WAITER, name, sname, '20000')
    assert.truthy(H.wait_until(function() return waiters(e) == 1 end, 10000))
    e:set()
    assert.equal(0, b:wait(10000))
    assert.equal(2, s:unpack('<i8', 0))
  end)

  it('a waiter killed inside the lock while registering leaves no trace', function()
    local name = H.name()
    local e <close> = ipc.event(name, { auto_reset = true, cleanup = true })
    assert.equal(137, run_failpoint('event.claim', [[ ipc.event(...):wait(5000) ]], name))
    assert.equal(0, waiters(e))
    e:set() -- no live waiter: kept
    assert.is_true(e:is_set())
    assert.is_true(e:wait(0))
    assert.is_false(e:wait(0))
  end)

  it('a manual set killed between the flag and the wake-up still releases', function()
    local name = H.name()
    local e <close> = ipc.event(name, { cleanup = true })
    local a = H.spawn(WAITER, name, '', '20000')
    assert.truthy(H.wait_until(function() return waiters(e) == 1 end, 10000))
    assert.equal(137, run_failpoint('event.manual_set', [[ ipc.event(...):set() ]], name))
    assert.equal(0, a:wait(5000))
    assert.equal('true', a.out)
  end)

  it('a full waiter table is a clear error; the event keeps working', function()
    local name = H.name()
    local e <close> = ipc.event(name, { cleanup = true })
    local st, out, err = H.run([[
      local e = ipc.event(select(2, ...))
      local kids = {}
      for i = 1, 128 do kids[i] = ipc.fork(function() assert(e:wait(30000)) end) end
      local t0 = ipc.clock()
      while e:info().waiters < 128 and ipc.clock() - t0 < 20000 do ipc.sleep(10) end
      assert(e:info().waiters == 128, 'waiters: ' .. e:info().waiters)
      local ok, msg = pcall(e.wait, e, 10)
      print(ok, msg)
      e:set()
      for i = 1, 128 do assert(kids[i]:wait(20000) == 0) end
      assert(e:info().waiters == 0)
      e:clear()
      assert(e:wait(10) == false) -- slots are free again
    ]], name)
    assert.equal(0, st, err)
    assert.matches('too many waiters', out)
  end)

  it('SIGINT interrupts a wait promptly', function()
    local name = H.name()
    local e <close> = ipc.event(name, { cleanup = true })
    local c = H.spawn([[
      local e = ipc.event(select(2, ...))
      ready()
      local ok, err = pcall(e.wait, e)
      io.write(tostring(ok), ' ', tostring(err))
    ]], name)
    assert.truthy(c:wait_ready())
    assert.truthy(H.wait_until(function() return waiters(e) == 1 end, 10000))
    local t0 = H.clock()
    c:kill('INT')
    local st = c:wait(5000)
    local dt = H.clock() - t0
    assert.truthy(st)
    assert.is_true(dt < 1000, 'took ' .. dt)
    -- ipcsh: our "interrupted" error (or death by SIGINT); stock lua5.4:
    -- its own "interrupted!" hook may fire right after the wait returns
    local said = ((c.out or '') .. (c.err or '')):match('interrupted') ~= nil
    assert.is_true(st == 130 or said,
      'status ' .. tostring(st) .. ' out ' .. tostring(c.out) .. ' err ' .. tostring(c.err))
    assert.equal(0, waiters(e))
  end)

  it('rejects bad arguments', function()
    local e <close> = ipc.event(H.name(), { cleanup = true })
    assert.has_error(function() e:wait(-1) end)
    assert.has_error(function() e:wait(0 / 0) end)
    assert.has_error(function() e:wait('soon') end)
    assert.has_error(function() ipc.event(H.name(), { auto_reset = 1 }) end)
    assert.has_error(function() ipc.event(H.name(), { set = 'yes' }) end)
    assert.has_error(function() ipc.event(H.name(), { count = 3 }) end)
    assert.has_error(function() e.set(ipc.shm(H.name(), { size = 8, cleanup = true })) end)
    local ok, err = pcall(function() e:wait(-5) end)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'wait'", err)
    e:close()
    assert.has_error(function() e:set() end)
  end)
end)
