-- Exact checker for lock storms (mutex exclusive/shared, undo semaphore),
-- used by torture/torture.lua and the storm specs.  It decides without
-- timing and without looking at /proc of other processes:
--
-- An ipc.shm "board" holds a board lock word and, per worker slot, the
-- identity token of the slot's current incarnation (pid + start time, read
-- by the worker from its own /proc/self/stat: unique over time, never a
-- bare pid), its "inside" mark (the token, or 0), the mode of that mark and
-- the token of the slot's last recorded victim.
--
-- * A worker joins its slot before it can be chosen as a victim (before it
--   reports ready; the torture driver waits for the join): it publishes its
--   token and clears a mark its dead predecessor left, since the victim
--   record only names the slot's latest victim.
-- * A worker that got the lock (or permit) calls enter(mode): under the
--   board lock it looks at every other slot, then sets its own mark.  It
--   clears the mark with leave() before it unlocks / posts.  So a mark
--   present means: its process holds the lock now, or was killed holding it.
-- * The killer records the victim's token (read from the slot, checked to
--   belong to the pid it is about to kill) BEFORE kill -9.  A mark equal to
--   its slot's recorded victim is excused: that process died inside and the
--   robust release handed the lock on.  Any other mark is a live holder.
-- * The board lock (a cas word) makes every look at the marks a consistent
--   snapshot: marks change only under it, so "V+1 holders" is counted at
--   one moment, never assembled from different moments.  A holder of the
--   board lock that is a recorded victim may be pre-empted (cas from its
--   token): a victim only ever writes its own slot, whose mark is excused.
--
-- No false alarm: a non-excused mark belongs to a process that has not been
-- chosen as a victim, so it is alive (a crash fails the test on its own)
-- and between its enter and leave, i.e. holding.  No missed violation: if
-- two holders' enter..leave intervals overlap and break the rule, the later
-- one to enter sees the earlier one's mark (set before and cleared after the
-- overlap).  The only overlap not counted is with a process whose victim
-- record was written in the few microseconds before its SIGKILL landed.
--
-- Modes: EXCLUSIVE (no other live mark), SHARED (no live EXCLUSIVE mark),
-- PERMIT (at most `limit` live PERMIT marks, counting one's own).
local ipc = require 'interprocess'

local Board = {}
Board.__index = Board
Board.EXCLUSIVE, Board.SHARED, Board.PERMIT = 1, 2, 3

local PIDS = 4194304 -- 2^22 > Linux's largest pid_max
local STRIDE = 48
local IDENT, MARK, MODE, VICTIM, AUX = 0, 8, 16, 24, 32
Board.AUX = AUX

-- Bytes a board of n slots needs.
function Board.size(n) return 16 + STRIDE * n end

-- This process's token: start time (clock ticks since boot) * 2^22 + pid.
function Board.token()
  local f = io.open('/proc/self/stat')
  local line = f and f:read('l')
  if f then f:close() end
  local pid, rest = (line or ''):match('^(%d+) %(.*%) (.*)$')
  local fields = {}
  for w in (rest or ''):gmatch('%S+') do fields[#fields + 1] = w end
  local start = tonumber(fields[20]) -- field 22 of stat(5); rest starts at field 3
  assert(pid and start, 'board: cannot read /proc/self/stat')
  return start * PIDS + tonumber(pid)
end

function Board.pid_of(token) return token % PIDS end

-- The board at offset base of shm s, n slots; opts.limit for PERMIT.
function Board.open(s, base, n, opts)
  return setmetatable({ s = s, base = base or 0, n = n, limit = opts and opts.limit or 1 }, Board)
end

local function off(b, i, w) return b.base + 16 + STRIDE * (i - 1) + w end
function Board:get(i, w) return self.s:add(off(self, i, w), 0) end -- atomic read
function Board:put(i, w, v) -- atomic store
  local o = off(self, i, w)
  repeat local old = self.s:add(o, 0) until self.s:cas(o, old, v)
end
function Board:violations() return self.s:add(self.base + 8, 0) end

local lock, unlock

-- Worker: take slot i for this incarnation (before it can be chosen as a
-- victim, i.e. before it reports ready).  The slot's previous incarnation
-- is dead (the driver reaps before it restarts a slot); a mark it left is
-- cleared here, as the victim record only names the slot's latest victim.
function Board:join(i)
  self.me, self.tok = i, Board.token()
  lock(self)
  self:put(i, MARK, 0)
  self:put(i, IDENT, self.tok)
  unlock(self)
  return self.tok
end

-- Driver: the pid that joined slot i (nil before the first join).
function Board:joined_pid(i)
  local t = self:get(i, IDENT)
  return t ~= 0 and Board.pid_of(t) or nil
end

-- Killer: record slot i's incarnation, which must be pid, as a victim.
-- Call BEFORE sending the SIGKILL.  Returns the token.
function Board:record_victim(i, pid)
  local t = self:get(i, IDENT)
  assert(t ~= 0 and Board.pid_of(t) == pid,
    ('board: slot %d is not joined by pid %d (token %d)'):format(i, pid, t))
  self:put(i, VICTIM, t)
  return t
end

function Board:is_victim(t)
  for j = 1, self.n do
    if self:get(j, VICTIM) == t then return true end
  end
  return false
end

function lock(self)
  local L, me = self.base, self.tok
  local n, deadline = 0, nil
  while not self.s:cas(L, 0, me) do
    local v = self.s:add(L, 0)
    if v ~= 0 and self:is_victim(v) and self.s:cas(L, v, me) then return end
    n = n + 1
    if n > 20 then
      ipc.sleep(1)
      deadline = deadline or ipc.clock() + 60000
      if ipc.clock() > deadline then
        error(('board: lock held for 60 s by token %d (pid %d), not a victim'):format(v, Board.pid_of(v)))
      end
    end
  end
end
function unlock(self) self.s:cas(self.base, self.tok, 0) end

local NAMES = { 'exclusive', 'shared', 'permit' }

-- Holder: check the other marks and set ours.  Returns nil, or a
-- description of the violation (also counted on the board).
function Board:enter(mode)
  lock(self)
  local live, conflicts = 1, {}
  for j = 1, self.n do
    if j ~= self.me then
      local m = self:get(j, MARK)
      if m ~= 0 and m ~= self:get(j, VICTIM) then
        local mj = self:get(j, MODE)
        if mode == Board.PERMIT then
          live = live + 1
          conflicts[#conflicts + 1] = ('slot %d pid %d'):format(j, Board.pid_of(m))
        elseif mode == Board.EXCLUSIVE or mj == Board.EXCLUSIVE then
          conflicts[#conflicts + 1] = ('slot %d pid %d (%s)'):format(j, Board.pid_of(m), NAMES[mj] or mj)
        end
      end
    end
  end
  self:put(self.me, MODE, mode)
  self:put(self.me, MARK, self.tok)
  unlock(self)
  local bad = mode == Board.PERMIT and live > self.limit or mode ~= Board.PERMIT and #conflicts > 0
  if not bad then return nil end
  self.s:add(self.base + 8, 1)
  if mode == Board.PERMIT then
    return ('slot %d pid %d: %d live holders of %d permits (others: %s)'):format(self.me, ipc.pid(), live,
      self.limit, table.concat(conflicts, ', '))
  end
  return ('slot %d pid %d entered %s while live holder(s) inside: %s'):format(self.me, ipc.pid(),
    NAMES[mode], table.concat(conflicts, ', '))
end

function Board:leave()
  lock(self)
  self:put(self.me, MARK, 0)
  unlock(self)
end

return Board
