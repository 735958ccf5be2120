#!/bin/sh
# `make bench-ir`: instructions (Ir) per operation pair from Lua, counted by
# callgrind, so the figures do not move with machine load.  Each workload
# runs twice, with N and with 0 iterations; (Ir(N) - Ir(0)) / N is the cost
# of one pair (median of 3) with start-up and set-up subtracted.  Printed beside the floor
# (the same number of no-op Lua->C method calls) and Python's
# multiprocessing measured the same way.
#   sh bench/ir.sh [N]        (N defaults to 20000)
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
N=${1:-20000}
command -v valgrind >/dev/null 2>&1 || {
	echo "bench-ir: valgrind is not installed (scripts/install-deps.sh --all)" >&2
	exit 2
}
B=build/bench
mkdir -p "$B"
cc -O2 -fPIC -shared $(pkg-config --cflags lua5.4) -o $B/benchnoop.so \
	bench/baselines/benchnoop.c || exit 2
dir=$(mktemp -d /dev/shm/ipcsh-benchir.XXXXXX)
trap 'rm -rf "$dir"' EXIT

# ir CMD...: total Ir of one run of CMD under callgrind.
ir() {
	IPCSH_DIR=$dir valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 |
		sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
# per_pair LABEL CMD...: the median of 3 measurements.  Lua and Python
# seed their string hashes at random (address and time), which moves a count
# by a few per cent from run to run; the median steadies it.
per_pair() {
	label=$1
	shift
	for _ in 1 2 3; do
		a=$(ir "$@" 0)
		b=$(ir "$@" "$N")
		if [ -z "$a" ] || [ -z "$b" ]; then
			echo "$label: could not measure" >&2
			echo "-"
			return
		fi
		echo $(((b - a) / N))
	done | sort -n | sed -n 2p
}

lua_case() { # body of the loop, set-up
	cat >"$dir/$1.lua" <<LUA
package.cpath = "$top/$B/?.so;" .. package.cpath
local ipc = require "interprocess"
local n = tonumber(arg[1])
$3
for _ = 1, n do $2 end
LUA
}
lua_case floor1 "o:noop()" 'local o = require "benchnoop"'
lua_case floor2 "o:noop() o:noop()" 'local o = require "benchnoop"'
lua_case lock "m:lock() m:unlock()" 'local m = ipc.mutex { cleanup = true }'
lua_case sem "s:post() s:wait()" 'local s = ipc.semaphore { cleanup = true }'
lua_case queue "q:send(msg) q:receive()" \
	'local q = ipc.queue { cleanup = true } local msg = ("x"):rep(16)'

py_case() {
	cat >"$dir/$1.py" <<PY
import multiprocessing as mp, sys
n = int(sys.argv[1])
$2
for _ in range(n):
    $3
PY
}
py_case pylock "l = mp.Lock(); a, r = l.acquire, l.release" "a(); r()"
py_case pysem "s = mp.Semaphore(0); a, r = s.acquire, s.release" "r(); a()"

f2=$(per_pair floor ./ipcsh "$dir/floor2.lua")
lk=$(per_pair lock ./ipcsh "$dir/lock.lua")
sm=$(per_pair sem ./ipcsh "$dir/sem.lua")
qu=$(per_pair queue ./ipcsh "$dir/queue.lua")
pl=-
ps=-
# Debian's python3 (a pyenv shim is a script callgrind would measure instead).
PY=$(command -v /usr/bin/python3 || command -v python3)
if [ -n "$PY" ]; then
	pl=$(per_pair pylock "$PY" "$dir/pylock.py")
	ps=$(per_pair pysem "$PY" "$dir/pysem.py")
fi
ratio() { # a b -> a/b with two decimals, or -
	case "$1$2" in *-*) echo - ;; *) awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }' ;; esac
}
printf '%-22s %8s %8s %8s %12s %8s\n' "pair (Ir, N=$N)" ipcsh floor ratio "python mp" ratio
printf '%-22s %8s %8s %8s %12s %8s\n' "lock+unlock" "$lk" "$f2" "$(ratio "$lk" "$f2")" "$pl" "$(ratio "$lk" "$pl")"
printf '%-22s %8s %8s %8s %12s %8s\n' "post+wait" "$sm" "$f2" "$(ratio "$sm" "$f2")" "$ps" "$(ratio "$sm" "$ps")"
printf '%-22s %8s %8s %8s %12s %8s\n' "send+receive 16 B" "$qu" "$f2" "$(ratio "$qu" "$f2")" - -
