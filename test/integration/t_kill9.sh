#!/usr/bin/env bash
# kill -9 of the daemon in the middle of a writer loop loses no
# acknowledged write: a write counts as acknowledged only once its close()
# returned 0. After remounting the same data directory, every key holds its
# last acknowledged value, or the one write to it that was in flight.
. "$(dirname "$0")/lib.sh"

D=$ZK_TMP/data
M=$ZK_TMP/mnt
zk_start "$D" "$M"
mkdir "$M/w" "$M/eph"
setfattr -n user.zkfs.children -v ephemeral "$M/eph"
zk_bg bash -c 'exec 9>"$1/held"; touch "$2"; exec sleep 600' _ "$M/eph" "$ZK_TMP/held"
wait_for test -e "$ZK_TMP/held" || fail "the ephemeral holder did not start"

# Two writers: for i = 1, 2, ... one writes "i" to w/k(i mod 20), the
# other creates w/n(i) holding "i"; each logs "try K I" before and
# "ack K I" after dd returned 0 (dd reports a failed close() of its output),
# and stops at the first error (the daemon is gone).
writer() {
    local mode=$1 logf=$2 i=0 k name
    while :; do
        i=$((i + 1))
        if [ "$mode" = set ]; then k=$((i % 20)); name=k$k; else k=$i; name=n$i; fi
        echo "try $k $i" >>"$logf"
        if ! printf '%s' "$i" | dd of="$M/w/$name" status=none 2>>"$logf"; then
            echo "err $k $i" >>"$logf"
            return 0
        fi
        echo "ack $k $i" >>"$logf"
    done
}
wl=$ZK_TMP/writes
nl=$ZK_TMP/creates
zk_bg writer set "$wl"
writer=$ZK_BG
zk_bg writer new "$nl"
creator=$ZK_BG
acks() {
    local n
    n=$(grep -c '^ack' "$wl" 2>/dev/null) || true
    echo "${n:-0}"
}
enough() { [ "$(acks)" -ge 100 ]; }
wait_for -t 120 enough || fail "the writer got only $(acks) acks"
zk_kill9 "$M"
for p in "$writer" "$creator"; do
    wait_for -t 30 zk_pid_gone "$p" || kill -9 "$p"
    wait "$p" || true
done
log "$(acks) acknowledged writes; last lines of the writer's log:"
tail -n 3 "$wl"

zk_start "$D" "$M"
checked=0
for k in $(seq 0 19); do
    last_ack=$(awk -v k="$k" '$1 == "ack" && $2 == k { v = $3 } END { print v + 0 }' "$wl")
    last_try=$(awk -v k="$k" '$1 == "try" && $2 == k { v = $3 } END { print v + 0 }' "$wl")
    [ "$last_ack" -gt 0 ] || continue
    got=$(cat "$M/w/k$k") || fail "k$k is gone (last acknowledged value $last_ack)"
    if [ "$got" != "$last_ack" ] && [ "$got" != "$last_try" ]; then
        fail "k$k holds [$got]; acknowledged $last_ack, last attempt $last_try"
    fi
    checked=$((checked + 1))
done
assert_eq 20 "$checked" "keys checked"

log "the ephemeral of the killed daemon's session is gone"
assert_eq "" "$(ls "$M/eph")" "eph after kill -9 and restart"

log "every acknowledged create is there"
n=0
while read -r _ k i; do
    got=$(cat "$M/w/n$k") || fail "n$k is gone (its create was acknowledged)"
    assert_eq "$i" "$got" "content of n$k"
    n=$((n + 1))
done < <(grep '^ack' "$nl")
log "$n acknowledged creates checked"
[ "$n" -gt 0 ] || fail "no create was acknowledged"
zk_stop "$M"
