#!/bin/sh
# Install everything building and testing ipcsh needs (all of .ci/run: the
# build, make check-format, make fuzz-check / fuzz-quick, make valgrind,
# make test [SANITIZE=1], the packaging and model-checking steps), from
# Debian 12's packages, on a bare machine.  Optional extras for the
# benchmarks (comparison peers, plots, load generator): install-deps.sh --all
set -e
# build and test: compiler, Lua, busted, PostgreSQL (client library, and the
# server for the remote-object specs), python3 and procps (used by specs),
# tmux (the interactive `ipcsh top` spec), iproute2 (ss)
PKGS="build-essential make pkg-config lua5.4 liblua5.4-dev lua-busted libpq-dev postgresql python3 procps
 iproute2 tmux time git"
# checks: clang-format 14 (make check-format), clang + libFuzzer runtime
# (make fuzz-*), valgrind (make valgrind, callgrind figures)
PKGS="$PKGS clang-format clang libclang-rt-14-dev valgrind"
# model checking and packaging: spin, luarocks, Debian package tools
PKGS="$PKGS spin luarocks debhelper dpkg-dev lintian fakeroot"
if [ "$1" = "--all" ]; then
	PKGS="$PKGS libboost-dev gnuplot-nox stress-ng"
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: needs root. Run: sudo apt-get update && sudo apt-get install -y" $PKGS >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# wait (up to 10 min) for another apt/dpkg run to finish instead of failing
LOCK="-o DPkg::Lock::Timeout=600"
apt-get $LOCK update -qq
apt-get $LOCK install -y -qq --no-install-recommends $PKGS >/dev/null
