#!/usr/bin/env bash
# The zkfs command's client side: create/set -v/rm -v/stat/sync/txn,
# success and failure, through a real mount (usage errors: t_usage).
. "$(dirname "$0")/lib.sh"

M=$ZK_TMP/mnt
zk_start "$ZK_TMP/data" "$M"

log "create"
assert_rc 0 "$ZKFS" create "$M/a" hello
assert_eq "$M/a" "$ZK_OUT" "create prints the path"
assert_eq hello "$(cat "$M/a")" "content"
assert_rc 1 "$ZKFS" create "$M/a" again
assert_match "^zkfs create: $M/a: .*exists" "$ZK_ERR" "create of an existing node"
assert_eq hello "$(cat "$M/a")" "content after the refused create"
assert_rc 0 "$ZKFS" create -d "$M/dir" dirdata
[ -d "$M/dir" ] || fail "create -d did not make a directory"
assert_eq dirdata "$(xattr "$M/dir" user.zkfs.data)" "data of create -d"
echo "from stdin" | "$ZKFS" create "$M/dir/in" - >/dev/null
assert_eq "from stdin" "$(cat "$M/dir/in")" "DATA - reads stdin"
(cd "$M/dir" && "$ZKFS" create rel r >"$ZK_TMP/rel")
assert_eq "$M/dir/rel" "$(cat "$ZK_TMP/rel")" "relative PATH"
assert_rc 1 "$ZKFS" create "$M/nodir/x"
assert_rc 1 "$ZKFS" create "$ZK_TMP/outside"
assert_match "not inside a zkfs mount" "$ZK_ERR" "create outside a mount"

log "set -v"
assert_eq 0 "$(xattr "$M/a" user.zk.version)" "version after create"
assert_rc 0 "$ZKFS" set "$M/a" world
assert_eq world "$(cat "$M/a")" "after set"
assert_eq 1 "$(xattr "$M/a" user.zk.version)" "version after set"
assert_rc 1 "$ZKFS" set -v 0 "$M/a" stale
assert_match "^zkfs set: $M/a: .*version" "$ZK_ERR" "bad version message"
assert_eq world "$(cat "$M/a")" "content after the refused set"
assert_rc 0 "$ZKFS" set -v 1 "$M/a" v2
assert_eq v2 "$(cat "$M/a")" "after set -v 1"
assert_rc 1 "$ZKFS" set "$M/missing" x
assert_match "No such file" "$ZK_ERR" "set of a missing node"

log "DATA over 1 MiB is refused (EFBIG)"
head -c 1048577 /dev/zero >"$ZK_TMP/big"
assert_rc 1 "$ZKFS" create "$M/big" - <"$ZK_TMP/big"
assert_match "File too large" "$ZK_ERR" "create of 1 MiB + 1"
[ ! -e "$M/big" ] || fail "create of 1 MiB + 1 made a node"
assert_rc 1 "$ZKFS" set "$M/a" - <"$ZK_TMP/big"
assert_match "File too large" "$ZK_ERR" "set of 1 MiB + 1"
assert_eq v2 "$(cat "$M/a")" "content after the refused set"
head -c 1048576 /dev/urandom >"$ZK_TMP/1m"
assert_rc 0 "$ZKFS" create "$M/onemeg" - <"$ZK_TMP/1m"
cmp "$ZK_TMP/1m" "$M/onemeg" || fail "1 MiB through zkfs create"

log "stat"
assert_rc 0 "$ZKFS" stat "$M/a"
printf '%s\n' "$ZK_OUT"
for k in cZxid ctime mZxid mtime pZxid cversion dataVersion aclVersion \
    ephemeralOwner dataLength numChildren; do
    assert_match "^$k = " "$(grep "^$k = " <<<"$ZK_OUT")" "stat line $k"
done
assert_match "^cZxid = 0x[0-9a-f]+$" "$(grep '^cZxid' <<<"$ZK_OUT")" "cZxid in hex"
assert_eq "dataVersion = 2" "$(grep '^dataVersion' <<<"$ZK_OUT")" "dataVersion"
assert_eq "dataLength = 2" "$(grep '^dataLength' <<<"$ZK_OUT")" "dataLength"
assert_rc 0 "$ZKFS" stat "$M/dir"
assert_eq "numChildren = 2" "$(grep '^numChildren' <<<"$ZK_OUT")" "numChildren"
assert_rc 1 "$ZKFS" stat "$M/missing"

log "rm -v"
assert_rc 1 "$ZKFS" rm -v 0 "$M/a"
[ -e "$M/a" ] || fail "rm -v with a wrong version removed the node"
assert_rc 0 "$ZKFS" rm -v 2 "$M/a"
[ ! -e "$M/a" ] || fail "a still exists after rm"
assert_rc 1 "$ZKFS" rm "$M/dir"
assert_match "not empty" "$ZK_ERR" "rm of a non-empty directory"

log "sync"
assert_rc 0 "$ZKFS" sync "$M"
assert_rc 0 "$ZKFS" sync "$M/dir/in"
assert_rc 1 "$ZKFS" sync "$ZK_TMP"

log "txn: all or nothing"
assert_rc 0 "$ZKFS" txn "$M" <<TXN
# a comment, then a blank line

create /t1 one
create -d $M/td
create /td/x data with  spaces
check -v 0 /t1
set -v 0 /t1 uno
TXN
printf '%s\n' "$ZK_OUT"
assert_eq 5 "$(wc -l <<<"$ZK_OUT")" "one line per op"
assert_eq uno "$(cat "$M/t1")" "t1 after the txn"
assert_eq "data with  spaces" "$(cat "$M/td/x")" "DATA keeps its spaces"

assert_rc 1 "$ZKFS" txn "$M" <<TXN
create /t2 two
set -v 7 /t1 nope
TXN
printf '%s\n%s\n' "$ZK_OUT" "$ZK_ERR"
assert_match "line 2" "$ZK_ERR" "which op refused the txn"
[ ! -e "$M/t2" ] || fail "a refused txn created t2"
assert_eq uno "$(cat "$M/t1")" "t1 after the refused txn"

(cd "$M" && printf 'rm t1\nrm -v 0 /td/x\n' | "$ZKFS" txn >/dev/null) ||
    fail "txn with relative paths from inside the mount"
[ ! -e "$M/t1" ] || fail "txn rm t1"

assert_rc 2 "$ZKFS" txn "$M" <<TXN
create /ok
frobnicate /x
TXN
assert_match "line 2" "$ZK_ERR" "malformed line number"
assert_rc 2 "$ZKFS" txn "$M" <<<"check /t1"
assert_rc 2 "$ZKFS" txn "$M" </dev/null
[ ! -e "$M/ok" ] || fail "a malformed txn ran"

log "status"
assert_rc 0 "$ZKFS" status "$M"
printf '%s\n' "$ZK_OUT"
assert_match "^role +standalone" "$(grep '^role' <<<"$ZK_OUT")" "status role"
assert_rc 0 "$ZKFS" status --json "$M"
assert_match '^\{.*\}$' "$ZK_OUT" "status --json is one object"
assert_match '"role": *"standalone"' "$ZK_OUT" "role in the JSON"
assert_match '"znodes": *[0-9]+' "$ZK_OUT" "znodes in the JSON"
assert_match "\"mountpoint\": *\"$M\"" "$ZK_OUT" "mountpoint in the JSON"

zk_stop "$M"
assert_rc 1 "$ZKFS" umount "$M"
assert_match "not mounted" "$ZK_ERR" "umount of a path that is not mounted"
