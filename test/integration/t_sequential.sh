#!/usr/bin/env bash
# Sequential directories: every child gets ZooKeeper's %010d suffix from
# the parent's counter, increasing; `zkfs create -s` prints the full path.
. "$(dirname "$0")/lib.sh"

M=$ZK_TMP/mnt
zk_start "$ZK_TMP/data" "$M"
mkdir "$M/q"
setfattr -n user.zkfs.children -v sequential "$M/q"

log "three files and a directory created in q"
for i in 1 2 3; do echo "job $i" >"$M/q/job-"; done
mkdir "$M/q/dir-"
names=$(ls "$M/q")
printf '%s\n' "$names"
assert_eq 4 "$(wc -l <<<"$names")" "children of q"
jobs=$(grep '^job-' <<<"$names")
assert_eq 3 "$(grep -cE '^job-[0-9]{10}$' <<<"$jobs")" "job names with %010d"
assert_match '^dir-[0-9]{10}$' "$(grep '^dir-' <<<"$names")" "dir name"
suffixes=${jobs//job-/}
assert_eq "$suffixes" "$(sort -n <<<"$suffixes" | uniq)" "increasing, distinct suffixes"
last=$(tail -n 1 <<<"$jobs")
assert_eq "job 3" "$(cat "$M/q/$last")" "content of the last job"

log "zkfs create -s prints the created path"
out=$("$ZKFS" create -s "$M/q/n-" payload)
assert_match "^$M/q/n-[0-9]{10}$" "$out" "printed path"
assert_eq payload "$(cat "$out")" "content of the created node"
n1=${out##*-}
out2=$("$ZKFS" create -s "$M/q/n-")
n2=${out2##*-}
[ $((10#$n2)) -gt $((10#$n1)) ] || fail "suffix did not increase: $n1 -> $n2"

log "create -s in a plain directory"
mkdir "$M/plain"
out=$("$ZKFS" create -s "$M/plain/x-" a)
assert_match "^$M/plain/x-[0-9]{10}$" "$out" "sequential create in a plain dir"

zk_stop "$M"
