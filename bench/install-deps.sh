#!/bin/sh
# Install what `make bench` compares against (Debian packages): python3 for
# the multiprocessing baselines, g++ and libboost-dev for Boost.Interprocess,
# gnuplot-nox for the plots.  Needs root.
set -e
PKGS="python3 g++ libboost-dev gnuplot-nox"
if [ "$(id -u)" != 0 ]; then
	echo "bench/install-deps.sh: needs root. Run: sudo apt-get update && sudo apt-get install -y $PKGS" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
