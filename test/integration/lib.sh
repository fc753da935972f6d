# shellcheck shell=bash
# lib.sh — helpers for the integration tests (sourced by every t_*.sh).
#
# Each test runs in its own bash (run.sh) with ZK_TMP, a fresh directory,
# and ZKFS, the binary. The helpers start daemons in the foreground in the
# background of the test shell (`zkfs mount -f ... &`), so every daemon is
# known by pid; an EXIT trap kills every pid and lazily unmounts every mount
# the test started, even when an assertion failed half-way.
#
# No fixed sleeps: everything waits with wait_for, which polls with both a
# time and an iteration bound.
set -euo pipefail

ZKFS=${ZKFS:-build/zkfs}
case $ZKFS in /*) ;; *) ZKFS=$PWD/$ZKFS ;; esac
ZK_TMP=${ZK_TMP:-$(mktemp -d /tmp/zkfs-it.XXXXXX)}
# The helper programs of test/integration/helpers/, built by `make`.
ZK_HELPERS=${ZK_HELPERS:-$(dirname "$ZKFS")/test}
export ZKFS ZK_TMP ZK_HELPERS

# zk_helper NAME: the path of a built helper program (fails if missing).
zk_helper() {
    [ -x "$ZK_HELPERS/$1" ] ||
        fail "no helper $ZK_HELPERS/$1 (make builds test/integration/helpers/$1.c)"
    printf '%s' "$ZK_HELPERS/$1"
}

ZK_PIDS=()          # every background pid this test started
ZK_MOUNTS=()        # every mountpoint this test mounted
ZK_TMPFS=()         # every tmpfs this test mounted
declare -A ZK_PID_OF=()   # mountpoint -> daemon pid
ZK_PID=             # pid of the daemon zk_start started last
ZK_NLOG=0

# --- messages and assertions --------------------------------------------

log() { printf '# %s\n' "$*"; }

fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}

# assert_eq EXPECTED ACTUAL [WHAT]
assert_eq() {
    if [ "$1" != "$2" ]; then
        fail "${3:-value}: expected [$1], got [$2]"
    fi
}

# assert_match REGEX STRING [WHAT]  (grep -E)
assert_match() {
    if ! grep -qE -- "$1" <<<"$2"; then
        fail "${3:-value}: [$2] does not match /$1/"
    fi
}

# assert_fail CMD...: CMD must exit non-zero. Its stderr is kept in
# $ZK_ERR for further checks (and echoed to the log).
assert_fail() {
    local rc=0
    ZK_ERR=$("$@" 2>&1 >/dev/null) || rc=$?
    printf '  (expected failure) %s -> rc %d: %s\n' "$*" "$rc" "$ZK_ERR"
    if [ "$rc" -eq 0 ]; then
        fail "expected failure, but it succeeded: $*"
    fi
}

# assert_rc RC CMD...: CMD must exit with status RC; stderr in $ZK_ERR,
# stdout in $ZK_OUT.
assert_rc() {
    local want=$1 rc=0 errf
    shift
    errf=$ZK_TMP/.stderr
    # shellcheck disable=SC2034  # read by the tests
    ZK_OUT=$("$@" 2>"$errf") || rc=$?
    ZK_ERR=$(cat "$errf")
    if [ "$rc" -ne "$want" ]; then
        fail "expected exit $want, got $rc: $* (stderr: $ZK_ERR)"
    fi
}

# not CMD...: negation usable as a wait_for argument.
not() { ! "$@"; }

# wait_for [-t SECONDS] CMD...: polls CMD every 20 ms until it succeeds;
# fails (returns 1) after SECONDS (default 20) or 50*SECONDS tries.
wait_for() {
    local secs=20 tries=0
    if [ "$1" = -t ]; then
        secs=$2
        shift 2
    fi
    local deadline=$((SECONDS + secs)) max=$((secs * 50))
    until "$@"; do
        tries=$((tries + 1))
        if [ "$SECONDS" -ge "$deadline" ] || [ "$tries" -ge "$max" ]; then
            printf '  wait_for gave up after %ss: %s\n' "$secs" "$*" >&2
            return 1
        fi
        sleep 0.02
    done
}

# xattr PATH NAME: prints the value of an extended attribute.
xattr() { getfattr --only-values --absolute-names -n "$2" -- "$1"; }

# --- processes and mounts -----------------------------------------------

zk_is_mounted() {
    awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo
}

# zk_pid_gone PID: the process has exited (a zombie counts as gone).
zk_pid_gone() {
    local st
    st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 0
    [ -z "$st" ] || [ "$st" = Z ] || [ "$st" = X ]
}

# zk_start DATA MNT [MOUNT-OPTIONS...]: starts `zkfs mount -f` in the
# background, waits until MNT is mounted; sets ZK_PID.
zk_start() {
    local data=$1 mnt=$2 logf
    shift 2
    mkdir -p "$mnt"
    ZK_NLOG=$((ZK_NLOG + 1))
    logf=$ZK_TMP/zkfs.$ZK_NLOG.log
    "$ZKFS" mount -f --data "$data" "$@" "$mnt" >"$logf" 2>&1 &
    ZK_PID=$!
    ZK_PIDS+=("$ZK_PID")
    ZK_MOUNTS+=("$mnt")
    ZK_PID_OF[$mnt]=$ZK_PID
    log "started zkfs pid $ZK_PID on $mnt (log $logf)"
    if ! wait_for -t 30 zk__up "$mnt" "$ZK_PID"; then
        tail -n 20 "$logf" >&2
        fail "zkfs did not mount $mnt"
    fi
    if zk_pid_gone "$ZK_PID"; then
        tail -n 20 "$logf" >&2
        fail "zkfs exited while mounting $mnt"
    fi
}

# Mounted, or the daemon died (then zk_start reports).
zk__up() { zk_is_mounted "$1" || zk_pid_gone "$2"; }

# zk_stop MNT: `zkfs umount`, then the daemon must exit with status 0.
zk_stop() {
    local mnt=$1 pid=${ZK_PID_OF[$1]:-} rc=0
    "$ZKFS" umount "$mnt" || fail "zkfs umount $mnt failed"
    zk_is_mounted "$mnt" && fail "$mnt still mounted after zkfs umount"
    if [ -n "$pid" ]; then
        wait_for -t 30 zk_pid_gone "$pid" || fail "zkfs pid $pid did not exit"
        wait "$pid" || rc=$?
        assert_eq 0 "$rc" "exit status of the zkfs daemon after umount"
    fi
    log "stopped zkfs on $mnt"
}

# zk_kill9 MNT: kills the daemon with SIGKILL and clears the dead mount.
zk_kill9() {
    local mnt=$1 pid=${ZK_PID_OF[$1]}
    kill -9 "$pid"
    wait_for -t 30 zk_pid_gone "$pid" || fail "pid $pid survived kill -9"
    wait "$pid" 2>/dev/null || true
    fusermount3 -u -z "$mnt" 2>/dev/null || true
    wait_for -t 30 not zk_is_mounted "$mnt" || fail "$mnt still mounted"
    log "killed zkfs pid $pid on $mnt"
}

# zk_bg CMD...: runs CMD in the background and records its pid (in ZK_BG)
# so the EXIT trap kills it.
zk_bg() {
    "$@" &
    ZK_BG=$!
    ZK_PIDS+=("$ZK_BG")
}

# --- one open file driven step by step (helpers/fdscript.c) ------------

# fds NAME PATH STEP...: runs fdscript in the background (pid in FDS_PID);
# its `wait` steps read the lines fds_end writes to fd 8; its stdout and
# stderr are $ZK_TMP/NAME.out and NAME.err. One at a time.
fds() {
    local n=$1
    shift
    rm -f "$ZK_TMP/$n.go"
    mkfifo "$ZK_TMP/$n.go"
    exec 8<>"$ZK_TMP/$n.go"
    zk_bg fds__run "$n" "$@"
    FDS_PID=$ZK_BG
}
fds__run() {    # (a background command's stdin is /dev/null otherwise)
    local n=$1
    shift
    exec "$(zk_helper fdscript)" "$@" <&8 >"$ZK_TMP/$n.out" 2>"$ZK_TMP/$n.err"
}
# fds_said NAME LINE: fdscript NAME printed LINE (a say: step).
fds_said() { grep -qx "$2" "$ZK_TMP/$1.out"; }
# fds_end: lets fdscript go on past its wait step and waits for it; its
# exit status in FDS_RC.
fds_end() {
    echo go >&8
    FDS_RC=0
    wait "$FDS_PID" || FDS_RC=$?
    exec 8>&-
}

# zk_metric MOUNT NAME: the value of metric NAME (with its labels, as in
# the file) in MOUNT/.zkfs.prom. Reading the file is itself a LOOKUP and
# an OPEN of it on that mount.
zk_metric() {
    awk -v k="$2" '$1 == k { print $2 }' "$1/.zkfs.prom"
}

# zk_echo_drained MOUNT: waits (bounded) until the mount's echo thread
# has nothing queued; fails the test otherwise.
zk__echo_empty() { [ "$(zk_metric "$1" zkfs_echo_queue_items)" = 0 ]; }
zk_echo_drained() {
    wait_for -t 20 zk__echo_empty "$1" ||
        fail "the echo queue of $1 did not drain"
}

# zk_tmpfs DIR SIZE: mounts a tmpfs for this test (unmounted by the trap).
zk_tmpfs() {
    mkdir -p "$1"
    mount -t tmpfs -o "size=$2" zkfs-test "$1"
    ZK_TMPFS+=("$1")
}

# zk_fill_until_full MOUNT MAX: writes 100 kB random files MOUNT/f1, f2, ...
# until one fails, which must fail with ENOSPC; at most MAX files. Sets
# ZK_FULL (the number of the write that failed, empty if none did) and
# ZK_SUMS (file name -> sha256 of every file that was written).
zk_fill_until_full() {
    local i err
    declare -gA ZK_SUMS=()
    # shellcheck disable=SC2034  # read by the test that sourced this file
    ZK_FULL=
    for i in $(seq 1 "$2"); do
        head -c 102400 /dev/urandom >"$ZK_TMP/blob"
        if ! err=$(cp "$ZK_TMP/blob" "$1/f$i" 2>&1); then
            # shellcheck disable=SC2034
            ZK_FULL=$i
            log "write $i failed: $err"
            assert_match "No space left on device" "$err" "the writer's error"
            return 0
        fi
        ZK_SUMS[f$i]=$(sha256sum <"$ZK_TMP/blob")
    done
}

# zk_check_sums MOUNT LABEL: every file in ZK_SUMS still has its content.
zk_check_sums() {
    local f
    for f in "${!ZK_SUMS[@]}"; do
        assert_eq "${ZK_SUMS[$f]}" "$(sha256sum <"$1/$f")" "$f ($2)"
    done
}

# The EXIT trap: kill every pid, lazily unmount every mount left.
zk__cleanup() {
    local rc=$? p m
    set +e
    for p in "${ZK_PIDS[@]}"; do
        # Its children first (`zk_bg timeout 60 inotifywait ...`: a killed
        # timeout leaves its child running).
        pkill -9 -P "$p" 2>/dev/null
        kill -9 "$p" 2>/dev/null
    done
    for p in "${ZK_PIDS[@]}"; do
        wait_for -t 10 zk_pid_gone "$p" 2>/dev/null
    done
    for m in "${ZK_MOUNTS[@]}"; do
        if zk_is_mounted "$m"; then
            fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m"
        fi
    done
    for m in "${ZK_TMPFS[@]}"; do
        zk_is_mounted "$m" && umount -l "$m"
    done
    exit "$rc"
}
trap zk__cleanup EXIT

[ -x "$ZKFS" ] || fail "no zkfs binary at $ZKFS (make build/zkfs)"
