-- Helpers for multi-process specs: run Lua snippets in child interpreters
-- (the same interpreter the suite runs under), poll with deadlines, kill.
--
--   local H = require "spec.helper"
--   local ok, code, out, err = H.run([[ print(ipc.pid()) ]])
--   local child = H.spawn([[ ... ]])   -- background; child.pid is the
--                                      -- interpreter's own pid
--   child:kill(9); child:wait()        -- -> exit code (137 for SIGKILL)
--   H.wait_until(function() return cond end, 5000)
local H = {}

package.path = './?.lua;' .. package.path

H.ipc = require 'interprocess'
H.bin = os.getenv('IPCSH_BIN') or './ipcsh'
H.lua = os.getenv('IPCSH_TEST_LUA') or H.bin
H.under_ipcsh = H.lua == H.bin

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
H.quote = shell_quote

local tmpdir = os.getenv('IPCSH_DIR') or '/tmp'
local seq = 0
function H.tmpname(tag)
  seq = seq + 1
  return ('%s/spec-%s-%d-%d-%s'):format(tmpdir == '/dev/shm' and '/tmp' or tmpdir,
    tag or 'f', H.ipc.pid and H.ipc.pid() or 0, seq, H.ipc.uid())
end

-- A fresh object name for a test.
function H.name(tag)
  return (tag or 'T') .. H.ipc.uid()
end

function H.sleep(ms)
  if H.ipc.sleep then return H.ipc.sleep(ms) end
  os.execute(('sleep %.3f'):format(ms / 1000))
end

function H.clock()
  if H.ipc.clock then return H.ipc.clock() end
  return os.clock() * 1000
end

-- Poll until the file at path exists: its contents, or nil after ms.
function H.wait_file(path, ms)
  return H.wait_until(function() return H.read_file(path) end, ms or 15000)
end

-- How long fn takes (ms), then its first three results.
function H.elapsed_ms(fn)
  local t0 = H.clock()
  local a, b, c = fn()
  return H.clock() - t0, a, b, c
end

function H.read_file(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local s = f:read('a')
  f:close()
  return s
end

function H.write_file(path, data)
  local f = assert(io.open(path, 'wb'))
  f:write(data)
  f:close()
end

-- Prelude run in every child: the module as `ipc`, and `ready(tag)` which
-- creates a marker file the parent can poll for.
local prelude = [[
ipc = require 'interprocess'
local __dir = ...
function ready(tag)
  local f = io.open(__dir .. '/' .. (tag or 'ready'), 'w') f:write('1') f:close()
end
-- wait until the parent calls child:go(tag)
function wait_go(tag)
  local p = __dir .. '/' .. (tag or 'go')
  while true do
    local f = io.open(p) if f then f:close() return end
    if ipc.sleep then ipc.sleep(2) end
  end
end
local __pf = io.open(__dir .. '/pid.tmp', 'w') __pf:write(tostring(ipc.pid and ipc.pid() or
  (io.open('/proc/self/stat'):read('l') or ''):match('^(%d+)'))) __pf:close()
os.rename(__dir .. '/pid.tmp', __dir .. '/pid')
]]

-- The suite's interpreter as a shell command (stock lua5.4 gets the
-- module's cpath).
function H.interpreter()
  if H.under_ipcsh then return shell_quote(H.bin) end
  return 'env LUA_CPATH=' .. shell_quote(os.getenv('IPCSH_SO_DIR') .. '/?.so;;') .. ' ' ..
    shell_quote(H.lua)
end

-- Start code in a background child.  Extra args are passed as `...` after
-- the child's own directory (args are strings).
function H.spawn(code, ...)
  local dir = H.tmpname('child')
  assert(os.execute('mkdir -p ' .. shell_quote(dir)))
  H.write_file(dir .. '/script.lua', prelude .. '\n' .. code)
  local args = { shell_quote(dir) }
  for _, a in ipairs({ ... }) do args[#args + 1] = shell_quote(a) end
  local cmd = ('(%s %s %s >%s 2>%s; echo $? >%s) </dev/null >/dev/null 2>&1 &'):format(
    H.interpreter(), shell_quote(dir .. '/script.lua'), table.concat(args, ' '),
    shell_quote(dir .. '/out'), shell_quote(dir .. '/err'), shell_quote(dir .. '/status'))
  assert(os.execute(cmd))
  local child = { dir = dir }
  local function pid()
    local s = H.read_file(dir .. '/pid')
    return s and tonumber(s:match('^(%d+)$'))
  end
  child.pid = H.wait_until(pid, 10000)
  assert(child.pid, 'child did not start')
  return setmetatable(child, { __index = H.child_methods })
end

H.child_methods = {}

-- Let a child blocked in wait_go(tag) go on.
function H.child_methods:go(tag)
  H.write_file(self.dir .. '/' .. (tag or 'go'), '1')
end

function H.child_methods:is_ready(tag)
  return H.read_file(self.dir .. '/' .. (tag or 'ready')) ~= nil
end

-- Wait (polling) for the child's ready(tag) marker.
function H.child_methods:wait_ready(tag, ms)
  return H.wait_until(function() return self:is_ready(tag) end, ms or 10000)
end

-- Exit status (128+signal for a signal death), or nil at the deadline.
function H.child_methods:wait(ms)
  local ok = H.wait_until(function()
    local s = H.read_file(self.dir .. '/status')
    return s and s:match('%d+')
  end, ms or 30000)
  if not ok then return nil end
  self.status = tonumber(H.read_file(self.dir .. '/status'):match('%d+'))
  self.out = H.read_file(self.dir .. '/out')
  self.err = H.read_file(self.dir .. '/err')
  return self.status
end

function H.child_methods:kill(sig)
  os.execute(('kill -%s %d 2>/dev/null'):format(tostring(sig or 'TERM'), self.pid))
end

function H.child_methods:output()
  return H.read_file(self.dir .. '/out') or '', H.read_file(self.dir .. '/err') or ''
end

-- For a failure message: the stderr of every child in the list (or
-- table of lists) that wrote any, with its pid and exit status, so a
-- crashed worker's error is never hidden.
function H.crash_report(children)
  local out = {}
  local function add(c)
    if c.dir then
      local err = H.read_file(c.dir .. '/err') or ''
      local st = H.read_file(c.dir .. '/status')
      if err ~= '' then
        out[#out + 1] = ('--- pid %s (%s), exit %s, stderr:\n%s'):format(tostring(c.pid), c.kind or 'child',
          st and st:match('%d+') or 'running', err)
      end
    else
      for _, x in ipairs(c) do add(x) end
    end
  end
  add(children)
  return #out == 0 and '(no child wrote to stderr)' or table.concat(out, '\n')
end

-- Run code in a child to completion: status, stdout, stderr.
function H.run(code, ...)
  local c = H.spawn(code, ...)
  local st = c:wait(60000)
  return st, c.out or '', c.err or ''
end

-- Run a shell command: exit status, stdout, stderr.
function H.sh(cmd)
  local out, err = H.tmpname('out'), H.tmpname('err')
  -- exec 2>/dev/null: the shell itself must not print "Killed" when the
  -- command dies by a signal (its own stderr still goes to the file)
  local ok, how, code = os.execute(('exec 2>/dev/null; (%s) >%s 2>%s'):format(cmd,
    shell_quote(out), shell_quote(err)))
  local o, e = H.read_file(out) or '', H.read_file(err) or ''
  os.remove(out)
  os.remove(err)
  if how == 'signal' then code = 128 + code end
  return code, o, e
end

-- Run code (with the global `ipc`) in a child whose environment adds env,
-- a table name -> value (crash points, failpoints); `...` are its
-- arguments.  Returns status, stdout, stderr.
function H.run_env(env, code, ...)
  local script = H.tmpname('env') .. '.lua'
  H.write_file(script, "ipc = require 'interprocess'\n" .. code)
  local prefix = ''
  for k, v in pairs(env) do prefix = prefix .. k .. '=' .. shell_quote(v) .. ' ' end
  local args = {}
  for _, a in ipairs({ ... }) do args[#args + 1] = shell_quote(a) end
  local st, out, err = H.sh(('%s%s %s %s'):format(prefix, H.interpreter(), shell_quote(script),
    table.concat(args, ' ')))
  os.remove(script)
  return st, out, err
end

-- Kill background children still running when the test ends (fails):
-- only while a child's status file is absent, so a recycled pid is never
-- hit.  Call inside a test with busted's `finally` (it keeps one per test:
-- one function serves every guarded child).
local guarded = {}
local function kill_guarded()
  for _, c in ipairs(guarded) do
    if not H.read_file(c.dir .. '/status') then c:kill(9) end
  end
  guarded = {}
end
function H.guard(c, finally)
  guarded[#guarded + 1] = c
  finally(kill_guarded)
end

-- Poll fn every few ms until it returns a true value or ms pass.
function H.wait_until(fn, ms)
  local deadline = H.clock() + (ms or 5000)
  local pause = 1
  repeat
    local v = fn()
    if v then return v end
    H.sleep(pause)
    if pause < 20 then pause = pause * 2 end
  until H.clock() > deadline
  return fn()
end

-- The kill storm of the board-checked specs (torture/board.lua, its header
-- says why it is exact): o.nw workers made by o.spawn(i), each joined to
-- board slot i, running until o.shm's word 0 is set and counting what it
-- completes at offset 8.  o.kills times, a random worker is recorded as the
-- board's victim (before the kill), killed with SIGKILL and restarted;
-- o.after_kill(i, all) runs between the two.  Then: progress was made, the
-- workers stop and exit 0, and the board saw no violation (o.log holds the
-- workers' descriptions of any).  Returns every child started.
function H.storm(o)
  local assert = require 'luassert'
  local all, kids = {}, {}
  local function start(i)
    local c = o.spawn(i)
    all[#all + 1] = c
    H.guard(c, o.finally)
    assert.truthy(c:wait_ready(), 'worker did not start\n' .. H.crash_report(all))
    return c
  end
  for i = 1, o.nw do kids[i] = start(i) end
  for _ = 1, o.kills do
    local i = math.random(1, o.nw)
    H.sleep(math.random(1, o.pause_ms))
    o.board:record_victim(i, kids[i].pid) -- before the kill
    kids[i]:kill(9)
    assert.equal(137, kids[i]:wait(), 'a worker died on its own\n' .. H.crash_report(all))
    if o.after_kill then o.after_kill(i, all) end
    kids[i] = start(i)
  end
  local shm = o.shm
  local before = shm:add(8, 0)
  assert.truthy(H.wait_until(function() return shm:add(8, 0) > before end, 10000),
    'the storm stalled\n' .. H.crash_report(all))
  shm:add(0, 1)
  for i = 1, o.nw do assert.equal(0, kids[i]:wait(20000), H.crash_report(all)) end
  assert.equal(0, o.board:violations(), (H.read_file(o.log) or '') .. H.crash_report(all))
  return all
end

return H
