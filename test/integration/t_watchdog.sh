#!/usr/bin/env bash
# t_watchdog.sh — the per-mount watchdog (fs/watchdog.c) aborts a FUSE
# connection whose daemon died with a thread left behind (what a thread
# stuck in the kernel on the daemon's own mount does to a kill -9), and
# leaves alone a daemon that exits normally.
#
# The stuck daemon is played by a small program whose main thread exits
# while another thread lives on (pthread_exit), pointed at a real zkfs
# mount's connection: the watchdog must see "main thread a zombie, other
# threads alive" and abort that connection (the mount then answers
# ENOTCONN, as after any crash). The hang itself needs a race between an
# invalidation and a local create at the moment of a kill -9, which
# t_ens_kill9 runs into now and then.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

command -v cc >/dev/null || fail "no C compiler (make needs one anyway)"
cat >"$ZK_TMP/half.c" <<'C'
#include <pthread.h>
#include <unistd.h>
static void *sleeper(void *a) { (void)a; for (int i = 0; i < 600; i++) sleep(1); return 0; }
int main(void)
{
    pthread_t t;
    pthread_create(&t, 0, sleeper, 0);
    usleep(300000);
    pthread_exit(0);   /* the main thread is a zombie; the sleeper lives */
}
C
cc -pthread -o "$ZK_TMP/half" "$ZK_TMP/half.c" || fail "cannot build helper"

zk_start "$ZK_TMP/data" "$ZK_TMP/mnt"
echo hello >"$ZK_TMP/mnt/f"
dev=$(awk -v m="$ZK_TMP/mnt" '$5 == m { split($3, d, ":"); print d[2] }' \
    /proc/self/mountinfo)
[ -n "$dev" ] || fail "no device number for the mount"
log "mount's FUSE connection: $dev"

# The daemon's own watchdog is running, re-parented, holding nothing.
pgrep -f "__watchdog $ZK_PID " >/dev/null || fail "no watchdog for pid $ZK_PID"

zk_bg "$ZK_TMP/half"
half=$ZK_BG
zk_bg "$ZKFS" __watchdog "$half" "$dev"
wd=$ZK_BG
# The connection is aborted: the mount is dead (the daemon then leaves).
mount_dead() { ! cat "$ZK_TMP/mnt/f" >/dev/null 2>&1; }
wait_for -t 10 mount_dead || fail "the watchdog did not abort the connection"
assert_fail cat "$ZK_TMP/mnt/f"
assert_match "Transport endpoint is not connected|Software caused connection abort" \
    "$ZK_ERR" "a read after the abort"
# It waits for the half-dead process to go, then goes itself.
kill -9 "$half" 2>/dev/null || true
wait_for -t 10 zk_pid_gone "$wd" || fail "the watchdog did not exit"
wait "$wd" || fail "watchdog exit status $?"
fusermount3 -u -z "$ZK_TMP/mnt" 2>/dev/null || true
wait_for -t 10 zk_pid_gone "$ZK_PID" || fail "daemon did not exit"

# A normal exit: its watchdog goes too, and a new mount is left alone.
zk_start "$ZK_TMP/data" "$ZK_TMP/mnt2"
pid2=$ZK_PID
wait_for -t 5 pgrep -f "__watchdog $pid2 " >/dev/null ||
    fail "no watchdog for pid $pid2"
zk_stop "$ZK_TMP/mnt2"
wait_for -t 5 not pgrep -f "__watchdog $pid2 " ||
    fail "the watchdog outlived its daemon"
log "ok"
