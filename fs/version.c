/*
 * version.c — `zkfs version` and `zkfs --version`: the release and the
 * version of every format a replica reads or writes, so that an operator
 * can tell before an upgrade whether two builds can share a data
 * directory (on-disk) or an ensemble (wire).
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "zk_frame.h"
#include "zk_store.h"
#include "zk_txn.h"
#include "zk_version.h"
#include "zk_zab.h"

/* Prints the version lines on stdout. */
static void print_versions(void)
{
    printf("zkfs %s\n", ZK_VERSION);
    printf("on-disk format: store %d, transaction encoding %d\n",
           ZK_STORE_FORMAT, ZK_TXN_VERSION);
    printf("wire protocol: peer frame %d, Zab messages %d, "
           "transaction encoding %d\n",
           ZK_FRAME_VERSION, ZK_ZAB_MSG_VERSION, ZK_TXN_VERSION);
}

int zk__cli_version(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(zk__cli_usage("version"), stdout);
            return 0;
        }
        return zk__cli_usage_error("version", "unknown option '%s'",
                                   argv[optind - 1]);
    }
    if (optind < argc)
        return zk__cli_usage_error("version", "too many arguments");
    print_versions();
    return 0;
}
