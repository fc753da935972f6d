#!/usr/bin/env bash
# t_noflush.sh — a read-only open skips FLUSH (FOPEN_NOFLUSH) while no fcntl
# owner holds a lock on the file through the mount, and fcntl locks still
# go when they must: a read lock taken through such a descriptor goes at
# its close (RELEASE, not waited for: bounded wait), and once a process
# holds a lock, a read-only open and close of the same file by that
# process drops it at once, as POSIX says (that open keeps FLUSH).
# Standalone mount; the lockers are helpers/probe.c processes.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

probe=$(zk_helper probe) || exit 1
M=$ZK_TMP/mnt
zk_start "$ZK_TMP/data" "$M"
echo data >"$M/f"

n=0
# locker lk|lkro SPEC...: a probe holding its locks; sets $LOG, $STOP, $PID.
locker() {
    local how=$1
    shift
    n=$((n + 1))
    LOG=$ZK_TMP/lk.$n STOP=$ZK_TMP/stop.$n
    zk_bg "$probe" "$how" "$M/f" "$LOG" "$STOP" "$@"
    PID=$ZK_BG
    wait_for grep -q '^done' "$LOG" || fail "locker $n did not finish: $(cat "$LOG")"
}
result() { awk -v s="$2" '$1 == s { $1 = ""; sub(/^ /, ""); print; exit }' "$1"; }
expect() { assert_eq "$3" "$(result "$1" "$2")" "$2 in $(basename "$1")"; }
# write_lock_free: a new process gets a write lock on the whole file.
write_lock_free() {
    local l=$ZK_TMP/try.$RANDOM s=$ZK_TMP/trystop.$RANDOM
    touch "$s"
    "$probe" lk "$M/f" "$l" "$s" w:0:0 >/dev/null 2>&1
    grep -q '^w:0:0 ok' "$l"
}

reqs() { zk_metric "$M" "zkfs_fuse_requests_total{op=\"$1\"}"; }

log "a read-only open+read+close sends no FLUSH"
f0=$(reqs flush)
for _ in 1 2 3 4 5; do cat "$M/f" >/dev/null; done
f1=$(reqs flush)
# (the metrics file's own open is not read-only: it may count one)
[ $((${f1:-0} - ${f0:-0})) -le 1 ] || fail "FLUSH sent for read-only closes: ${f0:-0} -> $f1"

log "a read lock through a read-only descriptor goes at its close"
locker lkro r:0:0
expect "$LOG" r:0:0 ok
A_STOP=$STOP A_PID=$PID
locker lk w:0:1
expect "$LOG" w:0:1 EAGAIN          # the read lock holds
touch "$STOP"
touch "$A_STOP"
wait "$A_PID"
wait_for -t 10 write_lock_free || fail "the read lock outlived its descriptor"

log "after a lock, a read-only open+close by its process drops it (POSIX)"
locker lk w:0:0 c
expect "$LOG" w:0:0 ok
expect "$LOG" c ok
B_STOP=$STOP
write_lock_free || fail "the lock survived a close of another descriptor"
touch "$B_STOP"

zk_stop "$M"
log "ok"
