#!/usr/bin/env bash
# A follower that was down catches up, by the sync its gap calls for:
#  - SNAP: it missed more than the leader keeps for DIFF (the core keeps
#    ZK_ZAB_LOG_KEEP = 1024 applied entries in memory): N_FILES files and
#    then N_REWRITES rewrites of them (at least one transaction each; the
#    tree stays small so that comparing trees stays quick), checked to be
#    more than 1024 transactions, so the leader streams a zstd snapshot
#    (its log says so, the follower installs it);
#  - DIFF: it missed a few writes, so no snapshot is sent.
# Every replica's store keeps a small log (ZKFS_LOG_KEEP=200 entries
# behind the last applied zxid, trimmed at each apply). That is not what
# decides DIFF or SNAP: a running leader diffs from its core's in-memory
# log, and a restarted replica hands its core only entries after its
# applied zxid, whatever the store keeps. After each
# catch-up the trees are identical and `zkfs status --json` on the leader
# shows the member connected, synced, at the leader's zxid with lag 0;
# while it is down, "down" and not connected.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

export ZKFS_LOG_KEEP=200
N_FILES=100          # files written while the follower is down (SNAP)
N_REWRITES=1100      # then rewrites of those files
DIFF_WINDOW=1024     # ZK_ZAB_LOG_KEEP
N_DIFF=20            # files written while it is down the second time

ens_setup 3
ens_start_all
L=$(ens_leader) || fail "no leader"
F=$(ens_follower) || fail "no follower"
mL=$(ens_mnt "$L")
LLOG=$ZK_TMP/zkfs.r$L.log
FLOG=$ZK_TMP/zkfs.r$F.log
log "leader $L, follower $F stops and comes back"

# member I ID KEY: KEY of member ID in replica I's status "members".
member() {
    "$ZKFS" status --json "$(ens_mnt "$1")" 2>/dev/null |
        sed 's/.*"members":\[//; s/{"id":/\n{"id":/g' |
        grep "^{\"id\":$2," |
        sed -n "s/.*\"$3\":\"\{0,1\}\([^,\"}]*\).*/\1/p"
}

# The leader sees member $F connected, synced, at its own zxid, lag 0.
member_caught_up() {
    [ "$(member "$L" "$F" connected)" = true ] &&
        [ "$(member "$L" "$F" state)" = synced ] &&
        [ "$(member "$L" "$F" lag)" = 0 ] &&
        [ "$(member "$L" "$F" member_zxid)" = "$(ens_field "$L" zxid)" ]
}

check_member_caught_up() {
    wait_for -t 20 member_caught_up || {
        "$ZKFS" status --json "$mL" >&2
        fail "leader's status does not show member $F caught up"
    }
    assert_eq 0 "$(ens_field "$F" commit_lag)" "commit_lag of replica $F"
    assert_eq false "$(ens_field "$F" stale)" "stale on replica $F"
}

snaps_sent() { grep -c "streaming a snapshot at .* to server $F\$" "$LLOG" || true; }
snaps_installed() { grep -c "installed a snapshot" "$FLOG" || true; }

log "status: every member listed, this replica marked, the text has a table"
assert_eq true "$(member "$L" "$L" self)" "leader's own entry"
assert_eq voter "$(member "$L" "$F" type)" "type of member $F"
check_member_caught_up
txt=$("$ZKFS" status "$mL")
assert_match '^members' "$(grep '^members' <<<"$txt")" "text status members"
assert_match "^  $F +voter +synced +yes +0x[0-9a-f]{16} +0" \
    "$(grep "^  $F " <<<"$txt")" "text status row of member $F"

# --- SNAP -----------------------------------------------------------------
ens_stop "$F"
wait_for -t 20 test "$(member "$L" "$F" state)" = down ||
    fail "leader's status does not show member $F down"
assert_eq false "$(member "$L" "$F" connected)" "member $F connected"
assert_eq null "$(member "$L" "$F" lag)" "lag of a member that is down"

log "$N_FILES files, $N_REWRITES rewrites while replica $F is down"
z0=$(ens_field "$L" zxid)
mkdir "$mL/bulk"
for i in $(seq 1 "$N_FILES"); do
    echo "value $i" >"$mL/bulk/f$i"
done
for i in $(seq 1 "$N_REWRITES"); do
    echo "rewrite $i" >"$mL/bulk/f$((i % N_FILES + 1))"
done
z1=$(ens_field "$L" zxid)
ntx=$(((z1 & 0xffffffff) - (z0 & 0xffffffff)))
log "$ntx transactions"
[ "$ntx" -gt "$DIFF_WINDOW" ] || fail "only $ntx transactions: not past the DIFF window"
s0=$(snaps_sent)
i0=$(snaps_installed)
ens_start "$F"
ens_wait_synced 60
ens_trees_identical
assert_eq "rewrite $N_REWRITES" \
    "$(cat "$(ens_mnt "$F")/bulk/f$((N_REWRITES % N_FILES + 1))")" "last rewrite on $F"
[ "$(snaps_sent)" -gt "$s0" ] || fail "the leader did not stream a snapshot to $F"
[ "$(snaps_installed)" -gt "$i0" ] || fail "replica $F installed no snapshot"
grep -q "snapshot to server $F at .* sent: [0-9]* bytes as [0-9]* with zstd" "$LLOG" ||
    fail "no end-of-snapshot line in the leader's log"
grep -q "received a snapshot of [0-9]* bytes ([0-9]* with zstd)" "$FLOG" ||
    fail "no received-snapshot line in replica $F's log"
check_member_caught_up

# --- DIFF -----------------------------------------------------------------
ens_stop "$F"
log "$N_DIFF files written while replica $F is down again"
for i in $(seq 1 "$N_DIFF"); do
    echo "again $i" >"$mL/bulk/g$i"
done
s1=$(snaps_sent)
i1=$(snaps_installed)
ens_start "$F"
ens_wait_synced 60
ens_trees_identical
assert_eq "again $N_DIFF" "$(cat "$(ens_mnt "$F")/bulk/g$N_DIFF")" "last file on $F"
assert_eq "$s1" "$(snaps_sent)" "snapshots streamed for a small gap"
assert_eq "$i1" "$(snaps_installed)" "snapshots installed for a small gap"
check_member_caught_up
log "ok"
