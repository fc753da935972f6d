#!/usr/bin/env bash
# Runs every zkfs test suite and ends with one line "check: N passed, M failed"
# counting every unit check (plain and ASan+UBSan builds), every simulator
# run and every integration test. Called by `make check` (and so by CI).
#
# Environment: ZK_SIM_SEEDS (default 300) seeds for the plain simulator run,
# ZK_SIM_ASAN_SEEDS (default 60) for the sanitized one; ZK_SKIP_ASAN=1 skips
# the sanitizer builds; ZK_SKIP_INTEGRATION=1 skips the tests that mount;
# ZK_FUZZ_SECONDS (default 5) is how long each libFuzzer target runs on its
# corpus (scripts/fuzz.sh; each target counts once), ZK_SKIP_FUZZ=1 skips
# them.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
jobs=$(nproc 2>/dev/null || echo 2)

note() { printf '\n=== %s\n' "$*"; }

# Adds a Check runner's "Checks: N, Failures: F, Errors: E" to the totals.
count_check() {
    local line n f e
    line=$(grep -E 'Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$1" | tail -n 1)
    if [ -z "$line" ]; then
        echo "no Check summary in $1"
        failed=$((failed + 1))
        return
    fi
    n=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
    f=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
    e=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
    passed=$((passed + n - f - e))
    failed=$((failed + f + e))
}

run_unit() {   # $1 = binary
    local log
    log=$(mktemp)
    CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-60} "$1" 2>&1 | tee "$log" |
        grep -vE '^[^:]+:[0-9]+:P:' || true
    count_check "$log"
    rm -f "$log"
}

run_one() {    # $1 = label, rest = command
    local label=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
    else
        echo "FAILED: $label"
        failed=$((failed + 1))
    fi
}

note "build"
if ! make -s -j"$jobs" all; then
    echo "build failed"
    echo "check: 0 passed, 1 failed"
    exit 1
fi

note "unit tests"
run_unit build/zkfs-unit

note "simulator: ${ZK_SIM_SEEDS:-300} seeds"
run_one "zkfs-sim" build/zkfs-sim --seed 1 --seeds "${ZK_SIM_SEEDS:-300}"
note "simulator with wiped disks, lost writes, directories put back: ${ZK_SIM_DISK_SEEDS:-60} seeds each"
run_one "zkfs-sim (--wipe --lose-tail)" build/zkfs-sim --seed 5001 \
    --seeds "${ZK_SIM_DISK_SEEDS:-60}" --wipe --lose-tail
run_one "zkfs-sim (--wipe --put-back)" build/zkfs-sim --seed 6001 \
    --seeds "${ZK_SIM_DISK_SEEDS:-60}" --wipe --put-back

if [ "${ZK_SKIP_ASAN:-0}" != 1 ]; then
    # build-asan/zkfs too: t_fsfuzz part 2 runs it, and building it inside
    # that test (under its timeout, on a loaded machine) took minutes.
    note "unit tests and simulator under ASan+UBSan"
    if make -s -j"$jobs" SAN=asan build-asan/zkfs-unit build-asan/zkfs-sim \
            build-asan/zkfs; then
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            run_unit build-asan/zkfs-unit
        run_one "zkfs-sim (asan)" env ASAN_OPTIONS=detect_leaks=1 \
            build-asan/zkfs-sim --seed 100001 --seeds "${ZK_SIM_ASAN_SEEDS:-60}"
    else
        echo "sanitizer build failed"
        failed=$((failed + 1))
    fi
fi

if [ "${ZK_SKIP_FUZZ:-0}" != 1 ]; then
    note "fuzz targets: ${ZK_FUZZ_SECONDS:-5} s each on test/fuzz/corpus"
    if make -s -j"$jobs" fuzz; then
        for f in test/fuzz/fuzz_*.c; do
            t=${f#test/fuzz/fuzz_}
            t=${t%.c}
            run_one "fuzz $t" scripts/fuzz.sh "$t"
        done
    else
        echo "fuzz build failed (it needs clang and libclang-rt-14-dev)"
        failed=$((failed + 1))
    fi
fi

if [ "${ZK_SKIP_INTEGRATION:-0}" != 1 ]; then
    note "integration tests (real mounts)"
    if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/fuse ]; then
        echo "integration tests need root and /dev/fuse: skipped"
    else
        log=$(mktemp)
        test/integration/run.sh 2>&1 | tee "$log"
        line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
        if [ -n "$line" ]; then
            passed=$((passed + $(cut -d' ' -f1 <<<"$line")))
            failed=$((failed + $(cut -d' ' -f3 <<<"$line")))
        else
            echo "integration runner printed no summary"
            failed=$((failed + 1))
        fi
        rm -f "$log"
    fi
fi

echo
if [ "$passed" -eq 0 ]; then
    echo "no test ran"
    failed=$((failed + 1))
fi
echo "check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
