-- The namespace (docs/design.md "The namespace"): the private per-user
-- directory by default, IPCSH_DIR / opts.dir to share.  The private directory
-- is made under IPCSH_TMPDIR here (a fresh directory per test) so that the
-- tests never touch the real /dev/shm/ipcsh-UID.  Other users: security_spec.
local H = require 'spec.helper'
local ipc = H.ipc

local uid = select(2, H.sh('id -u')):match('%d+')
local q = H.quote

-- `env` words for a table name -> value (false: unset).
local function env_words(env)
  local unset, set = {}, {}
  for k, v in pairs(env) do
    if v == false then unset[#unset + 1] = '-u ' .. k else set[#set + 1] = k .. '=' .. q(v) end
  end
  table.sort(unset)
  table.sort(set)
  -- env takes its options before the first assignment
  return table.concat({ 'env', table.concat(unset, ' '), table.concat(set, ' ') }, ' ')
end

-- Run code (with `ipc`) in a child whose environment is changed by env.
-- Returns status, stdout, stderr.
local function run(env, code)
  return H.sh(('%s %s -e %s'):format(env_words(env), H.interpreter(),
    q('ipc = require "interprocess" ' .. code)))
end

-- The command line with the same kind of environment.
local function cli(env, args)
  return H.sh(('%s %s %s'):format(env_words(env), q(H.bin), args))
end

local function mode_of(path)
  local _, out = H.sh('stat -c %a ' .. q(path))
  return out:match('%d+')
end

local function exists(path)
  return H.sh('test -e ' .. q(path) .. ' || test -L ' .. q(path)) == 0
end

describe('namespace', function()
  local base, env, private
  before_each(function()
    local _, out = H.sh('mktemp -d /dev/shm/ipcsh-nsspec.XXXXXX')
    base = out:match('%S+')
    env = { IPCSH_DIR = false, IPCSH_TMPDIR = base }
    private = base .. '/ipcsh-' .. uid
  end)
  after_each(function()
    if base then H.sh('rm -rf ' .. q(base)) end
  end)

  it('is a private directory per user, made 0700 on first use', function()
    local code, out, err = run(env, 'print(ipc.namespace())')
    assert.equal(0, code, err)
    assert.equal(private, out:match('%S+'))
    assert.is_false(exists(private), 'made before first use')
    code, out, err = run(env, 'local q = ipc.queue("jobs") q:send("x") print(q:count())')
    assert.equal(0, code, err)
    assert.equal('1', out:match('%S+'))
    assert.equal('700', mode_of(private))
    assert.truthy(H.read_file(private .. '/ipcs.jobs'))
    assert.is_nil(H.read_file(base .. '/ipcs.jobs'))
    -- the same name from another process is the same object
    code, out, err = run(env, 'print(ipc.queue("jobs"):receive(0))')
    assert.equal(0, code, err)
    assert.equal('x', out:match('%S+'))
  end)

  it('is /dev/shm/ipcsh-UID when nothing is set, and IPCSH_DIR when it is', function()
    local code, out, err = run({ IPCSH_DIR = false, IPCSH_TMPDIR = false },
      'print(ipc.namespace())')
    assert.equal(0, code, err)
    assert.equal('/dev/shm/ipcsh-' .. uid, out:match('%S+'))
    code, out, err = run({ IPCSH_DIR = base }, 'print(ipc.namespace())')
    assert.equal(0, code, err)
    assert.equal(base, out:match('%S+'))
    -- a relative IPCSH_DIR is shown as the absolute directory it names
    code, out, err = H.sh(('cd %s && mkdir rel && env IPCSH_DIR=rel/ %s -e %s'):format(q(base),
      H.interpreter(), q('print(require("interprocess").namespace())')))
    assert.equal(0, code, err)
    assert.equal(base .. '/rel', out:match('%S+'))
  end)

  it('refuses a private directory that is a symbolic link, naming it', function()
    H.sh(('mkdir %s/elsewhere && ln -s %s/elsewhere %s'):format(q(base), q(base), q(private)))
    local code, _, err = run(env, 'ipc.mutex("m")')
    assert.are_not.equal(0, code)
    assert.matches(private:gsub('%p', '%%%0') .. ' is a symbolic link: refused', err)
    local _, listing = H.sh('ls -A ' .. q(base .. '/elsewhere'))
    assert.equal('', listing)
    code, _, err = run(env, 'ipc.list()')
    assert.are_not.equal(0, code)
    assert.matches('symbolic link', err)
  end)

  it('refuses a private directory others may enter, or that is not a directory', function()
    H.sh(('mkdir -m 755 %s'):format(q(private)))
    local code, _, err = run(env, 'ipc.mutex("m")')
    assert.are_not.equal(0, code)
    assert.matches(private:gsub('%p', '%%%0') .. ' has mode 0755', err)
    assert.is_nil(H.read_file(private .. '/ipcs.m'))
    H.sh('rmdir ' .. q(private) .. ' && touch ' .. q(private))
    code, _, err = run(env, 'ipc.mutex("m")')
    assert.are_not.equal(0, code)
    assert.matches(private:gsub('%p', '%%%0') .. ' is not a directory', err)
  end)

  it('refuses an object that is a symbolic link, and remove deletes the link only', function()
    local rc, _, rerr = run(env, 'ipc.mutex("real")')
    assert.equal(0, rc, rerr)
    local target = base .. '/target'
    H.write_file(target, 'precious')
    H.sh(('ln -s %s %s/ipcs.evil'):format(q(target), q(private)))
    local code, _, err = run(env, 'ipc.mutex("evil")')
    assert.are_not.equal(0, code)
    assert.matches('mutex "evil" is a symbolic link', err)
    code, _, err = run(env, 'ipc.open("evil")')
    assert.are_not.equal(0, code)
    assert.matches('"evil" is a symbolic link', err)
    local out
    code, out, err = run(env, [[
      for _, o in ipairs(ipc.list()) do print(o.name, o.type, o.error) end
      print(ipc.remove("evil"))]])
    assert.equal(0, code, err)
    assert.matches('real\tmutex', out)
    assert.matches('evil\tinvalid\t[^\n]*symbolic link', out)
    assert.matches('true', out)
    assert.is_false(exists(private .. '/ipcs.evil'))
    assert.equal('precious', H.read_file(target))
  end)

  it('objects of older versions directly in the base directory are not found', function()
    local rc, _, rerr = run({ IPCSH_DIR = base }, 'ipc.semaphore("old", { value = 3 })')
    assert.equal(0, rc, rerr)
    assert.truthy(H.read_file(base .. '/ipcs.old'))
    local code, out, err = run(env, [[
      print(#ipc.list(), pcall(ipc.open, "old"))
      print(pcall(ipc.semaphore, "old", { assert = "exists" }))]])
    assert.equal(0, code, err)
    assert.matches('^0\tfalse\tipc.open: no object named "old"', out)
    assert.matches('\nfalse\t[^\n]*does not exist', out)
    -- IPCSH_DIR=the old directory finds them
    code, out, err = run({ IPCSH_DIR = base }, 'print(ipc.open("old"):value())')
    assert.equal(0, code, err)
    assert.equal('3', out:match('%S+'))
  end)

  it('list, remove and the command line work on the namespace without creating it', function()
    local code, out, err = run(env, 'print(#ipc.list(), ipc.remove("nothing"))')
    assert.equal(0, code, err)
    assert.equal('0\tfalse', out:match('[^\n]+'))
    assert.is_false(exists(private), 'list or remove made the directory')
    local rc, _, rerr = run(env, 'ipc.queue("work"):send("a") ipc.mutex("lk")')
    assert.equal(0, rc, rerr)
    code, out, err = cli(env, 'ls --json')
    assert.equal(0, code, err)
    assert.matches('"work"', out)
    assert.matches('"lk"', out)
    code, out, err = cli(env, 'info work')
    assert.equal(0, code, err)
    assert.matches('count: 1', out)
    code, _, err = cli(env, 'rm work')
    assert.equal(0, code, err)
    assert.is_nil(H.read_file(private .. '/ipcs.work'))
    code, out, err = run(env, "for _, o in ipairs(ipc.list()) do print(o.name) end")
    assert.equal(0, code, err)
    assert.equal('lk', out:match('%S+'))
    -- another namespace does not see them
    code, out = cli({ IPCSH_DIR = false, IPCSH_TMPDIR = base .. '/x' }, 'info lk')
    assert.equal(2, code)
  end)

  it('a shared directory writable by others must be sticky', function()
    local shared = base .. '/shared'
    H.sh(('mkdir %s && chmod 0777 %s'):format(q(shared), q(shared)))
    local code, _, err = run({ IPCSH_DIR = shared }, 'ipc.mutex("m")')
    assert.are_not.equal(0, code)
    assert.matches(shared:gsub('%p', '%%%0')
      .. ' is writable by others without the sticky bit %(mode 0777%): refused', err)
    assert.is_nil(H.read_file(shared .. '/ipcs.m'))
    code, _, err = run({ IPCSH_DIR = shared }, 'ipc.list()')
    assert.are_not.equal(0, code)
    assert.matches('sticky', err)
    H.sh('chmod 1777 ' .. q(shared))
    code, _, err = run({ IPCSH_DIR = shared }, 'ipc.mutex("m")')
    assert.equal(0, code, err)
    -- a symbolic link as the shared directory is refused as well
    H.sh(('ln -s %s %s'):format(q(shared), q(base .. '/link')))
    code, _, err = run({ IPCSH_DIR = base .. '/link' }, 'ipc.mutex("m")')
    assert.are_not.equal(0, code)
    assert.matches('is a symbolic link: refused', err)
  end)

  it('opts.dir puts one object in a shared directory of its own', function()
    local shared = base .. '/team'
    H.sh('mkdir ' .. q(shared))
    local code, out, err = run(env, ([[
      local s = ipc.semaphore("tokens", { dir = %q, value = 2 })
      local t = ipc.semaphore("tokens", { dir = %q })
      print(t:value(), #ipc.list())]]):format(shared, shared .. '/'))
    assert.equal(0, code, err)
    assert.equal('2\t0', out:match('[^\n]+'))
    assert.truthy(H.read_file(shared .. '/ipcs.tokens'))
    assert.is_nil(H.read_file(private .. '/ipcs.tokens'))
    for _, bad in ipairs({ '5', '""', '{}', '"a\\0b"' }) do
      code, _, err = run(env, 'ipc.mutex("m", { dir = ' .. bad .. ' })')
      assert.are_not.equal(0, code, bad)
      assert.matches("bad option 'dir' to 'mutex' %(directory path expected", err)
    end
    code, _, err = run(env, ('ipc.mutex("m", { dir = %q })'):format(base .. '/missing'))
    assert.are_not.equal(0, code)
    assert.matches('namespace ' .. (base .. '/missing'):gsub('%p', '%%%0') .. ' does not exist',
      err)
  end)

  it('without /dev/shm it is made in $XDG_RUNTIME_DIR, else named under /tmp', function()
    if uid ~= '0' then pending('needs root (a mount namespace without /dev/shm)') return end
    -- outside /dev, which is hidden below
    local xdg = select(2, H.sh('mktemp -d /tmp/ipcsh-nsspec-xdg.XXXXXX')):match('%S+')
    finally(function() H.sh('rm -rf ' .. q(xdg)) end)
    -- /dev hidden by an empty tmpfs in a mount namespace of its own
    local code, out, err = H.sh(('unshare -m sh -c %s'):format(q(([[
      mount --make-rprivate / && mount -t tmpfs tmpfs /dev &&
      %s XDG_RUNTIME_DIR=%s %s -e 'ipc = require "interprocess" print(ipc.namespace()) ipc.mutex("m")' &&
      %s %s -e 'print(require("interprocess").namespace())']]):format(
      env_words({ IPCSH_DIR = false, IPCSH_TMPDIR = false }), q(xdg), H.interpreter(),
      env_words({ IPCSH_DIR = false, IPCSH_TMPDIR = false, XDG_RUNTIME_DIR = false }),
      H.interpreter()))))
    if code ~= 0 and err:match('unshare') then pending('no mount namespaces here') return end
    assert.equal(0, code, err)
    assert.equal(xdg .. '/ipcsh-0\n/tmp/ipcsh-0\n', out)
    assert.equal('700', mode_of(xdg .. '/ipcsh-0'))
    assert.truthy(H.read_file(xdg .. '/ipcsh-0/ipcs.m'))
  end)

  it('IPCSH_TMPDIR must be absolute', function()
    local code, _, err = run({ IPCSH_DIR = false, IPCSH_TMPDIR = 'rel' }, 'ipc.mutex("m")')
    assert.are_not.equal(0, code)
    assert.matches('IPCSH_TMPDIR must be an absolute path', err)
  end)
end)
