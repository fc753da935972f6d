/*
 * test_lincheck.c — the linearizability checker (test/lin/lincheck.c) on
 * small histories whose verdict is known by hand: linearizable ones
 * (overlapping operations in either order, indeterminate writes that did
 * or did not happen) and violations (a stale read, a lost write, a
 * conditional write accepted against a stale version, a read of a value
 * never written, a version that went back, two winning exclusive creates,
 * a deleted file read after its delete), so that the checker itself
 * can be seen to fail. Times are in nanoseconds; "I" marks an
 * indeterminate operation.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lin/lincheck.h"

/* The verdict of text; every key must have an init line. */
static int verdict(const char *text)
{
    struct lin_history *h = lin_history_new();
    struct lin_key_result *res = NULL;
    size_t n = 0;
    char err[256] = "";

    ck_assert_ptr_nonnull(h);
    ck_assert_msg(lin_history_parse(h, text, err, sizeof(err)) == 0, "%s",
                  err);
    int rc = lin_check(h, NULL, &res, &n, err, sizeof(err));
    ck_assert_msg(rc >= 0, "lin_check: %d %s", rc, err);
    free(res);
    lin_history_free(h);
    return rc;
}

#define INIT "init k a 0\n"

START_TEST(sequential_history_is_linearizable)
{
    ck_assert_int_eq(verdict(INIT
        "1 1 10 20 k w b - ok -\n"
        "1 2 30 40 k r - - ok b\n"
        "1 3 50 60 k v - - ok 1\n"
        "1 4 70 80 k cas 1 c ok 2\n"
        "1 5 90 95 k cas 1 d bad -\n"
        "1 6 96 99 k r - - ok c\n"), LIN_LINEARIZABLE);
}
END_TEST

START_TEST(concurrent_ops_linearize_in_either_order)
{
    /* The read overlaps the write: old or new value are both fine. */
    ck_assert_int_eq(verdict(INIT
        "1 1 10 50 k w b - ok -\n"
        "2 1 20 30 k r - - ok a\n"), LIN_LINEARIZABLE);
    ck_assert_int_eq(verdict(INIT
        "1 1 10 50 k w b - ok -\n"
        "2 1 20 30 k r - - ok b\n"), LIN_LINEARIZABLE);
    /* Two overlapping writes, then reads fix their order. */
    ck_assert_int_eq(verdict(INIT
        "1 1 10 50 k w b - ok -\n"
        "2 1 20 60 k w c - ok -\n"
        "3 1 70 80 k r - - ok b\n"
        "3 2 90 95 k v - - ok 2\n"), LIN_LINEARIZABLE);
}
END_TEST

START_TEST(stale_read_is_a_violation)
{
    /* The write completed before the read began: reading a is stale. */
    ck_assert_int_eq(verdict(INIT
        "1 1 10 20 k w b - ok -\n"
        "2 1 30 40 k r - - ok a\n"), LIN_VIOLATION);
    /* A new value seen, then the old one again by a later read. */
    ck_assert_int_eq(verdict(INIT
        "1 1 10 100 k w b - ok -\n"
        "2 1 20 30 k r - - ok b\n"
        "3 1 40 50 k r - - ok a\n"), LIN_VIOLATION);
}
END_TEST

START_TEST(lost_write_is_a_violation)
{
    /* Two completed writes, later reads see only the first one. */
    ck_assert_int_eq(verdict(INIT
        "1 1 10 20 k w b - ok -\n"
        "2 1 30 40 k w c - ok -\n"
        "3 1 50 60 k r - - ok b\n"), LIN_VIOLATION);
    /* The version tells a lost write even with unique values read. */
    ck_assert_int_eq(verdict(INIT
        "1 1 10 20 k w b - ok -\n"
        "2 1 30 40 k w c - ok -\n"
        "3 1 50 60 k v - - ok 1\n"), LIN_VIOLATION);
}
END_TEST

START_TEST(cas_against_a_stale_version_is_a_violation)
{
    /* Version 1 after the write; a cas expecting 0 must not succeed. */
    ck_assert_int_eq(verdict(INIT
        "1 1 10 20 k w b - ok -\n"
        "2 1 30 40 k cas 0 c ok 1\n"), LIN_VIOLATION);
    /* Nor may one that found the right version say it did not. */
    ck_assert_int_eq(verdict(INIT
        "1 1 10 20 k w b - ok -\n"
        "2 1 30 40 k cas 1 c bad -\n"), LIN_VIOLATION);
    /* Two cas on one version cannot both succeed, however they overlap. */
    ck_assert_int_eq(verdict(INIT
        "1 1 10 50 k cas 0 b ok 1\n"
        "2 1 20 60 k cas 0 c ok 1\n"), LIN_VIOLATION);
    /* A cas must report the version after it. */
    ck_assert_int_eq(verdict(INIT
        "1 1 10 20 k cas 0 b ok 5\n"), LIN_VIOLATION);
    ck_assert_int_eq(verdict(INIT
        "1 1 10 50 k cas 0 b ok 1\n"
        "2 1 20 60 k cas 0 c bad -\n"), LIN_LINEARIZABLE);
}
END_TEST

START_TEST(read_of_a_value_never_written_is_a_violation)
{
    ck_assert_int_eq(verdict(INIT
        "1 1 10 20 k w b - ok -\n"
        "2 1 15 40 k r - - ok z\n"), LIN_VIOLATION);
    /* A failed write certainly did not happen: its value cannot be read. */
    ck_assert_int_eq(verdict(INIT
        "1 1 10 20 k w b - fail -\n"
        "2 1 30 40 k r - - ok b\n"), LIN_VIOLATION);
}
END_TEST

START_TEST(indeterminate_ops_may_or_may_not_happen)
{
    /* Never seen: fine. */
    ck_assert_int_eq(verdict(INIT
        "1 1 10 - k w b - info -\n"
        "2 1 30 40 k r - - ok a\n"), LIN_LINEARIZABLE);
    /* Seen long after it timed out: fine too (its completion is never). */
    ck_assert_int_eq(verdict(INIT
        "1 1 10 - k w b - info -\n"
        "2 1 1000 1010 k r - - ok b\n"
        "2 2 1020 1030 k v - - ok 1\n"), LIN_LINEARIZABLE);
    /* But not before it was invoked. */
    ck_assert_int_eq(verdict(INIT
        "2 1 5 8 k r - - ok b\n"
        "1 1 10 - k w b - info -\n"), LIN_VIOLATION);
    /* Seen, then unseen: a stale read still. */
    ck_assert_int_eq(verdict(INIT
        "1 1 10 - k w b - info -\n"
        "2 1 30 40 k r - - ok b\n"
        "2 2 50 60 k r - - ok a\n"), LIN_VIOLATION);
    /* An indeterminate cas happens only if its version matched. */
    ck_assert_int_eq(verdict(INIT
        "1 1 10 20 k w b - ok -\n"
        "1 2 30 - k cas 0 c info -\n"
        "2 1 40 50 k r - - ok c\n"), LIN_VIOLATION);
    ck_assert_int_eq(verdict(INIT
        "1 1 10 20 k w b - ok -\n"
        "1 2 30 - k cas 1 c info -\n"
        "2 1 40 50 k r - - ok c\n"
        "2 2 60 70 k v - - ok 2\n"), LIN_LINEARIZABLE);
}
END_TEST

START_TEST(create_and_delete)
{
    /* Delete, then an exclusive create: version 0 again. */
    ck_assert_int_eq(verdict(INIT
        "1 1 10 20 k w b - ok -\n"
        "1 2 30 40 k d - - ok -\n"
        "2 1 50 60 k r - - ok <absent>\n"
        "2 2 70 80 k d - - bad -\n"
        "1 3 90 100 k c n - ok -\n"
        "2 3 110 120 k c m - bad -\n"
        "2 4 130 140 k v - - ok 0\n"
        "2 5 150 160 k r - - ok n\n"), LIN_LINEARIZABLE);
    /* Two exclusive creates cannot both win, however they overlap. */
    ck_assert_int_eq(verdict(INIT
        "1 1 10 20 k d - - ok -\n"
        "1 2 30 60 k c n - ok -\n"
        "2 1 40 70 k c m - ok -\n"), LIN_VIOLATION);
    /* A deleted file read after the delete completed: stale. */
    ck_assert_int_eq(verdict(INIT
        "1 1 10 20 k d - - ok -\n"
        "2 1 30 40 k r - - ok a\n"), LIN_VIOLATION);
    /* Nothing but a create brings it back; a write does not. */
    ck_assert_int_eq(verdict(INIT
        "1 1 10 20 k d - - ok -\n"
        "1 2 30 40 k w b - ok -\n"), LIN_VIOLATION);
    /* A create refused while the file is known to be gone. */
    ck_assert_int_eq(verdict(INIT
        "1 1 10 20 k d - - ok -\n"
        "2 1 30 40 k c n - bad -\n"), LIN_VIOLATION);
    /* A delete that timed out may have happened. */
    ck_assert_int_eq(verdict(INIT
        "1 1 10 - k d - - info -\n"
        "2 1 30 40 k r - - ok <absent>\n"
        "2 2 50 60 k c n - ok -\n"), LIN_LINEARIZABLE);
}
END_TEST

START_TEST(keys_are_checked_apart)
{
    /* k is fine, j holds a stale read. */
    ck_assert_int_eq(verdict(INIT "init j x 3\n"
        "1 1 10 20 k w b - ok -\n"
        "1 2 30 40 j w y - ok -\n"
        "2 1 50 60 k r - - ok b\n"
        "2 2 70 80 j r - - ok x\n"), LIN_VIOLATION);
    ck_assert_int_eq(verdict(INIT "init j x 3\n"
        "1 1 10 20 k w b - ok -\n"
        "1 2 30 40 j w y - ok -\n"
        "2 1 50 60 k r - - ok b\n"
        "2 2 70 80 j v - - ok 4\n"), LIN_LINEARIZABLE);
}
END_TEST

START_TEST(a_later_line_replaces_the_invocation)
{
    /* The client wrote the invocation, then the completion. */
    ck_assert_int_eq(verdict(INIT
        "1 1 10 - k w b - info -\n"
        "1 1 10 20 k w b - ok -\n"
        "2 1 30 40 k r - - ok a\n"), LIN_VIOLATION);
}
END_TEST

START_TEST(malformed_histories_are_refused)
{
    static const char *bad[] = {
        "1 1 10 20 k w b - ok -\n",                     /* no init */
        INIT "1 1 10 20 k x b - ok -\n",                /* unknown op */
        INIT "1 1 10 20 k w b - maybe -\n",             /* unknown status */
        INIT "1 1 20 10 k w b - ok -\n",                /* ends before */
        INIT "1 1 10 20 k w b - ok\n",                  /* a field short */
        INIT "1 1 10 20 k cas x b ok 1\n",              /* version */
        INIT "1 1 10 20 k r - - bad -\n",               /* bad: cas only */
        INIT "init k b 0\n",                            /* init twice */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct lin_history *h = lin_history_new();
        struct lin_key_result *res = NULL;
        size_t n;
        char err[256] = "";
        int rc = lin_history_parse(h, bad[i], err, sizeof(err));
        if (rc == 0)
            rc = lin_check(h, NULL, &res, &n, err, sizeof(err));
        ck_assert_msg(rc == -EINVAL, "history %zu: rc %d", i, rc);
        ck_assert_msg(err[0] != '\0', "history %zu: no message", i);
        free(res);
        lin_history_free(h);
    }
}
END_TEST

/* Many concurrent writers and readers with indeterminate writes: the
 * memo keeps the search small, and the verdict is right both ways. */
START_TEST(wide_history_stays_small)
{
    char *buf = malloc(1 << 20);
    size_t len = 0;
    ck_assert_ptr_nonnull(buf);
    len += (size_t)sprintf(buf + len, INIT);
    /* 6 rounds: 6 overlapping writes (one indeterminate), then a read
     * of the value of one of them. */
    for (int r = 0; r < 6; r++) {
        long t = 1000L * r;
        for (int p = 0; p < 6; p++) {
            if (p == 5)
                len += (size_t)sprintf(buf + len, "%d %d %ld - k w r%dp%d - info -\n",
                                       p, r, t + p, r, p);
            else
                len += (size_t)sprintf(buf + len, "%d %d %ld %ld k w r%dp%d - ok -\n",
                                       p, r, t + p, t + 100 + p, r, p);
        }
        len += (size_t)sprintf(buf + len, "9 %d %ld %ld k r - - ok r%dp3\n",
                               r, t + 200, t + 300, r);
    }
    ck_assert_int_eq(verdict(buf), LIN_LINEARIZABLE);
    /* The same with one read of a value from two rounds before. */
    len += (size_t)sprintf(buf + len, "9 99 %ld %ld k r - - ok r4p3\n",
                           1000L * 7, 1000L * 7 + 10);
    ck_assert_int_eq(verdict(buf), LIN_VIOLATION);
    free(buf);
}
END_TEST

START_TEST(explains_the_smallest_failing_part)
{
    struct lin_history *h = lin_history_new();
    struct lin_key_result *res = NULL;
    struct lin_options o = {0};
    char *out = NULL, err[256];
    size_t n, outlen = 0;

    ck_assert_int_eq(lin_history_parse(h, INIT
        "1 1 10 20 k w b - ok -\n"
        "2 1 30 40 k r - - ok b\n"
        "1 2 50 60 k w c - ok -\n"
        "2 2 70 80 k r - - ok c\n"
        "2 3 90 100 k r - - ok b\n"      /* stale */
        "1 3 110 120 k w d - ok -\n"
        "2 4 130 140 k r - - ok d\n", err, sizeof(err)), 0);
    o.explain = open_memstream(&out, &outlen);
    ck_assert_int_eq(lin_check(h, &o, &res, &n, err, sizeof(err)),
                     LIN_VIOLATION);
    fclose(o.explain);
    /* The failing part ends with the stale read, keeps the writes it
     * needs, and leaves out the reads that do not matter. */
    ck_assert_msg(strstr(out, "read -> b   (line 6)") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "write c") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "line 5") == NULL, "%s", out);
    ck_assert_msg(strstr(out, "write d") == NULL, "%s", out);
    ck_assert_msg(strstr(out, "(3 of its 7 operations") != NULL, "%s", out);
    free(out);
    free(res);
    lin_history_free(h);
}
END_TEST

START_TEST(search_bound_gives_unknown)
{
    struct lin_history *h = lin_history_new();
    struct lin_key_result *res = NULL;
    struct lin_options o = {.steps_max = 3};
    size_t n;
    char err[256];

    ck_assert_int_eq(lin_history_parse(h, INIT
        "1 1 10 50 k w b - ok -\n"
        "2 1 20 60 k w c - ok -\n"
        "3 1 70 80 k r - - ok b\n", err, sizeof(err)), 0);
    ck_assert_int_eq(lin_check(h, &o, &res, &n, err, sizeof(err)),
                     LIN_UNKNOWN);
    free(res);
    lin_history_free(h);
}
END_TEST

Suite *lincheck_suite(void);
Suite *lincheck_suite(void)
{
    Suite *su = suite_create("lincheck");
    TCase *tc = tcase_create("lincheck");
    tcase_add_test(tc, sequential_history_is_linearizable);
    tcase_add_test(tc, concurrent_ops_linearize_in_either_order);
    tcase_add_test(tc, stale_read_is_a_violation);
    tcase_add_test(tc, lost_write_is_a_violation);
    tcase_add_test(tc, cas_against_a_stale_version_is_a_violation);
    tcase_add_test(tc, read_of_a_value_never_written_is_a_violation);
    tcase_add_test(tc, indeterminate_ops_may_or_may_not_happen);
    tcase_add_test(tc, create_and_delete);
    tcase_add_test(tc, keys_are_checked_apart);
    tcase_add_test(tc, a_later_line_replaces_the_invocation);
    tcase_add_test(tc, malformed_histories_are_refused);
    tcase_add_test(tc, wide_history_stays_small);
    tcase_add_test(tc, explains_the_smallest_failing_part);
    tcase_add_test(tc, search_bound_gives_unknown);
    suite_add_tcase(su, tc);
    return su;
}
