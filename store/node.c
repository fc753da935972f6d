/*
 * node.c — the store's record layer: encoding of node records, meta values
 * and dirent keys, path resolution and path building over one LMDB
 * transaction, and the mapping of LMDB codes to zkfs errors.
 *
 * Every record read from disk is checked for its size before it is used; a
 * record that fails a check yields ZK_ECORRUPT (logged), never a crash.
 */
#include "store_int.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

int zk__mdb_err(int rc, const char *what)
{
    switch (rc) {
    case 0:
        return 0;
    case MDB_NOTFOUND:
        return -ENOENT;
    case MDB_MAP_FULL:
    case ENOSPC:
        zk_log(ZK_LOG_WARN, "store: %s: %s", what, mdb_strerror(rc));
        return -ENOSPC;
    case ENOMEM:
        return -ENOMEM;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
        zk_log(ZK_LOG_ERROR, "store: %s: %s", what, mdb_strerror(rc));
        return ZK_ECORRUPT;
    default:
        zk_log(ZK_LOG_ERROR, "store: %s: %s", what, mdb_strerror(rc));
        return -EIO;
    }
}

int zk__is_fatal(int err)
{
    return err == -EIO || err == -ENOSPC || err == -ENOMEM ||
           err == ZK_ECORRUPT;
}

/* ------------------------------------------------------------------ */
/* Key order                                                           */
/* ------------------------------------------------------------------ */

/* LMDB's default order: memcmp over the common length, then the shorter
 * key first. */
static int key_cmp_memn(const uint8_t *a, size_t na, const uint8_t *b,
                        size_t nb)
{
    int d = memcmp(a, b, na < nb ? na : nb);
    if (d != 0)
        return d;
    return na < nb ? -1 : na > nb;
}

int zk__key_cmp(const MDB_val *a, const MDB_val *b)
{
    const uint8_t *x = a->mv_data, *y = b->mv_data;
    if (a->mv_size >= 8 && b->mv_size >= 8) {
        uint64_t u, v;
        memcpy(&u, x, 8);
        memcpy(&v, y, 8);
        if (u != v)
            return be64toh(u) < be64toh(v) ? -1 : 1;
        if (a->mv_size == 8 && b->mv_size == 8)
            return 0;
        return key_cmp_memn(x + 8, a->mv_size - 8, y + 8, b->mv_size - 8);
    }
    return key_cmp_memn(x, a->mv_size, y, b->mv_size);
}

/* ------------------------------------------------------------------ */
/* Node records                                                        */
/* ------------------------------------------------------------------ */

static uint8_t *put32(uint8_t *p, uint32_t v) { zk_put_be32(p, v); return p + 4; }
static uint8_t *put64(uint8_t *p, uint64_t v) { zk_put_be64(p, v); return p + 8; }
static const uint8_t *get32(const uint8_t *p, uint32_t *v) { *v = zk_get_be32(p); return p + 4; }
static const uint8_t *get64(const uint8_t *p, uint64_t *v) { *v = zk_get_be64(p); return p + 8; }

size_t zk__node_encode(const struct zk__node *n, uint8_t *buf)
{
    const struct zk_stat *st = &n->st;
    uint8_t *p = buf;
    p = put64(p, st->parent);
    p = put32(p, st->kind); p = put32(p, st->mode);
    p = put32(p, st->uid); p = put32(p, st->gid);
    p = put64(p, st->czxid); p = put64(p, st->mzxid); p = put64(p, st->pzxid);
    p = put64(p, st->ctime_ms); p = put64(p, st->mtime_ms);
    p = put64(p, st->chtime_ms); p = put64(p, st->cmtime_ms);
    p = put32(p, (uint32_t)st->version); p = put32(p, (uint32_t)st->cversion);
    p = put32(p, (uint32_t)st->aversion);
    p = put64(p, st->ephemeral_owner);
    p = put32(p, st->data_length); p = put32(p, st->num_children);
    p = put32(p, st->children_flags);
    p[0] = (uint8_t)(n->name_len >> 8); p[1] = (uint8_t)n->name_len; p += 2;
    ZK_ASSERT(p - buf == ZK__NODE_FIXED_SIZE);
    memcpy(p, n->name, n->name_len);
    return ZK__NODE_FIXED_SIZE + n->name_len;
}

int zk__node_decode(const uint8_t *buf, size_t len, uint64_t ino,
                    struct zk__node *n)
{
    struct zk_stat *st = &n->st;
    const uint8_t *p = buf;
    uint32_t v[3];
    if (len < ZK__NODE_FIXED_SIZE)
        return ZK_ECORRUPT;
    memset(st, 0, sizeof(*st));   /* the name is copied below */
    st->ino = ino;
    p = get64(p, &st->parent);
    p = get32(p, &st->kind); p = get32(p, &st->mode);
    p = get32(p, &st->uid); p = get32(p, &st->gid);
    p = get64(p, &st->czxid); p = get64(p, &st->mzxid); p = get64(p, &st->pzxid);
    p = get64(p, &st->ctime_ms); p = get64(p, &st->mtime_ms);
    p = get64(p, &st->chtime_ms); p = get64(p, &st->cmtime_ms);
    p = get32(p, &v[0]); p = get32(p, &v[1]); p = get32(p, &v[2]);
    st->version = (int32_t)v[0]; st->cversion = (int32_t)v[1];
    st->aversion = (int32_t)v[2];
    p = get64(p, &st->ephemeral_owner);
    p = get32(p, &st->data_length); p = get32(p, &st->num_children);
    p = get32(p, &st->children_flags);
    n->name_len = (uint32_t)(p[0] << 8 | p[1]);
    p += 2;
    if (n->name_len > ZK_NAME_MAX || len != ZK__NODE_FIXED_SIZE + n->name_len ||
        (st->kind != ZK_KIND_FILE && st->kind != ZK_KIND_DIR))
        return ZK_ECORRUPT;
    memcpy(n->name, p, n->name_len);
    n->name[n->name_len] = '\0';
    return 0;
}

int zk__node_get(struct zk_store *s, MDB_txn *txn, uint64_t ino,
                 struct zk__node *out)
{
    uint8_t kb[8];
    zk_put_be64(kb, ino);
    MDB_val k = {8, kb}, v;
    return zk__node_found(mdb_get(txn, s->nodes, &k, &v), &v, ino, out);
}

int zk__node_found(int rc, const MDB_val *v, uint64_t ino,
                   struct zk__node *out)
{
    if (rc != 0)
        return rc == MDB_NOTFOUND ? -ENOENT : zk__mdb_err(rc, "node get");
    if (zk__node_decode(v->mv_data, v->mv_size, ino, out) != 0) {
        zk_log(ZK_LOG_ERROR, "store: node record of inode %llu is malformed",
               (unsigned long long)ino);
        return ZK_ECORRUPT;
    }
    return 0;
}

int zk__node_put(struct zk_store *s, MDB_txn *txn, const struct zk__node *n)
{
    uint8_t kb[8], vb[ZK__NODE_FIXED_SIZE + ZK_NAME_MAX];
    zk_put_be64(kb, n->st.ino);
    MDB_val k = {8, kb}, v = {zk__node_encode(n, vb), vb};
    return zk__mdb_err(mdb_put(txn, s->nodes, &k, &v, 0), "node put");
}

int zk__dirent_get(struct zk_store *s, MDB_txn *txn, uint64_t parent,
                   const char *name, size_t len, uint64_t *ino)
{
    uint8_t kb[8 + ZK_NAME_MAX];
    if (len == 0 || len > ZK_NAME_MAX)
        return -ENOENT;
    zk_put_be64(kb, parent);
    memcpy(kb + 8, name, len);
    MDB_val k = {8 + len, kb}, v;
    int rc = mdb_get(txn, s->dirents, &k, &v);
    if (rc != 0)
        return rc == MDB_NOTFOUND ? -ENOENT : zk__mdb_err(rc, "dirent get");
    if (v.mv_size != 8) {
        zk_log(ZK_LOG_ERROR, "store: dirent value of size %zu", v.mv_size);
        return ZK_ECORRUPT;
    }
    *ino = zk_get_be64(v.mv_data);
    return 0;
}

int zk__resolve(struct zk_store *s, MDB_txn *txn, const char *path,
                size_t len, struct zk__node *out)
{
    uint64_t ino = ZK_INO_ROOT;
    size_t i = 1;
    while (i < len) {
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        uint64_t child;
        int rc = zk__dirent_get(s, txn, ino, path + i, j - i, &child);
        if (rc == -ENOENT) {
            /* A file has no dirents: say ENOTDIR when it is one. */
            int rc2 = zk__node_get(s, txn, ino, out);
            if (rc2 != 0)
                return rc2;
            return out->st.kind == ZK_KIND_FILE ? -ENOTDIR : -ENOENT;
        }
        if (rc != 0)
            return rc;
        ino = child;
        i = j + 1;
    }
    return zk__node_get(s, txn, ino, out);
}

int zk__path(struct zk_store *s, MDB_txn *txn, uint64_t ino, char *buf,
             size_t size)
{
    char tmp[ZK_PATH_MAX];
    size_t pos = sizeof(tmp);
    struct zk__node n;
    int depth = 0;
    while (ino != ZK_INO_ROOT) {
        int rc = zk__node_get(s, txn, ino, &n);
        if (rc != 0)
            return rc;
        if (pos < n.name_len + 1 || ++depth > ZK__DEPTH_MAX) {
            zk_log(ZK_LOG_ERROR, "store: path of inode %llu too deep",
                   (unsigned long long)ino);
            return ZK_ECORRUPT;
        }
        pos -= n.name_len;
        memcpy(tmp + pos, n.name, n.name_len);
        tmp[--pos] = '/';
        ino = n.st.parent;
    }
    if (pos == sizeof(tmp)) {
        tmp[--pos] = '/';
    }
    size_t len = sizeof(tmp) - pos;
    if (len + 1 > size)
        return -ERANGE;
    memcpy(buf, tmp + pos, len);
    buf[len] = '\0';
    return 0;
}

/* ------------------------------------------------------------------ */
/* Meta values and counters                                            */
/* ------------------------------------------------------------------ */

int zk__meta_get(struct zk_store *s, MDB_txn *txn, const char *key,
                 uint64_t *val)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    int rc = mdb_get(txn, s->meta, &k, &v);
    if (rc != 0)
        return rc == MDB_NOTFOUND ? -ENOENT : zk__mdb_err(rc, "meta get");
    if (v.mv_size != 8) {
        zk_log(ZK_LOG_ERROR, "store: meta value '%s' has size %zu", key,
               v.mv_size);
        return ZK_ECORRUPT;
    }
    *val = zk_get_be64(v.mv_data);
    return 0;
}

int zk__meta_put(struct zk_store *s, MDB_txn *txn, const char *key,
                 uint64_t val)
{
    uint8_t vb[8];
    zk_put_be64(vb, val);
    MDB_val k = {strlen(key), (void *)key}, v = {8, vb};
    return zk__mdb_err(mdb_put(txn, s->meta, &k, &v, 0), "meta put");
}

int zk__counters_get(struct zk_store *s, MDB_txn *txn, struct zk__counters *c)
{
    int rc = zk__meta_get(s, txn, ZK__META_NEXT_INO, &c->next_ino);
    if (rc == 0)
        rc = zk__meta_get(s, txn, ZK__META_ZNODES, &c->znodes);
    if (rc == 0)
        rc = zk__meta_get(s, txn, ZK__META_SESSIONS, &c->sessions);
    if (rc == 0)
        rc = zk__meta_get(s, txn, ZK__META_DATA_BYTES, &c->data_bytes);
    if (rc == -ENOENT) {
        zk_log(ZK_LOG_ERROR, "store: a counter is missing from meta");
        rc = ZK_ECORRUPT;
    }
    return rc;
}

int zk__counters_put(struct zk_store *s, MDB_txn *txn,
                     const struct zk__counters *c)
{
    int rc = zk__meta_put(s, txn, ZK__META_NEXT_INO, c->next_ino);
    if (rc == 0)
        rc = zk__meta_put(s, txn, ZK__META_ZNODES, c->znodes);
    if (rc == 0)
        rc = zk__meta_put(s, txn, ZK__META_SESSIONS, c->sessions);
    if (rc == 0)
        rc = zk__meta_put(s, txn, ZK__META_DATA_BYTES, c->data_bytes);
    return rc;
}
