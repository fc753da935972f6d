#!/usr/bin/env bash
# Network partitions of a 3-replica ensemble, with real network namespaces
# (ens_net_setup in ens_lib.sh: replica I at 10.200.0.I behind a bridge;
# net_cut I cuts it off, net_heal I heals).
#  1. a FOLLOWER cut off (it holds an ephemeral): the majority goes on
#     committing; the cut-off replica serves reads of old data, says
#     "stale":true within a few seconds, fails a write with ETIMEDOUT after
#     a bounded wait and half-applies nothing (an overwrite that failed
#     leaves the old content); its ephemeral goes from its own mount when
#     its lease runs out (4/5 of sessionTimeout after its last
#     acknowledged message), before the majority
#     expires the session (about sessionTimeout); after healing it catches
#     up, is not stale, and all trees are identical. The same for a
#     flock(2) lock: the cut-off holder's checks (pread, fgetxattr of
#     user.zkfs.lock.token; helpers/probe.c) fail before a process on the
#     majority is granted the lock (CLOCK_MONOTONIC stamps, one clock),
#     and `zkfs create -e -- CMD` on the cut-off replica stops CMD.
#  2. the LEADER cut off: the other two elect a new leader and commit; the
#     old leader steps down (not leader, stale) and fails writes; after
#     healing there is one leader, the trees are identical, and every write
#     the majority acknowledged is there.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

# lib.sh's trap kills every daemon and unmounts; the namespaces go first
# (the hub's veths vanish with it, the replicas' once their daemon died).
trap 'rc=$?; ens_net_cleanup; (exit $rc); zk__cleanup' EXIT

now() { printf '%s' "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# --- the network and the ensemble --------------------------------------------
ens_net_setup 3
net_cut() { ens_net_cut "$@"; }
net_heal() { ens_net_heal "$@"; }
ens_net_start_all

M() { ens_mnt "$1"; }

# wr I NAME CONTENT: writes CONTENT to replica I's file NAME (dd reports
# a failed close()); stderr in $ZK_TMP/wr.err.
wr() { printf '%s\n' "$3" | dd of="$(M "$1")/$2" status=none 2>"$ZK_TMP/wr.err"; }

field_is() { [ "$(ens_field "$1" "$2")" = "$3" ]; }
field_not() { [ "$(ens_field "$1" "$2")" != "$3" ]; }

# failing_write I NAME LABEL: a write on cut-off replica I must fail with
# ETIMEDOUT within 10 s; logs how long it took.
failing_write() {
    local t0 rc=0 secs
    t0=$(now)
    wr "$1" "$2" "written while cut off" || rc=$?
    secs=$(since "$t0")
    [ "$rc" != 0 ] || fail "$3: a write on cut-off replica $1 succeeded"
    log "$3: write of $2 on cut-off replica $1 failed after $secs s: $(cat "$ZK_TMP/wr.err")"
    assert_match "Connection timed out" "$(cat "$ZK_TMP/wr.err")" "$3: the error of a write without a quorum"
    awk -v s="$secs" 'BEGIN { exit !(s <= 10) }' ||
        fail "$3: the failing write took $secs s (more than 10 s)"
}

probe=$(zk_helper probe) || exit 1
mkdir "$(M 1)/eph"
setfattr -n user.zkfs.children -v ephemeral "$(M 1)/eph"
touch "$(M 1)/lockf"
wr 1 base "old data" || fail "write of base failed: $(cat "$ZK_TMP/wr.err")"
wr 1 victim "victim v1" || fail "write of victim failed: $(cat "$ZK_TMP/wr.err")"

# === 1. a follower cut off ==================================================
F=$(ens_follower) || fail "no follower"
L=$(ens_leader) || fail "no leader"
O=$((6 - F - L))
log "phase 1: leader $L; cutting follower $F off (it holds eph/e$F)"
zk_bg "$ZKFS" create -e "$(M "$F")/eph/e$F" "held by $F" -- sleep 60
HOLDER=$ZK_BG
for i in 1 2 3; do ens_wait_exists "$i" "eph/e$F"; done
ens_wait_synced 20
zk_bg "$probe" flockhold "$(M "$F")/lockf" "$ZK_TMP/lk.hold" "$ZK_TMP/lk.stop"
wait_for grep -q ' ok$' "$ZK_TMP/lk.hold" || fail "phase 1: no lock holder on $F"
for i in "$L" "$O"; do
    zk_bg "$probe" flockgrab "$(M "$i")/lockf" "$ZK_TMP/lk.grab.$i" "$ZK_TMP/lk.stop"
done

t_cut=$(now)
net_cut "$F"
# The majority commits at once.
for k in 1 2 3; do
    wr "$L" "p$k" "majority $k" || fail "phase 1: write p$k on leader $L failed: $(cat "$ZK_TMP/wr.err")"
    wr "$O" "q$k" "majority $k" || fail "phase 1: write q$k on follower $O failed: $(cat "$ZK_TMP/wr.err")"
done
log "phase 1: the majority committed 6 writes $(since "$t_cut") s after the cut"
# The cut-off replica serves old data, and soon says it is stale.
assert_eq "old data" "$(cat "$(M "$F")/base")" "phase 1: read of base on cut-off replica $F"
wait_for -t 5 field_is "$F" stale true ||
    fail "phase 1: cut-off replica $F not stale 5 s after the cut ($(ens_field "$F" stale))"
log "phase 1: replica $F stale $(since "$t_cut") s after the cut (role $(ens_field "$F" role))"
# The ephemeral: lease on the cut-off replica, expiry on the majority.
# Polled together, at most 20 s.
t_eph_own=
t_eph_maj=
for _ in $(seq 1 400); do
    if [ -z "$t_eph_own" ] && [ ! -e "$(M "$F")/eph/e$F" ]; then t_eph_own=$(since "$t_cut"); fi
    if [ -z "$t_eph_maj" ] && [ ! -e "$(M "$L")/eph/e$F" ] && [ ! -e "$(M "$O")/eph/e$F" ]; then
        t_eph_maj=$(since "$t_cut")
    fi
    [ -n "$t_eph_own" ] && [ -n "$t_eph_maj" ] && break
    [ "$(since "$t_cut" | cut -d. -f1)" -lt 20 ] || break
    sleep 0.05
done
log "phase 1: ephemeral e$F gone from its own (cut-off) mount after ${t_eph_own:-never (20 s)} s, from the majority's after ${t_eph_maj:-never (20 s)} s (sessionTimeout 4 s, lease 3.2 s from a message sent before the cut)"
wait_for -t 10 zk_pid_gone "$HOLDER" ||
    fail "phase 1: zkfs create -e -- sleep 60 still runs after losing its ephemeral"
# The lock: every "held" answer on the cut-off replica returned before the
# majority's first grant began; the first failure is ENOLINK.
wait_for -t 20 eval "cat $ZK_TMP/lk.grab.* | grep -q granted" ||
    fail "phase 1: the majority never got the lock"
wait_for -t 10 eval "grep -qv -e ' ok\$' -e created $ZK_TMP/lk.hold" ||
    fail "phase 1: the cut-off holder's checks never failed"
touch "$ZK_TMP/lk.stop"
g=$(cat "$ZK_TMP"/lk.grab.* | awk '$3 == "granted" { print $1 }' | sort -n | head -1)
awk -v g="$g" '$3 == "created" { next }
    $3 == "ok" && ($2 >= g || failed) { print "held after the grant: " $0; bad = 1 }
    $3 != "ok" && !failed { failed = 1; first = $3 }
    END { if (first != "ENOLINK") { print "first failure " first; bad = 1 }; exit bad }' \
    "$ZK_TMP/lk.hold" || fail "phase 1: lock: $(tail -3 "$ZK_TMP/lk.hold")"
last_ok=$(awk '$3 == "ok" { t = $2 } END { print t }' "$ZK_TMP/lk.hold")
log "phase 1: the cut-off lock holder's last held answer came $(((g - last_ok) / 1000000)) ms before the majority's grant"
[ -n "$t_eph_maj" ] || fail "phase 1: the majority did not expire cut-off replica $F's ephemeral within 20 s"
[ -n "$t_eph_own" ] || fail "phase 1: cut-off replica $F still shows its ephemeral 20 s after the cut (its lease should end 4/5 of sessionTimeout after its last acknowledged message)"
awk -v a="$t_eph_own" -v b="$t_eph_maj" 'BEGIN { exit !(a <= b) }' ||
    fail "phase 1: the majority expired e$F ($t_eph_maj s) before the cut-off replica gave it up ($t_eph_own s)"
# A write on the cut-off replica fails, and leaves nothing half-done: an
# overwrite of an existing file keeps its old content.
failing_write "$F" victim "phase 1"
assert_eq "victim v1" "$(cat "$(M "$F")/victim")" "phase 1: victim on replica $F after its failed overwrite"
failing_write "$F" "new$F" "phase 1"
assert_eq "old data" "$(cat "$(M "$F")/base")" "phase 1: base on replica $F"
[ ! -e "$(M "$F")/p1" ] || fail "phase 1: cut-off replica $F sees p1, written after the cut"

t_heal=$(now)
net_heal "$F"
wait_for -t 20 field_is "$F" stale false || fail "phase 1: replica $F still stale 20 s after healing"
ens_wait_cat "$F" p3 "majority 3" 20
ens_wait_cat "$F" q3 "majority 3" 20
log "phase 1: replica $F caught up $(since "$t_heal") s after healing (role $(ens_field "$F" role), leader $(ens_field "$F" leader_id))"
ens_wait_leader 20
ens_wait_synced 20
ens_trees_identical
for i in 1 2 3; do
    assert_eq "victim v1" "$(cat "$(M "$i")/victim")" "phase 1: victim on replica $i after healing"
    for k in 1 2 3; do
        assert_eq "majority $k" "$(cat "$(M "$i")/p$k")" "phase 1: p$k on replica $i"
        assert_eq "majority $k" "$(cat "$(M "$i")/q$k")" "phase 1: q$k on replica $i"
    done
    [ ! -e "$(M "$i")/eph/e$F" ] || fail "phase 1: e$F is back on replica $i after healing"
done
if [ -e "$(M 1)/new$F" ]; then
    log "phase 1: the failed create of new$F committed after healing, content [$(cat "$(M 1)/new$F")] (outcome unknown after ETIMEDOUT)"
    case $(cat "$(M 1)/new$F") in "" | "written while cut off") ;;
        *) fail "phase 1: new$F holds [$(cat "$(M 1)/new$F")]" ;; esac
fi
log "phase 1: trees identical after healing"

# === 2. the leader cut off ==================================================
L=$(ens_leader) || fail "no leader"
log "phase 2: cutting leader $L off"
O1=$(( L == 1 ? 2 : 1 ))
# From the cut on, a background writer on majority replica O1 retries
# (fresh names, at most 10 tries) until a write succeeds, and records when.
first_write() {
    local n t0=$1
    for n in $(seq 1 10); do
        if printf 'try %s\n' "$n" | dd of="$(M "$O1")/fw-$n" status=none 2>/dev/null; then
            echo "fw-$n $(since "$t0")" >"$ZK_TMP/first_write"
            return 0
        fi
    done
}
t_cut=$(now)
net_cut "$L"
ENS_UP[$L]=0 # the other two must agree on a leader without it
zk_bg first_write "$t_cut"
FW=$ZK_BG
# Poll (15 s at most): the majority agrees on a leader; the old leader
# stops saying it leads; it says it is stale.
t_elect= t_down= t_stale=
for _ in $(seq 1 300); do
    if [ -z "$t_elect" ] && ens__agreed; then t_elect=$(since "$t_cut"); fi
    if [ -z "$t_down" ] && [ "$(ens_field "$L" role)" != leader ]; then t_down=$(since "$t_cut"); fi
    if [ -z "$t_stale" ] && [ "$(ens_field "$L" stale)" = true ]; then t_stale=$(since "$t_cut"); fi
    [ -n "$t_elect" ] && [ -n "$t_down" ] && [ -n "$t_stale" ] && break
    [ "$(since "$t_cut" | sed 's/[.].*//')" -lt 15 ] || break
    sleep 0.05
done
[ -n "$t_elect" ] || fail "phase 2: replicas $(ens_live)agreed on no leader within 15 s of the cut"
NL=$(ens_leader)
log "phase 2: replicas $(ens_live)elected leader $NL $t_elect s after the cut"
[ "$NL" != "$L" ] || fail "phase 2: the cut-off leader $L is still the leader of the majority"
[ -n "$t_down" ] || fail "phase 2: the cut-off leader $L still says it is the leader 15 s after the cut"
log "phase 2: old leader $L stepped down $t_down s after the cut (role now $(ens_field "$L" role))"
[ -n "$t_stale" ] || fail "phase 2: the cut-off old leader $L is not stale 15 s after the cut"
log "phase 2: old leader $L stale $t_stale s after the cut"
wait_for -t 40 zk_pid_gone "$FW" || fail "phase 2: the first-write probe did not finish"
[ -s "$ZK_TMP/first_write" ] || fail "phase 2: 10 writes in a row failed on majority replica $O1"
read -r fw t_fw <"$ZK_TMP/first_write"
log "phase 2: first successful write on majority replica $O1 ($fw) $t_fw s after the cut"
acked=()
for k in 1 2 3 4; do
    for i in $(ens_live); do
        wr "$i" "r$i-$k" "after cut $k" ||
            fail "phase 2: write r$i-$k on replica $i failed: $(cat "$ZK_TMP/wr.err")"
        acked+=("r$i-$k")
    done
done
log "phase 2: the majority committed ${#acked[@]} more writes"
assert_eq "old data" "$(cat "$(M "$L")/base")" "phase 2: read of base on the old leader"
failing_write "$L" victim "phase 2"
assert_eq "victim v1" "$(cat "$(M "$L")/victim")" "phase 2: victim on old leader $L after its failed overwrite"

t_heal=$(now)
net_heal "$L"
ENS_UP[$L]=1
ens_wait_leader 30
ens_wait_synced 30
log "phase 2: healed; $(since "$t_heal") s later all agree on leader $(ens_leader)"
leaders=0
for i in 1 2 3; do
    [ "$(ens_field "$i" role)" = leader ] && leaders=$((leaders + 1))
done
assert_eq 1 "$leaders" "phase 2: number of replicas that say they lead"
ens_trees_identical
for i in 1 2 3; do
    for f in "${acked[@]}"; do
        assert_eq "after cut ${f##*-}" "$(cat "$(M "$i")/$f")" "phase 2: $f on replica $i"
    done
    assert_eq "victim v1" "$(cat "$(M "$i")/victim")" "phase 2: victim on replica $i"
    assert_eq "try ${fw#fw-}" "$(cat "$(M "$i")/$fw")" "phase 2: $fw on replica $i"
done
log "phase 2: trees identical, all ${#acked[@]} acknowledged writes on every replica; done after ${SECONDS}s"
