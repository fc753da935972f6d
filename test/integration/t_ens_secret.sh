#!/usr/bin/env bash
# Peer authentication with real processes: a 4th server (an observer) whose
# secret differs is refused — it never joins, never gets the tree nor later
# writes — the others log why ("secret") and go on working. Garbage sent to
# a replica's peer port (random bytes, a frame header with the right magic
# and a huge length, a HELLO with a bad tag) costs a connection, never a
# crash or a stall: the daemons stay alive and writes still commit.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

ens_setup 4 observer=4
head -c 32 /dev/urandom >"$ZK_TMP/secret4"
chmod 600 "$ZK_TMP/secret4"
sed -i "s|^secretFile=.*|secretFile=$ZK_TMP/secret4|" "$(ens_cfg 4)"
grep -q "^secretFile=$ZK_TMP/secret4\$" "$(ens_cfg 4)" || fail "z4.cfg not rewritten"
cmp -s "$ZK_TMP/secret" "$ZK_TMP/secret4" && fail "the two secrets are equal"

for i in 1 2 3; do ens_launch "$i"; done
for i in 1 2 3; do ens__wait_mounted "$i"; done
ens_wait_leader
m1=$(ens_mnt 1)
m4=$(ens_mnt 4)
echo before >"$m1/before"
for i in 2 3; do ens_wait_cat "$i" before before; done

log "server 4 starts with another secret"
ens_launch 4
ens__wait_mounted 4    # it mounts without a quorum after a bounded wait
ENS_UP[4]=0            # not part of the ensemble: left out of the helpers
pid4=$(ens_pid 4)
zk_pid_gone "$pid4" && fail "replica 4 exited"

secret_logged() {
    local i
    for i in 1 2 3; do
        grep -qi "wrong secret" "$ZK_TMP/zkfs.r$i.log" || return 1
    done
}
wait_for -t 20 secret_logged || {
    tail -n 5 "$ZK_TMP"/zkfs.r[123].log >&2
    fail "replicas 1-3 do not log why server 4 is refused (no 'secret' in their logs)"
}
for i in 1 2 3; do
    log "replica $i: $(grep -i "wrong secret" "$ZK_TMP/zkfs.r$i.log" | head -1)"
done

log "a write on replica 1 commits on 1-3 and never reaches 4"
echo after >"$m1/after"
for i in 2 3; do ens_wait_cat "$i" after after; done
# Give replica 4 the time it would need to sync (several sync intervals):
# a bounded wait for something that must not happen.
if wait_for -t 3 test -e "$m4/after" 2>/dev/null; then
    fail "replica 4 with the wrong secret got a write"
fi
[ ! -e "$m4/before" ] || fail "replica 4 with the wrong secret got the tree"
role4=$(ens_field 4 role)
stale4=$(ens_field 4 stale)
lead4=$(ens_field 4 leader_id)
log "replica 4: role $role4, stale $stale4, leader $lead4, zxid $(ens_field 4 zxid)"
[ "$role4" = looking ] || [ "$stale4" = true ] ||
    fail "replica 4 is $role4 and not stale"
[ "$lead4" = 0 ] || [ -z "$lead4" ] || [ "$stale4" = true ] ||
    fail "replica 4 claims leader $lead4"
assert_fail bash -c 'echo x >"$1"' _ "$m4/w4"
log "a write on replica 4 fails: $ZK_ERR"
for i in 1 2 3; do
    [ ! -e "$(ens_mnt "$i")/w4" ] || fail "the write on replica 4 reached replica $i"
    assert_eq false "$(ens_field "$i" stale)" "stale on replica $i"
done
zk_pid_gone "$pid4" && fail "replica 4 exited"
kill -9 "$pid4"
wait_for -t 20 zk_pid_gone "$pid4" || fail "replica 4 survived kill -9"
fusermount3 -u -z "$m4" 2>/dev/null || true

L=$(ens_leader) || fail "no leader"
F=$(ens_follower) || fail "no follower"

# feed PORT DESC CMD: runs a bounded garbage sender against PORT.
feed() {
    local port=$1 what=$2 rc=0
    timeout 10 bash -c "$3" _ "$port" 2>/dev/null || rc=$?
    [ "$rc" -ne 124 ] || fail "sending $what to port $port stalled for 10 s"
    log "sent $what to port $port (rc $rc)"
}

# check_alive ROUND: every replica alive, a write on each commits everywhere.
check_alive() {
    local i j
    for i in 1 2 3; do
        zk_pid_gone "$(ens_pid "$i")" && fail "replica $i died after $1"
    done
    for i in 1 2 3; do
        echo "$1 $i" >"$(ens_mnt "$i")/alive$i" ||
            fail "write on replica $i after $1 failed"
    done
    for i in 1 2 3; do
        for j in 1 2 3; do ens_wait_cat "$j" "alive$i" "$1 $i"; done
    done
}

for i in "$L" "$F"; do
    port=$(ens_port "$i")
    log "garbage to replica $i (port $port)"
    feed "$port" "100 kB of random bytes" \
        'head -c 100000 /dev/urandom >"/dev/tcp/127.0.0.1/$1"'
    # magic ZKFR, version 1, HELLO, flags 0, length 0xffffffff, id 1, seq 0
    feed "$port" "a header with a 4 GiB length" \
        'printf "ZKFR\x01\x01\x00\x00\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00" >"/dev/tcp/127.0.0.1/$1"'
    # a well-formed HELLO (32-byte nonce + expected id) with a random tag
    feed "$port" "a HELLO with a bad tag" \
        '{ printf "ZKFR\x01\x01\x00\x00\x00\x00\x00\x28\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00";
           head -c 32 /dev/urandom; printf "\x00\x00\x00\x00\x00\x00\x00\x01"; head -c 32 /dev/urandom; } >"/dev/tcp/127.0.0.1/$1"'
    for k in $(seq 1 20); do
        feed "$port" "burst $k: 4 kB of random bytes" \
            'head -c 4096 /dev/urandom >"/dev/tcp/127.0.0.1/$1"' >/dev/null
    done
    check_alive "garbage to $i"
done

ens_wait_synced
ens_trees_identical

# Last, as it leaves replicas 1 and 2 with their connection slots taken:
# idle unauthenticated connections (a port scanner, a half-open client)
# must not lock the real peers out. 70 connections to each of replicas 1
# and 2 (more than ENS_INBOUND_MAX, 64), then replica 3 — which dials both
# of them, being the highest id — is killed and restarted: it must rejoin.
log "70 idle unauthenticated connections to each of replicas 1 and 2; replica 3 restarts"
hold_idle() {
    local k
    for k in $(seq 1 70); do
        eval "exec $((k + 10))<>/dev/tcp/127.0.0.1/$1" || break
    done
    touch "$2"
    exec sleep 60
}
for i in 1 2; do
    zk_bg hold_idle "$(ens_port "$i")" "$ZK_TMP/idle.$i"
    wait_for -t 20 test -e "$ZK_TMP/idle.$i" || fail "could not open the idle connections"
done
ens_kill9 3
ens_start 3
if ! wait_for -t 20 ens__agreed; then
    for i in 1 2 3; do
        log "replica $i: role $(ens_field "$i" role) leader $(ens_field "$i" leader_id) stale $(ens_field "$i" stale)"
    done
    grep -h "too many unauthenticated" "$ZK_TMP"/zkfs.r[12].log | tail -n 2 >&2
    fail "replica 3 could not rejoin while 70 idle unauthenticated connections were held to replicas 1 and 2 (no handshake timeout: the inbound slots stay taken)"
fi
check_alive "idle connections"
ens_wait_synced
ens_trees_identical
for i in 1 2 3; do
    n=$(grep -ciE "refused|closed" "$ZK_TMP/zkfs.r$i.log" || true)
    log "replica $i logged $n refused/closed connections"
done
