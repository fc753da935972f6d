/*
 * standalone.c — the one-replica ensemble: propose -> commit -> apply with
 * group commit.
 *
 * Proposals arrive on the libuv loop thread already encoded (zk_txn_encode)
 * and wait in a bounded queue. One commit thread takes everything waiting
 * (at most ZK_BATCH_MAX), gives each a zxid, and in ONE store batch
 * appends each to the log and applies it. A one-replica quorum is
 * "persisted locally", so a logged entry is committed at once: the batch is
 * acknowledged once its log records are durable (the write-ahead log's
 * fdatasync, then a lazy commit of the tree). A crash may leave the log
 * ahead of the tree, never behind; start applies what the tree lacks. Answers go back to the loop through a uv_async_t, in zxid
 * order: the `applied` callback for every transaction, then its proposer's
 * done callback.
 *
 * Readers never wait for any of this: they read the store (LMDB MVCC).
 *
 * zxids: epoch << 32 | counter. Every start takes a new epoch (persisted as
 * accepted and current epoch before any write), so a zxid is never reused,
 * and the counter's overflow moves to the next epoch.
 *
 * The public zk_replica_* functions reach it through its ops table
 * (replica.c, replica_int.h); it knows nothing of the ensemble.
 */
#include "replica_int.h"
#include "zk_common.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define COUNTER_MAX 0xffffffffu   /* zxid counter overflow forces an epoch */
#define STANDALONE_ID 1           /* server id of the one replica          */

/* One proposal or read barrier (payload NULL) on its way through. */
struct prop {
    struct prop *next;
    uint8_t *payload;
    size_t len;
    zk_replica_done_cb cb;
    void *arg;
    int err;                      /* set by the commit thread */
    struct zk_apply_result *res;  /* set by the commit thread */
};

struct queue {
    struct prop *head, *tail;
    size_t count;
};

struct standalone {
    struct zk_replica base;       /* first: the ops table (replica_int.h) */
    uv_loop_t *loop;
    struct zk_store *store;
    zk_replica_applied_cb applied;
    void *applied_arg;
    uint64_t session;
    uint64_t epoch;               /* commit thread */
    uint64_t last_zxid;           /* commit thread writes, atomics */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct queue in;              /* waiting for the commit thread (mu) */
    struct queue out;             /* done, waiting for the loop (mu) */
    int stopping;                 /* mu */
    uv_async_t async;
    uint64_t pending;             /* loop thread */
    uint64_t batches, fsyncs;     /* atomics */
};

/* ------------------------------------------------------------------ */
/* small helpers                                                       */
/* ------------------------------------------------------------------ */

static void queue_push(struct queue *q, struct prop *p)
{
    p->next = NULL;
    if (q->tail)
        q->tail->next = p;
    else
        q->head = p;
    q->tail = p;
    q->count++;
}

/* Detaches at most max entries from the front of q. */
static struct prop *queue_take(struct queue *q, size_t max)
{
    struct prop *first = q->head, *last = NULL, *p = q->head;
    size_t n = 0;

    while (p && n < max) {
        last = p;
        p = p->next;
        n++;
    }
    if (!last)
        return NULL;
    q->head = p;
    if (!p)
        q->tail = NULL;
    q->count -= n;
    last->next = NULL;
    return first;
}

static void prop_free(struct prop *p)
{
    zk_apply_result_free(p->res);
    free(p->payload);
    free(p);
}

/* Next zxid; moves to a new epoch when the counter is exhausted. Returns
 * 1 when the epoch changed (the caller persists it in the same batch). */
static int next_zxid(struct standalone *r, uint64_t *zxid)
{
    uint64_t counter = r->last_zxid >> 32 == r->epoch
                           ? (r->last_zxid & COUNTER_MAX) : 0;
    int new_epoch = 0;

    if (counter == COUNTER_MAX) {
        r->epoch++;
        counter = 0;
        new_epoch = 1;
    }
    *zxid = r->epoch << 32 | (counter + 1);
    return new_epoch;
}

/* ------------------------------------------------------------------ */
/* commit thread                                                       */
/* ------------------------------------------------------------------ */

/* Logs and applies one proposal inside batch b. */
static int batch_one(struct standalone *r, struct zk_store_batch *b,
                     struct prop *p)
{
    uint64_t zxid;
    int rc;

    if (next_zxid(r, &zxid)) {
        rc = zk_store_batch_meta_set(b, "accepted_epoch", r->epoch);
        if (rc == 0)
            rc = zk_store_batch_meta_set(b, "current_epoch", r->epoch);
        if (rc)
            return rc;
    }
    rc = zk_store_batch_log(b, zxid, p->payload, p->len);
    if (rc == 0)
        rc = zk_store_batch_apply(b, zxid, p->payload, p->len, &p->res);
    if (rc == 0)
        __atomic_store_n(&r->last_zxid, zxid, __ATOMIC_RELEASE);
    return rc;
}

/* One attempt at committing a list of proposals with one fsync: 0, or the
 * error with nothing of the batch in the store, the replica's zxid/epoch
 * back where they were and the results freed. */
static int batch_try(struct standalone *r, struct prop *list)
{
    uint64_t zxid0 = r->last_zxid, epoch0 = r->epoch;
    struct zk_store_batch *b = NULL;
    int rc = zk_store_batch_begin(r->store, &b);

    for (struct prop *p = list; p && rc == 0; p = p->next)
        if (p->payload)
            rc = batch_one(r, b, p);
    if (rc == 0) {
        /* The log is durable when it returns; the tree may lag behind it
         * after a power cut and is caught up at start (replay_log). */
        rc = zk_store_batch_commit_lazy(b);
        __atomic_add_fetch(&r->fsyncs, 1, __ATOMIC_RELAXED);
    } else if (b) {
        zk_store_batch_abort(b);
    }
    __atomic_add_fetch(&r->batches, 1, __ATOMIC_RELAXED);
    if (rc == 0)
        return 0;
    __atomic_store_n(&r->last_zxid, zxid0, __ATOMIC_RELEASE);
    r->epoch = epoch0;
    for (struct prop *p = list; p; p = p->next) {
        if (!p->payload)
            continue;
        zk_apply_result_free(p->res);
        p->res = NULL;
    }
    return rc;
}

/* Commits a list of proposals with one fsync. On failure every proposal in
 * the list gets the error (nothing of it is in the store). A full map at
 * the commit itself (LMDB needs pages to save its free list, also for a
 * delete) is tried again once after a checkpoint lets the pages freed
 * since the last one go, as a full map inside the batch is
 * (zk_store_batch_apply): otherwise an `rm` on a full map could fail with
 * ENOSPC until the next checkpoint (t_map_full). */
static void commit_batch(struct standalone *r, struct prop *list)
{
    int writes = 0, rc;

    for (struct prop *p = list; p; p = p->next)
        writes += p->payload != NULL;
    if (writes == 0)
        return;                   /* only read barriers */
    rc = batch_try(r, list);
    if (rc == -ENOSPC && zk_store_map_unpin(r->store))
        rc = batch_try(r, list);
    if (rc == 0)
        return;
    zk_log(ZK_LOG_WARN, "commit of %d transactions failed: %s", writes,
           zk_strerror(rc));
    for (struct prop *p = list; p; p = p->next)
        if (p->payload)
            p->err = rc;
}

static void *commit_main(void *arg)
{
    struct standalone *r = arg;

    for (;;) {
        pthread_mutex_lock(&r->mu);
        while (!r->in.head && !r->stopping)
            pthread_cond_wait(&r->cv, &r->mu);
        struct prop *list = queue_take(&r->in, ZK_BATCH_MAX);
        pthread_mutex_unlock(&r->mu);
        if (!list)
            break;                /* stopping and drained */
        commit_batch(r, list);
        pthread_mutex_lock(&r->mu);
        while (list) {
            struct prop *next = list->next;
            queue_push(&r->out, list);
            list = next;
        }
        pthread_mutex_unlock(&r->mu);
        uv_async_send(&r->async);
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* loop side                                                           */
/* ------------------------------------------------------------------ */

/* Answers every finished proposal, in zxid order. */
static void deliver(struct standalone *r)
{
    pthread_mutex_lock(&r->mu);
    struct prop *list = queue_take(&r->out, SIZE_MAX);
    pthread_mutex_unlock(&r->mu);

    while (list) {
        struct prop *p = list;
        list = p->next;
        if (p->err == 0 && p->res && r->applied)
            r->applied(r->applied_arg, p->res);
        r->pending--;
        if (p->cb)
            p->cb(p->arg, p->err, p->res);
        prop_free(p);
    }
}

static void on_async(uv_async_t *h)
{
    deliver(h->data);
}

static int enqueue(struct standalone *r, uint8_t *payload, size_t len,
                   zk_replica_done_cb cb, void *arg)
{
    struct prop *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->payload = payload;
    p->len = len;
    p->cb = cb;
    p->arg = arg;
    pthread_mutex_lock(&r->mu);
    int rc = r->stopping ? -ESHUTDOWN
             : r->in.count >= ZK_PENDING_MAX ? -EAGAIN : 0;
    if (rc == 0) {
        queue_push(&r->in, p);
        pthread_cond_signal(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    if (rc) {
        free(p);
        return rc;
    }
    r->pending++;
    return 0;
}

/* ------------------------------------------------------------------ */
/* ops (replica_int.h)                                                 */
/* ------------------------------------------------------------------ */

_Static_assert(offsetof(struct standalone, base) == 0,
               "the ops cast a struct zk_replica * to its struct standalone *");

static struct standalone *sa_of(struct zk_replica *base)
{
    return (struct standalone *)base;
}

static const struct standalone *sa_of_const(const struct zk_replica *base)
{
    return (const struct standalone *)base;
}

static int sa_propose(struct zk_replica *base, uint8_t *buf, size_t len,
                      zk_replica_done_cb cb, void *arg)
{
    return enqueue(sa_of(base), buf, len, cb, arg);
}

/* Standalone: everything committed was proposed here, and the queue is
 * FIFO, so a barrier behind every earlier proposal suffices. */
static int sa_sync(struct zk_replica *base, zk_replica_done_cb cb, void *arg)
{
    return enqueue(sa_of(base), NULL, 0, cb, arg);
}

static uint64_t sa_session(const struct zk_replica *base)
{
    return sa_of_const(base)->session;
}

/* Its commits do not depend on others: the session cannot be lost. */
static int sa_lease_check(struct zk_replica *base)
{
    (void)base;
    return 0;
}

static void sa_give_up(struct zk_replica *base)
{
    (void)base;
}

static void sa_status(const struct zk_replica *base,
                      struct zk_replica_status *out)
{
    const struct standalone *r = sa_of_const(base);

    memset(out, 0, sizeof(*out));
    out->role = "standalone";
    out->my_id = STANDALONE_ID;
    out->leader_id = STANDALONE_ID;
    out->last_zxid = __atomic_load_n(&r->last_zxid, __ATOMIC_ACQUIRE);
    out->epoch = out->last_zxid >> 32;
    out->pending = r->pending;
    out->batches = __atomic_load_n(&r->batches, __ATOMIC_RELAXED);
    out->fsyncs = __atomic_load_n(&r->fsyncs, __ATOMIC_RELAXED);
    out->commit_zxid = out->last_zxid;
    out->n_members = 1;
    out->members[0] = (struct zk_replica_member){
        .id = STANDALONE_ID, .self = 1, .connected = 1, .state = "self",
        .zxid_known = 1, .zxid = out->last_zxid};
}

static void sa_stop(struct zk_replica *base, int close_session);

static const struct zk__replica_ops sa_ops = {
    .propose = sa_propose,
    .sync = sa_sync,
    .session = sa_session,
    .lease_check = sa_lease_check,
    .give_up = sa_give_up,
    .status = sa_status,
    .stop = sa_stop,
};

/* ------------------------------------------------------------------ */
/* start and stop                                                      */
/* ------------------------------------------------------------------ */

struct old_sessions {
    uint64_t ids[64];
    size_t n;
};

static int collect_session(void *arg, uint64_t session, uint32_t timeout_ms,
                           const char *owner)
{
    struct old_sessions *o = arg;
    (void)timeout_ms;
    zk_log(ZK_LOG_INFO, "closing session 0x%016llx of an earlier run (%s)",
           (unsigned long long)session, owner ? owner : "?");
    o->ids[o->n++] = session;
    return o->n == ZK_ARRAY_LEN(o->ids);   /* a full array: another round */
}

/* Proposes and commits one session transaction synchronously (start-up,
 * before the commit thread runs). */
static int session_txn(struct standalone *r, uint8_t type, uint64_t session,
                       uint32_t timeout_ms, const char *owner)
{
    struct zk_op op = {
        .type = type, .version = -1, .session = session,
        .timeout_ms = timeout_ms, .owner = owner,
        .owner_len = owner ? (uint32_t)strlen(owner) : 0,
    };
    struct zk_txn txn = {.nops = 1, .ops = &op};   /* stamped now */
    struct prop p = {0};
    int rc = zk__replica_encode(&txn, &p.payload, &p.len);

    if (rc)
        return rc;
    commit_batch(r, &p);
    rc = p.err;
    if (rc == 0 && p.res && p.res->err)
        rc = p.res->err;
    zk_apply_result_free(p.res);
    free(p.payload);
    return rc;
}

/* Log entries above the tree's last applied zxid: a batch whose log
 * reached the disk and whose tree did not (a crash between the two, or a
 * power cut after a lazy commit). Every entry a standalone replica logs
 * is committed (a failed batch takes its entries out of the log again),
 * so they are applied now, in order, before anything else. */
struct replay {
    struct zk_store_batch *b;
    uint64_t n;
};

static int replay_one(void *arg, uint64_t zxid, const uint8_t *buf,
                      size_t len)
{
    struct replay *rp = arg;
    struct zk_apply_result *res = NULL;
    int rc = zk_store_batch_apply(rp->b, zxid, buf, len, &res);

    zk_apply_result_free(res);
    rp->n++;
    return rc;
}

static int replay_log(struct standalone *r)
{
    struct zk_store_info info;
    struct replay rp = {0};
    int rc = zk_store_info(r->store, &info);

    if (rc || info.log_last_zxid <= info.last_applied_zxid)
        return rc;
    rc = zk_store_batch_begin(r->store, &rp.b);
    if (rc)
        return rc;
    rc = zk_store_log_scan(r->store, info.last_applied_zxid, replay_one, &rp);
    if (rc) {
        zk_store_batch_abort(rp.b);
        return rc;
    }
    rc = zk_store_batch_commit(rp.b);
    if (rc == 0)
        zk_log(ZK_LOG_INFO, "applied %llu logged transactions the tree did "
               "not have yet", (unsigned long long)rp.n);
    return rc;
}

/* Takes a new epoch, closes earlier runs' sessions, opens this one's. */
static int start_sessions(struct standalone *r, const char *owner,
                          uint32_t timeout_ms)
{
    struct zk_store_info info;
    struct old_sessions old;
    int rc = replay_log(r);

    if (rc == 0)
        rc = zk_store_info(r->store, &info);
    if (rc)
        return rc;
    r->last_zxid = info.last_applied_zxid;
    r->epoch = info.current_epoch > info.accepted_epoch
                   ? info.current_epoch : info.accepted_epoch;
    if ((r->last_zxid >> 32) > r->epoch)
        r->epoch = r->last_zxid >> 32;
    r->epoch++;
    r->session = (uint64_t)STANDALONE_ID << 56 |
                 (r->epoch & 0xffffffffffffull) << 8;
    /* The epoch is durably taken before this run writes anything. */
    struct zk_store_batch *b = NULL;
    rc = zk_store_batch_begin(r->store, &b);
    if (rc == 0 && (rc = zk_store_batch_meta_set(b, "accepted_epoch",
                                                 r->epoch)) == 0 &&
        (rc = zk_store_batch_meta_set(b, "current_epoch", r->epoch)) == 0)
        rc = zk_store_batch_commit(b);
    else if (b)
        zk_store_batch_abort(b);
    if (rc)
        return rc;
    do {
        old.n = 0;
        rc = zk_store_sessions(r->store, collect_session, &old);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < old.n && rc >= 0; i++)
            rc = session_txn(r, ZK_OP_SESSION_CLOSE, old.ids[i], 0, NULL);
        if (rc < 0)
            return rc;
    } while (old.n == ZK_ARRAY_LEN(old.ids));
    return session_txn(r, ZK_OP_SESSION_OPEN, r->session, timeout_ms, owner);
}

int zk_replica_start(const struct zk_replica_opts *opts,
                     struct zk_replica **out)
{
    struct standalone *r = calloc(1, sizeof(*r));
    int rc;

    if (!r)
        return -ENOMEM;
    r->base.ops = &sa_ops;
    r->base.store = opts->store;
    r->loop = opts->loop;
    r->store = opts->store;
    r->applied = opts->applied;
    r->applied_arg = opts->applied_arg;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    rc = start_sessions(r, opts->owner, opts->session_timeout_ms);
    if (rc)
        goto fail;
    rc = uv_async_init(r->loop, &r->async, on_async);
    if (rc)
        goto fail;
    r->async.data = r;
    rc = -pthread_create(&r->thread, NULL, commit_main, r);
    if (rc) {
        uv_close((uv_handle_t *)&r->async, NULL);
        goto fail;
    }
    r->thread_started = 1;
    zk_log(ZK_LOG_INFO, "standalone replica: epoch %llu, zxid 0x%llx, "
           "session 0x%016llx", (unsigned long long)r->epoch,
           (unsigned long long)r->last_zxid, (unsigned long long)r->session);
    *out = &r->base;
    return 0;
fail:
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
    return rc;
}

static void on_async_closed(uv_handle_t *h)
{
    free(h->data);
}

static void sa_stop(struct zk_replica *base, int close_session)
{
    struct standalone *r = sa_of(base);

    if (close_session) {
        struct zk_op op = {.type = ZK_OP_SESSION_CLOSE, .version = -1,
                           .session = r->session};
        struct zk_txn txn = {.nops = 1, .ops = &op};
        int rc = zk_replica_propose(&r->base, &txn, NULL, NULL);
        if (rc)
            zk_log(ZK_LOG_WARN, "could not close session: %s",
                   zk_strerror(rc));
    }
    pthread_mutex_lock(&r->mu);
    r->stopping = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    deliver(r);                   /* the commit thread drained the queue */
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    /* r is freed once the loop has closed the async handle. */
    uv_close((uv_handle_t *)&r->async, on_async_closed);
}
