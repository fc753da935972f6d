/*
 * ens_int.h — the private header of the ensemble runtime (replica/ens_*.c):
 * the libuv runtime that drives the Zab core (zk_zab.h) for one replica
 * of an ensemble: TCP to the other servers in authenticated frames
 * (zk_frame.h), the core's ticks from a uv_timer, and its Ready/Advance
 * loop with persistence on a worker thread.
 *
 * What it keeps true (the first two through driver.c, driver.h):
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
 * Files (one concern each, all sharing struct zk__ens below):
 *  - ens_driver.c: the driver of the core (driver.c: Readies persisted
 *    and delivered, the session table, proposals and their resubmission,
 *    the lease) wired in: its store on LMDB run by the worker thread, its
 *    transport, CLOCK_MONOTONIC, the tick timer;
 *  - ens_net.c: TCP connections, the handshake, frames, sending and
 *    receiving messages;
 *  - ens_snapsend.c: the snapshot sender (leader);
 *  - ens_snaprecv.c: receiving a snapshot (learner; its format: snap_rx.c);
 *  - ens_status.c: zk_replica_status for an ensemble member;
 *  - ens_start.c: configuration, the core's restore from the store,
 *    handles, start and stop.
 *
 * Threads: everything runs on the loop thread except
 * zk__ens_worker_main(), which only touches the store, the outstanding
 * Ready (stable until advance) and the fields marked (worker), and
 * snap_tx_main() (ens_snapsend.c), which only touches its struct snap_tx
 * (under its mutex) and its pinned store snapshot.
 */
#ifndef ZK_ENS_INT_H
#define ZK_ENS_INT_H

#include "ensemble_int.h"
#include "replica_int.h"
#include "snap_rx.h"
#include "zk_common.h"
#include "zk_config.h"
#include "zk_frame.h"
#include "zk_zab.h"
#include "driver.h"

#include <pthread.h>
#include <sys/socket.h>
#include <uv.h>
#include <zstd.h>

#define ENS_BACKOFF_MIN_MS    50          /* first reconnect delay          */
#define ENS_BACKOFF_MAX_MS    2000        /* reconnect delay cap            */
#define ENS_SENDQ_BYTES_MAX   (64u << 20) /* unsent bytes on a connection   */
#define ENS_INBOUND_MAX       64          /* connections not yet a peer's   */
#define ENS_HANDSHAKE_MS      3000        /* to prove the secret, at most   */
#define ENS_READ_BYTES        65536       /* one read's buffer              */
#define ENS_PROP_WAIT_MIN_MS  1000        /* least wait for a proposal      */
#define ENS_HERE_ENTRIES_MAX  64          /* a batch on the loop          */
#define ENS_HERE_BYTES_MAX    (256u << 10) /* ... at most (st_write_here)  */
#define ENS_HERE_SLOW_US      1000        /* on the loop only while batches
                                             take less on average          */
#define ENS_WRITE_AVG_CAP_US  16000       /* one batch counts at most this */
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
#define ENS_SNAP_RETRY_MIN_MS 500         /* a learner's snapshots in quick
                                             succession: spaced at least  */
#define ENS_SNAP_RETRY_MAX_MS 30000       /* ... doubling up to this      */
#define ENS_SNAP_RETRY_QUIET_MS 60000     /* no snapshot for this long:
                                             the spacing starts over      */
#define ENS_MSG_BYTES_MAX     (ZK_ZAB_MSG_BATCH_BYTES + \
                               2 * ZK_ZAB_PAYLOAD_MAX) /* one encoded msg */
#define ENS_OWNER_MAX         32          /* "server.N" session owner       */
#define ENS_TEST_DELAY_MAX_US 10000000    /* ZKFS_TEST_FSYNC_DELAY_US bound  */
#define ENS_RECOVER_MIN_MS    1000        /* after a failed store batch:
                                             first try of a new core       */
#define ENS_RECOVER_MAX_MS    30000       /* ... doubling up to this       */
#define ENS_RECOVER_CALM_MS   60000       /* no failure for this long: the
                                             spacing starts over           */

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
    /* Loop: snapshots to this peer (ens_snapsend.c, snap_may_start):
     * the last one's start, the spacing now, the earliest next start. */
    uint64_t snap_last_ms, snap_next_ms;
    uint32_t snap_gap_ms;
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
    int was_current;              /* closed while its peer's connection   */
    uint64_t born_ms;             /* uv_now() at creation                 */
    size_t queued_bytes;
    uint8_t *frag;                /* fragments of a message so far        */
    struct zk__snap_rx *snap;     /* stream after a SNAP, until its end    */
    struct zk_zab_msg snap_msg;   /* that SNAP, stepped at the end         */
    struct snap_tx *stx;          /* snapshot streaming out on it          */
    struct held *held, *held_tail; /* messages waiting for its end        */
    size_t held_bytes;
    size_t frag_len, frag_cap;
    /* Frames sealed since the last flush (zk__ens_flush): one write per
     * connection per loop iteration, not one per message. Counted in
     * queued_bytes. */
    uint8_t *obuf;
    size_t olen, ocap;
    uint8_t rbuf[ENS_READ_BYTES];
};

struct wreq {
    uv_write_t req;
    struct conn *c;
    size_t len;
    uint8_t buf[];
};

struct zk__ens {
    struct zk_replica base;       /* first: the ops table (replica_int.h) */
    uv_loop_t *loop;
    struct zk_store *store;
    zk_replica_applied_cb applied;
    zk_replica_reset_cb reset;
    zk_replica_session_lost_cb session_lost;
    int (*busy)(void *arg);                /* applied_arg's; NULL: never  */
    void *applied_arg;
    struct zk_driver *d;          /* the core's driver (driver.h)          */
    uint32_t my_id, tick_ms, sync_limit, session_timeout_ms;
    uint64_t prop_wait_ms;
    /* The store's "restored" mark was set at start (ens_start.c): the
     * first persisted hard state that moves its epochs from these clears
     * it (worker thread only, after start). */
    int restored_mark;
    uint64_t restored_acc, restored_cur;
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
    uv_prepare_t flush;           /* writes what the iteration sealed      */
    int flush_armed;              /* loop: flush started                   */
    int n_handles;                /* open handles; e freed at 0 if stopping */
    int stopping;
    struct conn *conns;
    uint32_t n_inbound;           /* inbound connections without a peer    */
    struct zk_zab_entry rx_entries[ZK_ZAB_MSG_ENTRIES_MAX];
    /* The worker's hand-off (mu): zk_driver_write() of the outstanding
     * Ready. */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int job, job_done, job_err, worker_stop;   /* mu */
    uint64_t w_time_ms, w_time0;  /* writer: time of the last WRITE        */
    uint64_t test_commit_delay_us; /* ZKFS_TEST_FSYNC_DELAY_US (tests only) */
    uint64_t write_avg_ns;         /* a batch's write, running average
                                      (atomic: worker and loop)            */
    int observer;                 /* this replica observes: never counted  */
    int w_logged;                 /* writer: this batch installs or sets
                                     the hard state (LMDB synced whole)    */
    struct zk__snap_rx *snap_pending; /* loop: complete, SNAP stepped     */
    struct snap_tx *stxs;         /* loop: snapshot senders                */
    char snap_dir[ZK_CONFIG_PATH_MAX]; /* received snapshots' temp files  */
    uint64_t snaps_sent, snaps_installed, snaps_rejected;   /* loop */
    uint64_t snaps_held;          /* loop: SNAPs not streamed (spacing)   */
    uint64_t snap_sent_raw, snap_sent_wire;                 /* loop */
    uint64_t snap_inst_raw, snap_inst_wire;                 /* loop */
    /* Loop: an election being timed (mono ns when LOOKING was first
     * seen; 0: none) and the durations of those that ended. */
    uint64_t elect_t0_ns;
    uint64_t elect_le[ZK_REPLICA_ELECTION_BUCKETS];
    uint64_t elect_count, elect_sum_ns;
    struct zk__snap_rx *job_snap; /* the Ready's INSTALL reads it (worker) */
    struct zk_zab_config zc;      /* the core's config (new cores: seed and
                                     incarnation drawn again)             */
    /* Loop: after a failed store batch (ens_start.c, recover_tick). */
    uint64_t recover_at_ms;       /* next try of a new core (0: none due)  */
    uint32_t recover_gap_ms;      /* the spacing now (0: calm)             */
    uint64_t recovered_ms;        /* when the last new core took over      */
    uint64_t recoveries;          /* new cores made after a failure        */
    uint64_t carry_batches, carry_fsyncs; /* failed drivers' counters      */
    uint64_t carry_here;
};

/* ---- ens_start.c ----------------------------------------------------- */

/* Every tick: after a failed store batch, tries a new core from the store
 * (with backoff), as a restart of the process would, keeping the mount. */
void zk__ens_recover_tick(struct zk__ens *e);

/* ---- ens_driver.c ---------------------------------------------------- */

/* The ensemble's side of the public zk_replica_* functions (ens_start.c
 * puts them in the ops table); contracts as in zk_replica.h and
 * replica_int.h. */
int zk__ens_propose(struct zk__ens *e, uint8_t *buf, size_t len,
                    zk_replica_done_cb cb, void *arg);
int zk__ens_sync(struct zk__ens *e, zk_replica_done_cb cb, void *arg);
uint64_t zk__ens_session(const struct zk__ens *e);
int zk__ens_lease_check(struct zk__ens *e);
void zk__ens_give_up(struct zk__ens *e);

/* The index of member id in e->member_ids, or -1. */
int zk__ens_member_index(const struct zk__ens *e, uint32_t id);
/* Fills dc's store, transport, clock, log and up-calls for e. */
void zk__ens_driver_wire(struct zk__ens *e, struct zk_driver_config *dc);
/* The persistence thread: runs zk_driver_write() for each Ready. */
void *zk__ens_worker_main(void *arg);
/* The async handle's callback: the worker's result, snapshot senders. */
void zk__ens_on_async(uv_async_t *h);
/* The tick timer's callback: the driver's tick, the handshake sweep. */
void zk__ens_on_tick(uv_timer_t *t);
/* CLOCK_BOOTTIME in ns: the driver's clock (it runs through a suspend). */
uint64_t zk__ens_clock_ns(void);

/* ---- ens_net.c ------------------------------------------------------- */

/* Sends m to its peer; drops it without an authenticated connection. */
void zk__ens_send_msg(struct zk__ens *e, const struct zk_zab_msg *m);
/* Closes c (once); a dialled peer is redialled after its backoff. */
void zk__ens_conn_close(struct conn *c, const char *why);
/* Queues buf[0..len) as one DATA frame with flags. Errors: -ENOMEM, from
 * zk_frame_conn_seal. */
int zk__ens_send_frame(struct conn *c, uint16_t flags, const uint8_t *buf,
                       size_t len);
/* Writes every connection's sealed frames (the flush handle, before the
 * loop polls; also before a connection closes). */
void zk__ens_flush(uv_prepare_t *h);
/* Encodes m (len bytes, zk_zab_msg_encoded_size) and sends it, in
 * fragments if it is larger than a frame. */
int zk__ens_send_encoded(struct conn *c, const struct zk_zab_msg *m,
                         size_t len);
/* The snapshot on c has ended: what was held goes out, in order. */
void zk__ens_held_flush(struct conn *c);
/* Closes connections that have not finished the handshake in time. */
void zk__ens_handshake_sweep(struct zk__ens *e);
/* libuv callbacks set up by ens_start.c. */
void zk__ens_on_connection(uv_stream_t *server, int status);
void zk__ens_on_reconnect_timer(uv_timer_t *t);

/* ---- ens_snapsend.c -------------------------------------------------- */

/* SNAP: pins the store's state, sends m and starts the sender thread. */
void zk__ens_send_snap(struct zk__ens *e, struct conn *c,
                       const struct zk_zab_msg *m, size_t len);
/* Moves queued chunks onto t's connection while it has room. */
void zk__ens_stx_pump(struct snap_tx *t);
/* Tells t's thread to stop (joined later by zk__ens_stx_service). */
void zk__ens_stx_cancel(struct snap_tx *t);
/* Joins t's thread and frees t. */
void zk__ens_stx_free(struct snap_tx *t);
/* Pumps every sender, reports failures, reaps those that are done. */
void zk__ens_stx_service(struct zk__ens *e);
/* Whether a progress line is due (every 10% or ENS_SNAP_LOG_MS); updates
 * *pct and *log_ms when it is. */
int zk__ens_progress_due(uint64_t done, uint64_t total, unsigned *pct,
                         uint64_t *log_ms, uint64_t now);

/* ---- ens_snaprecv.c -------------------------------------------------- */

/* Holds the SNAP m until its snapshot stream has arrived on c. */
int zk__ens_snap_hold(struct conn *c, const struct zk_zab_msg *m);
/* A BEGIN, data or END frame of the snapshot streaming in on c. */
void zk__ens_on_snap_frame(struct conn *c, const struct zk_frame *f);

/* ---- ens_status.c ---------------------------------------------------- */

void zk__ens_status(const struct zk__ens *e, struct zk_replica_status *out);
/* After anything that may move the core (a message stepped, a Ready
 * written, a tick): times elections, from the core first seen LOOKING
 * to an established leader. */
void zk__ens_elect_watch(struct zk__ens *e);

/* ---- ens_start.c ----------------------------------------------------- */

/* Called from every handle's close callback; frees e after the last one
 * once it is stopping. */
void zk__ens_handle_closed(struct zk__ens *e);

#endif /* ZK_ENS_INT_H */
