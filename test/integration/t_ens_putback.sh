#!/usr/bin/env bash
# A server's data directory put back from an older state must not vote
# with the promises it forgot. Twice, once with a backup restored
# (`zkfs snapshot restore`) and once with a copy of the stopped server's
# directory (cp -a) put back:
#  - server 2 is stopped; a write W is committed by servers 1 and 3 (so
#    W is acknowledged with 3's vote); 1 and 3 are stopped;
#  - 3's directory is put back from the backup or the copy taken before
#    W, and only 2 and 3 are started: 3 logs that it waits to sync before
#    voting, and no leader is elected (2 alone is not a quorum; without
#    the gate 2 and 3 elect one of them and W is lost for good: 1's copy
#    of it is truncated when it rejoins);
#  - 1 is started: a leader is elected, W is on all three mounts, 3 says
#    it votes again (status: abstaining false), and the trees are
#    identical; 3 restarted is an ordinary replica (its mark went with
#    its sync).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

log_has() { grep -q "$2" "$ZK_TMP/zkfs.r$1.log"; }
leads() { [ "$(ens_field "$1" role)" = leader ]; }
two_or_three_leads() { leads 2 || leads 3; }

ens_setup 3
ens_start_all
m1=$(ens_mnt 1)
for k in $(seq 1 20); do echo "base-$k" >"$m1/b$k"; done
ens_wait_synced
log "the old states of server 3: a backup, and a copy of its stopped directory"
assert_rc 0 "$ZKFS" snapshot save "$(ens_mnt 3)" "$ZK_TMP/b3.zks"
ens_stop 3
cp -a "$(ens_data 3)" "$ZK_TMP/copy3"
ens_start 3
ens_wait_leader
echo after-copy >"$m1/after-copy"
ens_wait_synced

for how in restore copy; do
    log "--- $how: W committed by 1 and 3 while 2 is stopped"
    ens_stop 2
    echo "W-$how" >"$m1/w-$how" || fail "W was not committed by 1 and 3"
    ens_wait_cat 3 "w-$how" "W-$how"
    ens_stop 1
    ens_stop 3
    rm -rf "$(ens_data 3)"
    if [ "$how" = restore ]; then
        assert_rc 0 "$ZKFS" snapshot restore "$ZK_TMP/b3.zks" --data "$(ens_data 3)"
    else
        cp -a "$ZK_TMP/copy3" "$(ens_data 3)"
    fi
    : >"$ZK_TMP/zkfs.r3.log"
    log "$how: server 3 put back from before W; only 2 and 3 started"
    ens_start 2
    ens_start 3
    wait_for -t 20 log_has 3 "store was restored from a backup or a copy: waiting to sync before voting" ||
        fail "server 3 did not log that it waits to sync ($how)"
    if [ "$how" = copy ]; then
        log_has 3 "the data file is not the one this store last ran in" ||
            fail "server 3 did not notice the copy"
    fi
    if wait_for -t 4 two_or_three_leads 2>/dev/null; then
        fail "$how: 2 and 3 elected a leader without W ($(ens_field 3 role)/$(ens_field 2 role))"
    fi
    assert_eq true "$(ens_field 3 stale)" "server 3 stale ($how)"
    assert_eq true "$(ens_field 3 abstaining)" "server 3 abstaining ($how)"
    assert_eq false "$(ens_field 2 abstaining)" "server 2 abstaining ($how)"
    log "$how: no leader among 2 and 3; starting 1"
    ens_start 1
    ens_wait_leader 30
    for i in 1 2 3; do ens_wait_cat "$i" "w-$how" "W-$how"; done
    wait_for -t 20 log_has 3 "synced from a restored store: voting again" ||
        fail "server 3 does not vote again ($how)"
    echo "after-$how" >"$(ens_mnt 3)/after-$how" || fail "write through 3 failed ($how)"
    for i in 1 2 3; do ens_wait_cat "$i" "after-$how" "after-$how"; done
    ens_wait_synced
    ens_trees_identical
    assert_eq false "$(ens_field 3 abstaining)" "server 3 abstaining after its sync ($how)"
    log "$how: W kept, 3 votes again ($(ens_tree_size 1) znodes)"
    # The mark went with the sync: a restart is an ordinary one.
    ens_stop 3
    : >"$ZK_TMP/zkfs.r3.log"
    ens_start 3
    ens_wait_leader 30
    ! log_has 3 "store was restored" || fail "server 3 restored again at a restart ($how)"
    assert_eq false "$(ens_field 3 abstaining)" "server 3 abstaining after a restart ($how)"
done
for i in 1 2 3; do ens_stop "$i"; done
for i in 1 2 3; do
    "$ZKFS" check "$(ens_data "$i")" >/dev/null || fail "check of server $i"
done
log "done after ${SECONDS}s"
