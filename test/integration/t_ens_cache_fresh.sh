#!/usr/bin/env bash
# A mount's cached sizes and listings follow the store while its replays
# (the inotify events for changes made elsewhere) are still queued
# (BUGS.md 8; docs/filesystem.md, "Replays"). Replica 2's echo thread
# waits 1 s before every replay (ZKFS_TEST_ECHO_DELAY_MS), so four new
# files made on mount 1 queue about 8 s of replays there; then mount 1
# rewrites y/b and creates y/c. On mount 2, once y/b reads the new
# content, `stat` must show its new size and `ls` the new file within a
# few seconds, while replays are still queued: the invalidations do not
# wait behind them. (Before, they were acted out in one queue with the
# replays: `stat` showed the old size for the whole backlog, while `cat`
# already showed the new content.) Then: the events for changes whose
# paths a later change has moved or removed in the store still come.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

ens_setup 3
ens_launch 1
ZKFS_TEST_ECHO_DELAY_MS=1000 ens_launch 2
ens_launch 3
for i in 1 2 3; do ens__wait_mounted "$i"; done
ens_wait_leader
m1=$(ens_mnt 1)
m2=$(ens_mnt 2)

queued() { zk_metric "$m2" zkfs_echo_queue_items; }
queue_is() { [ "$(queued)" "$1" "$2" ]; }
size_is() { [ "$(stat -c %s "$m2/y/b" 2>/dev/null)" = "$1" ]; }
lists_c() { ls "$m2/y" 2>/dev/null | grep -qx c; }
reads_new() { [ "$(cat "$m2/y/b" 2>/dev/null)" = 12345678 ]; }

mkdir "$m1/y"
echo 1 >"$m1/y/b"
ens_wait_cat 2 y/b 1 30
wait_for -t 30 queue_is = 0 || fail "mount 2 did not catch up: $(queued) items"
# Mount 2's kernel caches b's attributes and y's listing (a day long).
assert_eq 2 "$(stat -c %s "$m2/y/b")" "b's size on mount 2"
ls "$m2/y" >/dev/null

for i in 1 2 3 4; do echo "x$i" >"$m1/y/x$i"; done
echo 12345678 >"$m1/y/b"
echo new >"$m1/y/c"
wait_for -t 10 reads_new || fail "mount 2 never read b's new content"
wait_for -t 4 size_is 9 ||
    fail "stat of b on mount 2 says $(stat -c %s "$m2/y/b") bytes while it reads 9 ($(queued) items queued)"
wait_for -t 4 lists_c || fail "ls y on mount 2 lacks c: $(ls "$m2/y" | tr '\n' ' ')"
queue_is -ge 1 ||
    fail "the replays were done before the checks: nothing was tested"
log "fresh with $(queued) items still queued on mount 2"
wait_for -t 30 queue_is = 0 || fail "mount 2's replays did not finish: $(queued) items"
assert_eq 9 "$(stat -c %s "$m2/y/b")" "b's size after the replays"

# The inotify events still come, in order, for changes whose paths a
# later change on mount 1 has already moved or removed in the store: a
# rewrite of k/g then k renamed to k2; r/s/h then `rm -r r`.
mkdir "$m1/y/k" "$m1/y/r" "$m1/y/r/s"
echo 1 >"$m1/y/k/g"
echo h >"$m1/y/r/s/h"
ens_wait_cat 2 y/r/s/h h 30
wait_for -t 30 queue_is = 0 || fail "mount 2 did not catch up: $(queued) items"
ev=$ZK_TMP/events
zk_bg inotifywait -m -r -t 120 -e close_write,moved_from,moved_to,delete \
    --format '%e %w%f' -o "$ev" "$m2/y" 2>"$ZK_TMP/inotify.err"
wait_for grep -q "Watches established" "$ZK_TMP/inotify.err" ||
    fail "inotifywait did not start"
echo 2 >"$m1/y/k/g"
mv "$m1/y/k" "$m1/y/k2"
rm -r "$m1/y/r"
wait_for -t 60 queue_is = 0 || fail "mount 2's replays did not finish: $(queued) items"
for want in "CLOSE_WRITE,CLOSE $m2/y/k/g" "MOVED_FROM,ISDIR $m2/y/k" \
    "MOVED_TO,ISDIR $m2/y/k2" "DELETE $m2/y/r/s/h" \
    "DELETE,ISDIR $m2/y/r/s" "DELETE,ISDIR $m2/y/r"; do
    wait_for -t 10 grep -qxF -- "$want" "$ev" || {
        sed 's/^/    /' "$ev" >&2
        fail "mount 2 did not report '$want' while its replays lagged"
    }
done
for i in 1 2 3; do ens_stop "$i"; done
