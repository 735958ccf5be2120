-- Every object type exercised in one process, for `make valgrind`
-- (valgrind --leak-check=full): creation, every method, errors raised and
-- caught, close, remove, GC of unclosed handles, the codec and the CLI.
local ipc = require 'interprocess'
local function expect_error(f, ...)
  local ok = pcall(f, ...)
  assert(not ok, 'an error was expected')
end

for round = 1, 3 do
  local s = ipc.shm('VGshm' .. round, { size = 4096, cleanup = true })
  s:write(0, 'hello')
  assert(s:read(0, 5) == 'hello')
  s:pack(64, '<i8d', 7, 1.5)
  assert(s:unpack('<i8', 64) == 7)
  assert(s:add(128, 5) == 5 and s:cas(128, 5, 6))
  s:store({ 1, 'two', { three = 3 } })
  assert(s:load()[3].three == 3)
  expect_error(s.read, s, 4090, 100)
  assert(s:info().type == 'shm')

  local m = ipc.mutex('VGmutex' .. round, { cleanup = true })
  do local g <close> = m:lock() assert(m:held() == 'exclusive') expect_error(m.lock, m) end
  assert(m:with_shared(function() return m:held() end) == true)
  expect_error(m.with, m, function() error('inside') end)
  assert(m:info().state == 'free' and not m:unlock())

  local sem = ipc.semaphore('VGsem' .. round, { value = 2, max = 3, undo = true, cleanup = true })
  assert(sem:wait(0) and sem:post() and sem:value() == 2)
  assert(sem:with(function() return 1 end))
  expect_error(sem.post, sem, 5)
  sem:info()

  local q = ipc.queue('VGqueue' .. round, { max_count = 8, max_size = 64, cleanup = true })
  for i = 1, 8 do assert(q:send(('m%d'):format(i), i % 3)) end
  assert(q:send('x', 0, 0) == false)
  assert(q:receive(0))
  assert(q:with(function(msg) return msg end))
  expect_error(q.with, q, function() error('put back') end)
  expect_error(q.send, q, ('x'):rep(65))
  assert(q:count() == 6 and q:clear() == 6 and q:receive(0) == nil)
  q:info()

  local c = ipc.condition('VGcond' .. round, { cleanup = true })
  do local g <close> = m:lock() assert(c:wait(m, 1) == false) end
  c:signal()
  c:broadcast()
  c:info()

  local e = ipc.event('VGevent' .. round, { cleanup = true })
  e:set() assert(e:is_set() and e:wait(0)) e:clear() assert(not e:wait(1))
  local ea = ipc.event('VGauto' .. round, { auto_reset = true, cleanup = true })
  ea:set() assert(ea:wait(0) and not ea:wait(0))
  e:info()

  local b = ipc.barrier('VGbar' .. round, { count = 1, cleanup = true })
  local ok, last = b:wait(0)
  assert(ok and last)
  expect_error(ipc.barrier, 'VGbarX' .. round)
  b:info()

  local t = ipc.kv('VGkv' .. round, { size = 8192, cleanup = true })
  for i = 1, 20 do t:set('k' .. i, { i, ('v'):rep(i) }) end
  assert(t:count() == 20 and #t:keys() == 20)
  assert(t:incr('n', 2) == 2 and t:update('n', function(v) return v + 1 end) == 3)
  expect_error(t.update, t, 'n', function() error('no') end)
  assert(t:delete('k1') and t:get('k1') == nil)
  expect_error(t.set, t, 'big', ('x'):rep(100000)) -- full: an error, nothing lost
  assert(t:count() == 20)
  t:clear()
  t:info()

  local p = ipc.pidfile(os.tmpname())
  assert(p:create() and p:is_owner() and p:read() == ipc.pid())
  p:remove()

  assert(#ipc.list() >= 9)
  expect_error(ipc.mutex, 'bad name')
  expect_error(ipc.queue, 'VGshm' .. round) -- another type
  expect_error(ipc.decode, '\255\1\2')
  assert(ipc.decode(ipc.encode({ a = { 1, 2, { b = 'c' } } })).a[3].b == 'c')
  expect_error(ipc.encode, { f = print })

  -- explicit close for half of them, GC for the rest
  for _, o in ipairs({ s, m, sem, q }) do o:close() o:close() end
  for _, o in ipairs({ c, e, ea, b, t }) do o:remove() end
  s, m, sem, q, c, e, ea, b, t = nil
  collectgarbage()
  collectgarbage()
end

-- the command line, in this process
local cli = require 'interprocess.cli'
local devnull = io.open('/dev/null', 'w')
local out = io.stdout
io.stdout = devnull
assert(cli.main({ 'post', '--create', 'VGclisem', '2' }) == 0)
assert(cli.main({ 'wait', 'VGclisem', '--timeout', '0' }) == 0)
assert(cli.main({ 'send', '--create', 'VGcliq', 'hello' }) == 0)
assert(cli.main({ 'recv', 'VGcliq', '--timeout', '0' }) == 0)
assert(cli.main({ 'ls', '--json' }) == 0)
assert(cli.main({ 'info', 'VGcliq' }) == 0)
assert(cli.main({ 'rm', 'VGclisem', 'VGcliq' }) == 0)
io.stdout = out
devnull:close()
print('memcheck: every object exercised')
