#!/bin/bash
# Run a command RUNS times in a row under two CPU hogs (started and killed by
# pid), as the closing notes' "green every run" figures are measured:
#   scripts/under-load.sh 5 make test
#   scripts/under-load.sh 30 scripts/storm-once.sh
# Prints one line a run and a total; each run's output is kept in /tmp.
runs=$1
shift
( while :; do :; done ) &
h1=$!
( while :; do :; done ) &
h2=$!
trap 'kill $h1 $h2 2>/dev/null' EXIT
pass=0
fail=0
for i in $(seq 1 "$runs"); do
	log=$(mktemp /tmp/under-load.XXXXXX)
	start=$(date +%s)
	if "$@" >"$log" 2>&1; then
		pass=$((pass + 1))
		r=ok
	else
		fail=$((fail + 1))
		r=FAIL
	fi
	echo "run $i: $r $(($(date +%s) - start))s $(tail -1 "$log") ($log)"
done
echo "under-load: $pass passed, $fail failed of $runs"
[ "$fail" = 0 ]
