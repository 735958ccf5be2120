-- A condition variable hand-off: a consumer waits for a value that a
-- producer fills in, and tells it when it is taken.
-- (process_shared's condition-variable example.)
--
--   ipcsh examples/condition.lua
local ipc = require 'interprocess'

local m <close> = ipc.mutex({ cleanup = true })
local changed <close> = ipc.condition({ cleanup = true })
local box <close> = ipc.shm({ size = 16, cleanup = true })  -- [0] full flag, [8] value

local consumer = ipc.fork(function()
  local got = 0
  for _ = 1, 5 do
    local g <close> = m:lock()
    while box:unpack('<i8', 0) == 0 do changed:wait(m) end  -- releases m while waiting
    got = got + box:unpack('<i8', 8)
    box:pack(0, '<i8', 0)                                    -- empty again
    changed:broadcast()
  end
  print('consumer received a total of ' .. got)
  os.exit(got == 15 and 0 or 1)
end)

for v = 1, 5 do
  local g <close> = m:lock()
  while box:unpack('<i8', 0) == 1 do changed:wait(m) end
  box:pack(0, '<i8i8', 1, v)
  changed:broadcast()
  print('producer put ' .. v)
end
assert(consumer:wait() == 0)
