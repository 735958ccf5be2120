local H = require 'spec.helper'
local ipc = H.ipc

describe('condition', function()
  local c, m, shm
  before_each(function()
    c = ipc.condition(H.name('C'), { cleanup = true })
    m = ipc.mutex(H.name('M'), { cleanup = true })
    shm = ipc.shm(H.name('S'), { size = 64, cleanup = true })
  end)
  after_each(function()
    for _, o in ipairs({ c, m, shm }) do o:remove() o:close() end
  end)

  local waiter = [[
    local c = ipc.condition((select(2, ...)))
    local m = ipc.mutex((select(3, ...)))
    local s = ipc.shm((select(4, ...)))
    m:lock()
    s:add(8, 1)          -- registered (we still hold m, so no signal is missed)
    local ok = c:wait(m, 10000)
    assert(m:held() == 'exclusive')
    if ok then s:add(0, 1) end
    m:unlock()
  ]]

  it('broadcast wakes all ten waiters', function()
    local kids = {}
    for i = 1, 10 do kids[i] = H.spawn(waiter, c.name, m.name, shm.name) end
    assert.truthy(H.wait_until(function() return shm:unpack('<i8', 8) == 10 end, 10000))
    assert.truthy(H.wait_until(function() return c:info().waiters == 10 end, 5000))
    m:lock()
    c:broadcast()
    m:unlock()
    for i = 1, 10 do assert.equal(0, kids[i]:wait()) end
    assert.equal(10, shm:unpack('<i8', 0))
  end)

  it('signal wakes exactly one', function()
    local kids = {}
    for i = 1, 3 do kids[i] = H.spawn(waiter, c.name, m.name, shm.name) end
    assert.truthy(H.wait_until(function() return c:info().waiters == 3 end, 10000))
    c:signal()
    assert.truthy(H.wait_until(function() return shm:unpack('<i8', 0) == 1 end, 5000))
    H.sleep(100)
    assert.equal(1, shm:unpack('<i8', 0))
    assert.equal(2, c:info().waiters)
    c:broadcast()
    for i = 1, 3 do assert.equal(0, kids[i]:wait()) end
    assert.equal(3, shm:unpack('<i8', 0))
  end)

  it('a timed wait returns false after the timeout, still holding the lock', function()
    m:lock()
    local t0 = ipc.clock()
    assert.is_false(c:wait(m, 100))
    local dt = ipc.clock() - t0
    assert.is_true(dt >= 100 and dt < 600, 'took ' .. dt)
    assert.equal('exclusive', m:held())
    m:unlock()
  end)

  it('a signal with no waiter is not remembered', function()
    c:signal()
    c:broadcast()
    m:lock()
    assert.is_false(c:wait(m, 50))
    m:unlock()
  end)

  it('wait needs the mutex held exclusively', function()
    assert.has_error(function() c:wait(m, 0) end)
    m:lock_shared()
    assert.has_error(function() c:wait(m, 0) end)
    m:unlock()
    assert.has_error(function() c:wait(shm, 0) end)
  end)

  it('a waiter killed while waiting leaves no trace and takes no signal', function()
    local victim = H.spawn(waiter, c.name, m.name, shm.name)
    assert.truthy(H.wait_until(function() return c:info().waiters == 1 end, 10000))
    local live = H.spawn(waiter, c.name, m.name, shm.name)
    assert.truthy(H.wait_until(function() return c:info().waiters == 2 end, 10000))
    victim:kill(9)
    victim:wait()
    c:signal()   -- the oldest waiter is dead: the live one must get it
    assert.equal(0, live:wait(5000))
    assert.equal(1, shm:unpack('<i8', 0))
    assert.equal(0, c:info().waiters)
    assert.truthy(m:lock(1000))
    m:unlock()
  end)
end)
