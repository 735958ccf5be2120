-- A file guarded by a mutex: writers take it exclusively, readers share it.
-- (The R package interprocess's first README scenario.)
--
--   ipcsh examples/mutex_file.lua
local ipc = require 'interprocess'

local path = os.tmpname()
local m <close> = ipc.mutex({ file = path, cleanup = true }) -- name derived from the path

local function append(line)
  local g <close> = m:lock()          -- exclusive; released when g goes out of scope
  local f = assert(io.open(path, 'a'))
  f:write(line, '\n')
  f:close()
end

local function count_lines()
  local g <close> = m:lock_shared()   -- many readers at once, never with a writer
  local n = 0
  for _ in io.lines(path) do n = n + 1 end
  return n
end

local writers = {}
for w = 1, 3 do
  writers[w] = ipc.fork(function()
    for i = 1, 100 do append(('writer %d line %d'):format(w, i)) end
  end)
end
local readers = {}
for r = 1, 2 do
  readers[r] = ipc.fork(function()
    for _ = 1, 20 do
      local n = count_lines()
      assert(n >= 0 and n <= 300)
    end
  end)
end
for _, h in ipairs(writers) do assert(h:wait() == 0) end
for _, h in ipairs(readers) do assert(h:wait() == 0) end

local n = count_lines()
print(('%d lines written by 3 processes, none lost or torn'):format(n))
assert(n == 300)
os.remove(path)
