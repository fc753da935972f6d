/*
 * sim.c — the simulator's engine: an event heap ordered by (simulated
 * time, insertion number), the replicas with their simulated disks and
 * model state machines, the network, and the invariant checks.
 *
 * Determinism: one splitmix64 stream drives every choice; events with
 * equal times run in insertion order; nothing depends on pointer values
 * or hash iteration order. Each replica's disk holds its hard state, its
 * log and its model state machine (applied zxid, hash chain of applied
 * transactions, session table); a crash keeps only what a completed Ready
 * wrote. Every message is encoded and decoded with zk_zab_msg_*, so the
 * codec runs under every seed.
 *
 * Checked after every step (sim_check): at most one established leader
 * per epoch; every apply extends the one global committed history (same
 * transaction at each zxid, same hash chain, nothing skipped, nothing
 * applied twice, no write committed twice); an applied entry was on the
 * replica's disk; a snapshot matches the history at its zxid and never
 * moves a replica back; a TRUNC never removes an applied entry; hard
 * state never goes back; the core keeps applied <= persisted <= last
 * (an observer applied <= last: it applies in the Ready that logs);
 * no replica applies the close of a session whose owner still relies on
 * its lease on its own clock (sim_lease.c); the driver never meets a
 * commit at or below what its store applied; the core's session table is
 * the model's between Readies; the lock invariants (sim_lock.c: no two
 * owners believe they hold conflicting locks, FIFO, no grant over a
 * holder that relies on its lease, no lock of a closed session); the
 * ephemeral invariants (sim_eph.c: no two clients believe they hold the
 * same name, no ephemeral of a session not open, every replica's
 * ephemerals those of the history at what it applied or installed); a
 * leader followed by a quorum within a bound of every heal (sim_run.c).
 *
 * The replicas run the daemon's driver (replica/driver.c) with the
 * simulator's disk as its store, its network as transport and simulated
 * time, at each replica's own rate, as its clock (sim_node.c); a paused
 * replica's events wait until it runs again; the store is in memory, not LMDB, so
 * that a few hundred seeds take a few minutes.
 */
#include "sim_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>

/* ====================================================================== */
/* randomness, logging, failure                                           */
/* ====================================================================== */

uint64_t sim_rand(struct sim *s)
{
    uint64_t x = (s->rng += 0x9e3779b97f4a7c15ull);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t sim_range(struct sim *s, uint64_t lo, uint64_t hi)
{
    return lo + sim_rand(s) % (hi - lo + 1);
}

uint64_t sim_mix(uint64_t a, uint64_t b)
{
    uint64_t x = a ^ (b + 0x9e3779b97f4a7c15ull + (a << 6) + (a >> 2));
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void sim_log_line(struct sim *s, uint32_t id, const char *fmt, ...)
{
    char line[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(s->o.out, "%8llu.%03llu ms r%u sim: %s\n",
            (unsigned long long)(s->now / 1000),
            (unsigned long long)(s->now % 1000), id, line);
}

static void core_trace(void *arg, uint32_t id, uint64_t tick, const char *line)
{
    struct sim *s = arg;
    fprintf(s->o.out, "%8llu.%03llu ms r%u t%llu: %s\n",
            (unsigned long long)(s->now / 1000),
            (unsigned long long)(s->now % 1000), id,
            (unsigned long long)tick, line);
}

void sim_fail(struct sim *s, uint32_t id, const char *fmt, ...)
{
    if (s->failed)
        return;
    s->failed = 1;
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(s->failure, sizeof(s->failure),
             "invariant broken at %llu.%03llu ms, step %llu, replica %u: %s",
             (unsigned long long)(s->now / 1000),
             (unsigned long long)(s->now % 1000),
             (unsigned long long)s->steps, id, what);
}

const char *sim_failure(const struct sim *s)
{
    return s->failed ? s->failure : NULL;
}

uint64_t sim_now(const struct sim *s) { return s->now; }
uint64_t sim_steps(const struct sim *s) { return s->steps; }

/* ====================================================================== */
/* event heap                                                             */
/* ====================================================================== */

static int ev_less(const struct sim_ev *a, const struct sim_ev *b)
{
    return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

void sim_push(struct sim *s, uint64_t t, uint32_t kind, uint32_t r,
              struct sim_pkt *pkt)
{
    if (s->nev == s->capev) {
        s->capev = s->capev ? s->capev * 2 : 1024;
        s->ev = realloc(s->ev, s->capev * sizeof(*s->ev));
        ZK_ASSERT(s->ev != NULL);
    }
    struct sim_ev e = { t, s->evseq++, kind, r, 0, pkt };
    if (r < s->n)
        e.life = s->rep[r].life;
    size_t i = s->nev++;
    while (i > 0 && ev_less(&e, &s->ev[(i - 1) / 2])) {
        s->ev[i] = s->ev[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->ev[i] = e;
}

static struct sim_ev pop(struct sim *s)
{
    struct sim_ev top = s->ev[0], last = s->ev[--s->nev];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->nev)
            break;
        if (c + 1 < s->nev && ev_less(&s->ev[c + 1], &s->ev[c]))
            c++;
        if (!ev_less(&s->ev[c], &last))
            break;
        s->ev[i] = s->ev[c];
        i = c;
    }
    if (s->nev)
        s->ev[i] = last;
    return top;
}

/* ====================================================================== */
/* creation                                                               */
/* ====================================================================== */

struct sim *sim_create(const struct sim_opts *o)
{
    uint32_t n = o->voters + o->observers;
    if (n == 0 || n > SIM_REPLICAS_MAX || o->voters == 0)
        return NULL;
    struct sim *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->o = *o;
    if (!s->o.out)
        s->o.out = stdout;
    s->rng = sim_mix(o->seed, 0x5eed);
    s->n = n;
    s->delay_min_us = 100;
    s->delay_max_us = 1000;
    s->dirty = SIM_DIRTY_ALL;
    for (uint32_t i = 0; i < n; i++) {
        struct sim_replica *r = &s->rep[i];
        r->id = i + 1;
        r->observer = i >= o->voters;
        r->rate_ppm = 1000000;
    }
    for (uint32_t i = 0; i < n; i++)
        sim_replica_start(s, i);
    return s;
}

void sim_destroy(struct sim *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; i < s->n; i++) {
        struct sim_replica *r = &s->rep[i];
        if (r->drv)
            zk_driver_fail_all(r->drv, -ESHUTDOWN);
        zk_driver_destroy(r->drv);
        for (size_t k = 0; k < r->nlog; k++)
            free(r->log[k].data);
        free(r->log);
        free(r->ghost);
        free(r->pend);
        sim_ckpt_free(r);
    }
    for (size_t i = 0; i < s->nev; i++)
        sim_pkt_free(s->ev[i].pkt);
    free(s->ev);
    free(s->hist);
    free(s->epochs);
    free(s->writes.v);
    free(s->lin_buf);
    free(s);
}

/* Builds the core of replica i from its disk. */
void sim_replica_start(struct sim *s, uint32_t i)
{
    struct sim_replica *r = &s->rep[i];
    struct zk_zab_config cfg;
    s->dirty |= 1u << i;
    memset(&cfg, 0, sizeof(cfg));
    cfg.id = r->id;
    cfg.n_members = s->n;
    for (uint32_t k = 0; k < s->n; k++) {
        cfg.members[k].id = k + 1;
        cfg.members[k].observer = s->rep[k].observer;
    }
    cfg.init_limit_ticks = SIM_INIT_LIMIT;
    cfg.sync_limit_ticks = SIM_SYNC_LIMIT;
    cfg.session_timeout_ticks = SIM_SESSION_TIMEOUT;
    /* The store's open takes a checkpoint of what it finds. */
    r->undo.valid = 0;
    cfg.incarnation = ++r->incarnation;
    cfg.counter_max = s->o.counter_max;
    cfg.seed = sim_mix(s->o.seed, (uint64_t)r->id << 32 | r->incarnation);
    if (s->o.verbose) {
        cfg.trace = core_trace;
        cfg.trace_arg = s;
    }
    struct zk_zab_restore st;
    memset(&st, 0, sizeof(st));
    st.hard = r->hard;
    st.applied_zxid = r->model.applied;
    /* What the daemon's start does when its store is behind the marker
     * it keeps apart: the core is told; with --put-back as the daemon
     * tells it of a data directory restored or copied back (ens_start.c,
     * restored_mark): restored, which votes if every voter is restored or
     * empty. */
    int behind = sim_store_behind(r) && !s->o.lose_undetected;
    st.lost_writes = behind && !s->o.put_back;
    st.restored = behind && s->o.put_back;
    memcpy(st.sessions, r->model.sessions, sizeof(st.sessions));
    struct zk_zab_entry *ents = calloc(r->nlog + 1, sizeof(*ents));
    ZK_ASSERT(ents != NULL);
    for (size_t k = 0; k < r->nlog; k++) {
        const struct sim_ent *e = &r->log[k];
        if (e->zxid <= r->model.applied)
            continue;
        struct zk_zab_entry *v = &ents[st.n_entries++];
        v->zxid = e->zxid; v->req_id = e->req_id; v->origin = e->origin;
        v->type = e->type; v->len = e->len; v->data = e->data;
    }
    st.entries = ents;
    struct zk_driver_config dc;
    memset(&dc, 0, sizeof(dc));
    dc.zab = &cfg;
    dc.restore = &st;
    sim_driver_wire(s, r, &dc);
    int rc = zk_driver_create(&dc, &r->drv);
    free(ents);
    ZK_ASSERT(rc == 0);
    r->alive = 1;
    r->busy = 0;
    r->nsnap = 0;
    r->life++;
    sim_log(s, r->id, "start, incarnation %u, applied %016llx, %zu logged%s",
            r->incarnation, (unsigned long long)r->model.applied,
            (size_t)st.n_entries, st.lost_writes ? ", store behind its "
            "marker (lost writes)" : st.restored ? ", store put back "
            "(restored)" : "");
    sim_push(s, s->now + sim_range(s, 1, SIM_TICK_US), SIM_EV_TICK, i, NULL);
}

/* ====================================================================== */
/* crash and restart                                                      */
/* ====================================================================== */

void sim_ckpt_free(struct sim_replica *r)
{
    if (!r->ckpt)
        return;
    for (size_t k = 0; k < r->ckpt->nlog; k++)
        free(r->ckpt->log[k].data);
    free(r->ckpt->log);
    free(r->ckpt);
    r->ckpt = NULL;
}

void sim_crash(struct sim *s, uint32_t id)
{
    struct sim_replica *r = &s->rep[id - 1];
    if (!r->alive)
        return;
    s->dirty |= 1u << (id - 1);
    sim_log(s, id, "crash (unpersisted Ready lost: %s)", r->busy ? "yes" : "no");
    /* Its clients hear that it is gone (they never learn the outcome). */
    zk_driver_fail_all(r->drv, -ESHUTDOWN);
    zk_driver_destroy(r->drv);
    r->drv = NULL;
    r->alive = 0;
    r->busy = 0;
    r->life++;
    r->fail_next = 0;
    r->crash_after_write = 0;
    r->paused_until = 0;
    sim_lock_crashed(r);
    sim_eph_crashed(r);
}

void sim_pause(struct sim *s, uint32_t id, uint64_t us)
{
    struct sim_replica *r = &s->rep[id - 1];
    s->dirty |= 1u << (id - 1);
    r->paused_until = s->now + us;
    sim_log(s, id, "paused (scripted) until %llu us",
            (unsigned long long)r->paused_until);
}

void sim_kill(struct sim *s, uint32_t id)
{
    if (!s->rep[id - 1].alive)
        return;
    sim_crash(s, id);
    for (uint32_t k = 0; k < s->n; k++)
        sim_send_reset(s, id - 1, k);
}

void sim_reset_link(struct sim *s, uint32_t a, uint32_t b)
{
    if (a == b || !s->rep[a - 1].alive || !s->rep[b - 1].alive)
        return;
    sim_log(s, a, "connection to r%u dropped", b);
    sim_send_reset(s, a - 1, b - 1);
    sim_send_reset(s, b - 1, a - 1);
}

void sim_restart(struct sim *s, uint32_t id)
{
    if (!s->rep[id - 1].alive)
        sim_replica_start(s, id - 1);
}

void sim_disk_fail_next(struct sim *s, uint32_t id)
{
    s->dirty |= 1u << (id - 1);
    s->rep[id - 1].fail_next = 1;
}

int sim_alive(const struct sim *s, uint32_t id)
{
    return s->rep[id - 1].alive;
}

void sim_status(const struct sim *s, uint32_t id, struct zk_zab_status *st)
{
    const struct sim_replica *r = &s->rep[id - 1];
    if (r->alive) {
        zk_zab_status(sim_core(r), st);
    } else {
        memset(st, 0, sizeof(*st));
        st->role = ZK_ZAB_LOOKING;
    }
}

uint32_t sim_leader(const struct sim *s)
{
    uint32_t best = 0;
    uint64_t best_epoch = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        struct zk_zab_status st;
        sim_status(s, i + 1, &st);
        if (st.role == ZK_ZAB_LEADING && st.established &&
            st.epoch > best_epoch) {
            best = i + 1;
            best_epoch = st.epoch;
        }
    }
    return best;
}

uint64_t sim_applied(const struct sim *s, uint32_t id)
{
    return s->rep[id - 1].model.applied;
}

uint64_t sim_chain(const struct sim *s, uint32_t id)
{
    return s->rep[id - 1].model.chain;
}

uint64_t sim_model_session(const struct sim *s, uint32_t id, uint32_t owner)
{
    return s->rep[id - 1].model.sessions[owner - 1];
}

uint64_t sim_closes(const struct sim *s, uint32_t id)
{
    return s->rep[id - 1].model.closes;
}

uint64_t sim_history_len(const struct sim *s)
{
    return s->nhist;
}

uint64_t sim_lin_ops(const struct sim *s)
{
    return s->lin_ops;
}

uint64_t sim_lin_steps(const struct sim *s)
{
    return s->lin_steps;
}

uint64_t sim_acked(const struct sim *s, uint32_t id)
{
    return s->rep[id - 1].acked;
}

/* ====================================================================== */
/* invariants after every step                                            */
/* ====================================================================== */

/* Leader completeness: a leader, when it becomes established, holds
 * every transaction committed so far in earlier epochs (its history
 * becomes everyone's). Later epochs may have committed more: a leader
 * paused after its sync is established by acks that waited for it, and
 * can commit nothing (its followers left its epoch). What breaks first
 * when a quorum counts a replica that forgot what it acknowledged (a
 * wiped disk, zab_elect.c "empty stores"). */
static void check_complete(struct sim *s, uint32_t id,
                           const struct zk_zab_status *st)
{
    size_t k = s->nhist;
    while (k > 0 && s->hist[k - 1].zxid >= ZK_ZAB_ZXID(st->epoch, 0))
        k--;
    uint64_t last = k ? s->hist[k - 1].zxid : 0;
    if (st->last_zxid < last)
        sim_fail(s, id, "established leader of epoch %llu ends at %016llx, "
                 "before the committed %016llx (a lost commit)",
                 (unsigned long long)st->epoch,
                 (unsigned long long)st->last_zxid, (unsigned long long)last);
}

/* The view the checks read: taken again only if replica i was touched
 * since (what it holds does not depend on the time). */
const struct sim_view *sim_view(struct sim *s, uint32_t i)
{
    struct sim_replica *r = &s->rep[i];
    if (s->dirty & (1u << i)) {
        memset(&r->view, 0, sizeof(r->view));
        if (r->alive && r->drv) {
            zk_zab_status(sim_core(r), &r->view.st);
            zk_driver_stats(r->drv, &r->view.ds);
            /* zk_driver_session(), without a second status */
            r->view.session = r->view.st.session_open ? r->view.st.session
                                                      : 0;
        } else {
            r->view.st.role = ZK_ZAB_LOOKING;
        }
        s->dirty &= ~(1u << i);
    }
    return &r->view;
}

uint64_t sim_view_lease(struct sim *s, uint32_t i)
{
    struct sim_replica *r = &s->rep[i];
    sim_view(s, i);
    if (!r->view.has_lease) {
        r->view.lease_until = r->alive && r->drv ?
                              zk_driver_lease_until(r->drv) : 0;
        r->view.has_lease = 1;
    }
    return r->view.lease_until;
}

/* ====================================================================== */
/* the clients' owners (sim_lock.c, sim_eph.c)                            */
/* ====================================================================== */

/* A lock or ephemeral owner: replica, generation, owner index. Every
 * request is made by a new owner (as flock(1) opens the file each time,
 * and a process does not reuse a POSIX owner before its unlock was
 * answered), so a late unlock of an earlier request cannot release a
 * later one. */
uint64_t sim_owner_id(uint32_t rid, uint32_t gen, uint32_t o)
{
    return (uint64_t)rid << 40 | (uint64_t)gen << 8 | o;
}

int sim_owner_of(const struct sim *s, uint64_t session, uint64_t owner,
                 uint32_t owners, uint32_t *rid, uint32_t *o)
{
    *rid = (uint32_t)(owner >> 40);
    *o = (uint32_t)(owner & 0xff);
    return *rid >= 1 && *rid <= s->n && *o < owners &&
           ZK_ZAB_SESSION_OWNER(session) == *rid;
}

uint64_t sim_client_turn(struct sim *s, uint32_t i, uint32_t kind,
                         uint32_t owners, uint32_t objs, uint32_t *o,
                         uint32_t *obj)
{
    struct sim_replica *r = &s->rep[i];
    struct zk_driver_stats ds;
    if (!s->clients_on)
        return 0;
    sim_push(s, s->now + sim_range(s, 5000, 50000), kind, i, NULL);
    *o = (uint32_t)sim_range(s, 0, owners - 1);
    *obj = (uint32_t)sim_range(s, 0, objs - 1);
    uint64_t session = r->alive && r->drv ? zk_driver_session(r->drv) : 0;
    if (!session)
        return 0;
    zk_driver_stats(r->drv, &ds);
    return ds.pending >= 2 * SIM_CLIENT_INFLIGHT ? 0 : session;
}

int sim_relies(const struct sim *s, const struct sim_replica *r,
               uint64_t session)
{
    if (!r->alive || !r->drv || zk_driver_session(r->drv) != session)
        return 0;
    return sim_local_ns(s, r) < zk_driver_lease_until(r->drv);
}

int sim_view_relies(struct sim *s, uint32_t i, uint64_t session)
{
    const struct sim_replica *r = &s->rep[i];
    const struct sim_view *v = sim_view(s, i);
    if (!r->alive || !r->drv || v->session != session)
        return 0;
    return sim_local_ns(s, r) < sim_view_lease(s, i);
}

/* Checks replica i's core and driver (only a replica touched by the
 * step can have changed; the epochs seen only grow, so a leader that
 * passed before passes again). */
static void check_leader(struct sim *s, uint32_t i)
{
    const struct sim_view *v = sim_view(s, i);
    const struct zk_zab_status *st = &v->st;
    if (!s->rep[i].alive)
        return;
    if (v->ds.skipped)
        sim_fail(s, i + 1, "a commit at or below the applied zxid "
                 "reached the driver (applied twice)");
    /* An observer applies what it logs in the same Ready (zab.c,
     * zk__emit_commits): applied may pass persisted until it advances. */
    if (!((st->applied_zxid <= st->persisted_zxid || s->rep[i].observer) &&
          st->applied_zxid <= st->last_zxid &&
          st->persisted_zxid <= st->last_zxid))
        sim_fail(s, i + 1, "core order applied %llx persisted %llx last %llx",
                 (unsigned long long)st->applied_zxid,
                 (unsigned long long)st->persisted_zxid,
                 (unsigned long long)st->last_zxid);
    if (st->role != ZK_ZAB_LEADING || !st->established)
        return;
    size_t k;
    for (k = 0; k < s->nepochs; k++)
        if (s->epochs[k].epoch == st->epoch)
            break;
    if (k == s->nepochs) {
        if (s->nepochs == s->capepochs) {
            s->capepochs = s->capepochs ? 2 * s->capepochs : 64;
            s->epochs = realloc(s->epochs,
                                s->capepochs * sizeof(*s->epochs));
            ZK_ASSERT(s->epochs != NULL);
        }
        s->epochs[s->nepochs].epoch = st->epoch;
        s->epochs[s->nepochs++].leader = i + 1;
        sim_log(s, i + 1, "established leader of epoch %llu",
                (unsigned long long)st->epoch);
        check_complete(s, i + 1, st);
    } else if (s->epochs[k].leader != i + 1) {
        sim_fail(s, i + 1, "two leaders in epoch %llu: %u and %u",
                 (unsigned long long)st->epoch, s->epochs[k].leader, i + 1);
    }
}

/* The core's session table is the model's whenever no Ready is on its
 * way to the disk. */
static void check_sessions(struct sim *s, uint32_t i)
{
    const struct sim_replica *r = &s->rep[i];
    uint32_t n;
    if (!r->alive || r->busy)
        return;
    const uint64_t *t = zk_zab_sessions(sim_core(r), &n);
    for (uint32_t k = 0; k < n; k++)
        if (t[k] != r->model.sessions[k])
            sim_fail(s, r->id, "the core's session of r%u is %016llx, "
                     "the model's %016llx", k + 1,
                     (unsigned long long)t[k],
                     (unsigned long long)r->model.sessions[k]);
}

/* After every step. The per-replica checks run on the replicas the step
 * touched (s->dirty): the others' cores, drivers and models are as they
 * were at the last check, which they passed. */
void sim_check(struct sim *s)
{
    uint32_t touched = s->dirty;
    for (uint32_t i = 0; i < s->n; i++)
        if (touched & (1u << i)) {
            check_leader(s, i);
            check_sessions(s, i);
        }
    sim_lock_check(s, touched);
    sim_eph_check(s, touched);
    sim_heal_check(s);
}

/* ====================================================================== */
/* the main loop                                                          */
/* ====================================================================== */

/* An event for a stopped replica waits until it runs again (in order:
 * they are pushed again in the order they come out). */
static int deferred(struct sim *s, const struct sim_ev *e)
{
    uint32_t r = e->kind == SIM_EV_MSG ? e->pkt->to : e->r;
    if (r >= s->n || e->kind == SIM_EV_RESTART || e->kind == SIM_EV_FAULT ||
        s->now >= s->rep[r].paused_until)
        return 0;
    if ((e->kind == SIM_EV_TICK || e->kind == SIM_EV_DISK) &&
        e->life != s->rep[r].life)
        return 0;                       /* stale: dropped below */
    sim_push(s, s->rep[r].paused_until, e->kind, e->r, e->pkt);
    return 1;
}

static void step(struct sim *s)
{
    struct sim_ev e = pop(s);
    s->now = e.t;
    s->steps++;
    if (deferred(s, &e))
        return;
    if (e.kind == SIM_EV_FAULT)
        s->dirty = SIM_DIRTY_ALL;
    else if (e.kind == SIM_EV_MSG)
        s->dirty |= 1u << e.pkt->to;
    else if (e.r < s->n)
        s->dirty |= 1u << e.r;
    if (e.kind == SIM_EV_MSG) {
        sim_deliver(s, e.pkt);
        return;
    }
    if (e.r < s->n && e.kind != SIM_EV_RESTART && e.kind != SIM_EV_CLIENT &&
        e.kind != SIM_EV_LOCK && e.kind != SIM_EV_REG &&
        e.kind != SIM_EV_EPH &&
        e.kind != SIM_EV_LOSE && e.life != s->rep[e.r].life)
        return;                                /* the replica restarted */
    switch (e.kind) {
    case SIM_EV_TICK: sim_on_tick(s, e.r); break;
    case SIM_EV_DISK: sim_on_disk(s, e.r); break;
    case SIM_EV_CLIENT: sim_on_client(s, e.r); break;
    case SIM_EV_LOCK: sim_on_lock(s, e.r); break;
    case SIM_EV_REG: sim_on_reg(s, e.r); break;
    case SIM_EV_EPH: sim_on_eph(s, e.r); break;
    case SIM_EV_LOSE: sim_on_lose(s, e.r); break;
    case SIM_EV_RESTART: sim_restart(s, e.r + 1); break;
    case SIM_EV_FAULT: sim_on_fault(s); break;
    default: ZK_ASSERT(0);
    }
}

int sim_run_until(struct sim *s, uint64_t until_us)
{
    while (!s->failed && s->nev && s->ev[0].t <= until_us) {
        step(s);
        sim_check(s);
    }
    if (!s->failed && s->now < until_us)
        s->now = until_us;
    return s->failed ? -1 : 0;
}

int sim_run_while_not(struct sim *s, uint64_t max_us,
                      int (*pred)(struct sim *, void *), void *arg)
{
    uint64_t end = s->now + max_us;
    while (!s->failed) {
        if (pred(s, arg))
            return 1;
        if (!s->nev || s->ev[0].t > end)
            break;
        step(s);
        sim_check(s);
    }
    return s->failed ? -1 : 0;
}

int sim_run_steps(struct sim *s, uint64_t n)
{
    for (uint64_t i = 0; i < n && !s->failed && s->nev; i++) {
        step(s);
        sim_check(s);
    }
    return s->failed ? -1 : 0;
}

int sim_pred_leader(struct sim *s, void *unused)
{
    (void)unused;
    return sim_leader(s) != 0;
}

/* Every replica alive, idle, and at the end of the committed history. */
int sim_pred_converged(struct sim *s, void *unused)
{
    (void)unused;
    uint64_t last = s->nhist ? s->hist[s->nhist - 1].zxid : 0;
    for (uint32_t i = 0; i < s->n; i++)
        if (!s->rep[i].alive || s->rep[i].model.applied != last)
            return 0;
    return sim_leader(s) != 0;
}
