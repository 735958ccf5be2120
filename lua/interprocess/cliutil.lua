-- Helpers of the ipcsh command line (interprocess.cli) that do not touch
-- objects: option parsing, numbers, error messages, table output, globs.
local json = require 'interprocess.json'

local U = {}

-- A usage/input error: unwinds to main, which prints it and exits 2.
local usage_mt = { __tostring = function(e) return e.msg end }
local function usage_error(fmt, ...)
  error(setmetatable({ msg = fmt:format(...) }, usage_mt), 0)
end

local function say(stream, fmt, ...)
  stream:write('ipcsh: ', fmt:format(...), '\n')
end

-- An error message from the module, for a user of the command line: no
-- source positions, no "bad argument #2 to 'send' (...)" wrapper (the CLI
-- prefixes the command's own name), English articles.
local function clean(msg)
  msg = tostring(msg)
  repeat
    local n1, n2
    msg, n1 = msg:gsub('^[^\n:]*%.lua:%d+: ', '')
    msg, n2 = msg:gsub('^[^\n:]*%.c:%d+: ', '')
  until n1 + n2 == 0
  msg = msg:gsub('\nstack traceback:.*$', '')
  local inner = msg:match("^bad argument #%d+ to '[^']*' %((.*)%)$")
  if inner then msg = inner end
  local opt, why = msg:match("^bad option '([^']*)' to '[^']*' %((.*)%)$")
  if opt then msg = ('bad %s (%s)'):format(opt, why) end
  msg = msg:gsub(' a ([aeiouAEIOU])', ' an %1')
  return msg
end

-- ---- option parsing ------------------------------------------------------

-- spec: { options = { { 'n', 'nonblock' }, { 'w', 'wait', value = true }, ... },
--         stop_at_command = bool }
-- Long options (`--wait 5`, `--wait=5`) and short ones, combined
-- (`-nx`, `-w0.5`, `-w 0.5`), before or after positional arguments; `--`
-- ends them.  With stop_at_command, the first positional after the first
-- one (or everything after `--`) is the command and its arguments, kept
-- verbatim.  opts[long] = true or the value (repeated: the last).
local function parse(cmd, args, spec)
  local by_short, by_long = {}, {}
  for _, o in ipairs(spec.options or {}) do
    if o[1] then by_short[o[1]] = o end
    by_long[o[2]] = o
  end
  local opts, pos, rest = {}, {}, nil
  local i = 1
  local function take_value(o, inline, shown)
    local value = inline
    if value == nil then
      i = i + 1
      value = args[i]
      if value == nil then usage_error('%s: option %s needs a value', cmd, shown) end
    end
    opts[o[2]] = value
  end
  while i <= #args do
    local a = args[i]
    if a == '--' then
      rest = table.move(args, i + 1, #args, 1, {})
      break
    elseif a:sub(1, 2) == '--' then
      local key, value = a:match('^%-%-([^=]+)=(.*)$')
      key = key or a:sub(3)
      local o = by_long[key]
      if not o then usage_error("%s: unknown option '%s'", cmd, a) end
      if o.value then
        take_value(o, value, '--' .. key)
      else
        if value then usage_error('%s: option --%s takes no value', cmd, key) end
        opts[key] = true
      end
    elseif a:sub(1, 1) == '-' and #a > 1 then
      local j = 2
      while j <= #a do
        local c = a:sub(j, j)
        local o = by_short[c]
        if not o then usage_error("%s: unknown option '-%s'", cmd, c) end
        if o.value then
          local inline = a:sub(j + 1)
          take_value(o, inline ~= '' and inline or nil, '-' .. c)
          break
        end
        opts[o[2]] = true
        j = j + 1
      end
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
  if rest and not spec.stop_at_command then -- `send q -- -msg`
    table.move(rest, 1, #rest, #pos + 1, pos)
    rest = nil
  end
  return opts, pos, rest
end

local function number_of(cmd, what, s, expected)
  local n = tonumber(s)
  if s == 'inf' or s == 'infinity' then n = math.huge end
  if not n or n ~= n or n < 0 then
    usage_error('%s: bad %s %q (%s expected)', cmd, what, s, expected)
  end
  return n
end

-- --timeout MS: a number >= 0 (fractions allowed), or nil (wait forever).
local function timeout_of(cmd, opts)
  if opts.timeout == nil then return nil end
  return number_of(cmd, 'timeout', opts.timeout, 'milliseconds >= 0')
end

local function integer_of(cmd, what, s, min, max)
  local n = math.tointeger(tonumber(s))
  if not n or n < min or n > max or not s:match('^%s*[+-]?%d+%s*$') then
    usage_error('%s: bad %s %q (an integer %d..%d expected)', cmd, what, s, min, max)
  end
  return n
end

local function expect_count(cmd, pos, min, max)
  if #pos < min then usage_error('%s: missing argument', cmd) end
  if #pos > max then usage_error("%s: unexpected argument '%s'", cmd, pos[max + 1]) end
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

-- A shell glob (*, ?, [...]) as an anchored Lua pattern.
local function glob_pattern(glob)
  local out, i = { '^' }, 1
  while i <= #glob do
    local c = glob:sub(i, i)
    if c == '*' then
      out[#out + 1] = '.*'
    elseif c == '?' then
      out[#out + 1] = '.'
    elseif c == '[' and glob:find(']', i + 2, true) then
      local close = glob:find(']', i + 2, true)
      local body = glob:sub(i + 1, close - 1)
      if body:sub(1, 1) == '!' then body = '^' .. body:sub(2) end
      out[#out + 1] = '[' .. body:gsub('%%', '%%%%') .. ']'
      i = close
    else
      out[#out + 1] = c:gsub('%p', '%%%0')
    end
    i = i + 1
  end
  out[#out + 1] = '$'
  return table.concat(out)
end

local function is_glob(s) return s:find('[*?[]') ~= nil end

local function age_of(created, now)
  if type(created) ~= 'number' then return '-' end
  local s = math.max(0, math.floor(now - created))
  if s < 120 then return s .. 's' end
  if s < 7200 then return (s // 60) .. 'm' end
  if s < 172800 then return (s // 3600) .. 'h' end
  return (s // 86400) .. 'd'
end

local function count_of(v)
  if math.type(v) == 'integer' then return tostring(v) end
  if type(v) == 'table' then return tostring(#v) end
  return '-'
end

U.usage_mt, U.usage_error, U.say, U.clean = usage_mt, usage_error, say, clean
U.parse, U.number_of, U.timeout_of, U.integer_of = parse, number_of, timeout_of, integer_of
U.expect_count, U.format_value, U.sorted_keys = expect_count, format_value, sorted_keys
U.print_table, U.local_time, U.glob_pattern, U.is_glob = print_table, local_time, glob_pattern, is_glob
U.age_of, U.count_of, U.common_keys = age_of, count_of, common_keys

return U
