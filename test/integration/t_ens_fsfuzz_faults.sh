#!/usr/bin/env bash
# t_ens_fsfuzz_faults.sh — the syscall fuzzer (test/fuzz/fsfuzz.c, solo
# mode: no model) on two mounts of a 3-replica ensemble at once, in one
# shared directory, while the replicas are paused (SIGSTOP), killed with
# -9 and restarted underneath it. What must hold: no operation hangs past
# its bound, no mount dies, no EIO (the fuzzer fails on any of them), every
# replica that runs again converges to one identical tree, and writes made
# after the faults reach all three mounts.
#
# Faults, one at a time, chosen by the round number (deterministic), each
# followed by a quiet gap so a new leader can be established:
#   - the leader paused 0.3-2.5 s (with sessionTimeout 2 s: sometimes
#     longer than a session; a paused leader's own mount stalls, bounded);
#   - a follower paused the same way;
#   - replica 3 (whose mount the fuzzers do not use) killed with -9 and
#     started again while the fuzzers run (it catches up by DIFF or
#     snapshot); every other time as another boot (ZKFS_TEST_BOOT_ID), so
#     that its tree goes back to its last checkpoint, as after a power cut;
#   - one replica cut from the network (each replica runs in a network
#     namespace of its own behind a bridge, ens_net_setup) for as long.
# Knobs: ZK_FAULTFUZZ_ROUNDS (fault rounds, default 12), ZK_FAULTFUZZ_OPS
# (ops per seed, default 250), ZK_FAULTFUZZ_CHUNK (seeds per fuzzer run,
# default 2), ZK_FAULTFUZZ_SEED (first seed, default 1; mount 2 starts
# 100000 above), ZK_FAULTFUZZ_ASAN_ROUNDS (default 6: the same again with
# the ASan+UBSan daemon; 0 or ZK_SKIP_ASAN=1 skips it),
# ZK_FAULTFUZZ_TSAN_ROUNDS (default 0: with the ThreadSanitizer daemon;
# ZK_SKIP_ASAN=1 skips it too). A failure prints
# the seed and its shortest sequence. ZK_FAULTFUZZ_DISK and
# ZK_FAULTFUZZ_RESERVE run it at the disk reserve (below).
# ZK_FAULTFUZZ_OBSERVER=1 adds a
# fourth server, an observer, and runs the second fuzzer on its mount
# instead of replica 2's; the follower pauses take turns with pauses of
# the observer, and the partitions cut it too (t_ens_fsfuzz_observer).
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=ens_lib.sh
. "$here/ens_lib.sh"

ROOT=$(cd "$here/../.." && pwd)
FUZZ=${ZK_FSFUZZ:-$ROOT/build/test/fsfuzz}
[ -x "$FUZZ" ] || fail "no fuzzer at $FUZZ (make build/test/fsfuzz)"
SEED=${ZK_FAULTFUZZ_SEED:-1}
ROUNDS=${ZK_FAULTFUZZ_ROUNDS:-12}
OPS=${ZK_FAULTFUZZ_OPS:-250}
CHUNK=${ZK_FAULTFUZZ_CHUNK:-2}
ASAN_ROUNDS=${ZK_FAULTFUZZ_ASAN_ROUNDS:-6}
[ "${ZK_SKIP_ASAN:-0}" = 1 ] && ASAN_ROUNDS=0   # as scripts/check.sh
TSAN_ROUNDS=${ZK_FAULTFUZZ_TSAN_ROUNDS:-0}
[ "${ZK_SKIP_ASAN:-0}" = 1 ] && TSAN_ROUNDS=0
OBS=${ZK_FAULTFUZZ_OBSERVER:-0}
N=3       # servers
M2=2      # the second fuzzer's replica
obs=()
if [ "$OBS" = 1 ]; then
    N=4
    M2=4
    obs=(observer=4)
fi

trap 'rc=$?; ens_net_cleanup; (exit $rc); zk__cleanup' EXIT
ens_net_setup "$N" sessionTimeout=2000 tickTime=100 "${obs[@]}"

zk_tmpfs "$ZK_TMP/solo1" 256m
zk_tmpfs "$ZK_TMP/solo2" 256m
# ZK_FAULTFUZZ_DISK=SIZE (a tmpfs size, e.g. 48m) puts each replica's data
# directory on a disk of its own of that size, and ZK_FAULTFUZZ_RESERVE
# (bytes) sets their disk reserve: with the reserve near the disk's size
# the fuzzers' writes keep the stores at it, so writes get ENOSPC (never
# EIO) while deletes go on, through the faults (each fuzzer removes its
# seeds' directories, --rm-work, and skips a seed whose directory is
# refused).
# The log is bounded to 8 MiB there (ZKFS_LOG_KEEP_BYTES; 64 MiB by
# default, more than such a disk), so that what the removals free in the
# store is not taken by the log.
rmwork=()
if [ -n "${ZK_FAULTFUZZ_DISK:-}" ]; then
    rmwork=(--rm-work)
    export ZKFS_LOG_KEEP_BYTES=$((8 * 1024 * 1024))
    for i in $(seq 1 "$N"); do zk_tmpfs "$(ens_data "$i")" "$ZK_FAULTFUZZ_DISK"; done
fi
[ -n "${ZK_FAULTFUZZ_RESERVE:-}" ] &&
    export ZKFS_DISK_RESERVE_BYTES=$ZK_FAULTFUZZ_RESERVE

# fuzz_loop I FIRST-SEED: fuzzer I's seeds on its replica's mount (1, or
# M2 for the second), one fsfuzz run of CHUNK seeds after another, until $ZK_TMP/stop exists (at most
# MAXRUNS runs, set by faulted_run: enough for its rounds); the first failing run ends the loop with its exit status.
fuzz_loop() {
    local i=$1 s=$(($2 + (i - 1) * 100000)) n=0 rc=0 c= r=1
    [ "$i" = 2 ] && r=$M2
    # Stopped by the test's cleanup: the running fuzzer stops too.
    trap '[ -n "$c" ] && kill "$c" 2>/dev/null; exit 143' TERM
    while [ ! -e "$ZK_TMP/stop" ] && [ "$n" -lt "$MAXRUNS" ]; do
        "$FUZZ" --solo --zk "$(ens_mnt "$r")" --model "$ZK_TMP/solo$i" \
            --work shared --salt "$i" --seed "$s" --seeds "$CHUNK" \
            --ops "$OPS" --op-timeout-ms 30000 "${rmwork[@]}" \
            >>"$ZK_TMP/fuzz.$i.log" 2>&1 &
        c=$!
        wait "$c" || {
            rc=$?
            break
        }
        c=
        s=$((s + CHUNK))
        n=$((n + 1))
    done
    echo "$n" >"$ZK_TMP/runs.$i"
    # The status, for the test to read: a loop that ended long before the
    # test waits for it (its MAXRUNS runs done) may be one whose status bash
    # no longer keeps ("wait: pid N is not a child of this shell", 127).
    echo "$rc" >"$ZK_TMP/rc.$i"
    return "$rc"
}
# pause I SECONDS: SIGSTOP of replica I for SECONDS, then SIGCONT.
pause() {
    local p
    p=$(ens_pid "$1")
    kill -STOP "$p" || fail "SIGSTOP of replica $1 (pid $p)"
    sleep "$2"
    kill -CONT "$p" || fail "SIGCONT of replica $1 (pid $p)"
}

# faulted_run LABEL ROUNDS FIRST-SEED: the N replicas started (with
# $ZKFS), the fuzzers on mounts 1 and M2 from FIRST-SEED, ROUNDS faults
# under them, then the checks; the replicas stopped.
faulted_run() {
    local label=$1 rounds=$2 first=$3 round secs c l f p rc1 rc2 i
    local pauses=0 kills=0 cuts=0 ran=0 pids=()
    # A fuzzer run takes 0.1-1 s, a round 1-4 s: the loops must outlast
    # the rounds (a loop that ends stops the rounds, below).
    MAXRUNS=$((rounds * 25 > 200 ? rounds * 25 : 200))
    rm -f "$ZK_TMP/stop" "$ZK_TMP"/fuzz.*.log "$ZK_TMP"/runs.* "$ZK_TMP"/rc.*
    ens_net_start_all
    [ -d "$(ens_mnt 1)/shared" ] || ens_mkdir_seen shared
    log "$label: $rounds fault rounds, fuzzer seeds from $first"
    pids=()
    for i in 1 2; do
        zk_bg fuzz_loop "$i" "$first"
        pids+=("$ZK_BG")
    done
    log "fuzzers: pids ${pids[*]}, runs of $CHUNK seeds x $OPS ops"

    # ROUNDS faults while the fuzzers run; each round is bounded (a pause of
    # at most 2.5 s, a restart waits at most 30 s for the mount, the leader
    # wait at most 30 s). A fuzzer that fails ends the rounds early.
    for round in $(seq 1 "$rounds"); do
        zk_pid_gone "${pids[0]}" || zk_pid_gone "${pids[1]}" && break
        secs=$(printf '0.%d' $(( (round * 7) % 10 )))
        [ $((round % 5)) = 0 ] && secs=2.5
        case $((round % 4)) in
        3)
            # (with the observer: it first, then 1, 2, 3)
            c=$(( (round / 4 + OBS * 3) % N + 1 ))
            log "round $round: replica $c cut from the network for ${secs}s"
            ens_net_cut "$c"
            sleep "$secs"
            ens_net_heal "$c"
            cuts=$((cuts + 1))
            ;;
        0)
            l=$(ens_leader) || l=1
            log "round $round: the leader (replica $l) paused ${secs}s"
            pause "$l" "$secs"
            pauses=$((pauses + 1))
            ;;
        1)
            if [ "$OBS" = 1 ] && [ $(( (round / 4) % 2 )) = 1 ]; then
                f=4
                log "round $round: the observer (replica 4) paused ${secs}s"
            else
                f=$(ens_follower) || f=2
                log "round $round: a follower (replica $f) paused ${secs}s"
            fi
            pause "$f" "$secs"
            pauses=$((pauses + 1))
            ;;
        2)
            p=$(ens_pid 3)
            log "round $round: replica 3 (pid $p) killed with -9 and restarted"
            kill -9 "$p"
            ens_reap_killed 3 "$p"
            if [ $((kills % 2)) = 1 ]; then
                # As after a power cut: its tree back to its last checkpoint.
                log "round $round: replica 3 restarted as another boot"
                ZKFS_TEST_BOOT_ID=zkfs-test-reboot-$round ens_start 3
            else
                ens_start 3
            fi
            kills=$((kills + 1))
            ;;
        esac
        ens_wait_leader 30
        sleep 0.5
        ran=$((ran + 1))
    done
    touch "$ZK_TMP/stop"
    log "$label: $ran of $rounds fault rounds ran"

    wait "${pids[0]}" 2>/dev/null || true
    wait "${pids[1]}" 2>/dev/null || true
    rc1=$(cat "$ZK_TMP/rc.1" 2>/dev/null || echo "none: the loop did not end")
    rc2=$(cat "$ZK_TMP/rc.2" 2>/dev/null || echo "none: the loop did not end")
    # The fuzzers' own lines beyond their one-line summaries (a failure's
    # seed and sequence); none on a clean run.
    for i in 1 2; do
        grep -v '^fsfuzz: .* seeds from' "$ZK_TMP/fuzz.$i.log" | sed "s/^/  fuzzer $i: /" || true
    done
    [ "$rc1" = 0 ] || fail "the fuzzer on replica 1's mount failed (exit $rc1)"
    [ "$rc2" = 0 ] || fail "the fuzzer on replica $M2's mount failed (exit $rc2)"
    log "$label: $pauses pauses, $cuts partitions and $kills kill -9 + restart under $(cat "$ZK_TMP/runs.1") + $(cat "$ZK_TMP/runs.2") fuzzer runs of $CHUNK seeds x $OPS ops"
    [ "$(cat "$ZK_TMP/runs.1")" -ge "$rounds" ] && [ "$(cat "$ZK_TMP/runs.2")" -ge "$rounds" ] ||
        log "(fewer fuzzer runs than fault rounds: the mounts stalled during faults)"

    ens_wait_leader 30
    echo "$label" >"$(ens_mnt 1)/shared/after-faults" || fail "a write after the faults failed"
    for i in $(seq 2 "$N"); do
        ens_wait_cat "$i" shared/after-faults "$label"
    done
    ens_wait_synced 60
    ens_trees_identical
    log "$label: every replica has the same tree: $(ens_tree_size 1) znodes"
    for i in $(seq 1 "$N"); do ens_stop "$i"; done   # exit 0: no leak report either
}

faulted_run plain "$ROUNDS" "$SEED"

# sanitized_run SAN ROUNDS SEED-OFFSET REPORT-PATTERN: the same faulted run
# with the daemon built with SAN (build-SAN/zkfs, its options exported by
# the caller) on the stores the runs before left; a line of
# REPORT-PATTERN in a replica's log, or a non-zero exit at umount, fails.
sanitized_run() {
    local san=$1 rounds=$2 off=$3 pat=$4
    make -s -C "$ROOT" SAN="$san" "build-$san/zkfs" >"$ZK_TMP/$san-build.log" 2>&1 ||
        { tail -n 20 "$ZK_TMP/$san-build.log"; fail "make SAN=$san build-$san/zkfs failed"; }
    ZKFS=$ROOT/build-$san/zkfs
    faulted_run "$san" "$rounds" $((SEED + off))
    if grep -lE "$pat" "$ZK_TMP"/zkfs.r*.log; then
        # (|| true: head may end grep early, and pipefail would stop the
        # test here, before fail says what happened)
        grep -hE -A30 "$pat" "$ZK_TMP"/zkfs.r*.log | head -80 || true
        fail "$san: sanitizer report in a replica's log"
    fi
}

# The ASan+UBSan daemon (detect_leaks=1).
if [ "$ASAN_ROUNDS" -gt 0 ]; then
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    sanitized_run asan "$ASAN_ROUNDS" 50000 \
        'ERROR: (Address|Leak)Sanitizer|runtime error:'
fi

# The ThreadSanitizer daemon (ZK_FAULTFUZZ_TSAN_ROUNDS, default 0 here):
# a data race between the loop, the commit worker, the echo and
# checkpoint threads (and an observer writing its batches on its loop)
# is a report in a replica's log and exit status 66 at umount.
# tsan.supp says why interceptors called from libuv are not watched.
if [ "$TSAN_ROUNDS" -gt 0 ]; then
    export TSAN_OPTIONS="halt_on_error=0:exitcode=66:suppressions=$here/tsan.supp"
    sanitized_run tsan "$TSAN_ROUNDS" 70000 'WARNING: ThreadSanitizer'
fi
