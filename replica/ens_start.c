/*
 * ens_start.c — starting and stopping an ensemble replica: the
 * configuration copied and resolved, the core restored from the store
 * (hard state, applied zxid, sessions, logged-but-unapplied entries), a
 * new incarnation persisted, the libuv handles and the worker thread
 * started; and the stop that answers what waits and closes every handle.
 */
#include "ens_int.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* The core's trace is debug output, except the lines an operator must
 * see: an empty or restored data directory in an ensemble with history
 * (the replica abstains until it has synced, zab_elect.c), and its end. */
static void trace_fn(void *arg, uint32_t id, uint64_t tick, const char *line)
{
    (void)arg;
    int loud = !strncmp(line, "data directory is empty", 23) ||
               !strncmp(line, "store was restored", 18) ||
               !strncmp(line, "every voter's store", 19) ||
               !strncmp(line, "synced from a", 13);
    zk_log(loud ? ZK_LOG_WARN : ZK_LOG_DEBUG, "zab %u t%llu: %s", id,
           (unsigned long long)tick, line);
}

/* Called from every handle's close callback. */
void zk__ens_handle_closed(struct zk__ens *e)
{
    if (--e->n_handles > 0 || !e->stopping)
        return;
    memset(e->secret, 0, sizeof(e->secret));
    __asm__ __volatile__("" : : "r"(e->secret) : "memory");
    free(e);
}

static void on_handle_closed(uv_handle_t *h)
{
    zk__ens_handle_closed(h->data);
}

/* host:port -> address (IP literals directly, names by getaddrinfo). */
static int resolve(const struct zk_config_server *s,
                   struct sockaddr_storage *out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char port[8];

    memset(out, 0, sizeof(*out));
    if (uv_ip4_addr(s->host, s->port, (struct sockaddr_in *)out) == 0 ||
        uv_ip6_addr(s->host, s->port, (struct sockaddr_in6 *)out) == 0)
        return 0;
    snprintf(port, sizeof(port), "%u", s->port);
    if (getaddrinfo(s->host, port, &hints, &ai) != 0 || !ai) {
        zk_log(ZK_LOG_ERROR, "ensemble: cannot resolve server.%u host %s",
               s->id, s->host);
        return -EINVAL;
    }
    memcpy(out, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return 0;
}

/* The store's sessions as the core's table: the newest of each member. */
struct session_table {
    const struct zk__ens *e;
    uint64_t *sessions;           /* ZK_ZAB_MEMBERS_MAX */
};

static int collect_session(void *arg, uint64_t session, uint32_t timeout_ms,
                           const char *owner)
{
    struct session_table *t = arg;
    int idx = zk__ens_member_index(t->e, ZK_ZAB_SESSION_OWNER(session));
    (void)timeout_ms;
    (void)owner;
    if (idx >= 0 && session > t->sessions[idx])
        t->sessions[idx] = session;
    return 0;
}

struct restore_buf {
    struct zk_zab_entry *v;
    uint8_t **bufs;
    size_t n, cap;
    int err;
};

static int collect_entry(void *arg, uint64_t zxid, const uint8_t *buf,
                         size_t len)
{
    struct restore_buf *rb = arg;

    if (rb->n == rb->cap) {
        size_t cap = rb->cap ? rb->cap * 2 : 64;
        void *v = realloc(rb->v, cap * sizeof(*rb->v));
        if (v)
            rb->v = v;
        void *b = v ? realloc(rb->bufs, cap * sizeof(*rb->bufs)) : NULL;
        if (!b)
            return rb->err = -ENOMEM;
        rb->bufs = b;
        rb->cap = cap;
    }
    rb->bufs[rb->n] = malloc(len ? len : 1);
    if (!rb->bufs[rb->n])
        return rb->err = -ENOMEM;
    memcpy(rb->bufs[rb->n], buf, len);
    rb->err = zk__ens_env_decode(zxid, rb->bufs[rb->n], len,
                                 &rb->v[rb->n]);
    rb->n++;
    return rb->err;
}

static void restore_buf_free(struct restore_buf *rb)
{
    for (size_t i = 0; i < rb->n; i++)
        free(rb->bufs[i]);
    free(rb->bufs);
    free(rb->v);
}

/* Persists a new incarnation (it must grow at every start). */
static int bump_incarnation(struct zk__ens *e, uint32_t *inc)
{
    uint64_t v = 0;
    struct zk_store_batch *b = NULL;
    int rc = zk_store_meta_get(e->store, "incarnation", &v);

    if (rc && rc != -ENOENT)
        return rc;
    rc = zk_store_batch_begin(e->store, &b);
    if (rc == 0 && (rc = zk_store_batch_meta_set(b, "incarnation", v + 1)))
        zk_store_batch_abort(b);
    else if (rc == 0)
        rc = zk_store_batch_commit(b);
    if (rc == 0)
        *inc = (uint32_t)(v + 1);
    return rc;
}

/* The store's mark that it was put back from a backup or a copy, and
 * may have forgotten promises made after it (zab_elect.c, "restored
 * stores"): `zkfs snapshot restore` sets "restored"; so does this start
 * when the data file is not the one this store last ran in (its
 * "file_id", zk_store_file_id) and the store holds epochs (an empty one
 * is the empty-store gate's). st_hard_state (ens_driver.c) clears it in
 * the batch of the first hard state that moves the epochs, so while it
 * is set the store's epochs are the restored ones. */
static int restored_mark(struct zk__ens *e, const struct zk_store_info *in,
                         int *restored)
{
    uint64_t id = 0, was = 0, mark = 0;
    struct zk_store_batch *b = NULL;
    int rc = zk_store_file_id(e->store, &id);
    int had = rc == 0 && zk_store_meta_get(e->store, "file_id", &was) == 0;
    int moved = had && was != id &&
                (in->accepted_epoch || in->current_epoch);

    if (rc == 0 && (!had || was != id)) {
        rc = zk_store_batch_begin(e->store, &b);
        if (rc == 0)
            rc = zk_store_batch_meta_set(b, "file_id", id);
        if (rc == 0 && moved)
            rc = zk_store_batch_meta_set(b, "restored", 1);
        if (rc == 0)
            rc = zk_store_batch_commit(b);
        else if (b)
            zk_store_batch_abort(b);
    }
    if (rc == 0 && moved)
        zk_log(ZK_LOG_WARN, "ensemble: the data file is not the one this "
               "store last ran in (a copy put back?): treated as restored");
    if (rc == 0 && zk_store_meta_get(e->store, "restored", &mark) == 0 &&
        mark) {
        e->restored_mark = *restored = 1;
        e->restored_acc = in->accepted_epoch;
        e->restored_cur = in->current_epoch;
    }
    return rc;
}

/* Builds a core and its driver from e->zc and what the store holds (a
 * new incarnation persisted first: a store that cannot be written fails
 * here). */
static int driver_build(struct zk__ens *e, struct zk_driver **out)
{
    struct zk_zab_config zc = e->zc;
    struct zk_zab_restore st = {0};
    struct zk_store_info info;
    struct restore_buf rb = {0};
    struct session_table tab = {e, st.sessions};
    struct zk_driver_config dc = {0};
    int rc = zk_store_info(e->store, &info);

    if (rc == 0 && getrandom(&zc.seed, sizeof(zc.seed), 0) !=
                       (ssize_t)sizeof(zc.seed))
        rc = -errno;
    if (rc == 0)
        rc = bump_incarnation(e, &zc.incarnation);
    if (rc == 0)
        rc = restored_mark(e, &info, &st.restored);
    if (rc == 0)
        rc = zk_store_sessions(e->store, collect_session, &tab);
    if (rc == 0) {
        rc = zk_store_log_scan(e->store, info.last_applied_zxid,
                               collect_entry, &rb);
        rc = rb.err ? rb.err : rc;
    }
    if (rc == 0) {
        st.hard.accepted_epoch = info.accepted_epoch;
        st.hard.current_epoch = info.current_epoch;
        st.applied_zxid = info.last_applied_zxid;
        st.entries = rb.v;
        st.n_entries = rb.n;
        dc.zab = &zc;
        dc.restore = &st;
        dc.tick_ms = e->tick_ms;
        dc.session_timeout_ms = e->session_timeout_ms;
        dc.prop_wait_ms = e->prop_wait_ms;
        zk__ens_driver_wire(e, &dc);
        rc = zk_driver_create(&dc, out);
    }
    restore_buf_free(&rb);
    return rc;
}

/* Builds the core from cfg and what the store holds. */
static int core_create(struct zk__ens *e, const struct zk_config *cfg)
{
    struct zk_zab_config *zc = &e->zc;

    zc->id = cfg->my_id;
    zc->n_members = cfg->n_servers;
    for (uint32_t i = 0; i < cfg->n_servers; i++) {
        zc->members[i].id = cfg->servers[i].id;
        zc->members[i].observer = cfg->servers[i].observer;
    }
    zc->init_limit_ticks = cfg->init_limit_ticks;
    zc->sync_limit_ticks = cfg->sync_limit_ticks;
    zc->session_timeout_ticks = (cfg->session_timeout_ms + cfg->tick_time_ms
                                 - 1) / cfg->tick_time_ms;
    zc->trace = trace_fn;
    int rc = driver_build(e, &e->d);
    if (rc == 0)
        zk__ens_elect_watch(e);     /* the first election starts now */
    return rc;
}

/* Drops the snapshots on their way in and cancels those on their way
 * out: the core that asked for them or serves them is going. */
static void snapshots_drop(struct zk__ens *e)
{
    zk__snap_rx_free(e->job_snap);
    zk__snap_rx_free(e->snap_pending);
    e->job_snap = e->snap_pending = NULL;
    for (struct snap_tx *t = e->stxs; t; t = t->next)
        zk__ens_stx_cancel(t);
}

/* After a failed store batch (a full disk, an I/O error) the driver stops
 * for good (driver.c, fail_stop). After ENS_RECOVER_MIN_MS, doubling up to
 * ENS_RECOVER_MAX_MS while failures follow each other (a new core that
 * fails again within ENS_RECOVER_CALM_MS counts as one), this tries what a
 * restart of the process would do, without taking the mount down: a new
 * core restored from the store (whose failed batch left nothing: it
 * commits whole or not at all), every connection closed so the peers see
 * a restarted server, the session given up first (the mount hides its
 * ephemerals, as when the lease runs out). If the store still cannot be
 * written, the new incarnation's batch fails and the failed driver stays
 * for the next try. */
void zk__ens_recover_tick(struct zk__ens *e)
{
    struct zk_driver_stats ds;
    struct zk_driver *nd = NULL;
    uint64_t now = uv_now(e->loop);
    int busy, rc;

    zk_driver_stats(e->d, &ds);
    if (e->stopping)
        return;
    if (!ds.failed) {
        if (e->recover_gap_ms && now - e->recovered_ms > ENS_RECOVER_CALM_MS)
            e->recover_gap_ms = 0;          /* calm again: start over */
        return;
    }
    if (e->recover_at_ms == 0) {            /* it just failed */
        e->recover_gap_ms = e->recover_gap_ms == 0 ? ENS_RECOVER_MIN_MS :
                            e->recover_gap_ms * 2 > ENS_RECOVER_MAX_MS ?
                            ENS_RECOVER_MAX_MS : e->recover_gap_ms * 2;
        e->recover_at_ms = now + e->recover_gap_ms;
        zk_log(ZK_LOG_WARN, "ensemble replica %u: a new core will try the "
               "store in %u ms", e->my_id, e->recover_gap_ms);
        return;
    }
    pthread_mutex_lock(&e->mu);
    busy = e->job || e->job_done;
    pthread_mutex_unlock(&e->mu);
    if (now < e->recover_at_ms || busy)
        return;
    rc = driver_build(e, &nd);
    if (rc) {
        e->recover_gap_ms = e->recover_gap_ms * 2 > ENS_RECOVER_MAX_MS
                                ? ENS_RECOVER_MAX_MS : e->recover_gap_ms * 2;
        e->recover_at_ms = now + e->recover_gap_ms;
        zk_log(ZK_LOG_WARN, "ensemble replica %u: the store still cannot be "
               "written (%s); trying again in %u ms", e->my_id,
               zk_strerror(rc), e->recover_gap_ms);
        return;
    }
    zk_driver_give_up(e->d);
    snapshots_drop(e);
    for (struct conn *c = e->conns; c; c = c->next)
        zk__ens_conn_close(c, "this server's core restarts");
    /* Counters go on from where the failed driver left them. */
    e->carry_batches += ds.batches;
    e->carry_fsyncs += ds.fsyncs;
    e->carry_here += ds.batches_here;
    zk_driver_fail_all(e->d, -EIO);     /* none should wait still */
    zk_driver_destroy(e->d);
    e->d = nd;
    e->recover_at_ms = 0;
    e->recovered_ms = now;
    e->recoveries++;
    zk_driver_stats(e->d, &ds);
    zk_log(ZK_LOG_WARN, "ensemble replica %u: a new core restored from "
           "the store takes part again from applied 0x%llx (as after a "
           "restart)", e->my_id, (unsigned long long)ds.applied_zxid);
    zk__ens_elect_watch(e);
}

/* Listener, tick timer, async, flush, peers' timers; first dials. */
static int handles_start(struct zk__ens *e)
{
    int rc = uv_tcp_init(e->loop, &e->listener);

    if (rc)
        return rc;
    e->n_handles++;
    e->listener.data = e;
    rc = uv_tcp_bind(&e->listener, (const struct sockaddr *)&e->listen_addr,
                     0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&e->listener, SOMAXCONN, zk__ens_on_connection);
    if (rc)
        return rc;
    uv_timer_init(e->loop, &e->tick);
    e->n_handles++;
    e->tick.data = e;
    rc = uv_async_init(e->loop, &e->async, zk__ens_on_async);
    if (rc)
        return rc;
    e->n_handles++;
    e->async.data = e;
    rc = uv_prepare_init(e->loop, &e->flush);
    if (rc)
        return rc;
    e->n_handles++;
    e->flush.data = e;
    for (uint32_t i = 0; i < e->n_peers; i++) {
        struct peer *p = &e->peers[i];
        uv_timer_init(e->loop, &p->timer);
        e->n_handles++;
        p->timer.data = p;
        if (p->dial)
            uv_timer_start(&p->timer, zk__ens_on_reconnect_timer, 0, 0);
    }
    return uv_timer_start(&e->tick, zk__ens_on_tick, e->tick_ms, e->tick_ms);
}

/* ZKFS_TEST_FSYNC_DELAY_US=N (tests and benches only, read once at
 * start): every store batch of this replica (each durable commit, and so
 * each fsync) takes N µs longer, as on a slow disk; t_ens_slowdisk uses it
 * to check that a slow replica causes no election. 0 or unset: off. */
static void test_knobs(struct zk__ens *e)
{
    uint64_t us = 0;

    if (zk_env_u64("ZKFS_TEST_FSYNC_DELAY_US", ENS_TEST_DELAY_MAX_US,
                   &us) != 1)
        return;
    e->test_commit_delay_us = us;
    if (us)
        zk_log(ZK_LOG_WARN, "ensemble: test knob ZKFS_TEST_FSYNC_DELAY_US: "
               "every store commit is delayed by %" PRIu64 " µs", us);
}

/* Copies cfg into e and resolves every server's address. */
static int ens_configure(struct zk__ens *e, const struct zk_config *cfg)
{
    const struct zk_config_server *me = zk_config_server(cfg, cfg->my_id);
    int rc;

    if (!me || cfg->tick_time_ms == 0 || cfg->n_servers >
        ZK_ZAB_MEMBERS_MAX || cfg->secret_len > sizeof(e->secret))
        return -EINVAL;
    e->my_id = cfg->my_id;
    e->observer = me->observer;
    e->tick_ms = cfg->tick_time_ms;
    e->sync_limit = cfg->sync_limit_ticks;
    e->session_timeout_ms = cfg->session_timeout_ms;
    /* Long enough for a failover (syncLimit to notice, an election, a
     * sync), short enough that a replica without a quorum says so soon:
     * 3 s with the defaults. */
    e->prop_wait_ms = (uint64_t)3 * cfg->sync_limit_ticks *
                      cfg->tick_time_ms;
    if (e->prop_wait_ms < ENS_PROP_WAIT_MIN_MS)
        e->prop_wait_ms = ENS_PROP_WAIT_MIN_MS;
    memcpy(e->secret, cfg->secret, cfg->secret_len);
    e->secret_len = cfg->secret_len;
    test_knobs(e);
    const char *tmp = getenv("TMPDIR");
    snprintf(e->snap_dir, sizeof(e->snap_dir), "%s",
             cfg->data_dir[0] ? cfg->data_dir : tmp && *tmp ? tmp : "/tmp");
    if ((rc = resolve(me, &e->listen_addr)))
        return rc;
    for (uint32_t i = 0; i < cfg->n_servers; i++) {
        const struct zk_config_server *s = &cfg->servers[i];
        e->member_ids[e->n_members++] = s->id;
        if (s->id == cfg->my_id)
            continue;
        struct peer *p = &e->peers[e->n_peers++];
        p->id = s->id;
        p->e = e;
        p->dial = s->id < cfg->my_id;
        p->backoff_ms = ENS_BACKOFF_MIN_MS;
        if ((rc = resolve(s, &p->addr)))
            return rc;
    }
    return 0;
}

/* Closes every handle; e is freed by the last close callback. */
static void handles_close(struct zk__ens *e)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&e->listener,
                         (uv_handle_t *)&e->tick, (uv_handle_t *)&e->async,
                         (uv_handle_t *)&e->flush};

    for (size_t i = 0; i < ZK_ARRAY_LEN(hs); i++)
        if (hs[i]->loop && !uv_is_closing(hs[i])) {
            hs[i]->data = e;
            uv_close(hs[i], on_handle_closed);
        }
    for (uint32_t i = 0; i < e->n_peers; i++) {
        uv_handle_t *h = (uv_handle_t *)&e->peers[i].timer;
        if (h->loop && !uv_is_closing(h)) {
            h->data = e;
            uv_close(h, on_handle_closed);
        }
    }
    for (struct conn *c = e->conns; c; c = c->next)
        zk__ens_conn_close(c, "stopping");
}

static void ens_free_now(struct zk__ens *e)
{
    zk_driver_destroy(e->d);
    e->d = NULL;
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    e->stopping = 1;
    if (e->n_handles == 0) {
        e->n_handles = 1;
        zk__ens_handle_closed(e);
    } else {
        handles_close(e);
    }
}

static void ens_stop(struct zk_replica *base, int close_session);

/* ---- the ops table (replica_int.h): base is e's first member ---------- */

static int ens_propose(struct zk_replica *base, uint8_t *buf, size_t len,
                       zk_replica_done_cb cb, void *arg)
{
    return zk__ens_propose((struct zk__ens *)base, buf, len, cb, arg);
}

static int ens_sync(struct zk_replica *base, zk_replica_done_cb cb,
                    void *arg)
{
    return zk__ens_sync((struct zk__ens *)base, cb, arg);
}

static uint64_t ens_session(const struct zk_replica *base)
{
    return zk__ens_session((const struct zk__ens *)base);
}

static int ens_lease_check(struct zk_replica *base)
{
    return zk__ens_lease_check((struct zk__ens *)base);
}

static void ens_give_up(struct zk_replica *base)
{
    zk__ens_give_up((struct zk__ens *)base);
}

static void ens_status(const struct zk_replica *base,
                       struct zk_replica_status *out)
{
    zk__ens_status((const struct zk__ens *)base, out);
}

_Static_assert(offsetof(struct zk__ens, base) == 0,
               "the ops cast a struct zk_replica * to its struct zk__ens *");

static const struct zk__replica_ops ens_ops = {
    .propose = ens_propose,
    .sync = ens_sync,
    .session = ens_session,
    .lease_check = ens_lease_check,
    .give_up = ens_give_up,
    .status = ens_status,
    .stop = ens_stop,
};

int zk_replica_start_ensemble(const struct zk_replica_opts *opts,
                              const struct zk_config *cfg,
                              struct zk_replica **out)
{
    struct zk__ens *e = calloc(1, sizeof(*e));
    int rc;

    if (!e)
        return -ENOMEM;
    e->base.ops = &ens_ops;
    e->base.store = opts->store;
    /* A write to a peer that just closed must be an EPIPE error on that
     * connection, not the death of the process (fs/ does the same). */
    signal(SIGPIPE, SIG_IGN);
    e->loop = opts->loop;
    e->store = opts->store;
    e->applied = opts->applied;
    e->reset = opts->reset;
    e->session_lost = opts->session_lost;
    e->busy = opts->busy;
    e->applied_arg = opts->applied_arg;
    /* Above ENS_HERE_SLOW_US: the loop writes batches only once a few
     * were seen to be fast (ens_driver.c, st_write_here). */
    e->write_avg_ns = 2u * ENS_HERE_SLOW_US * 1000u;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    rc = ens_configure(e, cfg);
    /* An observer's log promises nothing (ens_driver.c, st_commit). */
    if (rc == 0 && e->observer)
        zk_store_log_sync(e->store, 0);
    if (rc == 0)
        rc = core_create(e, cfg);
    if (rc == 0)
        rc = handles_start(e);
    if (rc == 0)
        rc = -pthread_create(&e->thread, NULL, zk__ens_worker_main, e);
    if (rc)
        goto fail;
    e->thread_started = 1;
    struct zk_driver_stats ds;
    zk_driver_stats(e->d, &ds);
    zk_log(ZK_LOG_INFO, "ensemble replica %u: %u servers, tick %u ms, "
           "applied 0x%llx", e->my_id, cfg->n_servers, e->tick_ms,
           (unsigned long long)ds.applied_zxid);
    *out = &e->base;
    return 0;
fail:
    zk_log(ZK_LOG_ERROR, "ensemble replica %u: cannot start: %s",
           cfg->my_id, zk_strerror(rc));
    ens_free_now(e);
    return rc;
}

/* Stops the runtime: answers what waits with -ESHUTDOWN, joins the
 * persistence thread, destroys the core and starts closing every handle;
 * e is freed by the loop once the last handle has closed (run the loop
 * until it has no active handles). */
static void ens_stop(struct zk_replica *base, int close_session)
{
    struct zk__ens *e = (struct zk__ens *)base;

    if (close_session)
        zk_log(ZK_LOG_INFO, "ensemble replica %u: leaving; the leader "
               "expires its session after the session timeout", e->my_id);
    e->stopping = 1;
    pthread_mutex_lock(&e->mu);
    e->worker_stop = 1;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    zk_driver_stopping(e->d);
    snapshots_drop(e);
    while (e->stxs) {
        struct snap_tx *t = e->stxs;
        e->stxs = t->next;
        zk__ens_stx_free(t);
    }
    zk_driver_fail_all(e->d, -ESHUTDOWN);
    ens_free_now(e);
}
