#!/usr/bin/env bash
# t_ens_noquorum.sh — a replica without a quorum: reads go on, and writes
# made the way shells make them fail visibly. `echo x > existing` closes
# its descriptor with dup2(), which reports no error, so the failure must
# come at open(): a stale replica makes an open for writing wait for a
# barrier through the leader (bounded) and fail with ETIMEDOUT.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=ens_lib.sh
. "$here/ens_lib.sh"

ens_setup 3
ens_start_all
m=$(ens_mnt 1)
echo old >"$m/x"
ens_wait_synced
ens_kill9 2
ens_kill9 3
is_stale() { [ "$(ens_field 1 stale)" = true ]; }
wait_for -t 15 is_stale || fail "replica 1 does not say it is stale"

for how in 'echo new > X' 'echo more >> X' 'printf new | cat > X' \
    ': > X'; do
    s=$(date +%s%N)
    rc=0
    out=$(bash -c "${how//X/$m/x}" 2>&1) || rc=$?
    ms=$((($(date +%s%N) - s) / 1000000))
    log "$how: rc $rc after $ms ms: $out"
    [ "$rc" -ne 0 ] || fail "'$how' succeeded without a quorum"
    assert_match "Connection timed out" "$out" "error of '$how'"
    assert_eq old "$(cat "$m/x")" "content after '$how'"
done
assert_fail mkdir "$m/newdir"
assert_match "Connection timed out" "$ZK_ERR" "mkdir without a quorum"
assert_eq "x" "$(ls "$m" | xargs)" "listing without a quorum"

ens_start 2
ens_wait_leader
echo new >"$m/x"
assert_eq new "$(cat "$m/x")" "a write once the quorum is back"
ens_wait_synced
ens_trees_identical
log "ok"
