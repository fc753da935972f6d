#!/usr/bin/env bash
# systemd: the readiness protocol (Type=notify) against a stand-in
# notification socket (helpers/notify_listen.c, built by make): READY=1
# with STATUS= role and staleness once the mount serves, a STATUS= update
# when the role changes (an ensemble member losing its quorum), STOPPING=1
# at umount; log lines carry "<priority>" prefixes when stderr is the
# journal (JOURNAL_STREAM); without NOTIFY_SOCKET the daemon runs as
# before (every other test). The installed unit passes
# `systemd-analyze verify` when systemd-analyze exists (in a private mount
# namespace where /usr/local is the install's DESTDIR).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
notify_listen=$(zk_helper notify_listen) || exit 1

# listen NAME: a listener on $ZK_TMP/NAME.sock writing $ZK_TMP/NAME.out.
listen() {
    : >"$ZK_TMP/$1.out"
    zk_bg "$notify_listen" "$ZK_TMP/$1.sock" "$ZK_TMP/$1.out" 120
    wait_for -t 10 test -S "$ZK_TMP/$1.sock" || fail "listener $1 did not start"
}
got() { grep -q -- "$2" "$ZK_TMP/$1.out"; }

log "READY=1 and STATUS= once the mount serves; STOPPING=1 at umount"
listen sa
M=$ZK_TMP/m
NOTIFY_SOCKET=$ZK_TMP/sa.sock zk_start "$ZK_TMP/d" "$M"
wait_for -t 10 got sa '^READY=1$' || fail "no READY=1: $(cat "$ZK_TMP/sa.out")"
assert_eq "READY=1
STATUS=role standalone, leader 1, stale no" "$(sed -n 1,2p "$ZK_TMP/sa.out")" "first notification"
zk_stop "$M"
wait_for -t 10 got sa '^STOPPING=1$' || fail "no STOPPING=1: $(cat "$ZK_TMP/sa.out")"

log "journal priorities when stderr is JOURNAL_STREAM"
: >"$ZK_TMP/journal.log"
js=$(stat -c '%d:%i' "$ZK_TMP/journal.log")    # what systemd would set
JOURNAL_STREAM=$js "$ZKFS" mount -f --data "$ZK_TMP/d" "$M" 2>>"$ZK_TMP/journal.log" &
pid=$!
ZK_PIDS+=("$pid")
ZK_MOUNTS+=("$M")
wait_for -t 30 zk_is_mounted "$M" || fail "no mount"
"$ZKFS" umount "$M"
wait "$pid" || fail "daemon exit status $?"
assert_match '^<6>mounted ' "$(grep 'mounted ' "$ZK_TMP/journal.log" | tail -n 1)" "info line with <6>"
if grep -qvE '^<[0-7]>' "$ZK_TMP/journal.log"; then
    fail "journal lines without a priority: $(cat "$ZK_TMP/journal.log")"
fi

log "an ensemble member: STATUS= follows its role, and 'stale yes' without quorum"
ens_setup 3
ens_launch 1
ens_launch 2
listen s3
NOTIFY_SOCKET=$ZK_TMP/s3.sock ens_launch 3
for i in 1 2 3; do ens__wait_mounted "$i"; done
ens_wait_leader
wait_for -t 10 got s3 '^READY=1$' || fail "no READY=1 from replica 3"
wait_for -t 10 got s3 "^STATUS=role \(leader\|follower\), leader [1-3], stale no\$" ||
    fail "no status with a leader: $(cat "$ZK_TMP/s3.out")"
ens_kill9 1
ens_kill9 2
wait_for -t 20 got s3 '^STATUS=role .*, stale yes$' ||
    fail "no stale status after the quorum went: $(cat "$ZK_TMP/s3.out")"
cat "$ZK_TMP/s3.out"

if command -v systemd-analyze >/dev/null; then
    log "systemd-analyze verify of the installed unit"
    dest=$ZK_TMP/dest
    make -s -C "$root" install DESTDIR="$dest" PREFIX=/usr/local >/dev/null ||
        fail "make install"
    out=$(unshare -m --propagation private sh -c '
        mount --bind "$1/usr/local" /usr/local &&
        systemd-analyze verify /usr/local/lib/systemd/system/zkfs@mnt-zkfs.service 2>&1
        ' verify "$dest" ; echo "rc=$?")
    printf '%s\n' "$out"
    assert_eq "rc=0" "$out" "systemd-analyze verify output"
else
    log "systemd-analyze is not installed: unit not verified"
fi
