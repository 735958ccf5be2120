-- Remote mutex: a session-level advisory lock on key TAG_MUTEX + id, with
-- a fencing token from sequence ipcsh.fence taken in the same statement.
local B = require 'interprocess.net_base'
local raise, argerr = B.raise, B.argerr

local Mutex, mm = B.new_type('mutex')
Mutex.parse = function() return {} end
Mutex.create = function() end
Mutex.on_close = function(o)
  local h = o._ns._held[o._id]
  if h and h.handle == o then pcall(mm.unlock, o) end
end

local function make_lock_sql(shared, try)
  local fn = (try and 'pg_try_advisory_lock' or 'pg_advisory_lock') .. (shared and '_shared' or '')
  if try then return 'SELECT CASE WHEN ' .. fn .. "($1) THEN nextval('ipcsh.fence') END" end
  return 'SELECT ' .. fn .. "($1), nextval('ipcsh.fence')"
end
-- Built once: the prepared-statement cache is keyed by the text.
local LOCK_SQL = {}
for _, shared in ipairs({ false, true }) do
  for _, try in ipairs({ false, true }) do
    LOCK_SQL[tostring(shared) .. tostring(try)] = make_lock_sql(shared, try)
  end
end
local function lock_sql(shared, try) return LOCK_SQL[tostring(shared) .. tostring(try)] end
local UNLOCK_SQL = { [false] = 'SELECT pg_advisory_unlock($1)', [true] = 'SELECT pg_advisory_unlock_shared($1)' }

-- After a cancelled acquisition the lock may have been granted anyway:
-- release any such stray grant so no lock is held that we don't know of.
local function drop_stray(o, shared)
  local ns = o._ns
  local rows = ns:q('lock', nil, 'SELECT count(*) FROM pg_locks WHERE ' .. B.locks_sql('$1::bigint') ..
    ' AND pid = pg_backend_pid() AND granted', 'i', B.TAG_MUTEX + o._id)
  for _ = 1, rows[1][1] do
    ns:q('lock', nil, UNLOCK_SQL[shared], 'i', B.TAG_MUTEX + o._id)
  end
end

-- Guards: g:unlock() and <close> release the hold they stand for (not a
-- later one of the same mutex).
local Guard = {}
Guard.__index = Guard
local function guard_unlock(g)
  local h = g.mutex._ns._held[g.mutex._id]
  if h and h.token == g.token then return mm.unlock(g.mutex) end
  return false, 'not locked by this guard'
end
Guard.unlock = B.entry(guard_unlock)
Guard.__close = B.entry(guard_unlock)
Guard.__tostring = function(g) return ('guard of mutex "%s"'):format(g.mutex.name) end

local function do_lock(o, fname, shared, timeout)
  local ns = Mutex.check(o, fname)
  timeout = B.check_timeout(fname, 2, timeout)
  local held = ns._held[o._id]
  if held then
    ns:_check_lost(fname) -- a forked child inherits the table, not the hold
    raise(('%s: mutex "%s": already locked by this process (%s)'):format(fname, o.name, held.mode))
  end
  local key = B.TAG_MUTEX + o._id
  local rows
  if timeout == 0 then
    rows = ns:q(fname, nil, lock_sql(shared, true), 'i', key)
    if rows[1][1] == nil then return false end
  else
    local ok, r = pcall(ns.q, ns, fname, timeout, lock_sql(shared, false), 'i', key)
    if not ok or r == false then
      if not ns._lost then drop_stray(o, shared) end
      if not ok then error(r, 0) end
      return false
    end
    rows = r
  end
  local token = rows[1][#rows[1]]
  ns._held[o._id] = { mode = shared and 'shared' or 'exclusive', token = token, name = o.name, handle = o }
  return setmetatable({ mutex = o, token = token }, Guard)
end

function mm.lock(o, timeout) return do_lock(o, 'lock', false, timeout) end
function mm.lock_shared(o, timeout) return do_lock(o, 'lock_shared', true, timeout) end

function mm.unlock(o)
  local ns = Mutex.check(o, 'unlock')
  local h = ns._held[o._id]
  if not h then return false, 'not locked by this process' end
  -- (the comparison goes through a local: Lua 5.4.4 miscompiles a
  -- comparison used directly as the index of an upvalue table)
  local shared = h.mode == 'shared'
  local rows = ns:q('unlock', nil, UNLOCK_SQL[shared], 'i', B.TAG_MUTEX + o._id)
  ns._held[o._id] = nil
  if not rows[1][1] then
    raise(('unlock: mutex "%s": the lock was lost (the server no longer had it)'):format(o.name))
  end
  return true
end

local function with(o, fname, shared, fn, timeout)
  if type(fn) ~= 'function' then argerr(fname, 1, 'function expected, got ' .. type(fn)) end
  local g = do_lock(o, fname, shared, timeout)
  if not g then return false end
  local res = table.pack(pcall(fn))
  local h = o._ns._held[o._id]
  if h and h.token == g.token then
    if not res[1] then pcall(mm.unlock, o) else mm.unlock(o) end
  end
  if not res[1] then error(res[2], 0) end
  return true, table.unpack(res, 2, res.n)
end

function mm.with(o, fn, timeout) return with(o, 'with', false, fn, timeout) end
function mm.with_shared(o, fn, timeout) return with(o, 'with_shared', true, fn, timeout) end

-- Held: asks the server (one round trip) before claiming a hold, so that
-- a session the server ended (partition, restart) is reported, not assumed.
function mm.held(o)
  local ns = Mutex.check(o, 'held')
  local h = ns._held[o._id]
  if not h then return nil end
  ns:q('held', nil, 'SELECT 1')
  return h.mode
end

-- The fencing token of this process's current hold (nil when not held):
-- strictly greater than every token handed out before it.
function mm.token(o)
  local ns = Mutex.check(o, 'token', true)
  local h = ns._held[o._id]
  return h and h.token or nil
end

Mutex.info = function(o, ns, t)
  local key = B.TAG_MUTEX + o._id
  local rows = ns:q('info', nil, 'SELECT l.mode, a.application_name, l.pid FROM pg_locks l' ..
    ' LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE ' .. B.locks_sql('$1::bigint', 'l.') ..
    ' AND l.granted ORDER BY l.pid', 'i', key)
  t.state = 'free'
  t.holders = {}
  t.backends = {}
  for _, r in ipairs(rows) do
    t.state = r[1] == 'ExclusiveLock' and 'exclusive' or 'shared'
    local pid = r[2] and tonumber(r[2]:match('^ipcsh:(%d+)$'))
    t.holders[#t.holders + 1] = pid or -r[3]
    t.backends[#t.backends + 1] = r[3]
  end
  t.waiters = ns:q('info', nil, 'SELECT count(*) FROM pg_locks WHERE ' .. B.locks_sql('$1::bigint') ..
    ' AND NOT granted', 'i', key)[1][1]
end

-- The statements, for bench/pg_bench.lua (pgbench runs the same SQL).
Mutex.sql = { lock = lock_sql(false, false), unlock = 'SELECT pg_advisory_unlock($1)' }

return Mutex
