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

log "10 concurrent zkfs create -s get 10 distinct names"
mkdir "$M/par"
pids=()
for i in $(seq 1 10); do
    "$ZKFS" create -s "$M/par/p-" "$i" >"$ZK_TMP/par.$i" &
    pids+=($!)
done
ZK_PIDS+=("${pids[@]}")
for p in "${pids[@]}"; do wait "$p" || fail "a concurrent create -s failed"; done
assert_eq 10 "$(cat "$ZK_TMP"/par.* | sort -u | wc -l)" "distinct printed paths"
assert_eq 10 "$(ls "$M/par" | wc -l)" "children of par"
for i in $(seq 1 10); do
    assert_eq "$i" "$(cat "$(cat "$ZK_TMP/par.$i")")" "content behind path $i"
done

log "create -s in a plain directory"
mkdir "$M/plain"
out=$("$ZKFS" create -s "$M/plain/x-" a)
assert_match "^$M/plain/x-[0-9]{10}$" "$out" "sequential create in a plain dir"

log "ephemeral,sequential: election-style holders"
mkdir "$M/el"
setfattr -n user.zkfs.children -v ephemeral,sequential "$M/el"
assert_eq ephemeral,sequential "$(xattr "$M/el" user.zkfs.children)" "children kind"
holder() {   # holder N: creates el/n-, writes its name to $ZK_TMP/name.N, holds
    exec 9>"$M/el/n-"
    getfattr --only-values -n user.zkfs.name "/proc/self/fd/9" >"$ZK_TMP/name.$1.tmp"
    mv "$ZK_TMP/name.$1.tmp" "$ZK_TMP/name.$1"
    exec sleep 600
}
zk_bg holder 1
h1=$ZK_BG
wait_for test -e "$ZK_TMP/name.1" || fail "holder 1 did not start"
zk_bg holder 2
h2=$ZK_BG
wait_for test -e "$ZK_TMP/name.2" || fail "holder 2 did not start"
n1=$(cat "$ZK_TMP/name.1")
n2=$(cat "$ZK_TMP/name.2")
log "holders: $n1 $n2"
assert_match '^/el/n-[0-9]{10}$' "$n1" "user.zkfs.name of the open file"
[ "$n1" \< "$n2" ] || fail "the second name does not sort after the first"
assert_eq "${n1#/el/} ${n2#/el/}" "$(ls "$M/el" | paste -sd' ')" "ls el"
kill -9 "$h1"
wait_for -t 30 not test -e "$M$n1" || fail "$n1 survived its holder"
assert_eq "${n2#/el/}" "$(ls "$M/el")" "the second holder is now the lowest"
kill -9 "$h2"
wait_for -t 30 not test -e "$M$n2" || fail "$n2 survived its holder"

zk_stop "$M"
