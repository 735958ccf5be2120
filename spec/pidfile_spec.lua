local H = require 'spec.helper'
local ipc = H.ipc

local function pidpath(tag)
  return H.tmpname(tag or 'pid') .. '.pid'
end

local function exists(path)
  return H.read_file(path) ~= nil
end

-- A pid that is certainly not running: a child that has been reaped.
local function dead_pid()
  local h = ipc.fork(function() end)
  assert.equal(0, h:wait(10000))
  return h.pid
end


local function guard(c) H.guard(c, finally) end

describe('pidfile', function()
  it('create -> true; read is our pid; is_owner; the file holds the pid', function()
    local path = pidpath()
    local p = ipc.pidfile(path)
    assert.equal('pidfile', ipc.type(p))
    assert.equal(('pidfile "%s"'):format(path), tostring(p))
    assert.equal(path, p.path)
    assert.is_false(p:is_owner())
    assert.is_nil(p:read())
    assert.is_true(p:create())
    assert.is_true(p:create()) -- already ours
    assert.is_true(p:is_owner())
    assert.equal(ipc.pid(), p:read())
    assert.equal(ipc.pid() .. '\n', H.read_file(path))
    assert.is_true(p:remove())
    assert.is_false(exists(path))
    assert.is_false(p:is_owner())
    assert.is_false(p:remove())
  end)

  it('another process gets false, pid; its read() names us', function()
    local path = pidpath()
    local p = ipc.pidfile(path)
    assert.is_true(p:create())
    local st, out = H.run([[
      local q = ipc.pidfile(select(2, ...))
      local ok, pid = q:create()
      io.write(table.concat({ tostring(ok), tostring(pid), tostring(q:read()),
        tostring(q:is_owner()), tostring(q:remove()) }, ' '), '\n')
    ]], path)
    assert.equal(0, st)
    assert.equal(('false %d %d false false\n'):format(ipc.pid(), ipc.pid()), out)
    assert.equal(ipc.pid() .. '\n', H.read_file(path)) -- a non-owner's remove left it
    assert.is_true(p:remove())
  end)

  it('a second handle in the same process is not the owner', function()
    local path = pidpath()
    local p, q = ipc.pidfile(path), ipc.pidfile(path)
    assert.is_true(p:create())
    local ok, pid = q:create()
    assert.is_false(ok)
    assert.equal(ipc.pid(), pid)
    assert.is_false(q:is_owner())
    assert.is_false(q:remove())
    assert.is_true(exists(path))
    assert.is_true(p:remove())
    assert.is_true(q:create())
    assert.is_true(q:remove())
  end)

  it('an owner killed with SIGKILL: read() -> nil, the next create takes over', function()
    local path = pidpath()
    local c = H.spawn([[
      local p = ipc.pidfile(select(2, ...))
      assert(p:create())
      ready()
      ipc.sleep(60000)
    ]], path)
    guard(c)
    assert.truthy(c:wait_ready())
    local p = ipc.pidfile(path)
    assert.equal(c.pid, p:read())
    local ok, pid = p:create()
    assert.is_false(ok)
    assert.equal(c.pid, pid)
    c:kill(9)
    assert.equal(137, c:wait())
    -- the file still says the dead pid, but nobody owns it
    assert.equal(c.pid .. '\n', H.read_file(path))
    assert.is_nil(p:read())
    assert.is_true(p:create())
    assert.equal(ipc.pid() .. '\n', H.read_file(path))
    assert.is_true(p:remove())
  end)

  it('a stale file is taken over, whatever pid it names', function()
    local path = pidpath()
    local dead = dead_pid()
    H.write_file(path, dead .. '\n')
    local p = ipc.pidfile(path)
    assert.is_nil(p:read())
    assert.is_true(p:create())
    assert.equal(ipc.pid() .. '\n', H.read_file(path))
    assert.is_true(p:remove())
    -- a live pid in a file nobody locks is not an owner either (pid 1 lives)
    H.write_file(path, '1\n')
    assert.is_nil(p:read())
    assert.is_true(p:create())
    assert.is_true(p:remove())
    -- garbage, and a longer old content: truncated when taken over
    H.write_file(path, ('garbage '):rep(100))
    assert.is_true(p:create())
    assert.equal(ipc.pid() .. '\n', H.read_file(path))
    assert.is_true(p:remove())
  end)

  it('a forked child is not the owner and cannot remove the file', function()
    local path = pidpath()
    local p = ipc.pidfile(path)
    assert.is_true(p:create())
    local h = ipc.fork(function()
      if p:is_owner() then os.exit(10) end
      if p:remove() then os.exit(11) end
      if p:read() ~= ipc.pid() and p:read() ~= nil then
        -- the owner is our parent
        local ok, pid = ipc.pidfile(path):create()
        if ok then os.exit(12) end
        os.exit(pid == p:read() and 0 or 13)
      end
      os.exit(14)
    end)
    assert.equal(0, h:wait(10000))
    assert.is_true(p:is_owner())
    assert.equal(ipc.pid() .. '\n', H.read_file(path))
    assert.is_true(p:remove())
  end)

  it('ownership does not survive in a forked child once the owner dies', function()
    local path = pidpath()
    local c = H.spawn([[
      local dir, path = ...
      local p = ipc.pidfile(path)
      assert(p:create())
      local h = ipc.fork(function() ipc.sleep(20000) end)
      local f = io.open(dir .. '/grandchild', 'w') f:write(h.pid) f:close()
      ready()
      ipc.sleep(60000)
    ]], path)
    guard(c)
    assert.truthy(c:wait_ready())
    local grandchild = tonumber(H.read_file(c.dir .. '/grandchild'))
    local p = ipc.pidfile(path)
    assert.equal(c.pid, p:read())
    c:kill(9)
    assert.equal(137, c:wait())
    -- the forked grandchild still lives and holds the inherited fd table...
    assert.is_true(H.sh('kill -0 ' .. grandchild) == 0)
    -- ...but not the lock
    assert.is_nil(p:read())
    assert.is_true(p:create())
    assert.is_true(p:remove())
    H.sh('kill -9 ' .. grandchild)
  end)

  it('an owner SIGKILLed at random instants of create/remove never wedges the file', function()
    local path = pidpath()
    local p = ipc.pidfile(path)
    math.randomseed(os.time())
    for round = 1, 8 do
      local c = H.spawn([[
        local p = ipc.pidfile(select(2, ...))
        ready()
        while true do
          if p:create() then p:remove() end
        end
      ]], path)
      guard(c)
      assert.truthy(c:wait_ready())
      -- meanwhile, reads from here see either nobody or that child
      local deadline = ipc.clock() + math.random(5, 60)
      while ipc.clock() < deadline do
        local pid = p:read()
        assert.truthy(pid == nil or pid == c.pid, 'round ' .. round .. ': read ' .. tostring(pid))
      end
      c:kill(9)
      assert.equal(137, c:wait())
      assert.is_nil(p:read())
      assert.is_true(p:create(), 'round ' .. round)
      assert.equal(ipc.pid() .. '\n', H.read_file(path))
      assert.is_true(p:remove())
    end
  end)

  it('exactly one of several racing processes wins', function()
    local path = pidpath()
    local go = H.tmpname('go')
    for round = 1, 3 do
      local kids = {}
      for i = 1, 4 do
        kids[i] = H.spawn([[
          local dir, path, go = ...
          local p = ipc.pidfile(path)
          ready()
          while not io.open(go) do ipc.sleep(1) end
          local ok, pid = p:create()
          print(ok and 'won' or ('lost ' .. tostring(pid)))
          io.stdout:flush()
          ready('done')
          ipc.sleep(ok and 60000 or 0)
        ]], path, go)
        guard(kids[i])
      end
      for i = 1, 4 do assert.truthy(kids[i]:wait_ready()) end
      H.write_file(go, 'go')
      for i = 1, 4 do assert.truthy(kids[i]:wait_ready('done')) end
      local winner
      for i = 1, 4 do
        local out = H.read_file(kids[i].dir .. '/out')
        if out == 'won\n' then
          assert.is_nil(winner, 'two winners in round ' .. round)
          winner = kids[i]
        end
      end
      assert.truthy(winner, 'no winner in round ' .. round)
      for i = 1, 4 do
        if kids[i] ~= winner then
          assert.equal(0, kids[i]:wait())
          assert.equal('lost ' .. winner.pid .. '\n', kids[i].out)
        end
      end
      assert.equal(winner.pid, ipc.pidfile(path):read())
      winner:kill(9)
      assert.equal(137, winner:wait())
      os.remove(go)
    end
    os.remove(path)
  end)

  it('<close> releases and removes the file', function()
    local path = pidpath()
    do
      local p <close> = ipc.pidfile(path)
      assert.is_true(p:create())
      assert.is_true(exists(path))
    end
    assert.is_false(exists(path))
    assert.is_nil(ipc.pidfile(path):read())
  end)

  it('a collected owning handle keeps ownership until exit, then the file goes', function()
    local path = pidpath()
    local c = H.spawn([[
      local dir, path = ...
      assert(ipc.pidfile(path):create())
      collectgarbage() collectgarbage()
      ready()
      while not io.open(dir .. '/go') do ipc.sleep(2) end
    ]], path)
    guard(c)
    assert.truthy(c:wait_ready())
    local ok, pid = ipc.pidfile(path):create()
    assert.is_false(ok)
    assert.equal(c.pid, pid)
    H.write_file(c.dir .. '/go', '1')
    assert.equal(0, c:wait())
    assert.is_false(exists(path))
  end)

  it('a relative path is made absolute at construction', function()
    local cwd = io.popen('pwd'):read('l')
    local p = ipc.pidfile('rel-ipcsh-test.pid')
    assert.equal(cwd .. '/rel-ipcsh-test.pid', p.path)
    p = ipc.pidfile('./a/../b.pid')
    assert.equal(cwd .. '/./a/../b.pid', p.path)
  end)

  it('rejects bad arguments and reports OS errors with the path', function()
    assert.has_error(function() ipc.pidfile() end)
    local ok, err = pcall(ipc.pidfile, 42)
    assert.is_false(ok)
    assert.matches("bad argument #1 to '[%w.]*pidfile'", err)
    ok, err = pcall(ipc.pidfile, '')
    assert.matches('bad argument #1', err, 1, true)
    ok, err = pcall(ipc.pidfile, 'a\0b')
    assert.matches('bad argument #1', err, 1, true)
    assert.has_error(function() ipc.pidfile('/tmp/x').create() end)

    -- a directory we cannot write (even root cannot create files in /sys)
    local p = ipc.pidfile('/sys/ipcsh-test.pid')
    ok, err = pcall(p.create, p)
    assert.is_false(ok)
    assert.matches('/sys/ipcsh-test.pid', err, 1, true)
    assert.matches('Permission denied', err, 1, true)
    assert.is_nil(p:read())

    p = ipc.pidfile('/nonexistent-dir-ipcsh/x.pid')
    ok, err = pcall(p.create, p)
    assert.is_false(ok)
    assert.matches("'/nonexistent-dir-ipcsh/x.pid'", err, 1, true)
    assert.matches('No such file or directory', err, 1, true)

    -- symbolic links are refused (O_NOFOLLOW)
    local target, link = pidpath('target'), pidpath('link')
    assert.equal(0, H.sh(('ln -s %s %s'):format(H.quote(target), H.quote(link))))
    p = ipc.pidfile(link)
    ok, err = pcall(p.create, p)
    assert.is_false(ok)
    assert.matches('symbolic link', err, 1, true)
    assert.is_false(exists(target))
    os.remove(link)

    -- a directory is not a pid file
    p = ipc.pidfile('/tmp')
    ok, err = pcall(p.create, p)
    assert.is_false(ok)
  end)

  it('a classic whole-file fcntl lock of another program excludes us', function()
    if H.sh('command -v python3') ~= 0 then return pending('needs python3') end
    local path = pidpath()
    H.write_file(path, '')
    local c = H.spawn([[
      local dir, path = ...
      os.execute(("env -u LD_PRELOAD python3 -c 'import fcntl,sys,time\n" ..
        "f=open(sys.argv[1],\"r+\"); fcntl.lockf(f, fcntl.LOCK_EX)\n" ..
        "open(sys.argv[2],\"w\").write(\"1\"); time.sleep(60)' %s %s"):format(path, dir .. '/ready'))
    ]], path)
    guard(c)
    assert.truthy(c:wait_ready())
    local p = ipc.pidfile(path)
    local ok, pid = p:create()
    assert.is_false(ok)
    -- the file is empty: the pid is the one fcntl(F_GETLK) reports
    assert.is_number(pid)
    assert.equal(pid, p:read())
    assert.equal('python3', (H.read_file('/proc/' .. pid .. '/comm') or ''):match('%S+'))
    H.sh('kill ' .. pid)
    assert.truthy(H.wait_until(function() return p:read() == nil end, 10000))
    assert.is_true(p:create())
    assert.is_true(p:remove())
    c:kill(9)
    c:wait()
  end)

  it('a file that was removed behind the owner\'s back is no longer owned', function()
    local path = pidpath()
    local p = ipc.pidfile(path)
    assert.is_true(p:create())
    os.remove(path)
    assert.is_false(p:is_owner())
    local q = ipc.pidfile(path)
    assert.is_true(q:create())
    assert.is_false(p:remove()) -- does not unlink q's file
    assert.is_true(exists(path))
    assert.is_true(q:remove())
  end)
end)
