-- `make bench` driver: runs every workload for ipcsh and for each baseline,
-- alternating them, REPS times; prints medians, spreads and ratios, checks
-- the targets, writes bench/results/latest.json (+ a timestamped copy) and
-- PNG plots.  Run by bench/run.sh:  lua5.4 bench/driver.lua quick|full
-- Environment (set by run.sh): IPCBENCH_LUA (the ./ipcsh used for our side),
-- IPCBENCH_BIN (build/bench), IPCBENCH_RESULTS, IPCBENCH_PYTHON (or empty),
-- IPCSH_DIR (a private directory for the objects), LUA_CPATH.
local MODE = arg[1] or "full"
local QUICK = MODE == "quick"
local IPCSH = assert(os.getenv("IPCBENCH_LUA"), "IPCBENCH_LUA not set")
local IPCSH_BIN = os.getenv("IPCBENCH_IPCSH") or IPCSH -- the runner, for start-up time
local BIN = assert(os.getenv("IPCBENCH_BIN"), "IPCBENCH_BIN not set")
local RESULTS = os.getenv("IPCBENCH_RESULTS") or "bench/results"
local PYTHON = os.getenv("IPCBENCH_PYTHON") or ""
local TMP = os.getenv("IPCSH_DIR") or "/tmp"
local ONLY = os.getenv("IPCBENCH_ONLY") -- a Lua pattern on workload ids (for debugging)

local WL = assert(loadfile("bench/workloads.lua"))({
	QUICK = QUICK, IPCSH = IPCSH, IPCSH_BIN = IPCSH_BIN, BIN = BIN,
	PYTHON = PYTHON, TMP = TMP, ONLY = ONLY,
})
local P, W, TARGETS, q, sh_out = WL.P, WL.W, WL.TARGETS, WL.q, WL.sh_out

-------------------------------------------------------------------------------
-- Running

local function median(t)
	local s = {}
	for i, v in ipairs(t) do s[i] = v end
	table.sort(s)
	local n = #s
	if n == 0 then return nil end
	if n % 2 == 1 then return s[(n + 1) // 2] end
	return (s[n // 2] + s[n // 2 + 1]) / 2
end

-- Wall clock in seconds: ipc.clock from interprocess.so when it loads (it
-- is built by `make`), else whole seconds.
local wall
do
	local ok, m = pcall(require, "interprocess")
	if ok and type(m) == "table" and m.clock then
		wall = function() return m.clock() / 1e3 end
	else
		wall = os.time
	end
end

local function run_one(cmd)
	local t0 = wall()
	local f = io.popen("timeout 300 " .. cmd .. " 2>&1; echo \"exit $?\"", "r")
	local out = f:read("a")
	f:close()
	local r = { pct = {}, notes = {}, secs = wall() - t0 }
	for line in out:gmatch("[^\n]+") do
		local k, v = line:match("^(%S+) (.*)$")
		if k == "skip" then
			r.skip = v
		elseif k == "note" then
			r.notes[#r.notes + 1] = v
		elseif k == "pct" then
			local p, x = v:match("^(%S+) (%S+)$")
			r.pct[tonumber(p)] = tonumber(x)
		elseif k == "exit" then
			r.exit = tonumber(v)
		elseif (k == "ns" or k == "rate" or k == "p50" or k == "p99") and tonumber(v) then
			r[k] = tonumber(v)
		end
	end
	if not r.skip and r.exit ~= 0 then
		local last = out:gsub("\nexit %d+%s*$", ""):match("([^\n]*)$")
		r.fail = "failed (exit " .. tostring(r.exit) .. "): " .. last:sub(1, 120)
	end
	return r
end

local function metrics_of(w)
	if w.latency then return { "p50", "p99" } end
	return { w.unit == "/s" and "rate" or "ns" }
end

local t_start = os.time()
io.stderr:write(string.format("bench: %s run, %d repetitions, %d workloads\n", MODE, P.reps, #W))
for wi, w in ipairs(W) do
	io.stderr:write(string.format("[%d/%d] %s: %s ", wi, #W, w.id, w.title))
	local w_start = os.time()
	for _, ct in ipairs(w) do
		ct.samples, ct.notes, ct.pcts = {}, {}, {}
		for _, m in ipairs(metrics_of(w)) do ct.samples[m] = {} end
		if not ct.cmd then ct.skip = ct.why or "not available" end
	end
	-- Pilot run (discarded) of each counted contender at a fraction of its
	-- count: one that would take longer than P.budget gets a smaller count.
	for _, ct in ipairs(w) do
		if ct.count and not ct.skip then
			local floor = w.latency and P.min_rounds or P.min_msgs
			local div = w.latency and 5 or 20
			local n0 = math.max(floor, ct.count // div // 8 * 8)
			if n0 < ct.count then
				local r = run_one((ct.cmd:gsub("{N}", tostring(n0))))
				io.stderr:write(",")
				if r.skip then
					ct.skip = r.skip
				elseif r.fail then
					ct.fail = r.fail
				else
					local est = r.rate and r.rate > 0 and ct.count / r.rate or r.secs * ct.count / n0
					if est > P.budget then
						local n = math.max(floor, math.floor(ct.count * P.budget / est / 8) * 8)
						ct.notes[string.format("slow: %d %s per run (the full %d would take %.1f s)", n,
							w.latency and "round trips" or "messages", ct.count, est)] = true
						ct.count = n
					end
				end
			end
		end
	end
	for _ = 1, P.reps do
		for _, ct in ipairs(w) do
			if not ct.skip and not ct.fail then
				local cmd = ct.cmd
				if ct.count then cmd = cmd:gsub("{N}", tostring(ct.count)) end
				local r = run_one(cmd)
				if r.skip then
					ct.skip = r.skip
				elseif r.fail then
					ct.fail = r.fail
				else
					for _, m in ipairs(metrics_of(w)) do
						if r[m] then table.insert(ct.samples[m], r[m]) end
					end
					for p, x in pairs(r.pct) do
						ct.pcts[p] = ct.pcts[p] or {}
						table.insert(ct.pcts[p], x)
					end
					for _, n in ipairs(r.notes) do ct.notes[n] = true end
					if ct.count then
						ct.counts = ct.counts or {}
						table.insert(ct.counts, ct.count)
					end
				end
				io.stderr:write(".")
			end
		end
	end
	io.stderr:write(string.format(" %ds\n", os.time() - w_start))
	for _, ct in ipairs(w) do
		ct.stats = {}
		for _, m in ipairs(metrics_of(w)) do
			local s = ct.samples[m]
			if #s > 0 then
				local lo, hi = math.huge, -math.huge
				for _, v in ipairs(s) do lo, hi = math.min(lo, v), math.max(hi, v) end
				ct.stats[m] = { median = median(s), min = lo, max = hi, n = #s }
			elseif not ct.skip and not ct.fail then
				ct.fail = "no result"
			end
		end
		local d = {}
		for p, xs in pairs(ct.pcts) do d[#d + 1] = { p, median(xs) } end
		table.sort(d, function(a, b) return a[1] < b[1] end)
		ct.dist = d
	end
end
local elapsed = os.time() - t_start

-------------------------------------------------------------------------------
-- Reporting

local byid = {}
for _, w in ipairs(W) do byid[w.id] = w end

local function fmt(v, unit)
	if v == nil then return "-" end
	if unit == "/s" then
		if v >= 1e6 then return string.format("%.2f M/s", v / 1e6) end
		if v >= 1e3 then return string.format("%.1f k/s", v / 1e3) end
		return string.format("%.0f /s", v)
	end
	if v >= 1e6 then return string.format("%.2f ms", v / 1e6) end
	if v >= 1e4 then return string.format("%.1f us", v / 1e3) end
	if v >= 100 then return string.format("%.0f ns", v) end
	return string.format("%.1f ns", v)
end

local function ratio_of(w, ct, m)
	local o, b = w[1].stats[m], ct.stats[m]
	if ct == w[1] or not o or not b or b.median == 0 then return nil end
	return o.median / b.median
end

-- Evaluate targets.
for _, t in ipairs(TARGETS) do
	local w = byid[t.w]
	t.status = "n/a"
	if w then
		local m = metrics_of(w)[1]
		local o = w[1].stats[m]
		local got
		if t.abs then
			got = o and o.median
		elseif t.rel then
			local w2 = byid[t.rel]
			local o2 = w2 and w2[1].stats[m]
			got = o and o2 and o.median / o2.median
		else
			for _, ct in ipairs(w) do
				if ct.id == t.b then got = ratio_of(w, ct, m) end
			end
		end
		t.value = got
		if got then
			local ok = (t.op == "<=" and got <= t.v) or (t.op == ">=" and got >= t.v)
			t.status = ok and "PASS" or "MISS"
		else
			t.why = o and "baseline missing" or (w[1].skip or w[1].fail or "no figure")
		end
	end
end
local function target_cell(w, ct)
	local cells = {}
	for _, t in ipairs(TARGETS) do
		if t.w == w.id and ((t.b and t.b == ct.id) or ((t.abs or t.rel) and ct == w[1])) then
			local need = t.abs and string.format("%s %s", t.op, fmt(t.v, w.unit))
				or string.format("%s %gx", t.op, t.v)
			cells[#cells + 1] = need .. " " .. t.status
		end
	end
	return table.concat(cells, "; ")
end

local function cpu_model()
	local f = io.open("/proc/cpuinfo")
	if not f then return "unknown" end
	for line in f:lines() do
		local m = line:match("^model name%s*:%s*(.*)$")
		if m then f:close() return m end
	end
	f:close()
	return "unknown"
end
local machine = {
	cpu = cpu_model(),
	cores = tonumber(sh_out("nproc")) or 0,
	kernel = sh_out("uname -sr"),
	loadavg = sh_out("cat /proc/loadavg"),
	date = os.date("!%Y-%m-%dT%H:%M:%SZ", t_start),
	commit = sh_out("git rev-parse --short HEAD"),
	python = PYTHON ~= "" and sh_out(q(PYTHON) .. " -V") or "absent",
	mode = MODE,
	reps = P.reps,
	seconds = elapsed,
	mock = (os.getenv("LUA_INIT") or ""):match("mock") and true or nil,
}

local out = {}
local function pr(...) out[#out + 1] = string.format(...) end
pr("ipcsh benchmarks (%s, %d repetitions, alternating; %d s)", MODE, P.reps, elapsed)
pr("machine: %s, %d cores, %s, load %s", machine.cpu, machine.cores, machine.kernel, machine.loadavg)
if machine.mock then pr("WARNING: LUA_INIT loads bench/lua/mock.lua: the ipcsh figures are a harness self-test") end
pr("median of the repetitions; spread = min-max; ratio = ipcsh / baseline (ns: lower is")
pr("better for ipcsh; /s: higher is better)")
local hdr = string.format("%-40s %12s %25s %8s  %s", "implementation", "median", "spread (min-max)", "ratio", "target")
local group
for _, w in ipairs(W) do
	if w.group ~= group then
		group = w.group
		pr("")
		pr("== %s", group)
		pr("%s", hdr)
	end
	for mi, m in ipairs(metrics_of(w)) do
		pr("-- %s%s", w.title, w.latency and (" (" .. m .. ")") or "")
		for _, ct in ipairs(w) do
			local s = ct.stats[m]
			if s then
				local r = ratio_of(w, ct, m)
				pr("%-40s %12s %25s %8s  %s", ct.label, fmt(s.median, w.unit),
					fmt(s.min, w.unit) .. " - " .. fmt(s.max, w.unit),
					r and string.format("%.2fx", r) or "", mi == 1 and target_cell(w, ct) or "")
			else
				pr("%-40s skipped: %s", ct.label, ct.skip or ct.fail or "no result")
			end
		end
	end
	local notes = {}
	for _, ct in ipairs(w) do
		for n in pairs(ct.notes or {}) do notes[#notes + 1] = ct.label .. ": " .. n end
	end
	table.sort(notes)
	for _, n in ipairs(notes) do pr("   note: %s", n) end
end
pr("")
pr("== targets")
for _, t in ipairs(TARGETS) do
	local v = t.value and (t.abs and fmt(t.value, "/s") or string.format("%.2fx", t.value)) or "-"
	pr("%-4s %-50s %s%s", t.status, t.text, v, t.why and ("  (" .. t.why .. ")") or "")
end
local text = table.concat(out, "\n") .. "\n"
io.write(text)

-- JSON
local function json(v, ind)
	ind = ind or ""
	local tv = type(v)
	if tv == "nil" then return "null" end
	if tv == "boolean" then return tostring(v) end
	if tv == "number" then
		if v ~= v or v == math.huge or v == -math.huge then return "null" end
		if math.type(v) == "integer" then return tostring(v) end
		return string.format("%.6g", v)
	end
	if tv == "string" then
		return '"' .. v:gsub('[%c"\\]', function(ch)
			local map = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\t"] = "\\t" }
			return map[ch] or string.format("\\u%04x", ch:byte())
		end) .. '"'
	end
	local inner = ind .. "  "
	local parts = {}
	if #v > 0 or next(v) == nil then
		for _, x in ipairs(v) do parts[#parts + 1] = inner .. json(x, inner) end
		if #parts == 0 then return "[]" end
		return "[\n" .. table.concat(parts, ",\n") .. "\n" .. ind .. "]"
	end
	local keys = {}
	for k in pairs(v) do keys[#keys + 1] = k end
	table.sort(keys)
	for _, k in ipairs(keys) do parts[#parts + 1] = inner .. json(tostring(k)) .. ": " .. json(v[k], inner) end
	return "{\n" .. table.concat(parts, ",\n") .. "\n" .. ind .. "}"
end

local doc = { machine = machine, params = P, workloads = {}, targets = {} }
for _, w in ipairs(W) do
	local jw = { id = w.id, group = w.group, title = w.title,
		unit = w.unit == "/s" and "per_second" or "ns", better = w.unit == "/s" and "higher" or "lower",
		results = {} }
	for _, ct in ipairs(w) do
		local jr = { id = ct.id, label = ct.label, ours = ct == w[1], command = ct.cmd,
			skipped = ct.skip or ct.fail, count = ct.counts }
		for _, m in ipairs(metrics_of(w)) do
			if ct.stats[m] then
				jr[m] = { median = ct.stats[m].median, min = ct.stats[m].min, max = ct.stats[m].max,
					samples = ct.samples[m], ratio = ratio_of(w, ct, m) }
			end
		end
		if #ct.dist > 0 then
			jr.distribution = {}
			for _, d in ipairs(ct.dist) do jr.distribution[#jr.distribution + 1] = { pct = d[1], ns = d[2] } end
		end
		local notes = {}
		for n in pairs(ct.notes or {}) do notes[#notes + 1] = n end
		if #notes > 0 then jr.notes = notes end
		jw.results[#jw.results + 1] = jr
	end
	doc.workloads[#doc.workloads + 1] = jw
end
for _, t in ipairs(TARGETS) do
	doc.targets[#doc.targets + 1] = { text = t.text, status = t.status, value = t.value,
		threshold = t.v, op = t.op, why = t.why }
end
os.execute("mkdir -p " .. q(RESULTS))
local stamp = os.date("!%Y%m%dT%H%M%SZ", t_start)
local js = json(doc) .. "\n"
for _, name in ipairs { "latest.json", stamp .. "-" .. MODE .. ".json" } do
	local f = assert(io.open(RESULTS .. "/" .. name, "w"))
	f:write(js)
	f:close()
end
do
	local f = assert(io.open(RESULTS .. "/latest.txt", "w"))
	f:write(text)
	f:close()
end

-------------------------------------------------------------------------------
-- Plots (gnuplot)

local GNUPLOT = sh_out("command -v gnuplot")
if GNUPLOT == "" then
	io.write("\nplots: skipped (gnuplot not installed: apt-get install gnuplot-nox)\n")
	os.exit(0)
end
local PD = RESULTS .. "/plotdata"
os.execute("mkdir -p " .. q(PD))
local function write(path, s)
	local f = assert(io.open(path, "w"))
	f:write(s)
	f:close()
end
local function esc(s) return (s:gsub('"', "'")) end

-- Series: contender id -> {label, points {x, y}} over the workloads of one plot.
local function series(filter, xof, m)
	local order, by = {}, {}
	for _, w in ipairs(W) do
		if filter(w) then
			for _, ct in ipairs(w) do
				local s = ct.stats[m]
				if s then
					if not by[ct.id] then
						by[ct.id] = { label = ct.label, pts = {} }
						order[#order + 1] = ct.id
					end
					table.insert(by[ct.id].pts, { xof(w), s.median })
				end
			end
		end
	end
	local list = {}
	for _, id in ipairs(order) do
		local s = by[id]
		s.id = id
		if #s.pts > 0 then list[#list + 1] = s end
	end
	return list
end

-- One colour per implementation across all the plots.
local PALETTE = { "#9400d3", "#009e73", "#56b4e9", "#e69f00", "#f0e442", "#0072b2", "#e51e10",
	"#000000", "#a0a0a0", "#8b4513" }
local colour_of, ncolours = {}, 0
local function colour(id)
	if not colour_of[id] then
		ncolours = ncolours + 1
		colour_of[id] = PALETTE[(ncolours - 1) % #PALETTE + 1]
	end
	return colour_of[id]
end

local function plot_cmd(list, file_prefix, with)
	local parts = {}
	for i, s in ipairs(list) do
		local path = string.format("%s/%s_%d.dat", PD, file_prefix, i)
		local lines = {}
		for _, p in ipairs(s.pts) do lines[#lines + 1] = string.format("%s %s", p[1], p[2]) end
		write(path, table.concat(lines, "\n") .. "\n")
		parts[#parts + 1] = string.format('"%s" using 1:2 with %s lw 2 lc rgb "%s" title "%s"', path, with,
			colour(s.id or s.label), esc(s.label))
	end
	if #parts == 0 then return nil end
	return "plot " .. table.concat(parts, ", \\\n  ")
end

local pngs = {}
local function render(name, script)
	local gp = PD .. "/" .. name .. ".gp"
	write(gp, script)
	local ok = os.execute(q(GNUPLOT) .. " " .. q(gp) .. " 2>" .. q(PD .. "/" .. name .. ".err"))
	pngs[#pngs + 1] = (ok and "" or "FAILED ") .. RESULTS .. "/" .. name .. ".png"
end

local head = 'set terminal pngcairo noenhanced size 1200,560 font ",10"\nset key below\nset grid\n'
do -- throughput vs processes
	local a = plot_cmd(series(function(w) return w.plot == "contend" end, function(w) return w.procs end, "rate"),
		"contend", "linespoints")
	-- N -> N at N = 2, 4, 8, plus the 1 -> 1 16 B figures of the same implementations.
	local nm_ids = {}
	for _, w in ipairs(W) do
		if w.plot == "nm" then for _, ct in ipairs(w) do nm_ids[ct.id] = true end end
	end
	local nm = series(function(w) return w.plot == "nm" or w.id == "queue_1to1_16" end,
		function(w) return w.procs or 1 end, "rate")
	for _, sr in ipairs(nm) do
		table.sort(sr.pts, function(x, y) return x[1] < y[1] end)
	end
	local kept = {}
	for _, sr in ipairs(nm) do if nm_ids[sr.id] then kept[#kept + 1] = sr end end
	local b = plot_cmd(kept, "nm", "linespoints")
	if a or b then
		render("throughput_vs_processes", head .. string.format('set output "%s/throughput_vs_processes.png"\n', RESULTS)
			.. "set multiplot layout 1,2\nset logscale y\nset xlabel \"processes\"\nset xtics (2,4,8)\n"
			.. 'set title "contended lock: lock+unlock pairs/s"\nset ylabel "pairs/s"\n' .. (a or "") .. "\n"
			.. 'set xlabel "producers = consumers"\nset xtics (1,2,4,8)\n'
			.. 'set title "queue N -> N, 16 B: msgs/s"\nset ylabel "msgs/s"\n' .. (b or "") .. "\nunset multiplot\n")
	end
end
do -- latency distribution
	local function dist(id)
		local w = byid[id]
		if not w then return nil end
		local list = {}
		for _, ct in ipairs(w) do
			if #ct.dist > 0 then
				local pts = {}
				for _, d in ipairs(ct.dist) do pts[#pts + 1] = { d[2] / 1e3, d[1] } end
				list[#list + 1] = { id = ct.id, label = ct.label, pts = pts }
			end
		end
		return plot_cmd(list, id, "linespoints")
	end
	local a, b = dist("pingpong_sem"), dist("pingpong_queue")
	if a or b then
		render("latency", head .. string.format('set output "%s/latency.png"\n', RESULTS)
			.. "set multiplot layout 1,2\nset logscale x\nset xlabel \"round trip (us)\"\n"
			.. 'set ylabel "percentile"\nset yrange [0:100]\n'
			.. 'set title "ping-pong through two semaphores"\n' .. (a or "") .. "\n"
			.. 'set title "ping-pong through two queues (16 B)"\n' .. (b or "") .. "\nunset multiplot\n")
	end
end
do -- throughput vs message size
	local a = plot_cmd(series(function(w) return w.plot == "size" end, function(w) return w.size end, "rate"),
		"size", "linespoints")
	if a then
		render("throughput_vs_size", head .. string.format('set output "%s/throughput_vs_size.png"\n', RESULTS)
			.. 'set logscale xy\nset xlabel "message size (bytes)"\nset ylabel "msgs/s"\n'
			.. "set xtics (16, 256, 1024)\nset xrange [10:1600]\n"
			.. 'set title "queue 1 -> 1 throughput vs message size"\n' .. a .. "\n")
	end
end
io.write("\nresults: " .. RESULTS .. "/latest.json, latest.txt; plots: " .. table.concat(pngs, ", ") .. "\n")
