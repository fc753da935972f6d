#!/usr/bin/env bash
# flock(1) on a zkfs file: one holder at a time; a waiter gets the lock when
# the holder is killed with SIGKILL.
. "$(dirname "$0")/lib.sh"

M=$ZK_TMP/mnt
zk_start "$ZK_TMP/data" "$M"
touch "$M/lock"

# -o: only flock(1) itself holds the lock, not the command it runs.
zk_bg flock -o "$M/lock" bash -c 'touch "$1"; exec sleep 600' _ "$ZK_TMP/held"
holder=$ZK_BG
wait_for test -e "$ZK_TMP/held" || fail "the first holder did not get the lock"
assert_fail flock -n "$M/lock" true
log "a blocking waiter gets the lock once the holder is killed"
zk_bg flock "$M/lock" touch "$ZK_TMP/second"
waiter=$ZK_BG
[ ! -e "$ZK_TMP/second" ] || fail "the waiter got the lock while it was held"
sleeper=$(pgrep -P "$holder")
ZK_PIDS+=("$sleeper")
kill -9 "$holder"
wait_for -t 30 test -e "$ZK_TMP/second" || fail "the waiter never got the lock"
wait "$waiter"
flock -n "$M/lock" true || fail "lock still held after everyone left"

zk_stop "$M"
