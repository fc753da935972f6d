#!/usr/bin/env bash
# t_ens_linear.sh — linearizability under faults, with real processes
# (SPEC 3: writes are linearizable, and so is a read after `zkfs sync`;
# issue 11 item 6). A 3-replica ensemble, each replica in its own network
# namespace (ens_net_setup); CLIENTS client processes per mount
# (helpers/linclient.c) run random whole-file writes, conditional writes
# (the control file's "set VERSION", as `zkfs set -v`), reads after a
# sync, version reads after a sync, exclusive creates and deletes on KEYS
# files at a time (a new set of files every GEN_MS), and record each operation's invocation and
# completion on CLOCK_MONOTONIC (one host, one clock), arguments and
# result. Meanwhile the script injects, on a schedule: kill -9 and restart
# of a follower and of the leader, SIGSTOP/SIGCONT of the leader and of a
# follower, and network partitions of a follower and of the leader. Then
# the history is checked by lincheck (test/lin/: a Wing-Gong/Lowe search
# per key, with a register-with-version model; operations that timed out
# or failed without saying whether they took effect are indeterminate).
#
# The test fails when the history is not linearizable (the checker prints
# the smallest failing part it found), when the checker cannot decide
# within its search bound, when the history is too small to mean much,
# when the replicas' trees differ at the end, or when the checker does not
# catch a stale read injected into a copy of the history (so the check
# itself can be seen to fail). On failure the history stays in
# $ZK_TMP/hist (run.sh keeps a failed test's directory).
#
# Environment: ZK_LIN_CLIENTS (per mount, default 3), ZK_LIN_GENS (key
# generations, default 16), ZK_LIN_GEN_MS (default 3000), ZK_LIN_KEYS
# (default 3).
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=ens_lib.sh
. "$here/ens_lib.sh"

client=$(zk_helper linclient) || exit 1
lincheck=$(zk_helper lincheck) || exit 1
trap 'rc=$?; ens_net_cleanup; (exit $rc); zk__cleanup' EXIT

CLIENTS=${ZK_LIN_CLIENTS:-3}
GENS=${ZK_LIN_GENS:-16}
GEN_MS=${ZK_LIN_GEN_MS:-3000}
KEYS=${ZK_LIN_KEYS:-3}
H=$ZK_TMP/hist
mkdir -p "$H"

# tickTime 100: a dead link is noticed after 0.5 s, a write without a
# quorum fails after 1.5 s, so many faults fit in the run.
ens_net_setup 3 tickTime=100 sessionTimeout=2000
ens_start_all
"$client" setup "$(ens_mnt 1)" "$GENS" "$KEYS" "$H/init" ||
    fail "could not create the keys"
ens_wait_synced 30

# --- the clients ---------------------------------------------------------------
start=$("$client" now)
clients=()
for i in 1 2 3; do
    for c in $(seq 1 "$CLIENTS"); do
        p=$((i * 10 + c))
        zk_bg "$client" run "$p" "$(ens_mnt "$i")" "$H/c.$p" "$ZK_TMP/stop" \
            "$start" "$GEN_MS" "$GENS" "$KEYS" "$((RANDOM + p))"
        clients+=("$ZK_BG")
    done
done
run_s=$((GENS * GEN_MS / 1000))
log "$((3 * CLIENTS)) clients on 3 mounts for ${run_s} s, $KEYS keys at a time, a new set every $GEN_MS ms"

# --- the faults ----------------------------------------------------------------
t0=$SECONDS
elapsed() { echo $((SECONDS - t0)); }
faults=()
note() {
    faults+=("$(elapsed)s: $*")
    log "fault at $(elapsed) s: $*"
}

# pick ROLE: a live replica in ROLE (leader or follower), after waiting
# (10 s at most) for an agreed leader; any live replica if there is none.
pick() {
    wait_for -t 10 ens__agreed 2>/dev/null || true
    if [ "$1" = leader ]; then ens_leader && return 0; fi
    ens_follower && return 0
    ens_live | awk '{ print $1 }'
}

kill9_round() {
    local r
    r=$(pick "$1")
    note "kill -9 of $1 $r (pid $(ens_pid "$r"))"
    ens_kill9 "$r"
    sleep 1.5
    ens_start "$r"
    note "replica $r restarted"
}

pause_round() {
    local r pid
    r=$(pick "$1")
    pid=$(ens_pid "$r")
    note "SIGSTOP of $1 $r (pid $pid) for $2 s"
    kill -STOP "$pid"
    sleep "$2"
    kill -CONT "$pid"
    note "SIGCONT of replica $r"
}

cut_round() {
    local r
    r=$(pick "$1")
    note "partition of $1 $r for $2 s"
    ens_net_cut "$r"
    sleep "$2"
    ens_net_heal "$r"
    note "replica $r healed"
}

schedule=(
    "kill9_round follower" "cut_round leader 3" "pause_round leader 2.5"
    "kill9_round leader" "cut_round follower 3" "pause_round follower 1.5"
)
sleep 2
k=0
while [ $(($(elapsed) + 6)) -lt "$run_s" ]; do
    ${schedule[$((k % ${#schedule[@]}))]}
    k=$((k + 1))
    sleep 1.5
done

# --- the end of the run --------------------------------------------------------
clients_done() {
    local p
    for p in "${clients[@]}"; do zk_pid_gone "$p" || return 1; done
}
left=$((run_s + 20 - $(elapsed)))
if ! wait_for -t $((left > 5 ? left : 5)) clients_done; then
    touch "$ZK_TMP/stop"
    if ! wait_for -t 20 clients_done; then
        log "clients still running 20 s after the stop file: killed (their last operation stays indeterminate)"
        for p in "${clients[@]}"; do kill -9 "$p" 2>/dev/null; done
    fi
fi
for p in "${clients[@]}"; do
    wait "$p" 2>/dev/null
    st=$?
    [ "$st" = 0 ] || [ "$st" = 137 ] || fail "client pid $p exited with $st"
done
log "faults (${#faults[@]} events):"
for f in "${faults[@]}"; do log "  $f"; done
ens_wait_leader 30
ens_wait_synced 30
ens_trees_identical

# --- the check -----------------------------------------------------------------
cat "$H"/c.* >"$ZK_TMP/all"
# The completed form of each operation (the last line of its PROC ID).
awk '$1 != "init" { last[$1 " " $2] = $0 } END { for (k in last) print last[k] }' \
    "$ZK_TMP/all" >"$ZK_TMP/ops"
log "operations by kind and result:"
awk '{ n[$6 " " $9]++ } END { for (k in n) printf "#   %-10s %d\n", k, n[k] }' \
    "$ZK_TMP/ops" | sort
count() { awk -v op="$1" -v st="$2" '$6 == op && $9 == st { n++ } END { print n + 0 }' "$ZK_TMP/ops"; }
total=$(wc -l <"$ZK_TMP/ops")
[ "$total" -ge 600 ] || fail "only $total operations recorded"
for want in "r ok 100" "w ok 100" "cas ok 20" "cas bad 10" "v ok 30" \
    "c ok 20" "c bad 10" "d ok 10"; do
    read -r op st min <<<"$want"
    [ "$(count "$op" "$st")" -ge "$min" ] ||
        fail "only $(count "$op" "$st") operations '$op' with result '$st' (want $min)"
done

rc=0
"$lincheck" "$H/init" "$H"/c.* >"$ZK_TMP/verdict" 2>&1 || rc=$?
sed 's/^/# /' "$ZK_TMP/verdict"
case $rc in
    0) ;;
    1) fail "the history is not linearizable (kept in $H; lincheck $H/init $H/c.*)" ;;
    3) fail "the checker could not decide within its search bound (history in $H)" ;;
    *) fail "lincheck failed (exit $rc)" ;;
esac

# The check must be able to fail: a read of a key's initial value, after
# a write of that key completed, is stale. Injected into a copy.
read -r key t1 < <(awk '$6 == "w" && $9 == "ok" { print $5, $4; exit }' "$ZK_TMP/ops")
[ -n "$key" ] || fail "no completed write to build a stale read from"
mkdir -p "$ZK_TMP/bad"
cp "$H"/* "$ZK_TMP/bad/"
echo "99 1 $((t1 + 1000)) $((t1 + 2000)) $key r - - ok init-000000" >>"$ZK_TMP/bad/c.99"
rc=0
"$lincheck" "$ZK_TMP/bad/init" "$ZK_TMP"/bad/c.* >"$ZK_TMP/verdict.bad" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "an injected stale read of $key was not caught (lincheck exit $rc)"
grep -q "read -> init-000000" "$ZK_TMP/verdict.bad" ||
    fail "the injected stale read is not in the failing part: $(tail -5 "$ZK_TMP/verdict.bad")"
log "an injected stale read of $key was caught: $(sed -n 's/.*a smallest failing part (\([0-9]* of its [0-9]*\) operations.*/\1/p' "$ZK_TMP/verdict.bad") operations in the failing part"
log "done after ${SECONDS} s"
