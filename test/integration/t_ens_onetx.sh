#!/usr/bin/env bash
# One transaction per new file across the ensemble (fs/prov.c):
#  - a watcher on another mount that reads each new file as soon as
#    inotify reports IN_CREATE always reads its whole content (never an
#    empty file), and also gets IN_CLOSE_WRITE for it;
#  - a file being written on one mount is not on the others until its
#    close;
#  - a non-exclusive create whose name was created elsewhere meanwhile
#    overwrites that file at its close (the commit decides);
#  - a close whose commit cannot be made (the writer's follower lost the
#    leader and the other follower) fails with ETIMEDOUT and leaves no
#    file on any replica.
# (Exclusive create across mounts: t_ens_excl.)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

ens_setup 3
ens_start_all
m1=$(ens_mnt 1) m2=$(ens_mnt 2) m3=$(ens_mnt 3)
ens_mkdir_seen q


log "a reader woken by IN_CREATE on mount 2 reads complete files"
# reader: for every IN_CREATE, cat the file at once; "NAME CONTENT" lines.
reader() {
    inotifywait -m -t 120 -e create,close_write --format '%e %f' "$m2/q" \
        2>"$ZK_TMP/inotify.err" |
        while read -r ev f; do
            case $ev in
                CREATE) printf '%s [%s]\n' "$f" "$(cat "$m2/q/$f" 2>&1)" ;;
                *) printf 'CLOSE_WRITE %s\n' "$f" ;;
            esac
        done >"$ZK_TMP/read"
}
zk_bg reader
wait_for grep -q "Watches established" "$ZK_TMP/inotify.err" ||
    fail "inotifywait did not start"
N=40
pids=()
for w in 1 3; do
    m=$(ens_mnt "$w")
    (for i in $(seq 1 "$N"); do echo "payload-$w-$i" >"$m/q/f$w-$i" || exit 1; done) &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a writer failed"; done
all_read() { [ "$(grep -c '^f' "$ZK_TMP/read")" -ge $((2 * N)) ]; }
all_closed() { [ "$(grep -c '^CLOSE_WRITE f' "$ZK_TMP/read")" -ge $((2 * N)) ]; }
wait_for -t 30 all_read || { cat "$ZK_TMP/read" >&2; fail "mount 2 did not report every create"; }
wait_for -t 30 all_closed || { cat "$ZK_TMP/read" >&2; fail "no IN_CLOSE_WRITE for every new file"; }
bad=$(grep '^f' "$ZK_TMP/read" | awk '{ n = $1; sub(/^f/, "", n); if ($2 != "[payload-" n "]") print }')
[ -z "$bad" ] || { printf '%s\n' "$bad" >&2; fail "a reader saw an incomplete new file"; }

log "a file being written on mount 1 is not on mount 2 before its close"
fds p "$m1/q/pending" open w:abc say:open wait w:def close
wait_for fds_said p open || fail "fdscript did not open"
[ -e "$m1/q/pending" ] || fail "the new file is not on its own mount"
"$ZKFS" sync "$m2/q" >/dev/null
[ ! -e "$m2/q/pending" ] || fail "the new file is on mount 2 before its close"
fds_end
assert_eq 0 "$FDS_RC" "close ($(cat "$ZK_TMP/p.err"))"
"$ZKFS" sync "$m2/q" >/dev/null
assert_eq abcdef "$(cat "$m2/q/pending")" "content on mount 2 after the close"

log "the name is created on mount 3 meanwhile: the close overwrites it"
fds o "$m1/q/race" open w:mine say:open wait close
wait_for fds_said o open || fail "fdscript did not open"
echo theirs >"$m3/q/race"
ens_wait_cat 1 q/race theirs
fds_end
assert_eq 0 "$FDS_RC" "close ($(cat "$ZK_TMP/o.err"))"
for i in 1 2 3; do ens_wait_cat "$i" q/race mine; done

log "a close without a quorum fails and leaves no file"
L=$(ens_leader)
W=0
for i in 1 2 3; do [ "$i" != "$L" ] && W=$i && break; done
mw=$(ens_mnt "$W")
fds n "$mw/q/lost" open w:data say:open wait close
wait_for fds_said n open || fail "fdscript did not open"
for i in 1 2 3; do [ "$i" != "$W" ] && ens_kill9 "$i"; done
s=$SECONDS
fds_end
log "close returned $FDS_RC after $((SECONDS - s)) s: $(cat "$ZK_TMP/n.err")"
assert_eq 1 "$FDS_RC" "close without a quorum"
assert_match "close: Connection timed out" "$(cat "$ZK_TMP/n.err")" "its error"
[ ! -e "$mw/q/lost" ] || fail "the failed file is still on its mount"
for i in 1 2 3; do [ "$i" != "$W" ] && ens_start "$i"; done
ens_wait_leader
ens_wait_synced
for i in 1 2 3; do
    [ ! -e "$(ens_mnt "$i")/q/lost" ] || fail "the failed file is on replica $i"
done
ens_trees_identical
log "ok"
