/*
 * lock.c — the replicated lock table: flock(2) and fcntl record locks on
 * znodes, applied like every other change (ZK_OP_LOCK / ZK_OP_UNLOCK, and
 * SESSION_CLOSE), so every replica holds the same table at every zxid.
 *
 * Table "locks": key u64 ino -> u32 count, count x entry
 *   entry: u32 flags | u64 session | u64 owner | u64 start | u64 end |
 *          u64 token | u32 pid | u16 who length | who bytes  (50 + who)
 * Holders and waiters (ZK_LOCK_QUEUED) of one inode, waiters in the order
 * they queued. A holder's token is the zxid of its grant: it grows with
 * every grant, so it serves as a fencing token.
 *
 * Semantics, as on one Linux filesystem:
 *  - flock (ZK_LOCK_FLOCK) and fcntl locks are independent namespaces;
 *  - an owner is (session, owner): the kernel's lock owner (fcntl), or
 *    the open file (flock, OFD locks) of one replica's session;
 *  - fcntl ranges of one owner split and merge (one mode per byte);
 *    flock converts by dropping the old lock first (flock(2): not atomic;
 *    a conversion that fails with LOCK_NB leaves the old lock dropped);
 *  - two entries conflict when they are of the same namespace, of other
 *    owners, overlap, and one of them is exclusive.
 * Fairness: a request is granted only if no holder conflicts AND no
 * earlier waiter conflicts with it (FIFO: a reader never overtakes a
 * queued writer, like ZooKeeper's lock recipe). Whenever entries go away
 * (unlock, cancelled wait, session close) the waiters are scanned in
 * order and each one that can go is granted; each grant is reported as a
 * ZK_CHANGE_LOCK so that the waiter's replica answers its parked request.
 * Deadlocks (EDEADLK) are not detected.
 *
 * The rules themselves are in lock_tab.c (pure, shared with the
 * simulator); this file stores, reads and scans the tables.
 */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ENT_FIXED 50                  /* an entry without its who bytes */


/* ------------------------------------------------------------------ */
/* Records                                                             */
/* ------------------------------------------------------------------ */

static int tab_decode(const uint8_t *p, size_t len, struct zk__lock_tab *t)
{
    if (len < 4)
        return ZK_ECORRUPT;
    t->n = zk_get_be32(p);
    p += 4;
    len -= 4;
    if (t->n > ZK_LOCK_ENTS_MAX)
        return ZK_ECORRUPT;
    for (uint32_t i = 0; i < t->n; i++) {
        struct zk_lock_ent *e = &t->e[i];
        if (len < ENT_FIXED)
            return ZK_ECORRUPT;
        e->flags = zk_get_be32(p);
        e->session = zk_get_be64(p + 4);
        e->owner = zk_get_be64(p + 12);
        e->start = zk_get_be64(p + 20);
        e->end = zk_get_be64(p + 28);
        e->token = zk_get_be64(p + 36);
        e->pid = zk_get_be32(p + 44);
        uint16_t wl = (uint16_t)(p[48] << 8 | p[49]);
        if (wl > ZK_OWNER_MAX || len - ENT_FIXED < wl)
            return ZK_ECORRUPT;
        memcpy(e->who, p + ENT_FIXED, wl);
        e->who[wl] = '\0';
        p += ENT_FIXED + wl;
        len -= ENT_FIXED + wl;
    }
    return len == 0 ? 0 : ZK_ECORRUPT;
}

static size_t tab_size(const struct zk__lock_tab *t)
{
    size_t n = 4;
    for (uint32_t i = 0; i < t->n; i++)
        n += ENT_FIXED + strlen(t->e[i].who);
    return n;
}

static void tab_encode(const struct zk__lock_tab *t, uint8_t *p)
{
    zk_put_be32(p, t->n);
    p += 4;
    for (uint32_t i = 0; i < t->n; i++) {
        const struct zk_lock_ent *e = &t->e[i];
        size_t wl = strlen(e->who);
        zk_put_be32(p, e->flags);
        zk_put_be64(p + 4, e->session);
        zk_put_be64(p + 12, e->owner);
        zk_put_be64(p + 20, e->start);
        zk_put_be64(p + 28, e->end);
        zk_put_be64(p + 36, e->token);
        zk_put_be32(p + 44, e->pid);
        p[48] = (uint8_t)(wl >> 8);
        p[49] = (uint8_t)wl;
        memcpy(p + ENT_FIXED, e->who, wl);
        p += ENT_FIXED + wl;
    }
}

/* Loads ino's table (empty if none). */
static int tab_get(struct zk_store *s, MDB_txn *txn, uint64_t ino,
                   struct zk__lock_tab *t)
{
    uint8_t kb[8];
    MDB_val k = {8, kb}, v;

    zk_put_be64(kb, ino);
    int rc = mdb_get(txn, s->locks, &k, &v);
    if (rc == MDB_NOTFOUND) {
        t->n = 0;
        return 0;
    }
    if (rc != 0)
        return zk__mdb_err(rc, "lock get");
    rc = tab_decode(v.mv_data, v.mv_size, t);
    if (rc != 0)
        zk_log(ZK_LOG_ERROR, "store: lock table of inode %llu is corrupt",
               (unsigned long long)ino);
    return rc;
}

static int tab_put(struct zk_store *s, MDB_txn *txn, uint64_t ino,
                   const struct zk__lock_tab *t)
{
    uint8_t kb[8];
    MDB_val k = {8, kb}, v;

    zk_put_be64(kb, ino);
    if (t->n == 0) {
        int rc = mdb_del(txn, s->locks, &k, NULL);
        return rc == MDB_NOTFOUND ? 0 : zk__mdb_err(rc, "lock del");
    }
    v.mv_size = tab_size(t);
    int rc = mdb_put(txn, s->locks, &k, &v, MDB_RESERVE);
    if (rc != 0)
        return zk__mdb_err(rc, "lock put");
    tab_encode(t, v.mv_data);
    return 0;
}

int zk__lock_apply(struct zk_store *s, MDB_txn *txn, uint64_t zxid,
                   const struct zk_op *op, struct zk_op_result *r,
                   zk__lock_emit_cb emit, void *arg)
{
    struct zk__lock_tab *t = malloc(sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    int rc = tab_get(s, txn, op->ino, t);
    r->ino = op->ino;
    if (rc == 0)
        rc = zk__lock_tab_op(t, op->ino, zxid, op, r, emit, arg);
    if (rc == 0)
        rc = tab_put(s, txn, op->ino, t);
    free(t);
    return rc;
}

/* Drops every entry of session from ino's table. */
static int drop_session(struct zk_store *s, MDB_txn *txn, uint64_t ino,
                        uint64_t zxid, uint64_t session, struct zk__lock_tab *t,
                        zk__lock_emit_cb emit, void *arg)
{
    int changed;
    int rc = tab_get(s, txn, ino, t);
    if (rc == 0)
        rc = zk__lock_tab_drop_session(t, ino, zxid, session, emit, arg,
                                       &changed);
    if (rc != 0 || !changed)
        return rc;
    return tab_put(s, txn, ino, t);
}

/* The inodes whose table names session (a scan of the whole table: locks
 * are few, and sessions close rarely). */
static int session_inos(struct zk_store *s, MDB_txn *txn, uint64_t session,
                        uint64_t **out, size_t *n_out)
{
    MDB_cursor *c;
    MDB_val k, v;
    uint64_t *inos = NULL;
    size_t n = 0, cap = 0;
    uint8_t sb[8];
    int rc = mdb_cursor_open(txn, s->locks, &c);
    if (rc != 0)
        return zk__mdb_err(rc, "lock cursor");
    zk_put_be64(sb, session);
    while ((rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0) {
        /* Entries put the session at offset 4 of each; a byte search
         * over-approximates, drop_session checks exactly. */
        if (k.mv_size != 8 || !memmem(v.mv_data, v.mv_size, sb, 8))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            uint64_t *m = realloc(inos, cap * sizeof(*m));
            if (m == NULL) {
                rc = -ENOMEM;
                goto done;
            }
            inos = m;
        }
        inos[n++] = zk_get_be64(k.mv_data);
    }
    /* LMDB's codes are negative like ours (a damaged page:
     * MDB_PAGE_NOTFOUND); passed on as is, zk__apply_txn would take one
     * for the op's deterministic failure instead of a fatal error. */
    rc = rc == MDB_NOTFOUND ? 0 : zk__mdb_err(rc, "lock scan");
done:
    mdb_cursor_close(c);
    if (rc != 0) {
        free(inos);
        return rc;
    }
    *out = inos;
    *n_out = n;
    return 0;
}

int zk__lock_session_close(struct zk_store *s, MDB_txn *txn, uint64_t zxid,
                           uint64_t session, zk__lock_emit_cb emit, void *arg)
{
    uint64_t *inos = NULL;
    size_t n = 0;
    int rc = session_inos(s, txn, session, &inos, &n);
    struct zk__lock_tab *t = rc == 0 && n ? malloc(sizeof(*t)) : NULL;
    if (rc == 0 && n && t == NULL)
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = drop_session(s, txn, inos[i], zxid, session, t, emit, arg);
    free(t);
    free(inos);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */
/* ------------------------------------------------------------------ */

int zk_store_locks(struct zk_store *s, uint64_t ino, zk_store_lock_cb cb,
                   void *arg)
{
    MDB_txn *txn;
    uint8_t kb[8];
    MDB_val k = {8, kb}, v;
    int rc = zk__rd_begin(s, &txn);
    if (rc != 0)
        return rc;
    /* Most files have no lock table: answer that without decoding. */
    zk_put_be64(kb, ino);
    rc = mdb_get(txn, s->locks, &k, &v);
    if (rc != 0) {
        zk__rd_end(s, txn);
        return rc == MDB_NOTFOUND ? 0 : zk__mdb_err(rc, "lock get");
    }
    struct zk__lock_tab *t = malloc(sizeof(*t));
    rc = t ? tab_decode(v.mv_data, v.mv_size, t) : -ENOMEM;
    zk__rd_end(s, txn);
    for (uint32_t i = 0; rc == 0 && i < t->n; i++)
        rc = cb(arg, &t->e[i]);
    free(t);
    return rc;
}

int zk__lock_open(struct zk_store *s, MDB_txn *txn)
{
    int rc = mdb_dbi_open(txn, "locks", MDB_CREATE, &s->locks);
    return rc ? zk__mdb_err(rc, "locks open") : 0;
}

int zk_store_locked_files(struct zk_store *s, uint64_t *n_out)
{
    MDB_txn *txn;
    MDB_stat st;
    int rc = zk__rd_begin(s, &txn);
    if (rc != 0)
        return rc;
    rc = mdb_stat(txn, s->locks, &st);
    zk__rd_end(s, txn);
    if (rc != 0)
        return zk__mdb_err(rc, "lock stat");
    *n_out = st.ms_entries;
    return 0;
}
