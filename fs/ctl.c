/*
 * ctl.c — the daemon side of the control file (protocol in zk_ctl.h):
 * ZK_CTL_NAME at the root, reachable by lookup only, opened with direct
 * I/O. Each open file description gathers one request from its writes,
 * runs it with the identity of the process that completed it, and keeps
 * the response for its reads; a read that comes before the response is
 * held and answered when the response is ready.
 *
 * Requests that change the tree become proposals like the syscalls', with
 * the same permission rules (checked here as the kernel's
 * default_permissions would, since the kernel only checked access to the
 * control file itself). Ephemerals created through a description (flag
 * "e", or any file in an "ephemeral" directory) are held by it and
 * deleted when it is released.
 */
#include "ctl_parse.h"
#include "fs_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define CTL_BODY_MAX    ZK_CTL_RESP_MAX

struct ctl {
    struct zk__fs_handle hd;
    struct zk_fs *fs;
    uint8_t *req;
    size_t req_len, req_cap;
    int busy;                   /* a request runs; no response yet */
    char *resp;
    size_t resp_len, resp_off;
    int resp_ready;
    int resp_fd;                /* >= 0: the body goes on in this file */
    uint64_t resp_fd_len, resp_fd_off;
    struct zk__fs_snapjob *job; /* a snapshot being written for it */
    fuse_req_t held;            /* a read waiting for the response */
    size_t held_size;
    struct zk__fs_cred cred;    /* who sent the running request */
    uint64_t held_inos[ZK__FS_CTL_HELD_MAX];
    int nheld;
    int released;
    int umount;
};

/* ------------------------------------------------------------------------ */
/* responses                                                                 */
/* ------------------------------------------------------------------------ */

static void resp_fd_close(struct ctl *c)
{
    if (c->resp_fd >= 0)
        close(c->resp_fd);
    c->resp_fd = -1;
}

static void ctl_free(struct ctl *c)
{
    if (c->job)
        zk__fs_snapshot_cancel(c->job);
    resp_fd_close(c);
    zk__fs_handle_del(&c->hd);
    free(c->req);
    free(c->resp);
    free(c);
}

static void ctl_destroy(struct zk__fs_handle *h)
{
    ctl_free((struct ctl *)h);
}

/* The part of the body in resp_fd, after the buffer's bytes. */
static void serve_file(struct ctl *c, fuse_req_t req, size_t size)
{
    uint64_t left = c->resp_fd_len - c->resp_fd_off;
    size_t n = left < size ? (size_t)left : size;
    char *buf = malloc(n ? n : 1);
    ssize_t got = buf ? pread(c->resp_fd, buf, n, (off_t)c->resp_fd_off) : -1;
    if (got < 0) {
        fuse_reply_err(req, buf ? errno : ENOMEM);
    } else {
        c->resp_fd_off += (uint64_t)got;
        fuse_reply_buf(req, buf, (size_t)got);
    }
    free(buf);
}

static void serve_read(struct ctl *c, fuse_req_t req, size_t size)
{
    size_t left = c->resp_len - c->resp_off;
    if (left == 0 && c->resp_fd >= 0) {
        serve_file(c, req, size);
        return;
    }
    size_t n = left < size ? left : size;
    fuse_reply_buf(req, c->resp + c->resp_off, n);
    c->resp_off += n;
}

/* Makes the response readable (answering a held read), once the echo
 * thread has invalidated what the request changed: the client's next read
 * through the mount must see it. A description released meanwhile is
 * freed instead. */
static void ctl_publish(void *arg)
{
    struct ctl *c = arg;
    c->busy = 0;
    c->req_len = 0;
    if (c->released) {
        ctl_free(c);
        return;
    }
    c->resp_ready = 1;
    if (c->held) {
        fuse_req_t r = c->held;
        c->held = NULL;
        serve_read(c, r, c->held_size);
    }
}

/* Sets the response ("code\tmsg\n" + body); ctl_publish shows it. */
static void ctl_respond(struct ctl *c, int code, const char *msg,
                        const char *body, size_t blen)
{
    code = zk_err_to_errno(code);
    if (!msg)
        msg = code ? zk_strerror(code) : "ok";
    if (blen > CTL_BODY_MAX)
        blen = CTL_BODY_MAX;
    resp_fd_close(c);
    free(c->resp);
    size_t cap = strlen(msg) + 32 + blen;
    c->resp = malloc(cap);
    c->resp_off = c->resp_len = 0;
    if (c->resp) {
        int n = snprintf(c->resp, cap, "%d\t%s\n", code, msg);
        memcpy(c->resp + n, body, blen);
        c->resp_len = (size_t)n + blen;
    }
    zk__fs_echo_barrier(c->fs, ctl_publish, c);
}

static void ctl_respondf(struct ctl *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ctl_respondf(struct ctl *c, int code, const char *fmt, ...)
{
    char body[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    ctl_respond(c, code, NULL, body, (size_t)n < sizeof(body) ? (size_t)n
                                                              : sizeof(body) - 1);
}

static size_t stat_body(const struct zk_stat *st, char *buf, size_t size)
{
    size_t pos = 0;
    char v[32];
    for (size_t i = 0; i < zk__fs_zkstat_nkeys && pos < size; i++) {
        zk__fs_zkstat_value(st, zk__fs_zkstat_keys[i], v, sizeof(v));
        pos += (size_t)snprintf(buf + pos, size - pos, "%s=%s\n",
                                zk__fs_zkstat_keys[i], v);
    }
    if (pos < size)
        pos += (size_t)snprintf(buf + pos, size - pos, "ino=%" PRIu64
                                "\nkind=%s\n", st->ino,
                                st->kind == ZK_KIND_DIR ? "dir" : "file");
    return pos < size ? pos : size - 1;
}

static void respond_stat(struct ctl *c, uint64_t ino)
{
    struct zk_stat st;
    char body[1024];
    int rc = zk_store_getattr(c->fs->store, ino, &st);
    if (rc) {
        ctl_respond(c, rc, NULL, "", 0);
        return;
    }
    ctl_respond(c, 0, NULL, body, stat_body(&st, body, sizeof(body)));
}

/* Holds an ephemeral this description created (in transaction zxid, so
 * that a txn's CHECK or SET_DATA of somebody else's ephemeral does not
 * make it ours: its release would delete it; until 2026-12-05 any user
 * could delete any ephemeral that way, found by a review); past the
 * limit, or when the description is already released, it is released at
 * once. */
static void hold(struct ctl *c, uint64_t ino, uint64_t zxid)
{
    struct zk_stat st;
    if (zk_store_getattr(c->fs->store, ino, &st) != 0 ||
        !st.ephemeral_owner || st.czxid != zxid)
        return;
    for (int i = 0; i < c->nheld; i++)
        if (c->held_inos[i] == ino)
            return;             /* created and set in one txn */
    if (!c->released && c->nheld < ZK__FS_CTL_HELD_MAX)
        c->held_inos[c->nheld++] = ino;
    else
        zk__fs_release_holder(c->fs, ino);
}

/* ------------------------------------------------------------------------ */
/* helpers for requests                                                      */
/* ------------------------------------------------------------------------ */

/* Splits an absolute path into its parent (into buf) and last name. */
static const char *split_parent(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    if (n >= size)
        n = size - 1;
    memcpy(buf, path, n);
    buf[n] = '\0';
    return slash + 1;
}

/* Checks path and that c may create or remove its last component: write
 * and search permission on an existing parent directory. A parent that
 * does not exist (yet, in a txn) is left to the store. */
static int may_change_entry(struct ctl *c, const char *path, int must_exist)
{
    char parent[ZK_PATH_MAX];
    struct zk_stat pst;
    int rc = zk_path_check(path, strlen(path));
    if (rc)
        return rc;
    if (strcmp(path, "/") == 0)
        return -EPERM;
    const char *name = split_parent(path, parent, sizeof(parent));
    if (strcmp(parent, "/") == 0 && strcmp(name, ZK_CTL_NAME) == 0)
        return -EPERM;
    rc = zk_store_resolve(c->fs->store, parent, &pst);
    if (rc == -ENOENT && !must_exist)
        return 0;
    if (rc == 0 && pst.kind != ZK_KIND_DIR)
        rc = -ENOTDIR;
    return rc ? rc : zk__fs_may(&c->cred, &pst, 2 | 1);
}

/* Checks that c may write node path (if it exists). */
static int may_write_node(struct ctl *c, const char *path, int must_exist)
{
    struct zk_stat st;
    int rc = zk_path_check(path, strlen(path));
    if (rc == 0)
        rc = zk_store_resolve(c->fs->store, path, &st);
    if (rc == -ENOENT && !must_exist)
        return 0;
    return rc ? rc : zk__fs_may(&c->cred, &st, 2);
}

/* Checks path and that c may look its last component up: search
 * permission on an existing parent directory (a CHECK says whether the
 * node exists and its version). */
static int may_see_node(struct ctl *c, const char *path)
{
    char parent[ZK_PATH_MAX];
    struct zk_stat pst;
    int rc = zk_path_check(path, strlen(path));
    if (rc || strcmp(path, "/") == 0)
        return rc;
    split_parent(path, parent, sizeof(parent));
    rc = zk_store_resolve(c->fs->store, parent, &pst);
    if (rc == -ENOENT)
        return 0;               /* the store answers ENOENT */
    if (rc == 0 && pst.kind != ZK_KIND_DIR)
        rc = -ENOTDIR;
    return rc ? rc : zk__fs_may(&c->cred, &pst, 1);
}

static void fill_create(struct ctl *c, struct zk_op *op, const char *owner)
{
    op->mode = (op->flags & ZK_CREATE_DIR) ? 0755 : 0644;
    op->uid = c->cred.uid;
    op->gid = c->cred.gid;
    op->session = zk_replica_session(c->fs->replica);
    op->owner = owner;
    op->owner_len = (uint32_t)strlen(owner);
}

/* ------------------------------------------------------------------------ */
/* requests                                                                  */
/* ------------------------------------------------------------------------ */

static void create_done(void *arg, int err, const struct zk_apply_result *res)
{
    struct ctl *c = arg;
    int rc = zk__fs_result_err(err, res);
    if (rc) {
        ctl_respond(c, rc, NULL, "", 0);
        return;
    }
    hold(c, res->ops[0].ino, res->zxid);
    ctl_respondf(c, 0, "%s\n", res->ops[0].path);
}

static int req_create(struct ctl *c, const struct zk__ctl_req *r)
{
    char owner[ZK_OWNER_MAX];
    struct zk_op op = {.type = ZK_OP_CREATE, .version = -1,
                       .flags = r->flags};
    int rc = may_change_entry(c, r->path, 1);
    if (rc)
        return rc;
    zk__fs_caller_owner(c->fs, c->cred.pid, owner, sizeof(owner));
    fill_create(c, &op, owner);
    if ((op.flags & ZK_CREATE_EPHEMERAL) && op.session == 0)
        return ZK_ENOTREADY;    /* no session: no quorum yet */
    op.path = r->path;
    op.path_len = (uint32_t)strlen(r->path);
    op.data = r->payload;
    op.data_len = (uint32_t)r->payload_len;
    return zk__fs_propose1(c->fs, &op, create_done, c);
}

/* The answer of `zkfs set`: the stat its own transaction left, as
 * ZooKeeper's setData returns it. Read from the store at answer time it
 * could already show a later write (its version one more): a client that
 * chains conditional writes on it would overwrite a value it never saw. */
static void stat_done(void *arg, int err, const struct zk_apply_result *res)
{
    struct ctl *c = arg;
    char body[1024];
    int rc = zk__fs_result_err(err, res);
    if (rc)
        ctl_respond(c, rc, NULL, "", 0);
    else if (res->ops[0].st.ino == res->ops[0].ino && res->ops[0].ino != 0)
        ctl_respond(c, 0, NULL, body,
                    stat_body(&res->ops[0].st, body, sizeof(body)));
    else
        respond_stat(c, res->ops[0].ino);
}

static void plain_done(void *arg, int err, const struct zk_apply_result *res)
{
    ctl_respond(arg, zk__fs_result_err(err, res), NULL, "", 0);
}

static int req_set_rm(struct ctl *c, const struct zk__ctl_req *r)
{
    int is_rm = r->op == ZK__CTL_RM;
    struct zk_op op = {.type = is_rm ? ZK_OP_DELETE : ZK_OP_SET_DATA,
                       .version = r->version};
    int rc = is_rm ? may_change_entry(c, r->path, 1)
                   : may_write_node(c, r->path, 1);
    if (rc)
        return rc;
    op.path = r->path;
    op.path_len = (uint32_t)strlen(r->path);
    if (!is_rm) {
        op.data = r->payload;
        op.data_len = (uint32_t)r->payload_len;
    }
    return zk__fs_propose1(c->fs, &op, is_rm ? plain_done : stat_done, c);
}

static int req_stat(struct ctl *c, const char *path)
{
    struct zk_stat st;
    int rc = zk_path_check(path, strlen(path));
    if (rc == 0)
        rc = zk_store_resolve(c->fs->store, path, &st);
    if (rc)
        return rc;
    respond_stat(c, st.ino);
    return 0;
}

static void sync_done(void *arg, int err, const struct zk_apply_result *res)
{
    (void)res;
    ctl_respond(arg, err, NULL, "", 0);
}

static int req_sync(struct ctl *c)
{
    if (c->fs->stopping)
        return -ESHUTDOWN;
    return zk_replica_sync(c->fs->replica, sync_done, c);
}

static void txn_done(void *arg, int err, const struct zk_apply_result *res)
{
    struct ctl *c = arg;
    if (err || !res) {
        ctl_respond(c, err, NULL, "", 0);
        return;
    }
    size_t cap = (size_t)res->nops * (ZK_PATH_MAX + 16) + 1, pos = 0;
    char *body = malloc(cap);
    if (!body) {
        ctl_respond(c, -ENOMEM, NULL, "", 0);
        return;
    }
    for (uint32_t i = 0; i < res->nops; i++) {
        int e = zk_err_to_errno(res->ops[i].err);
        pos += (size_t)snprintf(body + pos, cap - pos, "%d\t%s\n", e,
                                res->ops[i].path);
        if (res->err == 0)
            hold(c, res->ops[i].ino, res->zxid);
    }
    ctl_respond(c, zk__fs_result_err(0, res), NULL, body, pos);
    free(body);
}

/* Checks and completes one op of a txn from the client. */
static int txn_op(struct ctl *c, struct zk_op *op, const char *owner)
{
    switch (op->type) {
    case ZK_OP_CREATE:
        op->flags &= ZK_CREATE_DIR | ZK_CREATE_EPHEMERAL | ZK_CREATE_SEQUENTIAL;
        fill_create(c, op, owner);
        return may_change_entry(c, op->path, 0);
    case ZK_OP_DELETE:
        return may_change_entry(c, op->path, 0);
    case ZK_OP_SET_DATA:
        return may_write_node(c, op->path, 0);
    case ZK_OP_CHECK:           /* a stat: search on the parent */
        return may_see_node(c, op->path);
    default:
        return -EINVAL;
    }
}

static int req_txn(struct ctl *c, const uint8_t *data, size_t len)
{
    char owner[ZK_OWNER_MAX];
    struct zk_txn *txn;
    int rc = zk_txn_decode(data, len, &txn);
    if (rc)
        return rc == ZK_ECORRUPT || rc == ZK_ETRUNCATED ? -EINVAL : rc;
    zk__fs_caller_owner(c->fs, c->cred.pid, owner, sizeof(owner));
    for (uint32_t i = 0; i < txn->nops && rc == 0; i++) {
        txn->ops[i].ino = 0;
        rc = txn_op(c, &txn->ops[i], owner);
    }
    txn->time_ms = 0;
    if (rc == 0)
        rc = c->fs->stopping ? -ESHUTDOWN
                             : zk__fs_propose(c->fs, txn, txn_done, c);
    zk_txn_free(txn);
    return rc;
}

/* Appends s to a JSON body as a quoted string. */
static size_t json_str(char *buf, size_t pos, size_t size, const char *s)
{
    pos += (size_t)snprintf(buf + pos, size - pos, "\"");
    for (; *s && pos + 8 < size; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            pos += (size_t)snprintf(buf + pos, size - pos, "\\%c", ch);
        else if (ch < 0x20)
            pos += (size_t)snprintf(buf + pos, size - pos, "\\u%04x", ch);
        else
            buf[pos++] = (char)ch;
    }
    pos += (size_t)snprintf(buf + pos, size - pos, "\"");
    return pos;
}

/* Appends printf output to a JSON body, never past its end. */
static size_t json_add(char *buf, size_t pos, size_t size, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));
static size_t json_add(char *buf, size_t pos, size_t size, const char *fmt,
                       ...)
{
    va_list ap;

    if (pos >= size)
        return pos;
    va_start(ap, fmt);
    int n = vsnprintf(buf + pos, size - pos, fmt, ap);
    va_end(ap);
    return n < 0 ? pos : pos + (size_t)n;
}

/* "members":[...]: every server as this replica sees it. Key names differ
 * from the top level ("member_zxid", not "zxid") so that a flat
 * key lookup (sed, grep) finds the replica's own values. */
static size_t json_members(char *b, size_t pos, size_t size,
                           const struct zk_replica_status *rs)
{
    pos = json_add(b, pos, size, ",\"members\":[");
    for (uint32_t i = 0; i < rs->n_members; i++) {
        const struct zk_replica_member *m = &rs->members[i];
        pos = json_add(b, pos, size, "%s{\"id\":%u,\"type\":\"%s\","
                       "\"self\":%s,\"connected\":%s,\"state\":\"%s\"",
                       i ? "," : "", m->id,
                       m->observer ? "observer" : "voter",
                       m->self ? "true" : "false",
                       m->connected ? "true" : "false",
                       m->state ? m->state : "?");
        if (m->zxid_known)
            pos = json_add(b, pos, size, ",\"member_zxid\":%" PRIu64
                           ",\"member_zxid_hex\":\"0x%016" PRIx64
                           "\",\"lag\":%" PRIu64, m->zxid, m->zxid, m->lag);
        else
            pos = json_add(b, pos, size, ",\"member_zxid\":null,"
                           "\"member_zxid_hex\":null,\"lag\":null");
        if (m->snapshot)
            pos = json_add(b, pos, size, ",\"snapshot\":{\"bytes\":%"
                           PRIu64 ",\"total\":%" PRIu64 ",\"wire_bytes\":%"
                           PRIu64 "}}", m->snap_bytes, m->snap_total,
                           m->snap_wire_bytes);
        else
            pos = json_add(b, pos, size, ",\"snapshot\":null}");
    }
    return json_add(b, pos, size, "]");
}

static int req_status(struct ctl *c)
{
    struct zk_replica_status rs;
    struct zk_store_info si;
    char body[16384];           /* 16 members and two paths */
    int rc = zk_store_info(c->fs->store, &si);
    if (rc)
        return rc;
    zk_replica_status(c->fs->replica, &rs);
    size_t pos = (size_t)snprintf(body, sizeof(body),
        "{\"role\":\"%s\",\"my_id\":%u,\"leader_id\":%u,\"epoch\":%" PRIu64
        ",\"zxid\":%" PRIu64 ",\"zxid_hex\":\"0x%016" PRIx64 "\",\"znodes\":%"
        PRIu64 ",\"sessions\":%" PRIu64 ",\"data_bytes\":%" PRIu64
        ",\"pending\":%" PRIu64 ",\"batches\":%" PRIu64 ",\"fsyncs\":%"
        PRIu64 ",\"stale\":%s,\"mountpoint\":", rs.role, rs.my_id,
        rs.leader_id, rs.epoch, rs.last_zxid, rs.last_zxid, si.znodes,
        si.sessions, si.data_bytes, rs.pending, rs.batches, rs.fsyncs,
        rs.stale ? "true" : "false");
    pos = json_str(body, pos, sizeof(body), c->fs->opts->mountpoint);
    pos += (size_t)snprintf(body + pos, sizeof(body) - pos, ",\"data_dir\":");
    pos = json_str(body, pos, sizeof(body), c->fs->opts->data_dir);
    pos = json_add(body, pos, sizeof(body), ",\"commit_zxid\":%" PRIu64
                   ",\"commit_lag\":%" PRIu64 ",\"syncing\":%s,"
                   "\"snapshots_sent\":%" PRIu64 ",\"snapshots_installed\":%"
                   PRIu64 ",\"snapshots_rejected\":%" PRIu64
                   ",\"snapshots_held\":%" PRIu64,
                   rs.commit_zxid, rs.lag, rs.syncing ? "true" : "false",
                   rs.snapshots_sent, rs.snapshots_installed,
                   rs.snapshots_rejected, rs.snapshots_held);
    if (rs.store_error) {
        char why[160];
        snprintf(why, sizeof(why), "failed: %s (a new core tries it again)",
                 zk_strerror(rs.store_error));
        pos = json_add(body, pos, sizeof(body), ",\"store\":");
        pos = json_str(body, pos, sizeof(body), why);
    } else if (si.at_reserve) {
        pos = json_add(body, pos, sizeof(body), ",\"store\":\"at its disk "
                       "reserve: writes that add data get ENOSPC\"");
    } else {
        pos = json_add(body, pos, sizeof(body), ",\"store\":\"ok\"");
    }
    pos = json_add(body, pos, sizeof(body), ",\"abstaining\":%s",
                   rs.abstaining ? "true" : "false");
    pos = json_add(body, pos, sizeof(body), ",\"locked_files\":%" PRIu64
                   ",\"lock_waits_here\":%u", zk__fs_lock_counts(c->fs),
                   zk__fs_lock_waits(c->fs));
    pos = json_members(body, pos, sizeof(body), &rs);
    pos = json_add(body, pos, sizeof(body), "}\n");
    ctl_respond(c, 0, NULL, body, pos < sizeof(body) ? pos : sizeof(body) - 1);
    return 0;
}

/* The snapshot file is the body (the header line is "0\tok"). */
static void snapshot_done(void *arg, int err, int fd, uint64_t len)
{
    struct ctl *c = arg;
    c->job = NULL;
    ctl_respond(c, err, NULL, "", 0);
    if (err == 0) {
        c->resp_fd = fd;
        c->resp_fd_len = len;
        c->resp_fd_off = 0;
    }
}

/* snapshot: a backup of the whole tree, whatever its permissions say, so
 * only for root and the daemon's own user. */
static int req_snapshot(struct ctl *c)
{
    if (c->cred.uid != 0 && c->cred.uid != c->fs->uid)
        return -EPERM;
    if (c->fs->stopping)
        return -ESHUTDOWN;
    return zk__fs_snapshot_start(c->fs, snapshot_done, c, &c->job);
}

/* The answer to umount: the daemon stops whether or not the close of the
 * session committed (without a quorum it cannot: the leader expires the
 * session after sessionTimeout instead, which the log says). */
static void umount_done(void *arg, int err, const struct zk_apply_result *res)
{
    int rc = zk__fs_result_err(err, res);
    if (rc)
        zk_log(ZK_LOG_WARN, "umount: this replica's session was not closed "
               "(%s); the ensemble expires it after the session timeout",
               zk_strerror(rc));
    ctl_respond(arg, 0, NULL, "", 0);
}

/* umount: closes this replica's session now (its ephemerals go on every
 * replica), answers, and stops once the client has closed the file. */
static int req_umount(struct ctl *c)
{
    if (c->cred.uid != 0 && c->cred.uid != c->fs->uid)
        return -EPERM;
    struct zk_op op = {.type = ZK_OP_SESSION_CLOSE, .version = -1,
                       .session = zk_replica_session(c->fs->replica)};
    c->umount = 1;
    if (op.session == 0) {          /* none (no quorum): nothing to close */
        umount_done(c, ZK_ENOTREADY, NULL);
        return 0;
    }
    return zk__fs_propose1(c->fs, &op, umount_done, c);
}

/* Runs the gathered request. Every path ends in exactly one ctl_respond,
 * now or from a done callback. */
static void ctl_dispatch(struct ctl *c)
{
    struct zk__ctl_req r;
    const char *why;
    int rc = zk__ctl_parse(c->req, c->req_len, &r, &why);

    c->busy = 1;
    if (rc) {
        ctl_respond(c, rc, why, "", 0);
        return;
    }
    switch (r.op) {
    case ZK__CTL_CREATE: rc = req_create(c, &r); break;
    case ZK__CTL_SET:
    case ZK__CTL_RM: rc = req_set_rm(c, &r); break;
    case ZK__CTL_STAT: rc = req_stat(c, r.path); break;
    case ZK__CTL_SYNC: rc = req_sync(c); break;
    case ZK__CTL_TXN: rc = req_txn(c, r.payload, r.payload_len); break;
    case ZK__CTL_STATUS: rc = req_status(c); break;
    case ZK__CTL_UMOUNT: rc = req_umount(c); break;
    case ZK__CTL_SNAPSHOT: rc = req_snapshot(c); break;
    }
    if (rc)
        ctl_respond(c, rc, NULL, "", 0);
}

/* ------------------------------------------------------------------------ */
/* FUSE side                                                                 */
/* ------------------------------------------------------------------------ */

void zk__fs_ctl_open(fuse_req_t req, struct fuse_file_info *fi)
{
    struct ctl *c = calloc(1, sizeof(*c));
    if (!c) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    c->fs = fuse_req_userdata(req);
    c->resp_fd = -1;
    fi->fh = (uintptr_t)c;
    fi->direct_io = 1;
    fi->nonseekable = 1;
    fi->keep_cache = 0;
    if (fuse_reply_open(req, fi) != 0)
        ctl_free(c);
    else
        zk__fs_handle_add(c->fs, &c->hd, ctl_destroy);
}

/* Gathers request bytes; dispatches once the announced length arrived. */
void zk__fs_ctl_write(fuse_req_t req, const char *buf, size_t size,
                      struct fuse_file_info *fi)
{
    struct ctl *c = (struct ctl *)(uintptr_t)fi->fh;
    if (c->busy) {
        fuse_reply_err(req, EBUSY);
        return;
    }
    c->resp_ready = 0;          /* a new request drops the old response */
    if (c->req_len + size > 4 + (size_t)ZK_CTL_REQ_MAX) {
        c->req_len = 0;
        fuse_reply_err(req, EMSGSIZE);
        return;
    }
    if (c->req_len + size > c->req_cap) {
        size_t cap = c->req_len + size > 4096 ? c->req_len + size : 4096;
        uint8_t *p = realloc(c->req, cap);
        if (!p) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        c->req = p;
        c->req_cap = cap;
    }
    memcpy(c->req + c->req_len, buf, size);
    c->req_len += size;
    int complete = zk__ctl_gathered(c->req, c->req_len);
    if (complete < 0) {
        c->req_len = 0;
        fuse_reply_err(req, EINVAL);
        return;
    }
    if (complete)
        zk__fs_cred_from_req(req, &c->cred);
    fuse_reply_write(req, size);
    if (complete)
        ctl_dispatch(c);
}

/* A held read whose caller got a signal: answered EINTR at once (the
 * response stays for the next read), or the caller could not even be
 * killed. */
static void on_read_interrupt(fuse_req_t req, void *data)
{
    struct ctl *c = data;
    if (c->held == req) {
        c->held = NULL;
        fuse_reply_err(req, EINTR);
    }
}

void zk__fs_ctl_read(fuse_req_t req, size_t size, struct fuse_file_info *fi)
{
    struct ctl *c = (struct ctl *)(uintptr_t)fi->fh;
    if (c->resp_ready)
        serve_read(c, req, size);
    else if (c->busy && !c->held) {
        c->held = req;
        c->held_size = size;
        fuse_req_interrupt_func(req, on_read_interrupt, c);
    } else if (c->busy)
        fuse_reply_err(req, EBUSY);
    else
        fuse_reply_buf(req, NULL, 0);
}

/* Last close: releases the ephemerals this description holds; after a
 * umount request, stops the daemon. A request still running frees the
 * description when it answers. */
void zk__fs_ctl_release(fuse_req_t req, struct fuse_file_info *fi)
{
    struct ctl *c = (struct ctl *)(uintptr_t)fi->fh;
    struct zk_fs *fs = c->fs;
    for (int i = 0; i < c->nheld; i++)
        zk__fs_release_holder(fs, c->held_inos[i]);
    c->nheld = 0;
    if (c->umount)
        zk__fs_stop(fs);
    if (c->busy)
        c->released = 1;
    else
        ctl_free(c);
    fuse_reply_err(req, 0);
}
