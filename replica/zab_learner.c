/*
 * zab_learner.c — a follower's or observer's side of Zab.
 *
 * Discovery: FOLLOWERINFO (accepted epoch) goes to the chosen leader until
 * LEADERINFO(e') arrives; e' is accepted (persisted before ACKEPOCH
 * leaves) unless it is older than an epoch already accepted, in which case
 * the learner goes back to election. ACKEPOCH reports (current epoch, last
 * zxid, applied zxid) and is marked "counted" only for a fresh acceptance,
 * as in ZooKeeper.
 * Synchronisation: DIFF / TRUNC / SNAP, entries, then NEWLEADER: the
 * learner's currentEpoch becomes e' (durable before its ACK leaves).
 * Broadcast: PROPOSE is logged and acknowledged in the same Ready (so the
 * ACK leaves after the entries are durable); COMMIT, PING and INFORM move
 * the commit point; entries are applied once committed and durable here.
 * The leader's stream is sequenced: a duplicate is ignored, a gap (lost or
 * reordered message) makes the learner reconnect with a new link.
 */
#include "zab_int.h"

static void send_followerinfo(struct zk_zab *z)
{
    struct zk_zab_msg *m = zk__msg(z, ZK_ZAB_MSG_FOLLOWERINFO, z->leader);
    m->link = z->link;
    m->aux = z->hard.accepted_epoch;
    if (z->observer)
        m->flags = ZK_ZAB_MF_OBSERVER;
    if (z->abstain)
        m->flags |= ZK_ZAB_MF_ABSTAIN;
}

/* Every ACK carries the lease's two numbers (see zab_leader.c, "lease"):
 * our current tick in zxid2, which the leader echoes back once it knows
 * it received it while a quorum followed it, and in seq the last PING
 * tick of the leader we received, which the leader counts towards its own
 * quorum confirmation. */
static void send_ack(struct zk_zab *z, uint64_t zxid)
{
    struct zk_zab_msg *m = zk__msg(z, ZK_ZAB_MSG_ACK, z->leader);
    m->epoch = z->fepoch;
    m->link = z->link;
    m->zxid = zxid;
    m->zxid2 = z->tick;
    m->seq = z->ping_seen;
    m->aux = z->my_sid;
    if (z->fstage == ZK__F_ACTIVE && !z->abstain)
        m->flags = ZK_ZAB_MF_SYNCED;
}

void zk__learn_start(struct zk_zab *z)
{
    z->fstage = ZK__F_CONNECT;
    z->lest = 0;
    z->link = zk__rand(z) | 1;
    z->expect_seq = 0;
    z->fepoch = 0;
    z->ping_seen = 0;
    z->heard_tick = z->stage_tick = z->tick;
    z->commit = z->applied;
    send_followerinfo(z);
}

static void lost(struct zk_zab *z, const char *why)
{
    zk__trace(z, "leaving leader %u: %s", z->leader, why);
    zk__become(z, ZK_ZAB_LOOKING, 0);
}

/* A gap or an unexpected message: start over on a new link. */
static void reconnect(struct zk_zab *z, const char *why)
{
    zk__trace(z, "reconnecting to %u: %s", z->leader, why);
    uint64_t stage_tick = z->stage_tick;
    zk__learn_start(z);
    z->stage_tick = stage_tick;   /* initLimit still bounds the attempt */
}

void zk__learn_tick(struct zk_zab *z)
{
    if (z->tick - z->heard_tick > z->cfg.sync_limit_ticks) {
        lost(z, "leader silent for syncLimit");
        return;
    }
    if (z->fstage != ZK__F_ACTIVE &&
        z->tick - z->stage_tick > z->cfg.init_limit_ticks) {
        lost(z, "not synced within initLimit");
        return;
    }
    if (z->fstage == ZK__F_CONNECT)
        send_followerinfo(z);
    else
        send_ack(z, z->persisted);
}

/* ---------------------------------------------------------------------- */
/* discovery and sync                                                     */
/* ---------------------------------------------------------------------- */

static void send_ackepoch(struct zk_zab *z, int counted)
{
    struct zk_zab_msg *m = zk__msg(z, ZK_ZAB_MSG_ACKEPOCH, z->leader);
    m->epoch = z->fepoch;
    m->link = z->link;
    m->aux = z->hard.current_epoch;
    m->zxid = zk__last_zxid(z);
    m->zxid2 = z->applied;
    if (counted)
        m->flags = ZK_ZAB_MF_COUNTED;
}

static void recv_leaderinfo(struct zk_zab *z, const struct zk_zab_msg *m)
{
    uint64_t e = m->epoch;
    int counted = 0;
    if (z->abstain) {
        /* No promise: nothing persisted, ACKEPOCH not counted. */
        z->fepoch = e;
        z->fstage = ZK__F_SYNC;
        send_ackepoch(z, 0);
        return;
    }
    /* An observer, nor older than what it applied: its hard state may lag
     * its applied zxid (it promises nothing), and seed 1,079,759 had one
     * follow a stale leader and go back in time. A voter's accepted epoch
     * covers this, except after a quorum lost writes, when rejoining an
     * older-epoch leader by snapshot is how it recovers (t_ens_rejoin). */
    if (e < z->hard.current_epoch ||
        (z->observer && e < (z->applied >> 32)) ||
        (!z->observer && e < z->hard.accepted_epoch)) {
        lost(z, "leader's epoch is older than one accepted");
        return;
    }
    if (e > z->hard.accepted_epoch) {
        zk__set_hard(z, e, z->hard.current_epoch);
        z->acc_leader = z->leader;
        counted = 1;
    } else if (e == z->hard.accepted_epoch && z->acc_leader == z->leader) {
        counted = 1;
    }
    z->fepoch = e;
    z->fstage = ZK__F_SYNC;
    send_ackepoch(z, counted && !z->observer);
}

static int recv_entries(struct zk_zab *z, const struct zk_zab_msg *m)
{
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const struct zk_zab_entry *e = &m->entries[i];
        if (e->zxid <= zk__last_zxid(z))
            return -1;
        zk__learn_ids(z, e, 0);
        zk__log_append(z, zk__ent_new(e));
    }
    return 0;
}

static void recv_sync(struct zk_zab *z, const struct zk_zab_msg *m)
{
    if (m->type == ZK_ZAB_MSG_DIFF || m->type == ZK_ZAB_MSG_TRUNC ||
        m->type == ZK_ZAB_MSG_SNAP) {
        struct zk_zab_entry last = { .origin = z->cfg.id, .req_id = m->aux,
                                     .type = ZK_ZAB_ENTRY_WRITE };
        if (m->aux)
            zk__learn_ids(z, &last, 0);
    }
    switch (m->type) {
    case ZK_ZAB_MSG_DIFF:
        if (m->zxid != zk__last_zxid(z))
            reconnect(z, "DIFF from a zxid we do not end at");
        break;
    case ZK_ZAB_MSG_TRUNC:
        if (m->zxid > zk__last_zxid(z) || m->zxid < z->log.base)
            reconnect(z, "TRUNC outside our log");
        else
            zk__log_truncate(z, m->zxid);
        break;
    case ZK_ZAB_MSG_SNAP:
        if (m->n_sessions != z->cfg.n_members) {
            reconnect(z, "unusable SNAP");
            break;
        }
        /* Below our applied zxid: the leader sends SNAP only when our
         * applied zxid is not in its history, so what we applied past
         * the snapshot was never committed by this quorum (our disk, or
         * the others', lost writes). Applied state cannot be truncated:
         * it is replaced, rather than refused again at every retry. */
        if (m->zxid < z->applied)
            zk__trace(z, "SNAP at %016llx below our applied %016llx: "
                      "replacing transactions the quorum never committed",
                      (unsigned long long)m->zxid,
                      (unsigned long long)z->applied);
        zk__log_reset(z, m->zxid, m->from);
        memcpy(z->sessions, m->sessions, sizeof(z->sessions));
        zk__sess_note(z, NULL);
        zk__learn_ids(z, NULL, z->sessions[z->self]);
        break;
    case ZK_ZAB_MSG_PROPOSE:
        if (recv_entries(z, m))
            reconnect(z, "sync entries out of order");
        break;
    case ZK_ZAB_MSG_NEWLEADER:
        if (m->zxid != zk__last_zxid(z)) {
            reconnect(z, "NEWLEADER does not match our log");
            break;
        }
        if (z->abstain && !zk__epoch_fresh(z, z->fepoch)) {
            /* Synced, but in an epoch we may have promised not to help
             * before our disk was lost: learn only, persist no epoch. */
            z->fstage = ZK__F_ACTIVE;
            z->sync_last = m->zxid;
            zk__trace(z, "synced with %u in epoch %llu at %016llx, not a "
                      "fresh epoch: learning only", z->leader,
                      (unsigned long long)z->fepoch,
                      (unsigned long long)m->zxid);
            send_ack(z, m->zxid);
            break;
        }
        if (z->abstain)      /* a member once this Ready is durable */
            z->out.member_epoch = z->fepoch;
        zk__set_hard(z, z->hard.accepted_epoch > z->fepoch ?
                     z->hard.accepted_epoch : z->fepoch, z->fepoch);
        z->fstage = ZK__F_ACTIVE;
        z->sync_last = m->zxid;
        zk__trace(z, "synced with %u in epoch %llu at %016llx", z->leader,
                  (unsigned long long)z->fepoch, (unsigned long long)m->zxid);
        send_ack(z, m->zxid);
        break;
    case ZK_ZAB_MSG_PING:
        break;
    default:
        reconnect(z, "unexpected message during sync");
        break;
    }
}

/* ---------------------------------------------------------------------- */
/* broadcast                                                              */
/* ---------------------------------------------------------------------- */

static void learn_commit(struct zk_zab *z, uint64_t zxid)
{
    if (zxid > z->commit)
        z->commit = zxid;
}

/* The lease, learner side: PING's aux is the leader's tick (echoed in
 * our next ACK, answered at once so that the leader confirms its quorum
 * within a round trip); its zxid2 is the latest of our own ticks whose
 * ACK the leader received while a quorum followed it. That tick is our
 * contact_tick: the runtime's lease runs from the moment we sent it. */
static void recv_ping_lease(struct zk_zab *z, const struct zk_zab_msg *m)
{
    if (m->aux > z->ping_seen)
        z->ping_seen = m->aux;
    if (m->zxid2 > z->contact_tick && m->zxid2 <= z->tick)
        z->contact_tick = m->zxid2;
    send_ack(z, z->persisted);
}

static void recv_active(struct zk_zab *z, const struct zk_zab_msg *m)
{
    if (m->flags & ZK_ZAB_MF_ESTABLISHED)
        z->lest = 1;              /* our sync's history is final */
    switch (m->type) {
    case ZK_ZAB_MSG_PROPOSE:
        if (recv_entries(z, m)) {
            reconnect(z, "PROPOSE out of order");
            break;
        }
        if (!z->observer)
            send_ack(z, zk__last_zxid(z));
        break;
    case ZK_ZAB_MSG_INFORM:
        if (recv_entries(z, m)) {
            reconnect(z, "INFORM out of order");
            break;
        }
        learn_commit(z, zk__last_zxid(z));
        break;
    case ZK_ZAB_MSG_COMMIT:
        learn_commit(z, m->zxid);
        break;
    case ZK_ZAB_MSG_PING:
        learn_commit(z, m->zxid);
        recv_ping_lease(z, m);
        break;
    default:
        reconnect(z, "unexpected message while active");
        break;
    }
}

void zk__learn_recv(struct zk_zab *z, const struct zk_zab_msg *m)
{
    if (m->from != z->leader || m->type == ZK_ZAB_MSG_FOLLOWERINFO ||
        m->type == ZK_ZAB_MSG_ACK || m->type == ZK_ZAB_MSG_ACKEPOCH ||
        m->type == ZK_ZAB_MSG_REQUEST)
        return;
    if (z->fstage == ZK__F_CONNECT) {
        /* The leader names the connection: our proposal comes back in
         * zxid2, its own id in link. A stale FOLLOWERINFO can thus never
         * splice a new stream onto ours. */
        if (m->type != ZK_ZAB_MSG_LEADERINFO || m->zxid2 != z->link ||
            m->seq != 0)
            return;
        z->link = m->link;
    } else if (m->link != z->link) {
        return;
    }
    if (m->seq < z->expect_seq)
        return;                                   /* duplicate */
    if (m->seq > z->expect_seq) {
        reconnect(z, "gap in the leader's stream");
        return;
    }
    z->expect_seq++;
    z->heard_tick = z->tick;
    if (z->fstage == ZK__F_CONNECT) {
        recv_leaderinfo(z, m);
        return;
    }
    if (m->epoch != z->fepoch) {
        reconnect(z, "message from another epoch");
        return;
    }
    if (z->fstage == ZK__F_SYNC)
        recv_sync(z, m);
    else
        recv_active(z, m);
}

/* Our leader reports that it leads (it announces so when it starts): a
 * FOLLOWERINFO we sent while it was still LOOKING was dropped, so it goes
 * again now rather than at the next tick. A duplicate is harmless (the
 * leader ignores a FOLLOWERINFO of a link it already has). */
void zk__learn_leader_up(struct zk_zab *z)
{
    if (z->fstage == ZK__F_CONNECT)
        send_followerinfo(z);
}

/* The embedder lost its connection to member id. If that is our leader
 * (typically its process died and TCP reset the connection), go back to
 * election now: syncLimit ticks of silence would tell the same a second
 * later. */
void zk__learn_peer_down(struct zk_zab *z, uint32_t id)
{
    if (id == z->leader)
        lost(z, "connection to the leader lost");
}

int zk__learn_forward(struct zk_zab *z, const struct zk_zab_entry *e)
{
    if (z->fstage != ZK__F_ACTIVE)
        return ZK_ENOTREADY;
    struct zk__ent *x = zk__ent_new(e);
    struct zk_zab_msg *m = zk__msg(z, ZK_ZAB_MSG_REQUEST, z->leader);
    m->epoch = z->fepoch;
    zk__msg_entries(z, m, &x, 1);
    zk__ent_unref(x);
    return 0;
}
