#!/usr/bin/env bash
# Where the echo thread replays changes made elsewhere: only where a
# process on the mount may watch (docs/filesystem.md, "Where changes are
# replayed"). A mount nobody uses replays nothing under a directory made
# elsewhere (the entry the replay of the directory's create leaves
# expires at once); once a process walks into the directory (a watch, a
# cd, a stat: a LOOKUP of its own), changes there are replayed and
# reported again.
#   1. 100 files written twice under w/ through mount 1: mount 2, which
#      has not looked at w, answers (almost) no request for them;
#   2. inotifywait on mount 2's w: it sees a create, a rewrite, a mkdir
#      and a removal made through mount 1 afterwards;
#   3. a recursive watch on mount 3's root follows a directory made on
#      mount 1 into it: a file created there afterwards is reported;
#   4. a process holding a directory open (its cwd) that it reached
#      through a path walk is a watcher too: a change under it is
#      replayed (counted by the FUSE writes of mount 3);
#   5. a file a replay made, watched on mount 2 afterwards, then moved
#      into a directory nobody on mount 2 walked into and written: its
#      watch reports the write;
#   6. a watched file moved under such a directory and removed there: the
#      removal is replayed (IN_ATTRIB of its unlink, not only the
#      DELETE_SELF of the invalidation);
#   7. a process whose cwd was moved (elsewhere) under such a directory
#      watches "..": the kernel never asks about "..", so the rename's
#      replay marks the new ancestors; a file made there is reported.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

ens_setup 3
ens_start_all
m1=$(ens_mnt 1)
m2=$(ens_mnt 2)
m3=$(ens_mnt 3)

# req MOUNT OP: FUSE requests of kind OP the mount's daemon answered.
req() { zk_metric "$1" "zkfs_fuse_requests_total{op=\"$2\"}"; }

log "1. 100 files written twice under w/ through mount 1; mount 2 idle"
mkdir "$m1/w"
"$ZKFS" sync "$m2" || fail "zkfs sync $m2"
# Writes and creates: reading the metrics file opens it, but writes
# nothing (a replay of a change to a file writes one byte, of a create
# makes the node: fs/echo.c).
o0=$(req "$m2" write)
k0=$(req "$m2" mknod)
for r in 1 2; do
    for i in $(seq 1 100); do echo "$r.$i" >"$m1/w/f$i"; done
done
"$ZKFS" sync "$m2" || fail "zkfs sync $m2"
# Let the echo thread drain what it was given (bounded).
zk_echo_drained "$m2"
o1=$(req "$m2" write)
k1=$(req "$m2" mknod)
log "mount 2: $((o1 - o0)) writes, $((k1 - k0)) mknods for 200 writes of 100 new files"
[ "$((o1 - o0))" -le 5 ] ||
    fail "mount 2 replayed $((o1 - o0)) writes under a directory nobody there looked at"
[ "$((k1 - k0))" -le 5 ] ||
    fail "mount 2 replayed $((k1 - k0)) creates under a directory nobody there looked at"
assert_eq "2.37" "$(cat "$m2/w/f37")" "w/f37 read on mount 2"

log "2. a watch on mount 2's w sees what mount 1 does next"
ev=$ZK_TMP/events
zk_bg inotifywait -m -t 60 -e create,close_write,delete \
    --format '%e %w%f' -o "$ev" "$m2/w" 2>"$ZK_TMP/inotify.err"
wait_for grep -q "Watches established" "$ZK_TMP/inotify.err" ||
    fail "inotifywait did not start"
has() { grep -qxF -- "$1" "$ev"; }
wait_ev() {
    wait_for -t 20 has "$1" || {
        sed 's/^/    /' "$ev" >&2
        fail "mount 2 did not report '$1'"
    }
}
echo new >"$m1/w/new"
wait_ev "CREATE $m2/w/new"
wait_ev "CLOSE_WRITE,CLOSE $m2/w/new"
echo again >"$m1/w/f5"
wait_ev "CLOSE_WRITE,CLOSE $m2/w/f5"
mkdir "$m1/w/sub"
wait_ev "CREATE,ISDIR $m2/w/sub"
rm "$m1/w/f6"
wait_ev "DELETE $m2/w/f6"

log "3. a recursive watch on mount 3 follows a new directory into it"
ev3=$ZK_TMP/events3
zk_bg inotifywait -m -r -t 60 -e create,close_write \
    --format '%e %w%f' -o "$ev3" "$m3" 2>"$ZK_TMP/inotify3.err"
w3=$ZK_BG
wait_for grep -q "Watches established" "$ZK_TMP/inotify3.err" ||
    fail "inotifywait -r did not start"
mkdir "$m1/x"
wait_for -t 20 grep -qxF "CREATE,ISDIR $m3/x" "$ev3" ||
    { sed 's/^/    /' "$ev3" >&2; fail "mount 3 did not report the directory x"; }
# inotifywait -r adds its watch on x when it sees the event; give it a
# moment, as on any file system (events before a watch exists are lost).
sleep 0.5
echo y >"$m1/x/y"
wait_for -t 20 grep -qxF "CLOSE_WRITE,CLOSE $m3/x/y" "$ev3" ||
    { sed 's/^/    /' "$ev3" >&2; fail "mount 3 did not report x/y inside the new directory"; }

log "4. a process whose cwd is a directory reached on mount 3 counts as a watcher"
kill "$w3"                # its watches would count (it would watch c)
wait_for zk_pid_gone "$w3" || fail "inotifywait -r did not stop"
mkdir "$m1/c"
# (Not ens_wait_exists 3: its test -e on mount 3 would be the walk.)
"$ZKFS" sync "$m3" || fail "zkfs sync $m3"
zk_bg bash -c "cd '$m3/c' && sleep 30"
sleep 0.3
o0=$(req "$m3" write)
echo 1 >"$m1/c/z"
"$ZKFS" sync "$m3" || fail "zkfs sync $m3"
zk_echo_drained "$m3"
o1=$(req "$m3" write)
[ "$((o1 - o0))" -ge 1 ] ||
    fail "a write under a directory a process on mount 3 sits in was not replayed there"

# watch_on NAME PATH: inotifywait -m on PATH (mount 2 or 3), events in
# $ZK_TMP/NAME; ev_has NAME REGEX waits (bounded) for a matching line.
watch_on() {
    zk_bg inotifywait -m -t 60 --format '%e %w%f' -o "$ZK_TMP/$1" "$2" \
        2>"$ZK_TMP/$1.err"
    wait_for grep -q "Watches established" "$ZK_TMP/$1.err" ||
        fail "inotifywait on $2 did not start"
}
ev_has() {
    wait_for -t 20 grep -qE -- "$2" "$ZK_TMP/$1" || {
        sed 's/^/    /' "$ZK_TMP/$1" >&2
        fail "$1: no event matching '$2'"
    }
}

log "5. a file a replay made, watched later, moved under a directory mount 2 never walked"
echo 1 >"$m1/w/g"              # replayed on mount 2 (its w is watched)
wait_ev "CLOSE_WRITE,CLOSE $m2/w/g"
mkdir "$m1/v"
"$ZKFS" sync "$m2" || fail "zkfs sync $m2"
watch_on ev5 "$m2/w/g"
mv "$m1/w/g" "$m1/v/g"
ev_has ev5 '^MOVE_SELF '
echo 2 >"$m1/v/g"
ev_has ev5 '^CLOSE_WRITE,CLOSE '

log "6. a watched file moved under such a directory and removed there"
mkdir "$m1/a" "$m1/u"
echo 1 >"$m1/a/f"
"$ZKFS" sync "$m2" || fail "zkfs sync $m2"
watch_on ev6 "$m2/a/f"
mv "$m1/a/f" "$m1/u/f"
ev_has ev6 '^MOVE_SELF '
rm "$m1/u/f"
ev_has ev6 '^ATTRIB '
ev_has ev6 '^DELETE_SELF '

log "7. a process whose cwd moved under such a directory watches .."
mkdir -p "$m1/p/q"
"$ZKFS" sync "$m2" || fail "zkfs sync $m2"
: >"$ZK_TMP/go7"
zk_bg bash -c "cd '$m2/p/q' && while [ ! -s '$ZK_TMP/go7' ]; do sleep 0.05; done &&
    exec inotifywait -m -t 60 -e create --format '%e %f' -o '$ZK_TMP/ev7' .. 2>'$ZK_TMP/ev7.err'"
sleep 0.3
mkdir "$m1/r"
mv "$m1/p/q" "$m1/r/q"
"$ZKFS" sync "$m2" || fail "zkfs sync $m2"
zk_echo_drained "$m2"
echo go >"$ZK_TMP/go7"
wait_for grep -q "Watches established" "$ZK_TMP/ev7.err" ||
    fail "inotifywait on .. did not start"
echo 1 >"$m1/r/z"
ev_has ev7 '^CREATE z$'
log "ok"
