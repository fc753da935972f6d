#!/usr/bin/env bash
# kill -9 of the daemon in the middle of a writer loop loses no
# acknowledged write: a write counts as acknowledged only once its close()
# returned 0. After remounting the same data directory, every key holds its
# last acknowledged value, or the one write to it that was in flight.
# Round 2 is a power cut as the store sees it: the daemon runs without
# background checkpoints (ZKFS_CHECKPOINT_MS: only the open's and a
# session batch's), and restarts as in another boot (ZKFS_TEST_BOOT_ID),
# so its tree goes back to the last checkpoint (store/ckpt.c, before
# round 2's writes) and every acknowledged write must come back from the
# write-ahead log.
. "$(dirname "$0")/lib.sh"

D=$ZK_TMP/data
M=$ZK_TMP/mnt
zk_start "$D" "$M"
mkdir "$M/w" "$M/eph"
setfattr -n user.zkfs.children -v ephemeral "$M/eph"
zk_bg bash -c 'exec 9>"$1/held"; touch "$2"; exec sleep 600' _ "$M/eph" "$ZK_TMP/held"
wait_for test -e "$ZK_TMP/held" || fail "the ephemeral holder did not start"

# Two writers: for i = 1, 2, ... one writes "i" to w/k(i mod 20), the
# other creates w/nR-(i) holding "i" (R: the round); each logs "try K I"
# before and "ack K I" after dd returned 0 (dd reports a failed close()
# of its output), and stops at the first error (the daemon is gone).
writer() {
    local mode=$1 logf=$2 round=$3 i=0 k name
    while :; do
        i=$((i + 1))
        if [ "$mode" = set ]; then k=$((i % 20)); name=k$k; else k=$i; name=n$round-$i; fi
        echo "try $k $i" >>"$logf"
        if ! printf '%s' "$i" | dd of="$M/w/$name" status=none 2>>"$logf"; then
            echo "err $k $i" >>"$logf"
            return 0
        fi
        echo "ack $k $i" >>"$logf"
    done
}

# kill_round R: writers, kill -9 once the setter has 100 acks, writers
# reaped; the caller restarts the daemon, then check_round R.
kill_round() {
    wl=$ZK_TMP/writes.$1
    nl=$ZK_TMP/creates.$1
    zk_bg writer set "$wl" "$1"
    writer=$ZK_BG
    zk_bg writer new "$nl" "$1"
    creator=$ZK_BG
    wait_for -t 120 enough || fail "round $1: the writer got only $(acks) acks"
    zk_kill9 "$M"
    for p in "$writer" "$creator"; do
        wait_for -t 30 zk_pid_gone "$p" || kill -9 "$p"
        wait "$p" || true
    done
    log "round $1: $(acks) acknowledged writes; last lines of the writer's log:"
    tail -n 3 "$wl"
}
acks() {
    local n
    n=$(grep -c '^ack' "$wl" 2>/dev/null) || true
    echo "${n:-0}"
}
enough() { [ "$(acks)" -ge 100 ]; }

check_round() {
    local checked=0 n=0 k last_ack last_try got i
    for k in $(seq 0 19); do
        last_ack=$(awk -v k="$k" '$1 == "ack" && $2 == k { v = $3 } END { print v + 0 }' "$wl")
        last_try=$(awk -v k="$k" '$1 == "try" && $2 == k { v = $3 } END { print v + 0 }' "$wl")
        [ "$last_ack" -gt 0 ] || continue
        got=$(cat "$M/w/k$k") || fail "round $1: k$k is gone (last acknowledged value $last_ack)"
        if [ "$got" != "$last_ack" ] && [ "$got" != "$last_try" ]; then
            fail "round $1: k$k holds [$got]; acknowledged $last_ack, last attempt $last_try"
        fi
        checked=$((checked + 1))
    done
    assert_eq 20 "$checked" "round $1: keys checked"
    log "round $1: every acknowledged create is there"
    while read -r _ k i; do
        got=$(cat "$M/w/n$1-$k") || fail "round $1: n$1-$k is gone (its create was acknowledged)"
        assert_eq "$i" "$got" "round $1: content of n$1-$k"
        n=$((n + 1))
    done < <(grep '^ack' "$nl")
    log "round $1: $n acknowledged creates checked"
    [ "$n" -gt 0 ] || fail "round $1: no create was acknowledged"
}

kill_round 1
zk_start "$D" "$M"
check_round 1
log "the ephemeral of the killed daemon's session is gone"
assert_eq "" "$(ls "$M/eph")" "eph after kill -9 and restart"

log "round 2: no background checkpoint, restarted as after a power cut"
zk_stop "$M"
ZKFS_CHECKPOINT_MS=600000 zk_start "$D" "$M"
kill_round 2
ZKFS_TEST_BOOT_ID=zkfs-test-reboot zk_start "$D" "$M"
grep -q 'the system restarted since the last checkpoint' "$ZK_TMP/zkfs.$ZK_NLOG.log" ||
    fail "round 2: the restart did not go back to the checkpoint (log $ZK_TMP/zkfs.$ZK_NLOG.log)"
check_round 2
zk_stop "$M"
