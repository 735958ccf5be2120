#!/bin/sh
# `make bench` (full, ~5 min on 2 cores) / `make bench QUICK=1` (under 1 min).
#   sh bench/run.sh quick|full
# Builds the baselines into build/bench/, then runs bench/driver.lua, which
# prints the table and writes bench/results/latest.json, latest.txt and PNGs.
MODE=${1:-full}
case $MODE in quick | full) ;; *)
	echo "usage: sh bench/run.sh quick|full" >&2
	exit 2
	;;
esac
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
if [ ! -x ./ipcsh ]; then
	echo "bench: ./ipcsh is not built: run make first" >&2
	exit 2
fi

# Dependencies of the baselines: install them when we can, else note and go on.
missing=
command -v python3 >/dev/null 2>&1 || missing="$missing python3"
command -v g++ >/dev/null 2>&1 || missing="$missing g++"
[ -f /usr/include/boost/interprocess/ipc/message_queue.hpp ] || missing="$missing libboost-dev"
command -v gnuplot >/dev/null 2>&1 || missing="$missing gnuplot-nox"
if [ -n "$missing" ]; then
	if [ "$(id -u)" = 0 ] && [ -z "$IPCBENCH_NO_INSTALL" ]; then
		echo "bench: installing$missing" >&2
		sh bench/install-deps.sh || echo "bench: install failed; the baselines that need$missing are skipped" >&2
	else
		echo "bench: missing$missing (sh bench/install-deps.sh as root); those baselines are skipped" >&2
	fi
fi

# Build the baselines (-O2).  One that fails to build is skipped, not faked.
B=build/bench
mkdir -p "$B"
log=$B/build.log
: >"$log"
CC=${CC:-cc}
CFLAGS="-O2 -std=gnu11 -D_GNU_SOURCE -pthread -Wall -Wextra"
build() { # output, command... (the last source named is bench/baselines/*)
	out=$1
	shift
	up=1
	for a in "$@"; do
		case $a in bench/baselines/*) [ -f "$out" ] && [ ! "$a" -nt "$out" ] &&
			[ ! bench/baselines/bench.h -nt "$out" ] && up= ;;
		esac
	done
	[ -z "$up" ] && return 0
	if ! "$@" >>"$log" 2>&1; then
		echo "bench: could not build $out (see $log)" >&2
		rm -f "$out"
	fi
}
for p in c_pshared filelock futex_ring spawntime; do
	build $B/$p $CC $CFLAGS -o $B/$p bench/baselines/$p.c
done
build $B/posix_mq $CC $CFLAGS -o $B/posix_mq bench/baselines/posix_mq.c -lrt
build $B/benchnoop.so $CC $CFLAGS -fPIC -shared $(pkg-config --cflags lua5.4) \
	-o $B/benchnoop.so bench/baselines/benchnoop.c
if command -v g++ >/dev/null 2>&1 && [ -f /usr/include/boost/interprocess/ipc/message_queue.hpp ]; then
	build $B/boost_ipc g++ -O2 -std=gnu++17 -D_GNU_SOURCE -pthread -Wall -Wextra \
		-o $B/boost_ipc bench/baselines/boost_ipc.cpp -lrt
else
	rm -f $B/boost_ipc
fi

IPCSH_DIR=$(mktemp -d /dev/shm/ipcsh-bench.XXXXXX) || exit 2
export IPCSH_DIR
trap 'rm -rf "$IPCSH_DIR"' EXIT
trap 'exit 130' INT TERM HUP
export IPCBENCH_LUA="${IPCBENCH_LUA:-$top/ipcsh}" IPCBENCH_BIN="$top/$B" IPCBENCH_RESULTS="${IPCBENCH_RESULTS:-$top/bench/results}" IPCBENCH_IPCSH="$top/ipcsh"
export IPCBENCH_PYTHON="$(command -v python3 || true)"
export LUA_CPATH="$top/$B/?.so;$top/?.so;;"
DRIVER_LUA=$(command -v lua5.4 || echo "$top/ipcsh")
"$DRIVER_LUA" bench/driver.lua "$MODE"
