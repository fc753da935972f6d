#!/usr/bin/env bash
# lock.sh — a mutual-exclusion lock made of one file, with plain shell.
#
# What it shows: `set -C` (noclobber) makes `>` an exclusive create
# (open O_CREAT|O_EXCL), which zkfs makes linearizable: exactly one creator
# wins, even across hosts once zkfs runs as an ensemble. The winner writes
# who it is into the lockfile and removes it when it is done, on every way
# out (trap on EXIT; INT/TERM exit through it). A loser either gives up at
# once or waits: it watches the lock directory with inotifywait for the
# lockfile's IN_DELETE and tries again, with a bounded total wait.
#
# A holder killed with SIGKILL runs no trap and leaves the lockfile behind.
# If that matters, make the lock directory ephemeral
# (setfattr -n user.zkfs.children -v ephemeral DIR) and hold the lockfile
# open while holding the lock: `set -C; exec 9>DIR/name` — zkfs then deletes
# it when the holder's last descriptor closes, crash included (see
# service-register.sh).
#
# Run:
#   examples/lock.sh [MOUNTPOINT] [-- CMD [ARG...]]
#       takes MOUNT/locks/example.lock (waiting up to 30 s), runs CMD (by
#       default a 2-second "critical section") and releases the lock
#   examples/lock.sh --demo [MOUNTPOINT]
#       a holder takes the lock for 3 s; a second contender fails at once
#       (no wait), a third waits and gets the lock when the holder releases
# MOUNTPOINT defaults to $ZKFS_MNT, then /mnt/zkfs. Needs inotifywait.
set -euo pipefail

DEMO=0
if [ "${1:-}" = "--demo" ]; then DEMO=1; shift; fi
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
command -v inotifywait >/dev/null ||
    die "inotifywait not found (apt-get install inotify-tools)"
mkdir -p "$LOCKDIR"

# try_lock: one exclusive create; 0 when we hold the lock. The subshell
# keeps noclobber from leaking into the rest of the script.
try_lock() {
    (set -C; echo "$(hostname) $BASHPID $(date -u +%H:%M:%S)" >"$LOCK") 2>/dev/null
}

# lock WAIT_S: takes the lock, waiting at most WAIT_S seconds (0: no wait).
lock() {
    local deadline=$(( $(date +%s) + $1 ))
    until try_lock; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        # Sleep until something is deleted in the lock directory, or 1 s
        # (the release may come between our create and the watch).
        inotifywait -qq -t 1 -e delete "$LOCKDIR" 2>/dev/null || true
    done
}

unlock() { rm -f "$LOCK"; }

# with_lock NAME WAIT_S CMD...: the whole recipe for one contender.
with_lock() {
    local name=$1 wait_s=$2; shift 2
    if ! lock "$wait_s"; then
        echo "[$name] lock busy, held by: $(cat "$LOCK" 2>/dev/null || echo '?')" \
             "— giving up after ${wait_s}s"
        return 1
    fi
    trap unlock EXIT
    trap 'exit 130' INT TERM
    echo "[$name] got the lock"
    "$@"
    echo "[$name] releasing"
}

if [ "$DEMO" = 0 ]; then
    [ $# -gt 0 ] || set -- sh -c 'echo "  critical section: pid $$"; sleep 2'
    with_lock "pid $$" 30 "$@"
    exit $?
fi

# --- demo -----------------------------------------------------------------
rm -f "$LOCK"        # a leftover from an earlier killed run
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

( with_lock holder 0 sleep 3 ) &
PIDS+=($!)
for _ in $(seq 100); do [ -e "$LOCK" ] && break; sleep 0.05; done
[ -e "$LOCK" ] || die "the holder did not get the lock"
echo "lockfile: $(cat "$LOCK")"

( with_lock impatient 0 true ) || echo "[impatient] failed, as expected"

( with_lock patient 10 sh -c 'echo "  [patient] working"' ) &
PIDS+=($!)
wait "${PIDS[@]}"
PIDS=()
[ ! -e "$LOCK" ] && echo "lock free again: $LOCK is gone"
