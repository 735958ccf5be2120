-- The README's tour runs as written.
local H = require 'spec.helper'

describe('README', function()
  it('the tour runs as written', function()
    if not H.ipc.queue then pending('queue not built') return end
    local readme = assert(H.read_file('README.md'))
    local tour = readme:match('## A tour.-```lua\n(.-)```')
    assert.truthy(tour, 'no tour found')
    local file = H.tmpname('tour') .. '.lua'
    H.write_file(file, tour)
    local code, out, err = H.sh(('timeout 60 %s %s'):format(H.interpreter(), H.quote(file)))
    os.remove(file)
    assert.equal(0, code, out .. err)
    assert.matches('got "urgent" %(priority 9%).*got "low"', out)
    assert.matches('exit status\t0', out)
  end)

  it('make install puts the binary, the module and the man page in place', function()
    local dest = H.tmpname('dest')
    -- a plain build even inside `make test SANITIZE=1` (MAKEFLAGS would pass it on)
    local code, out, err = H.sh(('env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s install SANITIZE=0 DESTDIR=%s PREFIX=/usr'):format(H.quote(dest)))
    assert.equal(0, code, out .. err)
    for _, f in ipairs({ '/usr/bin/ipcsh', '/usr/lib/lua/5.4/interprocess.so',
      '/usr/share/man/man1/ipcsh.1' }) do
      assert.truthy(H.read_file(dest .. f), 'missing ' .. f)
    end
    -- the installed module loads from stock lua5.4 given only the install's cpath
    code, out = H.sh(('LUA_CPATH=%s lua5.4 -e %s'):format(
      H.quote(dest .. '/usr/lib/lua/5.4/?.so'), H.quote('print(require("interprocess").version)')))
    assert.equal(0, code)
    assert.matches('%d+%.%d+', out)
    H.sh('rm -rf ' .. H.quote(dest))
  end)
end)
