-- ipcsh's side of `make bench`: one measurement per run, printed as the
-- "key value" lines bench/driver.lua reads (see bench/baselines/bench.h):
--   ns X | rate X | p50 X, p99 X, pct P X | skip WHY | note TEXT
-- Run as: ipcsh bench/lua/ours.lua MODE ARGS...   (or lua5.4 + interprocess.so)
--   lock_pair DUR_MS | shared_pair DUR_MS | sem_pair DUR_MS | shm_add DUR_MS
--   queue_pair SIZE DUR_MS          send+receive in one process, ns/pair
--   floor K DUR_MS                  K no-op Lua->C method calls (benchnoop.so)
--   lock_contend N DUR_MS | shm_contend N DUR_MS     N processes, pairs/s
--   queue_thru SIZE NP NC TOTAL     NP producers -> NC consumers, msgs/s
--   sem_pingpong ROUNDS | queue_pingpong SIZE ROUNDS round trip, ns
--   list NOBJ DUR_MS                ipc.list() with NOBJ objects, ns/call
-- Child processes are started with io.popen (ipc.fork need not exist) and
-- meet on a counter in an ipc.shm object before the common start time.
local ipc = rawget(_G, "ipc") or require "interprocess"

local LUA = os.getenv("IPCBENCH_LUA") or arg[-1]
local SELF = arg[0]
local clock = ipc.clock

local function need(t)
	if ipc[t] == nil then
		print("skip ipc." .. t .. " not built")
		os.exit(0)
	end
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Per-operation cost: run body(1000) until dur_ms have passed.
local function timed_ns(dur, body)
	local n, t0, t = 0, clock(), nil
	repeat
		body(1000)
		n = n + 1000
		t = clock()
	until t - t0 >= dur
	print(string.format("ns %.2f", (t - t0) * 1e6 / n))
end

local function report_latency(lat)
	table.sort(lat)
	for _, p in ipairs { 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9 } do
		local v = lat[math.floor(p / 100 * (#lat - 1) + 0.5) + 1]
		print(string.format("pct %g %.0f", p, v))
		if p == 50 or p == 99 then print(string.format("p%d %.0f", p, v)) end
	end
end

-- Rendezvous object: int64 at 0 = children ready, at 8 = start time (µs).
local function team_new() return ipc.shm { size = 64, cleanup = true } end

-- Start n children running `ours.lua child ROLE TEAM ARGS...`; release them
-- together; return their stdout texts and the start time (ms).
local function team_run(n, role_of, ...)
	local team = team_new()
	local extra = {}
	for i, v in ipairs { ... } do extra[i] = q(v) end
	local pipes = {}
	for i = 1, n do
		local cmd = table.concat({ q(LUA), q(SELF), "child", role_of(i), team.name, i,
			table.concat(extra, " ") }, " ")
		pipes[i] = assert(io.popen(cmd, "r"))
	end
	local limit = clock() + 60000
	while team:add(0, 0) < n do
		if clock() > limit then error("children did not start") end
		ipc.sleep(0.2)
	end
	local start = clock() + 2
	team:cas(8, 0, math.floor(start * 1000))
	local out = {}
	for i = 1, n do
		out[i] = pipes[i]:read("a")
		local ok, how, code = pipes[i]:close()
		if not ok then error("child " .. i .. " failed: " .. tostring(how) .. " " .. tostring(code)) end
	end
	team:remove()
	return out, start
end

local function arrive(team_name)
	local team = ipc.shm(team_name)
	team:add(0, 1)
	local st = team:add(8, 0)
	while st == 0 do
		ipc.sleep(0.1)
		st = team:add(8, 0)
	end
	local start = st / 1000
	while clock() < start do end
	team:close()
	return start
end

local function field(out, key)
	return tonumber(out:match(key .. " ([%d%.e+-]+)"))
end

local mode = ...
local A = table.pack(select(2, ...))

if mode == "child" then
	local role, team_name, idx = A[1], A[2], tonumber(A[3])
	if role == "lock" or role == "shm" then
		local name, dur = A[4], tonumber(A[5])
		local n = 0
		if role == "lock" then
			local m = ipc.mutex(name)
			local stop = arrive(team_name) + dur
			repeat
				for _ = 1, 64 do m:lock() m:unlock() end
				n = n + 64
			until clock() >= stop
		else
			local s = ipc.shm(name)
			local stop = arrive(team_name) + dur
			repeat
				for _ = 1, 64 do s:add(0, 1) end
				n = n + 64
			until clock() >= stop
		end
		print("count " .. n)
	elseif role == "prod" or role == "cons" then
		local name, size = A[4], tonumber(A[5])
		local np, nc, total = tonumber(A[6]), tonumber(A[7]), tonumber(A[8])
		local count = role == "prod" and total // np or total // nc
		local qu = ipc.queue(name)
		local msg = string.rep("x", size)
		arrive(team_name)
		if role == "prod" then
			for _ = 1, count do qu:send(msg) end
		else
			for _ = 1, count do qu:receive() end
			print(string.format("finish %.6f", clock()))
		end
	elseif role == "pong" then
		local kind, a, b, rounds = A[4], A[5], A[6], tonumber(A[7])
		if kind == "sem" then
			local sa, sb = ipc.semaphore(a), ipc.semaphore(b)
			for _ = 1, rounds do sa:wait() sb:post() end
		else
			local qa, qb = ipc.queue(a), ipc.queue(b)
			for _ = 1, rounds do qb:send(qa:receive()) end
		end
	end
	os.exit(0)
end

if mode == "floor" then
	local k, dur = tonumber(A[1]), tonumber(A[2])
	local ok, o = pcall(require, "benchnoop")
	if not ok then
		print("skip benchnoop.so not built")
		os.exit(0)
	end
	if k == 1 then
		timed_ns(dur, function(c) for _ = 1, c do o:noop() end end)
	else
		timed_ns(dur, function(c) for _ = 1, c do o:noop() o:noop() end end)
	end
elseif mode == "lock_pair" or mode == "shared_pair" then
	need "mutex"
	local m = ipc.mutex { cleanup = true }
	if mode == "lock_pair" then
		timed_ns(tonumber(A[1]), function(c) for _ = 1, c do m:lock() m:unlock() end end)
	else
		timed_ns(tonumber(A[1]), function(c) for _ = 1, c do m:lock_shared() m:unlock() end end)
	end
	m:remove()
elseif mode == "sem_pair" then
	need "semaphore"
	local s = ipc.semaphore { cleanup = true }
	timed_ns(tonumber(A[1]), function(c) for _ = 1, c do s:post() s:wait() end end)
	s:remove()
elseif mode == "shm_add" then
	need "shm"
	local s = ipc.shm { size = 64, cleanup = true }
	timed_ns(tonumber(A[1]), function(c) for _ = 1, c do s:add(0, 1) end end)
	s:remove()
elseif mode == "queue_pair" then
	need "queue"
	local size = tonumber(A[1])
	local qu = ipc.queue { max_count = 100, max_size = size, cleanup = true }
	local msg = string.rep("x", size)
	timed_ns(tonumber(A[2]), function(c) for _ = 1, c do qu:send(msg) qu:receive() end end)
	qu:remove()
elseif mode == "lock_contend" or mode == "shm_contend" then
	local n, dur = tonumber(A[1]), tonumber(A[2])
	local obj, role
	if mode == "lock_contend" then
		need "mutex"
		obj, role = ipc.mutex { cleanup = true }, "lock"
	else
		need "shm"
		obj, role = ipc.shm { size = 64, cleanup = true }, "shm"
	end
	local out = team_run(n, function() return role end, obj.name, dur)
	local total = 0
	for i = 1, n do total = total + assert(field(out[i], "count"), "no count from child") end
	print(string.format("rate %.0f", total / (dur / 1e3)))
	obj:remove()
elseif mode == "queue_thru" then
	need "queue"
	local size, np, nc, total = tonumber(A[1]), tonumber(A[2]), tonumber(A[3]), tonumber(A[4])
	local qu = ipc.queue { max_count = 100, max_size = size, cleanup = true }
	local out, start = team_run(np + nc, function(i) return i <= np and "prod" or "cons" end,
		qu.name, size, np, nc, total)
	local last = 0
	for i = np + 1, np + nc do
		last = math.max(last, (assert(field(out[i], "finish"), "no finish time from consumer")))
	end
	print(string.format("rate %.0f", total / ((last - start) / 1e3)))
	qu:remove()
elseif mode == "sem_pingpong" or mode == "queue_pingpong" then
	local isq = mode == "queue_pingpong"
	need(isq and "queue" or "semaphore")
	local size = isq and tonumber(A[1]) or 0
	local rounds = tonumber(isq and A[2] or A[1])
	local warm = rounds // 10 + 10
	local a, b
	if isq then
		a = ipc.queue { max_count = 100, max_size = size, cleanup = true }
		b = ipc.queue { max_count = 100, max_size = size, cleanup = true }
	else
		a = ipc.semaphore { cleanup = true }
		b = ipc.semaphore { cleanup = true }
	end
	local child = assert(io.popen(table.concat({ q(LUA), q(SELF), "child pong x 0",
		isq and "queue" or "sem", a.name, b.name, rounds + warm }, " "), "r"))
	local lat = {}
	local msg = string.rep("x", size)
	for k = 1, rounds + warm do
		local t0 = clock()
		if isq then
			a:send(msg)
			b:receive()
		else
			a:post()
			b:wait()
		end
		if k > warm then lat[k - warm] = (clock() - t0) * 1e6 end
	end
	child:read("a")
	child:close()
	report_latency(lat)
	a:remove()
	b:remove()
elseif mode == "list" then
	local nobj, dur = tonumber(A[1]), tonumber(A[2])
	local objs = {}
	for i = 1, nobj do objs[i] = ipc.shm { size = 64 } end
	local got = #ipc.list()
	if got < nobj then print("note ipc.list() saw " .. got .. " of " .. nobj .. " objects") end
	local n, t0, t = 0, clock(), nil
	repeat
		ipc.list()
		n = n + 1
		t = clock()
	until t - t0 >= dur and n >= 3
	print(string.format("ns %.0f", (t - t0) * 1e6 / n))
	for i = 1, nobj do objs[i]:remove() end
else
	io.stderr:write("ours.lua: unknown mode ", tostring(mode), "\n")
	os.exit(2)
end
