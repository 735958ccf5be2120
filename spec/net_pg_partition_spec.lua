-- Partitions (issue 17, item 2): two client "hosts" in network namespaces,
-- each joined to a server namespace by a veth pair (10.213.0.0/30 and
-- 10.213.0.4/30, only inside namespaces this spec creates: names carry
-- our pid, the teardown deletes them).  Cutting the holder's link frees
-- its lock for the other host within the session bound; once the link is
-- back, the holder's next call reports the loss.
-- Runs under the ipcsh interpreter only: what is tested is the kernel's
-- and the server's keepalive handling and the C connection code, the same
-- under either interpreter, and it costs ~10 s.
local H = require 'spec.helper'
local P = require 'spec.support.pg'

local BOUND = 4000 -- ms: session_timeout used here (the default is 10000)

local skip
if not H.under_ipcsh then
  skip = 'runs under the ipcsh interpreter only (interpreter-independent, ~10 s)'
elseif not select(2, H.sh('id -u')):match('^0%s') then
  skip = 'needs root (ip netns)'
elseif H.sh('command -v ip') ~= 0 then
  skip = 'needs iproute2 (ip)'
else
  local ok, err = pcall(H.ipc.connect, 'postgresql://nobody@127.0.0.1:1/x')
  if not ok and tostring(err):find('without PostgreSQL support', 1, true) then skip = 'built without PostgreSQL' end
end

local pid = H.ipc.pid()
local NS = { s = ('ipcsh-%d-s'):format(pid), a = ('ipcsh-%d-a'):format(pid), b = ('ipcsh-%d-b'):format(pid) }
local VETH = { sa = ('ipc%dsa'):format(pid), a = ('ipc%da'):format(pid), sb = ('ipc%dsb'):format(pid),
  b = ('ipc%db'):format(pid) }
local cluster

local function ip(args)
  local st, _, err = H.sh('ip ' .. args)
  assert(st == 0, 'ip ' .. args .. ': ' .. err)
end

local function net_up()
  for _, n in pairs(NS) do ip('netns add ' .. n) end
  for _, side in ipairs({ { 'a', 'sa', '10.213.0.1', '10.213.0.2' }, { 'b', 'sb', '10.213.0.5', '10.213.0.6' } }) do
    local c, s, saddr, caddr = side[1], side[2], side[3], side[4]
    ip(('link add %s netns %s type veth peer name %s netns %s'):format(VETH[s], NS.s, VETH[c], NS[c]))
    ip(('-n %s addr add %s/30 dev %s'):format(NS.s, saddr, VETH[s]))
    ip(('-n %s addr add %s/30 dev %s'):format(NS[c], caddr, VETH[c]))
    ip(('-n %s link set %s up'):format(NS.s, VETH[s]))
    ip(('-n %s link set %s up'):format(NS[c], VETH[c]))
    ip(('-n %s link set lo up'):format(NS[c]))
  end
  ip(('-n %s link set lo up'):format(NS.s))
end

local function net_down()
  for _, n in pairs(NS) do H.sh('ip netns del ' .. n) end -- their veths go with them
end

-- Spawn code inside network namespace ns.
local function spawn_in(ns, code, ...)
  local orig = H.interpreter
  H.interpreter = function() return 'ip netns exec ' .. H.quote(ns) .. ' ' .. orig() end
  local ok, c = pcall(H.spawn, code, ...)
  H.interpreter = orig
  assert(ok, c)
  return c
end

describe('PostgreSQL across a network partition', function()
  if skip then return pending('partition: ' .. skip) end

  setup(function()
    -- undo what was made if any step fails (teardown may not run then)
    local ok, err = pcall(net_up)
    if ok then
      cluster, err = P.cluster({ netns = NS.s, listen = '10.213.0.1,10.213.0.5',
        hba = 'host all all 10.213.0.0/24 trust' })
      ok = cluster ~= nil
    end
    if not ok then
      net_down()
      error(err, 0)
    end
  end)
  teardown(function()
    P.stop_cluster(cluster)
    net_down()
  end)

  it('cut the holder off: the other host gets the lock within the bound; the holder learns of the loss', function()
    local url_a = ('postgresql://%s@10.213.0.1:%d/postgres'):format(cluster.user, cluster.port)
    local url_b = ('postgresql://%s@10.213.0.5:%d/postgres'):format(cluster.user, cluster.port)
    local name = H.name('P')
    local holder = spawn_in(NS.a, ([[
      local m = ipc.connect(%q, { session_timeout = %d }).mutex(select(2, ...))
      assert(m:lock(5000))
      ready()
      wait_go()
      local ok, err = pcall(m.held, m)
      print('held', ok, err)
      ok, err = pcall(m.unlock, m)
      print('unlock', ok, err)
    ]]):format(url_a, BOUND), name)
    H.guard(holder, finally)
    assert.truthy(holder:wait_ready(), table.concat({ holder:output() }, '\n'))
    local other = spawn_in(NS.b, ([[
      local m = ipc.connect(%q, { session_timeout = %d }).mutex(select(2, ...))
      print('before', m:lock(0))
      ready()
      wait_go()
      local t = ipc.clock()
      local g = m:lock(30000)
      print('got', g and true or false, math.floor(ipc.clock() - t))
      m:unlock()
    ]]):format(url_b, BOUND), name)
    H.guard(other, finally)
    assert.truthy(other:wait_ready(), table.concat({ other:output() }, '\n'))
    -- cut: the server side of the holder's link goes down
    ip(('-n %s link set %s down'):format(NS.s, VETH.sa))
    other:go()
    assert.are.equal(0, other:wait(40000), table.concat({ other:output() }, '\n'))
    assert.truthy(other.out:find('before\tfalse', 1, true), other.out)
    local ms = tonumber(other.out:match('got\ttrue\t(%d+)'))
    assert.truthy(ms, other.out)
    -- the bound plus a margin for a loaded machine (keepalive timers fire
    -- on whole seconds)
    assert.is_true(ms <= BOUND + 3000, ('lock came after %d ms'):format(ms))
    -- restore: the holder's next call reports the loss, naming the lock
    ip(('-n %s link set %s up'):format(NS.s, VETH.sa))
    holder:go()
    assert.are.equal(0, holder:wait(40000), table.concat({ holder:output() }, '\n'))
    assert.truthy(holder.out:find('held\tfalse\t[^\n]*lost[^\n]*' .. name), holder.out)
    assert.truthy(holder.out:find('unlock\tfalse', 1, true), holder.out)
  end)
end)
