#!/usr/bin/env bash
# lock.sh — a cluster-wide mutual-exclusion lock with flock(1), and its
# fencing token.
#
# What it shows: flock(1) on a zkfs file takes a lock that excludes holders
# on every mount of the ensemble (each lock and unlock is a committed
# transaction). Waiters queue in FIFO order and get the lock within one
# commit of its release, on any host; `flock -n` fails at once, `flock -w
# SECONDS` waits at most that long. The lock goes at the last close of the
# holder's descriptor: when the command ends, also when it is killed with
# SIGKILL. If the holder's server is cut off from the ensemble, its holders'
# checks fail (ENOLINK) before anyone else can get the lock.
#
# The fencing token (getfattr -n user.zkfs.lock.token FILE) is the zxid of
# the grant: it grows with every grant. Pass it to whatever the lock
# protects, and have that refuse a token lower than one it has seen: that
# covers a holder paused after it checked (docs/filesystem.md, "Locks").
# `zkfs locks FILE` shows the holder and the queue.
#
# The alternative without flock (any ZooKeeper-style lock): an exclusive
# create with `set -C` in an ephemeral directory (one creator wins, the file
# goes with its holder's descriptor): --noclobber below.
#
# Run:
#   examples/lock.sh [MOUNTPOINT] [-- CMD [ARG...]]
#       takes MOUNT/locks/example.lock (waiting up to 30 s), prints the
#       token, runs CMD (by default a 2-second "critical section")
#   examples/lock.sh --demo [MOUNTPOINT]
#       a holder takes the lock for 3 s; a second contender fails at once
#       (flock -n), a third waits and gets the lock when the holder leaves
#   examples/lock.sh --noclobber [MOUNTPOINT] [-- CMD [ARG...]]
#       the same lock as an exclusive create in an ephemeral directory
# MOUNTPOINT defaults to $ZKFS_MNT, then /mnt/zkfs.
set -euo pipefail

MODE=run
case ${1:-} in --demo) MODE=demo; shift ;; --noclobber) MODE=noclobber; shift ;; esac
M=${ZKFS_MNT:-/mnt/zkfs}
if [ $# -gt 0 ] && [ "$1" != "--" ]; then M=$1; shift; fi
[ "${1:-}" != "--" ] || shift
LOCKDIR=$M/locks
LOCK=$LOCKDIR/example.lock

die() { echo "lock: $*" >&2; exit 1; }

awk -v m="$(cd "$M" 2>/dev/null && pwd -P)" \
    '$5 == m && $(NF-2) ~ /^fuse\.zkfs/ { f = 1 } END { exit !f }' \
    /proc/self/mountinfo 2>/dev/null ||
    die "$M is not a zkfs mount (start one: zkfs mount $M)"
mkdir -p "$LOCKDIR"
[ -e "$LOCK" ] || : >"$LOCK"

token() { getfattr --only-values --absolute-names -n user.zkfs.lock.token "$LOCK"; }

# with_lock NAME FLOCK-OPTION CMD...: the whole recipe for one contender:
# flock holds the lock on descriptor 9 while CMD runs.
with_lock() {
    local name=$1 opt=$2; shift 2
    (
        flock "$opt" 9 || { echo "[$name] lock busy — giving up"; exit 1; }
        echo "[$name] got the lock, fencing token $(token)"
        "$@"
        echo "[$name] releasing"
    ) 9<"$LOCK"
}

# The alternative: exclusive create of a file held open in an ephemeral
# directory (it goes when descriptor 9 closes, crash included).
noclobber_lock() {
    local dir=$M/locks-ephemeral
    mkdir -p "$dir"
    setfattr -n user.zkfs.children -v ephemeral "$dir"
    (
        set -C
        for i in $(seq 300); do
            if { exec 9>"$dir/example"; } 2>/dev/null; then break; fi
            [ "$i" -lt 300 ] || { echo "lock busy — giving up"; exit 1; }
            sleep 0.1
        done
        echo "got the lock (exclusive create)"
        "$@"
    )
}

[ $# -gt 0 ] || set -- sh -c 'echo "  critical section: pid $$"; sleep 2'
case $MODE in
run) with_lock "pid $$" "-w30" "$@"; exit $? ;;
noclobber) noclobber_lock "$@"; exit $? ;;
esac

# --- demo -----------------------------------------------------------------
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

with_lock holder -x sh -c 'touch "$0.held"; sleep 3; rm -f "$0.held"' "$LOCK" &
PIDS+=($!)
for _ in $(seq 100); do [ -e "$LOCK.held" ] && break; sleep 0.05; done
[ -e "$LOCK.held" ] || die "the holder did not get the lock"
command -v zkfs >/dev/null && zkfs locks "$LOCK"

with_lock impatient -n true || echo "[impatient] failed, as expected"

with_lock patient -w10 sh -c 'echo "  [patient] working"' &
PIDS+=($!)
wait "${PIDS[@]}"
PIDS=()
echo "lock free again"
