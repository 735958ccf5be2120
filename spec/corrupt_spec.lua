-- No hang, ever, on a corrupt or foreign value (issue 12, part 3).
--
-- For each object type: one fresh object per 4-byte word of its body (the
-- body starts after the 512-byte header), that word overwritten, then every
-- timed call with a short timeout, info() and `ipcsh info` / `ipcsh ls`
-- must return within a measured bound.  An error is fine, a hang is not.
--
-- Coverage: every word of the first 1 KiB of the body (the internal locks,
-- counters, journals, queue and kv control words); up to 8 KiB, where the
-- per-process slot tables of mutex, semaphore, condition, event and barrier
-- repeat one small record, 16 consecutive words of every 512 bytes (every
-- field of every record layout, several times); beyond, one word every 256
-- bytes of bulk data (queue messages, kv chunks).  Pattern 0xFFFFFFFF on
-- every chosen word; on the first 256 bytes also 0x3FFFFFF0, an owner id no
-- process can have (it carries no "owner died" bit, so the kernel never
-- releases such a lock), and 0x7FFFFFFF; and on the lock words (offsets 0
-- and 40) the pid 1, an owner that is alive and never lets go.
--
-- The calls run in a child with its own object directory, killed at a hard
-- deadline so that a hang fails the test instead of hanging the suite; it
-- writes each step to a progress file first, so a failure names the object
-- and word.
local H = require 'spec.helper'
local ipc = H.ipc

local CALL_BOUND_MS = 3000 -- a call with a 0-30 ms timeout, or info(); measured
local CLI_BOUND_MS = 10000 -- `ipcsh info`: a new process (slow to start under load)
local CHILD_DEADLINE_S = 150 -- the whole type; hard kill
local CLI_WORDS = 24 -- `ipcsh info` (a process each) on the first words, the
                     -- "no process" owner pattern (info() covers the others)

local child_code = [=[
local ipc = require 'interprocess'
local kind, bin, progress, cli_words, bound, cli_bound = ...
cli_words, bound, cli_bound = tonumber(cli_words), tonumber(bound), tonumber(cli_bound)
local dir = assert(os.getenv('IPCSH_DIR'))
local T = 30 -- ms: the timeout of calls expected to succeed
local pf = assert(io.open(progress, 'w'))
pf:setvbuf('no')

local helper = ipc.mutex('helpermutex')
-- calls: each returns within its bound (an error is fine); live = false:
-- skip the live-owner pattern (kv's lock waits for as long as its holder's
-- update runs, like a mutex: a live owner is waited for).
local function unlock_if(o, g) if g then o:unlock() end end
local types = {
  mutex = { make = function(n) return ipc.mutex(n) end, calls = {
    function(o) unlock_if(o, o:lock(T)) end,
    function(o) unlock_if(o, o:lock_shared(T)) end,
    function(o) unlock_if(o, o:lock(0)) end,
    function(o) unlock_if(o, o:lock_shared(0)) end } },
  semaphore = { make = function(n) return ipc.semaphore(n, { value = 1 }) end, calls = {
    function(o) if o:wait(T) then o:post() end end,
    function(o) o:wait(0) end } },
  semaphore_undo = { make = function(n) return ipc.semaphore(n, { value = 1, undo = true }) end,
    calls = {
      function(o) if o:wait(T) then o:post() end end,
      function(o) o:wait(0) end } },
  queue = { make = function(n) return ipc.queue(n, { max_count = 8, max_size = 64 }) end,
    calls = {
      function(o) o:send('x', 0, T) end,
      function(o) o:receive(T) end,
      function(o) o:receive(0) end } },
  queue_bulk = { make = function(n) return ipc.queue(n) end, calls = {
    function(o) o:send('x', 0, T) end,
    function(o) o:receive(T) end } },
  condition = { make = function(n) return ipc.condition(n) end, calls = {
    function(o)
      local g = helper:lock(T)
      if g then
        pcall(o.wait, o, helper, 0)
        helper:unlock()
      end
    end } },
  event = { make = function(n) return ipc.event(n, { set = true }) end, calls = {
    function(o) o:wait(T) end } },
  event_auto = { make = function(n) return ipc.event(n, { auto_reset = true }) end, calls = {
    function(o) o:wait(0) end,
    function(o) o:wait(T) end } },
  barrier = { make = function(n) return ipc.barrier(n, { count = 1 }) end, calls = {
    function(o) o:wait(T) end } },
  barrier_wait = { make = function(n) return ipc.barrier(n, { count = 2 }) end, calls = {
    function(o) o:wait(0) end } },
  -- untimed calls, but none hangs on these patterns
  kv = { make = function(n) return ipc.kv(n, { size = 16384 }) end, live = false, calls = {
    function(o) o:get('a') end,
    function(o) o:set('a', 1) end,
    function(o) o:incr('n') end } },
}
local ty = assert(types[kind], kind)

local function words(body)
  local list = {}
  for off = 0, body - 4, 4 do
    if off < 1024 or (off < 8192 and off % 512 < 64) or off % 256 == 0 then
      list[#list + 1] = { off, 0xFFFFFFFF }
      if off < 256 then
        list[#list + 1] = { off, 0x3FFFFFF0 }
        list[#list + 1] = { off, 0x7FFFFFFF }
      end
      -- the lock words (an rlock starts each body; a mutex's second at 40)
      -- owned by pid 1, alive and never releasing them
      if (off == 0 or off == 40) and ty.live ~= false then list[#list + 1] = { off, 1 } end
    end
  end
  return list
end

local function timed(what, fn, limit)
  local t0 = ipc.clock()
  local ok, err = pcall(fn)
  local dt = ipc.clock() - t0
  if dt > (limit or bound) then
    print(('SLOW %s took %.0f ms%s'):format(what, dt, ok and '' or ' (error: ' .. tostring(err) .. ')'))
  end
  return ok, err
end

-- the body size, from a first object's file
local probe = ty.make('probe' .. kind:gsub('_', ''))
local body = probe:info().bytes - 512
probe:remove()
probe:close()

local list, n, cli = words(body), 0, 0
for i, w in ipairs(list) do
  local name = ('%sw%dp%x'):format(kind:gsub('_', ''), w[1], w[2])
  pf:write(name, ' create\n')
  local o = ty.make(name)
  local f = assert(io.open(dir .. '/ipcs.' .. name, 'r+b'))
  f:seek('set', 512 + w[1])
  f:write(string.pack('<I4', w[2]))
  f:close()
  for k, call in ipairs(ty.calls) do
    pf:write(name, ' call ', k, '\n')
    timed(('%s call %d'):format(name, k), function() call(o) end)
  end
  pf:write(name, ' info\n')
  timed(name .. ' info()', function() return o:info() end)
  o:close()
  if w[1] < cli_words * 4 and w[2] == 0x3FFFFFF0 then
    pf:write(name, ' ipcsh info\n')
    cli = cli + 1
    timed(name .. ' `ipcsh info`', function()
      local p = io.popen(('%q info %q 2>&1'):format(bin, name))
      local text = p:read('a')
      local _, how, code = p:close()
      -- exit 0 (info), 1 or 2 (a reported error); never a crash
      if how ~= 'exit' or code > 2 or text:find('Sanitizer', 1, true)
        or text:find('runtime error', 1, true) then
        print(('CRASH %s `ipcsh info`: %s %s: %s'):format(name, how, code, text))
      end
    end, cli_bound)
  end
  n = n + 1
end
pf:write('ls\n')
local t0 = ipc.clock()
local listed = ipc.list()
print(('LIST %d %.0f'):format(#listed, ipc.clock() - t0))
pf:write('done\n')
print(('DONE %d objects, body %d bytes, %d ipcsh info'):format(n, body, cli))
]=]

local function run_kind(kind, finally)
  local sub = H.tmpname('corrupt-' .. kind)
  sub = (os.getenv('IPCSH_DIR') or '/tmp') .. '/' .. sub:match('[^/]+$')
  assert(os.execute('mkdir -p ' .. H.quote(sub)))
  local script = sub .. '.lua'
  local progress = sub .. '.progress'
  finally(function()
    os.execute('rm -rf ' .. H.quote(sub) .. ' ' .. H.quote(script) .. ' ' .. H.quote(progress))
  end)
  H.write_file(script, child_code)
  local t0 = H.clock()
  local st, out, err = H.sh(('IPCSH_DIR=%s timeout -s KILL %d %s %s %s %s %s %d %d %d'):format(
    H.quote(sub), CHILD_DEADLINE_S, H.interpreter(), H.quote(script), kind, H.quote(H.bin),
    H.quote(progress), CLI_WORDS, CALL_BOUND_MS, CLI_BOUND_MS))
  local took = H.clock() - t0
  local last = (H.read_file(progress) or ''):match('([^\n]*)\n$') or '?'
  assert(st == 0, ('%s: child exit %s after %.0f ms, last step "%s"\n%s\n%s'):format(
    kind, tostring(st), took, last, out, err))
  assert.equal('done', last)
  assert.is_nil(out:match('SLOW[^\n]*'))
  assert.is_nil(out:match('CRASH[^\n]*'))
  local n = tonumber(out:match('DONE (%d+) objects'))
  assert.is_true(n and n > 0, out)
  -- ipc.list() listed every object (plus the helper mutex) in bounded time
  local nlisted, list_ms = out:match('LIST (%d+) (%d+)')
  assert.is_true(tonumber(nlisted) >= n, out)
  assert.is_true(tonumber(list_ms) < 30000, out)
  -- and so does `ipcsh ls`: every object once, in bounded time (at most
  -- the short info bound per object; most answer at once)
  local ls_t0 = H.clock()
  local lst, lout, lerr = H.sh(('IPCSH_DIR=%s timeout -s KILL 60 %s ls'):format(H.quote(sub),
    H.quote(H.bin)))
  local ls_ms = H.clock() - ls_t0
  assert.equal(0, lst, lerr)
  local rows = select(2, lout:gsub('\n', '\n')) - 1
  assert.is_true(rows >= n, ('ls listed %d of %d'):format(rows, n))
  assert.is_true(ls_ms < 30000, ('ls took %.0f ms'):format(ls_ms))
  return n, took, ls_ms
end

describe('corruption: every timed call, info and ls return in bounded time', function()
  for _, kind in ipairs({ 'mutex', 'semaphore', 'semaphore_undo', 'queue', 'queue_bulk',
    'condition', 'event', 'event_auto', 'barrier', 'barrier_wait', 'kv' }) do
    it(kind, function()
      run_kind(kind, finally)
    end)
  end
end)
