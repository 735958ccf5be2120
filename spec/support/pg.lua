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

local state

function P.start()
  if state then return state.url, state.why end
  state = {}
  local bin = os.getenv('IPCSH_PG_BIN') or find_bin()
  if not bin then
    state.why = 'PostgreSQL server binaries (initdb) not found: apt-get install postgresql'
    return nil, state.why
  end
  local root = select(2, capture('id -u')):match('^0%s') ~= nil
  local user = os.getenv('IPCSH_PG_USER') or 'ipcshtest'
  -- The sanitizer run preloads ASan into everything it starts: not into
  -- the server.
  local as = 'env -u LD_PRELOAD -u ASAN_OPTIONS -u LSAN_OPTIONS -u UBSAN_OPTIONS '
  if root then
    if not sh('id -u ' .. user) and not sh('useradd -r -M -s /bin/false ' .. user) then
      state.why = 'cannot create the non-root user ' .. user .. ' for the test cluster'
      return nil, state.why
    end
    as = as .. 'runuser -u ' .. user .. ' -- '
  else
    user = select(2, capture('id -un')):match('^(%S+)')
  end
  local _, dir = capture('env -u LD_PRELOAD mktemp -d /tmp/ipcsh-pg.XXXXXX')
  dir = dir:match('^(%S+)')
  state.dir = dir
  if root then sh('chown ' .. user .. ' ' .. q(dir)) end
  local ok, out = capture(as .. 'timeout 120 ' .. q(bin .. '/initdb') .. ' -D ' .. q(dir .. '/data') .. ' -U ' .. user ..
    ' --auth=trust -E UTF8 --no-sync --no-instructions')
  if not ok then
    state.why = 'initdb failed: ' .. out
    return nil, state.why
  end
  for _ = 1, 5 do
    local port = 20000 + math.random(0, 30000)
    local opts = ('-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off' ..
      ' -c full_page_writes=off -c max_connections=100'):format(port, dir)
    ok, out = capture(as .. q(bin .. '/pg_ctl') .. ' -D ' .. q(dir .. '/data') .. ' -o ' .. q(opts) ..
      ' -l ' .. q(dir .. '/log') .. ' -w -t 30 start')
    if ok then
      state.url = ('postgresql://%s@127.0.0.1:%d/postgres'):format(user, port)
      state.port, state.bin, state.as = port, bin, as
      return state.url
    end
  end
  state.why = 'could not start the test cluster: ' .. out
  return nil, state.why
end

function P.stop()
  if not state then return end
  if state.url then
    sh(state.as .. q(state.bin .. '/pg_ctl') .. ' -D ' .. q(state.dir .. '/data') .. ' -m immediate -w stop')
  end
  if state.dir then sh('rm -rf ' .. q(state.dir)) end
  state = nil
end

return P
