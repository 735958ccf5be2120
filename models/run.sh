#!/bin/sh
# Model-check the Promela models with SPIN (docs/design.md, "Model checking").
#   sh models/run.sh BUILD_DIR          the models: every check must pass
#   sh models/run.sh BUILD_DIR mutants  the mutants: every one must be caught
# Build outputs (pan.c, pan, trails) go to BUILD_DIR/models/<name>/.
set -u
out=${1:-build}/models
mode=${2:-models}
mkdir -p "$out" && out=$(cd "$out" && pwd) || exit 1
cd "$(dirname "$0")" && src=$(pwd) || exit 1

# check NAME MODEL "SPIN -D FLAGS" "CC FLAGS" "PAN FLAGS" EXPECT
# EXPECT: pass (no error, search complete) or fail (an error is found).
check() {
	name=$1 model=$2 dflags=$3 ccflags=$4 panflags=$5 expect=$6
	dir=$out/$name
	rm -rf "$dir" && mkdir -p "$dir" || return 1
	t0=$(date +%s)
	if ! (cd "$dir" && spin -a $dflags "$src/$model" >spin.log 2>&1 &&
		gcc ${OPT:--O2} -w $ccflags -o pan pan.c >cc.log 2>&1); then
		echo "$name: cannot build the verifier (see $dir)"
		return 1
	fi
	(cd "$dir" && ./pan $panflags >pan.log 2>&1)
	t=$(($(date +%s) - t0))
	errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$dir/pan.log")
	states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$dir/pan.log")
	what=$(grep -m1 -E '^pan:1:' "$dir/pan.log" | sed 's/^pan:1: //')
	search=exhaustive
	case "$ccflags" in
	*BITSTATE*) search=bitstate ;;
	*HC4*) search="exhaustive, hash-compact" ;;
	esac
	if [ "$expect" = pass ]; then
		if [ "$errors" = 0 ] && ! grep -q 'max search depth too small' "$dir/pan.log"; then
			echo "$name: ok, $search, $states states, ${t}s"
			return 0
		fi
		echo "$name: FAILED: ${what:-see $dir/pan.log} (trail: $dir)"
		return 1
	fi
	if [ -n "$errors" ] && [ "$errors" != 0 ]; then
		echo "$name: caught: $what"
		return 0
	fi
	echo "$name: SURVIVED ($states states, no error)"
	return 1
}

CC_EX="-DVECTORSZ=1024 -DCOLLAPSE -DSAFETY"
PAN_EX="-m400000 -w24"

if [ "$mode" = models ]; then
	st=0
	check mutex mutex.pml "-DNPROC=2 -DOPS=2 -DMAXD=1" "$CC_EX" "$PAN_EX" pass || st=1
	check rlock rlock.pml "-DNPROC=3 -DOPS=1 -DMAXD=1" "$CC_EX" "$PAN_EX" pass || st=1
	check rlock-2x2 rlock.pml "-DNPROC=2 -DOPS=2 -DMAXD=1" "$CC_EX" "$PAN_EX" pass || st=1
	check semaphore semaphore.pml "-DNPROC=2 -DOPS=1 -DMAXD=2" "$CC_EX" "$PAN_EX" pass || st=1
	check queue queue.pml "-DNPROC=2 -DOPS=2 -DMAXD=1" "$CC_EX" "$PAN_EX" pass || st=1
	# 3 processes: 8 million states; hash compaction (-DHC4) instead of
	# COLLAPSE: a third of the time, a negligible chance of a missed state
	check queue-3 queue.pml "-DNPROC=3 -DOPS=1 -DMAXD=1" "-DVECTORSZ=1024 -DHC4 -DSAFETY" \
		"-m400000 -w25" pass || st=1
	exit $st
fi

n=0 caught=0
mutant() {
	n=$((n + 1))
	# a violation comes within a few thousand states: compile fast
	if OPT=-O0 check "${1%.pml}-$2" "$1" "$3 -DMUTANT_$2" "$CC_EX" "$PAN_EX" fail; then
		caught=$((caught + 1))
	fi
}
mutant mutex.pml NO_REPAIR "-DNPROC=2 -DOPS=2"
mutant mutex.pml EARLY_W "-DNPROC=2 -DOPS=2"
mutant mutex.pml NO_DRAIN "-DNPROC=2 -DOPS=2"
mutant mutex.pml NO_REAP "-DNPROC=2 -DOPS=2"
mutant mutex.pml NO_WAKE "-DNPROC=2 -DOPS=2"
mutant mutex.pml RACY_CLAIM "-DNPROC=2 -DOPS=2"
mutant rlock.pml NO_PENDING "-DNPROC=3 -DOPS=1"
mutant rlock.pml NO_WAKE "-DNPROC=3 -DOPS=1"
mutant rlock.pml NO_WAITERS "-DNPROC=3 -DOPS=1"
mutant rlock.pml NO_DIED "-DNPROC=3 -DOPS=1"
mutant rlock.pml GIVE_UP_EARLY "-DNPROC=3 -DOPS=2"
mutant semaphore.pml NO_JOURNAL "-DNPROC=2"
mutant semaphore.pml NO_REAP "-DNPROC=2"
mutant semaphore.pml FREE_BEFORE_COMMIT "-DNPROC=2"
mutant semaphore.pml VALUE_FIRST "-DNPROC=2"
mutant semaphore.pml NO_PAY_JOURNAL "-DNPROC=2"
mutant queue.pml PUBLISH_EARLY "-DNPROC=3 -DOPS=1"
mutant queue.pml NO_INFLIGHT "-DNPROC=3 -DOPS=1"
mutant queue.pml NO_REBUILD "-DNPROC=3 -DOPS=1"
echo "$caught of $n mutants caught"
[ "$caught" = "$n" ]
