/*
 * fuzz_store.c — the store's decoders of bytes it did not write itself:
 * the snapshot stream a leader sends (store/snapshot.c, Zab SNAP install)
 * and, through it, every on-disk record the store reads back (node
 * records, directory entries, data, session and ephemeral rows, meta
 * counters: store/node.c, store.c, batch.c), plus transactions applied
 * to a real tree (store/apply.c on what zk_txn_decode accepts).
 *
 * One LMDB store lives in a private directory (on /dev/shm when there is
 * one: commits fsync) for the whole run. At start it gets a small tree
 * (directories, files with data, a session and its ephemeral), whose
 * snapshot is the baseline every input starts from.
 *
 * Byte 0 picks the mode:
 *   0: the rest is a snapshot stream, installed as it is, fed in pieces;
 *   1: the same, but the target writes the header (zxid from the input)
 *      and, after the records that parse, the end record with the right
 *      count and crc32, so that mutated records get past the checksum;
 *      what follows a 0 byte after the records is a list of transactions
 *      (as in mode 2) applied to the installed tree;
 *   2, 3: the rest is a list of transaction bodies (u16 length, bytes);
 *      each gets a valid header and is applied at the next zxid in one
 *      batch, which is then aborted.
 * An installed snapshot is committed and the whole tree is read back
 * through the public read functions (bounded walk); the transactions that
 * follow it are committed and the tree read back again; then the baseline
 * is installed again (and read back), so that every input sees the same
 * store.
 *
 * The fuzzing thread keeps a read transaction as the daemon's loop does
 * (zk_store_reader_keep), so the reads that remember nodes (getattr, read)
 * answer from that memory when they can: each answer must equal what a
 * path lookup (which never uses it) gives from the newest version, also
 * right after a commit or an install replaced the nodes.
 *
 * Checks: no crash, hang, leak or sanitizer report; errors are the
 * documented ones (ZK_ECORRUPT for a bad stream or record, never a
 * wrong answer that crashes a reader); remembered nodes are never stale.
 */
#include "fuzz.h"
#include "zk_common.h"
#include "zk_store.h"
#include "zk_txn.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define WALK_NODES_MAX  512
#define WALK_DEPTH_MAX  16
#define TXNS_MAX        16

static struct zk_store *store;
static uint8_t *baseline;
static size_t baseline_len;

struct buf {
    uint8_t *p;
    size_t len, cap;
};

static void buf_add(struct buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        FZ_CHECK(b->p != NULL);
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static int snap_cb(void *arg, const uint8_t *p, size_t n)
{
    buf_add(arg, p, n);
    return 0;
}

/* ---- setup -------------------------------------------------------------- */

static void op_create(struct zk_op *op, const char *path, int dir,
                      const char *data, uint64_t session)
{
    memset(op, 0, sizeof(*op));
    op->type = ZK_OP_CREATE;
    op->version = -1;
    op->flags = dir ? ZK_CREATE_DIR : session ? ZK_CREATE_EPHEMERAL : 0;
    op->mode = dir ? 0755 : 0644;
    op->path = path;
    op->path_len = (uint32_t)strlen(path);
    op->data = (const uint8_t *)data;
    op->data_len = (uint32_t)strlen(data);
    op->session = session;
    op->owner = session ? "fuzz:1" : NULL;
    op->owner_len = session ? 6 : 0;
}

static void apply_ops(struct zk_store_batch *b, uint64_t zxid,
                      struct zk_op *ops, uint32_t n)
{
    struct zk_txn t = {1700000000000ull, n, ops};
    struct zk_apply_result *res;
    uint8_t *enc;
    size_t len;

    FZ_CHECK(zk_txn_encode(&t, &enc, &len) == 0);
    FZ_CHECK(zk_store_batch_apply(b, zxid, enc, len, &res) == 0);
    FZ_CHECK(res->err == 0);
    zk_apply_result_free(res);
    free(enc);
}

static void make_tree(void)
{
    const uint64_t sid = 0x0100000100000001ull;
    struct zk_store_batch *b;
    struct zk_op ops[6];

    FZ_CHECK(zk_store_batch_begin(store, &b) == 0);
    memset(&ops[0], 0, sizeof(ops[0]));
    ops[0].type = ZK_OP_SESSION_OPEN;
    ops[0].version = -1;
    ops[0].session = sid;
    ops[0].timeout_ms = 4000;
    ops[0].owner = "server.1";
    ops[0].owner_len = 8;
    apply_ops(b, 0x100000001ull, ops, 1);
    op_create(&ops[0], "/a", 1, "dir data", 0);
    op_create(&ops[1], "/a/f", 0, "file data", 0);
    op_create(&ops[2], "/a/b", 1, "", 0);
    op_create(&ops[3], "/a/b/e", 0, "held", sid);
    op_create(&ops[4], "/q", 1, "", 0);
    memset(&ops[5], 0, sizeof(ops[5]));
    ops[5].type = ZK_OP_SET_CHILDREN;
    ops[5].version = -1;
    ops[5].path = "/q";
    ops[5].path_len = 2;
    ops[5].flags = ZK_CHILDREN_SEQUENTIAL;
    apply_ops(b, 0x100000002ull, ops, 6);
    op_create(&ops[0], "/q/job-", 0, "1", 0);
    apply_ops(b, 0x100000003ull, ops, 1);
    FZ_CHECK(zk_store_batch_commit(b) == 0);
}

/* Mode 2 seed: u16 length + body of each txn, one op per txn. */
static void write_txn_seed(FILE *f, struct zk_op *op)
{
    struct zk_txn t = {1700000000000ull, 1, op};
    uint8_t *enc;
    size_t len;

    FZ_CHECK(zk_txn_encode(&t, &enc, &len) == 0);
    len -= ZK_TXN_HDR_SIZE;
    fputc((int)(len >> 8), f);
    fputc((int)(len & 0xff), f);
    fwrite(enc + ZK_TXN_HDR_SIZE, 1, len, f);
    free(enc);
}

static void write_txn_list(FILE *f)
{
    static const uint8_t types[] = {ZK_OP_SET_DATA, ZK_OP_APPEND,
        ZK_OP_SET_ATTR, ZK_OP_RENAME, ZK_OP_CHECK, ZK_OP_DELETE,
        ZK_OP_SESSION_CLOSE};
    struct zk_op op;

    op_create(&op, "/q/job-", 0, "2", 0);
    write_txn_seed(f, &op);
    op_create(&op, "/a/b/new", 1, "", 0);
    write_txn_seed(f, &op);
    for (size_t i = 0; i < ZK_ARRAY_LEN(types); i++) {
        op_create(&op, "/a/f", 0, "more", 0);
        op.type = types[i];
        op.flags = 0;
        op.attr_mask = ZK_ATTR_MODE;
        op.mode = 0600;
        op.path2 = "/a/b/g";
        op.path2_len = 6;
        op.session = types[i] == ZK_OP_SESSION_CLOSE ? 0x0100000100000001ull
                                                     : 0;
        write_txn_seed(f, &op);
    }
}

static void write_txn_seeds(const char *dir)
{
    char path[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/seed-txns", dir);
    f = fopen(path, "wb");
    FZ_CHECK(f != NULL);
    fputc(2, f);
    write_txn_list(f);
    fclose(f);
}

static void write_seeds(const char *dir)
{
    char path[1024];
    FILE *f;

    write_txn_seeds(dir);
    snprintf(path, sizeof(path), "%s/seed-baseline", dir);
    f = fopen(path, "wb");
    FZ_CHECK(f != NULL);
    fputc(0, f);
    fwrite(baseline, 1, baseline_len, f);
    fclose(f);
    /* Mode 1: zxid, then the records without header and end. */
    snprintf(path, sizeof(path), "%s/seed-records", dir);
    f = fopen(path, "wb");
    FZ_CHECK(f != NULL);
    fputc(1, f);
    fwrite(baseline + 8, 1, baseline_len - 8 - 13, f);
    fclose(f);
    /* Mode 1 followed by transactions on the installed tree. */
    snprintf(path, sizeof(path), "%s/seed-records-txns", dir);
    f = fopen(path, "wb");
    FZ_CHECK(f != NULL);
    fputc(1, f);
    fwrite(baseline + 8, 1, baseline_len - 8 - 13, f);
    fputc(0, f);
    write_txn_list(f);
    fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct buf b = {0};
    uint64_t zxid;

    (void)argc;
    (void)argv;
    if (!getenv("TMPDIR") && access("/dev/shm", W_OK) == 0)
        setenv("TMPDIR", "/dev/shm", 1);
    /* Every committed install starts a new log generation, whose first
     * segment is written whole: keep it one page, not 4 MiB per input. */
    setenv("ZKFS_WAL_SEGMENT_BYTES", "4096", 0);
    FZ_CHECK(zk_store_open(fz_tmpdir("store"), 1, &store) == 0);
    zk_store_reader_keep(store, 1);     /* as the daemon's loop thread */
    make_tree();
    FZ_CHECK(zk_store_snapshot(store, snap_cb, &b, &zxid) == 0);
    baseline = b.p;
    baseline_len = b.len;
    if (getenv("ZK_FUZZ_STORE_SEEDS"))
        write_seeds(getenv("ZK_FUZZ_STORE_SEEDS"));
    return 0;
}

/* ---- reading everything back --------------------------------------------- */

struct walk {
    uint64_t inos[WALK_NODES_MAX];
    size_t n;
};

static int list_cb(void *arg, const char *name, const struct zk_stat *st)
{
    struct walk *w = arg;

    FZ_CHECK(name != NULL);
    if (w->n >= WALK_NODES_MAX)
        return 1;
    w->inos[w->n++] = st->ino;
    return 0;
}

static int session_cb(void *arg, uint64_t session, uint32_t timeout_ms,
                      const char *owner)
{
    (void)timeout_ms;
    FZ_CHECK(owner != NULL);
    (void)zk_store_ephemerals(store, session, (zk_store_ephemeral_cb)arg,
                              NULL);
    return 0;
}

static int ephem_cb(void *arg, uint64_t ino)
{
    struct zk_stat st;
    (void)arg;
    (void)zk_store_getattr(store, ino, &st);
    return 0;
}

static int log_cb(void *arg, uint64_t zxid, const uint8_t *p, size_t len)
{
    struct zk_txn *t;
    (void)arg;
    (void)zxid;
    if (zk_txn_decode(p, len, &t) == 0)
        zk_txn_free(t);
    return 0;
}

static int stat_eq(const struct zk_stat *a, const struct zk_stat *b)
{
    return a->ino == b->ino && a->parent == b->parent &&
           a->kind == b->kind && a->mode == b->mode && a->uid == b->uid &&
           a->gid == b->gid && a->czxid == b->czxid &&
           a->mzxid == b->mzxid && a->pzxid == b->pzxid &&
           a->ctime_ms == b->ctime_ms && a->mtime_ms == b->mtime_ms &&
           a->chtime_ms == b->chtime_ms && a->cmtime_ms == b->cmtime_ms &&
           a->version == b->version && a->cversion == b->cversion &&
           a->aversion == b->aversion &&
           a->ephemeral_owner == b->ephemeral_owner &&
           a->data_length == b->data_length &&
           a->num_children == b->num_children &&
           a->children_flags == b->children_flags;
}

static void read_node(uint64_t ino)
{
    static char path[ZK_PATH_MAX + 1];
    struct zk_stat st, st2, ga;
    uint8_t *data = NULL, *again = NULL;
    size_t len = 0, len2 = 0;
    char owner[ZK_OWNER_MAX + 1];

    int rc = zk_store_read(store, ino, &data, &len, &st);
    if (rc == 0) {
        FZ_CHECK(len == 0 || data != NULL);
        FZ_CHECK(len == st.data_length);
        /* the second read may come from the kept txn's memory */
        FZ_CHECK(zk_store_read(store, ino, &again, &len2, &st2) == 0);
        FZ_CHECK(len2 == len && stat_eq(&st, &st2));
        FZ_CHECK(len == 0 || memcmp(data, again, len) == 0);
        FZ_CHECK(zk_store_getattr(store, ino, &ga) == 0 && stat_eq(&st, &ga));
        free(again);
        free(data);
    }
    (void)zk_store_owner(store, ino, owner, sizeof(owner));
    if (zk_store_path(store, ino, path, sizeof(path)) == 0 &&
        zk_store_resolve(store, path, &st2) == 0 && rc == 0)
        FZ_CHECK(stat_eq(&st, &st2));   /* not a remembered, older one */
}

static void walk_tree(void)
{
    static struct walk w;
    struct zk_store_info info;
    size_t done = 0;

    w.n = 0;
    w.inos[w.n++] = ZK_INO_ROOT;
    for (int depth = 0; depth < WALK_DEPTH_MAX && done < w.n; depth++) {
        size_t end = w.n;
        for (; done < end; done++) {
            struct zk_stat st;
            if (zk_store_getattr(store, w.inos[done], &st) != 0)
                continue;
            read_node(w.inos[done]);
            if (st.kind == ZK_KIND_DIR)
                (void)zk_store_list(store, w.inos[done], list_cb, &w);
        }
    }
    (void)zk_store_sessions(store, session_cb, (void *)ephem_cb);
    (void)zk_store_info(store, &info);
    (void)zk_store_log_scan(store, 0, log_cb, NULL);
}

/* ---- snapshot install -------------------------------------------------- */

/* Installs s[0..len) in pieces whose sizes come from the stream's own
 * bytes; returns the result of finish (or of the first failing feed). */
static int install(const uint8_t *s, size_t len, int commit)
{
    struct zk_store_batch *b;
    struct zk_store_install *in;
    size_t off = 0;
    int rc;

    FZ_CHECK(zk_store_batch_begin(store, &b) == 0);
    FZ_CHECK(zk_store_batch_install_begin(b, &in) == 0);
    while (off < len) {
        size_t n = 1 + (size_t)(s[off] * 37u) % 4096u;
        n = n < len - off ? n : len - off;
        rc = zk_store_install_feed(in, s + off, n);
        if (rc) {
            FZ_CHECK(rc == ZK_ECORRUPT || rc == ZK_EFOREIGN);
            zk_store_install_abort(in);
            zk_store_batch_abort(b);
            return rc;
        }
        off += n;
    }
    rc = zk_store_install_finish(in, NULL);
    FZ_CHECK(rc == 0 || rc == ZK_ECORRUPT || rc == ZK_ETRUNCATED);
    if (rc == 0 && commit) {
        FZ_CHECK(zk_store_batch_commit(b) == 0);
    } else {
        zk_store_batch_abort(b);
    }
    return rc;
}

/* Mode 1: header + the records that parse + a correct end. Returns
 * where the transactions start in p (len: none). */
static size_t fixed_stream(const uint8_t *p, size_t len, struct buf *out)
{
    uint8_t hdr[16], end[13];
    uint64_t records = 0;
    size_t off = 8;

    memcpy(hdr, "ZKSN", 4);
    zk_put_be32(hdr + 4, ZK_STORE_FORMAT);
    memset(hdr + 8, 0, 8);
    if (len >= 8)
        memcpy(hdr + 8, p, 8);
    buf_add(out, hdr, sizeof(hdr));
    while (off + 9 <= len && p[off] != 0) {
        size_t size = 9 + (size_t)zk_get_be32(p + off + 1) +
                      zk_get_be32(p + off + 5);
        if (size > len - off)
            break;
        buf_add(out, p + off, size);
        off += size;
        records++;
    }
    end[0] = 0;
    zk_put_be64(end + 1, records);
    uint32_t crc = (uint32_t)crc32(0L, out->p, (uInt)out->len);
    crc = (uint32_t)crc32(crc, end, 9);
    zk_put_be32(end + 9, crc);
    buf_add(out, end, sizeof(end));
    return off < len ? off + 1 : len;
}

static void run_txns(struct fz *f, int commit);

static void run_install(const uint8_t *p, size_t len, int fix)
{
    struct buf s = {0};
    struct fz txns = {p + len, 0};

    if (fix) {
        size_t rest = fixed_stream(p, len, &s);
        txns.p = p + rest;
        txns.left = len - rest;
        p = s.p;
        len = s.len;
    }
    if (install(p, len, 1) == 0) {
        walk_tree();
        run_txns(&txns, 1);
        walk_tree();                    /* what the commit changed */
        FZ_CHECK(install(baseline, baseline_len, 1) == 0);
        walk_tree();                    /* nothing of the replaced tree */
    }
    free(s.p);
}

/* ---- transactions on the baseline tree ----------------------------------- */

/* Applies f's transactions in one batch: committed when commit (on an
 * installed tree), else aborted (the baseline stays). */
static void run_txns(struct fz *f, int commit)
{
    struct zk_store_batch *b;
    struct zk_store_info info;
    uint64_t zxid;

    FZ_CHECK(zk_store_info(store, &info) == 0);
    zxid = info.last_applied_zxid;
    FZ_CHECK(zk_store_batch_begin(store, &b) == 0);
    for (int i = 0; i < TXNS_MAX && f->left; i++) {
        size_t n;
        const uint8_t *body = fz_bytes(f, 1 << 16, &n);
        uint8_t *t = malloc(ZK_TXN_HDR_SIZE + n + 1);
        struct zk_apply_result *res = NULL;
        FZ_CHECK(t != NULL);
        memcpy(t, "ZKTX", 4);
        t[4] = 0; t[5] = ZK_TXN_VERSION; t[6] = 0; t[7] = 0;
        zk_put_be32(t + 8, (uint32_t)n);
        memcpy(t + ZK_TXN_HDR_SIZE, body, n);
        zk_put_be32(t + 12, (uint32_t)crc32(0L, t + ZK_TXN_HDR_SIZE,
                                            (uInt)n));
        int rc = zk_store_batch_apply(b, ++zxid, t, ZK_TXN_HDR_SIZE + n,
                                      &res);
        free(t);
        if (rc == 0) {
            FZ_CHECK(res != NULL && res->zxid == zxid);
            zk_apply_result_free(res);
        } else {
            FZ_CHECK(rc == ZK_ECORRUPT || rc == -EINVAL);
            break;
        }
    }
    if (commit)
        FZ_CHECK(zk_store_batch_commit(b) == 0);
    else
        zk_store_batch_abort(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = {data, size};
    uint8_t mode = fz_u8(&f);

    if (mode % 4 < 2)
        run_install(f.p, f.left, mode % 4 == 1);
    else
        run_txns(&f, 0);
    return 0;
}
