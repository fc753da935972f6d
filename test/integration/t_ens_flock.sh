#!/usr/bin/env bash
# t_ens_flock.sh — flock(1)/flock(2) locks are cluster-wide (SPEC 2
# "locks", issue 9): 3 replicas on loopback, every process stopped by pid.
#
#  - LOCK_NB conflicts across mounts; the holder and the queue are visible
#    on every mount (user.zkfs.locks, `zkfs locks`);
#  - read-increment-write of a counter by flock(1) workers spread over the
#    three mounts: the final count is exact, and the fencing tokens read by
#    the holders (user.zkfs.lock.token) grow strictly with the count;
#  - kill -9 of a holder hands the lock to a waiter on another mount;
#  - a LOCK_NB conversion (shared -> exclusive) that fails leaves the old
#    lock dropped, as flock(2) on Linux does;
#  - flock -u (LOCK_UN) returns once the unlock is committed: a LOCK_NB
#    on the other mounts right after succeeds;
#  - two blocked flock() calls of one owner (processes sharing an open
#    file) are both granted;
#  - a wait ended by a signal (EINTR, the process keeps its descriptor)
#    or by `flock -w` leaves no wait behind in the queue;
#  - kill -9 of the replica whose mount holds the lock: the ensemble
#    releases it after sessionTimeout and a waiter on another mount gets it;
#  - kill -9 of the leader with a waiter queued: the waiter still gets the
#    lock once the holder leaves.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=ens_lib.sh
. "$here/ens_lib.sh"

probe=$(zk_helper probe) || exit 1

ens_setup 3
ens_start_all
m1=$(ens_mnt 1) m2=$(ens_mnt 2) m3=$(ens_mnt 3)
echo 0 >"$m1/counter"
touch "$m1/lock"
ens_wait_synced

locks_of() { getfattr --only-values --absolute-names -n user.zkfs.locks "$1"; }

# --- LOCK_NB across mounts, visibility ------------------------------------
zk_bg flock -o "$m1/lock" bash -c 'touch "$1"; exec sleep 600' _ "$ZK_TMP/held1"
holder=$ZK_BG
wait_for test -e "$ZK_TMP/held1" || fail "no first holder"
for m in "$m2" "$m3"; do
    assert_fail flock -n "$m/lock" true
done
assert_match "holds flock exclusive" "$(locks_of "$m2/lock")" "the table on m2"
"$ZKFS" locks "$m3/lock" >"$ZK_TMP/locks.out" || fail "zkfs locks failed"
assert_match "holds" "$(cat "$ZK_TMP/locks.out")" "zkfs locks"

# --- kill -9 of a holder: a waiter on another mount gets it ---------------
zk_bg flock -o "$m2/lock" touch "$ZK_TMP/second"
waiter=$ZK_BG
wait_for eval "locks_of '$m3/lock' | grep -q waits" || fail "no queued waiter"
[ ! -e "$ZK_TMP/second" ] || fail "the waiter got the lock while it was held"
kill -9 "$holder"
pkill -9 -P "$holder" 2>/dev/null || true
wait_for -t 10 test -e "$ZK_TMP/second" || fail "the waiter never got the lock"
wait "$waiter"
wait_for eval "[ -z \"\$(locks_of '$m1/lock')\" ]" ||
    fail "lock still held after everyone left: $(locks_of "$m1/lock")"

# --- a failed LOCK_NB conversion drops the old lock, as on Linux ----------
zk_bg flock -o -s "$m2/lock" bash -c 'touch "$1"; exec sleep 600' _ "$ZK_TMP/sh2"
other=$ZK_BG
wait_for test -e "$ZK_TMP/sh2" || fail "no shared holder on m2"
holders() { locks_of "$m3/lock" | grep -c "^holds" || true; }
rc=0
(
    exec 8<"$m1/lock"
    flock -s 8 || exit 10
    wait_for eval '[ "$(holders)" = 2 ]' || exit 11
    flock -x -n 8 && exit 12        # m2 shares it: the conversion fails
    wait_for eval '[ "$(holders)" = 1 ]' || exit 13    # and ours is gone
    locks_of "$m1/lock" | grep -q "^holds flock shared" || exit 14
    exit 0
) || rc=$?
assert_eq 0 "$rc" "failed conversion (10 lock, 11 not shared, 12 converted, 13 old lock kept, 14 m2's lock gone)"
kill -9 "$other"
pkill -9 -P "$other" 2>/dev/null || true
wait_for eval "[ -z \"\$(locks_of '$m1/lock')\" ]" || fail "lock not released"

# --- an explicit unlock returns once committed: free on every mount at once
rc=0
(
    exec 8<"$m1/lock"
    flock -x 8 || exit 10
    flock -n "$m2/lock" true && exit 11         # held by us
    flock -u 8 || exit 12
    flock -n "$m2/lock" true || exit 13         # free at once elsewhere
    flock -n "$m3/lock" true || exit 13
    exit 0
) || rc=$?
assert_eq 0 "$rc" "explicit unlock (10 lock, 11 not held, 12 unlock, 13 still held on another mount)"

# --- flock -w: a bounded wait ends and leaves the queue clean --------------
zk_bg flock -o "$m1/lock" bash -c 'touch "$1"; exec sleep 600' _ "$ZK_TMP/held0"
holder=$ZK_BG
wait_for test -e "$ZK_TMP/held0" || fail "no holder for flock -w"
rc=0
timeout 20 flock -w 1 "$m2/lock" true || rc=$?
assert_eq 1 "$rc" "flock -w 1 on a held lock (timeout: exit 1)"
wait_for eval "! locks_of '$m1/lock' | grep -q waits" ||
    fail "the timed-out wait is still queued: $(locks_of "$m1/lock")"
kill -9 "$holder"
wait_for eval "[ -z \"\$(locks_of '$m1/lock')\" ]" || fail "lock not released"

# --- EINTR on a signalled wait leaves the queue clean ---------------------
zk_bg flock -o "$m1/lock" bash -c 'touch "$1"; exec sleep 600' _ "$ZK_TMP/held2"
holder=$ZK_BG
wait_for test -e "$ZK_TMP/held2" || fail "no holder"
zk_bg "$probe" flockwait "$m2/lock" "$ZK_TMP/intr.log" "$ZK_TMP/stop.intr"
prober=$ZK_BG
wait_for eval "locks_of '$m3/lock' | grep -q waits" || fail "the probe did not queue"
kill -USR1 "$prober"
wait_for grep -q EINTR "$ZK_TMP/intr.log" ||
    fail "the wait did not end with EINTR: $(cat "$ZK_TMP/intr.log")"
wait_for eval "! locks_of '$m1/lock' | grep -q waits" ||
    fail "the interrupted wait is still queued: $(locks_of "$m1/lock")"
touch "$ZK_TMP/stop.intr"
wait "$prober"
kill -9 "$holder"
pkill -9 -P "$holder" 2>/dev/null || true
wait_for eval "[ -z \"\$(locks_of '$m1/lock')\" ]" || fail "lock not released"

# --- two waits of one owner (processes sharing an open file) -------------
# The table keeps one wait per owner: both blocked flock() calls return
# with the grant, neither ends with EINTR.
zk_bg flock -o "$m1/lock" bash -c 'touch "$1"; exec sleep 600' _ "$ZK_TMP/held5"
holder=$ZK_BG
wait_for test -e "$ZK_TMP/held5" || fail "no holder"
zk_bg "$probe" flockwait2 "$m2/lock" "$ZK_TMP/two.log" "$ZK_TMP/stop.two"
prober=$ZK_BG
wait_for eval '[ "$(grep -c waiting "$ZK_TMP/two.log")" = 2 ]' || fail "the two did not start"
parked() { "$ZKFS" status --json "$m2" | grep -o '"lock_waits_here":[0-9]*' | cut -d: -f2; }
wait_for eval '[ "$(parked)" = 2 ]' ||
    fail "both requests should be parked on m2: $(parked); $(cat "$ZK_TMP/two.log")"
kill -9 "$holder"
pkill -9 -P "$holder" 2>/dev/null || true
wait_for eval '[ "$(grep -c locked "$ZK_TMP/two.log")" = 2 ]' ||
    fail "both waits of one owner should be granted: $(cat "$ZK_TMP/two.log")"
touch "$ZK_TMP/stop.two"
wait "$prober"
wait_for eval "[ -z \"\$(locks_of '$m1/lock')\" ]" || fail "lock not released"

# --- the counter ------------------------------------------------------------
N=6 K=15
worker() {
    local m=$1 w=$2 k
    for k in $(seq 1 "$K"); do
        flock "$m/lock" bash -c '
            v=$(cat "$1/counter")
            t=$(getfattr --only-values --absolute-names -n user.zkfs.lock.token "$1/lock")
            echo $((v + 1)) >"$1/counter"
            echo "$((v + 1)) $t" >>"$2"' _ "$m" "$ZK_TMP/tokens.$w" ||
            echo "worker $w round $k failed" >>"$ZK_TMP/failed"
    done
}
pids=()
for w in $(seq 1 "$N"); do
    i=$(((w - 1) % 3 + 1))
    worker "$(ens_mnt "$i")" "$w" &
    pids+=("$!")
    ZK_PIDS+=("$!")
done
for p in "${pids[@]}"; do wait "$p"; done
[ ! -e "$ZK_TMP/failed" ] || fail "$(cat "$ZK_TMP/failed")"
ens_wait_synced
for i in 1 2 3; do
    ens_wait_cat "$i" counter $((N * K))
done
sort -n "$ZK_TMP"/tokens.* >"$ZK_TMP/tokens"
assert_eq $((N * K)) "$(wc -l <"$ZK_TMP/tokens")" "critical sections logged"
awk 'NR > 1 && $2 + 0 <= prev { print "token " $2 " after " prev " at " $1; bad = 1 }
     { prev = $2 + 0 } END { exit bad }' "$ZK_TMP/tokens" ||
    fail "fencing tokens do not grow with the count"
log "counter: $((N * K)) increments over 3 mounts, tokens strictly increasing"

# --- kill -9 of the holder's replica: released after sessionTimeout --------
L=$(ens_leader)
F=$(ens_follower)
zk_bg flock -o "$(ens_mnt "$F")/lock" bash -c 'touch "$1"; exec sleep 600' _ "$ZK_TMP/held4"
holder=$ZK_BG
wait_for test -e "$ZK_TMP/held4" || fail "no holder on replica $F"
zk_bg flock -o "$(ens_mnt "$L")/lock" touch "$ZK_TMP/fourth"
waiter=$ZK_BG
wait_for eval "locks_of '$(ens_mnt "$L")/lock' | grep -q waits" || fail "no waiter"
t0=$SECONDS
ens_kill9 "$F"
wait_for -t 30 test -e "$ZK_TMP/fourth" ||
    fail "the holder's replica died and its lock was never released"
log "replica $F (holding the lock) killed: the waiter on $L got it after $((SECONDS - t0)) s (sessionTimeout 4 s)"
wait "$waiter"
pkill -9 -P "$holder" 2>/dev/null || true
kill -9 "$holder" 2>/dev/null || true
ens_start "$F"
ens_wait_leader 30
ens_wait_synced 30

# --- leader kill with a waiter queued ---------------------------------------
L=$(ens_leader)
others=()
for i in 1 2 3; do [ "$i" != "$L" ] && others+=("$i"); done
ma=$(ens_mnt "${others[0]}") mb=$(ens_mnt "${others[1]}")
zk_bg flock -o "$ma/lock" bash -c 'touch "$1"; exec sleep 600' _ "$ZK_TMP/held3"
holder=$ZK_BG
wait_for test -e "$ZK_TMP/held3" || fail "no holder"
zk_bg flock -o "$mb/lock" touch "$ZK_TMP/third"
waiter=$ZK_BG
wait_for eval "locks_of '$mb/lock' | grep -q waits" || fail "no waiter"
ens_kill9 "$L"
log "killed leader $L with a waiter queued"
kill -9 "$holder"
pkill -9 -P "$holder" 2>/dev/null || true
wait_for -t 30 test -e "$ZK_TMP/third" ||
    fail "the waiter never got the lock after the failover"
wait "$waiter"
log "ok"
