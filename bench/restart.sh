#!/usr/bin/env bash
# bench/restart.sh — restart time and daemon memory against tree size.
#
# For each size N (default 10 and 100,000 znodes; --big adds 1,000,000) it
# fills a fresh data directory with N znodes, then R times (default 5):
# starts `zkfs mount --data DIR M` (daemonized: the command returns once the
# mount serves requests) and times it; reads the daemon's VmRSS/VmHWM from
# /proc/PID/status right after the mount, after listing the root, and after
# a walk that stats every znode (find -printf %s); then times
# `zkfs umount M`. Prints the medians per size.
#
# Filling: build/bench/populate writes the store directly (the fast path,
# one fsync per 64 transactions of 1,024 creates); without it, the tree is
# made through the mount with `zkfs txn` batches of 1,000 creates.
#
# Usage (as root):
#   bench/restart.sh [--runs R] [--big] [--sizes "10 100000"] [--cold]
#                    [--no-build]
#   --cold  drops the page cache before every mount (echo 3 >
#           /proc/sys/vm/drop_caches): a restart after a reboot, not after
#           a quick stop.
# Figures only; never pass/fail. Every mount and daemon is cleaned up by
# pid on exit, with bounded waits.
set -euo pipefail

cd "$(dirname "$0")/.."
B=${B:-build}
RUNS=5
SIZES="10 100000"
COLD=0
BUILD=1
WAIT_S=120          # longest a mount or unmount may take

while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --big) SIZES="$SIZES 1000000"; shift ;;
        --sizes) SIZES=$2; shift 2 ;;
        --cold) COLD=1; shift ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "restart.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

if [ "$BUILD" = 1 ]; then
    make -s all >/dev/null 2>&1 || make -s "$B/zkfs" "$B/bench/populate" ||
        make -s "$B/zkfs" || true
fi
ZKFS=$B/zkfs
POPULATE=$B/bench/populate
[ -x "$ZKFS" ] || { echo "restart.sh: $ZKFS is not built" >&2; exit 1; }

WORK=$(mktemp -d /tmp/zkfs-restart.XXXXXX)
M=$WORK/mnt
mkdir -p "$M"
DAEMON=""           # pid of the running daemon, if any
MOUNTED_NS=0

is_mounted() {
    awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo
}

now_ns() { date +%s%N; }

# The daemon serving $M: the process whose command line is
# "... zkfs mount ... $M" (the temporary path is unique to this run).
find_daemon() {
    local d a args has_mount has_m
    for d in /proc/[0-9]*; do
        mapfile -d '' -t args <"$d/cmdline" 2>/dev/null || continue
        has_mount=0 has_m=0
        for a in "${args[@]}"; do
            [ "$a" = mount ] && has_mount=1
            [ "$a" = "$M" ] && has_m=1
        done
        if [ "$has_mount" = 1 ] && [ "$has_m" = 1 ] && [ "${d#/proc/}" != "$$" ]; then
            echo "${d#/proc/}"; return 0
        fi
    done
    return 1
}

wait_gone() {       # wait_gone PID SECONDS
    local n=$(( $2 * 20 ))
    while [ "$n" -gt 0 ] && kill -0 "$1" 2>/dev/null; do
        sleep 0.05; n=$((n - 1))
    done
    ! kill -0 "$1" 2>/dev/null
}

stop_daemon() {
    if is_mounted "$M"; then
        timeout "$WAIT_S" "$ZKFS" umount "$M" >/dev/null 2>&1 || true
        is_mounted "$M" && { timeout 10 fusermount3 -u "$M" 2>/dev/null ||
                             umount -l "$M" 2>/dev/null || true; }
    fi
    if [ -n "$DAEMON" ]; then
        wait_gone "$DAEMON" 10 || kill -TERM "$DAEMON" 2>/dev/null || true
        wait_gone "$DAEMON" 5 || kill -KILL "$DAEMON" 2>/dev/null || true
        DAEMON=""
    fi
}

cleanup() {
    stop_daemon
    if ! is_mounted "$M"; then
        rm -rf --one-file-system "$WORK"
    else
        echo "restart.sh: leaving $WORK (still mounted)" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# mem_kib FIELD: VmRSS or VmHWM of the daemon, in KiB.
mem_kib() {
    [ -n "$DAEMON" ] || { echo 0; return; }
    awk -v f="$1:" '$1 == f { print $2 }' "/proc/$DAEMON/status" 2>/dev/null || echo 0
}

# mount_zkfs DATA: daemonized mount, sets DAEMON and MOUNTED_NS (when
# `zkfs mount` returned: finding the daemon's pid afterwards is not timed).
mount_zkfs() {
    timeout "$WAIT_S" "$ZKFS" mount --data "$1" "$M" >"$WORK/mount.log" 2>&1 || {
        echo "restart.sh: zkfs mount failed:" >&2
        tail -n 5 "$WORK/mount.log" >&2
        return 1
    }
    MOUNTED_NS=$(now_ns)
    DAEMON=$(find_daemon) || DAEMON=""
    is_mounted "$M" || { echo "restart.sh: mount returned but nothing is mounted" >&2
                         return 1; }
}

# Through the mount: directories with mkdir, files in `zkfs txn` batches.
populate_via_txn() {
    local data=$1 n=$2 fanout=1000 batch=1000
    mount_zkfs "$data"
    mkdir "$M/populate"
    awk -v n="$n" -v f="$fanout" 'BEGIN {
        for (k = 1; k < n; k++) {
            s = k - 1; d = int(s / (f + 1)); p = s % (f + 1)
            if (p == 0) printf "create -d /populate/d%05d\n", d
            else printf "create /populate/d%05d/f%07d zzzzzzzzzzzzzzz\n", d, d * f + p - 1
        }
    }' >"$WORK/ops"
    split -l "$batch" "$WORK/ops" "$WORK/ops."
    local f
    for f in "$WORK"/ops.*; do
        "$ZKFS" txn "$M" <"$f" >/dev/null
    done
    rm -f "$WORK"/ops*
    stop_daemon
}

populate() {        # populate DATA N
    local t0 t1
    t0=$(now_ns)
    if [ -x "$POPULATE" ]; then
        "$POPULATE" --data "$1" --znodes "$2" >&2
    else
        echo "restart.sh: $POPULATE not built; filling through the mount" >&2
        populate_via_txn "$1" "$2"
    fi
    t1=$(now_ns)
    echo "restart.sh: filled $2 znodes in $(( (t1 - t0) / 1000000 )) ms" \
         "($(du -sh "$1" | cut -f1) on disk)" >&2
}

median() { sort -n | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "-"; exit }
    print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

one_run() {         # one_run DATA -> "mount_ms rss0 rss1 rss2 hwm umount_ms"
    local t0 t1 t2 r0 r1 r2 hwm
    [ "$COLD" = 1 ] && { sync; echo 3 >/proc/sys/vm/drop_caches; }
    t0=$(now_ns)
    mount_zkfs "$1" || return 1
    t1=$MOUNTED_NS
    r0=$(mem_kib VmRSS)
    ls -f "$M" >/dev/null
    r1=$(mem_kib VmRSS)
    timeout "$WAIT_S" find "$M" -printf '%s\n' >/dev/null || true
    r2=$(mem_kib VmRSS)
    hwm=$(mem_kib VmHWM)
    t2=$(now_ns)
    timeout "$WAIT_S" "$ZKFS" umount "$M" >/dev/null 2>&1 || true
    local t3
    t3=$(now_ns)
    stop_daemon
    echo "$(( (t1 - t0) / 1000 )) $r0 $r1 $r2 $hwm $(( (t3 - t2) / 1000 ))"
}

printf '| znodes | mount ready ms | umount ms | RSS after mount MiB | after ls / | after stat of all | peak (VmHWM) MiB |\n'
printf '|---|---|---|---|---|---|---|\n'
for n in $SIZES; do
    data=$WORK/data-$n
    mkdir -p "$data"
    populate "$data" "$n"
    : >"$WORK/runs"
    for _ in $(seq 1 "$RUNS"); do
        one_run "$data" >>"$WORK/runs" || break
        echo "restart.sh: N=$n run: $(tail -n 1 "$WORK/runs")" >&2
    done
    col() { awk -v c="$1" '{ print $c }' "$WORK/runs" | median; }
    mib() { awk -v k="$1" 'BEGIN { if (k == "-") print "-"; else printf "%.1f", k / 1024 }'; }
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$n" \
        "$(awk -v u="$(col 1)" 'BEGIN { printf "%.0f", u / 1000 }')" \
        "$(awk -v u="$(col 6)" 'BEGIN { printf "%.0f", u / 1000 }')" \
        "$(mib "$(col 2)")" "$(mib "$(col 3)")" "$(mib "$(col 4)")" "$(mib "$(col 5)")"
    rm -rf --one-file-system "$data"
done
echo
echo "medians of $RUNS runs; mount = \`zkfs mount\` until it returns (mount ready);" \
     "memory = the daemon's VmRSS/VmHWM.$([ "$COLD" = 1 ] && echo ' Page cache dropped before each mount.')"
