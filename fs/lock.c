/*
 * lock.c — cluster-wide flock(2) through the replicated lock table
 * (store/lock.c): the FUSE flock op, parked waits, interrupts, release at
 * the last close, the fencing token xattr and the lock listing.
 *
 * A request becomes a ZK_OP_LOCK of (this replica's session, the kernel's
 * lock owner — for flock the open file). Its commit answers it at once
 * when it was granted or refused; a queued one is PARKED (no thread, no
 * polling) until the commit that grants it is applied on this replica: the
 * applied callback sees a ZK_CHANGE_LOCK for this session and owner and
 * answers it. So a waiter anywhere is granted within one commit of the
 * release that let it go.
 *
 * FUSE_INTERRUPT (a signal to the waiter): answered EINTR at once, and an
 * UNLOCK with ZK_UNLOCK_WAITS removes the wait everywhere — and the lock
 * too if a grant crossed the interrupt. A request the kernel sends again
 * (SA_RESTART) with the same owner is idempotent in the table.
 *
 * Release: RELEASE with flock_release (the last close of the open file,
 * also at the process's death) unlocks it. An unlock that cannot be
 * committed is proposed again and then gives the session up (release.c
 * does the same for ephemerals), so a lock never stays held by nobody.
 *
 * The lease: a request is refused with ENOLINK once this replica's lease
 * ran out, and parked waits of a session given up are answered ENOLINK;
 * read and getxattr on a file this replica's session holds locks on check
 * the lease too (zk__fs_lock_check).
 */
#include "fs_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>

#define ZK__FS_UNLOCK_TRIES 3   /* proposals of an unlock before giving up */

struct zk__fs_park {
    struct zk_fs *fs;
    fuse_req_t req;             /* NULL once answered */
    uint64_t ino, owner, session;
    uint32_t flags;             /* ZK_LOCK_* of the request */
    int parked;                 /* in fs->parked (queued, waiting) */
    struct zk__fs_park *next;
};

/* ------------------------------------------------------------------------ */
/* proposals                                                                 */
/* ------------------------------------------------------------------------ */

static void put_range(uint8_t *d, uint64_t owner, uint64_t start,
                      uint64_t end, uint32_t pid)
{
    zk_put_be64(d, owner);
    zk_put_be64(d + 8, start);
    zk_put_be64(d + 16, end);
    zk_put_be32(d + 24, pid);
}

struct unl {
    struct zk_fs *fs;
    uint64_t ino, owner, session;
    uint32_t flags;
    unsigned tries;
};

static int unlock_propose(struct unl *u);

static void unlock_done(void *arg, int err, const struct zk_apply_result *res)
{
    struct unl *u = arg;
    int rc = zk__fs_result_err(err, res);
    if (rc && rc != -ENOENT && !u->fs->stopping &&
        u->session == zk_replica_session(u->fs->replica)) {
        zk_log(ZK_LOG_WARN, "unlocking inode %llu: %s",
               (unsigned long long)u->ino, zk_strerror(rc));
        if (u->tries < ZK__FS_UNLOCK_TRIES && unlock_propose(u) == 0)
            return;
        zk_log(ZK_LOG_WARN, "unlock of inode %llu failed %u times: giving "
               "the session up so that the lock cannot linger",
               (unsigned long long)u->ino, u->tries);
        zk_replica_give_up(u->fs->replica);
    }
    free(u);
}

static int unlock_propose(struct unl *u)
{
    uint8_t d[ZK_LOCK_DATA_SIZE];
    put_range(d, u->owner, 0, UINT64_MAX, 0);
    struct zk_op op = {
        .type = ZK_OP_UNLOCK, .flags = u->flags, .ino = u->ino,
        .session = u->session, .data = d, .data_len = sizeof(d),
    };
    u->tries++;
    return zk__fs_propose1(u->fs, &op, unlock_done, u);
}

/* Drops (session, owner)'s flock lock and wait on ino, whatever happens. */
static void unlock_flock(struct zk_fs *fs, uint64_t ino, uint64_t session,
                         uint64_t owner)
{
    struct unl *u = calloc(1, sizeof(*u));
    if (!u) {
        zk_replica_give_up(fs->replica);
        return;
    }
    *u = (struct unl){ .fs = fs, .ino = ino, .owner = owner,
                       .session = session,
                       .flags = ZK_LOCK_FLOCK | ZK_UNLOCK_WAITS };
    if (unlock_propose(u) != 0) {
        zk_log(ZK_LOG_WARN, "cannot propose the unlock of inode %llu: "
               "giving the session up", (unsigned long long)ino);
        zk_replica_give_up(fs->replica);
        free(u);
    }
}

/* ------------------------------------------------------------------------ */
/* parked requests                                                           */
/* ------------------------------------------------------------------------ */

static void unpark(struct zk__fs_park *p)
{
    struct zk__fs_park **pp = &p->fs->parked;
    while (*pp && *pp != p)
        pp = &(*pp)->next;
    if (*pp)
        *pp = p->next;
    p->parked = 0;
}

static void answer(struct zk__fs_park *p, int err)
{
    if (p->req) {
        zk__fs_reply_errno(p->req, err);
        p->req = NULL;
    }
}

/* FUSE_INTERRUPT for a lock request: EINTR now; the wait (or a grant that
 * crossed it) is removed from the table everywhere. */
static void on_interrupt(fuse_req_t req, void *data)
{
    struct zk__fs_park *p = data;
    (void)req;
    if (!p->req)
        return;
    answer(p, -EINTR);
    if (p->parked) {
        unpark(p);
        unlock_flock(p->fs, p->ino, p->session, p->owner);
        free(p);
    }
    /* Not parked yet: lock_done sees req NULL and cleans up. */
}

static void lock_done(void *arg, int err, const struct zk_apply_result *res)
{
    struct zk__fs_park *p = arg;
    int rc = zk__fs_result_err(err, res);
    uint64_t token = rc == 0 && res && res->nops ? res->ops[0].token : 0;

    if (!p->req) {              /* interrupted meanwhile */
        if (rc == 0)
            unlock_flock(p->fs, p->ino, p->session, p->owner);
        free(p);
        return;
    }
    if (rc == -EAGAIN)
        rc = -EWOULDBLOCK;
    if (rc == ZK_ESESSION)
        rc = -ENOLINK;
    if (rc != 0 || token != 0) {
        answer(p, rc);
        free(p);
        return;
    }
    p->parked = 1;              /* queued: the grant's commit answers it */
    p->next = p->fs->parked;
    p->fs->parked = p;
}

/* ------------------------------------------------------------------------ */
/* FUSE ops                                                                  */
/* ------------------------------------------------------------------------ */

void zk__fs_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                  int op)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    struct zk_stat st;
    int rc = ino == ZK_CTL_INO ? -ENOLCK : zk_store_getattr(fs->store, ino, &st);
    if (rc == 0 && st.kind == ZK_KIND_DIR)
        rc = -ENOLCK;           /* RELEASEDIR would never unlock it */
    uint64_t session = zk_replica_session(fs->replica);
    if (rc == 0 && (zk_replica_lease_check(fs->replica) != 0 || !session))
        rc = -ENOLINK;          /* no session (lease lost, no quorum) */
    if (rc) {
        zk__fs_reply_errno(req, rc);
        return;
    }
    if ((op & ~LOCK_NB) == LOCK_UN) {
        unlock_flock(fs, ino, session, fi->lock_owner);
        fuse_reply_err(req, 0);
        return;
    }
    struct zk__fs_park *p = calloc(1, sizeof(*p));
    if (!p) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    *p = (struct zk__fs_park){ .fs = fs, .req = req, .ino = ino,
                               .owner = fi->lock_owner, .session = session,
                               .flags = ZK_LOCK_FLOCK };
    if ((op & ~LOCK_NB) == LOCK_EX)
        p->flags |= ZK_LOCK_WRITE;
    uint8_t d[ZK_LOCK_DATA_SIZE];
    char who[ZK_OWNER_MAX];
    pid_t tid = fuse_req_ctx(req)->pid;
    zk__fs_caller_owner(fs, tid, who, sizeof(who));
    put_range(d, p->owner, 0, UINT64_MAX, (uint32_t)tid);
    struct zk_op lop = {
        .type = ZK_OP_LOCK, .ino = ino, .session = session,
        .flags = p->flags | (op & LOCK_NB ? 0 : ZK_LOCK_WAIT),
        .data = d, .data_len = sizeof(d),
        .owner = who, .owner_len = (uint32_t)strlen(who),
    };
    fs->locks_used = 1;
    rc = zk__fs_propose1(fs, &lop, lock_done, p);
    if (rc) {
        free(p);
        zk__fs_reply_errno(req, rc);
        return;
    }
    if (!(op & LOCK_NB))
        fuse_req_interrupt_func(req, on_interrupt, p);
}

/* RELEASE: the last close of an open file drops its flock lock. */
void zk__fs_lock_release(struct zk_fs *fs, uint64_t ino,
                         const struct fuse_file_info *fi)
{
    uint64_t session = zk_replica_session(fs->replica);
    if (fi->flock_release && session)
        unlock_flock(fs, ino, session, fi->lock_owner);
}

/* ------------------------------------------------------------------------ */
/* commits and the lease                                                     */
/* ------------------------------------------------------------------------ */

/* An applied transaction granted queued requests: answer ours. */
static void lock_applied(struct zk_fs *fs, const struct zk_apply_result *res)
{
    for (uint32_t i = 0; i < res->nchanges; i++) {
        const struct zk_change *c = &res->changes[i];
        if (c->kind != ZK_CHANGE_LOCK)
            continue;
        for (struct zk__fs_park *p = fs->parked; p; p = p->next) {
            if (p->ino != c->ino || p->owner != c->lock_owner ||
                p->session != c->lock_session ||
                (p->flags & ZK_LOCK_FLOCK) != (c->lock_flags & ZK_LOCK_FLOCK))
                continue;
            unpark(p);
            answer(p, 0);
            free(p);
            break;
        }
    }
}

/* zk_replica's applied callback: lock grants, then the echo thread's work
 * (invalidations and replays). */
void zk__fs_applied(void *arg, const struct zk_apply_result *res)
{
    struct zk_fs *fs = arg;
    if (fs->parked)
        lock_applied(fs, res);
    zk__fs_echo_applied(arg, res);
}

/* The session was given up (lease.c): its parked waits end with ENOLINK
 * (the ensemble drops them with the session). */
void zk__fs_lock_session_lost(struct zk_fs *fs, uint64_t session)
{
    struct zk__fs_park **pp = &fs->parked;
    while (*pp) {
        struct zk__fs_park *p = *pp;
        if (session && p->session != session) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        p->parked = 0;
        answer(p, -ENOLINK);
        free(p);
    }
}

struct check {
    struct zk_fs *fs;
    uint64_t own;
    int mine, lost;
    uint64_t token;
};

static int check_cb(void *arg, const struct zk_lock_ent *e)
{
    struct check *c = arg;
    if (e->flags & ZK_LOCK_QUEUED)
        return 0;
    for (unsigned i = 0; i < c->fs->n_lost; i++)
        c->lost |= c->fs->lost[i] == e->session;
    if (e->session == c->own && c->own) {
        c->mine = 1;
        if (e->token > c->token)
            c->token = e->token;
    }
    return 0;
}

/* Before answering a read or getxattr on ino: ZK_ESESSION if a lock on it
 * belongs to a session this replica gave up, or to its own session whose
 * lease ran out just now. 0 otherwise (and at once when this mount never
 * took a lock). */
int zk__fs_lock_check(struct zk_fs *fs, uint64_t ino)
{
    if (!fs->locks_used)
        return 0;
    struct check c = { .fs = fs, .own = zk_replica_session(fs->replica) };
    if (zk_store_locks(fs->store, ino, check_cb, &c) != 0)
        return 0;
    if (c.mine && zk_replica_lease_check(fs->replica) != 0)
        return ZK_ESESSION;
    return c.lost ? ZK_ESESSION : 0;
}

/* ------------------------------------------------------------------------ */
/* xattrs                                                                    */
/* ------------------------------------------------------------------------ */

/* user.zkfs.lock.token: the token (grant zxid) of this replica's lock on
 * ino, in decimal; -ENODATA when its session holds none. */
int zk__fs_lock_token(struct zk_fs *fs, uint64_t ino, char *buf, size_t size)
{
    int rc = zk__fs_lock_check(fs, ino);
    if (rc)
        return rc;
    struct check c = { .fs = fs, .own = zk_replica_session(fs->replica) };
    rc = zk_store_locks(fs->store, ino, check_cb, &c);
    if (rc)
        return rc;
    if (!c.mine)
        return -ENODATA;
    snprintf(buf, size, "%llu", (unsigned long long)c.token);
    return 0;
}

struct listing {
    char *buf;
    size_t len, cap;
};

static int list_cb(void *arg, const struct zk_lock_ent *e)
{
    struct listing *l = arg;
    char line[ZK_OWNER_MAX + 160];
    char range[48] = "-";
    if (!(e->flags & ZK_LOCK_FLOCK)) {
        if (e->end == UINT64_MAX)
            snprintf(range, sizeof(range), "%llu-",
                     (unsigned long long)e->start);
        else
            snprintf(range, sizeof(range), "%llu-%llu",
                     (unsigned long long)e->start,
                     (unsigned long long)e->end);
    }
    int n = snprintf(line, sizeof(line), "%s %s %s %s %016llx %llu %s\n",
                     e->flags & ZK_LOCK_QUEUED ? "waits" : "holds",
                     e->flags & ZK_LOCK_FLOCK ? "flock" : "posix",
                     e->flags & ZK_LOCK_WRITE ? "exclusive" : "shared",
                     range, (unsigned long long)e->session,
                     (unsigned long long)e->token, e->who);
    if (n < 0)
        return -EINVAL;
    if (l->len + (size_t)n > l->cap) {
        size_t cap = (l->cap + (size_t)n) * 2;
        char *b = realloc(l->buf, cap);
        if (!b)
            return -ENOMEM;
        l->buf = b;
        l->cap = cap;
    }
    memcpy(l->buf + l->len, line, (size_t)n);
    l->len += (size_t)n;
    return 0;
}

/* user.zkfs.locks: the lock table of ino as text, one line per entry:
 * "holds|waits flock|posix exclusive|shared RANGE SESSION TOKEN WHO"
 * (holders and waiters in table order, waiters in queue order; TOKEN is
 * the grant's zxid, or the request's for a waiter). *out is malloc'd. */
int zk__fs_lock_list(struct zk_fs *fs, uint64_t ino, uint8_t **out,
                     size_t *len)
{
    struct listing l = { NULL, 0, 0 };
    int rc = zk_store_locks(fs->store, ino, list_cb, &l);
    if (rc) {
        free(l.buf);
        return rc;
    }
    *out = (uint8_t *)l.buf;
    *len = l.len;
    return 0;
}
