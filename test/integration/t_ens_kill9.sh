#!/usr/bin/env bash
# kill -9 in a 3-replica ensemble under load: writers on all three mounts
# (each creates its own files w/wI-N with known content) while the test
# kills the leader and, in other rounds, a follower, and restarts it. A
# write is acknowledged only when dd returned 0 (dd reports a failed
# close(), the commit). Afterwards every acknowledged file is on every
# replica with its content, a failed write left nothing half-written, and
# the trees are identical. Every third restart is as after a power cut
# (ZKFS_TEST_BOOT_ID: the store puts its last checkpoint back, so the
# replica's tree goes back up to 100 ms of commits and is caught up from
# its log and its leader). Logs acked/failed writes and, per leader kill,
# the time until the first write that started after the kill succeeded.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

ROUNDS=6
STOP=$ZK_TMP/stop-writers

# Writers, progress checks and hang diagnosis: ens_lib.sh. kill9 below
# replaces ens_kill9, whose `wait PID` never returns for a daemon with a
# thread stuck in the kernel.

# d_threads PID: the ids of PID's threads in uninterruptible sleep.
d_threads() {
    local t
    for t in /proc/"$1"/task/*; do
        [ "$(awk '{ print $3 }' "$t/stat" 2>/dev/null)" = D ] && printf '%s ' "${t##*/}"
    done
    return 0
}

# kill9 I: ens_kill9 with bounded waits; KILL_TIME is when kill(1) ran. A daemon with a thread that stays
# in uninterruptible sleep for 5 s (a disk write does not take that long)
# is stuck in the kernel: diagnosed while it is alive, instead of killed.
kill9() {
    local mnt pid t n now
    local -a d=() keep=()
    mnt=$(ens_mnt "$1")
    pid=${ZK_PID_OF[$mnt]}
    read -ra d <<<"$(d_threads "$pid")"
    for n in 1 2 3 4 5; do
        [ "${#d[@]}" -gt 0 ] || break
        sleep 1
        now=" $(d_threads "$pid")"
        keep=()
        for t in "${d[@]}"; do
            [[ $now == *" $t "* ]] && keep+=("$t")
        done
        d=("${keep[@]}")
    done
    if [ "${#d[@]}" -gt 0 ]; then
        ens_hang_diag "$1" >&2
        fail "replica $1 (pid $pid): thread(s) ${d[*]} stuck in the kernel for 5 s (see HANG above)"
    fi
    KILL_TIME=$EPOCHREALTIME
    kill -9 "$pid"
    ens_reap_killed "$1" "$pid"
    wait_for -t 30 not zk_is_mounted "$mnt" || fail "$mnt still mounted"
    log "killed zkfs pid $pid on $mnt"
}

# pick ROLE: writes the id of a live replica with that role to victim.
pick() {
    local v
    v=$("ens_$1") || return 1
    echo "$v" >"$ZK_TMP/victim"
}

ens_setup 3
ens_start_all
mkdir "$(ens_mnt 1)/w"
for i in 1 2 3; do ens_wait_exists "$i" w; done

WRITERS=()
for i in 1 2 3; do
    : >"$ZK_TMP/acks.$i"
    : >"$ZK_TMP/errs.$i"
    zk_bg ens_writer "$i" "" "$STOP"
    WRITERS+=("$ZK_BG")
done

: >"$ZK_TMP/kills"
for r in $(seq 1 "$ROUNDS"); do
    # Progress before every kill: every replica took writes since the last.
    ens_check_progress "round $r"
    if [ $((r % 2)) = 1 ]; then role=leader; else role=follower; fi
    wait_for -t 10 pick "$role" || fail "round $r: no $role found"
    victim=$(cat "$ZK_TMP/victim")
    kill9 "$victim"
    tk=$KILL_TIME
    echo "$r $role $victim $tk" >>"$ZK_TMP/kills"
    ens_wait_leader 30
    tl=$EPOCHREALTIME
    log "[${SECONDS}s] round $r: killed $role $victim; agreed leader $(ens_leader) after $(awk -v a="$tk" -v b="$tl" 'BEGIN { printf "%.2f", b - a }') s"
    if [ $((r % 3)) = 0 ]; then
        # As after a power cut (the store's view: another boot): its tree
        # goes back to its last checkpoint, and it catches up again.
        ZKFS_TEST_BOOT_ID=zkfs-test-reboot-$r ens_start "$victim"
        log "round $r: $victim restarted as after a power cut"
    else
        ens_start "$victim"
    fi
    ens_wait_leader 30
done

ens_check_progress "after the last round"
touch "$STOP"
for p in "${WRITERS[@]}"; do
    wait_for -t 20 zk_pid_gone "$p" || fail "writer $p did not stop (a write hangs?)"
    wait "$p" || fail "writer $p failed"
done

acked=$(total_acks)
failed=$(nlines "$ZK_TMP"/errs.*)
log "acknowledged writes: $acked (per mount: $(nlines "$ZK_TMP/acks.1") $(nlines "$ZK_TMP/acks.2") $(nlines "$ZK_TMP/acks.3")); failed writes: $failed"
log "failed writes by error:"
ens_errors_summary
for i in 1 2 3; do
    [ "$(nlines "$ZK_TMP/acks.$i")" -gt 0 ] || fail "the writer on replica $i never succeeded"
done

# Failover: per leader kill, the first acknowledged write that STARTED
# after the kill (and, for comparison, the first ack that ended after it).
worst=0
while read -r r role victim tk; do
    [ "$role" = leader ] || continue
    read -r first_start first_end < <(cat "$ZK_TMP"/acks.* | awk -v t="$tk" '
        $2 > t && (s == "" || $3 < s) { s = $3 }
        $3 > t && (e == "" || $3 < e) { e = $3 }
        END { printf "%s %s\n", (s == "" ? -1 : s - t), (e == "" ? -1 : e - t) }')
    log "round $r: leader $victim killed; first write started after it acked $(printf '%.2f' "$first_start") s later (first ack of any write: $(printf '%.2f' "$first_end") s)"
    awk -v x="$first_start" 'BEGIN { exit !(x < 0) }' &&
        fail "round $r: no write started after the leader kill succeeded"
    worst=$(awk -v a="$worst" -v b="$first_start" 'BEGIN { print (b > a ? b : a) }')
done <"$ZK_TMP/kills"
log "worst failover (leader kill to first successful new write): $(printf '%.2f' "$worst") s"
awk -v x="$worst" 'BEGIN { exit !(x > 10) }' &&
    fail "writes took $worst s to flow again after a leader kill (more than 10 s)"

ens_wait_synced 30
ens_check_acked "after $ROUNDS rounds"
ens_trees_identical
log "trees identical: $(ens_tree_size 1) znodes"
log "done after ${SECONDS}s"
