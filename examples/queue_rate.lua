-- Queue throughput between two processes: this one sends N messages of
-- SIZE bytes, a child interpreter receives them.
--
--   ipcsh examples/queue_rate.lua [N [MAX_COUNT [SIZE]]]
local ipc = require 'interprocess'

local n = tonumber(arg[1]) or 1000000
if arg[4] == 'consumer' then
  local q = ipc.queue(arg[5])
  local receive = q.receive
  for _ = 1, n do receive(q) end
  return
end
local max_count, size = tonumber(arg[2]) or 100, tonumber(arg[3]) or 16

local q <close> = ipc.queue({ max_count = max_count, max_size = size, cleanup = true })
-- the same interpreter (ipcsh, or lua5.4 with LUA_CPATH set) runs the consumer
local consumer = assert(io.popen(('%q %q %d %d %d consumer %s'):format(arg[-1], arg[0], n,
  max_count, size, q.name)))
local msg, send = string.rep('x', size), q.send
local t0 = ipc.clock()
for _ = 1, n do send(q, msg) end
assert(consumer:close())
local ms = ipc.clock() - t0
print(('%d messages of %d bytes through a queue of %d: %.0f ms, %.0f msg/s'):format(n, size,
  max_count, ms, n / ms * 1000))
