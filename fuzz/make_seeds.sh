#!/bin/sh
# Write the seed inputs of segment_fuzz, names_fuzz and lua_api_fuzz into
# fuzz/seeds/ (needs ../ipcsh built).
set -e
cd "$(dirname "$0")"
mkdir -p seeds/segment_fuzz seeds/names_fuzz seeds/lua_api_fuzz
d=$(mktemp -d /dev/shm/ipcsh-seeds.XXXXXX)
IPCSH_DIR=$d ../ipcsh make_seeds.lua "$PWD/seeds"
rm -rf "$d"
