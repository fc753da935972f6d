#!/usr/bin/env bash
# t_ens_rejoin.sh — a replica whose store holds transactions the quorum
# never committed rejoins, rebuilt from the leader's snapshot (issue 11
# item 3), instead of refusing the leader's sync at every retry.
#
# How the situation is made: two replicas "lose their last writes" (the
# contents of their data files are put back, in place, to copies taken
# while all three were stopped: the same file, so the daemon cannot tell,
# as with a disk that lied about fsync; a copy put back as another file
# is noticed and waits for the third, t_ens_putback), so the third has
# applied transactions the two never saw. The
# two elect a leader in the same epoch the lost writes had (it follows
# their accepted epoch), commit fewer transactions than the third
# applied, and then the third comes back: its applied zxid is not in the
# leader's history, the TRUNC point is below what it applied. Before the
# fix the leader sent TRUNC, the learner refused it ("TRUNC outside our
# log") and asked again, for good; a SNAP below its applied zxid was
# refused the same way ("unusable SNAP").
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

ens_setup 3
ens_start_all
A=$(ens_follower)
others=()
for i in 1 2 3; do [ "$i" = "$A" ] || others+=("$i"); done
B=${others[0]} C=${others[1]}
for i in 1 2 3; do echo "f$i" >"$(ens_mnt "$B")/f$i"; done
ens_wait_synced
for i in 1 2 3; do ens_stop "$i"; done
cp -a "$(ens_data "$B")" "$ZK_TMP/old$B"
cp -a "$(ens_data "$C")" "$ZK_TMP/old$C"

log "all three commit more; then $B and $C lose it"
ens_start_all
# One more election in this run (the leader restarted), so A's epoch is
# at least two above what B and C keep, and the restarts below are
# always exercised.
L=$(ens_leader)
ens_stop "$L"
ens_wait_leader
ens_start "$L"
for i in 1 2 3 4 5 6; do echo "g$i" >"$(ens_mnt "$A")/g$i"; done
ens_wait_synced
za=$(ens_field "$A" zxid)
ea=$(ens_field "$A" epoch)
for i in 1 2 3; do ens_stop "$i"; done
for i in "$B" "$C"; do
    # cp onto the existing file writes into it: same inode, same birth time.
    # The tree and the write-ahead log's segments (zkfs-wal/) both: a disk
    # that lost its last writes loses them in every file.
    ino=$(stat -c %i "$(ens_data "$i")/zkfs.mdb")
    cp "$ZK_TMP/old$i/zkfs.mdb" "$(ens_data "$i")/zkfs.mdb"
    assert_eq "$ino" "$(stat -c %i "$(ens_data "$i")/zkfs.mdb")" "inode of $i's data file"
    for f in "$(ens_data "$i")"/zkfs-wal/*; do
        old=$ZK_TMP/old$i/zkfs-wal/${f##*/}
        if [ -e "$old" ]; then cp "$old" "$f"; else rm -f "$f"; fi
    done
done
# B and C elect one epoch above the newest they accepted, which may be
# older than A's if the second run took more than one election (A then
# rightly refuses their leader: a voter never follows an epoch older than
# one it accepted). Each restart of both elects one epoch more: restart
# them until they reach A's epoch, so that A's last transactions and the
# quorum's new ones share an epoch and A's zxid is above the quorum's.
for try in 1 2 3 4 5 6; do
    ens_start "$B"
    ens_start "$C"
    ens_wait_leader
    eb=$(ens_field "$B" epoch)
    [ $((eb)) -lt $((ea)) ] || break
    log "$B and $C elected epoch $eb, older than $A's $ea: again"
    ens_stop "$B"
    ens_stop "$C"
done
[ $((eb)) -eq $((ea)) ] || fail "$B and $C elected epoch $eb, not $A's $ea"
echo h1 >"$(ens_mnt "$B")/h1"
ens_wait_synced
zb=$(ens_field "$B" zxid)
log "replica $A applied $za; the quorum is at $zb"
[ $((za)) -gt $((zb)) ] || fail "the quorum is not behind $A ($zb >= $za): no test"

log "replica $A comes back"
ens_start "$A"
ens_wait_synced 60
ens_trees_identical
grep -q "installed a snapshot" "$ZK_TMP/zkfs.r$A.log" ||
    fail "replica $A was not rebuilt from a snapshot"
grep -E "behind the last applied|installed a snapshot" "$ZK_TMP/zkfs.r$A.log" | tail -2
mA=$(ens_mnt "$A")
# The install's delete reaches A's kernel through the echo thread, after
# the install is durable (snapdiff.c): wait for it, bounded.
wait_for -t 10 not test -e "$mA/g1" ||
    fail "a transaction the quorum never committed is still on $A"
assert_eq h1 "$(cat "$mA/h1")" "the quorum's write on $A"
echo a1 >"$mA/a1" || fail "a write on the rejoined $A"
ens_wait_cat "$B" a1 a1
# The leader did not have to stream again and again.
n=$(grep -c "streaming a snapshot" "$ZK_TMP/zkfs.r$(ens_leader).log" || true)
[ "$n" -le 2 ] || fail "the leader streamed $n snapshots"
log ok
