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

# The writer: for i = 1, 2, ... writes "i" to w/k(i mod 20), logging
# "try K I" before and "ack K I" after close() returned 0. Stops at the
# first error (the daemon is gone).
cat >"$ZK_TMP/writer.py" <<'PY'
import os, sys
d, logpath = sys.argv[1], sys.argv[2]
with open(logpath, "a", buffering=1) as log:
    i = 0
    while True:
        i += 1
        k = i % 20
        log.write("try %d %d\n" % (k, i))
        try:
            fd = os.open("%s/k%d" % (d, k), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, b"%d" % i)
            os.close(fd)
        except OSError as e:
            log.write("err %d %d %s\n" % (k, i, e.strerror))
            sys.exit(0)
        log.write("ack %d %d\n" % (k, i))
PY
wl=$ZK_TMP/writes
zk_bg python3 "$ZK_TMP/writer.py" "$M/w" "$wl"
writer=$ZK_BG
acks() {
    local n
    n=$(grep -c '^ack' "$wl" 2>/dev/null) || true
    echo "${n:-0}"
}
enough() { [ "$(acks)" -ge 300 ]; }
wait_for -t 60 enough || fail "the writer got only $(acks) acks"
zk_kill9 "$M"
wait_for -t 30 zk_pid_gone "$writer" || kill -9 "$writer"
wait "$writer" || true
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
zk_stop "$M"
