-- A barrier: a pool of worker processes computing in rounds.  In every
-- round each worker adds its share to a shared sum, then all meet at the
-- barrier; exactly one party per round learns it was the last to arrive
-- and reports the round.  A manual-reset event is the start signal.
--
--   ./ipcsh examples/barrier.lua
local ipc = require 'interprocess'

local WORKERS, ROUNDS = 4, 5
local role, bname, ename, sname, id = ...

if role == 'worker' then
  id = tonumber(id)
  local b = ipc.barrier(bname, { assert = 'exists' })
  local go = ipc.event(ename, { assert = 'exists' })
  local sums = ipc.shm(sname, { assert = 'exists' })
  assert(go:wait(10000), 'no start signal')
  for r = 1, ROUNDS do
    sums:add(8 * r, id * r) -- this round's work
    local ok, last = b:wait(10000)
    assert(ok, 'the barrier timed out')
    if last then
      print(('round %d: complete, sum %d (worker %d arrived last)'):format(r,
        sums:unpack('<i8', 8 * r), id))
    end
  end
  return
end

-- The parent is one more party: it sees every round end too.
local b <close> = ipc.barrier({ count = WORKERS + 1, cleanup = true })
local go <close> = ipc.event({ cleanup = true })
local sums <close> = ipc.shm({ size = 8 * (ROUNDS + 1), cleanup = true })

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local workers = {}
for i = 1, WORKERS do
  workers[i] = io.popen(table.concat({ q(arg[-1]), q(arg[0]), 'worker', b.name, go.name,
    sums.name, tostring(i) }, ' '))
end

go:set()
local lines = {}
local expected = 0
for i = 1, WORKERS do expected = expected + i end
for r = 1, ROUNDS do
  local ok, last = b:wait(10000)
  assert(ok, 'the barrier timed out')
  -- everyone has added their share before anyone passes the barrier
  assert(sums:unpack('<i8', 8 * r) == expected * r)
  if last then
    lines[#lines + 1] = ('round %d: complete, sum %d (the parent arrived last)'):format(r,
      sums:unpack('<i8', 8 * r))
  end
end

for i = 1, WORKERS do
  for line in workers[i]:lines() do lines[#lines + 1] = line end
  assert(workers[i]:close(), 'worker ' .. i .. ' failed')
end
-- one report per round, whoever wrote it
table.sort(lines, function(a, b) return tonumber(a:match('%d+')) < tonumber(b:match('%d+')) end)
print(table.concat(lines, '\n'))
local info = b:info()
print(('%d rounds of %d parties; barrier now: round %d, %d arrived'):format(ROUNDS,
  info.count, info.round, info.arrived))
