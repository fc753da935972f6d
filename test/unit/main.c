/*
 * main.c — the unit test runner: every test/unit/test_NAME.c provides
 * `Suite *NAME_suite(void)`; the Makefile lists them in suites.inc. Each
 * test runs in its own process (Check's fork mode) with a timeout.
 * Usage: zkfs-unit [SUITE ...]  (no argument: all suites)
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZK_SUITE(n) Suite *n##_suite(void);
#include "suites.inc"
#undef ZK_SUITE

static int wanted(int argc, char **argv, const char *name)
{
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    SRunner *sr = srunner_create(NULL);
#define ZK_SUITE(n)                                                        \
    if (wanted(argc, argv, #n))                                            \
        srunner_add_suite(sr, n##_suite());
#include "suites.inc"
#undef ZK_SUITE
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    int run = srunner_ntests_run(sr);
    srunner_free(sr);
    if (run == 0) {
        fprintf(stderr, "zkfs-unit: no test ran\n");
        return 1;
    }
    return failed ? 1 : 0;
}
