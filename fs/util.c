/*
 * util.c — small helpers the FUSE handlers share: struct stat from a znode
 * stat, entry replies that keep the lookup-count map right, znode paths of
 * (parent, name) pairs, one-op proposals, error mapping, the caller's
 * "host:pid" and a default_permissions-like check for the control file.
 *
 * Loop thread only (they read the store, which any thread may, but the
 * lookup-count map is the loop's).
 */
#include "fs_int.h"
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* Fills a struct stat from a znode stat. Times: st_mtime is the last data
 * or children change, st_ctime the last change of any kind, st_atime =
 * st_mtime (no access times: reads are not transactions). */
void zk__fs_fill_attr(const struct zk_fs *fs, const struct zk_stat *st,
                      struct stat *out)
{
    (void)fs;
    memset(out, 0, sizeof(*out));
    out->st_ino = st->ino;
    out->st_mode = (st->kind == ZK_KIND_DIR ? S_IFDIR : S_IFREG) |
                   (st->mode & 07777);
    out->st_nlink = st->kind == ZK_KIND_DIR ? 2 + st->num_children : 1;
    out->st_uid = st->uid;
    out->st_gid = st->gid;
    out->st_size = st->data_length;
    out->st_blksize = 4096;
    out->st_blocks = ((blkcnt_t)st->data_length + 511) / 512;
    out->st_mtim = zk__fs_ms_time(st->cmtime_ms);
    out->st_ctim = zk__fs_ms_time(st->chtime_ms);
    out->st_atim = out->st_mtim;
}

/* Times are stored as 64-bit milliseconds since the epoch, two's
 * complement: a time set before 1970 (`touch -d 1960-01-01`, tar) is kept.
 * Seconds beyond what milliseconds can hold are clamped to the range, as
 * the kernel clamps times to a local file system's range. */
uint64_t zk__fs_time_ms(const struct timespec *ts)
{
    const int64_t max_s = INT64_MAX / 1000 - 1;
    int64_t sec = ts->tv_sec, ms;
    if (sec > max_s)
        ms = max_s * 1000 + 999;
    else if (sec < -max_s)
        ms = -max_s * 1000;
    else
        ms = sec * 1000 + ts->tv_nsec / 1000000;
    return (uint64_t)ms;
}

struct timespec zk__fs_ms_time(uint64_t stored)
{
    int64_t ms = (int64_t)stored, sec = ms / 1000, rem = ms % 1000;
    if (rem < 0) {              /* floor: -1 ms is 1969-12-31 23:59:59.999 */
        rem += 1000;
        sec--;
    }
    return (struct timespec){.tv_sec = (time_t)sec,
                             .tv_nsec = (long)rem * 1000000L};
}

/* The control file's attributes: a 0666 regular file of size 0 owned by
 * the daemon's user. */
void zk__fs_special_attr(const struct zk_fs *fs, uint64_t ino, mode_t mode,
                         struct timespec when, struct stat *out)
{
    memset(out, 0, sizeof(*out));
    out->st_ino = ino;
    out->st_mode = S_IFREG | mode;
    out->st_nlink = 1;
    out->st_uid = fs->uid;
    out->st_gid = fs->gid;
    out->st_blksize = 4096;
    out->st_atim = out->st_mtim = out->st_ctim = when;
}

void zk__fs_ctl_attr(const struct zk_fs *fs, struct stat *out)
{
    zk__fs_special_attr(fs, ZK_CTL_INO, 0666, fs->started, out);
}

/* Replies an entry for st and counts the lookup the kernel now holds.
 * Returns fuse_reply_entry's result. */
int zk__fs_reply_entry(struct zk_fs *fs, fuse_req_t req,
                       const struct zk_stat *st, double entry_timeout)
{
    return zk__fs_reply_entry_t(fs, req, st, entry_timeout,
                                ZK__FS_TIMEOUT_S);
}

/* The same with an attribute timeout. */
void zk__fs_entry_param(const struct zk_fs *fs, const struct zk_stat *st,
                        double entry_timeout, double attr_timeout,
                        struct fuse_entry_param *e)
{
    memset(e, 0, sizeof(*e));
    /* A file created here provisionally (prov.c) and committed since may
     * still be held by the kernel under its provisional nodeid: every
     * entry names that one then, so that the kernel keeps ONE inode per
     * file (two would make rename(a, a) a rename between two inodes, which
     * the kernel refuses with EACCES in a directory the caller cannot
     * write; seed 70714). Requests on it reach st->ino (zk__fs_ino). */
    uint64_t alias = zk__fs_inomap_alias(&fs->inomap, st->ino);
    e->ino = alias && ZK__FS_IS_PROV(alias) ? alias : st->ino;
    e->generation = 1;
    e->entry_timeout = entry_timeout;
    /* While st->ino is open for writing here, its attributes are never
     * cached (as in GETATTR's reply, zk__fs_writer_attr): an entry (a
     * LOOKUP, a READDIRPLUS of its directory) must not give the kernel
     * the committed size for long, or the writer's lseek(SEEK_END) would
     * use it instead of asking through its descriptor. */
    e->attr_timeout = zk__fs_inomap_writers(&fs->inomap, st->ino)
                          ? 0 : attr_timeout;
    zk__fs_fill_attr(fs, st, &e->attr);
}

void zk__fs_kernel_entry(struct zk_fs *fs, int user, uint64_t ino)
{
    zk__fs_inomap_add(&fs->inomap, ino, 1);
    if (user)
        zk__fs_inomap_mark_user(&fs->inomap, ino);
}

int zk__fs_reply_entry_t(struct zk_fs *fs, fuse_req_t req,
                         const struct zk_stat *st, double entry_timeout,
                         double attr_timeout)
{
    struct fuse_entry_param e;
    int user = zk__fs_echo_marks(fs, req);
    /* An entry given only to the echo thread's replays expires at once
     * (entry timeout 0): the kernel keeps the dentry, but the next walk
     * through it by any process asks again with a LOOKUP (revalidation),
     * which marks the node as that process's. So changes under a
     * directory nobody on this mount walked into are not replayed
     * (echo.c, watched()), and a process that does walk to a node is
     * seen doing it, also to a file a replay made. */
    if (!user && !zk__fs_inomap_user(&fs->inomap, st->ino))
        entry_timeout = 0.0;
    zk__fs_entry_param(fs, st, entry_timeout, attr_timeout, &e);
    int rc = fuse_reply_entry(req, &e);
    if (rc == 0)
        zk__fs_kernel_entry(fs, user, e.ino);
    return rc;
}

/* Writes the znode path of parent's child name into buf. Errors: from
 * zk_store_path (-ENOENT: parent gone), -ENAMETOOLONG. */
int zk__fs_child_path(struct zk_fs *fs, uint64_t parent, const char *name,
                      char *buf, size_t size)
{
    int rc = zk_store_path(fs->store, parent, buf, size);
    if (rc)
        return rc == -ERANGE ? -ENAMETOOLONG : rc;
    size_t n = strlen(buf);
    int w = snprintf(buf + n, size - n, "%s%s", n == 1 ? "" : "/", name);
    if (w < 0 || (size_t)w >= size - n)
        return -ENAMETOOLONG;
    return 0;
}

/* Checks a name about to be created (or renamed to) under parent:
 * -ENAMETOOLONG, -EINVAL for what zk_name_check refuses, -EPERM for the
 * control file's name at the root. */
int zk__fs_check_new_name(uint64_t parent, const char *name)
{
    size_t len = strlen(name);
    if (len > ZK_NAME_MAX)
        return -ENAMETOOLONG;
    int rc = zk_name_check(name, len);
    if (rc)
        return rc;
    if (parent == ZK_INO_ROOT && (strcmp(name, ZK_CTL_NAME) == 0 ||
                                  strcmp(name, ZK_METRICS_NAME) == 0))
        return -EPERM;
    return 0;
}

/* Proposes a transaction of one op, stamped "now" by the replica. */
int zk__fs_propose1(struct zk_fs *fs, const struct zk_op *op,
                    zk_replica_done_cb cb, void *arg)
{
    struct zk_txn txn = {.time_ms = 0, .nops = 1, .ops = (struct zk_op *)op};
    if (fs->stopping || !fs->replica)
        return -ESHUTDOWN;
    return zk__fs_propose(fs, &txn, cb, arg);
}

/* The error a caller should see for a proposal's answer: the commit's
 * error, else the transaction's; as a negative errno. */
int zk__fs_result_err(int err, const struct zk_apply_result *res)
{
    if (err == 0 && res)
        err = res->err;
    return zk_err_to_errno(err);
}

/* The error for an inode the kernel named that the store no longer has:
 * ESTALE, so that the VFS looks the path up again (once) instead of
 * failing an open or stat that raced with a rename or delete. */
int zk__fs_stale(int err)
{
    return err == -ENOENT ? -ESTALE : err;
}

/* Replies a (negative or positive) errno or project code. */
void zk__fs_reply_errno(fuse_req_t req, int err)
{
    err = zk_err_to_errno(err);
    fuse_reply_err(req, err < 0 ? -err : err);
}

/* "host:pid" of the process a request came from: fuse_req_ctx()->pid is
 * the calling thread, /proc/TID/status names its thread group. */
pid_t zk__fs_tgid(pid_t tid)
{
    long pid = tid;
    char path[64], line[128];
    snprintf(path, sizeof(path), "/proc/%ld/status", (long)tid);
    FILE *f = tid > 0 ? fopen(path, "r") : NULL;
    if (f) {
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "Tgid: %ld", &pid) == 1)
                break;
        fclose(f);
    }
    return (pid_t)pid;
}

void zk__fs_owner_of(struct zk_fs *fs, pid_t pid, char *buf, size_t size)
{
    snprintf(buf, size, "%s:%ld", fs->host, (long)pid);
}

void zk__fs_caller_owner(struct zk_fs *fs, pid_t tid, char *buf,
                         size_t size)
{
    zk__fs_owner_of(fs, zk__fs_tgid(tid), buf, size);
}

/* Copies the requester's identity, supplementary groups included. */
void zk__fs_cred_from_req(fuse_req_t req, struct zk__fs_cred *out)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    out->uid = ctx->uid;
    out->gid = ctx->gid;
    out->pid = ctx->pid;
    int n = fuse_req_getgroups(req, ZK__FS_GROUPS_MAX, out->groups);
    out->ngroups = n < 0 ? 0 : n > ZK__FS_GROUPS_MAX ? ZK__FS_GROUPS_MAX : n;
}

static int in_group(const struct zk__fs_cred *c, gid_t gid)
{
    if (c->gid == gid)
        return 1;
    for (int i = 0; i < c->ngroups; i++)
        if (c->groups[i] == gid)
            return 1;
    return 0;
}

/* What the kernel's default_permissions would say about c asking for mask
 * (R_OK|W_OK|X_OK) on st: 0 or -EACCES. Root passes, except that execute
 * on a file needs some x bit. */
int zk__fs_may(const struct zk__fs_cred *c, const struct zk_stat *st,
               int mask)
{
    unsigned m = st->mode;
    if (c->uid == 0) {
        if ((mask & 1) && st->kind != ZK_KIND_DIR && !(m & 0111))
            return -EACCES;
        return 0;
    }
    unsigned bits = c->uid == st->uid ? (m >> 6) & 7
                    : in_group(c, st->gid) ? (m >> 3) & 7
                                           : m & 7;
    return ((unsigned)mask & ~bits) ? -EACCES : 0;
}

/* The user.zk.* names (without prefix), in ZooKeeper's Stat order. */
const char *const zk__fs_zkstat_keys[] = {
    "czxid", "mzxid", "pzxid", "ctime", "mtime", "version", "cversion",
    "aversion", "ephemeralOwner", "dataLength", "numChildren",
};
const size_t zk__fs_zkstat_nkeys = ZK_ARRAY_LEN(zk__fs_zkstat_keys);

/* Formats one ZooKeeper stat field as a decimal string into buf. Returns
 * its length, or -ENODATA for an unknown key. */
int zk__fs_zkstat_value(const struct zk_stat *st, const char *key,
                        char *buf, size_t size)
{
    uint64_t u = 0;
    int64_t s = 0;
    int is_signed = 0;

    if (!strcmp(key, "czxid")) u = st->czxid;
    else if (!strcmp(key, "mzxid")) u = st->mzxid;
    else if (!strcmp(key, "pzxid")) u = st->pzxid;
    else if (!strcmp(key, "ctime")) u = st->ctime_ms;
    else if (!strcmp(key, "mtime")) u = st->mtime_ms;
    else if (!strcmp(key, "ephemeralOwner")) u = st->ephemeral_owner;
    else if (!strcmp(key, "dataLength")) u = st->data_length;
    else if (!strcmp(key, "numChildren")) u = st->num_children;
    else {
        is_signed = 1;
        if (!strcmp(key, "version")) s = st->version;
        else if (!strcmp(key, "cversion")) s = st->cversion;
        else if (!strcmp(key, "aversion")) s = st->aversion;
        else return -ENODATA;
    }
    int n = is_signed ? snprintf(buf, size, "%" PRId64, s)
                      : snprintf(buf, size, "%" PRIu64, u);
    return n;
}

int zk__fs_deletion_of(struct zk_fs *fs, uint64_t ino, struct zk_change *c)
{
    struct zk_stat st;
    char path[ZK_PATH_MAX];
    int rc = zk_store_getattr(fs->store, ino, &st);

    if (rc == 0)
        rc = zk_store_path(fs->store, ino, path, sizeof(path));
    if (rc)
        return rc;
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    size_t n = strlen(name);
    if (n >= sizeof(c->name))
        return -ENAMETOOLONG;
    memset(c, 0, sizeof(*c));
    c->kind = ZK_CHANGE_DELETE;
    c->node_kind = st.kind;
    c->ino = ino;
    c->parent = st.parent;
    c->gone = st;
    memcpy(c->name, name, n + 1);
    return 0;
}
