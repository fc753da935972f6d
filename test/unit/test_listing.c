/*
 * test_listing.c — fs/listing.c without a mount: the directory listings
 * the daemon keeps, against the store's own listing. A random run of
 * creates, deletes, renames (across directories, over existing names) and
 * multi-op transactions, each applied to a real store and then reported
 * to the listings as the applied callback does, must leave every kept
 * listing equal to zk_store_list; listings held by "open directories"
 * never change; a change the listing already contains (read after the
 * store applied it, reported after) is not applied twice; a snapshot
 * install (reset) forgets them all; the bytes kept stay within the bound,
 * least recently listed out first.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../fs/fs_int.h"
#include "store_fx.h"

struct lfx {
    char dir[64];
    struct zk_fs *fs;
    uint64_t zxid, time_ms;
};

static void lfx_open(struct lfx *f)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/zkfs-listing-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(f->dir));
    f->fs = calloc(1, sizeof(*f->fs));
    ck_assert_ptr_nonnull(f->fs);
    f->fs->provs.prev = f->fs->provs.next = &f->fs->provs;
    ck_assert_int_eq(zk_store_open(f->dir, 1, &f->fs->store), 0);
    f->zxid = UINT64_C(1) << 32;
    f->time_ms = 1700000000000ull;
}

static void lfx_close(struct lfx *f)
{
    zk__fs_listing_free_all(f->fs);
    zk_store_close(f->fs->store);
    free(f->fs);
    zk_test_rmtree(f->dir);
}

/* Commits ops to the store; the caller reports (and frees) the result. */
static struct zk_apply_result *commit(struct lfx *f, struct zk_op *ops,
                                      uint32_t n)
{
    return zk_test_commit(f->fs->store, ++f->zxid, ++f->time_ms, ops, n);
}

/* Commits ops and reports them as the applied callback does. */
static int apply(struct lfx *f, struct zk_op *ops, uint32_t n)
{
    struct zk_apply_result *res = commit(f, ops, n);
    int err = res->err;
    zk__fs_listing_applied(f->fs, res);
    zk_apply_result_free(res);
    return err;
}

static uint64_t ino_of(struct lfx *f, const char *path)
{
    struct zk_stat st;
    ck_assert_int_eq(zk_store_resolve(f->fs->store, path, &st), 0);
    return st.ino;
}

/* What the store lists: names with inode and kind, one line each. */
struct text {
    char buf[1 << 16];
    size_t len;
};

static int text_add(void *arg, const char *name, const struct zk_stat *st)
{
    struct text *t = arg;
    int n = snprintf(t->buf + t->len, sizeof(t->buf) - t->len, "%s %llu %u\n",
                     name, (unsigned long long)st->ino, st->kind);
    ck_assert(n > 0 && (size_t)n < sizeof(t->buf) - t->len);
    t->len += (size_t)n;
    return 0;
}

static void listing_text(const struct zk__fs_listing *ls, struct text *t)
{
    t->len = 0;
    t->buf[0] = '\0';
    for (size_t i = 0; i < ls->n; i++) {
        struct zk_stat st = {.ino = ls->ents[i].ino, .kind = ls->ents[i].kind};
        text_add(t, ls->names + ls->ents[i].name_off, &st);
    }
}

/* dir's listing (kept or read now) equals the store's. */
static void check_dir(struct lfx *f, uint64_t dir)
{
    static struct text want, got;
    struct zk__fs_listing *ls;
    want.len = 0;
    want.buf[0] = '\0';
    ck_assert_int_eq(zk_store_list(f->fs->store, dir, text_add, &want), 0);
    ck_assert_int_eq(zk__fs_listing_open(f->fs, dir, &ls), 0);
    listing_text(ls, &got);
    ck_assert_msg(strcmp(want.buf, got.buf) == 0,
                  "dir %llu: store lists\n%s\nlisting has\n%s",
                  (unsigned long long)dir, want.buf, got.buf);
    zk__fs_listing_put(ls);
}

#define DIRS       3
#define NAMES      24
#define HELD       4
#define STEPS      1500

/* An open directory: the listing it holds and what it showed then. */
struct held {
    struct zk__fs_listing *ls;
    struct text seen;
};

static void hold(struct lfx *f, struct held *h, uint64_t dir)
{
    ck_assert_int_eq(zk__fs_listing_open(f->fs, dir, &h->ls), 0);
    listing_text(h->ls, &h->seen);
}

static void release(struct held *h)
{
    static struct text now;
    listing_text(h->ls, &now);
    ck_assert_msg(strcmp(now.buf, h->seen.buf) == 0,
                  "an open directory's listing changed");
    zk__fs_listing_put(h->ls);
    h->ls = NULL;
}

static uint64_t rnd(uint64_t *seed)
{
    *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
    return *seed >> 33;
}

static void random_step(struct lfx *f, uint64_t *seed, struct held *held,
                        const uint64_t *dirs)
{
    char p[64], p2[64], p3[64];
    snprintf(p, sizeof(p), "/d%llu/n%llu", (unsigned long long)rnd(seed) % DIRS,
             (unsigned long long)rnd(seed) % NAMES);
    snprintf(p2, sizeof(p2), "/d%llu/n%llu",
             (unsigned long long)rnd(seed) % DIRS,
             (unsigned long long)rnd(seed) % NAMES);
    snprintf(p3, sizeof(p3), "/d%llu/m%llu",
             (unsigned long long)rnd(seed) % DIRS,
             (unsigned long long)rnd(seed) % NAMES);
    struct zk_op ops[2];
    struct held *h = &held[rnd(seed) % HELD];
    switch (rnd(seed) % 8) {
    case 0: case 1:
        ops[0] = zk_test_op(ZK_OP_CREATE, p, NULL);
        if (rnd(seed) % 4 == 0)
            ops[0].flags = ZK_CREATE_DIR;
        apply(f, ops, 1);
        break;
    case 2:
        ops[0] = zk_test_op(ZK_OP_DELETE, p, NULL);
        apply(f, ops, 1);
        break;
    case 3: case 4:
        ops[0] = zk_test_op(ZK_OP_RENAME, p, p2);
        apply(f, ops, 1);
        break;
    case 5:                     /* two changes, one transaction */
        ops[0] = zk_test_op(ZK_OP_CREATE, p3, NULL);
        ops[1] = zk_test_op(ZK_OP_RENAME, p, p2);
        apply(f, ops, 2);
        break;
    case 6:                     /* an open directory comes or goes */
        if (h->ls)
            release(h);
        else
            hold(f, h, dirs[rnd(seed) % DIRS]);
        break;
    default:                    /* read before the change is reported */
        ops[0] = zk_test_op(ZK_OP_CREATE, p3, NULL);
        {
            struct zk_apply_result *res = commit(f, ops, 1);
            char parent[8];
            memcpy(parent, p3, 3);
            parent[3] = '\0';
            /* Kept listings show reported changes only: the parent's is
             * read again, with the change in it. */
            zk__fs_listing_reset(f->fs);
            check_dir(f, ino_of(f, parent));
            zk__fs_listing_applied(f->fs, res);
            zk_apply_result_free(res);
        }
        break;
    }
}

START_TEST(listings_follow_the_store)
{
    struct lfx f;
    struct held held[HELD];
    uint64_t dirs[DIRS], seed = 20261203;
    lfx_open(&f);
    memset(held, 0, sizeof(held));
    for (int d = 0; d < DIRS; d++) {
        char p[16];
        snprintf(p, sizeof(p), "/d%d", d);
        struct zk_op o = zk_test_op(ZK_OP_CREATE, p, NULL);
        o.flags = ZK_CREATE_DIR;
        ck_assert_int_eq(apply(&f, &o, 1), 0);
        dirs[d] = ino_of(&f, p);
    }
    for (int i = 0; i < STEPS; i++) {
        random_step(&f, &seed, held, dirs);
        for (int d = 0; d < DIRS; d++)
            check_dir(&f, dirs[d]);
        if (i % 500 == 499)
            zk__fs_listing_reset(f.fs);   /* as a snapshot install */
    }
    struct zk__fs_lcache *lc = &f.fs->listings;
    ck_assert_uint_gt(lc->patched, 300);   /* kept, not read again */
    ck_assert_uint_gt(lc->hits, (uint64_t)STEPS * DIRS / 2);
    ck_assert_uint_eq(lc->dropped, 0);      /* every patch fitted */
    for (int i = 0; i < HELD; i++)
        if (held[i].ls)
            release(&held[i]);
    lfx_close(&f);
}
END_TEST

START_TEST(held_listing_stays_and_cache_moves_on)
{
    struct lfx f;
    struct zk__fs_listing *old, *cur;
    lfx_open(&f);
    struct zk_op o = zk_test_op(ZK_OP_CREATE, "/a", NULL);
    o.flags = ZK_CREATE_DIR;
    ck_assert_int_eq(apply(&f, &o, 1), 0);
    o = zk_test_op(ZK_OP_CREATE, "/a/x", NULL);
    ck_assert_int_eq(apply(&f, &o, 1), 0);
    uint64_t a = ino_of(&f, "/a");
    ck_assert_int_eq(zk__fs_listing_open(f.fs, a, &old), 0);
    ck_assert_uint_eq(old->n, 1);
    o = zk_test_op(ZK_OP_CREATE, "/a/y", NULL);
    ck_assert_int_eq(apply(&f, &o, 1), 0);
    ck_assert_uint_eq(old->n, 1);           /* the open directory's */
    ck_assert_int_eq(old->cached, 0);
    ck_assert_int_eq(zk__fs_listing_open(f.fs, a, &cur), 0);
    ck_assert_ptr_ne(cur, old);
    ck_assert_uint_eq(cur->n, 2);
    ck_assert_int_eq(cur->cached, 1);
    zk__fs_listing_put(cur);
    /* A snapshot install forgets the kept one; the open one stays. */
    zk__fs_listing_reset(f.fs);
    ck_assert_uint_eq(f.fs->listings.count, 0);
    ck_assert_uint_eq(f.fs->listings.bytes, 0);
    ck_assert_str_eq(old->names + old->ents[0].name_off, "x");
    zk__fs_listing_put(old);
    /* An empty listing held open, then changed (copied without arrays). */
    o = zk_test_op(ZK_OP_CREATE, "/e", NULL);
    o.flags = ZK_CREATE_DIR;
    ck_assert_int_eq(apply(&f, &o, 1), 0);
    ck_assert_int_eq(zk__fs_listing_open(f.fs, ino_of(&f, "/e"), &old), 0);
    ck_assert_uint_eq(old->n, 0);
    o = zk_test_op(ZK_OP_CREATE, "/e/x", NULL);
    ck_assert_int_eq(apply(&f, &o, 1), 0);
    ck_assert_uint_eq(old->n, 0);
    check_dir(&f, ino_of(&f, "/e"));
    zk__fs_listing_put(old);
    zk__fs_listing_reset(f.fs);
    /* Deleting a directory forgets its listing. */
    check_dir(&f, a);
    ck_assert_uint_eq(f.fs->listings.count, 1);
    const char *rm[] = {"/a/x", "/a/y", "/a"};
    for (int i = 0; i < 3; i++) {
        o = zk_test_op(ZK_OP_DELETE, rm[i], NULL);
        ck_assert_int_eq(apply(&f, &o, 1), 0);
    }
    ck_assert_uint_eq(f.fs->listings.count, 0);
    lfx_close(&f);
}
END_TEST

START_TEST(change_already_read_is_not_applied_twice)
{
    struct lfx f;
    struct zk__fs_listing *ls;
    lfx_open(&f);
    struct zk_op o = zk_test_op(ZK_OP_CREATE, "/q", NULL);
    o.flags = ZK_CREATE_DIR;
    ck_assert_int_eq(apply(&f, &o, 1), 0);
    uint64_t q = ino_of(&f, "/q");
    check_dir(&f, q);                       /* kept, empty */
    o = zk_test_op(ZK_OP_CREATE, "/q/a", NULL);
    struct zk_apply_result *late = commit(&f, &o, 1);
    zk__fs_listing_reset(f.fs);             /* read again, with /q/a */
    ck_assert_int_eq(zk__fs_listing_open(f.fs, q, &ls), 0);
    ck_assert_uint_eq(ls->n, 1);
    zk__fs_listing_put(ls);
    zk__fs_listing_applied(f.fs, late);     /* reported only now */
    zk_apply_result_free(late);
    ck_assert_int_eq(zk__fs_listing_open(f.fs, q, &ls), 0);
    ck_assert_uint_eq(ls->n, 1);
    ck_assert_uint_eq(f.fs->listings.dropped, 0);
    zk__fs_listing_put(ls);
    lfx_close(&f);
}
END_TEST

START_TEST(bytes_kept_are_bounded_lru)
{
    struct lfx f;
    char p[32];
    uint64_t dirs[20];
    lfx_open(&f);
    for (int d = 0; d < 20; d++) {
        snprintf(p, sizeof(p), "/d%02d", d);
        struct zk_op o = zk_test_op(ZK_OP_CREATE, p, NULL);
        o.flags = ZK_CREATE_DIR;
        ck_assert_int_eq(apply(&f, &o, 1), 0);
        dirs[d] = ino_of(&f, p);
        for (int i = 0; i < 50; i++) {
            snprintf(p, sizeof(p), "/d%02d/child-%03d", d, i);
            o = zk_test_op(ZK_OP_CREATE, p, NULL);
            ck_assert_int_eq(apply(&f, &o, 1), 0);
        }
    }
    struct zk__fs_lcache *lc = &f.fs->listings;
    check_dir(&f, dirs[0]);
    size_t one = lc->bytes;
    ck_assert_uint_gt(one, 50 * 16);
    lc->bytes_max = one * 5 + one / 2;      /* room for five */
    for (int d = 1; d < 20; d++)
        check_dir(&f, dirs[d]);
    ck_assert_uint_le(lc->bytes, lc->bytes_max);
    ck_assert_uint_eq(lc->count, 5);
    ck_assert_uint_eq(lc->evicted, 15);
    uint64_t misses = lc->misses;
    check_dir(&f, dirs[19]);                /* the newest stayed */
    check_dir(&f, dirs[15]);
    ck_assert_uint_eq(lc->misses, misses);
    check_dir(&f, dirs[0]);                 /* the oldest went */
    ck_assert_uint_eq(lc->misses, misses + 1);
    /* The least recently listed goes first: 16 (not 15, listed again). */
    check_dir(&f, dirs[15]);
    ck_assert_uint_eq(lc->misses, misses + 1);
    check_dir(&f, dirs[16]);
    ck_assert_uint_eq(lc->misses, misses + 2);
    /* A listing bigger than the whole bound is read but not kept. */
    lc->bytes_max = one / 2;
    size_t kept = lc->count;
    struct zk__fs_listing *ls;
    ck_assert_int_eq(zk__fs_listing_open(f.fs, dirs[3], &ls), 0);
    ck_assert_uint_eq(ls->n, 50);
    ck_assert_int_eq(ls->cached, 0);
    ck_assert_uint_le(lc->count, kept);
    zk__fs_listing_put(ls);
    lfx_close(&f);
}
END_TEST

START_TEST(errors_of_the_store)
{
    struct lfx f;
    struct zk__fs_listing *ls = NULL;
    lfx_open(&f);
    struct zk_op o = zk_test_op(ZK_OP_CREATE, "/file", NULL);
    ck_assert_int_eq(apply(&f, &o, 1), 0);
    ck_assert_int_eq(zk__fs_listing_open(f.fs, ino_of(&f, "/file"), &ls),
                     -ENOTDIR);
    ck_assert_int_eq(zk__fs_listing_open(f.fs, 987654, &ls), -ENOENT);
    ck_assert_ptr_null(ls);
    ck_assert_uint_eq(f.fs->listings.count, 0);
    lfx_close(&f);
}
END_TEST

Suite *listing_suite(void);
Suite *listing_suite(void)
{
    Suite *s = suite_create("listing");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, listings_follow_the_store);
    tcase_add_test(tc, held_listing_stays_and_cache_moves_on);
    tcase_add_test(tc, change_already_read_is_not_applied_twice);
    tcase_add_test(tc, bytes_kept_are_bounded_lru);
    tcase_add_test(tc, errors_of_the_store);
    suite_add_tcase(s, tc);
    return s;
}
