local H = require 'spec.helper'
local ipc = H.ipc

-- Run code in a child whose environment arms the failpoint fp: the child
-- kills itself (SIGKILL) at that instant inside a critical section.
-- Returns its exit status (137 when it died there).
local function run_failpoint(fp, code, ...)
  return (H.run_env({ IPCSH_FAILPOINT = fp }, code, ...))
end

-- A party: opens the barrier, marks ready, waits once, prints the result.
local PARTY = [[
  local name, timeout = select(2, ...)
  local b = ipc.barrier(name)
  ready()
  local ok, last = b:wait(tonumber(timeout))
  io.write(tostring(ok), ' ', tostring(last))
]]

local function arrived(b) return b:info().arrived end

describe('barrier', function()
  it('5 parties x 20 rounds: everyone meets, exactly one is_last per round', function()
    local name, sname = H.name(), H.name()
    local b <close> = ipc.barrier(name, { count = 5, cleanup = true })
    -- shm: [0] arrivals so far, [8*r] is_last count of round r,
    -- [8*30] order violations seen by the parties
    local s <close> = ipc.shm(sname, { size = 8 * 32, cleanup = true })
    local kids = {}
    for i = 1, 5 do
      kids[i] = H.spawn([[
        local name, sname = select(2, ...)
        local b, s = ipc.barrier(name), ipc.shm(sname)
        for r = 1, 20 do
          s:add(0, 1)
          local ok, last = b:wait(30000)
          if not ok then error('timed out in round ' .. r) end
          -- nobody may leave round r before all 5 arrived in it
          if s:unpack('<i8', 0) < 5 * r then s:add(8 * 30, 1) end
          if last then s:add(8 * r, 1) end
        end
      ]], name, sname)
    end
    for i = 1, 5 do
      assert.equal(0, kids[i]:wait(60000), kids[i].err)
    end
    for r = 1, 20 do assert.equal(1, s:unpack('<i8', 8 * r), 'round ' .. r) end
    assert.equal(100, s:unpack('<i8', 0))
    assert.equal(0, s:unpack('<i8', 8 * 30))
    local i = b:info()
    assert.equal(20, i.round)
    assert.equal(5, i.count)
    assert.equal(0, i.arrived)
  end)

  it('a timeout returns false, withdraws, and the next round still works', function()
    local name = H.name()
    local b <close> = ipc.barrier(name, { count = 2, cleanup = true })
    local t0 = H.clock()
    assert.is_false(b:wait(150))
    local dt = H.clock() - t0
    assert.is_true(dt >= 150 and dt < 700, 'elapsed ' .. dt)
    assert.equal(0, arrived(b))
    assert.is_false(b:wait(0)) -- 0 never blocks
    assert.equal(0, arrived(b))
    local c = H.spawn(PARTY, name, '20000')
    assert.truthy(H.wait_until(function() return arrived(b) == 1 end, 10000))
    local ok, last = b:wait(10000)
    assert.is_true(ok)
    assert.equal(0, c:wait(10000))
    -- exactly one of the two was last
    local clast = c.out == 'true true'
    assert.is_true(c.out == 'true true' or c.out == 'true false', c.out)
    assert.is_true(last ~= clast)
    assert.equal(1, b:info().round)
  end)

  it('a party killed while waiting leaves no phantom arrival', function()
    local name = H.name()
    local b <close> = ipc.barrier(name, { count = 3, cleanup = true })
    local a = H.spawn(PARTY, name, '20000')
    assert.truthy(H.wait_until(function() return arrived(b) == 1 end, 10000))
    local p = H.spawn(PARTY, name, '20000')
    assert.truthy(H.wait_until(function() return arrived(b) == 2 end, 10000))
    a:kill(9)
    assert.equal(137, a:wait(10000))
    -- with a phantom, this arrival would complete the round
    assert.is_false(b:wait(200))
    assert.equal(1, arrived(b))
    -- a replacement and this process complete the round with the survivor
    local r = H.spawn(PARTY, name, '20000')
    assert.truthy(H.wait_until(function() return arrived(b) == 2 end, 10000))
    local ok, last = b:wait(10000)
    assert.is_true(ok)
    assert.equal(0, p:wait(10000))
    assert.equal(0, r:wait(10000))
    local lasts = (last and 1 or 0) + (p.out == 'true true' and 1 or 0)
      + (r.out == 'true true' and 1 or 0)
    assert.equal(1, lasts)
    assert.equal(1, b:info().round)
  end)

  it('survives kill -9 of parties at random instants', function()
    local name = H.name()
    local b <close> = ipc.barrier(name, { count = 2, cleanup = true })
    local LOOP = [[
      local b = ipc.barrier(select(2, ...))
      ready()
      while true do b:wait(3) end
    ]]
    for i = 1, 20 do
      local c1, c2 = H.spawn(LOOP, name), H.spawn(LOOP, name)
      assert.truthy(c1:wait_ready() and c2:wait_ready())
      H.sleep(math.random(0, 20))
      c1:kill(9); c2:kill(9)
      assert.equal(137, c1:wait(10000))
      assert.equal(137, c2:wait(10000))
    end
    assert.equal(0, arrived(b))
    local c = H.spawn(PARTY, name, '20000')
    assert.truthy(H.wait_until(function() return arrived(b) == 1 end, 10000))
    assert.is_true((b:wait(10000)))
    assert.equal(0, c:wait(10000))
  end)

  it('the last party killed inside the lock after completing the round', function()
    local name = H.name()
    local b <close> = ipc.barrier(name, { count = 2, cleanup = true })
    local a = H.spawn(PARTY, name, '20000')
    assert.truthy(H.wait_until(function() return arrived(b) == 1 end, 10000))
    assert.equal(137, run_failpoint('barrier.completed', [[ ipc.barrier(...):wait(5000) ]], name))
    -- the round completed (the generation bump is the commit point)
    assert.equal(0, a:wait(5000))
    assert.equal('true false', a.out)
    local i = b:info()
    assert.equal(1, i.round)
    assert.equal(0, i.arrived)
    -- the next round needs two fresh arrivals
    assert.is_false(b:wait(100))
    local c = H.spawn(PARTY, name, '20000')
    assert.truthy(H.wait_until(function() return arrived(b) == 1 end, 10000))
    assert.is_true((b:wait(10000)))
    assert.equal(0, c:wait(10000))
    assert.equal(2, b:info().round)
  end)

  it('a party killed inside the lock right after arriving', function()
    local name = H.name()
    local b <close> = ipc.barrier(name, { count = 2, cleanup = true })
    assert.equal(137, run_failpoint('barrier.arrived', [[ ipc.barrier(...):wait(5000) ]], name))
    -- no phantom: this arrival alone does not complete the round
    assert.is_false(b:wait(200))
    assert.equal(0, arrived(b))
    local c = H.spawn(PARTY, name, '20000')
    assert.truthy(H.wait_until(function() return arrived(b) == 1 end, 10000))
    assert.is_true((b:wait(10000)))
    assert.equal(0, c:wait(10000))
  end)

  it('count = 1: every wait completes a round at once, as the last', function()
    local b <close> = ipc.barrier(H.name(), { count = 1, cleanup = true })
    for r = 1, 3 do
      local ok, last = b:wait(0)
      assert.is_true(ok)
      assert.is_true(last)
    end
    assert.equal(3, b:info().round)
  end)

  it('SIGINT interrupts a wait promptly and withdraws the arrival', function()
    local name = H.name()
    local b <close> = ipc.barrier(name, { count = 2, cleanup = true })
    local c = H.spawn([[
      local b = ipc.barrier(select(2, ...))
      ready()
      local ok, err = pcall(b.wait, b)
      io.write(tostring(ok), ' ', tostring(err))
    ]], name)
    assert.truthy(H.wait_until(function() return arrived(b) == 1 end, 10000))
    local t0 = H.clock()
    c:kill('INT')
    local st = c:wait(5000)
    assert.truthy(st)
    assert.is_true(H.clock() - t0 < 1000)
    local said = ((c.out or '') .. (c.err or '')):match('interrupted') ~= nil
    assert.is_true(st == 130 or said, tostring(st) .. ' ' .. tostring(c.out))
    assert.equal(0, arrived(b))
  end)

  it('count is required to create; an existing barrier keeps its count', function()
    local name = H.name()
    local ok, err = pcall(ipc.barrier, name)
    assert.is_false(ok)
    assert.matches('count', err)
    assert.has_error(function() ipc.barrier(name, { assert = 'exists' }) end)
    local b <close> = ipc.barrier(name, { count = 4, cleanup = true })
    local b2 <close> = ipc.barrier(name)
    assert.equal(4, b2:info().count)
    local b3 <close> = ipc.barrier(name, { count = 7 })
    assert.equal(4, b3:info().count)
  end)

  it('rejects bad arguments', function()
    for _, bad in ipairs({ 0, -1, 257, 1.5, 'x', true }) do
      assert.has_error(function() ipc.barrier(H.name(), { count = bad }) end)
    end
    assert.has_error(function() ipc.barrier(H.name(), { count = 2, auto_reset = true }) end)
    local b <close> = ipc.barrier(H.name(), { count = 2, cleanup = true })
    assert.has_error(function() b:wait(-1) end)
    assert.has_error(function() b:wait(0 / 0) end)
    assert.has_error(function() b:wait({}) end)
    local ok, err = pcall(function() b:wait('x') end)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'wait'", err)
    assert.equal(0, arrived(b))
    b:close()
    assert.has_error(function() b:wait(0) end)
  end)
end)
