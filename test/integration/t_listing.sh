#!/usr/bin/env bash
# Directory listings come from the kernel's readdir cache (kept across
# opens) once a directory was listed: every kind of change must drop it.
# Each step lists the directory first (so the cache is filled), changes
# it, and compares the next listing with the store's own view (zkfs stat
# numChildren and the expected names): local syscalls, the control file
# (zkfs create/rm/txn), sequential and ephemeral children, a released
# ephemeral, and on a 3-replica ensemble changes made on another mount,
# including a listing taken right after the inotify event of the change
# (the pattern of queue consumers), and moves between two directories
# whose listings another mount has cached.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

D=$ZK_TMP/data
M=$ZK_TMP/mnt
zk_start "$D" "$M"

# names DIR: the listing, one line, sorted.
names() { ls -A "$1" | sort | tr '\n' ' '; }
empty() { [ -z "$(names "$1")" ]; }
expect() {     # expect DIR "NAMES" WHAT
    local got
    got=$(names "$1")
    [ "$got" = "$2" ] || fail "$3: listing [$got], expected [$2]"
}

mkdir "$M/d"
expect "$M/d" "" "empty"
log "local syscalls"
touch "$M/d/a"; expect "$M/d" "a " "touch"
mkdir "$M/d/sub"; expect "$M/d" "a sub " "mkdir"
mv "$M/d/a" "$M/d/b"; expect "$M/d" "b sub " "mv"
rmdir "$M/d/sub"; expect "$M/d" "b " "rmdir"
rm "$M/d/b"; expect "$M/d" "" "rm"

log "the control file"
"$ZKFS" create "$M/d/c1" x >/dev/null; expect "$M/d" "c1 " "zkfs create"
printf 'create /d/t1\ncreate /d/t2\n' | "$ZKFS" txn "$M" >/dev/null
expect "$M/d" "c1 t1 t2 " "zkfs txn"
"$ZKFS" rm "$M/d/t1"; expect "$M/d" "c1 t2 " "zkfs rm"
printf 'rm /d/t2\nrm /d/c1\n' | "$ZKFS" txn "$M" >/dev/null
expect "$M/d" "" "zkfs txn delete"

log "sequential and ephemeral children"
setfattr -n user.zkfs.children -v ephemeral,sequential "$M/d"
exec 8>"$M/d/job-"
assert_match '^job-[0-9]{10} $' "$(names "$M/d")" "a sequential ephemeral child"
exec 8>&-
wait_for -t 10 empty "$M/d" ||
    fail "released ephemeral still listed: $(names "$M/d")"
zk_bg "$ZKFS" create -e "$M/d/held" >/dev/null
hpid=$ZK_BG
wait_for -t 10 not empty "$M/d" || fail "zkfs create -e not listed"
kill -TERM "$hpid"
wait "$hpid" || true
wait_for -t 10 empty "$M/d" ||
    fail "ephemeral of a stopped zkfs create -e still listed: $(names "$M/d")"

log "200 changes, each listed"
mkdir "$M/e"
for i in $(seq 1 100); do
    "$ZKFS" create "$M/e/n$i" >/dev/null
    [ "$(ls "$M/e" | wc -l)" = "$i" ] || fail "after create $i: $(ls "$M/e" | wc -l) listed"
done
for i in $(seq 1 100); do
    rm "$M/e/n$i"
    [ "$(ls "$M/e" | wc -l)" = $((100 - i)) ] || fail "after rm $i"
done
zk_stop "$M"

log "ensemble: changes made on another mount"
ens_setup 3
ens_start_all
m1=$(ens_mnt 1) m2=$(ens_mnt 2) m3=$(ens_mnt 3)
ens_mkdir_seen q
expect "$m2/q" "" "empty on mount 2"
ev=$ZK_TMP/events
zk_bg inotifywait -m -t 120 -e create,delete,moved_to --format '%e %f' \
    -o "$ev" "$m2/q" 2>"$ZK_TMP/inotify.err"
wait_for grep -q "Watches established" "$ZK_TMP/inotify.err" ||
    fail "inotifywait did not start"
for i in $(seq 1 50); do
    src=$m1
    [ $((i % 2)) = 0 ] && src=$m3
    echo "$i" >"$src/q/item$i"
    wait_for -t 20 grep -qx "CREATE item$i" "$ev" || fail "no event for item$i"
    # Listed as soon as the event arrived.
    ls "$m2/q" | grep -qx "item$i" || fail "item$i: event seen, not listed on mount 2"
    if [ $((i % 5)) = 0 ]; then
        rm "$src/q/item$i"
        wait_for -t 20 grep -qx "DELETE item$i" "$ev" || fail "no delete event for item$i"
        ls "$m2/q" | grep -qx "item$i" && fail "item$i: deleted, still listed on mount 2"
    fi
done
mv "$m3/q/item1" "$m3/q/renamed"
wait_for -t 20 grep -qx "MOVED_TO renamed" "$ev" || fail "no event for the rename"
ls "$m2/q" | grep -qx renamed || fail "rename not listed on mount 2"
ls "$m2/q" | grep -qx item1 && fail "old name still listed on mount 2"
# A move to another directory on another mount, without a watcher there:
# both cached listings on mount 2 change (bounded wait: no event to wait
# for in q2).
ens_mkdir_seen q2
ls "$m2/q" >/dev/null; ls "$m2/q2" >/dev/null     # both cached
mv "$m3/q/item2" "$m3/q2/moved"
wait_for -t 20 eval "ls '$m2/q2' | grep -qx moved" ||
    fail "moved name not listed in q2 on mount 2: $(ls "$m2/q2")"
ls "$m2/q" | grep -qx item2 && fail "moved name still listed in q on mount 2"
ens_wait_exists 1 q2/moved
mv "$m1/q2/moved" "$m1/q/item2"
wait_for -t 20 eval "ls '$m2/q' | grep -qx item2" ||
    fail "name moved back not listed in q on mount 2"
ls "$m2/q2" | grep -qx moved && fail "name moved back still listed in q2 on mount 2"
ens_wait_synced
for i in 1 2 3; do
    n=$(ls "$(ens_mnt "$i")/q" | wc -l)
    assert_eq 40 "$n" "entries listed on mount $i"
done
ens_trees_identical
