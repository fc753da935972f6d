#!/usr/bin/env bash
# t_ens_fcntl.sh — fcntl record locks and OFD locks are cluster-wide
# (issue 9 item 1): byte ranges conflict across mounts, F_GETLK reports a
# holder on another mount, a split range frees its middle, a downgrade lets
# readers in, F_SETLKW waits and is granted when the holder's process
# closes the file (FLUSH), OFD locks conflict with each other and go at the
# last close of their open file (RELEASE). 3 replicas on loopback; the
# lockers are helpers/probe.c processes, each stopped by its STOP file.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=ens_lib.sh
. "$here/ens_lib.sh"

probe=$(zk_helper probe) || exit 1

ens_setup 3
ens_start_all
m1=$(ens_mnt 1) m2=$(ens_mnt 2) m3=$(ens_mnt 3)
echo data >"$m1/f"
ens_wait_synced

n=0
# locker MOUNT SPEC...: starts a probe holding its locks; sets $LOG,
# $STOP and $PID.
locker() {
    local m=$1
    shift
    n=$((n + 1))
    LOG=$ZK_TMP/lk.$n STOP=$ZK_TMP/stop.$n
    zk_bg "$probe" lk "$m/f" "$LOG" "$STOP" "$@"
    PID=$ZK_BG
    wait_for grep -q '^done' "$LOG" || fail "locker $n did not finish: $(cat "$LOG")"
}
# result LOG SPEC: the result logged for SPEC.
result() { awk -v s="$2" '$1 == s { $1 = ""; sub(/^ /, ""); print; exit }' "$1"; }
expect() { assert_eq "$3" "$(result "$1" "$2")" "$2 in $(basename "$1")"; }

# --- ranges across mounts ----------------------------------------------------
locker "$m1" w:0:10 r:100:0
A=$LOG A_STOP=$STOP
expect "$A" w:0:10 ok
locker "$m2" w:5:1 w:20:5 r:200:1 w:150:1 g:0:100 g:300:1 u:20:5
B=$LOG B_STOP=$STOP
expect "$B" w:5:1 EAGAIN
expect "$B" w:20:5 ok
expect "$B" r:200:1 ok                 # readers share
expect "$B" w:150:1 EAGAIN             # A reads 100..EOF
expect "$B" g:0:100 "wr 0 10 0"        # a holder on another mount
expect "$B" g:300:1 "rd 100 0 0"
expect "$B" u:20:5 ok
getfattr --only-values -n user.zkfs.locks "$m3/f" >"$ZK_TMP/table"
assert_eq 3 "$(grep -c '^holds posix' "$ZK_TMP/table")" "holders seen on m3"

# --- split and downgrade ------------------------------------------------------
touch "$A_STOP" "$B_STOP"
wait_for eval "[ -z \"\$(getfattr --only-values -n user.zkfs.locks '$m1/f')\" ]" ||
    fail "locks not released at close: $(getfattr --only-values -n user.zkfs.locks "$m1/f")"
locker "$m1" w:0:100 u:40:10 r:60:10
C=$LOG C_STOP=$STOP
locker "$m3" w:45:1 r:65:1 w:65:1 w:30:1
expect "$LOG" w:45:1 ok                # the freed middle
expect "$LOG" r:65:1 ok                # downgraded to shared
expect "$LOG" w:65:1 EAGAIN
expect "$LOG" w:30:1 EAGAIN
D_STOP=$STOP D_PID=$PID

# --- F_SETLKW is granted when the holder's process closes the file ----------
n=$((n + 1))
W=$ZK_TMP/lk.$n W_STOP=$ZK_TMP/stop.$n
zk_bg "$probe" lk "$m2/f" "$W" "$W_STOP" W:0:10
waiter=$ZK_BG
wait_for eval "getfattr --only-values -n user.zkfs.locks '$m1/f' | grep -q '^waits posix'" ||
    fail "the F_SETLKW did not queue"
[ -z "$(result "$W" W:0:10)" ] || fail "granted while held: $(cat "$W")"
touch "$C_STOP"
wait_for -t 10 grep -q '^W:0:10 ok' "$W" || fail "the waiter was not granted: $(cat "$W")"
touch "$W_STOP" "$D_STOP"
wait "$waiter" "$D_PID"         # their closes released their locks

# --- OFD locks -------------------------------------------------------------
locker "$m1" ow:0:0
E_STOP=$STOP
locker "$m3" ow:0:0 og:0:1
expect "$LOG" ow:0:0 EAGAIN
expect "$LOG" og:0:1 "wr 0 0 -1"
F_STOP=$STOP
touch "$E_STOP"
wait_for eval "! getfattr --only-values -n user.zkfs.locks '$m2/f' | grep -q 'exclusive 0-'" ||
    fail "the OFD lock outlived its open file"
touch "$F_STOP"
wait_for eval "[ -z \"\$(getfattr --only-values -n user.zkfs.locks '$m1/f')\" ]" ||
    fail "locks left: $(getfattr --only-values -n user.zkfs.locks "$m1/f")"
log "ok"
