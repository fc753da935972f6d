#!/usr/bin/env bash
# kill -9 in a 3-replica ensemble under load: writers on all three mounts
# (each creates its own files w/wI-N with known content) while the test
# kills the leader and, in other rounds, a follower, and restarts it. A
# write is acknowledged only when dd returned 0 (dd reports a failed
# close(), the commit). Afterwards every acknowledged file is on every
# replica with its content, a failed write left nothing half-written, and
# the trees are identical. Logs acked/failed writes and, per leader kill,
# the time until the first write that started after the kill succeeded.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

ROUNDS=6
TOKEN=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
STOP=$ZK_TMP/stop-writers

# writer I: creates w/wI-1, w/wI-2, ... on replica I's mount, each holding
# "NAME:TOKEN"; appends "NAME START END" to acks.I after success, and
# "NAME START END ERROR" to errs.I after a failure (then backs off 100 ms).
# Stops at $STOP, after 3000 writes or after 150 s. A dead or unmounted
# mount fails fast (ENOTCONN; ENOENT once unmounted, as w/ exists only in
# the tree), so nothing is ever written to the bare mountpoint directory.
writer() {
    local i=$1 m n=0 name t0 err end=$((SECONDS + 150))
    m=$(ens_mnt "$i")
    while [ ! -e "$STOP" ] && [ "$n" -lt 3000 ] && [ "$SECONDS" -lt "$end" ]; do
        n=$((n + 1))
        name=w$i-$n
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
# that the stuck processes can end. kill9 replaces ens_kill9, whose
# `wait PID` never returns for a daemon with a thread stuck in the kernel.
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
    local mnt pid t n now stuck
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
        hang_diag "$1" >&2
        fail "replica $1 (pid $pid): thread(s) ${d[*]} stuck in the kernel for 5 s (see HANG above)"
    fi
    KILL_TIME=$EPOCHREALTIME
    kill -9 "$pid"
    if ! wait_for -t 10 threads_gone "$pid"; then
        stuck=$(for t in /proc/"$pid"/task/*; do printf '%s:%s ' "${t##*/}" "$(cat "$t/wchan" 2>/dev/null)"; done)
        hang_diag "$1" >&2
        fail "replica $1 (pid $pid) did not die after kill -9; threads (id:wchan): ${stuck}- typically a daemon thread waiting for a directory lock held by a FUSE request of the mount that the killed loop will never answer (see HANG above)"
    fi
    wait "$pid" 2>/dev/null || true
    fusermount3 -u -z "$mnt" 2>/dev/null || true
    wait_for -t 30 not zk_is_mounted "$mnt" || fail "$mnt still mounted"
    ENS_UP[$1]=0
    log "killed zkfs pid $pid on $mnt"
}

# pick ROLE: writes the id of a live replica with that role to victim.
pick() {
    local v
    v=$("ens_$1") || return 1
    echo "$v" >"$ZK_TMP/victim"
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

ens_setup 3
ens_start_all
mkdir "$(ens_mnt 1)/w"
for i in 1 2 3; do ens_wait_exists "$i" w; done

WRITERS=()
for i in 1 2 3; do
    : >"$ZK_TMP/acks.$i"
    : >"$ZK_TMP/errs.$i"
    zk_bg writer "$i"
    WRITERS+=("$ZK_BG")
done

: >"$ZK_TMP/kills"
for r in $(seq 1 "$ROUNDS"); do
    # Progress before every kill: every replica took writes since the last.
    check_progress "round $r"
    if [ $((r % 2)) = 1 ]; then role=leader; else role=follower; fi
    wait_for -t 10 pick "$role" || fail "round $r: no $role found"
    victim=$(cat "$ZK_TMP/victim")
    kill9 "$victim"
    tk=$KILL_TIME
    echo "$r $role $victim $tk" >>"$ZK_TMP/kills"
    ens_wait_leader 30
    tl=$EPOCHREALTIME
    log "[${SECONDS}s] round $r: killed $role $victim; agreed leader $(ens_leader) after $(awk -v a="$tk" -v b="$tl" 'BEGIN { printf "%.2f", b - a }') s"
    ens_start "$victim"
    ens_wait_leader 30
done

check_progress "after the last round"
touch "$STOP"
for p in "${WRITERS[@]}"; do
    wait_for -t 20 zk_pid_gone "$p" || fail "writer $p did not stop (a write hangs?)"
    wait "$p" || fail "writer $p failed"
done

acked=$(total_acks)
failed=$(nlines "$ZK_TMP"/errs.*)
log "acknowledged writes: $acked (per mount: $(nlines "$ZK_TMP/acks.1") $(nlines "$ZK_TMP/acks.2") $(nlines "$ZK_TMP/acks.3")); failed writes: $failed"
log "failed writes by error:"
awk '{ $1 = $2 = $3 = ""; sub(/^ +/, ""); sub(/^dd: [^:]*: /, ""); print }' \
    "$ZK_TMP"/errs.* | sort | uniq -c | sed 's/^/#   /'
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
cat "$ZK_TMP"/acks.* >"$ZK_TMP/acked"
cat "$ZK_TMP"/errs.* >"$ZK_TMP/failed"
for i in 1 2 3; do
    # Every acknowledged file, with its content; every failed write either
    # absent, empty (its open(O_CREAT) committed) or complete.
    awk -v dir="$(ens_mnt "$i")/w" -v tok="$TOKEN" -v rep="$i" '
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
        END { printf "# replica %s: %d acknowledged files checked\n", rep, n; exit bad > 0 }
    ' "$ZK_TMP/acked" "$ZK_TMP/failed" || fail "replica $i lost or corrupted writes"
done
trees_identical
log "trees identical: $(wc -l <"$ZK_TMP/tree.1") znodes"
log "done after ${SECONDS}s"
