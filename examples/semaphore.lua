-- Semaphores: a countdown, then a pool of 3 permits shared by 8 workers.
-- With undo = true, a worker killed while holding a permit gives it back.
--
--   ipcsh examples/semaphore.lua
local ipc = require 'interprocess'

-- A countdown (the R package's semaphore scenario).
local s <close> = ipc.semaphore({ value = 3, cleanup = true })
while s:wait(0) do print('took one, ' .. s:value() .. ' left') end

-- A resource pool of 3 permits: never more than 3 workers inside.
local pool <close> = ipc.semaphore({ value = 3, undo = true, cleanup = true })
local inside <close> = ipc.shm({ size = 16, cleanup = true })   -- [0] now, [8] peak

local workers = {}
for w = 1, 8 do
  workers[w] = ipc.fork(function()
    pool:with(function()
      local now = inside:add(0, 1)
      local peak = inside:unpack('<i8', 8)
      while now > peak and not inside:cas(8, peak, now) do peak = inside:unpack('<i8', 8) end
      ipc.sleep(20)                      -- use the resource
      inside:add(0, -1)
    end)
  end)
end

-- A worker that dies holding a permit does not leak it (undo).
local doomed = ipc.fork(function() pool:wait() ipc.sleep(60000) end)
ipc.sleep(50)
doomed:kill('KILL')
print('killed a worker holding a permit (signal ' .. select(3, doomed:wait()) .. ')')

for _, h in ipairs(workers) do assert(h:wait() == 0) end
local peak = inside:unpack('<i8', 8)
print(('8 workers done; at most %d inside at once; permits back: %d'):format(peak, pool:value()))
assert(peak <= 3 and pool:value() == 3)
