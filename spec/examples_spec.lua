-- Every script in examples/ runs to completion with status 0.
local H = require 'spec.helper'

local args = {
  ['pidfile.lua'] = function() return H.tmpname('pid') .. ' 1' end,
  ['fork.lua'] = function() return '3 1000' end,
  ['queue_rate.lua'] = function() return '100000' end,
}

describe('examples', function()
  local _, listing = H.sh('ls examples/*.lua')
  for file in listing:gmatch('[^\n]+') do
    local base = file:match('[^/]+$')
    it(base .. ' runs', function()
      local extra = args[base] and args[base]() or ''
      local code, out, err = H.sh(('timeout 120 %s %s %s'):format(H.interpreter(), file, extra))
      assert.equal(0, code, file .. ' failed:\n' .. out .. err)
    end)
  end

  -- the operators' recipes: shell scripts around the ipcsh command line
  local _, ops = H.sh('ls examples/ops/*.sh')
  for file in ops:gmatch('[^\n]+') do
    it(file:match('[^/]+$') .. ' runs', function()
      local code, out, err = H.sh(('IPCSH=%s timeout 120 sh %s'):format(H.quote(H.bin), file))
      assert.equal(0, code, file .. ' failed:\n' .. out .. err)
    end)
  end
end)
