#!/usr/bin/env bash
# `zkfs create -e PATH [DATA] [-- CMD]`: the node lives while the command
# holds it; killing zkfs (even with SIGKILL) releases it; CMD's exit status
# is passed on; SIGTERM is forwarded to CMD; when the node is lost (here:
# deleted by rm) CMD gets SIGTERM, and SIGKILL after the 5 s grace if it
# ignores it, and create without CMD exits 1 (t_ens_lease: the session).
. "$(dirname "$0")/lib.sh"

M=$ZK_TMP/mnt
zk_start "$ZK_TMP/data" "$M"

log "create -e ... -- sleep 30, then kill -9 zkfs"
zk_bg "$ZKFS" create -e "$M/lock" data -- sleep 30 >"$ZK_TMP/out"
zpid=$ZK_BG
wait_for test -s "$ZK_TMP/out" || fail "create -e printed nothing"
assert_eq "$M/lock" "$(cat "$ZK_TMP/out")" "printed path"
assert_eq data "$(cat "$M/lock")" "content"
[ "$(xattr "$M/lock" user.zk.ephemeralOwner)" != 0 ] || fail "not ephemeral"
assert_match "(^|[^0-9])$zpid([^0-9]|\$)" "$(xattr "$M/lock" user.zkfs.owner)" \
    "user.zkfs.owner names the zkfs process"
wait_for pgrep -P "$zpid" sleep >/dev/null || fail "CMD did not start"
child=$(pgrep -P "$zpid" sleep)
ZK_PIDS+=("$child")
kill -9 "$zpid"
wait_for -t 30 not test -e "$M/lock" || fail "lock survived kill -9 of zkfs"
kill -9 "$child"

log "CMD's exit status; CMD sees the node; it goes when CMD ends"
assert_rc 3 "$ZKFS" create -e "$M/e2" -- sh -c 'test -e "$1" && exit 3' _ "$M/e2"
wait_for -t 30 not test -e "$M/e2" || fail "e2 survived CMD"

log "SIGTERM is forwarded to CMD"
zk_bg "$ZKFS" create -e "$M/e3" -- sleep 30 >/dev/null
zpid=$ZK_BG
wait_for pgrep -P "$zpid" sleep >/dev/null || fail "CMD did not start"
kill -TERM "$zpid"
rc=0
wait "$zpid" || rc=$?
assert_eq 143 "$rc" "exit status after SIGTERM (CMD killed by SIGTERM)"
wait_for -t 30 not test -e "$M/e3" || fail "e3 survived"

log "without CMD: held until SIGTERM, then exit 0"
zk_bg "$ZKFS" create -e "$M/e4" x >"$ZK_TMP/out4"
zpid=$ZK_BG
wait_for test -s "$ZK_TMP/out4" || fail "create -e printed nothing"
[ -e "$M/e4" ] || fail "e4 missing while held"
kill -TERM "$zpid"
rc=0
wait "$zpid" || rc=$?
assert_eq 0 "$rc" "exit status after SIGTERM without CMD"
wait_for -t 30 not test -e "$M/e4" || fail "e4 survived"

log "the node is lost: CMD gets SIGTERM"
zk_bg "$ZKFS" create -e "$M/e5" -- sh -c \
    'trap "echo TERM >\"\$1\"; exit 7" TERM; : >"$1.ready"
     while :; do sleep 0.05; done' \
    _ "$ZK_TMP/e5.term" >"$ZK_TMP/out5" 2>"$ZK_TMP/err5"
zpid=$ZK_BG
wait_for test -s "$ZK_TMP/out5" || fail "create -e printed nothing"
wait_for test -e "$ZK_TMP/e5.term.ready" || fail "CMD did not start"
rm "$M/e5"
rc=0
wait "$zpid" || rc=$?
assert_eq 7 "$rc" "CMD's status after its SIGTERM"
assert_eq TERM "$(cat "$ZK_TMP/e5.term")" "CMD was told"
assert_match "ephemeral node is lost" "$(cat "$ZK_TMP/err5")" "the message"

log "the node is lost, CMD ignores SIGTERM: SIGKILL after the grace"
# CMD says when its trap is set: a SIGTERM before that would kill it.
zk_bg "$ZKFS" create -e "$M/e6" -- sh -c 'trap "" TERM; : >"$1"; sleep 60' \
    sh "$ZK_TMP/e6.ready" >"$ZK_TMP/out6" 2>/dev/null
zpid=$ZK_BG
wait_for test -s "$ZK_TMP/out6" || fail "create -e printed nothing"
wait_for test -e "$ZK_TMP/e6.ready" || fail "CMD did not start"
rm "$M/e6"
rc=0
wait "$zpid" || rc=$?
assert_eq 137 "$rc" "killed after the grace period"

log "the node is lost, no CMD: exit 1"
zk_bg "$ZKFS" create -e "$M/e7" >"$ZK_TMP/out7" 2>/dev/null
zpid=$ZK_BG
wait_for test -s "$ZK_TMP/out7" || fail "create -e printed nothing"
rm "$M/e7"
rc=0
wait "$zpid" || rc=$?
assert_eq 1 "$rc" "exit status of a holder whose node was lost"

log "the node is lost before it is watched: CMD never starts, exit 1"
# create -e blocks writing the node's name to a full pipe (after the
# create, before it watches the node); the node is deleted meanwhile.
mkfifo "$ZK_TMP/full"
exec 7<>"$ZK_TMP/full"
head -c 65536 /dev/zero >&7             # the pipe's capacity: now full
zk_bg "$ZKFS" create -e "$M/e8" -- touch "$ZK_TMP/ran8" >&7 2>"$ZK_TMP/err8"
zpid=$ZK_BG
wait_for test -e "$M/e8" || fail "create -e made no node"
rm "$M/e8"
dd bs=65536 count=1 iflag=fullblock <&7 >/dev/null 2>&1  # let it go on
rc=0
wait "$zpid" || rc=$?
exec 7>&-
assert_eq 1 "$rc" "exit status when the node was gone before the watch"
[ ! -e "$ZK_TMP/ran8" ] || fail "CMD ran although its node was already lost"
assert_match "not running the command" "$(cat "$ZK_TMP/err8")" "the message"

zk_stop "$M"
