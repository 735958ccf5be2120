local H = require 'spec.helper'
local ipc = H.ipc

local function newq(opts)
  opts = opts or {}
  opts.cleanup = true
  return ipc.queue(H.name('SQ'), opts)
end
local function news(opts)
  opts = opts or {}
  opts.cleanup = true
  return ipc.semaphore(H.name('SS'), opts)
end
local function newe(opts)
  opts = opts or {}
  opts.cleanup = true
  return ipc.event(H.name('SE'), opts)
end
local function newm()
  return ipc.mutex(H.name('SM'), { cleanup = true })
end

-- Lines written by a child (complete lines only).
local function lines(s)
  local t = {}
  for l in (s or ''):gmatch('([^\n]*)\n') do t[#t + 1] = l end
  return t
end

-- H.spawn with the child's arguments in A (A[1] is its directory).
local function spawn(code, ...)
  return H.spawn('local A = {...}\n' .. code, ...)
end

local function median(t)
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  table.sort(c)
  return c[(#c + 1) // 2]
end

describe('ipc.select', function()
  it('returns the object and its operation results, nil on timeout', function()
    local q1, q2 = newq(), newq()
    local s, e, ea, m = news(), newe(), newe({ auto_reset = true }), newm()
    assert.is_nil(ipc.select({ q1, q2, s, e, ea }, 0))
    assert.equal(1, select('#', ipc.select({ q1, q2, s, e, ea }, 0)))

    q2:send('hello', 7)
    assert.same({ n = 3, q2, 'hello', 7 }, table.pack(ipc.select({ q1, q2, s, e, ea }, 0)))
    assert.equal(0, q2:count())

    s:post(1)
    assert.same({ n = 2, s, true }, table.pack(ipc.select({ q1, s, e }, 0)))
    assert.equal(0, s:value())

    e:set()
    assert.same({ n = 2, e, true }, table.pack(ipc.select({ q1, s, e }, 0)))
    assert.is_true(e:is_set()) -- a manual-reset event stays set
    e:clear()

    ea:set()
    assert.same({ n = 2, ea, true }, table.pack(ipc.select({ q1, ea }, 0)))
    assert.is_false(ea:is_set()) -- auto reset: the select took the set
    assert.is_nil(ipc.select({ q1, ea }, 0))

    local r = table.pack(ipc.select({ q1, m }, 0))
    assert.equal(2, r.n)
    assert.equal(m, r[1])
    assert.equal('exclusive', m:held())
    r[2]:unlock()
    assert.is_nil(m:held())
    -- a guard closes as usual
    do
      local _, g <close> = ipc.select({ m }, 0)
      assert.equal('exclusive', m:held())
    end
    assert.is_nil(m:held())
  end)

  it('performs exactly one operation, and rotates (fair) over ready objects', function()
    local q1, q2 = newq(), newq()
    local s = news()
    for i = 1, 10 do q1:send('a' .. i); q2:send('b' .. i) end
    s:post(10)
    local got = {}
    for _ = 1, 30 do
      local o, msg = ipc.select({ q1, q2, s }, 0)
      got[o] = (got[o] or 0) + 1
      if o ~= s then assert.truthy(msg) end
    end
    assert.equal(10, got[q1])
    assert.equal(10, got[q2])
    assert.equal(10, got[s])
    assert.equal(0, q1:count() + q2:count() + s:value())
    assert.is_nil(ipc.select({ q1, q2, s }, 0))
  end)

  it('times out after the timeout, measured', function()
    local q1, q2 = newq(), newq()
    local s, e = news(), newe()
    for _, ms in ipairs({ 50, 200 }) do
      local t0 = ipc.clock()
      assert.is_nil(ipc.select({ q1, q2, s, e }, ms))
      local dt = ipc.clock() - t0
      assert.is_true(dt >= ms - 0.5, ('returned after %.1f ms of %d'):format(dt, ms))
      assert.is_true(dt < ms + 1500, ('returned after %.1f ms of %d'):format(dt, ms))
    end
    assert.equal(0, q1:info().waiting_receivers)
    assert.equal(0, s:info().waiters)
  end)

  it('rejects bad input with errors naming select', function()
    local q = newq()
    local function err(...)
      local ok, msg = pcall(ipc.select, ...)
      assert.is_false(ok)
      return msg
    end
    assert.matches("bad argument #1 to '[%w.]*select' %(table expected", err(5))
    assert.matches("bad argument #1 to 'select' %(empty list%)", err({}))
    assert.matches("entry 2 is a number, not a queue, semaphore, event or mutex", err({ q, 3 }))
    assert.matches("entry 1 is a table", err({ {} }))
    assert.matches("entry 2 is the same object as entry 1", err({ q, q }))
    assert.matches("entry 2 is the same object as entry 1", err({ q, ipc.queue(q.name) }))
    local kv = ipc.kv(H.name('SK'), { cleanup = true })
    assert.matches("entry 1 is a kv: select takes queues, semaphores, events and mutexes",
      err({ kv, q }))
    local b = ipc.barrier(H.name('SB'), { cleanup = true, count = 2 })
    assert.matches("entry 2 is a barrier", err({ q, b }))
    local c = ipc.condition(H.name('SC'), { cleanup = true })
    assert.matches("entry 1 is a condition", err({ c }))
    local sh = ipc.shm(H.name('SH'), { cleanup = true, size = 64 })
    assert.matches("entry 1 is a shm", err({ sh }))
    local closed = ipc.queue(q.name)
    closed:close()
    assert.matches("entry 2 is a closed queue", err({ q, closed }))
    local m = newm()
    local g <close> = m:lock()
    assert.matches('entry 1 is mutex "' .. m.name .. '", already held by this process', err({ m }))
    assert.matches("timeout must be a non%-negative number", err({ q }, -1))
    assert.matches("timeout must be a non%-negative number", err({ q }, 0 / 0))
    assert.matches("number %(timeout in milliseconds%) expected", err({ q }, 'x'))
    local many = {}
    for i = 1, 65 do many[i] = q end
    assert.matches("65 objects, at most 64", err(many))
    -- a remote object (ipc.connect) is recognised by its metatable
    local remote = setmetatable({}, { __name = 'ipcsh.net.queue' })
    assert.matches("select: remote objects are not supported %(entry 2 is a remote queue",
      err({ q, remote }))
    -- nothing was left registered by the failed calls
    assert.equal(0, q:info().waiting_receivers)
  end)

  it('wakes up promptly when a message arrives (futex_waitv and the fallback)', function()
    -- The selector records, per message, receive time minus the send time
    -- the sender wrote into it; the sender sends only once the selector is
    -- registered (asleep) on both queues.  A lost wake would cost the 1 s
    -- safety-net sleep.
    local selector = [[
      local q1, q2 = ipc.queue(arg[1]), ipc.queue(arg[2])
      local s = ipc.semaphore(arg[3])
      for i = 1, tonumber(arg[4]) do
        local o, msg = ipc.select({ q1, s, q2 }, 20000)
        local now = ipc.clock()
        if o ~= q2 then print('wrong', tostring(o)) os.exit(1) end
        print(('%.3f'):format(now - tonumber(msg)))
      end
    ]]
    local sender = [[
      local q1, q2 = ipc.queue(A[2]), ipc.queue(A[3])
      local n = tonumber(A[4])
      ready()
      for i = 1, n do
        while q1:info().waiting_receivers < 1 or q2:info().waiting_receivers < 1 do ipc.sleep(1) end
        ipc.sleep(5 + i % 7)
        q2:send(tostring(ipc.clock()))
      end
    ]]
    for _, mode in ipairs({ '', '1' }) do
      local q1, q2, s = newq(), newq(), news()
      local n = 12
      local c = spawn(sender, q1.name, q2.name, tostring(n))
      H.guard(c, finally)
      local code = 'local arg = {...}\n' .. selector
      local st, out, err = H.run_env({ IPCSH_TEST_NO_WAITV = mode }, code, q1.name, q2.name,
        s.name, tostring(n))
      assert.equal(0, st, err)
      assert.equal(0, c:wait(30000))
      local lat = {}
      for _, l in ipairs(lines(out)) do lat[#lat + 1] = assert(tonumber(l), l) end
      assert.equal(n, #lat)
      local med = median(lat)
      -- the contract: within 50 ms.  The median holds it on a loaded
      -- machine too (a single trial may lose the CPU for longer); wake-ups
      -- lost to the 1 s safety net would put it near 1000.
      assert.is_true(med < 50, ('mode %q: median %.1f ms (%s)'):format(mode, med,
        table.concat(lat, ' ')))
      assert.equal(0, q1:info().waiting_receivers)
      assert.equal(0, s:info().waiters)
    end
  end)

  it('is fair: two busy queues are both served', function()
    -- Two producers fill their queue with 700 messages each; 1000 selects
    -- on both then.  Taking the first ready object in list order would
    -- give 700 / 300; the rotation serves them in turn.  (Queues fed while
    -- the selects run would make the split depend on the scheduler.)
    local q1, q2 = newq({ max_count = 700 }), newq({ max_count = 700 })
    local feeder = [[
      local q = ipc.queue(A[2])
      for i = 1, 700 do assert(q:send('x' .. i, 0, 0)) end
    ]]
    local f1 = spawn(feeder, q1.name)
    local f2 = spawn(feeder, q2.name)
    H.guard(f1, finally)
    H.guard(f2, finally)
    assert.equal(0, f1:wait(30000))
    assert.equal(0, f2:wait(30000))
    assert.equal(700, q1:count())
    assert.equal(700, q2:count())
    local got = { [q1] = 0, [q2] = 0 }
    for _ = 1, 1000 do
      local o = ipc.select({ q1, q2 }, 20000)
      assert.truthy(o)
      got[o] = got[o] + 1
    end
    assert.is_true(got[q1] >= 400 and got[q2] >= 400, ('%d / %d'):format(got[q1], got[q2]))
    assert.equal(1400 - 1000, q1:count() + q2:count())
  end)

  it('delivers each message exactly once: 4 selecting consumers, 2 producers, 4000 messages',
    function()
      local q1, q2 = newq({ max_count = 16 }), newq({ max_count = 16 })
      local N = 2000
      local producer = [[
        local q = ipc.queue(A[2])
        local tag, n = A[3], A[4]
        ready()
        wait_go()
        for i = 1, tonumber(n) do
          q:send(tag .. i, 0, 60000)
          if i % 97 == 0 then ipc.sleep(1) end -- let the consumers fall asleep now and then
        end
      ]]
      local consumer = [[
        local q1, q2 = ipc.queue(A[2]), ipc.queue(A[3])
        ready()
        local out = {}
        while true do
          local o, msg = ipc.select({ q1, q2 }, 60000)
          if not o then out[#out + 1] = 'TIMEOUT' break end
          if msg == 'stop' then break end
          out[#out + 1] = msg
        end
        io.write(table.concat(out, '\n'), '\n')
      ]]
      local cons, prods = {}, {}
      for i = 1, 4 do
        cons[i] = spawn(consumer, q1.name, q2.name)
        H.guard(cons[i], finally)
      end
      prods[1] = spawn(producer, q1.name, 'a', tostring(N))
      prods[2] = spawn(producer, q2.name, 'b', tostring(N))
      for _, p in ipairs(prods) do H.guard(p, finally); assert.truthy(p:wait_ready()) end
      for _, c in ipairs(cons) do assert.truthy(c:wait_ready()) end
      for _, p in ipairs(prods) do p:go() end
      for _, p in ipairs(prods) do assert.equal(0, p:wait(120000)) end
      assert.truthy(H.wait_until(function() return q1:count() + q2:count() == 0 end, 60000))
      for _ = 1, 4 do q1:send('stop') end
      local seen, total = {}, 0
      for _, c in ipairs(cons) do
        assert.equal(0, c:wait(60000), c.err)
        for _, l in ipairs(lines(c.out)) do
          if l ~= '' then
            assert.is_nil(seen[l], 'duplicate ' .. l)
            seen[l] = true
            total = total + 1
          end
        end
      end
      assert.equal(2 * N, total)
      for i = 1, N do
        assert.truthy(seen['a' .. i], 'lost a' .. i)
        assert.truthy(seen['b' .. i], 'lost b' .. i)
      end
      assert.equal(0, q1:info().waiting_receivers)
      assert.equal(0, q2:info().waiting_receivers)
    end)

  it('mixed with plain receivers: every message delivered once, no one stranded', function()
    -- Selectors absorb targeted wake-ups meant for plain receivers; the
    -- pass-on rule must keep the plain ones going.
    local q, s = newq({ max_count = 4 }), news()
    local N = 600
    local plain = [[
      local q = ipc.queue(A[2])
      ready()
      local out = {}
      while true do
        local m = q:receive(60000)
        if not m then out[#out + 1] = 'TIMEOUT' break end
        if m == 'stop' then break end
        out[#out + 1] = m
      end
      io.write(table.concat(out, '\n'), '\n')
    ]]
    local selecting = [[
      local q, s = ipc.queue(A[2]), ipc.semaphore(A[3])
      ready()
      local out, posts = {}, 0
      while true do
        local o, m = ipc.select({ s, q }, 60000)
        if not o then out[#out + 1] = 'TIMEOUT' break end
        if o == s then posts = posts + 1
        elseif m == 'stop' then break
        else out[#out + 1] = m end
      end
      out[#out + 1] = 'posts=' .. posts
      io.write(table.concat(out, '\n'), '\n')
    ]]
    local kids = {}
    for i = 1, 2 do kids[#kids + 1] = spawn(plain, q.name) end
    for i = 1, 2 do kids[#kids + 1] = spawn(selecting, q.name, s.name) end
    for _, k in ipairs(kids) do H.guard(k, finally); assert.truthy(k:wait_ready()) end
    for i = 1, N do
      assert.is_true(q:send('m' .. i, 0, 60000))
      if i % 3 == 0 then s:post(1) end
      if i % 50 == 0 then ipc.sleep(2) end
    end
    assert.truthy(H.wait_until(function() return q:count() == 0 and s:value() == 0 end, 60000))
    for _ = 1, #kids do q:send('stop', 0, 60000) end
    local seen, total, posts = {}, 0, 0
    for _, k in ipairs(kids) do
      assert.equal(0, k:wait(60000), k.err)
      for _, l in ipairs(lines(k.out)) do
        local p = l:match('^posts=(%d+)$')
        if p then
          posts = posts + tonumber(p)
        elseif l ~= '' then
          assert.is_nil(seen[l], 'duplicate ' .. l)
          seen[l] = true
          total = total + 1
        end
      end
    end
    assert.equal(N, total)
    assert.equal(N // 3, posts)
    assert.equal(0, q:info().waiting_receivers)
    assert.equal(0, s:info().waiters)
  end)

  it('passes on a queue wake-up it absorbed to a plain receiver (no stranded sleeper)', function()
    -- S (select on {s, q}) sleeps first, then R (q:receive).  A send wakes
    -- the first sleeper, S; a post right after makes S take s instead.  The
    -- message is R's then, and R must be woken at once, not by its 1 s
    -- safety-net re-check: the round's latency says which.
    local lat, rounds = {}, 0
    while #lat < 5 and rounds < 40 do
      rounds = rounds + 1
      local q, s = newq(), news()
      local S = spawn([[
        local q, s = ipc.queue(A[2]), ipc.semaphore(A[3])
        local o = ipc.select({ s, q }, 30000)
        print(o == s and 's' or o == q and 'q' or 'none')
      ]], q.name, s.name)
      H.guard(S, finally)
      assert.truthy(H.wait_until(function()
        return q:info().waiting_receivers == 1 and s:info().waiters == 1
      end, 20000))
      local R = spawn([[
        local q = ipc.queue(A[2])
        local m = q:receive(30000)
        print(m, ipc.clock())
      ]], q.name)
      H.guard(R, finally)
      assert.truthy(H.wait_until(function() return q:info().waiting_receivers == 2 end, 20000))
      ipc.sleep(20) -- both asleep in the kernel, S first
      local t0 = ipc.clock()
      q:send('m')
      s:post(1)
      assert.equal(0, S:wait(30000))
      local took = S.out:match('^(%a+)')
      if took == 's' then
        assert.equal(0, R:wait(30000))
        local m, at = R.out:match('^(%S+)\t(%S+)')
        assert.equal('m', m)
        lat[#lat + 1] = tonumber(at) - t0
      else
        assert.equal('q', took)
        s:wait(0)
        q:send('other')
        assert.equal(0, R:wait(30000))
      end
      q:remove(); q:close()
      s:remove(); s:close()
    end
    assert.is_true(#lat >= 3, ('only %d of %d rounds took the semaphore'):format(#lat, rounds))
    -- a stranded R would wait for its safety-net tick: 500 ms on average
    assert.is_true(median(lat) < 200, 'latencies ' .. table.concat(lat, ' '))
  end)

  it('auto-reset event: a set granted to a selector that takes another object is given back',
    function()
      local q, ea = newq(), newe({ auto_reset = true })
      local one = [[
        local q, ea = ipc.queue(A[2]), ipc.event(A[3])
        ready()
        local o = ipc.select({ q, ea }, 30000)
        print(o == q and 'q' or o == ea and 'e' or 'none')
      ]]
      local tally = { q = 0, e = 0 }
      for round = 1, 8 do
        local c = spawn(one, q.name, ea.name)
        H.guard(c, finally)
        assert.truthy(H.wait_until(function()
          return q:info().waiting_receivers == 1 and ea:info().waiters == 1
        end, 20000))
        if round % 2 == 0 then
          q:send('m'); ea:set()
        else
          ea:set(); q:send('m')
        end
        assert.equal(0, c:wait(30000))
        local took = c.out:match('^(%a+)')
        assert.truthy(took == 'q' or took == 'e', c.out .. c.err)
        tally[took] = tally[took] + 1
        -- exactly one of the two was consumed; the other is still there
        if took == 'q' then
          assert.equal(0, q:count())
          assert.is_true(ea:wait(0), 'the set was lost')
        else
          assert.equal(1, q:count())
          assert.is_false(ea:wait(0), 'the set was duplicated')
          assert.equal('m', q:receive(0))
        end
        assert.equal(0, ea:info().waiters)
      end
    end)

  it('a SIGKILLed selector leaves nothing registered behind', function()
    local q1, q2, s = newq(), newq(), news()
    local e, ea = newe(), newe({ auto_reset = true })
    local c = spawn([[
      local q1, q2 = ipc.queue(A[2]), ipc.queue(A[3])
      local s, e, ea = ipc.semaphore(A[4]), ipc.event(A[5]), ipc.event(A[6])
      ready()
      ipc.select({ q1, q2, s, e, ea })
      print('returned')
    ]], q1.name, q2.name, s.name, e.name, ea.name)
    H.guard(c, finally)
    assert.truthy(H.wait_until(function()
      return q1:info().waiting_receivers == 1 and q2:info().waiting_receivers == 1 and
        s:info().waiters == 1 and e:info().waiters == 1 and ea:info().waiters == 1
    end, 20000), 'the selector did not register everywhere')
    c:kill(9)
    assert.equal(137, c:wait(20000))
    assert.equal(0, q1:info().waiting_receivers)
    assert.equal(0, q2:info().waiting_receivers)
    assert.equal(0, s:info().waiters)
    assert.equal(0, e:info().waiters)
    assert.equal(0, ea:info().waiters)
    -- and everything still works, for plain calls and for select
    q1:send('x')
    assert.equal('x', q1:receive(0))
    ea:set()
    assert.is_true(ea:wait(0))
    local c2 = spawn([[
      local q1, q2 = ipc.queue(A[2]), ipc.queue(A[3])
      ready()
      local o, m = ipc.select({ q1, q2 }, 30000)
      print(o == q2, m)
    ]], q1.name, q2.name)
    H.guard(c2, finally)
    assert.truthy(H.wait_until(function() return q2:info().waiting_receivers == 1 end, 20000))
    q2:send('y')
    assert.equal(0, c2:wait(30000))
    assert.equal('true\ty\n', c2.out)
  end)

  it('raises "interrupted" promptly on SIGINT and unregisters', function()
    local q, s = newq(), news()
    local c = spawn([[
      local q, s = ipc.queue(A[2]), ipc.semaphore(A[3])
      ready()
      local ok, err = pcall(ipc.select, { q, s })
      print(ok, err, ipc.clock())
    ]], q.name, s.name)
    H.guard(c, finally)
    assert.truthy(H.wait_until(function()
      return q:info().waiting_receivers == 1 and s:info().waiters == 1
    end, 20000))
    local t0 = ipc.clock()
    c:kill('INT')
    local st = c:wait(10000)
    assert.is_not_nil(st)
    assert.matches('interrupted', c.out .. c.err)
    local ok, err, at = c.out:match('^(%S+)\t(%S+)\t(%S+)')
    if ok then
      assert.equal('false', ok)
      assert.equal('interrupted', err)
      assert.is_true(tonumber(at) - t0 < 500, ('caught %.0f ms after the kill'):format(tonumber(at) - t0))
    end
    assert.equal(0, q:info().waiting_receivers)
    assert.equal(0, s:info().waiters)
  end)

  it('waits on a mix of semaphore, queue, event and mutex held elsewhere', function()
    local q, s, e, m = newq(), news(), newe(), newm()
    local holder = spawn([[
      local m = ipc.mutex(A[2])
      local g = m:lock()
      ready()
      wait_go()
      g:unlock()
      ready('released')
      wait_go('exit')
    ]], m.name)
    H.guard(holder, finally)
    assert.truthy(holder:wait_ready())
    local list = { s, q, e, m }
    assert.is_nil(ipc.select(list, 30))
    -- each becomes ready from another process, in turn
    local poster = [[
      local what, name = A[2], A[3]
      ipc.sleep(30)
      if what == 'q' then ipc.queue(name):send('job', 2)
      elseif what == 's' then ipc.semaphore(name):post(1)
      else ipc.event(name):set() end
    ]]
    local c = spawn(poster, 's', s.name)
    assert.same({ n = 2, s, true }, table.pack(ipc.select(list, 20000)))
    assert.equal(0, c:wait(20000))
    c = spawn(poster, 'q', q.name)
    assert.same({ n = 3, q, 'job', 2 }, table.pack(ipc.select(list, 20000)))
    assert.equal(0, c:wait(20000))
    c = spawn(poster, 'e', e.name)
    assert.same({ n = 2, e, true }, table.pack(ipc.select(list, 20000)))
    assert.equal(0, c:wait(20000))
    e:clear()
    holder:go()
    local r = table.pack(ipc.select(list, 20000))
    assert.equal(m, r[1], tostring(r[1]))
    assert.truthy(holder:wait_ready('released', 20000))
    assert.equal('exclusive', m:held())
    r[2]:unlock()
    holder:go('exit')
    assert.equal(0, holder:wait(20000))
  end)
end)
