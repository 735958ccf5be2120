-- The Lua side of producer.c: drain the queue until "stop".
--   ipcsh consumer.lua jobs          (or: lua5.4 consumer.lua jobs)
local ipc = require 'interprocess'
local q = ipc.queue(arg[1] or 'jobs')
local n = 0
while true do
  local msg = q:receive(10000)
  if msg == nil then error('consumer: no message for 10 s') end
  if msg == 'stop' then break end
  n = n + 1
  print(msg)
end
print(('consumer: %d jobs'):format(n))
