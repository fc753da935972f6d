#!/usr/bin/env bash
# t_ens_pause.sh — the lease survives a pause (SPEC 3, "Sessions and
# leases"; issue 9 item 3): a replica stopped (SIGSTOP) for longer than
# sessionTimeout answers nothing about its own session's ephemerals once
# it runs again — not even the check its holder had queued through the
# pause — and no check it answered "held" can have been answered after
# another mount was granted the same exclusive name.
#
# 3 replicas, sessionTimeout 2 s. A holder (helpers/probe.c) creates an
# ephemeral on replica X and checks it through its descriptor every 10 ms
# (fgetxattr + pread, both reach the daemon); takers on the two other
# mounts try to create the same name every 5 ms. X is stopped for 3.5 s
# (the fault's length, not a wait for anything), then resumed. Every
# process stamps its answers with CLOCK_MONOTONIC (one clock: one host):
# each "ok" the holder got must have returned before the first taker's
# successful create began, the first failure is ENOLINK and nothing is
# "ok" after it. Once as a follower, once as the leader; then the same
# with a flock(2) lock on a plain file (the takers poll LOCK_NB; the
# holder checks with pread and fgetxattr user.zkfs.lock.token).
#
# Then: a holder that closes while its replica has no quorum (the two
# others stopped) leaves nothing behind once the quorum is back.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=ens_lib.sh
. "$here/ens_lib.sh"

probe=$(zk_helper probe) || exit 1

ens_setup 3 sessionTimeout=2000 tickTime=100
ens_start_all

# first_field FILE WORD: the T0 of the first line of FILE ending in WORD.
first_t0() { awk -v w="$2" '$3 == w { print $1; exit }' "$1"; }
has_line() { grep -q " $2\$" "$1" 2>/dev/null; }

# pause_round X TAG [flock]: an ephemeral (or, with flock, a flock(2)
# lock on a plain file) held on replica X.
pause_round() {
    local x=$1 tag=$2 kind=${3:-} m i pid hold=hold grab=grab
    m=$(ens_mnt "$x")
    mkdir "$m/$tag"
    if [ "$kind" = flock ]; then
        hold=flockhold grab=flockgrab
        touch "$m/$tag/lock"
        ens_wait_synced
    else
        setfattr -n user.zkfs.children -v ephemeral "$m/$tag"
    fi
    zk_bg "$probe" $hold "$m/$tag/lock" "$ZK_TMP/hold.$tag" "$ZK_TMP/stop.$tag"
    wait_for has_line "$ZK_TMP/hold.$tag" ok || fail "the holder never checked"
    local others=()
    for i in 1 2 3; do [ "$i" != "$x" ] && others+=("$i"); done
    for i in "${others[@]}"; do
        ens_wait_exists "$i" "$tag/lock"
        zk_bg "$probe" $grab "$(ens_mnt "$i")/$tag/lock" \
            "$ZK_TMP/grab.$tag.$i" "$ZK_TMP/stop.$tag"
    done
    pid=$(ens_pid "$x")
    kill -STOP "$pid"
    log "$tag: replica $x (pid $pid) stopped"
    sleep 3.5                   # the pause itself: longer than sessionTimeout
    kill -CONT "$pid"
    log "$tag: replica $x resumed"
    wait_for -t 20 eval "cat $ZK_TMP/grab.$tag.* 2>/dev/null | grep -q granted" ||
        fail "$tag: nobody else was granted the name"
    wait_for -t 20 eval "grep -qv -e ' ok\$' -e created $ZK_TMP/hold.$tag" ||
        fail "$tag: the holder's checks never failed: $(tail -3 "$ZK_TMP/hold.$tag")"
    touch "$ZK_TMP/stop.$tag"
    local g
    g=$(cat "$ZK_TMP"/grab."$tag".* | awk '$3 == "granted" { print $1 }' |
        sort -n | head -1)
    # Every "held" answer returned before the grant's create began; the
    # first failure is ENOLINK; nothing after it is "ok"; the check that
    # was blocked through the pause (longer than 2 s) failed.
    awk -v g="$g" '
        $3 == "created" { next }
        $3 == "ok" && failed { print "ok after a failure: " $0; bad = 1 }
        $3 == "ok" && $2 >= g { print "held after the grant at " g ": " $0; bad = 1 }
        $3 != "ok" && !failed { failed = 1; first = $3 }
        $2 - $1 > 2000000000 { blocked = 1; if ($3 == "ok") { print "blocked check said held: " $0; bad = 1 } }
        END {
            if (first != "ENOLINK") { print "first failure: " first; bad = 1 }
            if (!blocked) print "note: no check was blocked through the pause"
            exit bad
        }' "$ZK_TMP/hold.$tag" || fail "$tag: $(tail -5 "$ZK_TMP/hold.$tag")"
    local last_ok
    last_ok=$(awk '$3 == "ok" { t = $2 } END { print t }' "$ZK_TMP/hold.$tag")
    log "$tag: last held answer $(((g - last_ok) / 1000000)) ms before the grant; first failure $(first_t0 "$ZK_TMP/hold.$tag" ENOLINK)"
    grep -q "given up" "$ZK_TMP/zkfs.r$x.log" ||
        fail "$tag: replica $x's log does not say its session was given up"
    ens_wait_leader 30
    ens_wait_synced 30
}

F=$(ens_follower)
pause_round "$F" follower
L=$(ens_leader)
pause_round "$L" leader
F=$(ens_follower)
pause_round "$F" flock-follower flock
L=$(ens_leader)
pause_round "$L" flock-leader flock

# A release while the replica has no quorum must not linger.
ens_wait_leader 30
F=$(ens_follower)
m=$(ens_mnt "$F")
mkdir "$m/rel"
setfattr -n user.zkfs.children -v ephemeral "$m/rel"
exec 9>"$m/rel/me"
ens_wait_synced 30
pids=()
for i in 1 2 3; do [ "$i" != "$F" ] && pids+=("$(ens_pid "$i")"); done
kill -STOP "${pids[@]}"
exec 9>&-
log "released rel/me on replica $F without a quorum"
sleep 2.5                       # the cut's length: longer than sessionTimeout
kill -CONT "${pids[@]}"
ens_wait_leader 30
for i in 1 2 3; do
    ens_wait_gone "$i" rel/me 20
done
ens_wait_synced 30
ens_trees_identical
log "ok"
