-- Remote objects on loopback PostgreSQL beside libpq clients running the
-- very same statements.
--   ipcsh bench/pg_bench.lua [SECONDS] [ROUNDS]
-- Uses IPCSH_DATABASE_URL, or starts a throwaway cluster
-- (spec/support/pg.lua).  Each round measures, one after the other:
--   mutex lock+unlock pairs/s, 1 client: ours vs pgbench -c 1 running our
--     lock and unlock statements (-M prepared: libpq, nothing else)
--   queue send+receive msgs/s, 1 and 4 clients: ours (forked processes,
--     one connection each) vs pgbench -c N running our send and receive
--     statements
-- and prints the medians over ROUNDS (default 3) beside each other with
-- the median of the per-round ratios ours / pgbench (target: >= 0.8).
-- bench/baselines/pg_raw.c (plain C, its own simpler SQL) is reported too
-- when a compiler is at hand.
package.path = './?.lua;' .. package.path
local ipc = require 'interprocess'
local secs = tonumber(arg and arg[1]) or 5
local rounds = tonumber(arg and arg[2]) or 3

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
local pgbin = io.popen('ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1'):read('l')
local pgbench = os.getenv('IPCSH_PGBENCH') or (pgbin and pgbin .. '/pgbench') or 'pgbench'

local net = ipc.connect(url)
local MSG = 'a message of some 32 bytes......'
local m = net.mutex('PgBenchMutex')
-- max_count so high that the send count bound never reaches it: both
-- sides then run the common path (the exact recount that ours runs once the
-- bound reaches max_count is not in the pgbench script).
net.remove('PgBenchQueue')
local q = net.queue('PgBenchQueue', { max_count = 2147483647 })
q:clear()
local key = require('interprocess.net_base').TAG_MUTEX + m:info().id
local qid = q:info().id
local Msql = require('interprocess.net_mutex').sql
local Qsql = require('interprocess.net_queue').sql

local function tmp() return os.tmpname() end

-- pgbench over a script; returns transactions per second.
local function run_pgbench(script, clients)
  local f = tmp()
  local h = assert(io.open(f, 'w'))
  h:write(script)
  h:close()
  local cmd = ('%s -n -M prepared -f %s -c %d -j %d -T %d %q 2>&1'):format(pgbench, f, clients, clients, secs, url)
  local p = io.popen(cmd)
  local out = p:read('a')
  p:close()
  os.remove(f)
  local tps = tonumber(out:match('tps = ([%d.]+)'))
  if not tps then error('pgbench failed: ' .. cmd .. '\n' .. out) end
  return tps
end

local LOCK_SCRIPT = ('\\set key %d\n%s;\n%s;\n'):format(key, Msql.lock:gsub('%$1', ':key'),
  Msql.unlock:gsub('%$1', ':key'))
local QUEUE_SCRIPT = ('\\set qid %d\n\\set prio 0\n\\set maxdel 5\n\\set sid 0\n%s;\n%s;\n'):format(qid,
  (Qsql.send:gsub('%$1', ':qid'):gsub('%$2', ':prio'):gsub('%$3', "'" .. MSG .. "'::bytea")),
  (Qsql.receive:gsub('%$1', ':qid'):gsub('%$2', ':maxdel'):gsub('%$3', ':sid')))

-- Ours: n forked clients, each on its own connection, for secs seconds.
local function ours(clients, op)
  local files, kids = {}, {}
  local start = ipc.clock() + 300 + 100 * clients -- all connected before
  for i = 1, clients do
    files[i] = tmp()
    kids[i] = ipc.fork(function()
      local n2 = ipc.connect(url)
      local mm, qq = n2.mutex('PgBenchMutex'), n2.queue('PgBenchQueue')
      local fn = op == 'lock' and function() mm:lock() mm:unlock() end or
        function() qq:send(MSG) qq:receive() end
      while ipc.clock() < start do ipc.sleep(1) end
      local stop, count = start + secs * 1000, 0
      while ipc.clock() < stop do
        for _ = 1, 20 do fn() end
        count = count + 20
      end
      local t = ipc.clock() - start
      local h = io.open(files[i], 'w')
      h:write(count / (t / 1000))
      h:close()
      os.exit(0)
    end)
  end
  local total = 0
  for i = 1, clients do
    kids[i]:wait()
    local h = io.open(files[i])
    total = total + tonumber(h:read('a'))
    h:close()
    os.remove(files[i])
  end
  return total
end

local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end

local cases = {
  { 'mutex lock+unlock pairs/s, 1 client', 'lock', 1, LOCK_SCRIPT },
  { 'queue send+receive msgs/s, 1 client', 'queue', 1, QUEUE_SCRIPT },
  { 'queue send+receive msgs/s, 4 clients', 'queue', 4, QUEUE_SCRIPT },
}
local res = {}
for r = 1, rounds do
  for i, c in ipairs(cases) do
    res[i] = res[i] or { ours = {}, pgb = {} }
    res[i].ours[r] = ours(c[3], c[2])
    q:clear()
    res[i].pgb[r] = run_pgbench(c[4], c[3])
    q:clear()
    io.stderr:write(('round %d: %s: ours %.0f, pgbench %.0f\n'):format(r, c[1], res[i].ours[r], res[i].pgb[r]))
  end
end

-- plain C over libpq, its own simpler SQL (bench/baselines/pg_raw.c)
local bin = os.tmpname()
local raw = {}
if os.execute(('cc -O2 -o %s bench/baselines/pg_raw.c $(pkg-config --cflags --libs libpq) 2>/dev/null'):format(bin)) then
  local p = io.popen(('%s %q %s'):format(bin, url, secs))
  for k, v in p:read('a'):gmatch('(%S+) (%S+)') do raw[k] = tonumber(v) end
  p:close()
end
os.remove(bin)

print(('PostgreSQL on loopback, %d s per measurement, medians of %d rounds'):format(secs, rounds))
-- ratio: the median of the per-round ratios (each round's two runs are
-- back to back, so a load change on a shared machine hits both)
print(('%-40s %12s %22s %8s'):format('', 'ours', 'pgbench (same SQL)', 'ratio'))
for i, c in ipairs(cases) do
  local ratios = {}
  for r = 1, rounds do ratios[r] = res[i].ours[r] / res[i].pgb[r] end
  print(('%-40s %12.0f %22.0f %8.2f'):format(c[1], median(res[i].ours), median(res[i].pgb), median(ratios)))
end
if raw.lock_pairs_per_s then
  print(('%-40s %12s %22.0f'):format('pg_raw.c lock+unlock pairs/s (own SQL)', '', raw.lock_pairs_per_s))
  print(('%-40s %12s %22.0f'):format('pg_raw.c queue msgs/s (own SQL)', '', raw.queue_msgs_per_s))
end
net.remove('PgBenchMutex')
net.remove('PgBenchQueue')
if P then P.stop() end
