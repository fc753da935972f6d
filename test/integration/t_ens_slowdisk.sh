#!/usr/bin/env bash
# No false elections with a slow disk: one replica of a 3-server ensemble
# (default tickTime/syncLimit) commits every store batch 5 ms late
# (ZKFS_TEST_FSYNC_DELAY_US=5000, a test-only knob read at start), first
# as the leader, then as a follower, while writers on all three mounts
# write steadily for a bounded time. The elections metric
# (zkfs_elections_total) must not move on any replica during either
# phase, and the writes must go on. Prints each phase's writes and the
# elections counted. SLOWDISK_US overrides the delay (e.g. 1500000, above
# syncLimit x tickTime, shows elections, which makes this test fail).
# The slow follower writes none of its batches on its loop thread (a
# follower with a fast disk does: replica/ens_driver.c, st_write_here).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

SLOW=${SLOWDISK_US:-5000}
PHASE_S=${SLOWDISK_PHASE_S:-15}

# elections I: replica I's zkfs_elections_total.
elections() { zk_metric "$(ens_mnt "$1")" zkfs_elections_total; }

# writer I STOP: rewrites one file of its own through replica I's mount
# until STOP exists; counts successes and failures in $ZK_TMP/ok.I and
# $ZK_TMP/bad.I (one line each).
writer() {
    local i=$1 stop=$2 n=0 f
    f=$(ens_mnt "$i")/s/w$i
    while [ ! -e "$stop" ]; do
        n=$((n + 1))
        if printf '%s\n' "$n" >"$f" 2>/dev/null; then
            echo >>"$ZK_TMP/ok.$i"
        else
            echo >>"$ZK_TMP/bad.$i"
            sleep 0.05
        fi
    done
}

# phase NAME: writers on the three mounts for PHASE_S seconds; the
# elections on every replica must not move.
phase() {
    local i stop=$ZK_TMP/stop.$1 pids=() before=() after n ok=0 bad=0
    # (two phases may have the same name: the first one's stop must go)
    rm -f "$stop"
    for i in 1 2 3; do before[$i]=$(elections "$i"); done
    for i in 1 2 3; do
        : >"$ZK_TMP/ok.$i"
        : >"$ZK_TMP/bad.$i"
        zk_bg writer "$i" "$stop"
        pids+=("$ZK_BG")
    done
    sleep "$PHASE_S"
    touch "$stop"
    for i in "${pids[@]}"; do wait "$i"; done
    for i in 1 2 3; do
        ok=$((ok + $(nlines "$ZK_TMP/ok.$i")))
        bad=$((bad + $(nlines "$ZK_TMP/bad.$i")))
    done
    log "$1: $ok writes committed, $bad failed in ${PHASE_S} s (replica 3 slow: ${SLOW} µs per commit)"
    for i in 1 2 3; do
        after=$(elections "$i")
        n=$((after - before[i]))
        log "$1: replica $i ($(ens_field "$i" role)): $n election(s) (${before[$i]} -> $after)"
        [ "$n" = 0 ] || fail "$1: replica $i went looking $n time(s) with a ${SLOW} µs disk on replica 3"
    done
    [ "$ok" -ge $((PHASE_S * 10)) ] || fail "$1: only $ok writes in ${PHASE_S} s"
    [ "$bad" = 0 ] || fail "$1: $bad writes failed"
}

ens_setup 3
ens_launch 1
ens_launch 2
ZKFS_TEST_FSYNC_DELAY_US=$SLOW ens_launch 3
for i in 1 2 3; do ens__wait_mounted "$i"; done
ens_wait_leader
grep -q "ZKFS_TEST_FSYNC_DELAY_US: every store commit is delayed by $SLOW" \
    "$ZK_TMP/zkfs.r3.log" || fail "replica 3 did not take the delay knob"
mkdir "$(ens_mnt 1)/s"
for i in 2 3; do ens_wait_exists "$i" s; done

# Replica 3 leads when it can: with equal (empty) histories the highest
# id wins. If another one leads, the first phase has the slow follower.
L=$(ens_leader)
phase "slow replica 3 as $( [ "$L" = 3 ] && echo leader || echo follower)"

log "replica 3 restarted: now a (slow) follower"
ens_stop 3
ens_wait_leader
ZKFS_TEST_FSYNC_DELAY_US=$SLOW ens_start 3
ens_wait_leader
[ "$(ens_field 3 role)" = follower ] || fail "replica 3 is $(ens_field 3 role), not a follower"
h0=$(zk_metric "$(ens_mnt 3)" zkfs_commit_batches_here_total)
b0=$(zk_metric "$(ens_mnt 3)" zkfs_commit_batches_total)
phase "slow replica 3 as follower"
# A follower writes its log on its loop only while its batches take less
# than 1 ms on average (replica/ens_driver.c, st_write_here): a slow disk
# would make the mount's reads wait for every flush (the average starts
# above 1 ms, and never gets below it here).
h=$(($(zk_metric "$(ens_mnt 3)" zkfs_commit_batches_here_total) - h0))
b=$(($(zk_metric "$(ens_mnt 3)" zkfs_commit_batches_total) - b0))
log "slow follower: $h of its $b batches written on its loop, $(zk_metric "$(ens_mnt 3)" zkfs_commit_write_avg_seconds) s per batch on average"
[ "$b" -gt 100 ] || fail "the slow follower wrote only $b batches"
assert_eq 0 "$h" "batches the slow follower wrote on its loop"
ens_wait_synced
ens_trees_identical
