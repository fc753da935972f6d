/*
 * zab.c — the consensus core's frame: creation from restart state, the
 * in-memory log, the outbox that becomes a Ready, Advance (which is when
 * this replica's own entries count as persisted), commit emission, the
 * replicated session table and the event entry points that dispatch to the
 * election (zab_elect.c), leader (zab_leader.c) and learner
 * (zab_learner.c) code.
 *
 * Invariants kept here: applied <= persisted <= last zxid (an observer:
 * applied <= last zxid, see zk__emit_commits); commits are
 * emitted in zxid order, each exactly once per incarnation; an entry that
 * a Ready points to stays allocated until zk_zab_advance().
 */
#include "zab_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ====================================================================== */
/* small helpers                                                          */
/* ====================================================================== */

void zk__trace(struct zk_zab *z, const char *fmt, ...)
{
    if (!z->cfg.trace)
        return;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    z->cfg.trace(z->cfg.trace_arg, z->cfg.id, z->tick, line);
}

/* splitmix64: the core's only randomness, seeded from cfg.seed. */
uint64_t zk__rand(struct zk_zab *z)
{
    uint64_t x = (z->rng[0] += 0x9e3779b97f4a7c15ull);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

int zk__member_index(const struct zk_zab *z, uint32_t id)
{
    for (uint32_t i = 0; i < z->cfg.n_members; i++)
        if (z->cfg.members[i].id == id)
            return (int)i;
    return -1;
}

uint64_t zk__last_zxid(const struct zk_zab *z)
{
    return z->log.n ? z->log.v[z->log.n - 1]->e.zxid : z->log.base;
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap * 2 : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(p, c * elem);
    ZK_ASSERT(q != NULL);
    *cap = c;
    return q;
}

/* ====================================================================== */
/* entries and the log                                                    */
/* ====================================================================== */

struct zk__ent *zk__ent_new(const struct zk_zab_entry *e)
{
    struct zk__ent *x = malloc(sizeof(*x) + e->len);
    ZK_ASSERT(x != NULL);
    x->refs = 1;
    x->e = *e;
    if (e->len)
        memcpy(x->bytes, e->data, e->len);
    x->e.data = x->bytes;
    return x;
}

void zk__ent_unref(struct zk__ent *x)
{
    ZK_ASSERT(x->refs > 0);
    if (--x->refs == 0)
        free(x);
}

long zk__log_find(const struct zk__log *l, uint64_t zxid, size_t *pos)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->v[mid]->e.zxid <= zxid)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (pos)
        *pos = lo;
    if (lo > 0 && l->v[lo - 1]->e.zxid == zxid)
        return (long)lo - 1;
    return -1;
}

static void pin(struct zk_zab *z, struct zk__ent *x)
{
    struct zk__outbox *o = &z->out;
    o->pins = grow(o->pins, &o->cap_pins, o->n_pins + 1, sizeof(*o->pins));
    x->refs++;
    o->pins[o->n_pins++] = x;
}

static void push_op(struct zk_zab *z, uint32_t kind, uint64_t zxid,
                    uint32_t from, struct zk__ent *x)
{
    struct zk__outbox *o = &z->out;
    o->ops = grow(o->ops, &o->cap_ops, o->n_ops + 1, sizeof(*o->ops));
    struct zk_zab_op *op = &o->ops[o->n_ops++];
    op->kind = kind;
    op->zxid = zxid;
    op->from = from;
    op->entry = NULL;
    if (x) {
        pin(z, x);
        op->entry = &x->e;
    }
}

/* Session ids only grow per member within one incarnation (make_sid);
 * a wiped replica starts again from incarnation 1, so ids of different
 * incarnations are not compared. */
static int same_incarnation(uint64_t a, uint64_t b)
{
    return a >> 32 == b >> 32;
}

void zk__sess_note(struct zk_zab *z, const struct zk_zab_entry *e)
{
    if (e == NULL) {
        for (uint32_t i = 0; i < z->cfg.n_members; i++)
            if (z->sessions[i] > z->open_max[i])
                z->open_max[i] = z->sessions[i];
        return;
    }
    if (e->type != ZK_ZAB_ENTRY_SESSION_OPEN || e->len != 8)
        return;
    uint64_t sid = zk_get_be64(e->data);
    int i = zk__member_index(z, e->origin);
    if (i >= 0 && sid > z->open_max[i])
        z->open_max[i] = sid;
}

int zk__sess_stale_open(const struct zk_zab *z, int i, uint64_t sid)
{
    uint64_t o = z->open_max[i];
    return o && same_incarnation(sid, o) && sid < o;
}

/* Appends x (the log takes over the caller's reference) and asks the
 * embedder to persist it. */
void zk__log_append(struct zk_zab *z, struct zk__ent *x)
{
    struct zk__log *l = &z->log;
    ZK_ASSERT(x->e.zxid > zk__last_zxid(z));
    l->v = grow(l->v, &l->cap, l->n + 1, sizeof(*l->v));
    l->v[l->n++] = x;
    zk__sess_note(z, &x->e);
    push_op(z, ZK_ZAB_OP_APPEND, x->e.zxid, 0, x);
    z->out.last_append = x->e.zxid;
}

/* Sync by TRUNC: entries after zxid were never committed (the leader's
 * history holds every committed entry), so none of them is applied. */
void zk__log_truncate(struct zk_zab *z, uint64_t zxid)
{
    struct zk__log *l = &z->log;
    ZK_ASSERT(zxid >= z->applied);
    ZK_ASSERT(zxid >= l->base);
    while (l->n && l->v[l->n - 1]->e.zxid > zxid)
        zk__ent_unref(l->v[--l->n]);
    if (z->persisted > zxid)
        z->persisted = zxid;
    if (z->commit > zxid)
        z->commit = zxid;
    z->trunc_gen++;
    push_op(z, ZK_ZAB_OP_TRUNCATE, zxid, 0, NULL);
    z->out.has_reset = 1;
}

/* Sync by SNAP: the state machine and the log are replaced by the
 * leader's snapshot at base. Commits not yet handed out are covered by the
 * snapshot (they are <= applied <= base), so they are dropped. A base
 * below applied replaces state the quorum never committed (recv_sync). */
void zk__log_reset(struct zk_zab *z, uint64_t base, uint32_t from)
{
    struct zk__log *l = &z->log;
    struct zk__outbox *o = &z->out;
    while (l->n)
        zk__ent_unref(l->v[--l->n]);
    l->base = base;
    z->persisted = z->applied = z->commit = base;
    z->trunc_gen++;
    o->n_commits = 0;       /* still pinned; released at advance */
    push_op(z, ZK_ZAB_OP_INSTALL, base, from, NULL);
    o->has_reset = 1;
}

/* Keeps at most ZK_ZAB_LOG_KEEP applied entries for DIFF. */
void zk__log_compact(struct zk_zab *z)
{
    struct zk__log *l = &z->log;
    size_t drop = 0;
    while (l->n - drop > ZK_ZAB_LOG_KEEP && l->v[drop]->e.zxid <= z->applied)
        drop++;
    if (!drop)
        return;
    l->base = l->v[drop - 1]->e.zxid;
    for (size_t i = 0; i < drop; i++)
        zk__ent_unref(l->v[i]);
    memmove(l->v, l->v + drop, (l->n - drop) * sizeof(*l->v));
    l->n -= drop;
}

/* ====================================================================== */
/* outbox                                                                 */
/* ====================================================================== */

struct zk_zab_msg *zk__msg(struct zk_zab *z, uint8_t type, uint32_t to)
{
    struct zk__outbox *o = &z->out;
    o->msgs = grow(o->msgs, &o->cap_msgs, o->n_msgs + 1, sizeof(*o->msgs));
    struct zk_zab_msg *m = &o->msgs[o->n_msgs++];
    memset(m, 0, sizeof(*m));
    m->type = type;
    m->from = z->cfg.id;
    m->to = to;
    return m;
}

void zk__msg_entries(struct zk_zab *z, struct zk_zab_msg *m,
                     struct zk__ent **v, size_t n)
{
    struct zk__outbox *o = &z->out;
    ZK_ASSERT(n <= ZK_ZAB_MSG_ENTRIES_MAX);
    struct zk_zab_entry *arr = malloc((n ? n : 1) * sizeof(*arr));
    ZK_ASSERT(arr != NULL);
    for (size_t i = 0; i < n; i++) {
        arr[i] = v[i]->e;
        pin(z, v[i]);
    }
    o->earrs = grow(o->earrs, &o->cap_earrs, o->n_earrs + 1,
                    sizeof(*o->earrs));
    o->earrs[o->n_earrs++] = arr;
    m->entries = arr;
    m->n_entries = (uint32_t)n;
}

void zk__set_hard(struct zk_zab *z, uint64_t accepted, uint64_t current)
{
    if (z->hard.accepted_epoch == accepted && z->hard.current_epoch == current)
        return;
    ZK_ASSERT(accepted >= z->hard.accepted_epoch);
    ZK_ASSERT(current >= z->hard.current_epoch);
    z->hard.accepted_epoch = accepted;
    z->hard.current_epoch = current;
    z->out.has_hard = 1;
}

static void outbox_release(struct zk__outbox *o)
{
    for (size_t i = 0; i < o->n_pins; i++)
        zk__ent_unref(o->pins[i]);
    for (size_t i = 0; i < o->n_earrs; i++)
        free(o->earrs[i]);
    o->n_pins = o->n_earrs = o->n_msgs = o->n_ops = o->n_commits = 0;
    o->has_hard = o->has_reset = 0;
    o->last_append = o->member_epoch = 0;
}

static void outbox_free(struct zk__outbox *o)
{
    outbox_release(o);
    free(o->msgs); free(o->ops); free(o->commits);
    free(o->pins); free(o->earrs);
    memset(o, 0, sizeof(*o));
}

/* ====================================================================== */
/* commits and sessions                                                   */
/* ====================================================================== */

void zk__apply_session(struct zk_zab *z, const struct zk_zab_entry *e)
{
    if (e->type == ZK_ZAB_ENTRY_WRITE || e->len != 8)
        return;
    uint64_t sid = zk_get_be64(e->data);
    zk__sess_note(z, e);
    if (e->type == ZK_ZAB_ENTRY_SESSION_OPEN) {
        int i = zk__member_index(z, e->origin);
        if (i >= 0)
            z->sessions[i] = sid;
        /* Seen open even if closed again in the same batch (a sync that
         * delivers OPEN and the leader's CLOSE together): the id is then
         * never opened again (zk__session_tick takes a new one). */
        if (sid == z->my_sid)
            z->sid_seen_open = 1;
    } else {
        int i = zk__member_index(z, ZK_ZAB_SESSION_OWNER(sid));
        if (i >= 0 && z->sessions[i] == sid)
            z->sessions[i] = 0;
        /* Our own session closed (expired): its id is never opened again
         * (zk__session_tick takes a new one), even when no tick saw it
         * open — its OPEN and CLOSE can be applied within one tick, and
         * reopening the id would revive a session whose close other
         * replicas have yet to apply. */
        if (sid == z->my_sid)
            z->sid_seen_open = 1;
    }
}

/* Hands out, in order, every entry that is known committed and is on
 * this replica's disk. An observer's, once in its log: the Ready that
 * appends an INFORM's entries also applies them (its store writes both in
 * one batch, the appends first). It promises nothing to anyone, so its
 * applied state need not wait for its log to be durable (a power cut may
 * take both; it syncs again from its leader), and one batch per INFORM
 * instead of two saves it a store round trip. */
void zk__emit_commits(struct zk_zab *z)
{
    uint64_t have = z->observer ? zk__last_zxid(z) : z->persisted;
    uint64_t upto = z->commit < have ? z->commit : have;
    if (upto <= z->applied)
        return;
    size_t pos;
    zk__log_find(&z->log, z->applied, &pos);
    struct zk__outbox *o = &z->out;
    for (; pos < z->log.n && z->log.v[pos]->e.zxid <= upto; pos++) {
        struct zk__ent *x = z->log.v[pos];
        o->commits = grow(o->commits, &o->cap_commits, o->n_commits + 1,
                          sizeof(*o->commits));
        o->commits[o->n_commits++] = x->e;
        pin(z, x);
        zk__apply_session(z, &x->e);
        z->applied = x->e.zxid;
    }
}

static uint64_t make_sid(const struct zk_zab *z);

/* Incarnations after a wiped disk: the embedder starts again from 1, so
 * our session and request ids could repeat those of an earlier life,
 * which the ensemble still holds (a commit matched to the wrong write,
 * requests dropped as duplicates). An id of ours that we did not make,
 * seen in what the leader syncs to us, moves us above its incarnation,
 * before we open a session (we open it only once synced). */
static void learn_inc(struct zk_zab *z, uint32_t inc, uint32_t ctr,
                      uint32_t mine)
{
    if (inc < z->cfg.incarnation || (inc == z->cfg.incarnation && ctr <= mine))
        return;
    zk__trace(z, "ids of an earlier life of incarnation %u seen: moving "
              "from incarnation %u to %u", inc, z->cfg.incarnation, inc + 1);
    z->cfg.incarnation = inc + 1;
    z->hard.incarnation = z->cfg.incarnation;
    z->out.has_hard = 1;
    z->req_ctr = 0;
    z->sid_ctr = 1;
    z->my_sid = make_sid(z);
    z->sid_seen_open = 0;
    z->open_sent = 0;
    z->open_first_tick = 0;
}

void zk__learn_ids(struct zk_zab *z, const struct zk_zab_entry *e,
                   uint64_t own_sid)
{
    if (own_sid && ZK_ZAB_SESSION_OWNER(own_sid) == z->cfg.id &&
        own_sid != z->my_sid)
        learn_inc(z, (uint32_t)(own_sid >> 32) & 0xffffff,
                  (uint32_t)own_sid, z->sid_ctr);
    if (!e || e->origin != z->cfg.id)
        return;
    if (e->type == ZK_ZAB_ENTRY_WRITE)
        learn_inc(z, (uint32_t)(e->req_id >> 32), (uint32_t)e->req_id,
                  z->req_ctr);
    else if (e->type == ZK_ZAB_ENTRY_SESSION_OPEN && e->len == 8)
        zk__learn_ids(z, NULL, zk_get_be64(e->data));
}

static uint64_t make_sid(const struct zk_zab *z)
{
    return (uint64_t)(z->cfg.id & 0xff) << 56 |
           (uint64_t)(z->cfg.incarnation & 0xffffff) << 32 | z->sid_ctr;
}

static int serving(const struct zk_zab *z)
{
    if (z->role == ZK_ZAB_LEADING)
        return z->lphase == ZK__L_BCAST;
    if (z->role == ZK_ZAB_FOLLOWING || z->role == ZK_ZAB_OBSERVING)
        return z->fstage == ZK__F_ACTIVE;
    return 0;
}

static int submit(struct zk_zab *z, const struct zk_zab_entry *e)
{
    if (z->role == ZK_ZAB_LEADING)
        return zk__lead_propose(z, e);
    return zk__learn_forward(z, e);
}

void zk_zab_session_renew(struct zk_zab *z)
{
    zk__trace(z, "session %016llx given up, taking a new one",
              (unsigned long long)z->my_sid);
    z->sid_ctr++;
    z->my_sid = make_sid(z);
    z->sid_seen_open = 0;
    z->open_sent = 0;
    z->open_first_tick = 0;
}

/* Keeps this replica's own session open: once its session is seen closed
 * (expired by the leader), a new id is taken and opened. */
void zk__session_tick(struct zk_zab *z)
{
    if (!serving(z))
        return;
    if (z->sessions[z->self] == z->my_sid) {
        z->sid_seen_open = 1;
        z->open_sent = 0;
        return;
    }
    if (z->sid_seen_open) {
        zk__trace(z, "session %016llx expired", (unsigned long long)z->my_sid);
        z->sid_ctr++;
        z->my_sid = make_sid(z);
        z->sid_seen_open = 0;
        z->open_sent = 0;
        z->open_first_tick = 0;
    }
    if (z->open_sent &&
        z->tick - z->open_sent_tick < z->cfg.session_timeout_ticks)
        return;
    uint8_t b[8];
    zk_put_be64(b, z->my_sid);
    struct zk_zab_entry e = { .type = ZK_ZAB_ENTRY_SESSION_OPEN,
                              .origin = z->cfg.id, .len = 8, .data = b };
    if (submit(z, &e) == 0) {
        z->open_sent = 1;
        z->open_sent_tick = z->tick;
        if (!z->open_first_tick)        /* the lease's earliest send */
            z->open_first_tick = z->tick;
    }
}

/* ====================================================================== */
/* roles                                                                  */
/* ====================================================================== */

void zk__become(struct zk_zab *z, enum zk_zab_role r, uint32_t leader)
{
    zk__trace(z, "%s -> %s (leader %u)", zk_zab_role_name(z->role),
              zk_zab_role_name(r), leader);
    z->role = r;
    z->leader = leader;
    /* Commit knowledge from an old leader is forgotten: the next leader
     * re-commits, and sync may truncate anything not yet applied. */
    z->commit = z->applied;
    for (uint32_t i = 0; i < z->cfg.n_members; i++) {
        struct zk__peer *p = &z->peers[i];
        p->ps = ZK__P_NONE;
        p->synced = 0;
        p->vote_round_valid = 0;
    }
    switch (r) {
    case ZK_ZAB_LOOKING: zk__elect_start(z); break;
    case ZK_ZAB_LEADING: zk__lead_start(z); break;
    default: zk__learn_start(z); break;
    }
}

const char *zk_zab_role_name(enum zk_zab_role r)
{
    switch (r) {
    case ZK_ZAB_LOOKING: return "LOOKING";
    case ZK_ZAB_FOLLOWING: return "FOLLOWING";
    case ZK_ZAB_LEADING: return "LEADING";
    case ZK_ZAB_OBSERVING: return "OBSERVING";
    }
    return "?";
}

/* ====================================================================== */
/* public API                                                             */
/* ====================================================================== */

static int check_config(const struct zk_zab_config *cfg)
{
    if (cfg->n_members == 0 || cfg->n_members > ZK_ZAB_MEMBERS_MAX)
        return -EINVAL;
    int self = -1, voters = 0;
    for (uint32_t i = 0; i < cfg->n_members; i++) {
        uint32_t id = cfg->members[i].id;
        if (id == 0 || id > 255)
            return -EINVAL;
        for (uint32_t j = 0; j < i; j++)
            if (cfg->members[j].id == id)
                return -EINVAL;
        if (id == cfg->id)
            self = (int)i;
        if (!cfg->members[i].observer)
            voters++;
    }
    if (self < 0 || voters == 0 || cfg->init_limit_ticks == 0 ||
        cfg->sync_limit_ticks == 0 || cfg->session_timeout_ticks == 0)
        return -EINVAL;
    return 0;
}

static int restore(struct zk_zab *z, const struct zk_zab_restore *st)
{
    z->hard = z->durable = st->hard;
    z->hard.incarnation = z->durable.incarnation = 0;
    z->hard.member_again = z->durable.member_again = 0;
    z->log.base = z->applied = z->commit = st->applied_zxid;
    memcpy(z->sessions, st->sessions, sizeof(z->sessions));
    for (size_t i = 0; i < st->n_entries; i++) {
        const struct zk_zab_entry *e = &st->entries[i];
        if (e->zxid <= zk__last_zxid(z) || e->len > ZK_ZAB_PAYLOAD_MAX ||
            e->type < ZK_ZAB_ENTRY_WRITE ||
            e->type > ZK_ZAB_ENTRY_SESSION_CLOSE)
            return -EINVAL;
        struct zk__log *l = &z->log;
        l->v = grow(l->v, &l->cap, l->n + 1, sizeof(*l->v));
        l->v[l->n++] = zk__ent_new(e);
        zk__sess_note(z, e);
    }
    zk__sess_note(z, NULL);
    z->persisted = zk__last_zxid(z);
    /* A store that lost its last writes forgot promises, as an empty one
     * did: the same gate (zab_elect.c, "empty stores"). */
    if (st->lost_writes && !z->cfg.members[z->self].observer) {
        z->abstain = z->lost_writes = 1;
        zk__trace(z, "store is behind what this replica made durable (lost "
                  "writes): waiting to sync before voting (accepted epoch "
                  "%llu, last zxid %016llx)",
                  (unsigned long long)z->hard.accepted_epoch,
                  (unsigned long long)zk__last_zxid(z));
    } else if (st->restored && !z->cfg.members[z->self].observer) {
        z->abstain = z->restored = 1;
        z->restored_acc = z->hard.accepted_epoch;
        z->restored_cur = z->hard.current_epoch;
        zk__trace(z, "store was restored from a backup or a copy: waiting "
                  "to sync before voting, unless every voter's store was "
                  "restored (accepted epoch %llu, last zxid %016llx)",
                  (unsigned long long)z->hard.accepted_epoch,
                  (unsigned long long)zk__last_zxid(z));
    }
    return 0;
}

int zk_zab_create(const struct zk_zab_config *cfg,
                  const struct zk_zab_restore *st, struct zk_zab **out)
{
    int rc = check_config(cfg);
    if (rc)
        return rc;
    struct zk_zab *z = calloc(1, sizeof(*z));
    if (!z)
        return -ENOMEM;
    z->cfg = *cfg;
    if (!z->cfg.counter_max)
        z->cfg.counter_max = 0xffffffffu;
    z->rng[0] = cfg->seed ^ ((uint64_t)cfg->id << 40);
    for (uint32_t i = 0; i < cfg->n_members; i++) {
        z->peers[i].id = cfg->members[i].id;
        z->peers[i].observer = cfg->members[i].observer;
        if (!cfg->members[i].observer)
            z->n_voters++;
        if (cfg->members[i].id == cfg->id)
            z->self = i;
    }
    z->observer = cfg->members[z->self].observer;
    z->quorum = z->n_voters / 2 + 1;
    z->sid_ctr = 1;
    z->my_sid = make_sid(z);
    if (st && (rc = restore(z, st)) != 0) {
        zk_zab_destroy(z);
        return rc;
    }
    z->role = ZK_ZAB_LOOKING;
    zk__elect_start(z);
    *out = z;
    return 0;
}

void zk_zab_destroy(struct zk_zab *z)
{
    if (!z)
        return;
    outbox_free(&z->out);
    outbox_free(&z->cur);
    for (size_t i = 0; i < z->log.n; i++)
        zk__ent_unref(z->log.v[i]);
    free(z->log.v);
    free(z);
}

int zk_zab_step(struct zk_zab *z, const struct zk_zab_msg *m)
{
    if (m->to != z->cfg.id)
        return -EINVAL;
    int i = zk__member_index(z, m->from);
    if (i < 0 || m->from == z->cfg.id)
        return 0;
    z->peers[i].down = 0;       /* it talks to us again */
    if (m->type == ZK_ZAB_MSG_VOTE)
        zk__elect_recv(z, m);
    else if (z->role == ZK_ZAB_LEADING)
        zk__lead_recv(z, m);
    else if (z->role != ZK_ZAB_LOOKING)
        zk__learn_recv(z, m);
    zk__emit_commits(z);
    return 0;
}

void zk_zab_tick(struct zk_zab *z)
{
    z->tick++;
    switch (z->role) {
    case ZK_ZAB_LOOKING: zk__elect_tick(z); break;
    case ZK_ZAB_LEADING: zk__lead_tick(z); break;
    default: zk__learn_tick(z); break;
    }
    zk__session_tick(z);
    zk__emit_commits(z);
}

int zk_zab_propose(struct zk_zab *z, const uint8_t *data, uint32_t len,
                   uint64_t *req_id_out)
{
    if (len > ZK_ZAB_PAYLOAD_MAX)
        return -EMSGSIZE;
    if (!serving(z))
        return ZK_ENOTREADY;
    static const uint8_t empty[1];
    uint64_t req = ((uint64_t)z->cfg.incarnation << 32) + (++z->req_ctr);
    struct zk_zab_entry e = { .type = ZK_ZAB_ENTRY_WRITE, .origin = z->cfg.id,
                              .req_id = req, .len = len,
                              .data = data ? data : empty };
    int rc = submit(z, &e);
    if (rc == 0)
        *req_id_out = req;
    return rc;
}

int zk_zab_has_ready(const struct zk_zab *z)
{
    if (z->outstanding)
        return 0;
    const struct zk__outbox *o = &z->out;
    return o->n_msgs || o->n_ops || o->n_commits || o->has_hard || z->dirty;
}

void zk_zab_ready(struct zk_zab *z, struct zk_zab_ready *rd)
{
    ZK_ASSERT(!z->outstanding);
    if (z->role == ZK_ZAB_LEADING)
        zk__lead_flush(z);
    z->dirty = 0;
    struct zk__outbox t = z->cur;
    z->cur = z->out;
    z->out = t;
    z->cur.trunc_gen = z->trunc_gen;
    z->cur_log_last = zk__last_zxid(z);
    z->cur_hard = z->hard;
    z->outstanding = 1;
    memset(rd, 0, sizeof(*rd));
    /* The Ready that ends an abstention carries the hard state even if
     * its epochs did not change (a restored store may hold that epoch),
     * so that the embedder's mark of the store goes with it. */
    rd->has_hard_state = z->cur.has_hard || z->cur.member_epoch;
    rd->hard_state = z->hard;
    rd->hard_state.member_again = z->cur.member_epoch != 0;
    rd->ops = z->cur.ops;         rd->n_ops = z->cur.n_ops;
    rd->commits = z->cur.commits; rd->n_commits = z->cur.n_commits;
    rd->msgs = z->cur.msgs;       rd->n_msgs = z->cur.n_msgs;
}

void zk_zab_advance(struct zk_zab *z)
{
    ZK_ASSERT(z->outstanding);
    z->outstanding = 0;
    if (z->cur.has_hard)
        z->durable = z->cur_hard;
    zk__abstain_check(z);
    /* Everything in the log when the Ready was taken is now on disk,
     * unless a TRUNC or SNAP replaced the log since. */
    if (z->cur.trunc_gen == z->trunc_gen && z->cur_log_last > z->persisted)
        z->persisted = z->cur_log_last;
    outbox_release(&z->cur);
    if (z->role == ZK_ZAB_LEADING)
        zk__lead_self_persisted(z);
    zk__emit_commits(z);
    zk__log_compact(z);
}

void zk_zab_status(const struct zk_zab *z, struct zk_zab_status *st)
{
    memset(st, 0, sizeof(*st));
    st->role = z->role;
    st->leader = z->role == ZK_ZAB_LEADING ? z->cfg.id : z->leader;
    st->epoch = z->role == ZK_ZAB_LEADING ? z->lepoch : z->fepoch;
    st->established = serving(z);
    st->hard = z->hard;
    st->last_zxid = zk__last_zxid(z);
    st->persisted_zxid = z->persisted;
    st->commit_zxid = z->commit;
    st->applied_zxid = z->applied;
    st->session = z->my_sid;
    st->session_open = z->sessions[z->self] == z->my_sid;
    st->tick = z->tick;
    st->contact_tick = z->contact_tick;
    st->session_sent_tick = z->open_first_tick;
    st->n_diff = z->n_diff;
    st->n_trunc = z->n_trunc;
    st->n_snap = z->n_snap;
    st->n_elections = z->n_elections;
    st->abstaining = z->abstain;
    st->leader_established = z->role == ZK_ZAB_LEADING ?
                             z->lphase == ZK__L_BCAST :
                             z->role != ZK_ZAB_LOOKING &&
                             z->fstage == ZK__F_ACTIVE && z->lest;
}

int zk_zab_member_status(const struct zk_zab *z, uint32_t i,
                         struct zk_zab_member_status *out)
{
    if (i >= z->cfg.n_members)
        return -EINVAL;
    const struct zk__peer *p = &z->peers[i];
    memset(out, 0, sizeof(*out));
    out->id = z->cfg.members[i].id;
    out->observer = !!z->cfg.members[i].observer;
    out->self = i == z->self;
    if (z->role != ZK_ZAB_LEADING || out->self)
        return 0;
    out->linked = p->ps != ZK__P_NONE;
    out->synced = out->linked && p->st_synced;
    out->acked_zxid = out->synced ? p->st_acked : 0;
    out->sent_zxid = p->ps == ZK__P_STREAM ? p->sent : 0;
    return 0;
}

/* Learner: a transfer from the leader in progress is word from it, and
 * progress of the sync. */
void zk_zab_heard(struct zk_zab *z, uint32_t from)
{
    if ((z->role == ZK_ZAB_FOLLOWING || z->role == ZK_ZAB_OBSERVING) &&
        from == z->leader && z->fstage == ZK__F_SYNC)
        z->heard_tick = z->stage_tick = z->tick;
}

void zk_zab_peer_down(struct zk_zab *z, uint32_t id)
{
    int i = zk__member_index(z, id);
    if (i < 0 || (uint32_t)i == z->self)
        return;
    /* Its last report (whom it followed or led) is no longer news. */
    z->peers[i].down = 1;
    z->peers[i].rep_state = ZK_ZAB_LOOKING;
    z->peers[i].rep_leader = 0;
    z->peers[i].rep_epoch = 0;
    if (z->role == ZK_ZAB_FOLLOWING || z->role == ZK_ZAB_OBSERVING)
        zk__learn_peer_down(z, id);
    else if (z->role == ZK_ZAB_LOOKING)
        zk__elect_peer_down(z);
    zk__emit_commits(z);
}

const uint64_t *zk_zab_sessions(const struct zk_zab *z, uint32_t *n_out)
{
    *n_out = z->cfg.n_members;
    return z->sessions;
}
