-- Remote semaphore: a row (value, max, undo); with undo, the permits each
-- session holds are recorded by session id and go back once that session
-- is gone (its liveness key is free: B.dead_sql).
local B = require 'interprocess.net_base'
local raise, argerr = B.raise, B.argerr

local Sem, sm = B.new_type('semaphore', { value = true, max = true, undo = true })

Sem.parse = function(opts, fname)
  local p = {
    max = B.int_opt(opts, 'max', B.INT63_MAX, 1, B.INT63_MAX, fname),
    value = B.int_opt(opts, 'value', 0, 0, B.INT63_MAX, fname),
    undo = B.bool_opt(opts, 'undo', false, fname),
  }
  if p.value > p.max then raise(("bad option 'value' to '%s' (%d exceeds max %d)"):format(fname, p.value, p.max)) end
  return p
end
Sem.create = function(ns, id, p, fname)
  ns:q(fname, nil, 'INSERT INTO ipcsh.sems (id, value, max, undo) VALUES ($1, $2, $3, $4)', 'iiiB', id, p.value, p.max,
    p.undo)
end
Sem.load = function(o, fname)
  local r = B.row(o, fname, 'SELECT undo, max FROM ipcsh.sems WHERE id = $1')
  o._undo, o._max = r[1], r[2]
end

-- Permits held by sessions that no longer exist go back (undo).
local RECLAIM = [[
WITH dead AS (
  DELETE FROM ipcsh.sem_holders h WHERE h.sem_id = $1 AND ]] .. B.dead_sql('h.sid', '$2') .. [[
  RETURNING h.count)
UPDATE ipcsh.sems SET value = value + (SELECT coalesce(sum(count), 0) FROM dead)
WHERE id = $1 AND EXISTS (SELECT 1 FROM dead)]]
local function reclaim(o, fname) o._ns:q(fname, nil, RECLAIM, 'ii', o._id, o._ns._sid) end

local SEM_TAKE = [[
WITH s AS (UPDATE ipcsh.sems SET value = value - 1 WHERE id = $1 AND value > 0 RETURNING undo),
h AS (INSERT INTO ipcsh.sem_holders (sem_id, sid, count) SELECT $1, $2, 1 FROM s WHERE s.undo
  ON CONFLICT (sem_id, sid) DO UPDATE SET count = ipcsh.sem_holders.count + 1)
SELECT count(*) FROM s]]

local SEM_POST = [[
WITH s AS (UPDATE ipcsh.sems SET value = value + $2 WHERE id = $1 AND value <= max - $2 RETURNING value),
h AS (UPDATE ipcsh.sem_holders SET count = greatest(count - $2, 0)
  WHERE sem_id = $1 AND sid = $3 AND EXISTS (SELECT 1 FROM s))
SELECT value, ]] .. B.notify_sql(B.TAG_WAIT, '$1') .. [[ FROM s]]

function sm.wait(o, timeout)
  local ns = Sem.check(o, 'wait')
  timeout = B.check_timeout('wait', 2, timeout)
  return ns:waitloop('wait', timeout, function()
    if ns:q('wait', nil, SEM_TAKE, 'ii', o._id, ns._sid)[1][1] > 0 then return true end
    if o._undo then
      reclaim(o, 'wait')
      if ns:q('wait', nil, SEM_TAKE, 'ii', o._id, ns._sid)[1][1] > 0 then return true end
    end
  end, B.TAG_WAIT + o._id) or false
end

function sm.post(o, n)
  local ns = Sem.check(o, 'post')
  if n == nil then n = 1 end
  if math.type(n) ~= 'integer' then argerr('post', 1, 'number of permits must be an integer') end
  if n < 1 then argerr('post', 1, 'count must be >= 1') end
  local rows = ns:q('post', nil, SEM_POST, 'iii', o._id, n, ns._sid)
  if not rows[1] then
    B.row(o, 'post', 'SELECT 1 FROM ipcsh.sems WHERE id = $1')
    raise(('post: semaphore "%s": post would exceed max (%d)'):format(o.name, o._max))
  end
  return true
end

function sm.value(o)
  Sem.check(o, 'value')
  if o._undo then reclaim(o, 'value') end
  return B.row(o, 'value', 'SELECT value FROM ipcsh.sems WHERE id = $1')[1]
end

function sm.with(o, fn, timeout)
  if type(fn) ~= 'function' then argerr('with', 1, 'function expected, got ' .. type(fn)) end
  if not sm.wait(o, timeout) then return false end
  local res = table.pack(pcall(fn))
  if res[1] then sm.post(o) else pcall(sm.post, o) end
  if not res[1] then error(res[2], 0) end
  return true, table.unpack(res, 2, res.n)
end

Sem.info = function(o, ns, t)
  if o._undo then reclaim(o, 'info') end
  local r = B.row(o, 'info', 'SELECT value, max, undo FROM ipcsh.sems WHERE id = $1')
  t.value, t.max, t.undo = r[1], r[2], r[3]
  t.waiters = B.waiters(ns, B.TAG_WAIT, o._id)
end

return Sem
