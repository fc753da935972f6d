/*
 * ens_driver.c — the driver (driver.c) wired into the daemon: its store
 * interface on LMDB (zk_store.h), run by a worker thread one Ready at a
 * time and reported back to the loop with a uv_async; its transport
 * (ens_net.c's zk__ens_send_msg); CLOCK_MONOTONIC as its clock; zk_log as
 * its log; the tick timer; and the ensemble's side of the public
 * zk_replica_* functions.
 *
 * The store mapping: log entries are kept in an envelope (type, origin,
 * request id, payload) so that a restart can hand the core its
 * logged-but-unapplied entries; WRITE payloads are zk_txn encodings
 * applied as such; the core's SESSION_OPEN and SESSION_CLOSE entries
 * become zk_txn session ops stamped with the time of the last WRITE, so
 * that every replica applies the same bytes.
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
    uint8_t *b = malloc(ZK_ENV_HDR + (size_t)en->len);
    if (!b)
        return NULL;
    b[0] = ZK_ENV_MAGIC;
    b[1] = ZK_ENV_VERSION;
    zk_put_be32(b + 2, en->type);
    zk_put_be32(b + 6, en->origin);
    zk_put_be64(b + 10, en->req_id);
    if (en->len)
        memcpy(b + ZK_ENV_HDR, en->data, en->len);
    *len_out = ZK_ENV_HDR + (size_t)en->len;
    return b;
}

int zk__ens_env_decode(uint64_t zxid, const uint8_t *buf, size_t len,
                       struct zk_zab_entry *en)
{
    if (len < ZK_ENV_HDR || buf[0] != ZK_ENV_MAGIC ||
        buf[1] != ZK_ENV_VERSION || len - ZK_ENV_HDR > ZK_ZAB_PAYLOAD_MAX)
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
    en->len = (uint32_t)(len - ZK_ENV_HDR);
    en->data = buf + ZK_ENV_HDR;
    return 0;
}

/* ------------------------------------------------------------------ */
/* the store interface (inside zk_driver_write: on the worker thread, or
 * an observer's on the loop thread, st_write_here)                    */
/* ------------------------------------------------------------------ */

static int st_begin(void *arg, void **batch)
{
    struct zk__ens *e = arg;
    struct zk_store_batch *b = NULL;
    int rc = zk_store_batch_begin(e->store, &b);

    if (rc == 0) {
        e->w_time0 = e->w_time_ms;
        e->w_logged = 0;
        *batch = b;
    }
    return rc;
}

static int st_append(void *arg, void *batch, const struct zk_zab_entry *en)
{
    size_t len;
    uint8_t *buf = zk__ens_env_encode(en, &len);
    int rc = buf ? zk_store_batch_log(batch, en->zxid, buf, len) : -ENOMEM;

    (void)arg;
    free(buf);
    return rc;
}

static int st_truncate(void *arg, void *batch, uint64_t zxid)
{
    (void)arg;
    return zk_store_batch_log_truncate(batch, zxid);
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
 * this Ready (job_snap), inside the batch. */
static int st_install(void *arg, void *batch, const struct zk_zab_op *op,
                      uint64_t sessions[ZK_ZAB_MEMBERS_MAX])
{
    struct zk__ens *e = arg;
    struct zk__snap_rx *sn = e->job_snap;
    struct zk_store_install *in = NULL;
    uint64_t zxid = 0;

    e->w_logged = 1;
    if (!sn || sn->zxid != op->zxid) {
        zk_log(ZK_LOG_ERROR, "ensemble: INSTALL at 0x%llx without its "
               "snapshot", (unsigned long long)op->zxid);
        return ZK_ECORRUPT;
    }
    int rc = zk_store_batch_install_begin(batch, &in);
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
           (unsigned long long)zxid, op->from);
    memcpy(sessions, sn->sessions, sizeof(sn->sessions));
    return 0;
}

static int st_hard_state(void *arg, void *batch,
                         const struct zk_zab_hard_state *hs)
{
    struct zk__ens *e = arg;
    int rc = zk_store_batch_meta_set(batch, "accepted_epoch",
                                     hs->accepted_epoch);

    e->w_logged = 1;
    if (rc == 0)
        rc = zk_store_batch_meta_set(batch, "current_epoch",
                                     hs->current_epoch);
    if (rc == 0 && hs->incarnation)    /* learnt after a wiped disk */
        rc = zk_store_batch_meta_set(batch, "incarnation", hs->incarnation);
    /* A restored store that accepts an epoch, or is synced as a member
     * again, remembers its promises from now on (ens_start.c,
     * restored_mark): the mark goes in this batch. */
    if (rc == 0 && e->restored_mark && (hs->member_again ||
        hs->accepted_epoch != e->restored_acc ||
        hs->current_epoch != e->restored_cur)) {
        rc = zk_store_batch_meta_set(batch, "restored", 0);
        if (rc == 0)
            e->restored_mark = 0;
    }
    return rc;
}

/* A core session entry as a zk_txn: an OPEN (closing close_prev first)
 * or a CLOSE (a no-op in the store if it is not open). Deterministic:
 * the same time (the last WRITE's) on every replica. */
static int apply_session(struct zk__ens *e, struct zk_store_batch *b,
                         const struct zk_zab_entry *en, uint64_t close_prev,
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
    memset(ops, 0, sizeof(ops));
    if (en->type == ZK_ZAB_ENTRY_SESSION_OPEN && close_prev)
        ops[n++] = (struct zk_op){.type = ZK_OP_SESSION_CLOSE,
                                  .version = -1, .session = close_prev};
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
    return rc;
}

static int st_apply(void *arg, void *batch, const struct zk_zab_entry *en,
                    uint64_t close_prev, struct zk_apply_result **res)
{
    struct zk__ens *e = arg;

    if (en->type != ZK_ZAB_ENTRY_WRITE)
        return apply_session(e, batch, en, close_prev, res);
    if (en->len >= ZK_TXN_HDR_SIZE + 8 &&
        zk_txn_verify(en->data, en->len) == 0)
        e->w_time_ms = zk_get_be64(en->data + ZK_TXN_HDR_SIZE);
    return zk_store_batch_apply(batch, en->zxid, en->data, en->len, res);
}

/* Log entries and truncations are durable when either commit returns:
 * the store writes them to its write-ahead log with one fdatasync before
 * anything else. What decides between the two is the tree: a batch that
 * only logs and applies needs no sync of LMDB's meta page (every entry it
 * applies is in the durable log, and a restart that finds the apply
 * undone by a power cut applies it again once it learns it committed).
 * The hard state (epochs) and an install are kept only in LMDB, so a
 * batch holding them (w_logged) is committed whole; the store would sync
 * it whole anyway. So a write's path on each replica is one log fdatasync
 * and one lazy LMDB commit (the store skips LMDB when the batch only
 * logs).
 *
 * An observer's every batch is lazy: it never votes, acknowledges no
 * proposal and counts for no quorum, so nothing anyone relies on rests on
 * its disk. A power cut may take it back to an older, consistent state
 * (lazy batches are undone whole, never torn), from which it syncs again
 * like any learner that was away; what it forwarded and saw committed is
 * on a quorum of voters. One LMDB sync per batch instead of two: ten
 * observers on one disk made every voter wait (docs/performance.md). Its
 * log is written without sync (zk_store_log_sync, set in ens_start.c), so
 * a batch that logs and applies costs one flush, and one that only logs
 * none. A power cut may then also take log records at or below what it
 * applied; the store opens with the shorter log, and the observer syncs
 * from the leader what it lost, like any learner that was away. */
static int st_commit(void *arg, void *batch)
{
    struct zk__ens *e = arg;

    if (e->test_commit_delay_us) {        /* a slow disk, for tests */
        struct timespec ts = {
            .tv_sec = (time_t)(e->test_commit_delay_us / 1000000u),
            .tv_nsec = (long)(e->test_commit_delay_us % 1000000u) * 1000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    int rc = e->w_logged && !e->observer ? zk_store_batch_commit(batch)
                                         : zk_store_batch_commit_lazy(batch);

    if (rc)
        e->w_time_ms = e->w_time0;
    return rc;
}

static void st_abort(void *arg, void *batch)
{
    struct zk__ens *e = arg;

    zk_store_batch_abort(batch);
    e->w_time_ms = e->w_time0;
}

static void st_result_free(void *arg, struct zk_apply_result *res)
{
    (void)arg;
    zk_apply_result_free(res);
}

/* Loop: the outstanding Ready goes to the worker. */
static void st_schedule(void *arg)
{
    struct zk__ens *e = arg;

    pthread_mutex_lock(&e->mu);
    e->job = 1;
    pthread_mutex_unlock(&e->mu);
    /* After the unlock, so that the woken worker does not block on the
     * mutex at once (fs/echo.c does the same). */
    pthread_cond_signal(&e->cv);
}

/* Writes the outstanding Ready (worker, or the loop in st_write_here)
 * and folds the time it took into the running average that
 * st_write_here consults (1/8 weight: a single slow flush does not
 * move a voter's batches to the worker, a slow disk does; a batch
 * counts as at most ENS_WRITE_AVG_CAP_US, so that after a long one, a
 * snapshot's install, a few fast ones bring the loop back). */
static int timed_write(struct zk__ens *e)
{
    uint64_t t0 = uv_hrtime();
    int rc = zk_driver_write(e->d);
    uint64_t dt = uv_hrtime() - t0;
    uint64_t avg = __atomic_load_n(&e->write_avg_ns, __ATOMIC_RELAXED);

    if (dt > ENS_WRITE_AVG_CAP_US * 1000u)    /* an install, a segment */
        dt = ENS_WRITE_AVG_CAP_US * 1000u;

    avg = avg - avg / 8 + dt / 8;
    __atomic_store_n(&e->write_avg_ns, avg, __ATOMIC_RELAXED);
    return rc;
}

/* Loop: a batch written here (driver.h, write_here) instead of by the
 * worker, whose hand-off and report back are two thread switches — on
 * this kind of machine (idle vCPUs halt) each a wake-up of some 40 µs,
 * the larger part of an observer's CPU and up to a fifth of a
 * replicated write's latency (docs/performance.md, "Followers write
 * their log on the loop"). Which batches:
 *  - an observer's small ones: lazy (st_commit: no flush, nobody waits
 *    for its disk), a log append and an apply of a few tens of µs;
 *  - a voter's with no message that would leave while the worker writes
 *    (sz->early: a leader's batches go with PROPOSE or COMMIT, and its
 *    own flush overlaps the followers'), that is a follower's log append
 *    with its ACK, or an apply: the ACK leaves right after the flush,
 *    without waking anyone; but only while nothing else waits for the
 *    loop (busy: requests from the kernel queued, a reply waiting for
 *    the echo thread — 8 creators in one directory wait for replays that
 *    a loop blocked in a flush holds up).
 * Both only while batches take less than ENS_HERE_SLOW_US to write on
 * average (timed_write; it starts above that, so the loop writes only
 * once a few batches were seen to be fast): on a slow or shared disk,
 * or with ZKFS_TEST_FSYNC_DELAY_US, the mount's requests would wait for
 * every flush, and the worker lets the loop go on meanwhile. A disk that
 * turns slow holds the loop for one batch. */
static int st_write_here(void *arg, const struct zk_driver_batch_size *sz,
                         int *err)
{
    struct zk__ens *e = arg;

    /* Not a long batch (a learner catching up after a pause or a
     * partition: the mount's requests would wait for all of it), nor one
     * that moves the log to a new segment (4 MiB of zeros and three
     * flushes), nor any while a lazy commit syncs LMDB's pages (the
     * checkpoints off: store/ckpt.c). */
    if ((!e->observer &&
         (sz->early || (e->busy && e->busy(e->applied_arg)))) ||
        __atomic_load_n(&e->write_avg_ns, __ATOMIC_RELAXED) >
            ENS_HERE_SLOW_US * 1000u ||
        sz->appends > ENS_HERE_ENTRIES_MAX ||
        sz->commits > ENS_HERE_ENTRIES_MAX ||
        sz->append_bytes + sz->commit_bytes > ENS_HERE_BYTES_MAX ||
        !zk_store_lazy_is_free(e->store) ||
        !zk_store_log_fits(e->store, sz->appends,
                           sz->append_bytes + sz->appends * ZK_ENV_HDR))
        return 0;
    *err = timed_write(e);
    return 1;
}

/* Loop: the snapshot received for an INSTALL is handed to the batch. */
static void st_install_prepare(void *arg, uint64_t zxid)
{
    struct zk__ens *e = arg;

    (void)zxid;
    if (!e->job_snap) {
        e->job_snap = e->snap_pending;
        e->snap_pending = NULL;
    }
}

static void st_install_done(void *arg)
{
    struct zk__ens *e = arg;

    e->snaps_installed++;
    if (e->job_snap) {
        e->snap_inst_raw += e->job_snap->len;
        e->snap_inst_wire += e->job_snap->wire;
    }
    zk__snap_rx_free(e->job_snap);
    e->job_snap = NULL;
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
        int rc = timed_write(e);
        pthread_mutex_lock(&e->mu);
        e->job = 0;
        e->job_done = 1;
        e->job_err = rc;
        pthread_mutex_unlock(&e->mu);
        /* After the unlock: the woken loop takes mu at once
         * (zk__ens_on_async), and would wait for us on it. job stays 0
         * until the loop has seen job_done (st_schedule comes after). */
        uv_async_send(&e->async);
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* loop side                                                           */
/* ------------------------------------------------------------------ */

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
    zk_driver_written(e->d, err);
    zk__ens_elect_watch(e);
}

/* CLOCK_BOOTTIME in ns: the lease's clock. A stopped process's clock
 * keeps running, unlike its ticks; and unlike CLOCK_MONOTONIC it also runs
 * while the machine is suspended, so a replica whose host slept past its
 * lease (a laptop, a suspended VM) gives its session up when it wakes,
 * before answering anything about its ephemerals or locks. */
uint64_t zk__ens_clock_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t clock_ns(void *arg)
{
    (void)arg;
    return zk__ens_clock_ns();
}

static void send_fn(void *arg, const struct zk_zab_msg *m)
{
    zk__ens_send_msg(arg, m);
}

static void log_fn(void *arg, enum zk_log_level level, const char *line)
{
    (void)arg;
    zk_log(level, "%s", line);
}

/* The driver's injected interfaces, for ens_start.c's zk_driver_create. */
void zk__ens_driver_wire(struct zk__ens *e, struct zk_driver_config *dc)
{
    dc->store = (struct zk_driver_store){
        .arg = e, .begin = st_begin, .append = st_append,
        .truncate = st_truncate, .install = st_install,
        .hard_state = st_hard_state, .apply = st_apply,
        .commit = st_commit, .abort = st_abort,
        .result_free = st_result_free, .schedule = st_schedule,
        .write_here = st_write_here, .install_prepare = st_install_prepare,
        .install_done = st_install_done,
    };
    dc->send = send_fn;
    dc->send_arg = e;
    dc->now_ns = clock_ns;
    dc->log = log_fn;
    dc->applied = e->applied;
    dc->reset = e->reset;
    dc->session_lost = e->session_lost;
    dc->cb_arg = e->applied_arg;
}

void zk__ens_on_tick(uv_timer_t *t)
{
    struct zk__ens *e = t->data;

    zk_driver_tick(e->d);
    zk__ens_elect_watch(e);
    zk__ens_handshake_sweep(e);
    zk__ens_recover_tick(e);
}

int zk__ens_propose(struct zk__ens *e, uint8_t *buf, size_t len,
                    zk_replica_done_cb cb, void *arg)
{
    if (e->stopping)
        return -ESHUTDOWN;
    return zk_driver_propose(e->d, buf, len, 0, cb, arg);
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
    int rc = e->stopping ? -ESHUTDOWN : zk__replica_encode(&txn, &buf, &len);

    if (rc)
        return rc;
    rc = zk_driver_propose(e->d, buf, len, 1, cb, arg);
    if (rc)
        free(buf);
    return rc;
}

uint64_t zk__ens_session(const struct zk__ens *e)
{
    return e->d ? zk_driver_session(e->d) : 0;
}

int zk__ens_lease_check(struct zk__ens *e)
{
    return e->d ? zk_driver_lease_check(e->d) : 0;
}

void zk__ens_give_up(struct zk__ens *e)
{
    if (e->d)
        zk_driver_give_up(e->d);
}
