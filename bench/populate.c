/*
 * populate.c — fills a zkfs data directory with many znodes, fast, for
 * bench/restart.sh (restart time and memory against tree size).
 *
 *   populate --data DIR --znodes N [--fanout F] [--size BYTES]
 *
 * Writes straight into the store (include/zk_store.h) the way the
 * standalone replica does: it takes a new epoch (persisted as accepted and
 * current epoch before anything else), and every transaction gets the next
 * zxid, is appended to the log and applied in the same LMDB batch. Each
 * transaction creates up to ZK_TXN_OPS_MAX znodes; a batch (one fsync)
 * carries TXNS_PER_BATCH transactions. The daemon must not be running on
 * DIR (the store's lock says so: -EBUSY).
 *
 * Tree: /populate, then directories /populate/dNNNNN of F files each
 * (/populate/dNNNNN/fNNNNNNN, SIZE bytes of data, default 16). N counts
 * every created znode: /populate, the directories and the files. With an
 * existing /populate the run fails (-EEXIST) rather than mix two trees.
 *
 * Prints one line: znodes, transactions, seconds, znodes/s, the store's
 * znode count and file size afterwards.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zk_common.h"
#include "zk_store.h"
#include "zk_txn.h"

#define TXNS_PER_BATCH   64          /* transactions per LMDB batch/fsync */
#define ZNODES_MAX       100000000L  /* largest tree this tool makes      */
#define PATH_LEN         64          /* "/populate/d00000/f0000000" fits  */
#define COUNTER_MAX      0xffffffffu

struct pop {
    struct zk_store *store;
    uint64_t epoch, counter;
    long fanout;
    size_t size_bytes;
    uint8_t *data;
    long made;                 /* znodes created so far */
    long txns;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fmt(char *buf, size_t size, const char *f, ...)
    __attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t size, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, size, f, ap);
    va_end(ap);
}

/* Takes a new epoch above everything in the store, as the replica does on
 * every start, so that our zxids are never reused. */
static int take_epoch(struct pop *p)
{
    struct zk_store_info info;
    int rc = zk_store_info(p->store, &info);
    if (rc != 0)
        return rc;
    uint64_t e = info.current_epoch > info.accepted_epoch
                     ? info.current_epoch : info.accepted_epoch;
    if ((info.last_applied_zxid >> 32) > e)
        e = info.last_applied_zxid >> 32;
    p->epoch = e + 1;
    p->counter = 0;
    struct zk_store_batch *b = NULL;
    rc = zk_store_batch_begin(p->store, &b);
    if (rc == 0 && (rc = zk_store_batch_meta_set(b, "accepted_epoch",
                                                 p->epoch)) == 0 &&
        (rc = zk_store_batch_meta_set(b, "current_epoch", p->epoch)) == 0)
        return zk_store_batch_commit(b);
    if (b != NULL)
        zk_store_batch_abort(b);
    return rc;
}

/* Fills ops[] with the creates of znodes [first, first + n) in the tree's
 * order: index 0 is /populate, then each directory followed by its files.
 * paths[] provides the storage. */
static void make_ops(struct pop *p, long first, uint32_t n,
                     struct zk_op *ops, char (*paths)[PATH_LEN])
{
    for (uint32_t i = 0; i < n; i++) {
        long k = first + (long)i, s = k - 1;
        long dir = s / (p->fanout + 1), pos = s % (p->fanout + 1);
        struct zk_op *op = &ops[i];
        memset(op, 0, sizeof *op);
        op->type = ZK_OP_CREATE;
        op->version = -1;
        op->uid = 0;
        op->gid = 0;
        if (k == 0 || pos == 0) {          /* a directory */
            op->flags = ZK_CREATE_DIR;
            op->mode = 0755;
            if (k == 0)
                fmt(paths[i], PATH_LEN, "/populate");
            else
                fmt(paths[i], PATH_LEN, "/populate/d%05ld", dir);
        } else {                           /* file dir*F + pos - 1 */
            op->mode = 0644;
            op->data = p->data;
            op->data_len = (uint32_t)p->size_bytes;
            fmt(paths[i], PATH_LEN, "/populate/d%05ld/f%07ld", dir,
                dir * p->fanout + pos - 1);
        }
        op->path = paths[i];
        op->path_len = (uint32_t)strlen(paths[i]);
    }
}

/* Logs and applies one encoded transaction at the next zxid. */
static int apply_one(struct pop *p, struct zk_store_batch *b,
                     const uint8_t *enc, size_t len)
{
    if (p->counter == COUNTER_MAX)
        return -EOVERFLOW;     /* 4 billion txns: not this tool's job */
    uint64_t zxid = p->epoch << 32 | ++p->counter;
    struct zk_apply_result *res = NULL;
    int rc = zk_store_batch_log(b, zxid, enc, len);
    if (rc == 0)
        rc = zk_store_batch_apply(b, zxid, enc, len, &res);
    if (rc == 0 && res->err != 0) {
        fprintf(stderr, "populate: op %u (%s) failed: %s\n", res->failed_op,
                res->failed_op < res->nops ? res->ops[res->failed_op].path
                                           : "?", zk_strerror(res->err));
        rc = res->err;
    }
    zk_apply_result_free(res);
    return rc;
}

/* One batch: up to TXNS_PER_BATCH transactions of up to ZK_TXN_OPS_MAX
 * creates each, committed with one fsync. */
static int one_batch(struct pop *p, long total, struct zk_op *ops,
                     char (*paths)[PATH_LEN])
{
    struct zk_store_batch *b = NULL;
    int rc = zk_store_batch_begin(p->store, &b);
    for (int t = 0; rc == 0 && t < TXNS_PER_BATCH && p->made < total; t++) {
        long left = total - p->made;
        uint32_t n = left < ZK_TXN_OPS_MAX ? (uint32_t)left : ZK_TXN_OPS_MAX;
        make_ops(p, p->made, n, ops, paths);
        struct timespec wall;
        clock_gettime(CLOCK_REALTIME, &wall);
        struct zk_txn txn = {
            .time_ms = (uint64_t)wall.tv_sec * 1000 +
                       (uint64_t)wall.tv_nsec / 1000000,
            .nops = n, .ops = ops,
        };
        uint8_t *enc = NULL;
        size_t len = 0;
        rc = zk_txn_encode(&txn, &enc, &len);
        if (rc == 0)
            rc = apply_one(p, b, enc, len);
        free(enc);
        if (rc == 0) {
            p->made += n;
            p->txns++;
        }
    }
    if (rc == 0)
        return zk_store_batch_commit(b);
    if (b != NULL)
        zk_store_batch_abort(b);
    return rc;
}

static long parse_long(const char *s, long min, long max, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || end == s || v < min || v > max) {
        fprintf(stderr, "populate: bad %s '%s' (%ld..%ld)\n", what, s, min,
                max);
        exit(2);
    }
    return v;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: populate --data DIR --znodes N [--fanout F] "
               "[--size BYTES]\n"
               "  fills a zkfs data directory (daemon stopped) with N "
               "znodes under /populate\n");
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "data", required_argument, NULL, 'd' },
        { "znodes", required_argument, NULL, 'n' },
        { "fanout", required_argument, NULL, 'f' },
        { "size", required_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *dir = NULL;
    long total = -1;
    struct pop p = { .fanout = 1000, .size_bytes = 16 };
    int c;
    while ((c = getopt_long(argc, argv, "d:n:f:s:h", lo, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'n': total = parse_long(optarg, 1, ZNODES_MAX, "znodes"); break;
        case 'f': p.fanout = parse_long(optarg, 1, 99999, "fanout"); break;
        case 's': p.size_bytes = (size_t)parse_long(optarg, 0, 4096, "size"); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (dir == NULL || total < 1 || optind != argc) {
        usage(stderr);
        return 2;
    }
    if ((p.data = malloc(p.size_bytes + 1)) == NULL)
        return 1;
    memset(p.data, 'z', p.size_bytes);

    struct zk_op *ops = calloc(ZK_TXN_OPS_MAX, sizeof *ops);
    char (*paths)[PATH_LEN] = calloc(ZK_TXN_OPS_MAX, PATH_LEN);
    int rc = ops != NULL && paths != NULL ? 0 : -ENOMEM;
    if (rc == 0)
        rc = zk_store_open(dir, 1, &p.store);
    if (rc != 0) {
        fprintf(stderr, "populate: %s: %s\n", dir, zk_strerror(rc));
        return 1;
    }
    double t0 = now_s();
    rc = take_epoch(&p);
    while (rc == 0 && p.made < total)
        rc = one_batch(&p, total, ops, paths);
    double secs = now_s() - t0;
    struct zk_store_info info;
    memset(&info, 0, sizeof info);
    if (rc == 0)
        rc = zk_store_info(p.store, &info);
    zk_store_close(p.store);
    if (rc != 0) {
        fprintf(stderr, "populate: %s: after %ld znodes: %s\n", dir, p.made,
                zk_strerror(rc));
        return 1;
    }
    printf("populate: znodes=%ld txns=%ld secs=%.2f znodes_per_s=%.0f "
           "store_znodes=%" PRIu64 " store_file_bytes=%" PRIu64 "\n",
           p.made, p.txns, secs, secs > 0 ? (double)p.made / secs : 0.0,
           info.znodes, info.file_bytes);
    free(ops);
    free(paths);
    free(p.data);
    return 0;
}
