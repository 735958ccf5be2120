#!/bin/sh
# Run every spec twice: under ./ipcsh, and under stock lua5.4 loading
# interprocess.so (sanitize mode: the sanitized ipcsh only).  Ends with one
# line: "N passed, N failed, N skipped".
#   spec/run.sh BINDIR [plain|sanitize] [busted args...]
BIN=$(cd "${1:-.}" && pwd)
MODE=${2:-plain}
shift 2 2>/dev/null
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2

export IPCSH_BIN="$BIN/ipcsh"
export IPCSH_SO_DIR="$BIN"
# Objects made by the tests live in a directory of their own.
export IPCSH_DIR=$(mktemp -d /dev/shm/ipcsh-test.XXXXXX)
counts=$(mktemp)
export IPCSH_TEST_COUNTS="$counts"
trap 'rm -rf "$IPCSH_DIR" "$counts"' EXIT

if [ "$MODE" = sanitize ]; then
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	export LSAN_OPTIONS=suppressions="$top/spec/support/lsan.supp"
fi

status=0
echo "== specs under $IPCSH_BIN"
IPCSH_TEST_LUA="$IPCSH_BIN" busted --lua="$IPCSH_BIN" -o spec/support/summary.lua "$@" spec || status=1
# Under the sanitizers only the sanitized ipcsh runs the suite: stock lua5.4
# would need libasan preloaded, and every program the specs start (ps, sh,
# stat...) would inherit that preload.
if [ "$MODE" != sanitize ]; then
	echo "== specs under lua5.4 + $BIN/interprocess.so"
	LUA_CPATH="$BIN/?.so;;" IPCSH_TEST_LUA=lua5.4 \
		busted --lua=lua5.4 -o spec/support/summary.lua "$@" spec || status=1
fi

runs=2
[ "$MODE" = sanitize ] && runs=1
awk -v st="$status" -v runs="$runs" '{p+=$1; f+=$2; s+=$3; n++}
	END { if (n < runs && f == 0) f = 1;
	      if (st != 0 && f == 0) f = 1;
	      printf "%d passed, %d failed, %d skipped\n", p, f, s; exit (f > 0) }' "$counts"
