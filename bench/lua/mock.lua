-- HARNESS SELF-TEST ONLY: slow stand-ins for ipc.mutex, ipc.semaphore and
-- ipc.queue built on ipc.shm (spin locks, no crash safety), so the bench
-- scripts' code paths can be exercised before the real types exist.  Never
-- used for published figures: the driver marks a run that loads it.
--   IPCBENCH_LUA=lua5.4 LUA_INIT=@bench/lua/mock.lua sh bench/run.sh quick
local ipc = require "interprocess"
_G.ipc = ipc
print("note MOCK types (harness self-test; figures meaningless)")

local function spin(ok)
	local n = 0
	while not ok() do
		n = n + 1
		if n > 50 then ipc.sleep(0.02) end
	end
end

local function maker(size_of, methods)
	local mt = { __index = methods }
	return function(name, opts)
		if type(name) == "table" then name, opts = nil, name end
		opts = opts or {}
		local s = ipc.shm(name, { size = size_of(opts), cleanup = opts.cleanup })
		local o = setmetatable({ shm = s, name = s.name }, mt)
		if methods.init then methods.init(o, opts) end
		return o
	end
end
local common = {
	remove = function(o) return o.shm:remove() end,
	close = function(o) return o.shm:close() end,
}
local function with(t)
	for k, v in pairs(common) do t[k] = v end
	return t
end

if not ipc.mutex then
	ipc.mutex = maker(function() return 8 end, with {
		lock = function(o)
			spin(function() return o.shm:cas(0, 0, 1) end)
			return true
		end,
		lock_shared = function(o)
			spin(function() return o.shm:cas(0, 0, 1) end)
			return true
		end,
		unlock = function(o) return o.shm:cas(0, 1, 0) end,
	})
end
if not ipc.semaphore then
	ipc.semaphore = maker(function() return 8 end, with {
		init = function(o, opts) if opts.value then o.shm:add(0, opts.value) end end,
		post = function(o)
			o.shm:add(0, 1)
			return true
		end,
		wait = function(o)
			spin(function()
				local v = o.shm:add(0, 0)
				return v > 0 and o.shm:cas(0, v, v - 1)
			end)
			return true
		end,
	})
end
if not ipc.queue then
	-- 0 lock, 8 head, 16 tail, 24 max_count, 32 max_size, 64.. slots
	ipc.queue = maker(function(o) return 64 + (o.max_count or 100) * (8 + (o.max_size or 1024)) end, with {
		init = function(o, opts)
			if o.shm:add(24, 0) == 0 then
				o.shm:cas(32, 0, opts.max_size or 1024)
				o.shm:cas(24, 0, opts.max_count or 100)
			end
		end,
		send = function(o, msg)
			local s = o.shm
			local cap, size = s:add(24, 0), s:add(32, 0)
			spin(function()
				if not s:cas(0, 0, 1) then return false end
				local h, t = s:add(8, 0), s:add(16, 0)
				if h - t >= cap then
					s:cas(0, 1, 0)
					return false
				end
				local off = 64 + (h % cap) * (8 + size)
				s:pack(off, "i8", #msg)
				s:write(off + 8, msg)
				s:add(8, 1)
				s:cas(0, 1, 0)
				return true
			end)
			return true
		end,
		receive = function(o)
			local s = o.shm
			local cap, size = s:add(24, 0), s:add(32, 0)
			local msg
			spin(function()
				if not s:cas(0, 0, 1) then return false end
				local h, t = s:add(8, 0), s:add(16, 0)
				if h == t then
					s:cas(0, 1, 0)
					return false
				end
				local off = 64 + (t % cap) * (8 + size)
				msg = s:read(off + 8, s:unpack("i8", off))
				s:add(16, 1)
				s:cas(0, 1, 0)
				return true
			end)
			return msg, 0
		end,
	})
end
