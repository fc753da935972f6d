#!/usr/bin/env bash
# bench/compare.sh — zkfs and ZooKeeper side by side, in one run, on this
# machine: one table with both and their ratio.
#
# R times, interleaved so that the machine's noise hits both alike:
#   1. ZooKeeper 3.8, 3 servers on loopback, its C client
#      (../shared/peers/bench.sh -t 3 -r 1 -m "seq seqL c8"): one client on
#      a follower (seq), on the leader (seqL), eight clients (c8);
#   2. zkfs, 3 replicas on loopback, through the mounts
#      (bench/ensemble.sh --runs 1 --leader --no-standalone --no-failover):
#      one process on a follower's mount (ens), on the leader's (ensL),
#      eight processes spread over the three mounts.
#   3. (not with --locks) the durable floor: bench/run.sh's target
#      floor-sync (bench/floorfs --sync: an in-memory FUSE filesystem that
#      makes one fdatasync to a log on the same disk before every answer
#      zkfs gives only once committed; one server, no replication), for
#      create, creat and set with 1 and 8 processes: what one flush per
#      durable answer costs through FUSE on this machine in this run.
# Before and after the runs, bench/flushlat measures what the machine
# charges any replicated commit: one small append + fdatasync alone and
# with three processes flushing at once on the same disk (three replicas
# do), and a TCP round trip between two processes on loopback; printed
# above the table.
# Then prints, per workload, the medians of ops/s and p50/p99 of both and
# the ratio zkfs / ZooKeeper (> 1: zkfs is faster; for the 10,000-entry
# listing, the ratio of listings per second, all clients together on both
# sides; until 2026-12-04 zkfs's side was one process's rate, which made
# 8 listers look 8x slower than they were).
#
# --locks measures the cluster-wide lock instead (issue 9): ZooKeeper "seq
# seqL" (its ephemeral create+delete pair, "eph", is the least a lock of
# its recipe costs: the recipe adds a getChildren) beside zkfs's
# ephemeral, lock (flock(2) LOCK_EX+LOCK_UN in a C loop), flock1 (`flock
# FILE true`, process start included) and handoff (a holder's unlock on
# one mount to the waiter's grant on another: p50/p99 only, ZooKeeper's
# side is not measured); the ratio of every lock row is against
# ZooKeeper's ephemeral pair on the same kind of server.
#
# Usage (as root): bench/compare.sh [--runs R] [--n N] [--quick] [--locks]
#                                   [--out DIR]
#   --runs R    repetitions of both (default 3)
#   --n N       ZooKeeper's operations per phase (default 5000)
#   --quick     1 run, N 2000, zkfs op counts / 4
#   --summarize DIR   only print the table of an earlier run's DIR
# The ZooKeeper packages and load generator are installed by
# ../shared/peers/setup.sh when missing (apt-get). Raw results stay in DIR
# (default a new /tmp/zkfs-compare.XXXXXX). Benchmarks print figures; they
# never pass or fail. Every server and mount is stopped by the scripts
# that start them (pid files, traps).
set -euo pipefail

cd "$(dirname "$0")/.."
PEERS=$(cd ../shared/peers 2>/dev/null && pwd) ||
    { echo "compare.sh: ../shared/peers is missing" >&2; exit 1; }
RUNS=3
N=5000
QUICK=0
LOCKS=0
OUT=""
SUMMARIZE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --n) N=$2; shift 2 ;;
        --quick) QUICK=1; RUNS=1; N=2000; shift ;;
        --locks) LOCKS=1; shift ;;
        --out) OUT=$2; shift 2 ;;
        --summarize) OUT=$2; SUMMARIZE=1; shift 2 ;;
        -h|--help) sed -n '2,49p' "$0"; exit 0 ;;
        *) echo "compare.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
ZK_MODES="seq seqL c8" ZKFS_WL="create creat set get list ephemeral"
[ "$LOCKS" = 1 ] && ZK_MODES="seq seqL" ZKFS_WL="ephemeral lock flock1 handoff"
OUT=${OUT:-$(mktemp -d /tmp/zkfs-compare.XXXXXX)}
mkdir -p "$OUT"
export PEERS_BUILD=${PEERS_BUILD:-/tmp/zkfs-peers}
if [ "$SUMMARIZE" = 0 ]; then
if [ ! -x "$PEERS_BUILD/zkload" ] || ! dpkg-query -W zookeeper >/dev/null 2>&1; then
    echo "compare.sh: installing the ZooKeeper baseline (../shared/peers/setup.sh)" >&2
    "$PEERS/setup.sh" >&2
fi
make -s all >/dev/null

quick=()
[ "$QUICK" = 1 ] && quick=(--quick)
machine() {             # machine WHEN: bench/flushlat's figures
    local f=build/bench/flushlat
    {
        echo "# machine, $1 ($(date -u +%T) UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)):"
        for k in 1 3; do "$f" --dir "$OUT" --writers "$k" --ops 1000 | sed 's/^/#   /'; done
        "$f" --rtt --ops 5000 | sed 's/^/#   /'
    } >>"$OUT/machine.txt" 2>&1 || true
}
: >"$OUT/machine.txt"
machine before
for r in $(seq 1 "$RUNS"); do
    echo "=== run $r of $RUNS: ZooKeeper ($(date -u +%T) UTC)" >&2
    "$PEERS/bench.sh" -r 1 -t 3 -m "$ZK_MODES" -n "$N" -o "$OUT/zk-$r" >&2
    echo "=== run $r of $RUNS: zkfs ($(date -u +%T) UTC)" >&2
    bench/ensemble.sh --runs 1 --leader --no-standalone --no-failover \
        --rotate $((r - 1)) --workloads "$ZKFS_WL" --raw "$OUT/zkfs-$r.raw" \
        --no-build "${quick[@]}" >&2
    if [ "$LOCKS" = 0 ]; then
        echo "=== run $r of $RUNS: durable floor ($(date -u +%T) UTC)" >&2
        bench/run.sh --runs 1 --targets floor-sync --workloads "create creat set" \
            --procs "1 8" --raw "$OUT/floor-$r.raw" --no-build "${quick[@]}" >&2
    fi
done
machine after
fi

# One line per measurement: "sys=zk|zkfs where=... procs=P workload=W
# ops_per_s=X p50_us=Y p99_us=Z".
{
    for f in "$OUT"/zk-*/zk_3_*_r1.jsonl; do
        [ -e "$f" ] || continue
        mode=$(basename "$f" | sed -E 's/^zk_3_([a-zA-Z0-9]+)_r1\.jsonl$/\1/')
        sed -E 's/[{}"]//g; s/,/ /g; s/:/=/g' "$f" | awk -v mode="$mode" '{
            delete v
            for (i = 1; i <= NF; i++) { split($i, a, "="); v[a[1]] = a[2] }
            w = v["phase"]; if (w == "children") w = "list"; if (w == "eph") w = "ephemeral"
            where = mode == "seqL" ? "leader" : "follower"
            procs = mode == "c8" ? 8 : 1
            printf "sys=zk where=%s procs=%d workload=%s ops_per_s=%s p50_us=%s p99_us=%s\n",
                where, procs, w, v["ops_per_s"], v["p50_us"], v["p99_us"]
        }'
    done
    cat "$OUT"/zkfs-*.raw 2>/dev/null | awk '$1 ~ /^run=/ && $0 !~ /failed=/ {
        delete v
        for (i = 1; i <= NF; i++) { split($i, a, "="); v[a[1]] = a[2] }
        where = v["target"] == "ensL" ? "leader" : "follower"
        if (v["procs"] == 8) where = "follower"   # spread over all three
        rate = v["ops_per_s"]     # list too: all clients together, like ZooKeeper
        if (v["procs"] == 8 && v["target"] == "ensL") next
        printf "sys=zkfs where=%s procs=%d workload=%s ops_per_s=%s p50_us=%s p99_us=%s\n",
            where, v["procs"], v["workload"], rate, v["p50_us"], v["p99_us"]
    }'
    # The durable floor is one server: the same figure on both rows.
    cat "$OUT"/floor-*.raw 2>/dev/null | awk '$1 ~ /^run=/ && $0 !~ /failed=/ {
        delete v
        for (i = 1; i <= NF; i++) { split($i, a, "="); v[a[1]] = a[2] }
        n = v["procs"] == 8 ? 1 : 2
        for (j = 1; j <= n; j++)
            printf "sys=floor where=%s procs=%d workload=%s ops_per_s=%s p50_us=%s p99_us=%s\n",
                j == 1 ? "follower" : "leader", v["procs"], v["workload"], v["ops_per_s"], v["p50_us"], v["p99_us"]
    }'
} >"$OUT/all.txt"

echo
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)," \
     "zkfs $(git rev-parse --short HEAD 2>/dev/null || echo '?'), runs $(ls -d "$OUT"/zk-* 2>/dev/null | wc -l); raw in $OUT"
cat "$OUT/machine.txt" 2>/dev/null || true
echo
awk -v workloads="$ZKFS_WL" "$(cat bench/stats.awk)"'
{
    delete v
    for (i = 1; i <= NF; i++) { split($i, a, "="); v[a[1]] = a[2] }
    k = v["workload"] SUBSEP v["procs"] SUBSEP v["where"] SUBSEP v["sys"]
    if (v["ops_per_s"] != "") rate[k] = rate[k] " " v["ops_per_s"]
    p50[k] = p50[k] " " v["p50_us"]; p99[k] = p99[k] " " v["p99_us"]
}
function cell(k) {
    if (!(k in p50)) return "- | - | -"
    return fmt_rate(median(rate[k])) " | " fmt_us(median(p50[k])) " | " fmt_us(median(p99[k]))
}
function fcell(k) {
    if (!(k in p50)) return "- | -"
    return fmt_rate(median(rate[k])) " | " fmt_us(median(p50[k]))
}
END {
    fl = workloads !~ /lock/
    printf "| workload | clients | mount / server | zkfs ops/s | p50 µs | p99 µs | ZooKeeper ops/s | p50 µs | p99 µs | zkfs / ZK |%s\n", fl ? " durable floor ops/s | p50 µs |" : ""
    printf "|---|---|---|---|---|---|---|---|---|---|%s\n", fl ? "---|---|" : ""
    nw = split(workloads, W, " ")
    for (w = 1; w <= nw; w++) for (p = 1; p <= 8; p += 7) for (wh = 1; wh <= 2; wh++) {
        where = wh == 1 ? "leader" : "follower"
        if (p == 8 && where == "leader") continue
        zw = W[w] ~ /^(lock|flock1|handoff)$/ ? "ephemeral" : W[w]   # ZooKeeper: the eph pair
        if (W[w] == "creat") zw = "create"          # ZooKeeper has one create
        kf = W[w] SUBSEP p SUBSEP where SUBSEP "zkfs"; kz = zw SUBSEP p SUBSEP where SUBSEP "zk"
        if (W[w] == "handoff") kz = "none"                          # not measured there
        if (!(kf in p50) && !(kz in p50)) continue
        ratio = "-"
        if ((kf in rate) && (kz in rate) && median(rate[kz]) > 0)
            ratio = sprintf("%.2fx", median(rate[kf]) / median(rate[kz]))
        printf "| %s | %d | %s | %s | %s | %s |", W[w], p, p == 8 ? "spread" : where, cell(kf), cell(kz), ratio
        if (fl) printf " %s |", fcell(W[w] SUBSEP p SUBSEP where SUBSEP "floor")
        printf "\n"
    }
    print ""
    print "Medians over the runs. list: listings of 10,000 entries per second, all clients together (p50/p99: one listing)."
    print "ephemeral: zkfs create + last close (which deletes it); ZooKeeper ephemeral create + delete."
    print "create: open(O_CREAT|O_EXCL) + write + close; creat: the same without O_EXCL (echo x > newfile: one"
    print "transaction at close); both beside the ZooKeeper create (with data)."
    print "ZooKeeper seq/seqL: one synchronous client on a follower/the leader; c8: 8 clients over 3 servers."
    if (fl) {
        print "durable floor: bench/floorfs --sync on the same disk (one fdatasync per answer zkfs gives only once"
        print "committed; one server, one thread: no replication, no group commit), same workloads and processes."
    }
    if (workloads ~ /lock/) {
        print "lock: flock(LOCK_EX)+flock(LOCK_UN) pairs in a C loop; flock1: `flock FILE true` runs; handoff: one"
        print "holder'"'"'s LOCK_UN to the waiter'"'"'s grant on another mount (follower: follower -> follower; leader:"
        print "leader <-> follower). The ZooKeeper columns of lock and flock1 (and their ratio) are its ephemeral create+delete pair."
    }
}' "$OUT/all.txt"
