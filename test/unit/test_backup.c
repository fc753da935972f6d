/*
 * test_backup.c — the store's side of backups: zk_store_backup_stream
 * (store/backup.c) leaves ephemerals, sessions and locks out and adjusts
 * the counters and numChildren so that the installed result is a sound
 * store; zk_store_check (store/check.c) says so, and finds each kind of
 * damage done to the tables directly (through the store's private header,
 * as a disk or a bug would).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../store/store_int.h"
#include "store_fx.h"

struct bfx {
    char dir[64];
    struct zk_store *s;
    uint64_t zxid;
};

static void bfx_open(struct bfx *f)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/zkfs-backup-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(f->dir));
    f->zxid = UINT64_C(3) << 32;
    ck_assert_int_eq(zk_store_open(f->dir, 1, &f->s), 0);
}

static void bfx_close(struct bfx *f)
{
    zk_store_close(f->s);
    zk_test_rmtree(f->dir);
}

static void op1(struct bfx *f, struct zk_op o)
{
    struct zk_apply_result *r = zk_test_commit(f->s, ++f->zxid, 1000, &o, 1);
    ck_assert_int_eq(r->err, 0);
    zk_apply_result_free(r);
}

static struct zk_op op(uint8_t type, const char *path, const char *data)
{
    struct zk_op o = zk_test_op(type, path, NULL);
    o.data = (const uint8_t *)data;
    o.data_len = data ? (uint32_t)strlen(data) : 0;
    o.owner = "h:1";
    o.owner_len = 3;
    o.session = 77;
    o.timeout_ms = 4000;
    return o;
}

/* /a (dir: f "xy", seq dir /a/q with 3 children, one deleted), and
 * ephemerals /a/e1 ("eph") and /e2 of session 77, which holds a lock. */
static void sample(struct bfx *f)
{
    struct zk_op o = op(ZK_OP_SESSION_OPEN, NULL, NULL);
    op1(f, o);
    o = op(ZK_OP_CREATE, "/a", NULL);
    o.flags = ZK_CREATE_DIR;
    op1(f, o);
    op1(f, op(ZK_OP_CREATE, "/a/f", "xy"));
    o = op(ZK_OP_CREATE, "/a/q", NULL);
    o.flags = ZK_CREATE_DIR;
    op1(f, o);
    for (int i = 0; i < 3; i++) {
        o = op(ZK_OP_CREATE, "/a/q/n-", "s");
        o.flags = ZK_CREATE_SEQUENTIAL;
        op1(f, o);
    }
    op1(f, op(ZK_OP_DELETE, "/a/q/n-0000000001", NULL));
    o = op(ZK_OP_CREATE, "/a/e1", "eph");
    o.flags = ZK_CREATE_EPHEMERAL;
    op1(f, o);
    o = op(ZK_OP_CREATE, "/e2", NULL);
    o.flags = ZK_CREATE_EPHEMERAL;
    op1(f, o);
    struct zk_stat st;
    ck_assert_int_eq(zk_store_resolve(f->s, "/a/f", &st), 0);
    uint8_t lk[28] = {0};
    zk_put_be64(lk + 8, 0);
    zk_put_be64(lk + 16, UINT64_MAX);
    o = op(ZK_OP_LOCK, NULL, NULL);
    o.ino = st.ino;
    o.flags = ZK_LOCK_WRITE;
    o.data = lk;
    o.data_len = sizeof(lk);
    op1(f, o);
}

struct problems {
    int n;
    char what[16][32];
};

static void on_problem(void *arg, const char *what, const char *text)
{
    struct problems *p = arg;
    (void)text;
    if (p->n < 16)
        snprintf(p->what[p->n], sizeof(p->what[0]), "%s", what);
    p->n++;
}

static int has(const struct problems *p, const char *what)
{
    for (int i = 0; i < p->n && i < 16; i++)
        if (strcmp(p->what[i], what) == 0)
            return 1;
    return 0;
}

static struct zk_store_check_stats check(struct bfx *f, struct problems *p)
{
    struct zk_store_check_stats st;
    memset(p, 0, sizeof(*p));
    ck_assert_int_eq(zk_store_check(f->s, on_problem, p, &st), 0);
    ck_assert_uint_eq(st.problems, (uint64_t)p->n);
    return st;
}

struct mem {
    uint8_t *p;
    size_t len;
};

static int mem_cb(void *arg, const uint8_t *buf, size_t len)
{
    struct mem *m = arg;
    m->p = realloc(m->p, m->len + len);
    memcpy(m->p + m->len, buf, len);
    m->len += len;
    return 0;
}

START_TEST(backup_leaves_out_ephemerals)
{
    struct bfx a, b;
    struct problems p;
    struct mem m = {NULL, 0};
    struct zk_store_snap *sn;
    struct zk_store_backup_info info;
    struct zk_store_batch *bt;
    struct zk_store_install *in;
    struct zk_stat qa, qb, aa, ab;
    uint64_t zxid;
    bfx_open(&a);
    sample(&a);
    struct zk_store_check_stats st = check(&a, &p);
    ck_assert_int_eq(p.n, 0);
    ck_assert_uint_eq(st.ephemerals, 2);
    ck_assert_uint_eq(st.lock_tables, 1);
    ck_assert_uint_eq(st.sessions, 1);
    ck_assert_int_eq(zk_store_snapshot_open(a.s, &sn, &zxid), 0);
    ck_assert_int_eq(zk_store_backup_stream(sn, mem_cb, &m, &info), 0);
    zk_store_snapshot_close(sn);
    ck_assert_uint_eq(info.ephemerals, 2);
    ck_assert_uint_eq(info.znodes, st.znodes - 2);
    ck_assert_uint_eq(info.data_bytes, st.data_bytes - 3);
    bfx_open(&b);
    ck_assert_int_eq(zk_store_batch_begin(b.s, &bt), 0);
    ck_assert_int_eq(zk_store_batch_install_begin(bt, &in), 0);
    ck_assert_int_eq(zk_store_install_feed(in, m.p, m.len), 0);
    ck_assert_int_eq(zk_store_install_finish(in, NULL), 0);
    ck_assert_int_eq(zk_store_batch_commit(bt), 0);
    st = check(&b, &p);
    ck_assert_int_eq(p.n, 0);
    ck_assert_uint_eq(st.znodes, info.znodes);
    ck_assert_uint_eq(st.ephemerals + st.sessions + st.lock_tables, 0);
    ck_assert_int_eq(zk_store_resolve(b.s, "/a/e1", &qb), -ENOENT);
    ck_assert_int_eq(zk_store_resolve(b.s, "/e2", &qb), -ENOENT);
    ck_assert_int_eq(zk_store_resolve(a.s, "/a", &aa), 0);
    ck_assert_int_eq(zk_store_resolve(b.s, "/a", &ab), 0);
    ck_assert_uint_eq(ab.num_children, aa.num_children - 1);
    ck_assert_int_eq(ab.cversion, aa.cversion);
    ck_assert_uint_eq(ab.pzxid, aa.pzxid);
    ck_assert_int_eq(zk_store_resolve(a.s, "/a/q", &qa), 0);
    ck_assert_int_eq(zk_store_resolve(b.s, "/a/q", &qb), 0);
    ck_assert_int_eq(qb.cversion, qa.cversion);
    ck_assert_int_eq(qb.cversion, 4);
    /* The next sequential create continues the counter. */
    b.zxid = zxid;
    struct zk_op o = op(ZK_OP_CREATE, "/a/q/n-", "s");
    o.flags = ZK_CREATE_SEQUENTIAL;
    struct zk_apply_result *r = zk_test_commit(b.s, ++b.zxid, 1, &o, 1);
    ck_assert_str_eq(r->ops[0].path, "/a/q/n-0000000004");
    zk_apply_result_free(r);
    free(m.p);
    bfx_close(&a);
    bfx_close(&b);
}
END_TEST

/* Runs damage inside a write batch of a fresh sample store, then checks
 * that zk_store_check finds a problem of kind what. */
static void damaged(void (*damage)(struct bfx *f, struct zk_store_batch *b),
                    const char *what)
{
    struct bfx f;
    struct problems p;
    struct zk_store_batch *b;
    bfx_open(&f);
    sample(&f);
    ck_assert_int_eq(zk_store_batch_begin(f.s, &b), 0);
    damage(&f, b);
    b->tree = 1;      /* written into b->txn behind the batch's back */
    ck_assert_int_eq(zk_store_batch_commit(b), 0);
    check(&f, &p);
    ck_assert_msg(p.n > 0 && has(&p, what), "%s: %d problems, first %s",
                  what, p.n, p.n ? p.what[0] : "-");
    bfx_close(&f);
}

static uint64_t ino(struct bfx *f, const char *path)
{
    struct zk_stat st;
    ck_assert_int_eq(zk_store_resolve(f->s, path, &st), 0);
    return st.ino;
}

static void del(struct zk_store_batch *b, MDB_dbi dbi, const void *key,
                size_t len)
{
    MDB_val k = {len, (void *)key};
    ck_assert_int_eq(mdb_del(b->txn, dbi, &k, NULL), 0);
}

static void put(struct zk_store_batch *b, MDB_dbi dbi, const void *key,
                size_t klen, const void *val, size_t vlen)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    ck_assert_int_eq(mdb_put(b->txn, dbi, &k, &v, 0), 0);
}

static void node_edit(struct bfx *f, struct zk_store_batch *b,
                      const char *path, size_t off, uint32_t val)
{
    struct zk__node n;
    uint8_t kb[8], vb[ZK__NODE_FIXED_SIZE + ZK_NAME_MAX];
    ck_assert_int_eq(zk__node_get(f->s, b->txn, ino(f, path), &n), 0);
    size_t len = zk__node_encode(&n, vb);
    zk_put_be32(vb + off, val);
    zk_put_be64(kb, n.st.ino);
    put(b, f->s->nodes, kb, 8, vb, len);
}

static void d_dirent(struct bfx *f, struct zk_store_batch *b)
{
    uint8_t k[9];
    zk_put_be64(k, ino(f, "/a"));
    k[8] = 'f';
    del(b, f->s->dirents, k, 9);
}

static void d_nchildren(struct bfx *f, struct zk_store_batch *b)
{
    node_edit(f, b, "/a/q", 104, 9);
}

static void d_datalen(struct bfx *f, struct zk_store_batch *b)
{
    node_edit(f, b, "/a/f", 100, 5);
}

static void d_garbage(struct bfx *f, struct zk_store_batch *b)
{
    uint8_t kb[8];
    zk_put_be64(kb, ino(f, "/a/f"));
    put(b, f->s->nodes, kb, 8, "garbage", 7);
}

static void d_counter(struct bfx *f, struct zk_store_batch *b)
{
    ck_assert_int_eq(zk__meta_put(f->s, b->txn, ZK__META_ZNODES, 1000), 0);
}

static void d_ephem_row(struct bfx *f, struct zk_store_batch *b)
{
    uint8_t k[16];
    zk_put_be64(k, 77);
    zk_put_be64(k + 8, ino(f, "/e2"));
    del(b, f->s->ephem, k, 16);
}

/* A logged, not yet applied, entry whose transaction fails its crc
 * (the write-ahead log's own checksum covers it as given). */
static void d_log(struct bfx *f, struct zk_store_batch *b)
{
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(zk_store_log_get(f->s, f->zxid, &buf, &len), 0);
    buf[len - 1] ^= 1;
    ck_assert_int_eq(zk_store_batch_log(b, f->zxid + 1, buf, len), 0);
    free(buf);
}

/* The last entry again, logged after it, in an ensemble's envelope (u8 0xE5 | u8 1 | u32 type
 * | u32 origin | u64 req_id | payload); bad says whether its payload is
 * damaged. */
static void envelope(struct bfx *f, struct zk_store_batch *b, int bad)
{
    uint8_t *buf, *env;
    size_t len;
    ck_assert_int_eq(zk_store_log_get(f->s, f->zxid, &buf, &len), 0);
    env = calloc(1, len + 18);
    env[0] = 0xE5;
    env[1] = 1;
    zk_put_be32(env + 2, 1);
    memcpy(env + 18, buf, len);
    env[18 + len - 1] ^= (uint8_t)bad;
    ck_assert_int_eq(zk_store_batch_log(b, f->zxid + 1, env, len + 18), 0);
    free(buf);
    free(env);
}

static void d_envelope(struct bfx *f, struct zk_store_batch *b)
{
    envelope(f, b, 1);
}

START_TEST(check_reads_ensemble_log)
{
    struct bfx f;
    struct problems p;
    struct zk_store_batch *b;
    bfx_open(&f);
    sample(&f);
    ck_assert_int_eq(zk_store_batch_begin(f.s, &b), 0);
    envelope(&f, b, 0);
    ck_assert_int_eq(zk_store_batch_commit(b), 0);
    struct zk_store_check_stats st = check(&f, &p);
    ck_assert_int_eq(p.n, 0);
    ck_assert_uint_gt(st.log_entries, 0);
    bfx_close(&f);
}
END_TEST

static void d_lock(struct bfx *f, struct zk_store_batch *b)
{
    uint8_t k[8];
    zk_put_be64(k, ino(f, "/a/f"));
    put(b, f->s->locks, k, 8, "\0\0\0\1xx", 6);
}

static void d_cycle(struct bfx *f, struct zk_store_batch *b)
{
    /* /a/q's entry moves under itself: a cycle cut off from the root,
     * every link still agreeing with its other end except the counts. */
    uint64_t a = ino(f, "/a"), q = ino(f, "/a/q");
    uint8_t k[9], v[8];
    zk_put_be64(k, a);
    k[8] = 'q';
    del(b, f->s->dirents, k, 9);
    struct zk__node n;
    ck_assert_int_eq(zk__node_get(f->s, b->txn, q, &n), 0);
    n.st.parent = q;
    ck_assert_int_eq(zk__node_put(f->s, b->txn, &n), 0);
    zk_put_be64(k, q);
    zk_put_be64(v, q);
    put(b, f->s->dirents, k, 9, v, 8);
}

START_TEST(check_finds_damage)
{
    damaged(d_dirent, "dirents");
    damaged(d_dirent, "tree");
    damaged(d_nchildren, "nodes");
    damaged(d_datalen, "data");
    damaged(d_garbage, "nodes");
    damaged(d_counter, "meta");
    damaged(d_ephem_row, "ephemerals");
    damaged(d_log, "log");
    damaged(d_envelope, "log");
    damaged(d_lock, "locks");
    damaged(d_cycle, "tree");
}
END_TEST

Suite *backup_suite(void);
Suite *backup_suite(void)
{
    Suite *s = suite_create("backup");
    TCase *tc = tcase_create("backup");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, backup_leaves_out_ephemerals);
    tcase_add_test(tc, check_finds_damage);
    tcase_add_test(tc, check_reads_ensemble_log);
    suite_add_tcase(s, tc);
    return s;
}
