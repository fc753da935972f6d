/*
 * batch.c — the write side of the store: one LMDB write transaction per
 * batch, log appends and truncation, applying transactions with their
 * zxid recorded in the same LMDB transaction, and the log/session readers.
 *
 * What it keeps true: a batch either commits whole (fsync'd, pages then
 * meta page, before zk_store_batch_commit returns; a lazy commit syncs the
 * pages only, so a power cut may undo it whole; a log without sync may
 * lose its last records to a power cut, even below last_applied) or
 * leaves nothing;
 * last_applied only grows; log entries at or below last_applied are never
 * truncated, and the log is trimmed from the front by at most
 * ZK__LOG_TRIM_MAX entries per apply.
 */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

/* ------------------------------------------------------------------ */
/* Readers of the log and sessions                                     */
/* ------------------------------------------------------------------ */

int zk_store_log_get(struct zk_store *s, uint64_t zxid, uint8_t **buf,
                     size_t *len)
{
    pthread_mutex_lock(&s->wal_mu);
    int rc = zk__wal_get(s->wal, zxid, buf, len);
    pthread_mutex_unlock(&s->wal_mu);
    return rc;
}

int zk_store_log_scan(struct zk_store *s, uint64_t after, zk_store_log_cb cb,
                      void *arg)
{
    if (after == UINT64_MAX)
        return 0;
    pthread_mutex_lock(&s->wal_mu);
    int rc = zk__wal_scan(s->wal, after, cb, arg);
    pthread_mutex_unlock(&s->wal_mu);
    return rc;
}

int zk_store_sessions(struct zk_store *s, zk_store_session_cb cb, void *arg)
{
    MDB_txn *t;
    MDB_cursor *c;
    MDB_val k, v;
    int rc = zk__rd_begin(s, &t);
    if (rc != 0)
        return rc;
    rc = mdb_cursor_open(t, s->sessions, &c);
    if (rc != 0) {
        zk__rd_end(s, t);
        return zk__mdb_err(rc, "cursor open");
    }
    int op = MDB_FIRST;
    while ((rc = mdb_cursor_get(c, &k, &v, op)) == 0) {
        char owner[ZK_OWNER_MAX + 1];
        op = MDB_NEXT;
        if (k.mv_size != 8 || v.mv_size < 4 || v.mv_size > 4 + ZK_OWNER_MAX) {
            rc = ZK_ECORRUPT;
            goto done;
        }
        memcpy(owner, (const uint8_t *)v.mv_data + 4, v.mv_size - 4);
        owner[v.mv_size - 4] = '\0';
        rc = cb(arg, zk_get_be64(k.mv_data), zk_get_be32(v.mv_data), owner);
        if (rc != 0)
            goto done;   /* the callback's value, returned as is */
    }
    rc = rc == MDB_NOTFOUND ? 0 : zk__mdb_err(rc, "session scan");
done:
    mdb_cursor_close(c);
    zk__rd_end(s, t);
    return rc;
}

int zk_store_ephemerals(struct zk_store *s, uint64_t session,
                        zk_store_ephemeral_cb cb, void *arg)
{
    MDB_txn *t;
    MDB_cursor *c;
    uint8_t kb[16];
    MDB_val k = {8, kb}, v;
    int rc = zk__rd_begin(s, &t);

    if (rc != 0)
        return rc;
    rc = mdb_cursor_open(t, s->ephem, &c);
    if (rc != 0) {
        zk__rd_end(s, t);
        return zk__mdb_err(rc, "cursor open");
    }
    zk_put_be64(kb, session);
    int op = MDB_SET_RANGE;
    while ((rc = mdb_cursor_get(c, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        if (k.mv_size != 16) {
            rc = ZK_ECORRUPT;
            goto done;
        }
        if (zk_get_be64(k.mv_data) != session)
            break;
        rc = cb(arg, zk_get_be64((const uint8_t *)k.mv_data + 8));
        if (rc != 0)
            goto done;
    }
    rc = rc == 0 || rc == MDB_NOTFOUND ? 0
                                       : zk__mdb_err(rc, "ephemeral scan");
done:
    mdb_cursor_close(c);
    zk__rd_end(s, t);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Batches                                                             */
/* ------------------------------------------------------------------ */

int zk_store_batch_begin(struct zk_store *s, struct zk_store_batch **out)
{
    struct zk_store_batch *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return -ENOMEM;
    b->s = s;
    int rc = mdb_txn_begin(s->env, NULL, 0, &b->txn);
    if (rc != 0) {
        free(b);
        return zk__mdb_err(rc, "write txn begin");
    }
    rc = zk__meta_get(s, b->txn, ZK__META_LAST_APPLIED, &b->last_applied);
    if (rc != 0) {
        zk_store_batch_abort(b);
        return rc == -ENOENT ? ZK_ECORRUPT : rc;
    }
    b->log_last = zk__wal_last_upto(s->wal, UINT64_MAX);
    *out = b;
    return 0;
}

int zk_store_batch_log(struct zk_store_batch *b, uint64_t zxid,
                       const uint8_t *payload, size_t len)
{
    if (zxid <= b->log_last)
        return -EINVAL;   /* not above every logged zxid */
    if (len > UINT32_MAX)
        return -EFBIG;
    if (b->nrecs == b->caprecs) {
        size_t cap = b->caprecs ? b->caprecs * 2 : 16;
        struct zk__wal_rec *p = realloc(b->recs, cap * sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        b->recs = p;
        b->caprecs = cap;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, payload, len);
    b->recs[b->nrecs++] = (struct zk__wal_rec){zxid, copy, (uint32_t)len};
    b->log_last = zxid;
    return 0;
}

static void recs_free(struct zk_store_batch *b, size_t from)
{
    for (size_t i = from; i < b->nrecs; i++)
        free((void *)b->recs[i].payload);
    b->nrecs = from;
}

int zk_store_batch_log_truncate(struct zk_store_batch *b, uint64_t after)
{
    if (after < b->last_applied)
        return -EINVAL;
    size_t keep = 0;
    while (keep < b->nrecs && b->recs[keep].zxid <= after)
        keep++;
    recs_free(b, keep);
    if (!b->install) {
        b->trunc_after = b->truncate && b->trunc_after < after
                             ? b->trunc_after : after;
        b->truncate = 1;
    }
    if (b->nrecs > 0)
        b->log_last = b->recs[b->nrecs - 1].zxid;
    else
        b->log_last = b->install ? 0
                                 : zk__wal_last_upto(b->s->wal,
                                                     b->trunc_after);
    return 0;
}

/* zk_store_batch_install_begin: the log of the batch starts empty, in a
 * new generation written at commit (batch_commit). */
void zk__batch_log_reset(struct zk_store_batch *b)
{
    recs_free(b, 0);
    b->install = 1;
    b->truncate = 0;
    b->log_last = 0;
    b->tree = 1;
    b->durable = 1;
}

static struct zk_apply_result *result_new(uint64_t zxid, uint32_t nops)
{
    struct zk_apply_result *res = calloc(1, sizeof(*res));
    if (res == NULL)
        return NULL;
    res->zxid = zxid;
    res->nops = nops;
    res->ops = calloc(nops, sizeof(*res->ops));
    if (res->ops == NULL) {
        free(res);
        return NULL;
    }
    return res;
}

void zk_apply_result_free(struct zk_apply_result *res)
{
    if (res == NULL)
        return;
    free(res->ops);
    free(res->changes);
    free(res);
}

int zk_store_batch_apply(struct zk_store_batch *b, uint64_t zxid,
                         const uint8_t *payload, size_t len,
                         struct zk_apply_result **out)
{
    struct zk_store *s = b->s;
    struct zk_txn *txn = NULL;
    struct zk_apply_result *res = NULL;
    if (zxid <= b->last_applied)
        return -EINVAL;
    int rc = zk_txn_decode(payload, len, &txn);
    if (rc != 0) {
        zk_log(ZK_LOG_ERROR, "store: transaction at zxid %#llx does not "
               "decode: %s", (unsigned long long)zxid, zk_strerror(rc));
        return rc == -ENOMEM ? rc : ZK_ECORRUPT;
    }
    b->tree = 1;
    for (int tries = 0;; tries++) {
        res = result_new(zxid, txn->nops);
        if (res == NULL) {
            rc = -ENOMEM;
            goto fail;
        }
        res->bytes = (uint32_t)len;
        rc = zk__apply_txn(s, b->txn, zxid, txn, res);
        /* The map is full (nothing reaches the disk before the commit):
         * pages freed since the last checkpoint are kept by its reader;
         * a checkpoint now lets them go, once. */
        if (rc != -ENOSPC || tries > 0 || !zk__ckpt_unpin(s))
            break;
        zk_apply_result_free(res);
        res = NULL;
    }
    if (rc == 0)
        rc = zk__meta_put(s, b->txn, ZK__META_LAST_APPLIED, zxid);
    if (rc != 0)
        goto fail;
    b->last_applied = zxid;
    zk_txn_free(txn);
    *out = res;
    return 0;
fail:
    zk_apply_result_free(res);
    zk_txn_free(txn);
    return rc;
}

int zk_store_batch_meta_set(struct zk_store_batch *b, const char *key,
                            uint64_t val)
{
    if (key == NULL || *key == '\0' || strlen(key) > 64 ||
        zk__meta_reserved(key))
        return -EINVAL;
    b->tree = 1;
    b->durable = 1;
    return zk__meta_put(b->s, b->txn, key, val);
}

/* Maps a commit's error. LMDB reports a short write (the file system took
 * part of a page write, then was full) as EIO ("short write, filesystem
 * full?"); when the file system is indeed (nearly) full that is ENOSPC for
 * the writer, not an I/O error. */
static int commit_err(struct zk_store *s, int rc)
{
    struct statvfs sv;
    int fd;
    if (rc == EIO && mdb_env_get_fd(s->env, &fd) == 0 &&
        fstatvfs(fd, &sv) == 0 &&
        (uint64_t)sv.f_bavail * sv.f_frsize < ZK__ENOSPC_SLACK_BYTES)
        rc = ENOSPC;
    return zk__mdb_err(rc, "commit");
}

const uint64_t zk_store_fsync_le_ns[ZK_STORE_FSYNC_BUCKETS - 1] = {
    100000, 250000, 500000, 1000000, 2000000, 5000000, 10000000, 20000000,
    50000000, 100000000, 200000000, 500000000, 1000000000};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One commit of ns into the histogram (the writer thread only). */
static void fsync_count(struct zk_store *s, uint64_t ns)
{
    size_t b = 0;
    while (b < ZK_ARRAY_LEN(zk_store_fsync_le_ns) &&
           ns > zk_store_fsync_le_ns[b])
        b++;
    atomic_fetch_add_explicit(&s->fsync_le[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->fsync_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->fsync_sum_ns, ns, memory_order_relaxed);
}

static void batch_free(struct zk_store_batch *b)
{
    recs_free(b, 0);
    free(b->recs);
    free(b);
}

/* The log side of a batch: made durable before the LMDB transaction is
 * committed, so that last_applied never passes the durable log. */
static int log_commit(struct zk_store_batch *b)
{
    struct zk_store *s = b->s;
    int rc = 0;
    if (b->truncate)
        rc = zk__wal_truncate(s->wal, b->trunc_after);
    if (rc == 0 && b->nrecs > 0)
        rc = zk__wal_append(s->wal, b->recs, b->nrecs);
    return rc;
}

/* Nothing of a failed batch is kept: its records leave the log again (a
 * truncation it made stays; Zab repeats it anyway). If even that fails,
 * the log refuses every later write (wal.c) and a restart cuts it. */
static void log_undo(struct zk_store *s, uint64_t after)
{
    if (zk__wal_truncate(s->wal, after) != 0)
        zk_log(ZK_LOG_ERROR, "store: the log may keep the records of a "
               "failed batch above %#llx", (unsigned long long)after);
}

/* An install's log: a new generation holding the records logged after
 * the install, durable before the LMDB transaction that names it (and
 * holds the installed tree) commits. Until then the store still opens
 * with the old generation, and the new one's files are deleted. */
static int install_log(struct zk_store_batch *b, struct zk__wal **nw)
{
    struct zk_store *s = b->s;
    int rc = zk__wal_open(s->dir, s->wal_gen + 1, s->wal_seg_bytes, 0, nw);
    if (rc == 0 && b->nrecs > 0)
        rc = zk__wal_append(*nw, b->recs, b->nrecs);
    if (rc == 0)
        rc = zk__meta_put(s, b->txn, ZK__META_WAL_GEN, s->wal_gen + 1);
    if (rc != 0) {
        zk__wal_destroy(*nw);
        *nw = NULL;
    }
    return rc;
}

/* After a commit: the new log generation replaces the old one (written
 * with sync, then as the store's log is: zk_store_log_sync). */
static void install_swap(struct zk_store *s, struct zk__wal *nw)
{
    zk__wal_set_sync(nw, !s->log_nosync);
    pthread_mutex_lock(&s->wal_mu);
    struct zk__wal *old = s->wal;
    s->wal = nw;
    s->wal_gen++;
    pthread_mutex_unlock(&s->wal_mu);
    zk__wal_destroy(old);
}

/* The log side first (durable), then the LMDB transaction, if the batch
 * changed anything in it: synced whole (pages, then meta page) when
 * durable or when it holds what the log cannot give back (meta keys, an
 * install); otherwise lazily (MDB_NOMETASYNC, see env_open: the pages
 * synced, the meta page written but not), as its applies can be made
 * again from the log. Then the log is trimmed, never past what LMDB has
 * durably applied: after a lazy commit that is the previous commit's
 * last_applied (this commit's page sync made that one's meta page
 * durable). */
static int batch_commit(struct zk_store_batch *b, int durable)
{
    struct zk_store *s = b->s;
    struct zk__wal *nw = NULL;
    uint64_t t0 = now_ns();
    /* A checkpoint that failed (its sync: the system may have dropped
     * pages it could not write) fails every commit after it: the driver
     * stops, and a restart starts again from the last checkpoint. */
    int rc = -(int)atomic_load_explicit(&s->ck.err, memory_order_acquire);
    if (rc != 0) {
        mdb_txn_abort(b->txn);
        batch_free(b);
        return rc == -EIO || rc == -ENOSPC ? commit_err(s, -rc) : rc;
    }
    rc = b->install ? install_log(b, &nw) : log_commit(b);
    uint64_t undo = !b->install && b->nrecs > 0 ? b->recs[0].zxid - 1 : 0;
    if (rc != 0 && undo != 0)     /* a first segment may have taken some */
        log_undo(s, undo);
    if (rc != 0 || !b->tree) {
        mdb_txn_abort(b->txn);
        batch_free(b);
        if (rc == 0)
            fsync_count(s, now_ns() - t0);
        return rc;
    }
    durable |= b->durable;
    uint64_t applied = b->last_applied;
    /* Readers check this against their txn id (zk__rd_begin). */
    rc = zk__meta_put(s, b->txn, ZK__META_COMMIT_TXN, mdb_txn_id(b->txn));
    if (rc == 0)
        rc = zk__ckpt_commit(s, b->txn, applied);
    else
        mdb_txn_abort(b->txn);
    batch_free(b);
    if (rc == 0 && durable) {
        rc = s->ck.on ? zk__ckpt_run(s) : mdb_env_sync(s->env, 1);
        if (rc == -EIO || rc == -ENOSPC)
            rc = -rc;                   /* as LMDB's: commit_err */
    } else if (rc == 0) {
        zk__ckpt_poke(s);
    }
    if (rc != 0) {
        /* Before the undo: it may free a new segment's space. */
        rc = rc < 0 ? rc : commit_err(s, rc);
        if (undo != 0)
            log_undo(s, undo);
        zk__wal_destroy(nw);
        return rc;
    }
    if (nw != NULL)
        install_swap(s, nw);
    fsync_count(s, now_ns() - t0);
    /* The log keeps what a power cut could take from the tree: with
     * checkpoints, everything after the last one; without, what the last
     * lazy commit applied (this commit's page sync made the one before
     * it durable). */
    uint64_t safe = s->ck.on ? atomic_load_explicit(&s->ck.applied,
                                                    memory_order_acquire)
                    : durable ? applied : s->applied_committed;
    s->applied_committed = applied;
    zk__wal_trim(s->wal, safe, s->log_keep, s->log_keep_bytes);
    return 0;
}

void zk_store_log_sync(struct zk_store *s, int sync)
{
    s->log_nosync = !sync;
    zk__wal_set_sync(s->wal, sync);
}

int zk_store_log_fits(struct zk_store *s, uint64_t n, uint64_t bytes)
{
    return n * ZK__WAL_REC_HDR + bytes <= zk__wal_room(s->wal);
}

int zk_store_lazy_is_free(struct zk_store *s)
{
    return s->ck.on;
}

int zk_store_batch_commit(struct zk_store_batch *b)
{
    return batch_commit(b, 1);
}

int zk_store_batch_commit_lazy(struct zk_store_batch *b)
{
    return batch_commit(b, 0);
}

void zk_store_fsync_stats(struct zk_store *s, struct zk_store_fsync_stats *out)
{
    for (size_t i = 0; i < ZK_STORE_FSYNC_BUCKETS; i++)
        out->le[i] = atomic_load_explicit(&s->fsync_le[i],
                                          memory_order_relaxed);
    out->count = atomic_load_explicit(&s->fsync_count, memory_order_relaxed);
    out->sum_ns = atomic_load_explicit(&s->fsync_sum_ns,
                                       memory_order_relaxed);
}

void zk_store_batch_abort(struct zk_store_batch *b)
{
    if (b == NULL)
        return;
    mdb_txn_abort(b->txn);
    batch_free(b);
}
