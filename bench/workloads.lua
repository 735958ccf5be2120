-- The workloads of `make bench` and their targets, for bench/driver.lua:
--   local WL = dofile-like: assert(loadfile("bench/workloads.lua"))(env)
-- env: QUICK, IPCSH, IPCSH_BIN, BIN, PYTHON, TMP, ONLY (see driver.lua).
-- Returns { P = sizes, W = workloads in order, TARGETS = targets, q = shell
-- quoting, sh_out = a command's output }.
local E = ...
local QUICK, IPCSH, IPCSH_BIN, BIN = E.QUICK, E.IPCSH, E.IPCSH_BIN, E.BIN
local PYTHON, TMP, ONLY = E.PYTHON, E.TMP, E.ONLY

-- Sizes.  Full must stay under ~5 minutes on 2 cores; the slow baselines get
-- fewer messages/rounds (their rate is still per message).  A throughput run
-- that took longer than `budget` seconds has its message count cut for the
-- following repetitions (never below min_msgs), with a note.
local P = QUICK and {
	reps = 3, dur = 40, cdur = 80, qmsgs = 100000, qmsgs_mid = 30000, qmsgs_slow = 4000,
	nm_msgs = 8000, rounds = 1000, rounds_slow = 300, spawns = 15, list_dur = 50,
	budget = 0.4, min_msgs = 1000, min_rounds = 200,
} or {
	reps = 5, dur = 120, cdur = 250, qmsgs = 1000000, qmsgs_mid = 200000, qmsgs_slow = 20000,
	nm_msgs = 80000, rounds = 10000, rounds_slow = 2000, spawns = 60, list_dur = 300,
	budget = 0.8, min_msgs = 2000, min_rounds = 500,
}

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function join(...)
	local t = {}
	for i, v in ipairs { ... } do t[i] = tostring(v) end
	return table.concat(t, " ")
end
local function exists(path)
	local f = io.open(path, "r")
	if f then f:close() end
	return f ~= nil
end
local function sh_out(cmd)
	local f = io.popen(cmd .. " 2>/dev/null")
	if not f then return "" end
	local s = f:read("a") or ""
	f:close()
	return (s:gsub("%s+$", ""))
end

-- Command builders; each returns a shell command, or nil + why it is skipped.
local function OURS(...) return join(q(IPCSH), "bench/lua/ours.lua", ...) end
local function C(prog, ...)
	if not exists(BIN .. "/" .. prog) then return nil, prog .. " not built (see build/bench/build.log)" end
	return join(q(BIN .. "/" .. prog), ...)
end
local function PY(...)
	if PYTHON == "" then return nil, "python3 not installed" end
	return join(q(PYTHON), "bench/baselines/py_mp.py", ...)
end
local function BOOST(...)
	if not exists(BIN .. "/boost_ipc") then return nil, "Boost.Interprocess (libboost-dev, g++) not available" end
	return join(q(BIN .. "/boost_ipc"), ...)
end
local LOCKFILE = TMP .. "/bench.lock"

-- A workload: id, group, title, unit ("ns" lower is better; "/s" higher is
-- better), metric(s) to read, and contenders; the first one is ipcsh.
local W = {}
local function workload(w)
	if not ONLY or w.id:match(ONLY) then W[#W + 1] = w end
	return w
end
local function c(id, label, cmd, why) return { id = id, label = label, cmd = cmd, why = why } end
-- A throughput contender whose command holds "{N}", the message count.
local function cn(n, id, label, cmd, why)
	local ct = c(id, label, cmd, why)
	ct.count = n
	return ct
end

local G1 = "1 uncontended, one process, from Lua (per pair)"
local G2 = "2 contended lock (pairs/s, all processes)"
local G3 = "3 queue throughput (msgs/s)"
local G4 = "4 latency, ping-pong round trip"
local G5 = "5 start-up and namespace"

local floor2 = function() return c("floor", "floor: 2 no-op Lua->C calls", OURS("floor", 2, P.dur)) end

workload { id = "lock_pair", group = G1, title = "mutex lock+unlock (exclusive)", unit = "ns",
	c("ipcsh", "ipcsh mutex", OURS("lock_pair", P.dur)),
	floor2(),
	c("c_mutex", "C robust pthread_mutex", C("c_pshared", "mutex_pair", P.dur)),
	c("flock", "flock(2)", C("filelock", "flock pair", LOCKFILE, P.dur)),
	c("fcntl", "fcntl F_SETLKW", C("filelock", "fcntl pair", LOCKFILE, P.dur)),
	c("ofd", "fcntl F_OFD_SETLKW", C("filelock", "ofd pair", LOCKFILE, P.dur)),
	c("py_lock", "Python mp.Lock", PY("lock_pair", P.dur)),
	c("boost_once", "Boost sharable_mutex (open once)", BOOST("mutex_pair once", P.dur)),
	c("boost_perop", "Boost sharable_mutex (open per op)", BOOST("mutex_pair perop", P.dur)),
}
workload { id = "shared_pair", group = G1, title = "mutex lock_shared+unlock", unit = "ns",
	c("ipcsh", "ipcsh mutex", OURS("shared_pair", P.dur)),
	floor2(),
	c("c_rwlock", "C pthread_rwlock rdlock", C("c_pshared", "rwlock_shared_pair", P.dur)),
	c("flock", "flock(2) LOCK_SH", C("filelock", "flock shared_pair", LOCKFILE, P.dur)),
	c("fcntl", "fcntl F_RDLCK", C("filelock", "fcntl shared_pair", LOCKFILE, P.dur)),
	c("boost_once", "Boost sharable (open once)", BOOST("shared_pair once", P.dur)),
	c("boost_perop", "Boost sharable (open per op)", BOOST("shared_pair perop", P.dur)),
}
workload { id = "sem_pair", group = G1, title = "semaphore post+wait", unit = "ns",
	c("ipcsh", "ipcsh semaphore", OURS("sem_pair", P.dur)),
	floor2(),
	c("c_sem", "C sem_t", C("c_pshared", "sem_pair", P.dur)),
	c("py_sem", "Python mp.Semaphore", PY("sem_pair", P.dur)),
	c("boost_once", "Boost named_semaphore (open once)", BOOST("sem_pair once", P.dur)),
	c("boost_perop", "Boost named_semaphore (open per op)", BOOST("sem_pair perop", P.dur)),
}
workload { id = "queue_pair", group = G1, title = "queue send+receive 16 B", unit = "ns",
	c("ipcsh", "ipcsh queue", OURS("queue_pair", 16, P.dur)),
	floor2(),
	c("posix_mq", "POSIX mq", C("posix_mq", "pair 16", P.dur)),
	c("py_queue", "Python mp.Queue", PY("queue_pair", P.dur)),
	c("boost_once", "Boost message_queue (open once)", BOOST("queue_pair once 16", P.dur)),
	c("boost_perop", "Boost message_queue (open per op)", BOOST("queue_pair perop 16", P.dur)),
}
workload { id = "shm_add", group = G1, title = "shm:add (one atomic op; pipeline check)", unit = "ns",
	c("ipcsh", "ipcsh shm", OURS("shm_add", P.dur)),
	c("floor1", "floor: 1 no-op Lua->C call", OURS("floor", 1, P.dur)),
}

for _, n in ipairs { 2, 4, 8 } do
	workload { id = "lock_contend_" .. n, group = G2, title = n .. " processes on one lock",
		unit = "/s", procs = n, plot = "contend",
		c("ipcsh", "ipcsh mutex", OURS("lock_contend", n, P.cdur)),
		c("c_mutex", "C robust pthread_mutex", C("c_pshared", "mutex_contend", n, P.cdur)),
		c("flock", "flock(2)", C("filelock", "flock contend", LOCKFILE, n, P.cdur)),
		c("fcntl", "fcntl F_SETLKW", C("filelock", "fcntl contend", LOCKFILE, n, P.cdur)),
		c("py_lock", "Python mp.Lock", PY("lock_contend", n, P.cdur)),
		c("boost_once", "Boost sharable_mutex", BOOST("mutex_contend", n, P.cdur)),
	}
end
for _, n in ipairs { 2, 8 } do
	workload { id = "shm_contend_" .. n, group = G2, title = n .. " processes shm:add (pipeline check)",
		unit = "/s", procs = n,
		c("ipcsh", "ipcsh shm:add", OURS("shm_contend", n, P.cdur)),
	}
end

for _, size in ipairs { 16, 256, 1024 } do
	local pyq, pywhy = nil, "16-character strings only"
	if size == 16 then pyq, pywhy = PY("queue_thru 1 1 {N}") end
	workload { id = "queue_1to1_" .. size, group = G3, title = "1 -> 1, " .. size .. " B", unit = "/s",
		size = size, plot = "size",
		cn(P.qmsgs, "ipcsh", "ipcsh queue", OURS("queue_thru", size, 1, 1, "{N}")),
		cn(P.qmsgs, "futex_ring", "C futex SPSC ring", C("futex_ring", "thru", size, "{N}")),
		cn(P.qmsgs_mid, "posix_mq", "POSIX mq", C("posix_mq", "thru", size, 1, 1, "{N}")),
		cn(P.qmsgs_slow, "py_queue", "Python mp.Queue", pyq, pywhy),
		cn(P.qmsgs_mid, "boost_once", "Boost message_queue (open once)", BOOST("queue_thru once", size, 1, 1, "{N}")),
		cn(P.qmsgs_slow, "boost_perop", "Boost message_queue (open per op)", BOOST("queue_thru perop", size, 1, 1, "{N}")),
	}
end
for _, n in ipairs { 2, 4, 8 } do
	workload { id = "queue_nm_" .. n, group = G3, title = n .. " -> " .. n .. ", 16 B", unit = "/s",
		procs = n, plot = "nm",
		cn(P.nm_msgs, "ipcsh", "ipcsh queue", OURS("queue_thru", 16, n, n, "{N}")),
		cn(P.nm_msgs, "posix_mq", "POSIX mq", C("posix_mq", "thru", 16, n, n, "{N}")),
		cn(P.nm_msgs, "boost_once", "Boost message_queue", BOOST("queue_thru once", 16, n, n, "{N}")),
	}
end

workload { id = "pingpong_sem", group = G4, title = "through two semaphores", unit = "ns", latency = true,
	cn(P.rounds, "ipcsh", "ipcsh semaphore", OURS("sem_pingpong", "{N}")),
	cn(P.rounds, "c_sem", "C sem_t", C("c_pshared", "sem_pingpong", "{N}")),
	cn(P.rounds_slow, "py_sem", "Python mp.Semaphore", PY("sem_pingpong", "{N}")),
	cn(P.rounds // 2, "boost_once", "Boost named_semaphore", BOOST("sem_pingpong", "{N}")),
}
workload { id = "pingpong_queue", group = G4, title = "through two queues, 16 B", unit = "ns", latency = true,
	cn(P.rounds, "ipcsh", "ipcsh queue", OURS("queue_pingpong", 16, "{N}")),
	cn(P.rounds, "posix_mq", "POSIX mq", C("posix_mq", "pingpong", 16, "{N}")),
	cn(P.rounds_slow, "py_queue", "Python mp.Queue", PY("queue_pingpong", "{N}")),
	cn(P.rounds // 2, "boost_once", "Boost message_queue", BOOST("queue_pingpong", 16, "{N}")),
}

workload { id = "startup", group = G5, title = "start-up, empty script", unit = "ns",
	c("ipcsh", "ipcsh -e ''", C("spawntime", P.spawns, q(IPCSH_BIN), "-e", "''")),
	c("lua", "lua5.4 -e ''", C("spawntime", P.spawns, "lua5.4", "-e", "''")),
	c("lua_so", "lua5.4 -l interprocess -e ''", C("spawntime", P.spawns, "lua5.4", "-l", "interprocess", "-e", "''")),
}
workload { id = "list_1000", group = G5, title = "ipc.list() with 1,000 objects", unit = "ns",
	c("ipcsh", "ipcsh ipc.list()", OURS("list", 1000, P.list_dur)),
}

-- Targets (PASS/MISS).  kind "ratio": ours/baseline compared with value;
-- kind "abs": ours compared with value; kind "rel": ours of one workload
-- against ours of another times value.
local TARGETS = {
	{ w = "lock_pair", b = "py_lock", op = "<=", v = 1.0, text = "lock+unlock <= 1.0x Python mp.Lock" },
	{ w = "lock_pair", b = "floor", op = "<=", v = 3.0, text = "lock+unlock <= 3x two no-op Lua->C calls" },
	{ w = "shared_pair", b = "floor", op = "<=", v = 3.0, text = "lock_shared+unlock <= 3x two no-op Lua->C calls" },
	{ w = "lock_contend_2", b = "py_lock", op = ">=", v = 1.0, text = "2 processes on one lock >= 1.0x Python mp.Lock" },
	{ w = "lock_contend_4", b = "py_lock", op = ">=", v = 1.0, text = "4 processes on one lock >= 1.0x Python mp.Lock" },
	{ w = "lock_contend_8", b = "py_lock", op = ">=", v = 1.0, text = "8 processes on one lock >= 1.0x Python mp.Lock" },
	{ w = "lock_contend_2", b = "c_mutex", op = ">=", v = 0.5, text = "2 processes on one lock >= 0.5x C robust mutex" },
	{ w = "lock_contend_4", b = "c_mutex", op = ">=", v = 0.5, text = "4 processes on one lock >= 0.5x C robust mutex" },
	{ w = "lock_contend_8", b = "c_mutex", op = ">=", v = 0.5, text = "8 processes on one lock >= 0.5x C robust mutex" },
	{ w = "sem_pair", b = "py_sem", op = "<=", v = 1.0, text = "post+wait <= 1.0x Python mp.Semaphore" },
	{ w = "sem_pair", b = "floor", op = "<=", v = 3.0, text = "post+wait <= 3x two no-op Lua->C calls" },
	{ w = "queue_1to1_16", abs = true, op = ">=", v = 4e6, text = "queue 1->1 16 B >= 4 M msg/s" },
	{ w = "queue_1to1_16", b = "boost_once", op = ">=", v = 1.5, text = "queue 1->1 16 B >= 1.5x Boost message_queue" },
	{ w = "queue_1to1_16", b = "posix_mq", op = ">=", v = 2.0, text = "queue 1->1 16 B >= 2x POSIX mq" },
	{ w = "queue_1to1_1024", b = "posix_mq", op = ">=", v = 1.0, text = "queue 1->1 1 KiB >= 1x POSIX mq" },
	{ w = "queue_1to1_16", b = "py_queue", op = ">=", v = 15.0, text = "queue 1->1 16 B >= 15x Python mp.Queue" },
	{ w = "queue_nm_2", b = "boost_once", op = ">=", v = 1.0, text = "queue 2->2 >= 1.0x Boost message_queue" },
	{ w = "queue_nm_4", b = "boost_once", op = ">=", v = 1.0, text = "queue 4->4 >= 1.0x Boost message_queue" },
	{ w = "queue_nm_8", b = "boost_once", op = ">=", v = 1.0, text = "queue 8->8 >= 1.0x Boost message_queue" },
	{ w = "queue_nm_4", rel = "queue_1to1_16", op = ">=", v = 0.5, text = "queue 4x4 >= 0.5x queue 1->1 (16 B)" },
}

return { P = P, W = W, TARGETS = TARGETS, q = q, sh_out = sh_out }
