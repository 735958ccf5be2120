-- libipcsh (include/ipcsh.h): the C API against the built library, shared
-- with Lua; the exported symbols; the examples in examples/c and
-- examples/python.  The C side is spec/support/capi/capi_test.c, compiled
-- here against the library the build made.
local H = require 'spec.helper'
local ipc = H.ipc
local q = H.quote

local top = (select(2, H.sh('pwd')):gsub('\n$', ''))
local so_dir = os.getenv('IPCSH_SO_DIR') or top
-- plain build: ./build/libipcsh.so.0; SANITIZE=1: build-san/libipcsh.so.0
local libdir = H.read_file(so_dir .. '/libipcsh.so.0') and so_dir or so_dir .. '/build'
local lib = libdir .. '/libipcsh.so.0'
local _, needed = H.sh('readelf -d ' .. q(lib))
local sanitized = needed:find('libasan', 1, true) ~= nil
local ccflags = '-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror' ..
  (sanitized and ' -fsanitize=address,undefined -fno-omit-frame-pointer' or '')

local tmp = H.tmpname('capi')
local capi = tmp .. '/capi_test'

local function must(cmd)
  local code, out, err = H.sh(cmd)
  assert(code == 0, cmd .. ' failed (' .. code .. '):\n' .. out .. err)
  return out
end

-- capi_test's one-line result
local function c(...)
  local args = {}
  for i, a in ipairs({ ... }) do args[i] = q(a) end
  return (must(q(capi) .. ' ' .. table.concat(args, ' ')):gsub('\n$', ''))
end

describe('libipcsh', function()
  setup(function()
    must('mkdir -p ' .. q(tmp))
    must(('cc %s -I%s/include -o %s %s/spec/support/capi/capi_test.c -L%s -lipcsh -Wl,-rpath,%s')
      :format(ccflags, q(top), q(capi), q(top), q(libdir), q(libdir)))
  end)
  teardown(function()
    os.execute('rm -rf ' .. q(tmp))
  end)

  it('is libipcsh.so.0, needs no liblua and exports only ipcsh_*', function()
    assert.truthy(needed:find('Library soname: [libipcsh.so.0]', 1, true), needed)
    assert.falsy(needed:find('liblua', 1, true))
    local syms = must('nm -D --defined-only ' .. q(lib))
    local names = {}
    for line in syms:gmatch('[^\n]+') do
      local name = line:match('(%S+)$')
      assert.truthy(name:match('^ipcsh_[%w_]+$'), 'exported: ' .. line)
      names[name] = true
    end
    for _, fn in ipairs({ 'mutex_open', 'mutex_lock', 'mutex_lock_shared', 'mutex_unlock',
      'mutex_close', 'semaphore_open', 'semaphore_post', 'semaphore_wait', 'semaphore_value',
      'semaphore_close', 'queue_open', 'queue_send', 'queue_receive', 'queue_close',
      'remove' }) do
      assert.truthy(names['ipcsh_' .. fn], 'missing ipcsh_' .. fn)
    end
  end)

  it('passes its in-process checks (errors, ownership, fork, sizes)', function()
    assert.equal('selftest ok', c('selftest', H.name('C')))
  end)

  it('a C lock waits for a Lua holder until its timeout, then gets it', function()
    local name = H.name('M')
    local m = ipc.mutex(name)
    assert.truthy(m:lock())
    local res, ms = c('lock', name, '200'):match('^(%u+) (%d+)$')
    assert.equal('TIMEOUT', res)
    ms = tonumber(ms)
    assert.is_true(ms >= 200 and ms < 3000, 'waited ' .. ms .. ' ms')
    m:unlock()
    assert.equal('OK', c('lock', name, '0'):match('^%u+'))
    m:remove()
  end)

  it('a C holder killed with SIGKILL hands the lock to a Lua waiter', function()
    local name = H.name('K')
    local m = ipc.mutex(name)
    local readyfile = tmp .. '/held-' .. name
    local holder = ipc.spawn({ capi, 'hold', name, readyfile })
    local reaped = false
    finally(function()
      if not reaped then holder:kill(9) holder:wait() end
    end)
    assert.truthy(H.wait_until(function() return H.read_file(readyfile) end, 10000))
    assert.same({ holder.pid }, m:info().holders)
    local waiter = H.spawn([[
      local m = ipc.mutex((select(2, ...)))
      ready('start')
      local g = m:lock(20000)
      io.write(g and 'got' or 'timeout')
    ]], name)
    H.guard(waiter, finally)
    assert.truthy(waiter:wait_ready('start'))
    assert.truthy(H.wait_until(function() return m:info().waiters == 1 end, 10000))
    holder:kill(9)
    local code, how, sig = holder:wait()
    reaped = true
    assert.same({ nil, 'signal', 9 }, { code, how, sig })
    assert.equal(0, waiter:wait())
    assert.equal('got', waiter.out)
    m:remove()
  end)

  it('shares semaphores with Lua', function()
    local name = H.name('S')
    local s = ipc.semaphore(name)
    local res, ms = c('sem-wait', name, '150'):match('^(%u+) (%d+)$')
    assert.equal('TIMEOUT', res)
    assert.is_true(tonumber(ms) >= 150, 'waited ' .. ms .. ' ms')
    s:post(2)
    assert.equal('OK', c('sem-wait', name, '0'):match('^%u+'))
    assert.equal('1', c('sem-value', name))
    assert.equal('OK', c('sem-post', name, '3'))
    assert.equal(4, s:value())
    s:remove()
  end)

  it('a signal does not end a C wait: the handler runs, the wait goes on', function()
    local name = H.name('G')
    local s = ipc.semaphore(name)
    local file = tmp .. '/sig-' .. name
    local h = ipc.spawn({ capi, 'sigwait', name, file })
    local reaped = false
    finally(function()
      if not reaped then h:kill(9) h:wait() end
    end)
    assert.truthy(H.wait_until(function() return s:info().waiters == 1 end, 10000))
    h:kill(10) -- SIGUSR1: its handler appends "s" to the file
    assert.truthy(H.wait_until(function() return H.read_file(file) == 's' end, 10000))
    -- still waiting (the process is alive and registered), nothing more written
    assert.equal(1, s:info().waiters)
    assert.equal('s', H.read_file(file))
    s:post()
    assert.equal(0, h:wait(20000))
    reaped = true
    assert.equal('sOK', H.read_file(file))
    s:remove()
  end)

  it('shares queues with Lua: defaults, priorities, binary sizes', function()
    local name = H.name('Q')
    assert.equal('OK', c('send', name, '5', 'from C'))
    local lq = ipc.queue(name)
    assert.equal(100, lq:max_count()) -- created by C with Lua's defaults
    assert.equal(1024, lq:max_size())
    assert.equal('OK', c('send', name, '9', 'urgent'))
    assert.same({ 'urgent', 9 }, { lq:receive(0) })
    assert.same({ 'from C', 5 }, { lq:receive(0) })
    assert.truthy(lq:send('from Lua', 3))
    -- a buffer too small: the message stays first in the queue
    assert.truthy(c('recv', name, '4', '0'):match('^ERR %d+ ipcsh_queue_receive: '))
    assert.equal('OK 3 8 from Lua', c('recv', name, '1024', '0'))
    assert.equal('TIMEOUT', c('recv', name, '1024', '0'))
    assert.equal(0, lq:count())
    local big = ipc.queue(H.name('Q'), { max_size = 4 })
    assert.truthy(c('send', big.name, '0', 'too long'):match('^ERR %d+ ipcsh_queue_send: .*at most 4'))
    big:remove()
    lq:remove()
  end)

  it('removes objects Lua made', function()
    local name = H.name('R')
    ipc.event(name)
    assert.equal('OK', c('remove', name))
    assert.truthy(c('remove', name):match('^ERR %d+ ipcsh_remove: no object'))
    assert.has_error(function() ipc.event(name, { assert = 'exists' }) end)
  end)

  it('examples/c: a C producer (built with pkg-config) feeds a Lua consumer', function()
    local prefix = tmp .. '/prefix'
    -- the library this run tests (plain or sanitized), whatever MAKEFLAGS say
    must(('env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C %s install-lib PREFIX=%s SANITIZE=%d')
      :format(q(top), q(prefix), sanitized and 1 or 0))
    local pc = prefix .. '/lib/pkgconfig'
    local flags = must(('PKG_CONFIG_PATH=%s pkg-config --cflags --libs ipcsh'):format(q(pc)))
    assert.truthy(flags:find('-lipcsh', 1, true))
    local prog = tmp .. '/producer'
    must(('cc %s -o %s %s/examples/c/producer.c %s'):format(ccflags, q(prog), q(top),
      flags:gsub('\n', '')))
    local name = H.name('J')
    -- 150 jobs through a 100-message queue: the producer waits for the consumer
    local out = must(('LD_LIBRARY_PATH=%s %s %s 150 & p=$!; timeout 120 %s %s/examples/c/consumer.lua %s; ' ..
      'st=$?; wait $p || exit 9; exit $st'):format(q(prefix .. '/lib'), q(prog), q(name),
      H.interpreter(), q(top), q(name)))
    local n = 0
    for line in out:gmatch('[^\n]+') do
      if line:match('^job') then
        n = n + 1
        assert.equal('job ' .. n, line)
      end
    end
    assert.equal(150, n)
    assert.truthy(out:find('consumer: 150 jobs', 1, true))
    ipc.remove(name)
  end)

  it('examples/python: Python ctypes takes a lock and receives what Lua sends', function()
    -- an ASan-built library needs the ASan runtime loaded first (and
    -- python3's own allocations are not ours to leak-check)
    local pyenv = ''
    if sanitized then
      local _, asan = H.sh('cc -print-file-name=libasan.so')
      pyenv = ('LD_PRELOAD=%s ASAN_OPTIONS=detect_leaks=0 '):format(q(asan:gsub('\n$', '')))
    end
    local name = H.name('P')
    -- a Lua process holds the consumer's lock for a moment: Python waits for it
    local holder = ipc.mutex(name .. 'Consumer')
    assert.truthy(holder:lock())
    local consumer = H.spawn([[
      local dir, top, lib, name, pyenv = ...
      ready('start')
      local code = os.execute(('%sIPCSH_LIB=%q python3 %q %q > %q 2>&1'):format(pyenv, lib,
        top .. '/examples/python/consumer.py', name, dir .. '/py'))
      io.write(tostring(code))
    ]], top, lib, name, pyenv)
    H.guard(consumer, finally)
    assert.truthy(consumer:wait_ready('start'))
    assert.truthy(H.wait_until(function() return holder:info().waiters == 1 end, 10000))
    -- everything is queued before Python gets the lock: it receives by
    -- priority, first in first out within one
    must(('%s %s/examples/python/sender.lua %s 5'):format(H.interpreter(), q(top), q(name)))
    holder:unlock()
    assert.equal(0, consumer:wait(60000))
    local out = H.read_file(consumer.dir .. '/py')
    assert.equal('true', consumer.out, out)
    assert.equal(table.concat({ 'message 2 (priority 2)', 'message 5 (priority 2)',
      'message 1 (priority 1)', 'message 4 (priority 1)', 'message 3 (priority 0)',
      'consumer.py: 5 messages', '' }, '\n'), out)
    holder:remove()
    ipc.remove(name)
  end)
end)
