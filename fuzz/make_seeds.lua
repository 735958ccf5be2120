-- Seed inputs for segment_fuzz, names_fuzz and lua_api_fuzz, written into
-- fuzz/seeds/<target>/ (run by make_seeds.sh with ../ipcsh).
local ipc = require 'interprocess'
local out = arg[1]
local dir = os.getenv('IPCSH_DIR')
local function put(target, name, data)
  local f = assert(io.open(out .. '/' .. target .. '/' .. name, 'wb'))
  f:write(data)
  f:close()
end
local function file(name)
  local f = assert(io.open(dir .. '/ipcs.' .. name, 'rb'))
  local s = f:read('a')
  f:close()
  return s
end
local objs = {
  { 'shm', { size = 64 } }, { 'mutex', {} }, { 'semaphore', { value = 2, max = 5, undo = true } },
  { 'queue', { max_count = 4, max_size = 16 } }, { 'condition', {} }, { 'event', { auto_reset = true } },
  { 'barrier', { count = 3 } }, { 'kv', { size = 2048 } },
}
for tid, o in ipairs(objs) do
  local name = 'S' .. o[1]
  local h = ipc[o[1]](name, o[2])
  if o[1] == 'queue' then h:send('hello', 3) h:send('world', 1) end
  if o[1] == 'kv' then h:set('key', { 1, 2, 'three' }) h:set('k2', 'v') end
  if o[1] == 'semaphore' then h:wait(0) end
  local s = file(name)
  put('segment_fuzz', 'raw-' .. o[1], '\0' .. s)
  -- body mode: type, six 16-bit params (from the header at offset 32), body
  local params = {}
  for k = 0, 5 do params[#params + 1] = string.pack('<I2', string.unpack('<I8', s, 33 + 8 * k) & 0xffff) end
  put('segment_fuzz', 'body-' .. o[1], string.char(0x80 | (tid - 1)) .. table.concat(params) .. s:sub(513))
  h:remove()
end
for i, n in ipairs({ 'a', 'Jobs', 'x1y2', ('A'):rep(250), ('b'):rep(251), '1abc', 'a.b', 'a/b', '' }) do
  put('names_fuzz', 'n' .. i, n)
end
local cli = {
  { 'ls' }, { 'ls', '--json' }, { 'info', 'Q1', '--json' }, { 'rm', 'A', 'B' },
  { 'lock', 'M', '--shared', '--timeout', '10', '--', 'true' }, { 'send', 'Q', '--priority', '3', 'msg' },
  { 'send', 'Q', '-' }, { 'recv', 'Q', '--timeout', '1' }, { 'post', 'S', '2' }, { 'wait', 'S', '--timeout', '0' },
}
for i, a in ipairs(cli) do put('lua_api_fuzz', 'cli' .. i, '\0' .. table.concat(a, '\0')) end
local ctors = {
  { 'a', 'Name', 'size=64' }, { 'ab', 'N', 'assert=create', 'cleanup=true', 'mode=384' },
  { 'abc', '', 'value=3', 'max=4', 'undo=true' }, { 'abcd', 'Q', 'max_count=10', 'max_size=100' },
  { 'abcde', '-', 'file=/tmp/x' }, { 'abcdef', 'E', 'auto_reset=true', 'set=true' },
  { 'abcdefg', 'B', 'count=3' }, { '', 'K', 'size=4096' },
}
for i, a in ipairs(ctors) do put('lua_api_fuzz', 'ctor' .. i, '\1' .. table.concat(a, '\0')) end
