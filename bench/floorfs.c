/*
 * floorfs.c — the "floor": a trivial in-memory FUSE low-level filesystem,
 * the fastest any FUSE filesystem can be on this kernel with libfuse's
 * single-threaded loop (SPEC section 6, FUSE-FACTS.md). bench/run.sh
 * measures zkfs side by side with it; zkfs's reads and stats aim to come
 * within 80% of it.
 *
 *   floorfs [--cache-readdir] [--no-xattr] [--epoll] [--direct-io]
 *           [-o FUSEOPTS] MOUNTPOINT
 *
 * Runs in the foreground until unmounted (fusermount3 -u, umount) or sent
 * SIGINT/SIGTERM. Always mounted with default_permissions (as zkfs is, so
 * the kernel makes the same permission round trips); entry and attribute
 * timeouts are 60 s, and files are opened with keep_cache: the kernel caches
 * everything, and nothing else ever changes the tree behind its back.
 * --cache-readdir also lets the kernel cache directory listings.
 * --epoll serves the way zkfs's event loop does (fs/fs.c): the /dev/fuse
 * descriptor non-blocking, waited for with epoll, requests read until
 * EAGAIN; without it, libfuse's loop blocks in read(). What the difference
 * costs a request is what an event loop costs any FUSE daemon.
 * --direct-io opens files as zkfs opens them for reading (direct I/O, no
 * page cache, and no FLUSH for a read-only open): every read() is a READ
 * sent here, as zkfs needs for reads that never mix versions.
 * --sync DIR is the floor of a durable filesystem (target floor-sync of
 * bench/run.sh): before answering a request that zkfs answers only once
 * its transaction is committed, it appends a 64-byte record to a log in
 * DIR (DIR/floorfs-sync.log, 16 MiB written with zeros at start and then
 * unlinked, reused from its start when full) and fdatasyncs it — the least a one-server
 * filesystem with zkfs's guarantees must wait for: no replication, no
 * second replica's flush, no network, no apply. Those requests: CREATE
 * with O_EXCL (the winner is decided at open), MKNOD, MKDIR, UNLINK,
 * RMDIR, RENAME, SETATTR by path, and the FLUSH or FSYNC of a file
 * written, truncated or created without O_EXCL since it was last made
 * durable (zkfs commits a file's data, and a new file without O_EXCL,
 * at close: one transaction). One thread, so no group commit: with many
 * writers this is a floor for one writer's latency, not for throughput.
 *
 * Why xattrs matter to the floor: with protocol 7.31 (what libfuse 3.14
 * negotiates) every write() first makes the kernel ask GETXATTR
 * "security.capability" (file_remove_privs), one more round trip per write,
 * unless the filesystem has no getxattr at all (ENOSYS is remembered).
 * zkfs must implement xattrs, so by default the floor answers ENODATA and
 * pays that trip too; --no-xattr leaves the xattr ops out, which is the
 * configuration FUSE-FACTS.md's floor table was measured with.
 *
 * Data model: every node lives in a table indexed by inode number (never
 * reused); names are found through one hash table keyed by (parent, name);
 * each directory keeps its children on a list for readdir. A node that has
 * been unlinked stays until the kernel forgets it and it is closed.
 * Extended attributes: getxattr answers ENODATA, listxattr an empty list,
 * setxattr ENOTSUP. No hard links, symlinks or special files (mknod makes
 * regular files only).
 *
 * Single-threaded (fuse_session_loop, or the --epoll loop), so no locking
 * anywhere.
 */
#define FUSE_USE_VERSION 34

#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_S        60.0
#define FILE_MAX_BYTES   (64u * 1024 * 1024)   /* largest file          */
#define NODES_MAX        (64u * 1024 * 1024)   /* most inodes ever made */
#define HASH_INIT        4096                  /* buckets at start      */

struct node {
    fuse_ino_t ino;
    fuse_ino_t parent;          /* 0 once unlinked                       */
    char *name;
    mode_t mode;
    uid_t uid;
    gid_t gid;
    struct timespec atime, mtime, ctime;
    char *data;
    size_t size, cap;
    uint64_t nlookup;           /* kernel references                     */
    uint64_t nopen;             /* open file handles                     */
    int dirty;                  /* --sync: changed since made durable    */
    struct node *hnext;         /* hash chain                            */
    struct node *cprev, *cnext; /* siblings in the parent's child list   */
    struct node *children;      /* directories: first child              */
    size_t nchildren;
};

struct floorfs {
    struct node **nodes;        /* by inode number; NULL when freed      */
    size_t nnodes, nodes_cap;
    struct node **hash;
    size_t nbuckets, nentries;
    int cache_readdir;
    int direct_io;              /* --direct-io */
    int sync_fd;                /* --sync: the log, or -1                */
    off_t sync_off;             /* where the next record goes            */
    uint64_t sync_seq;          /* records written                       */
};

#define SYNC_LOG_BYTES   (16u * 1024 * 1024)
#define SYNC_REC_BYTES   64u

/* A listing built at opendir and served in slices by readdir. */
struct dirbuf {
    char *p;
    size_t size, cap;
};

/* ------------------------------------------------------------------------
 * Node table and name hash
 * --------------------------------------------------------------------- */

static struct floorfs *fs_of(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

static struct node *node_get(struct floorfs *fs, fuse_ino_t ino)
{
    return ino < fs->nnodes ? fs->nodes[ino] : NULL;
}

/* --sync: makes one change durable before its answer (see the top).
 * Returns 0 or an errno; 0 at once without --sync. */
static int durable(struct floorfs *fs, fuse_ino_t ino)
{
    if (fs->sync_fd < 0)
        return 0;
    uint8_t rec[SYNC_REC_BYTES] = {0};
    uint64_t seq = ++fs->sync_seq;
    memcpy(rec, &seq, sizeof seq);
    memcpy(rec + sizeof seq, &ino, sizeof ino);
    if (fs->sync_off + SYNC_REC_BYTES > SYNC_LOG_BYTES)
        fs->sync_off = 0;
    if (pwrite(fs->sync_fd, rec, sizeof rec, fs->sync_off) != sizeof rec ||
        fdatasync(fs->sync_fd) != 0)
        return errno ? errno : EIO;
    fs->sync_off += SYNC_REC_BYTES;
    return 0;
}

/* --sync: a FLUSH or FSYNC makes what changed since the last one durable. */
static int durable_if_dirty(struct floorfs *fs, fuse_ino_t ino)
{
    struct node *n = node_get(fs, ino);
    if (n == NULL || !n->dirty)
        return 0;
    int err = durable(fs, ino);
    if (err == 0)
        n->dirty = 0;
    return err;
}

static size_t hash_of(fuse_ino_t parent, const char *name, size_t nbuckets)
{
    uint64_t h = 1469598103934665603u ^ (uint64_t)parent;   /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211u;
    return (size_t)(h & (nbuckets - 1));
}

static struct node *hash_find(struct floorfs *fs, fuse_ino_t parent,
                              const char *name)
{
    struct node *n = fs->hash[hash_of(parent, name, fs->nbuckets)];
    while (n != NULL && (n->parent != parent || strcmp(n->name, name) != 0))
        n = n->hnext;
    return n;
}

static void hash_grow(struct floorfs *fs)
{
    size_t nb = fs->nbuckets * 2;
    struct node **h = calloc(nb, sizeof *h);
    if (h == NULL)
        return;               /* keep the longer chains */
    for (size_t i = 0; i < fs->nbuckets; i++) {
        struct node *n = fs->hash[i], *next;
        for (; n != NULL; n = next) {
            next = n->hnext;
            size_t b = hash_of(n->parent, n->name, nb);
            n->hnext = h[b];
            h[b] = n;
        }
    }
    free(fs->hash);
    fs->hash = h;
    fs->nbuckets = nb;
}

/* Links n as parent/name: hash entry and child list. */
static void link_node(struct floorfs *fs, struct node *dir, struct node *n)
{
    if (fs->nentries + 1 > fs->nbuckets)
        hash_grow(fs);
    n->parent = dir->ino;
    size_t b = hash_of(n->parent, n->name, fs->nbuckets);
    n->hnext = fs->hash[b];
    fs->hash[b] = n;
    fs->nentries++;
    n->cprev = NULL;
    n->cnext = dir->children;
    if (dir->children != NULL)
        dir->children->cprev = n;
    dir->children = n;
    dir->nchildren++;
}

static void unlink_node(struct floorfs *fs, struct node *n)
{
    struct node *dir = node_get(fs, n->parent);
    struct node **pp = &fs->hash[hash_of(n->parent, n->name, fs->nbuckets)];
    while (*pp != n)
        pp = &(*pp)->hnext;
    *pp = n->hnext;
    fs->nentries--;
    if (n->cprev != NULL)
        n->cprev->cnext = n->cnext;
    else
        dir->children = n->cnext;
    if (n->cnext != NULL)
        n->cnext->cprev = n->cprev;
    dir->nchildren--;
    n->parent = 0;
}

static void free_if_unused(struct floorfs *fs, struct node *n)
{
    if (n->parent != 0 || n->nlookup > 0 || n->nopen > 0 ||
        n->ino == FUSE_ROOT_ID)
        return;
    fs->nodes[n->ino] = NULL;
    free(n->name);
    free(n->data);
    free(n);
}

static struct node *node_new(struct floorfs *fs, const char *name,
                             mode_t mode, const struct fuse_ctx *ctx)
{
    if (fs->nnodes == fs->nodes_cap) {
        size_t cap = fs->nodes_cap * 2;
        struct node **t;
        if (cap > NODES_MAX || (t = realloc(fs->nodes, cap * sizeof *t)) == NULL)
            return NULL;
        fs->nodes = t;
        fs->nodes_cap = cap;
    }
    struct node *n = calloc(1, sizeof *n);
    if (n == NULL || (n->name = strdup(name)) == NULL) {
        free(n);
        return NULL;
    }
    n->ino = fs->nnodes;
    n->mode = mode;
    n->uid = ctx != NULL ? ctx->uid : getuid();
    n->gid = ctx != NULL ? ctx->gid : getgid();
    clock_gettime(CLOCK_REALTIME, &n->mtime);
    n->atime = n->ctime = n->mtime;
    fs->nodes[fs->nnodes++] = n;
    return n;
}

static void fill_stat(const struct node *n, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = n->ino;
    st->st_mode = n->mode;
    st->st_nlink = S_ISDIR(n->mode) ? 2 : (n->parent != 0 ? 1 : 0);
    st->st_uid = n->uid;
    st->st_gid = n->gid;
    st->st_size = (off_t)(S_ISDIR(n->mode) ? n->nchildren : n->size);
    st->st_blksize = 4096;
    st->st_blocks = (blkcnt_t)((n->size + 511) / 512);
    st->st_atim = n->atime;
    st->st_mtim = n->mtime;
    st->st_ctim = n->ctime;
}

static void reply_entry(fuse_req_t req, struct node *n)
{
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    e.ino = n->ino;
    e.attr_timeout = TIMEOUT_S;
    e.entry_timeout = TIMEOUT_S;
    fill_stat(n, &e.attr);
    n->nlookup++;
    fuse_reply_entry(req, &e);
}

/* Checks that parent is a directory and name is free; returns the
 * directory or NULL with *err set. */
static struct node *dir_for_new(struct floorfs *fs, fuse_ino_t parent,
                                const char *name, int *err)
{
    struct node *dir = node_get(fs, parent);
    if (dir == NULL)
        return *err = ENOENT, NULL;
    if (!S_ISDIR(dir->mode))
        return *err = ENOTDIR, NULL;
    if (strlen(name) > 255)
        return *err = ENAMETOOLONG, NULL;
    if (hash_find(fs, parent, name) != NULL)
        return *err = EEXIST, NULL;
    return dir;
}

static void touch_dir(struct node *dir)
{
    clock_gettime(CLOCK_REALTIME, &dir->mtime);
    dir->ctime = dir->mtime;
}

/* Makes a node of mode under parent; replies ENOENT etc. on failure. */
static struct node *make_node(fuse_req_t req, fuse_ino_t parent,
                              const char *name, mode_t mode)
{
    struct floorfs *fs = fs_of(req);
    int err = 0;
    struct node *dir = dir_for_new(fs, parent, name, &err);
    struct node *n = NULL;
    if (dir != NULL && (n = node_new(fs, name, mode, fuse_req_ctx(req))) == NULL)
        err = ENOMEM;
    if (n == NULL) {
        fuse_reply_err(req, err);
        return NULL;
    }
    link_node(fs, dir, n);
    touch_dir(dir);
    return n;
}

/* Answers a new node's entry once it is durable (--sync). A failed sync
 * answers its errno; the node stays in memory (a bench tool). */
static void reply_durable_entry(fuse_req_t req, struct node *n)
{
    int err = durable(fs_of(req), n->ino);
    if (err != 0)
        fuse_reply_err(req, err);
    else
        reply_entry(req, n);
}

/* ------------------------------------------------------------------------
 * Operations
 * --------------------------------------------------------------------- */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct floorfs *fs = fs_of(req);
    struct node *dir = node_get(fs, parent);
    if (dir == NULL || !S_ISDIR(dir->mode)) {
        fuse_reply_err(req, dir == NULL ? ENOENT : ENOTDIR);
        return;
    }
    struct node *n = hash_find(fs, parent, name);
    if (n == NULL) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    reply_entry(req, n);
}

static void forget_one(struct floorfs *fs, fuse_ino_t ino, uint64_t nlookup)
{
    struct node *n = node_get(fs, ino);
    if (n == NULL)
        return;
    n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
    free_if_unused(fs, n);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    forget_one(fs_of(req), ino, nlookup);
    fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
                            struct fuse_forget_data *forgets)
{
    for (size_t i = 0; i < count; i++)
        forget_one(fs_of(req), forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
    (void)fi;
    struct node *n = node_get(fs_of(req), ino);
    if (n == NULL) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct stat st;
    fill_stat(n, &st);
    fuse_reply_attr(req, &st, TIMEOUT_S);
}

static int resize(struct node *n, size_t size)
{
    if (size > FILE_MAX_BYTES)
        return EFBIG;
    if (size > n->cap) {
        size_t cap = n->cap ? n->cap : 64;
        while (cap < size)
            cap *= 2;
        char *p = realloc(n->data, cap);
        if (p == NULL)
            return ENOMEM;
        n->data = p;
        n->cap = cap;
    }
    if (size > n->size)
        memset(n->data + n->size, 0, size - n->size);
    n->size = size;
    return 0;
}

static void set_time(struct timespec *t, int now_flag, const struct timespec *v)
{
    if (now_flag)
        clock_gettime(CLOCK_REALTIME, t);
    else
        *t = *v;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                       int to_set, struct fuse_file_info *fi)
{
    struct node *n = node_get(fs_of(req), ino);
    if (n == NULL) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
        int err = S_ISDIR(n->mode) ? EISDIR : resize(n, (size_t)attr->st_size);
        if (err != 0) {
            fuse_reply_err(req, err);
            return;
        }
        clock_gettime(CLOCK_REALTIME, &n->mtime);
    }
    if (to_set & FUSE_SET_ATTR_MODE)
        n->mode = (n->mode & S_IFMT) | (attr->st_mode & 07777);
    if (to_set & FUSE_SET_ATTR_UID)
        n->uid = attr->st_uid;
    if (to_set & FUSE_SET_ATTR_GID)
        n->gid = attr->st_gid;
    if (to_set & FUSE_SET_ATTR_ATIME)
        set_time(&n->atime, to_set & FUSE_SET_ATTR_ATIME_NOW, &attr->st_atim);
    if (to_set & FUSE_SET_ATTR_MTIME)
        set_time(&n->mtime, to_set & FUSE_SET_ATTR_MTIME_NOW, &attr->st_mtim);
    clock_gettime(CLOCK_REALTIME, &n->ctime);
    int err = 0;
    if (fi != NULL)
        n->dirty = 1;         /* ftruncate: committed at close, as zkfs */
    else
        err = durable(fs_of(req), ino);
    if (err != 0)
        fuse_reply_err(req, err);
    else
        op_getattr(req, ino, NULL);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
                     mode_t mode, dev_t rdev)
{
    (void)rdev;
    if (!S_ISREG(mode)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    struct node *n = make_node(req, parent, name, S_IFREG | (mode & 07777));
    if (n != NULL)
        reply_durable_entry(req, n);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
                     mode_t mode)
{
    struct node *n = make_node(req, parent, name, S_IFDIR | (mode & 07777));
    if (n != NULL)
        reply_durable_entry(req, n);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                      mode_t mode, struct fuse_file_info *fi)
{
    struct node *n = make_node(req, parent, name, S_IFREG | (mode & 07777));
    if (n == NULL)
        return;
    /* --sync: O_EXCL decides the winner now; without it zkfs commits the
     * new file with its data at close. */
    int err = fi->flags & O_EXCL ? durable(fs_of(req), n->ino) : 0;
    if (err != 0) {
        fuse_reply_err(req, err);
        return;
    }
    n->dirty = !(fi->flags & O_EXCL);
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    e.ino = n->ino;
    e.attr_timeout = TIMEOUT_S;
    e.entry_timeout = TIMEOUT_S;
    fill_stat(n, &e.attr);
    n->nlookup++;
    n->nopen++;
    fi->fh = n->ino;
    fi->keep_cache = 1;
    if (fuse_reply_create(req, &e, fi) != 0) {
        n->nlookup--;         /* the kernel never got it */
        n->nopen--;
    }
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct node *n = node_get(fs_of(req), ino);
    if (n == NULL) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (S_ISDIR(n->mode)) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    if (fi->flags & O_TRUNC) {
        n->dirty = 1;
        n->size = 0;
        clock_gettime(CLOCK_REALTIME, &n->mtime);
        n->ctime = n->mtime;
    }
    fi->fh = ino;
    fi->keep_cache = 1;
    if (fs_of(req)->direct_io) {
        /* As zkfs answers a read-only open (fs/file.c). */
        fi->keep_cache = 0;
        fi->direct_io = 1;
        fi->noflush = (fi->flags & O_ACCMODE) == O_RDONLY;
    }
    n->nopen++;
    if (fuse_reply_open(req, fi) != 0)
        n->nopen--;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    (void)fi;
    struct node *n = node_get(fs_of(req), ino);
    if (n == NULL) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (off < 0 || (size_t)off >= n->size) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    size_t len = n->size - (size_t)off;
    fuse_reply_buf(req, n->data + off, len < size ? len : size);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
                     size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)fi;
    struct node *n = node_get(fs_of(req), ino);
    if (n == NULL) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    size_t end = (size_t)off + size;
    int err = (off < 0 || end < size) ? EINVAL : 0;
    if (err == 0 && end > n->size)
        err = resize(n, end);
    if (err != 0) {
        fuse_reply_err(req, err);
        return;
    }
    memcpy(n->data + off, buf, size);
    n->dirty = 1;
    clock_gettime(CLOCK_REALTIME, &n->mtime);
    n->ctime = n->mtime;
    fuse_reply_write(req, size);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)fi;
    fuse_reply_err(req, durable_if_dirty(fs_of(req), ino));
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
    (void)fi;
    struct node *n = node_get(fs_of(req), ino);
    if (n != NULL && n->nopen > 0) {
        n->nopen--;
        free_if_unused(fs_of(req), n);
    }
    fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                     struct fuse_file_info *fi)
{
    (void)datasync;
    (void)fi;
    fuse_reply_err(req, durable_if_dirty(fs_of(req), ino));
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name,
                         int want_dir)
{
    struct floorfs *fs = fs_of(req);
    struct node *n = hash_find(fs, parent, name);
    int err = 0;
    if (n == NULL)
        err = ENOENT;
    else if (want_dir && !S_ISDIR(n->mode))
        err = ENOTDIR;
    else if (!want_dir && S_ISDIR(n->mode))
        err = EISDIR;
    else if (want_dir && n->nchildren > 0)
        err = ENOTEMPTY;
    if (err == 0) {
        touch_dir(node_get(fs, parent));
        unlink_node(fs, n);
        clock_gettime(CLOCK_REALTIME, &n->ctime);
        err = durable(fs, n->ino);
        free_if_unused(fs, n);
    }
    fuse_reply_err(req, err);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    remove_entry(req, parent, name, 0);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    remove_entry(req, parent, name, 1);
}

static int rename_check(struct floorfs *fs, struct node *n, struct node *dst,
                        struct node *newdir, unsigned int flags)
{
    if (n == NULL || newdir == NULL)
        return ENOENT;
    if (!S_ISDIR(newdir->mode))
        return ENOTDIR;
    if (flags & ~(unsigned int)RENAME_NOREPLACE)
        return EINVAL;
    /* Moving a directory below itself. */
    for (struct node *a = newdir; a != NULL && a->ino != FUSE_ROOT_ID;
         a = node_get(fs, a->parent))
        if (a == n)
            return EINVAL;
    if (dst == NULL || dst == n)
        return 0;
    if (flags & RENAME_NOREPLACE)
        return EEXIST;
    if (S_ISDIR(dst->mode) != S_ISDIR(n->mode))
        return S_ISDIR(dst->mode) ? EISDIR : ENOTDIR;
    if (S_ISDIR(dst->mode) && dst->nchildren > 0)
        return ENOTEMPTY;
    return 0;
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                      fuse_ino_t newparent, const char *newname,
                      unsigned int flags)
{
    struct floorfs *fs = fs_of(req);
    struct node *n = hash_find(fs, parent, name);
    struct node *newdir = node_get(fs, newparent);
    struct node *dst = newdir != NULL ? hash_find(fs, newparent, newname) : NULL;
    int err = rename_check(fs, n, dst, newdir, flags);
    char *nm = NULL;
    if (err == 0 && dst != n && (nm = strdup(newname)) == NULL)
        err = ENOMEM;
    if (err != 0 || dst == n) {
        fuse_reply_err(req, err);
        return;
    }
    if (dst != NULL) {
        unlink_node(fs, dst);
        free_if_unused(fs, dst);
    }
    touch_dir(node_get(fs, parent));
    unlink_node(fs, n);
    free(n->name);
    n->name = nm;
    link_node(fs, newdir, n);
    touch_dir(newdir);
    clock_gettime(CLOCK_REALTIME, &n->ctime);
    fuse_reply_err(req, durable(fs, n->ino));
}

static int dirbuf_add(fuse_req_t req, struct dirbuf *b, const char *name,
                      const struct node *n)
{
    size_t need = fuse_add_direntry(req, NULL, 0, name, NULL, 0);
    if (b->size + need > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->size + need)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    struct stat st;
    memset(&st, 0, sizeof st);
    st.st_ino = n->ino;
    st.st_mode = n->mode;
    b->size += need;
    fuse_add_direntry(req, b->p + b->size - need, need, name, &st,
                      (off_t)b->size);
    return 0;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
    struct floorfs *fs = fs_of(req);
    struct node *dir = node_get(fs, ino);
    if (dir == NULL || !S_ISDIR(dir->mode)) {
        fuse_reply_err(req, dir == NULL ? ENOENT : ENOTDIR);
        return;
    }
    struct dirbuf *b = calloc(1, sizeof *b);
    struct node *up = node_get(fs, dir->parent);
    int err = b == NULL ? ENOMEM : dirbuf_add(req, b, ".", dir);
    if (err == 0)
        err = dirbuf_add(req, b, "..", up != NULL ? up : dir);
    for (struct node *c = dir->children; err == 0 && c != NULL; c = c->cnext)
        err = dirbuf_add(req, b, c->name, c);
    if (err != 0) {
        if (b != NULL)
            free(b->p);
        free(b);
        fuse_reply_err(req, err);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)b;
    fi->cache_readdir = fs->cache_readdir;
    fi->keep_cache = fs->cache_readdir;
    if (fuse_reply_open(req, fi) != 0) {
        free(b->p);
        free(b);
    }
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
                       off_t off, struct fuse_file_info *fi)
{
    (void)ino;
    struct dirbuf *b = (struct dirbuf *)(uintptr_t)fi->fh;
    if (off < 0 || (size_t)off >= b->size) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    /* Entries were laid out with their end offsets, so any offset the
     * kernel hands back starts an entry. A slice may end inside an entry:
     * the kernel drops the partial one and resumes from the last whole
     * entry's offset (as libfuse's hello_ll does). */
    size_t start = (size_t)off;
    size_t end = start + size < b->size ? start + size : b->size;
    fuse_reply_buf(req, b->p + start, end - start);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
                          struct fuse_file_info *fi)
{
    (void)ino;
    struct dirbuf *b = (struct dirbuf *)(uintptr_t)fi->fh;
    free(b->p);
    free(b);
    fuse_reply_err(req, 0);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                        size_t size)
{
    (void)ino;
    (void)name;
    (void)size;
    fuse_reply_err(req, ENODATA);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    (void)ino;
    if (size == 0)
        fuse_reply_xattr(req, 0);
    else
        fuse_reply_buf(req, NULL, 0);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                        const char *value, size_t size, int flags)
{
    (void)ino;
    (void)name;
    (void)value;
    (void)size;
    (void)flags;
    fuse_reply_err(req, ENOTSUP);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    (void)ino;
    struct statvfs sv;
    memset(&sv, 0, sizeof sv);
    sv.f_bsize = sv.f_frsize = 4096;
    sv.f_blocks = sv.f_bfree = sv.f_bavail = 1u << 20;
    sv.f_files = NODES_MAX;
    sv.f_ffree = sv.f_favail = NODES_MAX - fs_of(req)->nnodes;
    sv.f_namemax = 255;
    fuse_reply_statfs(req, &sv);
}

static const struct fuse_lowlevel_ops floor_ops = {
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .rename = op_rename,
    .create = op_create,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .release = op_release,
    .fsync = op_fsync,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .setxattr = op_setxattr,
    .statfs = op_statfs,
};

/* ------------------------------------------------------------------------
 * Start-up
 * --------------------------------------------------------------------- */

static int fs_init(struct floorfs *fs)
{
    memset(fs, 0, sizeof *fs);
    fs->nodes_cap = 1024;
    fs->nbuckets = HASH_INIT;
    fs->nodes = calloc(fs->nodes_cap, sizeof *fs->nodes);
    fs->hash = calloc(fs->nbuckets, sizeof *fs->hash);
    if (fs->nodes == NULL || fs->hash == NULL)
        return -1;
    fs->nnodes = FUSE_ROOT_ID;        /* inode 0 is never used */
    struct node *root = node_new(fs, "", S_IFDIR | 0755, NULL);
    if (root == NULL)
        return -1;
    root->nlookup = 1;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: floorfs [--cache-readdir] [--no-xattr] [--epoll] "
               "[--direct-io] [--sync DIR] [-o FUSEOPTS] MOUNTPOINT\n"
               "  an in-memory FUSE filesystem, the benchmark floor; stays in\n"
               "  the foreground until unmounted or SIGINT/SIGTERM\n");
}

/* --sync DIR: the log, written with zeros once so that an fdatasync has
 * no block allocation to make durable (as zkfs's log segments). */
static int sync_log_open(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/floorfs-sync.log", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    /* Unlinked once written: the open descriptor keeps it, and nothing
     * is left in DIR when floorfs exits. */
    if (fd < 0 || bench_prewrite(fd, SYNC_LOG_BYTES) != 0 ||
        unlink(path) != 0) {
        fprintf(stderr, "floorfs: --sync %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* --epoll: zkfs's way of waiting for requests (see the top). Returns
 * like fuse_session_loop. */
static int epoll_loop(struct fuse_session *se)
{
    int fd = fuse_session_fd(se), rc = 0;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    struct fuse_buf buf = {0};
    if (ep < 0 || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        perror("floorfs: epoll");
        rc = -1;
    }
    while (rc == 0 && !fuse_session_exited(se)) {
        if (epoll_wait(ep, &ev, 1, -1) < 0 && errno != EINTR) {
            rc = -errno;
            break;
        }
        for (;;) {
            int n = fuse_session_receive_buf(se, &buf);
            if (n == -EAGAIN || n == -EINTR)
                break;
            if (n <= 0) {           /* 0 or -ENODEV: unmounted */
                rc = n == -ENODEV ? 0 : n;
                fuse_session_exit(se);
                break;
            }
            fuse_session_process_buf(se, &buf);
        }
    }
    free(buf.mem);
    if (ep >= 0)
        close(ep);
    return rc;
}

int main(int argc, char **argv)
{
    const char *mnt = NULL, *extra = NULL;
    struct floorfs fs;
    int cache_readdir = 0, use_epoll = 0, direct_io = 0;
    const char *sync_dir = NULL;
    struct fuse_lowlevel_ops ops = floor_ops;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--cache-readdir") == 0)
            cache_readdir = 1;
        else if (strcmp(argv[i], "--epoll") == 0)
            use_epoll = 1;
        else if (strcmp(argv[i], "--direct-io") == 0)
            direct_io = 1;
        else if (strcmp(argv[i], "--no-xattr") == 0)
            ops.getxattr = NULL, ops.listxattr = NULL, ops.setxattr = NULL;
        else if (strcmp(argv[i], "--sync") == 0 && i + 1 < argc)
            sync_dir = argv[++i];
        else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
            extra = argv[++i];
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return usage(stdout), 0;
        else if (argv[i][0] != '-' && mnt == NULL)
            mnt = argv[i];
        else
            return usage(stderr), 2;
    }
    if (mnt == NULL)
        return usage(stderr), 2;
    if (fs_init(&fs) != 0) {
        fprintf(stderr, "floorfs: out of memory\n");
        return 1;
    }
    fs.cache_readdir = cache_readdir;
    fs.direct_io = direct_io;
    fs.sync_fd = sync_dir != NULL ? sync_log_open(sync_dir) : -1;
    if (sync_dir != NULL && fs.sync_fd < 0)
        return 1;

    char optbuf[1024];
    snprintf(optbuf, sizeof optbuf, "default_permissions,fsname=floorfs,"
             "subtype=floorfs%s%s", extra ? "," : "", extra ? extra : "");
    char *fargv[] = { argv[0], (char *)"-o", optbuf, NULL };
    struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
    int rc = 1;
    struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, &fs);
    if (se == NULL)
        goto fail_args;
    if (fuse_set_signal_handlers(se) != 0)
        goto fail_session;
    if (fuse_session_mount(se, mnt) != 0)
        goto fail_signals;
    rc = (use_epoll ? epoll_loop(se) : fuse_session_loop(se)) < 0 ? 1 : 0;
    fuse_session_unmount(se);
fail_signals:
    fuse_remove_signal_handlers(se);
fail_session:
    fuse_session_destroy(se);
fail_args:
    fuse_opt_free_args(&args);
    return rc;
}
