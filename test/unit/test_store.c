/*
 * test_store.c — the LMDB store: create/open/reopen, refusal of foreign,
 * corrupt and other-format directories, every apply rule with ZooKeeper's
 * stat semantics, atomic multis, sessions and ephemerals, rename, the log,
 * and a full map (ENOSPC) that leaves the store intact.
 *
 * Each test works in its own mkdtemp directory under /tmp and removes it.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zk_common.h"
#include "zk_store.h"
#include "zk_txn.h"
#include "store_fx.h"
#include "../../store/store_int.h"

struct fx {
    char dir[64];
    struct zk_store *s;
    uint64_t zxid;
    uint64_t time_ms;
};

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
    zk_test_rmtree(f->dir);
}

static struct zk_op mk(uint8_t type, const char *path)
{
    return zk_test_op(type, path, NULL);
}

static struct zk_op mk_data(uint8_t type, const char *path, const char *d)
{
    struct zk_op o = mk(type, path);
    o.data = (const uint8_t *)d;
    o.data_len = (uint32_t)strlen(d);
    return o;
}

static struct zk_op mk_rename(const char *from, const char *to)
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
    struct zk_apply_result *res =
        zk_test_commit(f->s, ++f->zxid, ++f->time_ms, ops, n);
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

/* The file id stays across a reopen; the same store copied into a new
 * file (a directory put back from a copy) has another one, though the
 * contents and the meta values are the same; with the file moved back
 * over the original the id is still the copy's. */
START_TEST(file_id_names_the_file)
{
    struct fx f;
    uint64_t a = 0, b = 0, c = 0;
    char src[128], dst[128];
    fx_open(&f);
    ck_assert_int_eq(mkdir_op(&f, "/a"), 0);
    ck_assert_int_eq(zk_store_file_id(f.s, &a), 0);
    fx_reopen(&f);
    ck_assert_int_eq(zk_store_file_id(f.s, &b), 0);
    ck_assert_uint_eq(a, b);
    zk_store_close(f.s);
    f.s = NULL;
    snprintf(src, sizeof(src), "%s/zkfs.mdb", f.dir);
    snprintf(dst, sizeof(dst), "%s/zkfs.mdb.copy", f.dir);
    zk_test_copy_file(src, dst);
    ck_assert_int_eq(rename(dst, src), 0);
    ck_assert_int_eq(zk_store_open(f.dir, 0, &f.s), 0);
    ck_assert_uint_eq(ino_of(&f, "/a"), ZK_INO_FIRST_NODE);
    ck_assert_int_eq(zk_store_file_id(f.s, &c), 0);
    ck_assert_uint_ne(a, c);
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
    ck_assert_int_eq(apply1(&f, o), ZK_ESESSION);   /* no session */
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


/* A set's result carries the stat its own op left (`zkfs set` answers
 * with it: read from the store at answer time, it showed a later write,
 * which t_ens_linear caught as a version jumping by 2). */
START_TEST(set_data_result_carries_its_stat)
{
    struct fx f;
    fx_open(&f);
    ck_assert_int_eq(mkfile(&f, "/f", "one"), 0);
    struct zk_op o = mk_data(ZK_OP_SET_DATA, "/f", "two!");
    o.version = 0;
    struct zk_apply_result *res = apply_n(&f, &o, 1);
    ck_assert_int_eq(res->err, 0);
    uint64_t z1 = f.zxid;
    ck_assert_int_eq(apply1(&f, mk_data(ZK_OP_SET_DATA, "/f", "x")), 0);
    ck_assert_int_eq(stat_of(&f, "/f").version, 2);
    ck_assert_uint_eq(res->ops[0].st.ino, ino_of(&f, "/f"));
    ck_assert_int_eq(res->ops[0].st.version, 1);
    ck_assert_uint_eq(res->ops[0].st.mzxid, z1);
    ck_assert_uint_eq(res->ops[0].st.data_length, 4);
    zk_apply_result_free(res);
    /* A refused set leaves it zeroed. */
    o.version = 0;
    res = apply_n(&f, &o, 1);
    ck_assert_int_eq(res->err, ZK_EBADVERSION);
    ck_assert_uint_eq(res->ops[0].st.ino, 0);
    zk_apply_result_free(res);
    fx_close(&f);
}
END_TEST


START_TEST(append_and_efbig)
{
    struct fx f;
    fx_open(&f);
    ck_assert_int_eq(mkfile(&f, "/f", "ab"), 0);
    ck_assert_int_eq(apply1(&f, mk_data(ZK_OP_APPEND, "/f", "cd")), 0);
    assert_data(&f, "/f", "abcd");
    struct zk_stat st = stat_of(&f, "/f");
    ck_assert_int_eq(st.version, 1);
    ck_assert_uint_eq(st.mzxid, f.zxid);
    /* Fill to exactly ZK_DATA_MAX, then one byte more fails. */
    char *big = malloc(ZK_DATA_MAX + 1);
    memset(big, 'z', ZK_DATA_MAX - 4);
    big[ZK_DATA_MAX - 4] = '\0';
    ck_assert_int_eq(apply1(&f, mk_data(ZK_OP_APPEND, "/f", big)), 0);
    st = stat_of(&f, "/f");
    ck_assert_uint_eq(st.data_length, ZK_DATA_MAX);
    ck_assert_int_eq(apply1(&f, mk_data(ZK_OP_APPEND, "/f", "!")), -EFBIG);
    st = stat_of(&f, "/f");
    ck_assert_uint_eq(st.data_length, ZK_DATA_MAX);
    ck_assert_int_eq(st.version, 2);
    ck_assert_int_eq(apply1(&f, mk_data(ZK_OP_APPEND, "/none", "!")),
                     -ENOENT);
    struct zk_store_info info;
    ck_assert_int_eq(zk_store_info(f.s, &info), 0);
    ck_assert_uint_eq(info.data_bytes, ZK_DATA_MAX);
    /* An APPEND to an empty file. */
    ck_assert_int_eq(mkfile(&f, "/e", ""), 0);
    ck_assert_int_eq(apply1(&f, mk_data(ZK_OP_APPEND, "/e", "x")), 0);
    assert_data(&f, "/e", "x");
    free(big);
    fx_close(&f);
}
END_TEST

START_TEST(set_attr_and_check)
{
    struct fx f;
    fx_open(&f);
    ck_assert_int_eq(mkfile(&f, "/f", "x"), 0);
    struct zk_op o = mk(ZK_OP_SET_ATTR, "/f");
    o.attr_mask = ZK_ATTR_MODE;
    o.mode = 0600;
    o.uid = 55;
    ck_assert_int_eq(apply1(&f, o), 0);
    struct zk_stat st = stat_of(&f, "/f");
    ck_assert_uint_eq(st.mode, 0600);
    ck_assert_uint_eq(st.uid, 0);          /* not in the mask */
    ck_assert_int_eq(st.aversion, 1);
    ck_assert_int_eq(st.version, 0);
    ck_assert_uint_eq(st.chtime_ms, f.time_ms);
    o.attr_mask = ZK_ATTR_UID | ZK_ATTR_GID;
    o.gid = 66;
    o.version = 0;                         /* checked against aversion */
    ck_assert_int_eq(apply1(&f, o), ZK_EBADVERSION);
    o.version = 1;
    ck_assert_int_eq(apply1(&f, o), 0);
    st = stat_of(&f, "/f");
    ck_assert_uint_eq(st.uid, 55);
    ck_assert_uint_eq(st.gid, 66);
    ck_assert_int_eq(st.aversion, 2);
    o = mk(ZK_OP_CHECK, "/f");
    o.version = 0;
    ck_assert_int_eq(apply1(&f, o), 0);
    o.version = 1;
    ck_assert_int_eq(apply1(&f, o), ZK_EBADVERSION);
    ck_assert_int_eq(apply1(&f, mk(ZK_OP_CHECK, "/g")), -ENOENT);
    o = mk(ZK_OP_SET_ATTR, "/");
    o.attr_mask = ZK_ATTR_MODE | ZK_ATTR_UID;
    o.mode = 0777;
    o.uid = 1000;
    ck_assert_int_eq(apply1(&f, o), 0);    /* the daemon may chmod "/" */
    st = stat_of(&f, "/");
    ck_assert_uint_eq(st.mode, 0777);
    ck_assert_uint_eq(st.uid, 1000);
    fx_close(&f);
}
END_TEST

/* ZK_ATTR_MTIME: an explicit time (8 bytes), "now" (no data), a bad
 * length; it changes st_mtime and st_ctime, not ZooKeeper's mtime. */
START_TEST(set_attr_mtime)
{
    struct fx f;
    uint8_t t[ZK_ATTR_TIME_LEN];
    fx_open(&f);
    ck_assert_int_eq(mkfile(&f, "/f", "x"), 0);
    struct zk_stat before = stat_of(&f, "/f");
    struct zk_op o = mk(ZK_OP_SET_ATTR, "/f");
    o.attr_mask = ZK_ATTR_MTIME;
    zk_put_be64(t, 981173106789ull);
    o.data = t;
    o.data_len = sizeof(t);
    ck_assert_int_eq(apply1(&f, o), 0);
    struct zk_stat st = stat_of(&f, "/f");
    ck_assert_uint_eq(st.cmtime_ms, 981173106789ull);
    ck_assert_uint_eq(st.mtime_ms, before.mtime_ms);
    ck_assert_uint_eq(st.chtime_ms, f.time_ms);
    ck_assert_uint_eq(st.mode, before.mode);   /* not in the mask */
    o.data_len = 0;                            /* now */
    ck_assert_int_eq(apply1(&f, o), 0);
    ck_assert_uint_eq(stat_of(&f, "/f").cmtime_ms, f.time_ms);
    o.data = t;
    o.data_len = 4;
    ck_assert_int_eq(apply1(&f, o), -EINVAL);
    o.attr_mask = 0x80;
    o.data_len = 0;
    ck_assert_int_eq(apply1(&f, o), -EINVAL);
    fx_close(&f);
}
END_TEST

START_TEST(set_children_and_sequential)
{
    struct fx f;
    struct zk_apply_result *res;
    fx_open(&f);
    ck_assert_int_eq(mkdir_op(&f, "/q"), 0);
    ck_assert_int_eq(mkfile(&f, "/f", ""), 0);
    struct zk_op o = mk(ZK_OP_SET_CHILDREN, "/f");
    o.flags = ZK_CHILDREN_SEQUENTIAL;
    ck_assert_int_eq(apply1(&f, o), -ENOTDIR);
    o = mk(ZK_OP_SET_CHILDREN, "/q");
    o.flags = 4;
    ck_assert_int_eq(apply1(&f, o), -EINVAL);
    o.flags = ZK_CHILDREN_SEQUENTIAL;
    ck_assert_int_eq(apply1(&f, o), 0);
    ck_assert_uint_eq(stat_of(&f, "/q").children_flags,
                      ZK_CHILDREN_SEQUENTIAL);
    struct zk_op c = mk_data(ZK_OP_CREATE, "/q/item-", "x");
    res = apply_n(&f, &c, 1);
    ck_assert_int_eq(res->err, 0);
    ck_assert_str_eq(res->ops[0].path, "/q/item-0000000000");
    ck_assert_uint_eq(res->ops[0].ino, ino_of(&f, "/q/item-0000000000"));
    ck_assert_uint_eq(res->nchanges, 1);
    ck_assert_uint_eq(res->changes[0].kind, ZK_CHANGE_CREATE);
    ck_assert_str_eq(res->changes[0].name, "item-0000000000");
    ck_assert_uint_eq(res->changes[0].parent, ino_of(&f, "/q"));
    zk_apply_result_free(res);
    ck_assert_int_eq(apply1(&f, mk(ZK_OP_DELETE, "/q/item-0000000000")), 0);
    res = apply_n(&f, &c, 1);
    ck_assert_str_eq(res->ops[0].path, "/q/item-0000000002");
    zk_apply_result_free(res);
    /* Sequential by flag in a plain directory. */
    c = mk(ZK_OP_CREATE, "/lock-");
    c.flags = ZK_CREATE_SEQUENTIAL;
    int32_t cv = stat_of(&f, "/").cversion;
    res = apply_n(&f, &c, 1);
    char want[64];
    snprintf(want, sizeof(want), "/lock-%010d", cv);
    ck_assert_str_eq(res->ops[0].path, want);
    zk_apply_result_free(res);
    ck_assert(exists(&f, want));
    fx_close(&f);
}
END_TEST

START_TEST(multi_rolls_back)
{
    struct fx f;
    struct zk_store_info before, after;
    fx_open(&f);
    ck_assert_int_eq(mkfile(&f, "/keep", "k"), 0);
    ck_assert_int_eq(zk_store_info(f.s, &before), 0);
    struct zk_op ops[4];
    ops[0] = mk(ZK_OP_CREATE, "/a");
    ops[0].flags = ZK_CREATE_DIR;
    ops[1] = mk_data(ZK_OP_CREATE, "/a/b", "bb");
    ops[2] = mk_data(ZK_OP_SET_DATA, "/keep", "changed");
    ops[3] = mk(ZK_OP_CHECK, "/keep");
    ops[3].version = 7;
    struct zk_apply_result *res = apply_n(&f, ops, 4);
    ck_assert_int_eq(res->err, ZK_EBADVERSION);
    ck_assert_uint_eq(res->failed_op, 3);
    ck_assert_int_eq(res->ops[0].err, 0);
    ck_assert_int_eq(res->ops[3].err, ZK_EBADVERSION);
    ck_assert_uint_eq(res->nchanges, 0);
    zk_apply_result_free(res);
    ck_assert(!exists(&f, "/a"));
    assert_data(&f, "/keep", "k");
    ck_assert_int_eq(stat_of(&f, "/keep").version, 0);
    ck_assert_int_eq(zk_store_info(f.s, &after), 0);
    ck_assert_uint_eq(after.next_ino, before.next_ino);
    ck_assert_uint_eq(after.znodes, before.znodes);
    ck_assert_uint_eq(after.data_bytes, before.data_bytes);
    ck_assert_uint_eq(after.last_applied_zxid, f.zxid);  /* zxid consumed */
    /* Failing in the middle: later ops report -ECANCELED. */
    ops[3].version = 0;
    ops[1] = mk(ZK_OP_DELETE, "/nope");
    res = apply_n(&f, ops, 4);
    ck_assert_int_eq(res->err, -ENOENT);
    ck_assert_uint_eq(res->failed_op, 1);
    ck_assert_int_eq(res->ops[2].err, -ECANCELED);
    zk_apply_result_free(res);
    ck_assert(!exists(&f, "/a"));
    /* The same multi succeeding: every op's effect, in order. */
    ops[1] = mk_data(ZK_OP_CREATE, "/a/b", "bb");
    ops[3].version = 1;
    res = apply_n(&f, ops, 4);
    ck_assert_int_eq(res->err, 0);
    ck_assert_uint_eq(res->nchanges, 3);
    zk_apply_result_free(res);
    assert_data(&f, "/a/b", "bb");
    assert_data(&f, "/keep", "changed");
    fx_close(&f);
}
END_TEST

static struct zk_op mk_session(uint8_t type, uint64_t session)
{
    struct zk_op o = mk(type, NULL);
    o.session = session;
    o.timeout_ms = 4000;
    o.owner = "hostA";
    o.owner_len = 5;
    return o;
}

static struct zk_op mk_ephemeral(const char *path, uint64_t session,
                                 const char *owner)
{
    struct zk_op o = mk(ZK_OP_CREATE, path);
    o.flags = ZK_CREATE_EPHEMERAL;
    o.session = session;
    o.owner = owner;
    o.owner_len = (uint32_t)strlen(owner);
    return o;
}

struct sess_acc {
    int n;
    uint64_t ids[8];
};

static int session_cb(void *arg, uint64_t session, uint32_t timeout_ms,
                      const char *owner)
{
    struct sess_acc *acc = arg;
    ck_assert_uint_eq(timeout_ms, 4000);
    ck_assert_str_eq(owner, "hostA");
    acc->ids[acc->n++] = session;
    return 0;
}

/* Lists sessions 5 and 6, closes 5 and checks what went. */
static void session_close_checks(struct fx *f)
{
    struct zk_store_info info;
    struct sess_acc acc = {0, {0}};
    ck_assert_int_eq(zk_store_sessions(f->s, session_cb, &acc), 0);
    ck_assert_int_eq(acc.n, 2);
    ck_assert_uint_eq(acc.ids[0], 5);
    ck_assert_uint_eq(acc.ids[1], 6);
    ck_assert_int_eq(zk_store_info(f->s, &info), 0);
    ck_assert_uint_eq(info.sessions, 2);
    uint64_t znodes = info.znodes;
    int32_t cv = stat_of(f, "/ed").cversion;
    /* Closing session 5 deletes its three ephemerals, nothing else. */
    struct zk_op c = mk_session(ZK_OP_SESSION_CLOSE, 5);
    struct zk_apply_result *res = apply_n(f, &c, 1);
    ck_assert_int_eq(res->err, 0);
    ck_assert_uint_eq(res->nchanges, 3);
    for (uint32_t i = 0; i < res->nchanges; i++)
        ck_assert_uint_eq(res->changes[i].kind, ZK_CHANGE_DELETE);
    zk_apply_result_free(res);
    ck_assert(!exists(f, "/e1"));
    ck_assert(!exists(f, "/ed/x"));
    ck_assert(!exists(f, "/edir"));
    ck_assert(exists(f, "/ed/sub"));
    ck_assert(exists(f, "/other"));
    ck_assert_int_eq(stat_of(f, "/ed").cversion, cv + 1);
    ck_assert_uint_eq(stat_of(f, "/ed").pzxid, f->zxid);
    ck_assert_int_eq(zk_store_info(f->s, &info), 0);
    ck_assert_uint_eq(info.sessions, 1);
    ck_assert_uint_eq(info.znodes, znodes - 3);
    /* Unknown session: success, nothing done; and it survives reopen. */
    c = mk_session(ZK_OP_SESSION_CLOSE, 5);
    res = apply_n(f, &c, 1);
    ck_assert_int_eq(res->err, 0);
    ck_assert_uint_eq(res->nchanges, 0);
    zk_apply_result_free(res);
    fx_reopen(f);
    memset(&acc, 0, sizeof(acc));
    ck_assert_int_eq(zk_store_sessions(f->s, session_cb, &acc), 0);
    ck_assert_int_eq(acc.n, 1);
    ck_assert_uint_eq(acc.ids[0], 6);
    ck_assert_uint_eq(stat_of(f, "/other").ephemeral_owner, 6);
}

START_TEST(ephemerals_and_sessions)
{
    struct fx f;
    char owner[64];
    fx_open(&f);
    ck_assert_int_eq(apply1(&f, mk_session(ZK_OP_SESSION_OPEN, 5)), 0);
    ck_assert_int_eq(apply1(&f, mk_session(ZK_OP_SESSION_OPEN, 6)), 0);
    ck_assert_int_eq(apply1(&f, mk_session(ZK_OP_SESSION_OPEN, 0)), -EINVAL);
    ck_assert_int_eq(apply1(&f, mk_ephemeral("/e1", 5, "hostA:42")), 0);
    ck_assert_int_eq(apply1(&f, mk_ephemeral("/other", 6, "hostB:1")), 0);
    struct zk_stat st = stat_of(&f, "/e1");
    ck_assert_uint_eq(st.ephemeral_owner, 5);
    ck_assert_int_eq(zk_store_owner(f.s, st.ino, owner, sizeof(owner)), 0);
    ck_assert_str_eq(owner, "hostA:42");
    ck_assert_int_eq(zk_store_owner(f.s, st.ino, owner, 4), -ERANGE);
    ck_assert_int_eq(zk_store_owner(f.s, ZK_INO_ROOT, owner, 64), -ENODATA);
    ck_assert_int_eq(mkfile(&f, "/e1/x", ""), -ENOTDIR);
    /* An "ephemeral" directory: files in it are ephemeral, dirs not. */
    ck_assert_int_eq(mkdir_op(&f, "/ed"), 0);
    struct zk_op o = mk(ZK_OP_SET_CHILDREN, "/ed");
    o.flags = ZK_CHILDREN_EPHEMERAL;
    ck_assert_int_eq(apply1(&f, o), 0);
    ck_assert_int_eq(mkfile(&f, "/ed/nosession", ""), ZK_ESESSION);
    /* A session that was never opened (or is closed) owns nothing. */
    o = mk_ephemeral("/ed/unopened", 0x7777, "hostA:43");
    ck_assert_int_eq(apply1(&f, o), ZK_ESESSION);
    o = mk_ephemeral("/ed/x", 5, "hostA:43");
    o.flags = 0;
    ck_assert_int_eq(apply1(&f, o), 0);
    ck_assert_uint_eq(stat_of(&f, "/ed/x").ephemeral_owner, 5);
    ck_assert_int_eq(mkdir_op(&f, "/ed/sub"), 0);
    ck_assert_uint_eq(stat_of(&f, "/ed/sub").ephemeral_owner, 0);
    /* An ephemeral directory has no children. */
    o = mk_ephemeral("/edir", 5, "hostA:44");
    o.flags |= ZK_CREATE_DIR;
    ck_assert_int_eq(apply1(&f, o), 0);
    ck_assert_int_eq(mkdir_op(&f, "/edir/sub"), -EPERM);
    ck_assert_int_eq(mkfile(&f, "/edir/f", ""), -EPERM);
    session_close_checks(&f);
    fx_close(&f);
}
END_TEST

/* A DELETE change, and a RENAME's replaced node, carry the removed node's
 * last stat (fs/ answers fstat of an O_PATH descriptor with it). */
START_TEST(removal_changes_carry_stat)
{
    struct fx f;
    fx_open(&f);
    ck_assert_int_eq(mkfile(&f, "/f", "abc"), 0);
    struct zk_stat s0 = stat_of(&f, "/f");
    struct zk_op o = mk(ZK_OP_DELETE, "/f");
    struct zk_apply_result *res = apply_n(&f, &o, 1);
    ck_assert_int_eq(res->err, 0);
    ck_assert_uint_eq(res->nchanges, 1);
    ck_assert_uint_eq(res->changes[0].kind, ZK_CHANGE_DELETE);
    ck_assert_uint_eq(res->changes[0].gone.ino, s0.ino);
    ck_assert_uint_eq(res->changes[0].gone.data_length, 3);
    ck_assert_uint_eq(res->changes[0].gone.mode, s0.mode);
    ck_assert_uint_eq(res->changes[0].gone.mzxid, s0.mzxid);
    zk_apply_result_free(res);
    ck_assert_int_eq(mkfile(&f, "/g", "12"), 0);
    ck_assert_int_eq(mkfile(&f, "/h", "x"), 0);
    uint64_t g = ino_of(&f, "/g");
    o = mk_rename("/h", "/g");
    res = apply_n(&f, &o, 1);
    ck_assert_int_eq(res->err, 0);
    ck_assert_uint_eq(res->changes[0].kind, ZK_CHANGE_RENAME);
    ck_assert_uint_eq(res->changes[0].replaced_ino, g);
    ck_assert_uint_eq(res->changes[0].gone.ino, g);
    ck_assert_uint_eq(res->changes[0].gone.data_length, 2);
    zk_apply_result_free(res);
    fx_close(&f);
}
END_TEST

START_TEST(rename_basic)
{
    struct fx f;
    struct zk_apply_result *res;
    fx_open(&f);
    ck_assert_int_eq(mkdir_op(&f, "/a"), 0);
    ck_assert_int_eq(mkdir_op(&f, "/b"), 0);
    ck_assert_int_eq(mkfile(&f, "/a/f", "data"), 0);
    uint64_t ino = ino_of(&f, "/a/f");
    struct zk_stat a0 = stat_of(&f, "/a"), b0 = stat_of(&f, "/b");
    struct zk_op o = mk_rename("/a/f", "/b/g");
    res = apply_n(&f, &o, 1);
    ck_assert_int_eq(res->err, 0);
    ck_assert_uint_eq(res->nchanges, 1);
    struct zk_change *ch = &res->changes[0];
    ck_assert_uint_eq(ch->kind, ZK_CHANGE_RENAME);
    ck_assert_uint_eq(ch->ino, ino);
    ck_assert_uint_eq(ch->parent, a0.ino);
    ck_assert_str_eq(ch->name, "f");
    ck_assert_uint_eq(ch->parent2, b0.ino);
    ck_assert_str_eq(ch->name2, "g");
    ck_assert_uint_eq(ch->replaced_ino, 0);
    zk_apply_result_free(res);
    ck_assert(!exists(&f, "/a/f"));
    ck_assert_uint_eq(ino_of(&f, "/b/g"), ino);
    assert_data(&f, "/b/g", "data");
    struct zk_stat a1 = stat_of(&f, "/a"), b1 = stat_of(&f, "/b");
    ck_assert_uint_eq(a1.num_children, 0);
    ck_assert_uint_eq(b1.num_children, 1);
    ck_assert_int_eq(a1.cversion, a0.cversion + 1);
    ck_assert_int_eq(b1.cversion, b0.cversion + 1);
    ck_assert_uint_eq(a1.pzxid, f.zxid);
    ck_assert_uint_eq(b1.pzxid, f.zxid);
    struct zk_stat g = stat_of(&f, "/b/g");
    ck_assert_uint_eq(g.parent, b0.ino);
    ck_assert_int_eq(g.version, 0);            /* data untouched */
    ck_assert_uint_eq(g.chtime_ms, f.time_ms);
    /* A directory with its subtree; inodes stable across reopen. */
    ck_assert_int_eq(mkfile(&f, "/a/x", "1"), 0);
    uint64_t x = ino_of(&f, "/a/x"), a = ino_of(&f, "/a");
    ck_assert_int_eq(apply1(&f, mk_rename("/a", "/b/a2")), 0);
    fx_reopen(&f);
    ck_assert_uint_eq(ino_of(&f, "/b/a2/x"), x);
    ck_assert_uint_eq(ino_of(&f, "/b/a2"), a);
    ck_assert_uint_eq(ino_of(&f, "/b/g"), ino);
    char buf[64];
    ck_assert_int_eq(zk_store_path(f.s, x, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "/b/a2/x");
    /* Same path: a no-op success. */
    ck_assert_int_eq(apply1(&f, mk_rename("/b/g", "/b/g")), 0);
    ck_assert_uint_eq(ino_of(&f, "/b/g"), ino);
    /* Within one directory. */
    int32_t cv = stat_of(&f, "/b").cversion;
    ck_assert_int_eq(apply1(&f, mk_rename("/b/g", "/b/h")), 0);
    ck_assert_uint_eq(stat_of(&f, "/b").num_children, 2);
    ck_assert_int_eq(stat_of(&f, "/b").cversion, cv + 1);
    fx_close(&f);
}
END_TEST

START_TEST(rename_errors)
{
    struct fx f;
    fx_open(&f);
    ck_assert_int_eq(mkdir_op(&f, "/d"), 0);
    ck_assert_int_eq(mkdir_op(&f, "/d/sub"), 0);
    ck_assert_int_eq(mkdir_op(&f, "/full"), 0);
    ck_assert_int_eq(mkfile(&f, "/full/x", ""), 0);
    ck_assert_int_eq(mkdir_op(&f, "/empty"), 0);
    ck_assert_int_eq(mkfile(&f, "/f", "f"), 0);
    ck_assert_int_eq(mkfile(&f, "/g", "g"), 0);
    ck_assert_int_eq(apply1(&f, mk_rename("/nope", "/x")), -ENOENT);
    ck_assert_int_eq(apply1(&f, mk_rename("/f", "/nope/x")), -ENOENT);
    ck_assert_int_eq(apply1(&f, mk_rename("/f", "/g/x")), -ENOTDIR);
    ck_assert_int_eq(apply1(&f, mk_rename("/d", "/d/sub/d")), -EINVAL);
    ck_assert_int_eq(apply1(&f, mk_rename("/d", "/d/d")), -EINVAL);
    ck_assert_int_eq(apply1(&f, mk_rename("/f", "/d")), -EISDIR);
    ck_assert_int_eq(apply1(&f, mk_rename("/d", "/f")), -ENOTDIR);
    ck_assert_int_eq(apply1(&f, mk_rename("/d", "/full")), -ENOTEMPTY);
    ck_assert_int_eq(apply1(&f, mk_rename("/f", "/zookeeper")), -EPERM);
    ck_assert_int_eq(apply1(&f, mk_rename("/f", "/.zkfs")), -EPERM);
    ck_assert_int_eq(apply1(&f, mk_rename("/", "/x")), -EBUSY);
    ck_assert_int_eq(apply1(&f, mk_rename("/f", "/")), -EBUSY);
    ck_assert_int_eq(apply1(&f, mk_rename("/f", "bad")), -EINVAL);
    struct zk_op o = mk_rename("/f", "/g");
    o.flags = ZK_RENAME_NOREPLACE;
    ck_assert_int_eq(apply1(&f, o), -EEXIST);
    o = mk_rename("/f", "/h");
    o.ino = 12345;
    ck_assert_int_eq(apply1(&f, o), -ENOENT);
    assert_data(&f, "/f", "f");
    assert_data(&f, "/g", "g");
    fx_close(&f);
}
END_TEST

START_TEST(rename_replaces)
{
    struct fx f;
    struct zk_store_info i0, i1;
    fx_open(&f);
    ck_assert_int_eq(apply1(&f, mk_session(ZK_OP_SESSION_OPEN, 9)), 0);
    ck_assert_int_eq(mkfile(&f, "/tmp1", "new"), 0);
    ck_assert_int_eq(apply1(&f, mk_ephemeral("/cfg", 9, "h:1")), 0);
    ck_assert_int_eq(apply1(&f, mk_data(ZK_OP_SET_DATA, "/cfg", "old!")), 0);
    uint64_t src = ino_of(&f, "/tmp1"), dst = ino_of(&f, "/cfg");
    ck_assert_int_eq(zk_store_info(f.s, &i0), 0);
    struct zk_op o = mk_rename("/tmp1", "/cfg");
    struct zk_apply_result *res = apply_n(&f, &o, 1);
    ck_assert_int_eq(res->err, 0);
    ck_assert_uint_eq(res->changes[0].replaced_ino, dst);
    zk_apply_result_free(res);
    ck_assert_uint_eq(ino_of(&f, "/cfg"), src);
    assert_data(&f, "/cfg", "new");
    ck_assert_uint_eq(stat_of(&f, "/cfg").ephemeral_owner, 0);
    ck_assert_uint_eq(stat_of(&f, "/").num_children, 1);
    struct zk_stat st;
    ck_assert_int_eq(zk_store_getattr(f.s, dst, &st), -ENOENT);
    ck_assert_int_eq(zk_store_info(f.s, &i1), 0);
    ck_assert_uint_eq(i1.znodes, i0.znodes - 1);
    ck_assert_uint_eq(i1.data_bytes, i0.data_bytes - 4);
    /* The replaced ephemeral's row is gone: closing its session deletes
     * nothing. */
    struct zk_op c = mk_session(ZK_OP_SESSION_CLOSE, 9);
    res = apply_n(&f, &c, 1);
    ck_assert_uint_eq(res->nchanges, 0);
    zk_apply_result_free(res);
    ck_assert(exists(&f, "/cfg"));
    /* Directory over an empty directory. */
    ck_assert_int_eq(mkdir_op(&f, "/d1"), 0);
    ck_assert_int_eq(mkfile(&f, "/d1/x", ""), 0);
    ck_assert_int_eq(mkdir_op(&f, "/d2"), 0);
    ck_assert_int_eq(apply1(&f, mk_rename("/d1", "/d2")), 0);
    ck_assert(exists(&f, "/d2/x"));
    ck_assert(!exists(&f, "/d1"));
    fx_close(&f);
}
END_TEST

/* Encodes a one-op create of path for log and apply tests. */
static void enc_create(const char *path, uint8_t **buf, size_t *len)
{
    struct zk_op o = mk(ZK_OP_CREATE, path);
    struct zk_txn txn = {1, 1, &o};
    ck_assert_int_eq(zk_txn_encode(&txn, buf, len), 0);
}

struct log_acc {
    int n;
    uint64_t zxids[16];
    int stop_at;
};

static int log_cb(void *arg, uint64_t zxid, const uint8_t *buf, size_t len)
{
    struct log_acc *acc = arg;
    ck_assert_int_eq(zk_txn_verify(buf, len), 0);
    acc->zxids[acc->n++] = zxid;
    return acc->n == acc->stop_at ? 7 : 0;
}

/* A lazy commit (an ensemble's apply-only batch) is a real commit: readers
 * see it, the fsync histogram counts it, a reopened store has it, and a
 * durable batch after it builds on it. (That a power cut may undo it but
 * never tear it is LMDB's MDB_NOMETASYNC guarantee, not testable here.) */
START_TEST(lazy_commit_applies)
{
    struct fx f;
    struct zk_store_batch *b;
    struct zk_apply_result *res;
    struct zk_store_info info;
    struct zk_store_fsync_stats fs0, fs1;
    uint8_t *buf;
    size_t len;
    fx_open(&f);
    enc_create("/lazy", &buf, &len);
    ck_assert_int_eq(zk_store_batch_begin(f.s, &b), 0);
    ck_assert_int_eq(zk_store_batch_log(b, 20, buf, len), 0);
    ck_assert_int_eq(zk_store_batch_commit(b), 0);
    zk_store_fsync_stats(f.s, &fs0);
    ck_assert_int_eq(zk_store_batch_begin(f.s, &b), 0);
    ck_assert_int_eq(zk_store_batch_apply(b, 20, buf, len, &res), 0);
    zk_apply_result_free(res);
    ck_assert_int_eq(zk_store_batch_commit_lazy(b), 0);
    zk_store_fsync_stats(f.s, &fs1);
    ck_assert_uint_eq(fs1.count, fs0.count + 1);
    ck_assert_int_eq(zk_store_info(f.s, &info), 0);
    ck_assert_uint_eq(info.last_applied_zxid, 20);
    ck_assert_uint_gt(ino_of(&f, "/lazy"), 0);
    fx_reopen(&f);
    ck_assert_int_eq(zk_store_info(f.s, &info), 0);
    ck_assert_uint_eq(info.last_applied_zxid, 20);
    ck_assert_uint_gt(ino_of(&f, "/lazy"), 0);
    ck_assert_int_eq(zk_store_batch_begin(f.s, &b), 0);
    ck_assert_int_eq(zk_store_batch_apply(b, 20, buf, len, &res), -EINVAL);
    zk_store_batch_abort(b);
    free(buf);
    fx_close(&f);
}
END_TEST

START_TEST(log_append_scan_truncate)
{
    struct fx f;
    struct zk_store_batch *b;
    struct zk_apply_result *res;
    uint8_t *buf, *got;
    size_t len, glen;
    fx_open(&f);
    enc_create("/x", &buf, &len);
    ck_assert_int_eq(zk_store_batch_begin(f.s, &b), 0);
    for (uint64_t z = 10; z <= 15; z++)
        ck_assert_int_eq(zk_store_batch_log(b, z, buf, len), 0);
    ck_assert_int_eq(zk_store_batch_log(b, 15, buf, len), -EINVAL);
    ck_assert_int_eq(zk_store_batch_log(b, 3, buf, len), -EINVAL);
    ck_assert_int_eq(zk_store_batch_apply(b, 10, buf, len, &res), 0);
    zk_apply_result_free(res);
    ck_assert_int_eq(zk_store_batch_apply(b, 10, buf, len, &res), -EINVAL);
    ck_assert_int_eq(zk_store_batch_apply(b, 9, buf, len, &res), -EINVAL);
    ck_assert_int_eq(zk_store_batch_commit(b), 0);
    ck_assert_int_eq(zk_store_log_get(f.s, 12, &got, &glen), 0);
    ck_assert_uint_eq(glen, len);
    ck_assert(memcmp(got, buf, len) == 0);
    free(got);
    ck_assert_int_eq(zk_store_log_get(f.s, 16, &got, &glen), -ENOENT);
    struct log_acc acc;
    memset(&acc, 0, sizeof(acc));
    ck_assert_int_eq(zk_store_log_scan(f.s, 12, log_cb, &acc), 0);
    ck_assert_int_eq(acc.n, 3);
    ck_assert_uint_eq(acc.zxids[0], 13);
    ck_assert_uint_eq(acc.zxids[2], 15);
    memset(&acc, 0, sizeof(acc));
    acc.stop_at = 2;
    ck_assert_int_eq(zk_store_log_scan(f.s, 0, log_cb, &acc), 7);
    ck_assert_int_eq(acc.n, 2);
    /* TRUNC: nothing at or below last_applied (10) may go. */
    ck_assert_int_eq(zk_store_batch_begin(f.s, &b), 0);
    ck_assert_int_eq(zk_store_batch_log_truncate(b, 9), -EINVAL);
    ck_assert_int_eq(zk_store_batch_log_truncate(b, 12), 0);
    ck_assert_int_eq(zk_store_batch_log(b, 13, buf, len), 0);  /* reusable */
    ck_assert_int_eq(zk_store_batch_commit(b), 0);
    struct zk_store_info info;
    ck_assert_int_eq(zk_store_info(f.s, &info), 0);
    ck_assert_uint_eq(info.log_first_zxid, 10);
    ck_assert_uint_eq(info.log_last_zxid, 13);
    ck_assert_uint_eq(info.last_applied_zxid, 10);
    free(buf);
    fx_close(&f);
}
END_TEST

START_TEST(log_trim_keeps_recent)
{
    struct fx f;
    struct zk_store_batch *b;
    struct zk_apply_result *res;
    uint8_t *buf;
    size_t len;
    char path[32];
    setenv("ZKFS_LOG_KEEP", "5", 1);
    fx_open(&f);
    for (uint64_t z = 1; z <= 40; z++) {
        snprintf(path, sizeof(path), "/n%llu", (unsigned long long)z);
        enc_create(path, &buf, &len);
        ck_assert_int_eq(zk_store_batch_begin(f.s, &b), 0);
        ck_assert_int_eq(zk_store_batch_log(b, z, buf, len), 0);
        ck_assert_int_eq(zk_store_batch_apply(b, z, buf, len, &res), 0);
        ck_assert_int_eq(res->err, 0);
        zk_apply_result_free(res);
        ck_assert_int_eq(zk_store_batch_commit(b), 0);
        free(buf);
    }
    struct zk_store_info info;
    ck_assert_int_eq(zk_store_info(f.s, &info), 0);
    ck_assert_uint_eq(info.log_last_zxid, 40);
    ck_assert_uint_eq(info.log_first_zxid, 36);
    ck_assert_uint_eq(info.znodes, 41);
    unsetenv("ZKFS_LOG_KEEP");
    fx_close(&f);
}
END_TEST

START_TEST(abort_leaves_nothing)
{
    struct fx f;
    struct zk_store_batch *b;
    struct zk_apply_result *res;
    struct zk_store_info i0, i1;
    uint8_t *buf;
    size_t len;
    fx_open(&f);
    ck_assert_int_eq(zk_store_info(f.s, &i0), 0);
    enc_create("/gone", &buf, &len);
    ck_assert_int_eq(zk_store_batch_begin(f.s, &b), 0);
    ck_assert_int_eq(zk_store_batch_log(b, 5, buf, len), 0);
    ck_assert_int_eq(zk_store_batch_apply(b, 5, buf, len, &res), 0);
    ck_assert_int_eq(res->err, 0);
    zk_apply_result_free(res);
    ck_assert_int_eq(zk_store_batch_meta_set(b, "current_epoch", 3), 0);
    /* Readers do not see the open batch. */
    ck_assert(!exists(&f, "/gone"));
    zk_store_batch_abort(b);
    ck_assert(!exists(&f, "/gone"));
    ck_assert_int_eq(zk_store_info(f.s, &i1), 0);
    ck_assert_uint_eq(i1.last_applied_zxid, i0.last_applied_zxid);
    ck_assert_uint_eq(i1.next_ino, i0.next_ino);
    ck_assert_uint_eq(i1.log_last_zxid, 0);
    uint64_t v;
    ck_assert_int_eq(zk_store_meta_get(f.s, "current_epoch", &v), -ENOENT);
    /* A payload that does not decode: the batch must be aborted. */
    buf[len - 1] ^= 1;
    ck_assert_int_eq(zk_store_batch_begin(f.s, &b), 0);
    ck_assert_int_eq(zk_store_batch_apply(b, 6, buf, len, &res),
                     ZK_ECORRUPT);
    zk_store_batch_abort(b);
    free(buf);
    fx_close(&f);
}
END_TEST

START_TEST(meta_values)
{
    struct fx f;
    struct zk_store_batch *b;
    uint64_t v;
    fx_open(&f);
    ck_assert_int_eq(zk_store_batch_begin(f.s, &b), 0);
    ck_assert_int_eq(zk_store_batch_meta_set(b, "accepted_epoch", 7), 0);
    ck_assert_int_eq(zk_store_batch_meta_set(b, "current_epoch", 6), 0);
    ck_assert_int_eq(zk_store_batch_meta_set(b, "last_applied", 6), -EINVAL);
    ck_assert_int_eq(zk_store_batch_meta_set(b, "next_ino", 6), -EINVAL);
    ck_assert_int_eq(zk_store_batch_meta_set(b, "", 6), -EINVAL);
    ck_assert_int_eq(zk_store_batch_commit(b), 0);
    fx_reopen(&f);
    ck_assert_int_eq(zk_store_meta_get(f.s, "accepted_epoch", &v), 0);
    ck_assert_uint_eq(v, 7);
    ck_assert_int_eq(zk_store_meta_get(f.s, "nope", &v), -ENOENT);
    struct zk_store_info info;
    ck_assert_int_eq(zk_store_info(f.s, &info), 0);
    ck_assert_uint_eq(info.accepted_epoch, 7);
    ck_assert_uint_eq(info.current_epoch, 6);
    fx_close(&f);
}
END_TEST

/* Opens the closed store with LMDB directly and edits meta. */
static void meta_edit(struct fx *f, const char *key, const void *val,
                      size_t len)
{
    char path[128];
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi dbi;
    snprintf(path, sizeof(path), "%s/zkfs.mdb", f->dir);
    ck_assert_int_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    ck_assert_int_eq(mdb_env_open(env, path, MDB_NOSUBDIR, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &t), 0);
    ck_assert_int_eq(mdb_dbi_open(t, "meta", 0, &dbi), 0);
    MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)val};
    if (val == NULL)
        ck_assert_int_eq(mdb_del(t, dbi, &k, NULL), 0);
    else
        ck_assert_int_eq(mdb_put(t, dbi, &k, &v, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(t), 0);
    mdb_env_close(env);
}

static int reopen_rc(struct fx *f)
{
    struct zk_store *s;
    int rc = zk_store_open(f->dir, 1, &s);
    if (rc == 0)
        zk_store_close(s);
    return rc;
}

START_TEST(bad_format_refused)
{
    struct fx f;
    fx_open(&f);
    zk_store_close(f.s);
    f.s = NULL;
    uint8_t fmt[8] = {'z', 'k', 'f', 's', 0, 0, 0, 2};
    meta_edit(&f, "zkfs.format", fmt, 8);
    ck_assert_int_eq(reopen_rc(&f), ZK_EFOREIGN);
    memcpy(fmt, "abcd\0\0\0\1", 8);
    meta_edit(&f, "zkfs.format", fmt, 8);
    ck_assert_int_eq(reopen_rc(&f), ZK_EFOREIGN);
    meta_edit(&f, "zkfs.format", fmt, 3);
    ck_assert_int_eq(reopen_rc(&f), ZK_ECORRUPT);
    meta_edit(&f, "zkfs.format", NULL, 0);
    ck_assert_int_eq(reopen_rc(&f), ZK_ECORRUPT);
    fx_close(&f);
}
END_TEST

START_TEST(corrupt_meta_refused)
{
    struct fx f;
    fx_open(&f);
    zk_store_close(f.s);
    f.s = NULL;
    meta_edit(&f, "next_ino", "xyz", 3);
    ck_assert_int_eq(reopen_rc(&f), ZK_ECORRUPT);
    meta_edit(&f, "next_ino", NULL, 0);
    ck_assert_int_eq(reopen_rc(&f), ZK_ECORRUPT);
    uint8_t v[8] = {0, 0, 0, 0, 0, 0, 0, 16};
    meta_edit(&f, "next_ino", v, 8);
    ck_assert_int_eq(reopen_rc(&f), 0);
    meta_edit(&f, "last_applied", NULL, 0);
    ck_assert_int_eq(reopen_rc(&f), ZK_ECORRUPT);
    fx_close(&f);
}
END_TEST

START_TEST(foreign_lmdb_refused)
{
    struct fx f;
    char path[128];
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi dbi;
    fx_mkdir(&f);
    snprintf(path, sizeof(path), "%s/zkfs.mdb", f.dir);
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_open(env, path, MDB_NOSUBDIR, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &t), 0);
    ck_assert_int_eq(mdb_dbi_open(t, NULL, 0, &dbi), 0);
    MDB_val k = {3, "key"}, v = {5, "value"};
    ck_assert_int_eq(mdb_put(t, dbi, &k, &v, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(t), 0);
    mdb_env_close(env);
    ck_assert_int_eq(zk_store_open(f.dir, 1, &f.s), ZK_EFOREIGN);
    fx_close(&f);
}
END_TEST

static void ck_lazy(struct fx *f, struct zk_op op)
{
    struct zk_apply_result *r =
        zk_test_commit_lazy(f->s, ++f->zxid, ++f->time_ms, &op, 1);
    ck_assert_int_eq(r->err, 0);
    zk_apply_result_free(r);
}

/* Creates /big0, /big1, ... (256 kB each, one per batch, lazily or
 * durably committed) until one does not fit; returns how many tries. The
 * last try's error in *rc. */
static int fill_map(struct fx *f, int lazy, int *rc, uint64_t *last)
{
    struct zk_store_batch *b;
    struct zk_apply_result *res;
    char path[32];
    char *big = malloc(256 * 1024 + 1);
    memset(big, 'b', 256 * 1024);
    big[256 * 1024] = '\0';
    int i;
    *rc = 0;
    for (i = 0; i < 64 && *rc == 0; i++) {
        snprintf(path, sizeof(path), "/big%d", i);
        struct zk_op o = mk_data(ZK_OP_CREATE, path, big);
        struct zk_txn txn = {1, 1, &o};
        uint8_t *buf;
        size_t len;
        ck_assert_int_eq(zk_txn_encode(&txn, &buf, &len), 0);
        ck_assert_int_eq(zk_store_batch_begin(f->s, &b), 0);
        *rc = zk_store_batch_log(b, f->zxid + 1, buf, len);
        if (*rc == 0)
            *rc = zk_store_batch_apply(b, f->zxid + 1, buf, len, &res);
        if (*rc == 0) {
            zk_apply_result_free(res);
            *rc = lazy ? zk_store_batch_commit_lazy(b)
                       : zk_store_batch_commit(b);
            if (*rc == 0)
                *last = ++f->zxid;
        } else {
            zk_store_batch_abort(b);
        }
        free(buf);
    }
    free(big);
    return i;
}

START_TEST(map_full_is_enospc)
{
    struct fx f;
    setenv("ZKFS_MAP_SIZE_BYTES", "2097152", 1);
    fx_open(&f);
    ck_assert_int_eq(mkfile(&f, "/keep", "safe"), 0);
    uint64_t last = f.zxid;
    int rc;
    int i = fill_map(&f, 0, &rc, &last);
    ck_assert_int_eq(rc, -ENOSPC);
    ck_assert_int_gt(i, 1);
    fx_reopen(&f);
    assert_data(&f, "/keep", "safe");
    struct zk_store_info info;
    ck_assert_int_eq(zk_store_info(f.s, &info), 0);
    ck_assert_uint_eq(info.last_applied_zxid, last);
    ck_assert_uint_eq(info.znodes, 2 + (uint64_t)(i - 1)); /* i-1 fitted */
    /* Deleting makes room again. */
    ck_assert_int_eq(apply1(&f, mk(ZK_OP_DELETE, "/big0")), 0);
    ck_assert_int_eq(mkfile(&f, "/after", "ok"), 0);
    assert_data(&f, "/after", "ok");
    unsetenv("ZKFS_MAP_SIZE_BYTES");
    fx_close(&f);
}
END_TEST

/* The map fills while the last checkpoint is far behind (lazy commits,
 * no background checkpoint): its reader keeps every page freed since.
 * Deleting must still make room without a restart (CI found t_map_full's
 * rm failing with ENOSPC): the write takes a checkpoint and tries again. */
START_TEST(map_full_behind_the_checkpoint)
{
    struct fx f;
    setenv("ZKFS_MAP_SIZE_BYTES", "2097152", 1);
    setenv("ZKFS_CHECKPOINT_MS", "3600000", 1);
    fx_open(&f);
    uint64_t last = 0;
    int rc;
    int i = fill_map(&f, 1, &rc, &last);
    ck_assert_int_eq(rc, -ENOSPC);
    ck_assert_int_gt(i, 1);
    ck_lazy(&f, mk(ZK_OP_DELETE, "/big0"));
    ck_lazy(&f, mk(ZK_OP_DELETE, "/big1"));
    ck_lazy(&f, mk_data(ZK_OP_CREATE, "/after", "ok"));
    assert_data(&f, "/after", "ok");
    unsetenv("ZKFS_CHECKPOINT_MS");
    unsetenv("ZKFS_MAP_SIZE_BYTES");
    fx_close(&f);
}
END_TEST

#define RACE_WRITES  200   /* batches the writer commits */
#define RACE_READERS 4     /* reader threads */

struct race {
    struct zk_store *s;
    uint64_t ino;
    int stop;
    int reads;
};

/* Reads /f until told to stop: data and version must always match. */
static void *race_reader(void *arg)
{
    struct race *r = arg;
    int32_t last = -1;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        uint8_t *d;
        size_t len;
        struct zk_stat st;
        char want[32];
        ZK_ASSERT(zk_store_read(r->s, r->ino, &d, &len, &st) == 0);
        snprintf(want, sizeof(want), "v%d", st.version);
        ZK_ASSERT(len == strlen(want) && memcmp(d, want, len) == 0);
        ZK_ASSERT(st.version >= last);   /* never back in time */
        last = st.version;
        free(d);
        ZK_ASSERT(zk_store_getattr(r->s, ZK_INO_ROOT, &st) == 0);
        __atomic_add_fetch(&r->reads, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

START_TEST(readers_see_whole_commits)
{
    struct fx f;
    pthread_t th[RACE_READERS];
    fx_open(&f);
    ck_assert_int_eq(mkfile(&f, "/f", "v0"), 0);
    struct race r = {f.s, ino_of(&f, "/f"), 0, 0};
    for (int i = 0; i < RACE_READERS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, race_reader, &r), 0);
    for (int v = 1; v <= RACE_WRITES; v++) {
        char data[32];
        snprintf(data, sizeof(data), "v%d", v);
        ck_assert_int_eq(apply1(&f, mk_data(ZK_OP_SET_DATA, "/f", data)), 0);
    }
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < RACE_READERS; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_gt(r.reads, 0);
    assert_data(&f, "/f", "v200");
    fx_close(&f);
}
END_TEST

/* zk__key_cmp orders keys exactly as LMDB's default (memcmp, then the
 * shorter first), which stores written without it rely on. */
static int memn_sign(const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
    size_t n = na < nb ? na : nb;
    int d = n ? memcmp(a, b, n) : 0;
    if (d == 0)
        d = na < nb ? -1 : na > nb;
    return (d > 0) - (d < 0);
}

START_TEST(key_order_is_lmdb_default)
{
    uint8_t a[20], b[20];
    unsigned seed = 12345;
    for (int i = 0; i < 200000; i++) {
        size_t na = (size_t)rand_r(&seed) % sizeof(a);
        size_t nb = (size_t)rand_r(&seed) % sizeof(b);
        /* Few byte values, and b a copy of a with 0-3 bytes changed:
         * many ties and common prefixes, in the first 8 bytes and
         * after them. */
        for (size_t j = 0; j < sizeof(a); j++)
            a[j] = (uint8_t)(rand_r(&seed) % 3 == 0 ? 0xff : rand_r(&seed) % 3);
        memcpy(b, a, sizeof(b));
        for (int k = rand_r(&seed) % 4; k > 0; k--)
            b[rand_r(&seed) % sizeof(b)] ^= (uint8_t)(1 + rand_r(&seed) % 255);
        MDB_val x = {na, a}, y = {nb, b};
        int got = zk__key_cmp(&x, &y);
        ck_assert_int_eq((got > 0) - (got < 0), memn_sign(a, na, b, nb));
    }
}
END_TEST

/* The kept read transaction (zk_store_reader_keep) of a thread that reads
 * while another commits: every read shows one whole commit, never an
 * older one than the read before, and the last write once it is done. */
struct kept_writer {
    struct fx *f;
    int done;
};

static void *kept_write(void *arg)
{
    struct kept_writer *w = arg;
    for (int v = 1; v <= RACE_WRITES; v++) {
        char data[32];
        snprintf(data, sizeof(data), "v%d", v);
        ck_assert_int_eq(apply1(w->f, mk_data(ZK_OP_SET_DATA, "/f", data)), 0);
    }
    __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

START_TEST(kept_reader_follows_commits)
{
    struct fx f;
    fx_open(&f);
    ck_assert_int_eq(mkfile(&f, "/f", "v0"), 0);
    uint64_t ino = ino_of(&f, "/f");
    zk_store_reader_keep(f.s, 1);
    struct kept_writer w = {&f, 0};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, kept_write, &w), 0);
    int last = -1, reads = 0, done = 0;
    while (!done) {
        done = __atomic_load_n(&w.done, __ATOMIC_ACQUIRE);
        uint8_t *d;
        size_t len;
        struct zk_stat st;
        ck_assert_int_eq(zk_store_read(f.s, ino, &d, &len, &st), 0);
        char buf[32];
        ck_assert_uint_lt(len, sizeof(buf));
        memcpy(buf, d, len);
        buf[len] = '\0';
        free(d);
        int v = atoi(buf + 1);
        ck_assert_int_eq(st.version, v);    /* data and stat of one commit */
        ck_assert_int_ge(v, last);
        last = v;
        reads++;
        if (reads % 16 == 0)
            zk_store_reader_idle(f.s);
    }
    pthread_join(th, NULL);
    ck_assert_int_eq(last, RACE_WRITES);    /* read after the last commit */
    zk_store_reader_keep(f.s, 0);
    fx_close(&f);
}
END_TEST

/* What the kept transaction remembers of a node (its stat, its data)
 * is never answered once a commit came, whichever call reads it. */
START_TEST(kept_reader_remembers_only_the_newest)
{
    struct fx f;
    fx_open(&f);
    ck_assert_int_eq(mkfile(&f, "/f", "v0"), 0);
    ck_assert_int_eq(mkfile(&f, "/g", "w0"), 0);
    uint64_t ino = ino_of(&f, "/f");
    zk_store_reader_keep(f.s, 1);
    struct zk_stat st;
    for (int v = 1; v <= 3; v++) {
        assert_data(&f, "/f", v == 1 ? "v0" : v == 2 ? "v1" : "v2");
        assert_data(&f, "/f", v == 1 ? "v0" : v == 2 ? "v1" : "v2");
        ck_assert_int_eq(zk_store_getattr(f.s, ino, &st), 0);
        ck_assert_int_eq(st.version, v - 1);
        char d[8];
        snprintf(d, sizeof(d), "v%d", v);
        ck_assert_int_eq(apply1(&f, mk_data(ZK_OP_SET_DATA, "/f", d)), 0);
        ck_assert_int_eq(zk_store_getattr(f.s, ino, &st), 0);
        ck_assert_int_eq(st.version, v);
        ck_assert_uint_eq(st.data_length, strlen(d));
    }
    /* A commit of another node, then a delete. */
    ck_assert_int_eq(apply1(&f, mk_data(ZK_OP_SET_DATA, "/g", "w1")), 0);
    assert_data(&f, "/f", "v3");
    ck_assert_int_eq(apply1(&f, mk(ZK_OP_DELETE, "/f")), 0);
    uint8_t *d;
    size_t len;
    ck_assert_int_eq(zk_store_read(f.s, ino, &d, &len, &st), -ENOENT);
    ck_assert_int_eq(zk_store_getattr(f.s, ino, &st), -ENOENT);
    zk_store_reader_keep(f.s, 0);
    fx_close(&f);
}
END_TEST

/* zk_store_reader_idle lets go of a version a commit replaced, so the
 * kept transaction does not hold LMDB's pages; a current one it keeps.
 * (The checkpoint's reader, store/ckpt.c, is not counted: the test sets
 * ZKFS_CHECKPOINT_MS so that only a commit's own checkpoint moves it.) */
struct slots {
    int active;             /* reader slots with a txn id */
    uint64_t oldest;
    uint64_t txn[16];
};

static int slot_line(const char *msg, void *arg)
{
    struct slots *sl = arg;
    unsigned long long pid, txn;
    char thread[64];
    if (sscanf(msg, "%llu %63s %llu", &pid, thread, &txn) == 3 &&
        sl->active < 16)
        sl->txn[sl->active++] = txn;
    return 0;
}

static struct slots reader_slots(struct fx *f)
{
    struct slots sl = {0, 0, {0}}, out = {0, 0, {0}};
    int skipped = 0;
    ck_assert_int_eq(mdb_reader_list(f->s->env, slot_line, &sl), 0);
    for (int i = 0; i < sl.active; i++) {
        if (!skipped && sl.txn[i] == f->s->ck.txnid) {
            skipped = 1;
            continue;
        }
        if (out.active++ == 0 || sl.txn[i] < out.oldest)
            out.oldest = sl.txn[i];
    }
    ck_assert_int_eq(skipped, 1);           /* the checkpoint's reader */
    return out;
}

START_TEST(kept_reader_lets_go_when_idle)
{
    struct fx f;
    setenv("ZKFS_CHECKPOINT_MS", "100000000", 1);
    fx_open(&f);
    unsetenv("ZKFS_CHECKPOINT_MS");
    ck_assert_int_eq(mkfile(&f, "/f", "v0"), 0);
    zk_store_reader_keep(f.s, 1);
    assert_data(&f, "/f", "v0");
    struct slots sl = reader_slots(&f);
    ck_assert_int_eq(sl.active, 1);         /* kept, at the newest commit */
    zk_store_reader_idle(f.s);
    ck_assert_int_eq(reader_slots(&f).active, 1);
    ck_assert_int_eq(apply1(&f, mk_data(ZK_OP_SET_DATA, "/f", "v1")), 0);
    ck_assert_int_eq(reader_slots(&f).oldest, sl.oldest);   /* pinned */
    zk_store_reader_idle(f.s);
    ck_assert_int_eq(reader_slots(&f).active, 0);           /* let go */
    assert_data(&f, "/f", "v1");
    ck_assert_uint_gt(reader_slots(&f).oldest, sl.oldest);
    zk_store_reader_keep(f.s, 0);
    ck_assert_int_eq(reader_slots(&f).active, 0);
    fx_close(&f);
}
END_TEST

struct membuf {
    uint8_t *p;
    size_t len, cap;
    int calls;
};

static int mem_cb(void *arg, const uint8_t *buf, size_t len)
{
    struct membuf *m = arg;
    if (m->len + len > m->cap) {
        m->cap = (m->len + len) * 2;
        m->p = realloc(m->p, m->cap);
        ck_assert_ptr_nonnull(m->p);
    }
    memcpy(m->p + m->len, buf, len);
    m->len += len;
    m->calls++;
    return 0;
}

static void assert_same_stat(const struct zk_stat *a, const struct zk_stat *b)
{
    ck_assert_uint_eq(a->ino, b->ino);
    ck_assert_uint_eq(a->parent, b->parent);
    ck_assert_uint_eq(a->kind, b->kind);
    ck_assert_uint_eq(a->mode, b->mode);
    ck_assert_uint_eq(a->czxid, b->czxid);
    ck_assert_uint_eq(a->mzxid, b->mzxid);
    ck_assert_uint_eq(a->pzxid, b->pzxid);
    ck_assert_uint_eq(a->cmtime_ms, b->cmtime_ms);
    ck_assert_int_eq(a->version, b->version);
    ck_assert_int_eq(a->cversion, b->cversion);
    ck_assert_int_eq(a->aversion, b->aversion);
    ck_assert_uint_eq(a->ephemeral_owner, b->ephemeral_owner);
    ck_assert_uint_eq(a->data_length, b->data_length);
    ck_assert_uint_eq(a->num_children, b->num_children);
    ck_assert_uint_eq(a->children_flags, b->children_flags);
}

struct cmp_ctx {
    struct zk_store *self, *other;
    int nodes;
};

/* Checks that other holds the same child, data and subtree. */
static int cmp_cb(void *arg, const char *name, const struct zk_stat *st)
{
    struct cmp_ctx *c = arg;
    struct zk_stat o;
    uint8_t *d1, *d2;
    size_t l1, l2;
    ck_assert_int_eq(zk_store_lookup(c->other, st->parent, name, &o), 0);
    assert_same_stat(st, &o);
    ck_assert_int_eq(zk_store_read(c->self, st->ino, &d1, &l1, NULL), 0);
    ck_assert_int_eq(zk_store_read(c->other, st->ino, &d2, &l2, NULL), 0);
    ck_assert_uint_eq(l1, l2);
    if (l1)
        ck_assert(memcmp(d1, d2, l1) == 0);
    free(d1);
    free(d2);
    c->nodes++;
    if (st->kind == ZK_KIND_DIR)
        ck_assert_int_eq(zk_store_list(c->self, st->ino, cmp_cb, c), 0);
    return 0;
}

static void build_sample_tree(struct fx *f)
{
    char *big = malloc(200 * 1024 + 1);
    memset(big, 'q', 200 * 1024);
    big[200 * 1024] = '\0';
    ck_assert_int_eq(apply1(f, mk_session(ZK_OP_SESSION_OPEN, 77)), 0);
    ck_assert_int_eq(mkdir_op(f, "/cfg"), 0);
    ck_assert_int_eq(mkfile(f, "/cfg/a", "alpha"), 0);
    ck_assert_int_eq(mkfile(f, "/cfg/big", big), 0);
    ck_assert_int_eq(mkdir_op(f, "/cfg/sub"), 0);
    ck_assert_int_eq(mkfile(f, "/cfg/sub/x", ""), 0);
    ck_assert_int_eq(apply1(f, mk_data(ZK_OP_SET_DATA, "/cfg/a", "beta")), 0);
    ck_assert_int_eq(apply1(f, mk_ephemeral("/lock", 77, "h:9")), 0);
    ck_assert_int_eq(apply1(f, mk(ZK_OP_DELETE, "/cfg/sub/x")), 0);
    free(big);
}

START_TEST(snapshot_install_roundtrip)
{
    struct fx a, b;
    struct membuf m = {NULL, 0, 0, 0};
    struct zk_store_batch *bt;
    struct zk_store_install *in;
    uint64_t zxid, got;
    fx_open(&a);
    build_sample_tree(&a);
    ck_assert_int_eq(zk_store_snapshot(a.s, mem_cb, &m, &zxid), 0);
    ck_assert_uint_eq(zxid, a.zxid);
    ck_assert_int_gt(m.calls, 1);
    /* The follower has its own, different history and epochs. */
    fx_open(&b);
    ck_assert_int_eq(mkfile(&b, "/stale", "old"), 0);
    ck_assert_int_eq(zk_store_batch_begin(b.s, &bt), 0);
    ck_assert_int_eq(zk_store_batch_meta_set(bt, "accepted_epoch", 4), 0);
    ck_assert_int_eq(zk_store_batch_install_begin(bt, &in), 0);
    size_t off = 0, step = 1;
    while (off < m.len) {
        size_t n = m.len - off < step ? m.len - off : step;
        ck_assert_int_eq(zk_store_install_feed(in, m.p + off, n), 0);
        off += n;
        step = step * 3 + 1;
    }
    ck_assert(exists(&b, "/stale"));     /* readers: old state until commit */
    ck_assert_int_eq(zk_store_install_finish(in, &got), 0);
    ck_assert_uint_eq(got, zxid);
    ck_assert_int_eq(zk_store_batch_commit(bt), 0);
    fx_reopen(&b);
    ck_assert(!exists(&b, "/stale"));
    struct zk_store_info ia, ib;
    ck_assert_int_eq(zk_store_info(a.s, &ia), 0);
    ck_assert_int_eq(zk_store_info(b.s, &ib), 0);
    ck_assert_uint_eq(ib.last_applied_zxid, zxid);
    ck_assert_uint_eq(ib.znodes, ia.znodes);
    ck_assert_uint_eq(ib.sessions, ia.sessions);
    ck_assert_uint_eq(ib.data_bytes, ia.data_bytes);
    ck_assert_uint_eq(ib.next_ino, ia.next_ino);
    ck_assert_uint_eq(ib.log_last_zxid, 0);
    ck_assert_uint_eq(ib.accepted_epoch, 4);
    struct cmp_ctx c = {a.s, b.s, 0};
    ck_assert_int_eq(zk_store_list(a.s, ZK_INO_ROOT, cmp_cb, &c), 0);
    ck_assert_int_eq(c.nodes, (int)ia.znodes - 1);
    assert_data(&b, "/cfg/a", "beta");
    char owner[32];
    ck_assert_int_eq(zk_store_owner(b.s, ino_of(&b, "/lock"), owner, 32), 0);
    ck_assert_str_eq(owner, "h:9");
    /* Writing goes on above the snapshot's zxid; sessions work. */
    b.zxid = zxid;
    ck_assert_int_eq(mkfile(&b, "/cfg/new", "n"), 0);
    ck_assert_uint_eq(ino_of(&b, "/cfg/new"), ia.next_ino);
    struct zk_op cl = mk_session(ZK_OP_SESSION_CLOSE, 77);
    struct zk_apply_result *res = apply_n(&b, &cl, 1);
    ck_assert_uint_eq(res->nchanges, 1);
    zk_apply_result_free(res);
    ck_assert(!exists(&b, "/lock"));
    free(m.p);
    fx_close(&a);
    fx_close(&b);
}
END_TEST

/* Installs stream into f's store; returns the first error. */
static int install_stream(struct fx *f, const uint8_t *p, size_t len)
{
    struct zk_store_batch *bt;
    struct zk_store_install *in;
    ck_assert_int_eq(zk_store_batch_begin(f->s, &bt), 0);
    ck_assert_int_eq(zk_store_batch_install_begin(bt, &in), 0);
    int rc = zk_store_install_feed(in, p, len);
    if (rc == 0)
        rc = zk_store_install_finish(in, NULL);
    else
        zk_store_install_abort(in);
    if (rc == 0)
        ck_assert_int_eq(zk_store_batch_commit(bt), 0);
    else
        zk_store_batch_abort(bt);
    return rc;
}

START_TEST(snapshot_bad_stream_rejected)
{
    struct fx a, b;
    struct membuf m = {NULL, 0, 0, 0};
    fx_open(&a);
    build_sample_tree(&a);
    ck_assert_int_eq(zk_store_snapshot(a.s, mem_cb, &m, NULL), 0);
    fx_open(&b);
    ck_assert_int_eq(mkfile(&b, "/mine", "keep"), 0);
    /* Truncated anywhere, or one byte changed anywhere: refused. */
    for (size_t cut = 0; cut < m.len; cut += 1 + cut / 3) {
        int rc = install_stream(&b, m.p, cut);
        ck_assert_msg(rc == ZK_ETRUNCATED || rc == ZK_ECORRUPT,
                      "cut %zu: %d", cut, rc);
    }
    for (size_t pos = 0; pos < m.len; pos += 1 + pos / 2) {
        m.p[pos] ^= 0x20;
        int rc = install_stream(&b, m.p, m.len);
        ck_assert_msg(rc == ZK_ECORRUPT || rc == ZK_EFOREIGN ||
                      rc == ZK_ETRUNCATED, "pos %zu: %d", pos, rc);
        m.p[pos] ^= 0x20;
    }
    assert_data(&b, "/mine", "keep");
    ck_assert(!exists(&b, "/cfg"));
    ck_assert_int_eq(install_stream(&b, m.p, m.len), 0);
    ck_assert(exists(&b, "/cfg/big"));
    ck_assert(!exists(&b, "/mine"));
    free(m.p);
    fx_close(&a);
    fx_close(&b);
}
END_TEST

START_TEST(damaged_file_refused)
{
    struct fx f;
    char path[128];
    fx_open(&f);
    for (int i = 0; i < 300; i++) {
        char name[32];
        snprintf(name, sizeof(name), "/n%d", i);
        ck_assert_int_eq(mkfile(&f, name, "some data to grow the file"), 0);
    }
    zk_store_close(f.s);
    f.s = NULL;
    snprintf(path, sizeof(path), "%s/zkfs.mdb", f.dir);
    /* Cut short: refused before any page past the end is touched. */
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    off_t size = lseek(fd, 0, SEEK_END);
    ck_assert_int_eq(ftruncate(fd, size / 2), 0);
    ck_assert_int_eq(reopen_rc(&f), ZK_ECORRUPT);
    /* Both meta pages overwritten: not an LMDB file any more. */
    char junk[8192];
    memset(junk, 0x5a, sizeof(junk));
    ck_assert_int_eq(pwrite(fd, junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
    close(fd);
    int rc = reopen_rc(&f);
    ck_assert_msg(rc == ZK_ECORRUPT || rc == ZK_EFOREIGN, "%d", rc);
    fx_close(&f);
}
END_TEST

START_TEST(long_names)
{
    struct fx f;
    char path[ZK_PATH_MAX + 16];
    fx_open(&f);
    path[0] = '/';
    memset(path + 1, 'n', ZK_NAME_MAX);
    path[1 + ZK_NAME_MAX] = '\0';
    ck_assert_int_eq(mkfile(&f, path, ""), 0);
    char got[ZK_PATH_MAX];
    ck_assert_int_eq(zk_store_path(f.s, ino_of(&f, path), got, sizeof(got)),
                     0);
    ck_assert_str_eq(got, path);
    path[1 + ZK_NAME_MAX] = 'n';
    path[2 + ZK_NAME_MAX] = '\0';
    ck_assert_int_eq(mkfile(&f, path, ""), -ENAMETOOLONG);
    /* A sequential suffix that would overflow the name. */
    path[ZK_NAME_MAX - 5] = '\0';
    struct zk_op o = mk(ZK_OP_CREATE, path);
    o.flags = ZK_CREATE_SEQUENTIAL;
    ck_assert_int_eq(apply1(&f, o), -ENAMETOOLONG);
    /* Deep paths up to the limit; zk_store_path reports -ERANGE. */
    size_t len = 0;
    char *p = path;
    while (len + 101 < ZK_PATH_MAX) {
        p[len] = '/';
        memset(p + len + 1, 'd', 99);
        len += 100;
        p[len] = '\0';
        ck_assert_int_eq(mkdir_op(&f, path), 0);
    }
    ck_assert_int_eq(zk_store_path(f.s, ino_of(&f, path), got, sizeof(got)),
                     0);
    ck_assert_str_eq(got, path);
    ck_assert_int_eq(zk_store_path(f.s, ino_of(&f, path), got, len), -ERANGE);
    fx_close(&f);
}
END_TEST

START_TEST(rename_ephemeral)
{
    struct fx f;
    fx_open(&f);
    ck_assert_int_eq(apply1(&f, mk_session(ZK_OP_SESSION_OPEN, 3)), 0);
    ck_assert_int_eq(apply1(&f, mk_ephemeral("/e", 3, "h:1")), 0);
    ck_assert_int_eq(mkdir_op(&f, "/d"), 0);
    uint64_t ino = ino_of(&f, "/e");
    ck_assert_int_eq(apply1(&f, mk_rename("/e", "/d/e2")), 0);
    ck_assert_uint_eq(stat_of(&f, "/d/e2").ephemeral_owner, 3);
    ck_assert_uint_eq(ino_of(&f, "/d/e2"), ino);
    /* Nothing may move under an ephemeral node either. */
    struct zk_op o = mk_ephemeral("/ed", 3, "h:1");
    o.flags |= ZK_CREATE_DIR;
    ck_assert_int_eq(apply1(&f, o), 0);
    ck_assert_int_eq(mkfile(&f, "/x", ""), 0);
    ck_assert_int_eq(apply1(&f, mk_rename("/x", "/ed/x")), -EPERM);
    struct zk_op c = mk_session(ZK_OP_SESSION_CLOSE, 3);
    struct zk_apply_result *res = apply_n(&f, &c, 1);
    ck_assert_uint_eq(res->nchanges, 2);
    ck_assert_uint_eq(res->changes[0].kind, ZK_CHANGE_DELETE);
    zk_apply_result_free(res);
    ck_assert(!exists(&f, "/d/e2"));
    ck_assert(!exists(&f, "/ed"));
    ck_assert_uint_eq(stat_of(&f, "/d").num_children, 0);
    fx_close(&f);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Random operations against the store's invariants                    */
/* ------------------------------------------------------------------ */

#define RANDOM_TXNS   1500   /* random transactions applied */
#define RANDOM_CHECK  100    /* invariants checked every so many */

static uint64_t rnd_state = 88172645463325252ull;

static uint32_t rnd(uint32_t n)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return (uint32_t)(rnd_state % n);
}

struct walk {
    struct fx *f;
    uint64_t nodes, bytes;
    uint32_t children;
};

static int walk_cb(void *arg, const char *name, const struct zk_stat *st);

/* Walks dir: every child resolves back to itself, counts add up. */
static void walk_dir(struct walk *w, const struct zk_stat *dir)
{
    struct walk sub = {w->f, 0, 0, 0};
    ck_assert_int_eq(zk_store_list(w->f->s, dir->ino, walk_cb, &sub), 0);
    ck_assert_uint_eq(sub.children, dir->num_children);
    w->nodes += sub.nodes;
    w->bytes += sub.bytes;
}

static int walk_cb(void *arg, const char *name, const struct zk_stat *st)
{
    struct walk *w = arg;
    char path[ZK_PATH_MAX];
    struct zk_stat again;
    ck_assert_int_eq(zk_store_path(w->f->s, st->ino, path, sizeof(path)), 0);
    ck_assert_int_eq(zk_store_resolve(w->f->s, path, &again), 0);
    ck_assert_uint_eq(again.ino, st->ino);
    ck_assert_str_eq(strrchr(path, '/') + 1, name);
    w->children++;
    w->nodes++;
    w->bytes += st->data_length;
    if (st->kind == ZK_KIND_DIR)
        walk_dir(w, st);
    else
        ck_assert_uint_eq(st->num_children, 0);
    return 0;
}

static void check_invariants(struct fx *f)
{
    struct zk_store_info info;
    struct walk w = {f, 1, 0, 0};
    struct zk_stat root;
    ck_assert_int_eq(zk_store_getattr(f->s, ZK_INO_ROOT, &root), 0);
    walk_dir(&w, &root);
    ck_assert_int_eq(zk_store_info(f->s, &info), 0);
    ck_assert_uint_eq(info.znodes, w.nodes);
    ck_assert_uint_eq(info.data_bytes, w.bytes);
    ck_assert_uint_eq(info.last_applied_zxid, f->zxid);
}

static const char *const rnd_paths[] = {
    "/a", "/b", "/c", "/a/a", "/a/b", "/b/a", "/b/c", "/a/a/b", "/a/b/c",
    "/c/a", "/b/a/c",
};
static const char rnd_data[] = "0123456789abcdefghijklmnopqrstuvwxyz";

static struct zk_op random_op(void)
{
    const char *p = rnd_paths[rnd(ZK_ARRAY_LEN(rnd_paths))];
    struct zk_op o = mk(ZK_OP_CREATE, p);
    switch (rnd(8)) {
    case 0: o.flags = ZK_CREATE_DIR; break;
    case 1: o.type = ZK_OP_DELETE; break;
    case 2: o.type = ZK_OP_SET_DATA; break;
    case 3: o.type = ZK_OP_APPEND; break;
    case 4:
        o.type = ZK_OP_RENAME;
        o.path2 = rnd_paths[rnd(ZK_ARRAY_LEN(rnd_paths))];
        o.path2_len = (uint32_t)strlen(o.path2);
        break;
    case 5:
        o.flags = ZK_CREATE_EPHEMERAL;
        o.session = 1 + rnd(3);
        o.owner = "r:1";
        o.owner_len = 3;
        break;
    case 6:
        o = mk_session(rnd(2) ? ZK_OP_SESSION_CLOSE : ZK_OP_SESSION_OPEN,
                       1 + rnd(3));
        break;
    default: break;   /* a plain file create */
    }
    if (o.type != ZK_OP_DELETE && o.type != ZK_OP_RENAME) {
        o.data = (const uint8_t *)rnd_data;
        o.data_len = rnd(sizeof(rnd_data));
    }
    return o;
}

START_TEST(random_ops_keep_invariants)
{
    struct fx f;
    struct zk_op ops[3];
    int ok = 0;
    fx_open(&f);
    for (int i = 1; i <= RANDOM_TXNS; i++) {
        uint32_t n = 1 + rnd(3);
        for (uint32_t k = 0; k < n; k++)
            ops[k] = random_op();
        struct zk_apply_result *res = apply_n(&f, ops, n);
        ok += res->err == 0;
        zk_apply_result_free(res);
        if (i % RANDOM_CHECK == 0)
            check_invariants(&f);
    }
    ck_assert_int_gt(ok, RANDOM_TXNS / 10);
    fx_reopen(&f);
    check_invariants(&f);
    fx_close(&f);
}
END_TEST

/* A power cut after a checkpoint (store/ckpt.c): the disk holds, of each
 * page written since, either the old or the new version (any mix; pages
 * past the old end of the file new or zeros), and both meta pages may be
 * new. Opened in another boot, the store is the checkpoint's version,
 * whole (zk_store_check finds nothing), and the log still holds every
 * entry after it. The writes after the checkpoint rewrite, delete and
 * create files so that LMDB reuses freed pages: without the checkpoint's
 * reader, the version it names would be overwritten. */
static void ck_copy_dir(const char *from, const char *to)
{
    char a[256], b[256];
    snprintf(a, sizeof(a), "%s/zkfs-wal", from);
    snprintf(b, sizeof(b), "%s/zkfs-wal", to);
    ck_assert_int_eq(mkdir(b, 0700), 0);
    DIR *d = opendir(a);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char x[512], y[512];
        snprintf(x, sizeof(x), "%s/%s", a, e->d_name);
        snprintf(y, sizeof(y), "%s/%s", b, e->d_name);
        zk_test_copy_file(x, y);
    }
    closedir(d);
    snprintf(a, sizeof(a), "%s/zkfs.ckpt", from);
    snprintf(b, sizeof(b), "%s/zkfs.ckpt", to);
    zk_test_copy_file(a, b);
}

static uint8_t *ck_read_file(const char *dir, size_t *len)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/zkfs.mdb", dir);
    FILE *fp = fopen(p, "rb");
    ck_assert_ptr_nonnull(fp);
    fseek(fp, 0, SEEK_END);
    *len = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc(*len ? *len : 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, *len, fp), *len);
    fclose(fp);
    return buf;
}

static void ck_write_file(const char *dir, const uint8_t *buf, size_t len)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/zkfs.mdb", dir);
    FILE *fp = fopen(p, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(buf, 1, len, fp), len);
    ck_assert_int_eq(fclose(fp), 0);
}


static void ck_no_problem(void *arg, const char *what, const char *text)
{
    (void)arg;
    ck_abort_msg("check: %s: %s", what, text);
}

START_TEST(power_cut_goes_back_to_the_checkpoint)
{
    struct fx f;
    char name[64], data[160];
    setenv("ZKFS_CHECKPOINT_MS", "100000000", 1);  /* only ours */
    setenv("ZKFS_TEST_BOOT_ID", "boot-a", 1);
    fx_open(&f);
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "/f%02d", i);
        snprintf(data, sizeof(data), "old %d %0100d", i, i);
        ck_lazy(&f, mk_data(ZK_OP_CREATE, name, data));
    }
    ck_assert_int_eq(zk_store_checkpoint(f.s), 0);
    uint64_t at = f.zxid;
    size_t olen;
    uint8_t *old = ck_read_file(f.dir, &olen);
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "/f%02d", i);
        snprintf(data, sizeof(data), "new %d", i);
        ck_lazy(&f, i % 3 == 0 ? mk(ZK_OP_DELETE, name)
                               : mk_data(ZK_OP_SET_DATA, name, data));
        snprintf(name, sizeof(name), "/g%02d", i);
        ck_lazy(&f, mk_data(ZK_OP_CREATE, name, data));
    }
    uint64_t last = f.zxid;
    size_t nlen;
    uint8_t *cur = ck_read_file(f.dir, &nlen);
    ck_assert_uint_ge(nlen, olen);
    size_t psize = (size_t)sysconf(_SC_PAGESIZE), changed = 0;
    for (size_t off = 0; off < olen; off += psize)
        changed += memcmp(old + off, cur + off, psize) != 0;
    ck_assert_uint_gt(changed, 2);      /* more than the meta pages */
    rnd_state = 0x9e3779b97f4a7c15ull;
    for (int img = 0; img < 24; img++) {
        struct fx g;
        fx_mkdir(&g);
        ck_copy_dir(f.dir, g.dir);
        uint8_t *mix = malloc(nlen);
        ck_assert_ptr_nonnull(mix);
        /* Image 0: every new page, image 1: none; the rest a mix. */
        for (size_t off = 0; off < nlen; off += psize) {
            int take_new = img == 0 ? 1 : img == 1 ? 0 : (int)rnd(2);
            if (take_new)
                memcpy(mix + off, cur + off, psize);
            else if (off < olen)
                memcpy(mix + off, old + off, psize);
            else
                memset(mix + off, 0, psize);
        }
        ck_write_file(g.dir, mix, nlen);
        free(mix);
        setenv("ZKFS_TEST_BOOT_ID", "boot-b", 1);
        ck_assert_int_eq(zk_store_open(g.dir, 0, &g.s), 0);
        struct zk_store_info info;
        struct zk_store_check_stats cst;
        ck_assert_int_eq(zk_store_info(g.s, &info), 0);
        ck_assert_uint_eq(info.last_applied_zxid, at);
        ck_assert_uint_le(info.log_first_zxid, at + 1);
        ck_assert_uint_eq(info.log_last_zxid, last);
        ck_assert_int_eq(zk_store_check(g.s, ck_no_problem, NULL, &cst), 0);
        ck_assert_uint_eq(cst.problems, 0);
        for (int i = 0; i < 40; i++) {
            snprintf(name, sizeof(name), "/f%02d", i);
            snprintf(data, sizeof(data), "old %d %0100d", i, i);
            assert_data(&g, name, data);
            snprintf(name, sizeof(name), "/g%02d", i);
            ck_assert(!exists(&g, name));
        }
        fx_close(&g);
    }
    /* In the same boot nothing is put back: the page cache had it all. */
    {
        struct fx g;
        fx_mkdir(&g);
        ck_copy_dir(f.dir, g.dir);
        ck_write_file(g.dir, cur, nlen);
        setenv("ZKFS_TEST_BOOT_ID", "boot-a", 1);
        ck_assert_int_eq(zk_store_open(g.dir, 0, &g.s), 0);
        struct zk_store_info info;
        ck_assert_int_eq(zk_store_info(g.s, &info), 0);
        ck_assert_uint_eq(info.last_applied_zxid, last);
        assert_data(&g, "/g39", "new 39");
        ck_assert(!exists(&g, "/f39"));
        fx_close(&g);
    }
    free(old);
    free(cur);
    fx_close(&f);
    unsetenv("ZKFS_CHECKPOINT_MS");
    unsetenv("ZKFS_TEST_BOOT_ID");
}
END_TEST

/* A crash of the process alone (here: a child that _exits without closing
 * the store, as kill -9 would) keeps every commit in the page cache; a
 * restart in the same boot opens the newest version, and its first
 * checkpoint is of that version, taken before any commit of its own. So a
 * power cut after the restart goes back to what the restart found, not to
 * the checkpoint before the crash (whose pages the restart's commits may
 * reuse). */
static void crash_child(struct fx *f, int ops)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char name[64];
        struct fx g = *f;
        if (zk_store_open(g.dir, 0, &g.s) != 0)
            _exit(2);
        for (int i = 0; i < ops; i++) {
            snprintf(name, sizeof(name), "/c%02d", i);
            struct zk_op op = mk_data(ZK_OP_CREATE, name, "x");
            struct zk_apply_result *r = zk_test_commit_lazy(
                g.s, ++g.zxid, ++g.time_ms, &op, 1);
            if (r->err != 0)
                _exit(3);
            zk_apply_result_free(r);
            if (i == ops / 2 && zk_store_checkpoint(g.s) != 0)
                _exit(4);
        }
        _exit(0);           /* no close: the process "crashes" */
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    f->zxid += (uint64_t)ops;
    f->time_ms += (uint64_t)ops;
}

/* A store in boot-a whose process crashed (crash_child) after 40 creates,
 * with a checkpoint after the 21st; checkpoints otherwise only at open. */
static void crashed_store(struct fx *f)
{
    setenv("ZKFS_CHECKPOINT_MS", "100000000", 1);
    setenv("ZKFS_TEST_BOOT_ID", "boot-a", 1);
    fx_open(f);
    zk_store_close(f->s);
    f->s = NULL;
    crash_child(f, 40);
}

/* The end of a crashed_store test: the store, open again, checks whole. */
static void crashed_store_end(struct fx *f)
{
    struct zk_store_check_stats cst;
    ck_assert_int_eq(zk_store_check(f->s, ck_no_problem, NULL, &cst), 0);
    ck_assert_uint_eq(cst.problems, 0);
    fx_close(f);
    unsetenv("ZKFS_CHECKPOINT_MS");
    unsetenv("ZKFS_TEST_BOOT_ID");
}

START_TEST(power_cut_after_a_crash_and_restart)
{
    struct fx f;
    struct zk_store_info info;
    crashed_store(&f);
    crash_child(&f, 0);         /* restarted in the same boot, crashed */
    setenv("ZKFS_TEST_BOOT_ID", "boot-b", 1);     /* then the power cut */
    ck_assert_int_eq(zk_store_open(f.dir, 0, &f.s), 0);
    ck_assert_int_eq(zk_store_info(f.s, &info), 0);
    ck_assert_uint_eq(info.last_applied_zxid, f.zxid);
    ck_assert(exists(&f, "/c39"));
    crashed_store_end(&f);
}
END_TEST

/* A zkfs.mdb copied in by hand (another store's, with more commits)
 * beside the checkpoint of the file it replaced, which was not closed
 * cleanly: opened in another boot, the checkpoint is not put back into it
 * (its root page differs): the open refuses (ZK_ECORRUPT, the log says
 * to delete zkfs.ckpt if the copy is whole); without zkfs.ckpt the copy
 * opens, whole. After a clean close nothing is put back in any boot. */
START_TEST(checkpoint_of_another_file_left_alone)
{
    struct fx x, y;
    char name[64], from[128], to[128];
    struct zk_store_check_stats cst;
    setenv("ZKFS_CHECKPOINT_MS", "100000000", 1);
    setenv("ZKFS_TEST_BOOT_ID", "boot-a", 1);
    fx_open(&x);
    fx_open(&y);
    for (int i = 0; i < 30; i++) {
        snprintf(name, sizeof(name), "/y%d", i);
        ck_assert_int_eq(mkfile(&y, name, "y"), 0);
    }
    zk_store_close(x.s);
    x.s = NULL;
    zk_store_close(y.s);
    y.s = NULL;
    crash_child(&x, 10);
    snprintf(from, sizeof(from), "%s/zkfs.mdb", y.dir);
    snprintf(to, sizeof(to), "%s/zkfs.mdb", x.dir);
    zk_test_copy_file(from, to);
    setenv("ZKFS_TEST_BOOT_ID", "boot-b", 1);
    ck_assert_int_eq(reopen_rc(&x), ZK_ECORRUPT);
    snprintf(to, sizeof(to), "%s/zkfs.ckpt", x.dir);
    ck_assert_int_eq(unlink(to), 0);
    ck_assert_int_eq(zk_store_open(x.dir, 0, &x.s), 0);
    ck_assert(exists(&x, "/y29"));
    ck_assert(!exists(&x, "/c00"));
    ck_assert_int_eq(zk_store_check(x.s, ck_no_problem, NULL, &cst), 0);
    ck_assert_uint_eq(cst.problems, 0);
    /* Closed cleanly: another boot puts nothing back. */
    zk_store_close(x.s);
    x.s = NULL;
    snprintf(from, sizeof(from), "%s/zkfs.mdb", y.dir);
    snprintf(to, sizeof(to), "%s/zkfs.mdb", x.dir);
    zk_test_copy_file(from, to);
    setenv("ZKFS_TEST_BOOT_ID", "boot-c", 1);
    ck_assert_int_eq(zk_store_open(x.dir, 0, &x.s), 0);
    ck_assert(exists(&x, "/y29"));
    fx_close(&x);
    fx_close(&y);
    unsetenv("ZKFS_CHECKPOINT_MS");
    unsetenv("ZKFS_TEST_BOOT_ID");
}
END_TEST

/* Opens f's store again, in the same boot: it must be back at the
 * checkpoint of zxid good, with everything after it still in the log. */
static void reopened_at(struct fx *f, uint64_t good)
{
    struct zk_store_info info;
    f->s = NULL;
    ck_assert_int_eq(zk_store_open(f->dir, 0, &f->s), 0);
    ck_assert_int_eq(zk_store_info(f->s, &info), 0);
    ck_assert_uint_eq(info.last_applied_zxid, good);
    ck_assert_uint_eq(info.log_last_zxid, f->zxid);
}

/* A checkpoint whose sync fails (ZKFS_TEST_CHECKPOINT_FAIL=4: the
 * open's 2 and one here succeed, the next fails, as a failing disk's
 * would): every commit and checkpoint after it fails too (a failed sync
 * is reported once), close writes no slot, and the next open, in the
 * same boot, goes back to the last good checkpoint (its slot was
 * marked): what came after is in the log. */
START_TEST(failed_checkpoint_goes_back_at_the_next_open)
{
    struct fx f;
    struct zk_store_check_stats cst;
    char name[64];
    setenv("ZKFS_CHECKPOINT_MS", "100000000", 1);
    setenv("ZKFS_TEST_BOOT_ID", "boot-a", 1);
    fx_open(&f);
    zk_store_close(f.s);
    setenv("ZKFS_TEST_CHECKPOINT_FAIL", "4", 1);
    ck_assert_int_eq(zk_store_open(f.dir, 0, &f.s), 0);
    unsetenv("ZKFS_TEST_CHECKPOINT_FAIL");
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "/a%d", i);
        ck_lazy(&f, mk_data(ZK_OP_CREATE, name, "a"));
    }
    uint64_t good = f.zxid;
    ck_assert_int_eq(zk_store_checkpoint(f.s), 0);
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "/b%d", i);
        ck_lazy(&f, mk_data(ZK_OP_CREATE, name, "b"));
    }
    ck_assert_int_eq(zk_store_checkpoint(f.s), -EIO);
    ck_assert_int_eq(zk_store_checkpoint(f.s), -EIO);
    struct zk_store_batch *b;
    uint8_t *buf;
    size_t len;
    struct zk_apply_result *res;
    enc_create("/c", &buf, &len);
    ck_assert_int_eq(zk_store_batch_begin(f.s, &b), 0);
    ck_assert_int_eq(zk_store_batch_log(b, f.zxid + 1, buf, len), 0);
    ck_assert_int_eq(zk_store_batch_apply(b, f.zxid + 1, buf, len, &res), 0);
    zk_apply_result_free(res);
    ck_assert_int_lt(zk_store_batch_commit_lazy(b), 0);
    free(buf);
    zk_store_close(f.s);
    reopened_at(&f, good);
    ck_assert(exists(&f, "/a9"));
    ck_assert(!exists(&f, "/b0"));
    ck_assert_int_eq(zk_store_check(f.s, ck_no_problem, NULL, &cst), 0);
    fx_close(&f);
    unsetenv("ZKFS_CHECKPOINT_MS");
    unsetenv("ZKFS_TEST_BOOT_ID");
}
END_TEST

/* A checkpoint that fails at open (commits a crashed process left in the
 * page cache whose writeback then failed: the open's sync says so) marks
 * the last good slot as well, so that the next open in the same boot
 * goes back to that checkpoint instead of trusting the page cache. Until
 * 2026-12-05 the mark needed a slot this process had written itself and
 * was never made at open (found by a review). */
START_TEST(failed_checkpoint_at_open_goes_back_at_the_next_open)
{
    struct fx f;
    crashed_store(&f);
    uint64_t good = f.zxid - 19;    /* the checkpoint after the 21st */
    setenv("ZKFS_TEST_CHECKPOINT_FAIL", "1", 1);
    ck_assert_int_lt(zk_store_open(f.dir, 0, &f.s), 0);
    unsetenv("ZKFS_TEST_CHECKPOINT_FAIL");
    reopened_at(&f, good);
    ck_assert(exists(&f, "/c20"));
    ck_assert(!exists(&f, "/c21"));
    crashed_store_end(&f);
}
END_TEST

/* A store from before the checkpoints (no zkfs.ckpt: it synced every
 * commit) opens as it is in any boot, and gets its first checkpoint. */
START_TEST(store_without_checkpoint_file_opens)
{
    struct fx f;
    char p[128];
    struct stat sb;
    setenv("ZKFS_TEST_BOOT_ID", "boot-a", 1);
    fx_open(&f);
    ck_assert_int_eq(mkfile(&f, "/old", "x"), 0);
    zk_store_close(f.s);
    f.s = NULL;
    snprintf(p, sizeof(p), "%s/zkfs.ckpt", f.dir);
    ck_assert_int_eq(unlink(p), 0);
    setenv("ZKFS_TEST_BOOT_ID", "boot-b", 1);
    ck_assert_int_eq(zk_store_open(f.dir, 0, &f.s), 0);
    assert_data(&f, "/old", "x");
    ck_assert_int_eq(stat(p, &sb), 0);
    snprintf(p, sizeof(p), "%s/zkfs.ckpt.tmp", f.dir);
    ck_assert_int_eq(stat(p, &sb), -1);     /* renamed into place */
    fx_close(&f);
    unsetenv("ZKFS_TEST_BOOT_ID");
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
    tcase_add_test(tc, set_data_result_carries_its_stat);
    tcase_add_test(tc, append_and_efbig);
    tcase_add_test(tc, set_attr_and_check);
    tcase_add_test(tc, set_attr_mtime);
    tcase_add_test(tc, set_children_and_sequential);
    tcase_add_test(tc, multi_rolls_back);
    tcase_add_test(tc, ephemerals_and_sessions);
    tcase_add_test(tc, removal_changes_carry_stat);
    tcase_add_test(tc, rename_basic);
    tcase_add_test(tc, rename_errors);
    tcase_add_test(tc, rename_replaces);
    tcase_add_test(tc, rename_ephemeral);
    tcase_add_test(tc, long_names);
    tcase_add_test(tc, log_append_scan_truncate);
    tcase_add_test(tc, lazy_commit_applies);
    tcase_add_test(tc, power_cut_goes_back_to_the_checkpoint);
    tcase_add_test(tc, power_cut_after_a_crash_and_restart);
    tcase_add_test(tc, checkpoint_of_another_file_left_alone);
    tcase_add_test(tc, failed_checkpoint_goes_back_at_the_next_open);
    tcase_add_test(tc, failed_checkpoint_at_open_goes_back_at_the_next_open);
    tcase_add_test(tc, store_without_checkpoint_file_opens);
    tcase_add_test(tc, log_trim_keeps_recent);
    tcase_add_test(tc, abort_leaves_nothing);
    tcase_add_test(tc, meta_values);
    tcase_add_test(tc, file_id_names_the_file);
    tcase_add_test(tc, bad_format_refused);
    tcase_add_test(tc, corrupt_meta_refused);
    tcase_add_test(tc, foreign_lmdb_refused);
    tcase_add_test(tc, damaged_file_refused);
    tcase_add_test(tc, map_full_is_enospc);
    tcase_add_test(tc, map_full_behind_the_checkpoint);
    tcase_add_test(tc, readers_see_whole_commits);
    tcase_add_test(tc, key_order_is_lmdb_default);
    tcase_add_test(tc, kept_reader_follows_commits);
    tcase_add_test(tc, kept_reader_lets_go_when_idle);
    tcase_add_test(tc, kept_reader_remembers_only_the_newest);
    tcase_add_test(tc, random_ops_keep_invariants);
    tcase_add_test(tc, snapshot_install_roundtrip);
    tcase_add_test(tc, snapshot_bad_stream_rejected);
    suite_add_tcase(s, tc);
    return s;
}
