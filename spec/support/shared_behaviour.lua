-- One body of behavioural specs run against every backend: the local
-- objects (ipc.*) and the PostgreSQL ones (ipc.connect(url).*).
--
--   require('spec.support.shared_behaviour')(title, B, _ENV)
-- B.setup()    -> the namespace in this process, or nil and the reason
--                 every spec goes pending (called in setup)
-- B.child()    -> Lua source run first in every child, defining global NS
-- B.teardown() -> optional
local H = require 'spec.helper'

-- E is the calling spec file's _ENV (busted's describe/it live there).
return function(title, B, E)
  local describe, it, setup, teardown, after_each, pending, assert =
    E.describe, E.it, E.setup, E.teardown, E.after_each, E.pending, E.assert
  describe(title, function()
    -- Decided while busted loads the file, so that unavailable specs are
    -- reported as pending (busted cannot turn a running test pending).
    local NS, skip = B.setup()
    if not NS then skip = skip or 'backend unavailable' end
    local made = {}

    teardown(function()
      if B.teardown then B.teardown() end
    end)

    after_each(function()
      for _, n in ipairs(made) do pcall(NS.remove, n) end
      made = {}
    end)

    -- it() that goes pending with a reason when the backend (or this type
    -- on this backend) is unavailable.
    local function it_(kind, what, fn)
      if skip then
        pending(what .. ': ' .. skip)
      elseif kind and type(NS[kind]) ~= 'function' then
        pending(what .. ': ' .. kind .. ' is not in this build (' .. title .. ')')
      else
        it(what, fn)
      end
    end

    local function new(kind, opts)
      local name = H.name(kind:sub(1, 1):upper())
      made[#made + 1] = name
      return NS[kind](name, opts), name
    end

    local function spawn(code, ...)
      return H.spawn(B.child() .. '\n' .. code, ...)
    end

    local function elapsed(fn)
      local t = H.clock()
      local a, b = fn()
      return H.clock() - t, a, b
    end

    -- mutex ------------------------------------------------------------

    it_('mutex', 'mutex: exclusive/shared matrix across processes', function()
      local m, name = new('mutex')
      for _, case in ipairs({
        { held = 'lock', try = 'lock', ok = false },
        { held = 'lock', try = 'lock_shared', ok = false },
        { held = 'lock_shared', try = 'lock', ok = false },
        { held = 'lock_shared', try = 'lock_shared', ok = true },
      }) do
        local c = spawn(([[
          local m = NS.mutex(select(2, ...))
          assert(m:%s())
          ready()
          wait_go()
          m:unlock()
        ]]):format(case.held), name)
        assert.truthy(c:wait_ready())
        local g = m[case.try](m, 0)
        assert.are.equal(case.ok, g and true or false, case.held .. ' vs ' .. case.try)
        if g then
          assert.are.equal(case.try == 'lock' and 'exclusive' or 'shared', m:held())
          assert.is_true(m:unlock())
        end
        c:go()
        assert.are.equal(0, c:wait())
        -- free now
        local g2 = m:lock(5000)
        assert.truthy(g2)
        m:unlock()
      end
    end)

    it_('mutex', 'mutex: a lock timeout is measured and returns false', function()
      local m, name = new('mutex')
      local c = spawn([[
        local m = NS.mutex(select(2, ...))
        assert(m:lock()) ready() wait_go()
      ]], name)
      assert.truthy(c:wait_ready())
      local dt, g = elapsed(function() return m:lock(300) end)
      assert.is_false(g)
      assert.is_true(dt >= 290, 'returned after ' .. dt .. ' ms')
      assert.is_true(dt < 3000, 'returned after ' .. dt .. ' ms')
      assert.is_nil(m:held())
      c:kill(9)
      c:wait()
    end)

    it_('mutex', 'mutex: a holder killed with SIGKILL frees the lock within a second', function()
      for _, how in ipairs({ 'lock', 'lock_shared' }) do
        local m, name = new('mutex')
        local c = spawn(([[
          local m = NS.mutex(select(2, ...))
          assert(m:%s()) ready() while true do ipc.sleep(1000) end
        ]]):format(how), name)
        assert.truthy(c:wait_ready())
        assert.is_false(m:lock(0))
        c:kill(9)
        local t = H.clock()
        assert.are.equal(137, c:wait())
        local g = m:lock(5000)
        local dt = H.clock() - t
        assert.truthy(g)
        assert.is_true(dt < 1000, how .. ': lock freed after ' .. dt .. ' ms')
        m:unlock()
      end
    end)

    it_('mutex', 'mutex: a blocked lock() returns to Lua on SIGINT within ~100 ms', function()
      local m, name = new('mutex')
      assert.truthy(m:lock())
      local c = spawn([[
        local m = NS.mutex(select(2, ...))
        ready()
        local ok, err = pcall(m.lock, m, 20000)
        print(ok, err, m:held())
      ]], name)
      assert.truthy(c:wait_ready())
      H.sleep(200)
      local t = H.clock()
      c:kill('INT')
      local st = c:wait(5000)
      local dt = H.clock() - t
      assert.truthy(st, 'child did not stop')
      assert.is_true(dt < 1500, 'stopped after ' .. dt .. ' ms')
      m:unlock()
      local g = m:lock(2000)
      assert.truthy(g)
      m:unlock()
    end)

    it_('mutex', 'mutex: relocking is an error, unlock when not held is false', function()
      local m = new('mutex')
      assert.truthy(m:lock())
      assert.has_error(function() m:lock() end)
      assert.is_true(m:unlock())
      local ok, why = m:unlock()
      assert.is_false(ok)
      assert.are.equal('not locked by this process', why)
      local r = table.pack(m:with(function() return 1, 2 end))
      assert.are.same({ true, 1, 2, n = 3 }, r)
      assert.has_error(function() m:with(function() error('boom') end) end)
      assert.is_nil(m:held())
      local info = m:info()
      assert.are.equal('mutex', info.type)
      assert.are.equal('free', info.state)
    end)

    -- semaphore --------------------------------------------------------

    it_('semaphore', 'semaphore: post in one process wakes a waiter in another', function()
      local s, name = new('semaphore')
      local c = spawn([[
        local s = NS.semaphore(select(2, ...))
        ready()
        local t = ipc.clock()
        print(s:wait(10000), ipc.clock() - t)
      ]], name)
      assert.truthy(c:wait_ready())
      H.sleep(100)
      s:post()
      assert.are.equal(0, c:wait())
      assert.truthy(c.out:match('^true'))
      assert.are.equal(0, s:value())
      local dt, ok = elapsed(function() return s:wait(200) end)
      assert.is_false(ok)
      assert.is_true(dt >= 190 and dt < 3000, 'wait(200) took ' .. dt)
    end)

    it_('semaphore', 'semaphore: undo returns the permits of a killed process', function()
      local s, name = new('semaphore', { value = 2, undo = true })
      local c = spawn([[
        local s = NS.semaphore(select(2, ...))
        assert(s:wait(0)) assert(s:wait(0)) ready() while true do ipc.sleep(1000) end
      ]], name)
      assert.truthy(c:wait_ready())
      assert.is_false(s:wait(0))
      c:kill(9)
      c:wait()
      assert.truthy(H.wait_until(function() return s:value() == 2 end, 3000))
      assert.is_true(s:wait(0))
    end)

    -- queue ------------------------------------------------------------

    it_('queue', 'queue: priority, then FIFO; timeouts measured', function()
      local q = new('queue')
      q:send('a', 1)
      q:send('b', 5)
      q:send('c', 1)
      q:send('bin\0ary', 5)
      local got = {}
      for _ = 1, 4 do got[#got + 1] = (q:receive(0)) end
      assert.are.same({ 'b', 'bin\0ary', 'a', 'c' }, got)
      local dt, m = elapsed(function() return q:receive(250) end)
      assert.is_nil(m)
      assert.is_true(dt >= 240 and dt < 3000, 'receive(250) took ' .. dt)
      assert.has_error(function() q:send(('x'):rep(q:max_size() + 1)) end)
    end)

    it_('queue', 'queue: a full queue blocks send until its timeout', function()
      local q = new('queue', { max_count = 2 })
      assert.is_true(q:send('1'))
      assert.is_true(q:send('2'))
      assert.is_false(q:send('3', 0, 0))
      local dt, ok = elapsed(function() return q:send('3', 0, 200) end)
      assert.is_false(ok)
      assert.is_true(dt >= 190 and dt < 3000, 'send timeout took ' .. dt)
      assert.are.equal(2, q:count())
      assert.are.equal(2, q:clear())
      assert.are.equal(0, q:count())
    end)

    it_('queue', 'queue: 4 producers x 4 consumers, every message exactly once', function()
      local q, name = new('queue', { max_count = 16 })
      local producers, consumers = {}, {}
      for p = 1, 4 do
        producers[p] = spawn([[
          local _, name, p = ...
          local q = NS.queue(name)
          for i = 1, 25 do assert(q:send(p .. ':' .. i, 0, 20000)) end
        ]], name, tostring(p))
      end
      for c = 1, 4 do
        consumers[c] = spawn([[
          local q = NS.queue(select(2, ...))
          while true do
            local m = q:receive(20000)
            if m == nil or m == 'STOP' then break end
            io.write(m, '\n')
          end
        ]], name)
      end
      for _, p in ipairs(producers) do assert.are.equal(0, p:wait()) end
      for _ = 1, 4 do assert.is_true(q:send('STOP', 0, 20000)) end
      local seen, total = {}, 0
      for _, c in ipairs(consumers) do
        assert.are.equal(0, c:wait())
        for line in c.out:gmatch('[^\n]+') do
          assert.is_nil(seen[line], 'delivered twice: ' .. line)
          seen[line] = true
          total = total + 1
        end
      end
      assert.are.equal(100, total)
      for p = 1, 4 do for i = 1, 25 do assert.truthy(seen[p .. ':' .. i]) end end
    end)

    it_('queue', 'queue: with() redelivers after the receiver is killed, and after fn raises', function()
      local q, name = new('queue')
      q:send('job')
      local c = spawn([[
        local q = NS.queue(select(2, ...))
        q:with(function(m) ready() while true do ipc.sleep(1000) end end)
      ]], name)
      assert.truthy(c:wait_ready())
      assert.is_nil(q:receive(0))
      c:kill(9)
      c:wait()
      local got
      local ok = q:with(function(m) got = m end, 5000)
      assert.is_true(ok)
      assert.are.equal('job', got)
      assert.are.equal(0, q:count())
      q:send('again')
      assert.has_error(function() q:with(function() error('boom') end, 0) end)
      assert.are.equal('again', q:receive(1000))
    end)

    it_('queue', 'queue: a blocked receive is interrupted by SIGINT', function()
      local _, name = new('queue')
      local c = spawn([[
        local q = NS.queue(select(2, ...))
        ready()
        q:receive()
      ]], name)
      assert.truthy(c:wait_ready())
      H.sleep(100)
      local t = H.clock()
      c:kill('INT')
      local st = c:wait(5000)
      assert.truthy(st, 'child did not stop')
      assert.is_true(H.clock() - t < 1500)
      assert.are_not.equal(0, st)
    end)

    -- event, kv ----------------------------------------------------------

    it_('event', 'event: set in one process releases a waiter in another', function()
      local e, name = new('event')
      local c = spawn([[
        local e = NS.event(select(2, ...))
        ready()
        print(e:wait(10000))
      ]], name)
      assert.truthy(c:wait_ready())
      assert.is_false(e:is_set())
      H.sleep(100)
      e:set()
      assert.are.equal(0, c:wait())
      assert.are.equal('true\n', c.out)
      assert.is_true(e:is_set())
      e:clear()
      local dt, ok = elapsed(function() return e:wait(150) end)
      assert.is_false(ok)
      assert.is_true(dt >= 140 and dt < 3000)
      local a = new('event', { auto_reset = true })
      a:set()
      assert.is_true(a:wait(0))
      assert.is_false(a:wait(0))
    end)

    it_('kv', 'kv: values round-trip and update/incr are atomic across processes', function()
      local t, name = new('kv')
      t:set('v', { 1, 'two', x = { true } })
      assert.are.same({ 1, 'two', x = { true } }, t:get('v'))
      local kids = {}
      for i = 1, 4 do
        kids[i] = spawn([[
          local t = NS.kv(select(2, ...))
          for _ = 1, 20 do t:incr('n') end
          for _ = 1, 5 do t:update('u', function(old) return (old or 0) + 1 end) end
        ]], name)
      end
      for _, k in ipairs(kids) do assert.are.equal(0, k:wait()) end
      assert.are.equal(80, t:get('n'))
      assert.are.equal(20, t:get('u'))
      assert.has_error(function() t:update('u', function() error('boom') end) end)
      assert.are.equal(20, t:get('u'))
      assert.is_true(t:delete('v'))
      assert.is_false(t:delete('v'))
      local keys = t:keys() table.sort(keys) assert.are.same({ 'n', 'u' }, keys)
    end)

    it_('kv', 'kv: a full table is an error and keeps what it had', function()
      local t = new('kv', { size = 4096 })
      t:set('a', ('x'):rep(1000))
      assert.has_error(function() t:set('b', ('y'):rep(8000)) end)
      assert.are.equal(('x'):rep(1000), t:get('a'))
      assert.is_nil(t:get('b'))
    end)
  end)
end
