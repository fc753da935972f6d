/*
 * apply.c — applying one decoded transaction to the znode tree, with
 * ZooKeeper's semantics for the stat fields and POSIX's for rename.
 *
 * All ops of a transaction run in one nested LMDB transaction: when an op
 * fails, the nested transaction is aborted, so the earlier ops of the same
 * transaction leave no trace, and the store's counters (kept in meta) roll
 * back with them. Every outcome depends only on the store's contents and
 * the transaction, so every replica computes the same result.
 *
 * Per-op results: ops before the failing one report 0 (they were rolled
 * back), the failing op its error, later ops -ECANCELED (not run) — the
 * shape of ZooKeeper's multi results.
 */
#include "store_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHANGES_INITIAL 8

/* The state of one apply. */
struct ap {
    struct zk_store *s;
    MDB_txn *t;                 /* the nested transaction */
    uint64_t zxid, time_ms;
    struct zk__counters c;
    struct zk_apply_result *res;
    uint32_t cap;               /* allocated res->changes entries */
};

/* ------------------------------------------------------------------ */
/* Small record helpers                                                */
/* ------------------------------------------------------------------ */

static struct zk_change *change_new(struct ap *a, uint8_t kind,
                                    const struct zk__node *n)
{
    struct zk_apply_result *res = a->res;
    if (res->nchanges == a->cap) {
        uint32_t cap = a->cap ? a->cap * 2 : CHANGES_INITIAL;
        struct zk_change *c = realloc(res->changes, cap * sizeof(*c));
        if (c == NULL)
            return NULL;
        res->changes = c;
        a->cap = cap;
    }
    struct zk_change *ch = &res->changes[res->nchanges++];
    memset(ch, 0, sizeof(*ch));
    ch->kind = kind;
    ch->node_kind = n->st.kind;
    ch->ino = n->st.ino;
    ch->parent = n->st.parent;
    memcpy(ch->name, n->name, n->name_len + 1);
    return ch;
}

static int dirent_put(struct ap *a, uint64_t parent, const char *name,
                      size_t len, uint64_t ino)
{
    uint8_t kb[8 + ZK_NAME_MAX], vb[8];
    zk_put_be64(kb, parent);
    memcpy(kb + 8, name, len);
    zk_put_be64(vb, ino);
    MDB_val k = {8 + len, kb}, v = {8, vb};
    return zk__mdb_err(mdb_put(a->t, a->s->dirents, &k, &v, 0), "dirent put");
}

static int del_key(struct ap *a, MDB_dbi dbi, const void *key, size_t len)
{
    MDB_val k = {len, (void *)key};
    int rc = mdb_del(a->t, dbi, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : zk__mdb_err(rc, "delete");
}

static int dirent_del(struct ap *a, uint64_t parent, const char *name,
                      size_t len)
{
    uint8_t kb[8 + ZK_NAME_MAX];
    zk_put_be64(kb, parent);
    memcpy(kb + 8, name, len);
    return del_key(a, a->s->dirents, kb, 8 + len);
}

static int data_put(struct ap *a, uint64_t ino, const uint8_t *data,
                    size_t len)
{
    uint8_t kb[8];
    zk_put_be64(kb, ino);
    if (len == 0)
        return del_key(a, a->s->data, kb, 8);
    MDB_val k = {8, kb}, v = {len, (void *)data};
    return zk__mdb_err(mdb_put(a->t, a->s->data, &k, &v, 0), "data put");
}

static int ephem_put(struct ap *a, uint64_t session, uint64_t ino,
                     const char *owner, size_t len)
{
    uint8_t kb[16];
    zk_put_be64(kb, session);
    zk_put_be64(kb + 8, ino);
    MDB_val k = {16, kb}, v = {len, (void *)owner};
    return zk__mdb_err(mdb_put(a->t, a->s->ephem, &k, &v, 0), "ephem put");
}

/* Removes n's records (node, data, dirent, ephemeral row) and counts it
 * out; the parent's stat is the caller's business. */
static int node_remove(struct ap *a, const struct zk__node *n)
{
    uint8_t kb[16];
    zk_put_be64(kb, n->st.ino);
    int rc = del_key(a, a->s->nodes, kb, 8);
    if (rc == 0)
        rc = del_key(a, a->s->data, kb, 8);
    if (rc == 0)
        rc = dirent_del(a, n->st.parent, n->name, n->name_len);
    if (rc == 0 && n->st.ephemeral_owner != 0) {
        zk_put_be64(kb, n->st.ephemeral_owner);
        zk_put_be64(kb + 8, n->st.ino);
        rc = del_key(a, a->s->ephem, kb, 16);
    }
    a->c.znodes--;
    a->c.data_bytes -= n->st.data_length;
    return rc;
}

/* A child of pino was added (delta 1), removed (-1) or renamed (0). */
static int parent_touch(struct ap *a, uint64_t pino, int delta)
{
    struct zk__node p;
    int rc = zk__node_get(a->s, a->t, pino, &p);
    if (rc != 0)
        return rc == -ENOENT ? ZK_ECORRUPT : rc;
    p.st.num_children = (uint32_t)((int64_t)p.st.num_children + delta);
    p.st.cversion++;
    p.st.pzxid = a->zxid;
    p.st.chtime_ms = p.st.cmtime_ms = a->time_ms;
    return zk__node_put(a->s, a->t, &p);
}

static int reserved_name(uint64_t parent, const char *name, size_t len)
{
    return parent == ZK_INO_ROOT &&
           ((len == 5 && memcmp(name, ".zkfs", 5) == 0) ||
            (len == 9 && memcmp(name, "zookeeper", 9) == 0));
}

/* Splits a checked path into its parent path length and last name. */
static void path_split(const char *path, size_t len, size_t *plen,
                       const char **name, size_t *nlen)
{
    size_t i = len;
    while (i > 0 && path[i - 1] != '/')
        i--;
    *name = path + i;
    *nlen = len - i;
    *plen = i > 1 ? i - 1 : 1;
}

/* Resolves the parent directory of a checked path (not "/"). */
static int parent_resolve(struct ap *a, const char *path, size_t len,
                          struct zk__node *p, const char **name, size_t *nlen)
{
    size_t plen;
    path_split(path, len, &plen, name, nlen);
    int rc = zk__resolve(a->s, a->t, path, plen, p);
    if (rc == 0 && p->st.kind != ZK_KIND_DIR)
        rc = -ENOTDIR;
    return rc;
}

/* Resolves an op's target: path check, lookup, inode check. */
static int target(struct ap *a, const struct zk_op *op, struct zk__node *n)
{
    int rc = zk_path_check(op->path, op->path_len);
    if (rc != 0)
        return rc;
    rc = zk__resolve(a->s, a->t, op->path, op->path_len, n);
    if (rc == 0 && op->ino != 0 && op->ino != n->st.ino)
        rc = -ENOENT;
    return rc;
}

/* ------------------------------------------------------------------ */
/* Operations                                                          */
/* ------------------------------------------------------------------ */

/* Picks the created name (sequential suffix from the parent's cversion,
 * as ZooKeeper does) and the effective flags. */
static int create_name(const struct zk_op *op, const struct zk__node *p,
                       const char *name, size_t nlen, uint32_t *flags,
                       char *out)
{
    uint32_t f = op->flags;
    if (p->st.children_flags & ZK_CHILDREN_SEQUENTIAL)
        f |= ZK_CREATE_SEQUENTIAL;
    if ((p->st.children_flags & ZK_CHILDREN_EPHEMERAL) &&
        !(f & ZK_CREATE_DIR))
        f |= ZK_CREATE_EPHEMERAL;
    memcpy(out, name, nlen);
    out[nlen] = '\0';
    if (f & ZK_CREATE_SEQUENTIAL) {
        if (nlen + 10 > ZK_NAME_MAX)
            return -ENAMETOOLONG;
        snprintf(out + nlen, 11, "%010d", p->st.cversion);
    }
    *flags = f;
    return 0;
}

static int create_path(const struct zk_op *op, const char *name,
                       struct zk_op_result *r)
{
    size_t plen, nlen, oldn;
    const char *oldname;
    path_split(op->path, op->path_len, &plen, &oldname, &oldn);
    nlen = strlen(name);
    if (plen == 1)
        plen = 0;     /* the parent is "/" */
    if (plen + 1 + nlen >= ZK_PATH_MAX)
        return -ENAMETOOLONG;
    memcpy(r->path, op->path, plen);
    r->path[plen] = '/';
    memcpy(r->path + plen + 1, name, nlen + 1);
    return 0;
}

static int create_node(struct ap *a, const struct zk_op *op,
                       const struct zk__node *p, uint32_t flags,
                       struct zk__node *n)
{
    struct zk_stat *st = &n->st;   /* n->name is already set */
    memset(st, 0, sizeof(*st));
    st->ino = a->c.next_ino++;
    st->parent = p->st.ino;
    st->kind = (flags & ZK_CREATE_DIR) ? ZK_KIND_DIR : ZK_KIND_FILE;
    st->mode = op->mode & 07777;
    st->uid = op->uid;
    st->gid = op->gid;
    st->czxid = st->mzxid = st->pzxid = a->zxid;
    st->ctime_ms = st->mtime_ms = a->time_ms;
    st->chtime_ms = st->cmtime_ms = a->time_ms;
    st->data_length = op->data_len;
    if (flags & ZK_CREATE_EPHEMERAL)
        st->ephemeral_owner = op->session;
    a->c.znodes++;
    a->c.data_bytes += op->data_len;
    int rc = zk__node_put(a->s, a->t, n);
    if (rc == 0)
        rc = data_put(a, st->ino, op->data, op->data_len);
    if (rc == 0)
        rc = dirent_put(a, p->st.ino, n->name, n->name_len, st->ino);
    if (rc == 0 && st->ephemeral_owner != 0)
        rc = ephem_put(a, op->session, st->ino, op->owner, op->owner_len);
    if (rc == 0)
        rc = parent_touch(a, p->st.ino, 1);
    return rc;
}

/* 0 if session is open, ZK_ESESSION if it is not (never opened, closed
 * or expired: an ephemeral of it would never be deleted). */
static int session_is_open(struct ap *a, uint64_t session)
{
    uint8_t kb[8];
    MDB_val k = {8, kb}, v;

    if (session == 0)
        return ZK_ESESSION;
    zk_put_be64(kb, session);
    int rc = mdb_get(a->t, a->s->sessions, &k, &v);
    if (rc == MDB_NOTFOUND)
        return ZK_ESESSION;
    return rc ? zk__mdb_err(rc, "session get") : 0;
}

static int op_create(struct ap *a, const struct zk_op *op,
                     struct zk_op_result *r)
{
    struct zk__node p, n;
    const char *name;
    size_t nlen;
    uint32_t flags;
    uint64_t ino;
    int rc = zk_path_check(op->path, op->path_len);
    if (rc != 0)
        return rc;
    if (op->path_len == 1)
        return -EEXIST;   /* the root always exists */
    rc = parent_resolve(a, op->path, op->path_len, &p, &name, &nlen);
    if (rc != 0)
        return rc;
    if (p.st.ephemeral_owner != 0)
        return -EPERM;    /* ephemerals have no children (ZooKeeper) */
    rc = create_name(op, &p, name, nlen, &flags, n.name);
    if (rc != 0)
        return rc;
    n.name_len = (uint32_t)strlen(n.name);
    if (reserved_name(p.st.ino, n.name, n.name_len))
        return -EPERM;
    rc = zk__dirent_get(a->s, a->t, p.st.ino, n.name, n.name_len, &ino);
    if (rc != -ENOENT)
        return rc == 0 ? -EEXIST : rc;
    if (op->data_len > ZK_DATA_MAX)
        return -EFBIG;
    if (flags & ZK_CREATE_EPHEMERAL) {
        rc = session_is_open(a, op->session);
        if (rc != 0)
            return rc;
    }
    rc = create_path(op, n.name, r);
    if (rc != 0)
        return rc;
    rc = create_node(a, op, &p, flags, &n);
    if (rc != 0)
        return rc;
    r->ino = n.st.ino;
    return change_new(a, ZK_CHANGE_CREATE, &n) ? 0 : -ENOMEM;
}

static int op_delete(struct ap *a, const struct zk_op *op,
                     struct zk_op_result *r)
{
    struct zk__node n;
    int rc = target(a, op, &n);
    if (rc != 0)
        return rc;
    r->ino = n.st.ino;
    if (n.st.ino == ZK_INO_ROOT)
        return -EBUSY;
    if (op->version != -1 && op->version != n.st.version)
        return ZK_EBADVERSION;
    if (n.st.num_children > 0)
        return -ENOTEMPTY;
    rc = node_remove(a, &n);
    if (rc == 0)
        rc = parent_touch(a, n.st.parent, -1);
    struct zk_change *ch = rc == 0 ? change_new(a, ZK_CHANGE_DELETE, &n)
                                   : NULL;
    if (rc == 0 && ch == NULL)
        rc = -ENOMEM;
    if (ch != NULL)
        ch->gone = n.st;
    return rc;
}

/* The data of n after an APPEND of op->data, in a new buffer. */
static int append_data(struct ap *a, const struct zk__node *n,
                       const struct zk_op *op, uint8_t **out)
{
    uint8_t kb[8];
    zk_put_be64(kb, n->st.ino);
    MDB_val k = {8, kb}, v = {0, NULL};
    int rc = mdb_get(a->t, a->s->data, &k, &v);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return zk__mdb_err(rc, "data get");
    if (v.mv_size != n->st.data_length)
        return ZK_ECORRUPT;
    uint8_t *buf = malloc(v.mv_size + op->data_len + 1);
    if (buf == NULL)
        return -ENOMEM;
    if (v.mv_size)
        memcpy(buf, v.mv_data, v.mv_size);
    if (op->data_len)
        memcpy(buf + v.mv_size, op->data, op->data_len);
    *out = buf;
    return 0;
}

static int op_set_data(struct ap *a, const struct zk_op *op,
                       struct zk_op_result *r)
{
    struct zk__node n;
    uint8_t *buf = NULL;
    int rc = target(a, op, &n);
    if (rc != 0)
        return rc;
    r->ino = n.st.ino;
    if (op->version != -1 && op->version != n.st.version)
        return ZK_EBADVERSION;
    const uint8_t *data = op->data;
    uint64_t len = op->data_len;
    if (op->type == ZK_OP_APPEND) {
        len += n.st.data_length;
        if (len > ZK_DATA_MAX)
            return -EFBIG;
        rc = append_data(a, &n, op, &buf);
        if (rc != 0)
            return rc;
        data = buf;
    }
    if (len > ZK_DATA_MAX) {
        rc = -EFBIG;
        goto out;
    }
    a->c.data_bytes = a->c.data_bytes - n.st.data_length + len;
    n.st.data_length = (uint32_t)len;
    n.st.version++;
    n.st.mzxid = a->zxid;
    n.st.mtime_ms = n.st.cmtime_ms = n.st.chtime_ms = a->time_ms;
    rc = data_put(a, n.st.ino, data, len);
    if (rc == 0)
        rc = zk__node_put(a->s, a->t, &n);
    if (rc == 0 && change_new(a, ZK_CHANGE_DATA, &n) == NULL)
        rc = -ENOMEM;
    if (rc == 0)
        r->st = n.st;
out:
    free(buf);
    return rc;
}

static int op_set_attr(struct ap *a, const struct zk_op *op,
                       struct zk_op_result *r)
{
    struct zk__node n;
    int rc = target(a, op, &n);
    if (rc != 0)
        return rc;
    r->ino = n.st.ino;
    if (op->version != -1 && op->version != n.st.aversion)
        return ZK_EBADVERSION;
    if (op->attr_mask & ~(ZK_ATTR_MODE | ZK_ATTR_UID | ZK_ATTR_GID |
                          ZK_ATTR_MTIME))
        return -EINVAL;
    if ((op->attr_mask & ZK_ATTR_MTIME) && op->data_len != 0 &&
        op->data_len != ZK_ATTR_TIME_LEN)
        return -EINVAL;
    if (op->attr_mask & ZK_ATTR_MODE)
        n.st.mode = op->mode & 07777;
    if (op->attr_mask & ZK_ATTR_UID)
        n.st.uid = op->uid;
    if (op->attr_mask & ZK_ATTR_GID)
        n.st.gid = op->gid;
    if (op->attr_mask & ZK_ATTR_MTIME)
        n.st.cmtime_ms = op->data_len ? zk_get_be64(op->data) : a->time_ms;
    n.st.aversion++;
    n.st.chtime_ms = a->time_ms;
    rc = zk__node_put(a->s, a->t, &n);
    if (rc == 0 && change_new(a, ZK_CHANGE_ATTR, &n) == NULL)
        rc = -ENOMEM;
    return rc;
}

static int op_check(struct ap *a, const struct zk_op *op,
                    struct zk_op_result *r)
{
    struct zk__node n;
    int rc = target(a, op, &n);
    if (rc != 0)
        return rc;
    r->ino = n.st.ino;
    if (op->version != -1 && op->version != n.st.version)
        return ZK_EBADVERSION;
    return 0;
}

static int op_set_children(struct ap *a, const struct zk_op *op,
                           struct zk_op_result *r)
{
    struct zk__node n;
    int rc = target(a, op, &n);
    if (rc != 0)
        return rc;
    r->ino = n.st.ino;
    if (n.st.kind != ZK_KIND_DIR)
        return -ENOTDIR;
    if (op->flags & ~(ZK_CHILDREN_EPHEMERAL | ZK_CHILDREN_SEQUENTIAL))
        return -EINVAL;
    n.st.children_flags = op->flags;
    n.st.chtime_ms = a->time_ms;
    rc = zk__node_put(a->s, a->t, &n);
    if (rc == 0 && change_new(a, ZK_CHANGE_ATTR, &n) == NULL)
        rc = -ENOMEM;
    return rc;
}

static int op_session_open(struct ap *a, const struct zk_op *op)
{
    uint8_t kb[8], vb[4 + ZK_OWNER_MAX];
    if (op->session == 0 || op->owner_len > ZK_OWNER_MAX)
        return -EINVAL;
    zk_put_be64(kb, op->session);
    zk_put_be32(vb, op->timeout_ms);
    memcpy(vb + 4, op->owner, op->owner_len);
    MDB_val k = {8, kb}, v = {4 + op->owner_len, vb};
    MDB_val old;
    int rc = mdb_get(a->t, a->s->sessions, &k, &old);
    if (rc == MDB_NOTFOUND)
        a->c.sessions++;
    else if (rc != 0)
        return zk__mdb_err(rc, "session get");
    return zk__mdb_err(mdb_put(a->t, a->s->sessions, &k, &v, 0),
                       "session put");
}

/* Collects the inodes of session's ephemerals (key prefix = session). */
static int session_ephemerals(struct ap *a, uint64_t session,
                              uint64_t **inos, size_t *n)
{
    MDB_cursor *c;
    uint8_t kb[8];
    size_t cap = 0;
    *inos = NULL;
    *n = 0;
    int rc = mdb_cursor_open(a->t, a->s->ephem, &c);
    if (rc != 0)
        return zk__mdb_err(rc, "cursor open");
    zk_put_be64(kb, session);
    MDB_val k = {8, kb}, v;
    int op = MDB_SET_RANGE;
    while ((rc = mdb_cursor_get(c, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        if (k.mv_size != 16 || zk_get_be64(k.mv_data) != session)
            break;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *p = realloc(*inos, cap * sizeof(*p));
            if (p == NULL) {
                rc = ENOMEM;
                break;
            }
            *inos = p;
        }
        (*inos)[(*n)++] = zk_get_be64((const uint8_t *)k.mv_data + 8);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : zk__mdb_err(rc, "ephemeral scan");
}

/* zk__lock_emit_cb: a waiter was granted. */
static int lock_granted(void *arg, uint64_t ino, const struct zk_lock_ent *e)
{
    struct ap *a = arg;
    struct zk__node n;
    int rc = zk__node_get(a->s, a->t, ino, &n);
    if (rc == -ENOENT) {        /* a lock on a deleted file */
        memset(&n, 0, sizeof(n));
        n.st.ino = ino;
    } else if (rc != 0) {
        return rc;
    }
    struct zk_change *ch = change_new(a, ZK_CHANGE_LOCK, &n);
    if (ch == NULL)
        return -ENOMEM;
    ch->lock_session = e->session;
    ch->lock_owner = e->owner;
    ch->lock_token = e->token;
    ch->lock_flags = e->flags;
    return 0;
}

/* ZK_OP_LOCK / ZK_OP_UNLOCK (store/lock.c). A lock needs an open session;
 * the file may have been deleted while open (POSIX lets its holders lock
 * it; the table goes with the last unlock or the session). */
static int op_lock(struct ap *a, const struct zk_op *op,
                   struct zk_op_result *r)
{
    struct zk__node n;
    if (op->type == ZK_OP_LOCK) {
        int rc = zk__node_get(a->s, a->t, op->ino, &n);
        if (rc == -ENOENT)
            rc = 0;             /* deleted while open */
        else if (rc == 0 && n.st.kind == ZK_KIND_DIR &&
                 !(op->flags & ZK_LOCK_FLOCK))
            rc = -EBADF;        /* fcntl locks need a file */
        if (rc == 0)
            rc = session_is_open(a, op->session);
        if (rc != 0)
            return rc;
    }
    return zk__lock_apply(a->s, a->t, a->zxid, op, r, lock_granted, a);
}

static int op_session_close(struct ap *a, const struct zk_op *op)
{
    uint64_t *inos;
    size_t n;
    uint8_t kb[8];
    int rc = zk__lock_session_close(a->s, a->t, a->zxid, op->session,
                                    lock_granted, a);
    if (rc != 0)
        return rc;
    rc = session_ephemerals(a, op->session, &inos, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct zk__node node;
        rc = zk__node_get(a->s, a->t, inos[i], &node);
        if (rc == -ENOENT || (rc == 0 && node.st.num_children > 0)) {
            zk_log(ZK_LOG_ERROR, "store: ephemeral row for inode %llu is "
                   "inconsistent", (unsigned long long)inos[i]);
            rc = ZK_ECORRUPT;
        }
        if (rc == 0)
            rc = node_remove(a, &node);
        if (rc == 0)
            rc = parent_touch(a, node.st.parent, -1);
        struct zk_change *ch = rc == 0
                                   ? change_new(a, ZK_CHANGE_DELETE, &node)
                                   : NULL;
        if (rc == 0 && ch == NULL)
            rc = -ENOMEM;
        if (ch != NULL)
            ch->gone = node.st;
    }
    free(inos);
    if (rc != 0)
        return rc;
    zk_put_be64(kb, op->session);
    MDB_val k = {8, kb};
    rc = mdb_del(a->t, a->s->sessions, &k, NULL);
    if (rc == 0)
        a->c.sessions--;
    return rc == MDB_NOTFOUND ? 0 : zk__mdb_err(rc, "session delete");
}

/* ------------------------------------------------------------------ */
/* Rename                                                              */
/* ------------------------------------------------------------------ */

/* -EINVAL when dir pino is src or lies below it. */
static int rename_subtree(struct ap *a, uint64_t src, uint64_t pino)
{
    struct zk__node n;
    for (int depth = 0; depth <= ZK__DEPTH_MAX; depth++) {
        if (pino == src)
            return -EINVAL;
        if (pino == ZK_INO_ROOT)
            return 0;
        int rc = zk__node_get(a->s, a->t, pino, &n);
        if (rc != 0)
            return rc == -ENOENT ? ZK_ECORRUPT : rc;
        pino = n.st.parent;
    }
    return ZK_ECORRUPT;
}

/* POSIX checks on an existing target t of moving src there. */
static int rename_replace_ok(const struct zk_op *op,
                             const struct zk__node *src,
                             const struct zk__node *t)
{
    if (op->flags & ZK_RENAME_NOREPLACE)
        return -EEXIST;
    if (src->st.kind == ZK_KIND_FILE && t->st.kind == ZK_KIND_DIR)
        return -EISDIR;
    if (src->st.kind == ZK_KIND_DIR && t->st.kind == ZK_KIND_FILE)
        return -ENOTDIR;
    if (t->st.num_children > 0)
        return -ENOTEMPTY;
    return 0;
}

/* Moves src under dp as name, replacing t (t->st.ino 0: none). */
static int rename_move(struct ap *a, struct zk__node *src, uint64_t dp,
                       const char *name, size_t nlen,
                       const struct zk__node *t)
{
    struct zk__node old = *src;
    int replaced = t->st.ino != 0;
    int rc = replaced ? node_remove(a, t) : 0;
    if (rc == 0)
        rc = dirent_del(a, old.st.parent, old.name, old.name_len);
    if (rc == 0)
        rc = dirent_put(a, dp, name, nlen, src->st.ino);
    src->st.parent = dp;
    memcpy(src->name, name, nlen);
    src->name[nlen] = '\0';
    src->name_len = (uint32_t)nlen;
    src->st.chtime_ms = a->time_ms;
    if (rc == 0)
        rc = zk__node_put(a->s, a->t, src);
    if (rc == 0 && old.st.parent == dp)
        rc = parent_touch(a, dp, -replaced);
    else if (rc == 0)
        rc = parent_touch(a, old.st.parent, -1);
    if (rc == 0 && old.st.parent != dp)
        rc = parent_touch(a, dp, 1 - replaced);
    struct zk_change *ch = rc == 0 ? change_new(a, ZK_CHANGE_RENAME, &old)
                                   : NULL;
    if (rc == 0 && ch == NULL)
        return -ENOMEM;
    if (ch != NULL) {
        ch->parent2 = dp;
        memcpy(ch->name2, src->name, nlen + 1);
        ch->replaced_ino = t->st.ino;
        if (t->st.ino)
            ch->gone = t->st;
    }
    return rc;
}

static int op_rename(struct ap *a, const struct zk_op *op,
                     struct zk_op_result *r)
{
    struct zk__node src, dp, t;
    const char *name;
    size_t nlen;
    uint64_t tino;
    int rc = target(a, op, &src);
    if (rc == 0)
        rc = zk_path_check(op->path2, op->path2_len);
    if (rc != 0)
        return rc;
    r->ino = src.st.ino;
    if (src.st.ino == ZK_INO_ROOT || op->path2_len == 1)
        return -EBUSY;
    if (op->path_len == op->path2_len &&
        memcmp(op->path, op->path2, op->path_len) == 0)
        return 0;   /* POSIX: same file, nothing to do */
    rc = parent_resolve(a, op->path2, op->path2_len, &dp, &name, &nlen);
    if (rc != 0)
        return rc;
    if (reserved_name(dp.st.ino, name, nlen) || dp.st.ephemeral_owner != 0)
        return -EPERM;
    if (src.st.kind == ZK_KIND_DIR) {
        rc = rename_subtree(a, src.st.ino, dp.st.ino);
        if (rc != 0)
            return rc;
    }
    memset(&t, 0, sizeof(t));
    rc = zk__dirent_get(a->s, a->t, dp.st.ino, name, nlen, &tino);
    if (rc == 0)
        rc = zk__node_get(a->s, a->t, tino, &t);
    if (rc == 0)
        rc = rename_replace_ok(op, &src, &t);
    else if (rc == -ENOENT)
        rc = 0;
    if (rc != 0)
        return rc;
    return rename_move(a, &src, dp.st.ino, name, nlen, &t);
}

/* ------------------------------------------------------------------ */
/* Transaction                                                         */
/* ------------------------------------------------------------------ */

static int apply_op(struct ap *a, const struct zk_op *op,
                    struct zk_op_result *r)
{
    if (op->path_len < ZK_PATH_MAX) {
        memcpy(r->path, op->path, op->path_len);
        r->path[op->path_len] = '\0';
    }
    switch (op->type) {
    case ZK_OP_CREATE: return op_create(a, op, r);
    case ZK_OP_DELETE: return op_delete(a, op, r);
    case ZK_OP_SET_DATA:
    case ZK_OP_APPEND: return op_set_data(a, op, r);
    case ZK_OP_SET_ATTR: return op_set_attr(a, op, r);
    case ZK_OP_RENAME: return op_rename(a, op, r);
    case ZK_OP_CHECK: return op_check(a, op, r);
    case ZK_OP_SET_CHILDREN: return op_set_children(a, op, r);
    case ZK_OP_SESSION_OPEN: return op_session_open(a, op);
    case ZK_OP_SESSION_CLOSE: return op_session_close(a, op);
    case ZK_OP_LOCK:
    case ZK_OP_UNLOCK: return op_lock(a, op, r);
    default: return -EINVAL;
    }
}

int zk__apply_txn(struct zk_store *s, MDB_txn *wtxn, uint64_t zxid,
                  const struct zk_txn *txn, struct zk_apply_result *res)
{
    struct ap a = {s, NULL, zxid, txn->time_ms, {0, 0, 0, 0}, res, 0};
    int rc = mdb_txn_begin(s->env, wtxn, 0, &a.t);
    if (rc != 0)
        return zk__mdb_err(rc, "nested txn begin");
    rc = zk__counters_get(s, a.t, &a.c);
    uint32_t i = 0;
    for (; rc == 0 && i < txn->nops; i++) {
        rc = apply_op(&a, &txn->ops[i], &res->ops[i]);
        res->ops[i].err = rc;
    }
    if (rc == 0)
        rc = zk__counters_put(s, a.t, &a.c);
    if (rc == 0)
        return zk__mdb_err(mdb_txn_commit(a.t), "nested txn commit");
    mdb_txn_abort(a.t);
    if (zk__is_fatal(rc))
        return rc;
    /* A deterministic op failure: the whole txn has no effect. */
    res->err = rc;
    res->failed_op = i - 1;
    res->nchanges = 0;
    for (; i < txn->nops; i++)
        res->ops[i].err = -ECANCELED;
    return 0;
}
