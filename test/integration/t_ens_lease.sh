#!/usr/bin/env bash
# t_ens_lease.sh — a replica cut off from its quorum gives its session up
# before the leader can expire it (SPEC 3, "Sessions and leases"): its own
# ephemerals vanish from its mount (IN_DELETE to local watchers), their
# descriptors fail with ENOLINK, `zkfs create -e -- CMD` stops its CMD
# (SIGTERM), and once it rejoins the ensemble closes that session
# everywhere (the other replicas lose the ephemeral too).
#
# The cut: SIGSTOP of the two other replicas (a stopped process sends
# nothing, like a partition), resumed by SIGCONT; both are this test's own
# daemons, known by pid.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=ens_lib.sh
. "$here/ens_lib.sh"

ens_setup 3 sessionTimeout=4000
ens_start_all
F=$(ens_follower)
others=()
for i in 1 2 3; do [ "$i" != "$F" ] && others+=("$i"); done
m=$(ens_mnt "$F")

mkdir "$m/eph"
setfattr -n user.zkfs.children -v ephemeral "$m/eph"
exec 9>"$m/eph/me"
echo data >&9
ens_wait_synced
for i in "${others[@]}"; do
    [ -e "$(ens_mnt "$i")/eph/me" ] || fail "ephemeral not on replica $i"
done

zk_bg timeout 60 inotifywait -m -r --format '%e %w%f' "$m" \
    >"$ZK_TMP/ino.log" 2>&1
wait_for grep -q "Watches established" "$ZK_TMP/ino.log"
# And one whose CMD ignores nothing: it ends by the SIGTERM (status 143).
zk_bg bash -c '"$ZKFS" create -e "$1" -- sleep 600 >"$2.out" 2>"$2.err"
               echo $? >"$2"' _ "$m/eph/cmd2" "$ZK_TMP/cmd.rc"
wait_for test -s "$ZK_TMP/cmd.rc.out" ||
    fail "zkfs create -e did not create: $(cat "$ZK_TMP/cmd.rc.err")"

pids=()
for i in "${others[@]}"; do pids+=("${ZK_PID_OF[$(ens_mnt "$i")]}"); done
kill -STOP "${pids[@]}"
log "stopped replicas ${others[*]}; replica $F is cut off"
t0=$(date +%s%N)
wait_for -t 15 not test -e "$m/eph/me" ||
    fail "the cut-off replica still shows its ephemeral"
ms=$((($(date +%s%N) - t0) / 1000000))
log "ephemeral gone from the cut-off mount after $ms ms (lease: 3200 ms from a message sent before)"
# Before the leader could expire the session (4000 ms after it last
# heard from this replica, which is before t0).
[ "$ms" -lt 4000 ] || fail "gone only after $ms ms: not before expiry"
wait_for -t 10 test -s "$ZK_TMP/cmd.rc" ||
    fail "zkfs create -e -- CMD kept running after the loss"
assert_eq 143 "$(cat "$ZK_TMP/cmd.rc")" "CMD's end (SIGTERM)"
assert_match "ephemeral node is lost" "$(cat "$ZK_TMP/cmd.rc.err")" "the report"
wait_for -t 5 grep -q "DELETE $m/eph/me" "$ZK_TMP/ino.log" ||
    fail "no IN_DELETE for the lost ephemeral: $(cat "$ZK_TMP/ino.log")"
assert_eq "" "$(ls "$m/eph")" "listing of the cut-off replica"
rc=0
err=$( { echo more >&9; } 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "a write to the lost ephemeral succeeded"
assert_match "Link has been severed" "$err" "the holder's error"
exec 9>&-
assert_eq true "$(ens_field "$F" stale)" "status of the cut-off replica"
grep -q "given up" "$ZK_TMP/zkfs.r$F.log" ||
    fail "the log does not say the session was given up"

kill -CONT "${pids[@]}"
log "resumed replicas ${others[*]}"
ens_wait_leader
ens_wait_synced
for i in 1 2 3; do
    wait_for -t 20 not test -e "$(ens_mnt "$i")/eph/me" ||
        fail "replica $i still has the given-up ephemeral"
done
# The replica works again: a new session, new ephemerals.
exec 9>"$m/eph/again"
ens_wait_synced
for i in "${others[@]}"; do
    wait_for -t 10 test -e "$(ens_mnt "$i")/eph/again" ||
        fail "new ephemeral of replica $F not on replica $i"
done
exec 9>&-
for i in 1 2 3; do
    wait_for -t 10 not test -e "$(ens_mnt "$i")/eph/again" ||
        fail "released ephemeral still on replica $i"
done
ens_trees_identical
log "ok"
