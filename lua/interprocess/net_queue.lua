-- Remote queue: messages are rows of ipcsh.msgs; receive() deletes one,
-- with() claims one for its session (owner_sid) until fn returns, the
-- visibility deadline passes or the session is gone.
local B = require 'interprocess.net_base'
local argerr = B.argerr
local CH = B.CHANNEL

local Queue, qm = B.new_type('queue', { max_count = true, max_size = true, visibility = true, max_deliveries = true })

Queue.parse = function(opts, fname)
  return {
    max_count = B.int_opt(opts, 'max_count', 100, 1, B.INT32_MAX, fname),
    max_size = B.int_opt(opts, 'max_size', 1024, 1, 64 * 1024 * 1024, fname),
    visibility = B.int_opt(opts, 'visibility', 30000, 1, B.INT32_MAX, fname),
    max_deliveries = B.int_opt(opts, 'max_deliveries', 5, 1, B.INT32_MAX, fname),
  }
end
Queue.create = function(ns, id, p, fname)
  ns:q(fname, nil, 'INSERT INTO ipcsh.queues (id, count, max_count, max_size, visibility_ms, max_deliveries)' ..
    ' VALUES ($1, 0, $2, $3, $4, $5)', 'iiiii', id, p.max_count, p.max_size, p.visibility, p.max_deliveries)
end
Queue.load = function(o, fname)
  local r = B.row(o, fname, 'SELECT max_count, max_size, visibility_ms, max_deliveries FROM ipcsh.queues WHERE id = $1')
  o._max_count, o._max_size, o._visibility, o._max_deliveries = r[1], r[2], r[3], r[4]
end

-- A message is available when nobody has it, or its receiver's deadline
-- passed, or its receiver's session is gone ($3: our own session id).
local AVAILABLE = [[
NOT m.dead AND (m.owner_sid IS NULL OR m.visible_at < clock_timestamp() OR ]] .. B.dead_sql('m.owner_sid', '$3') .. ')'

-- max_count: queues.count is an upper bound of the live messages, raised
-- by every send (under the queue row's lock, so senders see each other's
-- increments) and never lowered by receivers, which therefore do not touch
-- the queue row at all.  A send that finds the bound at max_count takes the
-- slow path (send_recount): lock the row, count the live messages exactly
-- (a statement started after the lock sees every earlier sender's commit),
-- store that, and insert if there is room.
local Q_SEND = [[
WITH slot AS (UPDATE ipcsh.queues SET count = count + 1 WHERE id = $1 AND count < max_count RETURNING id),
ins AS (INSERT INTO ipcsh.msgs (qid, prio, body) SELECT id, $2, $3 FROM slot RETURNING id)
SELECT count(*), CASE WHEN count(*) > 0 THEN ]] .. B.notify_sql(B.TAG_WAIT, '$1') .. [[ END FROM ins]]

local Q_RECEIVE = [[
WITH m AS (DELETE FROM ipcsh.msgs WHERE id = (
    SELECT m.id FROM ipcsh.msgs m WHERE m.qid = $1 AND m.deliveries < $2 AND ]] .. AVAILABLE .. [[
    ORDER BY m.prio DESC, m.id FOR UPDATE SKIP LOCKED LIMIT 1)
  RETURNING body, prio)
SELECT body, prio, ]] .. B.notify_sql(B.TAG_SEND, '$1') .. [[ FROM m]]

local Q_CLAIM = [[
UPDATE ipcsh.msgs SET owner_sid = $3,
  visible_at = clock_timestamp() + $4 * interval '1 millisecond',
  deliveries = deliveries + 1, receipt = nextval('ipcsh.fence')
WHERE id = (
  SELECT m.id FROM ipcsh.msgs m WHERE m.qid = $1 AND m.deliveries < $2 AND ]] .. AVAILABLE .. [[
  ORDER BY m.prio DESC, m.id FOR UPDATE SKIP LOCKED LIMIT 1)
RETURNING id, receipt, body, prio]]

local Q_ACK = [[
WITH d AS (DELETE FROM ipcsh.msgs WHERE id = $1 AND receipt = $2 RETURNING qid)
SELECT count(*), CASE WHEN count(*) > 0 THEN ]] .. B.notify_sql(B.TAG_SEND, '$3') .. [[ END FROM d]]

local Q_NACK = [[
WITH r AS (UPDATE ipcsh.msgs SET owner_sid = NULL, visible_at = NULL
  WHERE id = $1 AND receipt = $2 RETURNING id)
SELECT count(*), CASE WHEN count(*) > 0 THEN ]] .. B.notify_sql(B.TAG_WAIT, '$3') .. [[ END FROM r]]

-- Messages delivered max_deliveries times and available again are dead
-- letters: kept (counted in info().dead_letters), no longer delivered.
local Q_SWEEP = [[
WITH d AS (UPDATE ipcsh.msgs m SET dead = true, owner_sid = NULL
  WHERE m.qid = $1 AND m.deliveries >= $2 AND ]] .. AVAILABLE .. [[ RETURNING m.id)
SELECT count(*) FROM d]]

local LIVE = 'SELECT count(*) FROM ipcsh.msgs WHERE qid = $1 AND NOT dead'

-- The slow path of send (see Q_SEND): true when sent, nil when full.
local function send_recount(o, ns, prio, msg)
  return ns:tx('send', function()
    local max = B.row(o, 'send', 'SELECT max_count FROM ipcsh.queues WHERE id = $1 FOR UPDATE')[1]
    local n = ns:q('send', nil, LIVE, 'i', o._id)[1][1]
    local room = n < max
    ns:q('send', nil, 'UPDATE ipcsh.queues SET count = $2 WHERE id = $1', 'ii', o._id, room and n + 1 or n)
    if not room then return nil end
    ns:q('send', nil, 'INSERT INTO ipcsh.msgs (qid, prio, body) VALUES ($1, $2, $3)', 'iib', o._id, prio, msg)
    ns:q('send', nil, 'SELECT ' .. B.notify_sql(B.TAG_WAIT, '$1'), 'i', o._id)
    return true
  end)
end

function qm.send(o, msg, prio, timeout)
  local ns = Queue.check(o, 'send')
  if type(msg) ~= 'string' then argerr('send', 1, 'string expected, got ' .. type(msg)) end
  if #msg > o._max_size then
    argerr('send', 1, ('message is %d bytes; this queue takes at most %d'):format(#msg, o._max_size))
  end
  if prio == nil then prio = 0 end
  if math.type(prio) ~= 'integer' then
    if math.type(prio) == 'float' and prio == math.floor(prio) then prio = math.tointeger(prio) end
    if math.type(prio) ~= 'integer' then argerr('send', 2, 'priority must be an integer') end
  end
  if prio < 0 or prio > B.INT32_MAX then argerr('send', 2, 'priority out of range 0..2147483647') end
  timeout = B.check_timeout('send', 4, timeout)
  return ns:waitloop('send', timeout, function()
    local rows = ns:q('send', nil, Q_SEND, 'iib', o._id, prio, msg)
    if rows[1][1] > 0 then return true end
    return send_recount(o, ns, prio, msg)
  end, B.TAG_SEND + o._id) or false
end

function qm.receive(o, timeout)
  local ns = Queue.check(o, 'receive')
  timeout = B.check_timeout('receive', 2, timeout)
  local r = ns:waitloop('receive', timeout, function()
    return ns:q('receive', nil, Q_RECEIVE, 'iii', o._id, o._max_deliveries, ns._sid)[1]
  end, B.TAG_WAIT + o._id)
  if r then return r[1], r[2] end
  return nil
end

function qm.with(o, fn, timeout)
  local ns = Queue.check(o, 'with')
  if type(fn) ~= 'function' then argerr('with', 1, 'function expected, got ' .. type(fn)) end
  timeout = B.check_timeout('with', 3, timeout)
  ns:q('with', nil, Q_SWEEP, 'iii', o._id, o._max_deliveries, ns._sid)
  local m = ns:waitloop('with', timeout, function()
    return ns:q('with', nil, Q_CLAIM, 'iiii', o._id, o._max_deliveries, ns._sid, o._visibility)[1]
  end, B.TAG_WAIT + o._id)
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
  ns:q('count', nil, Q_SWEEP, 'iii', o._id, o._max_deliveries, ns._sid)
  B.row(o, 'count', 'SELECT 1 FROM ipcsh.queues WHERE id = $1')
  return ns:q('count', nil, LIVE, 'i', o._id)[1][1]
end
function qm.max_count(o) Queue.check(o, 'max_count', true) return o._max_count end
function qm.max_size(o) Queue.check(o, 'max_size', true) return o._max_size end

function qm.clear(o)
  local ns = Queue.check(o, 'clear')
  local rows = ns:q('clear', nil, [[
WITH d AS (DELETE FROM ipcsh.msgs WHERE qid = $1 RETURNING dead)
SELECT count(*) FROM d WHERE NOT dead]], 'i', o._id)
  ns:q('clear', nil, 'SELECT ' .. B.notify_sql(B.TAG_SEND, '$1'), 'i', o._id)
  return rows[1][1]
end

Queue.info = function(o, ns, t)
  ns:q('info', nil, Q_SWEEP, 'iii', o._id, o._max_deliveries, ns._sid)
  local r = B.row(o, 'info', [[
SELECT (SELECT count(*) FROM ipcsh.msgs m WHERE m.qid = q.id AND NOT m.dead), q.max_count, q.max_size, q.visibility_ms, q.max_deliveries,
  (SELECT count(*) FROM ipcsh.msgs m WHERE m.qid = q.id AND m.owner_sid IS NOT NULL AND NOT m.dead),
  (SELECT count(*) FROM ipcsh.msgs m WHERE m.qid = q.id AND m.dead)
FROM ipcsh.queues q WHERE q.id = $1]])
  t.count, t.max_count, t.max_size, t.visibility, t.max_deliveries, t.in_flight, t.dead_letters =
    r[1], r[2], r[3], r[4], r[5], r[6], r[7]
  t.waiting_receivers = B.waiters(ns, B.TAG_WAIT, o._id)
  t.waiting_senders = B.waiters(ns, B.TAG_SEND, o._id)
  t.waiters = t.waiting_receivers + t.waiting_senders
end

-- The statements, for bench/pg_bench.lua (pgbench runs the same SQL).
Queue.sql = { send = Q_SEND, receive = Q_RECEIVE }

return Queue
