-- The shared behavioural specs against the PostgreSQL objects
-- (ipc.connect), on a throwaway cluster (spec/support/pg.lua), plus what
-- only the remote backend has: fencing tokens, connection loss, schema.
local H = require 'spec.helper'
local P = require 'spec.support.pg'

local url
local function connect()
  if url then return H.ipc.connect(url) end
  local ok, err = pcall(H.ipc.connect, 'postgresql://nobody@127.0.0.1:1/x')
  if not ok and tostring(err):find('without PostgreSQL support', 1, true) then
    return nil, 'ipcsh was built without PostgreSQL support (libpq-dev missing)'
  end
  local why
  url, why = P.start()
  if not url then return nil, 'PostgreSQL test cluster unavailable: ' .. tostring(why) end
  -- a failing connect must not leave the cluster running
  local ok, n = pcall(H.ipc.connect, url)
  if not ok then
    P.stop()
    error(n, 0)
  end
  return n
end

require('spec.support.shared_behaviour')('shared behaviour: PostgreSQL objects', {
  setup = connect,
  child = function() return ('NS = ipc.connect(%q)'):format(url) end,
}, _ENV)

describe('PostgreSQL only', function()
  local net, skip = connect()
  teardown(function() P.stop() end)

  local function it_(what, fn)
    if not net then return pending(what .. ': ' .. (skip or 'unavailable')) end
    it(what, fn)
  end

  it_('fencing tokens increase with every acquisition, across processes', function()
    local name = H.name('F')
    local m = net.mutex(name)
    local g = m:lock()
    local t1 = m:token()
    assert.is_true(math.type(t1) == 'integer')
    m:unlock()
    assert.is_nil(m:token())
    local st, out = H.run(([[
      local net = ipc.connect(%q)
      local m = net.mutex(select(2, ...))
      m:lock() print(m:token()) m:unlock()
    ]]):format(url), name)
    assert.are.equal(0, st)
    local t2 = tonumber(out:match('%d+'))
    assert.is_true(t2 > t1)
    m:lock_shared()
    assert.is_true(m:token() > t2)
    m:unlock()
    assert.truthy(g)
    net.remove(name)
  end)

  it_('options that make no sense remotely are errors; file works as a name', function()
    assert.has_error(function() net.mutex(H.name(), { mode = 384 }) end)
    assert.has_error(function() net.mutex(H.name(), { cleanup = true }) end)
    assert.has_error(function() net.mutex(H.name(), { dir = '/dev/shm' }) end,
      "bad option 'dir' to 'mutex' (not supported by remote objects: see docs/distributed.md)")
    assert.has_error(function() net.mutex(H.name(), { bogus = 1 }) end)
    assert.has_error(function() net.mutex('9bad') end)
    assert.is_nil(net.shm)
    assert.is_nil(net.condition)
    assert.is_nil(net.barrier)
    assert.is_nil(net.fork)
    local a = net.mutex({ file = '/tmp/some/../x.lock' })
    assert.are.equal(H.ipc.hash('/tmp/x.lock'), a.name)
    local q = net.queue(H.name())
    assert.has_error(function() net.mutex(q.name) end)
    assert.has_error(function() net.queue(q.name, { assert = 'create' }) end)
    assert.has_error(function() net.queue(H.name(), { assert = 'exists' }) end)
    assert.is_true(q:remove())
    assert.is_false(q:remove())
    assert.is_true(a:remove())
  end)

  it_('list, remove and the versioned schema', function()
    local name = H.name('L')
    net.semaphore(name, { value = 3 })
    local found
    for _, info in ipairs(net.list()) do
      if info.name == name then found = info end
    end
    assert.are.equal('semaphore', found.type)
    assert.are.equal(3, found.value)
    assert.is_true(net.remove(name))
    assert.is_false(net.remove(name))
    local st, out = H.run(([[
      local net = ipc.connect(%q)
      print(net._ns._conn:exec(nil, 'SELECT version FROM ipcsh.meta')[1][1])
    ]]):format(url))
    assert.are.equal(0, st)
    assert.are.equal('2\n', out)
  end)

  it_('a lost connection is reported, and so are the locks it held', function()
    local name = H.name('C')
    local n2 = H.ipc.connect(url)
    local m = n2.mutex(name)
    assert.truthy(m:lock())
    -- cut the session from the server side
    net._ns._conn:exec(nil, 'SELECT pg_terminate_backend($1::int)', 'i', n2.backend_pid())
    H.sleep(200)
    local ok, err = pcall(m.held, m)
    assert.is_false(ok)
    assert.truthy(tostring(err):find('lost', 1, true))
    assert.truthy(tostring(err):find(name, 1, true))
    assert.has_error(function() m:unlock() end)
    -- and the lock really is free for others
    local m1 = net.mutex(name)
    assert.truthy(m1:lock(2000))
    m1:unlock()
    net.remove(name)
  end)

  it_('ipcsh --db URL: ls, info, send, recv, post, wait, lock, rm', function()
    local q, sem, m = H.name('Q'), H.name('S'), H.name('M')
    local db = ' --db ' .. H.quote(url) .. ' '
    local function run(args) return H.sh(H.quote(H.bin) .. db .. args) end
    assert.are.equal(0, (run('send --create ' .. q .. ' --priority 3 hello')))
    local st, out = run('ls --json')
    assert.are.equal(0, st)
    assert.truthy(out:find('"' .. q .. '"', 1, true))
    st, out = run('info ' .. q)
    assert.are.equal(0, st)
    assert.truthy(out:find('count: 1', 1, true))
    st, out = run('recv ' .. q .. ' --timeout 0')
    assert.are.equal(0, st)
    assert.are.equal('hello', out)
    assert.are.equal(1, (run('recv ' .. q .. ' --timeout 50')))
    assert.are.equal(0, (run('post --create ' .. sem .. ' 2')))
    assert.are.equal(0, (run('wait ' .. sem .. ' --timeout 0')))
    assert.are.equal(1, net.semaphore(sem):value())
    -- lock: held (remotely) while CMD runs
    st, out = run('lock ' .. m .. ' -- ' .. H.quote(H.bin) .. ' -e ' .. H.quote(([[
      local m = ipc.connect(%q).mutex(%q) io.write(tostring(m:lock(0)))
      os.exit(5)]]):format(url, m)))
    assert.are.equal(5, st)
    assert.are.equal('false', out)
    assert.are.equal(0, (H.sh('IPCSH_DATABASE_URL=' .. H.quote(url) .. ' ' .. H.quote(H.bin) ..
      ' rm ' .. q .. ' ' .. sem .. ' ' .. m)))
    assert.are.equal(2, (run('rm ' .. q))) -- a missing name is bad input
  end)

  it_('queue: with() redelivers when fn overruns the visibility deadline; dead letters', function()
    local name = H.name('V')
    local q = net.queue(name, { visibility = 300, max_deliveries = 2 })
    local other = H.ipc.connect(url).queue(name)
    q:send('slow')
    local second
    local ok = q:with(function(m)
      assert.is_nil(other:receive(0)) -- claimed: not visible yet
      second = other:receive(5000)    -- visible again once 300 ms passed
      return m
    end)
    assert.is_true(ok)
    assert.are.equal('slow', second)
    assert.are.equal(0, q:count())
    -- a message whose fn keeps failing ends as a dead letter
    q:send('poison')
    for _ = 1, 2 do
      assert.has_error(function() q:with(function() error('fail') end, 1000) end)
    end
    assert.is_false(q:with(function() end, 0))
    local info = q:info()
    assert.are.equal(1, info.dead_letters)
    assert.are.equal(0, info.count)
    assert.are.equal(0, q:clear())
    assert.are.equal(0, q:info().dead_letters)
    net.remove(name)
  end)

  it_('semaphore: posting past max is an error; values are read back', function()
    local name = H.name('S')
    local s = net.semaphore(name, { value = 1, max = 2 })
    assert.is_true(s:post())
    assert.has_error(function() s:post() end)
    assert.are.equal(2, s:value())
    assert.has_error(function() net.semaphore(H.name(), { value = 3, max = 2 }) end)
    local r = table.pack(s:with(function() return 'x' end))
    assert.are.same({ true, 'x', n = 2 }, r)
    assert.are.equal(2, s:value())
    net.remove(name)
  end)

  it_('connect: keyword strings, IPCSH_DATABASE_URL, and no use from a forked child', function()
    local user, port = url:match('^postgresql://([^@]+)@127%.0%.0%.1:(%d+)/')
    local kw = H.ipc.connect(('host=127.0.0.1 port=%s user=%s dbname=postgres'):format(port, user))
    assert.are.equal('table', type(kw.list()))
    local st, out = H.sh('IPCSH_DATABASE_URL=' .. H.quote(url) .. ' ' .. H.quote(H.bin) ..
      [[ -e 'print(ipc.type(ipc.connect()) == nil and #ipc.connect().list() >= 0)']])
    assert.are.equal(0, st)
    assert.are.equal('true\n', out)
    st = H.sh('env -u IPCSH_DATABASE_URL ' .. H.quote(H.bin) .. [[ -e 'ipc.connect()']])
    assert.are.equal(1, st)
    local name = H.name('K')
    local m = kw.mutex(name)
    assert.truthy(m:lock())
    local child = H.ipc.fork(function()
      local ok, err = pcall(m.held, m)
      local ok2, err2 = pcall(m.unlock, m)
      os.exit((not ok2 and tostring(err2):find('another process', 1, true)) and 0 or 3)
    end)
    assert.are.equal(0, child:wait())
    assert.are.equal('exclusive', m:held()) -- the child did not touch our session
    m:unlock()
    kw.remove(name)
    kw.close()
  end)

  it_('mutex: a waiting writer is not starved by new readers', function()
    local name = H.name('W')
    local m = net.mutex(name)
    assert.truthy(m:lock_shared())
    local writer = H.spawn(([[
      local m = ipc.connect(%q).mutex(select(2, ...))
      ready()
      local g = m:lock(20000)
      print(g and 'got' or 'timeout')
      m:unlock()
    ]]):format(url), name)
    assert.truthy(writer:wait_ready())
    assert.truthy(H.wait_until(function() return m:info().waiters == 1 end, 5000))
    local reader = H.ipc.connect(url).mutex(name)
    assert.is_false(reader:lock_shared(0)) -- would overtake the writer
    m:unlock()
    assert.are.equal(0, writer:wait())
    assert.are.equal('got\n', writer.out)
    assert.truthy(reader:lock_shared(2000))
    reader:unlock()
    net.remove(name)
  end)
end)
