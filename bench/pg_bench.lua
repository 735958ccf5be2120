-- Remote objects on loopback PostgreSQL beside plain libpq in C.
--   ipcsh bench/pg_bench.lua [SECONDS]
-- Uses IPCSH_DATABASE_URL, or starts a throwaway cluster
-- (spec/support/pg.lua).  Prints lock+unlock pairs/s and queue msg/s
-- (send + receive) for ipc.connect and for bench/baselines/pg_raw.c, and
-- the overhead ratio (baseline rate / our rate).
package.path = './?.lua;' .. package.path
local ipc = require 'interprocess'
local secs = tonumber(arg and arg[1]) or 3

local url = os.getenv('IPCSH_DATABASE_URL')
local P
if not url or url == '' then
  P = require 'spec.support.pg'
  local why
  url, why = P.start()
  if not url then
    io.stderr:write('pg_bench: no database: ', tostring(why), '\n')
    os.exit(1)
  end
end

local function rate(fn)
  local n, t0 = 0, ipc.clock()
  local t
  repeat
    for _ = 1, 100 do fn() end
    n = n + 100
    t = ipc.clock() - t0
  until t >= secs * 1000
  return n / (t / 1000)
end

local net = ipc.connect(url)
local m = net.mutex('PgBenchMutex')
local ours_lock = rate(function() m:lock() m:unlock() end)
local q = net.queue('PgBenchQueue', { max_count = 1000 })
q:clear()
local msg = 'a message of some 32 bytes......'
local ours_queue = rate(function() q:send(msg) q:receive() end)
net.remove('PgBenchMutex')
net.remove('PgBenchQueue')

local bin = os.tmpname()
local ok = os.execute(('cc -O2 -o %s bench/baselines/pg_raw.c $(pkg-config --cflags --libs libpq)'):format(bin))
local raw = {}
if ok then
  local p = io.popen(('%s %q %s'):format(bin, url, secs))
  for k, v in p:read('a'):gmatch('(%S+) (%S+)') do raw[k] = tonumber(v) end
  p:close()
end
os.remove(bin)

local function line(what, ours, base)
  print(('%-28s ours %9.0f/s   libpq C %9s/s   overhead %s'):format(what, ours,
    base and ('%.0f'):format(base) or '?', base and ('%.2fx'):format(base / ours) or '?'))
end
print(('PostgreSQL on loopback, %s s per measurement'):format(secs))
line('mutex lock+unlock pairs', ours_lock, raw.lock_pairs_per_s)
line('queue send+receive msgs', ours_queue, raw.queue_msgs_per_s)
if P then P.stop() end
