/*
 * lock.c — cluster-wide flock(2) and fcntl record locks (F_SETLK[W],
 * F_GETLK, OFD locks) through the replicated lock table (store/lock.c):
 * the FUSE flock, setlk and getlk ops, parked waits, interrupts, release
 * at close, the fencing token xattr and the lock listing.
 *
 * A request becomes a ZK_OP_LOCK of (this replica's session, the kernel's
 * lock owner — for flock and OFD locks the open file, for POSIX locks the
 * process's file table). Its commit answers it at once
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
 * also at the process's death) unlocks the flock lock; FLUSH (any close)
 * unlocks the fcntl locks of the closing owner (POSIX), RELEASE those
 * taken through the open file (OFD locks arrive as plain SETLK owned by
 * the open file; RELEASE carries owner 0, so the mount remembers which
 * owners went through which open file). An unlock that cannot be
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
#define ZK__FS_POSIX_OWNERS_MAX 4096 /* (inode, owner, open file) tracked */

struct zk__fs_park {
    struct zk_fs *fs;
    struct zk__fs_fh *fh;       /* the open file the request came through */
    fuse_req_t req;             /* NULL once answered */
    uint64_t ino, owner, session, start, end;
    uint32_t flags;             /* ZK_LOCK_* of the request */
    int wait;                   /* it blocks (F_SETLKW, flock without NB) */
    int parked;                 /* in fs->parked (queued, waiting) */
    struct zk__fs_park *next;
};

/* An fcntl lock owner this mount has used on an inode, and the open file
 * it came through: FLUSH unlocks the owner (POSIX: any close), RELEASE
 * what the open file still has (OFD locks, owned by the open file). */
struct zk__fs_lk {
    uint64_t ino, owner, fh;
    struct zk__fs_lk *next;
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
    fuse_req_t req;             /* answered once committed (or NULL) */
    struct zk__fs_fh *flush;    /* req is a FLUSH: its commit comes next */
    uint64_t ino, owner, session, start, end;
    uint32_t flags;
    unsigned tries;
    int paused;                 /* no req: requests are paused until done */
};

static int unlock_propose(struct unl *u);

/* An unlock must not fail quietly: it is proposed again, and then the
 * session is given up (which drops every lock of it). Either way the
 * caller is told 0: the lock is gone or going. */
static void unlock_done(void *arg, int err, const struct zk_apply_result *res)
{
    struct unl *u = arg;
    int rc = zk__fs_result_err(err, res);
    if (rc && rc != -ENOENT && !u->fs->stopping &&
        u->session == zk_replica_session(u->fs->replica)) {
        zk_log(ZK_LOG_WARN, "unlocking inode %llu: %s",
               (unsigned long long)u->ino, zk_strerror(rc));
        if (u->paused) {        /* one attempt's wait at most */
            u->paused = 0;
            zk__fs_resume(u->fs);
        }
        if (u->tries < ZK__FS_UNLOCK_TRIES && unlock_propose(u) == 0)
            return;
        zk_log(ZK_LOG_WARN, "unlock of inode %llu failed %u times: giving "
               "the session up so that the lock cannot linger",
               (unsigned long long)u->ino, u->tries);
        zk_replica_give_up(u->fs->replica);
    }
    if (u->req && u->flush)
        zk__fs_flush_commit(u->fs, u->req, u->flush);
    else if (u->req)
        fuse_reply_err(u->req, 0);
    if (u->paused)
        zk__fs_resume(u->fs);
    free(u);
}

static int unlock_propose(struct unl *u)
{
    uint8_t d[ZK_LOCK_DATA_SIZE];
    put_range(d, u->owner, u->start, u->end, 0);
    struct zk_op op = {
        .type = ZK_OP_UNLOCK, .flags = u->flags, .ino = u->ino,
        .session = u->session, .data = d, .data_len = sizeof(d),
    };
    u->tries++;
    return zk__fs_propose1(u->fs, &op, unlock_done, u);
}

/* Commits an UNLOCK of (session, owner) on ino: flags ZK_LOCK_FLOCK (else
 * fcntl) | ZK_UNLOCK_*, over [start, end]; req (may be NULL) is answered
 * 0 once it is committed. */
static void unlock(struct zk_fs *fs, fuse_req_t req, uint64_t ino,
                   uint64_t session, uint64_t owner, uint32_t flags,
                   uint64_t start, uint64_t end)
{
    struct unl *u = calloc(1, sizeof(*u));
    if (u) {
        *u = (struct unl){ .fs = fs, .req = req, .ino = ino, .owner = owner,
                           .session = session, .flags = flags,
                           .start = start, .end = end };
        if (unlock_propose(u) == 0) {
            /* Nobody waits for an unlock made at RELEASE (the last close
             * of an OFD or flock holder; close() has returned): like a
             * commit made there (file.c), it is applied before any later
             * request is served, or an F_GETLK or a lock request right
             * after the close() would still meet the lock (fsfuzz seed
             * 70675). */
            if (!req) {
                u->paused = 1;
                zk__fs_pause(fs);
            }
            return;
        }
        free(u);
    }
    zk_log(ZK_LOG_WARN, "cannot propose the unlock of inode %llu: giving "
           "the session up", (unsigned long long)ino);
    zk_replica_give_up(fs->replica);
    if (req)
        fuse_reply_err(req, 0);
}

/* ------------------------------------------------------------------------ */
/* parked requests                                                           */
/* ------------------------------------------------------------------------ */

/* Whether a and b wait for the same owner's lock of one kind on one file
 * (the table keeps one wait for them), and whether they ask for exactly
 * the same (mode and range: one wait answers both). */
static int same_wait(const struct zk__fs_park *a, const struct zk__fs_park *b)
{
    return a->ino == b->ino && a->owner == b->owner &&
           a->session == b->session &&
           (a->flags & ZK_LOCK_FLOCK) == (b->flags & ZK_LOCK_FLOCK);
}

static int same_request(const struct zk__fs_park *a,
                        const struct zk__fs_park *b)
{
    return same_wait(a, b) && a->flags == b->flags &&
           a->start == b->start && a->end == b->end;
}

/* Whether another request parked here still needs p's wait in the table. */
static int wait_shared(const struct zk__fs_park *p)
{
    for (const struct zk__fs_park *o = p->fs->parked; o; o = o->next)
        if (o != p && same_wait(o, p))
            return 1;
    return 0;
}



/* Whether a request of (session, owner) of that kind waits here. */
static int owner_parked(struct zk_fs *fs, uint64_t ino, uint64_t session,
                        uint64_t owner, uint32_t kind)
{
    const struct zk__fs_park key = {.fs = fs, .ino = ino, .owner = owner,
                                    .session = session, .flags = kind};
    return wait_shared(&key);
}

/* ZK_UNLOCK_WAITS, unless a request of (session, owner) of that kind is
 * parked here: an unlock of the owner (another descriptor's close, a
 * LOCK_UN through the open file another process waits on) drops what it
 * holds and leaves that wait, as Linux does (until 2026-12-05 the wait
 * went and the request stayed parked with nothing to answer it; found
 * by a review). */
static uint32_t waits_too(struct zk_fs *fs, uint64_t ino,
                          uint64_t session, uint64_t owner, uint32_t kind)
{
    return owner_parked(fs, ino, session, owner, kind) ? 0 : ZK_UNLOCK_WAITS;
}

/* Drops (session, owner)'s whole lock of that kind, and its wait unless
 * a request parked here has it. */
static void unlock_all(struct zk_fs *fs, uint64_t ino, uint64_t session,
                       uint64_t owner, uint32_t kind)
{
    unlock(fs, NULL, ino, session, owner,
           kind | waits_too(fs, ino, session, owner, kind), 0, UINT64_MAX);
}

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
    if (err == 0 && p->fh)
        p->fh->lock_session = p->session;   /* a holder's descriptor */
    if (p->req) {
        zk__fs_reply_errno(p->req, err);
        p->req = NULL;
    }
}

/* Ends p's wait in the table: a flock wait with its lock (the conversion
 * had dropped the old one anyway), an fcntl wait alone (the owner keeps
 * the ranges it holds). */
static void cancel(struct zk__fs_park *p)
{
    uint32_t kind = p->flags & ZK_LOCK_FLOCK;
    uint32_t how = kind ? ZK_UNLOCK_WAITS
                        : ZK_UNLOCK_WAITS | ZK_UNLOCK_NO_HOLDS;
    unlock(p->fs, NULL, p->ino, p->session, p->owner, kind | how, 0,
           UINT64_MAX);
}

/* FUSE_INTERRUPT for a lock request: EINTR now; the wait is removed from
 * the table everywhere. */
static void on_interrupt(fuse_req_t req, void *data)
{
    struct zk__fs_park *p = data;
    (void)req;
    if (!p->req)
        return;
    answer(p, -EINTR);
    if (p->parked) {
        unpark(p);
        if (!wait_shared(p))
            cancel(p);
        free(p);
    }
    /* Not parked yet: lock_done sees req NULL and cleans up. */
}

/* One owner has one wait per file and kind in the table. A request
 * asking for exactly what an older parked one of the same owner asks
 * (two threads sharing a descriptor, or a process's threads blocking on
 * the same fcntl range) shares its wait: the grant answers both. Any
 * other request of the owner replaces the wait in the table once it is
 * committed (granted or queued; one that fails, e.g. a conflicting
 * F_SETLK, changes nothing), so the older requests (of another range or
 * mode) would never be answered: they end with ENOLCK then (their callers
 * may retry), every one of them. Not EINTR: the kernel makes a lock
 * request's EINTR ERESTARTSYS, which reaches a caller with no signal
 * pending as errno 512. (Until 2026-12-05 they ended when the newer
 * request came, with EINTR, only the first of them, and also when the
 * newer one failed: a review found the 512, a thread later answered 0
 * for a range it did not hold, and a wait left in the table after its
 * request was answered.) */
static void end_older_waits(const struct zk__fs_park *n)
{
    struct zk__fs_park **pp = &n->fs->parked;
    while (*pp) {
        struct zk__fs_park *p = *pp;
        if (p == n || !same_wait(p, n) || same_request(p, n)) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        p->parked = 0;
        answer(p, -ENOLCK);
        free(p);
    }
}

static void lock_done(void *arg, int err, const struct zk_apply_result *res)
{
    struct zk__fs_park *p = arg;
    int rc = zk__fs_result_err(err, res);
    uint64_t token = rc == 0 && res && res->nops ? res->ops[0].token : 0;

    if (rc == 0 && res && res->nops && res->ops[0].refused) {
        rc = -EAGAIN;           /* a failed conversion: the old lock went */
        if (p->fh)
            p->fh->lock_session = 0;
    }
    /* A request that does not block, identical to the owner's own wait
     * (another process sharing the open file parked in flock(LOCK_EX),
     * then LOCK_EX|LOCK_NB through it): the table keeps the wait (it is
     * the other request's) and reports it queued; this one cannot have
     * the lock now. Until 2026-12-05 it was parked, unkillable. */
    if (rc == 0 && token == 0 && !p->wait)
        rc = -EAGAIN;
    /* Queued, or granted by this very commit: the table has this one's
     * wait, not theirs (a grant the owner had before changed nothing). */
    if (rc == 0 && (token == 0 || token == res->zxid))
        end_older_waits(p);
    if (!p->req) {              /* interrupted meanwhile */
        /* Queued: the wait goes, unless a request parked here shares it.
         * A flock granted by this very commit crossed the interrupt: it
         * goes too. A grant the owner had before (the request found it
         * held: an older token) is not this request's and stays. */
        if (rc == 0 && token == 0 && !wait_shared(p))
            cancel(p);
        else if (rc == 0 && token != 0 && token == res->zxid &&
                 (p->flags & ZK_LOCK_FLOCK))
            unlock_all(p->fs, p->ino, p->session, p->owner, ZK_LOCK_FLOCK);
        free(p);
        return;
    }
    /* The session it was made in was given up meanwhile (its parked
     * waits were answered ENOLINK then, zk__fs_lock_session_lost): what
     * it got, a grant or a place in the queue, goes with that session's
     * close; parked, nothing would ever answer it (found by a review). */
    if (rc == 0 && p->session != zk_replica_session(p->fs->replica))
        rc = ZK_ESESSION;
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

/* Checks what every lock request needs; the session in *session. */
static int lock_ready(struct zk_fs *fs, fuse_ino_t ino, uint64_t *session)
{
    struct zk_stat st;
    int rc = ino == ZK_CTL_INO ? -ENOLCK : zk_store_getattr(fs->store, ino, &st);
    if (rc == 0 && st.kind == ZK_KIND_DIR)
        rc = -ENOLCK;           /* RELEASEDIR would never unlock it */
    if (rc == -ENOENT)
        rc = 0;                 /* a file deleted while open: lockable */
    *session = zk_replica_session(fs->replica);
    if (rc == 0 && (zk_replica_lease_check(fs->replica) != 0 || !*session))
        rc = -ENOLINK;          /* no session (lease lost, no quorum) */
    return rc;
}

/* Proposes a LOCK for p (its request waits for the answer). */
static void lock_propose(struct zk__fs_park *p, int wait)
{
    uint8_t d[ZK_LOCK_DATA_SIZE];
    char who[ZK_OWNER_MAX];
    /* F_GETLK reports the process, as Linux does, not the thread that
     * asked (FUSE gives the thread; until 2026-12-05 F_GETLK showed it,
     * and 0 once that thread had exited: found by a review). */
    pid_t pid = zk__fs_tgid(fuse_req_ctx(p->req)->pid);
    zk__fs_owner_of(p->fs, pid, who, sizeof(who));
    put_range(d, p->owner, p->start, p->end, (uint32_t)pid);
    struct zk_op lop = {
        .type = ZK_OP_LOCK, .ino = p->ino, .session = p->session,
        .flags = p->flags | (wait ? ZK_LOCK_WAIT : 0),
        .data = d, .data_len = sizeof(d),
        .owner = who, .owner_len = (uint32_t)strlen(who),
    };
    fuse_req_t req = p->req;
    p->fs->locks_used = 1;
    p->wait = wait;
    int rc = zk__fs_propose1(p->fs, &lop, lock_done, p);
    if (rc) {
        free(p);
        zk__fs_reply_errno(req, rc);
        return;
    }
    /* A request interrupted before this (while it waited for a new
     * file's create, prov.c) is answered here: libfuse would call
     * on_interrupt from inside fuse_req_interrupt_func, under the
     * request's mutex, which the answer frees (a use after free, found
     * by a review under valgrind). */
    if (wait && fuse_req_interrupted(req))
        on_interrupt(req, p);
    else if (wait)
        fuse_req_interrupt_func(req, on_interrupt, p);
}

static void lock_request(fuse_req_t req, struct fuse_file_info *fi,
                         uint64_t ino, uint64_t session,
                         uint64_t owner, uint32_t flags, uint64_t start,
                         uint64_t end, int wait)
{
    struct zk__fs_park *p = calloc(1, sizeof(*p));
    if (!p) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    *p = (struct zk__fs_park){ .fs = fuse_req_userdata(req), .req = req,
                               .ino = ino, .owner = owner,
                               .session = session, .flags = flags,
                               .start = start, .end = end };
    p->fh = (struct zk__fs_fh *)(uintptr_t)fi->fh;
    lock_propose(p, wait);
}

/* ------------------------------------------------------------------------ */
/* FUSE ops                                                                  */
/* ------------------------------------------------------------------------ */

void zk__fs_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                  int op)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    struct zk__fs_prov *pv = zk__fs_prov_of(fs, ino);
    if (pv) {                   /* a lock needs the node: commit it first */
        zk__fs_prov_defer(fs, pv, &(struct zk__fs_defer){
            .req = req, .op = ZK__DEFER_FLOCK, .ino = ino, .has_fi = 1, .fi = *fi, .flags = op});
        return;
    }
    ino = zk__fs_ino(fs, ino);
    uint64_t session;
    int rc = lock_ready(fs, ino, &session);
    if (rc) {
        zk__fs_reply_errno(req, rc);
        return;
    }
    if ((op & ~LOCK_NB) == LOCK_UN) {
        ((struct zk__fs_fh *)(uintptr_t)fi->fh)->lock_session = 0;
        unlock(fs, req, ino, session, fi->lock_owner,
               ZK_LOCK_FLOCK | waits_too(fs, ino, session, fi->lock_owner,
                                         ZK_LOCK_FLOCK), 0, UINT64_MAX);
        return;
    }
    uint32_t flags = ZK_LOCK_FLOCK;
    if ((op & ~LOCK_NB) == LOCK_EX)
        flags |= ZK_LOCK_WRITE;
    lock_request(req, fi, ino, session, fi->lock_owner, flags, 0,
                 UINT64_MAX, !(op & LOCK_NB));
}

/* The byte range of a struct flock as libfuse hands it (l_len 0: to the
 * end of the file; l_start already absolute). */
static int range_of(const struct flock *lk, uint64_t *start, uint64_t *end)
{
    if (lk->l_start < 0 || lk->l_len < 0)
        return -EINVAL;
    *start = (uint64_t)lk->l_start;
    *end = lk->l_len == 0 ? UINT64_MAX
                          : (uint64_t)lk->l_start + (uint64_t)lk->l_len - 1;
    return *end < *start ? -EINVAL : 0;
}

/* Remembers that (ino, owner) took fcntl locks through open file fh. */
static int track(struct zk_fs *fs, uint64_t ino, uint64_t owner, uint64_t fh)
{
    unsigned n = 0;
    for (struct zk__fs_lk *l = fs->posix; l; l = l->next, n++)
        if (l->ino == ino && l->owner == owner && l->fh == fh)
            return 0;
    if (n >= ZK__FS_POSIX_OWNERS_MAX)
        return -ENOLCK;
    struct zk__fs_lk *l = malloc(sizeof(*l));
    if (!l)
        return -ENOMEM;
    *l = (struct zk__fs_lk){ ino, owner, fh, fs->posix };
    fs->posix = l;
    return 0;
}

void zk__fs_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                  struct flock *lock, int sleep)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    struct zk__fs_prov *pv = zk__fs_prov_of(fs, ino);
    if (pv) {                   /* a lock needs the node: commit it first */
        zk__fs_prov_defer(fs, pv, &(struct zk__fs_defer){
            .req = req, .op = ZK__DEFER_SETLK, .ino = ino, .has_fi = 1, .fi = *fi,
            .lock = *lock, .sleep = sleep});
        return;
    }
    ino = zk__fs_ino(fs, ino);
    uint64_t session, start, end;
    int rc = lock_ready(fs, ino, &session);
    if (rc == 0)
        rc = range_of(lock, &start, &end);
    if (rc == 0 && lock->l_type != F_UNLCK)
        rc = track(fs, ino, fi->lock_owner, fi->fh);
    if (rc) {
        zk__fs_reply_errno(req, rc);
        return;
    }
    if (lock->l_type == F_UNLCK) {
        unlock(fs, req, ino, session, fi->lock_owner, 0, start, end);
        return;
    }
    lock_request(req, fi, ino, session, fi->lock_owner,
                 lock->l_type == F_WRLCK ? ZK_LOCK_WRITE : 0, start, end,
                 sleep);
}

struct probe {
    struct zk_lock_ent q;
    int found;
    struct zk_lock_ent hit;
};

static int getlk_cb(void *arg, const struct zk_lock_ent *e)
{
    struct probe *pr = arg;
    const struct zk_lock_ent *q = &pr->q;
    if (pr->found || (e->flags & (ZK_LOCK_QUEUED | ZK_LOCK_FLOCK)) ||
        (e->session == q->session && e->owner == q->owner) ||
        e->end < q->start || e->start > q->end ||
        !((e->flags | q->flags) & ZK_LOCK_WRITE))
        return 0;
    pr->found = 1;
    pr->hit = *e;
    return 0;
}

/* F_GETLK: the first holder in the table that would block the request
 * (another owner anywhere in the ensemble); its pid only when it is this
 * replica's (another host's pid means nothing here), else 0. */
void zk__fs_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                  struct flock *lock)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    struct zk__fs_prov *pv = zk__fs_prov_of(fs, ino);
    if (pv) {                   /* a lock needs the node: commit it first */
        zk__fs_prov_defer(fs, pv, &(struct zk__fs_defer){
            .req = req, .op = ZK__DEFER_GETLK, .ino = ino, .has_fi = 1, .fi = *fi, .lock = *lock});
        return;
    }
    ino = zk__fs_ino(fs, ino);
    struct probe pr = { .found = 0 };
    uint64_t session;
    int rc = lock_ready(fs, ino, &session);
    if (rc == 0)
        rc = range_of(lock, &pr.q.start, &pr.q.end);
    pr.q.session = session;
    pr.q.owner = fi->lock_owner;
    pr.q.flags = lock->l_type == F_WRLCK ? ZK_LOCK_WRITE : 0;
    if (rc == 0)
        rc = zk_store_locks(fs->store, ino, getlk_cb, &pr);
    if (rc) {
        zk__fs_reply_errno(req, rc);
        return;
    }
    struct flock out = *lock;
    if (!pr.found) {
        out.l_type = F_UNLCK;
    } else {
        out.l_type = pr.hit.flags & ZK_LOCK_WRITE ? F_WRLCK : F_RDLCK;
        out.l_start = (off_t)pr.hit.start;
        out.l_len = pr.hit.end == UINT64_MAX
                        ? 0 : (off_t)(pr.hit.end - pr.hit.start + 1);
        out.l_pid = pr.hit.session == session ? (pid_t)pr.hit.pid : 0;
    }
    fuse_reply_lock(req, &out);
}

/* FLUSH (every close of a descriptor): POSIX drops every fcntl lock of
 * the closing process's owner on the file, before close() returns (so
 * the next locker anywhere finds it free). Only owners that took one here
 * cost a commit. Returns 1 when it took req over (the unlock's commit
 * then goes on with zk__fs_flush_commit), 0 when there was nothing to
 * unlock. */
int zk__fs_lock_flush(struct zk_fs *fs, fuse_req_t req, uint64_t ino,
                      const struct fuse_file_info *fi)
{
    uint64_t session = zk_replica_session(fs->replica);
    int found = 0;
    struct zk__fs_lk **pp = &fs->posix;
    while (*pp) {
        struct zk__fs_lk *l = *pp;
        if (l->ino == ino && l->owner == fi->lock_owner) {
            *pp = l->next;
            free(l);
            found = 1;
            continue;
        }
        pp = &l->next;
    }
    if (!found || !session)
        return 0;
    struct unl *u = calloc(1, sizeof(*u));
    if (!u) {
        unlock_all(fs, ino, session, fi->lock_owner, 0);
        return 0;
    }
    *u = (struct unl){ .fs = fs, .req = req, .ino = ino,
                       .owner = fi->lock_owner, .session = session,
                       .flags = waits_too(fs, ino, session,
                                          fi->lock_owner, 0),
                       .start = 0,
                       .end = UINT64_MAX,
                       .flush = (struct zk__fs_fh *)(uintptr_t)fi->fh };
    if (unlock_propose(u) == 0)
        return 1;
    free(u);
    zk_log(ZK_LOG_WARN, "cannot propose the unlock of inode %llu: giving "
           "the session up", (unsigned long long)ino);
    zk_replica_give_up(fs->replica);
    return 0;
}

/* Whether an fcntl owner took a lock on ino through this mount and has
 * not closed the file since: an open of ino must then keep FLUSH (its
 * close drops that owner's locks; zk__fs_open). */
int zk__fs_lock_posix_used(const struct zk_fs *fs, uint64_t ino)
{
    for (const struct zk__fs_lk *l = fs->posix; l; l = l->next)
        if (l->ino == ino)
            return 1;
    return 0;
}

/* RELEASE: the last close of an open file drops its flock lock and the
 * fcntl (OFD) locks owned through it. */
void zk__fs_lock_release(struct zk_fs *fs, uint64_t ino,
                         const struct fuse_file_info *fi)
{
    uint64_t session = zk_replica_session(fs->replica);
    if (fi->flock_release && session)
        unlock_all(fs, ino, session, fi->lock_owner, ZK_LOCK_FLOCK);
    struct zk__fs_lk **pp = &fs->posix;
    while (*pp) {
        struct zk__fs_lk *l = *pp;
        if (l->ino == ino && l->fh == fi->fh) {
            if (session)
                unlock_all(fs, ino, session, l->owner, 0);
            *pp = l->next;
            free(l);
            continue;
        }
        pp = &l->next;
    }
}

/* ------------------------------------------------------------------------ */
/* commits and the lease                                                     */
/* ------------------------------------------------------------------------ */

/* An applied transaction granted queued requests: answer ours (every
 * request parked for that wait). */
static void lock_applied(struct zk_fs *fs, const struct zk_apply_result *res)
{
    for (uint32_t i = 0; i < res->nchanges; i++) {
        const struct zk_change *c = &res->changes[i];
        if (c->kind != ZK_CHANGE_LOCK)
            continue;
        struct zk__fs_park **pp = &fs->parked;
        while (*pp) {
            struct zk__fs_park *p = *pp;
            if (p->ino != c->ino || p->owner != c->lock_owner ||
                p->session != c->lock_session ||
                (p->flags & ZK_LOCK_FLOCK) != (c->lock_flags & ZK_LOCK_FLOCK)) {
                pp = &p->next;
                continue;
            }
            *pp = p->next;
            p->parked = 0;
            answer(p, 0);
            free(p);
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
    zk__fs_listing_applied(fs, res);
    zk__fs_echo_applied(arg, res);
}

struct own {
    const struct zk__fs_park *p;
    int holds, waits;
};

static int own_cb(void *arg, const struct zk_lock_ent *e)
{
    struct own *o = arg;
    if (e->session != o->p->session || e->owner != o->p->owner ||
        (e->flags & ZK_LOCK_FLOCK) != (o->p->flags & ZK_LOCK_FLOCK))
        return 0;
    if (e->flags & ZK_LOCK_QUEUED)
        o->waits = 1;
    else
        o->holds = 1;
    return 0;
}

/* zk_replica's reset callback: echo.c's work; then, once a snapshot has
 * replaced the store, the parked waits are looked up in the new lock
 * table (the commits that granted them were never applied here one by
 * one): a wait that still waits stays parked; one that was granted is
 * answered 0 — by its (whole) holding — and one that is gone (its session
 * closed meanwhile) ENOLINK. */
void zk__fs_reset(void *arg, int done)
{
    struct zk_fs *fs = arg;
    zk__fs_listing_reset(fs);   /* before and after: the tree is replaced */
    zk__fs_echo_reset(arg, done);
    struct zk__fs_park **pp = &fs->parked;
    while (done && *pp) {
        struct zk__fs_park *p = *pp;
        struct own o = { .p = p };
        if (zk_store_locks(fs->store, p->ino, own_cb, &o) != 0 || o.waits) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        p->parked = 0;
        answer(p, o.holds ? 0 : -ENOLINK);
        free(p);
    }
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
    while (!session && fs->posix) {     /* shutdown */
        struct zk__fs_lk *l = fs->posix;
        fs->posix = l->next;
        free(l);
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

/* Whether a lock granted to session can no longer be relied on here: the
 * session is not this replica's current one (given up, or renewed since),
 * or its lease ran out just now (checked on the monotonic clock). */
int zk__fs_lock_lost(struct zk_fs *fs, uint64_t session)
{
    return session != zk_replica_session(fs->replica) ||
           zk_replica_lease_check(fs->replica) != 0;
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

/* For zkfs status --json: files with a lock table, waits parked here. */
uint64_t zk__fs_lock_counts(struct zk_fs *fs)
{
    uint64_t n = 0;
    return zk_store_locked_files(fs->store, &n) == 0 ? n : 0;
}

unsigned zk__fs_lock_waits(struct zk_fs *fs)
{
    unsigned n = 0;
    for (struct zk__fs_park *p = fs->parked; p; p = p->next)
        n++;
    return n;
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
