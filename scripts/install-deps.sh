#!/bin/sh
# Install what building and testing ipcsh needs, from Debian's packages.
# Optional extras (benchmark peers, fuzzing) with: install-deps.sh --all
set -e
PKGS="build-essential pkg-config lua5.4 liblua5.4-dev lua-busted libpq-dev postgresql python3 procps spin"
if [ "$1" = "--all" ]; then
	PKGS="$PKGS python3 libboost-dev gnuplot-nox valgrind clang libclang-rt-14-dev"
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: needs root. Run: sudo apt-get update && sudo apt-get install -y $PKGS" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
