/*
 * snapshot.c — Zab SNAP for the store: a leader streams its committed state
 * (zk_store_snapshot) and a far-behind follower replaces its own by it
 * inside a write batch (zk_store_batch_install_*).
 *
 * Stream (big-endian; docs/formats.md):
 *   header  "ZKSN" | u32 ZK_STORE_FORMAT | u64 last applied zxid
 *   record  u8 table (1..7; 7, the lock table, is new: a receiver of an
 *           older build refuses such a snapshot as corrupt) | u32 key length | u32 value length | key | value
 *   end     u8 0 | u64 number of records | u32 crc32 of every byte before it
 * Tables are sent one after the other, each in key order, so the receiver
 * appends (MDB_APPEND) and an out-of-order or duplicate key is corruption.
 * The snapshot is one read transaction: exactly the state at its zxid.
 * It holds the tree, data, sessions, ephemeral rows, lock tables and the store's own
 * counters; not the log (Zab: the log becomes empty) and not the replica's
 * meta keys (epochs are each replica's own).
 *
 * zk_store_snapshot_open pins that version (one read transaction, on any
 * thread: the environment is MDB_NOTLS) so that a caller can name the
 * snapshot's zxid at once and stream it later from another thread, as
 * often as it likes (the same bytes each time).
 */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define SNAP_HDR_SIZE   16
#define SNAP_REC_HDR    9
#define SNAP_END_SIZE   13
#define SNAP_KEY_MAX    512                 /* longest key in any table */
#define SNAP_CHUNK      (64 * 1024)         /* bytes per callback */
#define SNAP_TABLES     7

enum { T_META = ZK__SNAP_META, T_NODES, T_DATA, T_DIRENTS, T_SESSIONS, T_EPHEM,
       T_LOCKS };

static const char *const snap_meta_keys[] = {
    ZK__META_LAST_APPLIED, ZK__META_NEXT_INO, ZK__META_ZNODES,
    ZK__META_SESSIONS, ZK__META_DATA_BYTES,
};

static MDB_dbi table_dbi(struct zk_store *s, int t)
{
    switch (t) {
    case T_META: return s->meta;
    case T_NODES: return s->nodes;
    case T_DATA: return s->data;
    case T_DIRENTS: return s->dirents;
    case T_SESSIONS: return s->sessions;
    case T_LOCKS: return s->locks;
    default: return s->ephem;
    }
}

static int snap_meta_key(const void *key, size_t len)
{
    for (size_t i = 0; i < ZK_ARRAY_LEN(snap_meta_keys); i++)
        if (len == strlen(snap_meta_keys[i]) &&
            memcmp(key, snap_meta_keys[i], len) == 0)
            return 1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

struct snap_w {
    zk_store_snap_cb cb;
    void *arg;
    struct zk__snap_filter *filter;     /* backups: NULL for Zab SNAP */
    uint32_t crc;
    uint64_t records;
    size_t used;
    uint8_t buf[SNAP_CHUNK];
};

static int w_flush(struct snap_w *w)
{
    int rc = w->used ? w->cb(w->arg, w->buf, w->used) : 0;
    w->used = 0;
    return rc;
}

static int w_put(struct snap_w *w, const void *p, size_t len)
{
    w->crc = (uint32_t)crc32(w->crc, p, (uInt)len);
    if (len > SNAP_CHUNK - w->used) {
        int rc = w_flush(w);
        if (rc != 0)
            return rc;
        if (len >= SNAP_CHUNK)
            return w->cb(w->arg, p, len);
    }
    memcpy(w->buf + w->used, p, len);
    w->used += len;
    return 0;
}

static int w_record(void *arg, int table, const MDB_val *k, const MDB_val *v)
{
    struct snap_w *w = arg;
    uint8_t h[SNAP_REC_HDR], nv[ZK__NODE_FIXED_SIZE + ZK_NAME_MAX];
    MDB_val fv;
    if (w->filter != NULL) {
        if (zk__snap_filter(w->filter, table, k, v, &fv, nv, sizeof(nv)))
            return 0;               /* left out */
        v = &fv;
    }
    h[0] = (uint8_t)table;
    zk_put_be32(h + 1, (uint32_t)k->mv_size);
    zk_put_be32(h + 5, (uint32_t)v->mv_size);
    w->records++;
    int rc = w_put(w, h, sizeof(h));
    if (rc == 0)
        rc = w_put(w, k->mv_data, k->mv_size);
    if (rc == 0)
        rc = w_put(w, v->mv_data, v->mv_size);
    return rc;
}

/* Calls fn for every record of table that goes into a snapshot (meta:
 * only the keys snapshots carry), in key order. fn's non-zero value stops
 * the walk and is returned. */
static int each_record(struct zk_store *s, MDB_txn *t, int table,
                       int (*fn)(void *arg, int table, const MDB_val *k,
                                 const MDB_val *v),
                       void *arg)
{
    MDB_cursor *c;
    MDB_val k, v;
    int rc = mdb_cursor_open(t, table_dbi(s, table), &c);
    if (rc != 0)
        return zk__mdb_err(rc, "cursor open");
    int op = MDB_FIRST;
    while ((rc = mdb_cursor_get(c, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        if (table == T_META && !snap_meta_key(k.mv_data, k.mv_size))
            continue;
        rc = fn(arg, table, &k, &v);
        if (rc != 0)
            goto out;     /* the callback's value, returned as is */
    }
    rc = rc == MDB_NOTFOUND ? 0 : zk__mdb_err(rc, "snapshot read");
out:
    mdb_cursor_close(c);
    return rc;
}

static int w_all(struct zk_store *s, MDB_txn *t, struct snap_w *w,
                 uint64_t zxid)
{
    uint8_t h[SNAP_HDR_SIZE], end[SNAP_END_SIZE];
    memcpy(h, "ZKSN", 4);
    zk_put_be32(h + 4, ZK_STORE_FORMAT);
    zk_put_be64(h + 8, zxid);
    int rc = w_put(w, h, sizeof(h));
    for (int table = 1; rc == 0 && table <= SNAP_TABLES; table++)
        rc = each_record(s, t, table, w_record, w);
    if (rc != 0)
        return rc;
    end[0] = 0;
    zk_put_be64(end + 1, w->records);
    rc = w_put(w, end, 9);
    zk_put_be32(end + 9, w->crc);
    if (rc == 0)
        rc = w_put(w, end + 9, 4);
    return rc == 0 ? w_flush(w) : rc;
}

struct zk_store_snap {
    struct zk_store *s;
    MDB_txn *t;
    uint64_t zxid;
};

int zk_store_snapshot_open(struct zk_store *s, struct zk_store_snap **out,
                           uint64_t *zxid_out)
{
    struct zk_store_snap *sn = calloc(1, sizeof(*sn));
    if (sn == NULL)
        return -ENOMEM;
    sn->s = s;
    int rc = zk__rd_begin(s, &sn->t);
    if (rc != 0) {
        free(sn);
        return rc;
    }
    rc = zk__meta_get(s, sn->t, ZK__META_LAST_APPLIED, &sn->zxid);
    if (rc != 0) {
        zk_store_snapshot_close(sn);
        return rc;
    }
    *out = sn;
    if (zxid_out != NULL)
        *zxid_out = sn->zxid;
    return 0;
}

/* Streams the pinned state through filter (NULL: all of it). */
static int stream(struct zk_store_snap *sn, struct zk__snap_filter *filter,
                  zk_store_snap_cb cb, void *arg)
{
    struct snap_w *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->cb = cb;
    w->arg = arg;
    w->filter = filter;
    int rc = w_all(sn->s, sn->t, w, sn->zxid);
    free(w);
    return rc;
}

int zk_store_snapshot_stream(struct zk_store_snap *sn, zk_store_snap_cb cb,
                             void *arg)
{
    return stream(sn, NULL, cb, arg);
}

int zk_store_backup_stream(struct zk_store_snap *sn, zk_store_snap_cb cb,
                           void *arg, struct zk_store_backup_info *info)
{
    struct zk__snap_filter *f;
    int rc = zk__snap_filter_new(sn->s, sn->t, &f);
    if (rc != 0)
        return rc;
    rc = stream(sn, f, cb, arg);
    if (rc == 0 && info != NULL)
        zk__snap_filter_info(f, info);
    zk__snap_filter_free(f);
    return rc;
}

static int add_size(void *arg, int table, const MDB_val *k, const MDB_val *v)
{
    (void)table;
    *(uint64_t *)arg += SNAP_REC_HDR + k->mv_size + v->mv_size;
    return 0;
}

/* Sums record sizes, walking the tables as the writer does, without
 * copying or checksumming anything. */
int zk_store_snapshot_size(struct zk_store_snap *sn, uint64_t *bytes_out)
{
    uint64_t bytes = SNAP_HDR_SIZE + SNAP_END_SIZE;
    int rc = 0;
    for (int table = 1; rc == 0 && table <= SNAP_TABLES; table++)
        rc = each_record(sn->s, sn->t, table, add_size, &bytes);
    if (rc == 0)
        *bytes_out = bytes;
    return rc;
}

void zk_store_snapshot_close(struct zk_store_snap *sn)
{
    if (sn == NULL)
        return;
    zk__rd_end(sn->s, sn->t);
    free(sn);
}

int zk_store_snapshot(struct zk_store *s, zk_store_snap_cb cb, void *arg,
                      uint64_t *zxid_out)
{
    struct zk_store_snap *sn;
    uint64_t zxid;
    int rc = zk_store_snapshot_open(s, &sn, &zxid);
    if (rc != 0)
        return rc;
    rc = zk_store_snapshot_stream(sn, cb, arg);
    zk_store_snapshot_close(sn);
    if (rc == 0 && zxid_out != NULL)
        *zxid_out = zxid;
    return rc;
}

/* ------------------------------------------------------------------ */
/* Installing                                                          */
/* ------------------------------------------------------------------ */

struct zk_store_install {
    struct zk_store_batch *b;
    int have_hdr, ended;
    uint64_t zxid, records;
    uint32_t crc;
    size_t len, cap;             /* unconsumed bytes in buf */
    uint8_t *buf;
};

/* Empties the tables a snapshot refills and the log. */
static int install_clear(struct zk_store_batch *b)
{
    struct zk_store *s = b->s;
    MDB_dbi dbis[] = {s->nodes, s->data, s->dirents, s->sessions, s->ephem,
                      s->locks};
    for (size_t i = 0; i < ZK_ARRAY_LEN(dbis); i++) {
        int rc = mdb_drop(b->txn, dbis[i], 0);
        if (rc != 0)
            return zk__mdb_err(rc, "install drop");
    }
    for (size_t i = 0; i < ZK_ARRAY_LEN(snap_meta_keys); i++) {
        MDB_val k = {strlen(snap_meta_keys[i]), (void *)snap_meta_keys[i]};
        int rc = mdb_del(b->txn, s->meta, &k, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return zk__mdb_err(rc, "install meta");
    }
    return 0;
}

int zk_store_batch_install_begin(struct zk_store_batch *b,
                                 struct zk_store_install **out)
{
    struct zk_store_install *in = calloc(1, sizeof(*in));
    if (in == NULL)
        return -ENOMEM;
    in->b = b;
    int rc = install_clear(b);
    if (rc != 0) {
        free(in);
        return rc;
    }
    zk__batch_log_reset(b);
    *out = in;
    return 0;
}

/* Checks and stores one record; p points at its header. */
static int install_record(struct zk_store_install *in, const uint8_t *p,
                          uint32_t klen, uint32_t vlen)
{
    int table = p[0];
    MDB_val k = {klen, (void *)(p + SNAP_REC_HDR)};
    MDB_val v = {vlen, (void *)(p + SNAP_REC_HDR + klen)};
    if (table < 1 || table > SNAP_TABLES || klen == 0)
        return ZK_ECORRUPT;
    if (table == T_META && (!snap_meta_key(k.mv_data, klen) || vlen != 8))
        return ZK_ECORRUPT;
    unsigned flags = table == T_META ? MDB_NOOVERWRITE : MDB_APPEND;
    int rc = mdb_put(in->b->txn, table_dbi(in->b->s, table), &k, &v, flags);
    if (rc == MDB_KEYEXIST || rc == MDB_BAD_VALSIZE)
        return ZK_ECORRUPT;
    in->records++;
    return zk__mdb_err(rc, "install put");
}

/* Consumes one unit (header, record or end) from p[0..avail): returns
 * its size, 0 when more bytes are needed, or an error. */
static long install_unit(struct zk_store_install *in, const uint8_t *p,
                         size_t avail)
{
    if (!in->have_hdr) {
        if (avail < SNAP_HDR_SIZE)
            return 0;
        if (memcmp(p, "ZKSN", 4) != 0)
            return ZK_ECORRUPT;
        if (zk_get_be32(p + 4) != ZK_STORE_FORMAT)
            return ZK_EFOREIGN;
        in->zxid = zk_get_be64(p + 8);
        in->have_hdr = 1;
        return SNAP_HDR_SIZE;
    }
    if (avail < 1)
        return 0;
    if (p[0] == 0) {
        if (avail < SNAP_END_SIZE)
            return 0;
        uint32_t crc = (uint32_t)crc32(in->crc, p, 9);
        if (zk_get_be64(p + 1) != in->records || zk_get_be32(p + 9) != crc)
            return ZK_ECORRUPT;
        in->ended = 1;
        return SNAP_END_SIZE;
    }
    if (avail < SNAP_REC_HDR)
        return 0;
    uint32_t klen = zk_get_be32(p + 1), vlen = zk_get_be32(p + 5);
    if (klen > SNAP_KEY_MAX || vlen > ZK_DATA_MAX)
        return ZK_ECORRUPT;
    size_t size = SNAP_REC_HDR + (size_t)klen + vlen;
    if (avail < size)
        return 0;
    int rc = install_record(in, p, klen, vlen);
    return rc != 0 ? rc : (long)size;
}

/* Appends bytes to the unconsumed buffer. */
static int install_buffer(struct zk_store_install *in, const uint8_t *buf,
                          size_t len)
{
    if (in->len + len > in->cap) {
        size_t cap = in->cap ? in->cap : SNAP_CHUNK;
        while (cap < in->len + len)
            cap *= 2;
        uint8_t *nb = realloc(in->buf, cap);
        if (nb == NULL)
            return -ENOMEM;
        in->buf = nb;
        in->cap = cap;
    }
    if (len)
        memcpy(in->buf + in->len, buf, len);
    in->len += len;
    return 0;
}

int zk_store_install_feed(struct zk_store_install *in, const uint8_t *buf,
                          size_t len)
{
    if (in->ended)
        return len ? ZK_ECORRUPT : 0;   /* bytes after the end */
    int rc = install_buffer(in, buf, len);
    if (rc != 0)
        return rc;
    size_t off = 0;
    long n = 0;
    while (!in->ended &&
           (n = install_unit(in, in->buf + off, in->len - off)) > 0) {
        if (!in->ended)
            in->crc = (uint32_t)crc32(in->crc, in->buf + off, (uInt)n);
        off += (size_t)n;
    }
    if (n < 0)
        return (int)n;
    if (in->ended && off != in->len)
        return ZK_ECORRUPT;
    if (off > 0 && in->len > off)
        memmove(in->buf, in->buf + off, in->len - off);
    in->len -= off;
    return 0;
}

/* Checks what the installed state must hold to be a store. */
static int install_check(struct zk_store_install *in)
{
    struct zk_store *s = in->b->s;
    struct zk__counters c;
    struct zk__node root;
    uint64_t last;
    int rc = zk__counters_get(s, in->b->txn, &c);
    if (rc == 0)
        rc = zk__meta_get(s, in->b->txn, ZK__META_LAST_APPLIED, &last);
    if (rc == 0 && last != in->zxid)
        rc = ZK_ECORRUPT;
    if (rc == 0)
        rc = zk__node_get(s, in->b->txn, ZK_INO_ROOT, &root);
    if (rc == 0 && root.st.kind != ZK_KIND_DIR)
        rc = ZK_ECORRUPT;
    if (rc == 0)
        rc = zk__check_tree(s, in->b->txn);
    return rc == -ENOENT ? ZK_ECORRUPT : rc;
}

int zk_store_install_finish(struct zk_store_install *in, uint64_t *zxid_out)
{
    int rc = in->ended ? install_check(in) : ZK_ETRUNCATED;
    if (rc == 0) {
        if (in->zxid < in->b->last_applied)
            zk_log(ZK_LOG_WARN, "store: installed snapshot %#llx is behind "
                   "the last applied zxid %#llx",
                   (unsigned long long)in->zxid,
                   (unsigned long long)in->b->last_applied);
        in->b->last_applied = in->zxid;
        if (zxid_out != NULL)
            *zxid_out = in->zxid;
    } else {
        zk_log(ZK_LOG_ERROR, "store: snapshot rejected: %s",
               zk_strerror(rc));
    }
    zk_store_install_abort(in);
    return rc;
}

void zk_store_install_abort(struct zk_store_install *in)
{
    if (in == NULL)
        return;
    free(in->buf);
    free(in);
}
