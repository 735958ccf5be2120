-- Events: a start signal for a group of worker processes (manual reset:
-- one set() releases every waiter), then turns handed out one at a time
-- (auto reset: each set() releases exactly one waiter).
--
--   ./ipcsh examples/event.lua
--
-- The workers are this same script started again with `worker` arguments
-- (by the interpreter running us, arg[-1]).
local ipc = require 'interprocess'

local role, start_name, turn_name, id = ...

if role == 'worker' then
  local start = ipc.event(start_name, { assert = 'exists' })
  local turn = ipc.event(turn_name, { assert = 'exists' })
  assert(start:wait(10000), 'no start signal')
  print(('worker %s: started'):format(id))
  assert(turn:wait(10000), 'no turn')
  print(('worker %s: got a turn'):format(id))
  return
end

local N = 3
local start <close> = ipc.event({ cleanup = true })              -- manual reset
local turn <close> = ipc.event({ auto_reset = true, cleanup = true })

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local workers = {}
for i = 1, N do
  workers[i] = io.popen(table.concat({ q(arg[-1]), q(arg[0]), 'worker', start.name,
    turn.name, tostring(i) }, ' '))
end

-- Wait until every worker waits on the start event, then release them all.
local function wait_for_waiters(ev)
  local t0 = ipc.clock()
  while ev:info().waiters < N and ipc.clock() - t0 < 10000 do ipc.sleep(5) end
end
wait_for_waiters(start)
print(('parent: %d workers wait for the start signal'):format(start:info().waiters))
start:set()

-- Each of these sets is handed to exactly one waiting worker (the oldest).
wait_for_waiters(turn)
for i = 1, N do turn:set() end
print('parent: handed out ' .. N .. ' turns')

for i = 1, N do
  io.write(workers[i]:read('a'))
  assert(workers[i]:close(), 'worker ' .. i .. ' failed')
end
print(('parent: start is %s, turn is %s'):format(start:is_set() and 'set' or 'clear',
  turn:is_set() and 'set' or 'clear'))
