#!/usr/bin/env bash
# Corners of POSIX behaviour that scripts rely on: rename rules for
# directories, truncate(1), writes at an offset, fsync as a commit point,
# names with spaces and UTF-8 (and a refused control character), a
# directory of 1,000 entries, the sequential counter across a remount.
. "$(dirname "$0")/lib.sh"

D=$ZK_TMP/data
M=$ZK_TMP/mnt
zk_start "$D" "$M"

log "rename: directories"
mkdir -p "$M/a/b" "$M/empty" "$M/full/x"
assert_fail mv "$M/a" "$M/a/b/c"
assert_match "Invalid argument|subdirectory of itself" "$ZK_ERR" "mv a dir into itself"
mv -T "$M/a" "$M/empty"
if [ ! -d "$M/empty/b" ] || [ -e "$M/a" ]; then
    fail "mv over an empty directory"
fi
assert_fail mv -T "$M/empty" "$M/full"
assert_match "not empty|exists" "$ZK_ERR" "mv over a non-empty directory"

log "truncate(1) and writes at an offset"
printf 'hello world' >"$M/t"
truncate -s 5 "$M/t"
assert_eq hello "$(cat "$M/t")" "truncate -s 5"
truncate -s 8 "$M/t"
assert_eq "68656c6c6f000000" "$(od -An -tx1 "$M/t" | tr -d ' \n')" "truncate -s 8 pads with zeros"
assert_fail truncate -s 2M "$M/t"
assert_eq 8 "$(stat -c %s "$M/t")" "size after a refused truncate"
printf 'XY' | dd of="$M/t" bs=1 seek=2 conv=notrunc status=none
assert_eq "68655859" "$(head -c 4 "$M/t" | od -An -tx1 | tr -d ' \n')" "write at offset 2"

log "fsync commits before close"
exec 8>"$M/fs"
printf 'synced' | dd conv=fsync status=none >&8
assert_eq synced "$(cat "$M/fs")" "another reader after fsync, before close"
exec 8>&-

log "names"
echo s >"$M/with space"
echo u >"$M/größe-日本"
assert_eq s "$(cat "$M/with space")" "name with a space"
assert_eq u "$(cat "$M/größe-日本")" "UTF-8 name"
assert_fail touch "$M/$(printf 'a\nb')"
assert_fail touch "$M/$(printf 'a\tb')"

log "a directory of 1,000 entries"
mkdir "$M/many"
(cd "$M/many" && seq 1 1000 | xargs touch)
assert_eq 1000 "$(ls "$M/many" | wc -l)" "ls count"
assert_eq 1000 "$(xattr "$M/many" user.zk.numChildren)" "numChildren"
rm -r "$M/many"
[ ! -e "$M/many" ] || fail "rm -r of 1,000 entries"

log "the sequential counter survives a remount"
mkdir "$M/q"
setfattr -n user.zkfs.children -v sequential "$M/q"
touch "$M/q/j-" "$M/q/j-"
last=$(ls "$M/q" | tail -n 1)
zk_stop "$M"
zk_start "$D" "$M"
touch "$M/q/j-"
newest=$(ls "$M/q" | tail -n 1)
[ "$newest" \> "$last" ] || fail "sequential counter went back: $last then $newest"
assert_eq 3 "$(ls "$M/q" | wc -l)" "children of q"
zk_stop "$M"
