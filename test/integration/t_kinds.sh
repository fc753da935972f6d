#!/usr/bin/env bash
# Kinds are fixed at creation: a file znode has no children (ENOTDIR), a
# directory has no content (EISDIR); mkdir makes a directory, creat a file.
. "$(dirname "$0")/lib.sh"

M=$ZK_TMP/mnt
zk_start "$ZK_TMP/data" "$M"

echo data >"$M/f"
mkdir "$M/d"
touch "$M/e"
assert_eq "regular file" "$(stat -c %F "$M/f")" "kind of f"
assert_eq "directory" "$(stat -c %F "$M/d")" "kind of d"
assert_eq "regular empty file" "$(stat -c %F "$M/e")" "kind of e"

log "a file has no children"
assert_fail mkdir "$M/f/x"
assert_match "Not a directory" "$ZK_ERR" "mkdir under a file"
assert_fail bash -c 'echo x >"$1"' _ "$M/f/x"
assert_match "Not a directory" "$ZK_ERR" "create under a file"
assert_fail ls "$M/f/"

log "a directory has no content"
assert_fail cat "$M/d"
assert_match "Is a directory" "$ZK_ERR" "cat of a directory"
assert_fail bash -c 'echo x >"$1"' _ "$M/d"
assert_match "Is a directory" "$ZK_ERR" "write to a directory"

log "removing with the wrong call"
assert_fail rmdir "$M/f"
assert_match "Not a directory" "$ZK_ERR" "rmdir of a file"
assert_fail rm "$M/d"
[ -d "$M/d" ] || fail "d vanished"
assert_eq data "$(cat "$M/f")" "f intact"

log "mv cannot turn a file into a directory's place"
mkdir "$M/d2"
assert_fail mv -T "$M/f" "$M/d2"
assert_eq data "$(cat "$M/f")" "f after the refused mv"

zk_stop "$M"
