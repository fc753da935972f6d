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
 */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ENT_FIXED 50                  /* an entry without its who bytes */

struct tab {
    uint32_t n;
    struct zk_lock_ent e[ZK_LOCK_ENTS_MAX];
};

/* ------------------------------------------------------------------ */
/* Records                                                             */
/* ------------------------------------------------------------------ */

static int tab_decode(const uint8_t *p, size_t len, struct tab *t)
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

static size_t tab_size(const struct tab *t)
{
    size_t n = 4;
    for (uint32_t i = 0; i < t->n; i++)
        n += ENT_FIXED + strlen(t->e[i].who);
    return n;
}

static void tab_encode(const struct tab *t, uint8_t *p)
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
                   struct tab *t)
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
                   const struct tab *t)
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

/* ------------------------------------------------------------------ */
/* The rules                                                           */
/* ------------------------------------------------------------------ */

static int same_owner(const struct zk_lock_ent *a, const struct zk_lock_ent *b)
{
    return a->session == b->session && a->owner == b->owner &&
           (a->flags & ZK_LOCK_FLOCK) == (b->flags & ZK_LOCK_FLOCK);
}

static int conflict(const struct zk_lock_ent *a, const struct zk_lock_ent *b)
{
    return (a->flags & ZK_LOCK_FLOCK) == (b->flags & ZK_LOCK_FLOCK) &&
           !same_owner(a, b) && a->start <= b->end && b->start <= a->end &&
           ((a->flags | b->flags) & ZK_LOCK_WRITE);
}

/* Whether q (at index qi, or a new request with qi = t->n) may be granted:
 * no holder and no earlier waiter conflicts with it. */
static int grantable(const struct tab *t, const struct zk_lock_ent *q,
                     uint32_t qi)
{
    for (uint32_t i = 0; i < t->n; i++) {
        const struct zk_lock_ent *e = &t->e[i];
        if (i == qi || !conflict(e, q))
            continue;
        if (!(e->flags & ZK_LOCK_QUEUED) || i < qi)
            return 0;
    }
    return 1;
}

static void tab_remove(struct tab *t, uint32_t i)
{
    memmove(&t->e[i], &t->e[i + 1], (t->n - i - 1) * sizeof(t->e[0]));
    t->n--;
}

static int tab_add(struct tab *t, const struct zk_lock_ent *e)
{
    if (t->n == ZK_LOCK_ENTS_MAX)
        return -ENOLCK;
    t->e[t->n++] = *e;
    return 0;
}

/* Removes what owner o holds in [start, end] (of o's namespace), splitting
 * a holder that sticks out on both sides. */
static int release_range(struct tab *t, const struct zk_lock_ent *o,
                         uint64_t start, uint64_t end)
{
    for (uint32_t i = 0; i < t->n;) {
        struct zk_lock_ent *e = &t->e[i];
        if ((e->flags & ZK_LOCK_QUEUED) || !same_owner(e, o) ||
            e->end < start || e->start > end) {
            i++;
            continue;
        }
        if (e->start < start && e->end > end) {      /* split in two */
            struct zk_lock_ent right = *e;
            right.start = end + 1;
            e->end = start - 1;
            if (tab_add(t, &right) != 0)
                return -ENOLCK;
            i++;
        } else if (e->start < start) {
            e->end = start - 1;
            i++;
        } else if (e->end > end) {
            e->start = end + 1;
            i++;
        } else {
            tab_remove(t, i);
        }
    }
    return 0;
}

/* Makes q (a holder now) own its range in its mode, merging with the
 * owner's adjacent or overlapping ranges of the same mode. */
static int hold(struct tab *t, struct zk_lock_ent *q)
{
    int rc = release_range(t, q, q->start, q->end);
    if (rc != 0)
        return rc;
    for (uint32_t i = 0; i < t->n;) {
        struct zk_lock_ent *e = &t->e[i];
        int touches = (e->end == UINT64_MAX || e->end + 1 >= q->start) &&
                      (q->end == UINT64_MAX || q->end + 1 >= e->start);
        if (!(e->flags & ZK_LOCK_QUEUED) && same_owner(e, q) && touches &&
            (e->flags & ZK_LOCK_WRITE) == (q->flags & ZK_LOCK_WRITE)) {
            if (e->start < q->start)
                q->start = e->start;
            if (e->end > q->end)
                q->end = e->end;
            tab_remove(t, i);
            continue;
        }
        i++;
    }
    return tab_add(t, q);
}

/* Grants every waiter that can go, in queue order; emit tells about each. */
static int scan_waiters(struct tab *t, uint64_t ino, uint64_t zxid,
                        zk__lock_emit_cb emit, void *arg)
{
    for (uint32_t i = 0; i < t->n; i++) {
        struct zk_lock_ent q = t->e[i];
        if (!(q.flags & ZK_LOCK_QUEUED) || !grantable(t, &q, i))
            continue;
        tab_remove(t, i);
        q.flags &= ~ZK_LOCK_QUEUED;
        q.token = zxid;
        int rc = hold(t, &q);
        if (rc == 0)
            rc = emit(arg, ino, &q);
        if (rc != 0)
            return rc;
        i = (uint32_t)-1;               /* the table moved: start over */
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Applying                                                            */
/* ------------------------------------------------------------------ */

static int parse(const struct zk_op *op, struct zk_lock_ent *q)
{
    if (op->data_len != ZK_LOCK_DATA_SIZE || op->owner_len > ZK_OWNER_MAX)
        return -EINVAL;
    memset(q, 0, sizeof(*q));
    q->flags = op->flags & (ZK_LOCK_WRITE | ZK_LOCK_FLOCK);
    q->session = op->session;
    q->owner = zk_get_be64(op->data);
    q->start = zk_get_be64(op->data + 8);
    q->end = zk_get_be64(op->data + 16);
    q->pid = zk_get_be32(op->data + 24);
    if (op->owner_len)
        memcpy(q->who, op->owner, op->owner_len);
    q->who[op->owner_len] = '\0';
    if (q->flags & ZK_LOCK_FLOCK) {
        q->start = 0;
        q->end = UINT64_MAX;
    }
    return q->start <= q->end ? 0 : -EINVAL;
}

/* The owner's earlier request or flock lock, replaced by this one; 1 if
 * q is already there as it is (a request sent again: idempotent).
 * *dropped: a flock lock the owner held was removed (a conversion). */
static int replace_own(struct tab *t, const struct zk_lock_ent *q,
                       struct zk_op_result *r, int *dropped)
{
    *dropped = 0;
    for (uint32_t i = 0; i < t->n; i++) {
        struct zk_lock_ent *e = &t->e[i];
        if (!same_owner(e, q))
            continue;
        int queued = !!(e->flags & ZK_LOCK_QUEUED);
        int same = (e->flags & ZK_LOCK_WRITE) == (q->flags & ZK_LOCK_WRITE) &&
                   e->start == q->start && e->end == q->end;
        if (same && (queued || (q->flags & ZK_LOCK_FLOCK))) {
            r->token = queued ? 0 : e->token;
            return 1;
        }
        if (queued || (q->flags & ZK_LOCK_FLOCK)) {
            *dropped |= !queued;
            tab_remove(t, i);   /* flock converts by unlocking first */
            i--;
        }
    }
    return 0;
}

/* A conflicting request that does not wait fails with -EAGAIN and
 * changes nothing — except a flock conversion (LOCK_SH -> LOCK_EX |
 * LOCK_NB, or back): flock(2) drops the old lock first and Linux leaves
 * it dropped when the new one cannot be had, so that drop is committed
 * (the next waiters may go) and the request is answered refused. */
static int lock_op(struct tab *t, uint64_t ino, uint64_t zxid,
                   const struct zk_op *op, struct zk_op_result *r,
                   zk__lock_emit_cb emit, void *arg)
{
    struct zk_lock_ent q;
    int dropped;
    int rc = parse(op, &q);
    if (rc != 0)
        return rc;
    if (replace_own(t, &q, r, &dropped))
        return 0;
    q.token = zxid;
    if (grantable(t, &q, t->n)) {
        rc = hold(t, &q);
        r->token = zxid;
    } else if (op->flags & ZK_LOCK_WAIT) {
        q.flags |= ZK_LOCK_QUEUED;
        rc = tab_add(t, &q);
        r->token = 0;
    } else if (dropped) {
        r->token = 0;
        r->refused = 1;
    } else {
        return -EAGAIN;
    }
    return rc ? rc : scan_waiters(t, ino, zxid, emit, arg);
}

static int unlock_op(struct tab *t, uint64_t ino, uint64_t zxid,
                     const struct zk_op *op, zk__lock_emit_cb emit, void *arg)
{
    struct zk_lock_ent o;
    int rc = parse(op, &o);
    if (rc != 0)
        return rc;
    if (!(op->flags & ZK_UNLOCK_NO_HOLDS))
        rc = release_range(t, &o, o.start, o.end);
    for (uint32_t i = 0; rc == 0 && i < t->n; i++)
        if ((op->flags & ZK_UNLOCK_WAITS) &&
            (t->e[i].flags & ZK_LOCK_QUEUED) && same_owner(&t->e[i], &o))
            tab_remove(t, i--);
    return rc ? rc : scan_waiters(t, ino, zxid, emit, arg);
}

int zk__lock_apply(struct zk_store *s, MDB_txn *txn, uint64_t zxid,
                   const struct zk_op *op, struct zk_op_result *r,
                   zk__lock_emit_cb emit, void *arg)
{
    struct tab *t = malloc(sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    int rc = tab_get(s, txn, op->ino, t);
    r->ino = op->ino;
    if (rc == 0)
        rc = op->type == ZK_OP_LOCK
                 ? lock_op(t, op->ino, zxid, op, r, emit, arg)
                 : unlock_op(t, op->ino, zxid, op, emit, arg);
    if (rc == 0)
        rc = tab_put(s, txn, op->ino, t);
    free(t);
    return rc;
}

/* Drops every entry of session from ino's table. */
static int drop_session(struct zk_store *s, MDB_txn *txn, uint64_t ino,
                        uint64_t zxid, uint64_t session, struct tab *t,
                        zk__lock_emit_cb emit, void *arg)
{
    int rc = tab_get(s, txn, ino, t);
    uint32_t n0 = t->n;
    for (uint32_t i = 0; rc == 0 && i < t->n; i++)
        if (t->e[i].session == session)
            tab_remove(t, i--);
    if (rc != 0 || t->n == n0)
        return rc;
    rc = scan_waiters(t, ino, zxid, emit, arg);
    return rc ? rc : tab_put(s, txn, ino, t);
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
                break;
            }
            inos = m;
        }
        inos[n++] = zk_get_be64(k.mv_data);
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND) {
        free(inos);
        return rc < 0 ? rc : zk__mdb_err(rc, "lock scan");
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
    struct tab *t = rc == 0 && n ? malloc(sizeof(*t)) : NULL;
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
    struct tab *t = malloc(sizeof(*t));
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
