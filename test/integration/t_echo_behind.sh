#!/usr/bin/env bash
# The echo thread's replays act on the node they replay, not on whatever
# the kernel has under that name by the time they run (BUGS.md 7).
#
# The echo thread replays changes made elsewhere (here: the control file,
# `zkfs rm`) some time after the store applied them;
# ZKFS_TEST_ECHO_DELAY_MS makes that time 1.5 s. Meanwhile a local
# syscall acts on the store's state and changes the kernel's entries: the
# name the replay will remove may by then name another node. Before the
# fix the replayed rmdir was answered "done" whatever the kernel's entry
# was, so the kernel took the other node for removed: a live directory
# marked dead, listing nothing and giving ENOENT for its children until
# the kernel dropped its inode.
#
# 1. `zkfs rm b` (an empty directory), then during the replay's delay a
#    local rename of a to b (the store has no b any more: a plain move;
#    the kernel thinks it replaced its b). After the replay, b must still
#    be a's directory with its file. (Files have nothing like a dead
#    directory: a file wrongly taken for removed is looked up again at
#    its next use, so only directories show the bug.) Either half of the
#    fix (the entries dropped before the replay, the handler's check)
#    makes this pass; the test guards against losing both.
# 2. After a cache drop the mount still agrees with the store.
. "$(dirname "$0")/lib.sh"

D=$ZK_TMP/data
M=$ZK_TMP/mnt
export ZKFS_TEST_ECHO_DELAY_MS=1500
zk_start "$D" "$M"
unset ZKFS_TEST_ECHO_DELAY_MS

# queued: how many items the echo thread has not done (the metrics file
# is read without waiting for it; a `zkfs` command's answer would wait).
queued() { zk_metric "$M" zkfs_echo_queue_items; }
# rm_behind PATH: `zkfs rm PATH` in the background ($rmpid), returning
# once the store applied it and its replay waits (the only work queued).
queue_is() { [ "$(queued)" "$1" "$2" ]; }
rm_behind() {
    wait_for -t 10 queue_is = 0 || fail "the echo thread did not catch up: $(queued) items"
    "$ZKFS" rm "$1" &
    rmpid=$!
    ZK_PIDS+=("$rmpid")
    wait_for -t 10 queue_is -ge 1 ||
        fail "zkfs rm $1 was not applied (no replay waits; $(queued) items)"
}

# 1. A directory.
mkdir "$M/a" "$M/b"
echo kept >"$M/a/file"
stat "$M/a" "$M/b" >/dev/null          # the kernel holds both names
# An open file in a keeps a's entry referenced: a directory the kernel
# wrongly takes for removed then stays marked dead (not evicted).
exec 3<"$M/a/file"
rm_behind "$M/b"
# rename(2) itself: mv would ask for RENAME_NOREPLACE, which makes the
# kernel look b up again first.
perl -e 'rename($ARGV[0], $ARGV[1]) or die "rename: $!\n"' "$M/a" "$M/b" ||
    fail "rename a b during the replay's delay"
queue_is -ge 1 || fail "the rename finished after the replay: nothing was tested"
wait "$rmpid" || fail "zkfs rm b failed"
# (its answer waits for the invalidations, not for the replay)
wait_for -t 10 queue_is = 0 || fail "the replay of rm b did not finish: $(queued) items"
assert_eq "file" "$(ls "$M/b" 2>&1)" "b lists a's file after the replay of rm b"
assert_eq "kept" "$(cat "$M/b/file" 2>&1)" "b/file readable after the replay of rm b"
exec 3<&-
assert_eq "file" "$(ls "$M/b" 2>&1)" "b lists a's file after the file is closed"
"$ZKFS" stat "$M/a" >/dev/null 2>&1 && fail "a still in the store"
"$ZKFS" stat "$M/b" >/dev/null || fail "the store lost b"
echo more >"$M/b/new" || fail "a new file in b after the replay"
assert_eq "file new" "$(ls "$M/b" | tr '\n' ' ' | sed 's/ $//')" \
    "b lists both files"

# 2. After a cache drop the mount and the store still agree.
if [ -w /proc/sys/vm/drop_caches ]; then
    echo 2 >/proc/sys/vm/drop_caches
    assert_eq "file new" "$(ls "$M/b" | tr '\n' ' ' | sed 's/ $//')" \
        "b lists both files after a cache drop"
else
    log "/proc/sys/vm/drop_caches not writable: step 2 skipped"
fi

zk_stop "$M"
