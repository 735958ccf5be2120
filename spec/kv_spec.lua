local H = require 'spec.helper'
local ipc = H.ipc

-- Chunk geometry of the storage engine (docs/design.md).
local CHUNK, FIRST, NEXT = 64, 44, 60
local function chunks_for(bytes)
  if bytes <= FIRST then return 1 end
  return 1 + (bytes - FIRST + NEXT - 1) // NEXT
end
-- Chunks the record key=value takes.
local function record_chunks(k, v)
  return chunks_for(#k + #ipc.encode(v))
end
-- The longest string value for key k that fits in n chunks.
local function fitting_string(k, n)
  local total = FIRST + (n - 1) * NEXT
  local len = total - #k
  while len > 0 and #k + #ipc.encode(string.rep('v', len)) > total do len = len - 1 end
  return string.rep('v', len)
end

-- H.spawn can read the child's pid file before the child has written it
-- (then child.pid is nil): re-read it until it is complete.
local function spawn(code, ...)
  local c = H.spawn(code, ...)
  assert(H.wait_until(function()
    c.pid = tonumber((H.read_file(c.dir .. '/pid') or ''):match('^%d+$'))
    return c.pid
  end, 10000), 'child pid not known')
  return c
end

-- Every key readable, count() == #keys(), and the space adds up.
local function assert_consistent(t, check_value)
  local keys = t:keys()
  assert.equal(#keys, t:count())
  for _, k in ipairs(keys) do
    local v = t:get(k)
    assert.is_not_nil(v)
    if check_value then check_value(k, v) end
  end
  local info = t:info()
  assert.equal(info.size, info.used + info.free)
  return keys
end

describe('kv', function()
  it('round-trips values between processes', function()
    local name = H.name()
    local t <close> = ipc.kv(name, { cleanup = true })
    local st, _, err = H.run([[
      local t = ipc.kv(select(2, ...))
      t:set('name', 'Alice')
      t:set('age', 30)
      t:set('pi', 3.25)
      t:set('ok', false)
      t:set('nested', { list = { 1, 2, { deep = 'yes' } }, [7] = true, x = 1.5 })
      t:set('bin\0key', 'bin\0value')
    ]], name)
    assert.equal(0, st, err)
    assert.equal('Alice', t:get('name'))
    assert.equal(30, t:get('age'))
    assert.equal(math.type(30), math.type(t:get('age')))
    assert.equal(3.25, t:get('pi'))
    assert.equal(false, t:get('ok'))
    assert.same({ list = { 1, 2, { deep = 'yes' } }, [7] = true, x = 1.5 }, t:get('nested'))
    assert.equal('bin\0value', t:get('bin\0key'))
    assert.is_nil(t:get('missing'))
    assert.is_nil(t:get('bin'))
    local keys = t:keys()
    table.sort(keys)
    assert.same({ 'age', 'bin\0key', 'name', 'nested', 'ok', 'pi' }, keys)
    assert.equal(6, t:count())
  end)

  it('deletes, lists keys, counts and clears', function()
    local t <close> = ipc.kv(H.name(), { cleanup = true })
    t:set('a', 1)
    t:set('b', 2)
    t:set('c', 3)
    assert.equal(3, t:count())
    assert.is_true(t:delete('b'))
    assert.is_false(t:delete('b'))
    assert.is_nil(t:get('b'))
    local keys = t:keys()
    table.sort(keys)
    assert.same({ 'a', 'c' }, keys)
    t:set('a', nil)
    assert.is_nil(t:get('a'))
    assert.equal(1, t:count())
    t:set('c', 'overwritten')
    assert.equal('overwritten', t:get('c'))
    assert.equal(1, t:count())
    t:set('d', 4)
    assert.equal(2, t:clear())
    assert.equal(0, t:count())
    assert.same({}, t:keys())
    assert.is_nil(t:get('c'))
    local info = t:info()
    assert.equal('kv', info.type)
    assert.equal(0, info.count)
    assert.equal(info.size, info.free)
    assert.equal(0, info.used)
    assert.equal(1024 * 1024, info.size)
  end)

  it('incr: integers stay integers, floats mix, non-numbers are an error', function()
    local t <close> = ipc.kv(H.name(), { cleanup = true })
    assert.equal(1, t:incr('n'))
    assert.equal(11, t:incr('n', 10))
    assert.equal('integer', math.type(t:get('n')))
    assert.equal(12.5, t:incr('n', 1.5))
    assert.equal('float', math.type(t:get('n')))
    assert.equal(-2, t:incr('m', -2))
    t:set('s', 'text')
    local ok, err = pcall(t.incr, t, 's')
    assert.is_false(ok)
    assert.matches('not a number', err)
    assert.equal('text', t:get('s'))
    assert.has_error(function() t:incr('n', 'x') end)
    assert.has_error(function() t:incr(1) end)
  end)

  it('incr from 4 processes x 1000 gives exactly 4000', function()
    local name = H.name()
    local t <close> = ipc.kv(name, { cleanup = true })
    local kids = {}
    for i = 1, 4 do
      kids[i] = spawn([[
        local t = ipc.kv(select(2, ...))
        for i = 1, 1000 do t:incr('hits') end
      ]], name)
    end
    for i = 1, 4 do assert.equal(0, kids[i]:wait(120000)) end
    assert.equal(4000, t:get('hits'))
  end)

  it('update from 4 processes x 250 gives exactly 1000', function()
    local name = H.name()
    local t <close> = ipc.kv(name, { cleanup = true })
    local kids = {}
    for i = 1, 4 do
      kids[i] = spawn([[
        local t = ipc.kv(select(2, ...))
        for i = 1, 250 do
          local r = t:update('k', function(v) return (v or 0) + 1 end)
          assert(math.type(r) == 'integer')
        end
      ]], name)
    end
    for i = 1, 4 do assert.equal(0, kids[i]:wait(120000)) end
    assert.equal(1000, t:get('k'))
  end)

  it('update: result stored and returned, nil deletes, errors keep the old value', function()
    local t <close> = ipc.kv(H.name(), { cleanup = true })
    t:set('k', 5)
    assert.equal(6, t:update('k', function(v) return v + 1 end))
    assert.equal(6, t:get('k'))
    assert.is_nil(t:update('k', function() return nil end))
    assert.is_nil(t:get('k'))
    assert.equal(0, t:count())
    t:set('k', 'old')
    local ok, err = pcall(t.update, t, 'k', function() error('boom') end)
    assert.is_false(ok)
    assert.matches('boom', err)
    assert.equal('old', t:get('k'))
    -- a non-string error object propagates as is
    local errobj = {}
    local ok2, e2 = pcall(t.update, t, 'k', function() error(errobj) end)
    assert.is_false(ok2)
    assert.equal(errobj, e2)
    -- a result that cannot be encoded: nothing changes
    assert.has_error(function() t:update('k', function() return print end) end)
    assert.equal('old', t:get('k'))
    -- yielding inside fn is an error too, and releases the lock
    local co = coroutine.wrap(function()
      return pcall(t.update, t, 'k', function(v) coroutine.yield(1) return v end)
    end)
    local okc, errc = co()
    assert.is_false(okc)
    assert.matches('yield', errc)
    assert.equal('old', t:get('k'))
    -- still usable (the lock was released)
    t:set('k', 'new')
    assert.equal('new', t:get('k'))
  end)

  it('a call on the same table inside update is a clear error, not a deadlock', function()
    local name = H.name()
    local t <close> = ipc.kv(name, { cleanup = true })
    local other <close> = ipc.kv(name)
    t:set('k', 1)
    for _, m in ipairs({ 'get', 'set', 'delete', 'keys', 'count', 'clear', 'incr', 'update' }) do
      local ok, err = pcall(t.update, t, 'k', function(v)
        if m == 'set' then other:set('x', 1)
        elseif m == 'update' then t:update('x', function() end)
        else t[m](t, 'x') end
        return 99
      end)
      assert.is_false(ok)
      assert.matches("cannot call '" .. m .. "' inside an update", err)
      assert.equal(1, t:get('k'))
    end
    -- info() (and so ipc.list()) still works inside
    assert.equal(2, t:update('k', function(v)
      assert.equal(1, t:info().count)
      for _, o in ipairs(ipc.list()) do if o.name == name then assert.equal(1, o.count) end end
      return v + 1
    end))
    assert.equal(2, t:get('k'))
    -- the handle may even be closed inside: the update still completes
    assert.equal(7, t:update('k', function() other:close() return 7 end))
    assert.equal(7, t:get('k'))
  end)

  it('full: a clear error and every earlier value intact', function()
    local t <close> = ipc.kv(H.name('F'), { cleanup = true, size = 16384 })
    local i, ok, err = 0, true, nil
    local vals = {}
    while ok do
      i = i + 1
      local v = string.rep(string.char(65 + i % 26), (i * 37) % 300) .. i
      ok, err = pcall(t.set, t, 'key' .. i, v)
      if ok then vals['key' .. i] = v end
    end
    assert.matches('kv "F%w+" is full', err)
    assert.is_true(i > 20)
    for k, v in pairs(vals) do assert.equal(v, t:get(k)) end
    assert.is_nil(t:get('key' .. i))
    assert.equal(i - 1, t:count())
    -- an overwrite that does not fit keeps the old value
    local ok2, err2 = pcall(t.set, t, 'key1', string.rep('z', 8000))
    assert.is_false(ok2)
    assert.matches('is full', err2)
    assert.equal(vals.key1, t:get('key1'))
    -- a value larger than the whole table
    assert.matches('is full', select(2, pcall(t.set, t, 'huge', string.rep('h', 20000))))
    -- incr and update on a full table: an error, nothing lost
    local k = 'no-room-for-this-counter-key-' .. string.rep('c', 40)
    local free = t:info().free // CHUNK
    if record_chunks(k, 1) > free then
      assert.matches('is full', select(2, pcall(t.incr, t, k)))
      assert.is_nil(t:get(k))
    end
    -- deleting frees space that is then reused
    assert.is_true(t:delete('key2'))
    assert.is_true(t:delete('key3'))
    local room = t:info().free // CHUNK
    t:set('again', fitting_string('again', room))
    assert.equal(0, t:info().free)
    assert_consistent(t)
  end)

  it('churn of random sizes does not fragment into failure', function()
    local t <close> = ipc.kv(H.name(), { cleanup = true, size = 65536 })
    local model = {}
    math.randomseed(42)
    for _ = 1, 3000 do
      local k = 'k' .. math.random(1, 60)
      if math.random() < 0.3 then
        t:delete(k)
        model[k] = nil
      else
        local v = string.rep('x', math.random(0, 900))
        if pcall(t.set, t, k, v) then model[k] = v end
      end
    end
    for k, v in pairs(model) do assert.equal(v, t:get(k)) end
    assert_consistent(t)
    -- keep a few scattered records, then one value as large as all the
    -- free space must fit
    local n = 0
    for k in pairs(model) do
      n = n + 1
      if n % 3 ~= 0 then t:delete(k); model[k] = nil end
    end
    local room = t:info().free // CHUNK
    assert.is_true(room > 600)
    local big = fitting_string('big', room)
    t:set('big', big)
    assert.equal(big, t:get('big'))
    assert.equal(0, t:info().free)
    for k, v in pairs(model) do assert.equal(v, t:get(k)) end
    -- one byte more than the free space is refused, nothing lost
    t:delete('big')
    local ok, err = pcall(t.set, t, 'big', big .. string.rep('y', NEXT + 1))
    assert.is_false(ok)
    assert.matches('is full', err)
    for k, v in pairs(model) do assert.equal(v, t:get(k)) end
  end)

  it('a process killed inside update leaves the old value and a usable table', function()
    local name = H.name()
    local t <close> = ipc.kv(name, { cleanup = true })
    t:set('k', 'old')
    local repairs = t:info().repairs
    local child = spawn([[
      local t = ipc.kv(select(2, ...))
      t:update('k', function(v)
        ready()
        while true do end
      end)
    ]], name)
    assert.is_truthy(child:wait_ready(nil, 20000))
    -- a second process blocks on the table behind the stuck update
    local waiter = spawn([[
      local t = ipc.kv(select(2, ...))
      ready('start')
      print(t:update('k', function(v) return v .. '+waiter' end))
    ]], name)
    assert.is_truthy(waiter:wait_ready('start', 20000))
    H.sleep(200)
    assert.is_nil(waiter:wait(1)) -- still blocked
    -- info() does not hang behind the stuck update
    local t1 = H.clock()
    local busy = t:info()
    assert.is_true(busy.busy)
    assert.equal(1, busy.count)
    assert.is_true(H.clock() - t1 < 3000)
    local t0 = H.clock()
    child:kill(9)
    assert.equal(137, child:wait())
    assert.equal(0, waiter:wait(20000))
    assert.is_true(H.clock() - t0 < 5000)
    assert.equal('old+waiter\n', waiter.out)
    assert.equal('old+waiter', t:get('k'))
    assert.equal(repairs + 1, t:info().repairs)
    t:set('k', 'new')
    assert.equal('new', t:get('k'))
    assert.equal(2, t:incr('n', 2))
    assert_consistent(t)
  end)

  -- Each crash point of the engine: the process SIGKILLs itself there
  -- (failpoints, IPCSH_FAILPOINT=kv.*); the next user must find either the
  -- old or the new state, consistent, with no chunk leaked.
  local crash_cases = {
    { point = 'kv.set.allocated', op = "t:set('k', string.rep('N', 300))", want = 'old' },
    { point = 'kv.set.written', op = "t:set('k', string.rep('N', 300))", want = 'old' },
    { point = 'kv.set.committed', op = "t:set('k', string.rep('N', 300))", want = 'new' },
    { point = 'kv.free.spliced', op = "t:set('k', string.rep('N', 300))", want = 'new' },
    { point = 'kv.set.allocated', op = "t:set('fresh', string.rep('N', 300))", want = 'old' },
    { point = 'kv.set.committed', op = "t:set('fresh', string.rep('N', 300))", want = 'fresh' },
    { point = 'kv.delete.committed', op = "t:delete('k')", want = 'deleted' },
    { point = 'kv.free.spliced', op = "t:delete('k')", want = 'deleted' },
    { point = 'kv.clear.unlinking', op = 't:clear()', want = 'partial' },
    { point = 'kv.clear.formatting', op = 't:clear()', want = 'empty' },
  }
  for _, case in ipairs(crash_cases) do
    it(('repairs a death at %s during %s'):format(case.point, case.op), function()
      local name = H.name()
      local t <close> = ipc.kv(name, { cleanup = true, size = 16384 })
      local others = {}
      for i = 1, 40 do
        others['o' .. i] = string.rep(string.char(96 + i % 26), i * 7)
        t:set('o' .. i, others['o' .. i])
      end
      t:set('k', string.rep('O', 200))
      local repairs = t:info().repairs
      local st = H.run_env({ IPCSH_FAILPOINT = case.point },
        'local t = ipc.kv(...)\n' .. case.op .. '\nos.exit(3)', name)
      assert.equal(137, st)
      local keys = assert_consistent(t)
      assert.equal(repairs + 1, t:info().repairs)
      if case.want == 'old' then
        assert.equal(string.rep('O', 200), t:get('k'))
        assert.is_nil(t:get('fresh'))
      elseif case.want == 'new' then
        assert.equal(string.rep('N', 300), t:get('k'))
      elseif case.want == 'fresh' then
        assert.equal(string.rep('N', 300), t:get('fresh'))
        assert.equal(string.rep('O', 200), t:get('k'))
      elseif case.want == 'deleted' then
        assert.is_nil(t:get('k'))
      elseif case.want == 'empty' then
        assert.equal(0, #keys)
      end
      if case.want ~= 'partial' and case.want ~= 'empty' then
        for k, v in pairs(others) do assert.equal(v, t:get(k)) end
      else
        for _, k in ipairs(keys) do assert.equal(others[k] or string.rep('O', 200), t:get(k)) end
      end
      -- nothing leaked: deleting everything gives all the space back
      t:clear()
      for _, k in ipairs(keys) do t:set(k, 1) end
      for _, k in ipairs(keys) do assert.is_true(t:delete(k)) end
      local info = t:info()
      assert.equal(info.size, info.free)
      assert.equal(0, info.count)
    end)
  end

  it('a death during repair is repaired again', function()
    local name = H.name()
    local t <close> = ipc.kv(name, { cleanup = true, size = 8192 })
    t:set('a', 'A')
    local st = H.run_env({ IPCSH_FAILPOINT = 'kv.set.written' }, "ipc.kv(...):set('b', 'B')", name)
    assert.equal(137, st)
    st = H.run_env({ IPCSH_FAILPOINT = 'kv.repair.marked' }, "ipc.kv(...):get('a')", name)
    assert.equal(137, st)
    assert.equal('A', t:get('a'))
    assert.is_nil(t:get('b'))
    -- the interrupted repair never counted itself; the one that finished did
    assert.equal(1, t:info().repairs)
    assert_consistent(t)
  end)

  it('stays consistent through a storm of kill -9 during set/delete churn', function()
    local name = H.name()
    local t <close> = ipc.kv(name, { cleanup = true, size = 32768 })
    -- every value names its key and length, so a torn record would show
    local worker = [[
      local _, name, seed = ...
      local t = ipc.kv(name)
      math.randomseed(tonumber(seed))
      ready()
      while true do
        local k = 'k' .. math.random(1, 40)
        local r = math.random()
        if r < 0.35 then
          t:delete(k)
        elseif r < 0.45 then
          t:incr('counter')
        elseif r < 0.5 then
          t:update(k, function(v) return nil end)
        elseif r < 0.55 then
          if math.random() < 0.1 then t:clear() end
        else
          local n = math.random(0, 700)
          pcall(t.set, t, k, k .. ':' .. n .. ':' .. string.rep('#', n))
        end
      end
    ]]
    local function check(k, v)
      if k == 'counter' then
        assert.equal('integer', math.type(v))
      else
        local kk, n, body = v:match('^(k%d+):(%d+):(#*)$')
        assert.equal(k, kk)
        assert.equal(tonumber(n), #body)
      end
    end
    local kills = 0
    local seed = 1
    while kills < 32 do
      local a = spawn(worker, name, tostring(seed))
      local b = spawn(worker, name, tostring(seed + 1))
      seed = seed + 2
      assert.is_truthy(a:wait_ready(nil, 20000))
      assert.is_truthy(b:wait_ready(nil, 20000))
      H.sleep(math.random(5, 40))
      a:kill(9)
      H.sleep(math.random(0, 5))
      b:kill(9)
      assert.equal(137, a:wait())
      assert.equal(137, b:wait())
      kills = kills + 2
      assert_consistent(t, check)
    end
    assert_consistent(t, check)
    if os.getenv('KV_SPEC_VERBOSE') then
      io.stderr:write(('\n[kv storm: %d kills, %d repairs, %d keys]\n'):format(kills,
        t:info().repairs, t:count()))
    end
    -- usable, and no space leaked
    t:set('after', 'storm')
    assert.equal('storm', t:get('after'))
    for _, k in ipairs(t:keys()) do t:delete(k) end
    local info = t:info()
    assert.equal(0, info.count)
    assert.equal(info.size, info.free)
  end)

  it('a corrupted segment gives errors, never a crash or a hang', function()
    local name = H.name()
    local t <close> = ipc.kv(name, { cleanup = true, size = 4096 })
    for i = 1, 30 do t:set('k' .. i, string.rep('v', i * 5)) end
    -- the object's file: the one in ipc.dir() whose name ends in .NAME
    local _, listing = H.sh('ls -a ' .. H.quote(ipc.dir()))
    local file
    for f in listing:gmatch('[^\n]+') do
      if f:sub(-#name - 1) == '.' .. name then file = ipc.dir() .. '/' .. f end
    end
    assert.is_truthy(file)
    -- scribble over the index and the chunks (not over the lock)
    local st, _, err = H.run([[
      local name, path = select(2, ...)
      local f = assert(io.open(path, 'r+b'))
      local size = f:seek('end')
      math.randomseed(7)
      for round = 1, 3 do
        for i = 1, 400 do
          f:seek('set', math.random(512 + 128, size - 1))
          f:write(string.char(math.random(0, 255)))
        end
        f:flush()
        local t = ipc.kv(name)
        for i = 1, 60 do
          pcall(t.get, t, 'k' .. i)
          pcall(t.set, t, 'k' .. i, string.rep('w', i * 3))
          pcall(t.delete, t, 'k' .. (i + 7))
          pcall(t.keys, t)
          pcall(t.incr, t, 'n')
        end
      end
      print('survived')
    ]], name, file)
    assert.equal(0, st, err)
    assert.is_true(pcall(t.keys, t) ~= nil)
    -- clear() rebuilds everything from scratch: usable again
    t:clear()
    assert_consistent(t)
    t:set('x', 1)
    assert.equal(1, t:get('x'))
  end)

  it('rejects bad arguments', function()
    local t <close> = ipc.kv(H.name(), { cleanup = true })
    assert.has_error(function() t:get(1) end)
    assert.has_error(function() t:get() end)
    assert.has_error(function() t:set({}, 1) end)
    assert.has_error(function() t:set('k') end)
    assert.has_error(function() t:set('k', print) end)
    assert.has_error(function() t:set('k', coroutine.create(print)) end)
    assert.has_error(function() t:delete(nil) end)
    assert.has_error(function() t:update('k') end)
    assert.has_error(function() t:update('k', 5) end)
    assert.has_error(function() t:incr('k', {}) end)
    assert.has_error(function() t.get({}, 'k') end)
    local ok, err = pcall(t.set, t, string.rep('k', 1025), 1)
    assert.is_false(ok)
    assert.matches('at most 1024', err)
    t:set(string.rep('k', 1024), 1)
    assert.equal(1, t:get(string.rep('k', 1024)))
    assert.has_error(function() ipc.kv(H.name(), { size = 10 }) end)
    assert.has_error(function() ipc.kv(H.name(), { size = 'big' }) end)
    assert.has_error(function() ipc.kv(H.name(), { bogus = 1 }) end)
    -- size applies on create only
    local name = H.name()
    local a <close> = ipc.kv(name, { size = 8192, cleanup = true })
    local b <close> = ipc.kv(name, { size = 65536 })
    assert.equal(8192, b:info().size)
    t:close()
    assert.has_error(function() t:get('k') end)
    assert.equal('closed kv', ipc.type(t))
  end)
end)
