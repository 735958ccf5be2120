local H = require 'spec.helper'
local ipc = H.ipc

-- Independent re-implementation of the documented hash (docs/design.md):
-- FNV-1a 64, then a lowercase letter (h % 26) and ten base-62 digits of h / 26.
local DIGITS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
local function reference_hash(s)
  local h = -3750763034362895579 -- 14695981039346656037 as a signed 64-bit integer
  for i = 1, #s do h = (h ~ s:byte(i)) * 1099511628211 end
  local q = (h >> 1) // 13       -- unsigned h // 26
  local first = string.char(97 + (h - q * 26))
  local out = {}
  for i = 10, 1, -1 do
    local d = q % 62
    out[i] = DIGITS:sub(d + 1, d + 1)
    q = q // 62
  end
  return first .. table.concat(out)
end

describe('names', function()
  it('accepts and rejects names exactly as documented', function()
    local good = { 'a', 'Z', 'a1', 'jobs', 'Backup2024', ('x'):rep(250), 'a_b', 'a-b', 'a.b',
      'db-backup_daily.v2', 'x..', 'a.', 'b-', 'c_', ('y'):rep(249) .. '.' }
    local bad = { '', '1ab', '_ab', '-ab', '.ab', '.', '..', 'a b', '../x', 'a/b', 'a\0b',
      ('x'):rep(251), 'é', 'ab\n', 'a+b', 'a:b', 'a*', 'a~' }
    for _, n in ipairs(good) do
      local m = ipc.mutex(n, { cleanup = true })
      assert.equal(n, m.name)
      m:remove()
      m:close()
    end
    for _, n in ipairs(bad) do
      local ok, err = pcall(ipc.mutex, n)
      assert.is_false(ok, 'accepted ' .. ('%q'):format(n))
      assert.matches('invalid name', err)
    end
    for _, v in ipairs({ 12, true, function() end }) do
      assert.has_error(function() ipc.mutex(v) end)
    end
    assert.has_error(function() ipc.remove('a b') end)
    for _, n in ipairs(good) do assert.is_true(ipc.valid_name(n), n) end
    for _, n in ipairs(bad) do assert.is_false(ipc.valid_name(n), ('%q'):format(n)) end
  end)

  it("names with '.', '-' and '_' are files of their own, listed and removed by name", function()
    local names = { 'db-backup_daily.v2', 'a.b', 'a-b', 'a_b', 'ab' }
    local objs = {}
    for i, n in ipairs(names) do objs[i] = ipc.semaphore(n, { value = i, assert = 'create' }) end
    -- each is its own object: no two names share a file
    for i, n in ipairs(names) do
      local s <close> = ipc.semaphore(n, { assert = 'exists' })
      assert.equal(i, s:value())
      assert.equal(n, s.name)
    end
    local listed = {}
    for _, info in ipairs(ipc.list()) do listed[info.name] = info.type end
    for _, n in ipairs(names) do assert.equal('semaphore', listed[n], n) end
    -- a name in the options table (R's named-argument style) is the same object
    local same <close> = ipc.semaphore({ name = 'db-backup_daily.v2', assert = 'exists' })
    assert.equal(1, same:value())
    for i, n in ipairs(names) do
      assert.is_true(ipc.remove(n))
      assert.is_false(ipc.remove(n))
      objs[i]:close()
    end
    listed = {}
    for _, info in ipairs(ipc.list()) do listed[info.name] = true end
    for _, n in ipairs(names) do assert.is_nil(listed[n], n) end
  end)

  it('a creation in progress (its temporary file) is never listed nor openable as a name', function()
    -- the temporary file of a creation is '.ipcsh-new.<token>.<uid>' beside the objects:
    -- a name cannot start with '.', so no name maps to it, and ls never shows it
    local dir = ipc.dir()
    local fake = dir .. '/.ipcsh-new.1.Aaaaaaaaaaa'
    local f = assert(io.open(fake, 'w'))
    f:write('x')
    f:close()
    for _, info in ipairs(ipc.list()) do assert.is_nil(info.name:match('ipcsh%-new'), info.name) end
    assert.is_false(ipc.valid_name('.ipcsh-new.1.Aaaaaaaaaaa'))
    assert.has_error(function() ipc.mutex('.ipcsh-new.1.Aaaaaaaaaaa') end)
    os.remove(fake)
  end)

  it('uid: 11 characters, uppercase first, unique across 20 concurrent processes', function()
    local kids = {}
    for i = 1, 20 do
      kids[i] = H.spawn([[
        for i = 1, 200 do io.write(ipc.uid(), '\n') end
      ]])
    end
    local seen, n = {}, 0
    for i = 1, 20 do
      assert.equal(0, kids[i]:wait())
      for id in kids[i].out:gmatch('[^\n]+') do
        assert.matches('^[A-Z][0-9A-Za-z]+$', id)
        assert.equal(11, #id)
        assert.is_nil(seen[id], 'duplicate uid ' .. id)
        seen[id] = true
        n = n + 1
      end
    end
    assert.equal(4000, n)
    local a, b = ipc.uid(), ipc.uid()
    assert.are_not.equal(a, b)
  end)

  it('hash: fixed, documented values', function()
    assert.equal('bfkl5p7UYOY', ipc.hash(''))
    assert.equal('yZuGlZbgfhq', ipc.hash('a'))
    assert.equal('rXc78fWXnTF', ipc.hash('hello'))
    assert.equal('yMGRk2rrGyY', ipc.hash('/tmp/x'))
    for i = 1, 200 do
      local s = {}
      for k = 1, math.random(0, 40) do s[k] = string.char(math.random(0, 255)) end
      s = table.concat(s)
      local h = ipc.hash(s)
      assert.equal(reference_hash(s), h)
      assert.matches('^[a-z][0-9A-Za-z]+$', h)
      assert.equal(11, #h)
    end
  end)

  it('file= derives the name from the normalised absolute path', function()
    local m <close> = ipc.mutex({ file = '/tmp/x', cleanup = true })
    assert.equal(ipc.hash('/tmp/x'), m.name)
    local m2 <close> = ipc.mutex({ file = '/tmp/./y/../x//' })
    assert.equal(m.name, m2.name)
    local cwd = os.getenv('PWD')
    local rel <close> = ipc.mutex({ file = 'some/file', cleanup = true })
    assert.equal(ipc.hash(cwd .. '/some/file'), rel.name)
    assert.has_error(function() ipc.mutex('abc', { file = '/tmp/x' }) end)
    m:remove()
    rel:remove()
  end)
end)
