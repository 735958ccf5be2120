-- Codec throughput: ipcsh bench/codec_bench.lua [seconds-per-case]
local ipc = ipc or require 'interprocess'
local per = tonumber(arg and arg[1]) or 0.5

local function clock() return os.clock() end

local function bench(name, fn)
  local n, t0 = 0, clock()
  local batch = 1
  while true do
    for _ = 1, batch do fn() end
    n = n + batch
    local dt = clock() - t0
    if dt >= per then
      return n / dt, dt / n
    end
    batch = batch * 2
  end
end

local record = { id = 12345, name = 'worker-7', busy = true, load = 0.75, tags = { 'a', 'b' } }
local ints = {}
for i = 1, 1000 do ints[i] = i * 7 end
local floats = {}
for i = 1, 1000 do floats[i] = i / 7 end
local map = {}
for i = 1, 1000 do map['key' .. i] = i end
local records = {}
for i = 1, 1000 do
  records[i] = { id = i, name = 'n' .. i, ok = i % 2 == 0, score = i * 0.5 }
end
local blob = ('x'):rep(1 << 20)

local cases = {
  { 'small int', 42 },
  { 'record (5 fields)', record },
  { 'array of 1000 ints', ints },
  { 'array of 1000 floats', floats },
  { 'map of 1000 string keys', map },
  { 'array of 1000 records', records },
  { '1 MiB string', blob },
}
print(('%-26s %10s %12s %12s %12s'):format('value', 'bytes', 'encode/s', 'decode/s', 'enc MB/s'))
for _, c in ipairs(cases) do
  local v = c[2]
  local e = ipc.encode(v)
  local er, et = bench(c[1], function() ipc.encode(v) end)
  local dr = bench(c[1], function() ipc.decode(e) end)
  print(('%-26s %10d %12.0f %12.0f %12.1f'):format(c[1], #e, er, dr, #e / et / 1e6))
end
