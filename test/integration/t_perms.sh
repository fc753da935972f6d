#!/usr/bin/env bash
# Mode, owner and group are stored and enforced (default_permissions):
# another user cannot write a 0644 root file or create in a 0755 root
# directory; chmod and chown change that and survive a remount.
. "$(dirname "$0")/lib.sh"

M=$ZK_TMP/mnt
chmod 755 "$ZK_TMP"
zk_start "$ZK_TMP/data" "$M"
chmod 755 "$M"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

echo root >"$M/f"
mkdir "$M/d"
assert_eq "644 0 0" "$(stat -c '%a %u %g' "$M/f")" "mode and owner of a new file"
assert_eq root "$(as_nobody cat "$M/f")" "another user reads a 0644 file"
assert_fail as_nobody sh -c 'echo x >"$1"' _ "$M/f"
assert_match "Permission denied" "$ZK_ERR" "write by another user"
assert_fail as_nobody touch "$M/d/new"
assert_match "Permission denied" "$ZK_ERR" "create by another user"
assert_fail as_nobody "$ZKFS" set "$M/f" x
assert_fail as_nobody "$ZKFS" rm "$M/f"
assert_eq root "$(cat "$M/f")" "content after the refused writes"

log "chmod, chown"
chmod 600 "$M/f"
assert_fail as_nobody cat "$M/f"
chown 65534:65534 "$M/f"
chmod 777 "$M/d"
as_nobody sh -c 'echo nobody >"$1"' _ "$M/f"
as_nobody touch "$M/d/new"
assert_eq "65534 65534" "$(stat -c '%u %g' "$M/d/new")" "owner of a file another user created"
assert_eq nobody "$(cat "$M/f")" "content written by its new owner"

zk_stop "$M"
zk_start "$ZK_TMP/data" "$M"
assert_eq "600 65534 65534" "$(stat -c '%a %u %g' "$M/f")" "mode and owner after remount"
assert_eq 777 "$(stat -c '%a' "$M/d")" "directory mode after remount"
zk_stop "$M"
