#!/usr/bin/env bash
# t_ens_catchup_watch.sh — watchers miss nothing across catch-up (issue 11
# item 7). A follower is held back — paused with SIGSTOP (this test's own
# daemon, by pid), or with ZK_CATCHUP_CUT=net (t_ens_catchup_watch_net)
# cut off by a network-namespace partition while it runs on — while the
# leader changes a watched directory; an
# `inotifywait -m -r` on the follower's mount must report every create,
# modify, attribute change, rename and delete made meanwhile once the
# follower has caught up:
#  1. by DIFF (a few transactions missed: each is applied and replayed);
#  2. by snapshot (more than the leader's DIFF window missed: the
#     follower compares the tree it had with the one it installed,
#     fs/snapdiff.c), with new names in queue order (czxid).
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=ens_lib.sh
. "$here/ens_lib.sh"

export ZKFS_LOG_KEEP=50
CUT=${ZK_CATCHUP_CUT:-stop}
case $CUT in
stop) ens_setup 3 && ens_start_all ;;
net)
    # the namespaces go before lib.sh's cleanup (ens_lib.sh)
    trap 'rc=$?; ens_net_cleanup; (exit $rc); zk__cleanup' EXIT
    ens_net_setup 3 && ens_net_start_all ;;
*) fail "ZK_CATCHUP_CUT=$CUT: stop or net" ;;
esac
L=$(ens_leader)
F=$(ens_follower)
ml=$(ens_mnt "$L")
mf=$(ens_mnt "$F")
FLOG=$ZK_TMP/zkfs.r$F.log
mkdir "$ml/q"
for i in 1 2 3 4 5 6; do echo "old$i" >"$ml/q/f$i"; done
mkdir "$ml/q/sub"
echo x >"$ml/q/sub/x"
ens_wait_synced
ens_wait_cat "$F" q/sub/x x

INO=$ZK_TMP/ino.log
zk_bg timeout 300 inotifywait -m -r --format '%e %w%f' "$mf/q" >"$INO" 2>&1
wait_for grep -q "Watches established" "$INO" || fail "inotifywait: $(cat "$INO")"
pid=${ZK_PID_OF[$mf]}
hold_back() {
    if [ "$CUT" = net ]; then ens_net_cut "$F"; else kill -STOP "$pid"; fi
    log "replica $F held back ($CUT)"
}
let_back() {
    if [ "$CUT" = net ]; then ens_net_heal "$F"; else kill -CONT "$pid"; fi
    log "replica $F back"
}

# seen EVENT PATH: the watcher reported EVENT (one of the comma-separated
# names) for PATH (relative to the follower's mount).
seen() { grep -qE "^([A-Z_]+,)*$1(,[A-Z_]+)* $mf/$2\$" "$INO"; }
expect() {
    wait_for -t 20 seen "$1" "$2" ||
        fail "no $1 for $2 on the follower's watcher: $(cat "$INO")"
}
installs() { grep -c "installed a snapshot" "$FLOG" || true; }
# The leader's count of syncs by mode (diff, snap).
syncs() { zk_metric "$ml" "zkfs_syncs_total{mode=\"$1\"}"; }
# The leader no longer counts the stopped follower as synced (so it
# resynchronises it when it is back, rather than streaming on).
f_dropped() {
    ! "$ZKFS" status --json "$ml" | sed 's/{"id":/\n&/g' |
        grep "^{\"id\":$F," | grep -q '"state":"synced"'
}

log "1. by DIFF"
d0=$(syncs diff)
hold_back
wait_for -t 30 f_dropped || fail "the leader still counts $F synced"
for i in 1 2 3; do echo "job$i" >"$ml/q/job$i"; done
echo new2 >"$ml/q/f2"
rm "$ml/q/f1"
mv "$ml/q/f3" "$ml/q/g3"
chmod 600 "$ml/q/f4"
mkdir "$ml/q/d1"
n0=$(installs)
let_back
ens_wait_synced 60
assert_eq "$n0" "$(installs)" "snapshot installs (this catch-up is a DIFF)"
[ "$(syncs diff)" -gt "$d0" ] || fail "the leader counted no DIFF sync"
for i in 1 2 3; do expect CREATE "q/job$i"; done
expect MODIFY q/f2
expect DELETE q/f1
expect MOVED_FROM q/f3
expect MOVED_TO q/g3
expect ATTRIB q/f4
expect CREATE q/d1
grep -q "CREATE,ISDIR $mf/q/d1" "$INO" || fail "d1 not reported as a directory"

log "2. by snapshot"
before=$(wc -l <"$INO")
hold_back
ens_wait_unsynced "$ml" "$F"
# Well more than the leader's DIFF window first (in a directory nobody
# watches), then the changes the watcher must hear about.
ens_past_diff "$ml/bulk"
for i in 1 2 3 4 5; do echo "item$i" >"$ml/q/item$i"; done
echo newer2 >"$ml/q/f2"
rm "$ml/q/f5"
rm "$ml/q/sub/x"
mv "$ml/q/g3" "$ml/q/h3"
chmod 640 "$ml/q/f6"
mkdir "$ml/q/d2"
echo y >"$ml/q/d2/y"
n0=$(installs)
let_back
ens_wait_synced 90
[ "$(installs)" -gt "$n0" ] ||
    fail "replica $F did not catch up by snapshot: $(grep -i 'snap\|diff' "$FLOG" | tail -5)"
grep "snapshot installed" "$FLOG" | tail -1
for i in 1 2 3 4 5; do expect CREATE "q/item$i"; done
expect MODIFY q/f2
expect DELETE q/f5
expect DELETE q/sub/x
expect MOVED_FROM q/g3
expect MOVED_TO q/h3
expect ATTRIB q/f6
expect CREATE q/d2
# The queue's items in the order they were made.
order=$(tail -n +"$((before + 1))" "$INO" | sed -n "s|^CREATE $mf/q/\(item[0-9]\)\$|\1|p" | xargs)
assert_eq "item1 item2 item3 item4 item5" "$order" "order of the new items"
# Nothing the snapshot did not change was reported.
tail -n +"$((before + 1))" "$INO" | grep -E " $mf/q/(f4|job[0-9])\$" &&
    fail "events for nodes the snapshot did not change"
# The mount shows what the events say.
assert_eq "d1 d2 f2 f4 f6 h3 item1 item2 item3 item4 item5 job1 job2 job3 sub" \
    "$(ls "$mf/q" | xargs)" "listing after the snapshot"
assert_eq newer2 "$(cat "$mf/q/f2")" "content after the snapshot"
ens_trees_identical
log "ok"
