-- A throwaway PostgreSQL cluster for the remote-object specs: initdb into a
-- temp dir, a free loopback port, fsync=off, the unix socket in the temp
-- dir, run as a non-root user (ipcshtest, created when missing).  start()
-- returns the URL, or nil and the reason (the specs then go pending);
-- stop() stops it by its postmaster pid (pg_ctl stop -m immediate) and
-- removes the directory.
local P = {}

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function sh(cmd)
  local ok = os.execute(cmd .. ' >/dev/null 2>&1')
  return ok == true or ok == 0
end

local function capture(cmd)
  local p = io.popen(cmd .. ' 2>&1')
  local out = p:read('a')
  local ok = p:close()
  return ok, out
end

local function find_bin()
  local p = io.popen('ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1')
  local dir = p:read('l')
  p:close()
  if dir and sh('test -x ' .. q(dir .. '/initdb')) then return dir end
  return nil
end

-- Start a cluster; opts (all optional): netns (run the server inside that
-- network namespace), listen (listen_addresses, default 127.0.0.1), hba
-- (extra pg_hba.conf lines), conf (extra postgresql.conf text), files
-- (name -> content, written into the data directory, mode 0600).
-- Returns a cluster table {url, port, user, dir, ...} or nil, why.
function P.cluster(opts)
  opts = opts or {}
  local st = {}
  local bin = os.getenv('IPCSH_PG_BIN') or find_bin()
  if not bin then
    return nil, 'PostgreSQL server binaries (initdb) not found: apt-get install postgresql'
  end
  local root = select(2, capture('id -u')):match('^0%s') ~= nil
  local user = os.getenv('IPCSH_PG_USER') or 'ipcshtest'
  -- The sanitizer run preloads ASan into everything it starts: not into
  -- the server.
  local as = 'env -u LD_PRELOAD -u ASAN_OPTIONS -u LSAN_OPTIONS -u UBSAN_OPTIONS '
  if opts.netns then as = 'ip netns exec ' .. q(opts.netns) .. ' ' .. as end
  if root then
    if not sh('id -u ' .. user) and not sh('useradd -r -M -s /bin/false ' .. user) then
      return nil, 'cannot create the non-root user ' .. user .. ' for the test cluster'
    end
    as = as .. 'runuser -u ' .. user .. ' -- '
  else
    user = select(2, capture('id -un')):match('^(%S+)')
  end
  local _, dir = capture('env -u LD_PRELOAD mktemp -d /tmp/ipcsh-pg.XXXXXX')
  dir = dir:match('^(%S+)')
  st.dir = dir
  if root then sh('chown ' .. user .. ' ' .. q(dir)) end
  local ok, out = capture(as .. 'timeout 120 ' .. q(bin .. '/initdb') .. ' -D ' .. q(dir .. '/data') .. ' -U ' .. user ..
    ' --auth=trust -E UTF8 --no-sync --no-instructions')
  if not ok then
    sh('rm -rf ' .. q(dir))
    return nil, 'initdb failed: ' .. out
  end
  local function append(name, text, mode)
    local f = assert(io.open(dir .. '/data/' .. name, 'a'))
    f:write(text, '\n')
    f:close()
    if mode then sh('chmod ' .. mode .. ' ' .. q(dir .. '/data/' .. name)) end
    if root then sh('chown ' .. user .. ' ' .. q(dir .. '/data/' .. name)) end
  end
  if opts.hba then append('pg_hba.conf', opts.hba) end
  if opts.conf then append('postgresql.conf', opts.conf) end
  for name, content in pairs(opts.files or {}) do append(name, content, '0600') end
  for _ = 1, 5 do
    local port = 20000 + math.random(0, 30000)
    local o = ('-p %d -k %s -c listen_addresses=%s -c fsync=off -c synchronous_commit=off' ..
      ' -c full_page_writes=off -c max_connections=100'):format(port, dir, opts.listen or '127.0.0.1')
    ok, out = capture(as .. q(bin .. '/pg_ctl') .. ' -D ' .. q(dir .. '/data') .. ' -o ' .. q(o) ..
      ' -l ' .. q(dir .. '/log') .. ' -w -t 30 start')
    if ok then
      st.url = ('postgresql://%s@127.0.0.1:%d/postgres'):format(user, port)
      st.port, st.bin, st.as, st.user, st.opts = port, bin, as, user, o
      return st
    end
  end
  sh('rm -rf ' .. q(dir))
  return nil, 'could not start the test cluster: ' .. out
end

-- Stop a cluster (by pg_ctl: its postmaster pid file) and remove its files.
function P.stop_cluster(st)
  if not st then return end
  if st.url then
    sh(st.as .. q(st.bin .. '/pg_ctl') .. ' -D ' .. q(st.dir .. '/data') .. ' -m immediate -w stop')
  end
  if st.dir then sh('rm -rf ' .. q(st.dir)) end
end

-- Restart a cluster (same port and options): every session ends.
function P.restart_cluster(st)
  return sh(st.as .. q(st.bin .. '/pg_ctl') .. ' -D ' .. q(st.dir .. '/data') .. ' -o ' .. q(st.opts) ..
    ' -l ' .. q(st.dir .. '/log') .. ' -m immediate -w -t 30 restart')
end

local state

function P.start()
  if state then return state.url, state.why end
  local st, why = P.cluster()
  state = st or { why = why }
  return state.url, state.why
end

function P.stop()
  if not state then return end
  P.stop_cluster(state)
  state = nil
end

return P
