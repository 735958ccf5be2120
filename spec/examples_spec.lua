-- Every script in examples/ runs to completion with status 0.
local H = require 'spec.helper'

local args = {
  ['pidfile.lua'] = function() return H.tmpname('pid') .. ' 1' end,
  ['fork.lua'] = function() return '3 1000' end,
}

local function interpreter()
  if H.under_ipcsh then return H.quote(H.bin) end
  return 'env LUA_CPATH=' .. H.quote(os.getenv('IPCSH_SO_DIR') .. '/?.so;;') .. ' lua5.4'
end

describe('examples', function()
  local _, listing = H.sh('ls examples/*.lua')
  for file in listing:gmatch('[^\n]+') do
    local base = file:match('[^/]+$')
    if base ~= 'ops.sh' then
      it(base .. ' runs', function()
        local extra = args[base] and args[base]() or ''
        local code, out, err = H.sh(('timeout 120 %s %s %s'):format(interpreter(), file, extra))
        assert.equal(0, code, file .. ' failed:\n' .. out .. err)
      end)
    end
  end
end)
