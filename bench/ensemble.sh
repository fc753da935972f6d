#!/usr/bin/env bash
# bench/ensemble.sh — zkfs as a 3-replica ensemble on loopback, side by
# side with a standalone replica, measured through the mounts.
#
# Starts, in a private temporary directory, three `zkfs mount -f -c CFG
# --id N` daemons (one config file each, a shared secret, random free
# loopback ports, default tickTime/syncLimit/initLimit/sessionTimeout) and
# one standalone `zkfs mount -f`, all by pid. Then, R times (the two
# targets interleaved), SPEC section 6's workloads with build/bench/fsbench:
#   create, creat, set   1 writer and 8 writers (creat: create without
#                        O_EXCL, `echo x > newfile`); on the ensemble the
#                        writers are spread over the three mounts
#                        (fsbench --spread; the 1-writer case and every
#                        third of the 8 write through a follower's mount)
#   get, stat            1 and 8 readers (spread likewise)
#   list                 1 and 8 readers listing a directory of 10,000
#   ephemeral            create + last close (zkfs deletes it), 1 and 8
#   watch                build/bench/watchlat: a change through one
#                        follower's mount to the IN_CLOSE_WRITE event on
#                        the other follower's mount (standalone: the same
#                        mount)
# and, when asked for with --workloads (1 process each, build/bench/lockbench):
#   lock                 flock(LOCK_EX) + flock(LOCK_UN) in a C loop
#   flock1               `flock FILE true` runs (flock(1), process start
#                        included)
#   handoff              a holder's LOCK_UN on one mount to a blocked
#                        waiter's flock() returning on the other
#                        follower's mount (ensL: leader <-> follower)
# and the failover: K rounds of kill -9 of the leader, the time until the
# first write committed through a surviving mount (build/bench/failover),
# the killed replica restarted (and the three agreeing on a leader) before
# the next round. Prints a table of medians, each round of the failover,
# and the load average before and after.
#
# Usage (as root: FUSE mounts):
#   bench/ensemble.sh [--runs R] [--rounds K] [--quick] [--raw FILE]
#                     [--workloads "create set get stat list ephemeral watch"]
#                     [--no-standalone] [--no-failover] [--no-build] [--leader]
#                     [--logs DIR] [--debug] [--observers K] [--rotate N]
# --leader adds a target "ensL": the same workloads through the LEADER's
# mount (8 processes spread over the leader's and the followers' mounts),
# beside "ens", which works through a follower's mount.
# --observers K (issue 10 item 5) also starts a second ensemble of 3
# voters and K observers (K <= 13) on loopback and adds two targets beside
# "ens" (3 voters alone): "obsV", the same workloads through a follower's
# mount of the second ensemble (8 processes spread over its voters), and
# "obsO", through observers' mounts (spread over three observers); for
# watch, obsV watches the other follower (as ens does) and obsO writes on
# its leader's mount and watches every observer's: one line per observer
# with the event's delay after the writer's close() returned (its commit
# applied on the leader) — each observer's commit lag, p50 and p99.
# OBS_DATA_DIR=DIR (environment) puts the observers' data directories
# under DIR (a tmpfs shows what their fsyncs cost the voters).
# The targets take turns in going first: run r measures them in the order
# of the target list rotated by N + r - 1 (--rotate N, default 0; compare.sh
# passes its own run number), so that no target is always the one measured
# right after another target's write workload. On this shared 2-CPU machine
# that position, like any other, is sometimes hit by other engineers' jobs;
# with a fixed order one role took every such hit in a row (docs/performance.md,
# "The follower's slow gets").
# --logs DIR keeps every daemon's log (DIR/log.N) after the run; --debug
# starts the daemons with -d (the core's trace: one line per election,
# discovery and sync step, with times), to see where a failover's time goes.
# BENCH_QUICK=1 (or --quick): 1 run, op counts / 4, 2 failover rounds.
# Defaults: 3 runs, 5 rounds; a full run takes about 4-6 minutes on 2 CPUs
# (up to 15 when the machine is busy).
#
# Benchmarks print figures; they never pass or fail on timing. Every
# daemon is stopped by pid and every mount removed on exit, error or
# Ctrl-C included (trap), with bounded waits.
set -euo pipefail

cd "$(dirname "$0")/.."
B=${B:-build}
RUNS=3
ROUNDS=5
QUICK=${BENCH_QUICK:-0}
RAW=""
BUILD=1
STANDALONE=1
FAILOVER=1
LEADER=0
LOGS=""
DEBUG=""
OBS=0
ROTATE=0
WORKLOADS="create creat set get stat list ephemeral watch"
CAP_S=60
MOUNT_WAIT_S=30
FILES=100

while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --raw) RAW=$2; shift 2 ;;
        --workloads) WORKLOADS=$2; shift 2 ;;
        --no-standalone) STANDALONE=0; shift ;;
        --no-failover) FAILOVER=0; shift ;;
        --no-build) BUILD=0; shift ;;
        --leader) LEADER=1; shift ;;
        --logs) LOGS=$2; shift 2 ;;
        --debug) DEBUG=-d; shift ;;
        --observers) OBS=$2; shift 2 ;;
        --rotate) ROTATE=$2; shift 2 ;;
        -h|--help) sed -n '2,70p' "$0"; exit 0 ;;
        *) echo "ensemble.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
if [ "$QUICK" = 1 ]; then RUNS=1; ROUNDS=2; fi
case $OBS in ''|*[!0-9]*) echo "ensemble.sh: --observers wants a number" >&2; exit 2 ;; esac
case $ROTATE in ''|*[!0-9]*) echo "ensemble.sh: --rotate wants a number" >&2; exit 2 ;; esac
[ "$OBS" -le 13 ] || { echo "ensemble.sh: --observers: at most 13 (16 servers)" >&2; exit 2; }

if [ "$BUILD" = 1 ]; then
    make -s all >/dev/null 2>&1 ||
        make -s "$B/zkfs" "$B/bench/fsbench" "$B/bench/watchlat" "$B/bench/failover" "$B/bench/lockbench" ||
        { echo "ensemble.sh: cannot build" >&2; exit 1; }
fi
for f in zkfs bench/fsbench bench/watchlat bench/failover bench/lockbench; do
    [ -x "$B/$f" ] || { echo "ensemble.sh: $B/$f is missing (run make)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/zkfs-ens-bench.XXXXXX)
# A copy of the binaries: a rebuild of the tree during the run (others
# work in it) must not pull them away under us.
mkdir "$WORK/bin"
cp "$B/zkfs" "$B/bench/fsbench" "$B/bench/watchlat" "$B/bench/failover" \
    "$B/bench/lockbench" "$WORK/bin/"
ZKFS=$WORK/bin/zkfs FSBENCH=$WORK/bin/fsbench WATCHLAT=$WORK/bin/watchlat FAILOVER_BIN=$WORK/bin/failover
LOCKBENCH=$WORK/bin/lockbench
declare -A PID=()      # name (1 2 3 solo) -> daemon pid
declare -A MNT=()      # name -> mountpoint
BGPID=""

is_mounted() {
    awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo
}

alive() {              # alive PID: running (an exited, unreaped child is not)
    local s
    s=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$s" ] && [ "$s" != Z ]
}

wait_gone() {          # wait_gone PID SECONDS
    local n=$(( $2 * 20 ))
    while [ "$n" -gt 0 ] && alive "$1"; do sleep 0.05; n=$((n - 1)); done
    ! alive "$1"
}

# stop NAME: `zkfs umount` (the daemon then exits), else TERM, KILL; the
# mount removed in any case.
stop() {
    local n=$1 m=${MNT[$1]:-} p=${PID[$1]:-}
    [ -n "$m" ] || return 0
    if [ -n "$p" ] && alive "$p" && is_mounted "$m"; then
        timeout 20 "$ZKFS" umount "$m" >/dev/null 2>&1 || true
    fi
    if [ -n "$p" ]; then
        wait_gone "$p" 10 || kill -TERM "$p" 2>/dev/null || true
        wait_gone "$p" 5 || kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    fi
    is_mounted "$m" && { fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; }
    unset "PID[$n]"
}

cleanup() {
    local n u=()
    if [ -n "$BGPID" ]; then kill "$BGPID" 2>/dev/null || true; wait "$BGPID" 2>/dev/null || true; fi
    # `zkfs umount` of all at once: each replica closes its session while
    # the others still form a quorum (one by one, the last has none).
    for n in "${!PID[@]}"; do
        if alive "${PID[$n]}" && is_mounted "${MNT[$n]}"; then
            timeout 20 "$ZKFS" umount "${MNT[$n]}" >/dev/null 2>&1 &
            u+=($!)
        fi
    done
    for n in "${u[@]}"; do wait "$n" 2>/dev/null || true; done
    for n in "${!PID[@]}"; do stop "$n"; done
    for n in "${!MNT[@]}"; do
        is_mounted "${MNT[$n]}" && { fusermount3 -u -z "${MNT[$n]}" 2>/dev/null || true; }
    done
    if [ -n "$LOGS" ]; then mkdir -p "$LOGS" && cp "$WORK"/log.* "$LOGS"/ 2>/dev/null || true; fi
    if ! awk -v w="$WORK/" 'index($5, w) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
        rm -rf --one-file-system "$WORK"
    else
        echo "ensemble.sh: leaving $WORK (something is still mounted there)" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the ensemble -----------------------------------------------------------

port_free() { ! ss -Htan "sport = :$1" 2>/dev/null | grep -q .; }
for _ in $(seq 50); do
    BASE=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    port_free $((BASE + 1)) && port_free $((BASE + 2)) && port_free $((BASE + 3)) && break
done
head -c 32 /dev/urandom >"$WORK/secret"
chmod 600 "$WORK/secret"
for i in 1 2 3; do
    {
        echo "dataDir=$WORK/d$i"
        echo "secretFile=$WORK/secret"
        for j in 1 2 3; do echo "server.$j=127.0.0.1:$((BASE + j))"; done
    } >"$WORK/z$i.cfg"
done

# The second ensemble (--observers): servers o1..o3 vote, o4.. observe.
ONAMES=()
if [ "$OBS" -gt 0 ]; then
    ON=$((3 + OBS))
    for _ in $(seq 50); do
        # Below the ephemeral range (32768..): 13+ daemons dial out meanwhile.
        OBASE=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
        ok=1
        for i in $(seq 1 "$ON"); do port_free $((OBASE + i)) || ok=0; done
        [ "$ok" = 1 ] && [ $((OBASE + ON)) -lt $((BASE + 1)) -o "$OBASE" -gt $((BASE + 3)) ] && break
    done
    for i in $(seq 1 "$ON"); do
        ONAMES+=("o$i")
        {
            if [ "$i" -gt 3 ] && [ -n "${OBS_DATA_DIR:-}" ]; then echo "dataDir=$OBS_DATA_DIR/do$i"; else echo "dataDir=$WORK/do$i"; fi
            echo "secretFile=$WORK/secret"
            for j in $(seq 1 "$ON"); do
                if [ "$j" -le 3 ]; then echo "server.$j=127.0.0.1:$((OBASE + j))"
                else echo "server.$j=127.0.0.1:$((OBASE + j)):observer"; fi
            done
        } >"$WORK/zo$i.cfg"
    done
fi

# launch NAME: starts a daemon (1..3: replica of the ensemble; oN: server
# N of the second ensemble; solo: standalone) in the background, by pid.
launch() {
    local n=$1 m=$WORK/m$1
    mkdir -p "$m"
    MNT[$n]=$m
    echo "=== start $(date +%T.%N)" >>"$WORK/log.$n"
    if [ "$n" = solo ]; then
        "$ZKFS" mount -f --data "$WORK/dsolo" "$m" >>"$WORK/log.$n" 2>&1 &
    elif [ "${n#o}" != "$n" ]; then
        "$ZKFS" mount -f $DEBUG -c "$WORK/z$n.cfg" --id "${n#o}" "$m" >>"$WORK/log.$n" 2>&1 &
    else
        "$ZKFS" mount -f $DEBUG -c "$WORK/z$n.cfg" --id "$n" "$m" >>"$WORK/log.$n" 2>&1 &
    fi
    PID[$n]=$!
    disown "${PID[$n]}"    # no "Killed" notice when a round kills it; alive() sees zombies
}

wait_mounted() {
    local n=$1 k=$((MOUNT_WAIT_S * 20))
    until is_mounted "${MNT[$n]}"; do
        alive "${PID[$n]}" ||
            { tail -n 5 "$WORK/log.$n" >&2; echo "ensemble.sh: $n exited before mounting" >&2; exit 1; }
        k=$((k - 1))
        [ "$k" -gt 0 ] || { echo "ensemble.sh: $n did not mount in ${MOUNT_WAIT_S}s" >&2; exit 1; }
        sleep 0.05
    done
}

field() {              # field NAME KEY: from `zkfs status --json`
    timeout 5 "$ZKFS" status --json "${MNT[$1]}" 2>/dev/null |
        sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p"
}

# agreed [NAME...]: the replicas (default 1..3) follow one established
# leader and none is stale.
agreed() {
    local i l first="" names=("$@")
    [ $# -gt 0 ] || names=(1 2 3)
    for i in "${names[@]}"; do
        [ "$(field "$i" stale)" = false ] || return 1
        l=$(field "$i" leader_id)
        [ -n "$l" ] && [ "$l" != 0 ] || return 1
        [ -n "$first" ] || first=$l
        [ "$l" = "$first" ] || return 1
    done
    [ "$(field "${names[0]%%[0-9]*}$first" role)" = leader ]
}

wait_agreed() {
    local k=$((MOUNT_WAIT_S * 10))
    until agreed "$@"; do
        k=$((k - 1))
        [ "$k" -gt 0 ] || { echo "ensemble.sh: no agreed leader in ${MOUNT_WAIT_S}s" >&2; exit 1; }
        sleep 0.1
    done
}

leader() { local i; for i in 1 2 3; do [ "$(field "$i" role)" = leader ] && { echo "$i"; return; }; done; }

for i in 1 2 3; do launch "$i"; done
[ "$STANDALONE" = 1 ] && launch solo
for n in "${ONAMES[@]}"; do launch "$n"; done
for n in "${!PID[@]}"; do wait_mounted "$n"; done
wait_agreed
L=$(leader)
FOLLOWERS=()
for i in 1 2 3; do [ "$i" = "$L" ] || FOLLOWERS+=("$i"); done
F1=${FOLLOWERS[0]} F2=${FOLLOWERS[1]}
if [ "$OBS" -gt 0 ]; then
    wait_agreed "${ONAMES[@]}"
    OL="" OF=()
    for i in 1 2 3; do
        if [ "$(field "o$i" role)" = leader ]; then OL=o$i; else OF+=("o$i"); fi
    done
    OBSM=()        # every observer's mountpoint
    for n in "${ONAMES[@]:3}"; do OBSM+=("${MNT[$n]}"); done
fi

context() {
    local t0 t1 n=200
    t0=$(date +%s%N)
    dd if=/dev/zero of="$WORK/fsync-probe" bs=4k count=$n oflag=dsync 2>/dev/null || true
    t1=$(date +%s%N)
    rm -f "$WORK/fsync-probe"
    echo "# $1: $(date -u +%H:%M:%S) UTC, load average $(cut -d' ' -f1-3 /proc/loadavg);" \
         "4 KiB write+fdatasync on $WORK's disk: $(( (t1 - t0) / n / 1000 )) µs mean"
}

echo "# $(date -u '+%Y-%m-%d %H:%M UTC') $(uname -r), $(nproc) CPUs, zkfs $(git rev-parse --short HEAD 2>/dev/null || echo '?');" \
     "ensemble 127.0.0.1:$((BASE + 1))..$((BASE + 3)), leader $L; runs $RUNS, quick $QUICK" | tee "$WORK/context"
context before | tee -a "$WORK/context"

run_bg() {             # run_bg SECONDS CMD...: output in $WORK/out, $WORK/err
    local secs=$1; shift
    timeout "$secs" "$@" >"$WORK/out" 2>"$WORK/err" &
    BGPID=$!
    wait "$BGPID" || true
    BGPID=""
}

ops_for() {            # ops_for WORKLOAD PROCS: ops per process
    local n
    case "$1" in
        create|creat|set|ephemeral) if [ "${2:-1}" = 1 ]; then n=300; else n=150; fi ;;
        get) n=4000 ;;
        stat) n=100000 ;;
        list) if [ "${2:-1}" = 1 ]; then n=20; else n=5; fi ;;
        watch) n=1000 ;;
        lock) n=300 ;;
        flock1) n=150 ;;
        handoff) n=200 ;;
    esac
    [ "$QUICK" = 1 ] && n=$(( n / 4 > 5 ? n / 4 : 5 ))
    echo "$n"
}

# The 10,000-entry directory for "list", made once per target in one
# transaction (fsbench would make it one create at a time); fsbench
# --keep-list reuses it when it finds exactly that many entries.
make_list_fixture() {
    local m=$1 i j k
    [ -d "$m/fsbench-list.10000" ] && return 0
    mkdir "$m/fsbench-list.10000"
    for ((j = 0; j < 10000; j += 1000)); do      # zkfs txn: at most 1024 ops
        for k in 1 2 3; do
            [ -e "$m/fsbench-list.10000/entry-$(printf %06d "$j")" ] && break
            for ((i = j; i < j + 1000; i++)); do printf 'create /fsbench-list.10000/entry-%06d\n' "$i"; done |
                timeout 60 "$ZKFS" txn "$m" >/dev/null && break
            sleep 1
        done
    done
    [ "$(ls "$m/fsbench-list.10000" | wc -l)" = 10000 ] ||
        echo "ensemble.sh: could not make the list fixture in $m; fsbench makes it" >&2
}

TARGETS=(ens)
[ "$LEADER" = 1 ] && TARGETS+=(ensL)
[ "$STANDALONE" = 1 ] && TARGETS+=(solo)
[ "$OBS" -gt 0 ] && TARGETS+=(obsV obsO)
OBSLAG=$WORK/obslag
: >"$OBSLAG"
RESULTS=$WORK/results
: >"$RESULTS"
for r in $(seq 1 "$RUNS"); do
    # This run's order: the target list rotated (see --rotate).
    nt=${#TARGETS[@]} ORDER=()
    for ((i = 0; i < nt; i++)); do ORDER+=("${TARGETS[$(( (ROTATE + r - 1 + i) % nt ))]}"); done
    for w in $WORKLOADS; do
        for p in 1 8; do
            case "$w" in watch|lock|flock1|handoff) [ "$p" = 8 ] && continue ;; esac
            for t in "${ORDER[@]}"; do
                if [ "$t" = ens ]; then
                    d=${MNT[$F1]} spread=(--spread "${MNT[$F2]},${MNT[$L]}")
                    wd=${MNT[$F2]}
                elif [ "$t" = ensL ]; then
                    d=${MNT[$L]} spread=(--spread "${MNT[$F1]},${MNT[$F2]}")
                    wd=${MNT[$F1]}
                elif [ "$t" = obsV ]; then
                    d=${MNT[${OF[0]}]} spread=(--spread "${MNT[${OF[1]}]},${MNT[$OL]}")
                    wd=${MNT[${OF[1]}]}
                elif [ "$t" = obsO ]; then
                    d=${OBSM[0]} spread=(--spread "${OBSM[1]:-${OBSM[0]}},${OBSM[2]:-${OBSM[0]}}")
                    wd=${OBSM[0]}
                else
                    d=${MNT[solo]} spread=() wd=${MNT[solo]}
                fi
                if [ "$w" = watch ] && [ "$t" = obsO ]; then
                    # The leader's mount to every observer's: commit lag.
                    wargs=()
                    for m in "${OBSM[@]}"; do wargs+=(--watch-dir "$m"); done
                    run_bg $((CAP_S + 30)) "$WATCHLAT" --write-dir "${MNT[$OL]}" "${wargs[@]}" \
                        --ops "$(ops_for watch)"
                    sed -n "s/^watchlat_dir /run=$r /p" "$WORK/out" >>"$OBSLAG"
                    line=$(sed -n '/^watchlat /{s/^watchlat /workload=watch procs=1 /; s/ lost=/ errors=/; p}' "$WORK/out")
                elif [ "$w" = watch ]; then
                    run_bg $((CAP_S + 30)) "$WATCHLAT" --write-dir "$d" --watch-dir "$wd" \
                        --ops "$(ops_for watch)"
                    line=$(sed 's/^watchlat /workload=watch procs=1 /; s/ lost=/ errors=/' "$WORK/out")
                elif [ "$w" = handoff ]; then
                    touch "$d/lockbench.lock"
                    run_bg $((CAP_S * 2)) "$LOCKBENCH" handoff "$d/lockbench.lock" \
                        "$wd/lockbench.lock" "$(ops_for handoff)"
                    line=$(sed 's/^workload=handoff /workload=handoff procs=1 /' "$WORK/out")
                elif [ "$w" = lock ] || [ "$w" = flock1 ]; then
                    touch "$d/lockbench.lock"
                    run_bg $((CAP_S * 2)) "$LOCKBENCH" "$([ "$w" = lock ] && echo uncontended || echo flock1)" \
                        "$d/lockbench.lock" "$(ops_for "$w")"
                    line=$(sed "s/^workload=$w /workload=$w procs=1 /" "$WORK/out")
                else
                    [ "$w" = list ] && make_list_fixture "$d"
                    run_bg $((CAP_S * 3 + 30)) "$FSBENCH" --dir "$d" "${spread[@]}" \
                        --workload "$w" --procs "$p" --ops "$(ops_for "$w" "$p")" \
                        --files "$FILES" --time-cap "$CAP_S" --keep-list
                    line=$(cat "$WORK/out")
                fi
                [ -s "$WORK/err" ] && sed "s/^/ensemble.sh: $t: /" "$WORK/err" | head -n 3 >&2
                [ -n "$line" ] || line="workload=$w procs=$p failed=1"
                echo "run=$r target=$t $line" | tee -a "$RESULTS" >&2
            done
        done
    done
done
context "after the workloads" | tee -a "$WORK/context"
# CPU seconds (user+system) each daemon used so far: where the time goes.
cpu_of() { awk -v t="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / t }' "/proc/$1/stat" 2>/dev/null || echo "?"; }
{
    printf '# CPU seconds per daemon:'
    for n in $(printf '%s\n' "${!PID[@]}" | sort -V); do printf ' %s=%s' "$n" "$(cpu_of "${PID[$n]}")"; done
    echo
} | tee -a "$WORK/context"

# --- failover -----------------------------------------------------------------
FAILS=$WORK/failover
: >"$FAILS"
if [ "$FAILOVER" = 1 ]; then
    for k in $(seq 1 "$ROUNDS"); do
        wait_agreed
        L=$(leader)
        w=""
        for i in 1 2 3; do [ "$i" = "$L" ] || { w=$i; break; }; done
        run_bg 60 "$FAILOVER_BIN" --dir "${MNT[$w]}" --kill "${PID[$L]}" --timeout-s 30
        line=$(cat "$WORK/out")
        [ -s "$WORK/err" ] && sed "s/^/ensemble.sh: failover: /" "$WORK/err" | head -n 3 >&2
        echo "round=$k killed=$L writer=$w ${line:-failed=1}" | tee -a "$FAILS" >&2
        # The killed replica: reap it, clear its dead mount, restart it.
        wait_gone "${PID[$L]}" 10 || true
        is_mounted "${MNT[$L]}" && { fusermount3 -u -z "${MNT[$L]}" 2>/dev/null || true; }
        launch "$L"
        wait_mounted "$L"
    done
    wait_agreed
    context "after the failover rounds" | tee -a "$WORK/context"
fi
[ -z "$RAW" ] || cat "$WORK/context" "$RESULTS" "$FAILS" >"$RAW"

# --- the table ------------------------------------------------------------------
echo
cat "$WORK/context"
echo
awk -v workloads="$WORKLOADS" -v targets="${TARGETS[*]}" -v obs="$OBS" "$(cat bench/stats.awk)"'
{
    if (kv("failed") != "" || $1 ~ /^#/) next
    k = kv("workload") SUBSEP kv("procs") SUBSEP kv("target")
    rate[k] = rate[k] " " kv("ops_per_s")
    p50[k] = p50[k] " " kv("p50_us")
    p99[k] = p99[k] " " kv("p99_us")
    if (kv("ms_per_list") != "") ml[k] = ml[k] " " kv("ms_per_list")
    if (kv("close_p50_us") != "") cl[k] = cl[k] " " kv("close_p50_us")
    if (kv("errors") + 0 > 0) err[k] = 1
    nruns[k]++
}
END {
    nt = split(targets, T, " "); nw = split(workloads, W, " ")
    name["ens"] = "3 replicas (follower)"; name["ensL"] = "3 replicas (leader)"
    name["solo"] = "standalone"
    name["obsV"] = "3 voters + " obs " observers (follower)"
    name["obsO"] = "3 voters + " obs " observers (observer)"
    printf "| workload | procs | runs |"
    for (i = 1; i <= nt; i++) printf " %s ops/s | p50 µs | p99 µs |", name[T[i]]
    printf "\n|---|---|---|"
    for (i = 1; i <= nt; i++) printf "---|---|---|"
    printf "\n"
    for (a = 1; a <= nw; a++) for (p = 1; p <= 8; p += 7) {
        k0 = W[a] SUBSEP p SUBSEP T[1]
        if (!(k0 in p50)) continue
        printf "| %s | %d | %d |", W[a], p, nruns[k0]
        for (i = 1; i <= nt; i++) {
            k = W[a] SUBSEP p SUBSEP T[i]
            if (W[a] == "list" && (k in ml)) s = sprintf("%.2f ms", median(ml[k]))
            else if (W[a] == "watch") s = (k in cl) ? sprintf("(close %s)", fmt_us(median(cl[k]))) : "-"
            else s = fmt_rate(median(rate[k]))
            if (k in err) s = s " (!)"
            printf " %s | %s | %s |", s, fmt_us(median(p50[k])), fmt_us(median(p99[k]))
        }
        printf "\n"
    }
    if (obs > 0) {
        print ""
        print "Beside 3 voters alone (ens = 1.00): ops/s ratio and p99 ratio (> 1: slower / longer)"
        print "| workload | procs | obsV ops/s | obsV p99 | obsO ops/s | obsO p99 |"
        print "|---|---|---|---|---|---|"
        for (a = 1; a <= nw; a++) for (p = 1; p <= 8; p += 7) {
            k0 = W[a] SUBSEP p SUBSEP "ens"
            if (!(k0 in p50) || W[a] == "watch") continue
            printf "| %s | %d |", W[a], p
            split("obsV obsO", OT, " ")
            for (i = 1; i <= 2; i++) {
                k = W[a] SUBSEP p SUBSEP OT[i]
                r0 = median(rate[k0]); r = median(rate[k])
                q0 = median(p99[k0]); q = median(p99[k])
                printf " %s | %s |", (r0 > 0 ? sprintf("%.2f", r / r0) : "-"), (q0 > 0 ? sprintf("%.2f", q / q0) : "-")
            }
            printf "\n"
        }
    }
    print ""
    print "Medians over the runs. list: ms per listing of 10,000 entries. watch: from the writer'"'"'s open() to"
    print "IN_CLOSE_WRITE on the other follower'"'"'s mount (standalone: same mount); (close N) = the writer'"'"'s"
    print "own open..close p50 in µs. (!) = some run had errors or lost events."
}' "$RESULTS"
if [ -s "$OBSLAG" ]; then
    echo
    echo "Commit lag of each observer: a change written through the leader's mount, to IN_CLOSE_WRITE on"
    echo "the observer's mount; lag = after the writer's close() returned (applied on the leader)."
    echo "Medians over the runs of each run's p50/p99, µs."
    awk "$(cat bench/stats.awk)"'
    { k = kv("dir"); sub(/.*\//, "", k); n[k]++
      e50[k] = e50[k] " " kv("p50_us"); e99[k] = e99[k] " " kv("p99_us")
      l50[k] = l50[k] " " kv("lag_p50_us"); l99[k] = l99[k] " " kv("lag_p99_us")
      lost[k] += kv("lost"); if (!(k in seen)) { seen[k] = 1; order[++m] = k } }
    END {
        print "| observer mount | runs | event p50 | event p99 | lag p50 | lag p99 | lost |"
        print "|---|---|---|---|---|---|---|"
        for (i = 1; i <= m; i++) { k = order[i]
            printf "| %s | %d | %s | %s | %s | %s | %d |\n", k, n[k], fmt_us(median(e50[k])),
                fmt_us(median(e99[k])), fmt_us(median(l50[k])), fmt_us(median(l99[k])), lost[k] }
    }' "$OBSLAG"
fi
[ -z "$RAW" ] || [ ! -s "$OBSLAG" ] || cat "$OBSLAG" >>"$RAW"
if [ -s "$FAILS" ]; then
    echo
    echo "Failover: kill -9 of the leader -> first write committed through a follower's mount"
    sed 's/^/  /' "$FAILS"
    awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^failover_ms=/) { split($i, a, "="); v[++n] = a[2] + 0 } }
         END {
             if (n == 0) { print "  (no successful round)"; exit }
             for (i = 2; i <= n; i++) { x = v[i]; for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
             m = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
             printf "  median %.0f ms over %d rounds (min %.0f, max %.0f)\n", m, n, v[1], v[n]
         }' "$FAILS"
fi
