/*
 * ensemble.c — the libuv runtime that drives the Zab core (zk_zab.h) for
 * one replica of an ensemble: TCP to the other servers in authenticated
 * frames (zk_frame.h), the core's ticks from a uv_timer, and its
 * Ready/Advance loop with persistence on a worker thread.
 *
 * What it keeps true:
 *  - At most one Ready is outstanding. Its ops (log appends, truncations),
 *    hard state and commits go to the store in ONE batch (one LMDB
 *    transaction, one fsync) on the worker thread; only when that batch is
 *    durable does the loop thread call the applied callback for each
 *    commit (zxid order), then the proposers' done callbacks, then send the
 *    Ready's messages, then zk_zab_advance(). A failed batch is fail-stop:
 *    the core is never advanced again and every write fails (-EIO) until
 *    the replica is restarted from disk.
 *  - Log entries are stored in an envelope (type, origin, request id,
 *    payload) so that a restart can hand the core its logged-but-unapplied
 *    entries. WRITE payloads are zk_txn encodings; the core's SESSION_OPEN
 *    and SESSION_CLOSE entries are turned into zk_txn session ops here,
 *    with a session table kept exactly like the core's (an OPEN from member
 *    m also closes m's previous session).
 *  - Each pair of servers has one TCP connection, dialled by the higher id
 *    (reconnect with exponential backoff); a newer authenticated
 *    connection from a peer replaces the older one. Messages to a peer
 *    without a connection are dropped: the core copes with loss.
 *  - Every queue is bounded: proposals (ZK_PENDING_MAX), bytes queued on a
 *    connection (ENS_SENDQ_BYTES_MAX, then the connection is dropped),
 *    unauthenticated inbound connections (ENS_INBOUND_MAX).
 *
 * A message larger than one frame is sent as fragments (DATA flags
 * ENS_FRAME_ZAB_MORE, then ENS_FRAME_ZAB) and reassembled, bounded by
 * ENS_MSG_BYTES_MAX.
 *
 * SNAP: the leader pins its store's state on the loop thread (where the
 * store is known to be at the SNAP's zxid), sends the SNAP message, and a
 * sender thread streams the snapshot through zstd (DATA flags
 * ENS_FRAME_SNAP_BEGIN, ENS_FRAME_SNAP chunks, ENS_FRAME_SNAP_END); the
 * loop queues chunks only while the connection has less than
 * ENS_SNAP_INFLIGHT_MAX unsent bytes (more when writes complete), the
 * thread waits while ENS_SNAP_QUEUE_MAX bytes wait for the loop, and the
 * leader's later messages to that learner are held until the end. The
 * learner holds the SNAP, decompresses and checks the stream as it comes
 * into an unnamed temporary file in the data directory, steps the SNAP
 * once it has ended whole, and the worker installs the file in the batch
 * of the INSTALL op that follows.
 *
 * Not done yet (see docs/ensemble.md): restarting the core after a failed
 * batch, waiting for the session close at stop.
 *
 * Threads: everything runs on the loop thread except worker_main(), which
 * only touches the store, the outstanding Ready (stable until advance) and
 * the fields marked (worker), and snap_tx_main(), which only touches its
 * struct snap_tx (under its mutex) and its pinned store snapshot.
 */
#include "ensemble_int.h"
#include "snap_rx.h"
#include "lease_int.h"
#include "zk_common.h"
#include "zk_config.h"
#include "zk_frame.h"
#include "zk_zab.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#define ENS_BACKOFF_MIN_MS    50          /* first reconnect delay          */
#define ENS_BACKOFF_MAX_MS    2000        /* reconnect delay cap            */
#define ENS_SENDQ_BYTES_MAX   (64u << 20) /* unsent bytes on a connection   */
#define ENS_INBOUND_MAX       64          /* connections not yet a peer's   */
#define ENS_HANDSHAKE_MS      3000        /* to prove the secret, at most   */
#define ENS_READ_BYTES        65536       /* one read's buffer              */
#define ENS_PUMP_ROUNDS_MAX   64          /* message-only Readies per event */
#define ENS_PROP_WAIT_MIN_MS  1000        /* least wait for a proposal      */
#define ENS_FRAME_ZAB         1           /* DATA frame flags: a zab msg,
                                             or its last fragment          */
#define ENS_FRAME_ZAB_MORE    2           /* a fragment; more follow       */
#define ENS_FRAME_SNAP        3           /* zstd bytes of a snapshot      */
#define ENS_FRAME_SNAP_END    4           /* its end (ENS_SNAP_END_LEN)    */
#define ENS_FRAME_SNAP_BEGIN  5           /* its start (ENS_SNAP_BEGIN_LEN) */
#define ENS_SNAP_MAGIC        ZK__SNAP_MAGIC /* the format: snap_rx.h      */
#define ENS_SNAP_VERSION      ZK__SNAP_VERSION
#define ENS_SNAP_CODEC_ZSTD   ZK__SNAP_CODEC_ZSTD
#define ENS_SNAP_BEGIN_LEN    ZK__SNAP_BEGIN_LEN
#define ENS_SNAP_END_LEN      ZK__SNAP_END_LEN
#define ENS_SNAP_IO_BYTES     ZK__SNAP_IO_BYTES /* temp file read unit    */
#define ENS_SNAP_CHUNK        (256u << 10) /* compressed bytes per frame   */
#define ENS_SNAP_QUEUE_MAX    (4u << 20)  /* made, waiting for the loop    */
#define ENS_SNAP_INFLIGHT_MAX (4u << 20)  /* unsent on the connection      */
#define ENS_SNAP_ZSTD_LEVEL   3
#define ENS_SNAP_LOG_MS       3000        /* progress line at least every   */
#define ENS_MSG_BYTES_MAX     (ZK_ZAB_MSG_BATCH_BYTES + \
                               2 * ZK_ZAB_PAYLOAD_MAX) /* one encoded msg */
#define ENS_ENV_MAGIC         0xE5        /* log envelope: first byte       */
#define ENS_ENV_VERSION       1
#define ENS_ENV_HDR           18          /* magic ver type origin req_id   */
#define ENS_OWNER_MAX         32          /* "server.N" session owner       */

/* A proposal or read barrier waiting for its commit. */
struct prop {
    struct prop *prev, *next;
    uint8_t *payload;             /* until submitted                       */
    size_t len;
    int submitted, is_sync, err;  /* err: answer at the next tick          */
    uint64_t req_id;              /* core request id once submitted        */
    uint64_t epoch;               /* the core's epoch when submitted       */
    uint64_t deadline_ms;         /* uv_now() after which: ZK_ENOTREADY    */
    zk_replica_done_cb cb;
    void *arg;
};

/* A Zab message encoded and held while a snapshot streams on its
 * connection (it must arrive after the snapshot's end). */
struct held {
    struct held *next;
    size_t len;
    uint8_t buf[];
};

/* One item of a snapshot sender's queue: a DATA frame's payload. */
struct snap_item {
    struct snap_item *next;
    uint16_t flags;               /* ENS_FRAME_SNAP_*                     */
    uint64_t raw_end;             /* uncompressed bytes consumed so far   */
    size_t len;
    uint8_t buf[];
};

struct conn;

/* A snapshot being streamed to a learner by snap_tx_main(). Owned by the
 * loop (e->stxs); freed once its thread has been joined. */
struct snap_tx {
    struct snap_tx *next;
    struct zk__ens *e;
    struct conn *c;               /* loop: NULL once the connection went  */
    struct zk_store_snap *sn;     /* the thread closes it                 */
    uint32_t to;
    uint64_t zxid;
    pthread_t thread;
    int thread_started;
    /* Shared with the thread (mu). */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct snap_item *head, *tail;
    size_t q_bytes;
    int cancel, finished, err;
    /* Thread only. */
    ZSTD_CCtx *cctx;
    uint64_t raw, wire;
    uint32_t crc;
    size_t out_len;
    uint8_t *out;                 /* ENS_SNAP_CHUNK                        */
    /* Loop only. */
    uint64_t total, raw_sent, wire_sent, start_ms, log_ms;
    unsigned log_pct;
    int ended;                    /* END queued on the connection          */
};

struct peer {
    uint32_t id;
    int dial;                     /* we dial it (its id is lower)          */
    struct sockaddr_storage addr;
    struct conn *conn;            /* authenticated connection or NULL      */
    struct conn *dialing;         /* outbound attempt in progress          */
    uv_timer_t timer;             /* reconnect                             */
    uint32_t backoff_ms;
    struct zk__ens *e;
};

struct conn {
    struct conn *next;
    struct zk__ens *e;
    struct peer *peer;            /* dialled, or known after its HELLO     */
    uv_tcp_t tcp;
    uv_connect_t creq;
    struct zk_frame_conn *fc;
    int outbound, ready, closing;
    uint64_t born_ms;             /* uv_now() at creation                 */
    size_t queued_bytes;
    uint8_t *frag;                /* fragments of a message so far        */
    struct zk__snap_rx *snap;     /* stream after a SNAP, until its end    */
    struct zk_zab_msg snap_msg;   /* that SNAP, stepped at the end         */
    struct snap_tx *stx;          /* snapshot streaming out on it          */
    struct held *held, *held_tail; /* messages waiting for its end        */
    size_t held_bytes;
    size_t frag_len, frag_cap;
    uint8_t rbuf[ENS_READ_BYTES];
};

struct wreq {
    uv_write_t req;
    struct conn *c;
    size_t len;
    uint8_t buf[];
};

struct zk__ens {
    uv_loop_t *loop;
    struct zk_store *store;
    zk_replica_applied_cb applied;
    zk_replica_reset_cb reset;
    zk_replica_session_lost_cb session_lost;
    void *applied_arg;
    struct zk_zab *z;
    uint32_t my_id, tick_ms, sync_limit, session_timeout_ms;
    uint64_t prop_wait_ms;
    size_t secret_len;
    uint8_t secret[ZK_CONFIG_SECRET_MAX];
    uint32_t n_members;
    uint32_t member_ids[ZK_ZAB_MEMBERS_MAX];
    uint32_t n_peers;
    struct peer peers[ZK_ZAB_MEMBERS_MAX];
    struct sockaddr_storage listen_addr;
    uv_tcp_t listener;
    uv_timer_t tick;
    uv_async_t async;
    int n_handles;                /* open handles; e freed at 0 if stopping */
    int stopping, failed;
    struct conn *conns;
    uint32_t n_inbound;           /* inbound connections without a peer    */
    struct prop *head, *tail;
    size_t n_props;
    uint64_t applied_zxid;        /* loop: last commit delivered           */
    uint64_t batches, fsyncs;     /* atomics                               */
    struct zk_zab_entry rx_entries[ZK_ZAB_MSG_ENTRIES_MAX];
    /* The outstanding Ready and the worker's hand-off (mu). */
    struct zk_zab_ready rd;
    int rd_out;                   /* loop: a Ready is outstanding          */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int job, job_done, job_err, worker_stop;   /* mu */
    struct zk_apply_result **results;          /* one per commit (worker) */
    size_t results_cap;
    uint64_t w_applied;           /* worker: store's last applied zxid     */
    uint64_t w_time_ms;           /* worker: time of the last WRITE        */
    uint64_t sessions[ZK_ZAB_MEMBERS_MAX];     /* worker, like the core's  */
    struct zk__snap_rx *snap_pending; /* loop: complete, SNAP stepped     */
    struct snap_tx *stxs;         /* loop: snapshot senders                */
    char snap_dir[ZK_CONFIG_PATH_MAX]; /* received snapshots' temp files  */
    uint64_t snaps_sent, snaps_installed, snaps_rejected;   /* loop */
    struct zk__snap_rx *job_snap; /* the Ready's INSTALL reads it (worker) */
    /* Session lease (loop; lease.c): when each tick was taken, so when
     * the message a quorum last acknowledged left. */
    struct zk__lease lease;
    uint64_t tick_no;             /* the core's tick                      */
    uint64_t leases_lost;
    /* resubmit_lost(): the epoch this replica was last seen established
     * in, and its log's end at that moment. */
    uint64_t est_epoch, est_zxid;
    uint64_t resubmitted;
};

static void pump(struct zk__ens *e);
static void conn_close(struct conn *c, const char *why);
static void stx_service(struct zk__ens *e);

/* zk__ens_test_snap_fault(): read by sender threads. */
static int snap_fault;

void zk__ens_test_snap_fault(int fault)
{
    __atomic_store_n(&snap_fault, fault, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------ */
/* small helpers                                                       */
/* ------------------------------------------------------------------ */

static int member_index(const struct zk__ens *e, uint32_t id)
{
    for (uint32_t i = 0; i < e->n_members; i++)
        if (e->member_ids[i] == id)
            return (int)i;
    return -1;
}

static struct peer *peer_by_id(struct zk__ens *e, uint32_t id)
{
    for (uint32_t i = 0; i < e->n_peers; i++)
        if (e->peers[i].id == id)
            return &e->peers[i];
    return NULL;
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

static void trace_fn(void *arg, uint32_t id, uint64_t tick, const char *line)
{
    (void)arg;
    zk_log(ZK_LOG_DEBUG, "zab %u t%llu: %s", id, (unsigned long long)tick,
           line);
}

/* Called from every handle's close callback. */
static void handle_closed(struct zk__ens *e)
{
    if (--e->n_handles > 0 || !e->stopping)
        return;
    free(e->results);
    memset(e->secret, 0, sizeof(e->secret));
    __asm__ __volatile__("" : : "r"(e->secret) : "memory");
    free(e);
}

static void on_handle_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

/* ------------------------------------------------------------------ */
/* worker thread: one Ready -> one store batch                          */
/* ------------------------------------------------------------------ */

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
    int idx = member_index(e, ZK_ZAB_SESSION_OWNER(sid));
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

static void *worker_main(void *arg)
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

/* ------------------------------------------------------------------ */
/* loop side: proposals, Ready hand-off, delivery                       */
/* ------------------------------------------------------------------ */

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
static void expire_props(struct zk__ens *e, int all_err)
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

static void send_msg(struct zk__ens *e, const struct zk_zab_msg *m);

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
        send_msg(e, &e->rd.msgs[i]);
    zk_zab_advance(e->z);
    e->rd_out = 0;
}

static void fail_stop(struct zk__ens *e, int err)
{
    zk_log(ZK_LOG_ERROR, "ensemble: writing to the store failed (%s); this "
           "replica stops taking part until it is restarted",
           zk_strerror(err));
    e->failed = err;
    expire_props(e, -EIO);
}

static void on_async(uv_async_t *h)
{
    struct zk__ens *e = h->data;

    if (!e->stopping)
        stx_service(e);
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
    pump(e);
}

/* Takes Readies from the core: message-only ones are sent at once (there
 * is nothing to make durable), others go to the worker. */
static void pump(struct zk__ens *e)
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
static uint64_t mono_ns(void)
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
    uint64_t now = mono_ns();
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

/* Closes connections that have not finished the handshake in time. */
static void handshake_sweep(struct zk__ens *e)
{
    uint64_t now = uv_now(e->loop);
    struct conn *c, *next;

    for (c = e->conns; c; c = next) {
        next = c->next;
        if (!c->ready && !c->closing && now - c->born_ms > ENS_HANDSHAKE_MS)
            conn_close(c, "no handshake in time");
    }
}

static void on_tick(uv_timer_t *t)
{
    struct zk__ens *e = t->data;

    if (e->failed) {
        expire_props(e, -EIO);
        return;
    }
    zk__lease_ticked(&e->lease, ++e->tick_no, mono_ns());
    zk_zab_tick(e->z);
    zk__ens_lease_check(e);
    handshake_sweep(e);
    expire_props(e, 0);
    pump(e);
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
    pump(e);
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

/* Transactions from zxid z to ref, within ref's epoch (see zk_replica.h:
 * across epochs only ref's epoch counts, a lower bound). */
static uint64_t zxid_lag(uint64_t ref, uint64_t z)
{
    if (z >= ref)
        return 0;
    if (ZK_ZAB_EPOCH(z) == ZK_ZAB_EPOCH(ref))
        return ZK_ZAB_COUNTER(ref) - ZK_ZAB_COUNTER(z);
    return ZK_ZAB_COUNTER(ref);
}

/* A member's connection, snapshot transfer, zxid and lag. */
static void status_member(const struct zk__ens *e,
                          const struct zk_zab_status *st, uint32_t i,
                          struct zk_replica_member *m)
{
    struct zk_zab_member_status ms;
    const struct peer *p = NULL;

    zk_zab_member_status(e->z, i, &ms);
    for (uint32_t k = 0; k < e->n_peers; k++)
        if (e->peers[k].id == ms.id)
            p = &e->peers[k];
    memset(m, 0, sizeof(*m));
    m->id = ms.id;
    m->observer = ms.observer;
    m->self = ms.self;
    m->connected = ms.self || (p && p->conn && p->conn->ready &&
                               !p->conn->closing);
    if (ms.self) {
        m->state = st->role == ZK_ZAB_LOOKING ? "looking"
                   : st->established ? "synced" : "syncing";
        m->zxid_known = 1;
        m->zxid = st->role == ZK_ZAB_LEADING ? st->persisted_zxid
                                             : e->applied_zxid;
        m->lag = st->role == ZK_ZAB_LEADING
                     ? zxid_lag(st->last_zxid, m->zxid)
                     : zxid_lag(st->commit_zxid, m->zxid);
    } else if (!m->connected) {
        m->state = "down";
    } else if (st->role == ZK_ZAB_LEADING) {
        m->state = ms.synced ? "synced" : ms.linked ? "syncing"
                                                   : "connected";
        m->zxid_known = ms.synced;
        m->zxid = ms.acked_zxid;
        m->lag = ms.synced ? zxid_lag(st->last_zxid, ms.acked_zxid) : 0;
    } else {
        m->state = ms.id == st->leader ? "leading" : "connected";
        m->zxid_known = ms.id == st->leader && st->established;
        m->zxid = m->zxid_known ? st->commit_zxid : 0;
    }
    if (!p || !p->conn)
        return;
    if (p->conn->stx && p->conn->stx->c == p->conn) {
        const struct snap_tx *t = p->conn->stx;
        m->snapshot = 1;
        m->snap_bytes = t->raw_sent;
        m->snap_total = t->total;
        m->snap_wire_bytes = t->wire_sent;
        m->state = "syncing";
    } else if (p->conn->snap && p->conn->snap->begun) {
        const struct zk__snap_rx *sn = p->conn->snap;
        m->snapshot = 1;
        m->snap_bytes = sn->len;
        m->snap_total = sn->total;
        m->snap_wire_bytes = sn->wire;
    }
}

void zk__ens_status(const struct zk__ens *e, struct zk_replica_status *out)
{
    static const char *const names[] = {"looking", "follower", "leader",
                                        "observer"};
    struct zk_zab_status st;

    memset(out, 0, sizeof(*out));
    out->my_id = e->my_id;
    out->last_zxid = e->applied_zxid;
    out->pending = e->n_props;
    out->batches = __atomic_load_n(&e->batches, __ATOMIC_RELAXED);
    out->fsyncs = __atomic_load_n(&e->fsyncs, __ATOMIC_RELAXED);
    out->stale = 1;
    out->role = "stopped";
    if (!e->z)
        return;
    zk_zab_status(e->z, &st);
    out->role = (unsigned)st.role < ZK_ARRAY_LEN(names) ? names[st.role]
                                                       : "?";
    out->leader_id = st.leader;
    out->epoch = st.epoch;
    out->stale = e->failed || !st.established ||
                 st.role == ZK_ZAB_LOOKING ||
                 st.tick - st.contact_tick > e->sync_limit;
    out->commit_zxid = st.commit_zxid > e->applied_zxid ? st.commit_zxid
                                                        : e->applied_zxid;
    out->lag = zxid_lag(out->commit_zxid, e->applied_zxid);
    _Static_assert(ZK_REPLICA_MEMBERS_MAX >= ZK_ZAB_MEMBERS_MAX,
                   "a status member per core member");
    out->snapshots_sent = e->snaps_sent;
    out->snapshots_installed = e->snaps_installed;
    out->snapshots_rejected = e->snaps_rejected;
    out->elections = st.n_elections;
    out->syncs_diff = st.n_diff;
    out->syncs_trunc = st.n_trunc;
    out->syncs_snap = st.n_snap;
    out->n_members = e->n_members;
    for (uint32_t i = 0; i < e->n_members; i++) {
        status_member(e, &st, i, &out->members[i]);
        out->syncing |= out->members[i].snapshot;
    }
}

/* ------------------------------------------------------------------ */
/* network: connections, handshake, frames                              */
/* ------------------------------------------------------------------ */

static void stx_pump(struct snap_tx *t);

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *c = w->c;

    c->queued_bytes -= w->len;
    free(w);
    if (status < 0 && status != UV_ECANCELED)
        conn_close(c, uv_strerror(status));
    else if (c->stx)
        stx_pump(c->stx);          /* room for more of the snapshot */
}

/* Queues w (its buffer filled) on c. */
static void conn_write(struct conn *c, struct wreq *w)
{
    uv_buf_t buf = uv_buf_init((char *)w->buf, (unsigned)w->len);

    w->c = c;
    c->queued_bytes += w->len;
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
    if (rc) {
        c->queued_bytes -= w->len;
        free(w);
        conn_close(c, uv_strerror(rc));
    }
}

/* Sends our HELLO (first) or AUTH. */
static void conn_send_handshake(struct conn *c, int auth)
{
    size_t cap = zk_frame_size(auth ? ZK_FRAME_AUTH_LEN : ZK_FRAME_HELLO_LEN);
    struct wreq *w = malloc(sizeof(*w) + cap);
    int rc;

    if (!w) {
        conn_close(c, "out of memory");
        return;
    }
    rc = auth ? zk_frame_conn_auth(c->fc, w->buf, cap, &w->len)
              : zk_frame_conn_hello(c->fc, w->buf, cap, &w->len);
    if (rc) {
        free(w);
        conn_close(c, zk_strerror(rc));
        return;
    }
    conn_write(c, w);
}

/* Queues buf[0..len) as one DATA frame with flags. */
static int send_frame(struct conn *c, uint16_t flags, const uint8_t *buf,
                      size_t len)
{
    struct wreq *w = malloc(sizeof(*w) + zk_frame_size((uint32_t)len));
    if (!w)
        return -ENOMEM;
    uint8_t *payload = w->buf + ZK_FRAME_HEADER_SIZE;
    memcpy(payload, buf, len);
    int rc = zk_frame_conn_seal(c->fc, flags, payload, (uint32_t)len,
                                w->buf, payload + len);
    if (rc) {
        free(w);
        return rc;
    }
    w->len = zk_frame_size((uint32_t)len);
    conn_write(c, w);
    return 0;
}

/* Sends an encoded message as one DATA frame, or as fragments of at most
 * ZK_FRAME_PAYLOAD_MAX bytes (flags ENS_FRAME_ZAB_MORE, the last one
 * ENS_FRAME_ZAB) when it is larger (a PROPOSE batch can pass 4 MiB). */
static int send_bytes(struct conn *c, const uint8_t *buf, size_t n)
{
    size_t off = 0;
    int rc = 0;

    while (rc == 0 && !c->closing) {
        size_t chunk = n - off > ZK_FRAME_PAYLOAD_MAX ? ZK_FRAME_PAYLOAD_MAX
                                                      : n - off;
        int last = off + chunk == n;
        rc = send_frame(c, last ? ENS_FRAME_ZAB : ENS_FRAME_ZAB_MORE,
                        buf + off, chunk);
        off += chunk;
        if (last)
            break;
    }
    return rc;
}

/* Encodes m into a new buffer of exactly len bytes (*out; free it). */
static int encode_msg(const struct zk_zab_msg *m, size_t len, uint8_t **out)
{
    uint8_t *buf = malloc(len ? len : 1);
    size_t n;
    int rc = buf ? zk_zab_msg_encode(m, buf, len, &n) : -ENOMEM;

    if (rc == 0 && n != len)
        rc = -EINVAL;
    if (rc) {
        free(buf);
        return rc;
    }
    if (n > ZK_FRAME_PAYLOAD_MAX)
        zk_log(ZK_LOG_DEBUG, "ensemble: %s to %u (%zu bytes) in fragments",
               zk_zab_msg_name(m->type), m->to, n);
    *out = buf;
    return 0;
}

static int send_encoded(struct conn *c, const struct zk_zab_msg *m,
                        size_t len)
{
    uint8_t *buf;
    int rc = encode_msg(m, len, &buf);

    if (rc == 0) {
        rc = send_bytes(c, buf, len);
        free(buf);
    }
    return rc;
}

/* Keeps m for after the snapshot streaming on c (bounded like a send
 * queue: past ENS_SENDQ_BYTES_MAX the connection is dropped). */
static int hold_msg(struct conn *c, const struct zk_zab_msg *m, size_t len)
{
    struct held *h;
    uint8_t *buf;
    int rc;

    if (c->held_bytes + len > ENS_SENDQ_BYTES_MAX)
        return -ENOBUFS;
    h = malloc(sizeof(*h) + len);
    if (!h)
        return -ENOMEM;
    rc = encode_msg(m, len, &buf);
    if (rc) {
        free(h);
        return rc;
    }
    memcpy(h->buf, buf, len);
    free(buf);
    h->len = len;
    h->next = NULL;
    if (c->held_tail)
        c->held_tail->next = h;
    else
        c->held = h;
    c->held_tail = h;
    c->held_bytes += len;
    return 0;
}

static void held_free(struct conn *c)
{
    for (struct held *h = c->held, *next; h; h = next) {
        next = h->next;
        free(h);
    }
    c->held = c->held_tail = NULL;
    c->held_bytes = 0;
}

/* The snapshot on c has ended: what was held goes out, in order. */
static void held_flush(struct conn *c)
{
    int rc = 0;

    for (struct held *h = c->held; h && rc == 0 && !c->closing; h = h->next)
        rc = send_bytes(c, h->buf, h->len);
    held_free(c);
    if (rc)
        conn_close(c, zk_strerror(rc));
}

/* ---- snapshot sender (leader) ----------------------------------------- */

/* Thread: queues one frame's payload for the loop; waits while the queue
 * is full. -ECANCELED once the loop gave the transfer up. */
static int stx_push(struct snap_tx *t, uint16_t flags, const uint8_t *buf,
                    size_t len)
{
    struct snap_item *it = malloc(sizeof(*it) + len);

    if (!it)
        return -ENOMEM;
    it->next = NULL;
    it->flags = flags;
    it->raw_end = t->raw;
    it->len = len;
    memcpy(it->buf, buf, len);
    pthread_mutex_lock(&t->mu);
    while (t->q_bytes >= ENS_SNAP_QUEUE_MAX && !t->cancel)
        pthread_cond_wait(&t->cv, &t->mu);
    int cancel = t->cancel;
    if (!cancel) {
        if (t->tail)
            t->tail->next = it;
        else
            t->head = it;
        t->tail = it;
        t->q_bytes += len;
    }
    pthread_mutex_unlock(&t->mu);
    if (cancel) {
        free(it);
        return -ECANCELED;
    }
    uv_async_send(&t->e->async);
    return 0;
}

/* Thread: the loop gave the transfer up (checked between chunks of the
 * store's stream too, so that a stop never waits for the whole stream). */
static int stx_cancelled(struct snap_tx *t)
{
    return __atomic_load_n(&t->cancel, __ATOMIC_RELAXED);
}


/* Thread: runs zstd over in[0..len) (mode ZSTD_e_continue or _e_end) and
 * queues every full output chunk (at the end, the rest). */
static int stx_compress(struct snap_tx *t, const uint8_t *buf, size_t len,
                        ZSTD_EndDirective mode)
{
    ZSTD_inBuffer in = {buf, len, 0};
    size_t left;

    do {
        ZSTD_outBuffer out = {t->out, ENS_SNAP_CHUNK, t->out_len};
        left = ZSTD_compressStream2(t->cctx, &out, &in, mode);
        if (ZSTD_isError(left)) {
            zk_log(ZK_LOG_ERROR, "ensemble: zstd: %s",
                   ZSTD_getErrorName(left));
            return -EIO;
        }
        t->out_len = out.pos;
        if (t->out_len == ENS_SNAP_CHUNK ||
            (mode == ZSTD_e_end && left == 0 && t->out_len)) {
            int last = mode == ZSTD_e_end && left == 0, rc = 0;
            int fault = __atomic_load_n(&snap_fault, __ATOMIC_RELAXED);
            if (fault == ZK__SNAP_FAULT_FLIP)
                t->out[t->out_len / 2] ^= 0x5a;
            if (fault != ZK__SNAP_FAULT_TRUNCATE || !last)
                rc = stx_push(t, ENS_FRAME_SNAP, t->out, t->out_len);
            if (rc)
                return rc;
            t->wire += t->out_len;
            t->out_len = 0;
        }
    } while (mode == ZSTD_e_end ? left != 0 : in.pos < in.size);
    return 0;
}

static int compress_cb(void *arg, const uint8_t *buf, size_t len)
{
    struct snap_tx *t = arg;

    if (stx_cancelled(t))
        return -ECANCELED;
    t->raw += len;
    t->crc = (uint32_t)crc32(t->crc, buf, (uInt)len);
    return stx_compress(t, buf, len, ZSTD_e_continue);
}

/* Thread: BEGIN (magic, version, codec, zxid, uncompressed size of the
 * same pinned state, zk_store_snapshot_size), the zstd stream, END
 * (zxid, uncompressed and compressed sizes, crc32 of the uncompressed). */
static int stx_run(struct snap_tx *t)
{
    uint8_t hdr[ENS_SNAP_END_LEN > ENS_SNAP_BEGIN_LEN ? ENS_SNAP_END_LEN
                                                      : ENS_SNAP_BEGIN_LEN];
    uint64_t total = 0;
    int rc = zk_store_snapshot_size(t->sn, &total);

    if (rc)
        return rc;
    zk_put_be32(hdr, ENS_SNAP_MAGIC);
    hdr[4] = __atomic_load_n(&snap_fault, __ATOMIC_RELAXED) ==
                     ZK__SNAP_FAULT_VERSION ? 0xee : ENS_SNAP_VERSION;
    hdr[5] = ENS_SNAP_CODEC_ZSTD;
    hdr[6] = hdr[7] = 0;
    zk_put_be64(hdr + 8, t->zxid);
    zk_put_be64(hdr + 16, total);
    if ((rc = stx_push(t, ENS_FRAME_SNAP_BEGIN, hdr, ENS_SNAP_BEGIN_LEN)))
        return rc;
    t->cctx = ZSTD_createCCtx();
    t->out = malloc(ENS_SNAP_CHUNK);
    if (!t->cctx || !t->out)
        return -ENOMEM;
    if (ZSTD_isError(ZSTD_CCtx_setParameter(t->cctx, ZSTD_c_compressionLevel,
                                            ENS_SNAP_ZSTD_LEVEL)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(t->cctx, ZSTD_c_checksumFlag, 1)))
        return -EIO;
    ZSTD_CCtx_setPledgedSrcSize(t->cctx, total);
    rc = zk_store_snapshot_stream(t->sn, compress_cb, t);
    if (rc == 0)
        rc = stx_compress(t, NULL, 0, ZSTD_e_end);
    if (rc == 0 && t->raw != total)
        rc = ZK_ECORRUPT;
    if (rc)
        return rc;
    zk_put_be64(hdr, t->zxid);
    zk_put_be64(hdr + 8, t->raw);
    zk_put_be64(hdr + 16, t->wire);
    zk_put_be32(hdr + 24, t->crc);
    return stx_push(t, ENS_FRAME_SNAP_END, hdr, ENS_SNAP_END_LEN);
}

static void *snap_tx_main(void *arg)
{
    struct snap_tx *t = arg;
    int rc = stx_run(t);

    ZSTD_freeCCtx(t->cctx);
    free(t->out);
    t->cctx = NULL;
    t->out = NULL;
    zk_store_snapshot_close(t->sn);
    t->sn = NULL;
    pthread_mutex_lock(&t->mu);
    t->finished = 1;
    t->err = rc;
    pthread_mutex_unlock(&t->mu);
    uv_async_send(&t->e->async);
    return NULL;
}

/* Loop: a progress line every 10% or ENS_SNAP_LOG_MS. */
static int progress_due(uint64_t done, uint64_t total, unsigned *pct,
                        uint64_t *log_ms, uint64_t now)
{
    unsigned p = total ? (unsigned)(done * 100 / total) : 100;

    if (p / 10 == *pct / 10 && now - *log_ms < ENS_SNAP_LOG_MS)
        return 0;
    *pct = p;
    *log_ms = now;
    return 1;
}

static void stx_sent(struct snap_tx *t, const struct snap_item *it)
{
    struct zk__ens *e = t->e;
    uint64_t now = uv_now(e->loop);

    if (it->flags == ENS_FRAME_SNAP_BEGIN) {
        t->total = zk_get_be64(it->buf + 16);
        zk_log(ZK_LOG_INFO, "ensemble: snapshot to server %u at 0x%llx: "
               "%llu bytes before zstd", t->to, (unsigned long long)t->zxid,
               (unsigned long long)t->total);
    } else if (it->flags == ENS_FRAME_SNAP) {
        t->wire_sent += it->len;
        t->raw_sent = it->raw_end;
        if (progress_due(t->raw_sent, t->total, &t->log_pct, &t->log_ms,
                         now))
            zk_log(ZK_LOG_INFO, "ensemble: snapshot to server %u: %llu of "
                   "%llu bytes (%u%%), %llu compressed", t->to,
                   (unsigned long long)t->raw_sent,
                   (unsigned long long)t->total, t->log_pct,
                   (unsigned long long)t->wire_sent);
    } else {
        t->ended = 1;
        t->raw_sent = t->total;
        e->snaps_sent++;
        zk_log(ZK_LOG_INFO, "ensemble: snapshot to server %u at 0x%llx "
               "sent: %llu bytes as %llu with zstd in %llu ms", t->to,
               (unsigned long long)t->zxid, (unsigned long long)t->total,
               (unsigned long long)t->wire_sent,
               (unsigned long long)(now - t->start_ms));
    }
}

/* Loop: moves queued chunks onto the connection while it has less than
 * ENS_SNAP_INFLIGHT_MAX unsent bytes (on_write calls again as writes
 * complete); after END, releases the held messages. */
static void stx_pump(struct snap_tx *t)
{
    struct conn *c = t->c;

    while (c && !c->closing && !t->ended &&
           c->queued_bytes < ENS_SNAP_INFLIGHT_MAX) {
        pthread_mutex_lock(&t->mu);
        struct snap_item *it = t->head;
        if (it) {
            t->head = it->next;
            if (!t->head)
                t->tail = NULL;
            t->q_bytes -= it->len;
            pthread_cond_signal(&t->cv);
        }
        pthread_mutex_unlock(&t->mu);
        if (!it)
            return;
        int rc = send_frame(c, it->flags, it->buf, it->len);
        if (rc == 0)
            stx_sent(t, it);
        free(it);
        if (rc) {
            conn_close(c, "snapshot not sent");
            return;
        }
    }
    if (c && t->ended) {
        /* Done with c: its close must not find t, nor t find it. */
        t->c = NULL;
        if (c->stx == t)
            c->stx = NULL;
        held_flush(c);
        uv_async_send(&t->e->async);   /* stx_service reaps t soon */
    }
}

/* Loop: tells the thread to stop (it is joined by stx_service). */
static void stx_cancel(struct snap_tx *t)
{
    if (t->c && t->c->stx == t)
        t->c->stx = NULL;
    t->c = NULL;
    pthread_mutex_lock(&t->mu);
    __atomic_store_n(&t->cancel, 1, __ATOMIC_RELAXED);
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void stx_free(struct snap_tx *t)
{
    if (t->thread_started)
        pthread_join(t->thread, NULL);
    zk_store_snapshot_close(t->sn);
    for (struct snap_item *it = t->head, *next; it; it = next) {
        next = it->next;
        free(it);
    }
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* Loop (on_async): pumps every sender, reports failures, and joins and
 * frees those that are done (ended, or cancelled) or failed. */
static void stx_service(struct zk__ens *e)
{
    struct snap_tx **pp = &e->stxs;

    while (*pp) {
        struct snap_tx *t = *pp;
        stx_pump(t);
        pthread_mutex_lock(&t->mu);
        int finished = t->finished, err = t->err;
        pthread_mutex_unlock(&t->mu);
        if (finished && err && t->c) {
            zk_log(ZK_LOG_WARN, "ensemble: snapshot for server %u at 0x%llx "
                   "failed: %s", t->to, (unsigned long long)t->zxid,
                   zk_strerror(err));
            conn_close(t->c, "snapshot not sent");
        }
        if (finished && (err || t->ended || !t->c)) {
            if (t->c && t->c->stx == t)
                t->c->stx = NULL;
            *pp = t->next;
            stx_free(t);
            continue;
        }
        pp = &t->next;
    }
}

/* SNAP: pins the store's state (while a Ready is out the worker is idle,
 * so the store holds exactly the state the core named, m->zxid; anything
 * else is refused), sends the message, and starts a sender thread for the
 * snapshot. Later messages to that learner wait for its end. */
static void send_snap(struct zk__ens *e, struct conn *c,
                      const struct zk_zab_msg *m, size_t len)
{
    struct snap_tx *t = NULL;
    struct zk_store_snap *sn = NULL;
    uint64_t zxid = 0;
    int rc = c->stx ? -EBUSY : zk_store_snapshot_open(e->store, &sn, &zxid);

    if (rc == 0 && zxid != m->zxid)
        rc = ZK_ECORRUPT;
    if (rc == 0 && !(t = calloc(1, sizeof(*t))))
        rc = -ENOMEM;
    if (rc == 0)
        rc = send_encoded(c, m, len);
    if (rc == 0) {
        t->e = e;
        t->c = c;
        t->sn = sn;
        t->to = m->to;
        t->zxid = zxid;
        t->start_ms = t->log_ms = uv_now(e->loop);
        pthread_mutex_init(&t->mu, NULL);
        pthread_cond_init(&t->cv, NULL);
        sn = NULL;                 /* the thread (or stx_free) closes it */
        rc = -pthread_create(&t->thread, NULL, snap_tx_main, t);
        t->thread_started = rc == 0;
        if (rc)
            stx_free(t);
    } else {
        free(t);
    }
    if (rc == 0) {
        t->next = e->stxs;
        e->stxs = t;
        c->stx = t;
    }
    zk_store_snapshot_close(sn);
    if (rc) {
        zk_log(ZK_LOG_WARN, "ensemble: snapshot for server %u at 0x%llx "
               "(store at 0x%llx) not sent: %s", m->to,
               (unsigned long long)m->zxid, (unsigned long long)zxid,
               zk_strerror(rc));
        conn_close(c, "snapshot not sent");
        return;
    }
    zk_log(ZK_LOG_INFO, "ensemble: streaming a snapshot at 0x%llx to "
           "server %u", (unsigned long long)zxid, m->to);
}

/* Sends m to its peer; drops it if there is no authenticated connection
 * (the core treats that as loss). */
static void send_msg(struct zk__ens *e, const struct zk_zab_msg *m)
{
    struct peer *p = peer_by_id(e, m->to);
    struct conn *c = p ? p->conn : NULL;
    size_t len = zk_zab_msg_encoded_size(m);

    if (!c || !c->ready || c->closing)
        return;
    if (m->type == ZK_ZAB_MSG_SNAP) {
        send_snap(e, c, m, len);
        return;
    }
    if (len > ENS_MSG_BYTES_MAX) {
        zk_log(ZK_LOG_WARN, "ensemble: %s to %u is %zu bytes; dropped",
               zk_zab_msg_name(m->type), m->to, len);
        return;
    }
    if (c->queued_bytes + len > ENS_SENDQ_BYTES_MAX) {
        conn_close(c, "send queue full");
        return;
    }
    int rc = c->stx ? hold_msg(c, m, len) : send_encoded(c, m, len);
    if (rc) {
        zk_log(ZK_LOG_WARN, "ensemble: cannot send %s to %u: %s",
               zk_zab_msg_name(m->type), m->to, zk_strerror(rc));
        if (rc != -EINVAL)
            conn_close(c, zk_strerror(rc));
    }
}

static void on_reconnect_timer(uv_timer_t *t);

static void peer_schedule(struct peer *p)
{
    if (p->e->stopping || p->conn || p->dialing)
        return;
    uv_timer_start(&p->timer, on_reconnect_timer, p->backoff_ms, 0);
    p->backoff_ms = p->backoff_ms * 2 > ENS_BACKOFF_MAX_MS
                        ? ENS_BACKOFF_MAX_MS : p->backoff_ms * 2;
}

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data, **pp;
    struct zk__ens *e = c->e;

    for (pp = &e->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    zk_frame_conn_free(c->fc);
    if (c->snap && c->snap->begun)
        zk_log(ZK_LOG_WARN, "ensemble: snapshot at 0x%llx abandoned after "
               "%llu of %llu bytes", (unsigned long long)c->snap->zxid,
               (unsigned long long)c->snap->len,
               (unsigned long long)c->snap->total);
    zk__snap_rx_free(c->snap);
    held_free(c);
    free(c->frag);
    free(c);
    handle_closed(e);
}

static void conn_close(struct conn *c, const char *why)
{
    struct peer *p = c->peer;

    if (c->closing)
        return;
    c->closing = 1;
    if (!c->e->stopping && p)
        zk_log(*zk_frame_conn_why(c->fc) ? ZK_LOG_WARN : ZK_LOG_INFO,
               "ensemble: connection %s server %u closed: %s",
               c->outbound ? "to" : "from", p->id, why);
    else if (!c->e->stopping)
        zk_log(ZK_LOG_WARN, "ensemble: unidentified connection refused: %s",
               why);
    if (!c->outbound && !c->ready)
        c->e->n_inbound--;
    if (c->stx)
        stx_cancel(c->stx);
    if (p && p->conn == c)
        p->conn = NULL;
    if (p && p->dialing == c)
        p->dialing = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    if (p && p->dial)
        peer_schedule(p);
}

/* The peer's HELLO verified: check who it is, then send our AUTH. */
static void on_hello(struct conn *c)
{
    uint32_t id = (uint32_t)zk_frame_conn_peer(c->fc);
    struct peer *p = peer_by_id(c->e, id);

    if (!c->outbound) {
        if (!p || p->dial) {
            conn_close(c, "HELLO from a server that should not dial us");
            return;
        }
        c->peer = p;
    }
    conn_send_handshake(c, 1);
}

/* Both AUTHs done: c becomes its peer's connection. */
static void on_ready(struct conn *c)
{
    struct peer *p = c->peer;

    if (!zk_frame_conn_ready(c->fc)) {
        conn_close(c, "handshake out of order");
        return;
    }
    if (!c->outbound)
        c->e->n_inbound--;
    c->ready = 1;
    if (p->dialing == c)
        p->dialing = NULL;
    if (p->conn && p->conn != c)
        conn_close(p->conn, "replaced by a newer connection");
    p->conn = c;
    p->backoff_ms = ENS_BACKOFF_MIN_MS;
    zk_log(ZK_LOG_INFO, "ensemble: server %u connected (%s)", p->id,
           c->outbound ? "dialled" : "accepted");
}

/* Keeps a fragment (ENS_FRAME_ZAB_MORE) until the last one arrives. */
static int frag_add(struct conn *c, const struct zk_frame *f)
{
    if (c->frag_len + f->len > ENS_MSG_BYTES_MAX)
        return -EMSGSIZE;
    if (c->frag_len + f->len > c->frag_cap) {
        size_t cap = c->frag_len + f->len;
        void *p = realloc(c->frag, cap);
        if (!p)
            return -ENOMEM;
        c->frag = p;
        c->frag_cap = cap;
    }
    memcpy(c->frag + c->frag_len, f->payload, f->len);
    c->frag_len += f->len;
    return 0;
}

/* A SNAP message is held until its snapshot stream has arrived, then
 * stepped: the INSTALL op it leads to finds the snapshot complete. */
static int snap_hold(struct conn *c, const struct zk_zab_msg *m)
{
    zk__snap_rx_free(c->snap);
    c->snap = zk__snap_rx_new(m->zxid);
    if (!c->snap || m->n_sessions > ZK_ZAB_MEMBERS_MAX)
        return -ENOMEM;
    for (uint32_t i = 0; i < m->n_sessions; i++)
        c->snap->sessions[i] = m->sessions[i];
    c->snap_msg = *m;
    c->snap_msg.n_entries = 0;
    c->snap_msg.entries = NULL;
    return 0;
}

/* BEGIN: the format, zxid and size (snap_rx.c), then the progress log. */
static const char *snap_begin(struct zk__ens *e, struct conn *c,
                              struct zk__snap_rx *sn,
                              const struct zk_frame *f)
{
    const char *bad = zk__snap_rx_begin(sn, e->snap_dir, f->payload, f->len);

    if (bad)
        return bad;
    sn->start_ms = sn->log_ms = uv_now(e->loop);
    zk_log(ZK_LOG_INFO, "ensemble: receiving a snapshot of %llu bytes at "
           "0x%llx from server %u", (unsigned long long)sn->total,
           (unsigned long long)sn->zxid, c->peer->id);
    return NULL;
}

static void on_snap_frame(struct conn *c, const struct zk_frame *f)
{
    struct zk__ens *e = c->e;
    struct zk__snap_rx *sn = c->snap;
    const char *bad;

    if (!sn) {
        conn_close(c, "snapshot data without SNAP");
        return;
    }
    zk_zab_heard(e->z, c->peer->id);
    if (f->flags == ENS_FRAME_SNAP_BEGIN)
        bad = snap_begin(e, c, sn, f);
    else if (f->flags == ENS_FRAME_SNAP)
        bad = zk__snap_rx_data(sn, f->payload, f->len);
    else
        bad = zk__snap_rx_end(sn, f->payload, f->len);
    if (bad) {
        zk_log(ZK_LOG_WARN, "ensemble: snapshot at 0x%llx from server %u "
               "rejected: %s", (unsigned long long)sn->zxid, c->peer->id,
               bad);
        e->snaps_rejected++;
        zk__snap_rx_free(sn);
        c->snap = NULL;
        conn_close(c, bad);
        return;
    }
    uint64_t now = uv_now(e->loop);
    if (f->flags == ENS_FRAME_SNAP &&
        progress_due(sn->len, sn->total, &sn->log_pct, &sn->log_ms, now))
        zk_log(ZK_LOG_INFO, "ensemble: snapshot from server %u: %llu of "
               "%llu bytes (%u%%), %llu compressed", c->peer->id,
               (unsigned long long)sn->len,
               (unsigned long long)sn->total, sn->log_pct,
               (unsigned long long)sn->wire);
    if (f->flags != ENS_FRAME_SNAP_END)
        return;
    zk_log(ZK_LOG_INFO, "ensemble: received a snapshot of %llu bytes (%llu "
           "with zstd) at 0x%llx from server %u in %llu ms",
           (unsigned long long)sn->len,
           (unsigned long long)sn->wire, (unsigned long long)sn->zxid,
           c->peer->id, (unsigned long long)(now - sn->start_ms));
    zk__snap_rx_free(e->snap_pending);
    e->snap_pending = sn;
    c->snap = NULL;
    zk_zab_step(e->z, &c->snap_msg);
}

static void on_data(struct conn *c, const struct zk_frame *f)
{
    struct zk__ens *e = c->e;
    const uint8_t *buf = f->payload;
    size_t len = f->len;
    struct zk_zab_msg m;
    int rc = 0;

    if (f->flags == ENS_FRAME_SNAP || f->flags == ENS_FRAME_SNAP_END ||
        f->flags == ENS_FRAME_SNAP_BEGIN) {
        on_snap_frame(c, f);
        return;
    }
    if (f->flags == ENS_FRAME_ZAB_MORE ||
        (f->flags == ENS_FRAME_ZAB && c->frag_len)) {
        rc = frag_add(c, f);
        if (rc == 0 && f->flags == ENS_FRAME_ZAB_MORE)
            return;
        buf = c->frag;
        len = c->frag_len;
    } else if (f->flags != ENS_FRAME_ZAB) {
        rc = ZK_ECORRUPT;
    }
    if (rc == 0)
        rc = zk_zab_msg_decode(buf, len, &m, e->rx_entries,
                               ZK_ARRAY_LEN(e->rx_entries));
    if (rc == 0 && (m.from != c->peer->id || m.to != e->my_id))
        rc = ZK_ECORRUPT;
    if (rc == 0 && m.type == ZK_ZAB_MSG_SNAP)
        rc = snap_hold(c, &m);
    else if (rc == 0)
        zk_zab_step(e->z, &m);
    if (rc) {
        conn_close(c, "malformed message");
        return;
    }
    c->frag_len = 0;
    if (c->frag_cap > ZK_FRAME_BUF_KEEP) {
        free(c->frag);
        c->frag = NULL;
        c->frag_cap = 0;
    }
}

static void conn_feed(struct conn *c, const uint8_t *buf, size_t n)
{
    size_t off = 0, used;
    struct zk_frame f;

    while (off < n && !c->closing) {
        int ev = zk_frame_conn_feed(c->fc, buf + off, n - off, &used, &f);
        if (ev < 0) {
            conn_close(c, zk_frame_conn_why(c->fc));
            return;
        }
        off += used;
        if (ev == ZK_FRAME_EV_HELLO)
            on_hello(c);
        else if (ev == ZK_FRAME_EV_READY)
            on_ready(c);
        else if (ev == ZK_FRAME_EV_DATA)
            on_data(c, &f);
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)hint;
    *buf = uv_buf_init((char *)c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;

    if (nread < 0) {
        conn_close(c, nread == UV_EOF ? "closed by peer"
                                      : uv_strerror((int)nread));
        return;
    }
    conn_feed(c, (const uint8_t *)buf->base, (size_t)nread);
    pump(c->e);
}

/* A new connection object with its TCP handle initialised. */
static struct conn *conn_new(struct zk__ens *e, struct peer *p)
{
    struct conn *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    if (zk_frame_conn_new(e->secret, e->secret_len, e->my_id,
                          p ? p->id : 0, &c->fc) ||
        uv_tcp_init(e->loop, &c->tcp)) {
        zk_frame_conn_free(c->fc);
        free(c);
        return NULL;
    }
    c->e = e;
    c->peer = p;
    c->born_ms = uv_now(e->loop);
    c->outbound = p != NULL;
    c->tcp.data = c;
    c->creq.data = c;
    c->next = e->conns;
    e->conns = c;
    e->n_handles++;
    return c;
}

/* Sends HELLO and starts reading. */
static void conn_start(struct conn *c)
{
    uv_tcp_nodelay(&c->tcp, 1);
    conn_send_handshake(c, 0);
    if (c->closing)
        return;
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc)
        conn_close(c, uv_strerror(rc));
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;

    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c, uv_strerror(status));
        return;
    }
    conn_start(c);
}

static void on_reconnect_timer(uv_timer_t *t)
{
    struct peer *p = t->data;
    struct zk__ens *e = p->e;

    if (e->stopping || p->conn || p->dialing)
        return;
    struct conn *c = conn_new(e, p);
    if (!c) {
        peer_schedule(p);
        return;
    }
    p->dialing = c;
    int rc = uv_tcp_connect(&c->creq, &c->tcp,
                            (const struct sockaddr *)&p->addr, on_connect);
    if (rc)
        conn_close(c, uv_strerror(rc));
}

static void on_connection(uv_stream_t *server, int status)
{
    struct zk__ens *e = server->data;

    if (status < 0 || e->stopping)
        return;
    struct conn *c = conn_new(e, NULL);
    if (!c)
        return;
    e->n_inbound++;
    int rc = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rc) {
        conn_close(c, uv_strerror(rc));
        return;
    }
    /* Full: the oldest connection that has not proved the secret makes
     * room, so that idle strangers cannot lock the real peers out. */
    if (e->n_inbound > ENS_INBOUND_MAX) {
        struct conn *old = NULL;
        for (struct conn *o = e->conns; o; o = o->next)
            if (o != c && !o->outbound && !o->ready && !o->closing &&
                (!old || o->born_ms <= old->born_ms))
                old = o;
        if (old)
            conn_close(old, "too many unauthenticated connections");
    }
    conn_start(c);
}

/* ------------------------------------------------------------------ */
/* start and stop                                                      */
/* ------------------------------------------------------------------ */

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

static int collect_session(void *arg, uint64_t session, uint32_t timeout_ms,
                           const char *owner)
{
    struct zk__ens *e = arg;
    int idx = member_index(e, ZK_ZAB_SESSION_OWNER(session));
    (void)timeout_ms;
    (void)owner;
    if (idx >= 0 && session > e->sessions[idx])
        e->sessions[idx] = session;
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

/* Builds the core from cfg and what the store holds. */
static int core_create(struct zk__ens *e, const struct zk_config *cfg)
{
    struct zk_zab_config zc = {0};
    struct zk_zab_restore st = {0};
    struct zk_store_info info;
    struct restore_buf rb = {0};
    int rc = zk_store_info(e->store, &info);

    zc.id = cfg->my_id;
    zc.n_members = cfg->n_servers;
    for (uint32_t i = 0; i < cfg->n_servers; i++) {
        zc.members[i].id = cfg->servers[i].id;
        zc.members[i].observer = cfg->servers[i].observer;
    }
    zc.init_limit_ticks = cfg->init_limit_ticks;
    zc.sync_limit_ticks = cfg->sync_limit_ticks;
    zc.session_timeout_ticks = (cfg->session_timeout_ms + cfg->tick_time_ms
                                - 1) / cfg->tick_time_ms;
    zc.trace = trace_fn;
    if (rc == 0 && getrandom(&zc.seed, sizeof(zc.seed), 0) !=
                       (ssize_t)sizeof(zc.seed))
        rc = -errno;
    if (rc == 0)
        rc = bump_incarnation(e, &zc.incarnation);
    if (rc == 0)
        rc = zk_store_sessions(e->store, collect_session, e);
    if (rc == 0) {
        rc = zk_store_log_scan(e->store, info.last_applied_zxid,
                               collect_entry, &rb);
        rc = rb.err ? rb.err : rc;
    }
    if (rc == 0) {
        st.hard.accepted_epoch = info.accepted_epoch;
        st.hard.current_epoch = info.current_epoch;
        st.applied_zxid = info.last_applied_zxid;
        memcpy(st.sessions, e->sessions, sizeof(st.sessions));
        st.entries = rb.v;
        st.n_entries = rb.n;
        e->w_applied = e->applied_zxid = info.last_applied_zxid;
        rc = zk_zab_create(&zc, &st, &e->z);
    }
    restore_buf_free(&rb);
    return rc;
}

/* Listener, tick timer, async, peers' timers; first dials. */
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
        rc = uv_listen((uv_stream_t *)&e->listener, SOMAXCONN, on_connection);
    if (rc)
        return rc;
    uv_timer_init(e->loop, &e->tick);
    e->n_handles++;
    e->tick.data = e;
    rc = uv_async_init(e->loop, &e->async, on_async);
    if (rc)
        return rc;
    e->n_handles++;
    e->async.data = e;
    for (uint32_t i = 0; i < e->n_peers; i++) {
        struct peer *p = &e->peers[i];
        uv_timer_init(e->loop, &p->timer);
        e->n_handles++;
        p->timer.data = p;
        if (p->dial)
            uv_timer_start(&p->timer, on_reconnect_timer, 0, 0);
    }
    return uv_timer_start(&e->tick, on_tick, e->tick_ms, e->tick_ms);
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
    e->tick_ms = cfg->tick_time_ms;
    e->sync_limit = cfg->sync_limit_ticks;
    e->session_timeout_ms = cfg->session_timeout_ms;
    zk__lease_init(&e->lease, zk__lease_ms(cfg->session_timeout_ms,
                                            cfg->tick_time_ms),
                   mono_ns());
    /* Long enough for a failover (syncLimit to notice, an election, a
     * sync), short enough that a replica without a quorum says so soon:
     * 3 s with the defaults. */
    e->prop_wait_ms = (uint64_t)3 * cfg->sync_limit_ticks *
                      cfg->tick_time_ms;
    if (e->prop_wait_ms < ENS_PROP_WAIT_MIN_MS)
        e->prop_wait_ms = ENS_PROP_WAIT_MIN_MS;
    memcpy(e->secret, cfg->secret, cfg->secret_len);
    e->secret_len = cfg->secret_len;
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
                         (uv_handle_t *)&e->tick, (uv_handle_t *)&e->async};

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
        conn_close(c, "stopping");
}

static void ens_free_now(struct zk__ens *e)
{
    if (e->z)
        zk_zab_destroy(e->z);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    e->stopping = 1;
    if (e->n_handles == 0) {
        e->n_handles = 1;
        handle_closed(e);
    } else {
        handles_close(e);
    }
}

int zk_replica_start_ensemble(const struct zk_replica_opts *opts,
                              const struct zk_config *cfg,
                              struct zk_replica **out)
{
    struct zk__ens *e = calloc(1, sizeof(*e));
    struct zk_replica *r = NULL;
    int rc;

    if (!e)
        return -ENOMEM;
    /* A write to a peer that just closed must be an EPIPE error on that
     * connection, not the death of the process (fs/ does the same). */
    signal(SIGPIPE, SIG_IGN);
    e->loop = opts->loop;
    e->store = opts->store;
    e->applied = opts->applied;
    e->reset = opts->reset;
    e->session_lost = opts->session_lost;
    e->applied_arg = opts->applied_arg;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    rc = ens_configure(e, cfg);
    if (rc == 0)
        rc = core_create(e, cfg);
    if (rc == 0)
        rc = handles_start(e);
    if (rc == 0 && !(r = zk__replica_wrap_ensemble(e)))
        rc = -ENOMEM;
    if (rc == 0)
        rc = -pthread_create(&e->thread, NULL, worker_main, e);
    if (rc)
        goto fail;
    e->thread_started = 1;
    zk_log(ZK_LOG_INFO, "ensemble replica %u: %u servers, tick %u ms, "
           "applied 0x%llx", e->my_id, cfg->n_servers, e->tick_ms,
           (unsigned long long)e->applied_zxid);
    *out = r;
    return 0;
fail:
    zk_log(ZK_LOG_ERROR, "ensemble replica %u: cannot start: %s",
           cfg->my_id, zk_strerror(rc));
    free(r);
    ens_free_now(e);
    return rc;
}

void zk__ens_stop(struct zk__ens *e, int close_session)
{
    if (close_session)
        zk_log(ZK_LOG_INFO, "ensemble replica %u: leaving; the leader "
               "expires its session after the session timeout", e->my_id);
    e->stopping = 1;
    pthread_mutex_lock(&e->mu);
    e->worker_stop = 1;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    for (size_t i = 0; e->rd_out && i < e->rd.n_commits &&
                    i < e->results_cap; i++) {
        zk_apply_result_free(e->results[i]);
        e->results[i] = NULL;
    }
    zk__snap_rx_free(e->job_snap);
    zk__snap_rx_free(e->snap_pending);
    e->job_snap = e->snap_pending = NULL;
    for (struct snap_tx *t = e->stxs; t; t = t->next)
        stx_cancel(t);
    while (e->stxs) {
        struct snap_tx *t = e->stxs;
        e->stxs = t->next;
        stx_free(t);
    }
    expire_props(e, -ESHUTDOWN);
    ens_free_now(e);
}
