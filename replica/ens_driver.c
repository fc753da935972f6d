/*
 * ens_driver.c — the driver of the Zab core in the ensemble runtime: the
 * layer between the core and the outside. It takes the core's Readies
 * (one outstanding at a time), makes each durable in one store batch on
 * the worker thread (log appends in the entry envelope, truncations, a
 * snapshot's install, hard state, and the commits applied), then on the
 * loop thread delivers the commits (applied, then done callbacks), sends
 * the Ready's messages and advances the core. It also keeps the session
 * table exactly like the core's, holds the proposals waiting for their
 * commit (resubmitting writes lost with a leader), ticks the core and
 * checks the session lease (lease.c) on the monotonic clock.
 */
#include "ens_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int zk__ens_member_index(const struct zk__ens *e, uint32_t id)
{
    for (uint32_t i = 0; i < e->n_members; i++)
        if (e->member_ids[i] == id)
            return (int)i;
    return -1;
}

/* Envelope of a logged entry: magic, version, type u32, origin u32,
 * req_id u64 (big-endian), then the payload. Returns a malloc'd buffer. */
uint8_t *zk__ens_env_encode(const struct zk_zab_entry *en, size_t *len_out)
{
    uint8_t *b = malloc(ENS_ENV_HDR + (size_t)en->len);
    if (!b)
        return NULL;
    b[0] = ENS_ENV_MAGIC;
    b[1] = ENS_ENV_VERSION;
    zk_put_be32(b + 2, en->type);
    zk_put_be32(b + 6, en->origin);
    zk_put_be64(b + 10, en->req_id);
    if (en->len)
        memcpy(b + ENS_ENV_HDR, en->data, en->len);
    *len_out = ENS_ENV_HDR + (size_t)en->len;
    return b;
}

int zk__ens_env_decode(uint64_t zxid, const uint8_t *buf, size_t len,
                       struct zk_zab_entry *en)
{
    if (len < ENS_ENV_HDR || buf[0] != ENS_ENV_MAGIC ||
        buf[1] != ENS_ENV_VERSION || len - ENS_ENV_HDR > ZK_ZAB_PAYLOAD_MAX)
        return ZK_ECORRUPT;
    /* An unknown type would be applied as a session close here and, sent
     * in a DIFF, refused by every follower's decoder again and again. */
    uint32_t type = zk_get_be32(buf + 2);
    if (type < ZK_ZAB_ENTRY_WRITE || type > ZK_ZAB_ENTRY_SESSION_CLOSE)
        return ZK_ECORRUPT;
    en->zxid = zxid;
    en->type = type;
    en->origin = zk_get_be32(buf + 6);
    en->req_id = zk_get_be64(buf + 10);
    en->len = (uint32_t)(len - ENS_ENV_HDR);
    en->data = buf + ENS_ENV_HDR;
    return 0;
}

/* Applies a core session entry as a zk_txn: OPEN from member m closes m's
 * previous session and opens the new one; CLOSE closes the session (a
 * no-op in the store if it is not open). Deterministic: same table, same
 * time (the last WRITE's) on every replica. */
static int apply_session(struct zk__ens *e, struct zk_store_batch *b,
                         const struct zk_zab_entry *en,
                         struct zk_apply_result **res)
{
    struct zk_op ops[2];
    char owner[ENS_OWNER_MAX];
    uint32_t n = 0;
    uint8_t *buf;
    size_t len;

    if (en->len != 8)
        return ZK_ECORRUPT;
    uint64_t sid = zk_get_be64(en->data);
    int idx = zk__ens_member_index(e, ZK_ZAB_SESSION_OWNER(sid));
    memset(ops, 0, sizeof(ops));
    if (en->type == ZK_ZAB_ENTRY_SESSION_OPEN && idx >= 0 &&
        e->sessions[idx] && e->sessions[idx] != sid)
        ops[n++] = (struct zk_op){.type = ZK_OP_SESSION_CLOSE,
                                  .version = -1,
                                  .session = e->sessions[idx]};
    ops[n] = (struct zk_op){.type = en->type == ZK_ZAB_ENTRY_SESSION_OPEN
                                        ? ZK_OP_SESSION_OPEN
                                        : ZK_OP_SESSION_CLOSE,
                            .version = -1, .session = sid};
    if (en->type == ZK_ZAB_ENTRY_SESSION_OPEN) {
        snprintf(owner, sizeof(owner), "server.%u",
                 ZK_ZAB_SESSION_OWNER(sid));
        ops[n].owner = owner;
        ops[n].owner_len = (uint32_t)strlen(owner);
        ops[n].timeout_ms = e->session_timeout_ms;
    }
    n++;
    struct zk_txn txn = {.time_ms = e->w_time_ms, .nops = n, .ops = ops};
    int rc = zk_txn_encode(&txn, &buf, &len);
    if (rc)
        return rc;
    rc = zk_store_batch_apply(b, en->zxid, buf, len, res);
    free(buf);
    if (rc == 0 && idx >= 0) {
        if (en->type == ZK_ZAB_ENTRY_SESSION_OPEN)
            e->sessions[idx] = sid;
        else if (e->sessions[idx] == sid)
            e->sessions[idx] = 0;
    }
    return rc;
}

/* Applies one committed entry; *res stays NULL for an entry at or below
 * what the store has already applied (skipped with a warning). */
static int apply_entry(struct zk__ens *e, struct zk_store_batch *b,
                       const struct zk_zab_entry *en,
                       struct zk_apply_result **res)
{
    int rc;

    *res = NULL;
    if (en->zxid <= e->w_applied) {
        zk_log(ZK_LOG_WARN, "ensemble: commit 0x%llx already applied",
               (unsigned long long)en->zxid);
        return 0;
    }
    if (en->type == ZK_ZAB_ENTRY_WRITE) {
        if (en->len >= ZK_TXN_HDR_SIZE + 8 &&
            zk_txn_verify(en->data, en->len) == 0)
            e->w_time_ms = zk_get_be64(en->data + ZK_TXN_HDR_SIZE);
        rc = zk_store_batch_apply(b, en->zxid, en->data, en->len, res);
    } else {
        rc = apply_session(e, b, en, res);
    }
    if (rc == 0)
        e->w_applied = en->zxid;
    return rc;
}

/* Feeds the snapshot's temporary file to the store (worker). */
static int install_feed_file(struct zk_store_install *in,
                             const struct zk__snap_rx *sn)
{
    uint8_t *buf = malloc(ENS_SNAP_IO_BYTES);
    uint64_t off = 0;
    int rc = buf ? 0 : -ENOMEM;

    while (rc == 0 && off < sn->len) {
        size_t want = sn->len - off < ENS_SNAP_IO_BYTES
                          ? (size_t)(sn->len - off) : ENS_SNAP_IO_BYTES;
        ssize_t n = pread(sn->fd, buf, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : ZK_ETRUNCATED;
            zk_log(ZK_LOG_ERROR, "ensemble: reading the received snapshot "
                   "back: %s", zk_strerror(rc));
            break;
        }
        rc = zk_store_install_feed(in, buf, (size_t)n);
        off += (uint64_t)n;
    }
    free(buf);
    return rc;
}

/* Zab INSTALL: replaces tree and log by the snapshot handed over with
 * this Ready (job_snap), inside batch b. */
static int install_snap(struct zk__ens *e, struct zk_store_batch *b,
                        const struct zk_zab_op *op)
{
    struct zk__snap_rx *sn = e->job_snap;
    struct zk_store_install *in = NULL;
    uint64_t zxid = 0;

    if (!sn || sn->zxid != op->zxid) {
        zk_log(ZK_LOG_ERROR, "ensemble: INSTALL at 0x%llx without its "
               "snapshot", (unsigned long long)op->zxid);
        return ZK_ECORRUPT;
    }
    int rc = zk_store_batch_install_begin(b, &in);
    if (rc)
        return rc;
    rc = install_feed_file(in, sn);
    if (rc) {
        zk_store_install_abort(in);
        return rc;
    }
    rc = zk_store_install_finish(in, &zxid);
    if (rc == 0 && zxid != op->zxid)
        rc = ZK_ECORRUPT;
    if (rc)
        return rc;
    zk_log(ZK_LOG_INFO, "ensemble: installed a snapshot of %llu bytes at "
           "0x%llx from server %u", (unsigned long long)sn->len,
           (unsigned long long)zxid,
           op->from);
    e->w_applied = zxid;
    memcpy(e->sessions, sn->sessions, sizeof(e->sessions));
    return 0;
}

/* The ops and hard state of the outstanding Ready. */
static int batch_ops(struct zk__ens *e, struct zk_store_batch *b)
{
    const struct zk_zab_ready *rd = &e->rd;
    int rc = 0;

    for (size_t i = 0; i < rd->n_ops && rc == 0; i++) {
        const struct zk_zab_op *op = &rd->ops[i];
        uint8_t *buf;
        size_t len;
        switch (op->kind) {
        case ZK_ZAB_OP_APPEND:
            buf = zk__ens_env_encode(op->entry, &len);
            rc = buf ? zk_store_batch_log(b, op->entry->zxid, buf, len)
                     : -ENOMEM;
            free(buf);
            break;
        case ZK_ZAB_OP_TRUNCATE:
            rc = zk_store_batch_log_truncate(b, op->zxid);
            break;
        case ZK_ZAB_OP_INSTALL:
            rc = install_snap(e, b, op);
            break;
        default:
            rc = ZK_ECORRUPT;
        }
    }
    if (rc == 0 && rd->has_hard_state) {
        rc = zk_store_batch_meta_set(b, "accepted_epoch",
                                     rd->hard_state.accepted_epoch);
        if (rc == 0)
            rc = zk_store_batch_meta_set(b, "current_epoch",
                                         rd->hard_state.current_epoch);
    }
    return rc;
}

/* Writes the outstanding Ready durably. On failure nothing of it is kept
 * and the results are freed. */
static int job_run(struct zk__ens *e)
{
    const struct zk_zab_ready *rd = &e->rd;
    struct zk_store_batch *b = NULL;
    uint64_t applied0 = e->w_applied, time0 = e->w_time_ms;
    uint64_t sessions0[ZK_ZAB_MEMBERS_MAX];
    int rc = 0;

    memcpy(sessions0, e->sessions, sizeof(sessions0));
    if (rd->n_commits > e->results_cap) {
        void *p = realloc(e->results, rd->n_commits * sizeof(*e->results));
        if (!p)
            return -ENOMEM;
        e->results = p;
        e->results_cap = rd->n_commits;
    }
    if (rd->n_commits)
        memset(e->results, 0, rd->n_commits * sizeof(*e->results));
    rc = zk_store_batch_begin(e->store, &b);
    if (rc == 0)
        rc = batch_ops(e, b);
    for (size_t i = 0; i < rd->n_commits && rc == 0; i++)
        rc = apply_entry(e, b, &rd->commits[i], &e->results[i]);
    if (rc == 0) {
        rc = zk_store_batch_commit(b);
        __atomic_add_fetch(&e->fsyncs, 1, __ATOMIC_RELAXED);
    } else if (b) {
        zk_store_batch_abort(b);
    }
    __atomic_add_fetch(&e->batches, 1, __ATOMIC_RELAXED);
    if (rc == 0)
        return 0;
    for (size_t i = 0; i < rd->n_commits; i++) {
        zk_apply_result_free(e->results[i]);
        e->results[i] = NULL;
    }
    e->w_applied = applied0;
    e->w_time_ms = time0;
    memcpy(e->sessions, sessions0, sizeof(sessions0));
    return rc;
}

void *zk__ens_worker_main(void *arg)
{
    struct zk__ens *e = arg;

    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->job && !e->worker_stop)
            pthread_cond_wait(&e->cv, &e->mu);
        if (!e->job)
            break;
        pthread_mutex_unlock(&e->mu);
        int rc = job_run(e);
        pthread_mutex_lock(&e->mu);
        e->job = 0;
        e->job_done = 1;
        e->job_err = rc;
        uv_async_send(&e->async);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

static void prop_unlink(struct zk__ens *e, struct prop *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        e->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        e->tail = p->prev;
    e->n_props--;
}

/* Unlinks p, answers it and frees it. */
static void prop_answer(struct zk__ens *e, struct prop *p, int err,
                        const struct zk_apply_result *res)
{
    prop_unlink(e, p);
    if (p->cb)
        p->cb(p->arg, err, p->is_sync ? NULL : res);
    free(p->payload);
    free(p);
}

/* A write submitted in epoch E and not committed when this replica has
 * synchronised with a leader of a later epoch, and applied everything that
 * leader's history holds, can never commit: Zab's new leader starts from
 * a history holding every entry that ever could (a quorum that moved on
 * refuses the old leader's proposals). Such a write — typically forwarded
 * to a leader that died with it — is proposed again instead of waiting
 * out its deadline, so a failover costs writers a pause, not an error. A
 * write that is still in that history commits and is answered normally. */
static void resubmit_lost(struct zk__ens *e)
{
    struct zk_zab_status st;

    zk_zab_status(e->z, &st);
    if (!st.established || st.role == ZK_ZAB_LOOKING)
        return;
    if (st.epoch != e->est_epoch) {
        e->est_epoch = st.epoch;
        e->est_zxid = st.last_zxid;   /* the end of the synced history */
    }
    if (e->applied_zxid < e->est_zxid)
        return;
    for (struct prop *p = e->head; p; p = p->next) {
        if (!p->submitted || p->epoch >= st.epoch || !p->payload)
            continue;
        p->submitted = 0;
        p->req_id = 0;
        e->resubmitted++;
    }
}

/* Hands waiting proposals to the core, in order; stops at the first the
 * core cannot take yet (no established leader, its queue full). */
static void submit_props(struct zk__ens *e)
{
    struct zk_zab_status st;

    resubmit_lost(e);
    zk_zab_status(e->z, &st);
    for (struct prop *p = e->head; p; p = p->next) {
        if (p->submitted || p->err)
            continue;
        int rc = zk_zab_propose(e->z, p->payload, (uint32_t)p->len,
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
void zk__ens_expire_props(struct zk__ens *e, int all_err)
{
    uint64_t now = uv_now(e->loop);
    struct prop *p = e->head, *next;

    for (; p; p = next) {
        next = p->next;
        if (all_err)
            prop_answer(e, p, all_err, NULL);
        else if (p->err)
            prop_answer(e, p, p->err, NULL);
        else if (now >= p->deadline_ms)
            prop_answer(e, p, ZK_ENOTREADY, NULL);
    }
}

static struct prop *prop_find(struct zk__ens *e, uint64_t req_id)
{
    for (struct prop *p = e->head; p; p = p->next)
        if (p->submitted && p->req_id == req_id)
            return p;
    return NULL;
}

/* Applied callbacks and done callbacks for the durable Ready's commits. */
static void deliver_commits(struct zk__ens *e)
{
    for (size_t i = 0; i < e->rd.n_commits; i++) {
        const struct zk_zab_entry *en = &e->rd.commits[i];
        struct zk_apply_result *res = e->results[i];
        e->results[i] = NULL;
        if (!res)
            continue;
        e->applied_zxid = en->zxid;
        if (e->applied)
            e->applied(e->applied_arg, res);
        if (en->origin == e->my_id && en->type == ZK_ZAB_ENTRY_WRITE) {
            struct prop *p = prop_find(e, en->req_id);
            if (p)
                prop_answer(e, p, 0, res);
        }
        zk_apply_result_free(res);
    }
}

/* The outstanding Ready is durable: deliver, send, advance. */
static void finish_ready(struct zk__ens *e)
{
    for (size_t i = 0; i < e->rd.n_ops; i++)
        if (e->rd.ops[i].kind == ZK_ZAB_OP_INSTALL) {
            e->applied_zxid = e->rd.ops[i].zxid;
            e->snaps_installed++;
            if (e->reset)
                e->reset(e->applied_arg, 1);
        }
    zk__snap_rx_free(e->job_snap);
    e->job_snap = NULL;
    deliver_commits(e);
    if (e->stopping)
        return;
    for (size_t i = 0; i < e->rd.n_msgs; i++)
        zk__ens_send_msg(e, &e->rd.msgs[i]);
    zk_zab_advance(e->z);
    e->rd_out = 0;
}

static void fail_stop(struct zk__ens *e, int err)
{
    zk_log(ZK_LOG_ERROR, "ensemble: writing to the store failed (%s); this "
           "replica stops taking part until it is restarted",
           zk_strerror(err));
    e->failed = err;
    zk__ens_expire_props(e, -EIO);
}

void zk__ens_on_async(uv_async_t *h)
{
    struct zk__ens *e = h->data;

    if (!e->stopping)
        zk__ens_stx_service(e);
    pthread_mutex_lock(&e->mu);
    int done = e->job_done, err = e->job_err;
    e->job_done = 0;
    pthread_mutex_unlock(&e->mu);
    if (!done || e->stopping)
        return;
    if (err) {
        fail_stop(e, err);
        return;
    }
    finish_ready(e);
    zk__ens_pump(e);
}

/* Takes Readies from the core: message-only ones are sent at once (there
 * is nothing to make durable), others go to the worker. */
void zk__ens_pump(struct zk__ens *e)
{
    for (int round = 0; round < ENS_PUMP_ROUNDS_MAX; round++) {
        if (e->failed || e->stopping || e->rd_out)
            return;
        submit_props(e);
        if (!zk_zab_has_ready(e->z))
            return;
        zk_zab_ready(e->z, &e->rd);
        e->rd_out = 1;
        for (size_t i = 0; i < e->rd.n_ops; i++)
            if (e->rd.ops[i].kind == ZK_ZAB_OP_INSTALL) {
                if (!e->job_snap) {
                    e->job_snap = e->snap_pending;
                    e->snap_pending = NULL;
                }
                if (e->reset)       /* while the old tree is still there */
                    e->reset(e->applied_arg, 0);
            }
        if (e->rd.n_ops || e->rd.n_commits || e->rd.has_hard_state) {
            pthread_mutex_lock(&e->mu);
            e->job = 1;
            pthread_cond_signal(&e->cv);
            pthread_mutex_unlock(&e->mu);
            return;
        }
        finish_ready(e);
    }
}

/* CLOCK_MONOTONIC in ns: the lease's clock (a stopped process's clock
 * keeps running, unlike its ticks). */
uint64_t zk__ens_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The lease (lease.c): once the message a quorum last acknowledged was
 * sent longer ago than the lease (measured on the monotonic clock now, not
 * in ticks that a stopped process did not take), this replica gives its
 * session up before the leader can expire it, so its ephemerals (and
 * whatever they stand for) are lost here first (fs/ is told through
 * session_lost). Its next session, opened when it rejoins, closes the old
 * one everywhere. Returns 0 while the lease holds (or there is no
 * session), ZK_ESESSION when it ran out. */
int zk__ens_lease_check(struct zk__ens *e)
{
    struct zk_zab_status st;

    if (!e->z)
        return 0;
    zk_zab_status(e->z, &st);
    uint64_t now = zk__ens_mono_ns();
    uint64_t until = zk__lease_until(&e->lease, &st);
    if (!st.session_open || now < until)
        return 0;
    uint64_t at = e->lease.tick_ns[st.contact_tick % ZK__LEASE_TICKS];
    zk_log(ZK_LOG_WARN, "ensemble replica %u: no quorum acknowledged what "
           "it sent in the last %llu ms (lease %llu ms)", e->my_id,
           (unsigned long long)((now - at) / 1000000u),
           (unsigned long long)(e->lease.lease_ns / 1000000u));
    zk__ens_give_up(e);
    return ZK_ESESSION;
}

/* Gives the session up: a new one is taken at once (opened when the
 * replica serves again, closing this one everywhere) and fs/ is told. */
void zk__ens_give_up(struct zk__ens *e)
{
    struct zk_zab_status st;

    if (!e->z)
        return;
    zk_zab_status(e->z, &st);
    if (!st.session_open)
        return;
    zk_log(ZK_LOG_WARN, "ensemble replica %u: session %016llx and its "
           "ephemerals are given up", e->my_id,
           (unsigned long long)st.session);
    zk_zab_session_renew(e->z);
    e->leases_lost++;
    if (e->session_lost)
        e->session_lost(e->applied_arg, st.session);
}

void zk__ens_on_tick(uv_timer_t *t)
{
    struct zk__ens *e = t->data;

    if (e->failed) {
        zk__ens_expire_props(e, -EIO);
        return;
    }
    zk__lease_ticked(&e->lease, ++e->tick_no, zk__ens_mono_ns());
    zk_zab_tick(e->z);
    zk__ens_lease_check(e);
    zk__ens_handshake_sweep(e);
    zk__ens_expire_props(e, 0);
    zk__ens_pump(e);
}

static int enqueue(struct zk__ens *e, uint8_t *payload, size_t len,
                   int is_sync, zk_replica_done_cb cb, void *arg)
{
    if (e->stopping)
        return -ESHUTDOWN;
    if (e->n_props >= ZK_PENDING_MAX)
        return -EAGAIN;
    struct prop *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->payload = payload;
    p->len = len;
    p->is_sync = is_sync;
    p->cb = cb;
    p->arg = arg;
    p->deadline_ms = uv_now(e->loop) + e->prop_wait_ms;
    p->prev = e->tail;
    if (e->tail)
        e->tail->next = p;
    else
        e->head = p;
    e->tail = p;
    e->n_props++;
    if (e->failed)
        p->err = -EIO;            /* answered at the next tick */
    zk__ens_pump(e);
    return 0;
}

int zk__ens_propose(struct zk__ens *e, uint8_t *buf, size_t len,
                    zk_replica_done_cb cb, void *arg)
{
    return enqueue(e, buf, len, 0, cb, arg);
}

/* A read barrier is a no-op transaction (check "/" at any version) through
 * the leader: once it is applied here, so is everything committed before
 * the leader ordered it. */
int zk__ens_sync(struct zk__ens *e, zk_replica_done_cb cb, void *arg)
{
    struct zk_op op = {.type = ZK_OP_CHECK, .version = -1, .path = "/",
                       .path_len = 1};
    struct zk_txn txn = {.nops = 1, .ops = &op};
    uint8_t *buf;
    size_t len;
    int rc = zk__replica_encode(&txn, &buf, &len);

    if (rc)
        return rc;
    rc = enqueue(e, buf, len, 1, cb, arg);
    if (rc)
        free(buf);
    return rc;
}

uint64_t zk__ens_session(const struct zk__ens *e)
{
    struct zk_zab_status st;

    if (!e->z)
        return 0;
    zk_zab_status(e->z, &st);
    return st.session_open ? st.session : 0;
}
