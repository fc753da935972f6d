#!/usr/bin/env bash
# The zkfs command without a mount: --help and help exit 0 with the usage on
# stdout; wrong usage exits 2 with "zkfs CMD: reason" and a hint on stderr;
# paths outside any zkfs mount are a runtime error (exit 1).
. "$(dirname "$0")/lib.sh"

log "--help, help, --version"
for c in mount umount status create set rm stat sync txn; do
    assert_rc 0 "$ZKFS" "$c" --help
    assert_match "^Usage: zkfs $c" "$ZK_OUT" "$c --help"
    assert_rc 0 "$ZKFS" help "$c"
done
assert_rc 0 "$ZKFS" help
assert_rc 0 "$ZKFS" --version
assert_match '^zkfs [0-9]' "$ZK_OUT" "--version"

log "usage errors exit 2 with 'zkfs CMD: reason' and a hint"
usage() {
    assert_rc 2 "$ZKFS" "$@"
    assert_match "^zkfs $1: " "$(head -n 1 <<<"$ZK_ERR")" "first stderr line of: $*"
    assert_match "^Try 'zkfs $1 --help'" "$(sed -n 2p <<<"$ZK_ERR")" "hint of: $*"
}
usage create
usage create -q /x
usage set /x
usage set -v abc /x d
usage rm
usage rm -v -5 /x
usage stat
usage stat a b
usage sync
usage status
usage umount
# A configuration error is exit 2 too, with the file's name and why (no
# hint: --help would not help); t_ens_config tests many more.
assert_rc 2 "$ZKFS" mount -c "$ZK_TMP/no-such.cfg" "$ZK_TMP/m"
assert_match "^zkfs mount: .*no-such.cfg.*No such file" "$ZK_ERR" \
    "mount -c of a missing file"
[ ! -e "$ZK_TMP/m" ] || fail "a bad config created the mountpoint"
usage mount --id 1
usage create -e /x --
usage create /x -- true
assert_rc 2 "$ZKFS" nosuchcommand
assert_rc 2 "$ZKFS"

log "runtime errors outside a mount exit 1"
assert_rc 1 "$ZKFS" create "$ZK_TMP/x" data
assert_eq "zkfs create: $ZK_TMP/x: not inside a zkfs mount" "$ZK_ERR" "message"
assert_rc 1 "$ZKFS" stat "$ZK_TMP"
assert_rc 1 "$ZKFS" umount "$ZK_TMP"
assert_match "not mounted" "$ZK_ERR" "umount of a directory that is not mounted"
assert_rc 1 "$ZKFS" umount /proc
assert_match "not a zkfs mount" "$ZK_ERR" "umount of a mount of another kind"
grep -q ' /proc ' /proc/self/mountinfo || fail "zkfs umount /proc unmounted /proc"
assert_rc 1 "$ZKFS" txn "$ZK_TMP" <<<"create /a"
log "a malformed txn is refused before any mount is looked for"
assert_rc 2 "$ZKFS" txn <<<"bogus /a"
assert_match "^zkfs txn: line 1: " "$ZK_ERR" "line number"
assert_rc 2 "$ZKFS" txn <<<"set -v x /a b"
assert_rc 2 "$ZKFS" txn <<<"rm /a trailing"
