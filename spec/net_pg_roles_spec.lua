-- PostgreSQL backend with one role per host (issue 17, items 1, 3 and 5):
-- two ordinary roles with only the documented grants must not take what
-- the other holds; ids past 2^31; messages and API the same as locally.
local H = require 'spec.helper'
local P = require 'spec.support.pg'

local admin_url, why = nil, nil
local admin
do
  local ok, err = pcall(H.ipc.connect, 'postgresql://nobody@127.0.0.1:1/x')
  if not ok and tostring(err):find('without PostgreSQL support', 1, true) then
    why = 'ipcsh was built without PostgreSQL support (libpq-dev missing)'
  else
    admin_url, why = P.start()
    if admin_url then
      local ok, n = pcall(H.ipc.connect, admin_url)
      if not ok then
        P.stop() -- a failing connect must not leave the cluster running
        error(n, 0)
      end
      admin = n
    end
  end
end

-- A login role with exactly the grants `ipcsh --db URL setup ROLE` gives
-- (with_grants false: none); returns its URL.
local function role(tag, with_grants)
  local name = ('ipcsh_%s_%d'):format(tag, math.random(1, 1e9))
  local c = admin._ns._conn
  c:script(('CREATE ROLE %s LOGIN'):format(name))
  if with_grants == 'cli' then
    local st, out, err = H.sh(H.quote(H.bin) .. ' --db ' .. H.quote(admin_url) .. ' setup --apply ' .. name)
    assert(st == 0 and out:find('GRANT USAGE ON SCHEMA ipcsh TO "' .. name .. '";', 1, true), err)
  elseif with_grants then
    c:script(require('interprocess.net').grants(name))
  end
  return (admin_url:gsub('^postgresql://[^@]+@', 'postgresql://' .. name .. '@')), name
end

describe('PostgreSQL with one role per host', function()
  teardown(function() P.stop() end)
  local function it_(what, fn)
    if not admin then return pending(what .. ': ' .. tostring(why)) end
    it(what, fn)
  end

  it_('a role without the grants is refused at connect, naming what it lacks', function()
    local url = role('none', false)
    local ok, err = pcall(H.ipc.connect, url)
    assert.is_false(ok)
    err = tostring(err)
    assert.truthy(err:find('lacks the rights', 1, true), err)
    assert.truthy(err:find('USAGE ON SCHEMA ipcsh', 1, true), err)
    assert.truthy(err:find('setup', 1, true), err)
    assert.falsy(err:find('interprocess/net', 1, true), err)
  end)

  it_('with only the grants: in-flight message, undo permit and mutex are not taken by the other role', function()
    local url_a = role('a', 'cli')
    local url_b = role('b', true)
    local a, b = H.ipc.connect(url_a), H.ipc.connect(url_b)
    local qn, sn, mn = H.name('Q'), H.name('S'), H.name('M')
    local q = a.queue(qn)
    a.semaphore(sn, { value = 1, undo = true })
    a.mutex(mn)
    q:send('job')
    local holder = H.spawn(([[
      local n = ipc.connect(%q)
      local _, qn, sn, mn = ...
      local q, s, m = n.queue(qn), n.semaphore(sn), n.mutex(mn)
      assert(m:lock(5000))
      assert(s:wait(5000))
      q:with(function(msg)
        assert(msg == 'job')
        ready()
        wait_go()
      end, 5000)
    ]]):format(url_a), qn, sn, mn)
    H.guard(holder, finally)
    assert.truthy(holder:wait_ready(), table.concat({ holder:output() }, '\n'))
    local bq, bs, bm = b.queue(qn), b.semaphore(sn), b.mutex(mn)
    assert.is_nil(bq:receive(0))
    assert.is_false(bq:with(function() end, 0))
    assert.is_false(bs:wait(0))
    assert.are.equal(0, bs:value())
    assert.is_false(bm:lock(0))
    assert.are.equal(1, bq:info().in_flight)
    -- and once the holder is really gone (SIGKILL), the other role gets all three
    holder:kill('KILL')
    assert.are.equal(137, holder:wait())
    assert.truthy(bm:lock(10000))
    bm:unlock()
    assert.truthy(bs:wait(10000))
    bs:post()
    assert.are.equal('job', bq:receive(10000))
    for _, n in ipairs({ qn, sn, mn }) do admin.remove(n) end
  end)

  it_('ids past 2^31: bigint everywhere; opening an existing name consumes no id; tokens keep rising', function()
    local c = admin._ns._conn
    c:exec(nil, "SELECT setval('ipcsh.objects_id_seq', 3000000000)")
    c:exec(nil, "SELECT setval('ipcsh.fence', 5000000000)")
    local mn, qn, sn = H.name('M'), H.name('Q'), H.name('S')
    local m = admin.mutex(mn)
    assert.is_true(m:info().id > 2 ^ 31)
    local g = m:lock()
    local t1 = m:token()
    assert.is_true(t1 > 5000000000)
    g:unlock()
    assert.truthy(m:lock_shared())
    assert.is_true(m:token() > t1)
    m:unlock()
    local q = admin.queue(qn)
    q:send('x', 7)
    assert.is_true(q:with(function(msg) assert.are.equal('x', msg) end, 1000))
    local s = admin.semaphore(sn, { value = 1, undo = true })
    assert.is_true(s:wait(0))
    s:post()
    local function last() return c:exec(nil, 'SELECT last_value FROM ipcsh.objects_id_seq')[1][1] end
    local before = last()
    for _ = 1, 5 do admin.mutex(mn) admin.queue(qn) admin.semaphore(sn) end
    assert.are.equal(before, last())
    for _, n in ipairs({ mn, qn, sn }) do admin.remove(n) end
  end)

  it_('queue: receivers leave the queue row alone; max_count stays exact (recount), also for racing senders', function()
    local qn = H.name('Q')
    local q = admin.queue(qn, { max_count = 3 })
    for round = 1, 3 do
      for i = 1, 3 do assert.is_true(q:send('m' .. i, 0, 0), 'round ' .. round) end
      assert.is_false(q:send('over', 0, 0))
      assert.are.equal(3, q:count())
      for i = 1, 3 do assert.are.equal('m' .. i, q:receive(0)) end
      assert.are.equal(0, q:count())
    end
    -- 4 processes race 25 sends each into an empty queue of max_count 10
    local q2n = H.name('Q')
    local q2 = admin.queue(q2n, { max_count = 10 })
    q2:send('x') assert.are.equal('x', q2:receive(0)) -- the bound is now 1 above the truth
    local kids = {}
    for k = 1, 4 do
      kids[k] = H.spawn(([[
        local q = ipc.connect(%q).queue(select(2, ...))
        ready()
        wait_go()
        local n = 0
        for _ = 1, 25 do if q:send('m', 0, 0) then n = n + 1 end end
        print(n)
      ]]):format(admin_url), q2n)
      H.guard(kids[k], finally)
    end
    for _, c in ipairs(kids) do assert.truthy(c:wait_ready()) end
    for _, c in ipairs(kids) do c:go() end
    local sent = 0
    for _, c in ipairs(kids) do
      assert.are.equal(0, c:wait(30000), table.concat({ c:output() }, '\n'))
      sent = sent + tonumber(c.out:match('%d+'))
    end
    assert.are.equal(10, sent)
    assert.are.equal(10, q2:count())
    admin.remove(qn)
    admin.remove(q2n)
  end)

  it_('same API and messages as the local objects', function()
    local pairs_ = {}
    local function both(fn)
      local r = {}
      for i, ns in ipairs({ H.ipc, admin }) do
        local ok, err = pcall(fn, ns)
        assert.is_false(ok)
        err = tostring(err)
        assert.falsy(err:find('interprocess/net', 1, true), err)
        r[i] = err:gsub('^[^:]*spec[^:]*:%d+: ', '')
      end
      pairs_[#pairs_ + 1] = r
      return r
    end
    local names = {}
    local function nm(t) local n = H.name(t) names[#names + 1] = n return n end
    local sn, qn, kn, mn = nm('S'), nm('Q'), nm('K'), nm('M')
    local function check(a, b) assert.are.equal(a, b) end
    local r = both(function(ns) local s = ns.semaphore(sn, { value = 1, max = 2 }) s:post() s:post() end)
    check(r[1], r[2])
    r = both(function(ns) ns.semaphore(sn):post(0) end)
    check(r[1], r[2])
    r = both(function(ns) ns.queue(qn, { max_size = 4 }):send('12345') end)
    check(r[1], r[2])
    r = both(function(ns) ns.queue(qn):send('a', 1.5) end)
    check(r[1], r[2])
    r = both(function(ns) local k = ns.kv(kn, { size = 1024 }) k:set('x', 'str') k:incr('x') end)
    check(r[1], r[2])
    r = both(function(ns) ns.kv(kn):set('y', string.rep('z', 2000)) end)
    assert.truthy(r[2]:find('^set: kv "' .. kn .. '" is full: the record %(2005 bytes%)'), r[2])
    assert.truthy(r[1]:find('^set: kv "' .. kn .. '" is full: the record %(2005 bytes%)'), r[1])
    r = both(function(ns) local m = ns.mutex(mn) m:lock() m:lock() end)
    check(r[1], r[2])
    -- guards unlock; ipc.type names remote objects
    local m = admin.mutex(mn)
    assert.are.equal('exclusive', m:held())
    m:unlock()
    local g = m:lock()
    assert.is_true(g:unlock())
    assert.is_nil(m:held())
    assert.are.equal('mutex', H.ipc.type(m))
    assert.are.equal('queue', H.ipc.type(admin.queue(qn)))
    m:close()
    assert.are.equal('closed mutex', H.ipc.type(m))
    -- info: waiter counts as locally
    local q = admin.queue(qn)
    for _, k in ipairs({ 'waiting_receivers', 'waiting_senders', 'waiters', 'in_flight', 'count' }) do
      assert.are.equal(0, q:info()[k], k)
    end
    assert.are.equal(0, admin.semaphore(sn):info().waiters)
    assert.are.equal('clear', admin.event(nm('E')):info().state)
    for _, n in ipairs(names) do pcall(H.ipc.remove, n) pcall(admin.remove, n) end
  end)

  it_('the server ends a lost client\'s session within session_timeout (default 10 s)', function()
    local function show(n)
      return n._ns._conn:exec(nil, "SELECT current_setting('tcp_keepalives_idle')::int + " ..
        "current_setting('tcp_keepalives_interval')::int * current_setting('tcp_keepalives_count')::int, " ..
        "current_setting('tcp_user_timeout')")[1]
    end
    local d = show(admin)
    assert.is_true(d[1] <= 10, tostring(d[1]))
    assert.truthy(d[2] == '10s' or d[2] == '10000', d[2])
    assert.are.equal(10000, admin.session_timeout)
    local n = H.ipc.connect(admin_url, { session_timeout = 5000 })
    assert.is_true(show(n)[1] <= 5)
    n.close()
    assert.has_error(function() H.ipc.connect(admin_url, { session_timeout = 'x' }) end)
    assert.has_error(function() H.ipc.connect(admin_url, { bogus = 1 }) end)
  end)

  it_('waiters are counted, woken by a notification only when waiting; notices stay off stderr', function()
    local qn, sn = H.name('Q'), H.name('S')
    local q = admin.queue(qn, { max_count = 1 })
    local s = admin.semaphore(sn)
    -- no polling fallback in the child: only a NOTIFY can wake it in time
    local w = H.spawn(([[
      require('interprocess.net_base').POLL_MS = 600000
      local n = ipc.connect(%q)
      local _, qn, sn = ...
      local q, s = n.queue(qn), n.semaphore(sn)
      ready()
      print((q:receive(60000)))
      ready('2')
      print(s:wait(60000))
      assert(q:send('one'))
      ready('3')
      print(q:send('two', 0, 60000))
      -- a server notice (unlocking what we do not hold) must not be printed
      n._ns._conn:exec(nil, 'SELECT pg_advisory_unlock(1)')
    ]]):format(admin_url), qn, sn)
    H.guard(w, finally)
    assert.truthy(w:wait_ready())
    assert.truthy(H.wait_until(function() return q:info().waiting_receivers == 1 end, 10000))
    q:send('hi')
    assert.truthy(w:wait_ready('2'))
    assert.truthy(H.wait_until(function() return s:info().waiters == 1 end, 10000))
    s:post()
    assert.truthy(w:wait_ready('3'))
    assert.truthy(H.wait_until(function() return q:info().waiting_senders == 1 end, 10000))
    assert.are.equal('one', q:receive(0))
    assert.are.equal(0, w:wait(30000))
    assert.are.equal('hi\ntrue\ntrue\n', w.out)
    assert.are.equal('', w.err)
    local i = q:info()
    assert.are.equal(0, i.waiting_receivers + i.waiting_senders)
    admin.remove(qn)
    admin.remove(sn)
  end)
end)
