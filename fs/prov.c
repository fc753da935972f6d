/*
 * prov.c — provisional creates: one transaction per new file.
 *
 * An open(O_CREAT) without O_EXCL of a name that does not exist, in a
 * directory whose children are plain (not ephemeral, not sequential), on
 * a replica that has a quorum, is answered at once with a provisional
 * nodeid (ZK__FS_PROV_BASE | n) that only this mount knows. Nothing is
 * proposed then, so the kernel lets go of the directory's lock after a
 * local reply and creators in one directory reach the leader together.
 * The creator's flush (close) or fsync commits the create with the data
 * written so far as ONE ZK_OP_CREATE (file.c): other mounts and their
 * watchers see the file appear complete or not at all. If the name was
 * created elsewhere meanwhile, the commit overwrites that file instead
 * (a SET_DATA naming its inode): the linearization point is the commit,
 * and the result is what an open(O_CREAT|O_TRUNC) made after the other
 * create would give.
 *
 * While pending, the file exists on this mount only: LOOKUP (when the
 * store has no such name), READDIR and GETATTR answer from struct
 * zk__fs_prov, and the creator reads and writes its buffer. Every other
 * request that needs the node to exist (another open, setattr, xattrs
 * but ENODATA for names zkfs does not serve, locks, unlink, rename,
 * mknod/mkdir/create of the same name) is parked here, the create is
 * committed at once (what the creator wrote so far, as an fsync would),
 * and the request is made again (zk__fs_ops) — on the committed inode, to
 * which the inode map then translates the provisional nodeid (its alias)
 * until the kernel forgets it.
 *
 * Loop thread only, like every handler.
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>

/* ------------------------------------------------------------------------ */
/* the table of pending creates                                              */
/* ------------------------------------------------------------------------ */

struct zk__fs_prov *zk__fs_prov_of(struct zk_fs *fs, uint64_t ino)
{
    if (!ZK__FS_IS_PROV(ino))
        return NULL;
    for (struct zk__fs_prov *pv = fs->provs.next; pv != &fs->provs;
         pv = pv->next)
        if (pv->pino == ino)
            return pv;
    return NULL;
}

struct zk__fs_prov *zk__fs_prov_named(struct zk_fs *fs, uint64_t parent,
                                      const char *name)
{
    for (struct zk__fs_prov *pv = fs->provs.next; pv != &fs->provs;
         pv = pv->next)
        if (pv->parent == parent && strcmp(pv->name, name) == 0)
            return pv;
    return NULL;
}

struct zk__fs_prov *zk__fs_prov_in(struct zk_fs *fs, uint64_t dir)
{
    for (struct zk__fs_prov *pv = fs->provs.next; pv != &fs->provs;
         pv = pv->next)
        if (pv->parent == dir)
            return pv;
    return NULL;
}

uint64_t zk__fs_ino(struct zk_fs *fs, uint64_t ino)
{
    if (!ZK__FS_IS_PROV(ino))
        return ino;
    uint64_t real = zk__fs_inomap_alias(&fs->inomap, ino);
    return real ? real : ino;
}

int zk__fs_prov_list(struct zk_fs *fs, uint64_t parent,
                     int (*add)(void *arg, const char *name,
                                const struct zk_stat *st), void *arg)
{
    struct zk_stat st;
    for (struct zk__fs_prov *pv = fs->provs.next; pv != &fs->provs;
         pv = pv->next) {
        if (pv->parent != parent ||
            zk_store_lookup(fs->store, parent, pv->name, &st) == 0)
            continue;           /* listed already (created elsewhere) */
        int rc = add(arg, pv->name, &pv->st);
        if (rc)
            return rc;
    }
    return 0;
}

static void prov_unlist(struct zk__fs_prov *pv)
{
    pv->prev->next = pv->next;
    pv->next->prev = pv->prev;
    pv->prev = pv->next = pv;
}

/* ------------------------------------------------------------------------ */
/* the create                                                                */
/* ------------------------------------------------------------------------ */

/* Whether this replica can answer a create without asking the leader: an
 * ensemble member without a quorum makes the create wait for one (and
 * fail after the bounded wait), as before, so that `echo x > f` reports
 * it; a shell's redirection never sees the error of its close(). Nor
 * when the disk is at its reserve. */
static int may_answer_now(struct zk_fs *fs)
{
    /* (a store at its disk reserve refuses the create: at open, where
     * the shell sees it, not at a close nobody checks) */
    if (fs->stopping || zk_store_room(fs->store, 0) != 0)
        return 0;
    if (!fs->opts->config)
        return 1;
    struct zk_replica_status rs;
    zk_replica_status(fs->replica, &rs);
    return !rs.stale;
}

int zk__fs_prov_create(fuse_req_t req, uint64_t parent, const char *name,
                       mode_t mode, uint32_t gid,
                       const struct zk_stat *pst, struct fuse_file_info *fi)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    struct zk_stat st;

    if ((fi->flags & O_EXCL) || pst->children_flags != 0 ||
        !may_answer_now(fs))
        return 0;               /* committed at CREATE (ops.c) */
    int rc = zk_store_lookup(fs->store, parent, name, &st);
    if (rc == 0 && zk__fs_hidden(fs, &st))
        return 0;
    if (rc == 0 && st.kind == ZK_KIND_DIR)
        rc = -EISDIR;
    if (rc == 0) {              /* it exists (appeared since the lookup) */
        zk__fs_reply_create(fs, req, &st, fi, ZK__FS_TIMEOUT_S, 0, NULL);
        return 1;
    }
    if (rc != -ENOENT) {
        zk__fs_reply_errno(req, rc);
        return 1;
    }
    struct zk__fs_prov *pv = calloc(1, sizeof(*pv));
    if (!pv)
        return 0;
    struct timeval now;
    gettimeofday(&now, NULL);
    uint64_t ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_usec / 1000;
    pv->pino = ZK__FS_PROV_BASE | ++fs->prov_seq;
    pv->parent = parent;
    snprintf(pv->name, sizeof(pv->name), "%s", name);
    pv->st = (struct zk_stat){
        .ino = pv->pino, .parent = parent, .kind = ZK_KIND_FILE,
        .mode = mode & 07777, .uid = ctx->uid, .gid = gid,
        .ctime_ms = ms, .mtime_ms = ms, .chtime_ms = ms, .cmtime_ms = ms};
    pv->prev = fs->provs.prev;
    pv->next = &fs->provs;
    fs->provs.prev->next = pv;
    fs->provs.prev = pv;
    pv->fh = zk__fs_reply_create(fs, req, &pv->st, fi, ZK__FS_TIMEOUT_S, 1,
                                 pv);
    if (!pv->fh) {              /* answered with an error, or gone */
        prov_unlist(pv);
        free(pv);
        return 1;
    }
    fs->prov_created++;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* requests that need the node                                               */
/* ------------------------------------------------------------------------ */

static const char *dup_into(char **p, const char *s, size_t len)
{
    if (!s)
        return NULL;
    char *d = *p;
    memcpy(d, s, len);
    d[len] = '\0';
    *p += len + 1;
    return d;
}

void zk__fs_prov_defer(struct zk_fs *fs, struct zk__fs_prov *pv,
                       const struct zk__fs_defer *d)
{
    if (d->req && d->op != ZK__DEFER_COMMIT && zk__fs_is_echo(fs, d->req)) {
        /* A replay never waits for a commit (nor makes one): the file
         * is not there for it; it falls back to invalidations. */
        fuse_reply_err(d->req, ENOENT);
        return;
    }
    size_t n1 = d->name ? strlen(d->name) : 0;
    size_t n2 = d->name2 ? strlen(d->name2) : 0;
    size_t nv = d->value ? d->size : 0;
    struct zk__fs_defer *w = malloc(sizeof(*w) + n1 + n2 + nv + 3);
    if (!w) {
        if (d->op == ZK__DEFER_COMMIT)
            zk__fs_prov_commit_again(fs, d->req, d->fh, d->all, -ENOMEM);
        else
            fuse_reply_err(d->req, ENOMEM);
        return;
    }
    *w = *d;
    char *p = w->buf;
    w->name = dup_into(&p, d->name, n1);
    w->name2 = dup_into(&p, d->name2, n2);
    w->value = dup_into(&p, d->value, nv);
    w->next = NULL;
    struct zk__fs_defer **pp = &pv->waiters;
    while (*pp)
        pp = &(*pp)->next;
    *pp = w;
    if (!pv->committing) {
        fs->prov_forced++;
        zk__fs_prov_commit(fs, pv->fh);
    }
}

int zk__fs_prov_defer_names(struct zk_fs *fs, const struct zk__fs_defer *d)
{
    struct zk__fs_prov *pv = zk__fs_prov_named(fs, d->parent, d->name);
    if (!pv && d->name2)
        pv = zk__fs_prov_named(fs, d->newparent, d->name2);
    if (!pv)
        return 0;
    zk__fs_prov_defer(fs, pv, d);
    return 1;
}

/* Makes a parked request again, now that its node is committed. */
static void rerun(struct zk_fs *fs, struct zk__fs_defer *w)
{
    const struct fuse_lowlevel_ops *o = &zk__fs_ops;
    struct fuse_file_info *fi = w->has_fi ? &w->fi : NULL;
    switch (w->op) {
    case ZK__DEFER_OPEN: o->open(w->req, w->ino, fi); break;
    case ZK__DEFER_SETATTR:
        o->setattr(w->req, w->ino, &w->attr, w->to_set, fi);
        break;
    case ZK__DEFER_GETXATTR: o->getxattr(w->req, w->ino, w->name, w->size);
        break;
    case ZK__DEFER_LISTXATTR: o->listxattr(w->req, w->ino, w->size); break;
    case ZK__DEFER_SETXATTR:
        o->setxattr(w->req, w->ino, w->name, w->value, w->size, w->flags);
        break;
    case ZK__DEFER_REMOVEXATTR: o->removexattr(w->req, w->ino, w->name);
        break;
    case ZK__DEFER_FLOCK: o->flock(w->req, w->ino, fi, w->flags); break;
    case ZK__DEFER_GETLK: o->getlk(w->req, w->ino, fi, &w->lock); break;
    case ZK__DEFER_SETLK:
        o->setlk(w->req, w->ino, fi, &w->lock, w->sleep);
        break;
    case ZK__DEFER_UNLINK: o->unlink(w->req, w->parent, w->name); break;
    case ZK__DEFER_RMDIR: o->rmdir(w->req, w->parent, w->name); break;
    case ZK__DEFER_RENAME:
        o->rename(w->req, w->parent, w->name, w->newparent, w->name2,
                  (unsigned)w->flags);
        break;
    case ZK__DEFER_MKNOD:
        o->mknod(w->req, w->parent, w->name, w->mode, 0);
        break;
    case ZK__DEFER_MKDIR: o->mkdir(w->req, w->parent, w->name, w->mode);
        break;
    case ZK__DEFER_CREATE:
        o->create(w->req, w->parent, w->name, w->mode, &w->fi);
        break;
    case ZK__DEFER_COMMIT:
        zk__fs_prov_commit_again(fs, w->req, w->fh, w->all, 0);
        break;
    }
}

/* Re-runs (err 0) or fails the parked requests of list. A request on the
 * provisional nodeid itself fails with ENOENT when the create failed: the
 * node does not exist. */
static void settle_list(struct zk_fs *fs, struct zk__fs_defer *list, int err)
{
    while (list) {
        struct zk__fs_defer *w = list;
        list = w->next;
        if (err && w->op == ZK__DEFER_COMMIT)
            zk__fs_prov_commit_again(fs, w->req, w->fh, w->all, err);
        else if (err)
            zk__fs_reply_errno(w->req, err);
        else
            rerun(fs, w);
        free(w);
    }
}

void zk__fs_prov_settled(struct zk_fs *fs, struct zk__fs_prov *pv,
                         uint64_t ino, int err)
{
    (void)ino;
    struct zk__fs_defer *list = pv->waiters;
    pv->waiters = NULL;
    pv->committing = 0;
    if (err == 0) {
        prov_unlist(pv);
        free(pv);
    }
    settle_list(fs, list, err == -EFBIG ? -ENOENT : err);
}

void zk__fs_prov_drop(struct zk_fs *fs, struct zk__fs_prov *pv)
{
    struct zk__fs_defer *list = pv->waiters;
    pv->waiters = NULL;
    prov_unlist(pv);
    /* The kernel's entry names the provisional nodeid, which no longer
     * stands for anything: the name goes from this mount. */
    zk__fs_echo_push(fs, ZK__ECHO_INVAL_ENTRY, 0, pv->parent, pv->name);
    free(pv);
    settle_list(fs, list, -ENOENT);
}
