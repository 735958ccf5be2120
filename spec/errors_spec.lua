-- Every misuse of the Lua API raises an error that
--   1. names the function the user called ('send', 'ipc.queue', 'lock: ...'),
--   2. never says '?' (the name Lua's debug information falls back to when a
--      function is reached through pcall(q.send, q, ...)),
--   3. shows no internal file (interprocess/net.lua:12:, object.c) and
--   4. reads as English ("an event", no printf leftovers, no C identifiers).
-- Each case runs twice where it can: called directly through pcall (no call
-- site name) and written the usual way inside a function (obj:method()).
local H = require 'spec.helper'
local ipc = H.ipc

local THIS_FILE = 'errors_spec%.lua:%d+: ' -- our own call sites may be shown

local function check_message(err, fname, what)
  local ctx = ('%s: %q'):format(what, tostring(err))
  assert.is_string(err, ctx)
  local msg = err:gsub('^[^\n]-' .. THIS_FILE, '')
  -- 1. the function's name, as 'send' (argument errors) or send: / ipc.send:
  local short = fname:match('[%w_]+$')
  assert.is_truthy(msg:find("'" .. short .. "'", 1, true) or msg:find(fname .. ':', 1, true)
    or msg:find("'" .. fname .. "'", 1, true), 'does not name ' .. fname .. ': ' .. ctx)
  -- 2. never the unknown-function mark
  assert.is_falsy(msg:find("'?'", 1, true), ctx)
  assert.is_falsy(msg:find('?:', 1, true), ctx)
  -- 3. no internal path
  assert.is_falsy(msg:find('[%w_/]+%.lua:%d+:'), ctx)
  assert.is_falsy(msg:find('[%w_]+%.[ch][:%s]'), ctx)
  assert.is_falsy(msg:find('interprocess/', 1, true), ctx)
  -- 4. English: articles agree, nothing unformatted
  assert.is_falsy(msg:find('%f[%w]a [aeiouAEIOU]'), ctx)
  assert.is_falsy(msg:find('%%[sdIfp]'), ctx)
  assert.is_falsy(msg:find('(null)', 1, true), ctx)
  assert.is_falsy(msg:find('IPC_[A-Z]'), ctx)
  assert.is_falsy(msg:find('ipcl?_[a-z]+%('), ctx)
  return msg
end

-- pcall(f, ...) must fail; its message passes the four rules and matches
-- every pattern in want (plain substrings).
local function fails(fname, want, f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, fname .. ' did not fail')
  local msg = check_message(err, fname, fname)
  for _, w in ipairs(type(want) == 'table' and want or { want }) do
    assert.is_truthy(msg:find(w, 1, true), ('%q lacks %q'):format(msg, w))
  end
  return msg
end

local TYPES = { 'mutex', 'semaphore', 'queue', 'condition', 'event', 'barrier', 'shm', 'kv' }

-- Creation options that every type needs to be made at all.
local NEEDS = { barrier = { count = 2 }, shm = { size = 64 }, kv = { size = 4096 } }

local function new(kind, extra)
  local opts = { cleanup = true }
  for k, v in pairs(NEEDS[kind] or {}) do opts[k] = v end
  for k, v in pairs(extra or {}) do opts[k] = v end
  return ipc[kind](H.name(kind:sub(1, 1):upper()), opts)
end

-- One method per type with a first argument of a type it refuses, and one
-- harmless call (to show the closed-handle error and the '.' mistake).
local WRONG_ARG = {
  mutex = { 'lock', 'soon', function(o, a) return o:lock(a) end },
  semaphore = { 'post', 'two', function(o, a) return o:post(a) end },
  queue = { 'send', 42, function(o, a) return o:send(a) end },
  condition = { 'wait', 'not a mutex', function(o, a) return o:wait(a) end },
  event = { 'wait', {}, function(o, a) return o:wait(a) end },
  barrier = { 'wait', 'later', function(o, a) return o:wait(a) end },
  shm = { 'read', 'start', function(o, a) return o:read(a) end },
  kv = { 'get', 7, function(o, a) return o:get(a) end },
}
local HARMLESS = {
  mutex = 'held', semaphore = 'value', queue = 'count', condition = 'signal',
  event = 'is_set', barrier = 'info', shm = 'size', kv = 'count',
}

-- The waiting methods and how to call them with a given timeout.
local WAITS = {
  { 'mutex', 'lock', function(o, t) return o:lock(t) end },
  { 'mutex', 'lock_shared', function(o, t) return o:lock_shared(t) end },
  { 'mutex', 'with', function(o, t) return o:with(function() end, t) end },
  { 'semaphore', 'wait', function(o, t) return o:wait(t) end },
  { 'semaphore', 'with', function(o, t) return o:with(function() end, t) end },
  { 'queue', 'send', function(o, t) return o:send('m', 0, t) end },
  { 'queue', 'receive', function(o, t) return o:receive(t) end },
  { 'queue', 'with', function(o, t) return o:with(function() end, t) end },
  { 'event', 'wait', function(o, t) return o:wait(t) end },
  { 'barrier', 'wait', function(o, t) return o:wait(t) end },
}

describe('Lua API errors', function()
  it('wrong argument types name the function, called either way', function()
    for _, kind in ipairs(TYPES) do
      fails('ipc.' .. kind, 'string (object name) or options table expected, got number', ipc[kind], 12)
      fails('ipc.' .. kind, 'expected, got boolean', ipc[kind], 'ok', true)
      local o <close> = new(kind)
      local m, arg = WRONG_ARG[kind][1], WRONG_ARG[kind][2]
      -- through pcall: the argument count includes self, as Lua's own do
      fails(m, 'bad argument #2 to', o[m], o, arg)
      -- written as a method call: self is not counted
      fails(m, 'bad argument #1 to', WRONG_ARG[kind][3], o, arg)
      o:remove()
    end
    fails('ipc.pidfile', "bad argument #1 to 'pidfile' (string (path) expected, got number)",
      ipc.pidfile, 5)
    fails('ipc.remove', 'string expected, got table', ipc.remove, {})
    fails('ipc.open', 'string expected, got nil', ipc.open, nil)
    fails('ipc.sleep', 'number (milliseconds) expected, got string', ipc.sleep, 'soon')
    fails('ipc.fork', 'function expected, got number', ipc.fork, 1)
    fails('ipc.encode', 'cannot encode a function', ipc.encode, print)
  end)

  it('a method called with "." instead of ":" says how to call it', function()
    for _, kind in ipairs(TYPES) do
      local o <close> = new(kind)
      local m, arg = WRONG_ARG[kind][1], WRONG_ARG[kind][2]
      fails(m, { 'bad argument #1 to', kind .. ':' .. m .. '(...)', 'colon' },
        function() return o[m](arg) end)
      local h = HARMLESS[kind]
      fails(h, 'colon', function() return o[h]() end)
      o:remove()
    end
    local m <close> = new('mutex')
    local g = m:lock()
    fails('unlock', { 'guard:unlock(...)', 'colon' }, function() return g.unlock() end)
    fails('unlock', { 'guard expected, got number' }, g.unlock, 5)
    assert.equal('exclusive', m:held())
    m:unlock()
    m:remove()
    local p <close> = ipc.pidfile(H.tmpname('pid'))
    fails('create', { 'pidfile:create(...)', 'colon' }, function() return p.create() end)
    local child = ipc.fork(function() end)
    fails('wait', { 'process:wait(...)', 'colon' }, function() return child.wait() end)
    child:wait()
  end)

  it('every userdata of the module goes through one type table', function()
    -- pidfile and process handles carry the same header as named objects:
    -- one check, one message, and ipc.type reads the type from it
    local p <close> = ipc.pidfile(H.tmpname('pid'))
    local s <close> = new('semaphore')
    local child = ipc.fork(function() end)
    assert.equal('pidfile', ipc.type(p))
    assert.equal('process', ipc.type(child))
    assert.equal('semaphore', ipc.type(s))
    assert.is_nil(ipc.type(io.stdout))
    assert.is_nil(ipc.type(setmetatable({}, { __name = 'pidfile' })))
    fails('create', "bad argument #1 to 'create' (pidfile expected, got process)", p.create, child)
    fails('create', 'pidfile expected, got semaphore', p.create, s)
    fails('create', 'pidfile expected, got FILE*', p.create, io.stdout)
    fails('wait', "bad argument #1 to 'wait' (process expected, got pidfile)", child.wait, p)
    fails('kill', 'process expected, got semaphore', child.kill, s)
    fails('post', "bad argument #1 to 'post' (semaphore expected, got pidfile)", s.post, p)
    fails('post', 'semaphore expected, got process', s.post, child)
    fails('post', 'semaphore expected, got FILE*', s.post, io.stdout)
    assert.equal(p.path, tostring(p):match('"(.*)"'))
    assert.is_true(child.pid > 0)
    assert.equal(0, child:wait())
    s:remove()
  end)

  it('bad names, as an argument and inside the options table', function()
    for _, kind in ipairs(TYPES) do
      for _, bad in ipairs({ '1abc', '', 'a b', '.hidden', 'a/b', ('n'):rep(251) }) do
        fails('ipc.' .. kind, { 'invalid name', 'a letter followed by' }, ipc[kind], bad)
        fails('ipc.' .. kind, { "bad option 'name'", 'invalid name' }, ipc[kind], { name = bad })
      end
      fails('ipc.' .. kind, "bad option 'name' to '" .. kind .. "' (string expected, got number)",
        ipc[kind], { name = 5 })
      fails('ipc.' .. kind, 'given twice', ipc[kind], 'abc', { name = 'abc' })
      fails('ipc.' .. kind, 'a name and opts.file together', ipc[kind], 'abc', { file = '/x' })
      fails('ipc.' .. kind, 'a name and opts.file together', ipc[kind], { name = 'abc', file = '/x' })
    end
    fails('ipc.remove', 'invalid name', ipc.remove, 'a b')
    fails('ipc.open', 'invalid name', ipc.open, '9lives')
  end)

  it('option values are type-checked and unknown options refused', function()
    local typed = {
      semaphore = { value = '1', max = 2.5, undo = 1 },
      queue = { max_count = '5', max_size = {} },
      event = { auto_reset = 'yes', set = 0 },
      barrier = { count = '3' },
      shm = { size = '64' },
      kv = { size = true },
    }
    for _, kind in ipairs(TYPES) do
      fails('ipc.' .. kind, { 'unknown option', 'bogus' }, ipc[kind], { bogus = 1 })
      fails('ipc.' .. kind, { 'options are named' }, ipc[kind], { 5 })
      fails('ipc.' .. kind, { "bad option 'cleanup'", 'boolean expected, got string' }, ipc[kind],
        { cleanup = 'yes' })
      fails('ipc.' .. kind, { "bad option 'assert'" }, ipc[kind], { assert = 'maybe' })
      fails('ipc.' .. kind, { "bad option 'file'", 'string expected' }, ipc[kind], { file = 1 })
      -- mode: a string and an "octal-looking" decimal both explain themselves
      fails('ipc.' .. kind, { "bad option 'mode'", 'integer expected, got string', 'tonumber("644", 8)' },
        ipc[kind], { mode = '0644' })
      fails('ipc.' .. kind, { "bad option 'mode'", 'out of range', 'tonumber("644", 8)' }, ipc[kind],
        { mode = 644 })
      for opt, v in pairs(typed[kind] or {}) do
        local opts = {}
        for k, x in pairs(NEEDS[kind] or {}) do opts[k] = x end
        opts[opt] = v
        local msg = fails('ipc.' .. kind, { "bad option '" .. opt .. "' to '" .. kind .. "'" }, ipc[kind], opts)
        assert.matches('expected, got', msg)
      end
    end
    -- nothing was created by any of the refused calls
    for _, info in ipairs(ipc.list()) do assert.is_nil(info.name:match('^abc$'), info.name) end
    fails('ipc.barrier', 'count', ipc.barrier, H.name('B'))
    fails('ipc.shm', 'size', ipc.shm, H.name('S'))
  end)

  it('negative and NaN timeouts are errors naming the function', function()
    for _, w in ipairs(WAITS) do
      local kind, m, call = w[1], w[2], w[3]
      local o <close> = new(kind)
      for _, t in ipairs({ -1, -0.5, 0 / 0, -math.huge }) do
        fails(m, 'timeout must be a non-negative number of milliseconds', call, o, t)
      end
      fails(m, 'number (timeout in milliseconds) expected, got string', call, o, '10')
      o:remove()
    end
    local c <close> = new('condition')
    local mx <close> = new('mutex')
    local g <close> = mx:lock()
    fails('wait', 'timeout must be', function() return c:wait(mx, -1) end)
    fails('wait', 'timeout must be', c.wait, c, mx, 0 / 0)
    mx:unlock()
    local child = ipc.fork(function() end)
    fails('wait', 'timeout must be', child.wait, child, -1)
    child:wait()
    c:remove()
    mx:remove()
  end)

  it('a closed handle names the call, the type and the object', function()
    for _, kind in ipairs(TYPES) do
      local o = new(kind)
      local name = o.name
      o:remove()
      o:close()
      local h = HARMLESS[kind]
      if h ~= 'info' then
        fails(h, { 'attempt to use a closed ' .. kind, '"' .. name .. '"' }, o[h], o)
        fails(h, { 'attempt to use a closed ' .. kind }, function() return o[h](o) end)
      end
      fails('info', { 'attempt to use a closed ' .. kind }, o.info, o)
      fails('remove', { 'attempt to use a closed ' .. kind }, function() return o:remove() end)
    end
  end)

  it('opening a name that holds another type names both, in English', function()
    for _, have in ipairs(TYPES) do
      local o <close> = new(have)
      for _, want in ipairs(TYPES) do
        if want ~= have then
          local art = function(s) return s:match('^[aeiou]') and 'an ' or 'a ' end
          fails('ipc.' .. want, ('"%s" is %s%s, not %s%s'):format(o.name, art(have), have, art(want), want),
            ipc[want], o.name, NEEDS[want])
        end
      end
      o:remove()
    end
    fails('ipc.mutex', 'does not exist', ipc.mutex, H.name('M'), { assert = 'exists' })
  end)

  it('each object refuses what it cannot do, naming the call', function()
    local q <close> = new('queue', { max_size = 8 })
    fails('send', 'message is 9 bytes; this queue takes at most 8', q.send, q, ('x'):rep(9))
    fails('send', 'priority out of range', function() return q:send('x', -1) end)
    fails('send', 'priority must be an integer', q.send, q, 'x', 1.5)

    local k <close> = new('kv', { size = 1024 })
    fails('incr', 'not a number', function() k:set('s', 'text'); return k:incr('s') end)
    local msg = fails('set', { 'is full' }, function()
      for i = 1, 1000 do k:set('key' .. i, ('v'):rep(40)) end
    end)
    assert.matches('kv "K%w+" is full', msg)
    fails('get', 'key is', k.get, k, ('k'):rep(100000))
    fails('get', "cannot call 'get' inside an update", function()
      return k:update('x', function() return k:get('y') end)
    end)

    local s <close> = new('semaphore', { max = 1, value = 1 })
    fails('post', { 'semaphore "', 'exceed' }, s.post, s)
    fails('post', 'count must be >= 1', function() return s:post(0) end)

    local m <close> = new('mutex')
    local g <close> = m:lock()
    fails('lock', { 'mutex "' .. m.name .. '"', 'already locked by this process' }, m.lock, m)
    fails('lock_shared', 'already', function() return m:lock_shared() end)
    m:unlock()

    local c <close> = new('condition')
    fails('wait', 'mutex', function() return c:wait(m, 0) end)

    local sh <close> = new('shm', { size = 16 })
    fails('read', 'outside the object (size 16)', sh.read, sh, 10, 10)
    fails('write', 'outside the object', function() return sh:write(-1, 'x') end)
    fails('write', 'outside the object', sh.write, sh, 16, 'x')
    fails('unpack', 'outside the object', function() return sh:unpack('i8', 12) end)
    fails('store', 'the object holds at most 8', sh.store, sh, ('x'):rep(100))

    fails('ipc.decode', 'not an encoded value', ipc.decode, 'garbage')
    fails('ipc.decode', 'truncated', ipc.decode, ipc.encode({ 1, 2, 3 }):sub(1, 3))
    fails('ipc.hash', 'string expected', ipc.hash, nil)
    q:remove(); k:remove(); s:remove(); m:remove(); c:remove(); sh:remove()
  end)
end)
