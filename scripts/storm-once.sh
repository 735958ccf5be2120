#!/bin/bash
# The kill-storm specs once under each interpreter: the mutex, undo-semaphore,
# queue and lock-word storms and the torture spec (11 tests).  Run from the top of a
# built tree; exits non-zero on any failure.  Loop it with under-load.sh.
cd "$(dirname "$0")/.." || exit 2
export IPCSH_BIN=$PWD/ipcsh IPCSH_SO_DIR=$PWD
IPCSH_DIR=$(mktemp -d /dev/shm/ipcsh-storm.XXXXXX)
export IPCSH_DIR
trap 'rm -rf "$IPCSH_DIR"' EXIT
specs="spec/mutex_spec.lua spec/semaphore_spec.lua spec/queue_spec.lua spec/torture_spec.lua spec/lockword_spec.lua"
filters="--filter=50%skills --filter=storm%sof%sSIGKILLs --filter=random%sSIGKILLs --filter=100%skills%sat%srandom"
st=0
# shellcheck disable=SC2086
IPCSH_TEST_LUA=$IPCSH_BIN busted --lua="$IPCSH_BIN" $filters $specs || st=1
# shellcheck disable=SC2086
LUA_CPATH="$PWD/?.so;;" IPCSH_TEST_LUA=lua5.4 busted --lua=lua5.4 $filters $specs || st=1
exit $st
