#!/usr/bin/env bash
# mutate.sh — mutation testing of the consensus core, its driver, the
# lease, the lock table's rules and the simulator's model of ephemerals
# (`make mutate`). Each mutation below is one dangerous change (a quorum of
# n/2, an election that ignores zxids, sessions expired early, ...). For
# each, a copy of the tree gets that one change, is rebuilt, and must be
# caught ("killed"): by the simulator within SEEDS seeds, or by the unit
# suites. A mutant that survives both is a hole in the tests; one whose
# pattern no longer matches the code is STALE (the list must follow the
# code), as is one that no longer compiles. Prints one line per mutant
# and "mutants: N killed, M survived, S stale, E known equivalent"; exit
# status 0 only if every mutant was killed or is a known equivalent one
# (EQUIVALENT below).
#
# Mutants named wipe-* are simulated with --wipe (disks wiped while the
# others run), losttail-* with --lose-tail on 3 voters (a disk that lost
# its last writes), putback-* with --put-back on 3 voters (the same, told
# to the core as a data directory restored or copied back), the faults
# they are about.
#
# Usage: scripts/mutate.sh [NAME...]   (default: every mutation)
# Environment: ZK_MUTATE_SEEDS (default 40) simulator seeds per mutant,
# ZK_MUTATE_TIMEOUT (default 300) seconds per simulator or unit run.
# Works on a copy under a temporary directory; the tree is never changed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seeds=${ZK_MUTATE_SEEDS:-40}
tmo=${ZK_MUTATE_TIMEOUT:-300}
jobs=$(nproc 2>/dev/null || echo 2)

# name @@ file @@ perl substitution (must match exactly once) @@ what it
# breaks
MUTATIONS=$(cat <<'EOF'
quorum-half @@ replica/zab.c @@ s{z->quorum = z->n_voters / 2 \+ 1;}{z->quorum = z->n_voters / 2;} @@ a quorum of n/2 voters (two quorums need not overlap)
elect-ignore-zxid @@ replica/zab_elect.c @@ s{if \(a->zxid != b->zxid\)\n\s*return a->zxid > b->zxid;}{} @@ leader election ignores the zxid (a replica missing commits can lead)
elect-ignore-epoch @@ replica/zab_elect.c @@ s{if \(a->epoch != b->epoch\)\n\s*return a->epoch > b->epoch;}{} @@ leader election ignores the epoch
commit-before-quorum @@ replica/zab_leader.c @@ s{uint64_t c = acks\[z->quorum - 1\];}{uint64_t c = acks[0];} @@ the leader commits what one replica acknowledged
commit-no-quorum-check @@ replica/zab_leader.c @@ s{(static void update_commit.*?)if \(n < z->quorum\)\n\s*return;}{$1}s @@ update_commit without its quorum check
apply-before-durable @@ replica/zab.c @@ s{uint64_t have = z->observer \? zk__last_zxid\(z\) : z->persisted;}{uint64_t have = zk__last_zxid(z);} @@ a voter applies entries once committed, before they are durable here (an observer may)
skip-trunc @@ replica/zab_learner.c @@ s{else\n\s*zk__log_truncate\(z, m->zxid\);}{else\n            (void)0;} @@ a learner ignores TRUNC (keeps entries the quorum never committed)
ack-before-durable @@ replica/zab_learner.c @@ s{(static void send_ack.*?)m->zxid = zxid;}{$1m->zxid = zxid ? zk__last_zxid(z) : 0;}s @@ a learner acknowledges entries before they are durable (every ACK carries its last zxid)
driver-ack-early @@ replica/driver.c @@ s{type == ZK_ZAB_MSG_INFORM \|\|}{type == ZK_ZAB_MSG_INFORM || type == ZK_ZAB_MSG_ACK ||} @@ the driver sends a learner's ACK while the batch it acknowledges is still being written (pipelining one message type too far)
session-expiry-eighth @@ replica/zab_leader.c @@ s{z->tick - heard <= z->cfg.session_timeout_ticks\)}{z->tick - heard <= z->cfg.session_timeout_ticks / 8)} @@ the leader expires sessions at 1/8 of sessionTimeout
session-expiry-half @@ replica/zab_leader.c @@ s{z->tick - heard <= z->cfg.session_timeout_ticks\)}{z->tick - heard <= z->cfg.session_timeout_ticks / 2)} @@ the leader expires sessions at 1/2 of sessionTimeout
stale-epoch-accepted @@ replica/zab_learner.c @@ s{lost\(z, "leader's epoch is older than one accepted"\);\n\s*return;}{;} @@ a learner follows a leader of an older epoch
lease-too-long @@ replica/lease.c @@ s{return lease < tick_ms \? tick_ms : lease;}{return lease + session_timeout_ms;} @@ the lease outlives sessionTimeout (a cut-off holder keeps its locks after the ensemble expired it)
lease-never-ends @@ replica/lease.c @@ s{return a > b \? a : b;}{return (a > b ? a : b) + (1ull << 62);} @@ the replica never gives its session up when cut off
lease-fifth-margin @@ replica/lease.c @@ s{\(session_timeout_ms - slack\) \* ZK__LEASE_RATE_RATIO_NUM /\s*ZK__LEASE_RATE_RATIO_DEN;}{session_timeout_ms - (session_timeout_ms / 5 > slack ? session_timeout_ms / 5 : slack);} @@ the lease of before the drift bound (sessionTimeout less a fifth): unsafe when clock rates differ by 1.5x
lock-fifo-broken @@ store/lock_tab.c @@ s{if \(!\(e->flags & ZK_LOCK_QUEUED\) \|\| i < qi\)}{if (!(e->flags & ZK_LOCK_QUEUED))} @@ a lock request overtakes the earlier waiters it conflicts with (readers starve a queued writer)
lock-close-keeps-locks @@ store/lock_tab.c @@ s{if \(t->e\[i\].session == session\)\n\s*tab_remove\(t, i--\);}{(void)session;} @@ a closed session's locks and waits stay in the table
eph-close-keeps @@ test/sim/sim_eph.c @@ s{if \(n->session == session\) \{}{if (0 && n->session == session) \{} @@ the close of a session leaves its ephemerals in the tree (the simulator's model of store/apply.c op_session_close: the rules are written again there, see sim_eph.c)
eph-create-no-session @@ test/sim/sim_eph.c @@ s{!open_in\(s, &r->model, op.session\) \? ZK_ESESSION : 0;}{0;} @@ an ephemeral created without an open session (the model of store/apply.c op_create): a create that commits after its session's close leaves an ephemeral nobody will delete
eph-install-drops @@ test/sim/sim_node.c @@ s{    r->model = \*m;\n}{    r->model = *m;\n    memset(r->model.eph, 0, sizeof(r->model.eph));\n} @@ a snapshot install loses the sender's ephemerals (the replica's tree is no longer the committed one at that zxid)
wipe-gate-off @@ replica/zab_elect.c @@ s{if \(z->abstain \|\| z->lifted \|\| !zk__store_empty\(z\) \|\|}{if (1 || z->abstain || z->lifted || !zk__store_empty(z) ||} @@ a replica whose disk was wiped votes and counts with the promises it forgot
wipe-stale-epoch @@ replica/zab_learner.c @@ s{if \(z->abstain && !zk__epoch_fresh\(z, z->fepoch\)\) \{}{if (0 && z->abstain) \{} @@ a wiped replica counts again in the epoch it found running (one it may have promised not to help)
lock-unlock-any-owner @@ store/lock_tab.c @@ s{\(e->flags & ZK_LOCK_QUEUED\) \|\| !same_owner\(e, o\) \|\|}{(e->flags & ZK_LOCK_QUEUED) || (e->flags & ZK_LOCK_FLOCK) != (o->flags & ZK_LOCK_FLOCK) ||} @@ an unlock releases the other owners' locks in its range too
sync-no-wait @@ replica/driver.c @@ s{(int zk_driver_propose\(.*?\{\n)}{$1    if (is_sync) { free(payload); cb(arg, 0, NULL); return 0; }\n}s @@ a read barrier (zkfs sync) answered at once, without waiting for the leader's commit point: a read after it is only sequentially consistent (caught by the register history's linearizability check, sim_lin.c)
resubmit-before-applied @@ replica/driver.c @@ s{if \(d->applied_zxid < d->est_zxid\)\n\s*return;}{} @@ the driver proposes again a write of an older epoch before it applied the established leader's history, which may hold (and commit) that write: the same write committed twice
resubmit-current-epoch @@ replica/driver.c @@ s{if \(!p->submitted \|\| p->unknown \|\| p->epoch >= st.epoch \|\|}{if (!p->submitted || p->unknown ||} @@ the driver proposes again writes of the current epoch, still in flight and able to commit: the same write committed twice
lease-check-off @@ replica/driver.c @@ s{if \(!st.session_open \|\| now < until\)\n\s*return 0;}{(void)until; return 0;} @@ the lease check disabled: a replica cut off from the quorum never gives its session up (its locks and ephemerals outlive their expiry by the ensemble)
stale-open-accepted @@ replica/zab_leader.c @@ s{zk__sess_stale_open\(z, mi, zk_get_be64\(e->data\)\)\)}{0)} @@ the leader proposes a SESSION_OPEN request overtaken by a newer one of the same member (a delayed duplicate): it closes the member's current session while its lease still runs
learner-follows-older @@ replica/zab_learner.c @@ s{\(z->observer && e < \(z->applied >> 32\)\) \|\|}{} @@ a learner (an observer: its hard state may lag) follows a leader whose epoch is older than its applied zxid's, and a snapshot takes it back in time
losttail-gate-off @@ replica/zab.c @@ s{if \(st->lost_writes && }{if (0 && st->lost_writes && } @@ a replica whose store lost its last writes (its marker is ahead of it) votes and counts with the promises it forgot (simulated with --lose-tail, 3 voters, as every losttail-* mutant)
putback-gate-off @@ replica/zab.c @@ s{z->abstain = z->restored = 1;}{z->restored = 1;} @@ a replica whose data directory was put back from a backup or a copy (the store's restored mark) votes with the promises it forgot (simulated with --put-back, 3 voters, as every putback-* mutant)
ids-after-establish @@ replica/zab_leader.c @@ s{(    learn_last_reqs\(z\);\n)(    z->lphase = ZK__L_SYNC;.*?)(    update_commit\(z\);\n\}\n\nvoid zk__lead_self_persisted)}{$2$1$3}s @@ the leader takes each member's highest request id from its log only once established (as before 2026-12-04): a wiped learner synced before that is told an older life's id and has its requests dropped as duplicates
putback-lift-any @@ replica/zab_elect.c @@ s{p->forgetful = \(m->flags & ZK_ZAB_MF_RESTORED\) \|\| \(!m->seq && !m->link\);}{p->forgetful = 1;} @@ a put-back replica votes once it heard every voter, whether they remember or not (not only when every store was restored or is empty)
EOF
)

tmp=$(mktemp -d /tmp/zkfs-mutate.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
git ls-files -z | tar --null -cf - -T - | tar -xf - -C "$tmp"
echo "mutate: building the unmutated copy in $tmp"
if ! make -s -C "$tmp" -j"$jobs" build/zkfs-sim build/zkfs-unit >"$tmp/.build.log" 2>&1; then
    tail -n 20 "$tmp/.build.log"
    echo "mutate: the unmutated tree does not build"
    exit 1
fi

# Mutants known to be equivalent (no behaviour can tell them apart, see
# docs/testing.md): their survival is reported, not counted as a hole.
EQUIVALENT=" ack-before-durable "

killed=0 survived=0 stale=0 equivalent=0
while IFS= read -r line; do
    [ -n "$line" ] || continue
    name=${line%% @@ *}; line=${line#* @@ }
    file=${line%% @@ *}; line=${line#* @@ }
    subst=${line%% @@ *}; what=${line#* @@ }
    if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qx "$name"; then
        continue
    fi
    cp "$root/$file" "$tmp/$file"
    n=$(MUT="${subst}g" perl -0777 -ne '$n = eval "\$_ =~ $ENV{MUT}"; print $n || 0' "$tmp/$file")
    if [ "$n" != 1 ]; then
        printf 'STALE    %-24s %s (pattern matched %s times)\n' "$name" "$file" "$n"
        stale=$((stale + 1))
        continue
    fi
    MUT="$subst" perl -0777 -i -pe 'eval "\$_ =~ $ENV{MUT}"' "$tmp/$file"
    verdict=
    simargs=()
    case $name in
    wipe-*) simargs=(--wipe) ;;
    losttail-*) simargs=(--lose-tail --replicas 3 --observers 0) ;;
    putback-*) simargs=(--put-back --replicas 3 --observers 0) ;;
    esac
    if ! make -s -C "$tmp" -j"$jobs" build/zkfs-sim build/zkfs-unit >"$tmp/.build.log" 2>&1; then
        # A mutant that does not compile tests nothing: fix its line.
        printf 'STALE    %-24s %s (the mutant does not build)\n' "$name" "$file"
        stale=$((stale + 1))
        cp "$root/$file" "$tmp/$file"
        touch "$tmp/$file"
        continue
    elif ! timeout "$tmo" "$tmp/build/zkfs-sim" --seed 1 --seeds "$seeds" "${simargs[@]}" >"$tmp/.sim.log" 2>&1; then
        verdict="killed by the simulator: $(grep -m1 -E 'seed|invariant|abort' "$tmp/.sim.log" | cut -c1-100)"
    elif ! (cd "$tmp" && CK_DEFAULT_TIMEOUT=60 timeout "$tmo" build/zkfs-unit >"$tmp/.unit.log" 2>&1); then
        verdict="killed by the unit tests: $(grep -m1 -E ':F:|:E:' "$tmp/.unit.log" | cut -d: -f1,4 | cut -c1-100)"
    fi
    cp "$root/$file" "$tmp/$file"
    touch "$tmp/$file"
    if [ -n "$verdict" ]; then
        printf 'KILLED   %-24s %s\n' "$name" "$verdict"
        killed=$((killed + 1))
    elif [[ $EQUIVALENT == *" $name "* ]]; then
        printf 'EQUIV    %-24s %s (%s; known equivalent)\n' "$name" "$what" "$file"
        equivalent=$((equivalent + 1))
    else
        printf 'SURVIVED %-24s %s (%s)\n' "$name" "$what" "$file"
        survived=$((survived + 1))
    fi
done <<<"$MUTATIONS"

echo "mutants: $killed killed, $survived survived, $stale stale, $equivalent known equivalent (simulator: $seeds seeds each)"
[ "$survived" -eq 0 ] && [ "$stale" -eq 0 ] && [ "$killed" -gt 0 ]
