#!/bin/sh
# A cron job that must not overlap: `ipcsh lock` instead of flock(1).
# The second run finds the lock held and gives up at once (exit 1); the lock
# is released even if ipcsh is killed with kill -9.
#
#   sh examples/ops/cron_lock.sh          (IPCSH=path/to/ipcsh to choose one)
IPCSH=${IPCSH:-./ipcsh}
set -u

# In a crontab:  */5 * * * *  ipcsh lock backup --timeout 0 -- /usr/local/bin/backup
"$IPCSH" lock backup --timeout 0 -- sh -c 'echo "backup running (pid $$)"; sleep 1' &
first=$!
sleep 0.3
if "$IPCSH" lock backup --timeout 0 -- echo "should not run"; then
	echo "overlap!" >&2
	exit 1
else
	echo "second run skipped: the first still holds the lock (exit $?)"
fi
wait "$first"
echo "first run finished with status $?"
"$IPCSH" lock backup --timeout 0 -- echo "next run gets the lock"
"$IPCSH" rm backup
