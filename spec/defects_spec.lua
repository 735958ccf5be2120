-- Smaller defects found by probing (issue 12, part 4): cleanup registry
-- size and reuse, undo semaphores posted by another process, shm add
-- overflow, objects truncated under a live user.
local H = require 'spec.helper'
local ipc = H.ipc

local dir = os.getenv('IPCSH_DIR') or '/dev/shm'

-- Objects whose name starts with prefix, still in the directory.
local function left(prefix)
  local n = 0
  local p = io.popen('ls -1 ' .. H.quote(dir))
  for f in p:lines() do
    if f:sub(1, 5 + #prefix) == 'ipcs.' .. prefix then n = n + 1 end
  end
  p:close()
  return n
end

describe('cleanup = true', function()
  it('works for any number of objects (2000 in one process)', function()
    local prefix = 'C' .. ipc.uid()
    local st, out, err = H.run([[
      local prefix = select(2, ...)
      for i = 1, 2000 do ipc.mutex(prefix .. 'n' .. i, { cleanup = true }) end
      print('made')
    ]], prefix)
    assert.equal(0, st, err)
    assert.equal('made\n', out)
    assert.equal(0, left(prefix))
  end)

  it('a fatal signal removes all of them too (the handler walks every entry)', function()
    local prefix = 'C' .. ipc.uid()
    local c = H.spawn([[
      local prefix = select(2, ...)
      for i = 1, 1500 do ipc.mutex(prefix .. 'n' .. i, { cleanup = true }) end
      ready()
      ipc.sleep(60000)
    ]], prefix)
    H.guard(c, finally)
    assert.truthy(c:wait_ready(nil, 60000))
    assert.equal(1500, left(prefix))
    c:kill('TERM')
    assert.equal(128 + 15, c:wait())
    assert.equal(0, left(prefix))
  end)

  it('slots of removed objects are reused: 5000 create/remove cycles, then exit', function()
    local prefix = 'C' .. ipc.uid()
    local st, _, err = H.run([[
      local prefix = select(2, ...)
      for i = 1, 5000 do
        local m = ipc.mutex(prefix .. 'n' .. (i % 7), { cleanup = true })
        m:remove()
        m:close()
      end
      -- registered after 5000 retired entries: still removed at exit
      for i = 1, 3 do ipc.mutex(prefix .. 'k' .. i, { cleanup = true }) end
    ]], prefix)
    assert.equal(0, st, err)
    assert.equal(0, left(prefix))
  end)

  it('an object re-created under the same name (by someone else removing it) is still removed',
    function()
      local prefix = 'C' .. ipc.uid()
      local name = prefix .. 'x'
      local st, out, err = H.run([[
        local name, bin = select(2, ...)
        local m = ipc.mutex(name, { cleanup = true })
        m:close()
        -- another process removes it; this one creates it anew
        assert(os.execute(('%s rm %s'):format(bin, name)))
        local m2 = ipc.mutex(name, { cleanup = true })
        print(m2:info().creator_pid == ipc.pid())
      ]], name, H.bin)
      assert.equal(0, st, err)
      assert.equal('true\n', out)
      assert.equal(0, left(prefix))
    end)
end)

describe('undo semaphore posted by another process', function()
  it('the post settles the permit the other process holds: its death gives back nothing more',
    function()
      local name = H.name()
      local s <close> = ipc.semaphore(name, { value = 1, undo = true, cleanup = true })
      local c = H.spawn([[
        local s = ipc.semaphore((select(2, ...)))
        assert(s:wait(5000))
        ready()
        ipc.sleep(60000)
      ]], name)
      H.guard(c, finally)
      assert.truthy(c:wait_ready())
      assert.equal(0, s:value())
      assert.is_true(s:post()) -- this process holds none: pays for the child's
      assert.equal(1, s:value())
      c:kill(9)
      assert.equal(137, c:wait())
      -- the child's permit was given back by our post: not returned twice
      assert.equal(1, s:value())
      assert.is_true(s:wait(0))
      assert.is_false(s:wait(0))
    end)

  it('never exceeds max, whoever posts and whoever dies', function()
    local name = H.name()
    local s <close> = ipc.semaphore(name, { value = 2, max = 2, undo = true, cleanup = true })
    local c = H.spawn([[
      local s = ipc.semaphore((select(2, ...)))
      assert(s:wait(5000)) assert(s:wait(5000))
      ready()
      ipc.sleep(60000)
    ]], name)
    H.guard(c, finally)
    assert.truthy(c:wait_ready())
    assert.equal(0, s:value())
    assert.is_true(s:post())
    assert.equal(1, s:value())
    c:kill(9)
    assert.equal(137, c:wait())
    -- one permit was paid by our post, the other comes back: exactly max
    assert.equal(2, s:value())
    assert.has_error(function() s:post() end)
    assert.equal(2, s:value())
  end)

  it('a process posting its own permit back is unchanged: its death returns nothing', function()
    local name = H.name()
    local s <close> = ipc.semaphore(name, { value = 1, undo = true, cleanup = true })
    local st = H.run([[
      local s = ipc.semaphore((select(2, ...)))
      assert(s:wait(5000))
      assert(s:post())
      os.exit(0)
    ]], name)
    assert.equal(0, st)
    assert.equal(1, s:value())
  end)
end)

describe('shm add', function()
  it('overflow is an error naming add; the value is left unchanged', function()
    local s <close> = ipc.shm(H.name(), { size = 64, cleanup = true })
    s:pack(8, '<i8', math.maxinteger - 1)
    assert.equal(math.maxinteger, s:add(8, 1))
    local ok, err = pcall(function() return s:add(8, 1) end)
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'add' %(overflow", err) -- #2: a method call
    assert.equal(math.maxinteger, s:unpack('<i8', 8))
    assert.equal(-1, s:add(8, math.mininteger))
    s:pack(16, '<i8', math.mininteger)
    ok, err = pcall(function() return s:add(16, -1) end)
    assert.is_false(ok)
    assert.matches('overflow', err)
    assert.equal(math.mininteger, s:unpack('<i8', 16))
  end)
end)

describe('an object truncated under a live user', function()
  it('info, open and list report it in that process instead of dying of SIGBUS', function()
    local name = H.name()
    finally(function() ipc.remove(name) ipc.remove(name .. 's') end)
    local st, out, err = H.run([[
      local name, path = select(2, ...)
      local m = ipc.mutex(name)
      local s = ipc.shm(name .. 's', { size = 65536 })
      assert(os.execute('truncate -s 4096 ' .. path .. ' ' .. path .. 's'))
      print('info', m:info().error)
      print('shm info', s:info().error)
      print('open', pcall(ipc.mutex, name))
      print('open shm', pcall(ipc.shm, name .. 's'))
      for _, o in ipairs(ipc.list()) do
        if o.name == name then print('list', o.type, o.error) end
      end
      print('alive')
    ]], name, dir .. '/ipcs.' .. name)
    assert.equal(0, st, err)
    assert.matches('info\t[^\n]*truncated to 4096 bytes', out)
    assert.matches('shm info\t[^\n]*truncated to 4096 bytes', out)
    assert.matches('open\tfalse\t[^\n]*truncated to 4096 bytes', out)
    assert.matches('open shm\tfalse\t[^\n]*truncated to 4096 bytes', out)
    assert.matches('list\tinvalid\t[^\n]*4096', out)
    assert.matches('alive', out)
    -- and from another process: ls and info report it, exit 2, no crash
    local code, _, e = H.sh(('%s info %s'):format(H.quote(H.bin), name))
    assert.equal(2, code)
    assert.matches('corrupt', e)
  end)
end)
