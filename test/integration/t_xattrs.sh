#!/usr/bin/env bash
# ZooKeeper's stat as user.zk.* xattrs, user.zkfs.data on a directory,
# user.zkfs.children, and the read-only stat attributes.
. "$(dirname "$0")/lib.sh"

M=$ZK_TMP/mnt
zk_start "$ZK_TMP/data" "$M"

echo v1 >"$M/f"
log "getfattr -d -m - lists the stat"
all=$(getfattr -d -m - --absolute-names "$M/f")
printf '%s\n' "$all"
for k in czxid mzxid pzxid ctime mtime version cversion aversion \
    ephemeralOwner dataLength numChildren; do
    assert_match "^user\.zk\.$k=" "$all" "getfattr -d lists user.zk.$k"
done

log "versions and zxids move with writes"
v1=$(xattr "$M/f" user.zk.version)
cz=$(xattr "$M/f" user.zk.czxid)
mz1=$(xattr "$M/f" user.zk.mzxid)
echo v22 >"$M/f"
v2=$(xattr "$M/f" user.zk.version)
assert_eq $((v1 + 1)) "$v2" "version after one overwrite"
assert_eq "$cz" "$(xattr "$M/f" user.zk.czxid)" "czxid unchanged"
[ "$(xattr "$M/f" user.zk.mzxid)" != "$mz1" ] || fail "mzxid did not change"
assert_eq 4 "$(xattr "$M/f" user.zk.dataLength)" "dataLength"
assert_eq 0 "$(xattr "$M/f" user.zk.ephemeralOwner)" "ephemeralOwner"

log "numChildren and cversion on a directory"
mkdir "$M/d"
cv0=$(xattr "$M/d" user.zk.cversion)
touch "$M/d/a" "$M/d/b"
assert_eq 2 "$(xattr "$M/d" user.zk.numChildren)" "numChildren"
assert_eq $((cv0 + 2)) "$(xattr "$M/d" user.zk.cversion)" "cversion"

log "a directory's own data: user.zkfs.data"
setfattr -n user.zkfs.data -v hello "$M/d"
assert_eq hello "$(xattr "$M/d" user.zkfs.data)" "user.zkfs.data"
assert_eq 5 "$(xattr "$M/d" user.zk.dataLength)" "dataLength of the dir"

log "user.zkfs.children"
setfattr -n user.zkfs.children -v sequential "$M/d"
assert_eq sequential "$(xattr "$M/d" user.zkfs.children)" "children kind"
assert_fail setfattr -n user.zkfs.children -v nonsense "$M/d"

log "the stat attributes cannot be set"
assert_fail setfattr -n user.zk.version -v 5 "$M/f"
assert_eq "$v2" "$(xattr "$M/f" user.zk.version)" "version after the refused set"
assert_fail setfattr -x user.zk.version "$M/f"

zk_stop "$M"
