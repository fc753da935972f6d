/*
 * cli_check.c — `zkfs check DATA_DIR`: verifies a store offline
 * (zk_store_check, store/check.c) and prints every problem it finds, then
 * one summary line. The store's own lock keeps a running daemon's data
 * directory out (-EBUSY: check a backup instead, or stop the daemon).
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "zk_common.h"
#include "zk_store.h"

#define CHECK_PRINT_MAX 1000       /* problems printed; all are counted */

struct report {
    const char *dir;
    unsigned long long printed;
};

static void on_problem(void *arg, const char *what, const char *text)
{
    struct report *r = arg;
    if (r->printed++ < CHECK_PRINT_MAX)
        printf("%s: %s: %s\n", r->dir, what, text);
}

int zk__cli_check(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(zk__cli_usage("check"), stdout);
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-')
        return zk__cli_usage_error("check", "expected one DATA_DIR");
    struct zk_store *s;
    struct zk_store_check_stats st;
    struct report r = {argv[1], 0};
    int rc = zk_store_open(argv[1], 0, &s);
    if (rc == -EBUSY)
        return zk__cli_fail("check", argv[1], rc, "in use by a running "
                            "daemon (stop it, or check a restored backup)");
    if (rc == -ENOENT)
        return zk__cli_fail("check", argv[1], rc, "no zkfs store here");
    if (rc)
        return zk__cli_fail("check", argv[1], rc, NULL);
    rc = zk_store_check(s, on_problem, &r, &st);
    zk_store_close(s);
    if (rc)
        return zk__cli_fail("check", argv[1], rc, NULL);
    if (st.problems > CHECK_PRINT_MAX)
        printf("%s: ... and %llu more\n", argv[1],
               (unsigned long long)(st.problems - CHECK_PRINT_MAX));
    printf("%s: %s: %llu znodes (%llu directories), %llu data bytes, "
           "%llu sessions, %llu ephemerals, %llu lock tables, %llu log "
           "entries, last zxid 0x%016llx; %llu problem%s\n", argv[1],
           st.problems ? "DAMAGED" : "ok",
           (unsigned long long)st.znodes, (unsigned long long)st.dirs,
           (unsigned long long)st.data_bytes,
           (unsigned long long)st.sessions,
           (unsigned long long)st.ephemerals,
           (unsigned long long)st.lock_tables,
           (unsigned long long)st.log_entries,
           (unsigned long long)st.last_applied,
           (unsigned long long)st.problems, st.problems == 1 ? "" : "s");
    return st.problems ? 1 : 0;
}
