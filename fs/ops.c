/*
 * ops.c — the FUSE low-level operations on names and directories: init,
 * lookup/forget, getattr, statfs, readdir(plus), and the namespace changes
 * (mknod, mkdir, create, unlink, rmdir, rename), plus the table that wires
 * every handler (file.c: file contents, xattr.c, ctl.c).
 *
 * Reads are answered at once from the store. A change becomes a proposal to
 * the replica; its handler returns without replying and the proposal's done
 * callback replies (exactly once) with the commit's outcome. Each pending
 * request carries a copy of what it needs: FUSE's arguments die when the
 * handler returns. Every reply that hands the kernel an inode reference
 * (entries, create, readdirplus) is counted in the lookup-count map, and
 * FORGET uncounts it.
 */
#include "fs_int.h"
#include "metrics.h"
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* session set-up                                                            */
/* ------------------------------------------------------------------------ */

/* Capabilities: atomic O_TRUNC (open carries it, no separate SETATTR);
 * no writeback cache (writes must reach the per-open buffer); flock and
 * POSIX lock capabilities, so that the kernel sends every lock request
 * here (lock.c). Then tells whoever waits (opts.ready_fd) that the mount
 * serves. */
static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    struct zk_fs *fs = userdata;
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
        conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
        conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
    /* flock and fcntl locks go to the cluster-wide lock table (lock.c). */
    conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
    if (conn->capable & FUSE_CAP_FLOCK_LOCKS)
        conn->want |= FUSE_CAP_FLOCK_LOCKS;
    if (conn->capable & FUSE_CAP_POSIX_LOCKS)
        conn->want |= FUSE_CAP_POSIX_LOCKS;
    if (fs->ready_fd >= 0) {
        ssize_t n = write(fs->ready_fd, "1", 1);
        (void)n;
        close(fs->ready_fd);
        fs->ready_fd = -1;
    }
    zk__fs_notify_ready(fs);    /* systemd's READY=1, notify.c */
}

/* ------------------------------------------------------------------------ */
/* reads                                                                     */
/* ------------------------------------------------------------------------ */

void zk__fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    struct zk_stat st;

    if (parent == ZK_INO_ROOT && strcmp(name, ZK_CTL_NAME) == 0) {
        struct fuse_entry_param e;
        memset(&e, 0, sizeof(e));
        e.ino = ZK_CTL_INO;
        e.generation = 1;
        e.entry_timeout = ZK__FS_TIMEOUT_S;
        e.attr_timeout = ZK__FS_TIMEOUT_S;
        zk__fs_ctl_attr(fs, &e.attr);
        fuse_reply_entry(req, &e);
        return;
    }
    if (parent == ZK_INO_ROOT && strcmp(name, ZK_METRICS_NAME) == 0) {
        zk__fs_metrics_lookup(req);
        return;
    }
    if (strlen(name) > ZK_NAME_MAX) {
        fuse_reply_err(req, ENAMETOOLONG);
        return;
    }
    if (zk__fs_echo_lookup(fs, req, parent, name))
        return;
    int rc = zk_store_lookup(fs->store, parent, name, &st);
    struct zk__fs_prov *pv = rc == -ENOENT && !zk__fs_is_echo(fs, req)
                                 ? zk__fs_prov_named(fs, parent, name)
                                 : NULL;
    if (pv) {                   /* created here, not committed yet */
        st = pv->st;
        rc = 0;
    }
    if (rc == -ENOENT && zk_store_getattr(fs->store, parent, &st) == -ENOENT)
        rc = -ESTALE;           /* the directory itself went away */
    if (rc == 0 && zk__fs_hidden(fs, &st))
        rc = -ENOENT;           /* its session was given up (lease.c) */
    if (rc) {
        zk__fs_reply_errno(req, rc);
        return;
    }
    zk__fs_reply_entry(fs, req, &st, ZK__FS_TIMEOUT_S);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    zk__fs_inomap_sub(&fs->inomap, ino, nlookup);
    fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
                            struct fuse_forget_data *forgets)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    for (size_t i = 0; i < count; i++)
        zk__fs_inomap_sub(&fs->inomap, forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

/* Attributes are the committed ones, also for a file with unsaved writes
 * (the kernel has one size per inode, and a reader must get the size of
 * the version it reads). */
void zk__fs_getattr(fuse_req_t req, fuse_ino_t ino,
                    struct fuse_file_info *fi)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    struct zk_stat st;
    struct stat attr;

    if (ino == ZK_CTL_INO) {
        zk__fs_ctl_attr(fs, &attr);
        fuse_reply_attr(req, &attr, ZK__FS_TIMEOUT_S);
        return;
    }
    if (ino == ZK_METRICS_INO) {
        zk__fs_metrics_getattr(req);
        return;
    }
    struct zk__fs_fh *fh = fi && fi->fh ? (struct zk__fs_fh *)(uintptr_t)fi->fh
                                         : NULL;
    struct zk__fs_prov *pv = zk__fs_prov_of(fs, ino);
    if (pv) {                   /* not committed yet: as created */
        zk__fs_fill_attr(fs, &pv->st, &attr);
        fuse_reply_attr(req, &attr, zk__fs_writer_attr(fs, fh, ino, &attr));
        return;
    }
    ino = zk__fs_ino(fs, ino);
    int rc = zk_store_getattr(fs->store, ino, &st);
    if (rc == 0 && zk__fs_hidden(fs, &st) && !zk__fs_is_echo(fs, req))
        rc = fh ? ZK_ESESSION : -ENOENT;  /* given up (lease.c) */
    if (rc == 0 && fh && fh->lock_session &&
        zk__fs_lock_lost(fs, fh->lock_session))
        rc = ZK_ESESSION;                 /* a lost lock's holder (lock.c) */
    /* fstat of an open file (or of an O_PATH descriptor, which reaches no
     * open) whose node was deleted: the stat kept at the delete, else the
     * one kept at its open, with nlink 0. */
    const struct zk_stat *kept =
        rc == -ENOENT ? zk__fs_inomap_kept_stat(&fs->inomap, ino,
                                                fh ? &fh->st : NULL)
                      : NULL;
    if (kept) {
        zk__fs_reply_gone_attr(fs, req, ino, fh, kept);
        return;
    }
    if (rc) {
        zk__fs_reply_errno(req, zk__fs_stale(rc));
        return;
    }
    zk__fs_fill_attr(fs, &st, &attr);
    fuse_reply_attr(req, &attr, zk__fs_writer_attr(fs, fh, ino, &attr));
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    struct statvfs sv;
    struct zk_store_info info;
    (void)ino;

    if (statvfs(fs->opts->data_dir, &sv) != 0)
        memset(&sv, 0, sizeof(sv));
    if (zk_store_info(fs->store, &info) == 0) {
        sv.f_files = info.znodes + sv.f_ffree;
    }
    sv.f_namemax = ZK_NAME_MAX;
    fuse_reply_statfs(req, &sv);
}

/* ------------------------------------------------------------------------ */
/* directories                                                               */
/* ------------------------------------------------------------------------ */

static void dh_free(struct zk__fs_dh *dh)
{
    zk__fs_handle_del(&dh->hd);
    zk__fs_listing_put(dh->ls);
    free(dh);
}

static void dh_destroy(struct zk__fs_handle *h)
{
    dh_free((struct zk__fs_dh *)h);
}

/* OPENDIR checks the directory and returns a handle; the children are
 * read at the first READDIR, from the listing the daemon keeps (listing.c:
 * read from the store once, then patched by every applied change). Once a
 * version was listed, the next opens let the kernel keep the listing in
 * its readdir cache (cache_readdir, kept across opens; see
 * zk__fs_listing_kcache for when not) until the directory changes: a
 * local create/unlink/rename, and the echo thread's replays of remote
 * ones, bump the directory's version; a snapshot install invalidates its
 * pages. So listing an unchanged directory again costs one OPENDIR and
 * one RELEASEDIR. */
static void op_opendir(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    struct zk__fs_dh *dh = calloc(1, sizeof(*dh));
    if (!dh) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    int rc = zk__fs_stale(zk_store_getattr(fs->store, ino, &dh->self));
    if (rc == 0 && dh->self.kind != ZK_KIND_DIR)
        rc = -ENOTDIR;
    if (rc) {
        dh_free(dh);
        zk__fs_reply_errno(req, rc);
        return;
    }
    dh->parent_ino = ino == ZK_INO_ROOT ? ZK_INO_ROOT : dh->self.parent;
    fi->fh = (uintptr_t)dh;
    dh->kcache = zk__fs_listing_kcache(fs, ino);
    fi->cache_readdir = dh->kcache;
    /* Always: an open without it makes the kernel drop the cached
     * listing (fuse_dir_open), which a later open may still use. */
    fi->keep_cache = 1;
    if (fuse_reply_open(req, fi) != 0) {
        dh_free(dh);
        return;
    }
    zk__fs_handle_add(fs, &dh->hd, dh_destroy);
    /* fstat of the descriptor still works after an rmdir (nlink 0), as
     * for files, instead of ESTALE. */
    zk__fs_inomap_open(&fs->inomap, &dh->self);
}

/* A listing is one consistent version: the one read at the first READDIR
 * (offsets are indexes into it), however the directory changes meanwhile. */
static void do_readdir(fuse_req_t req, size_t size, off_t off,
                       struct fuse_file_info *fi, int plus)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    struct zk__fs_dh *dh = (struct zk__fs_dh *)(uintptr_t)fi->fh;
    if (!dh->ls) {
        int rc = zk__fs_stale(zk__fs_listing_open(fs, dh->self.ino, &dh->ls));
        if (rc) {
            zk__fs_reply_errno(req, rc);
            return;
        }
    }
    struct zk__fs_dirpos d = {.self = dh->self.ino, .parent = dh->parent_ino,
                              .kcache = dh->kcache};
    zk__fs_listing_reply(fs, req, dh->ls, &d, size, off, plus);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
                       off_t off, struct fuse_file_info *fi)
{
    (void)ino;
    do_readdir(req, size, off, fi, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
                           off_t off, struct fuse_file_info *fi)
{
    (void)ino;
    do_readdir(req, size, off, fi, 1);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
                          struct fuse_file_info *fi)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    zk__fs_inomap_close(&fs->inomap, ino);
    dh_free((struct zk__fs_dh *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
                        struct fuse_file_info *fi)
{
    (void)ino, (void)datasync, (void)fi;
    fuse_reply_err(req, 0);   /* every change is durable when answered */
}

/* ------------------------------------------------------------------------ */
/* namespace changes                                                         */
/* ------------------------------------------------------------------------ */

/* A namespace request waiting for its commit. */
struct nsreq {
    struct zk_fs *fs;
    fuse_req_t req;
    uint64_t parent;
    int has_fi;                 /* create: reply with an open file */
    struct fuse_file_info fi;
    char name[ZK_NAME_MAX + 1];
};

static void simple_done(void *arg, int err, const struct zk_apply_result *res)
{
    struct nsreq *nr = arg;
    zk__fs_echo_local(nr->fs, res);
    zk__fs_reply_errno(nr->req, zk__fs_result_err(err, res));
    free(nr);
}

static int propose_ns(struct zk_fs *fs, fuse_req_t req, const struct zk_op *op,
                      struct nsreq *nr, zk_replica_done_cb cb)
{
    nr->fs = fs;
    nr->req = req;
    int rc = zk__fs_propose1(fs, op, cb, nr);
    if (rc) {
        free(nr);
        zk__fs_reply_errno(req, rc);
    }
    return rc;
}

/* O_CREAT on a name that appeared meanwhile, without O_EXCL: open it. */
static void create_open_existing(struct nsreq *nr)
{
    struct zk_fs *fs = nr->fs;
    struct zk_stat st;
    int rc = zk_store_lookup(fs->store, nr->parent, nr->name, &st);
    if (rc == 0 && st.kind == ZK_KIND_DIR)
        rc = -EISDIR;
    if (rc) {
        zk__fs_reply_errno(nr->req, rc);
        return;
    }
    zk__fs_reply_create(fs, nr->req, &st, &nr->fi, ZK__FS_TIMEOUT_S, 0, NULL);
}

/* The created node's answer: an entry (mknod, mkdir) or an entry and an
 * open file (create). A sequential child's real name differs from the one
 * the kernel asked for: that entry gets no cache time, and the kernel's
 * dentry for the asked name is invalidated (by the echo thread, once the
 * creating syscall has let go of the directory). */
static void create_done(void *arg, int err, const struct zk_apply_result *res)
{
    struct nsreq *nr = arg;
    struct zk_fs *fs = nr->fs;
    struct zk_stat st;
    int rc = zk__fs_result_err(err, res);

    zk__fs_echo_local(fs, res);
    if (rc == -EEXIST && nr->has_fi && !(nr->fi.flags & O_EXCL)) {
        create_open_existing(nr);
        goto out;
    }
    if (rc == 0)
        rc = zk_store_getattr(fs->store, res->ops[0].ino, &st);
    if (rc) {
        zk__fs_reply_errno(nr->req, rc);
        goto out;
    }
    const char *real = strrchr(res->ops[0].path, '/');
    int seq = real && strcmp(real + 1, nr->name) != 0;
    double t = seq ? 0.0 : ZK__FS_TIMEOUT_S;
    if (nr->has_fi)
        zk__fs_reply_create(fs, nr->req, &st, &nr->fi, t, 1, NULL);
    else if (zk__fs_reply_entry(fs, nr->req, &st, t) == 0 &&
             st.ephemeral_owner != 0)
        zk__fs_release_holder(fs, st.ino);  /* mknod: nobody holds it */
    if (seq)
        zk__fs_echo_push(fs, ZK__ECHO_INVAL_ENTRY, 0, nr->parent, nr->name);
out:
    free(nr);
}

/* mknod/mkdir replayed by the echo thread: the node exists already (or
 * is gone again: then a stand-in, so the watcher still sees it come). */
static int echo_create(struct zk_fs *fs, fuse_req_t req, uint64_t parent,
                       const char *name)
{
    struct zk__fs_echo_item *ec = zk__fs_echo_cur(fs, req);
    struct zk_stat st;
    if (!ec || ec->kind != ZK__ECHO_R_CREATE)
        return 0;
    if (parent != ec->parent || strcmp(name, ec->name) != 0) {
        fuse_reply_err(req, ESTALE);    /* the path led elsewhere */
        return 1;
    }
    if (zk_store_lookup(fs->store, parent, name, &st) == 0) {
        zk__fs_reply_entry(fs, req, &st, ZK__FS_TIMEOUT_S);
        return 1;
    }
    memset(&st, 0, sizeof(st));
    st.ino = ec->ino;
    st.kind = ec->node_kind;
    zk__fs_reply_entry_t(fs, req, &st, 0.0, 0.0);
    return 1;
}

/* mknod (regular files only), mkdir and create: ZK_OP_CREATE with the
 * caller's uid/gid and (already umask-ed) mode. The parent's children kind
 * decides at apply time whether the node is ephemeral or sequential; the
 * owner ("host:pid" of the caller) is only looked up when it may be. */
static void do_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                      mode_t mode, struct fuse_file_info *fi, int is_dir)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    char path[ZK_PATH_MAX], owner[ZK_OWNER_MAX];
    struct zk_stat pst;

    if (!fi && echo_create(fs, req, parent, name))
        return;
    /* The name is a pending create of this mount: commit it first. */
    if (zk__fs_prov_defer_names(fs, &(struct zk__fs_defer){
            .req = req, .parent = parent, .name = name, .mode = mode,
            .op = fi ? ZK__DEFER_CREATE : is_dir ? ZK__DEFER_MKDIR
                                                 : ZK__DEFER_MKNOD,
            .has_fi = fi != NULL,
            .fi = fi ? *fi : (struct fuse_file_info){0}}))
        return;
    int rc = zk__fs_check_new_name(parent, name);
    if (rc == 0)
        rc = zk_store_getattr(fs->store, parent, &pst);
    if (rc == 0 && pst.kind != ZK_KIND_DIR)
        rc = -ENOTDIR;
    if (rc == 0)
        rc = zk__fs_child_path(fs, parent, name, path, sizeof(path));
    /* An ephemeral needs this replica's session, which an ensemble member
     * lacks while it has no quorum (or renews an expired one). */
    if (rc == 0 && !is_dir && (pst.children_flags & ZK_CHILDREN_EPHEMERAL) &&
        zk_replica_session(fs->replica) == 0)
        rc = ZK_ENOTREADY;
    if (rc) {
        zk__fs_reply_errno(req, rc);
        return;
    }
    /* A set-group-ID directory gives its group to new nodes, and its
     * S_ISGID to new directories (inode_init_owner() does this for local
     * file systems; under FUSE it is the file system's job). */
    uint32_t gid = ctx->gid;
    if (pst.mode & S_ISGID) {
        gid = pst.gid;
        if (is_dir)
            mode |= S_ISGID;
    }
    /* Without O_EXCL: answered at once, committed with its data (prov.c). */
    if (fi && zk__fs_prov_create(req, parent, name, mode, gid, &pst, fi))
        return;
    struct nsreq *nr = calloc(1, sizeof(*nr));
    if (!nr) {
        zk__fs_reply_errno(req, -ENOMEM);
        return;
    }
    owner[0] = '\0';
    if (!is_dir && (pst.children_flags & ZK_CHILDREN_EPHEMERAL))
        zk__fs_caller_owner(fs, ctx->pid, owner, sizeof(owner));
    struct zk_op op = {
        .type = ZK_OP_CREATE, .flags = is_dir ? ZK_CREATE_DIR : 0,
        .version = -1, .mode = mode & 07777, .uid = ctx->uid,
        .gid = gid, .session = zk_replica_session(fs->replica),
        .path = path, .path_len = (uint32_t)strlen(path),
        .owner = owner, .owner_len = (uint32_t)strlen(owner),
    };
    nr->parent = parent;
    snprintf(nr->name, sizeof(nr->name), "%s", name);
    if (fi) {
        nr->has_fi = 1;
        nr->fi = *fi;
    }
    propose_ns(fs, req, &op, nr, create_done);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
                     mode_t mode, dev_t rdev)
{
    (void)rdev;
    if (!S_ISREG(mode)) {
        fuse_reply_err(req, EPERM);   /* no devices, fifos or sockets */
        return;
    }
    do_create(req, parent, name, mode, NULL, 0);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
                     mode_t mode)
{
    do_create(req, parent, name, mode, NULL, 1);
}

void zk__fs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                   mode_t mode, struct fuse_file_info *fi)
{
    do_create(req, parent, name, mode, fi, 0);
}

/* unlink and rmdir: ZK_OP_DELETE of the inode the name has now — or, for
 * the echo thread's unlink of a released ephemeral, of the inode that was
 * held (a replacement under the same name is then left alone). */
static void do_remove(fuse_req_t req, fuse_ino_t parent, const char *name,
                      int is_dir)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    char path[ZK_PATH_MAX];
    struct zk_stat st;
    struct zk__fs_echo_item *ec = zk__fs_echo_cur(fs, req);
    int rc = 0;

    if (ec && ec->kind == ZK__ECHO_R_DELETE) {
        /* A replay: the node is gone already (if the kernel's entry is
         * that node; else ESTALE, and the kernel looks the name up again). */
        fuse_reply_err(req, zk__fs_echo_entry_ours(ec, parent, name, 0, NULL)
                                ? 0 : ESTALE);
        return;
    }
    if (!ec && zk__fs_prov_defer_names(fs, &(struct zk__fs_defer){
                   .req = req, .parent = parent, .name = name,
                   .op = is_dir ? ZK__DEFER_RMDIR : ZK__DEFER_UNLINK}))
        return;                     /* a pending create: commit it first */
    if (parent == ZK_INO_ROOT && (strcmp(name, ZK_CTL_NAME) == 0 ||
                                  strcmp(name, ZK_METRICS_NAME) == 0))
        rc = -EPERM;
    else if (strlen(name) > ZK_NAME_MAX)
        rc = -ENAMETOOLONG;
    if (rc == 0)
        rc = zk_store_lookup(fs->store, parent, name, &st);
    if (rc == 0 && is_dir != (st.kind == ZK_KIND_DIR))
        rc = is_dir ? -ENOTDIR : -EISDIR;
    struct zk__fs_prov *pv = rc == 0 && is_dir && !ec
                                 ? zk__fs_prov_in(fs, st.ino) : NULL;
    if (pv) {                   /* not empty: commit what is pending */
        zk__fs_prov_defer(fs, pv, &(struct zk__fs_defer){
            .req = req, .parent = parent, .name = name,
            .op = ZK__DEFER_RMDIR});
        return;
    }
    if (rc == 0)
        rc = zk__fs_child_path(fs, parent, name, path, sizeof(path));
    struct nsreq *nr = rc ? NULL : calloc(1, sizeof(*nr));
    if (rc || !nr) {
        zk__fs_reply_errno(req, rc ? rc : -ENOMEM);
        return;
    }
    uint64_t ino = ec && ec->kind == ZK__ECHO_UNLINK ? ec->ino : st.ino;
    struct zk_op op = {
        .type = ZK_OP_DELETE, .version = -1, .ino = ino,
        .path = path, .path_len = (uint32_t)strlen(path),
    };
    propose_ns(fs, req, &op, nr, simple_done);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    do_remove(req, parent, name, 0);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    do_remove(req, parent, name, 1);
}

/* rename: one ZK_OP_RENAME of the source inode; the store replaces the
 * target as POSIX says. RENAME_EXCHANGE (and WHITEOUT) are refused. */
static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                      fuse_ino_t newparent, const char *newname,
                      unsigned int flags)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    char path[ZK_PATH_MAX], path2[ZK_PATH_MAX];
    struct zk_stat st;
    struct zk__fs_echo_item *ec = zk__fs_echo_cur(fs, req);
    int rc = 0;

    if (ec && ec->kind == ZK__ECHO_R_RENAME) {
        /* A replay: the move is done already (if the kernel's entries
         * are the item's nodes, as for an unlink above). */
        fuse_reply_err(req, zk__fs_echo_entry_ours(ec, parent, name, newparent,
                                                   newname) ? 0 : ESTALE);
        return;
    }
    if (!ec && zk__fs_prov_defer_names(fs, &(struct zk__fs_defer){
                   .req = req, .op = ZK__DEFER_RENAME, .parent = parent,
                   .name = name, .newparent = newparent, .name2 = newname,
                   .flags = (int)flags}))
        return;                     /* a pending create: commit it first */
    if (flags & ~(unsigned)RENAME_NOREPLACE)
        rc = -EINVAL;
    else if (parent == ZK_INO_ROOT && (strcmp(name, ZK_CTL_NAME) == 0 ||
                                       strcmp(name, ZK_METRICS_NAME) == 0))
        rc = -EPERM;
    if (rc == 0)
        rc = zk__fs_check_new_name(newparent, newname);
    struct zk__fs_prov *pv = NULL;
    if (rc == 0 && zk_store_lookup(fs->store, newparent, newname, &st) == 0)
        pv = zk__fs_prov_in(fs, st.ino);    /* over a directory */
    if (pv) {                   /* not empty: commit what is pending */
        zk__fs_prov_defer(fs, pv, &(struct zk__fs_defer){
            .req = req, .op = ZK__DEFER_RENAME, .parent = parent,
            .name = name, .newparent = newparent, .name2 = newname,
            .flags = (int)flags});
        return;
    }
    if (rc == 0)
        rc = zk_store_lookup(fs->store, parent, name, &st);
    if (rc == 0)
        rc = zk__fs_child_path(fs, parent, name, path, sizeof(path));
    if (rc == 0)
        rc = zk__fs_child_path(fs, newparent, newname, path2, sizeof(path2));
    struct nsreq *nr = rc ? NULL : calloc(1, sizeof(*nr));
    if (rc || !nr) {
        zk__fs_reply_errno(req, rc ? rc : -ENOMEM);
        return;
    }
    struct zk_op op = {
        .type = ZK_OP_RENAME, .version = -1, .ino = st.ino,
        .flags = (flags & RENAME_NOREPLACE) ? ZK_RENAME_NOREPLACE : 0,
        .path = path, .path_len = (uint32_t)strlen(path),
        .path2 = path2, .path2_len = (uint32_t)strlen(path2),
    };
    propose_ns(fs, req, &op, nr, simple_done);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
                    const char *newname)
{
    (void)ino, (void)newparent, (void)newname;
    fuse_reply_err(req, EPERM);       /* a znode has exactly one path */
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
                       const char *name)
{
    (void)link, (void)parent, (void)name;
    fuse_reply_err(req, EPERM);       /* znodes are files or directories */
}

const struct fuse_lowlevel_ops zk__fs_ops = {
    .init = op_init,
    .lookup = zk__fs_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = zk__fs_getattr,
    .setattr = zk__fs_setattr,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .open = zk__fs_open,
    .read = zk__fs_read,
    .write = zk__fs_write,
    .flush = zk__fs_flush,
    .release = zk__fs_release,
    .fsync = zk__fs_fsync,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_releasedir,
    .fsyncdir = op_fsyncdir,
    .statfs = op_statfs,
    .setxattr = zk__fs_setxattr,
    .getxattr = zk__fs_getxattr,
    .listxattr = zk__fs_listxattr,
    .removexattr = zk__fs_removexattr,
    .create = zk__fs_create,
    .flock = zk__fs_flock,          /* lock.c: cluster-wide */
    .getlk = zk__fs_getlk,
    .setlk = zk__fs_setlk,
};
