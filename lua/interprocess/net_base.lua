-- Shared pieces of the remote objects (lua/interprocess/net*.lua): error
-- raising, argument checks, the advisory-lock key space, and the handle
-- type skeleton.  See docs/distributed.md.
local B = {}

B.CHANNEL = 'ipcsh'
B.POLL_MS = 250 -- polling fallback when a NOTIFY is missed
B.INT32_MAX = 2147483647
B.INT63_MAX = math.maxinteger

-- Advisory-lock keys (the one-bigint form): a 16-bit tag, then a 48-bit
-- object or session id.  Ids stay below 2^48 (280 trillion creations).
B.ID_MAX = (1 << 48) - 1
B.TAG_MUTEX = 0x6970 << 48   -- "ip": a mutex
B.TAG_SESSION = 0x6973 << 48 -- "is": held by every live session on its own id
B.TAG_WAIT = 0x6977 << 48    -- "iw": held (shared) while waiting on an object
B.TAG_SEND = 0x6978 << 48    -- "ix": held (shared) while waiting to send
-- SQL that is true when session id `col` is gone.  A live session holds
-- its key exclusively, so a shared try-lock fails; it succeeds only for a
-- session that ended (that transaction-level lock ends with the statement).
-- Unlike pg_stat_activity, this needs no privilege: every role sees it.
function B.dead_sql(col, me)
  return ('(%s <> %s AND pg_try_advisory_xact_lock_shared(%d + %s))'):format(col, me, B.TAG_SESSION, col)
end
-- SQL that notifies (payload: the object id) only when some session waits
-- on key tag + id: waiters hold it shared, so an exclusive try-lock fails.
-- When it succeeds, the key stays ours to the end of the transaction, so a
-- waiter registering meanwhile waits for our commit and then sees our work
-- on its retry: no wake-up is lost.  (A concurrent notifier also makes it
-- fail: one spurious wake-up, harmless.)
function B.notify_sql(tag, id)
  return ("CASE WHEN NOT pg_try_advisory_xact_lock(%d + %s) THEN pg_notify('%s', (%s)::text) END")
    :format(tag, id, B.CHANNEL, id)
end

-- pg_locks rows of advisory key `k` (an SQL bigint expression) in this
-- database; p prefixes the column names (a table alias and a dot).
function B.locks_sql(k, p)
  p = p or ''
  return p .. "locktype = 'advisory' AND " .. p .. 'objsubid = 1 AND ' .. p .. 'classid = ((' .. k ..
    ') >> 32)::oid AND ' .. p .. 'objid = ((' .. k .. ') & 4294967295)::oid AND ' .. p ..
    'database = (SELECT oid FROM pg_database WHERE datname = current_database())'
end

-- Our own errors are tables until a public entry point turns them into a
-- message positioned at the user's call (never at a line of ours).
local ERR = { __tostring = function(e) return e.msg end }
function B.raise(msg) error(setmetatable({ msg = msg }, ERR), 0) end
function B.argerr(fname, n, msg) B.raise(("bad argument #%d to '%s' (%s)"):format(n, fname, msg)) end
function B.is_err(e) return getmetatable(e) == ERR end

-- Wrap f as a public entry: errors of ours are raised at the caller.
function B.entry(f)
  return function(...)
    local r = table.pack(pcall(f, ...))
    if r[1] then return table.unpack(r, 2, r.n) end
    if getmetatable(r[2]) == ERR then error(r[2].msg, 2) end
    error(r[2], 0)
  end
end

-- Timeout argument: nil/huge forever, 0 try, ms; negative/NaN error.
-- (n counts self: method errors name the argument after it.)
function B.check_timeout(fname, n, t)
  n = n - 1
  if t == nil or t == math.huge then return nil end
  if math.type(t) == nil then B.argerr(fname, n, 'number (timeout in milliseconds) expected, got ' .. type(t)) end
  if t ~= t or t < 0 then B.argerr(fname, n, 'timeout must be a non-negative number of milliseconds') end
  return t
end

function B.int_opt(opts, key, def, min, max, fname)
  local v = opts[key]
  if v == nil then return def end
  if math.type(v) ~= 'integer' then
    if math.type(v) == 'float' and v == math.floor(v) then v = math.tointeger(v) end
    if math.type(v) ~= 'integer' then
      B.raise(("bad option '%s' to '%s' (integer expected, got %s)"):format(key, fname, math.type(v) or type(v)))
    end
  end
  if v < min or v > max then
    B.raise(("bad option '%s' to '%s' (out of range %d..%d)"):format(key, fname, min, max))
  end
  return v
end

function B.bool_opt(opts, key, def, fname)
  local v = opts[key]
  if v == nil then return def end
  if type(v) ~= 'boolean' then
    B.raise(("bad option '%s' to '%s' (boolean expected, got %s)"):format(key, fname, type(v)))
  end
  return v
end

B.TYPES = {}

-- A handle type: T.raw holds the methods (called internally), T.mt's
-- __index their public entries (made by B.publish once all are defined).
function B.new_type(tname, options)
  local T = { options = options or {}, raw = {}, name = tname }
  T.mt = {
    __index = {},
    __tostring = function(o) return ('%s "%s"'):format(tname, o.name) end,
    __name = 'ipcsh.net.' .. tname,
    __ipc_type = function(o) return o._closed and ('closed ' .. tname) or tname end,
  }
  B.TYPES[tname] = T
  local m = T.raw
  -- The handle at self, open; raises the "bad self" / closed / lost
  -- errors.  Methods that go to the server leave the connection checks to
  -- it (a broken or forked connection fails there, with the same report):
  -- a system call less per operation.  local_ = true: a method answering
  -- without the server checks the connection here (fork, EOF on socket).
  T.check = function(o, fname, local_)
    if getmetatable(o) ~= T.mt then B.raise(("calling '%s' on bad self (%s expected)"):format(fname, tname)) end
    if o._closed then B.raise(('attempt to use a closed %s'):format(tname)) end
    local ns = o._ns
    if local_ then
      ns:_check_lost(fname)
    elseif ns._lost then
      B.raise(('%s: %s'):format(fname, ns._lost))
    end
    return ns
  end
  function m.close(o)
    if getmetatable(o) ~= T.mt then B.raise(("calling 'close' on bad self (%s expected)"):format(tname)) end
    if T.on_close and not o._closed then T.on_close(o) end
    o._closed = true
  end
  function m.remove(o)
    local ns = T.check(o, 'remove')
    local _, n = ns:q('remove', nil, 'DELETE FROM ipcsh.objects WHERE id = $1', 'i', o._id)
    return n > 0
  end
  function m.info(o)
    local ns = T.check(o, 'info')
    local t = { type = tname, name = o.name, id = o._id, backend = 'postgresql' }
    T.info(o, ns, t)
    return t
  end
  return T, m
end

function B.publish(T)
  for k, f in pairs(T.raw) do T.mt.__index[k] = B.entry(f) end
end

-- Fetch one row of the object's table; "removed" when gone.
function B.row(o, fname, sql)
  local rows = o._ns:q(fname, nil, sql, 'i', o._id)
  if not rows[1] then B.raise(('%s: %s "%s" was removed'):format(fname, o._type, o.name)) end
  return rows[1]
end

-- Waiters in the objects' info(): sessions holding key tag+id shared.
function B.waiters(ns, tag, id)
  return ns:q('info', nil, 'SELECT count(*) FROM pg_locks WHERE ' .. B.locks_sql('$1::bigint') .. ' AND granted',
    'i', tag + id)[1][1]
end

return B
