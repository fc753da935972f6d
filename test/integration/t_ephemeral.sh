#!/usr/bin/env bash
# Session-tied files: in a directory whose user.zkfs.children is
# "ephemeral", `exec 9>dir/x` creates and holds a file; it shows its holder
# (user.zkfs.owner) and vanishes when the holder is killed with SIGKILL,
# with IN_DELETE for a watcher.
. "$(dirname "$0")/lib.sh"

M=$ZK_TMP/mnt
zk_start "$ZK_TMP/data" "$M"
mkdir "$M/eph"
setfattr -n user.zkfs.children -v ephemeral "$M/eph"

ev=$ZK_TMP/events
zk_bg inotifywait -m -e create,delete --format '%e %f' -o "$ev" "$M/eph" \
    2>"$ZK_TMP/inotify.err"
wait_for grep -q "Watches established" "$ZK_TMP/inotify.err" ||
    fail "inotifywait did not start"

log "a holder creates and holds eph/x"
zk_bg bash -c 'exec 9>"$1/x"; echo held >"$2"; exec sleep 600' _ \
    "$M/eph" "$ZK_TMP/held"
holder=$ZK_BG
wait_for test -e "$ZK_TMP/held" || fail "the holder did not start"
[ -e "$M/eph/x" ] || fail "eph/x does not exist while held"
owner=$(xattr "$M/eph/x" user.zkfs.owner)
log "owner: $owner"
assert_match "(^|[^0-9])$holder([^0-9]|$)" "$owner" "user.zkfs.owner names the holder's pid"
[ "$(xattr "$M/eph/x" user.zk.ephemeralOwner)" != 0 ] ||
    fail "ephemeralOwner is 0 for an ephemeral file"

log "a second process cannot take the name"
assert_fail bash -c 'set -C; echo y >"$1"' _ "$M/eph/x"

log "kill -9 the holder: the file goes"
kill -9 "$holder"
wait_for -t 30 not test -e "$M/eph/x" || fail "eph/x survived its holder"
assert_eq "" "$(ls "$M/eph")" "ls eph after the holder died"
wait_for grep -qx "DELETE x" "$ev" || { cat "$ev"; fail "no IN_DELETE for x"; }

log "data written by the holder is committed at each fsync"
# dd writes to its stdout, which is the holder's descriptor (fd 9), and
# fsyncs it (conv=fsync); the holder keeps the file open afterwards.
zk_bg bash -c 'exec 9>"$1"; printf first | dd conv=fsync status=none >&9 &&
    touch "$2"; exec sleep 600' _ "$M/eph/w" "$ZK_TMP/synced"
wait_for test -e "$ZK_TMP/synced" || fail "the holder did not fsync"
assert_eq first "$(cat "$M/eph/w")" "data after the holder's fsync"
kill -9 "$ZK_BG"
wait_for -t 30 not test -e "$M/eph/w" || fail "eph/w survived its holder"

log "a plain close releases too"
bash -c 'exec 9>"$1/y"; test -e "$1/y"' _ "$M/eph"
wait_for -t 30 not test -e "$M/eph/y" || fail "eph/y survived its last close"

log "zkfs umount with a holder still there: the ephemeral is gone after remount"
zk_bg bash -c 'exec 9>"$1/z"; touch "$2"; exec sleep 600' _ "$M/eph" "$ZK_TMP/zheld"
zk_holder=$ZK_BG
wait_for test -e "$ZK_TMP/zheld" || fail "the holder of z did not start"
[ -e "$M/eph/z" ] || fail "eph/z missing while held"
zk_stop "$M"
kill -9 "$zk_holder"
zk_start "$ZK_TMP/data" "$M"
[ -d "$M/eph" ] || fail "the ephemeral directory itself is gone"
assert_eq ephemeral "$(xattr "$M/eph" user.zkfs.children)" "children kind after remount"
assert_eq "" "$(ls "$M/eph")" "eph after umount + mount"
zk_stop "$M"
