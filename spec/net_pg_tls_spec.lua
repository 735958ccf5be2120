-- TLS and reconnection (issue 17, item 6): a throwaway cluster with
-- ssl=on and a self-signed certificate, connected with
-- sslmode=verify-full; after a server restart, net.reconnect() opens a new
-- session and names the locks that were lost.
local H = require 'spec.helper'
local P = require 'spec.support.pg'

local skip
local ok0, err0 = pcall(H.ipc.connect, 'postgresql://nobody@127.0.0.1:1/x')
if not ok0 and tostring(err0):find('without PostgreSQL support', 1, true) then
  skip = 'built without PostgreSQL'
elseif H.sh('command -v openssl') ~= 0 then
  skip = 'needs openssl (certificate generation)'
end

local dir, cluster, why

-- A self-signed certificate for CN/SAN localhost: crt and key texts.
local function make_cert(tag)
  local base = dir .. '/' .. tag
  local st, _, err = H.sh(('openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 2 -subj /CN=localhost' ..
    ' -addext subjectAltName=DNS:localhost'):format(H.quote(base .. '.key'), H.quote(base .. '.crt')))
  assert(st == 0, err)
  return base .. '.crt', H.read_file(base .. '.crt'), H.read_file(base .. '.key')
end

describe('PostgreSQL over TLS, and reconnection', function()
  if skip then return pending('tls: ' .. skip) end
  setup(function()
    dir = H.tmpname('tls')
    assert(os.execute('mkdir -p ' .. H.quote(dir)))
    local _, crt, key = make_cert('server')
    cluster, why = P.cluster({ conf = "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'",
      files = { ['server.crt'] = crt, ['server.key'] = key } })
    assert(cluster, why)
  end)
  teardown(function()
    P.stop_cluster(cluster)
    if dir then os.execute('rm -rf ' .. H.quote(dir)) end
  end)

  local function url(rootcert)
    return ('postgresql://%s@localhost:%d/postgres?sslmode=verify-full&sslrootcert=%s'):format(cluster.user,
      cluster.port, rootcert)
  end

  it('sslmode=verify-full with the server certificate as root: encrypted; another root is refused', function()
    local n = H.ipc.connect(url(dir .. '/server.crt'))
    local r = n._ns._conn:exec(nil, 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')
    assert.is_true(r[1][1])
    local m = n.mutex(H.name('T'))
    assert.truthy(m:lock(0))
    m:unlock()
    m:remove()
    n.close()
    local other = make_cert('other')
    local ok, err = pcall(H.ipc.connect, url(other))
    assert.is_false(ok)
    assert.truthy(tostring(err):find('certificate', 1, true), tostring(err))
  end)

  it('after a server restart: calls report the lost locks; reconnect() names them and works again', function()
    local n = H.ipc.connect(url(dir .. '/server.crt'))
    local a, b = n.mutex(H.name('R')), n.mutex(H.name('R'))
    assert.truthy(a:lock())
    assert.truthy(b:lock_shared())
    assert.truthy(P.restart_cluster(cluster))
    local ok, err = pcall(a.held, a)
    assert.is_false(ok)
    assert.truthy(tostring(err):find('lost', 1, true), tostring(err))
    assert.truthy(tostring(err):find(a.name, 1, true), tostring(err))
    local lost = H.wait_until(function()
      local ok2, l = pcall(n.reconnect)
      return ok2 and l
    end, 20000)
    local want = { ('mutex "%s" (exclusive)'):format(a.name), ('mutex "%s" (shared)'):format(b.name) }
    table.sort(want)
    assert.are.same(want, lost)
    assert.is_nil(a:held())
    assert.truthy(a:lock(0)) -- the handles work on the new session
    assert.are.equal('exclusive', a:held())
    a:unlock()
    assert.same({}, n.reconnect())
    a:remove()
    b:remove()
  end)
end)
