#!/bin/sh
# A shell pipeline feeding a worker pool through `ipcsh send`/`ipcsh recv`.
# Three workers each take lines from the queue until they see "stop".
# Only `ipcsh lock` creates its object on demand: the queue is made first,
# with `send --create` (or `ipcsh -e 'ipc.queue(...)'`).
#
#   sh examples/ops/pipeline.sh           (IPCSH=path/to/ipcsh to choose one)
IPCSH=${IPCSH:-./ipcsh}
set -u
Q=lines$$
out=$(mktemp)
"$IPCSH" send --create --max-count 100 --max-size 4096 "$Q" start
"$IPCSH" recv "$Q" >/dev/null

worker() {
	while msg=$("$IPCSH" recv "$Q" --timeout 5000); do
		[ "$msg" = stop ] && return 0
		echo "worker $1: $(printf '%s' "$msg" | tr a-z A-Z)" >>"$out"
	done
}
for w in 1 2 3; do worker "$w" & done

# the producer: any command's output, one message per line
printf 'alpha\nbravo\ncharlie\ndelta\necho\n' | while IFS= read -r line; do
	"$IPCSH" send "$Q" "$line"
done
for w in 1 2 3; do "$IPCSH" send "$Q" --priority 0 stop; done
wait
sort "$out"
n=$(wc -l <"$out")
rm -f "$out"
"$IPCSH" rm "$Q" >/dev/null
[ "$n" -eq 5 ] && echo "5 lines processed, each by exactly one worker"
