-- The ipcsh command line: `ipcsh ls|info|rm|lock|send|recv|post|wait ...`.
--
--   require("interprocess.cli").main(args [, native]) -> exit code
--
-- args is the command line after the program name ({ "ls", "--json" }).
-- native is the runner's table of C helpers ({ run = function(argv) ->
-- status }); without it (stock lua5.4) commands are run with os.execute.
-- Exit codes: 0 success, 1 timed out (lock: the command's own status),
-- 2 usage or bad input, with a message on stderr.
local ipc = require 'interprocess'
local ipc_local = ipc -- `--db URL` (or IPCSH_DATABASE_URL) swaps ipc for ipc.connect(URL)
local json = require 'interprocess.json'

local cli = {}

local EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

-- A usage/input error: unwinds to main, which prints it and exits 2.
local usage_mt = { __tostring = function(e) return e.msg end }
local function usage_error(fmt, ...)
  error(setmetatable({ msg = fmt:format(...) }, usage_mt), 0)
end

local function say(stream, fmt, ...)
  stream:write('ipcsh: ', fmt:format(...), '\n')
end

-- ---- option parsing ------------------------------------------------------

-- spec: { flags = { json = true }, values = { timeout = 'ms' },
--         stop_at_command = bool }
-- Options may come before or after positional arguments; `--` ends them.
-- With stop_at_command, the first positional after the first one (or
-- everything after `--`) is the command and its arguments, kept verbatim.
local function parse(cmd, args, spec)
  local opts, pos, rest = {}, {}, nil
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == '--' then
      rest = table.move(args, i + 1, #args, 1, {})
      break
    elseif a:sub(1, 2) == '--' and #a > 2 then
      local key, value = a:match('^%-%-([^=]+)=(.*)$')
      key = key or a:sub(3)
      if spec.flags and spec.flags[key] then
        if value then usage_error('%s: option --%s takes no value', cmd, key) end
        opts[key] = true
      elseif spec.values and spec.values[key] then
        if not value then
          i = i + 1
          value = args[i]
          if value == nil then usage_error('%s: option --%s needs a value', cmd, key) end
        end
        opts[key] = value
      else
        usage_error("%s: unknown option '%s'", cmd, a)
      end
    elseif a:sub(1, 1) == '-' and #a > 1 then
      usage_error("%s: unknown option '%s'", cmd, a)
    else
      pos[#pos + 1] = a
      if spec.stop_at_command and #pos == 2 then
        rest = table.move(args, i, #args, 1, {})
        pos[2] = nil
        break
      end
    end
    i = i + 1
  end
  return opts, pos, rest
end

-- --timeout MS: a number >= 0 (fractions allowed), or nil (wait forever).
local function timeout_of(cmd, opts)
  local s = opts.timeout
  if s == nil then return nil end
  local ms = tonumber(s)
  if s == 'inf' or s == 'infinity' then ms = math.huge end
  if not ms or ms ~= ms or ms < 0 then
    usage_error('%s: bad timeout %q (milliseconds >= 0 expected)', cmd, s)
  end
  return ms
end

local function integer_of(cmd, what, s, min, max)
  local n = math.tointeger(tonumber(s))
  if not n or n < min or n > max or not s:match('^%s*[+-]?%d+%s*$') then
    usage_error('%s: bad %s %q (an integer %d..%d expected)', cmd, what, s, min, max)
  end
  return n
end

local function check_name(cmd, name)
  if name == nil then usage_error('%s: missing object name', cmd) end
  if not ipc.valid_name(name) then
    usage_error('%s: invalid name %q (a letter followed by letters/digits, at most 250)',
      cmd, name)
  end
  return name
end

local function expect_count(cmd, pos, min, max)
  if #pos < min then usage_error('%s: missing argument', cmd) end
  if #pos > max then usage_error("%s: unexpected argument '%s'", cmd, pos[max + 1]) end
end

-- Call an object's method: misuse and bad input become usage errors (exit
-- 2); an interruption (SIGINT during a wait) passes through.
local function checked(cmd, fn, ...)
  local r = table.pack(pcall(fn, ...))
  if not r[1] then
    local msg = tostring(r[2])
    if msg:find('interrupted', 1, true) then error(r[2], 0) end
    usage_error('%s: %s', cmd, msg)
  end
  return table.unpack(r, 2, r.n)
end

-- Open or create an object of a type the API may not have yet.
local function open_typed(cmd, tname, name)
  local ctor = ipc[tname]
  if type(ctor) ~= 'function' then
    usage_error('%s: %s objects are not supported by this build', cmd, tname)
  end
  return checked(cmd, ctor, name)
end

-- ---- formatting ------------------------------------------------------------

local common_keys = { type = 1, name = 2, creator_pid = 3, created = 4, bytes = 5 }

local function format_value(v)
  if type(v) == 'table' then
    local parts = {}
    if #v > 0 then
      for _, x in ipairs(v) do parts[#parts + 1] = format_value(x) end
      return table.concat(parts, ',')
    end
    if next(v) == nil then return '-' end
    return json.encode(v)
  elseif math.type(v) == 'float' and v == math.floor(v) and math.abs(v) < 2^53 then
    return ('%d'):format(v)
  end
  return tostring(v)
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    local ca, cb = common_keys[a], common_keys[b]
    if ca or cb then return (ca or 99) < (cb or 99) end
    return tostring(a) < tostring(b)
  end)
  return keys
end

-- The live state of an object in a few words, for `ls`.
local function summary(info)
  local t = info.type
  if t == 'invalid' then return 'error: ' .. tostring(info.error) end
  local text
  if t == 'mutex' and info.state then
    local holders = type(info.holders) == 'table' and #info.holders > 0
      and ' by ' .. format_value(info.holders) or ''
    text = info.state .. holders
  elseif t == 'queue' and info.count then
    text = ('%s/%s messages'):format(format_value(info.count), format_value(info.max_count or '?'))
  elseif t == 'semaphore' and info.value then
    text = 'value ' .. format_value(info.value)
      .. (info.max and (' max ' .. format_value(info.max)) or '')
  else
    local parts = {}
    for _, k in ipairs(sorted_keys(info)) do
      if not common_keys[k] then parts[#parts + 1] = k .. '=' .. format_value(info[k]) end
    end
    return table.concat(parts, ' ')
  end
  if math.type(info.waiters) == 'integer' and info.waiters > 0 then
    text = text .. (', %d waiting'):format(info.waiters)
  end
  return text
end

local function print_table(rows, header)
  local widths = {}
  for _, row in ipairs({ header, table.unpack(rows) }) do
    for i, cell in ipairs(row) do widths[i] = math.max(widths[i] or 0, #cell) end
  end
  for _, row in ipairs({ header, table.unpack(rows) }) do
    local cells = {}
    for i, cell in ipairs(row) do
      cells[i] = i < #row and cell .. (' '):rep(widths[i] - #cell) or cell
    end
    io.stdout:write(table.concat(cells, '  '), '\n')
  end
end

local function local_time(seconds)
  if type(seconds) ~= 'number' then return tostring(seconds) end
  return os.date('%Y-%m-%d %H:%M:%S', math.floor(seconds))
end

-- ---- commands ----------------------------------------------------------------

local commands = {}

function commands.ls(args)
  local opts, pos = parse('ls', args, { flags = { json = true } })
  expect_count('ls', pos, 0, 0)
  local list = ipc.list()
  table.sort(list, function(a, b) return tostring(a.name) < tostring(b.name) end)
  if opts.json then
    io.stdout:write(json.encode(list, '  '), '\n')
    return EXIT_OK
  end
  local rows = {}
  for _, info in ipairs(list) do
    rows[#rows + 1] = {
      tostring(info.name), tostring(info.type),
      info.bytes and format_value(info.bytes) or '-',
      info.creator_pid and format_value(info.creator_pid) or '-',
      summary(info),
    }
  end
  print_table(rows, { 'NAME', 'TYPE', 'BYTES', 'CREATOR', 'STATE' })
  return EXIT_OK
end

-- Open an existing object of any type, never creating one.  nil, message
-- when there is none.
local function open_existing(cmd, name)
  local ok, obj = pcall(ipc.open, name)
  if ok then return obj end
  local msg = tostring(obj)
  if msg:find('no object named', 1, true) then return nil, msg end
  usage_error('%s: %s', cmd, msg)
end

function commands.info(args)
  local opts, pos = parse('info', args, { flags = { json = true } })
  expect_count('info', pos, 1, 1)
  local name = check_name('info', pos[1])
  local obj, err = open_existing('info', name)
  if not obj then -- bad input: exit 2 (1 is kept for timeouts)
    say(io.stderr, 'info: %s', err)
    return EXIT_USAGE
  end
  local info = obj:info()
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

function commands.rm(args)
  local _, pos = parse('rm', args, {})
  expect_count('rm', pos, 1, math.huge)
  for _, name in ipairs(pos) do check_name('rm', name) end
  local status = EXIT_OK
  for _, name in ipairs(pos) do
    local ok, removed = pcall(ipc.remove, name)
    if not ok then
      say(io.stderr, 'rm: %s: %s', name, tostring(removed))
      status = EXIT_USAGE
    elseif not removed then
      say(io.stderr, 'rm: no object named "%s"', name)
      if status == EXIT_OK then status = EXIT_TIMEOUT end
    end
  end
  return status
end

-- Run argv, returning its exit status.
local function run_program(native, argv)
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

function commands.lock(args, native)
  local opts, pos, command = parse('lock', args, {
    flags = { shared = true }, values = { timeout = true }, stop_at_command = true,
  })
  expect_count('lock', pos, 1, 1)
  local name = check_name('lock', pos[1])
  if not command or #command == 0 then usage_error('lock: missing command to run') end
  local timeout = timeout_of('lock', opts)
  local m = open_typed('lock', 'mutex', name)
  local guard = checked('lock', opts.shared and m.lock_shared or m.lock, m, timeout)
  if not guard then
    m:close()
    return EXIT_TIMEOUT
  end
  local st = run_program(native, command)
  m:unlock()
  m:close()
  return st
end

function commands.send(args)
  local opts, pos = parse('send', args, { values = { priority = true, timeout = true } })
  expect_count('send', pos, 2, 2)
  local name = check_name('send', pos[1])
  local timeout = timeout_of('send', opts)
  local priority = opts.priority
    and integer_of('send', 'priority', opts.priority, 0, 2147483647) or 0
  local msg = pos[2]
  if msg == '-' then
    msg = io.stdin:read('a') or ''
  end
  local q = open_typed('send', 'queue', name)
  local sent = checked('send', q.send, q, msg, priority, timeout)
  q:close()
  return sent and EXIT_OK or EXIT_TIMEOUT
end

function commands.recv(args)
  local opts, pos = parse('recv', args, { values = { timeout = true } })
  expect_count('recv', pos, 1, 1)
  local name = check_name('recv', pos[1])
  local timeout = timeout_of('recv', opts)
  local q = open_typed('recv', 'queue', name)
  local msg = checked('recv', q.receive, q, timeout)
  q:close()
  if msg == nil then return EXIT_TIMEOUT end
  io.stdout:write(msg)
  io.stdout:flush()
  return EXIT_OK
end

function commands.post(args)
  local _, pos = parse('post', args, {})
  expect_count('post', pos, 1, 2)
  local name = check_name('post', pos[1])
  local n = pos[2] and integer_of('post', 'count', pos[2], 1, math.maxinteger) or 1
  local s = open_typed('post', 'semaphore', name)
  checked('post', s.post, s, n)
  s:close()
  return EXIT_OK
end

function commands.wait(args)
  local opts, pos = parse('wait', args, { values = { timeout = true } })
  expect_count('wait', pos, 1, 1)
  local name = check_name('wait', pos[1])
  local timeout = timeout_of('wait', opts)
  local s = open_typed('wait', 'semaphore', name)
  local got = checked('wait', s.wait, s, timeout)
  s:close()
  return got and EXIT_OK or EXIT_TIMEOUT
end

function commands.top(args) return require('interprocess.top').main(args) end -- top.lua

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
  ipc = ipc_local
  if db and db ~= '' then
    local ok, net = pcall(ipc_local.connect, db)
    if not ok then
      say(io.stderr, '%s', tostring(net))
      return EXIT_USAGE
    end
    ipc = net
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
  say(io.stderr, '%s: %s', name, tostring(result))
  if tostring(result):find('interrupted', 1, true) then return EXIT_INTERRUPTED end
  return EXIT_USAGE
end

return cli
