#!/bin/sh
# Inspecting and clearing a stuck system with `ipcsh ls`, `info` and `rm`.
# A worker is killed with kill -9 while it holds a lock and a permit: the
# objects are not stuck (the next user repairs them), and ls/info show it.
#
#   sh examples/ops/inspect.sh            (IPCSH=path/to/ipcsh to choose one)
IPCSH=${IPCSH:-./ipcsh}
set -u

"$IPCSH" -e '
  local m = ipc.mutex("stuckjobs")
  local s = ipc.semaphore("stuckslots", { value = 2, undo = true })
  m:lock(); s:wait()
  print("worker " .. ipc.pid() .. " holds the lock and a permit, then hangs")
  io.stdout:flush()
  ipc.sleep(60000)' &
worker=$!
sleep 0.5
echo "--- ipcsh ls"
"$IPCSH" ls
echo "--- ipcsh info stuckjobs"
"$IPCSH" info stuckjobs
kill -9 "$worker"
wait "$worker" 2>/dev/null
echo "--- after kill -9 of the worker"
"$IPCSH" info stuckjobs | grep -E '^(state|holders)'
"$IPCSH" info stuckslots | grep -E '^value'
"$IPCSH" lock stuckjobs --timeout 1000 -- echo "the lock is free again"
echo "--- ipcsh rm"
"$IPCSH" rm stuckjobs stuckslots && echo "removed"
"$IPCSH" info --json stuckjobs 2>&1 | head -1
