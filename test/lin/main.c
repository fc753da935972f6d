/*
 * main.c — lincheck, the command line of the linearizability checker
 * (lincheck.h): reads history files, checks every key, prints the figures
 * and the verdict, and for each violation its smallest failing part.
 *
 *   lincheck [-v] [--steps-max N] [--show N] HISTORY...
 *
 * -v prints every key's figures; --show N the last N operations of each
 * violation's failing part (default 40, 0 = all).
 *
 * Exit status: 0 linearizable, 1 not linearizable, 3 unknown (the search
 * bound was reached for some key), 2 wrong usage or a malformed history.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lincheck.h"

static int usage(const char *why)
{
    fprintf(stderr, "lincheck: %s\nUsage: lincheck [-v] [--steps-max N] "
            "[--show N] HISTORY...\n", why);
    return 2;
}

static int read_files(struct lin_history *h, char **files, int n)
{
    char err[256];
    for (int i = 0; i < n; i++) {
        FILE *f = fopen(files[i], "r");
        if (f == NULL) {
            fprintf(stderr, "lincheck: %s: %s\n", files[i], strerror(errno));
            return 2;
        }
        int rc = lin_history_read(h, f, files[i], err, sizeof(err));
        fclose(f);
        if (rc < 0) {
            fprintf(stderr, "lincheck: %s\n",
                    rc == -ENOMEM ? "out of memory" : err);
            return 2;
        }
    }
    return 0;
}

static void report(const struct lin_key_result *r, size_t n, int verbose)
{
    size_t ops = 0, info = 0, dropped = 0, cache = 0;
    uint64_t steps = 0;
    for (size_t i = 0; i < n; i++) {
        ops += r[i].ops;
        info += r[i].info;
        dropped += r[i].dropped;
        steps += r[i].steps;
        cache = r[i].cache > cache ? r[i].cache : cache;
        if (verbose || r[i].verdict != LIN_LINEARIZABLE)
            printf("key %s: %zu ops (%zu indeterminate, %zu failed and "
                   "dropped): %s, %" PRIu64 " steps, %zu states memoized\n",
                   r[i].key, r[i].ops, r[i].info, r[i].dropped,
                   lin_verdict_name(r[i].verdict), r[i].steps, r[i].cache);
    }
    printf("lincheck: %zu keys, %zu operations checked (%zu indeterminate), "
           "%zu failed and dropped; %" PRIu64 " search steps, at most %zu "
           "states memoized for one key\n",
           n, ops, info, dropped, steps, cache);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"steps-max", required_argument, NULL, 's'},
        {"show", required_argument, NULL, 'n'},
        {"verbose", no_argument, NULL, 'v'},
        {NULL, 0, NULL, 0},
    };
    struct lin_options opts = {.explain = stdout, .explain_max = 40};
    int c, verbose = 0;
    char *end, err[256];

    while ((c = getopt_long(argc, argv, "v", longopts, NULL)) != -1) {
        if (c == 'v') {
            verbose = 1;
        } else if (c == 's') {
            errno = 0;
            opts.steps_max = strtoull(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || errno || !opts.steps_max)
                return usage("--steps-max wants a positive number");
        } else if (c == 'n') {
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (*optarg == '\0' || *optarg == '-' || *end != '\0' || errno)
                return usage("--show wants a number");
            opts.explain_max = (size_t)v;
        } else {
            return usage("unknown option");
        }
    }
    if (optind == argc)
        return usage("no history file");
    struct lin_history *h = lin_history_new();
    if (h == NULL)
        return usage("out of memory");
    int rc = read_files(h, argv + optind, argc - optind);
    struct lin_key_result *res = NULL;
    size_t n = 0;
    if (rc == 0) {
        rc = lin_check(h, &opts, &res, &n, err, sizeof(err));
        if (rc < 0) {
            fprintf(stderr, "lincheck: %s\n",
                    rc == -ENOMEM ? "out of memory" : err);
            rc = 2;
        } else {
            report(res, n, verbose);
            printf("lincheck: verdict: %s\n",
                   lin_verdict_name((enum lin_verdict)rc));
            rc = rc == LIN_LINEARIZABLE ? 0 : rc == LIN_VIOLATION ? 1 : 3;
        }
    }
    free(res);
    lin_history_free(h);
    return rc;
}
