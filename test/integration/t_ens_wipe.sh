#!/usr/bin/env bash
# A follower of a 3-replica ensemble loses its data directory (rm -rf
# while it is stopped) and is started again as the same server:
#  - it logs that it waits to sync before voting, catches up (the files
#    written before and while it was away are on its mount), its mount
#    takes writes that the others see, and it votes again once synced
#    (the log says so);
#  - after a leader change (the leader restarted) the three trees are
#    identical.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

log_has() { grep -q "$2" "$ZK_TMP/zkfs.r$1.log"; }

ens_setup 3
ens_start_all
m1=$(ens_mnt 1)
for k in $(seq 1 20); do echo "before-$k" >"$m1/b$k"; done
f=$(ens_follower) || fail "no follower"
ens_stop "$f"
rm -rf "$(ens_data "$f")"
log "replica $f stopped and its data directory removed"
l=$(ens_leader) || fail "no leader"
echo away >"$(ens_mnt "$l")/away"

ens_start "$f"
wait_for -t 20 log_has "$f" "data directory is empty but the ensemble has history: waiting to sync before voting" ||
    fail "replica $f did not log its abstention"
ens_wait_cat "$f" away away
ens_wait_cat "$f" b20 before-20
echo from-wiped >"$(ens_mnt "$f")/mine" || fail "write through the wiped replica failed"
for i in 1 2 3; do ens_wait_cat "$i" mine from-wiped; done
log "replica $f caught up and takes writes"

l=$(ens_leader) || fail "no leader"
ens_stop "$l"
ens_start "$l"
ens_wait_leader 30
wait_for -t 20 log_has "$f" "synced from an empty data directory: voting again" ||
    fail "replica $f does not vote again after the leader change"
echo after >"$(ens_mnt "$f")/after"
ens_wait_synced 30
ens_trees_identical
log "replica $f votes again; trees identical ($(ens_tree_size 1) znodes)"
log "done after ${SECONDS}s"
