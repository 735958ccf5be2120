local H = require 'spec.helper'
local ipc = H.ipc

describe('shm', function()
  it('is shared between processes: pack in one, unpack in another', function()
    local name = H.name()
    local s <close> = ipc.shm(name, { size = 64, cleanup = true })
    local st, out = H.run([[
      local s = ipc.shm((select(2, ...)))
      s:pack(0, '<i4d z', 7, 2.5, 'hello')
    ]], name)
    assert.equal(0, st)
    local a, b, c, nxt = s:unpack('<i4d z', 0)
    assert.same({ 7, 2.5, 'hello', 18 }, { a, b, c, nxt })
  end)

  it('add from 4 processes x 10000 gives exactly 40000', function()
    local name = H.name()
    local s <close> = ipc.shm(name, { size = 64, cleanup = true })
    local kids = {}
    for i = 1, 4 do
      kids[i] = H.spawn([[
        local s = ipc.shm((select(2, ...)))
        for i = 1, 10000 do s:add(8, 1) end
      ]], name)
    end
    for i = 1, 4 do assert.equal(0, kids[i]:wait()) end
    assert.equal(40000, s:unpack('<i8', 8))
  end)

  it('rejects access outside the object', function()
    local s <close> = ipc.shm(H.name(), { size = 16, cleanup = true })
    assert.has_error(function() s:read(10, 7) end)
    assert.has_error(function() s:write(-1, 'x') end)
    assert.has_error(function() s:write(16, 'x') end)
    assert.has_error(function() s:add(12, 1) end)
    assert.has_error(function() s:add(16, 1) end)
    assert.equal('', s:read(16, 0))
    assert.equal(16, #s:read())
  end)
end)
