-- Parent and forked children share a counter in an ipc.shm, then the parent
-- waits for each child and checks the total.
--
--   ipcsh examples/fork.lua [CHILDREN] [INCREMENTS]
local ipc = require 'interprocess'

local nchildren = tonumber(arg[1]) or 4
local increments = tonumber(arg[2]) or 100000

-- cleanup = true: removed when the parent exits; the children never remove
-- it, whatever way they end.
local counter <close> = ipc.shm({ size = 8, cleanup = true })

local kids = {}
for i = 1, nchildren do
  kids[i] = ipc.fork(function(n)
    for _ = 1, n do counter:add(0, 1) end
    print(('child %d (pid %d) done'):format(i, ipc.pid()))
    -- returning means exit status 0; an error would give 1
  end, increments)
end

for i, h in ipairs(kids) do
  local code, how, sig = h:wait()
  if code ~= 0 then
    error(('child %d (%s): %s'):format(i, tostring(h), how and (how .. ' ' .. sig) or code))
  end
end

local total = counter:unpack('<i8', 0)
print(('total %d, expected %d'):format(total, nchildren * increments))
assert(total == nchildren * increments)
