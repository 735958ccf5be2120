local H = require 'spec.helper'
local ipc = H.ipc

local MAGIC = '\xC1'

local function hex(s)
  return (s:gsub('.', function(c) return ('%02x '):format(c:byte()) end))
end

-- Deep equality that also handles table keys (matched by deep equality)
-- and NaN.
local function deq(a, b)
  if a ~= a and b ~= b then return true end
  if math.type(a) ~= math.type(b) then return false end
  if type(a) ~= 'table' or type(b) ~= 'table' then return a == b end
  local n = 0
  for k, v in pairs(a) do
    n = n + 1
    if type(k) == 'table' then
      local found = false
      for k2, v2 in pairs(b) do
        if type(k2) == 'table' and deq(k, k2) and deq(v, v2) then found = true break end
      end
      if not found then return false end
    elseif not deq(v, rawget(b, k)) then
      return false
    end
  end
  for _ in pairs(b) do n = n - 1 end
  return n == 0
end

local function has_table_keys(v)
  if type(v) ~= 'table' then return false end
  for k, x in pairs(v) do
    if type(k) == 'table' or has_table_keys(x) then return true end
  end
  return false
end

local function rt(v) return ipc.decode(ipc.encode(v)) end

local function assert_rt(v)
  local e = ipc.encode(v)
  assert.is_string(e)
  assert.equal(MAGIC, e:sub(1, 1))
  local d = ipc.decode(e)
  assert.is_true(deq(v, d), 'round trip of ' .. hex(e))
  return d
end

-- decode must raise an ipc.decode error, never crash or return garbage
local function assert_bad(s, pattern)
  local ok, err = pcall(ipc.decode, s)
  assert.is_false(ok, 'decoded hostile input ' .. hex(s):sub(1, 200))
  assert.matches('ipc%.decode: ', err)
  if pattern then assert.matches(pattern, err) end
  return err
end

local function varint(n)
  local t = {}
  repeat
    local b = n & 0x7f
    n = n >> 7
    t[#t + 1] = string.char(n ~= 0 and (b | 0x80) or b)
  until n == 0
  return table.concat(t)
end

describe('codec', function()
  describe('round trips', function()
    it('nil and booleans', function()
      assert.is_nil(rt(nil))
      assert.equal(true, rt(true))
      assert.equal(false, rt(false))
    end)

    it('integers, including the extremes, keeping their subtype', function()
      for _, v in ipairs({ 0, 1, -1, 63, 64, 127, 128, -128, 255, 256, 1 << 31, -(1 << 31),
        1 << 32, 1 << 53, (1 << 53) + 1, math.maxinteger, math.mininteger,
        math.maxinteger - 1, math.mininteger + 1 }) do
        local d = rt(v)
        assert.equal(v, d)
        assert.equal('integer', math.type(d))
      end
      for i = -1000, 1000 do assert.equal(i, rt(i)) end
      for s = 0, 63 do
        local v = 1 << s
        assert.equal(v, rt(v))
        assert.equal(-v, rt(-v))
        assert.equal(v - 1, rt(v - 1))
      end
    end)

    it('small integers take one byte after the magic', function()
      assert.equal(2, #ipc.encode(0))
      assert.equal(2, #ipc.encode(127))
      assert.equal(4, #ipc.encode(128))
    end)

    it('floats exactly, including inf, -inf, nan, -0.0 and subnormals', function()
      for _, v in ipairs({ 0.5, -0.5, 1.0, 3.0, math.pi, 1e308, -1e308, 1e-308, 5e-324,
        2.0 ^ 63, -2.0 ^ 63, 2.0 ^ 64, 0.1, 1 / 3 }) do
        local d = rt(v)
        assert.equal('float', math.type(d))
        assert.equal(v, d)
        assert.equal(string.pack('<d', v), string.pack('<d', d))
      end
      assert.equal(math.huge, rt(math.huge))
      assert.equal(-math.huge, rt(-math.huge))
      local nan = rt(0 / 0)
      assert.is_true(nan ~= nan)
      assert.equal('float', math.type(nan))
      local z = rt(-0.0)
      assert.equal(0, z)
      assert.equal('float', math.type(z))
      assert.equal(-math.huge, 1 / z)
      assert.equal(math.huge, 1 / rt(0.0))
      assert.equal('float', math.type(rt(1.0)))
    end)

    it('strings: empty, with NULs, all bytes, around the short/long boundary, long', function()
      assert.equal('', rt(''))
      assert.equal('a\0b\0\0', rt('a\0b\0\0'))
      local all = {}
      for i = 0, 255 do all[#all + 1] = string.char(i) end
      all = table.concat(all)
      assert.equal(all, rt(all))
      for _, n in ipairs({ 62, 63, 64, 65, 127, 128, 16383, 16384 }) do
        local s = ('x'):rep(n)
        assert.equal(s, rt(s))
      end
      local big = ('\0\1\2\255'):rep(1 << 18) -- 1 MiB
      assert.equal(big, rt(big))
      assert.is_true(#ipc.encode(big) < #big + 8)
    end)

    it('nested tables and an empty table', function()
      assert.same({}, rt({}))
      assert_rt({ 1, 2, 3, { 4, { 5, { 6 } } }, x = { y = { z = 'deep' } } })
      assert_rt({ {}, { {} }, a = {} })
      assert_rt({ 'a', nil, 'c' }) -- hole: 3 goes in the hash part
      assert_rt({ [1] = 1, [3] = 3, [100] = 100, [-1] = -1, [0] = 0 })
    end)

    it('mixed keys: integers, floats, booleans, strings, table keys', function()
      local tk = { 'i', 'am', 'a', 'key' }
      local v = {
        10, 20, 30,
        [2.5] = 'float', [-0.25] = 'neg', [1e300] = 'huge', [math.huge] = 'inf',
        [-math.huge] = '-inf', [true] = 'yes', [false] = 'no',
        ['with space'] = 1, ['\0nul'] = 2, [''] = 'empty key',
        [tk] = { nested = true }, [{}] = 'empty table key',
        [math.mininteger] = 'min', [math.maxinteger] = 'max',
      }
      local d = assert_rt(v)
      assert.equal('float', d[2.5] and 'float')
      assert.equal('yes', d[true])
      assert.equal('inf', d[math.huge])
      local found
      for k, val in pairs(d) do
        if type(k) == 'table' and k[1] == 'i' then found = val end
      end
      assert.same({ nested = true }, found)
    end)

    it('a shared (non-cyclic) sub-table is encoded once per reference', function()
      local shared = { 1, 2 }
      local d = assert_rt({ a = shared, b = shared, c = { shared } })
      assert.same({ 1, 2 }, d.a)
      assert.same({ 1, 2 }, d.b)
      assert.are_not.equal(d.a, d.b)
    end)

    it('large arrays and maps', function()
      local arr, map = {}, {}
      for i = 1, 100000 do
        arr[i] = i % 3 == 0 and ('s' .. i) or i * 1.5
        map['k' .. i] = i
      end
      assert_rt(arr)
      assert_rt(map)
      -- every key kind, in numbers that take the merge sort path
      math.randomseed(5)
      for _, n in ipairs({ 17, 33, 100, 1000, 5000 }) do
        local mixed = { [true] = 1, [false] = 0 }
        for i = 1, n do
          local r = i % 4
          if r == 0 then mixed[math.random(math.mininteger, math.maxinteger)] = i
          elseif r == 1 then mixed[math.random() * 1e6 + 0.5] = i
          elseif r == 2 then mixed['abcdefghij' .. math.random(1, 1e9)] = i
          else mixed[string.pack('<I4', math.random(0, 0xffffffff))] = i end
        end
        local e = ipc.encode(mixed)
        assert.equal(e, ipc.encode(ipc.decode(e)))
        assert.is_true(deq(mixed, ipc.decode(e)))
      end
    end)

    it('depth 200 is fine, with tables as values and as keys', function()
      local root = {}
      local cur = root
      for _ = 2, 200 do
        cur[1] = {}
        cur = cur[1]
      end
      local d = rt(root)
      local n = 0
      while d do n = n + 1; d = d[1] end
      assert.equal(200, n)
      -- nesting through table keys counts the same
      local k = {}
      for _ = 2, 200 do k = { [k] = true } end
      assert.is_table(rt(k))
    end)

    it('random nested values round trip, and re-encode to the same bytes', function()
      math.randomseed(99)
      local prefixes = { '', 'a', 'abcdefgh', 'abcdefghij', '\0\0', '\255\128', 'key' }
      local function rstring()
        local t = { prefixes[math.random(#prefixes)] }
        for i = 1, math.random(0, 12) do
          t[#t + 1] = string.char(({ 0, 1, 97, 98, 127, 128, 255 })[math.random(7)])
        end
        return table.concat(t)
      end
      local function rscalar()
        local r = math.random(9)
        if r == 1 then return math.random(-200, 200)
        elseif r == 2 then return math.random(math.mininteger, math.maxinteger)
        elseif r == 3 then return (math.random() - 0.5) * 10 ^ math.random(-300, 300)
        elseif r == 4 then return ({ 1 / 0, -1 / 0, 0.5, -0.5, 2.0 ^ 63, -2.0 ^ 64 })[math.random(6)]
        elseif r == 5 then return math.random(2) == 1
        else return rstring() end
      end
      local function rvalue(depth)
        if depth > 4 or math.random(3) > 1 then return rscalar() end
        local t = {}
        for i = 1, math.random(0, 6) do t[i] = rvalue(depth + 1) end
        for _ = 1, math.random(0, 10) do
          local k = rscalar()
          if k == k then t[k] = rvalue(depth + 1) end
        end
        return t
      end
      for _ = 1, 3000 do
        local v = rvalue(1)
        local e = ipc.encode(v)
        local d = ipc.decode(e)
        assert.is_true(deq(v, d))
        assert.equal(e, ipc.encode(d))
      end
    end)

    it('ignores metatables and metamethods (raw access)', function()
      local t = setmetatable({ 1, a = 2 }, {
        __index = function() error('no __index') end,
        __pairs = function() error('no __pairs') end,
        __len = function() return 99 end,
      })
      local d = rt(t)
      assert.same({ 1, a = 2 }, d)
      assert.is_nil(getmetatable(d))
    end)
  end)

  describe('determinism', function()
    it('arrays and integer keys encode the same whatever the build order', function()
      local a, b = {}, {}
      for i = 1, 50 do a[i] = i * 2 end
      for i = 50, 1, -1 do b[i] = i * 2 end
      assert.equal(ipc.encode(a), ipc.encode(b))
      local c, d = {}, {}
      local keys = { 1000, -5, 7, 3, 123456789, 0, math.mininteger, 42, 99, 64 }
      for i = 1, #keys do c[keys[i]] = i end
      for i = #keys, 1, -1 do d[keys[i]] = i end
      -- grow and shrink d so its hash part has a different history
      for i = 1, 200 do d['tmp' .. i] = i end
      for i = 1, 200 do d['tmp' .. i] = nil end
      assert.equal(ipc.encode(c), ipc.encode(d))
      assert.equal(ipc.encode(c), ipc.encode(c))
    end)

    it('string, float and boolean keys are sorted too', function()
      local a, b = {}, {}
      local ks = { 'zeta', 'alpha', 'a', '', 'alpha\0', 'Beta', 1.5, -2.25, true, false }
      for i = 1, #ks do a[ks[i]] = i end
      for i = #ks, 1, -1 do b[ks[i]] = i end
      for i = 1, 100 do b[i + 0.125] = 1 end
      for i = 1, 100 do b[i + 0.125] = nil end
      assert.equal(ipc.encode(a), ipc.encode(b))
      assert.equal(ipc.encode({ x = { 1, 2 }, y = 'z' }), ipc.encode({ y = 'z', x = { 1, 2 } }))
    end)
  end)

  describe('encode errors', function()
    local function enc_err(v, pattern)
      local ok, err = pcall(function() return ipc.encode(v) end)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'encode'", err, 1, true)
      assert.matches(pattern, err)
      return err
    end

    it('functions, userdata, threads name the type and the path', function()
      enc_err(print, 'cannot encode a function%)')
      enc_err(io.stdout, 'cannot encode a userdata')
      enc_err(coroutine.create(function() end), 'cannot encode a thread')
      local up = 1
      local lud = debug.upvalueid(function() return up end, 1) -- a light userdata
      enc_err(lud, 'cannot encode a light userdata')
      enc_err({ k = lud }, 'cannot encode a light userdata at value%.k')
      enc_err({ a = { b = print } }, 'cannot encode a function at value%.a%.b%)')
      enc_err({ 1, { 2, print } }, 'at value%[2%]%[2%]')
      enc_err({ ['not ident'] = { print } }, 'at value%["not ident"%]%[1%]')
      enc_err({ [print] = 1 }, 'cannot encode a function as a table key')
      enc_err({ x = { [io.stdout] = 1 } }, 'cannot encode a userdata as a table key at value%.x')
      enc_err({ [{ print }] = 1 }, 'at value<key>%[1%]')
    end)

    it('cycles are errors, naming the path', function()
      local t = {}
      t.self = t
      enc_err(t, 'cycle at value%.self')
      local a = { b = { c = {} } }
      a.b.c.d = a.b
      enc_err(a, 'cycle at value%.b%.c%.d')
      local k = {}
      k[k] = 1
      enc_err(k, 'cycle')
      local v = { 1 }
      v[2] = { v }
      enc_err(v, 'cycle at value%[2%]%[1%]')
    end)

    it('depth 201 is an error', function()
      local root = {}
      local cur = root
      for _ = 2, 201 do
        cur[1] = {}
        cur = cur[1]
      end
      enc_err(root, 'nesting deeper than 200')
      local k = {}
      for _ = 2, 201 do k = { [k] = true } end
      enc_err(k, 'nesting deeper than 200')
    end)

    it('missing argument and errors from a method name the method', function()
      assert.has_error(function() ipc.encode() end)
      local s <close> = ipc.shm(H.name(), { size = 64, cleanup = true })
      local ok, err = pcall(function() return s:store({ f = print }) end)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'store' (cannot encode a function at value.f)", err, 1,
        true)
    end)

    it('an error leaves nothing behind and the codec keeps working', function()
      for _ = 1, 1000 do
        local big = {}
        for i = 1, 100 do big['k' .. i] = ('v'):rep(300) end
        big.bad = { print }
        assert.is_false(pcall(ipc.encode, big))
      end
      collectgarbage()
      assert.same({ 1, 2 }, rt({ 1, 2 }))
    end)
  end)

  describe('decode of bad input', function()
    it('names ipc.decode whatever the local name of the function', function()
      local d = ipc.decode
      local ok, err = pcall(function() return d('\xC1\x06') end)
      assert.is_false(ok)
      assert.matches(': ipc%.decode: truncated input at byte 2$', err)
    end)

    it('rejects a non-string argument', function()
      local ok, err = pcall(function() return ipc.decode(12) end)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'decode' (string expected", err, 1, true)
    end)

    it('rejects empty input, a wrong magic and trailing garbage', function()
      assert_bad('', 'empty input')
      assert_bad('\0', 'not an encoded value')
      assert_bad('\xC2\x00', 'not an encoded value')
      assert_bad(ipc.encode({ 1, 2 }) .. '\0', 'trailing garbage %(1 bytes%) at byte 7')
      assert_bad(ipc.encode('x') .. 'junk', 'trailing garbage')
    end)

    it('every proper prefix of an encoding is an error', function()
      local values = {
        0, -1, 1000, math.mininteger, 2.5, 'short', ('long'):rep(40),
        { 1, 2, 3 }, { a = 1, b = { c = 'd' } }, { [2.5] = true, [{ 1 }] = { 2 } },
        { ('x'):rep(200), { {}, {} }, n = -7, [true] = false },
      }
      local prefixes = 0
      for _, v in ipairs(values) do
        local e = ipc.encode(v)
        for n = 0, #e - 1 do
          assert_bad(e:sub(1, n), n == 0 and 'empty input' or nil)
          prefixes = prefixes + 1
        end
        assert.is_true(deq(v, ipc.decode(e)))
      end
      assert.is_true(prefixes > 300)
      assert_bad(ipc.encode('hello'):sub(1, 4), 'truncated input at byte 2$')
      assert_bad(ipc.encode({ 1, 2 }):sub(1, 4), 'table size %(2 items, 0 pairs%) exceeds input')
    end)

    it('hostile headers: huge lengths and counts, bad tags, bad varints', function()
      local huge = varint(math.maxinteger)
      assert_bad(MAGIC .. '\x05' .. huge .. 'abc', 'string length %d+ exceeds input at byte 2')
      assert_bad(MAGIC .. '\x05' .. varint(100) .. ('a'):rep(99), 'exceeds input')
      assert_bad(MAGIC .. '\x45' .. 'abc', 'truncated input at byte 2')
      assert_bad(MAGIC .. '\x06' .. huge .. '\0', 'table size .* exceeds input')
      assert_bad(MAGIC .. '\x06\0' .. huge, 'table size .* exceeds input')
      assert_bad(MAGIC .. '\x06' .. varint(1 << 40) .. varint(1 << 40), 'exceeds input')
      -- a count that the remaining bytes could not possibly hold
      assert_bad(MAGIC .. '\x06\x04\x00\x81\x81\x81', 'exceeds input')
      assert_bad(MAGIC .. '\x06\x00\x02\x81\x81\x82', 'exceeds input')
      -- nested tables each claiming the whole rest of the input
      assert_bad(MAGIC .. ('\x06\x05\x00'):rep(5) .. '\x81', 'exceeds input')
      for tag = 0x07, 0x3f do
        assert_bad(MAGIC .. string.char(tag), ('bad tag 0x%02x at byte 2'):format(tag))
      end
      assert_bad(MAGIC .. '\x03' .. ('\xff'):rep(9) .. '\x02', 'more than 64 bits')
      assert_bad(MAGIC .. '\x03' .. ('\xff'):rep(12), 'more than 64 bits')
      assert_bad(MAGIC .. '\x03\x80\x00', 'overlong')
      assert_bad(MAGIC .. '\x03' .. ('\x80'):rep(20), 'bad varint')
      assert_bad(MAGIC .. '\x04\0\0\0\0\0\0\xf0', 'truncated input at byte 2')
    end)

    it('nesting deeper than 200 is an error, 200 is fine', function()
      local ok200 = MAGIC .. ('\x06\x01\x00'):rep(199) .. '\x06\x00\x00'
      local d = ipc.decode(ok200)
      local n = 0
      while d do n = n + 1; d = d[1] end
      assert.equal(200, n)
      assert_bad(MAGIC .. ('\x06\x01\x00'):rep(200) .. '\x06\x00\x00',
        'nesting deeper than 200 at byte 602')
      assert_bad(MAGIC .. ('\x06\x01\x00'):rep(100000), 'nesting deeper than 200')
      -- through keys
      assert_bad(MAGIC .. ('\x06\x00\x01'):rep(250) .. ('\x02'):rep(250), 'nesting deeper')
    end)

    it('nil or NaN keys, nil values and duplicate keys are errors', function()
      assert_bad(MAGIC .. '\x06\x00\x01\x00\x81', 'nil table key at byte 5')
      assert_bad(MAGIC .. '\x06\x00\x01\x04' .. string.pack('<d', 0 / 0) .. '\x81',
        'NaN table key')
      assert_bad(MAGIC .. '\x06\x01\x00\x00', 'nil value in table at byte 5')
      assert_bad(MAGIC .. '\x06\x00\x01\x41k\x00', 'nil value in table at byte 7')
      assert_bad(MAGIC .. '\x06\x00\x02\x41k\x81\x41k\x82', 'duplicate table key at byte 8')
      assert_bad(MAGIC .. '\x06\x00\x02\x02\x81\x02\x82', 'duplicate table key')
      assert_bad(MAGIC .. '\x06\x00\x02\x03\x01\x81\x03\x01\x82', 'duplicate table key')
      -- key 1 in the hash part would duplicate (or extend) the array part
      assert_bad(MAGIC .. '\x06\x01\x01\x81\x81\x82', 'integer key 1 belongs in the array part')
      assert_bad(MAGIC .. '\x06\x01\x01\x81\x82\x82', 'integer key 2 belongs in the array part')
      -- 1.0, -0.0 would be the integer keys 1 and 0 in Lua: not canonical
      assert_bad(MAGIC .. '\x06\x00\x01\x04' .. string.pack('<d', 1.0) .. '\x82',
        'float key with an integer value')
      assert_bad(MAGIC .. '\x06\x00\x01\x04' .. string.pack('<d', -0.0) .. '\x82',
        'float key with an integer value')
      -- but 2^63 is a float key in Lua
      local t = ipc.decode(MAGIC .. '\x06\x00\x01\x04' .. string.pack('<d', 2.0 ^ 63) .. '\x81')
      assert.equal(1, t[2.0 ^ 63])
      assert.equal('float', math.type(next(t)))
    end)

    it('only the canonical encoding is accepted', function()
      -- keys sorted: false < true < integers < floats < strings < tables
      local good = ipc.encode({ [false] = 1, [true] = 2, [-5] = 3, [1.5] = 4, a = 5, [{}] = 6 })
      assert.equal(MAGIC .. '\x06\x00\x06\x01\x81\x02\x82\x03\x09\x83\x04'
        .. string.pack('<d', 1.5) .. '\x84\x41a\x85\x06\x00\x00\x86', good)
      assert_bad(MAGIC .. '\x06\x00\x02\x41b\x81\x41a\x82', 'table keys out of order at byte 8')
      assert_bad(MAGIC .. '\x06\x00\x02\x41a\x81\x02\x82', 'out of order')
      assert_bad(MAGIC .. '\x06\x00\x02\x06\x00\x00\x81\x41a\x82', 'out of order')
      assert_bad(MAGIC .. '\x06\x00\x02\x42ab\x81\x41a\x82', 'out of order')
      assert.same({ a = 1, ab = 2 }, ipc.decode(MAGIC .. '\x06\x00\x02\x41a\x81\x42ab\x82'))
      -- integers 0..127 use the 1-byte form, strings up to 63 bytes the short form
      assert_bad(MAGIC .. '\x03\x02', 'non%-canonical integer')
      assert_bad(MAGIC .. '\x05\x01a', 'non%-canonical string')
      assert.equal(-1, ipc.decode(MAGIC .. '\x03\x01'))
      assert.equal(128, ipc.decode(MAGIC .. '\x03\x80\x02'))
    end)

    it('random byte strings either decode or raise (thousands)', function()
      math.randomseed(20261123)
      local decoded, raised = 0, 0
      for i = 1, 20000 do
        local n = math.random(0, 40)
        local b = {}
        for j = 1, n do b[j] = math.random(0, 255) end
        local s = string.char(table.unpack(b))
        if i % 2 == 0 then s = MAGIC .. s end
        local ok, err = pcall(ipc.decode, s)
        if ok then
          decoded = decoded + 1
          -- canonical: what decodes is exactly what encode gives back
          if not has_table_keys(err) then assert.equal(s, ipc.encode(err)) end
          assert.is_true(deq(err, rt(err)))
        else
          raised = raised + 1
          assert.matches('^ipc%.decode: .* at byte %d+$', err)
        end
      end
      assert.equal(20000, decoded + raised)
      assert.is_true(decoded > 100, 'only ' .. decoded .. ' random inputs decoded')
    end)

    it('random mutations of valid encodings either decode or raise', function()
      math.randomseed(42)
      local base = {
        ipc.encode({ 1, 2, 3, x = 'y', [2.5] = { true, false }, [{ 'k' }] = ('z'):rep(70) }),
        ipc.encode({ a = { b = { c = { d = { 1e300, -7, 'str' } } } } }),
        ipc.encode({ ('q'):rep(200), math.mininteger, 0 / 0, -0.0 }),
      }
      local decoded = 0
      for i = 1, 20000 do
        local e = base[i % #base + 1]
        local b = { e:byte(1, -1) }
        for _ = 1, math.random(1, 4) do
          local p = math.random(2, #b)
          local r = math.random(3)
          if r == 1 then
            b[p] = math.random(0, 255)
          elseif r == 2 then
            b[p] = b[p] ~ (1 << math.random(0, 7))
          else
            table.remove(b, p)
          end
        end
        local s = string.char(table.unpack(b))
        local ok, v = pcall(ipc.decode, s)
        if ok then
          decoded = decoded + 1
          if not has_table_keys(v) then assert.equal(s, ipc.encode(v)) end
        else
          assert.matches('^ipc%.decode: ', v)
        end
      end
      assert.is_true(decoded > 100)
    end)
  end)

  describe('shm:store / shm:load', function()
    it('stores a value in one process and loads it in another', function()
      local name = H.name()
      local s <close> = ipc.shm(name, { size = 4096, cleanup = true })
      assert.is_nil(s:load())
      local st, out, err = H.run([[
        local s = ipc.shm(select(2, ...))
        s:store({ 1, 2.5, 'three\0', { nested = { true, false } }, [-1] = -0.0,
                  big = math.maxinteger, [1.5] = 'f' })
      ]], name)
      assert.equal(0, st, err)
      local v = s:load()
      assert.same({ 1, 2.5, 'three\0', { nested = { true, false } }, [-1] = -0.0,
        big = math.maxinteger, [1.5] = 'f' }, v)
      assert.equal(-math.huge, 1 / v[-1])
      -- and the other way round
      s:store({ from = 'parent', list = { 3, 2, 1 } })
      st, out, err = H.run([[
        local s = ipc.shm(select(2, ...))
        local v = s:load()
        io.write(v.from, ':', table.concat(v.list, ','))
      ]], name)
      assert.equal(0, st, err)
      assert.equal('parent:3,2,1', out)
    end)

    it('a value too big for the object is an error and keeps the old value', function()
      local s <close> = ipc.shm(H.name(), { size = 64, cleanup = true })
      s:store('small')
      assert.has_error(function() s:store(('x'):rep(100)) end)
      assert.equal('small', s:load())
    end)

    it('a corrupted stored value gives an error, never a crash', function()
      local s <close> = ipc.shm(H.name(), { size = 256, cleanup = true })
      s:store({ a = 'b', c = { 1, 2, 3 } })
      local len = s:unpack('<I8', 0)
      local good = s:read(8, len)
      math.randomseed(7)
      for _ = 1, 2000 do
        local p = math.random(1, len)
        s:write(8 + p - 1, string.char(math.random(0, 255)))
        local ok, err = pcall(s.load, s)
        if not ok then assert.matches('ipc%.decode', err) end
        s:write(8, good)
      end
      s:pack(0, '<I8', 3)
      s:write(8, '\xC1\x06\x7f')
      local ok, err = pcall(function() return s:load() end)
      assert.is_false(ok)
      assert.matches("load: stored value is corrupt %(ipc%.decode: ", err)
    end)
  end)
end)
