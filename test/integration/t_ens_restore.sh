#!/usr/bin/env bash
# A backup seeds a new ensemble: a standalone replica's tree (files,
# directories, a sequential directory, an ephemeral) is saved, restored
# into the data directories of servers 1 and 2 of a new 3-server ensemble
# (server 3 starts empty and catches up from the leader), and every
# server then serves the saved tree without the ephemeral; new writes get
# zxids above the snapshot's, and the sequence counter goes on. Then the
# same backup restored on server 1 alone (2 and 3 empty) seeds another
# new ensemble: every server serves the saved tree.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

# trees_are_saved WHAT: every server's tree is the saved one ($ZK_TMP/want).
trees_are_saved() {
    local i got
    for i in 1 2 3; do
        got=$(cd "$(ens_mnt "$i")" && find . -mindepth 1 -printf '%y %m %s %p\n' | sort)
        assert_eq "$(cat "$ZK_TMP/want")" "$got" "tree of server $i ($1)"
    done
}

log "a standalone replica's tree, saved"
S=$ZK_TMP/s
zk_start "$ZK_TMP/sd" "$S"
mkdir "$S/app" "$S/q" "$S/svc"
for i in $(seq 1 50); do echo "value $i" >"$S/app/k$i"; done
setfattr -n user.zkfs.children -v sequential "$S/q"
for i in 1 2 3; do "$ZKFS" create -s "$S/q/job-" "j$i" >/dev/null; done
setfattr -n user.zkfs.children -v ephemeral "$S/svc"
exec 7>"$S/svc/web-1"
assert_rc 0 "$ZKFS" snapshot save "$S" "$ZK_TMP/b.zks"
zxid_saved=$(sed -n 's/.*saved zxid \(0x[0-9a-f]*\),.*/\1/p' <<<"$ZK_ERR")
[ -n "$zxid_saved" ] || fail "no zxid in: $ZK_ERR"
(cd "$S" && find . -mindepth 1 -path ./svc/web-1 -prune -o -printf '%y %m %s %p\n' | sort) >"$ZK_TMP/want"
exec 7>&-
zk_stop "$S"

log "restored on servers 1 and 2; server 3 empty"
ens_setup 3
assert_rc 0 "$ZKFS" snapshot restore "$ZK_TMP/b.zks" --data "$(ens_data 1)"
assert_rc 0 "$ZKFS" snapshot restore "$ZK_TMP/b.zks" --data "$(ens_data 2)"
ens_start_all
ens_wait_synced
trees_are_saved "restored on 1 and 2"
ens_trees_identical
assert_eq "value 7" "$(cat "$(ens_mnt 3)/app/k7")" "data on the server that started empty"
assert_eq 0 "$(xattr "$(ens_mnt 3)/svc" user.zk.numChildren)" "svc numChildren"

log "writes go on above the snapshot's zxid; so does the sequence"
F=$(ens_follower)
echo new >"$(ens_mnt "$F")/app/new"
assert_rc 0 "$ZKFS" create -s "$(ens_mnt "$F")/q/job-" j4
assert_eq "$(ens_mnt "$F")/q/job-0000000003" "$ZK_OUT" "next sequential name"
ens_wait_synced
for i in 1 2 3; do ens_wait_cat "$i" app/new new; done
z=$(ens_field "$(ens_leader)" zxid)
[ "$z" -gt $((zxid_saved)) ] || fail "zxid $z is not above the snapshot's $zxid_saved"
[ $((z >> 32)) -gt $((zxid_saved >> 32)) ] || fail "the epoch did not move past the snapshot's"
for i in 1 2 3; do ens_stop "$i"; done
for i in 1 2 3; do
    "$ZKFS" check "$(ens_data "$i")" || fail "check of server $i"
done

log "restored on server 1 only; servers 2 and 3 empty"
for i in 1 2 3; do rm -rf "$(ens_data "$i")"; done
assert_rc 0 "$ZKFS" snapshot restore "$ZK_TMP/b.zks" --data "$(ens_data 1)"
ens_start_all
ens_wait_synced
trees_are_saved "restored on 1 only"
grep -q "every voter's store was restored or is empty: voting" "$ZK_TMP/zkfs.r1.log" ||
    fail "server 1 did not log that it votes among restored and empty stores"
echo again >"$(ens_mnt 2)/app/again" || fail "write after the restore on one failed"
for i in 1 2 3; do ens_wait_cat "$i" app/again again; done
for i in 1 2 3; do ens_stop "$i"; done
