#!/bin/sh
# make package-check: the three ways to install, each from a clean copy of
# the source tree (tracked + untracked-not-ignored files: no build outputs)
# in a temporary directory, so nothing is written into the checkout.
#  1. dpkg-buildpackage -b -us -uc: the file lists of ipcsh, libipcsh0 and
#     libipcsh-dev; lintian with no errors; the packages unpacked with
#     dpkg -x into a throwaway root and used from there (lua5.4 loads the
#     module, a C program built with the root's ipcsh.pc talks to ipcsh).
#  2. luarocks make into a fresh tree: stock lua5.4 loads the rock with only
#     that tree on its paths; the rock's ipcsh runs.
# Prints the time of each part.  Needs debhelper, dpkg-dev, fakeroot,
# lintian, luarocks (scripts/install-deps.sh --all).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d /tmp/ipcsh-pkgcheck.XXXXXX)
objdir=$(mktemp -d /dev/shm/ipcsh-pkgcheck.XXXXXX)
trap 'rm -rf "$tmp" "$objdir"' EXIT
export IPCSH_DIR="$objdir"
unset LUA_PATH LUA_CPATH LUA_INIT LUA_PATH_5_4 LUA_CPATH_5_4 LUA_INIT_5_4 MAKEFLAGS MFLAGS MAKELEVEL
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
version=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)

fail() {
	echo "package-check: $*" >&2
	exit 1
}

# A clean copy of the tree in $1.
copy_tree() {
	mkdir -p "$1"
	(cd "$top" && git ls-files -z -co --exclude-standard |
		tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$1"
	[ -f "$1/Makefile" ] || fail "could not copy the source tree"
}

# --- 1. the Debian packages -----------------------------------------------
t0=$(date +%s)
copy_tree "$tmp/deb/ipcsh"
(cd "$tmp/deb/ipcsh" && dpkg-buildpackage -b -us -uc -j2 >"$tmp/deb/build.log" 2>&1) ||
	{ tail -40 "$tmp/deb/build.log" >&2; fail "dpkg-buildpackage failed"; }
t1=$(date +%s)

# $1 package, then the paths it must hold (a .gz suffix is allowed).
expect() {
	deb="$tmp/deb/$1_${version}_$arch.deb"
	[ -f "$deb" ] || fail "no $deb"
	list=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|')
	shift
	for f in "$@"; do
		printf '%s\n' "$list" | grep -qx -e "$f" -e "$f.gz" || fail "$deb lacks $f"
	done
}
expect ipcsh /usr/bin/ipcsh "/usr/lib/$ma/lua/5.4/interprocess.so" \
	/usr/share/man/man1/ipcsh.1 /usr/share/doc/ipcsh/README.md /usr/share/doc/ipcsh/manual.md \
	/usr/share/doc/ipcsh/copyright /usr/share/doc/ipcsh/examples/queue.lua \
	/usr/share/doc/ipcsh/examples/c/producer.c /usr/share/doc/ipcsh/examples/python/consumer.py
expect libipcsh0 "/usr/lib/$ma/libipcsh.so.0" "/usr/lib/$ma/libipcsh.so.0.1.0"
expect libipcsh-dev /usr/include/ipcsh.h "/usr/lib/$ma/libipcsh.so" \
	"/usr/lib/$ma/pkgconfig/ipcsh.pc"
# the library is in libipcsh0 only, the header and .pc in -dev only
dpkg-deb -c "$tmp/deb/ipcsh_${version}_$arch.deb" | grep -q -e libipcsh -e 'ipcsh\.h' &&
	fail "ipcsh holds library files"
echo "package-check: file lists ok"

lintian --fail-on error "$tmp/deb/ipcsh_${version}_$arch.changes" >"$tmp/deb/lintian.log" 2>&1 ||
	{ cat "$tmp/deb/lintian.log" >&2; fail "lintian reports errors"; }
grep -E '^[EW]:' "$tmp/deb/lintian.log" || true
echo "package-check: lintian: no errors"
t2=$(date +%s)

root="$tmp/root"
for p in ipcsh libipcsh0 libipcsh-dev; do
	dpkg -x "$tmp/deb/${p}_${version}_$arch.deb" "$root"
done
libdir="$root/usr/lib/$ma"
out=$(lua5.4 -e "package.path='' package.cpath='$libdir/lua/5.4/?.so'" \
	-e 'local ipc = require "interprocess" local q = ipc.queue("PkgDeb")
	    q:send("deb", 4) print(ipc.version, q:receive(0)) q:remove()')
[ "$out" = "$(printf '0.1.0\tdeb\t4')" ] || fail "lua5.4 with the packaged module: $out"
# a C program built with the packaged ipcsh.pc feeds the packaged ipcsh
flags=$(PKG_CONFIG_SYSROOT_DIR="$root" PKG_CONFIG_PATH="$libdir/pkgconfig" \
	PKG_CONFIG_LIBDIR="$libdir/pkgconfig" pkg-config --cflags --libs ipcsh)
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Werror -o "$tmp/producer" "$top/examples/c/producer.c" $flags
LD_LIBRARY_PATH="$libdir" "$tmp/producer" PkgJobs 3
out=$(LUA_PATH='' "$root/usr/bin/ipcsh" "$top/examples/c/consumer.lua" PkgJobs | tail -1)
[ "$out" = "consumer: 3 jobs" ] || fail "packaged C producer -> packaged ipcsh: $out"
"$root/usr/bin/ipcsh" -e 'ipc.remove("PkgJobs")'
echo "package-check: packages work from a dpkg -x root"
t3=$(date +%s)

# --- 2. LuaRocks ------------------------------------------------------------
copy_tree "$tmp/rock/src"
tree="$tmp/rock/tree"
(cd "$tmp/rock/src" &&
	luarocks --lua-version=5.4 make --tree="$tree" rockspecs/ipcsh-scm-1.rockspec \
		>"$tmp/rock/build.log" 2>&1) ||
	{ tail -40 "$tmp/rock/build.log" >&2; fail "luarocks make failed"; }
out=$(lua5.4 -e "package.path='$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua'
	package.cpath='$tree/lib/lua/5.4/?.so'" \
	-e 'local ipc = require "interprocess" local m = ipc.mutex("PkgRock")
	    print(package.searchpath("interprocess", package.cpath), m:lock() and "locked")
	    m:remove()')
[ "$out" = "$(printf '%s\tlocked' "$tree/lib/lua/5.4/interprocess.so")" ] ||
	fail "lua5.4 with the rock: $out"
out=$("$tree/bin/ipcsh" -e 'print(ipc.version)')
[ "$out" = 0.1.0 ] || fail "the rock's ipcsh: $out"
echo "package-check: luarocks make ok"
t4=$(date +%s)

echo "package-check: ok (deb build $((t1 - t0)) s, lintian $((t2 - t1)) s," \
	"dpkg -x checks $((t3 - t2)) s, luarocks $((t4 - t3)) s)"
