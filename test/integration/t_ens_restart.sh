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

TOKEN=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')

# writer I: (PHASE set) creates w/wI-PHASE-1, w/wI-PHASE-2, ... on replica I's mount, each holding
# "NAME:TOKEN"; appends "NAME START END" to acks.I after success, and
# "NAME START END ERROR" to errs.I after a failure (then backs off 100 ms).
# Stops at $ZK_TMP/stop-writers.PHASE, after 3000 writes or after 150 s. A dead or unmounted
# mount fails fast (ENOTCONN; ENOENT once unmounted, as w/ exists only in
# the tree), so nothing is ever written to the bare mountpoint directory.
writer() {
    local i=$1 m n=0 name t0 err end=$((SECONDS + 150))
    local STOP=$ZK_TMP/stop-writers.$PHASE
    m=$(ens_mnt "$i")
    while [ ! -e "$STOP" ] && [ "$n" -lt 3000 ] && [ "$SECONDS" -lt "$end" ]; do
        n=$((n + 1))
        name=w$i-$PHASE-$n
        t0=$EPOCHREALTIME
        if err=$(printf '%s:%s\n' "$name" "$TOKEN" |
            dd of="$m/w/$name" status=none 2>&1); then
            echo "$name $t0 $EPOCHREALTIME" >>"$ZK_TMP/acks.$i"
        else
            echo "$name $t0 $EPOCHREALTIME ${err//$'\n'/ }" >>"$ZK_TMP/errs.$i"
            sleep 0.1
        fi
        sleep 0.05
    done
}

# A replica whose writes hang (a daemon stuck in the kernel: a FUSE
# request that is never answered) must fail the test with a diagnosis, not
# hang it. Every round checks that each live replica's writer progresses;
# one that does not gets hang_diag: the daemon's threads (state, wchan,
# kernel stack, gdb backtrace), the processes stuck on our mounts; then its
# FUSE connection is aborted (it is this test's mount, still mounted), so
# that the stuck processes can end. A daemon killed
# with kill -9 must be gone (every thread) within 10 s before it is waited
# for: `wait PID` never returns for one with a thread stuck in the kernel.
hang_diag() {
    local i=$1 p t mnt dev
    set +e # diagnostics only; the caller fails right after
    mnt=$(ens_mnt "$i")
    p=${ZK_PID_OF[$mnt]:-}
    echo "HANG on replica $i ($mnt, pid $p)"
    for t in /proc/"$p"/task/*; do
        echo "  thread ${t##*/}: state $(awk '{ print $3 }' "$t/stat" 2>/dev/null) wchan $(cat "$t/wchan" 2>/dev/null)"
        sed 's/^/      /' "$t/stack" 2>/dev/null | head -12
    done
    if command -v gdb >/dev/null && [ -n "$p" ]; then
        timeout -k 2 20 gdb -p "$p" -batch -ex 'thread apply all bt 25' 2>&1 |
            grep -E '^(Thread|#)' | sed 's/^/    gdb: /' | head -80
    fi
    ps -eo pid,stat,wchan:28,args | awk -v d="$ZK_TMP" 'index($0, d) && $2 ~ /D/' |
        sed 's/^/  D: /'
    dev=$(awk -v m="$mnt" '$5 == m { print $3 }' /proc/self/mountinfo)
    if [ -n "$dev" ] && [ -w "/sys/fs/fuse/connections/${dev#*:}/abort" ]; then
        echo "  aborting FUSE connection ${dev#*:} of $mnt"
        echo 1 >"/sys/fs/fuse/connections/${dev#*:}/abort"
    fi
}

# every_writer_progressed: each live replica's writer has 3 more acks
# than recorded in $ZK_TMP/mark.I.
every_writer_progressed() {
    local i
    for i in $(ens_live); do
        [ "$(nlines "$ZK_TMP/acks.$i")" -ge $(($(cat "$ZK_TMP/mark.$i") + 3)) ] || return 1
    done
}

# check_progress WHAT: waits (20 s at most) until every live replica took
# writes from its own writer; else diagnoses the stuck ones and fails.
check_progress() {
    local i stuck=
    for i in 1 2 3; do nlines "$ZK_TMP/acks.$i" >"$ZK_TMP/mark.$i"; done
    wait_for -t 20 every_writer_progressed 2>/dev/null && return 0
    for i in $(ens_live); do
        if [ "$(nlines "$ZK_TMP/acks.$i")" -lt $(($(cat "$ZK_TMP/mark.$i") + 3)) ]; then
            stuck+=" $i"
            hang_diag "$i" >&2
        fi
    done
    fail "$1: writes on replica(s)$stuck made no progress in 20 s (see HANG above)"
}

# threads_gone PID: every thread of PID has exited (a zombie leader with a
# thread still in the kernel is not gone).
threads_gone() {
    local t st
    for t in /proc/"$1"/task/*; do
        st=$(awk '{ print $3 }' "$t/stat" 2>/dev/null) || continue
        [ -z "$st" ] || [ "$st" = Z ] || [ "$st" = X ] || return 1
    done
}

# trees_identical: what ens_trees_identical checks (every znode's kind,
# mode, size, path and content hash equal on every live replica), with one
# sha256sum per replica instead of one per file (ens_tree forks per file,
# which takes minutes on a loaded machine).
trees_identical() {
    local i first=
    for i in $(ens_live); do
        (cd "$(ens_mnt "$i")" &&
            find . -mindepth 1 -printf '%y %m %s %p\n' | LC_ALL=C sort >"$ZK_TMP/tree.$i" &&
            find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum >"$ZK_TMP/sums.$i") ||
            fail "cannot list the tree of replica $i"
        if [ -z "$first" ]; then first=$i; continue; fi
        for f in tree sums; do
            if ! cmp -s "$ZK_TMP/$f.$first" "$ZK_TMP/$f.$i"; then
                diff "$ZK_TMP/$f.$first" "$ZK_TMP/$f.$i" | head -20 >&2
                fail "tree of replica $i differs from replica $first ($f)"
            fi
        done
    done
    [ -n "$first" ] || fail "no live replica to compare"
}

nlines() { cat "$@" 2>/dev/null | wc -l; }
total_acks() { nlines "$ZK_TMP"/acks.*; }
acks_above() { [ "$(total_acks)" -ge "$1" ]; }

start_writers() {
    PHASE=$1
    WRITERS=()
    for i in 1 2 3; do
        touch "$ZK_TMP/acks.$i" "$ZK_TMP/errs.$i"
        zk_bg writer "$i"
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

# check_acked LABEL: every acknowledged file on every live replica, with
# its content; a failed write left the file absent, empty or complete.
check_acked() {
    local i
    cat "$ZK_TMP"/acks.* >"$ZK_TMP/acked"
    cat "$ZK_TMP"/errs.* >"$ZK_TMP/failed"
    [ -s "$ZK_TMP/acked" ] || fail "$1: no write was acknowledged"
    for i in $(ens_live); do
        awk -v dir="$(ens_mnt "$i")/w" -v tok="$TOKEN" -v rep="$i" -v what="$1" '
            FNR == 1 { nfile++ }
            {
                f = dir "/" $1; line = ""; rc = (getline line < f); close(f)
                want = $1 ":" tok
                if (nfile == 1) {
                    n++
                    if (rc < 0) { print "replica " rep ": acknowledged " $1 " is missing"; bad++ }
                    else if (line != want) { print "replica " rep ": acknowledged " $1 " holds [" line "]"; bad++ }
                } else if (rc > 0 && line != want) {
                    print "replica " rep ": failed write " $1 " left [" line "]"; bad++
                }
            }
            END { printf "# %s: replica %s: %d acknowledged files checked\n", what, rep, n; exit bad > 0 }
        ' "$ZK_TMP/acked" "$ZK_TMP/failed" || fail "$1: replica $i lost or corrupted writes"
    done
}

count() { nlines "$ZK_TMP"/acks.*; }

ens_setup 3
ens_start_all
mkdir "$(ens_mnt 1)/w"
for i in 1 2 3; do ens_wait_exists "$i" w; done

# --- A: kill -9 of the whole ensemble ---------------------------------
start_writers A
check_progress "A"
want=60
wait_for -t 30 acks_above "$want" || fail "A: only $(total_acks) acks before the crash"
pids=()
for i in 1 2 3; do pids+=("${ZK_PID_OF[$(ens_mnt "$i")]}"); done
kill -9 "${pids[@]}"
log "[${SECONDS}s] killed all three replicas (pids ${pids[*]}) with $(total_acks) writes acknowledged"
for i in 1 2 3; do
    p=${pids[$((i - 1))]}
    if ! wait_for -t 10 threads_gone "$p"; then
        stuck=$(for t in /proc/"$p"/task/*; do printf '%s:%s ' "${t##*/}" "$(cat "$t/wchan" 2>/dev/null)"; done)
        hang_diag "$i" >&2
        fail "replica $i (pid $p) did not die after kill -9; threads (id:wchan): ${stuck}- typically a daemon thread waiting for a directory lock held by a FUSE request of the mount that the killed loop will never answer (see HANG above)"
    fi
    wait "$p" 2>/dev/null || true
    fusermount3 -u -z "$(ens_mnt "$i")" 2>/dev/null || true
    ENS_UP[$i]=0
done
stop_writers
log "A: acknowledged $(count), failed $(nlines "$ZK_TMP"/errs.*)"
ens_start_all
ens_wait_synced 30
check_acked "A (after kill -9 of all)"
trees_identical
log "[${SECONDS}s] A: trees identical after the restart ($(wc -l <"$ZK_TMP/tree.1") znodes)"

# --- B: rolling restart with clean umounts ------------------------------
start_writers B
for i in 1 2 3; do
    check_progress "B, before restarting replica $i"
    role=$(ens_field "$i" role)
    t0=$EPOCHREALTIME
    ens_stop "$i"
    ens_start "$i"
    ens_wait_leader 30
    log "[${SECONDS}s] B: restarted replica $i (was $role) in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s; leader now $(ens_leader)"
done
check_progress "B, after the rolling restart"
stop_writers
log "B: acknowledged $(count) in all, failed $(nlines "$ZK_TMP"/errs.*); errors:"
awk '{ $1 = $2 = $3 = ""; sub(/^ +/, ""); sub(/^dd: [^:]*: /, ""); print }' \
    "$ZK_TMP"/errs.* | sort | uniq -c | sed 's/^/#   /'
ens_wait_synced 30
check_acked "B (after the rolling restart)"
trees_identical
log "[${SECONDS}s] B: trees identical ($(wc -l <"$ZK_TMP/tree.1") znodes)"

# --- C. the whole ensemble stopped cleanly, one replica after the other --
# Each daemon must exit 0, the last ones without a quorum to close their
# session with (bounded: zk_stop waits at most 30 s).
for i in 1 2 3; do
    t0=$EPOCHREALTIME
    ens_stop "$i"
    log "C: replica $i stopped with zkfs umount in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s"
done
log "done after ${SECONDS}s"
