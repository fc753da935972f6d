#!/usr/bin/env bash
# `zkfs mount` as users run it: daemonized (returns once the mount serves,
# prints both directories), creating missing directories; refusing a busy
# or non-empty mountpoint; `zkfs umount` stops the daemon; a dead mount is
# cleared by `zkfs umount` through fusermount3.
. "$(dirname "$0")/lib.sh"

# Finds the daemon serving MNT by its command line (it was started by us).
daemon_pid() {
    local p
    for p in $(pgrep -x zkfs); do
        tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | grep -qx -- "$1" &&
            { echo "$p"; return 0; }
    done
    return 1
}

D=$ZK_TMP/new/data
M=$ZK_TMP/new/mnt
log "daemonized mount creates the directories and prints them"
ZK_MOUNTS+=("$M")
out=$(timeout 60 "$ZKFS" mount --data "$D" "$M" 2>&1)
printf '%s\n' "$out"
zk_is_mounted "$M" || fail "not mounted after zkfs mount returned"
assert_eq "zkfs: data directory $D
zkfs: mounted at $M" "$out" "mount's output"
assert_eq 700 "$(stat -c %a "$D")" "data directory mode"
pid=$(daemon_pid "$M") || fail "no daemon process for $M"
ZK_PIDS+=("$pid")
echo hi >"$M/x"
assert_eq hi "$(cat "$M/x")" "the daemonized mount works"

log "a mountpoint that is mounted already, or not empty, is refused"
assert_rc 1 "$ZKFS" mount --data "$ZK_TMP/d2" "$M"
assert_match "already a mount" "$ZK_ERR" "message"
mkdir -p "$ZK_TMP/full"
touch "$ZK_TMP/full/file"
assert_rc 1 "$ZKFS" mount -f --data "$ZK_TMP/d2" "$ZK_TMP/full"
assert_match "not an empty directory" "$ZK_ERR" "message"

log "a second daemon on the same data directory is refused"
mkdir -p "$ZK_TMP/m2"
ZK_MOUNTS+=("$ZK_TMP/m2")
assert_rc 1 timeout 60 "$ZKFS" mount --data "$D" "$ZK_TMP/m2"
zk_is_mounted "$ZK_TMP/m2" && fail "second daemon mounted on a busy data dir"

log "a data directory inside a zkfs mount is refused with the reason"
assert_rc 1 timeout 60 "$ZKFS" mount -f --data "$M/inside" "$ZK_TMP/m2"
assert_match "cannot map files into memory" "$ZK_ERR" "message"
zk_is_mounted "$ZK_TMP/m2" && fail "mounted with its data directory on a zkfs mount"

log "zkfs umount stops the daemon"
"$ZKFS" umount "$M"
zk_is_mounted "$M" && fail "still mounted"
wait_for -t 30 zk_pid_gone "$pid" || fail "daemon $pid still running"

log "relative paths are made absolute; the data survives"
out=$(cd "$ZK_TMP/new" && timeout 60 "$ZKFS" mount --data data mnt)
assert_match "mounted at $M\$" "$out" "absolute mountpoint printed"
pid=$(daemon_pid mnt) || fail "no daemon process"
ZK_PIDS+=("$pid")
assert_eq hi "$(cat "$M/x")" "data after the remount"

log "a dead mount: zkfs umount falls back to fusermount3"
kill -9 "$pid"
wait_for -t 30 zk_pid_gone "$pid" || fail "kill -9"
assert_fail stat "$M/x"
"$ZKFS" umount "$M" || fail "zkfs umount of a dead mount"
zk_is_mounted "$M" && fail "dead mount still mounted"

log "a mount failure is reported with exit 1 and nothing left mounted"
assert_rc 1 timeout 60 "$ZKFS" mount --data "$D" -o no_such_fuse_option "$M"
[ -n "$ZK_ERR" ] || fail "no message for the refused -o option"
zk_is_mounted "$M" && fail "mounted with a garbage -o"
true
