/*
 * zab_elect.c — leader election in the style of ZooKeeper's Fast Leader
 * Election. A LOOKING voter proposes the best candidate it knows, ordered
 * by (current epoch, last zxid, server id); a higher election round resets
 * everyone's votes; a replica decides once a quorum of voters in its round
 * back its candidate and one more tick has passed without a better vote
 * (FLE's finalize wait) — or at once, when every voter it can reach has
 * voted in its round: a better vote could then only come from a voter
 * whose connection the embedder reported lost (zk_zab_peer_down), so
 * waiting would only delay a failover. Replicas that already follow or
 * lead answer a LOOKING peer with their leader, so late joiners and
 * observers go straight to the established leader; a new leader tells
 * every peer at once, so that a follower whose FOLLOWERINFO arrived
 * while it was still LOOKING sends it again without waiting for a tick.
 *
 * Election only affects liveness: safety comes from discovery, where the
 * leader needs a quorum to accept a fresh epoch and steps down if any of
 * them has a more recent history (zab_leader.c).
 *
 * Empty stores: a voter whose store never accepted an epoch is either
 * new in a new ensemble, or lost its disk (a new disk, an rm -rf) and
 * with it the promises it made: epochs accepted, entries acknowledged.
 * Counting such a replica could make a quorum that misses committed
 * entries, or one that reuses an epoch. So once it hears a peer report
 * history (a current epoch or a zxid above 0: the ensemble has committed
 * or may have), it abstains: it votes for nobody, decides no election,
 * and as a learner its FOLLOWERINFO and ACKEPOCH are not counted, its
 * ACKs do not say SYNCED (so no leader counts them for establishment,
 * commits or the lease) and it persists no epoch; it follows a leader
 * that reports itself leading and syncs from it (it has the data and
 * serves). It becomes a member only in a fresh epoch: one at least as
 * high as every epoch accepted by a quorum of the other voters, as they
 * reported to it since it started. An epoch it promised before its disk
 * was lost was accepted by a quorum that meets that one in a replica that
 * remembers, so a fresh epoch is not below it (in the spirit of Paxos
 * Made Live's rule for a rebuilt replica). Once NEWLEADER of a fresh
 * epoch is durable it votes and counts like any member; in an older epoch
 * (a stale leader) it only learns, until the next leader change. At the
 * first start of an ensemble nobody has history and everyone votes. A
 * store that lost its last writes (the embedder's marker is ahead of it:
 * restore's lost_writes) forgot promises too, and abstains the same way
 * from its start. Every
 * VOTE carries the sender's current epoch in `seq` and its accepted epoch
 * in `link` for this (0 from older versions).
 *
 * Restored stores: a store put back from a backup (`zkfs snapshot
 * restore`) or from a copy of the data directory (the embedder's mark,
 * restore's restored) may have forgotten promises made after that copy,
 * but it may also be one of a new ensemble restored everywhere from one
 * backup, where nobody remembers anything newer. It abstains from its
 * start as a store that lost writes does, and says so in its VOTEs (flag
 * RESTORED) while its epochs are still the restored ones. It votes after
 * all only once every other voter has reported, in its last VOTE, a
 * restored or an empty store (no current or accepted epoch): then no
 * voter remembers a promise made after the backup. A voter that
 * remembers, or one not heard from yet, keeps it abstaining until it has
 * synced in a fresh epoch. An empty store that abstains because it
 * heard a restored one lifts its abstention by the same rule, so that a
 * new ensemble restored on one server (the others empty) elects.
 */
#include "zab_int.h"

struct vote {
    uint32_t leader;
    uint64_t epoch, zxid;
};

static int better(const struct vote *a, const struct vote *b)
{
    if (a->epoch != b->epoch)
        return a->epoch > b->epoch;
    if (a->zxid != b->zxid)
        return a->zxid > b->zxid;
    return a->leader > b->leader;
}

static struct vote own_vote(const struct zk_zab *z)
{
    struct vote v = { z->cfg.id, z->hard.current_epoch, zk__last_zxid(z) };
    return v;
}

static struct vote cur_vote(const struct zk_zab *z)
{
    struct vote v = { z->vote_leader, z->vote_epoch, z->vote_zxid };
    return v;
}

static void set_vote(struct zk_zab *z, const struct vote *v)
{
    z->vote_leader = v->leader;
    z->vote_epoch = v->epoch;
    z->vote_zxid = v->zxid;
    z->look_tick = z->tick;     /* restart the finalize wait */
}

/* Sends this replica's notification: its vote while LOOKING, otherwise
 * its role and the leader it follows. */
void zk__elect_announce(struct zk_zab *z, uint32_t to)
{
    struct zk_zab_msg *m = zk__msg(z, ZK_ZAB_MSG_VOTE, to);
    m->state = z->role;
    m->epoch = z->abstain ? 0 : z->round;    /* moves nobody's round */
    m->seq = z->hard.current_epoch;
    m->link = z->hard.accepted_epoch;
    if (zk__store_restored(z))
        m->flags |= ZK_ZAB_MF_RESTORED;
    if (z->role == ZK_ZAB_LOOKING) {
        m->leader = z->vote_leader;
        m->aux = z->vote_epoch;
        m->zxid = z->vote_zxid;
    } else {
        m->leader = z->role == ZK_ZAB_LEADING ? z->cfg.id : z->leader;
        /* A learner reports its epoch only once synced, so that learners
         * stuck connecting to a replica that is not leading cannot pull
         * others after it. */
        m->zxid2 = z->role == ZK_ZAB_LEADING ? z->lepoch :
                   z->fstage == ZK__F_ACTIVE ? z->fepoch : 0;
        m->aux = z->hard.current_epoch;
        m->zxid = zk__last_zxid(z);
    }
}

void zk__elect_broadcast(struct zk_zab *z)
{
    for (uint32_t i = 0; i < z->cfg.n_members; i++)
        if (i != z->self)
            zk__elect_announce(z, z->peers[i].id);
}

void zk__elect_start(struct zk_zab *z)
{
    z->n_elections++;
    z->round++;
    z->leader = 0;
    z->fepoch = 0;
    if (z->observer || z->abstain) {
        struct vote none = { 0, 0, 0 };
        set_vote(z, &none);
    } else {
        struct vote v = own_vote(z);
        set_vote(z, &v);
    }
    zk__elect_broadcast(z);
}

static int vote_eq(const struct zk__peer *p, const struct vote *v)
{
    return p->vote_leader == v->leader && p->vote_epoch == v->epoch &&
           p->vote_zxid == v->zxid;
}

/* FLE's decision: a quorum of voters in this round back our candidate. */
static int have_quorum(const struct zk_zab *z)
{
    struct vote v = cur_vote(z);
    uint32_t n = 1;
    for (uint32_t i = 0; i < z->cfg.n_members; i++) {
        const struct zk__peer *p = &z->peers[i];
        if (i == z->self || p->observer || !p->vote_round_valid)
            continue;
        if (p->vote_round == z->round && vote_eq(p, &v))
            n++;
    }
    return n >= z->quorum;
}

/* Every voter we can reach has voted in our round. Our vote is at least
 * as good as every vote we hold (we adopt better ones as they come), and
 * each voter's vote is at least as good as its own history, so no better
 * candidate can appear except from a voter reported down. */
static int all_reachable_voted(const struct zk_zab *z)
{
    for (uint32_t i = 0; i < z->cfg.n_members; i++) {
        const struct zk__peer *p = &z->peers[i];
        if (i == z->self || p->observer || p->down)
            continue;
        if (!p->vote_round_valid || p->vote_round != z->round)
            return 0;
    }
    return 1;
}

/* Decides the election if it can: a quorum backs our candidate, and
 * either a tick passed since our vote last changed (finalized) or no
 * reachable voter is left to hear from. Returns 1 when decided. */
static int try_decide(struct zk_zab *z, int finalized)
{
    if (z->observer || z->abstain || !have_quorum(z))
        return 0;
    if (!finalized && !all_reachable_voted(z))
        return 0;
    uint32_t l = z->vote_leader;
    zk__trace(z, "elected %u in round %llu%s", l,
              (unsigned long long)z->round,
              finalized ? "" : " (every reachable voter voted)");
    zk__become(z, l == z->cfg.id ? ZK_ZAB_LEADING : ZK_ZAB_FOLLOWING, l);
    return 1;
}

void zk__elect_tick(struct zk_zab *z)
{
    if (try_decide(z, z->tick > z->look_tick))
        return;
    zk__elect_broadcast(z);
}

/* A voter's connection was lost: we may no longer need its vote. */
void zk__elect_peer_down(struct zk_zab *z)
{
    if (z->role == ZK_ZAB_LOOKING)
        try_decide(z, 0);
}

/* A report from a replica that is not LOOKING: follow its leader if the
 * leader itself says it leads, or a quorum of voters name it. */
static void recv_report(struct zk_zab *z, struct zk__peer *p,
                        const struct zk_zab_msg *m)
{
    p->rep_state = m->state;
    p->rep_leader = m->leader;
    p->rep_epoch = m->zxid2;
    p->rep_tick = z->tick;
    enum zk_zab_role me = z->observer ? ZK_ZAB_OBSERVING : ZK_ZAB_FOLLOWING;
    if (m->state == ZK_ZAB_LEADING && m->leader == m->from) {
        zk__become(z, me, m->from);
        return;
    }
    /* Not a leader whose connection we just lost (a dead leader's
     * followers may not have noticed yet). */
    int li = zk__member_index(z, m->leader);
    if (li >= 0 && z->peers[li].down)
        return;
    uint32_t n = 0;
    for (uint32_t i = 0; i < z->cfg.n_members; i++) {
        const struct zk__peer *q = &z->peers[i];
        if (q->observer || i == z->self || q->down ||
            q->rep_leader != m->leader ||
            !m->zxid2 || q->rep_epoch != m->zxid2 ||
            q->rep_state == ZK_ZAB_LOOKING ||
            z->tick - q->rep_tick > z->cfg.sync_limit_ticks)
            continue;
        n++;
    }
    if (n >= z->quorum && m->leader != z->cfg.id)
        zk__become(z, me, m->leader);
}

int zk__store_empty(const struct zk_zab *z)
{
    return !z->observer && z->hard.accepted_epoch == 0 &&
           z->hard.current_epoch == 0;
}

/* Non-zero while this voter's store is a restored one (restore's
 * restored) whose epochs have not moved since it started. */
int zk__store_restored(const struct zk_zab *z)
{
    return z->restored && z->hard.accepted_epoch == z->restored_acc &&
           z->hard.current_epoch == z->restored_cur;
}

/* Non-zero if e is at least every epoch accepted by the voters that
 * reported to us since we started, and those are a quorum without us.
 * Equal is enough: two leaders never both gather a counted quorum in
 * one epoch, so if we had accepted e before, it was from e's leader (or
 * e was our own proposal, which died with our disk); a slow replica of
 * a new ensemble thus counts in the first epoch. */
int zk__epoch_fresh(const struct zk_zab *z, uint64_t e)
{
    uint32_t n = 0;
    uint64_t max = 0;
    for (uint32_t i = 0; i < z->cfg.n_members; i++) {
        const struct zk__peer *p = &z->peers[i];
        if (i == z->self || p->observer || !p->acc_heard)
            continue;
        n++;
        if (p->rep_acc > max)
            max = p->rep_acc;
    }
    return n >= z->quorum && e >= max;
}

/* An empty store hears a peer with history: from now on it abstains. */
static void heard_history(struct zk_zab *z, const struct zk_zab_msg *m)
{
    if (z->abstain || z->lifted || !zk__store_empty(z) ||
        !(m->seq || m->aux || m->zxid))
        return;
    z->abstain = 1;
    zk__trace(z, "data directory is empty but the ensemble has history: "
              "waiting to sync before voting (peer %u reports epoch %llu)",
              m->from, (unsigned long long)(m->seq ? m->seq : m->aux));
    if (z->role == ZK_ZAB_LOOKING) {
        struct vote none = { 0, 0, 0 };
        set_vote(z, &none);
        zk__elect_broadcast(z);
    }
}

/* A restored or empty store that abstains votes once every other
 * voter's last VOTE reported a restored or empty store: nobody remembers
 * a promise newer than the backups ("restored stores"; a new ensemble
 * restored on one server, the others empty, elects so). */
static void restored_lift(struct zk_zab *z)
{
    if (!z->abstain || z->lost_writes || z->role != ZK_ZAB_LOOKING ||
        (!zk__store_restored(z) && !zk__store_empty(z)))
        return;
    for (uint32_t i = 0; i < z->cfg.n_members; i++) {
        const struct zk__peer *p = &z->peers[i];
        if (i != z->self && !p->observer && (!p->acc_heard || !p->forgetful))
            return;
    }
    z->abstain = 0;
    z->lifted = 1;
    zk__trace(z, "every voter's store was restored or is empty: voting "
              "(accepted epoch %llu, last zxid %016llx)",
              (unsigned long long)z->hard.accepted_epoch,
              (unsigned long long)zk__last_zxid(z));
    struct vote mine = own_vote(z);
    set_vote(z, &mine);
    zk__elect_broadcast(z);
}

/* Called once a Ready is durable: an abstaining replica is a member
 * again once the Ready holding its sync in a fresh epoch (NEWLEADER's
 * log and hard state) is (a store that lost writes may already hold
 * that epoch, so the durable hard state alone does not say it). */
void zk__abstain_check(struct zk_zab *z)
{
    if (!z->abstain || !z->cur.member_epoch)
        return;
    z->abstain = 0;
    zk__trace(z, "synced from %s: voting again (epoch %llu)",
              z->lost_writes ? "a store that lost writes" :
              z->restored ? "a restored store" : "an empty data directory",
              (unsigned long long)z->cur.member_epoch);
    z->lost_writes = z->restored = 0;
}

void zk__elect_recv(struct zk_zab *z, const struct zk_zab_msg *m)
{
    struct zk__peer *p = &z->peers[zk__member_index(z, m->from)];
    p->acc_heard = 1;
    if (m->link > p->rep_acc)
        p->rep_acc = m->link;
    p->forgetful = (m->flags & ZK_ZAB_MF_RESTORED) || (!m->seq && !m->link);
    heard_history(z, m);
    restored_lift(z);
    if (z->role != ZK_ZAB_LOOKING) {
        if (m->state == ZK_ZAB_LOOKING)
            zk__elect_announce(z, m->from);
        else if (m->state == ZK_ZAB_LEADING && m->leader == m->from &&
                 m->from == z->leader && z->role != ZK_ZAB_LEADING)
            zk__learn_leader_up(z);
        return;
    }
    if (m->state != ZK_ZAB_LOOKING) {
        recv_report(z, p, m);
        return;
    }
    if (p->observer || z->observer || z->abstain)
        return;
    struct vote theirs = { m->leader, m->aux, m->zxid };
    if (m->epoch > z->round) {
        z->round = m->epoch;
        for (uint32_t i = 0; i < z->cfg.n_members; i++)
            z->peers[i].vote_round_valid = 0;
        struct vote mine = own_vote(z);
        set_vote(z, better(&theirs, &mine) ? &theirs : &mine);
        zk__elect_broadcast(z);
    } else if (m->epoch == z->round) {
        struct vote mine = cur_vote(z);
        if (better(&theirs, &mine)) {
            set_vote(z, &theirs);
            zk__elect_broadcast(z);
        } else if (better(&mine, &theirs)) {
            /* It has not seen our vote (it may have been following when
             * our broadcast came): tell it now, not at the next tick. */
            zk__elect_announce(z, m->from);
        }
    } else {
        zk__elect_announce(z, m->from);
        return;
    }
    p->vote_round_valid = 1;
    p->vote_round = m->epoch;
    p->vote_leader = theirs.leader;
    p->vote_epoch = theirs.epoch;
    p->vote_zxid = theirs.zxid;
    try_decide(z, 0);
}
