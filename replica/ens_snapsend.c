/*
 * ens_snapsend.c — the leader's snapshot sender: a SNAP pins the store's
 * state on the loop thread, a sender thread streams it through zstd as
 * BEGIN, data and END frames, and the loop queues those on the
 * learner's connection within ENS_SNAP_INFLIGHT_MAX unsent bytes. The
 * messages to that learner sent meanwhile are held until the end.
 */
#include "ens_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* zk__ens_test_snap_fault(): read by sender threads. */
static int snap_fault;

void zk__ens_test_snap_fault(int fault)
{
    __atomic_store_n(&snap_fault, fault, __ATOMIC_RELAXED);
}

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
int zk__ens_progress_due(uint64_t done, uint64_t total, unsigned *pct,
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
        e->snap_sent_wire += it->len;
        e->snap_sent_raw += it->raw_end - t->raw_sent;
        t->wire_sent += it->len;
        t->raw_sent = it->raw_end;
        if (zk__ens_progress_due(t->raw_sent, t->total, &t->log_pct, &t->log_ms,
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
void zk__ens_stx_pump(struct snap_tx *t)
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
        int rc = zk__ens_send_frame(c, it->flags, it->buf, it->len);
        if (rc == 0)
            stx_sent(t, it);
        free(it);
        if (rc) {
            zk__ens_conn_close(c, "snapshot not sent");
            return;
        }
    }
    if (c && t->ended) {
        /* Done with c: its close must not find t, nor t find it. */
        t->c = NULL;
        if (c->stx == t)
            c->stx = NULL;
        zk__ens_held_flush(c);
        uv_async_send(&t->e->async);   /* zk__ens_stx_service reaps t soon */
    }
}

/* Loop: tells the thread to stop (it is joined by zk__ens_stx_service). */
void zk__ens_stx_cancel(struct snap_tx *t)
{
    if (t->c && t->c->stx == t)
        t->c->stx = NULL;
    t->c = NULL;
    pthread_mutex_lock(&t->mu);
    __atomic_store_n(&t->cancel, 1, __ATOMIC_RELAXED);
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

void zk__ens_stx_free(struct snap_tx *t)
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

/* Loop (zk__ens_on_async): pumps every sender, reports failures, and joins and
 * frees those that are done (ended, or cancelled) or failed. */
void zk__ens_stx_service(struct zk__ens *e)
{
    struct snap_tx **pp = &e->stxs;

    while (*pp) {
        struct snap_tx *t = *pp;
        zk__ens_stx_pump(t);
        pthread_mutex_lock(&t->mu);
        int finished = t->finished, err = t->err;
        pthread_mutex_unlock(&t->mu);
        if (finished && err && t->c) {
            zk_log(ZK_LOG_WARN, "ensemble: snapshot for server %u at 0x%llx "
                   "failed: %s", t->to, (unsigned long long)t->zxid,
                   zk_strerror(err));
            zk__ens_conn_close(t->c, "snapshot not sent");
        }
        if (finished && (err || t->ended || !t->c)) {
            if (t->c && t->c->stx == t)
                t->c->stx = NULL;
            *pp = t->next;
            zk__ens_stx_free(t);
            continue;
        }
        pp = &t->next;
    }
}

/* Whether a snapshot may stream to p now (a learner that refuses or
 * loses every snapshot would otherwise have the whole tree streamed to
 * it again and again, as fast as it asks). Snapshots started within
 * ENS_SNAP_RETRY_QUIET_MS of the previous one are spaced by a gap that
 * doubles from ENS_SNAP_RETRY_MIN_MS to ENS_SNAP_RETRY_MAX_MS (the first
 * retry goes at once: one lost transfer costs no wait); a quiet period
 * starts the spacing over. On 1, the start is recorded. */
static int snap_may_start(struct peer *p, uint64_t now)
{
    if (now < p->snap_next_ms)
        return 0;
    if (p->snap_last_ms && now - p->snap_last_ms < ENS_SNAP_RETRY_QUIET_MS) {
        uint32_t gap = p->snap_gap_ms ? p->snap_gap_ms * 2
                                      : ENS_SNAP_RETRY_MIN_MS;
        p->snap_gap_ms = gap > ENS_SNAP_RETRY_MAX_MS ? ENS_SNAP_RETRY_MAX_MS
                                                     : gap;
    } else {
        p->snap_gap_ms = 0;
    }
    p->snap_last_ms = now;
    p->snap_next_ms = now + p->snap_gap_ms;
    return 1;
}

/* A SNAP that may not stream yet: the connection goes (messages to the
 * learner are dropped until it is back; its core asks again), and a peer
 * we dial is redialled no sooner than the snapshot may start. */
static void snap_hold(struct zk__ens *e, struct conn *c,
                      const struct zk_zab_msg *m, uint64_t now)
{
    struct peer *p = c->peer;
    uint64_t wait = p->snap_next_ms - now;

    e->snaps_held++;
    zk_log(ZK_LOG_WARN, "ensemble: server %u asks for another snapshot "
           "(0x%llx) %llu ms after the last one; holding it back for %llu "
           "ms", m->to, (unsigned long long)m->zxid,
           (unsigned long long)(now - p->snap_last_ms),
           (unsigned long long)wait);
    if (p->dial && p->backoff_ms < wait)
        p->backoff_ms = (uint32_t)wait;
    zk__ens_conn_close(c, "snapshot held back");
}

/* SNAP: pins the store's state (while a Ready is out the worker is idle,
 * so the store holds exactly the state the core named, m->zxid; anything
 * else is refused), sends the message, and starts a sender thread for the
 * snapshot. Later messages to that learner wait for its end. */
void zk__ens_send_snap(struct zk__ens *e, struct conn *c,
                      const struct zk_zab_msg *m, size_t len)
{
    struct snap_tx *t = NULL;
    struct zk_store_snap *sn = NULL;
    uint64_t zxid = 0, now = uv_now(e->loop);
    int rc;

    if (!c->stx && c->peer && !snap_may_start(c->peer, now)) {
        snap_hold(e, c, m, now);
        return;
    }
    rc = c->stx ? -EBUSY : zk_store_snapshot_open(e->store, &sn, &zxid);

    if (rc == 0 && zxid != m->zxid)
        rc = ZK_ECORRUPT;
    if (rc == 0 && !(t = calloc(1, sizeof(*t))))
        rc = -ENOMEM;
    if (rc == 0)
        rc = zk__ens_send_encoded(c, m, len);
    if (rc == 0) {
        t->e = e;
        t->c = c;
        t->sn = sn;
        t->to = m->to;
        t->zxid = zxid;
        t->start_ms = t->log_ms = uv_now(e->loop);
        pthread_mutex_init(&t->mu, NULL);
        pthread_cond_init(&t->cv, NULL);
        sn = NULL;                 /* the thread (or zk__ens_stx_free) closes it */
        rc = -pthread_create(&t->thread, NULL, snap_tx_main, t);
        t->thread_started = rc == 0;
        if (rc)
            zk__ens_stx_free(t);
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
        zk__ens_conn_close(c, "snapshot not sent");
        return;
    }
    zk_log(ZK_LOG_INFO, "ensemble: streaming a snapshot at 0x%llx to "
           "server %u", (unsigned long long)zxid, m->to);
}
