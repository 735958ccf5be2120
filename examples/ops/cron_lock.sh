#!/bin/sh
# A cron job that must not overlap: `ipcsh lock` where the crontab said flock(1).
#
#   */5 * * * *  flock -n /var/lock/backup.lock -c 'backup.sh'
#   */5 * * * *  ipcsh lock -n /var/lock/backup.lock -c 'backup.sh'
#
# A NAME with a / is a path: the lock is the mutex named ipc.hash(path) (the
# file itself is never created).  A run that finds the lock held exits 1 (or
# -E CODE) silently, so cron mails nothing.  The lock is held by a keeper
# process until the job *and everything it started* has exited, even if the
# ipcsh wrapper is killed with kill -9.
#
#   sh examples/ops/cron_lock.sh          (IPCSH=path/to/ipcsh to choose one)
IPCSH=${IPCSH:-./ipcsh}
set -u
dir=$(mktemp -d)
lock=$dir/backup.lock

# the first run: a job that leaves a background child behind
"$IPCSH" lock -n "$lock" -c "sleep 30 & echo \$! >$dir/child; echo started >$dir/started; wait" &
wrapper=$!
while [ ! -e "$dir/started" ]; do sleep 0.01; done

if "$IPCSH" lock -n "$lock" -c 'echo "should not run"'; then
	echo "overlap!" >&2
	exit 1
else
	echo "second run skipped: the first still holds the lock (exit $?)"
fi
"$IPCSH" lock -n -E 75 "$lock" -c true
echo "with -E 75 a conflict exits $?"

kill -9 "$wrapper"
wait "$wrapper" 2>/dev/null
"$IPCSH" lock -n "$lock" -c 'echo "should not run"' ||
	echo "after kill -9 of ipcsh the job still runs, and still holds the lock"

# the job ends (here: its leftover child is killed); then the lock is free
pkid=$(cat "$dir/child")
kill "$pkid"
"$IPCSH" lock -w 30 "$lock" -c 'echo "the next run gets the lock"'
"$IPCSH" rm "$(LOCK=$lock "$IPCSH" -e "io.write(ipc.hash(os.getenv('LOCK')))")"
rm -rf "$dir"
