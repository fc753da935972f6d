#!/usr/bin/env bash
# Whole-ensemble crash and rolling restart of a 3-replica ensemble:
#  A. writers on all three mounts; kill -9 of all three daemons at once
#     (one kill(1) call); restart all: every write acknowledged before the
#     crash (dd returned 0, i.e. close() committed) is on every replica
#     with its content, and the trees are identical.
#  B. a rolling restart, `zkfs umount` (ens_stop: the daemon must exit 0)
#     then ens_start of each replica in turn while the writers run: again
#     nothing acknowledged is lost, the trees are identical.
#  C. the whole ensemble stopped with `zkfs umount`, one after the other:
#     every daemon exits 0, also the last two, which have no quorum left.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

# Writers, progress checks, the check of acknowledged writes and hang
# diagnosis: ens_lib.sh.

start_writers() {
    PHASE=$1
    WRITERS=()
    for i in 1 2 3; do
        touch "$ZK_TMP/acks.$i" "$ZK_TMP/errs.$i"
        zk_bg ens_writer "$i" "$PHASE" "$ZK_TMP/stop-writers.$PHASE"
        WRITERS+=("$ZK_BG")
    done
}

stop_writers() {
    local p
    touch "$ZK_TMP/stop-writers.$PHASE"
    for p in "${WRITERS[@]}"; do
        wait_for -t 20 zk_pid_gone "$p" || fail "writer $p did not stop (a write hangs?)"
        wait "$p" || fail "writer $p failed"
    done
}

ens_setup 3
ens_start_all
mkdir "$(ens_mnt 1)/w"
for i in 1 2 3; do ens_wait_exists "$i" w; done

# --- A: kill -9 of the whole ensemble ---------------------------------
start_writers A
ens_check_progress "A"
want=60
wait_for -t 30 acks_above "$want" || fail "A: only $(total_acks) acks before the crash"
pids=()
for i in 1 2 3; do pids+=("${ZK_PID_OF[$(ens_mnt "$i")]}"); done
kill -9 "${pids[@]}"
log "[${SECONDS}s] killed all three replicas (pids ${pids[*]}) with $(total_acks) writes acknowledged"
for i in 1 2 3; do
    ens_reap_killed "$i" "${pids[$((i - 1))]}"
done
stop_writers
log "A: acknowledged $(total_acks), failed $(nlines "$ZK_TMP"/errs.*)"
ens_start_all
ens_wait_synced 30
ens_check_acked "A (after kill -9 of all)"
ens_trees_identical
log "[${SECONDS}s] A: trees identical after the restart ($(ens_tree_size 1) znodes)"

# --- B: rolling restart with clean umounts ------------------------------
start_writers B
for i in 1 2 3; do
    ens_check_progress "B, before restarting replica $i"
    role=$(ens_field "$i" role)
    t0=$EPOCHREALTIME
    ens_stop "$i"
    ens_start "$i"
    ens_wait_leader 30
    log "[${SECONDS}s] B: restarted replica $i (was $role) in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s; leader now $(ens_leader)"
done
ens_check_progress "B, after the rolling restart"
stop_writers
log "B: acknowledged $(total_acks) in all, failed $(nlines "$ZK_TMP"/errs.*); errors:"
ens_errors_summary
ens_wait_synced 30
ens_check_acked "B (after the rolling restart)"
ens_trees_identical
log "[${SECONDS}s] B: trees identical ($(ens_tree_size 1) znodes)"

# --- C. the whole ensemble stopped cleanly, one replica after the other --
# Each daemon must exit 0, the last ones without a quorum to close their
# session with (bounded: zk_stop waits at most 30 s).
for i in 1 2 3; do
    t0=$EPOCHREALTIME
    ens_stop "$i"
    log "C: replica $i stopped with zkfs umount in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s"
done
log "done after ${SECONDS}s"
