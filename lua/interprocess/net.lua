-- The remote objects: mutex, semaphore, queue, event and kv on PostgreSQL.
-- ipc.connect(url) (src/lua/l_net.c) opens one libpq connection and calls
-- namespace(conn, ipc, url).  Every statement goes through conn:exec with
-- parameters (binary format); no user data is ever spliced into SQL.
-- Semantics and schema: docs/distributed.md.
local M = {}

local SCHEMA_VERSION = 1
-- classid of our two-key advisory locks ("ipcs"); objid = object id.
local K = '1768956787'
local CHANNEL = 'ipcsh'
local POLL_MS = 250 -- polling fallback when a NOTIFY is missed
local INT32_MAX = 2147483647
local INT63_MAX = math.maxinteger

local SCHEMA = [[
BEGIN;
SELECT pg_advisory_xact_lock(]] .. K .. [[, 0);
CREATE SCHEMA IF NOT EXISTS ipcsh;
CREATE TABLE IF NOT EXISTS ipcsh.meta (version integer NOT NULL);
INSERT INTO ipcsh.meta (version) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM ipcsh.meta);
CREATE SEQUENCE IF NOT EXISTS ipcsh.fence;
CREATE TABLE IF NOT EXISTS ipcsh.objects (
  id bigserial PRIMARY KEY,
  name text NOT NULL UNIQUE,
  type text NOT NULL,
  created timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS ipcsh.sems (
  id bigint PRIMARY KEY REFERENCES ipcsh.objects (id) ON DELETE CASCADE,
  value bigint NOT NULL CHECK (value >= 0),
  max bigint NOT NULL,
  undo boolean NOT NULL);
CREATE TABLE IF NOT EXISTS ipcsh.sem_holders (
  sem_id bigint NOT NULL REFERENCES ipcsh.sems (id) ON DELETE CASCADE,
  pid integer NOT NULL,
  started timestamptz NOT NULL,
  count bigint NOT NULL,
  PRIMARY KEY (sem_id, pid, started));
CREATE TABLE IF NOT EXISTS ipcsh.queues (
  id bigint PRIMARY KEY REFERENCES ipcsh.objects (id) ON DELETE CASCADE,
  count bigint NOT NULL,
  max_count bigint NOT NULL,
  max_size bigint NOT NULL,
  visibility_ms bigint NOT NULL,
  max_deliveries integer NOT NULL);
CREATE TABLE IF NOT EXISTS ipcsh.msgs (
  id bigserial PRIMARY KEY,
  qid bigint NOT NULL REFERENCES ipcsh.queues (id) ON DELETE CASCADE,
  prio integer NOT NULL,
  body bytea NOT NULL,
  deliveries integer NOT NULL DEFAULT 0,
  owner_pid integer,
  owner_start timestamptz,
  visible_at timestamptz,
  receipt bigint,
  dead boolean NOT NULL DEFAULT false);
CREATE INDEX IF NOT EXISTS msgs_order ON ipcsh.msgs (qid, prio DESC, id);
CREATE TABLE IF NOT EXISTS ipcsh.events (
  id bigint PRIMARY KEY REFERENCES ipcsh.objects (id) ON DELETE CASCADE,
  is_set boolean NOT NULL,
  auto_reset boolean NOT NULL,
  version bigint NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS ipcsh.kvs (
  id bigint PRIMARY KEY REFERENCES ipcsh.objects (id) ON DELETE CASCADE,
  size bigint NOT NULL,
  used bigint NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS ipcsh.kv (
  kv_id bigint NOT NULL REFERENCES ipcsh.kvs (id) ON DELETE CASCADE,
  key bytea NOT NULL,
  value bytea NOT NULL,
  version bigint NOT NULL DEFAULT 1,
  PRIMARY KEY (kv_id, key));
COMMIT;
]]

-- ---------------------------------------------------------------- helpers

local function argerr(fname, n, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), level or 3)
end

-- Timeout argument: nil/huge forever, 0 try, ms; negative/NaN error.
-- (n counts self: method errors name the argument after it, as Lua's
-- luaL_argerror does for a method call.)
local function check_timeout(fname, n, t)
  n = n - 1
  if t == nil or t == math.huge then return nil end
  if math.type(t) == nil then argerr(fname, n, 'number (timeout in milliseconds) expected, got ' .. type(t), 4) end
  if t ~= t or t < 0 then argerr(fname, n, 'timeout must be a non-negative number of milliseconds', 4) end
  return t
end

local function now_ms(ipc) return ipc.clock() end

-- Milliseconds left (nil: forever).
local function left(deadline, ipc)
  if not deadline then return nil end
  local l = deadline - now_ms(ipc)
  return l > 0 and l or 0
end

local function valid_name(s)
  return type(s) == 'string' and #s >= 1 and #s <= 250 and s:match('^[A-Za-z][A-Za-z0-9_.%-]*$') ~= nil -- names.c's rule
end

local function normalise_path(path)
  if path:sub(1, 1) ~= '/' then
    local cwd = os.getenv('PWD')
    if not cwd then
      local p = io.popen('pwd')
      cwd = p:read('l')
      p:close()
    end
    path = cwd .. '/' .. path
  end
  local parts = {}
  for seg in path:gmatch('[^/]+') do
    if seg == '..' then
      parts[#parts] = nil
    elseif seg ~= '.' then
      parts[#parts + 1] = seg
    end
  end
  return '/' .. table.concat(parts, '/')
end

-- ---------------------------------------------------------------- namespace

local NS = {}
NS.__index = NS

function M.namespace(conn, ipc, url)
  local ns = setmetatable({ _conn = conn, _ipc = ipc, _url = url, _held = {}, _tx = 0, _pid = ipc.pid() },
    NS)
  local rows = conn:exec(nil, "SELECT to_regclass('ipcsh.meta') IS NOT NULL")
  if not rows[1][1] then conn:script(SCHEMA) end
  rows = conn:exec(nil, 'SELECT max(version) FROM ipcsh.meta')
  local v = rows[1][1]
  if v ~= SCHEMA_VERSION then
    conn:close()
    error(('ipc.connect: schema ipcsh has version %s, this ipcsh needs %d'):format(tostring(v), SCHEMA_VERSION), 2)
  end
  local api = {}
  for _, k in ipairs({ 'mutex', 'semaphore', 'queue', 'event', 'kv' }) do
    api[k] = function(...) return ns:open(k, ...) end
  end
  api.list = function() return ns:list() end
  api.remove = function(name) return ns:remove(name) end
  api.open = function(name) return ns:open_any(name) end
  api.valid_name = valid_name
  api.type = function(o) return M.type(o) end
  api.close = function()
    ns._lost = ns._lost or 'connection closed by net.close()'
    conn:close()
  end
  api.url = url
  api.backend_pid = function() return conn:backend_pid() end
  api._ns = ns
  return api
end

-- Locks held on this connection, for the "lost" report.
function NS:_lost_report()
  local l = {}
  for _, h in pairs(self._held) do l[#l + 1] = ('mutex "%s" (%s)'):format(h.name, h.mode) end
  table.sort(l)
  if #l == 0 then return 'connection to PostgreSQL lost' end
  return 'connection to PostgreSQL lost; locks lost with it: ' .. table.concat(l, ', ')
end

local FORKED = 'PostgreSQL connection belongs to another process (forked child?): call ipc.connect again'

function NS:_check_lost(fname)
  if self._ipc.pid() ~= self._pid then error(('%s: %s'):format(fname, FORKED), 4) end
  if self._lost or not self._conn:alive() then
    self._lost = self._lost or self:_lost_report()
    error(("%s: %s"):format(fname, self._lost), 4)
  end
end

-- Run a statement; a broken connection becomes the "lost" report.
function NS:q(fname, timeout, sql, types, ...)
  if self._lost then error(("%s: %s"):format(fname, self._lost), 3) end
  local ok, rows, n = pcall(self._conn.exec, self._conn, timeout, sql, types, ...)
  if not ok then
    local msg = tostring(rows)
    if msg:find('connection to PostgreSQL lost', 1, true) or not self._conn:alive() then
      self._lost = self:_lost_report() .. ' (' .. msg .. ')'
      error(("%s: %s"):format(fname, self._lost), 3)
    end
    if msg == 'interrupted' then error('interrupted', 3) end
    error(("%s: %s"):format(fname, msg), 3)
  end
  return rows, n
end

-- Run fn inside a transaction (a savepoint when nested).
function NS:tx(fname, fn, ...)
  local sp = self._tx > 0 and ('sp' .. self._tx) or nil
  self:q(fname, nil, sp and ('SAVEPOINT ' .. sp) or 'BEGIN')
  self._tx = self._tx + 1
  local res = table.pack(pcall(fn, ...))
  self._tx = self._tx - 1
  if res[1] then
    self:q(fname, nil, sp and ('RELEASE SAVEPOINT ' .. sp) or 'COMMIT')
    return table.unpack(res, 2, res.n)
  end
  if not self._lost then
    pcall(self.q, self, fname, nil, sp and ('ROLLBACK TO SAVEPOINT ' .. sp) or 'ROLLBACK')
  end
  error(res[2], 0)
end

-- Wait for a NOTIFY (or the polling slice); false when the deadline passed.
function NS:nap(fname, deadline)
  local l = left(deadline, self._ipc)
  if l == 0 then return false end
  if self._lost then error(("%s: %s"):format(fname, self._lost), 3) end
  local ok, err = pcall(self._conn.wait_notify, self._conn, math.min(l or POLL_MS, POLL_MS))
  if not ok then
    if err == 'interrupted' then error('interrupted', 3) end
    self._lost = self:_lost_report() .. ' (' .. tostring(err) .. ')'
    error(("%s: %s"):format(fname, self._lost), 3)
  end
  return true
end

-- Retry try() until it returns a value or the timeout passes (nil).  The
-- connection LISTENs only while some call waits: a session that is not
-- waiting is not a listener, so notifications cost nobody a wake-up.
-- Retrying once after LISTEN closes the window in which a wake-up sent
-- between the first try and the LISTEN would be missed.
function NS:waitloop(fname, timeout, try)
  local deadline = timeout and now_ms(self._ipc) + timeout
  local r = try()
  if r ~= nil or timeout == 0 then return r end
  local listened = false
  if not self._listening then
    self:q(fname, nil, 'LISTEN ' .. CHANNEL)
    self._listening, listened = true, true
  end
  local ok, res = pcall(function()
    while true do
      local x = try()
      if x ~= nil then return x end
      if not self:nap(fname, deadline) then return nil end
    end
  end)
  if listened then
    self._listening = false
    if not self._lost then pcall(self.q, self, fname, nil, 'UNLISTEN ' .. CHANNEL) end
  end
  if not ok then error(res, 0) end
  return res
end

local TYPES = {}

local COMMON_OPTS = { file = true, assert = true }

-- ipc.TYPE([name] [, opts]) / ipc.TYPE(opts)
function NS:open(tname, a, b)
  local T = TYPES[tname]
  local fname = tname
  local name, opts
  if type(a) == 'table' then
    opts = a
    if b ~= nil then argerr(fname, 2, 'no argument expected after the options') end
  else
    name, opts = a, b
    if name ~= nil and type(name) ~= 'string' then argerr(fname, 1, 'string expected, got ' .. type(name)) end
    if opts ~= nil and type(opts) ~= 'table' then argerr(fname, 2, 'table expected, got ' .. type(opts)) end
  end
  opts = opts or {}
  for k in pairs(opts) do
    if k == 'mode' or k == 'cleanup' or k == 'dir' then
      error(("bad option '%s' to '%s' (not supported by remote objects: see docs/distributed.md)"):format(k, fname), 3)
    end
    if not COMMON_OPTS[k] and not T.options[k] then
      error(("bad argument #%d to '%s' (unknown option '%s')"):format(type(a) == 'table' and 1 or 2, fname, tostring(k)), 3)
    end
  end
  if opts.file ~= nil then
    if type(opts.file) ~= 'string' then error(("bad option 'file' to '%s' (string expected, got %s)"):format(fname, type(opts.file)), 3) end
    if name then argerr(fname, 2, 'give a name or opts.file, not both') end
    name = self._ipc.hash(normalise_path(opts.file))
  end
  name = name or self._ipc.uid()
  if not valid_name(name) then
    argerr(fname, 1, 'invalid name "' .. name .. '" (a letter, then letters, digits, _, - or ., at most 250)')
  end
  local assert_ = opts.assert
  if assert_ ~= nil and assert_ ~= 'create' and assert_ ~= 'exists' then
    error(("bad option 'assert' to '%s' ('create' or 'exists' expected)"):format(fname), 3)
  end
  local params = T.parse(opts, fname)
  self:_check_lost(fname)
  local id, created = self:tx(fname, function()
    local rows
    if assert_ ~= 'exists' then
      rows = self:q(fname, nil,
        'INSERT INTO ipcsh.objects (name, type) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id',
        'tt', name, tname)
      if rows[1] then
        T.create(self, rows[1][1], params, fname)
        return rows[1][1], true
      end
    end
    rows = self:q(fname, nil, 'SELECT id, type FROM ipcsh.objects WHERE name = $1', 't', name)
    if not rows[1] then error(('%s: no object "%s"'):format(fname, name), 0) end
    if assert_ == 'create' then error(('%s: object "%s" already exists'):format(fname, name), 0) end
    if rows[1][2] ~= tname then
      error(('%s: "%s" is a %s, not a %s'):format(fname, name, rows[1][2], tname), 0)
    end
    return rows[1][1], false
  end)
  local o = setmetatable({ name = name, _id = id, _ns = self, _type = tname }, T.mt)
  if T.load then T.load(o, fname) end
  return o
end

function NS:list()
  self:_check_lost('list')
  local rows = self:q('list', nil, 'SELECT name, type FROM ipcsh.objects ORDER BY name')
  local out = {}
  for _, r in ipairs(rows) do
    local ok, o = pcall(self.open, self, r[2], r[1], { assert = 'exists' })
    if ok then
      local ok2, info = pcall(o.info, o)
      if ok2 then out[#out + 1] = info end
    end
  end
  return out
end

-- Open an existing object of whatever type it is.
function NS:open_any(name)
  if type(name) ~= 'string' then argerr('open', 1, 'string expected, got ' .. type(name)) end
  self:_check_lost('open')
  local rows = self:q('open', nil, 'SELECT type FROM ipcsh.objects WHERE name = $1', 't', name)
  if not rows[1] then error(('open: no object named "%s"'):format(name), 2) end
  return self:open(rows[1][1], name, { assert = 'exists' })
end

function NS:remove(name)
  if type(name) ~= 'string' then argerr('remove', 1, 'string expected, got ' .. type(name)) end
  self:_check_lost('remove')
  local _, n = self:q('remove', nil, 'DELETE FROM ipcsh.objects WHERE name = $1', 't', name)
  return n > 0
end

function M.type(o)
  local mt = getmetatable(o)
  for k, T in pairs(TYPES) do
    if mt == T.mt then return o._closed and ('closed ' .. k) or k end
  end
  return nil
end

-- ---------------------------------------------------------------- handles

local function new_type(tname, options)
  local T = { options = options or {}, methods = {} }
  T.mt = {
    __index = T.methods,
    __tostring = function(o) return ('%s "%s"'):format(tname, o.name) end,
    __name = 'ipcsh.net.' .. tname,
  }
  TYPES[tname] = T
  local m = T.methods
  -- The handle at self, open; raises the "bad argument" / closed errors.
  T.check = function(o, fname)
    if getmetatable(o) ~= T.mt then error(('calling \'%s\' on bad self (%s expected)'):format(fname, tname), 3) end
    if o._closed then error(('attempt to use a closed %s'):format(tname), 3) end
    o._ns:_check_lost(fname)
    return o._ns
  end
  function m.close(o)
    if getmetatable(o) ~= T.mt then error(('calling \'close\' on bad self (%s expected)'):format(tname), 2) end
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

-- Fetch one row of the object's table; "removed" when gone.
local function row(o, fname, sql)
  local rows = o._ns:q(fname, nil, sql, 'i', o._id)
  if not rows[1] then error(('%s: %s "%s" was removed'):format(fname, o._type, o.name), 3) end
  return rows[1]
end

-- ---------------------------------------------------------------- mutex

local Mutex, mm = new_type('mutex')
Mutex.parse = function() return {} end
Mutex.create = function() end
Mutex.on_close = function(o)
  local h = o._ns._held[o._id]
  if h and h.handle == o then pcall(o.unlock, o) end
end

local function lock_sql(shared, try)
  local fn = (try and 'pg_try_advisory_lock' or 'pg_advisory_lock') .. (shared and '_shared' or '')
  if try then
    return 'SELECT CASE WHEN ' .. fn .. '(' .. K .. ", $1::int) THEN nextval('ipcsh.fence') END"
  end
  return 'SELECT ' .. fn .. '(' .. K .. ", $1::int), nextval('ipcsh.fence')"
end

-- After a cancelled acquisition the lock may have been granted anyway:
-- release any such stray grant so no lock is held that we don't know of.
local function drop_stray(o, shared)
  local ns = o._ns
  local rows = ns:q('lock', nil,
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = " .. K ..
    " AND objid = $1::bigint::oid AND objsubid = 2 AND pid = pg_backend_pid() AND granted", 'i', o._id)
  for _ = 1, rows[1][1] do
    ns:q('lock', nil, 'SELECT pg_advisory_unlock' .. (shared and '_shared' or '') .. '(' .. K .. ', $1::int)', 'i', o._id)
  end
end

local Guard = {}
Guard.__index = Guard
Guard.__close = function(g)
  local h = g.mutex._ns._held[g.mutex._id]
  if h and h.token == g.token then g.mutex:unlock() end
end
Guard.__tostring = function(g) return ('guard of mutex "%s"'):format(g.mutex.name) end

local function do_lock(o, fname, shared, timeout)
  local ns = Mutex.check(o, fname)
  timeout = check_timeout(fname, 2, timeout)
  if ns._held[o._id] then error(('%s: mutex "%s" is already held by this process'):format(fname, o.name), 3) end
  local rows
  if timeout == 0 then
    rows = ns:q(fname, nil, lock_sql(shared, true), 'i', o._id)
    if rows[1][1] == nil then return false end
  else
    local ok, r = pcall(ns.q, ns, fname, timeout, lock_sql(shared, false), 'i', o._id)
    if not ok or r == false then
      if not ns._lost then drop_stray(o, shared) end
      if not ok then error(r, 0) end
      return false
    end
    rows = r
  end
  local token = rows[1][#rows[1]]
  ns._held[o._id] = { mode = shared and 'shared' or 'exclusive', token = token, name = o.name, handle = o }
  o._token = token
  return setmetatable({ mutex = o, token = token }, Guard)
end

function mm.lock(o, timeout) return do_lock(o, 'lock', false, timeout) end
function mm.lock_shared(o, timeout) return do_lock(o, 'lock_shared', true, timeout) end

function mm.unlock(o)
  local ns = Mutex.check(o, 'unlock')
  local h = ns._held[o._id]
  if not h then return false, 'not locked by this process' end
  local rows = ns:q('unlock', nil, 'SELECT pg_advisory_unlock' .. (h.mode == 'shared' and '_shared' or '') ..
    '(' .. K .. ', $1::int)', 'i', o._id)
  ns._held[o._id] = nil
  if not rows[1][1] then
    error(('unlock: mutex "%s": the lock was lost (the server no longer had it)'):format(o.name), 2)
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
    if not res[1] then pcall(o.unlock, o) else o:unlock() end
  end
  if not res[1] then error(res[2], 0) end
  return true, table.unpack(res, 2, res.n)
end

function mm.with(o, fn, timeout) return with(o, 'with', false, fn, timeout) end
function mm.with_shared(o, fn, timeout) return with(o, 'with_shared', true, fn, timeout) end

function mm.held(o)
  local ns = Mutex.check(o, 'held')
  local h = ns._held[o._id]
  return h and h.mode or nil
end

-- The fencing token of this process's current hold (nil when not held):
-- strictly greater than every token handed out before it.
function mm.token(o)
  local ns = Mutex.check(o, 'token')
  local h = ns._held[o._id]
  return h and h.token or nil
end

Mutex.info = function(o, ns, t)
  local rows = ns:q('info', nil,
    "SELECT l.mode, a.application_name, l.pid FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid" ..
    " WHERE l.locktype = 'advisory' AND l.classid = " .. K ..
    " AND l.objid = $1::bigint::oid AND l.objsubid = 2 AND l.granted ORDER BY l.pid", 'i', o._id)
  local waiting = ns:q('info', nil,
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = " .. K ..
    " AND objid = $1::bigint::oid AND objsubid = 2 AND NOT granted", 'i', o._id)
  t.state = 'free'
  t.holders = {}
  t.backends = {}
  for _, r in ipairs(rows) do
    t.state = r[1] == 'ExclusiveLock' and 'exclusive' or 'shared'
    local pid = r[2] and tonumber(r[2]:match('^ipcsh:(%d+)$'))
    t.holders[#t.holders + 1] = pid or -r[3]
    t.backends[#t.backends + 1] = r[3]
  end
  t.waiters = waiting[1][1]
end

-- ---------------------------------------------------------------- semaphore

local Sem, sm = new_type('semaphore', { value = true, max = true, undo = true })

local function int_opt(opts, key, def, min, max, fname)
  local v = opts[key]
  if v == nil then return def end
  if math.type(v) ~= 'integer' then
    if math.type(v) == 'float' and v == math.floor(v) then v = math.tointeger(v) end
    if math.type(v) ~= 'integer' then
      error(("bad option '%s' to '%s' (integer expected, got %s)"):format(key, fname, math.type(v) or type(v)), 4)
    end
  end
  if v < min or v > max then
    error(("bad option '%s' to '%s' (out of range %d..%d)"):format(key, fname, min, max), 4)
  end
  return v
end

local function bool_opt(opts, key, def, fname)
  local v = opts[key]
  if v == nil then return def end
  if type(v) ~= 'boolean' then error(("bad option '%s' to '%s' (boolean expected, got %s)"):format(key, fname, type(v)), 4) end
  return v
end

Sem.parse = function(opts, fname)
  local p = {
    max = int_opt(opts, 'max', INT63_MAX, 1, INT63_MAX, fname),
    value = int_opt(opts, 'value', 0, 0, INT63_MAX, fname),
    undo = bool_opt(opts, 'undo', false, fname),
  }
  if p.value > p.max then
    error(("bad option 'value' to '%s' (%d exceeds max %d)"):format(fname, p.value, p.max), 3)
  end
  return p
end
Sem.create = function(ns, id, p, fname)
  ns:q(fname, nil, 'INSERT INTO ipcsh.sems (id, value, max, undo) VALUES ($1, $2, $3, $4)', 'iiiB', id, p.value, p.max, p.undo)
end
Sem.load = function(o, fname)
  local r = row(o, fname, 'SELECT undo, max FROM ipcsh.sems WHERE id = $1')
  o._undo, o._max = r[1], r[2]
end

-- Permits held by sessions that no longer exist go back (undo).
local function reclaim(o, fname)
  o._ns:q(fname, nil, [[
WITH dead AS (
  DELETE FROM ipcsh.sem_holders h WHERE h.sem_id = $1 AND NOT EXISTS (
    SELECT 1 FROM pg_stat_activity a WHERE a.pid = h.pid AND a.backend_start = h.started)
  RETURNING h.count)
UPDATE ipcsh.sems SET value = value + (SELECT coalesce(sum(count), 0) FROM dead)
WHERE id = $1 AND EXISTS (SELECT 1 FROM dead)]], 'i', o._id)
end

local SEM_TAKE = [[
WITH s AS (UPDATE ipcsh.sems SET value = value - 1 WHERE id = $1 AND value > 0 RETURNING undo),
h AS (INSERT INTO ipcsh.sem_holders (sem_id, pid, started, count)
  SELECT $1, pg_backend_pid(), (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()), 1
  FROM s WHERE s.undo
  ON CONFLICT (sem_id, pid, started) DO UPDATE SET count = ipcsh.sem_holders.count + 1)
SELECT count(*) FROM s]]

local SEM_POST = [[
WITH s AS (UPDATE ipcsh.sems SET value = value + $2 WHERE id = $1 AND value <= max - $2 RETURNING value),
h AS (UPDATE ipcsh.sem_holders SET count = greatest(count - $2, 0)
  WHERE sem_id = $1 AND pid = pg_backend_pid() AND EXISTS (SELECT 1 FROM s))
SELECT value, pg_notify(']] .. CHANNEL .. [[', $1::text) FROM s]]

function sm.wait(o, timeout)
  local ns = Sem.check(o, 'wait')
  timeout = check_timeout('wait', 2, timeout)
  return ns:waitloop('wait', timeout, function()
    if ns:q('wait', nil, SEM_TAKE, 'i', o._id)[1][1] > 0 then return true end
    if o._undo then
      reclaim(o, 'wait')
      if ns:q('wait', nil, SEM_TAKE, 'i', o._id)[1][1] > 0 then return true end
    end
  end) or false
end

function sm.post(o, n)
  local ns = Sem.check(o, 'post')
  if n == nil then n = 1 end
  if math.type(n) ~= 'integer' or n < 1 then argerr('post', 1, 'positive integer expected') end
  local rows = ns:q('post', nil, SEM_POST, 'ii', o._id, n)
  if not rows[1] then
    row(o, 'post', 'SELECT 1 FROM ipcsh.sems WHERE id = $1')
    error(('post: semaphore "%s": posting %d would exceed its max (%d)'):format(o.name, n, o._max), 2)
  end
  return true
end

function sm.value(o)
  Sem.check(o, 'value')
  if o._undo then reclaim(o, 'value') end
  return row(o, 'value', 'SELECT value FROM ipcsh.sems WHERE id = $1')[1]
end

function sm.with(o, fn, timeout)
  if type(fn) ~= 'function' then argerr('with', 1, 'function expected, got ' .. type(fn)) end
  if not o:wait(timeout) then return false end
  local res = table.pack(pcall(fn))
  if res[1] then o:post() else pcall(o.post, o) end
  if not res[1] then error(res[2], 0) end
  return true, table.unpack(res, 2, res.n)
end

Sem.info = function(o, ns, t)
  if o._undo then reclaim(o, 'info') end
  local r = row(o, 'info', 'SELECT value, max, undo FROM ipcsh.sems WHERE id = $1')
  t.value, t.max, t.undo = r[1], r[2], r[3]
end

-- ---------------------------------------------------------------- queue

local Queue, qm = new_type('queue', { max_count = true, max_size = true, visibility = true, max_deliveries = true })

Queue.parse = function(opts, fname)
  return {
    max_count = int_opt(opts, 'max_count', 100, 1, INT32_MAX, fname),
    max_size = int_opt(opts, 'max_size', 1024, 1, 64 * 1024 * 1024, fname),
    visibility = int_opt(opts, 'visibility', 30000, 1, INT32_MAX, fname),
    max_deliveries = int_opt(opts, 'max_deliveries', 5, 1, INT32_MAX, fname),
  }
end
Queue.create = function(ns, id, p, fname)
  ns:q(fname, nil, 'INSERT INTO ipcsh.queues (id, count, max_count, max_size, visibility_ms, max_deliveries)' ..
    ' VALUES ($1, 0, $2, $3, $4, $5)', 'iiiii', id, p.max_count, p.max_size, p.visibility, p.max_deliveries)
end
Queue.load = function(o, fname)
  local r = row(o, fname, 'SELECT max_count, max_size, visibility_ms, max_deliveries FROM ipcsh.queues WHERE id = $1')
  o._max_count, o._max_size, o._visibility, o._max_deliveries = r[1], r[2], r[3], r[4]
end

-- A message is available when nobody has it, or its receiver's deadline
-- passed, or its receiver's session is gone.
local AVAILABLE = [[
NOT m.dead AND (m.owner_pid IS NULL OR m.visible_at < clock_timestamp() OR NOT EXISTS (
  SELECT 1 FROM pg_stat_activity a WHERE a.pid = m.owner_pid AND a.backend_start = m.owner_start))]]

local Q_SEND = [[
WITH slot AS (UPDATE ipcsh.queues SET count = count + 1 WHERE id = $1 AND count < max_count RETURNING id),
ins AS (INSERT INTO ipcsh.msgs (qid, prio, body) SELECT id, $2, $3 FROM slot RETURNING id)
SELECT count(*), pg_notify(']] .. CHANNEL .. [[', $1::text) FROM ins]]

local Q_RECEIVE = [[
WITH m AS (DELETE FROM ipcsh.msgs WHERE id = (
    SELECT m.id FROM ipcsh.msgs m WHERE m.qid = $1 AND m.deliveries < $2 AND ]] .. AVAILABLE .. [[
    ORDER BY m.prio DESC, m.id FOR UPDATE SKIP LOCKED LIMIT 1)
  RETURNING body, prio),
c AS (UPDATE ipcsh.queues SET count = count - 1 WHERE id = $1 AND EXISTS (SELECT 1 FROM m))
SELECT body, prio, pg_notify(']] .. CHANNEL .. [[', $1::text) FROM m]]

local Q_CLAIM = [[
UPDATE ipcsh.msgs SET owner_pid = pg_backend_pid(),
  owner_start = (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()),
  visible_at = clock_timestamp() + $3 * interval '1 millisecond',
  deliveries = deliveries + 1, receipt = nextval('ipcsh.fence')
WHERE id = (
  SELECT m.id FROM ipcsh.msgs m WHERE m.qid = $1 AND m.deliveries < $2 AND ]] .. AVAILABLE .. [[
  ORDER BY m.prio DESC, m.id FOR UPDATE SKIP LOCKED LIMIT 1)
RETURNING id, receipt, body, prio]]

local Q_ACK = [[
WITH d AS (DELETE FROM ipcsh.msgs WHERE id = $1 AND receipt = $2 RETURNING qid),
c AS (UPDATE ipcsh.queues SET count = count - 1 WHERE id IN (SELECT qid FROM d))
SELECT count(*), pg_notify(']] .. CHANNEL .. [[', $3::text) FROM d]]

local Q_NACK = [[
WITH r AS (UPDATE ipcsh.msgs SET owner_pid = NULL, owner_start = NULL, visible_at = NULL
  WHERE id = $1 AND receipt = $2 RETURNING id)
SELECT count(*), pg_notify(']] .. CHANNEL .. [[', $3::text) FROM r]]

-- Messages delivered max_deliveries times and available again are dead
-- letters: kept (counted in info().dead_letters), no longer delivered.
local Q_SWEEP = [[
WITH d AS (UPDATE ipcsh.msgs m SET dead = true, owner_pid = NULL
  WHERE m.qid = $1 AND m.deliveries >= $2 AND ]] .. AVAILABLE .. [[ RETURNING m.id),
c AS (UPDATE ipcsh.queues SET count = count - (SELECT count(*) FROM d) WHERE id = $1 AND EXISTS (SELECT 1 FROM d))
SELECT count(*) FROM d]]

function qm.send(o, msg, prio, timeout)
  local ns = Queue.check(o, 'send')
  if type(msg) ~= 'string' then argerr('send', 1, 'string expected, got ' .. type(msg)) end
  if #msg > o._max_size then
    argerr('send', 1, ('message of %d bytes exceeds max_size %d'):format(#msg, o._max_size))
  end
  if prio == nil then prio = 0 end
  if math.type(prio) ~= 'integer' then
    if math.type(prio) == 'float' and prio == math.floor(prio) then prio = math.tointeger(prio) end
    if math.type(prio) ~= 'integer' then argerr('send', 2, 'integer priority expected') end
  end
  if prio < 0 or prio > INT32_MAX then argerr('send', 2, 'priority out of range 0..2147483647') end
  timeout = check_timeout('send', 4, timeout)
  return ns:waitloop('send', timeout, function()
    local rows = ns:q('send', nil, Q_SEND, 'iib', o._id, prio, msg)
    if rows[1][1] > 0 then return true end
    row(o, 'send', 'SELECT 1 FROM ipcsh.queues WHERE id = $1')
  end) or false
end

function qm.receive(o, timeout)
  local ns = Queue.check(o, 'receive')
  timeout = check_timeout('receive', 2, timeout)
  local r = ns:waitloop('receive', timeout, function()
    return ns:q('receive', nil, Q_RECEIVE, 'ii', o._id, o._max_deliveries)[1]
  end)
  if r then return r[1], r[2] end
  return nil
end

function qm.with(o, fn, timeout)
  local ns = Queue.check(o, 'with')
  if type(fn) ~= 'function' then argerr('with', 1, 'function expected, got ' .. type(fn)) end
  timeout = check_timeout('with', 3, timeout)
  ns:q('with', nil, Q_SWEEP, 'ii', o._id, o._max_deliveries)
  local m = ns:waitloop('with', timeout, function()
    return ns:q('with', nil, Q_CLAIM, 'iii', o._id, o._max_deliveries, o._visibility)[1]
  end)
  if not m then return false end
  local res = table.pack(pcall(fn, m[3], m[4]))
  if res[1] then
    ns:q('with', nil, Q_ACK, 'iii', m[1], m[2], o._id)
    return true, table.unpack(res, 2, res.n)
  end
  if not ns._lost then pcall(ns.q, ns, 'with', nil, Q_NACK, 'iii', m[1], m[2], o._id) end
  error(res[2], 0)
end

function qm.count(o)
  local ns = Queue.check(o, 'count')
  ns:q('count', nil, Q_SWEEP, 'ii', o._id, o._max_deliveries)
  return row(o, 'count', 'SELECT count FROM ipcsh.queues WHERE id = $1')[1]
end
function qm.max_count(o) Queue.check(o, 'max_count') return o._max_count end
function qm.max_size(o) Queue.check(o, 'max_size') return o._max_size end

function qm.clear(o)
  local ns = Queue.check(o, 'clear')
  local rows = ns:q('clear', nil, [[
WITH d AS (DELETE FROM ipcsh.msgs WHERE qid = $1 RETURNING dead),
c AS (UPDATE ipcsh.queues SET count = count - (SELECT count(*) FROM d WHERE NOT dead) WHERE id = $1)
SELECT count(*) FROM d WHERE NOT dead]], 'i', o._id)
  ns:q('clear', nil, "SELECT pg_notify('" .. CHANNEL .. "', $1::text)", 'i', o._id)
  return rows[1][1]
end

Queue.info = function(o, ns, t)
  ns:q('info', nil, Q_SWEEP, 'ii', o._id, o._max_deliveries)
  local r = row(o, 'info', [[
SELECT q.count, q.max_count, q.max_size, q.visibility_ms, q.max_deliveries,
  (SELECT count(*) FROM ipcsh.msgs m WHERE m.qid = q.id AND m.owner_pid IS NOT NULL AND NOT m.dead),
  (SELECT count(*) FROM ipcsh.msgs m WHERE m.qid = q.id AND m.dead)
FROM ipcsh.queues q WHERE q.id = $1]])
  t.count, t.max_count, t.max_size, t.visibility, t.max_deliveries, t.in_flight, t.dead_letters =
    r[1], r[2], r[3], r[4], r[5], r[6], r[7]
end

-- ---------------------------------------------------------------- event

local Event, em = new_type('event', { auto_reset = true, set = true })
Event.parse = function(opts, fname)
  return { auto_reset = bool_opt(opts, 'auto_reset', false, fname), set = bool_opt(opts, 'set', false, fname) }
end
Event.create = function(ns, id, p, fname)
  ns:q(fname, nil, 'INSERT INTO ipcsh.events (id, is_set, auto_reset) VALUES ($1, $2, $3)', 'iBB', id, p.set, p.auto_reset)
end
Event.load = function(o, fname)
  o._auto = row(o, fname, 'SELECT auto_reset FROM ipcsh.events WHERE id = $1')[1]
end

local function ev_write(o, fname, v)
  local ns = Event.check(o, fname)
  local _, n = ns:q(fname, nil, [[
WITH u AS (UPDATE ipcsh.events SET is_set = $2, version = version + 1 WHERE id = $1 RETURNING id)
SELECT pg_notify(']] .. CHANNEL .. [[', $1::text) FROM u]], 'iB', o._id, v)
  if n == 0 then row(o, fname, 'SELECT 1 FROM ipcsh.events WHERE id = $1') end
  return true
end
function em.set(o) return ev_write(o, 'set', true) end
function em.clear(o) return ev_write(o, 'clear', false) end
function em.is_set(o)
  Event.check(o, 'is_set')
  return row(o, 'is_set', 'SELECT is_set FROM ipcsh.events WHERE id = $1')[1]
end
function em.wait(o, timeout)
  local ns = Event.check(o, 'wait')
  timeout = check_timeout('wait', 2, timeout)
  return ns:waitloop('wait', timeout, function()
    if o._auto then
      local rows = ns:q('wait', nil, 'UPDATE ipcsh.events SET is_set = false, version = version + 1' ..
        ' WHERE id = $1 AND is_set RETURNING id', 'i', o._id)
      if rows[1] then return true end
    elseif row(o, 'wait', 'SELECT is_set FROM ipcsh.events WHERE id = $1')[1] then
      return true
    end
  end) or false
end
Event.info = function(o, ns, t)
  local r = row(o, 'info', 'SELECT is_set, auto_reset, version FROM ipcsh.events WHERE id = $1')
  t.set, t.auto_reset, t.version = r[1], r[2], r[3]
end

-- ---------------------------------------------------------------- kv

local KV, km = new_type('kv', { size = true })
KV.parse = function(opts, fname)
  return { size = int_opt(opts, 'size', 1024 * 1024, 1, INT63_MAX, fname) }
end
KV.create = function(ns, id, p, fname)
  ns:q(fname, nil, 'INSERT INTO ipcsh.kvs (id, size) VALUES ($1, $2)', 'ii', id, p.size)
end

local function check_key(fname, k)
  if type(k) ~= 'string' then argerr(fname, 1, 'string key expected, got ' .. type(k), 4) end
end

-- Inside a transaction: lock the table's row (writers take turns).
local function kv_lock(o, fname)
  return row(o, fname, 'SELECT size, used FROM ipcsh.kvs WHERE id = $1 FOR UPDATE')
end

-- Store (or delete when enc is nil) inside a transaction holding kv_lock.
local function kv_store(o, fname, k, enc, size, used)
  local ns = o._ns
  local old = ns:q(fname, nil, 'SELECT octet_length(key) + octet_length(value) FROM ipcsh.kv WHERE kv_id = $1 AND key = $2',
    'ib', o._id, k)
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
    error(('%s: kv "%s" is full (%d of %d bytes used, %d more needed)'):format(fname, o.name, used, size,
      newn - oldn), 0)
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
  return o:update(k, function(old)
    if old ~= nil and type(old) ~= 'number' then
      error(('incr: value of key "%s" is a %s, not a number'):format(k, type(old)), 0)
    end
    return (old or 0) + n
  end)
end

KV.info = function(o, ns, t)
  local r = row(o, 'info', 'SELECT size, used, (SELECT count(*) FROM ipcsh.kv WHERE kv_id = $1) FROM ipcsh.kvs WHERE id = $1')
  t.size, t.used, t.count = r[1], r[2], r[3]
end

return M
