#!/usr/bin/env bash
# bench/run.sh — zkfs side by side with the FUSE floor and tmpfs.
#
# Mounts each target in a private temporary directory — a standalone zkfs
# (build/zkfs mount -f, by pid, data on the temporary directory's disk), the
# trivial in-memory FUSE filesystem build/bench/floorfs (by pid) and a tmpfs
# — then runs every workload of build/bench/fsbench with 1 process and with
# 8, R times (round-robin over the targets so that machine noise hits all of
# them alike), and prints a table of MEDIANS: workload x procs -> ops/s,
# p50 and p99 latency (µs) per target; for "list" the ms per listing of
# 10,000 entries; for "watch" (build/bench/watchlat, one writer, one
# watcher, same mount) the delay from a change to its IN_CLOSE_WRITE event.
# Raw lines are kept in the --raw file if given.
#
# Usage (as root: FUSE and tmpfs mounts):
#   bench/run.sh [--runs R] [--targets "zkfs floor tmpfs"] [--procs "1 8"]
#                [--workloads "create set get stat list delete ephemeral lock watch"]
#                (also: creat, firststat, firstlist — see bench/fsbench.c)
#                [--quick] [--raw FILE] [--no-build] [--private-dirs]
#                [--base ZKFS_BINARY]
# Targets: zkfs, floor, floor-noxattr (floorfs --no-xattr: the configuration
# of FUSE-FACTS.md's table), floor-epoll (floorfs --epoll: waiting for
# requests as zkfs's event loop does), floor-dio (floorfs --direct-io:
# files opened as zkfs opens them for reading), floor-sync (floorfs --sync:
# one fdatasync to a log on the data disk before every answer zkfs gives
# only once committed — a durable one-server floor, see bench/floorfs.c),
# tmpfs, and base: another zkfs binary given with
# --base (e.g. main's, copied aside), for a before/after in one run. --quick divides the op counts by 4.
# --private-dirs gives each fsbench process its own directory (by default
# they share one, and the kernel serializes creates/unlinks in it).
#
# Benchmarks print figures; they never pass or fail and are not part of
# `make check`. Every mount and process is cleaned up on exit (trap), by
# pid, with bounded waits.
set -euo pipefail

cd "$(dirname "$0")/.."
B=${B:-build}
RUNS=3
TARGETS="zkfs floor tmpfs"
PROCS="1 8"
WORKLOADS="create set get stat list delete ephemeral lock watch"
QUICK=0
RAW=""
BUILD=1
PRIVATE=()          # --private-dirs: each fsbench process in its own directory
CAP_S=60            # fsbench's own time cap per run
MOUNT_WAIT_S=20     # how long a mount may take to appear
FILES=250           # files per process that set/get/stat cycle over
BASE=""             # --base: the zkfs binary of target "base"

while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --targets) TARGETS=$2; shift 2 ;;
        --procs) PROCS=$2; shift 2 ;;
        --workloads) WORKLOADS=$2; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --raw) RAW=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --private-dirs) PRIVATE=(--private-dirs); shift ;;
        --base) BASE=$2; shift 2 ;;
        -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

if [ "$BUILD" = 1 ]; then
    # The whole tree first; if some other part does not build right now,
    # the bench tools alone still can.
    make -s all >/dev/null 2>&1 ||
        make -s "$B/bench/fsbench" "$B/bench/floorfs" "$B/bench/watchlat" ||
        { echo "run.sh: cannot build the bench tools" >&2; exit 1; }
fi
FSBENCH=$B/bench/fsbench
FLOORFS=$B/bench/floorfs
WATCHLAT=$B/bench/watchlat
ZKFS=$B/zkfs
for f in "$FSBENCH" "$FLOORFS"; do
    [ -x "$f" ] || { echo "run.sh: $f is missing (run make)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/zkfs-bench.XXXXXX)
declare -A PID=()       # target -> daemon pid
declare -A MNT=()       # target -> mountpoint

is_mounted() {          # is_mounted PATH: listed in /proc/self/mountinfo?
    awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo
}

wait_gone() {           # wait_gone PID SECONDS: bounded wait for an exit
    local pid=$1 n=$(( $2 * 20 ))
    while [ "$n" -gt 0 ] && kill -0 "$pid" 2>/dev/null; do
        sleep 0.05; n=$((n - 1))
    done
    ! kill -0 "$pid" 2>/dev/null
}

stop_target() {
    local t=$1 m=${MNT[$1]:-} pid=${PID[$1]:-}
    [ -n "$m" ] || return 0
    if is_mounted "$m"; then
        case "$t" in
            zkfs|base) timeout 15 "$ZKFS" umount "$m" >/dev/null 2>&1 || true ;;
            tmpfs) umount "$m" 2>/dev/null || umount -l "$m" || true ;;
        esac
        is_mounted "$m" && { timeout 10 fusermount3 -u "$m" 2>/dev/null ||
                             umount -l "$m" 2>/dev/null || true; }
    fi
    if [ -n "$pid" ]; then
        wait_gone "$pid" 10 || { kill -TERM "$pid" 2>/dev/null || true; }
        wait_gone "$pid" 5 || { kill -KILL "$pid" 2>/dev/null || true; }
        wait "$pid" 2>/dev/null || true
    fi
    unset "PID[$t]" "MNT[$t]"
}

cleanup() {
    local t
    if [ -n "${BGPID:-}" ]; then
        kill "$BGPID" 2>/dev/null || true
        wait "$BGPID" 2>/dev/null || true
    fi
    for t in "${!MNT[@]}"; do stop_target "$t"; done
    # Only once nothing is mounted below it; never cross into a mount.
    if ! awk -v w="$WORK/" 'index($5, w) == 1 { f = 1 } END { exit !f }' \
            /proc/self/mountinfo; then
        rm -rf --one-file-system "$WORK"
    else
        echo "run.sh: leaving $WORK (something is still mounted there)" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_target T: mounts target T at $WORK/mnt-T; returns 1 (with a
# message) when it cannot, so the run goes on without it.
start_target() {
    local t=$1 m=$WORK/mnt-$1 n
    mkdir -p "$m"
    case "$t" in
        zkfs)
            [ -x "$ZKFS" ] || { echo "run.sh: $ZKFS not built; skipping zkfs" >&2; return 1; }
            mkdir -p "$WORK/zkdata"
            "$ZKFS" mount -f --data "$WORK/zkdata" "$m" >"$WORK/zkfs.log" 2>&1 &
            PID[$t]=$! ;;
        base)
            [ -x "$BASE" ] || { echo "run.sh: base: give an executable with --base; skipping it" >&2; return 1; }
            mkdir -p "$WORK/basedata"
            "$BASE" mount -f --data "$WORK/basedata" "$m" >"$WORK/base.log" 2>&1 &
            PID[$t]=$! ;;
        floor)
            "$FLOORFS" "$m" >"$WORK/floor.log" 2>&1 &
            PID[$t]=$! ;;
        floor-noxattr)
            "$FLOORFS" --no-xattr "$m" >"$WORK/floor-noxattr.log" 2>&1 &
            PID[$t]=$! ;;
        floor-epoll)
            "$FLOORFS" --epoll "$m" >"$WORK/floor-epoll.log" 2>&1 &
            PID[$t]=$! ;;
        floor-dio)
            "$FLOORFS" --direct-io "$m" >"$WORK/floor-dio.log" 2>&1 &
            PID[$t]=$! ;;
        floor-sync)
            "$FLOORFS" --sync "$WORK" "$m" >"$WORK/floor-sync.log" 2>&1 &
            PID[$t]=$! ;;
        tmpfs)
            mount -t tmpfs -o size=2g,mode=0755 zkfs-bench "$m" ||
                { echo "run.sh: cannot mount tmpfs; skipping it" >&2; return 1; } ;;
        *) echo "run.sh: unknown target '$t'" >&2; return 1 ;;
    esac
    MNT[$t]=$m
    n=$((MOUNT_WAIT_S * 20))
    until is_mounted "$m"; do
        if [ -n "${PID[$t]:-}" ] && ! kill -0 "${PID[$t]}" 2>/dev/null; then
            echo "run.sh: $t exited before mounting:" >&2
            tail -n 5 "$WORK/$t.log" >&2 || true
            stop_target "$t"; return 1
        fi
        n=$((n - 1))
        [ "$n" -gt 0 ] || { echo "run.sh: $t did not mount in ${MOUNT_WAIT_S}s" >&2
                            stop_target "$t"; return 1; }
        sleep 0.05
    done
}

# Per-process op counts (ops_for WORKLOAD TARGET): each run takes well
# under a second on the floor and some seconds on zkfs, whose writes wait
# for fsync (so it gets fewer of them: rates are rates); fsbench's time cap
# bounds the rest.
ops_for() {
    local n
    case "$1" in
        create|set|delete|ephemeral)
            case "${2:-}" in zkfs|base) n=500 ;; *) n=2000 ;; esac ;;
        get) n=5000 ;;
        stat) n=200000 ;;
        lock) n=20000 ;;
        list|firstlist) n=20 ;;
        firststat) n=10000 ;;   # fsbench: at most 10,000 / procs each
        watch) n=1000 ;;
        *) n=1000 ;;
    esac
    [ "$QUICK" = 1 ] && n=$(( n / 4 > 5 ? n / 4 : 5 ))
    echo "$n"
}

# Context for the figures: the machine's load and what an fdatasync costs
# on the disk that holds zkfs's data (zkfs's writes wait for it).
context() {
    local t0 t1 n=200
    t0=$(date +%s%N)
    dd if=/dev/zero of="$WORK/fsync-probe" bs=4k count=$n oflag=dsync 2>/dev/null || true
    t1=$(date +%s%N)
    rm -f "$WORK/fsync-probe"
    echo "# $1: load average $(cut -d' ' -f1-3 /proc/loadavg);" \
         "4 KiB write+fdatasync on $WORK's disk: $(( (t1 - t0) / n / 1000 )) µs mean"
}

ACTIVE=()
for t in $TARGETS; do
    if start_target "$t"; then ACTIVE+=("$t"); fi
done
[ ${#ACTIVE[@]} -gt 0 ] || { echo "run.sh: no target mounted" >&2; exit 1; }
echo "# $(date -u '+%Y-%m-%d %H:%M UTC') $(uname -r), $(nproc) CPUs;" \
     "targets: ${ACTIVE[*]}; runs: $RUNS" | tee "$WORK/context"
context before | tee -a "$WORK/context"

# run_bg SECONDS CMD...: runs CMD in the background and waits for it, so
# that INT/TERM reach the trap at once (bash defers traps while a
# foreground command runs); its output goes to $WORK/out and $WORK/err.
BGPID=""
run_bg() {
    local secs=$1; shift
    timeout "$secs" "$@" >"$WORK/out" 2>"$WORK/err" &
    BGPID=$!
    wait "$BGPID" || true
    BGPID=""
}

RESULTS=$WORK/results
: >"$RESULTS"
for r in $(seq 1 "$RUNS"); do
    for w in $WORKLOADS; do
        for p in $PROCS; do
            for t in "${ACTIVE[@]}"; do
                if [ "$w" = watch ]; then
                    # One writer and one watcher: run it once, as "1 proc".
                    [ "$p" = "${PROCS%% *}" ] || continue
                    run_bg $((CAP_S + 30)) "$WATCHLAT" --write-dir "${MNT[$t]}" \
                        --ops "$(ops_for watch)"
                    line=$(sed 's/^watchlat /workload=watch procs=1 /; s/ lost=/ errors=/' \
                           "$WORK/out")
                else
                    run_bg $((CAP_S * 3 + 30)) "$FSBENCH" --dir "${MNT[$t]}" \
                        --workload "$w" --procs "$p" --ops "$(ops_for "$w" "$t")" \
                        --files "$FILES" --time-cap "$CAP_S" --keep-list "${PRIVATE[@]}"
                    line=$(cat "$WORK/out")
                fi
                if [ -s "$WORK/err" ]; then
                    sed "s/^/run.sh: $t: /" "$WORK/err" | head -n 3 >&2
                fi
                [ -n "$line" ] || line="workload=$w procs=$p failed=1"
                echo "run=$r target=$t $line" | tee -a "$RESULTS" >&2
            done
        done
    done
done
context after | tee -a "$WORK/context"
[ -z "$RAW" ] || cat "$WORK/context" "$RESULTS" >"$RAW"

# Medians per (workload, procs, target), each column on its own.
awk -v targets="${ACTIVE[*]}" -v workloads="$WORKLOADS" -v procs="$PROCS" "$(cat bench/stats.awk)"'
{
    if (kv("failed") != "" || $1 ~ /^#/) next
    k = kv("workload") SUBSEP kv("procs") SUBSEP kv("target")
    rate[k] = rate[k] " " kv("ops_per_s")
    p50[k] = p50[k] " " kv("p50_us")
    p99[k] = p99[k] " " kv("p99_us")
    if (kv("ms_per_list") != "") ml[k] = ml[k] " " kv("ms_per_list")
    if (kv("errors") + 0 > 0) err[k] = 1
}
END {
    nt = split(targets, T, " "); nw = split(workloads, W, " "); np = split(procs, P, " ")
    printf "| workload | procs |"
    for (i = 1; i <= nt; i++) printf " %s ops/s | p50 µs | p99 µs |", T[i]
    printf "\n|---|---|"
    for (i = 1; i <= nt; i++) printf "---|---|---|"
    printf "\n"
    for (a = 1; a <= nw; a++) for (b = 1; b <= np; b++) {
        any = 0
        for (i = 1; i <= nt; i++) if ((W[a] SUBSEP P[b] SUBSEP T[i]) in p50) any = 1
        if (!any) continue
        printf "| %s | %s |", W[a], P[b]
        for (i = 1; i <= nt; i++) {
            k = W[a] SUBSEP P[b] SUBSEP T[i]
            if (W[a] ~ /list$/ && (k in ml))
                s = sprintf("%.2f ms", median(ml[k]))
            else
                s = fmt_rate(median(rate[k]))
            if (k in err) s = s " (!)"
            printf " %s | %s | %s |", s, fmt_us(median(p50[k])), fmt_us(median(p99[k]))
        }
        printf "\n"
    }
    print ""
    print "list, firstlist: median ms per full listing of 10,000 entries instead of ops/s."
    print "watch: change (open O_TRUNC+write+close) to IN_CLOSE_WRITE at a watcher on the same mount; (!) = events lost."
    for (k in err) { print "(!): some run had errors (fsbench stopped that process at its first error; see stderr)."; break }
}' "$RESULTS"
