/*
 * cli_locks.c — `zkfs locks PATH`: who holds and who waits for the
 * cluster-wide locks on a file, as this replica has applied them. It
 * reads the xattr user.zkfs.locks through the mount (fs/lock.c writes it:
 * one line per entry) and prints it under a header.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#define LOCKS_XATTR_BYTES_MAX (1u << 20)

int zk__cli_locks(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(zk__cli_usage("locks"), stdout);
        return 0;
    }
    if (argc != 2)
        return zk__cli_usage_error("locks", "expected one PATH");
    ssize_t n = getxattr(argv[1], "user.zkfs.locks", NULL, 0);
    if (n < 0)
        return zk__cli_fail("locks", argv[1], -errno, NULL);
    char *buf = malloc((size_t)n + 1);
    if (!buf)
        return zk__cli_fail("locks", argv[1], -ENOMEM, NULL);
    n = n ? getxattr(argv[1], "user.zkfs.locks", buf, (size_t)n) : 0;
    if (n < 0) {
        free(buf);
        return zk__cli_fail("locks", argv[1], -errno, NULL);
    }
    buf[n] = '\0';
    printf("%-5s %-5s %-9s %-12s %-16s %-20s %s\n", "STATE", "KIND", "MODE",
           "RANGE", "SESSION", "TOKEN", "WHO");
    char *save = NULL;
    for (char *l = strtok_r(buf, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        char st[8], kind[8], mode[12], range[48], sess[20], tok[24], who[300];
        if (sscanf(l, "%7s %7s %11s %47s %19s %23s %299[^\n]", st, kind, mode,
                   range, sess, tok, who) == 7)
            printf("%-5s %-5s %-9s %-12s %-16s %-20s %s\n", st, kind, mode,
                   range, sess, tok, who);
    }
    free(buf);
    return 0;
}
