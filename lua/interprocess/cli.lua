-- The ipcsh command line: `ipcsh ls|info|rm|lock|send|recv|post|wait ...`.
--
--   require("interprocess.cli").main(args [, native]) -> exit code
--
-- args is the command line after the program name ({ "ls", "--json" }).
-- native is the runner's table of C helpers ({ run = function(argv) ->
-- status, lock_run = function(acquire, release, argv) }); without it (stock
-- lua5.4) a locked command runs with os.execute, without the lock keeper.
-- Exit codes: 0 success, 1 timed out or lock conflict (lock: -E CODE, or the
-- command's own status), 2 usage or bad input, with a message on stderr.
local ipc = require 'interprocess'
local ipc_local = ipc -- `--db URL` (or IPCSH_DATABASE_URL) swaps ipc for ipc.connect(URL)
local json = require 'interprocess.json'

local cli = {}

local EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

local U = require 'interprocess.cliutil'
local usage_mt, usage_error, say, clean = U.usage_mt, U.usage_error, U.say, U.clean
local parse, number_of, timeout_of, integer_of = U.parse, U.number_of, U.timeout_of, U.integer_of
local expect_count, format_value, sorted_keys = U.expect_count, U.format_value, U.sorted_keys
local print_table, local_time, glob_pattern, is_glob = U.print_table, U.local_time, U.glob_pattern,
  U.is_glob
local age_of, count_of = U.age_of, U.count_of

local function check_name(cmd, name)
  if name == nil then usage_error('%s: missing object name', cmd) end
  if not ipc.valid_name(name) then
    usage_error('%s: invalid name %q (a letter followed by letters, digits, _ - or ., '
      .. 'at most 250 characters)', cmd, name)
  end
  return name
end

-- Call an object's method: misuse and bad input become usage errors (exit
-- 2); an interruption (SIGINT during a wait) passes through.
local function checked(cmd, fn, ...)
  local r = table.pack(pcall(fn, ...))
  if not r[1] then
    local msg = tostring(r[2])
    if msg:find('interrupted', 1, true) then error(r[2], 0) end
    usage_error('%s: %s', cmd, clean(msg))
  end
  return table.unpack(r, 2, r.n)
end

local function article(word)
  return (word:match('^[aeiou]') and 'an ' or 'a ') .. word
end

-- Open an existing object of type tname, never creating one, unless
-- create_opts (a table) is given: then open or create it with them.
local function open_typed(cmd, tname, name, create_opts)
  local ctor = ipc[tname]
  if type(ctor) ~= 'function' then
    usage_error('%s: %s objects are not supported by this build', cmd, tname)
  end
  if create_opts then return checked(cmd, ctor, name, create_opts) end
  if type(ipc.open) ~= 'function' then -- a backend without ipc.open
    return checked(cmd, ctor, name, { assert = 'exists' })
  end
  local ok, obj = pcall(ipc.open, name)
  if not ok then
    local msg = tostring(obj)
    if msg:find('no object named', 1, true) or msg:find('does not exist', 1, true) then
      usage_error("%s: no such %s '%s'", cmd, tname, name)
    end
    usage_error('%s: %s', cmd, clean(msg))
  end
  local t = ipc.type(obj)
  if t ~= tname then
    obj:close()
    usage_error('%s: "%s" is %s, not %s', cmd, name, article(tostring(t)), article(tname))
  end
  return obj
end

-- --create and the creation options of a type (`--max-size 4096` ->
-- { max_size = 4096 }); creation options without --create are an error.
local function create_opts_of(cmd, opts, names)
  local t, given = {}, nil
  for _, o in ipairs(names) do
    local v = opts[o]
    if v ~= nil then
      given = given or o
      local key = o:gsub('-', '_')
      if o == 'max' or o == 'value' then
        t[key] = integer_of(cmd, o, v, 0, math.maxinteger)
      else
        t[key] = integer_of(cmd, o, v, 1, math.maxinteger)
      end
    end
  end
  if not opts.create then
    if given then usage_error('%s: --%s only applies with --create', cmd, given) end
    return nil
  end
  return t
end

local commands = {}

-- ---- ls, info, rm -----------------------------------------------------------

local db_url -- the --db URL in use, if any

-- The directory `ls` shows (for --db: the database URL, without a password).
local function namespace_dir()
  if db_url then return (db_url:gsub('^(%a[%w+.-]*://[^:/@]*):[^@/]*@', '%1@')) end
  for _, f in ipairs({ ipc.namespace, ipc.dir }) do
    if type(f) == 'function' then
      local ok, d = pcall(f)
      if ok and type(d) == 'string' then return d end
    end
  end
  return os.getenv('IPCSH_DIR') or '/dev/shm'
end

local function list_objects(cmd)
  local ok, list = pcall(ipc.list)
  if not ok then usage_error('%s: %s', cmd, clean(list)) end
  table.sort(list, function(a, b) return tostring(a.name) < tostring(b.name) end)
  return list
end

-- STATE: one word or two for what the object is doing now.
local function state_of(info)
  local t = info.type
  if t == 'invalid' then return 'invalid' end
  if t == 'queue' and info.count and info.max_count and info.state == nil then
    return ('%s/%s'):format(format_value(info.count), format_value(info.max_count))
  end
  if t == 'semaphore' and info.value and info.state == nil then
    return 'value=' .. format_value(info.value)
  end
  if t == 'barrier' and info.arrived and info.count and info.state == nil then
    return ('%s/%s'):format(format_value(info.arrived), format_value(info.count))
  end
  if t == 'kv' and info.count and info.state == nil then
    return format_value(info.count) .. ' keys'
  end
  if info.state ~= nil then return format_value(info.state) end
  return '-'
end

function commands.ls(args)
  local opts, pos = parse('ls', args, { options = { { nil, 'json' } } })
  expect_count('ls', pos, 0, 1)
  local pattern = pos[1] and glob_pattern(pos[1])
  local dir = namespace_dir()
  local list = {}
  for _, info in ipairs(list_objects('ls')) do
    if not pattern or tostring(info.name):match(pattern) then list[#list + 1] = info end
  end
  if opts.json then
    io.stdout:write(json.encode({ directory = dir, objects = list }, '  '), '\n')
    return EXIT_OK
  end
  local rows, now = {}, os.time()
  for _, info in ipairs(list) do
    local holders = type(info.holders) == 'table' and #info.holders > 0
      and format_value(info.holders) or '-'
    local waiters = info.waiters
    if waiters == nil and info.waiter_pids then waiters = info.waiter_pids end
    rows[#rows + 1] = {
      tostring(info.name), tostring(info.type), state_of(info), holders,
      count_of(waiters), info.bytes and format_value(info.bytes) or '-',
      age_of(info.created, now),
    }
  end
  io.stdout:write('# ', dir, '\n')
  print_table(rows, { 'NAME', 'TYPE', 'STATE', 'HOLDERS', 'WAITERS', 'SIZE', 'AGE' })
  return EXIT_OK
end

function commands.info(args)
  local opts, pos = parse('info', args, { options = { { nil, 'json' } } })
  expect_count('info', pos, 1, 1)
  local name = check_name('info', pos[1])
  local ok, obj = pcall(ipc.open, name)
  if not ok then
    local msg = tostring(obj)
    if msg:find('no object named', 1, true) then usage_error("info: no such object '%s'", name) end
    usage_error('info: %s', clean(msg))
  end
  local info = checked('info', obj.info, obj)
  obj:close()
  if opts.json then
    io.stdout:write(json.encode(info, '  '), '\n')
    return EXIT_OK
  end
  for _, k in ipairs(sorted_keys(info)) do
    local v = format_value(info[k])
    if k == 'created' then v = v .. ' (' .. local_time(info[k]) .. ')' end
    io.stdout:write(tostring(k), ': ', v, '\n')
  end
  return EXIT_OK
end

-- rm [-f] NAME|PATTERN...: a missing name (or a pattern matching nothing)
-- is bad input (exit 2) unless -f; every other argument is still removed.
function commands.rm(args)
  local opts, pos = parse('rm', args, { options = { { 'f', 'force' } } })
  expect_count('rm', pos, 1, math.huge)
  for _, name in ipairs(pos) do
    if not is_glob(name) then check_name('rm', name) end
  end
  local status = EXIT_OK
  local listed
  for _, arg in ipairs(pos) do
    local names = { arg }
    if is_glob(arg) then
      listed = listed or list_objects('rm')
      names = {}
      local pattern = glob_pattern(arg)
      for _, info in ipairs(listed) do
        if tostring(info.name):match(pattern) then names[#names + 1] = tostring(info.name) end
      end
      if #names == 0 and not opts.force then
        say(io.stderr, "rm: no object matches '%s'", arg)
        status = EXIT_USAGE
      end
    end
    for _, name in ipairs(names) do
      local ok, removed = pcall(ipc.remove, name)
      if not ok then
        say(io.stderr, 'rm: %s: %s', name, clean(removed))
        status = EXIT_USAGE
      elseif not removed and not opts.force and not is_glob(arg) then
        say(io.stderr, "rm: no such object '%s'", name)
        status = EXIT_USAGE
      end
    end
  end
  return status
end

-- ---- lock --------------------------------------------------------------------

-- Run argv without a keeper (stock lua5.4, or --db): returns its status.
local function run_plain(native, argv)
  if native and native.run then
    local st, err = native.run(argv)
    if not st then
      say(io.stderr, 'lock: %s', err)
      return 127
    end
    return st
  end
  local quoted = {}
  for i, a in ipairs(argv) do quoted[i] = "'" .. a:gsub("'", "'\\''") .. "'" end
  io.stdout:flush()
  local _, how, code = os.execute(table.concat(quoted, ' '))
  if how == 'signal' then return 128 + code end
  return code or 1
end

local lock_options = {
  { 'n', 'nonblock' }, { 'w', 'wait', value = true }, { nil, 'timeout', value = true },
  { 's', 'shared' }, { 'x', 'exclusive' }, { 'E', 'conflict-exit-code', value = true },
  { 'c', 'command', value = true }, { 'o', 'close' },
}

-- ipcsh lock [-s|-x] [-o] [-n|-w SECS|--timeout MS] [-E CODE] NAME|PATH
--            (-c STRING | [--] CMD [ARGS...])
function commands.lock(args, native)
  local opts, pos, command = parse('lock', args,
    { options = lock_options, stop_at_command = true })
  expect_count('lock', pos, 1, 1)
  if opts.shared and opts.exclusive then
    usage_error('lock: -s (--shared) and -x (--exclusive) conflict')
  end
  local waits = 0
  for _, k in ipairs({ 'nonblock', 'wait', 'timeout' }) do
    if opts[k] then waits = waits + 1 end
  end
  if waits > 1 then usage_error('lock: give only one of -n, -w SECONDS and --timeout MS') end
  local timeout = timeout_of('lock', opts)
  if opts.nonblock then timeout = 0 end
  if opts.wait then timeout = number_of('lock', 'wait', opts.wait, 'seconds >= 0') * 1000 end
  local conflict = opts['conflict-exit-code']
    and integer_of('lock', 'conflict exit code', opts['conflict-exit-code'], 0, 255) or EXIT_TIMEOUT
  if opts.command then
    if command and #command > 0 then
      usage_error("lock: -c STRING and a command (%s) conflict; give one", command[1])
    end
    command = { '/bin/sh', '-c', opts.command }
  end
  if not command or #command == 0 then usage_error('lock: missing command to run') end
  local target = pos[1]
  local m
  if target:find('/', 1, true) then -- a path, as with flock(1): named by its hash
    if type(ipc.mutex) ~= 'function' then usage_error('lock: mutexes are not supported') end
    m = checked('lock', ipc.mutex, { file = target })
  else
    m = checked('lock', ipc.mutex, check_name('lock', target))
  end
  local function acquire()
    if opts.shared then return m:lock_shared(timeout) ~= false end
    return m:lock(timeout) ~= false
  end
  if not (native and native.lock_run) or ipc ~= ipc_local then
    if not checked('lock', acquire) then m:close() return conflict end
    local st = run_plain(native, command)
    m:unlock()
    m:close()
    return st
  end
  local how, st, note = native.lock_run(acquire, function() m:unlock() end, command,
    opts.close)
  m:close()
  if how == 'conflict' then return conflict end
  if how == nil then
    if tostring(st):find('interrupted', 1, true) then return EXIT_INTERRUPTED end
    usage_error('lock: %s', clean(st))
  end
  if note then say(io.stderr, 'lock: %s', note) end
  return st
end

-- ---- send, recv, post, wait ------------------------------------------------

local create_flag = { nil, 'create' }

-- `send Q -`: stdin, read in pieces and never more than max_size + 1 bytes.
local function read_stdin(max)
  local parts, total = {}, 0
  while true do
    local chunk = io.stdin:read(math.min(65536, max + 1 - total))
    if chunk == nil then break end
    parts[#parts + 1] = chunk
    total = total + #chunk
    if total > max then
      usage_error('send: the message on stdin is longer than this queue\'s max_size '
        .. '(%d bytes); nothing sent', max)
    end
  end
  return table.concat(parts)
end

function commands.send(args)
  local opts, pos = parse('send', args, { options = {
    { nil, 'priority', value = true }, { nil, 'timeout', value = true }, create_flag,
    { nil, 'max-count', value = true }, { nil, 'max-size', value = true },
  } })
  expect_count('send', pos, 2, 2)
  local name = check_name('send', pos[1])
  local timeout = timeout_of('send', opts)
  local priority = opts.priority
    and integer_of('send', 'priority', opts.priority, 0, 2147483647) or 0
  local create = create_opts_of('send', opts, { 'max-count', 'max-size' })
  local q = open_typed('send', 'queue', name, create)
  local msg = pos[2]
  if msg == '-' then msg = read_stdin(checked('send', q.max_size, q)) end
  local sent = checked('send', q.send, q, msg, priority, timeout)
  q:close()
  return sent and EXIT_OK or EXIT_TIMEOUT
end

function commands.recv(args)
  local opts, pos = parse('recv', args, { options = {
    { nil, 'timeout', value = true }, create_flag,
    { nil, 'max-count', value = true }, { nil, 'max-size', value = true },
  } })
  expect_count('recv', pos, 1, 1)
  local name = check_name('recv', pos[1])
  local timeout = timeout_of('recv', opts)
  local create = create_opts_of('recv', opts, { 'max-count', 'max-size' })
  local q = open_typed('recv', 'queue', name, create)
  local msg = checked('recv', q.receive, q, timeout)
  q:close()
  if msg == nil then return EXIT_TIMEOUT end
  io.stdout:write(msg)
  io.stdout:flush()
  return EXIT_OK
end

local sem_create = { create_flag, { nil, 'value', value = true }, { nil, 'max', value = true } }

function commands.post(args)
  local opts, pos = parse('post', args, { options = sem_create })
  expect_count('post', pos, 1, 2)
  local name = check_name('post', pos[1])
  local n = pos[2] and integer_of('post', 'count', pos[2], 1, math.maxinteger) or 1
  local create = create_opts_of('post', opts, { 'value', 'max' })
  local s = open_typed('post', 'semaphore', name, create)
  checked('post', s.post, s, n)
  s:close()
  return EXIT_OK
end

function commands.wait(args)
  local options = { { nil, 'timeout', value = true }, table.unpack(sem_create) }
  local opts, pos = parse('wait', args, { options = options })
  expect_count('wait', pos, 1, 1)
  local name = check_name('wait', pos[1])
  local timeout = timeout_of('wait', opts)
  local create = create_opts_of('wait', opts, { 'value', 'max' })
  local s = open_typed('wait', 'semaphore', name, create)
  local got = checked('wait', s.wait, s, timeout)
  s:close()
  return got and EXIT_OK or EXIT_TIMEOUT
end

-- ipcsh --db URL setup [--apply] ROLE...: the GRANTs of the remote objects
commands.setup = function(a) return require('interprocess.net_setup')(ipc, a) end

-- `ipcsh top` lives in interprocess.top (when built in).
function commands.top(args, native)
  local ok, top = pcall(require, 'interprocess.top')
  if not ok or type(top) ~= 'table' or type(top.main) ~= 'function' then
    usage_error('top: not available in this build')
  end
  return top.main(args, native, ipc)
end

cli.commands = commands

function cli.main(args, native)
  local db = os.getenv('IPCSH_DATABASE_URL')
  if args[1] == '--db' or (args[1] or ''):match('^%-%-db=') then
    local n = args[1] == '--db' and 2 or 1
    db = n == 2 and args[2] or args[1]:sub(6)
    if not db or db == '' then
      say(io.stderr, '--db: missing database URL')
      return EXIT_USAGE
    end
    args = table.move(args, n + 1, #args, 1, {})
  end
  ipc, db_url = ipc_local, nil
  if db and db ~= '' then
    local ok, net = pcall(ipc_local.connect, db)
    if not ok then
      say(io.stderr, '--db: %s', clean(net))
      return EXIT_USAGE
    end
    ipc, db_url = net, db
  end
  local name = args[1]
  local command = commands[name]
  if not command then
    say(io.stderr, "unknown command '%s'", tostring(name))
    return EXIT_USAGE
  end
  local rest = table.move(args, 2, #args, 1, {})
  local ok, result = pcall(command, rest, native)
  if ok then
    io.stdout:flush()
    return result
  end
  if getmetatable(result) == usage_mt then
    say(io.stderr, '%s', result.msg)
    return EXIT_USAGE
  end
  -- SIGINT during a wait: exit like a shell reports an interrupted command
  say(io.stderr, '%s: %s', name, clean(result))
  if tostring(result):find('interrupted', 1, true) then return EXIT_INTERRUPTED end
  return EXIT_USAGE
end

return cli
