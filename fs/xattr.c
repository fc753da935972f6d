/*
 * xattr.c — extended attributes: what ZooKeeper says that a file cannot.
 *
 *   user.zk.<field>      ZooKeeper's Stat (czxid mzxid pzxid ctime mtime
 *                        version cversion aversion ephemeralOwner
 *                        dataLength numChildren), decimal, read-only.
 *   user.zkfs.name       the node's full znode path (read-only; works on an
 *                        open descriptor, so a sequential child's real name
 *                        is found with fgetxattr).
 *   user.zkfs.owner      an ephemeral's holder "host:pid" (ENODATA if
 *                        persistent; read-only).
 *   user.zkfs.data       a directory znode's own data (read/write).
 *   user.zkfs.children   a directory's children kind: "", "ephemeral",
 *                        "sequential" or "ephemeral,sequential".
 * Other user.* names: ENODATA to read, ENOTSUP to write. The kernel checks
 * write permission before a set or remove (default_permissions).
 */
#include "fs_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define ZK_PREFIX    "user.zk."
#define ZKFS_NAME    "user.zkfs.name"
#define ZKFS_OWNER   "user.zkfs.owner"
#define ZKFS_DATA    "user.zkfs.data"
#define ZKFS_CHILD   "user.zkfs.children"

static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static const char *children_value(uint32_t flags)
{
    static const char *const v[] = {"", "ephemeral", "sequential",
                                    "ephemeral,sequential"};
    return v[flags & 3];
}

/* Parses a user.zkfs.children value (a trailing newline or NUL allowed). */
static int children_parse(const char *value, size_t size, uint32_t *out)
{
    char buf[64];
    while (size && (value[size - 1] == '\n' || value[size - 1] == '\0'))
        size--;
    if (size >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, value, size);
    buf[size] = '\0';
    uint32_t flags = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "ephemeral") == 0)
            flags |= ZK_CHILDREN_EPHEMERAL;
        else if (strcmp(t, "sequential") == 0)
            flags |= ZK_CHILDREN_SEQUENTIAL;
        else
            return -EINVAL;
    }
    *out = flags;
    return 0;
}

static void reply_value(fuse_req_t req, const void *value, size_t len,
                        size_t size)
{
    if (size == 0)
        fuse_reply_xattr(req, len);
    else if (size < len)
        fuse_reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, value, len);
}

/* Reads one of our names into a new buffer (*out, freed by the caller). */
static int xattr_value(struct zk_fs *fs, const struct zk_stat *st,
                       const char *name, uint8_t **out, size_t *len)
{
    char *buf = malloc(ZK_PATH_MAX);
    int rc = 0;
    if (!buf)
        return -ENOMEM;
    if (starts(name, ZK_PREFIX)) {
        rc = zk__fs_zkstat_value(st, name + strlen(ZK_PREFIX), buf, 64);
        *len = rc < 0 ? 0 : (size_t)rc;
    } else if (!strcmp(name, ZKFS_NAME)) {
        rc = zk_store_path(fs->store, st->ino, buf, ZK_PATH_MAX);
        *len = strlen(buf);
    } else if (!strcmp(name, ZKFS_OWNER)) {
        rc = zk_store_owner(fs->store, st->ino, buf, ZK_PATH_MAX);
        *len = rc == 0 ? strlen(buf) : 0;
    } else if (!strcmp(name, ZKFS_CHILD) && st->kind == ZK_KIND_DIR) {
        *len = (size_t)snprintf(buf, 64, "%s",
                                children_value(st->children_flags));
    } else if (!strcmp(name, "user.zkfs.lock.token")) {
        rc = zk__fs_lock_token(fs, st->ino, buf, 64);     /* lock.c */
        *len = rc == 0 ? strlen(buf) : 0;
    } else if (!strcmp(name, "user.zkfs.locks")) {
        free(buf);
        return zk__fs_lock_list(fs, st->ino, out, len);    /* lock.c */
    } else if (!strcmp(name, ZKFS_DATA) && st->kind == ZK_KIND_DIR) {
        free(buf);
        buf = NULL;
        rc = zk_store_read(fs->store, st->ino, out, len, NULL);
        return rc;
    } else {
        rc = -ENODATA;
    }
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = (uint8_t *)buf;
    return 0;
}

void zk__fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                     size_t size)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    struct zk_stat st;
    uint8_t *val = NULL;
    size_t len = 0;

    struct zk__fs_prov *pv = zk__fs_prov_of(fs, ino);
    if (pv && strncmp(name, "user.zk", 7) != 0) {
        /* Not one of ours (the kernel asks for security.capability at
         * every write): no need to commit the create for that. */
        fuse_reply_err(req, ENODATA);
        return;
    }
    if (pv) {
        zk__fs_prov_defer(fs, pv, &(struct zk__fs_defer){
            .req = req, .op = ZK__DEFER_GETXATTR, .ino = ino, .name = name,
            .size = size});
        return;
    }
    ino = zk__fs_ino(fs, ino);
    int rc = ino == ZK_CTL_INO ? -ENODATA
                               : zk_store_getattr(fs->store, ino, &st);
    if (rc == 0 && zk__fs_hidden(fs, &st) && !zk__fs_is_echo(fs, req))
        rc = ZK_ESESSION;       /* its session was given up (lease.c) */
    if (rc == 0 && !zk__fs_is_echo(fs, req))
        rc = zk__fs_lock_check(fs, ino);    /* lock.c: the same for locks */
    if (rc == 0)
        rc = xattr_value(fs, &st, name, &val, &len);
    if (rc)
        zk__fs_reply_errno(req, rc);
    else
        reply_value(req, val, len, size);
    free(val);
}

static size_t list_add(char *buf, size_t pos, const char *a, const char *b)
{
    int n = snprintf(buf + pos, 64, "%s%s", a, b);
    return pos + (size_t)n + 1;    /* keep the NUL */
}

void zk__fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    struct zk_stat st;
    char buf[1024];
    size_t pos = 0;

    if (ino == ZK_CTL_INO) {
        reply_value(req, "", 0, size);
        return;
    }
    struct zk__fs_prov *pv = zk__fs_prov_of(fs, ino);
    if (pv) {
        zk__fs_prov_defer(fs, pv, &(struct zk__fs_defer){
            .req = req, .op = ZK__DEFER_LISTXATTR, .ino = ino, .size = size});
        return;
    }
    ino = zk__fs_ino(fs, ino);
    int rc = zk_store_getattr(fs->store, ino, &st);
    if (rc) {
        zk__fs_reply_errno(req, rc);
        return;
    }
    for (size_t i = 0; i < zk__fs_zkstat_nkeys; i++)
        pos = list_add(buf, pos, ZK_PREFIX, zk__fs_zkstat_keys[i]);
    pos = list_add(buf, pos, ZKFS_NAME, "");
    if (st.ephemeral_owner)
        pos = list_add(buf, pos, ZKFS_OWNER, "");
    if (st.kind == ZK_KIND_DIR) {
        pos = list_add(buf, pos, ZKFS_CHILD, "");
        pos = list_add(buf, pos, ZKFS_DATA, "");
    }
    reply_value(req, buf, pos, size);
}

struct xreq {
    struct zk_fs *fs;
    fuse_req_t req;
};

static void xattr_done(void *arg, int err, const struct zk_apply_result *res)
{
    struct xreq *x = arg;
    zk__fs_echo_local(x->fs, res);
    zk__fs_reply_errno(x->req, zk__fs_result_err(err, res));
    free(x);
}

/* Builds the op a set (value != NULL) or remove of name on st asks for. */
static int xattr_op(const struct zk_stat *st, const char *name,
                    const char *value, size_t size, struct zk_op *op)
{
    int is_dir = st->kind == ZK_KIND_DIR;
    if (starts(name, ZK_PREFIX) || !strcmp(name, ZKFS_NAME) ||
        !strcmp(name, ZKFS_OWNER))
        return -EPERM;
    if (!strcmp(name, ZKFS_CHILD)) {
        if (!is_dir)
            return -ENOTDIR;
        uint32_t flags = 0;
        int rc = value ? children_parse(value, size, &flags) : 0;
        if (rc)
            return rc;
        *op = (struct zk_op){.type = ZK_OP_SET_CHILDREN, .flags = flags,
                             .version = -1, .ino = st->ino};
        return 0;
    }
    if (!strcmp(name, ZKFS_DATA)) {
        if (!is_dir)
            return -EPERM;      /* a file's data is its content */
        if (size > ZK_DATA_MAX)
            return -EFBIG;
        *op = (struct zk_op){.type = ZK_OP_SET_DATA, .version = -1,
                             .ino = st->ino, .data = (const uint8_t *)value,
                             .data_len = value ? (uint32_t)size : 0};
        return 0;
    }
    return value ? -ENOTSUP : -ENODATA;
}

static void set_or_remove(fuse_req_t req, fuse_ino_t ino, const char *name,
                          const char *value, size_t size)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    struct zk_stat st;
    struct zk_op op;
    char path[ZK_PATH_MAX];

    int rc = ino == ZK_CTL_INO ? -EPERM
                               : zk_store_getattr(fs->store, ino, &st);
    if (rc == 0)
        rc = xattr_op(&st, name, value, size, &op);
    if (rc == 0)
        rc = zk_store_path(fs->store, ino, path, sizeof(path));
    struct xreq *x = rc ? NULL : malloc(sizeof(*x));
    if (rc == 0 && !x)
        rc = -ENOMEM;
    if (rc == 0) {
        op.path = path;
        op.path_len = (uint32_t)strlen(path);
        x->fs = fs;
        x->req = req;
        rc = zk__fs_propose1(fs, &op, xattr_done, x);
    }
    if (rc) {
        free(x);
        zk__fs_reply_errno(req, rc);
    }
}

void zk__fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                     const char *value, size_t size, int flags)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    struct zk__fs_prov *pv = zk__fs_prov_of(fs, ino);
    if (pv) {                   /* commit the create first */
        zk__fs_prov_defer(fs, pv, &(struct zk__fs_defer){
            .req = req, .op = ZK__DEFER_SETXATTR, .ino = ino, .name = name,
            .value = value, .size = size, .flags = flags});
        return;
    }
    (void)flags;   /* our attributes always exist: CREATE/REPLACE moot */
    set_or_remove(req, zk__fs_ino(fs, ino), name, value ? value : "", size);
}

void zk__fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    struct zk__fs_prov *pv = zk__fs_prov_of(fs, ino);
    if (pv) {                   /* commit the create first */
        zk__fs_prov_defer(fs, pv, &(struct zk__fs_defer){
            .req = req, .op = ZK__DEFER_REMOVEXATTR, .ino = ino,
            .name = name});
        return;
    }
    set_or_remove(req, zk__fs_ino(fs, ino), name, NULL, 0);
}
