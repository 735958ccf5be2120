-- The wait module (src/core/wait.c, docs/design.md "wait module"): every
-- object's blocking wait goes through ipc_wait_until.  What it must keep
-- for each of them: a blocked waiter sleeps (the spin policy is bounded),
-- a timeout is never early, no hand-off is lost while the spin budget
-- adapts, signals interrupt, and with one CPU (no spinning) it all works.
local H = require 'spec.helper'
local ipc = H.ipc

-- Child code that waits `ms` on an object that never becomes ready and
-- prints "<result> <wall ms> <cpu ms>" (cpu: os.clock, this process only).
local function blocked(setup, call)
  return setup .. [[
    local ms = tonumber(select(3, ...))
    local t0, c0 = ipc.clock(), os.clock()
    local r = ]] .. call .. [[

    io.write(tostring(r), ' ', ipc.clock() - t0, ' ', (os.clock() - c0) * 1000)
  ]]
end

local kinds = {
  { 'manual-reset event', function(n) return ipc.event(n, { cleanup = true }) end,
    blocked('local o = ipc.event((select(2, ...)))', 'o:wait(ms)') },
  { 'auto-reset event', function(n) return ipc.event(n, { auto_reset = true, cleanup = true }) end,
    blocked('local o = ipc.event((select(2, ...)), { auto_reset = true })', 'o:wait(ms)') },
  { 'barrier', function(n) return ipc.barrier(n, { count = 2, cleanup = true }) end,
    blocked('local o = ipc.barrier((select(2, ...)))', 'o:wait(ms)') },
  { 'condition', function(n) return ipc.condition(n, { cleanup = true }) end,
    blocked([[local o = ipc.condition((select(2, ...)))
      local m = ipc.mutex((select(2, ...)) .. 'm', { cleanup = true })
      m:lock()]], 'o:wait(m, ms)') },
}

-- The C side (spec/support/wait/wait_test.c), built from the core sources
-- with the sanitizers when the suite's ipcsh has them.
describe('wait module, C', function()
  local tmp = H.tmpname('waitc')
  local exe = tmp .. '/wait_test'
  local function sh_ok(cmd)
    local code, out, err = H.sh(cmd)
    assert(code == 0, cmd .. ' failed (' .. code .. '):\n' .. out .. err)
    return (out:gsub('\n$', ''))
  end
  setup(function()
    local _, needed = H.sh('readelf -d ' .. H.bin)
    local san = needed:find('libasan', 1, true) and ' -fsanitize=address,undefined' or ''
    local core = {}
    for _, f in ipairs({ 'wait', 'signals', 'rlock', 'failpoint', 'common', 'procid' }) do
      core[#core + 1] = 'src/core/' .. f .. '.c'
    end
    sh_ok('mkdir -p ' .. tmp)
    sh_ok(('cc -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Werror%s -Isrc/core -o %s ' ..
      'spec/support/wait/wait_test.c %s -pthread'):format(san, exe, table.concat(core, ' ')))
  end)
  teardown(function() os.execute('rm -rf ' .. tmp) end)

  it('a word not seen yet gets 4 us of spinning; none when pinned to one CPU', function()
    local ncpu = tonumber(sh_ok('nproc'))
    assert.equal(ncpu > 1 and '4000' or '0', sh_ok(exe .. ' budget'))
    if H.sh('taskset -c 0 true') == 0 then
      assert.equal('0', sh_ok('taskset -c 0 ' .. exe .. ' budget'))
    end
  end)

  it('waits that time out shrink the budget to its floor (helper and raw calls)', function()
    if tonumber(sh_ok('nproc')) < 2 then return pending('one CPU: no spinning') end
    assert.equal('500 500', sh_ok(exe .. ' shrink'))
  end)

  it('ipc_wait_until: ready, error, woken, deadline with slices, signal', function()
    assert.equal('ok', sh_ok(exe .. ' until'))
    if H.sh('taskset -c 0 true') == 0 then
      assert.equal('ok', sh_ok('taskset -c 0 ' .. exe .. ' until'))
    end
  end)
end)

describe('wait module', function()
  for _, k in ipairs(kinds) do
    it(k[1] .. ': a blocked wait sleeps (CPU < 10% of it) and never ends early', function()
      local name = H.name()
      local o <close> = k[2](name)
      local st, out, err = H.run(k[3], name, '1000')
      assert.equal(0, st, err)
      local r, wall, cpu = out:match('^(%S+) (%S+) (%S+)$')
      assert.equal('false', r, out)
      -- the deadline is the behaviour under test: never before it
      assert.is_true(tonumber(wall) >= 999, 'returned after ' .. wall .. ' ms')
      assert.is_true(tonumber(wall) < 10000, 'returned after ' .. wall .. ' ms')
      -- a waiter that spun instead of sleeping would use ~1000 ms
      assert.is_true(tonumber(cpu) < 100, 'used ' .. cpu .. ' ms of CPU')
    end)
  end

  -- Each hand-off either lands in the waiter's spin or wakes its sleep; the
  -- budget moves between them as the hand-offs' lengths vary.  A lost wake
  -- shows as a 10 s timeout.
  local pingpong = {
    auto = {
      open = [[local a = ipc.event(select(2, ...) .. 'a', { auto_reset = true })
               local b = ipc.event(select(2, ...) .. 'b', { auto_reset = true })]],
      ping = [[a:set() assert(b:wait(10000), 'lost at ' .. i)]],
      pong = [[assert(a:wait(10000), 'lost at ' .. i) b:set()]],
    },
    manual = {
      open = [[local a = ipc.event(select(2, ...) .. 'a')
               local b = ipc.event(select(2, ...) .. 'b')]],
      ping = [[a:set() assert(b:wait(10000), 'lost at ' .. i) b:clear()]],
      pong = [[assert(a:wait(10000), 'lost at ' .. i) a:clear() b:set()]],
    },
    barrier = {
      open = [[local a = ipc.barrier(select(2, ...) .. 'a', { count = 2 })]],
      ping = [[assert(a:wait(10000), 'lost at ' .. i)]],
      pong = [[assert(a:wait(10000), 'lost at ' .. i)]],
    },
  }

  local function run_pingpong(kind, rounds, prefix)
    local p = pingpong[kind]
    local name = H.name()
    local objs = {}
    if kind == 'barrier' then
      objs[1] = ipc.barrier(name .. 'a', { count = 2, cleanup = true })
    else
      local auto = kind == 'auto'
      objs[1] = ipc.event(name .. 'a', { auto_reset = auto, cleanup = true })
      objs[2] = ipc.event(name .. 'b', { auto_reset = auto, cleanup = true })
    end
    local function script(body)
      return p.open .. '\nready()\nwait_go()\nfor i = 1, ' .. rounds .. ' do ' .. body .. ' end'
    end
    local kids = {}
    for i, body in ipairs({ p.ping, p.pong }) do
      if prefix then
        -- run under a command prefix (taskset): through the shell
        local dir = H.tmpname('pp')
        os.execute('mkdir -p ' .. dir)
        local f = dir .. '/s.lua'
        H.write_file(f, 'ipc = require "interprocess"\n' ..
          script(body):gsub('ready%(%)\nwait_go%(%)\n', ''):gsub('select%(2, %.%.%.%)', ("%q"):format(name)))
        kids[i] = { cmd = prefix .. ' ' .. H.interpreter() .. ' ' .. f .. ' >' .. dir .. '/out 2>&1; echo $? >' ..
          dir .. '/status', dir = dir }
      else
        kids[i] = H.spawn(script(body), name)
      end
    end
    local t0 = H.clock()
    if prefix then
      os.execute('(' .. kids[1].cmd .. ') & (' .. kids[2].cmd .. ') & wait')
      for i = 1, 2 do
        local st = H.read_file(kids[i].dir .. '/status')
        assert.equal('0', st and st:match('%d+'), H.read_file(kids[i].dir .. '/out'))
      end
      for i = 1, 2 do os.execute('rm -rf ' .. kids[i].dir) end
    else
      for i = 1, 2 do assert.truthy(kids[i]:wait_ready()) end
      for i = 1, 2 do kids[i]:go() end
      for i = 1, 2 do assert.equal(0, kids[i]:wait(120000), H.crash_report(kids)) end
    end
    for _, o in ipairs(objs) do o:remove() o:close() end
    return H.clock() - t0
  end

  for _, kind in ipairs({ 'auto', 'manual', 'barrier' }) do
    it(kind .. ': 2,000 hand-offs between two processes, none lost', function()
      run_pingpong(kind, 2000)
    end)
  end

  it('pinned to one CPU (no spinning): 500 hand-offs each way still all arrive', function()
    local code = H.sh('taskset -c 0 true')
    if code ~= 0 then
      pending('taskset -c 0 is not available here')
      return
    end
    run_pingpong('auto', 500, 'taskset -c 0')
    run_pingpong('barrier', 500, 'taskset -c 0')
  end)

  -- lua.c sets its own SIGINT handler before every chunk it runs (and the
  -- default after it): the once-per-wait check must put ours back on top,
  -- or the wait below would sleep through the signal until its timeout.
  it('stock lua swaps SIGINT handlers per chunk: a wait in a later chunk is still interrupted',
    function()
      local so = os.getenv('IPCSH_SO_DIR')
      if not so or H.sh('command -v lua5.4 >/dev/null') ~= 0 then
        pending('needs lua5.4 and IPCSH_SO_DIR')
        return
      end
      -- a sanitized module needs libasan preloaded (spec/run.sh)
      local _, needed = H.sh('readelf -d ' .. so .. '/interprocess.so')
      if needed:find('libasan', 1, true) then
        pending('the module is sanitized: stock lua5.4 cannot load it')
        return
      end
      local name = H.name()
      local e <close> = ipc.event(name, { cleanup = true })
      local dir = H.tmpname('chunks')
      os.execute('mkdir -p ' .. dir)
      local q = function(x) return "'" .. x:gsub("'", "'\\''") .. "'" end
      local lua = ('exec env LUA_CPATH=%s lua5.4 -e %s -e %s -e %s'):format(q(so .. '/?.so;;'),
        q('ipc = require "interprocess"'), q(('e = ipc.event(%q)'):format(name)),
        q('print(pcall(e.wait, e, 10000))'))
      os.execute(('(sh -c %s >%s/out 2>&1; echo $? >%s/status) </dev/null >/dev/null 2>&1 &'):format(
        q('echo $$ >' .. dir .. '/pid; ' .. lua), dir, dir))
      assert.truthy(H.wait_until(function() return e:info().waiters == 1 end, 10000))
      local pid = tonumber(H.read_file(dir .. '/pid'))
      local t0 = H.clock()
      os.execute('kill -INT ' .. pid)
      local st = H.wait_file(dir .. '/status', 5000)
      assert.truthy(st, 'the wait slept through SIGINT')
      assert.is_true(H.clock() - t0 < 1000, 'took ' .. (H.clock() - t0) .. ' ms')
      local out = H.read_file(dir .. '/out') or ''
      assert.truthy(out:match('interrupted'), out)
      assert.equal(0, e:info().waiters)
      os.execute('rm -rf ' .. dir)
    end)

  it('SIGINT interrupts a condition wait promptly; the waiter is withdrawn', function()
    local name = H.name()
    local c <close> = ipc.condition(name, { cleanup = true })
    local m <close> = ipc.mutex(name .. 'm', { cleanup = true })
    local k = H.spawn([[
      local c = ipc.condition((select(2, ...)))
      local m = ipc.mutex((select(2, ...)) .. 'm')
      m:lock()
      ready()
      local ok, err = pcall(c.wait, c, m)
      io.write(tostring(ok), ' ', tostring(err), ' held=', tostring(m:held()))
    ]], name)
    assert.truthy(k:wait_ready())
    assert.truthy(H.wait_until(function() return c:info().waiters == 1 end, 10000))
    local t0 = H.clock()
    k:kill('INT')
    local st = k:wait(5000)
    assert.truthy(st, 'not interrupted')
    assert.is_true(H.clock() - t0 < 1000, 'took ' .. (H.clock() - t0) .. ' ms')
    local out = (k.out or '') .. (k.err or '')
    assert.is_true(st == 130 or out:match('interrupted') ~= nil, tostring(st) .. ' ' .. out)
    -- the mutex is taken back before the error is raised
    local held = out:match('held=(%S+)')
    assert.is_true(held == nil or held == 'exclusive', out)
    assert.equal(0, c:info().waiters)
    assert.truthy(m:lock(0), 'the mutex stayed held') -- released at the child's exit
    m:unlock()
  end)
end)
