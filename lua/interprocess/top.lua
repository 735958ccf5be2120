-- `ipcsh top [PATTERN] [--interval MS] [--once] [--json]`: a refreshing
-- view of the objects in the namespace, like top: name, type, state,
-- holders, waiters, queue depth, and rates per second computed from the
-- counters each object keeps in its segment (info().counters; see
-- docs/manual.md).  Rates are the counter differences between two samples
-- divided by the measured time between them.
--
-- On a terminal: redraws every interval, follows resizes (`stty size` at
-- every frame), `q` (or Ctrl-C) quits and the terminal settings are
-- restored on every way out (also a SIGINT sent by another process: the
-- view runs in a forked child while the command waits for it).  Otherwise (or with --once): plain frames.
-- --once samples twice, `interval` apart, and prints one frame; --json
-- prints the frame as JSON, the rates as `<counter>_per_s` fields.
--
--   require('interprocess.top').main(args) -> exit code
local ipc = require 'interprocess'
local json = require 'interprocess.json'

local top = {}

local EXIT_OK, EXIT_USAGE = 0, 2

local function fail(fmt, ...)
  io.stderr:write('ipcsh: top: ', fmt:format(...), '\n')
  return EXIT_USAGE
end

-- Shell-style PATTERN (* and ?) to an anchored Lua pattern.
local function glob(p)
  return '^' .. p:gsub('[%^%$%(%)%%%.%[%]%+%-]', '%%%0'):gsub('%*', '.*'):gsub('%?', '.') .. '$'
end

local function parse(args)
  local o = { interval = 1000 }
  local i = 1
  while i <= #args do
    local a = args[i]
    local key, value = a:match('^%-%-([%w]+)=(.*)$')
    key = key or a:match('^%-%-([%w]+)$')
    if key == 'once' or key == 'json' then
      if value then return nil, ('option --%s takes no value'):format(key) end
      o[key] = true
    elseif key == 'interval' then
      if not value then
        i = i + 1
        value = args[i]
        if value == nil then return nil, 'option --interval needs a value' end
      end
      local ms = tonumber(value)
      if not ms or ms ~= ms or ms < 10 or ms > 3600000 then
        return nil, ('bad interval %q (milliseconds 10..3600000 expected)'):format(value)
      end
      o.interval = ms
    elseif a:sub(1, 1) == '-' and #a > 1 then
      return nil, ("unknown option '%s'"):format(a)
    elseif o.pattern then
      return nil, ("unexpected argument '%s'"):format(a)
    else
      o.pattern = a
    end
    i = i + 1
  end
  return o
end

-- One sample: name -> info, and the time it was taken.
local function sample(pattern)
  local t = ipc.clock()
  local by = {}
  for _, info in ipairs(ipc.list()) do
    local name = tostring(info.name)
    if not pattern or name:match(pattern) then by[name] = info end
  end
  return { at = (t + ipc.clock()) / 2, by = by }
end

-- Rates between two samples: name -> { counter = per second }.
local function rates(a, b)
  local out = {}
  local dt = (b.at - a.at) / 1000
  for name, info in pairs(b.by) do
    local old = a.by[name]
    if dt > 0 and old and old.type == info.type and type(info.counters) == 'table'
      and type(old.counters) == 'table' then
      local r = {}
      for k, v in pairs(info.counters) do
        local v0 = old.counters[k]
        if math.type(v) == 'integer' and math.type(v0) == 'integer' and v >= v0 then r[k] = (v - v0) / dt end
      end
      out[name] = r
    end
  end
  return out
end

local LABELS = {
  mutex = { { 'exclusive', 'lock' }, { 'shared', 'shared' } },
  queue = { { 'sent', 'in' }, { 'received', 'out' } },
  semaphore = { { 'posted', 'post' }, { 'taken', 'wait' } },
  event = { { 'sets', 'set' } },
  kv = { { 'sets', 'set' } },
}

local function fmt_rate(x)
  if x >= 100 then return ('%.0f'):format(x) end
  return ('%.1f'):format(x)
end

local function pids(list)
  if type(list) ~= 'table' or #list == 0 then return '' end
  local t = {}
  for i, p in ipairs(list) do
    if i > 4 then t[#t + 1] = '...' break end
    t[#t + 1] = tostring(p)
  end
  return table.concat(t, ',')
end

-- The row of one object: NAME TYPE STATE HOLDERS WAITERS DEPTH RATES.
local function row(name, info, r)
  local t = info.type
  local state, depth, waiters = '-', '-', ''
  if t == 'mutex' then state = tostring(info.state)
  elseif t == 'semaphore' then state = 'value ' .. tostring(info.value) .. (info.max and ('/' .. info.max) or '')
  elseif t == 'event' then state = tostring(info.state)
  elseif t == 'kv' then state = tostring(info.count) .. ' keys'
  elseif t == 'queue' then depth = ('%s/%s'):format(tostring(info.count), tostring(info.max_count))
  elseif t == 'barrier' and info.arrived then state = ('%s/%s arrived'):format(tostring(info.arrived), tostring(info.count))
  elseif t == 'invalid' then state = 'error'
  end
  if math.type(info.waiters) == 'integer' then
    waiters = tostring(info.waiters)
    local wp = pids(info.waiter_pids)
    if wp ~= '' then waiters = waiters .. ' (' .. wp .. ')' end
  end
  local parts = {}
  for _, l in ipairs(LABELS[t] or {}) do
    local v = r and r[l[1]]
    parts[#parts + 1] = l[2] .. ' ' .. (v and fmt_rate(v) or '-') .. '/s'
  end
  return { name, tostring(t), state, pids(info.holders) ~= '' and pids(info.holders) or '-', waiters ~= '' and waiters or '-',
    depth, table.concat(parts, '  ') }
end

local HEADER = { 'NAME', 'TYPE', 'STATE', 'HOLDERS', 'WAITERS', 'DEPTH', 'RATES' }

-- The frame as lines (columns padded), at most `width` characters each.
local function frame_lines(s, r, width)
  local names = {}
  for name in pairs(s.by) do names[#names + 1] = name end
  table.sort(names)
  local rows = { HEADER }
  for _, name in ipairs(names) do rows[#rows + 1] = row(name, s.by[name], r and r[name]) end
  local w = {}
  for _, rw in ipairs(rows) do
    for i, c in ipairs(rw) do w[i] = math.max(w[i] or 0, #c) end
  end
  local lines = {}
  for _, rw in ipairs(rows) do
    local cells = {}
    for i, c in ipairs(rw) do cells[i] = i < #rw and c .. (' '):rep(w[i] - #c) or c end
    local line = table.concat(cells, '  ')
    if width and #line > width then line = line:sub(1, width) end
    lines[#lines + 1] = line
  end
  return lines, #names
end

-- The frame as a JSON-ready array: each object's info plus <counter>_per_s.
local function frame_json(s, r)
  local names = {}
  for name in pairs(s.by) do names[#names + 1] = name end
  table.sort(names)
  local out = {}
  for _, name in ipairs(names) do
    local o = {}
    for k, v in pairs(s.by[name]) do o[k] = v end
    for k, v in pairs(r and r[name] or {}) do o[k .. '_per_s'] = v end
    out[#out + 1] = o
  end
  return out
end

local function sh_ok(cmd)
  local ok, how, code = os.execute(cmd)
  if type(ok) == 'number' then return ok == 0 end -- Lua 5.1 style
  return ok == true and (how == nil or how == 'exit') and (code == nil or code == 0)
end

-- rows, columns of the terminal on stdin/stdout (24x80 when unknown)
local function term_size()
  local p = io.popen('stty size </dev/tty 2>/dev/null')
  local s = p and p:read('a') or ''
  if p then p:close() end
  local rows, cols = s:match('^(%d+)%s+(%d+)')
  rows, cols = tonumber(rows), tonumber(cols)
  if not rows or rows < 1 or cols < 1 then return 24, 80 end
  return rows, cols
end

local function interactive(o, pattern)
  local saved
  do
    local p = io.popen('stty -g </dev/tty 2>/dev/null')
    saved = p and p:read('l')
    if p then p:close() end
  end
  if not saved or saved == '' then return nil end -- no usable terminal
  local function restore()
    os.execute(('stty %s </dev/tty 2>/dev/null'):format(saved))
    io.stdout:write('\27[?25h\n')
    io.stdout:flush()
  end
  -- keys without Enter, no echo, reads never block; Ctrl-C is a key too
  -- (-isig), read like `q`.
  sh_ok('stty -icanon -echo -isig min 0 time 0 </dev/tty 2>/dev/null')
  local function loop()
    local tty = io.open('/dev/tty', 'rb')
    io.stdout:write('\27[?25l')
    local prev = sample(pattern)
    local r
    while true do
      local rows, cols = term_size()
      local lines, n = frame_lines(prev, r, cols)
      local head = ('ipcsh top - %s  %d objects%s  every %d ms  (q quits)'):format(os.date('%H:%M:%S'), n,
        o.pattern and (' matching ' .. o.pattern) or '', o.interval)
      local out = { '\27[H\27[2J', head:sub(1, cols), '\n' }
      for i = 1, math.min(#lines, rows - 2) do out[#out + 1] = lines[i] .. '\n' end
      io.stdout:write(table.concat(out))
      io.stdout:flush()
      -- wait for a key or the interval
      local deadline = ipc.clock() + o.interval
      repeat
        local key = tty and tty:read(1)
        if key == 'q' or key == 'Q' or key == '\3' then
          if tty then tty:close() end
          return
        end
        if not key then ipc.sleep(math.max(1, math.min(20, deadline - ipc.clock()))) end
      until ipc.clock() >= deadline
      local now = sample(pattern)
      r = rates(prev, now)
      prev = now
    end
  end
  -- The view runs in a child while this process waits for it: a SIGINT
  -- sent to us lands in that wait (which raises), never in the middle of
  -- the drawing, where ipcsh would die of it with the terminal still raw.
  local ok, err = pcall(function()
    if not ipc.fork then return loop() end
    local h = ipc.fork(function()
      local fine, e = pcall(loop)
      if not fine then io.stderr:write('ipcsh: top: ', tostring(e), '\n') os.exit(1) end
      os.exit(0)
    end)
    -- no timeout: a wait that times out just as a SIGINT lands can miss it
    local done, code, how = pcall(h.wait, h)
    if not done then
      h:kill('TERM')
      h:wait(2000)
      error(code, 0)
    end
    if code ~= 0 then error(('the view ended with %s %s'):format(tostring(code), tostring(how)), 0) end
  end)
  restore()
  if not ok then error(err, 0) end
  return EXIT_OK
end

function top.main(args)
  local o, msg = parse(args)
  if not o then return fail('%s', msg) end
  local pattern = o.pattern and glob(o.pattern)
  if not o.once and not o.json and sh_ok('test -t 1 && test -t 0') then
    local code = interactive(o, pattern)
    if code then return code end
  end
  -- plain frames: with --once (or --json) one, else one per interval
  local prev = sample(pattern)
  repeat
    ipc.sleep(o.interval)
    local now = sample(pattern)
    local r = rates(prev, now)
    if o.json then
      io.stdout:write(json.encode(frame_json(now, r), '  '), '\n')
    else
      local lines = frame_lines(now, r)
      io.stdout:write(table.concat(lines, '\n'), '\n')
      if not o.once then io.stdout:write('\n') end
    end
    io.stdout:flush()
    prev = now
  until o.once or o.json
  return EXIT_OK
end

top.glob, top.rates = glob, rates -- for the specs

return top
