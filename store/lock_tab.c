/*
 * lock_tab.c — the rules of the replicated lock table (what store/lock.c
 * documents: namespaces, owners, ranges that split and merge, FIFO
 * fairness, grants reported through emit) on one inode's table in memory.
 * Pure: no LMDB, no I/O, so that store/lock.c (which reads and writes the
 * tables) and the simulator (test/sim/sim_lock.c, which checks mutual
 * exclusion, queue order and the lease on every replica) run the same
 * rules.
 */
#include "lock_tab.h"

#include <errno.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* The rules                                                           */
/* ------------------------------------------------------------------ */

static int same_owner(const struct zk_lock_ent *a, const struct zk_lock_ent *b)
{
    return a->session == b->session && a->owner == b->owner &&
           (a->flags & ZK_LOCK_FLOCK) == (b->flags & ZK_LOCK_FLOCK);
}

int zk__lock_conflict(const struct zk_lock_ent *a,
                      const struct zk_lock_ent *b)
{
    return (a->flags & ZK_LOCK_FLOCK) == (b->flags & ZK_LOCK_FLOCK) &&
           !same_owner(a, b) && a->start <= b->end && b->start <= a->end &&
           ((a->flags | b->flags) & ZK_LOCK_WRITE);
}

/* Whether q (at index qi, or a new request with qi = t->n) may be granted:
 * no holder and no earlier waiter conflicts with it. */
static int grantable(const struct zk__lock_tab *t, const struct zk_lock_ent *q,
                     uint32_t qi)
{
    for (uint32_t i = 0; i < t->n; i++) {
        const struct zk_lock_ent *e = &t->e[i];
        if (i == qi || !zk__lock_conflict(e, q))
            continue;
        if (!(e->flags & ZK_LOCK_QUEUED) || i < qi)
            return 0;
    }
    return 1;
}

static void tab_remove(struct zk__lock_tab *t, uint32_t i)
{
    memmove(&t->e[i], &t->e[i + 1], (t->n - i - 1) * sizeof(t->e[0]));
    t->n--;
}

static int tab_add(struct zk__lock_tab *t, const struct zk_lock_ent *e)
{
    if (t->n == ZK_LOCK_ENTS_MAX)
        return -ENOLCK;
    t->e[t->n++] = *e;
    return 0;
}

/* Removes what owner o holds in [start, end] (of o's namespace), splitting
 * a holder that sticks out on both sides. */
static int release_range(struct zk__lock_tab *t, const struct zk_lock_ent *o,
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
static int hold(struct zk__lock_tab *t, struct zk_lock_ent *q)
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
static int scan_waiters(struct zk__lock_tab *t, uint64_t ino, uint64_t zxid,
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
static int replace_own(struct zk__lock_tab *t, const struct zk_lock_ent *q,
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
static int lock_op(struct zk__lock_tab *t, uint64_t ino, uint64_t zxid,
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

static int unlock_op(struct zk__lock_tab *t, uint64_t ino, uint64_t zxid,
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

int zk__lock_tab_op(struct zk__lock_tab *t, uint64_t ino, uint64_t zxid,
                    const struct zk_op *op, struct zk_op_result *r,
                    zk__lock_emit_cb emit, void *arg)
{
    return op->type == ZK_OP_LOCK ? lock_op(t, ino, zxid, op, r, emit, arg)
                                  : unlock_op(t, ino, zxid, op, emit, arg);
}

int zk__lock_tab_drop_session(struct zk__lock_tab *t, uint64_t ino,
                              uint64_t zxid, uint64_t session,
                              zk__lock_emit_cb emit, void *arg, int *changed)
{
    uint32_t n0 = t->n;
    for (uint32_t i = 0; i < t->n; i++)
        if (t->e[i].session == session)
            tab_remove(t, i--);
    *changed = t->n != n0;
    return *changed ? scan_waiters(t, ino, zxid, emit, arg) : 0;
}
