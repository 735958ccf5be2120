-- Crash torture, short version: for each object type, forked workers run a
-- mixed workload while torture/torture.lua kills random ones with SIGKILL
-- and restarts them, checking the invariants with the exact checkers
-- (torture/board.lua for locks and permits, per-message bookkeeping for the
-- queue; see docs/reliability.md).
-- The long version is `make torture`.
local H = require 'spec.helper'

local function run_torture(tname)
  return H.sh('TORTURE_MAX_MS=2000 ' .. H.interpreter() .. ' torture/torture.lua short ' .. tname)
end

describe('torture (short)', function()
  for _, tname in ipairs({ 'mutex', 'semaphore', 'queue', 'kv', 'condition', 'event', 'barrier' }) do
    it(tname .. ' survives random SIGKILLs with its invariants intact', function()
      local st, out, err = run_torture(tname)
      local kills = tonumber(out:match(tname .. '%s+(%d+) kills'))
      assert.are.equal(0, st, out .. err)
      assert.is_truthy(out:match(' 0 violations'), out .. err)
      -- the run must really have killed workers
      assert.is_true(kills ~= nil and kills >= 5, out .. err)
    end)
  end
end)
