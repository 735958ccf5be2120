-- docs/manual.md documents every public function and method: this spec
-- enumerates them from the module itself and fails on any that is missing.
local H = require 'spec.helper'
local ipc = H.ipc

local manual = assert(H.read_file('docs/manual.md'))

local function documented(pattern_text)
  return manual:find(pattern_text, 1, true) ~= nil
end

local function methods_of(obj)
  local names = {}
  local mt = getmetatable(obj)
  local index = mt and mt.__index
  -- named objects: __index is a small table (name) whose own __index holds the methods
  local seen = {}
  while type(index) == 'table' and not seen[index] do
    seen[index] = true
    for k, v in pairs(index) do
      if type(v) == 'function' and type(k) == 'string' and not k:match('^_') then names[k] = true end
    end
    local imt = getmetatable(index)
    index = imt and imt.__index
  end
  return names
end

local makers = {
  mutex = function() return ipc.mutex({ cleanup = true }) end,
  semaphore = function() return ipc.semaphore({ cleanup = true }) end,
  queue = function() return ipc.queue and ipc.queue({ cleanup = true }) end,
  condition = function() return ipc.condition({ cleanup = true }) end,
  event = function() return ipc.event and ipc.event({ cleanup = true }) end,
  barrier = function() return ipc.barrier and ipc.barrier({ count = 2, cleanup = true }) end,
  shm = function() return ipc.shm({ size = 64, cleanup = true }) end,
  kv = function() return ipc.kv and ipc.kv({ cleanup = true }) end,
  pidfile = function() return ipc.pidfile and ipc.pidfile(H.tmpname('pid')) end,
  process = function() return ipc.fork and ipc.fork(function() end) end,
}

describe('the manual', function()
  it('documents every module function', function()
    local missing = {}
    for k, v in pairs(ipc) do
      if type(v) == 'function' and not documented('ipc.' .. k) then missing[#missing + 1] = k end
    end
    table.sort(missing)
    assert.same({}, missing)
  end)

  for kind, make in pairs(makers) do
    it('documents every ' .. kind .. ' method', function()
      local obj = make()
      if not obj then pending(kind .. ' not built') return end
      local missing = {}
      for name in pairs(methods_of(obj)) do
        if not documented(':' .. name .. '(') then missing[#missing + 1] = name end
      end
      table.sort(missing)
      assert.same({}, missing)
      if kind == 'process' then obj:wait() elseif obj.remove then pcall(obj.remove, obj) end
    end)
  end

  it('documents every command of the command line', function()
    local _, out = H.sh(H.quote(H.bin) .. ' --help')
    for _, cmd in ipairs({ 'ls', 'info', 'rm', 'lock', 'send', 'recv', 'post', 'wait' }) do
      assert.truthy(out:find(cmd, 1, true), 'ipcsh --help lacks ' .. cmd)
      assert.truthy(documented('ipcsh ' .. cmd), 'manual lacks ipcsh ' .. cmd)
    end
  end)
end)
