#!/usr/bin/env bash
# Runs the libFuzzer targets of test/fuzz/ (built by `make fuzz` into
# build-fuzz/) on their committed corpora, each for ZK_FUZZ_SECONDS
# seconds (default 5). New inputs go to a temporary directory, never into
# test/fuzz/corpus/; a crash, hang (an input over 5 s), leak or allocation
# over the RSS limit fails the target and its input is kept in
# build-fuzz/artifacts/ (replay: build-fuzz/fuzz_T FILE).
#
# Usage: scripts/fuzz.sh [TARGET...]   (TARGET: txn, peer, ...; default all)
# Environment: ZK_FUZZ_SECONDS (per target), ZK_FUZZ_KEEP=DIR keeps each
# target's new inputs in DIR/TARGET (to merge into the corpus later).
# Prints one line per target and ends with "fuzz: N passed, M failed";
# exits non-zero if any failed. Called by scripts/check.sh.
set -uo pipefail
cd "$(dirname "$0")/.."

secs=${ZK_FUZZ_SECONDS:-5}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in test/fuzz/fuzz_*.c; do
        t=${f#test/fuzz/fuzz_}
        targets+=("${t%.c}")
    done
fi
# A smaller quarantine keeps ASan's RSS under the limit on long runs.
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=64:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

max_len() {    # inputs that carry whole exchanges or snapshots are longer
    case $1 in
        peer) echo 16384 ;;
        store) echo 8192 ;;
        *) echo 4096 ;;
    esac
}

passed=0
failed=0
mkdir -p build-fuzz/artifacts
for t in "${targets[@]}"; do
    bin=build-fuzz/fuzz_$t
    corpus=test/fuzz/corpus/$t
    if [ ! -x "$bin" ] || [ ! -d "$corpus" ]; then
        echo "fuzz $t: FAILED (no $bin or no $corpus; run make fuzz)"
        failed=$((failed + 1))
        continue
    fi
    work=$(mktemp -d)
    dict=()
    [ -f "test/fuzz/$t.dict" ] && dict=(-dict="test/fuzz/$t.dict")
    log=$work/log
    "$bin" -max_total_time="$secs" -rss_limit_mb=512 -timeout=5 \
        -max_len="$(max_len "$t")" -print_final_stats=1 \
        -artifact_prefix="$work/" "${dict[@]}" "$work" "$corpus" \
        >"$log" 2>&1 </dev/null
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -n 1)
    if [ $rc -eq 0 ]; then
        echo "fuzz $t: ok (${secs} s, ${runs:-?} runs, ${cov:-cov ?})"
        passed=$((passed + 1))
    else
        echo "fuzz $t: FAILED (exit $rc); last lines:"
        tail -n 30 "$log" | grep -v '^0x'
        for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-* \
                 "$work"/oom-* "$work"/slow-unit-*; do
            [ -e "$a" ] || continue
            cp "$a" "build-fuzz/artifacts/$t-$(basename "$a")"
            echo "fuzz $t: input kept as build-fuzz/artifacts/$t-$(basename "$a")"
        done
        failed=$((failed + 1))
    fi
    if [ -n "${ZK_FUZZ_KEEP:-}" ]; then
        mkdir -p "$ZK_FUZZ_KEEP/$t"
        find "$work" -maxdepth 1 -type f ! -name log \
            -exec cp {} "$ZK_FUZZ_KEEP/$t/" \;
    fi
    rm -rf "$work"
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
