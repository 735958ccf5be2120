-- Crash torture: for each object type, several forked worker processes run a
-- mixed workload while this driver kills random workers with SIGKILL at
-- random moments and restarts them; invariants are checked by the workers
-- themselves (overlapping lock holders, corrupt messages...) and by this
-- surviving process (after kills and at the end).
--
--   ./ipcsh torture/torture.lua [short|long] [TYPE...]
--
-- TYPE: mutex semaphore queue kv condition event barrier (default: all).
-- short: a few seconds per type (spec/torture_spec.lua); long: at least
-- TORTURE_KILLS (default 250) kills per type.  Exit status 0 when no
-- invariant was violated; 1 otherwise (each violation is printed).
local ipc = require 'interprocess'
-- the exact lock checker (see its header), next to this script
local Board = dofile(((arg and arg[0] or ''):match('^(.*)/[^/]*$') or '.') .. '/board.lua')

local mode = arg and arg[1] or 'short'
local long = mode == 'long'
local want = {}
for i = 2, arg and #arg or 0 do want[arg[i]] = true end

local CFG = long and {
  kills = tonumber(os.getenv('TORTURE_KILLS')) or 250,
  max_ms = tonumber(os.getenv('TORTURE_MAX_MS')) or 120000,
  gap_ms = 25,
} or {
  kills = tonumber(os.getenv('TORTURE_KILLS')) or 1e9,
  max_ms = tonumber(os.getenv('TORTURE_MAX_MS')) or 2500,
  gap_ms = 40,
}

local logpath = os.tmpname()
local function log_violation(msg)
  local f = io.open(logpath, 'a')
  if f then
    f:write(('[pid %d] %s\n'):format(ipc.pid(), msg))
    f:close()
  end
end

local function wait_until(fn, ms)
  local t = ipc.clock() + ms
  repeat
    local v = fn()
    if v then return v end
    ipc.sleep(5)
  until ipc.clock() > t
  return fn()
end

local function spin(n)
  local x = 0
  for k = 1, n do x = x + k end
  return x
end

-- Control segment: [0] stop flag, [8..] counters, [BOARD] the board of
-- torture/board.lua (per-worker identity, inside mark, victim record and
-- one spare word), [IDS ...] per-message counters (queue).
local C = { STOP = 0, OPS = 8, TIMEOUTS = 16, A = 24, B = 32, D = 40, E = 48, F = 56 }
local BOARD, NSLOTS = 128, 32
local IDS = BOARD + Board.size(NSLOTS)

local function report(bad)
  if bad then log_violation(bad) end
end

---------------------------------------------------------------------------
-- The types.  Each: nworkers, setup(ctx), worker(ctx, i) (in the child),
-- after_kill(ctx, i, nkills) and final(ctx) in the driver; stats(ctx).
---------------------------------------------------------------------------
local T = {}

T.mutex = {
  nworkers = 5,
  board = true, -- workers join the board; victims are recorded before kill
  setup = function(ctx)
    ctx.m = ipc.mutex(ctx.name, { cleanup = true })
  end,
  worker = function(ctx, i)
    local m = ipc.mutex(ctx.name)
    local ctl, b = ctx.ctl, ctx.board
    while ctl:unpack('<i8', C.STOP) == 0 do
      local shared = math.random() < 0.5
      local r = math.random(4)
      local function body()
        report(b:enter(shared and Board.SHARED or Board.EXCLUSIVE))
        spin(math.random(0, 300))
        b:leave()
        ctl:add(C.OPS, 1)
      end
      if r == 1 then
        if not (shared and m:with_shared(body, 200) or not shared and m:with(body, 200)) then
          ctl:add(C.TIMEOUTS, 1)
        end
      else
        local g = shared and m:lock_shared(r == 2 and 0 or 200) or (not shared and m:lock(r == 2 and 0 or 200))
        if g then
          if r == 3 then
            body()
            m:unlock()
          else
            local guard <close> = g -- released by the guard
            body()
          end
        else
          ctl:add(C.TIMEOUTS, 1)
        end
      end
    end
  end,
  after_kill = function(ctx, _, k)
    if k % 10 == 0 then
      local m = ctx.m
      local t0 = ipc.clock()
      local g = m:lock(15000)
      if not g then
        log_violation(('mutex: driver could not lock within 15 s after kill %d (%s)'):format(k,
          ipc.encode and '' or ''))
      else
        m:unlock()
      end
      ctx.max_lock_ms = math.max(ctx.max_lock_ms or 0, ipc.clock() - t0)
    end
  end,
  final = function(ctx)
    local m = ctx.m
    for _, shared in ipairs({ false, true, false }) do
      local g = shared and m:lock_shared(5000) or m:lock(5000)
      if not g then
        log_violation('mutex: not acquirable at the end (' .. (shared and 'shared' or 'exclusive') .. ')')
      else
        m:unlock()
      end
    end
    local info = m:info()
    if info.state ~= 'free' then log_violation('mutex: state ' .. tostring(info.state) .. ' at the end') end
  end,
  stats = function(ctx)
    return ('acquisitions %d, timeouts %d, max driver lock wait %d ms'):format(
      ctx.ctl:unpack('<i8', C.OPS), ctx.ctl:unpack('<i8', C.TIMEOUTS), math.floor(ctx.max_lock_ms or 0))
  end,
}

local SEM_VALUE = 3
T.semaphore = {
  nworkers = 6,
  board = true,
  limit = SEM_VALUE,
  setup = function(ctx)
    ctx.s = ipc.semaphore(ctx.name, { value = SEM_VALUE, max = SEM_VALUE, undo = true, cleanup = true })
  end,
  worker = function(ctx, i)
    local s = ipc.semaphore(ctx.name)
    local ctl, b = ctx.ctl, ctx.board
    local function body()
      -- more than SEM_VALUE live holders at once is a violation
      report(b:enter(Board.PERMIT))
      spin(math.random(0, 300))
      b:leave()
      ctl:add(C.OPS, 1)
    end
    while ctl:unpack('<i8', C.STOP) == 0 do
      if math.random(3) == 1 then
        if not s:with(body, 200) then ctl:add(C.TIMEOUTS, 1) end
      elseif s:wait(200) then
        body()
        s:post()
      else
        ctl:add(C.TIMEOUTS, 1)
      end
      local v = s:value()
      if v < 0 or v > SEM_VALUE then log_violation('semaphore: value ' .. v) end
    end
  end,
  final = function(ctx)
    local s = ctx.s
    local ok = wait_until(function() return s:value() == SEM_VALUE end, 5000)
    if not ok then
      log_violation(('semaphore: value %d, not %d, after every worker died'):format(s:value(), SEM_VALUE))
    end
    for _ = 1, SEM_VALUE do
      if not s:wait(0) then log_violation('semaphore: a permit is missing at the end') end
    end
    if s:wait(0) then log_violation('semaphore: more permits than the initial count') end
    s:post(SEM_VALUE)
  end,
  kill_all_at_end = true,
  stats = function(ctx)
    return ('acquisitions %d, timeouts %d'):format(ctx.ctl:unpack('<i8', C.OPS), ctx.ctl:unpack('<i8', C.TIMEOUTS))
  end,
}

-- queue: workers 1-2 produce, 3-4 receive, 5-6 receive with `with`.
-- Exact bookkeeping, in each worker's spare board word (read by the driver
-- only once the worker is reaped, when it is stable):
-- * producer i sends message (i, k), k = its word, and moves the word to
--   k + 1 only after send() returned; a killed producer's (i, k) is
--   "uncertain" (sent or not) and the driver moves the word past it.
-- * a `receive` receiver's word is 1 from before receive() to after the
--   receipt is counted: only a victim reaped with 1 may have taken one
--   message with it (receive is destructive).
-- * a `with` receiver's word is the id inside fn, set before counting: only
--   a victim reaped with an id there may cause one duplicate of that id
--   (redelivery).  A `with` victim never excuses a loss.
local Q_MAXK = long and (1 << 20) or (1 << 16) -- messages per producer
local Q_MAXID = 2 * Q_MAXK
local function q_payload(id)
  local n = (id * 7919) % 200
  return string.pack('<i8I4', id, (id * 2654435761 + n) % 4294967296) .. string.rep(string.char(id % 251), n)
end
local function q_role(i) return i <= 2 and 'producer' or i <= 4 and 'receiver' or 'with' end
local function q_id(i, k) return (k - 1) * 2 + i end
local function q_check(ctl, msg, prio, who)
  local id = #msg >= 12 and string.unpack('<i8', msg) or -1
  if id < 1 or id > Q_MAXID or msg ~= q_payload(id) or prio ~= id % 3 then
    ctl:add(C.E, 1)
    log_violation(('queue: corrupt message (id %d, %d bytes, priority %s) received by %s'):format(
      id, #msg, tostring(prio), who))
    return nil
  end
  ctl:add(IDS + 8 * id, 1) -- one add: a kill cannot split the receipt
  return id
end

T.queue = {
  nworkers = 6,
  setup = function(ctx)
    ctx.ctl_size = IDS + 8 * (Q_MAXID + 1)
    ctx.q = ipc.queue(ctx.name, { max_count = 64, max_size = 256, cleanup = true })
    ctx.uncertain, ctx.dup_ok, ctx.lost_ok = {}, {}, 0
  end,
  init = function(ctx)
    for i = 1, 2 do ctx.board:put(i, Board.AUX, 1) end
  end,
  role = q_role,
  worker = function(ctx, i)
    local q = ipc.queue(ctx.name)
    local ctl, b = ctx.ctl, ctx.board
    local role = q_role(i)
    local function put(v) b:put(i, Board.AUX, v) end
    if role == 'producer' then
      while ctl:unpack('<i8', C.STOP) == 0 do
        local k = b:get(i, Board.AUX)
        if k >= Q_MAXK then ipc.sleep(10) else
          local id = q_id(i, k)
          -- a little slower than flat out, so that a long run does not
          -- exhaust the id space before its kills are done
          if k % 16 == 0 then ipc.sleep(1) end
          local sent = false
          while not sent and ctl:unpack('<i8', C.STOP) == 0 do sent = q:send(q_payload(id), id % 3, 100) end
          if sent then put(k + 1) end -- else never sent: the word stays k
        end
      end
    else
      -- receivers run until STOP == 2 and the queue is empty
      while true do
        if role == 'receiver' then
          put(1)
          local msg, prio = q:receive(100)
          if msg then q_check(ctl, msg, prio, role) end
          put(0)
          if not msg and ctl:unpack('<i8', C.STOP) == 2 then return end
        else
          local ok = q:with(function(msg, prio)
            local id = #msg >= 12 and string.unpack('<i8', msg)
            if id and id >= 1 and id <= Q_MAXID then put(id) end
            q_check(ctl, msg, prio, role)
            spin(math.random(0, 200))
          end, 100)
          put(0)
          if not ok and ctl:unpack('<i8', C.STOP) == 2 then return end
        end
      end
    end
  end,
  -- worker i is dead (killed or exited): read its word
  reap = function(ctx, i)
    local b = ctx.board
    local w = b:get(i, Board.AUX)
    local role = q_role(i)
    if role == 'producer' then
      if w < Q_MAXK then
        ctx.uncertain[q_id(i, w)] = true
        b:put(i, Board.AUX, w + 1)
      end
    elseif role == 'receiver' then
      if w == 1 then ctx.lost_ok = ctx.lost_ok + 1 end
      b:put(i, Board.AUX, 0)
    else
      if w > 0 then ctx.dup_ok[w] = (ctx.dup_ok[w] or 0) + 1 end
      b:put(i, Board.AUX, 0)
    end
  end,
  stop = function(ctx, workers)
    local ctl = ctx.ctl
    ctl:pack(C.STOP, '<i8', 1)
    for i = 1, 2 do
      local c, how = workers[i]:wait(15000)
      if c ~= 0 then log_violation(('queue: producer %d did not stop (%s %s)'):format(i, tostring(c), tostring(how))) end
      -- a clean stop leaves the word at the first message not sent
      if c ~= 0 then T.queue.reap(ctx, i) end
    end
    ctl:pack(C.STOP, '<i8', 2)
    for i = 3, #workers do
      local c, how = workers[i]:wait(30000)
      if c ~= 0 then log_violation(('queue: receiver %d did not stop (%s %s)'):format(i, tostring(c), tostring(how))) end
    end
  end,
  final = function(ctx)
    local q, ctl = ctx.q, ctx.ctl
    -- messages left (or put back by a dead `with` receiver)
    while true do
      local msg, prio = q:receive(300)
      if not msg then break end
      q_check(ctl, msg, prio, 'driver')
    end
    local info = q:info()
    if info.count ~= 0 or info.in_flight ~= 0 then
      log_violation(('queue: count %d, in_flight %d after the final drain'):format(info.count, info.in_flight))
    end
    local raw = ctl:read(IDS, 8 * (Q_MAXID + 1))
    local lost, dup, inrange, n = 0, 0, 0, 0
    for i = 1, 2 do
      for k = 1, ctx.board:get(i, Board.AUX) - 1 do
        local id = q_id(i, k)
        local c = string.unpack('<i8', raw, 8 * id + 1)
        inrange = inrange + c
        if not ctx.uncertain[id] then n = n + 1 end
        if c == 0 and not ctx.uncertain[id] then lost = lost + 1 end
        if c > 1 + (ctx.dup_ok[id] or 0) then
          dup = dup + 1
          log_violation(('queue: message %d received %d times, %d explained by kills in with'):format(id, c,
            ctx.dup_ok[id] or 0))
        end
      end
    end
    local total = 0
    for id = 1, Q_MAXID do total = total + string.unpack('<i8', raw, 8 * id + 1) end
    if total ~= inrange then
      log_violation(('queue: %d receipts of messages that were never sent'):format(total - inrange))
    end
    local ndup_ok = 0
    for _, v in pairs(ctx.dup_ok) do ndup_ok = ndup_ok + v end
    ctx.qstats = ('messages %d sent, %d lost (allowed <= %d receive victims), %d duplicated (%d with victims), %d corrupt')
      :format(n, lost, ctx.lost_ok, dup, ndup_ok, ctl:unpack('<i8', C.E))
    ctx.messages = n
    if lost > ctx.lost_ok then
      log_violation(('queue: %d messages lost, at most %d explained by receivers killed inside receive'):format(lost,
        ctx.lost_ok))
    end
  end,
  stats = function(ctx) return ctx.qstats or '' end,
}

-- kv: values are well-formed tables; 'ctr' (incr) and 'upd' (update) count
-- completed increments recorded by the workers after each call returns.
local KV_KEYS = 40
local function kv_value(key, r)
  local s = string.rep(string.char(97 + r % 26), r % 50)
  return { k = key, n = r, s = s, sum = (r * 31 + #s) % 1000, list = { r, r + 1, tostring(r) } }
end
local function kv_wellformed(key, v)
  return type(v) == 'table' and v.k == key and type(v.n) == 'number' and type(v.s) == 'string'
    and #v.s == v.n % 50 and v.sum == (v.n * 31 + #v.s) % 1000 and type(v.list) == 'table'
    and v.list[1] == v.n and v.list[2] == v.n + 1 and v.list[3] == tostring(v.n)
    and (v.s == string.rep(string.char(97 + v.n % 26), v.n % 50))
end
local function kv_check(ctx, t, where, strict)
  local keys = t:keys()
  local seen = {}
  for _, k in ipairs(keys) do
    if seen[k] then log_violation(('kv: key %q listed twice (%s)'):format(k, where)) end
    seen[k] = true
    local v = t:get(k)
    if k == 'ctr' or k == 'upd' then
      if v ~= nil and math.type(v) ~= 'integer' then log_violation(('kv: %s = %s (%s)'):format(k, tostring(v), where)) end
    elseif not k:match('^k%d+$') then
      log_violation(('kv: unexpected key %q (%s)'):format(k, where))
    elseif v ~= nil and not kv_wellformed(k, v) then
      log_violation(('kv: malformed value under %q (%s)'):format(k, where))
    elseif strict and v == nil then
      log_violation(('kv: listed key %q has no value (%s)'):format(k, where))
    end
  end
  if strict and t:count() ~= #keys then
    log_violation(('kv: count %d ~= #keys %d (%s)'):format(t:count(), #keys, where))
  end
end

T.kv = {
  nworkers = 4,
  setup = function(ctx)
    ctx.t = ipc.kv(ctx.name, { size = 256 * 1024, cleanup = true })
  end,
  worker = function(ctx, _)
    local t = ipc.kv(ctx.name)
    local ctl = ctx.ctl
    while ctl:unpack('<i8', C.STOP) == 0 do
      local r = math.random(10)
      local key = 'k' .. math.random(KV_KEYS)
      if r <= 3 then
        t:set(key, kv_value(key, math.random(0, 1e6)))
      elseif r == 4 then
        t:delete(key)
      elseif r == 5 then
        t:incr('ctr')
        ctl:add(C.A, 1)
      elseif r == 6 then
        t:update('upd', function(old) return (old or 0) + 1 end)
        ctl:add(C.B, 1)
      elseif r == 7 then
        t:update(key, function(old)
          if old ~= nil and not kv_wellformed(key, old) then log_violation('kv: malformed value seen by update') end
          return math.random(4) == 1 and nil or kv_value(key, math.random(0, 1e6))
        end)
      else
        local v = t:get(key)
        if v ~= nil and not kv_wellformed(key, v) then
          log_violation(('kv: malformed value under %q seen by a worker'):format(key))
        end
      end
      ctl:add(C.OPS, 1)
    end
  end,
  after_kill = function(ctx, _, k)
    if k % 5 == 0 then kv_check(ctx, ctx.t, 'after kill ' .. k, false) end
  end,
  kill_all_at_end = true,
  final = function(ctx)
    local t, ctl = ctx.t, ctx.ctl
    kv_check(ctx, t, 'at the end', true)
    local kills = ctx.kills
    for _, c in ipairs({ { 'ctr', C.A }, { 'upd', C.B } }) do
      local v = t:get(c[1]) or 0
      local rec = ctl:unpack('<i8', c[2])
      if v < rec or v > rec + kills then
        log_violation(('kv: %s = %d, but %d increments returned and %d workers were killed'):format(c[1], v, rec, kills))
      end
    end
    -- still usable
    t:set('probe', { 1, 2, 3 })
    local p = t:get('probe')
    if type(p) ~= 'table' or p[3] ~= 3 then log_violation('kv: set/get broken at the end') end
    t:delete('probe')
    ctx.kvstats = ('%d keys, ctr %d (%d returned), upd %d (%d returned)'):format(t:count(), t:get('ctr') or 0,
      ctl:unpack('<i8', C.A), t:get('upd') or 0, ctl:unpack('<i8', C.B))
  end,
  stats = function(ctx)
    return ('operations %d, %s'):format(ctx.ctl:unpack('<i8', C.OPS), ctx.kvstats or '')
  end,
}

-- Fork n fresh processes running fn(i); returns handles.
local function fork_n(n, fn)
  local hs = {}
  for i = 1, n do hs[i] = ipc.fork(fn, i) end
  return hs
end
local function expect_exit(hs, ms, what)
  for i, h in ipairs(hs) do
    local c, how, sig = h:wait(ms)
    if c ~= 0 then
      if c == nil and how == nil then h:kill(9) h:wait(5000) end
      log_violation(('%s: process %d ended with %s %s %s'):format(what, i, tostring(c), tostring(how), tostring(sig)))
    end
  end
end

-- condition: workers 1-3 wait, 4-5 signal / broadcast.
T.condition = {
  nworkers = 5,
  setup = function(ctx)
    ctx.m = ipc.mutex(ctx.name .. 'm', { cleanup = true })
    ctx.c = ipc.condition(ctx.name, { cleanup = true })
  end,
  worker = function(ctx, i)
    local m, c = ipc.mutex(ctx.name .. 'm'), ipc.condition(ctx.name)
    local ctl = ctx.ctl
    while ctl:unpack('<i8', C.STOP) == 0 do
      if m:lock(1000) then
        if i <= 3 then
          if c:wait(m, math.random(1, 100)) then ctl:add(C.A, 1) else ctl:add(C.TIMEOUTS, 1) end
          if m:held() ~= 'exclusive' then log_violation('condition: mutex not re-locked after wait') end
        else
          ctl:add(C.OPS, 1)
          if math.random(2) == 1 then c:signal() else c:broadcast() end
        end
        m:unlock()
        if i > 3 then ipc.sleep(math.random(0, 2)) end
      end
    end
  end,
  after_kill = function(ctx, _, k)
    if k % 5 == 0 then
      local t0 = ipc.clock()
      if not ctx.m:lock(15000) then
        log_violation('condition: its mutex not acquirable within 15 s after kill ' .. k)
      else
        ctx.m:unlock()
      end
      ctx.max_lock_ms = math.max(ctx.max_lock_ms or 0, ipc.clock() - t0)
    end
  end,
  kill_all_at_end = true,
  final = function(ctx)
    local m, c, ctl = ctx.m, ctx.c, ctx.ctl
    for _, how in ipairs({ 'broadcast', 'signal' }) do
      local n = how == 'broadcast' and 3 or 1
      ctl:pack(C.D, '<i8', 0)
      local hs = fork_n(n, function()
        local m2, c2 = ipc.mutex(ctx.name .. 'm'), ipc.condition(ctx.name)
        assert(m2:lock(10000))
        ctl:add(C.D, 1)
        local ok = c2:wait(m2, 10000)
        m2:unlock()
        os.exit(ok and 0 or 3)
      end)
      if not wait_until(function() return ctl:unpack('<i8', C.D) == n end, 10000) then
        log_violation('condition: fresh waiters did not start')
      end
      assert(m:lock(10000)) -- every waiter has now released m inside wait
      local t0 = ipc.clock()
      if how == 'broadcast' then c:broadcast() else c:signal() end
      m:unlock()
      expect_exit(hs, 15000, 'condition ' .. how .. ' waiter')
      ctx.wake_ms = math.max(ctx.wake_ms or 0, ipc.clock() - t0)
    end
  end,
  stats = function(ctx)
    local ctl = ctx.ctl
    return ('signals/broadcasts %d, wakeups %d, timeouts %d; final wake-up %d ms'):format(ctl:unpack('<i8', C.OPS),
      ctl:unpack('<i8', C.A), ctl:unpack('<i8', C.TIMEOUTS), math.floor(ctx.wake_ms or 0))
  end,
}

-- event: a manual-reset and an auto-reset event, mixed set/clear/wait.
T.event = {
  nworkers = 5,
  setup = function(ctx)
    ctx.e1 = ipc.event(ctx.name .. 'a', { cleanup = true })
    ctx.e2 = ipc.event(ctx.name .. 'b', { auto_reset = true, cleanup = true })
  end,
  worker = function(ctx, _)
    local e1, e2 = ipc.event(ctx.name .. 'a'), ipc.event(ctx.name .. 'b')
    local ctl = ctx.ctl
    while ctl:unpack('<i8', C.STOP) == 0 do
      local r = math.random(8)
      if r == 1 then e1:set()
      elseif r == 2 then e1:clear()
      elseif r == 3 then if e1:wait(math.random(0, 30)) then ctl:add(C.A, 1) end
      elseif r <= 5 then e2:set()
      else if e2:wait(math.random(0, 30)) then ctl:add(C.B, 1) end
      end
      ctl:add(C.OPS, 1)
    end
  end,
  after_kill = function(ctx, _, k)
    if k % 5 == 0 then
      local i1, i2 = ctx.e1:info(), ctx.e2:info()
      if i1.waiters > ctx.n or i2.waiters > ctx.n then
        log_violation(('event: %d/%d waiters with %d workers'):format(i1.waiters, i2.waiters, ctx.n))
      end
    end
  end,
  kill_all_at_end = true,
  final = function(ctx)
    local e1, e2, ctl = ctx.e1, ctx.e2, ctx.ctl
    e1:set()
    if not (e1:is_set() and e1:wait(0) and e1:wait(0)) then log_violation('event: manual set/wait broken') end
    e1:clear()
    if e1:is_set() or e1:wait(0) then log_violation('event: manual clear broken') end
    -- auto-reset: drain a left-over set, then one set releases exactly one
    e2:wait(0)
    e2:set()
    if not e2:wait(0) or e2:wait(0) then log_violation('event: auto-reset set/wait broken') end
    ctl:pack(C.D, '<i8', 0)
    local hs = fork_n(3, function(i)
      local e = i == 1 and ipc.event(ctx.name .. 'a') or ipc.event(ctx.name .. 'b')
      ctl:add(C.D, 1)
      local ok = e:wait(10000)
      ctl:add(C.F, 1)
      os.exit(ok and 0 or 3)
    end)
    if not wait_until(function() return e1:info().waiters == 1 and e2:info().waiters == 2 end, 10000) then
      log_violation(('event: fresh waiters not registered (%d, %d)'):format(e1:info().waiters, e2:info().waiters))
    end
    ctl:pack(C.F, '<i8', 0)
    e1:set()
    e2:set()
    wait_until(function() return ctl:unpack('<i8', C.F) >= 2 end, 10000)
    ipc.sleep(50)
    if ctl:unpack('<i8', C.F) ~= 2 then log_violation('event: an auto-reset set released ' .. (ctl:unpack('<i8', C.F) - 1) .. ' waiters') end
    e2:set()
    expect_exit(hs, 15000, 'event waiter')
  end,
  stats = function(ctx)
    local ctl = ctx.ctl
    return ('operations %d, manual waits satisfied %d, auto-reset waits satisfied %d'):format(
      ctl:unpack('<i8', C.OPS), ctl:unpack('<i8', C.A), ctl:unpack('<i8', C.B))
  end,
}

local BAR_COUNT = 4
T.barrier = {
  nworkers = BAR_COUNT,
  setup = function(ctx)
    ctx.b = ipc.barrier(ctx.name, { count = BAR_COUNT, cleanup = true })
  end,
  worker = function(ctx, _)
    local b = ipc.barrier(ctx.name)
    local ctl = ctx.ctl
    while ctl:unpack('<i8', C.STOP) == 0 do
      local ok, last = b:wait(math.random(50, 300))
      if ok then
        ctl:add(C.OPS, 1)
        if last then ctl:add(C.A, 1) end
      else
        ctl:add(C.TIMEOUTS, 1)
      end
    end
  end,
  after_kill = function(ctx, _, k)
    if k % 5 == 0 then
      local info = ctx.b:info()
      if info.arrived >= BAR_COUNT then log_violation('barrier: ' .. info.arrived .. ' arrived in one round') end
    end
  end,
  kill_all_at_end = true,
  final = function(ctx)
    local b, ctl = ctx.b, ctx.ctl
    ctl:pack(C.D, '<i8', 0)
    for round = 1, 2 do
      local hs = fork_n(BAR_COUNT - 1, function()
        local b2 = ipc.barrier(ctx.name)
        local ok, last = b2:wait(10000)
        if last then ctl:add(C.D, 1) end
        os.exit(ok and 0 or 3)
      end)
      local ok, last = b:wait(10000)
      if not ok then log_violation('barrier: a fresh round ' .. round .. ' did not complete') end
      if last then ctl:add(C.D, 1) end
      expect_exit(hs, 15000, 'barrier party')
    end
    if ctl:unpack('<i8', C.D) ~= 2 then
      log_violation('barrier: ' .. ctl:unpack('<i8', C.D) .. ' is_last in 2 fresh rounds')
    end
  end,
  stats = function(ctx)
    local ctl = ctx.ctl
    return ('rounds completed %d (arrivals %d), timeouts %d'):format(ctl:unpack('<i8', C.A), ctl:unpack('<i8', C.OPS),
      ctl:unpack('<i8', C.TIMEOUTS))
  end,
}

---------------------------------------------------------------------------
-- The driver.
---------------------------------------------------------------------------
local ORDER = { 'mutex', 'semaphore', 'queue', 'kv', 'condition', 'event', 'barrier' }

local function count_lines(path)
  local n, lines = 0, {}
  local f = io.open(path)
  if f then
    for l in f:lines() do n = n + 1 lines[#lines + 1] = l end
    f:close()
  end
  return n, lines
end

local function run_type(tname)
  local spec = T[tname]
  local ctx = { name = 'torture' .. tname .. ipc.uid(), n = spec.nworkers, kills = 0, kills_by_role = {} }
  spec.setup(ctx)
  ctx.ctl = ipc.shm(ctx.name .. 'ctl', { size = ctx.ctl_size or IDS, cleanup = true })
  ctx.board = Board.open(ctx.ctl, BOARD, ctx.n, { limit = spec.limit })
  if spec.init then spec.init(ctx) end
  local before = count_lines(logpath)
  local t0 = ipc.clock()

  local function start(i)
    local h = ipc.fork(function()
      math.randomseed(ipc.pid() * 7 + i, math.floor(ipc.clock() * 1000))
      local ok, err = pcall(function()
        if spec.board then ctx.board:join(i) end
        spec.worker(ctx, i)
      end)
      if not ok then
        log_violation(('%s: worker %d raised: %s'):format(tname, i, tostring(err)))
        os.exit(3)
      end
      os.exit(0)
    end)
    -- a board worker can be a victim only once it has joined (its token
    -- is what the killer records)
    if spec.board and not wait_until(function() return ctx.board:joined_pid(i) == h.pid end, 10000) then
      log_violation(('%s: worker %d (pid %d) did not join the board within 10 s'):format(tname, i, h.pid))
    end
    return h
  end
  -- before a SIGKILL: record the victim on the board
  local function doom(i, h)
    if spec.board and ctx.board:joined_pid(i) == h.pid then ctx.board:record_victim(i, h.pid) end
  end

  local workers = {}
  for i = 1, ctx.n do workers[i] = start(i) end

  local exits = 0
  -- at least MIN_KILLS even on a slow machine (within 4x the time budget)
  local min_kills = long and 0 or 10
  while (ctx.kills < CFG.kills and ipc.clock() - t0 < CFG.max_ms)
    or (ctx.kills < min_kills and ipc.clock() - t0 < 4 * CFG.max_ms) do
    ipc.sleep(math.random() * 2 * CFG.gap_ms)
    local i = math.random(ctx.n)
    local h = workers[i]
    doom(i, h)
    h:kill(9)
    local c, how, sig = h:wait(10000)
    if how == 'signal' and sig == 9 then
      ctx.kills = ctx.kills + 1
      local role = spec.role and spec.role(i) or 'worker'
      ctx.kills_by_role[role] = (ctx.kills_by_role[role] or 0) + 1
    elseif c == nil and how == nil then
      log_violation(('%s: worker %d (pid %d) did not die within 10 s of SIGKILL'):format(tname, i, h.pid))
    else
      exits = exits + 1 -- ended on its own before the kill: its error is logged
    end
    if spec.reap and (c ~= nil or how ~= nil) then spec.reap(ctx, i) end
    if spec.after_kill then spec.after_kill(ctx, i, ctx.kills) end
    workers[i] = start(i)
  end

  -- stop
  if spec.stop then
    spec.stop(ctx, workers)
  elseif spec.kill_all_at_end then
    for i = 1, ctx.n do
      doom(i, workers[i])
      workers[i]:kill(9)
    end
    for i = 1, ctx.n do
      local c, how = workers[i]:wait(10000)
      if how == 'signal' then ctx.kills = ctx.kills + 1 elseif c ~= 0 then exits = exits + 1 end
    end
    ctx.ctl:pack(C.STOP, '<i8', 1)
  else
    ctx.ctl:pack(C.STOP, '<i8', 1)
    for i = 1, ctx.n do
      local c, how, sig = workers[i]:wait(15000)
      if c ~= 0 then
        if c == nil and how == nil then workers[i]:kill(9) workers[i]:wait(5000) end
        log_violation(('%s: worker %d did not stop cleanly: %s %s %s (wedged?)'):format(tname, i, tostring(c),
          tostring(how), tostring(sig)))
      end
    end
  end
  spec.final(ctx)
  local secs = (ipc.clock() - t0) / 1000
  local after, lines = count_lines(logpath)
  local nviol = after - before
  print(('%-9s %4d kills in %6.1f s, %d violations; %s'):format(tname, ctx.kills, secs, nviol, spec.stats(ctx)))
  for k = before + 1, math.min(after, before + 20) do print('  ' .. lines[k]) end
  io.stdout:flush()
  for _, k in ipairs({ 'ctl', 'm', 's', 'q', 't', 'c', 'e1', 'e2', 'b' }) do
    if ctx[k] then ctx[k]:remove() end
  end
  return nviol, ctx.kills, ctx.messages
end

local t_all = ipc.clock()
local total_viol, total_kills = 0, 0
print(('torture %s (%s), pid %d'):format(mode, _VERSION, ipc.pid()))
for _, tname in ipairs(ORDER) do
  if next(want) == nil or want[tname] then
    local v, k = run_type(tname)
    total_viol = total_viol + v
    total_kills = total_kills + k
  end
end
print(('total: %d kills, %d violations, %.1f s'):format(total_kills, total_viol, (ipc.clock() - t_all) / 1000))
os.remove(logpath)
os.exit(total_viol == 0 and 0 or 1)
