-- Passing a Lua table through shared memory (process_shared's example),
-- and raw bytes with string.pack formats.
--
--   ipcsh examples/shm_table.lua
local ipc = require 'interprocess'

local mem <close> = ipc.shm({ size = 4096, cleanup = true })

local child = ipc.fork(function()
  mem:store({ from = ipc.pid(), list = { 1, 2, 3 }, nested = { ok = true, pi = 3.25 } })
  mem:pack(2048, '<i4 z', 42, 'raw bytes too')
end)
assert(child:wait() == 0)

local t = mem:load()
print(('from pid %d: list of %d, nested.ok = %s, pi = %g'):format(
  t.from, #t.list, tostring(t.nested.ok), t.nested.pi))
print(mem:unpack('<i4 z', 2048))
assert(t.list[3] == 3 and t.nested.pi == 3.25)
