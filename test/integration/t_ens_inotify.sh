#!/usr/bin/env bash
# inotify across replicas: a recursive inotifywait on mount 2 sees the
# changes made on mounts 1 and 3 — CREATE, MODIFY/CLOSE_WRITE, ATTRIB,
# MOVED_FROM/MOVED_TO, DELETE, CREATE,ISDIR — in the order they were made
# (zxid order), also for a quick run of creates alternating between two
# other replicas.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

ens_setup 3
ens_start_all
m1=$(ens_mnt 1)
m2=$(ens_mnt 2)
m3=$(ens_mnt 3)

mkdir "$m1/w"
ens_wait_exists 2 w
ens_wait_exists 3 w

ev=$ZK_TMP/events
zk_bg inotifywait -m -r -t 120 \
    -e create,modify,close_write,attrib,moved_from,moved_to,delete \
    --format '%e %w%f' -o "$ev" "$m2/w" 2>"$ZK_TMP/inotify.err"
wait_for grep -q "Watches established" "$ZK_TMP/inotify.err" ||
    fail "inotifywait did not start"
W=$m2/w

# has LINE: the event log has exactly this line.
has() { grep -qxF -- "$1" "$ev"; }
wait_ev() {
    wait_for -t 20 has "$1" || {
        sed 's/^/    /' "$ev" >&2
        fail "mount 2 did not report '$1'"
    }
}

log "create + write on mount 1"
echo a >"$m1/w/x"
wait_ev "CREATE $W/x"
wait_for -t 20 grep -qxE "(MODIFY|CLOSE_WRITE,CLOSE) $W/x" "$ev" || {
    cat "$ev" >&2
    fail "no MODIFY or CLOSE_WRITE for x on mount 2"
}
log "chmod on mount 3"
chmod 600 "$m3/w/x"
wait_ev "ATTRIB $W/x"
log "mv on mount 1"
mv "$m1/w/x" "$m1/w/y"
wait_ev "MOVED_FROM $W/x"
wait_ev "MOVED_TO $W/y"
log "mkdir on mount 3"
mkdir "$m3/w/d"
wait_ev "CREATE,ISDIR $W/d"
log "a file in the new directory, from mount 1 (recursive watch)"
ens_wait_exists 1 w/d
echo z >"$m1/w/d/z"
wait_ev "CREATE $W/d/z"
log "rm on mount 3"
ens_wait_exists 3 w/y
rm "$m3/w/y"
wait_ev "DELETE $W/y"
ens_wait_exists 3 w/d/z
rm "$m3/w/d/z"
wait_ev "DELETE $W/d/z"
rmdir "$m1/w/d"
wait_ev "DELETE,ISDIR $W/d"

log "events in the order the changes were made"
keys=("CREATE $W/x" "ATTRIB $W/x" "MOVED_FROM $W/x" "MOVED_TO $W/y"
    "CREATE,ISDIR $W/d" "CREATE $W/d/z" "DELETE $W/y" "DELETE $W/d/z"
    "DELETE,ISDIR $W/d")
prev=0
for k in "${keys[@]}"; do
    n=$(grep -nxF -- "$k" "$ev" | head -1 | cut -d: -f1)
    [ -n "$n" ] || fail "no '$k'"
    [ "$n" -gt "$prev" ] || {
        cat -n "$ev" >&2
        fail "'$k' (line $n) came before an earlier change's event (line $prev)"
    }
    prev=$n
done
[ "$(grep -cxF "CREATE $W/x" "$ev")" = 1 ] || fail "CREATE x reported more than once"

log "40 creates alternating between mounts 1 and 3: CREATE events in that order"
for i in $(seq 1 40); do
    if [ $((i % 2)) = 1 ]; then m=$m1; else m=$m3; fi
    # each create returns once committed, so the next one has a later zxid
    : >"$m/w/q$i" || fail "create of q$i failed"
done
wait_ev "CREATE $W/q40"
got=$(grep -E "^CREATE $W/q[0-9]+\$" "$ev" | sed "s|^CREATE $W/q||" | paste -sd' ')
assert_eq "$(seq 1 40 | paste -sd' ')" "$got" "order of CREATE events on mount 2"

log "a data change on mount 3 of an existing file: MODIFY/CLOSE_WRITE"
n0=$(grep -cE "^(MODIFY|CLOSE_WRITE,CLOSE) $W/q7\$" "$ev" || true)
echo new >"$m3/w/q7"
more_mod() { [ "$(grep -cE "^(MODIFY|CLOSE_WRITE,CLOSE) $W/q7\$" "$ev")" -gt "$n0" ]; }
wait_for -t 20 more_mod || { cat "$ev" >&2; fail "no MODIFY/CLOSE_WRITE for q7"; }
ens_wait_cat 2 w/q7 new

log "zkfs create / set / rm on mount 3 (through its control file)"
"$ZKFS" create "$m3/w/c1" one >/dev/null || fail "zkfs create failed"
wait_ev "CREATE $W/c1"
n0=$(grep -cE "^(MODIFY|CLOSE_WRITE,CLOSE) $W/c1\$" "$ev" || true)
"$ZKFS" set "$m3/w/c1" two || fail "zkfs set failed"
more_c1() { [ "$(grep -cE "^(MODIFY|CLOSE_WRITE,CLOSE) $W/c1\$" "$ev")" -gt "$n0" ]; }
wait_for -t 20 more_c1 || { cat "$ev" >&2; fail "no MODIFY/CLOSE_WRITE for zkfs set of c1"; }
"$ZKFS" rm "$m3/w/c1" || fail "zkfs rm failed"
wait_ev "DELETE $W/c1"

log "after a remote change's CLOSE_WRITE, stat on the watching mount shows its size"
# The replay of a data change leaves the attributes' invalidation to its
# own write (fs/echo.c): a stat right after the event must not be served
# the cached size. Sizes 6 -> 0 -> 0 -> 3 -> 0 -> 1, the file's attributes
# cached on mount 2 before each change.
printf 'hello\n' >"$m1/w/sz"
ens_wait_cat 2 w/sz hello
for content in "" "" "ab" "" "x"; do
    stat -c %s "$m2/w/sz" >/dev/null
    rm -f "$ZK_TMP/sz.err"
    zk_bg inotifywait -t 30 -e close_write "$m2/w/sz" 2>"$ZK_TMP/sz.err" >/dev/null
    cw=$ZK_BG
    wait_for grep -q "Watches established" "$ZK_TMP/sz.err" ||
        fail "inotifywait on sz did not start"
    if [ -n "$content" ]; then echo "$content" >"$m3/w/sz"; else : >"$m3/w/sz"; fi
    wait "$cw" || fail "no CLOSE_WRITE for sz on mount 2 ($(cat "$ZK_TMP/sz.err"))"
    want=$(stat -c %s "$m3/w/sz")
    assert_eq "$want" "$(stat -c %s "$m2/w/sz")" "size on mount 2 right after CLOSE_WRITE"
    assert_eq "$content" "$(cat "$m2/w/sz")" "content on mount 2 right after CLOSE_WRITE"
done
log "$(wc -l <"$ev") events seen on mount 2"
ens_wait_synced
ens_trees_identical
