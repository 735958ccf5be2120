-- The Lua side of consumer.py: send COUNT messages, then "stop".
--   ipcsh sender.lua jobs 5          (or: lua5.4 sender.lua jobs 5)
local ipc = require 'interprocess'
local q = ipc.queue(arg[1] or 'jobs')
for i = 1, tonumber(arg[2] or 5) do
  assert(q:send('message ' .. i, i % 3, 10000), 'queue still full after 10 s')
end
assert(q:send('stop', 0, 10000), 'queue still full after 10 s')
