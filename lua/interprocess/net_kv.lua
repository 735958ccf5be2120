-- Remote event (a row: is_set, auto_reset, version) and kv (rows of
-- ipcsh.kv under a per-table size budget in ipcsh.kvs).
local B = require 'interprocess.net_base'
local raise, argerr = B.raise, B.argerr

-- ---------------------------------------------------------------- event

local Event, em = B.new_type('event', { auto_reset = true, set = true })
Event.parse = function(opts, fname)
  return { auto_reset = B.bool_opt(opts, 'auto_reset', false, fname), set = B.bool_opt(opts, 'set', false, fname) }
end
Event.create = function(ns, id, p, fname)
  ns:q(fname, nil, 'INSERT INTO ipcsh.events (id, is_set, auto_reset) VALUES ($1, $2, $3)', 'iBB', id, p.set,
    p.auto_reset)
end
Event.load = function(o, fname)
  o._auto = B.row(o, fname, 'SELECT auto_reset FROM ipcsh.events WHERE id = $1')[1]
end

local function ev_write(o, fname, v)
  local ns = Event.check(o, fname)
  local _, n = ns:q(fname, nil, [[
WITH u AS (UPDATE ipcsh.events SET is_set = $2, version = version + 1 WHERE id = $1 RETURNING id)
SELECT ]] .. B.notify_sql(B.TAG_WAIT, '$1') .. [[ FROM u]], 'iB', o._id, v)
  if n == 0 then B.row(o, fname, 'SELECT 1 FROM ipcsh.events WHERE id = $1') end
  return true
end
function em.set(o) return ev_write(o, 'set', true) end
function em.clear(o) return ev_write(o, 'clear', false) end
function em.is_set(o)
  Event.check(o, 'is_set')
  return B.row(o, 'is_set', 'SELECT is_set FROM ipcsh.events WHERE id = $1')[1]
end
function em.wait(o, timeout)
  local ns = Event.check(o, 'wait')
  timeout = B.check_timeout('wait', 2, timeout)
  return ns:waitloop('wait', timeout, function()
    if o._auto then
      local rows = ns:q('wait', nil, 'UPDATE ipcsh.events SET is_set = false, version = version + 1' ..
        ' WHERE id = $1 AND is_set RETURNING id', 'i', o._id)
      if rows[1] then return true end
    elseif B.row(o, 'wait', 'SELECT is_set FROM ipcsh.events WHERE id = $1')[1] then
      return true
    end
  end, B.TAG_WAIT + o._id) or false
end
Event.info = function(o, ns, t)
  local r = B.row(o, 'info', 'SELECT is_set, auto_reset, version FROM ipcsh.events WHERE id = $1')
  t.set, t.auto_reset, t.version = r[1], r[2], r[3]
  t.state = r[1] and 'set' or 'clear'
  t.waiters = B.waiters(ns, B.TAG_WAIT, o._id)
end

-- ---------------------------------------------------------------- kv

local KV, km = B.new_type('kv', { size = true })
KV.parse = function(opts, fname)
  return { size = B.int_opt(opts, 'size', 1024 * 1024, 1, B.INT63_MAX, fname) }
end
KV.create = function(ns, id, p, fname)
  ns:q(fname, nil, 'INSERT INTO ipcsh.kvs (id, size) VALUES ($1, $2)', 'ii', id, p.size)
end

local function check_key(fname, k)
  if type(k) ~= 'string' then argerr(fname, 1, 'string key expected, got ' .. type(k)) end
end

-- Inside a transaction: lock the table's row (writers take turns).
local function kv_lock(o, fname)
  return B.row(o, fname, 'SELECT size, used FROM ipcsh.kvs WHERE id = $1 FOR UPDATE')
end

-- Store (or delete when enc is nil) inside a transaction holding kv_lock.
local function kv_store(o, fname, k, enc, size, used)
  local ns = o._ns
  local old = ns:q(fname, nil,
    'SELECT octet_length(key) + octet_length(value) FROM ipcsh.kv WHERE kv_id = $1 AND key = $2', 'ib', o._id, k)
  local oldn = old[1] and old[1][1] or 0
  if enc == nil then
    if old[1] then
      ns:q(fname, nil, 'DELETE FROM ipcsh.kv WHERE kv_id = $1 AND key = $2', 'ib', o._id, k)
      ns:q(fname, nil, 'UPDATE ipcsh.kvs SET used = used - $2 WHERE id = $1', 'ii', o._id, oldn)
    end
    return old[1] ~= nil
  end
  local newn = #k + #enc
  if used - oldn + newn > size then
    raise(('%s: kv "%s" is full: the record (%d bytes) needs %d more bytes, the whole table has %d (%d used)')
      :format(fname, o.name, newn, newn - oldn, size, used))
  end
  ns:q(fname, nil, 'INSERT INTO ipcsh.kv (kv_id, key, value) VALUES ($1, $2, $3) ON CONFLICT (kv_id, key)' ..
    ' DO UPDATE SET value = EXCLUDED.value, version = ipcsh.kv.version + 1', 'ibb', o._id, k, enc)
  ns:q(fname, nil, 'UPDATE ipcsh.kvs SET used = used + $2 WHERE id = $1', 'ii', o._id, newn - oldn)
  return true
end

function km.get(o, k)
  local ns = KV.check(o, 'get')
  check_key('get', k)
  local rows = ns:q('get', nil, 'SELECT value FROM ipcsh.kv WHERE kv_id = $1 AND key = $2', 'ib', o._id, k)
  if not rows[1] then return nil end
  return ns._ipc.decode(rows[1][1])
end

function km.set(o, k, v)
  local ns = KV.check(o, 'set')
  check_key('set', k)
  local enc = v ~= nil and ns._ipc.encode(v) or nil
  ns:tx('set', function()
    local r = kv_lock(o, 'set')
    kv_store(o, 'set', k, enc, r[1], r[2])
  end)
  return true
end

function km.delete(o, k)
  local ns = KV.check(o, 'delete')
  check_key('delete', k)
  return ns:tx('delete', function()
    local r = kv_lock(o, 'delete')
    return kv_store(o, 'delete', k, nil, r[1], r[2])
  end)
end

function km.keys(o)
  local ns = KV.check(o, 'keys')
  local rows = ns:q('keys', nil, 'SELECT key FROM ipcsh.kv WHERE kv_id = $1 ORDER BY key', 'i', o._id)
  local out = {}
  for i, r in ipairs(rows) do out[i] = r[1] end
  return out
end

function km.count(o)
  local ns = KV.check(o, 'count')
  return ns:q('count', nil, 'SELECT count(*) FROM ipcsh.kv WHERE kv_id = $1', 'i', o._id)[1][1]
end

function km.clear(o)
  local ns = KV.check(o, 'clear')
  return ns:tx('clear', function()
    kv_lock(o, 'clear')
    local _, n = ns:q('clear', nil, 'DELETE FROM ipcsh.kv WHERE kv_id = $1', 'i', o._id)
    ns:q('clear', nil, 'UPDATE ipcsh.kvs SET used = 0 WHERE id = $1', 'i', o._id)
    return n
  end)
end

-- fn(old) runs inside the transaction with the table locked; nil deletes.
function km.update(o, k, fn)
  local ns = KV.check(o, 'update')
  check_key('update', k)
  if type(fn) ~= 'function' then argerr('update', 2, 'function expected, got ' .. type(fn)) end
  return ns:tx('update', function()
    local r = kv_lock(o, 'update')
    local rows = ns:q('update', nil, 'SELECT value FROM ipcsh.kv WHERE kv_id = $1 AND key = $2', 'ib', o._id, k)
    local old = rows[1] and ns._ipc.decode(rows[1][1]) or nil
    local new = fn(old)
    kv_store(o, 'update', k, new ~= nil and ns._ipc.encode(new) or nil, r[1], r[2])
    return new
  end)
end

function km.incr(o, k, n)
  KV.check(o, 'incr')
  check_key('incr', k)
  if n == nil then n = 1 end
  if type(n) ~= 'number' then argerr('incr', 2, 'number expected, got ' .. type(n)) end
  return km.update(o, k, function(old)
    if old ~= nil and type(old) ~= 'number' then
      -- as the local kv words it (and, like it, without a position)
      error(('incr: kv "%s": key "%s" holds a %s value, not a number'):format(o.name, k, type(old)), 0)
    end
    return (old or 0) + n
  end)
end

KV.info = function(o, ns, t)
  local r = B.row(o, 'info',
    'SELECT size, used, (SELECT count(*) FROM ipcsh.kv WHERE kv_id = $1) FROM ipcsh.kvs WHERE id = $1')
  t.size, t.used, t.count = r[1], r[2], r[3]
  t.free = r[1] - r[2]
end

return { Event = Event, KV = KV }
