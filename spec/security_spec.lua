-- Permissions and hostile environments: another user, planted files, a full
-- file system.  Needs root (to create users and mount); pending otherwise.
local H = require 'spec.helper'
local ipc = H.ipc

local is_root = select(2, H.sh('id -u')):match('^0') ~= nil

local function ensure_users()
  H.sh('getent group ipcshshare >/dev/null || groupadd -r ipcshshare')
  for _, u in ipairs({ 'ipcsha', 'ipcshb', 'ipcshc' }) do
    H.sh(('id %s >/dev/null 2>&1 || useradd -r -M -s /usr/sbin/nologin %s'):format(u, u))
  end
  H.sh('usermod -a -G ipcshshare ipcsha; usermod -a -G ipcshshare ipcshb')
end

-- Run Lua code as user u (primary group g) with objects in dir.
local function as_user(u, g, dir, code)
  local interp = H.interpreter()
  return H.sh(('setpriv --reuid=%s --regid=%s --init-groups env IPCSH_DIR=%s %s -e %s'):format(
    u, g, H.quote(dir), interp, H.quote('local ipc = require "interprocess" ' .. code)))
end

local function as_user_cli(u, g, dir, args)
  return H.sh(('setpriv --reuid=%s --regid=%s --init-groups env IPCSH_DIR=%s %s %s'):format(
    u, g, H.quote(dir), H.quote(H.bin), args))
end

describe('security', function()
  local dir
  before_each(function()
    if not is_root then return end
    ensure_users()
    -- directly under /dev/shm: the suite's own IPCSH_DIR is private (0700)
    dir = '/dev/shm/ipcsh-sec-' .. ipc.uid()
    H.sh(('mkdir -p %s && chmod 1777 %s'):format(H.quote(dir), H.quote(dir)))
  end)
  after_each(function()
    if dir then H.sh('rm -rf ' .. H.quote(dir)) end
  end)

  it('objects are owner-only by default: another user cannot open, read or remove them', function()
    if not is_root then pending('needs root') return end
    local code, out, err = as_user('ipcsha', 'ipcshshare', dir,
      'ipc.queue("secret"):send("the password") print("ok")')
    assert.equal(0, code, err)
    local _, mode = H.sh('stat -c %a ' .. H.quote(dir .. '/ipcs.secret'))
    assert.equal('600', mode:match('%d+'))
    code, out, err = as_user('ipcshb', 'ipcshb', dir, 'print(ipc.queue("secret"):receive(0))')
    assert.are_not.equal(0, code)
    assert.matches('Permission denied', err)
    -- not listed (with contents) either, and not removable
    code, out = as_user('ipcshb', 'ipcshb', dir, [[
      for _, o in ipairs(ipc.list()) do print(o.name, o.count) end]])
    assert.equal(0, code)
    assert.is_nil(out:find('secret', 1, true))
    code, out, err = as_user_cli('ipcshb', 'ipcshb', dir, 'rm secret')
    assert.are_not.equal(0, code)
    assert.matches('not permitted', err)
    assert.truthy(H.read_file(dir .. '/ipcs.secret'))
  end)

  it('with mode = 0660 a user of the same group can use it; others cannot', function()
    if not is_root then pending('needs root') return end
    local code, _, err = as_user('ipcsha', 'ipcshshare', dir,
      'ipc.queue("shared", { mode = 432 }):send("hello")') -- 0660
    assert.equal(0, code, err)
    local out
    code, out, err = as_user('ipcshb', 'ipcshshare', dir, 'io.write((ipc.queue("shared"):receive(0)))')
    assert.equal(0, code, err)
    assert.equal('hello', out)
    code, out, err = as_user('ipcshc', 'ipcshc', dir, 'ipc.queue("shared")')
    assert.are_not.equal(0, code)
    assert.matches('Permission denied', err)
  end)

  it('a world-writable object planted by another user is refused', function()
    if not is_root then pending('needs root') return end
    local code, _, err = as_user('ipcsha', 'ipcsha', dir, 'ipc.mutex("jobs", { mode = 438 })') -- 0666
    assert.equal(0, code, err)
    local out
    code, out, err = as_user('ipcshb', 'ipcshb', dir, 'ipc.mutex("jobs")')
    assert.are_not.equal(0, code)
    assert.matches('refusing a world%-writable object owned by another user', err)
  end)

  it('a full file system fails cleanly with the OS reason and leaves nothing', function()
    if not is_root then pending('needs root') return end
    local mnt = '/tmp/ipcsh-mnt-' .. ipc.uid()
    H.sh('mkdir -p ' .. H.quote(mnt))
    local code = H.sh(('mount -t tmpfs -o size=1m tmpfs %s'):format(H.quote(mnt)))
    if code ~= 0 then pending('cannot mount a tmpfs here') return end
    local interp = H.interpreter()
    local out, err
    code, out, err = H.sh(('env IPCSH_DIR=%s %s -e %s'):format(H.quote(mnt), interp, H.quote([[
      local ipc = require 'interprocess'
      local ok, e = pcall(ipc.shm, 'big', { size = 4 * 1024 * 1024 })
      print(ok, e)
      local q = ipc.queue and ipc.queue('small', { max_count = 2, max_size = 8 })
      print(q and q:send('fits') or 'no queue')
    ]])))
    local _, listing = H.sh('ls -A ' .. H.quote(mnt))
    H.sh('umount ' .. H.quote(mnt) .. '; rmdir ' .. H.quote(mnt))
    assert.equal(0, code, err)
    assert.matches('false\t.*No space left on device', out)
    assert.is_nil(listing:find('big', 1, true), 'partial object left: ' .. listing)
    assert.is_nil(listing:find('new', 1, true), 'temporary file left: ' .. listing)
  end)
end)
