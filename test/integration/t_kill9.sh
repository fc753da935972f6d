#!/usr/bin/env bash
# kill -9 of the daemon in the middle of a writer loop loses no
# acknowledged write: a write counts as acknowledged only once its close()
# returned 0. After remounting the same data directory, every key holds its
# last acknowledged value, or the one write to it that was in flight.
. "$(dirname "$0")/lib.sh"

D=$ZK_TMP/data
M=$ZK_TMP/mnt
zk_start "$D" "$M"
mkdir "$M/w"

# Two writers: for i = 1, 2, ... one writes "i" to w/k(i mod 20), the
# other creates w/n(i) holding "i"; each logs "try K I" before and
# "ack K I" after close() returned 0, and stops at the first error (the
# daemon is gone).
cat >"$ZK_TMP/writer.py" <<'PY'
import os, sys
d, logpath, mode = sys.argv[1], sys.argv[2], sys.argv[3]
with open(logpath, "a", buffering=1) as log:
    i = 0
    while True:
        i += 1
        # "set": overwrite one of 20 keys; "new": create a new file each time.
        k = i % 20 if mode == "set" else i
        name = "%s/%s%d" % (d, "k" if mode == "set" else "n", k)
        log.write("try %d %d\n" % (k, i))
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, b"%d" % i)
            os.close(fd)
        except OSError as e:
            log.write("err %d %d %s\n" % (k, i, e.strerror))
            sys.exit(0)
        log.write("ack %d %d\n" % (k, i))
PY
wl=$ZK_TMP/writes
nl=$ZK_TMP/creates
zk_bg python3 "$ZK_TMP/writer.py" "$M/w" "$wl" set
writer=$ZK_BG
zk_bg python3 "$ZK_TMP/writer.py" "$M/w" "$nl" new
creator=$ZK_BG
acks() {
    local n
    n=$(grep -c '^ack' "$wl" 2>/dev/null) || true
    echo "${n:-0}"
}
enough() { [ "$(acks)" -ge 300 ]; }
wait_for -t 60 enough || fail "the writer got only $(acks) acks"
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
