-- The remote objects: mutex, semaphore, queue, event and kv on PostgreSQL.
-- ipc.connect(url [, opts]) (src/lua/l_net.c) calls connect(raw, ipc, url,
-- opts) here; raw(url, bound_s) opens one libpq connection.  Every
-- statement goes through conn:exec with parameters (binary format); no
-- user data is ever spliced into SQL.  This file: the session (schema,
-- rights, liveness key, keepalives), open/list/remove, transactions and
-- waiting.  The types: net_mutex.lua, net_sem.lua, net_queue.lua,
-- net_kv.lua (event and kv).  Semantics and schema: docs/distributed.md.
local B = require 'interprocess.net_base'
local M = {}
local raise, argerr = B.raise, B.argerr

local SCHEMA_VERSION = 2

local SCHEMA = [[
BEGIN;
SELECT pg_advisory_xact_lock(]] .. (B.TAG_SESSION - 1) .. [[);
CREATE SCHEMA IF NOT EXISTS ipcsh;
CREATE TABLE IF NOT EXISTS ipcsh.meta (version integer NOT NULL);
INSERT INTO ipcsh.meta (version) SELECT 2 WHERE NOT EXISTS (SELECT 1 FROM ipcsh.meta);
CREATE SEQUENCE IF NOT EXISTS ipcsh.fence AS bigint;
CREATE SEQUENCE IF NOT EXISTS ipcsh.sessions AS bigint MAXVALUE 281474976710655;
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
  sid bigint NOT NULL,
  count bigint NOT NULL,
  PRIMARY KEY (sem_id, sid));
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
  owner_sid bigint,
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

-- The rights a role needs (and nothing more): checked at connect, printed
-- and applied by `ipcsh --db URL setup ROLE...`.
local TABLES = { 'objects', 'sems', 'sem_holders', 'queues', 'msgs', 'events', 'kvs', 'kv' }
local SEQUENCES = { 'objects_id_seq', 'msgs_id_seq', 'fence', 'sessions' }
local NEEDED = { { 'schema', 'ipcsh', 'USAGE' }, { 'table', 'ipcsh.meta', 'SELECT' } }
for _, t in ipairs(TABLES) do
  for _, p in ipairs({ 'SELECT', 'INSERT', 'UPDATE', 'DELETE' }) do NEEDED[#NEEDED + 1] = { 'table', 'ipcsh.' .. t, p } end
end
for _, s in ipairs(SEQUENCES) do NEEDED[#NEEDED + 1] = { 'sequence', 'ipcsh.' .. s, 'USAGE' } end

local function missing_sql()
  local parts = {}
  for _, n in ipairs(NEEDED) do
    -- by oid: looking a name up in the schema would itself need USAGE
    local obj = n[1] == 'schema' and "'ipcsh'" or
      ("(SELECT oid FROM pg_class WHERE relnamespace = 'ipcsh'::regnamespace AND relname = '%s')")
      :format(n[2]:match('%.(.*)'))
    parts[#parts + 1] = ("CASE WHEN NOT has_%s_privilege(%s, '%s') THEN '%s ON %s%s' END")
      :format(n[1], obj, n[3], n[3], n[1] == 'table' and '' or (n[1]:upper() .. ' '), n[2])
  end
  return 'SELECT current_user::text, concat_ws(\', \', ' .. table.concat(parts, ', ') .. ')'
end
local MISSING_SQL = missing_sql()

-- GRANT statements giving role the rights above (role is quoted).
function M.grants(role)
  local r = '"' .. role:gsub('"', '""') .. '"'
  return table.concat({
    'GRANT USAGE ON SCHEMA ipcsh TO ' .. r .. ';',
    'GRANT SELECT ON ipcsh.meta TO ' .. r .. ';',
    'GRANT SELECT, INSERT, UPDATE, DELETE ON ' .. table.concat((function()
      local t = {}
      for i, n in ipairs(TABLES) do t[i] = 'ipcsh.' .. n end
      return t
    end)(), ', ') .. ' TO ' .. r .. ';',
    'GRANT USAGE ON SEQUENCE ' .. table.concat((function()
      local t = {}
      for i, n in ipairs(SEQUENCES) do t[i] = 'ipcsh.' .. n end
      return t
    end)(), ', ') .. ' TO ' .. r .. ';',
  }, '\n') .. '\n'
end
M.SCHEMA = SCHEMA

-- ---------------------------------------------------------------- namespace

local NS = {}
NS.__index = NS

local FORKED = 'PostgreSQL connection belongs to another process (forked child?): call ipc.connect again'

-- Bound (seconds) within which the server ends the session of a client it
-- cannot reach any more, locks included (opts.session_timeout, ms).
local function session_bound(opts)
  if opts == nil then return 10 end
  if type(opts) ~= 'table' then argerr('connect', 2, 'table expected, got ' .. type(opts)) end
  for k in pairs(opts) do
    if k ~= 'session_timeout' then argerr('connect', 2, "unknown option '" .. tostring(k) .. "'") end
  end
  local ms = B.int_opt(opts, 'session_timeout', 10000, 2000, 3600000, 'connect')
  return (ms + 999) // 1000
end

-- Open the session: schema, rights, the liveness key, server keepalives.
function NS:_open_session(fname)
  local conn, err = self._raw(self._url, self._bound)
  if not conn then raise(fname .. ': ' .. tostring(err)) end
  self._conn, self._lost, self._held, self._tx, self._listening = conn, nil, {}, 0, false
  self._pid = self._ipc.pid()
  local rows = self:q(fname, nil, "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace" ..
    " WHERE n.nspname = 'ipcsh' AND c.relname = 'meta')")
  if not rows[1][1] then
    local ok, e = pcall(conn.script, conn, SCHEMA)
    if not ok then
      conn:close()
      raise(('%s: schema ipcsh is missing and this role cannot create it (%s): run `ipcsh --db URL setup ROLE`' ..
        ' as a role that may (docs/distributed.md)'):format(fname, tostring(e)))
    end
  end
  rows = self:q(fname, nil, MISSING_SQL)
  if rows[1][2] ~= '' then
    conn:close()
    raise(('%s: role "%s" lacks the rights the remote objects need: %s (grant them with' ..
      ' `ipcsh --db URL setup %s`; docs/distributed.md)'):format(fname, rows[1][1], rows[1][2], rows[1][1]))
  end
  local ok, r = pcall(self.q, self, fname, nil, 'SELECT max(version) FROM ipcsh.meta')
  local v = ok and r[1][1]
  if v ~= SCHEMA_VERSION then
    conn:close()
    raise(('%s: schema ipcsh has version %s, this ipcsh needs %d (drop schema ipcsh, or use another database)')
      :format(fname, ok and tostring(v) or '(unreadable)', SCHEMA_VERSION))
  end
  -- One round trip: a fresh session id, locked for the session's life (its
  -- liveness key), and the server side of TCP keepalives, so that a lost
  -- client's session ends (and its locks with it) within the bound.
  local b = self._bound
  local iv = b >= 10 and b // 5 or 1
  local idle = math.max(b - 3 * iv, 1)
  rows = self:q(fname, nil, [[
SELECT s, pg_advisory_lock($1 + s), set_config('tcp_keepalives_idle', $2, false),
  set_config('tcp_keepalives_interval', $3, false), set_config('tcp_keepalives_count', '3', false),
  set_config('tcp_user_timeout', $4, false)
FROM nextval('ipcsh.sessions') s]], 'ittt', B.TAG_SESSION, tostring(idle), tostring(iv), tostring(b * 1000))
  self._sid = rows[1][1]
end

function M.connect(raw, ipc, url, opts)
  local ok, res = pcall(function()
    local ns = setmetatable({ _raw = raw, _ipc = ipc, _url = url, _bound = session_bound(opts) }, NS)
    ns:_open_session('connect')
    return ns
  end)
  if not ok then
    if B.is_err(res) then error(res.msg, 3) end
    error(res, 0)
  end
  local ns = res
  local api = {}
  for _, k in ipairs({ 'mutex', 'semaphore', 'queue', 'event', 'kv' }) do
    api[k] = B.entry(function(...) return ns:open(k, ...) end)
  end
  api.list = B.entry(function() return ns:list() end)
  api.remove = B.entry(function(name) return ns:remove(name) end)
  api.open = B.entry(function(name) return ns:open_any(name) end)
  api.valid_name = function(s) return ns:valid_name(s) end
  api.type = function(o) return ipc.type(o) end
  api.close = function()
    ns._lost = ns._lost or 'connection closed by close()'
    ns._conn:close()
  end
  -- A new session (after a server restart, a lost connection, or to start
  -- afresh): the old one is closed; returns the mutexes held on it, which
  -- are lost, as a sorted array of 'mutex "NAME" (MODE)'.
  api.reconnect = B.entry(function()
    local lost = ns:_held_list()
    pcall(ns._conn.close, ns._conn)
    ns._held = {}
    ns:_open_session('reconnect')
    return lost
  end)
  api.url = url
  api.backend_pid = function() return ns._conn:backend_pid() end
  api.session_timeout = ns._bound * 1000
  api._ns = ns
  return api
end

-- The local name rule, when the module has one (so both backends agree).
function NS:valid_name(s)
  if type(s) ~= 'string' then return false end
  local v = self._ipc.valid_name
  if v then return v(s) and #s <= 250 end
  return #s >= 1 and #s <= 250 and s:match('^%a[%w_.%-]*$') ~= nil
end

function NS:_held_list()
  local l = {}
  for _, h in pairs(self._held or {}) do l[#l + 1] = ('mutex "%s" (%s)'):format(h.name, h.mode) end
  table.sort(l)
  return l
end

-- Locks held on this connection, for the "lost" report.
function NS:_lost_report()
  local l = self:_held_list()
  if #l == 0 then return 'connection to PostgreSQL lost' end
  return 'connection to PostgreSQL lost; locks lost with it: ' .. table.concat(l, ', ')
end

function NS:_check_lost(fname)
  if self._ipc.pid() ~= self._pid then raise(('%s: %s'):format(fname, FORKED)) end
  if self._lost or not self._conn:alive() then
    self._lost = self._lost or self:_lost_report()
    raise(('%s: %s'):format(fname, self._lost))
  end
end

-- Run a statement; a broken connection becomes the "lost" report.
function NS:q(fname, timeout, sql, types, ...)
  if self._lost then raise(('%s: %s'):format(fname, self._lost)) end
  local ok, rows, n = pcall(self._conn.exec, self._conn, timeout, sql, types, ...)
  if not ok then
    local msg = tostring(rows)
    if msg == 'interrupted' then raise('interrupted') end
    if msg:find('another process', 1, true) then raise(('%s: %s'):format(fname, msg)) end
    if msg:find('connection to PostgreSQL lost', 1, true) or not self._conn:alive() then
      self._lost = self:_lost_report() .. ' (' .. msg .. ')'
      raise(('%s: %s'):format(fname, self._lost))
    end
    raise(('%s: %s'):format(fname, msg))
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

local function left(deadline, ipc)
  if not deadline then return nil end
  local l = deadline - ipc.clock()
  return l > 0 and l or 0
end

-- Wait for a NOTIFY (or the polling slice); false when the deadline passed.
function NS:nap(fname, deadline, slice)
  local l = left(deadline, self._ipc)
  if l == 0 then return false end
  if self._lost then raise(('%s: %s'):format(fname, self._lost)) end
  slice = slice or B.POLL_MS
  local ok, err = pcall(self._conn.wait_notify, self._conn, math.min(l or slice, slice))
  if not ok then
    if err == 'interrupted' then raise('interrupted') end
    self._lost = self:_lost_report() .. ' (' .. tostring(err) .. ')'
    raise(('%s: %s'):format(fname, self._lost))
  end
  return true
end

-- Retry try() until it returns a value or the timeout passes (nil).  The
-- connection LISTENs only while some call waits, and meanwhile holds the
-- wait key (tag + object id) shared: info() counts waiters from it.
-- Retrying once after LISTEN closes the window in which a wake-up sent
-- between the first try and the LISTEN would be missed.
function NS:waitloop(fname, timeout, try, key)
  local deadline = timeout and self._ipc.clock() + timeout
  local r = try()
  if r ~= nil or timeout == 0 then return r end
  local listened = false
  if not self._listening then
    self:q(fname, nil, 'LISTEN ' .. B.CHANNEL)
    self._listening, listened = true, true
  end
  -- The wait key is only tried, never waited for (a notifier holds it
  -- exclusively until its commit): until it is ours, each round tries
  -- again, and the polling slice covers a wake-up missed meanwhile.
  local registered = false
  local function register()
    registered = self:q(fname, nil, 'SELECT pg_try_advisory_lock_shared($1)', 'i', key)[1][1]
  end
  local ok, res = pcall(function()
    while true do
      if key and not registered then register() end
      local x = try()
      if x ~= nil then return x end
      -- not registered yet: a short slice (a notifier is committing)
      if not self:nap(fname, deadline, (key and not registered) and 5 or nil) then return nil end
    end
  end)
  if not self._lost then
    if registered then pcall(self.q, self, fname, nil, 'SELECT pg_advisory_unlock_shared($1)', 'i', key) end
    if listened then pcall(self.q, self, fname, nil, 'UNLISTEN ' .. B.CHANNEL) end
  end
  if listened then self._listening = false end
  if not ok then error(res, 0) end
  return res
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

local COMMON_OPTS = { file = true, assert = true }

-- ipc.TYPE([name] [, opts]) / ipc.TYPE(opts)
function NS:open(tname, a, b)
  local T = B.TYPES[tname]
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
      raise(("bad option '%s' to '%s' (not supported by remote objects: see docs/distributed.md)"):format(k, fname))
    end
    if not COMMON_OPTS[k] and not T.options[k] then
      argerr(fname, type(a) == 'table' and 1 or 2, "unknown option '" .. tostring(k) .. "'")
    end
  end
  if opts.file ~= nil then
    if type(opts.file) ~= 'string' then
      raise(("bad option 'file' to '%s' (string expected, got %s)"):format(fname, type(opts.file)))
    end
    if name then argerr(fname, 2, 'give a name or opts.file, not both') end
    name = self._ipc.hash(normalise_path(opts.file))
  end
  name = name or self._ipc.uid()
  if not self:valid_name(name) then
    argerr(fname, 1, 'invalid name "' .. name .. '" (a letter, then letters, digits, _, - or ., at most 250)')
  end
  local assert_ = opts.assert
  if assert_ ~= nil and assert_ ~= 'create' and assert_ ~= 'exists' then
    raise(("bad option 'assert' to '%s' ('create' or 'exists' expected)"):format(fname))
  end
  local params = T.parse(opts, fname)
  self:_check_lost(fname)
  local function existing()
    local rows = self:q(fname, nil, 'SELECT id, type FROM ipcsh.objects WHERE name = $1', 't', name)
    if not rows[1] then return nil end
    if assert_ == 'create' then raise(('%s: object "%s" already exists'):format(fname, name)) end
    if rows[1][2] ~= tname then raise(('%s: "%s" is a %s, not a %s'):format(fname, name, rows[1][2], tname)) end
    return rows[1][1]
  end
  -- Opening an existing name reads it (no sequence value is consumed);
  -- only a missing one is inserted.
  local id = existing()
  if not id then
    if assert_ == 'exists' then raise(('%s: no object "%s"'):format(fname, name)) end
    id = self:tx(fname, function()
      local rows = self:q(fname, nil,
        'INSERT INTO ipcsh.objects (name, type) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id',
        'tt', name, tname)
      if not rows[1] then return nil end -- created meanwhile by someone else
      if rows[1][1] > B.ID_MAX then raise(('%s: object id space exhausted'):format(fname)) end
      T.create(self, rows[1][1], params, fname)
      return rows[1][1]
    end) or existing()
    if not id then raise(('%s: object "%s" was removed while being opened'):format(fname, name)) end
  end
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
      local ok2, info = pcall(B.TYPES[r[2]].raw.info, o)
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
  if not rows[1] then raise(('open: no object named "%s"'):format(name)) end
  return self:open(rows[1][1], name, { assert = 'exists' })
end

function NS:remove(name)
  if type(name) ~= 'string' then argerr('remove', 1, 'string expected, got ' .. type(name)) end
  self:_check_lost('remove')
  local _, n = self:q('remove', nil, 'DELETE FROM ipcsh.objects WHERE name = $1', 't', name)
  return n > 0
end

require 'interprocess.net_mutex'
require 'interprocess.net_sem'
require 'interprocess.net_queue'
require 'interprocess.net_kv'
for _, T in pairs(B.TYPES) do B.publish(T) end

return M
