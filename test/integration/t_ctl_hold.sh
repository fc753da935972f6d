#!/usr/bin/env bash
# A `zkfs txn` holds the ephemeral nodes its transaction created, and only
# those: its CHECK (or SET_DATA) of another client's ephemeral must not
# make it the txn's, or closing the control file deletes it. Until
# 2026-12-05 any local user could delete any ephemeral node that way, and
# a CHECK needed no permission (found by a review; fs/ctl.c, hold and
# may_see_node).
. "$(dirname "$0")/lib.sh"

as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

M=$ZK_TMP/mnt
chmod 755 "$ZK_TMP"
zk_start "$ZK_TMP/data" "$M"
chmod 755 "$M"
mkdir "$M/locks" "$M/open"
chmod 700 "$M/locks"
chmod 777 "$M/open"

zk_bg "$ZKFS" create -e "$M/locks/held" x -- sleep 60 >"$ZK_TMP/out.1"
wait_for test -s "$ZK_TMP/out.1" || fail "create -e printed nothing"
zk_bg "$ZKFS" create -e "$M/open/held" y -- sleep 60 >"$ZK_TMP/out.2"
wait_for test -s "$ZK_TMP/out.2" || fail "create -e printed nothing"

log "another user's CHECK where it may not search: EACCES, the node stays"
rc=0
printf 'check -v -1 /locks/held\n' | as_nobody "$ZKFS" txn "$M" \
    >"$ZK_TMP/txn.1" 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "the CHECK went through: $(cat "$ZK_TMP/txn.1")"
grep -qi "permission denied" "$ZK_TMP/txn.1" ||
    fail "no permission error: $(cat "$ZK_TMP/txn.1")"

log "another user's CHECK where it may search: done, the node stays"
printf 'check -v -1 /open/held\n' | as_nobody "$ZKFS" txn "$M" \
    >"$ZK_TMP/txn.2" 2>&1 || fail "the CHECK failed: $(cat "$ZK_TMP/txn.2")"
printf 'check -v -1 /locks/held\n' | "$ZKFS" txn "$M" \
    >"$ZK_TMP/txn.3" 2>&1 || fail "root's CHECK failed: $(cat "$ZK_TMP/txn.3")"
sleep 1     # a release's delete would be done by now
assert_eq x "$(cat "$M/locks/held")" "root's ephemeral after the txns"
assert_eq y "$(cat "$M/open/held")" "the open one after the txns"

log "a txn's own ephemeral goes when its control file closes"
printf 'create -e /open/mine\n' | "$ZKFS" txn "$M" >"$ZK_TMP/txn.4" 2>&1 ||
    fail "create -e in a txn failed: $(cat "$ZK_TMP/txn.4")"
wait_for -t 10 not test -e "$M/open/mine" ||
    fail "the txn's own ephemeral outlived its control file"
log "ok"
