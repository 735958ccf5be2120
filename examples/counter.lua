-- Two forked processes increment and decrement a shared integer under a
-- mutex; it ends at zero.  (process_shared's first example.)
--
--   ipcsh examples/counter.lua
local ipc = require 'interprocess'

local m <close> = ipc.mutex({ cleanup = true })
local mem <close> = ipc.shm({ size = 8, cleanup = true })

local function worker(delta)
  for _ = 1, 10000 do
    m:with(function()
      -- a read-modify-write that would lose updates without the lock
      local v = mem:unpack('<i8', 0)
      mem:pack(0, '<i8', v + delta)
    end)
  end
end

local up, down = ipc.fork(worker, 1), ipc.fork(worker, -1)
assert(up:wait() == 0 and down:wait() == 0)
local v = mem:unpack('<i8', 0)
print('value after 10000 increments and 10000 decrements: ' .. v)
assert(v == 0)
