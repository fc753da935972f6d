#!/usr/bin/env bash
# What is written survives umount + mount of the same data directory,
# with the same inode numbers and znode versions.
. "$(dirname "$0")/lib.sh"

D=$ZK_TMP/data
M=$ZK_TMP/mnt
zk_start "$D" "$M"
mkdir "$M/d"
echo one >"$M/d/f"
echo two >"$M/d/f"
head -c 100000 /dev/urandom >"$M/big"
setfattr -n user.zkfs.data -v dd "$M/d"
chmod 600 "$M/d/f"
ino=$(stat -c %i "$M/d/f")
dino=$(stat -c %i "$M/d")
ver=$(xattr "$M/d/f" user.zk.version)
sum=$(sha256sum <"$M/big")
zk_stop "$M"

zk_start "$D" "$M"
assert_eq two "$(cat "$M/d/f")" "content after remount"
assert_eq "$sum" "$(sha256sum <"$M/big")" "100 kB file after remount"
assert_eq "$ino" "$(stat -c %i "$M/d/f")" "st_ino of the file"
assert_eq "$dino" "$(stat -c %i "$M/d")" "st_ino of the directory"
assert_eq "$ver" "$(xattr "$M/d/f" user.zk.version)" "version"
assert_eq dd "$(xattr "$M/d" user.zkfs.data)" "directory data"
assert_eq 600 "$(stat -c %a "$M/d/f")" "mode"
echo three >"$M/d/f"
zk_stop "$M"

zk_start "$D" "$M"
assert_eq three "$(cat "$M/d/f")" "content after the second remount"
zk_stop "$M"
