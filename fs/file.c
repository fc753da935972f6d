/*
 * file.c — file contents: open, read, write, flush/fsync (the commit),
 * release, setattr, and ephemeral holders.
 *
 * An open file owns a buffer (struct zk__fs_fh) loaded at open and uses
 * direct I/O: every read is served from that one version, so a reader
 * never sees a torn value, and writes change only the buffer. flush
 * (every close) and fsync commit a dirty buffer as ONE transaction — ZK_OP_SET_DATA of the whole
 * content, or ZK_OP_APPEND of the bytes an O_APPEND descriptor added (the
 * leader appends them atomically) — naming the node by its inode, so a node
 * renamed or replaced meanwhile is not clobbered, and answer with the
 * commit's errno. A write past ZK_DATA_MAX fails with EFBIG and poisons the
 * descriptor: its flushes fail with EFBIG and commit nothing.
 *
 * The descriptor that created an ephemeral is its holder: when it is
 * released (last close of the open file description, or its process died)
 * the ephemeral is deleted through the echo thread (echo.c).
 */
#include "fs_int.h"
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------------------ */
/* file handles                                                              */
/* ------------------------------------------------------------------------ */

struct zk__fs_fh *zk__fs_fh_new(uint64_t ino, int oflags)
{
    struct zk__fs_fh *fh = calloc(1, sizeof(*fh));
    if (!fh)
        return NULL;
    fh->ino = ino;
    fh->knode = ino;
    fh->oflags = oflags;
    int acc = oflags & O_ACCMODE;
    if (acc != O_RDONLY && (oflags & O_APPEND)) {
        fh->append = 1;
        fh->loaded = 1;            /* holds only bytes not yet appended */
        /* O_APPEND|O_TRUNC: the first commit replaces the content (a
         * SET_DATA of the bytes appended so far), later ones append. */
        fh->trunc = (oflags & O_TRUNC) != 0;
    } else if (oflags & O_TRUNC) {
        /* Also O_RDONLY|O_TRUNC: Linux truncates (the kernel checked write
         * permission); the truncation is committed at release. */
        fh->loaded = 1;            /* empty; committed even if unwritten */
        fh->trunc = 1;
    }
    return fh;
}

/* fh was answered to the kernel: counts it as a writer of its inode
 * (see zk__fs_writer_attr), or as an appender (zk__fs_append_views). An
 * O_RDONLY|O_TRUNC open is a writer too, and so is an O_APPEND|O_TRUNC
 * one: the truncation may be committed at the release, which nobody
 * waits for, so the kernel must not hold the attributes it got meanwhile
 * (or a stat right after the close() would show the old size; see also
 * quiet_release). */
static void fh_opened(struct zk_fs *fs, struct zk__fs_fh *fh)
{
    if (fh->append)
        zk__fs_inomap_appender(&fs->inomap, fh->ino, 1);
    if (((fh->oflags & O_ACCMODE) == O_RDONLY && !fh->trunc) ||
        (fh->append && !fh->trunc) || fh->echo)
        return;
    fh->writer = 1;
    zk__fs_inomap_writer(&fs->inomap, fh->ino, 1);
}

static void fh_free(struct zk__fs_fh *fh)
{
    zk__fs_handle_del(&fh->hd);
    free(fh->data);
    free(fh->view);
    free(fh);
}

static void fh_destroy(struct zk__fs_handle *h)
{
    fh_free((struct zk__fs_fh *)h);
}

/* fh's buffer changed. */
static void fh_changed(struct zk__fs_fh *fh)
{
    fh->dirty = 1;
    fh->mtime_set = 0;          /* a write after utimensat is newer */
    fh->wgen++;
}

/* An O_APPEND fh's read view: the committed content now. Errors: the
 * store's (-ENOENT: deleted; the view is kept). */
static int view_load(struct zk_fs *fs, struct zk__fs_fh *fh)
{
    uint8_t *data;
    size_t len;
    int rc = zk_store_read(fs->store, fh->ino, &data, &len, NULL);
    if (rc)
        return rc;
    free(fh->view);
    fh->view = data;
    fh->view_len = len;
    return 0;
}

void zk__fs_append_views(struct zk_fs *fs, uint64_t ino)
{
    for (struct zk__fs_handle *h = fs->handles.next; h != &fs->handles;
         h = h->next) {
        struct zk__fs_fh *fh = (struct zk__fs_fh *)h;
        if (h->destroy == fh_destroy && fh->ino == ino && fh->append)
            view_load(fs, fh);
    }
}

static int fh_load(struct zk_fs *fs, struct zk__fs_fh *fh)
{
    uint8_t *data;
    size_t len;
    if (fh->loaded)
        return 0;
    int rc = zk_store_read(fs->store, fh->ino, &data, &len, NULL);
    if (rc)
        return rc;
    free(fh->data);
    fh->data = data;
    fh->len = fh->cap = len;
    fh->loaded = 1;
    return 0;
}

/* Makes room for need bytes (need <= ZK_DATA_MAX). */
static int fh_reserve(struct zk__fs_fh *fh, size_t need)
{
    if (need <= fh->cap)
        return 0;
    size_t cap = fh->cap ? fh->cap : 4096;
    while (cap < need)
        cap *= 2;
    if (cap > ZK_DATA_MAX)
        cap = ZK_DATA_MAX;
    uint8_t *p = realloc(fh->data, cap);
    if (!p)
        return -ENOMEM;
    fh->data = p;
    fh->cap = cap;
    return 0;
}

/* Sets the buffer's length, zero-filling growth (truncate). */
static int fh_resize(struct zk__fs_fh *fh, size_t len)
{
    int rc = fh_reserve(fh, len);
    if (rc)
        return rc;
    if (len > fh->len)
        memset(fh->data + fh->len, 0, len - fh->len);
    fh->len = len;
    fh_changed(fh);
    return 0;
}

/* Replies to CREATE (or an O_CREAT open of an existing node) with an entry
 * and a new open file. created: the node was just made by this request, so
 * it is empty and, if ephemeral, this descriptor holds it. prov: it is a
 * provisional create (prov.c), not committed yet. */
struct zk__fs_fh *zk__fs_reply_create(struct zk_fs *fs, fuse_req_t req,
                                      const struct zk_stat *st,
                                      struct fuse_file_info *fi,
                                      double entry_timeout, int created,
                                      struct zk__fs_prov *prov)
{
    struct zk__fs_fh *fh = zk__fs_fh_new(st->ino, fi->flags);
    if (!fh) {
        fuse_reply_err(req, ENOMEM);
        if (created && st->ephemeral_owner)
            zk__fs_release_holder(fs, st->ino);
        return NULL;
    }
    fh->st = *st;
    fh->prov = prov;
    if (created) {
        fh->loaded = 1;
        fh->trunc = 0;             /* a new node is empty already */
        fh->holder = st->ephemeral_owner != 0;
    } else if (fh->append) {
        view_load(fs, fh);         /* (deleted meanwhile: reads nothing) */
    }
    struct fuse_entry_param e;
    zk__fs_entry_param(fs, st, entry_timeout, ZK__FS_TIMEOUT_S, &e);
    fi->fh = (uintptr_t)fh;
    fi->keep_cache = 0;
    fi->direct_io = 1;          /* see zk__fs_open */
    fh->knode = e.ino;          /* (the provisional nodeid it may be held as) */
    int user = zk__fs_echo_marks(fs, req);
    if (fuse_reply_create(req, &e, fi) == 0) {
        zk__fs_kernel_entry(fs, user, e.ino);
        zk__fs_inomap_open(&fs->inomap, st);
        fh_opened(fs, fh);
        zk__fs_handle_add(fs, &fh->hd, fh_destroy);
        return fh;
    }
    /* The creator is gone (interrupted): no RELEASE will come. */
    if (fh->holder)
        zk__fs_release_holder(fs, st->ino);
    fh_free(fh);
    return NULL;
}

static void open_now(fuse_req_t req, fuse_ino_t ino, fuse_ino_t knode,
                     struct fuse_file_info *fi);

/* An open for writing waiting for a quorum (see zk__fs_open). */
struct open_wait {
    fuse_req_t req;
    fuse_ino_t ino, knode;
    struct fuse_file_info fi;
};

static void open_wait_done(void *arg, int err,
                           const struct zk_apply_result *res)
{
    struct open_wait *w = arg;
    (void)res;
    if (err)
        zk__fs_reply_errno(w->req, err);
    else
        open_now(w->req, w->ino, w->knode, &w->fi);
    free(w);
}

/* An ensemble member that is stale (no quorum) makes an open for writing
 * wait for a read barrier through the leader first, so that it fails
 * (ETIMEDOUT after the bounded wait) instead of a later close() whose
 * error many programs never see: a shell's `echo x > file` closes its
 * descriptor with dup2(), which reports nothing. Without a quorum at
 * open, the value would not be written and the shell would say nothing. */
void zk__fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    struct zk__fs_prov *pv = zk__fs_prov_of(fs, ino);

    if (pv) {                   /* another open of a provisional create */
        zk__fs_prov_defer(fs, pv, &(struct zk__fs_defer){
            .req = req, .op = ZK__DEFER_OPEN, .ino = ino, .has_fi = 1,
            .fi = *fi});
        return;
    }
    fuse_ino_t knode = ino;
    ino = zk__fs_ino(fs, ino);

    if (ino != ZK_CTL_INO && fs->opts->config &&
        (fi->flags & O_ACCMODE) != O_RDONLY && !zk__fs_is_echo(fs, req)) {
        struct zk_replica_status rs;
        zk_replica_status(fs->replica, &rs);
        if (rs.stale) {
            struct open_wait *w = malloc(sizeof(*w));
            int rc = w ? 0 : -ENOMEM;
            if (w) {
                *w = (struct open_wait){req, ino, knode, *fi};
                rc = zk_replica_sync(fs->replica, open_wait_done, w);
            }
            if (rc) {
                free(w);
                zk__fs_reply_errno(req, rc);
            }
            return;
        }
    }
    open_now(req, ino, knode, fi);
}

static void open_now(fuse_req_t req, fuse_ino_t ino, fuse_ino_t knode,
                     struct fuse_file_info *fi)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    struct zk_stat st;

    if (ino == ZK_CTL_INO) {
        zk__fs_ctl_open(req, fi);
        return;
    }
    if (ino == ZK_METRICS_INO) {
        zk__fs_metrics_open(req, fi);
        return;
    }
    int echo = zk__fs_is_echo(fs, req);
    struct zk__fs_fh *fh = zk__fs_fh_new(ino, echo ? O_RDONLY : fi->flags);
    if (!fh) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    fh->knode = knode;
    fh->echo = echo;            /* a replay's open: never commits */
    /* The version this open file reads (and overwrites parts of), taken
     * now so that a read still works after the node is replaced or
     * deleted: with its stat, from one read transaction. */
    int rc = echo || fh->loaded || fh->append
                 ? zk_store_getattr(fs->store, ino, &st)
                 : zk_store_read(fs->store, ino, &fh->data, &fh->len, &st);
    rc = zk__fs_stale(rc);
    if (rc == 0 && !fh->loaded && !echo && !fh->append) {
        fh->cap = fh->len;
        fh->loaded = 1;
    }
    if (rc == 0 && zk__fs_hidden(fs, &st) && !echo)
        rc = -ENOENT;           /* its session was given up (lease.c) */
    if (rc == 0 && st.kind == ZK_KIND_DIR)
        rc = -EISDIR;
    if (rc == 0 && fh->append && !echo)
        rc = zk__fs_stale(view_load(fs, fh));
    if (rc) {
        fh_free(fh);
        zk__fs_reply_errno(req, rc);
        return;
    }
    fh->kill_priv = (fi->flags & O_TRUNC) && !fh->append &&
                    (fi->flags & O_ACCMODE) != O_RDONLY &&
                    fuse_req_ctx(req)->uid != 0;
    fh->st = st;
    fi->fh = (uintptr_t)fh;
    /* Direct I/O: every read is answered from this snapshot, never from a
     * page cache shared with other descriptors (which would mix versions
     * and see uncommitted writes; docs/filesystem.md, "Reads"). Pages a
     * MAP_PRIVATE mapping cached from an older version are dropped. */
    fi->keep_cache = 0;
    fi->direct_io = 1;
    /* A close that commits nothing and unlocks nothing needs no FLUSH:
     * a replay's (echo.c), and a read-only open's while no fcntl owner
     * holds a lock on the file through this mount — one round trip less
     * per open+read+close. An fcntl lock taken later through such a
     * descriptor goes at its RELEASE (lock.c tracks the open file), and
     * closing it does not drop the process's locks taken through other
     * descriptors (docs/filesystem.md, Locks). */
    fi->noflush = echo || ((fi->flags & O_ACCMODE) == O_RDONLY &&
                           !fh->trunc && !zk__fs_lock_posix_used(fs, ino));
    if (fuse_reply_open(req, fi) != 0) {
        fh_free(fh);
        return;
    }
    zk__fs_inomap_open(&fs->inomap, &st);
    fh_opened(fs, fh);
    zk__fs_handle_add(fs, &fh->hd, fh_destroy);
}

/* ------------------------------------------------------------------------ */
/* read and write                                                            */
/* ------------------------------------------------------------------------ */

static void reply_slice(fuse_req_t req, const uint8_t *data, size_t len,
                        size_t size, off_t off)
{
    if (off < 0 || (size_t)off >= len) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    size_t n = len - (size_t)off < size ? len - (size_t)off : size;
    fuse_reply_buf(req, (const char *)data + off, n);
}

void zk__fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                 struct fuse_file_info *fi)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    if (ino == ZK_CTL_INO) {
        zk__fs_ctl_read(req, size, fi);
        return;
    }
    if (ino == ZK_METRICS_INO) {
        zk__fs_metrics_read(req, size, off, fi);
        return;
    }
    struct zk__fs_fh *fh = (struct zk__fs_fh *)(uintptr_t)fi->fh;
    if (!fh->echo && (zk__fs_hidden(fs, &fh->st) ||
                      (fh->lock_session &&
                       zk__fs_lock_lost(fs, fh->lock_session)) ||
                      zk__fs_lock_check(fs, fh->ino) != 0)) {
        zk__fs_reply_errno(req, ZK_ESESSION);   /* lease.c, lock.c */
        return;
    }
    if (fh->append) {
        /* The buffer holds only pending appends: read the committed
         * content, or once the node is deleted the last one seen. */
        int rc = view_load(fs, fh);
        if (rc && rc != -ENOENT) {
            zk__fs_reply_errno(req, rc);
            return;
        }
        reply_slice(req, fh->view, fh->view_len, size, off);
        return;
    }
    int rc = fh_load(fs, fh);
    if (rc) {
        zk__fs_reply_errno(req, rc);
        return;
    }
    reply_slice(req, fh->data, fh->len, size, off);
}

void zk__fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
                  size_t size, off_t off, struct fuse_file_info *fi)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    if (ino == ZK_CTL_INO) {
        zk__fs_ctl_write(req, buf, size, fi);
        return;
    }
    struct zk__fs_fh *fh = (struct zk__fs_fh *)(uintptr_t)fi->fh;
    if (fh->echo) {
        /* A replay's write (echo.c): its IN_MODIFY is all it is for. */
        fuse_reply_write(req, size);
        return;
    }
    int rc = fh->poisoned ? -EFBIG
             : zk__fs_hidden(fs, &fh->st) ? ZK_ESESSION : fh_load(fs, fh);
    size_t at = fh->append ? fh->len : (size_t)off;
    if (rc == 0 && (off < 0 || at > ZK_DATA_MAX || size > ZK_DATA_MAX - at)) {
        fh->poisoned = 1;   /* nothing of this open file gets committed */
        rc = -EFBIG;
    }
    if (rc == 0)
        rc = fh_reserve(fh, at + size);
    if (rc) {
        zk__fs_reply_errno(req, rc);
        return;
    }
    if (at > fh->len)
        memset(fh->data + fh->len, 0, at - fh->len);
    memcpy(fh->data + at, buf, size);
    if (fuse_req_ctx(req)->uid != 0)
        fh->kill_priv = 1;
    if (at + size > fh->len)
        fh->len = at + size;
    fh_changed(fh);
    fuse_reply_write(req, size);
}

/* ------------------------------------------------------------------------ */
/* commit: flush, fsync, release                                             */
/* ------------------------------------------------------------------------ */

struct commit {
    struct zk_fs *fs;
    fuse_req_t req;            /* NULL: nobody waits (release) */
    struct zk__fs_fh *fh;
    uint64_t wgen;
    size_t len;
    int paused;                /* requests are paused until it is done */
    int fsync;                 /* an fsync (holds the inode lock) waits */
    /* A provisional create (prov.c): 1 its CREATE, 2 the SET_DATA (or
     * APPEND) of over_ino, which took the name meanwhile; 0 otherwise. */
    int create, tries;
    uint64_t over_ino;
    int empty;                 /* the create alone, without the buffer (for
                                  another request: what was written is not
                                  visible before the creator's close) */
    int keep_attrs;            /* see quiet_release */
    int serial;                /* fh's O_APPEND commit (fh->acommit) */
};

/* A flush or fsync of an O_APPEND file waiting for the commit under way
 * (fh->acommit). */
struct zk__fs_fh_wait {
    struct zk__fs_fh_wait *next;
    fuse_req_t req;
    int all, pause;
};

static void fh_unref(struct zk__fs_fh *fh)
{
    fh->inflight--;
    if (fh->released && fh->inflight == 0)
        fh_free(fh);
}

struct late_reply {
    fuse_req_t req;
    int err;
};

static void late_reply(void *arg)
{
    struct late_reply *l = arg;
    zk__fs_reply_errno(l->req, l->err);
    free(l);
}

/* Answers a commit once the echo thread has invalidated the file: an
 * append lands where the leader puts it, not where this kernel's page
 * cache wrote it, and the times are the transaction's; whoever reads
 * after the close() returns must not get the cached version.
 * A request that holds the file's inode lock while it waits (FSYNC:
 * fuse_fsync) is answered at once when the echo thread has work that
 * may need a file's inode lock (the replay of a remote change to a file,
 * a notify_delete of a name): which inode that locks is the kernel's
 * business, and if it is this one both would wait for good (BUGS.md 5).
 * Its attributes may then lag for a moment. */
static void reply_commit(struct zk_fs *fs, fuse_req_t req, int rc,
                         int holds_lock)
{
    struct late_reply *l = NULL;
    if (rc == 0 && !(holds_lock && zk__fs_echo_file_lock_pending(fs)))
        l = malloc(sizeof(*l));
    if (!l) {
        zk__fs_reply_errno(req, rc);
        return;
    }
    l->req = req;
    l->err = rc;
    zk__fs_echo_barrier(fs, late_reply, l);
}

/* Whether the data commit res of fh, made by a writer here and about to
 * be answered, needs the echo thread's invalidation of the file (and so a
 * barrier before its answer). It does not when all of this holds:
 * - res changed the file's data and nothing else (a cleared setuid bit or
 *   a kept mtime is a SET_ATTR: ZK_CHANGE_ATTR);
 * - fh is a counted writer, not released, not O_APPEND, and the file has
 *   no O_APPEND open here (an append lands where the leader puts it);
 * - not a provisional create (prov.c: the kernel holds another nodeid).
 * Then the kernel cannot hold the old size or times past the answer:
 * every WRITE through fh, and an O_TRUNC open, marked them stale in the
 * kernel (fuse_write_update_attr, fuse_truncate_update_attr: FUSE's
 * STATX_MODSIZE, refetched by the next stat or lseek SEEK_END), and
 * every attribute this daemon gave for the file while it has a writer
 * here had no cache time (zk__fs_writer_attr, zk__fs_entry_param), so
 * nothing refreshed them meanwhile; a data change changes no other
 * attribute, and files are read with direct I/O (each open drops the
 * file's pages: no keep_cache). The same argument as quiet_release's,
 * with the same exception: a MAP_PRIVATE mapping made through another
 * descriptor meanwhile keeps the pages it mapped. The invalidation cost
 * an echo thread wake-up and a hand-back before the answer, and the
 * GETATTR of the file's next open (a full invalidation drops the mode its
 * permission check needs). Whatever keeps pages of a file in the kernel
 * across opens, or caches attributes during a write, must make this
 * return 1 for it. */
static int local_inval_needed(struct zk_fs *fs, const struct zk__fs_fh *fh,
                              const struct zk_apply_result *res)
{
    return !res || res->nchanges != 1 ||
           res->changes[0].kind != ZK_CHANGE_DATA ||
           res->changes[0].ino != fh->ino || !fh->writer || fh->released ||
           fh->append || fh->echo || fh->prov ||
           zk__fs_inomap_appenders(&fs->inomap, fh->ino) != 0;
}

static void commit_done(void *arg, int err, const struct zk_apply_result *res);
static void commit_fh_ex(struct zk_fs *fs, fuse_req_t req,
                         struct zk__fs_fh *fh, int all, int pause, int empty);

/* Proposes the create of fh's provisional file with the first c->len
 * bytes of its buffer (c->create 1), or the overwrite of the file that
 * took its name meanwhile (2): one transaction either way. The mode is
 * the one asked at open, less setuid/setgid if a user other than root
 * wrote (as a write to an existing file clears them). */
static int prov_propose(struct zk_fs *fs, struct commit *c)
{
    struct zk__fs_fh *fh = c->fh;
    struct zk__fs_prov *pv = fh->prov;
    char path[ZK_PATH_MAX];
    int rc = zk__fs_child_path(fs, pv->parent, pv->name, path, sizeof(path));
    if (rc)
        return rc;
    uint32_t mode = pv->st.mode;
    if (fh->kill_priv) {
        mode &= ~(uint32_t)S_ISUID;
        if (mode & S_IXGRP)
            mode &= ~(uint32_t)S_ISGID;
    }
    uint8_t type = c->create == 1 ? ZK_OP_CREATE
                   : fh->append   ? ZK_OP_APPEND : ZK_OP_SET_DATA;
    struct zk_op op = {
        .type = type, .version = -1, .ino = c->create == 1 ? 0 : c->over_ino,
        .mode = mode, .uid = pv->st.uid, .gid = pv->st.gid,
        .session = zk_replica_session(fs->replica),
        .path = path, .path_len = (uint32_t)strlen(path),
        .data = fh->data, .data_len = c->empty ? 0 : (uint32_t)c->len,
        .owner = "", .owner_len = 0,
    };
    struct zk_txn txn = {.nops = 1, .ops = &op};
    return fs->stopping ? -ESHUTDOWN : zk__fs_propose(fs, &txn, commit_done, c);
}

/* A provisional create's commit failed with *rc: if the name was taken
 * meanwhile, overwrite what took it (a directory: EISDIR); if that was
 * deleted meanwhile, create again; at most ZK__FS_PROV_TRIES attempts.
 * Returns 1 when proposed again (commit_done comes back). */
static int prov_again(struct commit *c, int *rc)
{
    struct zk__fs_prov *pv = c->fh->prov;
    struct zk_stat st;
    if (c->tries + 1 >= ZK__FS_PROV_TRIES)
        return 0;
    if (*rc == -EEXIST && c->create == 1) {
        int lrc = zk_store_lookup(c->fs->store, pv->parent, pv->name, &st);
        if (lrc == 0 && st.kind == ZK_KIND_DIR) {
            *rc = -EISDIR;
            return 0;
        }
        if (lrc == 0) {
            c->create = 2;
            c->over_ino = st.ino;
        }
    } else if (*rc == -ENOENT && c->create == 2) {
        c->create = 1;
    } else {
        return 0;
    }
    c->tries++;
    int prc = prov_propose(c->fs, c);
    if (prc == 0)
        return 1;
    *rc = prc;
    return 0;
}

/* fh's provisional create was committed as ino: the open file, its counts
 * in the inode map and the provisional nodeid (its alias) move to ino.
 * created: ino is the node this create made (not one it overwrote). */
static void prov_bind(struct zk_fs *fs, struct zk__fs_fh *fh, uint64_t ino,
                      int created)
{
    struct zk__fs_prov *pv = fh->prov;
    struct zk__fs_inomap *m = &fs->inomap;
    struct zk_stat st;
    if (zk_store_getattr(fs->store, ino, &st) != 0) {
        st = pv->st;
        st.ino = ino;
    }
    zk__fs_inomap_link(m, pv->pino, ino);
    if (!fh->released) {
        if (fh->writer) {
            zk__fs_inomap_writer(m, pv->pino, -1);
            zk__fs_inomap_writer(m, ino, 1);
        }
        if (fh->append) {
            zk__fs_inomap_appender(m, pv->pino, -1);
            zk__fs_inomap_appender(m, ino, 1);
        }
        zk__fs_inomap_close(m, pv->pino);
        zk__fs_inomap_open(m, &st);
    }
    fh->ino = ino;
    fh->st = st;
    fh->prov = NULL;
    /* An O_APPEND descriptor reads the committed content: now this
     * create's (the applied change named the provisional nodeid's file
     * before this bind, so zk__fs_append_views did not reach it; a
     * replace of the name later left it reading nothing: seed 90291). */
    if (fh->append)
        view_load(fs, fh);
    fh->holder = created && st.ephemeral_owner != 0;
    if (fh->holder && fh->released)
        zk__fs_release_holder(fs, ino);
}

/* The end of a provisional create's commit (rc: its outcome), after the
 * reply: the requests that waited are made again. The kernel's entry for
 * the name keeps the provisional nodeid, which the inode map translates
 * (and invalidations of the committed inode reach) until the kernel
 * forgets it; dropping the entry instead would cost the echo thread the
 * directory's lock after every create. A failure leaves the create
 * pending for a later flush, unless its creator is gone. */
static void prov_end(struct zk_fs *fs, struct zk__fs_prov *pv,
                     struct zk__fs_fh *fh, uint64_t ino, int rc)
{
    if (rc == 0) {
        zk__fs_prov_settled(fs, pv, ino, 0);
        return;
    }
    zk__fs_prov_settled(fs, pv, 0, rc);
    if (fh->released && fh->prov) {
        fh->prov = NULL;
        zk__fs_prov_drop(fs, pv);
    }
}

/* A flush, fsync or release that waited for another commit of fh (an
 * O_APPEND one, or a provisional create's): it commits what is left, or,
 * when nothing is, is answered as that commit was, once the echo thread
 * has invalidated the file. */
static void commit_rest(struct zk_fs *fs, fuse_req_t req,
                        struct zk__fs_fh *fh, int all, int pause)
{
    if (!fh->poisoned && !fh->dirty && !(all && fh->trunc) && !fh->prov) {
        if (req)
            reply_commit(fs, req, 0, all);
    } else {
        commit_fh_ex(fs, req, fh, all, pause, 0);
    }
}

/* fh's O_APPEND commit is done: the flushes and fsyncs that waited for
 * it go on in order, until one starts the next commit (the rest wait for
 * that one). One that finds nothing left to commit had all its data in
 * the commits before it: answered as they were, once the echo thread has
 * invalidated the file. A commit that failed left its bytes in the
 * buffer, and the next one commits them. */
static void run_waits(struct zk_fs *fs, struct zk__fs_fh *fh)
{
    while (fh->waits && !fh->acommit) {
        struct zk__fs_fh_wait *w = fh->waits;
        fh->waits = w->next;
        commit_rest(fs, w->req, fh, w->all, w->pause);
        fh_unref(fh);           /* the waiter's; a commit takes its own */
        free(w);
    }
}

static void commit_done(void *arg, int err, const struct zk_apply_result *res)
{
    struct commit *c = arg;
    struct zk__fs_fh *fh = c->fh;
    struct zk__fs_prov *pv = c->create ? fh->prov : NULL;
    int rc = zk__fs_result_err(err, res);
    uint64_t ino = 0;

    zk__fs_echo_local(c->fs, res);
    if (pv && rc == -EEXIST && c->empty) {
        /* Created elsewhere meanwhile: this open file now writes that
         * file (its close overwrites it), as an open that found it. */
        struct zk_stat st;
        if (zk_store_lookup(c->fs->store, pv->parent, pv->name, &st) == 0)
            rc = st.kind == ZK_KIND_DIR ? -EISDIR : 0, ino = st.ino;
    } else if (pv && rc && prov_again(c, &rc)) {
        return;
    } else if (pv && rc == 0) {
        ino = res->ops[0].ino;
    }
    if (pv && rc == 0)
        prov_bind(c->fs, fh, ino, c->create == 1 && res && res->err == 0);
    if (c->empty) {
        /* The buffer was not committed: it stays dirty. */
    } else if (rc == 0 && fh->append) {
        fh->trunc = 0;
        /* Keep only what was appended after this commit's snapshot. */
        if (fh->len > c->len)   /* (data is NULL if nothing was written) */
            memmove(fh->data, fh->data + c->len, fh->len - c->len);
        fh->len -= c->len;
        fh->dirty = fh->len > 0;
    } else if (rc == 0) {
        fh->trunc = 0;
        if (fh->wgen == c->wgen)
            fh->dirty = 0;
    }
    if (rc)   /* the kernel's size may count what was not committed */
        zk__fs_echo_push(c->fs, ZK__ECHO_INVAL_INODE, fh->ino, 0, NULL);
    /* The kernel holds nothing of the file it would use without asking
     * (quiet_release for a truncation at the release, local_inval_needed
     * for a writer's FLUSH or fsync): its invalidation is taken back, and
     * a request is answered without waiting for the echo thread when
     * nothing else of the transaction is staged. */
    int quiet = rc == 0 &&
                (c->keep_attrs || (c->req && !pv && !c->empty &&
                                   !local_inval_needed(c->fs, fh, res)));
    if (quiet && zk__fs_echo_local_attrs(c->fs, res, fh->knode) && c->req) {
        c->fs->echo.local_skipped++;
        zk__fs_reply_errno(c->req, 0);
    } else if (c->req) {
        reply_commit(c->fs, c->req, rc, c->fsync);
    }
    if (pv)
        prov_end(c->fs, pv, fh, ino, rc);
    if (c->paused)
        zk__fs_resume(c->fs);
    if (c->serial) {
        fh->acommit = 0;
        run_waits(c->fs, fh);   /* (c's reference keeps fh meanwhile) */
    }
    fh_unref(fh);
    free(c);
}

/* The attributes a commit of fh changes besides the data, as one SET_ATTR
 * in *op (naming the same node as data); returns 1 if there are any, else
 * 0. A write by a user other than root (who stands for CAP_FSETID) clears
 * S_ISUID, and S_ISGID where group execution is on, as write(2) does on a
 * local file system; a utimensat since the last write keeps its time
 * (cp -p sets the time before it closes). tbuf holds the time. */
static int commit_attr_op(struct zk_fs *fs, const struct zk__fs_fh *fh,
                          const struct zk_op *data, struct zk_op *op,
                          uint8_t tbuf[ZK_ATTR_TIME_LEN])
{
    struct zk_stat st;
    uint32_t mask = 0, mode = 0;
    if (fh->kill_priv && zk_store_getattr(fs->store, fh->ino, &st) == 0) {
        mode = st.mode & ~(uint32_t)S_ISUID;
        if ((st.mode & S_IXGRP))
            mode &= ~(uint32_t)S_ISGID;
        if (mode != st.mode)
            mask |= ZK_ATTR_MODE;
    }
    if (fh->mtime_set && !fh->append)
        mask |= ZK_ATTR_MTIME;
    if (!mask)
        return 0;
    *op = (struct zk_op){.type = ZK_OP_SET_ATTR, .version = -1,
                         .ino = fh->ino, .attr_mask = mask, .mode = mode,
                         .path = data->path, .path_len = data->path_len};
    if (mask & ZK_ATTR_MTIME) {
        zk_put_be64(tbuf, fh->mtime_ms);
        op->data = tbuf;
        op->data_len = ZK_ATTR_TIME_LEN;
    }
    return 1;
}

/* Proposes the SET_DATA/APPEND (and SET_ATTR) of a committed node's
 * open file for commit c. */
static int propose_data(struct zk_fs *fs, struct commit *c)
{
    struct zk__fs_fh *fh = c->fh;
    char path[ZK_PATH_MAX];
    int rc = zk_store_path(fs->store, fh->ino, path, sizeof(path));
    if (rc)
        return rc;
    struct zk_op ops[2] = {{
        .type = fh->append && !fh->trunc ? ZK_OP_APPEND : ZK_OP_SET_DATA,
        .version = -1,
        .ino = fh->ino, .path = path, .path_len = (uint32_t)strlen(path),
        .data = fh->data, .data_len = (uint32_t)fh->len,
    }};
    uint8_t tbuf[ZK_ATTR_TIME_LEN];
    struct zk_txn txn = {
        .nops = 1 + commit_attr_op(fs, fh, &ops[0], &ops[1], tbuf),
        .ops = ops};
    return fs->stopping ? -ESHUTDOWN : zk__fs_propose(fs, &txn, commit_done, c);
}

/* Whether the commit of fh's truncation at its release (nothing written:
 * O_TRUNC, then close) may leave the kernel's attributes of the inode as
 * they are. close() has returned by then, and a caller may already ask
 * for the size through another descriptor: lseek(SEEK_END) sends a
 * GETATTR and then uses the inode's size, and the kernel drops the
 * answer to a GETATTR sent before an invalidation that arrives while it
 * is under way (its attr_version check), so an invalidation now would
 * leave the size of before the truncation in place. None is needed:
 * while fh was open for writing, every attribute answer for the inode
 * carried timeout 0 (zk__fs_writer_attr, zk__fs_entry_param), and the
 * kernel marked size and times stale itself at the O_TRUNC open (atomic
 * O_TRUNC), so it asks again for what the commit changes. What is not
 * done without the invalidation: dropping the pages of a MAP_PRIVATE
 * mapping made through another descriptor meanwhile (it keeps showing
 * what it mapped; docs/filesystem.md). Not when a write cleared set-id
 * bits (kill_priv: the mode changes as well). */
static int quiet_release(const struct zk__fs_fh *fh)
{
    return fh->writer && !fh->dirty && fh->trunc && !fh->prov &&
           !fh->kill_priv;
}

/* Proposes fh's buffer if dirty (or, with all != 0, if only truncated, or
 * not created yet) and answers req with the outcome. pause: new requests
 * are not read until the commit is applied (a release: nobody waits for
 * it). A provisional file (prov.c) is committed with its create as one
 * transaction, or, while its create is under way for another request,
 * after it. Errors are replied here. */
static void commit_fh_ex(struct zk_fs *fs, fuse_req_t req,
                         struct zk__fs_fh *fh, int all, int pause, int empty)
{
    struct zk__fs_prov *pv = fh->prov;
    int rc = 0;

    if (!fh->poisoned && !fh->dirty && !(all && (fh->trunc || pv)))
        goto reply;                 /* nothing to commit */
    if (req)
        fh->flushed_wgen = fh->wgen + 1;
    if (pv && pv->committing && !fh->poisoned) {
        fh->inflight++;
        zk__fs_prov_defer(fs, pv, &(struct zk__fs_defer){
            .req = req, .op = ZK__DEFER_COMMIT, .fh = fh, .all = all});
        return;
    }
    if (fh->acommit && !pv) {   /* behind the O_APPEND commit under way */
        struct zk__fs_fh_wait *w = malloc(sizeof(*w)), **pp = &fh->waits;
        if (!w) {
            rc = -ENOMEM;
            goto reply;
        }
        *w = (struct zk__fs_fh_wait){.req = req, .all = all, .pause = pause};
        while (*pp)
            pp = &(*pp)->next;
        *pp = w;
        fh->inflight++;
        return;
    }
    if (fh->poisoned && pv && !req)
        empty = 1;      /* the file is created (empty), as at its open */
    else if (fh->poisoned)
        rc = -EFBIG;
    else if (zk__fs_hidden(fs, &fh->st))
        rc = ZK_ESESSION;       /* its session was given up (lease.c) */
    struct commit *c = rc ? NULL : calloc(1, sizeof(*c));
    if (!c) {
        rc = rc ? rc : -ENOMEM;
        goto fail;
    }
    *c = (struct commit){.fs = fs, .req = req, .fh = fh, .wgen = fh->wgen,
                         .len = fh->len, .paused = pause,
                         .fsync = req != NULL && all, .create = pv != NULL,
                         .empty = pv != NULL && empty,
                         .keep_attrs = req == NULL && quiet_release(fh),
                         .serial = !pv && fh->append};
    fh->inflight++;
    rc = pv ? prov_propose(fs, c) : propose_data(fs, c);
    if (rc == 0) {
        if (pv)
            pv->committing = 1;
        if (c->serial)
            fh->acommit = 1;
        if (c->paused)
            zk__fs_pause(fs);
        return;
    }
    fh->inflight--;
    free(c);
fail:
    /* as when the commit fails later (commit_done): the kernel's size may
     * count what was not committed (a write refused at the disk reserve) */
    zk__fs_echo_push(fs, ZK__ECHO_INVAL_INODE, fh->ino, 0, NULL);
    if (pv)      /* requests waiting for the create learn it failed */
        zk__fs_prov_settled(fs, pv, 0, rc);
reply:
    if (req)
        zk__fs_reply_errno(req, rc);
}

static void commit_fh(struct zk_fs *fs, fuse_req_t req, struct zk__fs_fh *fh,
                      int all)
{
    commit_fh_ex(fs, req, fh, all, req == NULL, 0);
}

void zk__fs_prov_commit(struct zk_fs *fs, struct zk__fs_fh *fh)
{
    commit_fh_ex(fs, NULL, fh, 1, 0, 1);
}

void zk__fs_prov_commit_again(struct zk_fs *fs, fuse_req_t req,
                              struct zk__fs_fh *fh, int all, int err)
{
    if (err) {
        if (req)
            zk__fs_reply_errno(req, err);
    } else {
        commit_rest(fs, req, fh, all, req == NULL);
    }
    fh_unref(fh);
}

/* flush (every close): commits what was written. A truncation alone
 * (O_TRUNC, no write yet) waits for the release or an fsync: the shell's
 * `echo x > f` closes the descriptor it opened once before writing (after
 * dup2), and committing there would publish an empty intermediate value.
 * So does a provisional create with nothing written yet. */
void zk__fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    if (ino == ZK_CTL_INO || ino == ZK_METRICS_INO) {
        fuse_reply_err(req, 0);
        return;
    }
    struct zk__fs_fh *fh = (struct zk__fs_fh *)(uintptr_t)fi->fh;
    /* lock.c: POSIX drops the closing owner's fcntl locks; then (once
     * that is committed) zk__fs_flush_commit. A provisional file has
     * none: a lock request commits its create first. */
    if (!fh->prov && zk__fs_lock_flush(fs, req, zk__fs_ino(fs, ino), fi))
        return;
    /* A new file nothing was written to is created at its second close:
     * a shell's redirection closes twice (`: > f`: the descriptor it
     * opened, after dup2, then the one it used), and `echo x > f` writes
     * between the two. A single close (creat() + close()) leaves it to
     * the release. */
    int empty_create = fh->prov && !fh->dirty && !fh->poisoned &&
                       ++fh->empty_flushes >= 2;
    commit_fh(fs, req, fh, empty_create);
}

/* The rest of a FLUSH whose fcntl unlock was committed first (lock.c). */
void zk__fs_flush_commit(struct zk_fs *fs, fuse_req_t req,
                         struct zk__fs_fh *fh)
{
    commit_fh(fs, req, fh, 0);
}

void zk__fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                  struct fuse_file_info *fi)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    (void)datasync;
    if (ino == ZK_CTL_INO || ino == ZK_METRICS_INO) {
        fuse_reply_err(req, 0);
        return;
    }
    commit_fh(fs, req, (struct zk__fs_fh *)(uintptr_t)fi->fh, 1);
}

/* Deletes ino as a released ephemeral: through the mount by the echo
 * thread (local watchers see IN_DELETE), or directly when that thread is
 * not running. */
void zk__fs_release_holder(struct zk_fs *fs, uint64_t ino)
{
    char path[ZK_PATH_MAX];
    if (zk_store_path(fs->store, ino, path, sizeof(path)) != 0)
        return;                 /* already gone */
    if (fs->stopping || !fs->echo.started)
        zk__fs_delete_ino(fs, ino);
    else
        zk__fs_echo_push(fs, ZK__ECHO_UNLINK, ino, 0, path);
}

void zk__fs_release(fuse_req_t req, fuse_ino_t ino,
                    struct fuse_file_info *fi)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    if (ino == ZK_CTL_INO) {
        zk__fs_ctl_release(req, fi);
        return;
    }
    if (ino == ZK_METRICS_INO) {
        zk__fs_metrics_release(req, fi);
        return;
    }
    struct zk__fs_fh *fh = (struct zk__fs_fh *)(uintptr_t)fi->fh;
    zk__fs_lock_release(fs, zk__fs_ino(fs, ino), fi);
    if (fh->writer)
        zk__fs_inomap_writer(&fs->inomap, fh->ino, -1);
    if (fh->append)
        zk__fs_inomap_appender(&fs->inomap, fh->ino, -1);
    zk__fs_inomap_close(&fs->inomap, fh->ino);
    /* A truncation alone, and changes no FLUSH has seen (page writeback
     * after close), are saved; a flush that failed is not retried behind
     * the caller's back. */
    if ((!fh->poisoned && (fh->trunc || fh->dirty || fh->prov) &&
         (fh->flushed_wgen != fh->wgen + 1 ||
          (fh->prov && fh->prov->committing))) ||
        (fh->poisoned && fh->prov))
        commit_fh(fs, NULL, fh, 1);
    if (fh->prov && !fh->prov->committing) {
        /* A create whose flush failed: the file never existed; its
         * name goes from this mount. */
        struct zk__fs_prov *pv = fh->prov;
        fh->prov = NULL;
        zk__fs_prov_drop(fs, pv);
    }
    if (fh->holder)
        zk__fs_release_holder(fs, fh->ino);
    fh->released = 1;
    if (fh->inflight == 0)
        fh_free(fh);
    fuse_reply_err(req, 0);
}

/* ------------------------------------------------------------------------ */
/* setattr                                                                   */
/* ------------------------------------------------------------------------ */

struct setattr_req {
    struct zk_fs *fs;
    fuse_req_t req;
    uint64_t ino;
    uint64_t knode;        /* the nodeid the kernel sent it on */
    struct zk__fs_fh *fh;
};

double zk__fs_writer_attr(struct zk_fs *fs, const struct zk__fs_fh *fh,
                          uint64_t ino, struct stat *attr)
{
    if (!fh || fh->echo || fh->append || !fh->loaded || !fh->dirty)
        return zk__fs_inomap_writers(&fs->inomap, ino) ? 0 : ZK__FS_TIMEOUT_S;
    attr->st_size = (off_t)fh->len;
    attr->st_blocks = (blkcnt_t)((fh->len + 511) / 512);
    return 0;
}

void zk__fs_reply_gone_attr(struct zk_fs *fs, fuse_req_t req, uint64_t ino,
                            const struct zk__fs_fh *fh,
                            const struct zk_stat *kept)
{
    struct stat a;
    zk__fs_fill_attr(fs, kept, &a);
    a.st_nlink = 0;
    fuse_reply_attr(req, &a, zk__fs_writer_attr(fs, fh, ino, &a));
}

/* Answers a SETATTR with ino's attributes (through fh, if not NULL: see
 * zk__fs_writer_attr). */
static void reply_attr(struct zk_fs *fs, fuse_req_t req, uint64_t ino,
                       const struct zk__fs_fh *fh)
{
    struct zk_stat st;
    struct stat attr;
    int rc = zk_store_getattr(fs->store, ino, &st);
    if (rc) {
        zk__fs_reply_errno(req, rc);
        return;
    }
    zk__fs_fill_attr(fs, &st, &attr);
    fuse_reply_attr(req, &attr, zk__fs_writer_attr(fs, fh, ino, &attr));
}

static void setattr_done(void *arg, int err, const struct zk_apply_result *res)
{
    struct setattr_req *sr = arg;
    int rc = zk__fs_result_err(err, res);
    zk__fs_echo_local(sr->fs, res);
    /* The answer carries the inode's new attributes, and the kernel drops
     * the pages past a new size itself: the echo thread's invalidation of
     * that inode would come after the answer, and an invalidation that
     * arrives while a later GETATTR of it is under way makes the kernel
     * drop that GETATTR's answer (seed 72317: an lseek(SEEK_HOLE) through
     * a descriptor with a longer buffer, right after a truncate(2) of the
     * path, got the truncated size). Taken back, as for a writer's own
     * data commit; other inodes the kernel may hold the file as keep it. */
    if (rc == 0 && zk__fs_echo_local_attrs(sr->fs, res, sr->knode))
        sr->fs->echo.local_skipped++;
    if (rc)
        zk__fs_reply_errno(sr->req, rc);
    else
        reply_attr(sr->fs, sr->req, sr->ino, sr->fh);
    if (sr->fh)
        fh_unref(sr->fh);
    free(sr);
}

/* truncate without an open file: the new content as a SET_DATA op. The
 * caller frees *buf after proposing. */
static int truncate_op(struct zk_fs *fs, uint64_t ino, size_t size,
                       uint8_t **buf, struct zk_op *op)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = size ? zk_store_read(fs->store, ino, &data, &len, NULL) : 0;
    if (rc)
        return rc;
    if (size) {
        uint8_t *p = realloc(data, size);
        if (!p) {
            free(data);
            return -ENOMEM;
        }
        data = p;
        if (size > len)
            memset(data + len, 0, size - len);
    }
    /* Every field: the encoder reads them all (owner, path2, ...). */
    *op = (struct zk_op){.type = ZK_OP_SET_DATA, .version = -1, .ino = ino,
                         .data = data, .data_len = (uint32_t)size};
    *buf = data;
    return 0;
}

/* An explicit mtime set while descriptors of ino hold unsaved writes:
 * their commits keep it (a write after it clears it again). */
static void keep_mtime(struct zk_fs *fs, uint64_t ino, uint64_t ms)
{
    for (struct zk__fs_handle *h = fs->handles.next; h != &fs->handles;
         h = h->next) {
        struct zk__fs_fh *fh = (struct zk__fs_fh *)h;
        if (h->destroy == fh_destroy && fh->ino == ino &&
            (fh->dirty || fh->trunc)) {
            fh->mtime_set = 1;
            fh->mtime_ms = ms;
        }
    }
}

/* Builds the ops of a setattr into ops[] (at most 2); a truncate through an
 * open file changes only its buffer. Returns the number of ops or an
 * error. */
static int setattr_ops(fuse_req_t req, uint64_t ino, const struct stat *a,
                       int to_set, struct zk__fs_fh *fh, struct zk_op *ops,
                       uint8_t **buf, uint8_t tbuf[ZK_ATTR_TIME_LEN])
{
    struct zk_fs *fs = fuse_req_userdata(req);
    int n = 0, rc;
    if (to_set & FUSE_SET_ATTR_SIZE) {
        if (a->st_size < 0 || a->st_size > ZK_DATA_MAX)
            return -EFBIG;
        if (fh && !fh->append) {
            if (fuse_req_ctx(req)->uid != 0)
                fh->kill_priv = 1;
            rc = fh_load(fs, fh);
            if (rc == 0)
                rc = fh_resize(fh, (size_t)a->st_size);
            if (rc)
                return rc;
        } else {
            rc = truncate_op(fs, ino, (size_t)a->st_size, buf, &ops[n]);
            if (rc)
                return rc;
            n++;
        }
    }
    unsigned mask = 0;
    if (to_set & FUSE_SET_ATTR_MODE) mask |= ZK_ATTR_MODE;
    if (to_set & FUSE_SET_ATTR_UID) mask |= ZK_ATTR_UID;
    if (to_set & FUSE_SET_ATTR_GID) mask |= ZK_ATTR_GID;
    if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) mask |= ZK_ATTR_MTIME;
    if (mask) {
        ops[n] = (struct zk_op){.type = ZK_OP_SET_ATTR, .version = -1,
                                .ino = ino, .attr_mask = mask,
                                .mode = a->st_mode & 07777,
                                .uid = a->st_uid, .gid = a->st_gid};
        if ((to_set & FUSE_SET_ATTR_MTIME) &&
            !(to_set & FUSE_SET_ATTR_MTIME_NOW)) {
            uint64_t ms = zk__fs_time_ms(&a->st_mtim);
            zk_put_be64(tbuf, ms);
            ops[n].data = tbuf;
            ops[n].data_len = ZK_ATTR_TIME_LEN;
            keep_mtime(fs, ino, ms);
        }
        n++;
    }
    return n;
}

/* setattr: size, mode, uid, gid and mtime become one transaction; atime
 * alone is accepted and ignored (st_atime is st_mtime: reads are not
 * transactions). */
void zk__fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                    int to_set, struct fuse_file_info *fi)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    struct zk__fs_fh *fh = NULL;
    struct zk_op ops[2];
    char path[ZK_PATH_MAX];
    uint8_t *buf = NULL, tbuf[ZK_ATTR_TIME_LEN];

    if (ino == ZK_CTL_INO) {
        struct stat a;
        zk__fs_ctl_attr(fs, &a);
        fuse_reply_attr(req, &a, ZK__FS_TIMEOUT_S);
        return;
    }
    if (ino == ZK_METRICS_INO) {
        fuse_reply_err(req, EACCES);
        return;
    }
    struct zk__fs_prov *pv = zk__fs_prov_of(fs, ino);
    if (pv) {                   /* needs the node: commit its create */
        zk__fs_prov_defer(fs, pv, &(struct zk__fs_defer){
            .req = req, .op = ZK__DEFER_SETATTR, .ino = ino, .attr = *attr,
            .to_set = to_set, .has_fi = fi != NULL,
            .fi = fi ? *fi : (struct fuse_file_info){0}});
        return;
    }
    uint64_t knode = ino;
    ino = zk__fs_ino(fs, ino);
    if (fi && fi->fh)
        fh = (struct zk__fs_fh *)(uintptr_t)fi->fh;
    if ((fh && fh->echo) || zk__fs_is_echo(fs, req)) {
        reply_attr(fs, req, ino, NULL); /* a replayed ftruncate/utimensat */
        return;
    }
    int rc = zk_store_path(fs->store, ino, path, sizeof(path));
    /* ftruncate of a file deleted since its open changes its buffer (whose
     * commit then fails), as a write does: no path is needed for that. */
    int buffer_only = rc == -ENOENT && fh && !fh->append &&
                      (to_set & (FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MODE |
                                 FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) ==
                          FUSE_SET_ATTR_SIZE;
    int n = rc && !buffer_only ? rc
                               : setattr_ops(req, ino, attr, to_set, fh, ops,
                                            &buf, tbuf);
    if (n == 0 && buffer_only) {
        /* As a GETATTR through fh answers (ops.c): the deleted node's
         * kept stat, and the size of the buffer, not cached (seed 71701:
         * with the stat as of the open cached for a day, an lseek(SEEK_END)
         * through a dup of fh used size 0). */
        zk__fs_reply_gone_attr(fs, req, ino, fh,
                               zk__fs_inomap_kept_stat(&fs->inomap, ino,
                                                       &fh->st));
        return;
    }
    if (n <= 0) {
        if (n < 0)
            zk__fs_reply_errno(req, n);
        else
            reply_attr(fs, req, ino, fh);
        return;
    }
    struct setattr_req *sr = calloc(1, sizeof(*sr));
    for (int i = 0; i < n; i++) {
        ops[i].path = path;
        ops[i].path_len = (uint32_t)strlen(path);
    }
    struct zk_txn txn = {.nops = (uint32_t)n, .ops = ops};
    rc = !sr ? -ENOMEM : fs->stopping ? -ESHUTDOWN : 0;
    if (rc == 0) {
        *sr = (struct setattr_req){.fs = fs, .req = req, .ino = ino,
                                   .knode = knode, .fh = fh};
        rc = zk__fs_propose(fs, &txn, setattr_done, sr);
    }
    free(buf);
    if (rc == 0) {
        if (fh)
            fh->inflight++;
        return;
    }
    free(sr);
    zk__fs_reply_errno(req, rc);
}
