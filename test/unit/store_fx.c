/*
 * store_fx.c — the store suites' shared fixture helpers (store_fx.h).
 */
#include "store_fx.h"

#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

void zk_test_rmtree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void zk_test_copy_file(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    char buf[65536];
    size_t n;
    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(out);
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    ck_assert_int_eq(fclose(out), 0);
}

static struct zk_apply_result *commit(struct zk_store *s, uint64_t zxid,
                                      uint64_t time_ms, struct zk_op *ops,
                                      uint32_t n, int lazy)
{
    struct zk_txn txn = {time_ms, n, ops};
    uint8_t *buf;
    size_t len;
    struct zk_store_batch *b;
    struct zk_apply_result *res = NULL;
    ck_assert_int_eq(zk_txn_encode(&txn, &buf, &len), 0);
    ck_assert_int_eq(zk_store_batch_begin(s, &b), 0);
    ck_assert_int_eq(zk_store_batch_log(b, zxid, buf, len), 0);
    ck_assert_int_eq(zk_store_batch_apply(b, zxid, buf, len, &res), 0);
    ck_assert_int_eq(lazy ? zk_store_batch_commit_lazy(b)
                          : zk_store_batch_commit(b), 0);
    free(buf);
    return res;
}

struct zk_apply_result *zk_test_commit(struct zk_store *s, uint64_t zxid,
                                       uint64_t time_ms,
                                       struct zk_op *ops, uint32_t n)
{
    return commit(s, zxid, time_ms, ops, n, 0);
}

struct zk_apply_result *zk_test_commit_lazy(struct zk_store *s,
                                            uint64_t zxid, uint64_t time_ms,
                                            struct zk_op *ops, uint32_t n)
{
    return commit(s, zxid, time_ms, ops, n, 1);
}

struct zk_op zk_test_op(uint8_t type, const char *path, const char *path2)
{
    struct zk_op o;
    memset(&o, 0, sizeof(o));
    o.type = type;
    o.version = -1;
    o.mode = 0644;
    o.path = path;
    o.path_len = path ? (uint32_t)strlen(path) : 0;
    o.path2 = path2;
    o.path2_len = path2 ? (uint32_t)strlen(path2) : 0;
    return o;
}
