-- A shared configuration table: the parent writes a config into an
-- ipc.kv, starts workers (ipc.fork when this build has it, otherwise new
-- interpreters through io.popen), and each worker reads the config and
-- reports back through the same table.
--
--   ./ipcsh examples/kv.lua
--   LUA_CPATH='./?.so;;' lua5.4 examples/kv.lua
local ipc = require 'interprocess'

local role, name, id = ...

local function work(kvname, wid)
  local cfg = ipc.kv(kvname, { assert = 'exists' })
  local c = cfg:get('config')
  -- atomic read-modify-write: no lost updates between workers
  cfg:update('log', function(log)
    log = log or {}
    log[#log + 1] = ('worker %s: level=%s, %d servers'):format(wid, c.level, #c.servers)
    return log
  end)
  return cfg:incr('done')
end

if role == 'worker' then
  print(('worker %s finished as number %d'):format(id, work(name, id)))
  return
end

local cfg <close> = ipc.kv({ cleanup = true, size = 64 * 1024 })
cfg:set('config', { level = 'debug', retries = 3, servers = { 'alpha', 'beta' } })

local N = 3
if ipc.fork then
  local kids = {}
  for i = 1, N do kids[i] = ipc.fork(work, cfg.name, tostring(i)) end
  for i = 1, N do kids[i]:wait() end
else
  -- the interpreter running this script: the lowest negative arg index
  local lo = 0
  while arg[lo - 1] do lo = lo - 1 end
  local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
  local pipes = {}
  for i = 1, N do
    pipes[i] = assert(io.popen(('%s %s worker %s %d'):format(q(arg[lo]), q(arg[0]), cfg.name, i)))
  end
  for i = 1, N do
    io.write(pipes[i]:read('a'))
    pipes[i]:close()
  end
end

print(('%d workers done'):format(cfg:get('done')))
local log = cfg:get('log')
table.sort(log)
for _, line in ipairs(log) do print(line) end
assert(#log == N and cfg:get('done') == N)
