-- Permissions and hostile environments: other users (real ones, through
-- setpriv), planted files, a full file system.  The rules are those of the
-- namespace (docs/design.md "The namespace"); root gets the same refusals.
-- Needs root (to create users and mount); pending otherwise.
local H = require 'spec.helper'
local ipc = H.ipc
local q = H.quote

local is_root = select(2, H.sh('id -u')):match('^0') ~= nil

local function ensure_users()
  H.sh('getent group ipcshshare >/dev/null || groupadd -r ipcshshare')
  for _, u in ipairs({ 'ipcsha', 'ipcshb', 'ipcshc' }) do
    H.sh(('id %s >/dev/null 2>&1 || useradd -r -M -s /usr/sbin/nologin %s'):format(u, u))
  end
  H.sh('usermod -a -G ipcshshare ipcsha; usermod -a -G ipcshshare ipcshb')
end

local function uid_of(u)
  return select(2, H.sh('id -u ' .. u)):match('%d+')
end

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

-- Run Lua code as user u (primary group g; 'root' runs it as ourselves)
-- in the environment env.  Returns status, stdout, stderr.
local function as_user(u, g, env, code)
  local who = u == 'root' and '' or ('setpriv --reuid=%s --regid=%s --init-groups '):format(u, g)
  return H.sh(('%s%s %s -e %s'):format(who, env_words(env), H.interpreter(),
    q('local ipc = require "interprocess" ' .. code)))
end

local function as_user_cli(u, g, env, args)
  local who = u == 'root' and '' or ('setpriv --reuid=%s --regid=%s --init-groups '):format(u, g)
  return H.sh(('%s%s %s %s'):format(who, env_words(env), q(H.bin), args))
end

local function as_user_sh(u, g, cmd)
  return H.sh(('setpriv --reuid=%s --regid=%s --init-groups sh -c %s'):format(u, g, q(cmd)))
end

local function quoted_pattern(s) return (s:gsub('%p', '%%%0')) end

describe('security', function()
  local base, shared, priv, sh_env
  before_each(function()
    if not is_root then return end
    ensure_users()
    -- directly under /dev/shm (the suite's own IPCSH_DIR is 0700): the
    -- base of the users' private directories, and a shared directory
    local _, out = H.sh('mktemp -d /dev/shm/ipcsh-sec.XXXXXX')
    base = out:match('%S+')
    shared = base .. '/shared'
    H.sh(('chmod 1777 %s && mkdir -m 1777 %s'):format(q(base), q(shared)))
    priv = { IPCSH_DIR = false, IPCSH_TMPDIR = base }
    sh_env = { IPCSH_DIR = shared }
  end)
  after_each(function()
    if base then H.sh('rm -rf ' .. q(base)) end
    base = nil
  end)

  describe('the private namespace', function()
    it('another user can neither plant nor read anything in it', function()
      if not is_root then pending('needs root') return end
      local dirb = base .. '/ipcsh-' .. uid_of('ipcshb')
      local code, out, err = as_user('ipcshb', 'ipcshb', priv,
        'ipc.queue("jobs"):send("secret") print(ipc.namespace())')
      assert.equal(0, code, err)
      assert.equal(dirb, out:match('%S+'))
      local _, st = H.sh('stat -c "%a %U" ' .. q(dirb))
      assert.equal('700 ipcshb', st:match('[^\n]+'))
      -- planting: neither a file, nor a link, nor a replacement
      for _, cmd in ipairs({ 'touch %s/ipcs.evil', 'ln -s /etc/passwd %s/ipcs.evil',
        'mv %s/ipcs.jobs %s/ipcs.gone', 'cat %s/ipcs.jobs' }) do
        code, _, err = as_user_sh('ipcsha', 'ipcshshare', cmd:format(dirb, dirb))
        assert.are_not.equal(0, code, cmd)
        assert.matches('Permission denied', err)
      end
      -- nor through the library, naming the directory as a shared one
      code, _, err = as_user('ipcsha', 'ipcshshare', { IPCSH_DIR = dirb },
        'ipc.queue("jobs"):receive(0)')
      assert.are_not.equal(0, code)
      assert.matches('Permission denied', err)
      code, out, err = as_user('ipcshb', 'ipcshb', priv, 'print(ipc.queue("jobs"):receive(0))')
      assert.equal(0, code, err)
      assert.equal('secret', out:match('%S+'))
    end)

    it('a directory made in its place by someone else is refused, naming the owner', function()
      if not is_root then pending('needs root') return end
      for _, victim in ipairs({ { 'ipcshb', 'ipcshb' }, { 'root', 'root' } }) do
        local dir = base .. '/ipcsh-' .. uid_of(victim[1])
        local code, _, err = as_user_sh('ipcsha', 'ipcsha', 'mkdir -m 700 ' .. q(dir))
        assert.equal(0, code, err)
        code, _, err = as_user(victim[1], victim[2], priv, 'ipc.mutex("backup")')
        assert.are_not.equal(0, code, victim[1])
        assert.matches('private namespace ' .. quoted_pattern(dir)
          .. ' is owned by ipcsha %(uid %d+%), not by you', err)
        code, _, err = as_user_cli(victim[1], victim[2], priv, 'ls')
        assert.are_not.equal(0, code, victim[1])
        assert.matches('owned by ipcsha', err)
      end
    end)
  end)

  describe('a shared directory', function()
    it('owner-only objects are not opened, listed or removed by others, root included', function()
      if not is_root then pending('needs root') return end
      local code, _, err = as_user('ipcsha', 'ipcshshare', sh_env,
        'ipc.queue("secret"):send("the password")')
      assert.equal(0, code, err)
      local _, st = H.sh('stat -c "%a %G" ' .. q(shared .. '/ipcs.secret'))
      assert.equal('600 ipcshshare', st:match('[^\n]+'))
      -- ipcshb is in the group, but mode 0600 does not share it
      code, _, err = as_user('ipcshb', 'ipcshb', sh_env, 'ipc.queue("secret"):receive(0)')
      assert.are_not.equal(0, code)
      assert.matches('queue "secret" is owned by ipcsha %(uid %d+%) and its mode 0600 does not '
        .. 'let its group ipcshshare read and write it: refused', err)
      for _, u in ipairs({ { 'ipcshc', 'ipcshc' }, { 'root', 'root' } }) do
        code, _, err = as_user(u[1], u[2], sh_env, 'ipc.queue("secret"):receive(0)')
        assert.are_not.equal(0, code, u[1])
        assert.matches('queue "secret" is owned by ipcsha %(uid %d+%) and its group ipcshshare '
          .. '%(gid %d+%) is not one of yours: refused', err)
        code, _, err = as_user(u[1], u[2], sh_env, 'ipc.open("secret")')
        assert.are_not.equal(0, code, u[1])
        assert.matches('is not one of yours', err)
      end
      for _, u in ipairs({ { 'ipcshb', 'ipcshb' }, { 'ipcshc', 'ipcshc' }, { 'root', 'root' } }) do
        local out
        code, out, err = as_user(u[1], u[2], sh_env,
          'for _, o in ipairs(ipc.list()) do print(o.name, o.count) end')
        assert.equal(0, code, err)
        assert.is_nil(out:find('secret', 1, true), u[1])
        code, _, err = as_user_cli(u[1], u[2], sh_env, 'rm secret')
        assert.equal(2, code, u[1])
        assert.matches('rm: secret: .*refused', err)
        assert.truthy(H.read_file(shared .. '/ipcs.secret'), u[1])
      end
    end)

    it('with mode 0660 a member of its group uses it; other users and root do not', function()
      if not is_root then pending('needs root') return end
      local code, _, err = as_user('ipcsha', 'ipcshshare', sh_env,
        'ipc.queue("shared", { mode = 432 }):send("hello")') -- 0660
      assert.equal(0, code, err)
      local out
      code, out, err = as_user('ipcshb', 'ipcshb', sh_env,
        'io.write((ipc.queue("shared"):receive(0)))')
      assert.equal(0, code, err)
      assert.equal('hello', out)
      for _, u in ipairs({ { 'ipcshc', 'ipcshc' }, { 'root', 'root' } }) do
        code, _, err = as_user(u[1], u[2], sh_env, 'ipc.queue("shared")')
        assert.are_not.equal(0, code, u[1])
        assert.matches('is not one of yours: refused', err)
      end
    end)

    it('a planted object writable by others does not hold root\'s cron lock', function()
      if not is_root then pending('needs root') return end
      -- the attack of issue 12: create the lock first, world-writable
      local code, _, err = as_user('ipcsha', 'ipcsha', sh_env,
        'ipc.mutex("backup", { mode = 438 })') -- 0666
      assert.equal(0, code, err)
      local out
      for _, u in ipairs({ { 'root', 'root' }, { 'ipcshb', 'ipcshb' } }) do
        code, out, err = as_user_cli(u[1], u[2], sh_env, 'lock --timeout 0 backup -- echo ran')
        assert.equal(2, code, u[1])
        assert.equal('', out)
        assert.matches('mutex "backup" is owned by ipcsha %(uid %d+%) and writable by others '
          .. '%(mode 0666%): refused', err)
      end
      -- listed, flagged with the rule, so an operator sees it
      code, out, err = as_user('root', 'root', sh_env,
        'for _, o in ipairs(ipc.list()) do print(o.name, o.type, o.error) end')
      assert.equal(0, code, err)
      assert.matches('backup\tinvalid\t[^\n]*writable by others', out)
      -- root's own namespace cannot be planted into: its lock just works
      code, out, err = as_user_cli('root', 'root', priv, 'lock --timeout 0 backup -- echo ran')
      assert.equal(0, code, err)
      assert.equal('ran\n', out)
    end)

    it('a directory writable by others without the sticky bit is refused, root too', function()
      if not is_root then pending('needs root') return end
      H.sh('chmod 0777 ' .. q(shared))
      for _, u in ipairs({ { 'ipcsha', 'ipcsha' }, { 'root', 'root' } }) do
        local code, _, err = as_user(u[1], u[2], sh_env, 'ipc.mutex("m")')
        assert.are_not.equal(0, code, u[1])
        assert.matches('namespace ' .. quoted_pattern(shared)
          .. ' is writable by others without the sticky bit %(mode 0777%): refused', err)
      end
      assert.is_nil(H.read_file(shared .. '/ipcs.m'))
    end)

    it('listing reaps only our own leftovers of interrupted creations', function()
      if not is_root then pending('needs root') return end
      -- pid 1 with a start time it does not have: a dead creator's token
      local dead = tostring(1 | (12345 << 22))
      local theirs = shared .. '/.ipcsh-new.' .. dead .. '.A'
      local ours = shared .. '/.ipcsh-new.' .. dead .. '.B'
      local code, _, err = as_user_sh('ipcsha', 'ipcsha', 'touch ' .. q(theirs))
      assert.equal(0, code, err)
      H.sh('touch ' .. q(ours))
      code, _, err = as_user('root', 'root', sh_env, 'ipc.list()')
      assert.equal(0, code, err)
      assert.truthy(H.read_file(theirs), 'another user\'s file was removed')
      assert.is_nil(H.read_file(ours), 'our own leftover was kept')
    end)
  end)

  it('a full file system fails cleanly with the OS reason and leaves nothing', function()
    if not is_root then pending('needs root') return end
    local mnt = '/tmp/ipcsh-mnt-' .. ipc.uid()
    H.sh('mkdir -p ' .. q(mnt))
    local code = H.sh(('mount -t tmpfs -o size=1m tmpfs %s'):format(q(mnt)))
    if code ~= 0 then pending('cannot mount a tmpfs here') return end
    local interp = H.interpreter()
    local out, err
    code, out, err = H.sh(('env IPCSH_DIR=%s %s -e %s'):format(q(mnt), interp, q([[
      local ipc = require 'interprocess'
      local ok, e = pcall(ipc.shm, 'big', { size = 4 * 1024 * 1024 })
      print(ok, e)
      local q = ipc.queue and ipc.queue('small', { max_count = 2, max_size = 8 })
      print(q and q:send('fits') or 'no queue')
    ]])))
    local _, listing = H.sh('ls -A ' .. q(mnt))
    H.sh('umount ' .. q(mnt) .. '; rmdir ' .. q(mnt))
    assert.equal(0, code, err)
    assert.matches('false\t.*No space left on device', out)
    assert.is_nil(listing:find('big', 1, true), 'partial object left: ' .. listing)
    assert.is_nil(listing:find('new', 1, true), 'temporary file left: ' .. listing)
  end)
end)
