/*
 * driver.c — the driver of the Zab core (driver.h): Readies made durable
 * through the injected store and delivered, the session table, proposals
 * (their deadlines and their resubmission after a failover), the tick and
 * the session lease. The same code runs in the daemon (ens_*.c wires LMDB,
 * a worker thread, TCP and CLOCK_MONOTONIC into it) and in the simulator
 * (test/sim wires its disk, network and clock).
 */
#include "driver.h"
#include "lease_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A proposal or read barrier waiting for its commit. */
struct prop {
    struct prop *prev, *next;
    uint8_t *payload;
    size_t len;
    int submitted, is_sync, err;  /* err: answer at the next tick          */
    int unknown;                  /* may be in an installed snapshot       */
    uint64_t req_id;              /* core request id once submitted        */
    uint64_t epoch;               /* the core's epoch when submitted       */
    uint64_t deadline_ms;         /* on the clock; then ZK_ENOTREADY       */
    zk_driver_done_cb cb;
    void *arg;
};

struct zk_driver {
    struct zk_driver_config cfg;
    struct zk_zab *z;
    uint32_t my_id, n_members;
    uint32_t member_ids[ZK_ZAB_MEMBERS_MAX];
    int stopping, failed;
    struct prop *head, *tail;
    size_t n_props;
    uint64_t applied_zxid;        /* driver: last commit delivered         */
    struct zk_zab_ready rd;       /* the outstanding Ready                 */
    int rd_out;
    size_t rd_sent;               /* its messages sent before its batch    */
    /* Write side (zk_driver_write). */
    struct zk_apply_result **results;          /* one per commit         */
    size_t results_cap;
    uint64_t w_applied;           /* the store's last applied zxid         */
    uint64_t sessions[ZK_ZAB_MEMBERS_MAX];     /* like the core's table   */
    uint64_t batches, fsyncs;     /* atomics                               */
    uint64_t here;                /* batches written by write_here         */
    uint64_t skipped;
    /* The lease: when each tick was taken. */
    struct zk__lease lease;
    uint64_t tick_no;
    uint64_t leases_lost, installed;
    /* resubmit_lost(): the epoch this replica was last seen established
     * in, and its log's end at that moment. */
    uint64_t est_epoch, est_zxid;
    uint64_t resubmitted;
};

static void dlog(const struct zk_driver *d, enum zk_log_level level,
                 const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void dlog(const struct zk_driver *d, enum zk_log_level level,
                 const char *fmt, ...)
{
    char line[256];
    va_list ap;

    if (!d->cfg.log)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    d->cfg.log(d->cfg.log_arg, level, line);
}

static uint64_t now_ns(const struct zk_driver *d)
{
    return d->cfg.now_ns(d->cfg.clock_arg);
}

static uint64_t now_ms(const struct zk_driver *d)
{
    return now_ns(d) / 1000000u;
}

static int member_index(const struct zk_driver *d, uint32_t id)
{
    for (uint32_t i = 0; i < d->n_members; i++)
        if (d->member_ids[i] == id)
            return (int)i;
    return -1;
}

/* ------------------------------------------------------------------ */
/* write side: one Ready -> one store batch (any thread)                */
/* ------------------------------------------------------------------ */

/* Applies one committed entry; *res stays NULL for an entry at or below
 * what the store has already applied (skipped with a warning). A session
 * OPEN from member m also closes m's previous session; the table follows
 * the core's. */
static int apply_entry(struct zk_driver *d, void *b,
                       const struct zk_zab_entry *en,
                       struct zk_apply_result **res)
{
    const struct zk_driver_store *st = &d->cfg.store;
    uint64_t sid = 0, prev = 0;
    int idx = -1, rc;

    *res = NULL;
    if (en->zxid <= d->w_applied) {
        dlog(d, ZK_LOG_WARN, "ensemble: commit 0x%llx already applied",
             (unsigned long long)en->zxid);
        d->skipped++;
        return 0;
    }
    if (en->type != ZK_ZAB_ENTRY_WRITE) {
        if (en->len != 8)
            return ZK_ECORRUPT;
        sid = zk_get_be64(en->data);
        idx = member_index(d, ZK_ZAB_SESSION_OWNER(sid));
        if (en->type == ZK_ZAB_ENTRY_SESSION_OPEN && idx >= 0 &&
            d->sessions[idx] && d->sessions[idx] != sid)
            prev = d->sessions[idx];
    }
    rc = st->apply(st->arg, b, en, prev, res);
    if (rc)
        return rc;
    d->w_applied = en->zxid;
    if (idx >= 0 && en->type == ZK_ZAB_ENTRY_SESSION_OPEN)
        d->sessions[idx] = sid;
    else if (idx >= 0 && d->sessions[idx] == sid)
        d->sessions[idx] = 0;
    return 0;
}

/* The ops and hard state of the outstanding Ready. */
static int batch_ops(struct zk_driver *d, void *b)
{
    const struct zk_driver_store *st = &d->cfg.store;
    const struct zk_zab_ready *rd = &d->rd;
    int rc = 0;

    for (size_t i = 0; i < rd->n_ops && rc == 0; i++) {
        const struct zk_zab_op *op = &rd->ops[i];
        switch (op->kind) {
        case ZK_ZAB_OP_APPEND:
            rc = st->append(st->arg, b, op->entry);
            break;
        case ZK_ZAB_OP_TRUNCATE:
            rc = st->truncate(st->arg, b, op->zxid);
            break;
        case ZK_ZAB_OP_INSTALL:
            rc = st->install(st->arg, b, op, d->sessions);
            if (rc == 0)
                d->w_applied = op->zxid;
            break;
        default:
            rc = ZK_ECORRUPT;
        }
    }
    if (rc == 0 && rd->has_hard_state)
        rc = st->hard_state(st->arg, b, &rd->hard_state);
    return rc;
}

static void results_free(struct zk_driver *d, size_t n)
{
    for (size_t i = 0; i < n && i < d->results_cap; i++) {
        if (d->results[i])
            d->cfg.store.result_free(d->cfg.store.arg, d->results[i]);
        d->results[i] = NULL;
    }
}

int zk_driver_write(struct zk_driver *d)
{
    const struct zk_driver_store *st = &d->cfg.store;
    const struct zk_zab_ready *rd = &d->rd;
    uint64_t applied0 = d->w_applied, sessions0[ZK_ZAB_MEMBERS_MAX];
    void *b = NULL;
    int rc;

    memcpy(sessions0, d->sessions, sizeof(sessions0));
    if (rd->n_commits > d->results_cap) {
        void *p = realloc(d->results, rd->n_commits * sizeof(*d->results));
        if (!p)
            return -ENOMEM;
        d->results = p;
        d->results_cap = rd->n_commits;
    }
    if (rd->n_commits)
        memset(d->results, 0, rd->n_commits * sizeof(*d->results));
    rc = st->begin(st->arg, &b);
    if (rc == 0)
        rc = batch_ops(d, b);
    for (size_t i = 0; i < rd->n_commits && rc == 0; i++)
        rc = apply_entry(d, b, &rd->commits[i], &d->results[i]);
    if (rc == 0) {
        rc = st->commit(st->arg, b);
        __atomic_add_fetch(&d->fsyncs, 1, __ATOMIC_RELAXED);
    } else if (b) {
        st->abort(st->arg, b);
    }
    __atomic_add_fetch(&d->batches, 1, __ATOMIC_RELAXED);
    if (rc == 0)
        return 0;
    results_free(d, rd->n_commits);
    d->w_applied = applied0;
    memcpy(d->sessions, sessions0, sizeof(sessions0));
    return rc;
}

/* ------------------------------------------------------------------ */
/* proposals                                                           */
/* ------------------------------------------------------------------ */

static void prop_unlink(struct zk_driver *d, struct prop *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        d->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        d->tail = p->prev;
    d->n_props--;
}

/* Unlinks p, answers it and frees it. */
static void prop_answer(struct zk_driver *d, struct prop *p, int err,
                        const struct zk_apply_result *res)
{
    prop_unlink(d, p);
    if (p->cb)
        p->cb(p->arg, err, p->is_sync ? NULL : res);
    free(p->payload);
    free(p);
}

/* A write submitted in epoch E and not committed when this replica has
 * synchronised with a leader of a later epoch that says it is established
 * (a quorum acknowledged its NEWLEADER), and applied everything that
 * leader's history holds, can never commit: Zab's new leader starts from
 * a history holding every entry that ever could (a quorum that moved on
 * refuses the old leader's proposals). Such a write — typically forwarded
 * to a leader that died with it — is proposed again instead of waiting
 * out its deadline, so a failover costs writers a pause, not an error. A
 * write that is still in that history commits and is answered normally. */
static void resubmit_lost(struct zk_driver *d)
{
    struct zk_zab_status st;

    if (d->head == NULL)
        return;
    zk_zab_status(d->z, &st);
    /* Not merely synced: a learner can process NEWLEADER of a leader that
     * never gets a quorum, and a later leader may still hold (and commit)
     * the entries that leader's history lacked (the simulator found it,
     * seed 1871). Established, its history is final. */
    if (!st.leader_established || st.role == ZK_ZAB_LOOKING)
        return;
    if (st.epoch != d->est_epoch) {
        d->est_epoch = st.epoch;
        d->est_zxid = st.last_zxid;   /* the end of the synced history */
    }
    if (d->applied_zxid < d->est_zxid)
        return;
    for (struct prop *p = d->head; p; p = p->next) {
        if (!p->submitted || p->unknown || p->epoch >= st.epoch ||
            !p->payload)
            continue;
        p->submitted = 0;
        p->req_id = 0;
        d->resubmitted++;
    }
}

/* Hands waiting proposals to the core, in order; stops at the first the
 * core cannot take yet (no established leader, its queue full). */
static void submit_props(struct zk_driver *d)
{
    struct zk_zab_status st;

    if (d->head == NULL)
        return;
    resubmit_lost(d);
    zk_zab_status(d->z, &st);
    for (struct prop *p = d->head; p; p = p->next) {
        if (p->submitted || p->err)
            continue;
        int rc = zk_zab_propose(d->z, p->payload, (uint32_t)p->len,
                                &p->req_id);
        if (rc == ZK_ENOTREADY || rc == -EAGAIN)
            return;
        if (rc) {
            p->err = rc;           /* answered at the next tick */
            continue;
        }
        p->submitted = 1;
        p->epoch = st.epoch;       /* payload kept: see resubmit_lost() */
    }
}

/* Answers every proposal that failed or waited too long (ZK_ENOTREADY: a
 * forwarded write may have been lost with its leader; it may still commit
 * later, like a ZooKeeper request after a connection loss). */
static void expire_props(struct zk_driver *d, int all_err)
{
    uint64_t now = now_ms(d);
    struct prop *p = d->head, *next;

    for (; p; p = next) {
        next = p->next;
        if (all_err)
            prop_answer(d, p, all_err, NULL);
        else if (p->err)
            prop_answer(d, p, p->err, NULL);
        else if (now >= p->deadline_ms)
            prop_answer(d, p, ZK_ENOTREADY, NULL);
    }
}

void zk_driver_fail_all(struct zk_driver *d, int err)
{
    expire_props(d, err);
}

static struct prop *prop_find(struct zk_driver *d, uint64_t req_id)
{
    for (struct prop *p = d->head; p; p = p->next)
        if (p->submitted && p->req_id == req_id)
            return p;
    return NULL;
}

static void pump(struct zk_driver *d, int here);

int zk_driver_propose(struct zk_driver *d, uint8_t *payload, size_t len,
                      int is_sync, zk_driver_done_cb cb, void *arg)
{
    if (d->stopping)
        return -ESHUTDOWN;
    if (d->n_props >= ZK_DRIVER_PENDING_MAX)
        return -EAGAIN;
    struct prop *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->payload = payload;
    p->len = len;
    p->is_sync = is_sync;
    p->cb = cb;
    p->arg = arg;
    p->deadline_ms = now_ms(d) + d->cfg.prop_wait_ms;
    p->prev = d->tail;
    if (d->tail)
        d->tail->next = p;
    else
        d->head = p;
    d->tail = p;
    d->n_props++;
    /* Answered at the next tick. Never sent anywhere, so known not to
     * be applied: a full disk says so (ENOSPC, EDQUOT); anything else
     * wrong with the store is EIO. */
    if (d->failed)
        p->err = d->failed == -ENOSPC || d->failed == -EDQUOT ? d->failed
                                                              : -EIO;
    pump(d, 0);     /* no callback from inside this call (driver.h) */
    return 0;
}

/* ------------------------------------------------------------------ */
/* Ready hand-off and delivery                                         */
/* ------------------------------------------------------------------ */

/* Applied callbacks and done callbacks for the durable Ready's commits. */
static void deliver_commits(struct zk_driver *d)
{
    for (size_t i = 0; i < d->rd.n_commits; i++) {
        const struct zk_zab_entry *en = &d->rd.commits[i];
        struct zk_apply_result *res = d->results[i];
        d->results[i] = NULL;
        if (!res)
            continue;
        d->applied_zxid = en->zxid;
        if (d->cfg.applied)
            d->cfg.applied(d->cfg.cb_arg, res);
        if (en->origin == d->my_id && en->type == ZK_ZAB_ENTRY_WRITE) {
            struct prop *p = prop_find(d, en->req_id);
            if (p)
                prop_answer(d, p, 0, res);
        }
        d->cfg.store.result_free(d->cfg.store.arg, res);
    }
}

static int ready_installs(const struct zk_zab_ready *rd)
{
    for (size_t i = 0; i < rd->n_ops; i++)
        if (rd->ops[i].kind == ZK_ZAB_OP_INSTALL)
            return 1;
    return 0;
}

/* A snapshot replaced the state: a write submitted before it may have
 * committed inside it, and its commit will never be delivered here.
 * Proposing it again could commit it twice, so it is left to commit
 * later (answered as usual) or to its deadline (outcome unknown). */
static void props_unknown(struct zk_driver *d)
{
    for (struct prop *p = d->head; p; p = p->next)
        if (p->submitted)
            p->unknown = 1;
}

/* Messages that carry no claim about this replica's disk, so they may
 * leave while the Ready's batch is still being written (pipelining, as
 * ZooKeeper's and etcd's leaders do):
 *  - PROPOSE asks learners to log entries; nothing counts the leader's own
 *    copy until zk_zab_advance() after its batch (the core's self_durable
 *    and persisted), so a commit still needs a quorum of durable copies;
 *  - COMMIT and INFORM name entries a quorum already has on disk;
 *  - REQUEST forwards a write to the leader, which decides everything.
 * ACK (this replica's persisted zxid and lease echoes) is never early, nor
 * is anything of election or synchronisation. A Ready with hard state (an
 * epoch accepted, a vote) sends nothing early: a PROPOSE of an epoch must
 * not leave before that epoch is durable here. */
static int msg_early(uint8_t type)
{
    return type == ZK_ZAB_MSG_PROPOSE || type == ZK_ZAB_MSG_COMMIT ||
           type == ZK_ZAB_MSG_INFORM || type == ZK_ZAB_MSG_REQUEST;
}

/* Sends the longest prefix of the taken Ready's messages that may leave
 * before its batch is durable (a prefix, so the Ready's order is kept);
 * finish_ready() sends the rest. */
static void send_early(struct zk_driver *d)
{
    size_t k = 0;

    if (d->rd.has_hard_state)
        return;
    while (k < d->rd.n_msgs && msg_early(d->rd.msgs[k].type))
        d->cfg.send(d->cfg.send_arg, &d->rd.msgs[k++]);
    d->rd_sent = k;
}

/* The outstanding Ready is durable: deliver, send, advance. */
static void finish_ready(struct zk_driver *d)
{
    for (size_t i = 0; i < d->rd.n_ops; i++)
        if (d->rd.ops[i].kind == ZK_ZAB_OP_INSTALL) {
            d->applied_zxid = d->rd.ops[i].zxid;
            d->installed++;
            props_unknown(d);
            if (d->cfg.reset)
                d->cfg.reset(d->cfg.cb_arg, 1);
        }
    if (ready_installs(&d->rd) && d->cfg.store.install_done)
        d->cfg.store.install_done(d->cfg.store.arg);
    deliver_commits(d);
    if (d->stopping)
        return;
    for (size_t i = d->rd_sent; i < d->rd.n_msgs; i++)
        d->cfg.send(d->cfg.send_arg, &d->rd.msgs[i]);
    d->rd_sent = 0;
    zk_zab_advance(d->z);
    d->rd_out = 0;
}

static void fail_stop(struct zk_driver *d, int err)
{
    dlog(d, ZK_LOG_ERROR, "ensemble: writing to the store failed (%s); "
         "this replica stops taking part until a new core can write it "
         "(tried again every few seconds)", zk_strerror(err));
    d->failed = err;
    expire_props(d, -EIO);
    /* A snapshot that failed to install left the old tree (the batch
     * commits whole or not at all): the reset begun in zk_driver_pump
     * ends, finding nothing changed. */
    if (ready_installs(&d->rd) && d->cfg.reset)
        d->cfg.reset(d->cfg.cb_arg, 1);
}

void zk_driver_written(struct zk_driver *d, int err)
{
    if (d->stopping)
        return;
    if (err) {
        fail_stop(d, err);
        return;
    }
    finish_ready(d);
    zk_driver_pump(d);
}

/* The taken Ready written on this thread, if the store wants it so
 * (write_here): only one that appends to the log and applies, never one
 * that truncates the log or installs a snapshot (synced, or long) or
 * holds hard state (an epoch or a vote, which the runtime's election
 * watch looks for after zk_driver_written()). */
static int write_here(struct zk_driver *d, int *err)
{
    const struct zk_driver_store *st = &d->cfg.store;
    struct zk_driver_batch_size sz = {.appends = d->rd.n_ops,
                                      .commits = d->rd.n_commits};

    if (!st->write_here || d->rd.has_hard_state)
        return 0;
    for (size_t i = 0; i < d->rd.n_msgs; i++)
        sz.early += msg_early(d->rd.msgs[i].type);
    for (size_t i = 0; i < d->rd.n_ops; i++) {
        if (d->rd.ops[i].kind != ZK_ZAB_OP_APPEND)
            return 0;
        sz.append_bytes += d->rd.ops[i].entry->len;
    }
    for (size_t i = 0; i < d->rd.n_commits; i++)
        sz.commit_bytes += d->rd.commits[i].len;
    return st->write_here(st->arg, &sz, err);
}

/* Takes Readies from the core: message-only ones are sent at once (there
 * is nothing to make durable), others go to the store's schedule() or,
 * if here and the store wants it (write_here), are written at once. An
 * empty Ready ends the round: a leader's core has one after every
 * advance, and nothing changed since. */
static void pump(struct zk_driver *d, int here)
{
    for (int round = 0; round < ZK_DRIVER_PUMP_ROUNDS; round++) {
        if (d->failed || d->stopping || d->rd_out)
            return;
        submit_props(d);
        if (!zk_zab_has_ready(d->z))
            return;
        zk_zab_ready(d->z, &d->rd);
        d->rd_out = 1;
        for (size_t i = 0; i < d->rd.n_ops; i++)
            if (d->rd.ops[i].kind == ZK_ZAB_OP_INSTALL) {
                if (d->cfg.store.install_prepare)
                    d->cfg.store.install_prepare(d->cfg.store.arg,
                                                 d->rd.ops[i].zxid);
                if (d->cfg.reset)  /* while the old tree is still there */
                    d->cfg.reset(d->cfg.cb_arg, 0);
            }
        int empty = d->rd.n_msgs == 0;
        if (d->rd.n_ops || d->rd.n_commits || d->rd.has_hard_state) {
            int err = 0;
            if (!here || !write_here(d, &err)) {
                d->cfg.store.schedule(d->cfg.store.arg);
                send_early(d);    /* while the batch is written */
                return;
            }
            d->here++;
            if (err) {
                fail_stop(d, err);
                return;
            }
            empty = 0;      /* as zk_driver_written(): take the next one */
        }
        finish_ready(d);
        if (empty)
            return;
    }
}

void zk_driver_pump(struct zk_driver *d)
{
    pump(d, 1);
}

/* ------------------------------------------------------------------ */
/* messages, ticks and the lease                                       */
/* ------------------------------------------------------------------ */

/* A fail-stopped replica hears nothing more: its core is never advanced
 * again, and what it would answer could only pile up. */
void zk_driver_step(struct zk_driver *d, const struct zk_zab_msg *m)
{
    if (d->failed)
        return;
    zk_zab_step(d->z, m);
}

void zk_driver_heard(struct zk_driver *d, uint32_t id)
{
    zk_zab_heard(d->z, id);
}

void zk_driver_peer_down(struct zk_driver *d, uint32_t id)
{
    if (d->failed)
        return;
    zk_zab_peer_down(d->z, id);
    zk_driver_pump(d);
}

uint64_t zk_driver_lease_until(const struct zk_driver *d)
{
    struct zk_zab_status st;

    zk_zab_status(d->z, &st);
    return st.session_open ? zk__lease_until(&d->lease, &st) : 0;
}

/* The lease (lease.c): once the message a quorum last acknowledged was
 * sent longer ago than the lease (measured on the clock now, not in ticks
 * that a stopped process did not take), this replica gives its session up
 * before the leader can expire it, so its ephemerals (and whatever they
 * stand for) are lost here first. Its next session, opened when it
 * rejoins, closes the old one everywhere. */
int zk_driver_lease_check(struct zk_driver *d)
{
    struct zk_zab_status st;

    zk_zab_status(d->z, &st);
    uint64_t now = now_ns(d);
    uint64_t until = zk__lease_until(&d->lease, &st);
    if (!st.session_open || now < until)
        return 0;
    uint64_t at = d->lease.tick_ns[st.contact_tick % ZK__LEASE_TICKS];
    dlog(d, ZK_LOG_WARN, "ensemble replica %u: no quorum acknowledged what "
         "it sent in the last %llu ms (lease %llu ms)", d->my_id,
         (unsigned long long)((now - at) / 1000000u),
         (unsigned long long)(d->lease.lease_ns / 1000000u));
    zk_driver_give_up(d);
    return ZK_ESESSION;
}

void zk_driver_give_up(struct zk_driver *d)
{
    struct zk_zab_status st;

    zk_zab_status(d->z, &st);
    if (!st.session_open)
        return;
    dlog(d, ZK_LOG_WARN, "ensemble replica %u: session %016llx and its "
         "ephemerals are given up", d->my_id,
         (unsigned long long)st.session);
    zk_zab_session_renew(d->z);
    d->leases_lost++;
    if (d->cfg.session_lost)
        d->cfg.session_lost(d->cfg.cb_arg, st.session);
}

void zk_driver_tick(struct zk_driver *d)
{
    if (d->failed) {
        expire_props(d, 0);     /* each with its error (propose) */
        return;
    }
    zk__lease_ticked(&d->lease, ++d->tick_no, now_ns(d));
    zk_zab_tick(d->z);
    zk_driver_lease_check(d);
    expire_props(d, 0);
    zk_driver_pump(d);
}

uint64_t zk_driver_session(const struct zk_driver *d)
{
    struct zk_zab_status st;

    zk_zab_status(d->z, &st);
    return st.session_open ? st.session : 0;
}

void zk_driver_stats(const struct zk_driver *d, struct zk_driver_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->applied_zxid = d->applied_zxid;
    out->pending = d->n_props;
    out->batches = __atomic_load_n(&d->batches, __ATOMIC_RELAXED);
    out->fsyncs = __atomic_load_n(&d->fsyncs, __ATOMIC_RELAXED);
    out->batches_here = d->here;
    out->installed = d->installed;
    out->resubmitted = d->resubmitted;
    out->leases_lost = d->leases_lost;
    out->skipped = d->skipped;
    out->failed = d->failed;
}

const struct zk_zab *zk_driver_core(const struct zk_driver *d)
{
    return d->z;
}

/* ------------------------------------------------------------------ */
/* create and destroy                                                  */
/* ------------------------------------------------------------------ */

int zk_driver_create(const struct zk_driver_config *cfg,
                     struct zk_driver **out)
{
    struct zk_driver *d = calloc(1, sizeof(*d));
    int rc;

    if (!d)
        return -ENOMEM;
    d->cfg = *cfg;
    d->cfg.zab = NULL;
    d->cfg.restore = NULL;
    d->my_id = cfg->zab->id;
    d->n_members = cfg->zab->n_members;
    for (uint32_t i = 0; i < d->n_members; i++)
        d->member_ids[i] = cfg->zab->members[i].id;
    memcpy(d->sessions, cfg->restore->sessions, sizeof(d->sessions));
    d->w_applied = d->applied_zxid = cfg->restore->applied_zxid;
    zk__lease_init(&d->lease, zk__lease_ms(cfg->session_timeout_ms,
                                           cfg->tick_ms), now_ns(d));
    rc = zk_zab_create(cfg->zab, cfg->restore, &d->z);
    if (rc) {
        free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void zk_driver_stopping(struct zk_driver *d)
{
    d->stopping = 1;
}

void zk_driver_destroy(struct zk_driver *d)
{
    if (!d)
        return;
    if (d->rd_out)
        results_free(d, d->rd.n_commits);
    while (d->head) {
        struct prop *p = d->head;
        prop_unlink(d, p);
        free(p->payload);
        free(p);
    }
    zk_zab_destroy(d->z);
    free(d->results);
    free(d);
}
