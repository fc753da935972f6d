#!/usr/bin/env bash
# t_ens_snapmount.sh — a replica that is MOUNTED and in use while it falls
# so far behind that it catches up by snapshot: the kernel must not keep
# serving the old tree. What the snapshot changed is replayed for the
# kernel and local watchers (fs/snapdiff.c): IN_DELETE for a name that
# is gone, IN_MOVED_FROM/TO for a rename, IN_MODIFY for new contents,
# IN_ATTRIB for a mode change; new contents and attributes are read.
# (t_ens_catchup_watch checks creates and their order.)
#
# The follower is held back with SIGSTOP (this test's own daemon, by pid)
# while more transactions than the leader keeps for a DIFF commit.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=ens_lib.sh
. "$here/ens_lib.sh"

export ZKFS_LOG_KEEP=50
ens_setup 3
ens_start_all
L=$(ens_leader)
F=$(ens_follower)
ml=$(ens_mnt "$L")
mf=$(ens_mnt "$F")
mkdir "$ml/d"
for i in 1 2 3 4; do echo "old$i" >"$ml/d/f$i"; done
ens_wait_synced
# The follower's kernel learns every name and caches attributes.
ls -la "$mf/d" >/dev/null
cat "$mf"/d/f* >/dev/null
assert_eq old2 "$(cat "$mf/d/f2")" "follower before"

zk_bg timeout 120 inotifywait -m -r --format '%e %w%f' "$mf/d" \
    >"$ZK_TMP/ino.log" 2>&1
wait_for grep -q "Watches established" "$ZK_TMP/ino.log"

pid=${ZK_PID_OF[$mf]}
kill -STOP "$pid"
log "replica $F stopped"
ens_wait_unsynced "$ml" "$F"
# Well more than the leader's DIFF window (1024: some reach the stopped
# follower's socket before the leader gives up on it) first, then the changes the
# follower's kernel must hear about: they can only come by snapshot.
ens_past_diff "$ml/bulk"
rm "$ml/d/f1"
echo new2 >"$ml/d/f2"
mv "$ml/d/f3" "$ml/d/g3"
chmod 600 "$ml/d/f4"
kill -CONT "$pid"
log "replica $F resumed"
ens_wait_synced 60
grep -q "installed a snapshot" "$ZK_TMP/zkfs.r$F.log" ||
    fail "replica $F did not catch up by snapshot: $(grep -i 'snap\|diff' \
        "$ZK_TMP/zkfs.r$F.log" | tail -5)"
grep "snapshot installed" "$ZK_TMP/zkfs.r$F.log" | tail -1

assert_fail stat "$mf/d/f1"
assert_match "No such file" "$ZK_ERR" "stat of a name the snapshot removed"
assert_eq new2 "$(cat "$mf/d/f2")" "content changed by the snapshot"
assert_fail cat "$mf/d/f3"
assert_eq old3 "$(cat "$mf/d/g3")" "renamed by the snapshot"
assert_eq 600 "$(stat -c %a "$mf/d/f4")" "mode changed by the snapshot"
assert_eq "f2 f4 g3" "$(ls "$mf/d" | xargs)" "listing after the snapshot"
wait_for -t 10 grep -q "DELETE $mf/d/f1" "$ZK_TMP/ino.log" ||
    fail "no IN_DELETE for f1: $(cat "$ZK_TMP/ino.log")"
wait_for -t 10 grep -q "MOVED_FROM $mf/d/f3" "$ZK_TMP/ino.log" ||
    fail "no IN_MOVED_FROM for the renamed f3: $(cat "$ZK_TMP/ino.log")"
wait_for -t 10 grep -q "MOVED_TO $mf/d/g3" "$ZK_TMP/ino.log" ||
    fail "no IN_MOVED_TO for g3: $(cat "$ZK_TMP/ino.log")"
wait_for -t 10 grep -q "MODIFY $mf/d/f2" "$ZK_TMP/ino.log" ||
    fail "no IN_MODIFY for f2: $(cat "$ZK_TMP/ino.log")"
wait_for -t 10 grep -q "ATTRIB $mf/d/f4" "$ZK_TMP/ino.log" ||
    fail "no IN_ATTRIB for f4: $(cat "$ZK_TMP/ino.log")"
ens_trees_identical
log "ok"
