/*
 * backup.c — what `zkfs snapshot save` leaves out of the snapshot stream
 * (snapshot.c) and what it adjusts so that the rest is a consistent store:
 * a backup is restored into an ensemble where none of today's sessions
 * exist, so their ephemeral znodes, the session rows, the ephemeral rows
 * and the lock tables (every entry belongs to a session) are left out.
 *
 * Ephemerals are found in the nodes table (ephemeralOwner != 0), not the
 * ephemeral rows, so that a node is never kept whose owner is gone. An
 * ephemeral has no children (the store refuses them: EPERM), so leaving
 * one out never orphans another node. What changes for the rest: the
 * meta counters znodes, data_bytes and sessions (0), and numChildren of
 * each parent of an ephemeral. Its cversion and pzxid stay: the sequence
 * counter of a directory never goes back, so a restored ensemble hands
 * out the next sequential name, never an old one again.
 */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NODE_OFF_EPHEMERAL 92       /* node record offsets (formats.md) */
#define NODE_OFF_DATALEN   100
#define NODE_OFF_NCHILDREN 104

struct zk__snap_filter {
    uint64_t *ephem;            /* ephemeral inos, sorted              */
    uint64_t *parents;          /* their parents, sorted (duplicates)  */
    size_t n, cap;
    uint64_t ephem_bytes;       /* data of the ephemerals              */
    uint64_t znodes, data_bytes;/* what the backup holds (from meta)   */
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Index of the first element >= key in a[0..n). */
static size_t lower(const uint64_t *a, size_t n, uint64_t key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int contains(const struct zk__snap_filter *f, uint64_t ino)
{
    size_t i = lower(f->ephem, f->n, ino);
    return i < f->n && f->ephem[i] == ino;
}

/* How many ephemerals ino is the parent of. */
static uint64_t ephem_children(const struct zk__snap_filter *f, uint64_t ino)
{
    return lower(f->parents, f->n, ino + 1) - lower(f->parents, f->n, ino);
}

static int add(struct zk__snap_filter *f, uint64_t ino, uint64_t parent)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 256;
        uint64_t *e = realloc(f->ephem, cap * sizeof(*e));
        if (e == NULL)
            return -ENOMEM;
        f->ephem = e;
        uint64_t *p = realloc(f->parents, cap * sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        f->parents = p;
        f->cap = cap;
    }
    f->ephem[f->n] = ino;
    f->parents[f->n++] = parent;
    return 0;
}

/* Collects every ephemeral of the nodes table. */
static int collect(struct zk_store *s, MDB_txn *t, struct zk__snap_filter *f)
{
    MDB_cursor *c;
    MDB_val k, v;
    int rc = mdb_cursor_open(t, s->nodes, &c);
    if (rc != 0)
        return zk__mdb_err(rc, "cursor open");
    int op = MDB_FIRST;
    while ((rc = mdb_cursor_get(c, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        const uint8_t *p = v.mv_data;
        if (k.mv_size != 8 || v.mv_size < ZK__NODE_FIXED_SIZE) {
            rc = ZK_ECORRUPT;
            goto done;
        }
        if (zk_get_be64(p + NODE_OFF_EPHEMERAL) == 0)
            continue;
        f->ephem_bytes += zk_get_be32(p + NODE_OFF_DATALEN);
        rc = add(f, zk_get_be64(k.mv_data), zk_get_be64(p));
        if (rc != 0)
            goto done;
    }
    /* LMDB's code, never passed on as is: its own are negative too. */
    rc = rc == MDB_NOTFOUND ? 0 : zk__mdb_err(rc, "backup read");
done:
    mdb_cursor_close(c);
    return rc;
}

int zk__snap_filter_new(struct zk_store *s, MDB_txn *t,
                        struct zk__snap_filter **out)
{
    struct zk__snap_filter *f = calloc(1, sizeof(*f));
    struct zk__counters cn;
    if (f == NULL)
        return -ENOMEM;
    int rc = collect(s, t, f);
    if (rc == 0)
        rc = zk__counters_get(s, t, &cn);
    if (rc == 0 && (cn.znodes < f->n || cn.data_bytes < f->ephem_bytes))
        rc = ZK_ECORRUPT;
    if (rc != 0) {
        zk__snap_filter_free(f);
        return rc;
    }
    /* Inode order already (the nodes table's key order). */
    qsort(f->parents, f->n, sizeof(*f->parents), cmp_u64);
    f->znodes = cn.znodes - f->n;
    f->data_bytes = cn.data_bytes - f->ephem_bytes;
    *out = f;
    return 0;
}

static int meta_is(const MDB_val *k, const char *name)
{
    return k->mv_size == strlen(name) && memcmp(k->mv_data, name,
                                                k->mv_size) == 0;
}

/* The counters a backup holds; other meta records pass unchanged. */
static void filter_meta(struct zk__snap_filter *f, const MDB_val *k,
                        MDB_val *out, uint8_t *buf)
{
    uint64_t val;
    if (meta_is(k, ZK__META_ZNODES))
        val = f->znodes;
    else if (meta_is(k, ZK__META_DATA_BYTES))
        val = f->data_bytes;
    else if (meta_is(k, ZK__META_SESSIONS))
        val = 0;
    else
        return;
    zk_put_be64(buf, val);
    out->mv_data = buf;
    out->mv_size = 8;
}

int zk__snap_filter(struct zk__snap_filter *f, int table, const MDB_val *k,
                    const MDB_val *v, MDB_val *out, uint8_t *buf,
                    size_t size)
{
    *out = *v;
    switch (table) {
    case ZK__SNAP_META:
        filter_meta(f, k, out, buf);
        return 0;
    case ZK__SNAP_NODES: {
        uint64_t ino = zk_get_be64(k->mv_data), n;
        if (contains(f, ino))
            return 1;
        if ((n = ephem_children(f, ino)) == 0 || v->mv_size > size)
            return 0;
        memcpy(buf, v->mv_data, v->mv_size);
        uint32_t nc = zk_get_be32(buf + NODE_OFF_NCHILDREN);
        zk_put_be32(buf + NODE_OFF_NCHILDREN, nc >= n ? nc - (uint32_t)n : 0);
        out->mv_data = buf;
        return 0;
    }
    case ZK__SNAP_DATA:
        return contains(f, zk_get_be64(k->mv_data));
    case ZK__SNAP_DIRENTS:
        return v->mv_size == 8 && contains(f, zk_get_be64(v->mv_data));
    default:                    /* sessions, ephemeral rows, locks */
        return 1;
    }
}

void zk__snap_filter_info(const struct zk__snap_filter *f,
                          struct zk_store_backup_info *info)
{
    info->znodes = f->znodes;
    info->data_bytes = f->data_bytes;
    info->ephemerals = f->n;
}

void zk__snap_filter_free(struct zk__snap_filter *f)
{
    if (f == NULL)
        return;
    free(f->ephem);
    free(f->parents);
    free(f);
}
