#!/usr/bin/env bash
# mount(8) and fstab: `mount -t fuse.zkfs zkfs DIR -o OPTS` and an fstab
# line of type fuse.zkfs go through mount.fuse3, which runs `/bin/sh -c
# 'zkfs SOURCE DIR -o OPTS'`. mount(8) gives its helpers no PATH, so the
# shell's default one finds `zkfs` in /usr/local/bin or /usr/bin: the test
# runs in a private mount namespace (unshare -m) where /usr/local/bin is a
# directory holding only a link to the built binary. Standalone without
# config=, standalone with a
# config that has no server lines, one server of an ensemble with
# config=,id=. `umount DIR` stops the daemon with status 0 after closing
# its session (the other servers' session count drops at once, long before
# the session timeout). A bad option is one line and a failed mount.
if [ -z "${ZK_FSTAB_NS:-}" ]; then
    export ZK_FSTAB_NS=1
    exec unshare -m --propagation private bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

command -v mount.fuse3 >/dev/null || fail "mount.fuse3 (Debian's fuse3) is missing"
bin=$ZK_TMP/bin
mkdir -p "$bin"
ln -s "$ZKFS" "$bin/zkfs"
mount --bind "$bin" /usr/local/bin   # this namespace only

# daemon_of DIR: the pid of the zkfs daemon serving DIR (mount.fuse3 ran it
# as `zkfs zkfs DIR -o ...`).
daemon_of() { pgrep -f -- "^zkfs zkfs $1 -o " | head -n 1; }

# mount_t DIR OPTS: mount -t fuse.zkfs; records the mount and its daemon
# for the cleanup trap.
mount_t() {
    mkdir -p "$1"
    ZK_MOUNTS+=("$1")
    mount -t fuse.zkfs zkfs "$1" -o "$2" || fail "mount -t fuse.zkfs $1 -o $2"
    zk_is_mounted "$1" || fail "$1 not mounted after mount(8) returned"
    ZK_PID=$(daemon_of "$1")
    [ -n "$ZK_PID" ] || fail "no daemon found for $1"
    ZK_PIDS+=("$ZK_PID")
    log "mounted $1 (-o $2), daemon pid $ZK_PID"
}

# umount_clean DIR PID: umount(8), then the daemon exits 0 by itself.
umount_clean() {
    umount "$1" || fail "umount $1"
    wait_for -t 15 zk_pid_gone "$2" || fail "daemon $2 still running after umount $1"
    zk_is_mounted "$1" && fail "$1 still mounted"
    log "umount $1: daemon $2 gone"
}

log "standalone without a config: mount -t fuse.zkfs, data=, _netdev and noauto ignored"
M=$ZK_TMP/m
mount_t "$M" "data=$ZK_TMP/d,_netdev,noatime"
assert_match ' fuse\.zkfs zkfs ' "$(awk -v m="$M" '$5 == m' /proc/self/mountinfo)" "mount type"
assert_match 'nosuid,nodev' "$(awk -v m="$M" '$5 == m { print $6 }' /proc/self/mountinfo)" "nosuid,nodev kept (dev,suid of mount.fuse3 dropped)"
echo hello >"$M/f"
assert_eq hello "$(cat "$M/f")" "read back"
assert_match '^role +standalone$' "$("$ZKFS" status "$M" | grep '^role')" "role"
umount_clean "$M" "$ZK_PID"

log "the helper form in the foreground: umount(8) ends it with exit status 0"
zkfs zkfs "$M" -o "foreground,data=$ZK_TMP/d" >"$ZK_TMP/fg.log" 2>&1 &
fg=$!
ZK_PIDS+=("$fg")
wait_for -t 30 zk__up "$M" "$fg" || fail "foreground helper did not mount"
zk_pid_gone "$fg" && fail "foreground helper exited: $(cat "$ZK_TMP/fg.log")"
umount "$M" || fail "umount $M"
rc=0
wait "$fg" || rc=$?
assert_eq 0 "$rc" "exit status of the daemon after umount(8)"

log "an fstab line (mount --fstab FILE DIR)"
printf '# test fstab\nzkfs %s fuse.zkfs data=%s,_netdev,noauto,nofail 0 0\n' \
    "$M" "$ZK_TMP/d" >"$ZK_TMP/fstab"
mount --fstab "$ZK_TMP/fstab" "$M" || fail "mount --fstab"
ZK_PID=$(daemon_of "$M")
ZK_PIDS+=("$ZK_PID")
assert_eq hello "$(cat "$M/f")" "the data survived the remount"
umount_clean "$M" "$ZK_PID"

log "config= with no server lines: standalone in its dataDir"
printf 'dataDir=%s\ntickTime=200\n# server.1=zk1:2888\n' "$ZK_TMP/d" >"$ZK_TMP/alone.cfg"
mount_t "$M" "config=$ZK_TMP/alone.cfg"
assert_eq hello "$(cat "$M/f")" "same data directory"
assert_match '^role +standalone$' "$("$ZKFS" status "$M" | grep '^role')" "role"
umount_clean "$M" "$ZK_PID"

log "a mistyped command naming a directory is not a mount"
assert_rc 2 zkfs stauts "$M"
assert_match "unknown command 'stauts'" "$ZK_ERR" "typo"
zk_is_mounted "$M" && fail "a typo mounted $M"

log "bad options: one line, a failed mount, nothing mounted"
badopt() {
    local rc=0 err
    err=$(mount -t fuse.zkfs zkfs "$M" -o "$1" 2>&1) || rc=$?
    printf '  (expected failure) -o %s -> rc %d: %s\n' "$1" "$rc" "$err"
    [ "$rc" -ne 0 ] || fail "mount -o $1 succeeded"
    assert_eq 1 "$(grep -c . <<<"$err")" "lines of the error for -o $1"
    assert_match "$2" "$err" "error for -o $1"
    zk_is_mounted "$M" && fail "mounted with -o $1"
    return 0
}
badopt "data=$ZK_TMP/d,bogus_option" "mount option 'bogus_option': not a zkfs or FUSE mount option"
badopt "id=x,config=$ZK_TMP/alone.cfg" "mount option 'id=x': not a server id"
badopt "config" "mount option 'config': needs a value"
badopt "config=$ZK_TMP/none.cfg" "none.cfg"
printf 'dataDir=%s\nbogusKey=1\n' "$ZK_TMP/d" >"$ZK_TMP/bad.cfg"
badopt "config=$ZK_TMP/bad.cfg" "bad.cfg:2:"

log "one server of an ensemble: config=,id=; umount closes its session"
ens_setup 3 sessionTimeout=4000
ens_launch 1
ens_launch 2
ens__wait_mounted 1
ens__wait_mounted 2
mount_t "$(ens_mnt 3)" "config=$(ens_cfg 3),id=3"
ENS_UP[3]=1
ens_wait_leader
wait_for -t 20 test "$(ens_field 1 sessions)" = 3 || fail "3 sessions expected, got $(ens_field 1 sessions)"
echo v >"$(ens_mnt 3)/g"
ens_wait_cat 1 g v
t0=$SECONDS
umount_clean "$(ens_mnt 3)" "$ZK_PID"
ENS_UP[3]=0
# The session timeout is 4 s: a closed session is gone well before.
wait_for -t 3 test "$(ens_field 1 sessions)" = 2 ||
    fail "replica 3's session still open after umount (sessions $(ens_field 1 sessions))"
log "session count 2 on replica 1, $((SECONDS - t0)) s after umount"
