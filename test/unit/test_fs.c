/*
 * test_fs.c — the pieces of fs/ that need no mount: the lookup-count map
 * (against a plain array, through growth and backward-shift deletion;
 * the aliases between a provisional nodeid and its committed inode),
 * the default_permissions emulation used by the control file, the
 * ZooKeeper stat formatting behind user.zk.* and `zkfs stat`, and the
 * checks on names about to be created. Mounting is covered by
 * test/integration.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../fs/fs_int.h"

#define MAP_INOS   50000
#define MAP_STEPS  400000

START_TEST(inomap_matches_reference)
{
    struct zk__fs_inomap m = {0};
    uint64_t *ref = calloc(MAP_INOS, sizeof(*ref));
    uint64_t seed = 12345;
    ck_assert_ptr_nonnull(ref);
    for (int i = 0; i < MAP_STEPS; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t ino = ZK_INO_FIRST_NODE + (seed >> 33) % MAP_INOS;
        uint64_t n = (seed >> 20) % 3;
        uint64_t *r = &ref[ino - ZK_INO_FIRST_NODE];
        if ((seed >> 10) & 1) {
            ck_assert_int_eq(zk__fs_inomap_add(&m, ino, n + 1), 0);
            *r += n + 1;
        } else {
            zk__fs_inomap_sub(&m, ino, n);
            *r = *r > n ? *r - n : 0;
        }
    }
    size_t live = 0;
    for (uint64_t i = 0; i < MAP_INOS; i++) {
        ck_assert_uint_eq(zk__fs_inomap_get(&m, i + ZK_INO_FIRST_NODE),
                          ref[i]);
        live += ref[i] != 0;
    }
    ck_assert_uint_eq(m.len, live);
    zk__fs_inomap_free(&m);
    free(ref);
}
END_TEST

START_TEST(permissions_like_the_kernel)
{
    struct zk_stat st = {.kind = ZK_KIND_FILE, .mode = 0640, .uid = 10,
                         .gid = 20};
    struct zk__fs_cred owner = {.uid = 10, .gid = 99};
    struct zk__fs_cred member = {.uid = 11, .gid = 98, .ngroups = 1,
                                 .groups = {20}};
    struct zk__fs_cred other = {.uid = 12, .gid = 97};
    struct zk__fs_cred root = {.uid = 0, .gid = 0};

    ck_assert_int_eq(zk__fs_may(&owner, &st, 4 | 2), 0);
    ck_assert_int_eq(zk__fs_may(&owner, &st, 1), -EACCES);
    ck_assert_int_eq(zk__fs_may(&member, &st, 4), 0);
    ck_assert_int_eq(zk__fs_may(&member, &st, 2), -EACCES);
    ck_assert_int_eq(zk__fs_may(&other, &st, 4), -EACCES);
    ck_assert_int_eq(zk__fs_may(&root, &st, 4 | 2), 0);
    ck_assert_int_eq(zk__fs_may(&root, &st, 1), -EACCES);  /* no x bit */
    st.kind = ZK_KIND_DIR;
    ck_assert_int_eq(zk__fs_may(&root, &st, 2 | 1), 0);
}
END_TEST

START_TEST(zk_stat_values)
{
    struct zk_stat st = {.czxid = 0x100000002ull, .version = 7,
                         .cversion = -1, .ephemeral_owner = 0,
                         .data_length = 5};
    char buf[32];
    ck_assert_int_eq(zk__fs_zkstat_value(&st, "czxid", buf, sizeof(buf)), 10);
    ck_assert_str_eq(buf, "4294967298");
    zk__fs_zkstat_value(&st, "version", buf, sizeof(buf));
    ck_assert_str_eq(buf, "7");
    zk__fs_zkstat_value(&st, "cversion", buf, sizeof(buf));
    ck_assert_str_eq(buf, "-1");
    zk__fs_zkstat_value(&st, "ephemeralOwner", buf, sizeof(buf));
    ck_assert_str_eq(buf, "0");
    ck_assert_int_eq(zk__fs_zkstat_value(&st, "nope", buf, sizeof(buf)),
                     -ENODATA);
    for (size_t i = 0; i < zk__fs_zkstat_nkeys; i++)
        ck_assert_int_gt(zk__fs_zkstat_value(&st, zk__fs_zkstat_keys[i], buf,
                                             sizeof(buf)), 0);
}
END_TEST

START_TEST(new_names)
{
    char longname[ZK_NAME_MAX + 2];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    ck_assert_int_eq(zk__fs_check_new_name(ZK_INO_ROOT, "ok"), 0);
    ck_assert_int_eq(zk__fs_check_new_name(ZK_INO_ROOT, longname),
                     -ENAMETOOLONG);
    longname[ZK_NAME_MAX] = '\0';
    ck_assert_int_eq(zk__fs_check_new_name(ZK_INO_ROOT, longname), 0);
    ck_assert_int_eq(zk__fs_check_new_name(ZK_INO_ROOT, ZK_CTL_NAME), -EPERM);
    ck_assert_int_eq(zk__fs_check_new_name(ZK_INO_FIRST_NODE, ZK_CTL_NAME), 0);
    ck_assert_int_eq(zk__fs_check_new_name(ZK_INO_ROOT, "a\nb"), -EINVAL);
}
END_TEST

/* A provisional nodeid linked to the inode its create was committed as:
 * each names the other; the inode's slot stays (lookup count 0) while
 * the provisional one is held, and goes when it is forgotten — unless
 * the kernel looked the inode up itself meanwhile, or a file of it is
 * open. */
START_TEST(inomap_aliases)
{
    struct zk__fs_inomap m = {0};
    const uint64_t p = ZK__FS_PROV_BASE | 7, r = 1234, r2 = 5678;
    struct zk_stat st = {.ino = r2};
    ck_assert(ZK__FS_IS_PROV(p) && !ZK__FS_IS_PROV(r));
    ck_assert(!ZK__FS_IS_PROV(UINT64_C(0xfffffffffffffff0)));
    ck_assert_int_eq(zk__fs_inomap_add(&m, p, 2), 0);
    ck_assert_int_eq(zk__fs_inomap_link(&m, ZK__FS_PROV_BASE | 8, r), -ENOENT);
    ck_assert_uint_eq(m.len, 1);            /* nothing left behind */
    ck_assert_int_eq(zk__fs_inomap_link(&m, p, r), 0);
    ck_assert_uint_eq(zk__fs_inomap_alias(&m, p), r);
    ck_assert_uint_eq(zk__fs_inomap_alias(&m, r), p);
    ck_assert_uint_eq(zk__fs_inomap_get(&m, r), 0);
    zk__fs_inomap_sub(&m, p, 1);
    ck_assert_uint_eq(zk__fs_inomap_alias(&m, r), p);
    zk__fs_inomap_sub(&m, p, 1);            /* forgotten: both go */
    ck_assert_uint_eq(zk__fs_inomap_alias(&m, r), 0);
    ck_assert_uint_eq(m.len, 0);
    /* The kernel also holds r2 itself: its slot outlives the alias. */
    ck_assert_int_eq(zk__fs_inomap_add(&m, p, 1), 0);
    ck_assert_int_eq(zk__fs_inomap_link(&m, p, r2), 0);
    ck_assert_int_eq(zk__fs_inomap_add(&m, r2, 1), 0);
    zk__fs_inomap_open(&m, &st);
    zk__fs_inomap_sub(&m, r2, 1);           /* r2 forgotten, alias stays */
    ck_assert_uint_eq(zk__fs_inomap_alias(&m, r2), p);
    zk__fs_inomap_sub(&m, p, 1);
    ck_assert_uint_eq(zk__fs_inomap_alias(&m, r2), 0);
    ck_assert_ptr_nonnull(zk__fs_inomap_kept_stat(&m, r2, NULL));   /* open */
    zk__fs_inomap_close(&m, r2);
    ck_assert_uint_eq(m.len, 0);
    zk__fs_inomap_free(&m);
}
END_TEST

/* The stat a GETATTR of a deleted node answers with: the one kept at the
 * delete (the last committed) before a descriptor's, before the one kept
 * at the latest open (seed 71611: a commit through a descriptor opened
 * before had grown the file since). */
START_TEST(inomap_kept_stat_order)
{
    struct zk__fs_inomap m = {0};
    struct zk_stat at_open = {.ino = 42, .data_length = 0};
    struct zk_stat fh_st = {.ino = 42, .data_length = 1};
    struct zk_stat at_delete = {.ino = 42, .data_length = 3};
    ck_assert_int_eq(zk__fs_inomap_add(&m, 42, 1), 0);
    zk__fs_inomap_open(&m, &at_open);
    ck_assert_uint_eq(zk__fs_inomap_kept_stat(&m, 42, NULL)->data_length, 0);
    ck_assert_uint_eq(zk__fs_inomap_kept_stat(&m, 42, &fh_st)->data_length, 1);
    zk__fs_inomap_gone(&m, &at_delete);
    ck_assert_uint_eq(zk__fs_inomap_kept_stat(&m, 42, NULL)->data_length, 3);
    ck_assert_uint_eq(zk__fs_inomap_kept_stat(&m, 42, &fh_st)->data_length, 3);
    ck_assert_ptr_null(zk__fs_inomap_kept_stat(&m, 43, NULL));
    zk__fs_inomap_close(&m, 42);
    zk__fs_inomap_sub(&m, 42, 1);
    ck_assert_uint_eq(m.len, 0);
    zk__fs_inomap_free(&m);
}
END_TEST

/* Stored times: ms since the epoch, two's complement, floor division on
 * the way back; the far ends clamped, never wrapped. */
START_TEST(times_round_trip)
{
    struct timespec t = {.tv_sec = -315576000 + 43200, .tv_nsec = 250000000};
    uint64_t ms = zk__fs_time_ms(&t);
    ck_assert_int_eq((int64_t)ms, (int64_t)(-315576000 + 43200) * 1000 + 250);
    struct timespec back = zk__fs_ms_time(ms);
    ck_assert_int_eq(back.tv_sec, t.tv_sec);
    ck_assert_int_eq(back.tv_nsec, t.tv_nsec);
    back = zk__fs_ms_time((uint64_t)(int64_t)-1);    /* 1 ms before 1970 */
    ck_assert_int_eq(back.tv_sec, -1);
    ck_assert_int_eq(back.tv_nsec, 999000000);
    back = zk__fs_ms_time(981173106789ull);
    ck_assert_int_eq(back.tv_sec, 981173106);
    ck_assert_int_eq(back.tv_nsec, 789000000);
    t = (struct timespec){.tv_sec = INT64_MAX, .tv_nsec = 999999999};
    ms = zk__fs_time_ms(&t);
    ck_assert_int_gt((int64_t)ms, 0);
    ck_assert_int_eq(zk__fs_ms_time(ms).tv_sec, INT64_MAX / 1000 - 1);
    t = (struct timespec){.tv_sec = INT64_MIN, .tv_nsec = 0};
    ms = zk__fs_time_ms(&t);
    ck_assert_int_lt((int64_t)ms, 0);
    ck_assert_int_eq(zk__fs_ms_time(ms).tv_sec, -(INT64_MAX / 1000 - 1));
}
END_TEST

Suite *fs_suite(void);
Suite *fs_suite(void)
{
    Suite *s = suite_create("fs");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, inomap_matches_reference);
    tcase_add_test(tc, inomap_aliases);
    tcase_add_test(tc, inomap_kept_stat_order);
    tcase_add_test(tc, permissions_like_the_kernel);
    tcase_add_test(tc, zk_stat_values);
    tcase_add_test(tc, times_round_trip);
    tcase_add_test(tc, new_names);
    suite_add_tcase(s, tc);
    return s;
}
