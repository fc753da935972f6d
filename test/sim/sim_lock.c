/*
 * sim_lock.c — cluster-wide locks under the simulator: lock clients on
 * every replica, the replicated lock table, and the invariants on it.
 *
 * Each replica has SIM_LOCK_OWNERS lock owners (processes) that lock and
 * unlock SIM_LOCK_FILES files through the driver like fs/lock.c does: a
 * ZK_OP_LOCK (flock shared or exclusive, or an fcntl byte range; blocking
 * or not) or ZK_OP_UNLOCK (with ZK_UNLOCK_WAITS: a release, or a wait
 * given up as on EINTR) in the replica's own session. The model state
 * machine of every replica applies them with the store's own rules
 * (store/lock_tab.c): a lock needs an open session (ZK_ESESSION, as
 * store/apply.c), the close of a session (or its replacement by the
 * owner's next SESSION_OPEN) drops its entries and grants the waiters.
 *
 * An owner believes it holds a lock from the moment its own replica
 * applied the grant, while its replica is alive, its session is the one
 * it asked in and still open, and the lease on the replica's own
 * (drifting) clock runs; it stops at once when it asks to unlock. That is
 * what a holder's check through the mount answers (fs/ checks the lease
 * when it answers). Checked:
 *  - after every step: no two owners, anywhere, believe they hold
 *    conflicting locks (the table's own ranges, on their replicas);
 *  - after every lock transaction or session close a replica applies: no
 *    two conflicting holders in its table; every grant respects the queue
 *    (no earlier waiter that conflicts with it is still waiting: FIFO per
 *    file); no holder removed to make room for a grant to another session
 *    is still believed by its owner (its lease still runs); no entry of a
 *    session that is not open in that replica's session table (the locks
 *    of a closed session are gone from every replica that applied it).
 */
#include "sim_int.h"

#include <errno.h>
#include <stdlib.h>

/* A lock payload: the client header (as every sim write: replica id,
 * write number, incarnation), the marker, then the op. */
#define LK_MARK     'L'
#define LK_OFF      16
#define LK_LEN      (LK_OFF + 2 + 4 + 8 + 8 + ZK_LOCK_DATA_SIZE)

struct lk_op {
    uint8_t type;
    uint32_t flags;
    uint64_t ino, session, owner, start, end;
};

int sim_lock_payload(const struct zk_zab_entry *e)
{
    return e->type == ZK_ZAB_ENTRY_WRITE && e->len == LK_LEN &&
           e->data[LK_OFF] == LK_MARK;
}

static void lk_decode(const uint8_t *p, struct lk_op *o)
{
    p += LK_OFF + 1;
    o->type = p[0];
    o->flags = zk_get_be32(p + 1);
    o->ino = zk_get_be64(p + 5);
    o->session = zk_get_be64(p + 13);
    o->owner = zk_get_be64(p + 21);
    o->start = zk_get_be64(p + 29);
    o->end = zk_get_be64(p + 37);
}

/* ====================================================================== */
/* the model's tables and the store's rules                               */
/* ====================================================================== */

static struct zk__lock_tab *scratch(void)
{
    static struct zk__lock_tab *t;
    if (!t) {
        t = calloc(1, sizeof(*t));
        ZK_ASSERT(t != NULL);
    }
    return t;
}

static void to_tab(const struct sim_ltab *m, struct zk__lock_tab *t)
{
    t->n = m->n;
    for (uint32_t i = 0; i < m->n; i++) {
        const struct sim_lent *x = &m->e[i];
        struct zk_lock_ent *e = &t->e[i];
        e->flags = x->flags; e->session = x->session; e->owner = x->owner;
        e->start = x->start; e->end = x->end; e->token = x->token;
        e->pid = 0;
        e->who[0] = '\0';
    }
}

static int from_tab(const struct zk__lock_tab *t, struct sim_ltab *m)
{
    if (t->n > SIM_LOCK_ENTS)
        return -ENOLCK;
    m->n = t->n;
    for (uint32_t i = 0; i < t->n; i++) {
        const struct zk_lock_ent *e = &t->e[i];
        m->e[i] = (struct sim_lent){ e->flags, e->session, e->owner,
                                     e->start, e->end, e->token };
    }
    return 0;
}

static void to_ent(const struct sim_lent *x, struct zk_lock_ent *e)
{
    memset(e, 0, sizeof(*e));
    e->flags = x->flags; e->session = x->session; e->owner = x->owner;
    e->start = x->start; e->end = x->end;
}

static int lconflict(const struct sim_lent *a, const struct sim_lent *b)
{
    struct zk_lock_ent x, y;
    to_ent(a, &x);
    to_ent(b, &y);
    return zk__lock_conflict(&x, &y);
}

struct grants {
    uint32_t n;
    struct sim_lent g[SIM_LOCK_GRANTS];
};

static int on_grant(void *arg, uint64_t ino, const struct zk_lock_ent *e)
{
    struct grants *gs = arg;
    (void)ino;
    if (gs->n == SIM_LOCK_GRANTS)
        return -ENOLCK;
    gs->g[gs->n++] = (struct sim_lent){ e->flags, e->session, e->owner,
                                        e->start, e->end, e->token };
    return 0;
}

/* ====================================================================== */
/* what owners believe                                                    */
/* ====================================================================== */

static int believes(const struct sim *s, const struct sim_replica *r,
                    uint32_t o, uint32_t f)
{
    const struct sim_lclient *c = &r->lk[o][f];
    return c->state == SIM_LK_HOLD && sim_relies(s, r, c->session);
}

/* Whether the owner of entry h (on replica hr) believes it holds it. */
static int holder_believes(const struct sim *s, const struct sim_lent *h,
                           uint32_t f, uint32_t *rid)
{
    uint32_t o;
    if (!sim_owner_of(s, h->session, h->owner, SIM_LOCK_OWNERS, rid, &o))
        return 0;
    const struct sim_replica *hr = &s->rep[*rid - 1];
    return hr->lk[o][f].session == h->session &&
           hr->lk[o][f].owner == h->owner && believes(s, hr, o, f);
}

/* ====================================================================== */
/* clients                                                                */
/* ====================================================================== */

struct lk_req {
    struct sim *s;
    uint32_t i, o, f;
    uint64_t session, owner;
};

static void propose(struct sim *s, struct sim_replica *r, uint32_t o,
                    uint32_t f, const struct lk_op *op);

/* An answer with an error: the request may still commit; the owner gives
 * it up (as fs/lock.c on EINTR or a deadline) and cancels it. */
static void lk_done(void *arg, int err, const struct zk_apply_result *res)
{
    struct lk_req *q = arg;
    (void)res;
    struct sim_replica *r = &q->s->rep[q->i];
    struct sim_lclient *c = &r->lk[q->o][q->f];
    /* -ESHUTDOWN: the replica is going away (crash, end of run): its
     * session goes with it, and nothing more may be proposed. */
    if (err && err != -ESHUTDOWN && r->alive && c->session == q->session &&
        c->owner == q->owner && c->state == SIM_LK_ASKING) {
        c->state = SIM_LK_IDLE;
        struct lk_op u = { ZK_OP_UNLOCK, ZK_UNLOCK_WAITS, q->f + 1,
                           q->session, q->owner, 0, UINT64_MAX };
        propose(q->s, r, q->o, q->f, &u);
        u.flags |= ZK_LOCK_FLOCK;
        propose(q->s, r, q->o, q->f, &u);
    }
    free(q);
}

static void propose(struct sim *s, struct sim_replica *r, uint32_t o,
                    uint32_t f, const struct lk_op *op)
{
    if (!r->alive || !r->drv)
        return;
    uint8_t *buf = malloc(LK_LEN);
    struct lk_req *q = malloc(sizeof(*q));
    ZK_ASSERT(buf != NULL && q != NULL);
    sim_client_header(r, buf);
    uint8_t *p = buf + LK_OFF;
    p[0] = LK_MARK;
    p[1] = op->type;
    zk_put_be32(p + 2, op->flags);
    zk_put_be64(p + 6, op->ino);
    zk_put_be64(p + 14, op->session);
    zk_put_be64(p + 22, op->owner);
    zk_put_be64(p + 30, op->start);
    zk_put_be64(p + 38, op->end);
    zk_put_be32(p + 46, r->id);                      /* pid */
    *q = (struct lk_req){ s, r->id - 1, o, f, op->session, op->owner };
    sim_log(s, r->id, "lock client %u file %u: %s flags %x [%llu, %llu] "
            "session %016llx", o, f, op->type == ZK_OP_LOCK ? "lock" :
            "unlock", op->flags, (unsigned long long)op->start,
            (unsigned long long)op->end, (unsigned long long)op->session);
    if (zk_driver_propose(r->drv, buf, LK_LEN, 0, lk_done, q) != 0) {
        free(buf);
        lk_done(q, -EAGAIN, NULL);
    }
}

/* A lock request: flock shared or exclusive, or an fcntl range. */
static void ask(struct sim *s, struct sim_replica *r, uint32_t o,
                uint32_t f, uint64_t session)
{
    static const uint64_t ranges[][2] = {
        { 0, 9 }, { 5, 14 }, { 10, 19 }, { 0, UINT64_MAX },
    };
    struct sim_lclient *c = &r->lk[o][f];
    c->gen++;
    struct lk_op op = { ZK_OP_LOCK, 0, f + 1, session,
                        sim_owner_id(r->id, c->gen, o), 0, UINT64_MAX };
    if (sim_range(s, 0, 1))
        op.flags |= ZK_LOCK_FLOCK;
    else {
        uint64_t k = sim_range(s, 0, 3);
        op.start = ranges[k][0];
        op.end = ranges[k][1];
    }
    if (sim_range(s, 0, 99) < 70)
        op.flags |= ZK_LOCK_WRITE;
    if (sim_range(s, 0, 99) < 70)
        op.flags |= ZK_LOCK_WAIT;
    c->state = SIM_LK_ASKING;
    c->session = session;
    c->owner = op.owner;
    propose(s, r, o, f, &op);
}

/* Releases everything owner o has on file f, waits included (a close:
 * FLUSH drops the fcntl locks, RELEASE the flock). */
static void release(struct sim *s, struct sim_replica *r, uint32_t o,
                    uint32_t f, uint64_t session, uint64_t owner)
{
    struct lk_op u = { ZK_OP_UNLOCK, ZK_UNLOCK_WAITS, f + 1, session,
                       owner, 0, UINT64_MAX };
    if (r->lk[o][f].owner == owner)
        r->lk[o][f].state = SIM_LK_IDLE;
    propose(s, r, o, f, &u);
    u.flags |= ZK_LOCK_FLOCK;
    propose(s, r, o, f, &u);
}

/* A lock owner acts every 5-50 ms: asks when idle, releases a held lock
 * (or gives a wait up, as on a signal) now and then. */
void sim_on_lock(struct sim *s, uint32_t i)
{
    struct sim_replica *r = &s->rep[i];
    uint32_t o, f;
    uint64_t session = sim_client_turn(s, i, SIM_EV_LOCK, SIM_LOCK_OWNERS,
                                       SIM_LOCK_FILES, &o, &f);
    if (!session)
        return;
    struct sim_lclient *c = &r->lk[o][f];
    if (c->session != session && c->state != SIM_LK_IDLE)
        c->state = SIM_LK_IDLE;          /* its session was given up */
    if (c->state == SIM_LK_IDLE)
        ask(s, r, o, f, session);
    else if (c->state == SIM_LK_HOLD && sim_range(s, 0, 99) < 60)
        release(s, r, o, f, session, c->owner);
    else if (c->state == SIM_LK_QUEUED && sim_range(s, 0, 99) < 10)
        release(s, r, o, f, session, c->owner);
}

void sim_lock_crashed(struct sim_replica *r)
{
    memset(r->lk, 0, sizeof(r->lk));
}

/* Replica r applied something that answers owner (session, owner) on
 * file f: queued, granted or refused. Only the owner's own replica
 * tells its client; an answer nobody waits for is given back. */
static void answer(struct sim *s, struct sim_replica *r, uint64_t session,
                   uint64_t owner, uint32_t f, int state)
{
    uint32_t rid, o;
    if (!sim_owner_of(s, session, owner, SIM_LOCK_OWNERS, &rid,
                      &o) || rid != r->id)
        return;
    struct sim_lclient *c = &r->lk[o][f];
    uint64_t mine = r->drv ? zk_driver_session(r->drv) : 0;
    if (c->session == session && c->owner == owner &&
        (c->state == SIM_LK_ASKING || c->state == SIM_LK_QUEUED)) {
        c->state = state;
        return;
    }
    if (state != SIM_LK_IDLE && session == mine &&
        (c->owner != owner || c->state == SIM_LK_IDLE))
        release(s, r, o, f, session, owner);  /* nobody waits for it */
}

/* ====================================================================== */
/* applying, and the checks on one replica's table                        */
/* ====================================================================== */

static int was_queued_before(const struct sim_ltab *pre,
                             const struct sim_lent *q,
                             const struct sim_lent *g)
{
    /* q's and g's positions among the waiters before the apply (a grant
     * not in the old queue is a new request: after every waiter) */
    long qi = -1, gi = (long)pre->n;
    for (uint32_t i = 0; i < pre->n; i++) {
        const struct sim_lent *e = &pre->e[i];
        if (!(e->flags & ZK_LOCK_QUEUED))
            continue;
        if (e->session == q->session && e->owner == q->owner &&
            (e->flags & ZK_LOCK_FLOCK) == (q->flags & ZK_LOCK_FLOCK))
            qi = i;
        if (e->session == g->session && e->owner == g->owner &&
            (e->flags & ZK_LOCK_FLOCK) == (g->flags & ZK_LOCK_FLOCK) &&
            gi == (long)pre->n)
            gi = i;
    }
    return qi >= 0 && qi < gi;
}

/* The grant g as requested (the queued entry, or the new request), not
 * merged with the owner's other ranges. */
static struct sim_lent requested(const struct sim_ltab *pre,
                                 const struct sim_lent *g,
                                 const struct lk_op *op)
{
    for (uint32_t i = 0; i < pre->n; i++) {
        const struct sim_lent *e = &pre->e[i];
        if ((e->flags & ZK_LOCK_QUEUED) && e->session == g->session &&
            e->owner == g->owner &&
            (e->flags & ZK_LOCK_FLOCK) == (g->flags & ZK_LOCK_FLOCK)) {
            struct sim_lent x = *e;
            x.flags &= ~ZK_LOCK_QUEUED;
            return x;
        }
    }
    struct sim_lent x = *g;
    if (op && !(op->flags & ZK_LOCK_FLOCK)) {
        x.start = op->start;
        x.end = op->end;
    }
    return x;
}

static void check_table(struct sim *s, struct sim_replica *r, uint32_t f,
                        const struct sim_ltab *pre, const struct grants *gs,
                        const struct lk_op *op)
{
    const struct sim_ltab *t = &r->model.locks[f];
    for (uint32_t i = 0; i < t->n; i++) {
        const struct sim_lent *a = &t->e[i];
        uint32_t own = ZK_ZAB_SESSION_OWNER(a->session);
        if (own < 1 || own > s->n || r->model.sessions[own - 1] != a->session)
            sim_fail(s, r->id, "file %u: lock entry of session %016llx, "
                     "which is not open here", f,
                     (unsigned long long)a->session);
        for (uint32_t k = i + 1; k < t->n; k++)
            if (!((a->flags | t->e[k].flags) & ZK_LOCK_QUEUED) &&
                lconflict(a, &t->e[k]))
                sim_fail(s, r->id, "file %u: two conflicting holders, "
                         "%016llx/%llx and %016llx/%llx", f,
                         (unsigned long long)a->session,
                         (unsigned long long)a->owner,
                         (unsigned long long)t->e[k].session,
                         (unsigned long long)t->e[k].owner);
    }
    for (uint32_t g = 0; g < gs->n; g++) {
        struct sim_lent want = requested(pre, &gs->g[g], op);
        for (uint32_t i = 0; i < t->n; i++) {
            const struct sim_lent *q = &t->e[i];
            if ((q->flags & ZK_LOCK_QUEUED) && lconflict(q, &want) &&
                was_queued_before(pre, q, &want))
                sim_fail(s, r->id, "file %u: %016llx/%llx granted before "
                         "the earlier waiter %016llx/%llx (FIFO)", f,
                         (unsigned long long)want.session,
                         (unsigned long long)want.owner,
                         (unsigned long long)q->session,
                         (unsigned long long)q->owner);
        }
        /* Holders that went away to make room for this grant. */
        for (uint32_t i = 0; i < pre->n; i++) {
            const struct sim_lent *h = &pre->e[i];
            uint32_t rid;
            if ((h->flags & ZK_LOCK_QUEUED) || h->session == want.session ||
                !lconflict(h, &want) || !holder_believes(s, h, f, &rid))
                continue;
            const struct sim_replica *hr = &s->rep[rid - 1];
            sim_fail(s, r->id, "file %u: granted to %016llx/%llx while "
                     "the holder %016llx/%llx on r%u still relies on it "
                     "(lease runs %lld us more on its clock)", f,
                     (unsigned long long)want.session,
                     (unsigned long long)want.owner,
                     (unsigned long long)h->session,
                     (unsigned long long)h->owner, rid,
                     (long long)(zk_driver_lease_until(hr->drv) -
                                 sim_local_ns(s, hr)) / 1000);
        }
    }
}

static void tell_grants(struct sim *s, struct sim_replica *r, uint32_t f,
                        const struct grants *gs)
{
    for (uint32_t g = 0; g < gs->n; g++)
        answer(s, r, gs->g[g].session, gs->g[g].owner, f, SIM_LK_HOLD);
}

void sim_lock_apply(struct sim *s, struct sim_replica *r,
                    const struct zk_zab_entry *e)
{
    struct lk_op op;
    lk_decode(e->data, &op);
    if (op.ino < 1 || op.ino > SIM_LOCK_FILES) {
        sim_fail(s, r->id, "lock op on unknown file %llu",
                 (unsigned long long)op.ino);
        return;
    }
    uint32_t f = (uint32_t)op.ino - 1, own = ZK_ZAB_SESSION_OWNER(op.session);
    struct sim_ltab *m = &r->model.locks[f];
    struct sim_ltab pre = *m;
    struct grants gs = { 0 };
    int rc = ZK_ESESSION;
    int qstate = SIM_LK_IDLE;
    struct zk_op_result res;
    memset(&res, 0, sizeof(res));
    if (own >= 1 && own <= s->n && r->model.sessions[own - 1] == op.session) {
        uint8_t data[ZK_LOCK_DATA_SIZE] = { 0 };
        zk_put_be64(data, op.owner);
        zk_put_be64(data + 8, op.start);
        zk_put_be64(data + 16, op.end);
        struct zk_op zo = { .type = op.type, .flags = op.flags,
                            .ino = op.ino, .session = op.session,
                            .data = data, .data_len = sizeof(data) };
        struct zk__lock_tab *t = scratch();
        to_tab(m, t);
        rc = zk__lock_tab_op(t, op.ino, e->zxid, &zo, &res, on_grant, &gs);
        if (rc == 0)
            rc = from_tab(t, m);
        if (rc == -ENOLCK)
            sim_fail(s, r->id, "file %u: lock table full (raise "
                     "SIM_LOCK_ENTS)", f);
        if (rc != 0)
            *m = pre;
        if (rc == 0 && op.type == ZK_OP_LOCK && !res.refused)
            qstate = res.token ? SIM_LK_HOLD : SIM_LK_QUEUED;
    }
    sim_log(s, r->id, "lock apply %016llx file %u %s of %016llx/%llx "
            "flags %x: %d token %llx, %u granted",
            (unsigned long long)e->zxid, f,
            op.type == ZK_OP_LOCK ? "lock" : "unlock",
            (unsigned long long)op.session, (unsigned long long)op.owner,
            op.flags, rc,
            (unsigned long long)res.token, gs.n);
    for (uint32_t i = 0; s->o.verbose && i < m->n; i++)
        sim_log(s, r->id, "  file %u: %016llx/%llx flags %x [%llu, %llu] "
                "token %llx", f, (unsigned long long)m->e[i].session,
                (unsigned long long)m->e[i].owner, m->e[i].flags,
                (unsigned long long)m->e[i].start,
                (unsigned long long)m->e[i].end,
                (unsigned long long)m->e[i].token);
    check_table(s, r, f, &pre, &gs, rc == 0 ? &op : NULL);
    if (op.type == ZK_OP_LOCK)
        answer(s, r, op.session, op.owner, f, qstate);
    tell_grants(s, r, f, &gs);
}

/* Replica r applied the close of session (or its owner's next OPEN). */
void sim_lock_close(struct sim *s, struct sim_replica *r, uint64_t session,
                    uint64_t zxid)
{
    for (uint32_t f = 0; f < SIM_LOCK_FILES; f++) {
        struct sim_ltab *m = &r->model.locks[f];
        struct sim_ltab pre = *m;
        struct grants gs = { 0 };
        struct zk__lock_tab *t = scratch();
        int changed = 0;
        to_tab(m, t);
        int rc = zk__lock_tab_drop_session(t, f + 1, zxid, session, on_grant,
                                           &gs, &changed);
        if (rc == 0)
            rc = from_tab(t, m);
        if (rc != 0)
            sim_fail(s, r->id, "file %u: dropping session %016llx: %d", f,
                     (unsigned long long)session, rc);
        for (uint32_t i = 0; i < m->n; i++)
            if (m->e[i].session == session)
                sim_fail(s, r->id, "file %u: a lock of closed session "
                         "%016llx is still there", f,
                         (unsigned long long)session);
        if (changed)
            check_table(s, r, f, &pre, &gs, NULL);
        tell_grants(s, r, f, &gs);
    }
}

/* ====================================================================== */
/* every step: no two owners believe they hold conflicting locks          */
/* ====================================================================== */

struct belief {
    uint32_t rid, f;
    const struct sim_lent *e;
};

/* After every step: no two owners believe they hold conflicting locks.
 * A belief appears only at a step of its own replica (a grant applied,
 * a session or lease taken); time only ends beliefs. So a pair of
 * beliefs of two replicas the step did not touch was there, and passed,
 * at the last check: only pairs with a touched replica are compared. */
void sim_lock_check(struct sim *s, uint32_t touched)
{
    struct belief b[SIM_REPLICAS_MAX * SIM_LOCK_OWNERS * SIM_LOCK_ENTS];
    uint32_t nb = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        const struct sim_replica *r = &s->rep[i];
        for (uint32_t o = 0; o < SIM_LOCK_OWNERS; o++)
            for (uint32_t f = 0; f < SIM_LOCK_FILES; f++) {
                const struct sim_lclient *c = &r->lk[o][f];
                if (c->state != SIM_LK_HOLD ||
                    !sim_view_relies(s, i, c->session))
                    continue;
                const struct sim_ltab *t = &r->model.locks[f];
                for (uint32_t k = 0; k < t->n; k++) {
                    const struct sim_lent *e = &t->e[k];
                    if (!(e->flags & ZK_LOCK_QUEUED) &&
                        e->session == c->session && e->owner == c->owner &&
                        nb < sizeof(b) / sizeof(b[0]))
                        b[nb++] = (struct belief){ r->id, f, e };
                }
            }
    }
    for (uint32_t x = 0; x < nb; x++)
        for (uint32_t y = x + 1; y < nb; y++)
            if (b[x].f == b[y].f &&
                (touched & (1u << (b[x].rid - 1) | 1u << (b[y].rid - 1))) &&
                lconflict(b[x].e, b[y].e))
                sim_fail(s, b[x].rid, "file %u: two owners believe they "
                         "hold conflicting locks: %016llx/%llx [%llu, %llu] "
                         "on r%u and %016llx/%llx [%llu, %llu] on r%u",
                         b[x].f, (unsigned long long)b[x].e->session,
                         (unsigned long long)b[x].e->owner,
                         (unsigned long long)b[x].e->start,
                         (unsigned long long)b[x].e->end, b[x].rid,
                         (unsigned long long)b[y].e->session,
                         (unsigned long long)b[y].e->owner,
                         (unsigned long long)b[y].e->start,
                         (unsigned long long)b[y].e->end, b[y].rid);
}
