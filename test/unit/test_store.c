/*
 * test_store.c — the LMDB store: create/open/reopen, refusal of foreign,
 * corrupt and other-format directories, every apply rule with ZooKeeper's
 * stat semantics, atomic multis, sessions and ephemerals, rename, the log,
 * and a full map (ENOSPC) that leaves the store intact.
 *
 * Each test works in its own mkdtemp directory under /tmp and removes it.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zk_common.h"
#include "zk_store.h"
#include "zk_txn.h"

struct fx {
    char dir[64];
    struct zk_store *s;
    uint64_t zxid;
    uint64_t time_ms;
};

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

static void fx_mkdir(struct fx *f)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/zkfs-store-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(f->dir));
    f->zxid = (UINT64_C(1) << 32);
    f->time_ms = 1700000000000ull;
}

static void fx_open(struct fx *f)
{
    fx_mkdir(f);
    ck_assert_int_eq(zk_store_open(f->dir, 1, &f->s), 0);
}

static void fx_reopen(struct fx *f)
{
    zk_store_close(f->s);
    f->s = NULL;
    ck_assert_int_eq(zk_store_open(f->dir, 0, &f->s), 0);
}

static void fx_close(struct fx *f)
{
    if (f->s != NULL)
        zk_store_close(f->s);
    f->s = NULL;
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static struct zk_op mk(uint8_t type, const char *path)
{
    struct zk_op o;
    memset(&o, 0, sizeof(o));
    o.type = type;
    o.version = -1;
    o.mode = 0644;
    o.path = path;
    o.path_len = path ? (uint32_t)strlen(path) : 0;
    return o;
}

static struct zk_op mk_data(uint8_t type, const char *path, const char *d)
{
    struct zk_op o = mk(type, path);
    o.data = (const uint8_t *)d;
    o.data_len = (uint32_t)strlen(d);
    return o;
}

__attribute__((unused)) static struct zk_op mk_rename(const char *from, const char *to)
{
    struct zk_op o = mk(ZK_OP_RENAME, from);
    o.path2 = to;
    o.path2_len = (uint32_t)strlen(to);
    return o;
}

/* Logs and applies one transaction as its own committed batch. */
static struct zk_apply_result *apply_n(struct fx *f, struct zk_op *ops,
                                       uint32_t n)
{
    struct zk_txn txn = {++f->time_ms, n, ops};
    uint8_t *buf;
    size_t len;
    struct zk_store_batch *b;
    struct zk_apply_result *res = NULL;
    ck_assert_int_eq(zk_txn_encode(&txn, &buf, &len), 0);
    ck_assert_int_eq(zk_store_batch_begin(f->s, &b), 0);
    f->zxid++;
    ck_assert_int_eq(zk_store_batch_log(b, f->zxid, buf, len), 0);
    ck_assert_int_eq(zk_store_batch_apply(b, f->zxid, buf, len, &res), 0);
    ck_assert_int_eq(zk_store_batch_commit(b), 0);
    free(buf);
    ck_assert_uint_eq(res->zxid, f->zxid);
    return res;
}

/* Applies one op; returns its error. */
static int apply1(struct fx *f, struct zk_op op)
{
    struct zk_apply_result *res = apply_n(f, &op, 1);
    int err = res->err;
    ck_assert_int_eq(res->ops[0].err, err);
    zk_apply_result_free(res);
    return err;
}

static uint64_t ino_of(struct fx *f, const char *path)
{
    struct zk_stat st;
    ck_assert_int_eq(zk_store_resolve(f->s, path, &st), 0);
    return st.ino;
}

static struct zk_stat stat_of(struct fx *f, const char *path)
{
    struct zk_stat st;
    int rc = zk_store_resolve(f->s, path, &st);
    ck_assert_msg(rc == 0, "%s: %s", path, zk_strerror(rc));
    return st;
}

static int exists(struct fx *f, const char *path)
{
    struct zk_stat st;
    return zk_store_resolve(f->s, path, &st) == 0;
}

static void assert_data(struct fx *f, const char *path, const char *want)
{
    uint8_t *d;
    size_t len;
    struct zk_stat st;
    ck_assert_int_eq(zk_store_read(f->s, ino_of(f, path), &d, &len, &st), 0);
    ck_assert_uint_eq(len, strlen(want));
    ck_assert_uint_eq(st.data_length, len);
    if (len)
        ck_assert(memcmp(d, want, len) == 0);
    free(d);
}

static int mkdir_op(struct fx *f, const char *path)
{
    struct zk_op o = mk(ZK_OP_CREATE, path);
    o.flags = ZK_CREATE_DIR;
    o.mode = 0755;
    return apply1(f, o);
}

static int mkfile(struct fx *f, const char *path, const char *data)
{
    return apply1(f, mk_data(ZK_OP_CREATE, path, data));
}

/* ------------------------------------------------------------------ */

START_TEST(create_open_reopen)
{
    struct fx f;
    struct zk_stat st;
    struct zk_store_info info;
    fx_open(&f);
    ck_assert_int_eq(zk_store_getattr(f.s, ZK_INO_ROOT, &st), 0);
    ck_assert_uint_eq(st.kind, ZK_KIND_DIR);
    ck_assert_uint_eq(st.mode, 0755);
    ck_assert_uint_eq(st.uid, 0);
    ck_assert_uint_eq(st.children_flags, 0);
    ck_assert_int_eq(zk_store_info(f.s, &info), 0);
    ck_assert_uint_eq(info.znodes, 1);
    ck_assert_uint_eq(info.next_ino, ZK_INO_FIRST_NODE);
    ck_assert_uint_eq(info.last_applied_zxid, 0);
    ck_assert_int_eq(mkdir_op(&f, "/a"), 0);
    ck_assert_int_eq(mkfile(&f, "/a/f", "hello"), 0);
    uint64_t ino = ino_of(&f, "/a/f");
    ck_assert_uint_eq(ino, ZK_INO_FIRST_NODE + 1);
    fx_reopen(&f);
    ck_assert_uint_eq(ino_of(&f, "/a/f"), ino);
    assert_data(&f, "/a/f", "hello");
    ck_assert_int_eq(zk_store_info(f.s, &info), 0);
    ck_assert_uint_eq(info.znodes, 3);
    ck_assert_uint_eq(info.data_bytes, 5);
    ck_assert_uint_eq(info.last_applied_zxid, f.zxid);
    ck_assert_uint_eq(info.log_first_zxid, (UINT64_C(1) << 32) + 1);
    ck_assert_uint_eq(info.log_last_zxid, f.zxid);
    ck_assert_uint_gt(info.file_bytes, 0);
    fx_close(&f);
}
END_TEST

START_TEST(open_missing_and_busy)
{
    struct fx f;
    struct zk_store *s2;
    fx_mkdir(&f);
    ck_assert_int_eq(zk_store_open(f.dir, 0, &f.s), -ENOENT);
    ck_assert_int_eq(zk_store_open(f.dir, 1, &f.s), 0);
    ck_assert_int_eq(zk_store_open(f.dir, 1, &s2), -EBUSY);
    fx_close(&f);
}
END_TEST

START_TEST(foreign_dir_refused)
{
    struct fx f;
    char path[128];
    fx_mkdir(&f);
    snprintf(path, sizeof(path), "%s/notes.txt", f.dir);
    FILE *fp = fopen(path, "w");
    fputs("mine", fp);
    fclose(fp);
    ck_assert_int_eq(zk_store_open(f.dir, 1, &f.s), ZK_EFOREIGN);
    ck_assert_int_eq(access(path, F_OK), 0);
    /* myid alone is fine: the daemon keeps it there. */
    remove(path);
    snprintf(path, sizeof(path), "%s/myid", f.dir);
    fp = fopen(path, "w");
    fputs("1\n", fp);
    fclose(fp);
    ck_assert_int_eq(zk_store_open(f.dir, 1, &f.s), 0);
    fx_close(&f);
}
END_TEST

START_TEST(garbage_store_file_refused)
{
    struct fx f;
    char path[128];
    fx_mkdir(&f);
    snprintf(path, sizeof(path), "%s/zkfs.mdb", f.dir);
    FILE *fp = fopen(path, "w");
    for (int i = 0; i < 20000; i++)
        fputc("garbage!"[i % 8], fp);
    fclose(fp);
    int rc = zk_store_open(f.dir, 1, &f.s);
    ck_assert_msg(rc == ZK_ECORRUPT || rc == ZK_EFOREIGN, "%d", rc);
    fx_close(&f);
}
END_TEST

START_TEST(basic_reads)
{
    struct fx f;
    struct zk_stat st;
    char buf[ZK_PATH_MAX];
    fx_open(&f);
    ck_assert_int_eq(mkdir_op(&f, "/d"), 0);
    ck_assert_int_eq(mkfile(&f, "/d/x", "1"), 0);
    ck_assert_int_eq(mkfile(&f, "/d/y", ""), 0);
    uint64_t d = ino_of(&f, "/d");
    ck_assert_int_eq(zk_store_lookup(f.s, d, "x", &st), 0);
    ck_assert_uint_eq(st.parent, d);
    ck_assert_uint_eq(st.kind, ZK_KIND_FILE);
    ck_assert_int_eq(zk_store_lookup(f.s, d, "z", &st), -ENOENT);
    ck_assert_int_eq(zk_store_lookup(f.s, ino_of(&f, "/d/x"), "z", &st),
                     -ENOTDIR);
    ck_assert_int_eq(zk_store_lookup(f.s, 999, "z", &st), -ENOENT);
    ck_assert_int_eq(zk_store_resolve(f.s, "/d/x/q", &st), -ENOTDIR);
    ck_assert_int_eq(zk_store_resolve(f.s, "/nope/q", &st), -ENOENT);
    ck_assert_int_eq(zk_store_resolve(f.s, "/", &st), 0);
    ck_assert_uint_eq(st.ino, ZK_INO_ROOT);
    ck_assert_uint_eq(st.num_children, 1);
    ck_assert_int_eq(zk_store_path(f.s, ino_of(&f, "/d/y"), buf, sizeof(buf)),
                     0);
    ck_assert_str_eq(buf, "/d/y");
    ck_assert_int_eq(zk_store_path(f.s, ZK_INO_ROOT, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "/");
    ck_assert_int_eq(zk_store_path(f.s, ino_of(&f, "/d/y"), buf, 4), -ERANGE);
    assert_data(&f, "/d/y", "");
    ck_assert_int_eq(zk_store_getattr(f.s, 12345, &st), -ENOENT);
    fx_close(&f);
}
END_TEST

struct list_acc {
    int n;
    char names[16][32];
    int stop_at;
};

static int list_cb(void *arg, const char *name, const struct zk_stat *st)
{
    struct list_acc *acc = arg;
    ck_assert_uint_ne(st->ino, 0);
    snprintf(acc->names[acc->n], sizeof(acc->names[0]), "%s", name);
    acc->n++;
    return acc->n == acc->stop_at ? 42 : 0;
}

START_TEST(list_in_name_order)
{
    struct fx f;
    struct list_acc acc;
    fx_open(&f);
    ck_assert_int_eq(mkdir_op(&f, "/d"), 0);
    ck_assert_int_eq(mkdir_op(&f, "/e"), 0);
    ck_assert_int_eq(mkfile(&f, "/e/zzz", ""), 0);
    ck_assert_int_eq(mkfile(&f, "/d/b", ""), 0);
    ck_assert_int_eq(mkfile(&f, "/d/a", ""), 0);
    ck_assert_int_eq(mkfile(&f, "/d/c", ""), 0);
    memset(&acc, 0, sizeof(acc));
    ck_assert_int_eq(zk_store_list(f.s, ino_of(&f, "/d"), list_cb, &acc), 0);
    ck_assert_int_eq(acc.n, 3);
    ck_assert_str_eq(acc.names[0], "a");
    ck_assert_str_eq(acc.names[1], "b");
    ck_assert_str_eq(acc.names[2], "c");
    memset(&acc, 0, sizeof(acc));
    acc.stop_at = 2;
    ck_assert_int_eq(zk_store_list(f.s, ino_of(&f, "/d"), list_cb, &acc), 42);
    ck_assert_int_eq(acc.n, 2);
    memset(&acc, 0, sizeof(acc));
    ck_assert_int_eq(zk_store_list(f.s, ZK_INO_ROOT, list_cb, &acc), 0);
    ck_assert_int_eq(acc.n, 2);
    ck_assert_int_eq(zk_store_list(f.s, ino_of(&f, "/d/a"), list_cb, &acc),
                     -ENOTDIR);
    fx_close(&f);
}
END_TEST

START_TEST(create_rules)
{
    struct fx f;
    fx_open(&f);
    ck_assert_int_eq(mkfile(&f, "/f", "x"), 0);
    ck_assert_int_eq(mkfile(&f, "/f", "x"), -EEXIST);
    ck_assert_int_eq(mkfile(&f, "/", "x"), -EEXIST);
    ck_assert_int_eq(mkfile(&f, "/no/g", "x"), -ENOENT);
    ck_assert_int_eq(mkfile(&f, "/f/g", "x"), -ENOTDIR);
    ck_assert_int_eq(mkdir_op(&f, "/f/g"), -ENOTDIR);
    ck_assert_int_eq(mkfile(&f, "/.zkfs", ""), -EPERM);
    ck_assert_int_eq(mkdir_op(&f, "/zookeeper"), -EPERM);
    ck_assert_int_eq(mkdir_op(&f, "/d"), 0);
    ck_assert_int_eq(mkfile(&f, "/d/zookeeper", ""), 0);  /* only at root */
    ck_assert_int_eq(mkfile(&f, "/d/a/", ""), -EINVAL);
    ck_assert_int_eq(mkfile(&f, "relative", ""), -EINVAL);
    struct zk_op o = mk(ZK_OP_CREATE, "/eph");
    o.flags = ZK_CREATE_EPHEMERAL;
    ck_assert_int_eq(apply1(&f, o), -EINVAL);   /* no session */
    o = mk(ZK_OP_CREATE, "/m");
    o.mode = 0100640;
    o.uid = 7;
    o.gid = 8;
    ck_assert_int_eq(apply1(&f, o), 0);
    struct zk_stat st = stat_of(&f, "/m");
    ck_assert_uint_eq(st.mode, 0640);
    ck_assert_uint_eq(st.uid, 7);
    ck_assert_uint_eq(st.gid, 8);
    fx_close(&f);
}
END_TEST

START_TEST(create_stat_fields)
{
    struct fx f;
    fx_open(&f);
    struct zk_stat root0 = stat_of(&f, "/");
    ck_assert_int_eq(mkdir_op(&f, "/d"), 0);
    uint64_t z1 = f.zxid, t1 = f.time_ms;
    struct zk_stat d = stat_of(&f, "/d");
    ck_assert_uint_eq(d.czxid, z1);
    ck_assert_uint_eq(d.mzxid, z1);
    ck_assert_uint_eq(d.pzxid, z1);
    ck_assert_uint_eq(d.ctime_ms, t1);
    ck_assert_uint_eq(d.mtime_ms, t1);
    ck_assert_int_eq(d.version, 0);
    ck_assert_int_eq(d.cversion, 0);
    ck_assert_int_eq(d.aversion, 0);
    ck_assert_uint_eq(d.ephemeral_owner, 0);
    ck_assert_uint_eq(d.num_children, 0);
    struct zk_stat root = stat_of(&f, "/");
    ck_assert_int_eq(root.cversion, root0.cversion + 1);
    ck_assert_uint_eq(root.pzxid, z1);
    ck_assert_uint_eq(root.mzxid, root0.mzxid);   /* ZooKeeper: unchanged */
    ck_assert_uint_eq(root.num_children, 1);
    ck_assert_int_eq(mkfile(&f, "/d/f", "abc"), 0);
    uint64_t z2 = f.zxid;
    struct zk_stat fst = stat_of(&f, "/d/f");
    ck_assert_uint_eq(fst.data_length, 3);
    d = stat_of(&f, "/d");
    ck_assert_int_eq(d.cversion, 1);
    ck_assert_uint_eq(d.pzxid, z2);
    ck_assert_uint_eq(d.mzxid, z1);
    ck_assert_uint_eq(d.num_children, 1);
    ck_assert_uint_eq(d.cmtime_ms, f.time_ms);
    ck_assert_uint_eq(d.chtime_ms, f.time_ms);
    ck_assert_int_eq(apply1(&f, mk(ZK_OP_DELETE, "/d/f")), 0);
    d = stat_of(&f, "/d");
    ck_assert_int_eq(d.cversion, 2);
    ck_assert_uint_eq(d.pzxid, f.zxid);
    ck_assert_uint_eq(d.num_children, 0);
    fx_close(&f);
}
END_TEST

START_TEST(delete_rules)
{
    struct fx f;
    fx_open(&f);
    ck_assert_int_eq(mkdir_op(&f, "/d"), 0);
    ck_assert_int_eq(mkfile(&f, "/d/f", "x"), 0);
    ck_assert_int_eq(apply1(&f, mk(ZK_OP_DELETE, "/nope")), -ENOENT);
    ck_assert_int_eq(apply1(&f, mk(ZK_OP_DELETE, "/d")), -ENOTEMPTY);
    ck_assert_int_eq(apply1(&f, mk(ZK_OP_DELETE, "/")), -EBUSY);
    struct zk_op o = mk(ZK_OP_DELETE, "/d/f");
    o.version = 3;
    ck_assert_int_eq(apply1(&f, o), ZK_EBADVERSION);
    o.version = 0;
    o.ino = 999;
    ck_assert_int_eq(apply1(&f, o), -ENOENT);
    o.ino = ino_of(&f, "/d/f");
    ck_assert_int_eq(apply1(&f, o), 0);
    ck_assert(!exists(&f, "/d/f"));
    ck_assert_int_eq(apply1(&f, mk(ZK_OP_DELETE, "/d")), 0);
    struct zk_store_info info;
    ck_assert_int_eq(zk_store_info(f.s, &info), 0);
    ck_assert_uint_eq(info.znodes, 1);
    ck_assert_uint_eq(info.data_bytes, 0);
    fx_close(&f);
}
END_TEST

START_TEST(set_data_rules)
{
    struct fx f;
    fx_open(&f);
    ck_assert_int_eq(mkfile(&f, "/f", "one"), 0);
    uint64_t cz = f.zxid;
    ck_assert_int_eq(apply1(&f, mk_data(ZK_OP_SET_DATA, "/f", "two!")), 0);
    struct zk_stat st = stat_of(&f, "/f");
    ck_assert_int_eq(st.version, 1);
    ck_assert_uint_eq(st.mzxid, f.zxid);
    ck_assert_uint_eq(st.czxid, cz);
    ck_assert_uint_eq(st.mtime_ms, f.time_ms);
    ck_assert_uint_eq(st.data_length, 4);
    assert_data(&f, "/f", "two!");
    struct zk_op o = mk_data(ZK_OP_SET_DATA, "/f", "three");
    o.version = 0;
    ck_assert_int_eq(apply1(&f, o), ZK_EBADVERSION);
    o.version = 1;
    ck_assert_int_eq(apply1(&f, o), 0);
    assert_data(&f, "/f", "three");
    ck_assert_int_eq(apply1(&f, mk_data(ZK_OP_SET_DATA, "/g", "x")), -ENOENT);
    /* A directory's own data (user.zkfs.data). */
    ck_assert_int_eq(mkdir_op(&f, "/d"), 0);
    ck_assert_int_eq(apply1(&f, mk_data(ZK_OP_SET_DATA, "/d", "dd")), 0);
    assert_data(&f, "/d", "dd");
    ck_assert_int_eq(apply1(&f, mk_data(ZK_OP_SET_DATA, "/f", "")), 0);
    assert_data(&f, "/f", "");
    struct zk_store_info info;
    ck_assert_int_eq(zk_store_info(f.s, &info), 0);
    ck_assert_uint_eq(info.data_bytes, 2);
    fx_close(&f);
}
END_TEST

Suite *store_suite(void);
Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("store");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, create_open_reopen);
    tcase_add_test(tc, open_missing_and_busy);
    tcase_add_test(tc, foreign_dir_refused);
    tcase_add_test(tc, garbage_store_file_refused);
    tcase_add_test(tc, basic_reads);
    tcase_add_test(tc, list_in_name_order);
    tcase_add_test(tc, create_rules);
    tcase_add_test(tc, create_stat_fields);
    tcase_add_test(tc, delete_rules);
    tcase_add_test(tc, set_data_rules);
    suite_add_tcase(s, tc);
    return s;
}
