/*
 * zab_leader.c — the leader's side of Zab phases 1-3.
 *
 * Discovery: the leader collects FOLLOWERINFO (accepted epoch) from a
 * quorum of voters, itself included, proposes e' = max + 1 in LEADERINFO
 * (an epoch is never reused: it is persisted as acceptedEpoch before any
 * LEADERINFO leaves), and collects ACKEPOCH (current epoch, last zxid,
 * applied zxid) from a quorum. If any of them has a more recent history
 * than its own it steps down (ZooKeeper does the same).
 * Synchronisation: each learner gets DIFF, TRUNC or SNAP, the entries it
 * lacks, then NEWLEADER; a learner's acks count once it has acknowledged
 * NEWLEADER (its currentEpoch = e' is durable). The leader is established
 * once a quorum did so, and only then commits anything.
 * Broadcast: proposals are appended locally and streamed as PROPOSE
 * batches at every Ready (pipelined: no wait for acks); an entry is
 * committed when a quorum's durable acks cover it; COMMIT is cumulative;
 * observers get INFORM (entry + commit) instead.
 * Every leader->learner message carries (link, seq) so that the learner
 * can see a lost or reordered message and reconnect (TCP's role).
 */
#include "zab_int.h"

#include <errno.h>
#include <stdlib.h>

static void check_info(struct zk_zab *z);
static void check_ackepoch(struct zk_zab *z);

static struct zk__peer *peer_of(struct zk_zab *z, uint32_t id)
{
    int i = zk__member_index(z, id);
    return i < 0 ? NULL : &z->peers[i];
}

static struct zk_zab_msg *lmsg(struct zk_zab *z, struct zk__peer *p,
                               uint8_t type)
{
    struct zk_zab_msg *m = zk__msg(z, type, p->id);
    m->epoch = z->lepoch;
    m->link = p->link;
    m->seq = p->seq_next++;
    return m;
}

static void step_down(struct zk_zab *z, const char *why)
{
    zk__trace(z, "leader of epoch %llu steps down: %s",
              (unsigned long long)z->lepoch, why);
    zk__become(z, ZK_ZAB_LOOKING, 0);
}

static int self_durable(const struct zk_zab *z)
{
    return z->durable.current_epoch == z->lepoch;
}

void zk__lead_start(struct zk_zab *z)
{
    z->lphase = ZK__L_INFO;
    z->phase_tick = z->tick;
    z->lepoch = 0;
    z->lconfirmed = 0;
    memset(z->close_sent, 0, sizeof(z->close_sent));
    z->dirty = 1;
    /* Tell everyone now: a follower whose FOLLOWERINFO came while we were
     * still LOOKING sends it again, and LOOKING peers follow us, without
     * waiting for a tick (a failover's first milliseconds). */
    zk__elect_broadcast(z);
    check_info(z);                /* a lone voter is its own quorum */
}

/* ---------------------------------------------------------------------- */
/* discovery                                                              */
/* ---------------------------------------------------------------------- */

static void send_leaderinfo(struct zk_zab *z, struct zk__peer *p)
{
    lmsg(z, p, ZK_ZAB_MSG_LEADERINFO)->zxid2 = p->flink;
    p->ps = ZK__P_EPOCH;
}


/* Phase 1: a quorum of FOLLOWERINFO fixes the new epoch. */
static void check_info(struct zk_zab *z)
{
    if (z->lphase != ZK__L_INFO)
        return;
    uint32_t n = 1;
    uint64_t max = z->hard.accepted_epoch;
    for (uint32_t i = 0; i < z->cfg.n_members; i++) {
        struct zk__peer *p = &z->peers[i];
        if (i == z->self || p->observer || p->ps != ZK__P_INFO ||
            p->abstain)
            continue;
        n++;
        if (p->acc_epoch > max)
            max = p->acc_epoch;
    }
    if (n < z->quorum)
        return;
    if (max >= 0xffffffffull) {
        step_down(z, "epoch space exhausted");
        return;
    }
    z->lepoch = max + 1;
    zk__set_hard(z, z->lepoch, z->hard.current_epoch);
    z->lphase = ZK__L_ACKEPOCH;
    zk__trace(z, "proposes epoch %llu", (unsigned long long)z->lepoch);
    for (uint32_t i = 0; i < z->cfg.n_members; i++)
        if (z->peers[i].ps == ZK__P_INFO)
            send_leaderinfo(z, &z->peers[i]);
    check_ackepoch(z);
}

static int more_recent(uint64_t e1, uint64_t z1, uint64_t e2, uint64_t z2)
{
    return e1 > e2 || (e1 == e2 && z1 > z2);
}

/* Each member's highest request id in our log, which is final once
 * a quorum acknowledged our epoch: requests already in it are not
 * proposed twice (recv_request), and a learner synced from now on is
 * told its own highest (send_sync's aux: one whose disk was wiped moves
 * its ids above it). Taken before the first learner is synced, not once
 * established: a wiped learner synced in between was told an older
 * life's id, restarted its ids below its last life's, and had every
 * request dropped as a duplicate (simulator, seed 110065 with
 * --observers 2 --wipe). */
static void learn_last_reqs(struct zk_zab *z)
{
    for (size_t k = 0; k < z->log.n; k++) {
        struct zk__peer *p = peer_of(z, z->log.v[k]->e.origin);
        if (p && z->log.v[k]->e.req_id > p->last_req)
            p->last_req = z->log.v[k]->e.req_id;
    }
}

/* Phase 1 end: a quorum acknowledged e'; our history must be the most
 * recent among them, since it becomes the initial history of e'. */
static void check_ackepoch(struct zk_zab *z)
{
    if (z->lphase != ZK__L_ACKEPOCH)
        return;
    uint32_t n = 1;
    for (uint32_t i = 0; i < z->cfg.n_members; i++) {
        struct zk__peer *p = &z->peers[i];
        if (i == z->self || p->observer || !p->counted ||
            p->ps < ZK__P_NEEDSYNC)
            continue;
        if (more_recent(p->cur_epoch, p->last_zxid, z->hard.current_epoch,
                        zk__last_zxid(z))) {
            step_down(z, "a follower has a more recent history");
            return;
        }
        n++;
    }
    if (n < z->quorum)
        return;
    zk__set_hard(z, z->hard.accepted_epoch, z->lepoch);
    learn_last_reqs(z);
    z->lphase = ZK__L_SYNC;
    z->phase_tick = z->tick;
    z->dirty = 1;
    zk__trace(z, "epoch %llu acknowledged by a quorum, syncing",
              (unsigned long long)z->lepoch);
}

static void recv_followerinfo(struct zk_zab *z, struct zk__peer *p,
                              const struct zk_zab_msg *m)
{
    if (!!(m->flags & ZK_ZAB_MF_OBSERVER) != !!p->observer)
        return;
    if (p->ps != ZK__P_NONE && p->flink == m->link)
        return;                                   /* duplicate */
    zk__trace(z, "learner %u connects, accepted epoch %llu", p->id,
              (unsigned long long)m->aux);
    if (z->lphase != ZK__L_INFO && m->aux > z->lepoch && !p->observer) {
        /* It accepted a newer epoch from a failed leader: it can never
         * follow us, so let a new election pick an epoch above it. */
        step_down(z, "a follower accepted a newer epoch");
        return;
    }
    uint64_t sheard = p->sess_heard_tick, lreq = p->last_req;
    uint32_t id = p->id;
    int obs = p->observer;
    memset(p, 0, sizeof(*p));
    p->id = id;
    p->observer = obs;
    p->sess_heard_tick = sheard;
    p->last_req = lreq;
    p->ps = ZK__P_INFO;
    p->flink = m->link;
    p->link = zk__rand(z) | 1;    /* never equal to an earlier session's */
    p->acc_epoch = m->aux;
    p->abstain = !!(m->flags & ZK_ZAB_MF_ABSTAIN);
    p->heard_tick = z->tick;
    if (z->lphase == ZK__L_INFO)
        check_info(z);
    else
        send_leaderinfo(z, p);
}

static void recv_ackepoch(struct zk_zab *z, struct zk__peer *p,
                          const struct zk_zab_msg *m)
{
    if (p->ps != ZK__P_EPOCH || m->link != p->link || m->epoch != z->lepoch)
        return;
    p->cur_epoch = m->aux;
    p->last_zxid = m->zxid;
    p->applied_zxid = m->zxid2;
    p->counted = !!(m->flags & ZK_ZAB_MF_COUNTED);
    p->ps = ZK__P_NEEDSYNC;
    p->heard_tick = z->tick;
    z->dirty = 1;
    check_ackepoch(z);
}

/* ---------------------------------------------------------------------- */
/* synchronisation and streaming                                          */
/* ---------------------------------------------------------------------- */

/* Streams log entries in (from, to] as batches of `type`. */
static void send_entries(struct zk_zab *z, struct zk__peer *p, uint8_t type,
                         uint64_t from, uint64_t to)
{
    size_t pos;
    zk__log_find(&z->log, from, &pos);
    while (pos < z->log.n && z->log.v[pos]->e.zxid <= to) {
        size_t n = 0, bytes = 0;
        while (pos + n < z->log.n && n < ZK_ZAB_MSG_ENTRIES_MAX &&
               z->log.v[pos + n]->e.zxid <= to &&
               (n == 0 || bytes + z->log.v[pos + n]->e.len <=
                              ZK_ZAB_MSG_BATCH_BYTES)) {
            bytes += z->log.v[pos + n]->e.len;
            n++;
        }
        struct zk_zab_msg *m = lmsg(z, p, type);
        zk__msg_entries(z, m, &z->log.v[pos], n);
        pos += n;
    }
}

static int in_log(const struct zk_zab *z, uint64_t zxid)
{
    return zxid == z->log.base ||
           (zxid > z->log.base && zk__log_find(&z->log, zxid, NULL) >= 0);
}

/* The largest zxid the learner is known to share with us, or UINT64_MAX.
 * Shared for sure: its applied zxid (committed, so in our history) and
 * our last entry of its last entry's epoch that is <= its last zxid
 * (within one epoch every log holds a gap-free prefix of that epoch's
 * leader's log). Below our log base we cannot tell: SNAP. */
static uint64_t sync_point(const struct zk_zab *z, const struct zk__peer *p)
{
    uint64_t fz = p->last_zxid, best = UINT64_MAX;
    if (in_log(z, fz))
        return fz;
    size_t pos;
    zk__log_find(&z->log, fz, &pos);
    uint64_t cand = pos ? z->log.v[pos - 1]->e.zxid : z->log.base;
    if (cand <= fz && ZK_ZAB_EPOCH(cand) == ZK_ZAB_EPOCH(fz) &&
        cand >= z->log.base)
        best = cand;
    if (in_log(z, p->applied_zxid) &&
        (best == UINT64_MAX || p->applied_zxid > best))
        best = p->applied_zxid;
    return best;
}

static void send_sync(struct zk_zab *z, struct zk__peer *p)
{
    uint64_t last = zk__last_zxid(z), from = sync_point(z, p);
    const char *mode;
    struct zk_zab_msg *m;
    /* A TRUNC below what the learner applied cannot be carried out (its
     * state machine holds transactions our history does not: lost
     * writes somewhere): it would refuse it at every retry. SNAP. */
    if (from != UINT64_MAX && from < p->applied_zxid)
        from = UINT64_MAX;
    if (from == UINT64_MAX) {
        m = lmsg(z, p, ZK_ZAB_MSG_SNAP);
        m->zxid = from = z->applied;
        m->n_sessions = z->cfg.n_members;
        memcpy(m->sessions, z->sessions, sizeof(m->sessions));
        z->n_snap++;
        mode = "SNAP";
    } else if (from == p->last_zxid) {
        m = lmsg(z, p, ZK_ZAB_MSG_DIFF);
        m->zxid = from;
        z->n_diff++;
        mode = "DIFF";
    } else {
        m = lmsg(z, p, ZK_ZAB_MSG_TRUNC);
        m->zxid = from;
        z->n_trunc++;
        mode = "TRUNC";
    }
    /* The learner's highest request id we know: one whose disk was wiped
     * restarts its ids lower and moves above it (zab.c, learn_inc), or
     * we would drop its requests as duplicates. */
    m->aux = p->last_req;
    zk__trace(z, "sync %u by %s from %016llx to %016llx", p->id, mode,
              (unsigned long long)from, (unsigned long long)last);
    send_entries(z, p, ZK_ZAB_MSG_PROPOSE, from, last);
    lmsg(z, p, ZK_ZAB_MSG_NEWLEADER)->zxid = last;
    p->sent = last;
    p->commit_sent = 0;
    p->est_sent = 0;
    p->ps = ZK__P_STREAM;
}

static void pump(struct zk_zab *z, struct zk__peer *p)
{
    uint64_t last = zk__last_zxid(z);
    if (!p->observer && p->sent < last) {
        send_entries(z, p, ZK_ZAB_MSG_PROPOSE, p->sent, last);
        p->sent = last;
    } else if (p->observer && p->sent < z->commit) {
        send_entries(z, p, ZK_ZAB_MSG_INFORM, p->sent, z->commit);
        p->sent = p->commit_sent = z->commit;
    }
    /* Once established, every learner gets one COMMIT saying so (even
     * of a zxid it has): it is the learner's UPTODATE, after which the
     * history it was synced to is final (resubmission relies on it). */
    int est = z->lphase == ZK__L_BCAST;
    if (z->commit > p->commit_sent || (est && !p->est_sent)) {
        struct zk_zab_msg *m = lmsg(z, p, ZK_ZAB_MSG_COMMIT);
        m->zxid = z->commit;
        if (est)
            m->flags = ZK_ZAB_MF_ESTABLISHED;
        p->commit_sent = z->commit;
        p->est_sent |= est;
    }
}

/* Called when a Ready is taken: batches everything proposed since. */
void zk__lead_flush(struct zk_zab *z)
{
    for (uint32_t i = 0; i < z->cfg.n_members; i++) {
        struct zk__peer *p = &z->peers[i];
        if (i == z->self)
            continue;
        if (p->ps == ZK__P_NEEDSYNC && z->lphase >= ZK__L_SYNC)
            send_sync(z, p);
        if (p->ps == ZK__P_STREAM)
            pump(z, p);
    }
}

/* ---------------------------------------------------------------------- */
/* commit                                                                 */
/* ---------------------------------------------------------------------- */

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Phase 3: the quorum-th highest durable ack is committed. */
static void update_commit(struct zk_zab *z)
{
    if (z->lphase != ZK__L_BCAST)
        return;
    uint64_t acks[ZK_ZAB_MEMBERS_MAX];
    uint32_t n = 0;
    if (self_durable(z))
        acks[n++] = z->persisted;
    for (uint32_t i = 0; i < z->cfg.n_members; i++) {
        struct zk__peer *p = &z->peers[i];
        if (i != z->self && !p->observer && p->synced)
            acks[n++] = p->ack;
    }
    if (n < z->quorum)
        return;
    qsort(acks, n, sizeof(acks[0]), cmp_desc);
    uint64_t c = acks[z->quorum - 1];
    if (c > z->commit) {
        z->commit = c;
        z->dirty = 1;
    }
}

static void check_established(struct zk_zab *z)
{
    if (z->lphase != ZK__L_SYNC)
        return;
    uint32_t n = self_durable(z) ? 1 : 0;
    for (uint32_t i = 0; i < z->cfg.n_members; i++) {
        struct zk__peer *p = &z->peers[i];
        if (i != z->self && !p->observer && p->synced)
            n++;
    }
    if (n < z->quorum)
        return;
    z->lphase = ZK__L_BCAST;
    z->dirty = 1;                 /* COMMITs flagged ESTABLISHED (pump) */
    zk__trace(z, "established as leader of epoch %llu",
              (unsigned long long)z->lepoch);
    /* ZooKeeper renews every session when a leader takes over (requests
     * already in our log are not proposed twice: learn_last_reqs, when
     * the syncing began). */
    for (uint32_t i = 0; i < z->cfg.n_members; i++)
        z->peers[i].sess_heard_tick = z->tick;
    update_commit(z);
}

void zk__lead_self_persisted(struct zk_zab *z)
{
    check_established(z);
    update_commit(z);
    z->dirty = 1;
}

/* ---------------------------------------------------------------------- */
/* lease                                                                  */
/* ---------------------------------------------------------------------- */

/*
 * The session lease (docs/ensemble.md, "The lease"): each replica must know
 * a moment after which no other replica can be told its session expired,
 * counted from a message it SENT (the runtime knows when each tick was
 * taken, on its monotonic clock), never from one it received (a message
 * that waited in a socket buffer while we were paused proves nothing).
 *
 * Leader: each PING carries its tick t (aux); learners echo the highest t
 * they received in their ACKs (seq). Once a quorum of voters, the leader
 * included, echoed t, then at the time PING t left no other leader had
 * been established (one of those voters would have had to leave us
 * first, and it received t while still following us); a new leader
 * renews every session when it is established. So nobody expires the
 * leader's session before t was sent + sessionTimeout: t is its
 * contact_tick.
 *
 * Learner: each ACK carries the learner's tick k (zxid2). The leader
 * echoes k (PING zxid2) once a quorum confirmed a PING tick generated
 * after k arrived: k reached a leader that could still expire sessions,
 * which thus restarted the learner's expiry clock after k was sent; any
 * later leader was established after that and renews it. k is the
 * learner's contact_tick.
 */

/* Records the lease numbers of an ACK from p. */
static void lease_ack(struct zk_zab *z, struct zk__peer *p,
                      const struct zk_zab_msg *m)
{
    if (m->seq > p->ping_echo && m->seq <= z->tick)
        p->ping_echo = m->seq;
    struct zk__lease_rx *slot = &p->rx[z->tick % ZK__LEASE_RX];
    if (slot->tick != z->tick) {
        slot->tick = z->tick;
        slot->k = 0;
    }
    if (m->zxid2 > slot->k)
        slot->k = m->zxid2;
    zk__lead_lease_update(z);
}

/* Moves contact_tick to the highest PING tick a quorum of voters echoed
 * (established leaders only). */
void zk__lead_lease_update(struct zk_zab *z)
{
    uint64_t v[ZK_ZAB_MEMBERS_MAX];
    uint32_t n = 0;

    if (z->lphase != ZK__L_BCAST)
        return;
    for (uint32_t i = 0; i < z->cfg.n_members; i++) {
        const struct zk__peer *p = &z->peers[i];
        if (i == z->self)
            v[n++] = z->tick;
        else if (!p->observer && p->synced && p->ps == ZK__P_STREAM)
            v[n++] = p->ping_echo;
    }
    if (n < z->quorum)
        return;
    qsort(v, n, sizeof(v[0]), cmp_desc);
    if (v[z->quorum - 1] > z->lconfirmed)
        z->lconfirmed = v[z->quorum - 1];
    if (z->lconfirmed > z->contact_tick)
        z->contact_tick = z->lconfirmed;
}

/* The highest learner tick p sent that arrived before the confirmed PING
 * tick was generated (0: none yet). */
static uint64_t lease_echo(struct zk_zab *z, struct zk__peer *p)
{
    for (unsigned i = 0; i < ZK__LEASE_RX; i++)
        if (p->rx[i].tick < z->lconfirmed && p->rx[i].k > p->echo_sent)
            p->echo_sent = p->rx[i].k;
    return z->lphase == ZK__L_BCAST ? p->echo_sent : 0;
}

static void recv_ack(struct zk_zab *z, struct zk__peer *p,
                     const struct zk_zab_msg *m)
{
    if (p->ps == ZK__P_NONE || m->link != p->link || m->epoch != z->lepoch)
        return;
    p->heard_tick = z->tick;
    if (m->aux)
        p->sess_heard_tick = z->tick;
    lease_ack(z, p, m);
    if (p->ps == ZK__P_STREAM && (m->flags & ZK_ZAB_MF_SYNCED)) {
        /* For zk_zab_member_status only (observers included). */
        uint64_t r = m->zxid < p->sent ? m->zxid : p->sent;
        p->st_synced = 1;
        if (r > p->st_acked)
            p->st_acked = r;
    }
    if (p->ps != ZK__P_STREAM || p->observer || !(m->flags & ZK_ZAB_MF_SYNCED))
        return;
    p->synced = 1;
    uint64_t a = m->zxid < p->sent ? m->zxid : p->sent;
    if (a > p->ack)
        p->ack = a;
    check_established(z);
    update_commit(z);
}

/* ---------------------------------------------------------------------- */
/* proposals                                                              */
/* ---------------------------------------------------------------------- */

static size_t uncommitted(const struct zk_zab *z)
{
    size_t pos;
    zk__log_find(&z->log, z->commit, &pos);
    return z->log.n - pos;
}

int zk__lead_propose(struct zk_zab *z, const struct zk_zab_entry *e)
{
    if (z->lphase != ZK__L_BCAST)
        return ZK_ENOTREADY;
    if (uncommitted(z) >= ZK_ZAB_PENDING_MAX)
        return -EAGAIN;
    uint64_t last = zk__last_zxid(z);
    uint64_t ctr = ZK_ZAB_EPOCH(last) == z->lepoch ? ZK_ZAB_COUNTER(last) : 0;
    if (ctr >= z->cfg.counter_max) {
        step_down(z, "zxid counter exhausted, a new epoch is needed");
        return ZK_ENOTREADY;
    }
    struct zk_zab_entry t = *e;
    t.zxid = ZK_ZAB_ZXID(z->lepoch, ctr + 1);
    zk__log_append(z, zk__ent_new(&t));
    struct zk__peer *p = peer_of(z, e->origin);
    if (p && e->req_id > p->last_req)
        p->last_req = e->req_id;
    z->dirty = 1;
    return 0;
}

static void recv_request(struct zk_zab *z, struct zk__peer *p,
                         const struct zk_zab_msg *m)
{
    if (m->epoch != z->lepoch || z->lphase != ZK__L_BCAST)
        return;
    for (uint32_t i = 0; i < m->n_entries && z->role == ZK_ZAB_LEADING; i++) {
        const struct zk_zab_entry *e = &m->entries[i];
        if (e->origin != p->id || e->type == ZK_ZAB_ENTRY_SESSION_CLOSE)
            continue;
        if (e->type == ZK_ZAB_ENTRY_WRITE && e->req_id <= p->last_req)
            continue;                      /* duplicate or overtaken */
        if (e->type == ZK_ZAB_ENTRY_SESSION_OPEN) {
            /* A request overtaken by a newer OPEN of the same member (a
             * resend, delayed or duplicated): proposing it would close the
             * member's current session while its owner's lease still runs
             * (simulator, seed 1020089). */
            int mi = zk__member_index(z, p->id);
            if (e->len != 8 || mi < 0 ||
                zk__sess_stale_open(z, mi, zk_get_be64(e->data)))
                continue;
            p->sess_heard_tick = z->tick;  /* opening is hearing (lease) */
        }
        zk__lead_propose(z, e);
    }
}

void zk__lead_recv(struct zk_zab *z, const struct zk_zab_msg *m)
{
    struct zk__peer *p = peer_of(z, m->from);
    switch (m->type) {
    case ZK_ZAB_MSG_FOLLOWERINFO: recv_followerinfo(z, p, m); break;
    case ZK_ZAB_MSG_ACKEPOCH: recv_ackepoch(z, p, m); break;
    case ZK_ZAB_MSG_ACK: recv_ack(z, p, m); break;
    case ZK_ZAB_MSG_REQUEST: recv_request(z, p, m); break;
    default: break;
    }
}

/* ---------------------------------------------------------------------- */
/* ticks: keep-alive, quorum check, session expiry                        */
/* ---------------------------------------------------------------------- */

static void expire_sessions(struct zk_zab *z)
{
    for (uint32_t i = 0; i < z->cfg.n_members; i++) {
        uint64_t sid = z->sessions[i];
        uint64_t heard = i == z->self ? z->tick : z->peers[i].sess_heard_tick;
        if (!sid || z->close_sent[i] == sid ||
            z->tick - heard <= z->cfg.session_timeout_ticks)
            continue;
        uint8_t b[8];
        zk_put_be64(b, sid);
        struct zk_zab_entry e = { .type = ZK_ZAB_ENTRY_SESSION_CLOSE,
                                  .origin = z->cfg.id, .len = 8, .data = b };
        zk__trace(z, "session %016llx of %u expired, proposing close",
                  (unsigned long long)sid, z->peers[i].id);
        if (zk__lead_propose(z, &e) != 0)
            return;
        z->close_sent[i] = sid;
    }
}

void zk__lead_tick(struct zk_zab *z)
{
    uint32_t alive = 1;
    for (uint32_t i = 0; i < z->cfg.n_members; i++) {
        struct zk__peer *p = &z->peers[i];
        if (i == z->self || p->ps == ZK__P_NONE)
            continue;
        if (z->tick - p->heard_tick > z->cfg.sync_limit_ticks) {
            zk__trace(z, "lost learner %u", p->id);
            p->ps = ZK__P_NONE;
            p->synced = 0;
            continue;
        }
        if (p->ps >= ZK__P_EPOCH) {
            struct zk_zab_msg *m = lmsg(z, p, ZK_ZAB_MSG_PING);
            m->zxid = z->commit;
            m->aux = z->tick;
            m->zxid2 = lease_echo(z, p);
            if (z->lphase == ZK__L_BCAST)
                m->flags = ZK_ZAB_MF_ESTABLISHED;
        }
        if (!p->observer && p->synced)
            alive++;
    }
    if (z->lphase != ZK__L_BCAST) {
        if (z->tick - z->phase_tick > z->cfg.init_limit_ticks)
            step_down(z, "no quorum within initLimit");
        return;
    }
    if (alive < z->quorum) {
        step_down(z, "lost the quorum");
        return;
    }
    zk__lead_lease_update(z);   /* a lone voter is its own quorum */
    expire_sessions(z);
}
