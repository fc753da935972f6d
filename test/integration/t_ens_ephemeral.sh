#!/usr/bin/env bash
# Ephemerals across real replicas:
# (a) `zkfs create -e` on a follower is seen on the others; kill -9 of that
#     replica removes it from the others within sessionTimeout (2 s) plus a
#     margin, with IN_DELETE for a watcher on another mount (time logged);
# (d) in an ephemeral directory, `exec 9>dir/x` on one mount is seen (with
#     its owner) on the others and goes at `exec 9>&-`;
# (e) kill -9 of the leader holding one: it goes after the election and
#     the session timeout;
# then with sessionTimeout 4 s:
# (b) `zkfs umount` of a replica holding an ephemeral removes it from the
#     others at once, well before the session timeout;
# (c) a replica restarted right after kill -9
#     opens a new session, which closes its old one: the old ephemeral goes
#     well before the timeout.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

now_ms() { echo $(($(date +%s%N) / 1000000)); }

ens_setup 3 sessionTimeout=2000
ens_start_all
m1=$(ens_mnt 1)
mkdir "$m1/e"
for i in 2 3; do ens_wait_exists "$i" e; done

# others_than I: the two other replica ids.
others_than() {
    local i
    for i in 1 2 3; do [ "$i" = "$1" ] || printf '%s ' "$i"; done
}

# hold_eph I NAME: `zkfs create -e` of e/NAME on replica I, held by
# `sleep 60`; waits until all three replicas see it.
hold_eph() {
    local m
    m=$(ens_mnt "$1")
    zk_bg "$ZKFS" create -e "$m/e/$2" "data-$2" -- sleep 60 >>"$ZK_TMP/created"
    for i in 1 2 3; do ens_wait_cat "$i" "e/$2" "data-$2"; done
}

# gone_from I... NAME: NAME is gone from every listed replica.
gone_everywhere() {
    local n=$1 i
    shift
    for i in "$@"; do
        [ ! -e "$(ens_mnt "$i")/e/$n" ] || return 1
    done
}

# ------------------------------------------------------------------ (a)
H=$(ens_follower) || fail "no follower"
read -r A B <<<"$(others_than "$H")"
log "(a) ephemeral e/a held on follower $H, seen on $A and $B"
hold_eph "$H" a
owner=$(xattr "$(ens_mnt "$A")/e/a" user.zk.ephemeralOwner)
[ "$owner" != 0 ] || fail "ephemeralOwner of e/a is 0 on replica $A"
assert_eq "$owner" "$(xattr "$(ens_mnt "$B")/e/a" user.zk.ephemeralOwner)" \
    "ephemeralOwner on replicas $A and $B"

ev=$ZK_TMP/events
zk_bg inotifywait -m -t 120 -e delete --format '%e %f' -o "$ev" \
    "$(ens_mnt "$A")/e" 2>"$ZK_TMP/inotify.err"
wait_for grep -q "Watches established" "$ZK_TMP/inotify.err" ||
    fail "inotifywait did not start"

t0=$(now_ms)
ens_kill9 "$H"
wait_for -t 15 gone_everywhere a "$A" "$B" ||
    fail "(a) e/a still on replicas $A/$B 15 s after kill -9 of its replica (sessionTimeout 2 s)"
dt=$(($(now_ms) - t0))
log "(a) e/a gone from replicas $A and $B ${dt} ms after kill -9 of replica $H (sessionTimeout 2000 ms)"
[ "$dt" -le 5000 ] || fail "(a) expiry took ${dt} ms, more than sessionTimeout 2000 + 3000 ms"
wait_for -t 10 grep -qx "DELETE a" "$ev" || { cat "$ev" >&2; fail "(a) no IN_DELETE for e/a on replica $A"; }
ens_start "$H"
ens_wait_leader
[ ! -e "$(ens_mnt "$H")/e/a" ] || fail "(a) e/a is back on the restarted replica $H"

# ------------------------------------------------------------------ (d)
log "(d) ephemeral directory: exec 9>dir/x on replica 3, seen on 1 and 2"
mkdir "$m1/ed"
setfattr -n user.zkfs.children -v ephemeral "$m1/ed"
children_is() { [ "$(xattr "$(ens_mnt "$1")/ed" user.zkfs.children 2>/dev/null)" = ephemeral ]; }
wait_for children_is 3 || fail "(d) user.zkfs.children not ephemeral on replica 3"
m3=$(ens_mnt 3)
zk_bg bash -c 'exec 9>"$1/ed/x"; echo held >&9; touch "$2";
    for k in $(seq 1 3000); do [ -e "$3" ] && break; sleep 0.02; done
    exec 9>&-; touch "$4"; exec sleep 60' _ \
    "$m3" "$ZK_TMP/d.held" "$ZK_TMP/d.release" "$ZK_TMP/d.released"
dholder=$ZK_BG
wait_for test -e "$ZK_TMP/d.held" || fail "(d) the holder did not start"
for i in 1 2; do ens_wait_exists "$i" ed/x; done
own=$(xattr "$m1/ed/x" user.zkfs.owner)
log "(d) owner seen on replica 1: $own"
assert_match "(^|[^0-9])$dholder([^0-9]|\$)" "$own" "(d) user.zkfs.owner on replica 1 names the holder"
[ "$(xattr "$m1/ed/x" user.zk.ephemeralOwner)" != 0 ] || fail "(d) ed/x is not ephemeral on replica 1"
t0=$(now_ms)
touch "$ZK_TMP/d.release"
wait_for test -e "$ZK_TMP/d.released" || fail "(d) the holder did not close"
for i in 1 2 3; do ens_wait_gone "$i" ed/x 10; done
log "(d) ed/x gone everywhere $(($(now_ms) - t0)) ms after exec 9>&-"

# ------------------------------------------------------------------ (e)
H=$(ens_leader) || fail "no leader"
read -r A B <<<"$(others_than "$H")"
log "(e) ephemeral e/l held on the leader $H; kill -9 of the leader"
hold_eph "$H" l
t0=$(now_ms)
ens_kill9 "$H"
wait_for -t 20 gone_everywhere l "$A" "$B" ||
    fail "(e) e/l still on replicas $A/$B 20 s after kill -9 of the leader $H"
dt=$(($(now_ms) - t0))
log "(e) e/l gone from $A and $B ${dt} ms after kill -9 of the leader (election + sessionTimeout 2000 ms)"
[ "$dt" -le 8000 ] || fail "(e) the old leader's ephemeral took ${dt} ms to go (sessionTimeout 2000 ms)"
ens_start "$H"
ens_wait_leader

# ---------------------------------------- sessionTimeout 4000 (b), (c)
log "sessionTimeout 4000: every replica restarted with it"
for i in 1 2 3; do ens_kill9 "$i"; done
sed -i 's/^sessionTimeout=.*/sessionTimeout=4000/' "$ZK_TMP"/z[123].cfg
ens_start_all

# ------------------------------------------------------------------ (b)
H=$(ens_follower) || fail "no follower"
read -r A B <<<"$(others_than "$H")"
log "(b) ephemeral e/b held on follower $H; zkfs umount of $H"
hold_eph "$H" b
t0=$(now_ms)
ens_stop "$H"
t1=$(now_ms)
wait_for -t 15 gone_everywhere b "$A" "$B" ||
    fail "(b) e/b still on replicas $A/$B after zkfs umount of replica $H"
dt=$(($(now_ms) - t0))
log "(b) e/b gone ${dt} ms after zkfs umount started (umount took $((t1 - t0)) ms)"
[ "$dt" -lt 2500 ] ||
    fail "(b) e/b went ${dt} ms after zkfs umount: not at once (sessionTimeout 4000 ms)"
ens_start "$H"
ens_wait_leader

# ------------------------------------------------------------------ (c)
H=$(ens_follower) || fail "no follower"
read -r A B <<<"$(others_than "$H")"
log "(c) ephemeral e/c held on follower $H; kill -9 and restart of $H at once"
hold_eph "$H" c
t0=$(now_ms)
ens_kill9 "$H"
ens_launch "$H"
wait_for -t 15 gone_everywhere c "$A" "$B" ||
    fail "(c) e/c still on replicas $A/$B after the restart of replica $H"
dt=$(($(now_ms) - t0))
ens__wait_mounted "$H"
log "(c) e/c gone ${dt} ms after kill -9 + restart of replica $H (sessionTimeout 4000 ms)"
[ "$dt" -lt 3000 ] ||
    fail "(c) e/c went ${dt} ms after kill -9 + restart: the new session did not close the old one (sessionTimeout 4000 ms)"
ens_wait_leader
[ ! -e "$(ens_mnt "$H")/e/c" ] || fail "(c) e/c is on the restarted replica $H"
ens_wait_synced
ens_trees_identical
