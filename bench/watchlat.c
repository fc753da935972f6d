/*
 * watchlat.c — the delay from a change to the inotify event that reports
 * it, as a watcher sees it.
 *
 *   watchlat --write-dir A [--watch-dir B]... [--ops N] [--size BYTES]
 *            [--timeout-ms T]
 *
 * A writer process replaces the content of A/watchlat.PID (open O_TRUNC,
 * write, close: one zkfs transaction) N times, one at a time; a watcher
 * process holds an inotify watch on B (default A) and, for each
 * IN_CLOSE_WRITE naming that file, records when it arrived. (Not
 * IN_MODIFY: locally the kernel reports it at write(), before zkfs has
 * committed anything at close().)
 * The latency of change i is event time minus the moment the writer called
 * open() (CLOCK_MONOTONIC, same host, shared memory). With A and B the same
 * mount it measures the local path; with A on one replica's mount and B on
 * another's (same file system tree, same relative directory) it measures
 * the delay from a change on one replica to the inotify event on another
 * (SPEC section 6). The writer waits for each event (at most T ms, default
 * 5000) before the next change, so events are never coalesced; a change
 * with no event in time counts as lost.
 *
 * --watch-dir may be given up to WATCH_MAX times (e.g. every observer's
 * mount of an ensemble): one watcher process per directory, and the
 * writer waits for all of them (or T) before the next change.
 *
 * Output: one line, key=value: ops, lost, p50_us, p99_us, max_us (of the
 * first watched directory), and the writer's own close() latency p50 for
 * reference. With several watched directories, then one line per
 * directory: "watchlat_dir i=K dir=D lost p50_us p99_us max_us
 * lag_p50_us lag_p99_us", where lag is the event's time minus the moment
 * the writer's close() returned (the change committed and applied on the
 * writer's replica): how far that replica's apply runs behind the
 * writer's, clamped at 0 (another replica may apply first).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define OPS_MAX  1000000
#define EVBUF    (64 * 1024)
#define WATCH_MAX 16                /* --watch-dir given at most        */

struct shared {
    volatile uint64_t seq;          /* change being made (1-based)      */
    volatile uint64_t acked[WATCH_MAX]; /* last change each reported    */
    volatile int watching;          /* watchers whose watch is in place */
    volatile int stop;
    uint64_t start_ns[];            /* per change: writer's open()     */
};

static void fmt(char *buf, size_t size, const char *f, ...)
    __attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t size, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, size, f, ap);
    va_end(ap);
}

/* The watcher: records the arrival of the first matching event after
 * each change into lat[seq - 1]. */
static void watcher(struct shared *sh, int k, const char *dir,
                    const char *name, uint64_t *lat, int ackfd)
{
    volatile uint64_t *acked = &sh->acked[k];
    int fd = inotify_init1(IN_CLOEXEC);
    if (fd < 0 || inotify_add_watch(fd, dir, IN_CLOSE_WRITE) < 0) {
        fprintf(stderr, "watchlat: inotify on %s: %s\n", dir, strerror(errno));
        _exit(1);
    }
    __atomic_add_fetch(&sh->watching, 1, __ATOMIC_RELEASE);
    char buf[EVBUF] __attribute__((aligned(8)));
    while (!sh->stop) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf);
        uint64_t t = bench_now_ns();
        for (ssize_t off = 0; n > 0 && off < n;) {
            const struct inotify_event *e = (const void *)(buf + off);
            off += (ssize_t)(sizeof *e + e->len);
            uint64_t s = sh->seq;
            if (e->len == 0 || strcmp(e->name, name) != 0 || s == 0 ||
                *acked >= s)
                continue;
            lat[s - 1] = t - sh->start_ns[s - 1];
            __atomic_store_n(acked, s, __ATOMIC_RELEASE);
            if (write(ackfd, "a", 1) != 1)
                _exit(1);
        }
    }
    _exit(0);
}

static int change(const char *path, const char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    ssize_t w = write(fd, data, len);
    int e = w == (ssize_t)len ? 0 : (w < 0 ? -errno : -EIO);
    if (close(fd) < 0 && e == 0)
        e = -errno;
    return e;
}

static long parse_long(const char *s, long min, long max, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || end == s || v < min || v > max) {
        fprintf(stderr, "watchlat: bad %s '%s'\n", what, s);
        exit(2);
    }
    return v;
}

/* Every watcher reported change i + 1, or the deadline passed. */
static int all_acked(const struct shared *sh, int nw, uint64_t want)
{
    for (int k = 0; k < nw; k++)
        if (__atomic_load_n(&sh->acked[k], __ATOMIC_ACQUIRE) < want)
            return 0;
    return 1;
}

/* Waits for every watcher's event of change i (bounded); marks the
 * missing ones lost. */
static void wait_events(struct shared *sh, int nw, long i, long timeout_ms,
                        int ackfd, uint64_t *lat, long ops, long *lost)
{
    uint64_t deadline = sh->start_ns[i] + (uint64_t)timeout_ms * 1000000u;
    uint64_t now;
    while (!all_acked(sh, nw, (uint64_t)i + 1) &&
           (now = bench_now_ns()) < deadline) {
        /* Sleep on the watchers' ack pipe, not spin: on 2 vCPUs a
         * spinning writer would delay the very event it waits for. */
        struct pollfd p = { .fd = ackfd, .events = POLLIN };
        char b[64];
        if (poll(&p, 1, (int)((deadline - now) / 1000000u) + 1) > 0 &&
            read(ackfd, b, sizeof b) < 0)
            break;
    }
    for (int k = 0; k < nw; k++)
        if (sh->acked[k] < (uint64_t)i + 1) {
            lost[k]++;
            __atomic_store_n(&sh->acked[k], (uint64_t)i + 1, __ATOMIC_RELEASE);
            lat[(size_t)k * (size_t)ops + (size_t)i] = UINT64_MAX;
        }
}

static double pct(const uint64_t *v, long n, double q)
{
    if (n == 0)
        return 0;
    long k = (long)((double)n * q + 0.999999) - 1;
    return (double)v[k < 0 ? 0 : k] / 1e3;
}

/* Sorts the latencies of watcher k that arrived (lat in place) and, with
 * lag, the same events' time after the writer's close() returned. */
static long collect(uint64_t *lat, const uint64_t *closelat, long done,
                    uint64_t *lag)
{
    long got = 0;
    for (long i = 0; i < done; i++) {
        if (lat[i] == UINT64_MAX)
            continue;
        lag[got] = lat[i] > closelat[i] ? lat[i] - closelat[i] : 0;
        lat[got++] = lat[i];
    }
    qsort(lat, (size_t)got, sizeof *lat, bench_cmp_u64);
    qsort(lag, (size_t)got, sizeof *lag, bench_cmp_u64);
    return got;
}

static void usage(void)
{
    fprintf(stderr, "usage: watchlat --write-dir A [--watch-dir B]... "
            "[--ops N] [--size BYTES] [--timeout-ms T]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "write-dir", required_argument, NULL, 'a' },
        { "watch-dir", required_argument, NULL, 'b' },
        { "ops", required_argument, NULL, 'n' },
        { "size", required_argument, NULL, 's' },
        { "timeout-ms", required_argument, NULL, 't' },
        { NULL, 0, NULL, 0 }
    };
    const char *wdir = NULL, *bdir[WATCH_MAX];
    int nw = 0;
    long ops = 1000, size = 16, timeout_ms = 5000;
    int c;
    while ((c = getopt_long(argc, argv, "a:b:n:s:t:", lo, NULL)) != -1) {
        switch (c) {
        case 'a': wdir = optarg; break;
        case 'b':
            if (nw == WATCH_MAX) {
                fprintf(stderr, "watchlat: at most %d --watch-dir\n",
                        WATCH_MAX);
                return 2;
            }
            bdir[nw++] = optarg;
            break;
        case 'n': ops = parse_long(optarg, 1, OPS_MAX, "ops"); break;
        case 's': size = parse_long(optarg, 1, 1 << 20, "size"); break;
        case 't': timeout_ms = parse_long(optarg, 1, 600000, "timeout-ms"); break;
        default: usage();
        }
    }
    if (wdir == NULL) {
        fprintf(stderr, "watchlat: --write-dir is required\n");
        return 2;
    }
    if (nw == 0)
        bdir[nw++] = wdir;

    char name[64], path[4096];
    fmt(name, sizeof name, "watchlat.%ld", (long)getpid());
    fmt(path, sizeof path, "%s/%s", wdir, name);
    char *data = malloc((size_t)size);
    size_t shsize = sizeof(struct shared) + (size_t)ops * sizeof(uint64_t);
    struct shared *sh = mmap(NULL, shsize, PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    uint64_t *lat = mmap(NULL, (size_t)nw * (size_t)ops * sizeof(uint64_t),
                         PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                         -1, 0);
    uint64_t *closelat = calloc((size_t)ops, sizeof(uint64_t));
    uint64_t *lag = calloc((size_t)ops, sizeof(uint64_t));
    long lost[WATCH_MAX] = {0};
    if (data == NULL || sh == MAP_FAILED || lat == MAP_FAILED ||
        closelat == NULL || lag == NULL) {
        fprintf(stderr, "watchlat: out of memory\n");
        return 1;
    }
    memset(data, 'w', (size_t)size);
    if (change(path, data, (size_t)size) != 0) {   /* exists before the watch */
        fprintf(stderr, "watchlat: %s: %s\n", path, strerror(errno));
        return 1;
    }
    int ack[2];
    if (pipe2(ack, O_CLOEXEC) < 0)
        return 1;
    pid_t pids[WATCH_MAX];
    for (int k = 0; k < nw; k++) {
        pids[k] = fork();
        if (pids[k] == 0)
            watcher(sh, k, bdir[k], name, lat + (size_t)k * (size_t)ops,
                    ack[1]);
    }
    for (int i = 0; i < 500 && sh->watching < nw; i++)
        poll(NULL, 0, 10);
    /* The first file's own events may still arrive: let them pass. */
    poll(NULL, 0, 50);

    long done = 0;
    for (long i = 0; i < ops; i++) {
        sh->start_ns[i] = bench_now_ns();
        __atomic_store_n(&sh->seq, (uint64_t)i + 1, __ATOMIC_RELEASE);
        int err = change(path, data, (size_t)size);
        closelat[i] = bench_now_ns() - sh->start_ns[i];
        if (err != 0) {
            fprintf(stderr, "watchlat: %s: %s\n", path, strerror(-err));
            break;
        }
        wait_events(sh, nw, i, timeout_ms, ack[0], lat, ops, lost);
        done++;
    }
    sh->stop = 1;
    for (int k = 0; k < nw; k++)
        waitpid(pids[k], NULL, 0);
    unlink(path);

    uint64_t *cl = malloc((size_t)ops * sizeof(uint64_t));
    if (cl == NULL)
        return 1;
    memcpy(cl, closelat, (size_t)done * sizeof(uint64_t));
    qsort(cl, (size_t)done, sizeof *cl, bench_cmp_u64);
    for (int k = 0; k < nw; k++) {
        uint64_t *l = lat + (size_t)k * (size_t)ops;
        long got = collect(l, closelat, done, lag);
        if (k == 0)
            printf("watchlat ops=%ld lost=%ld p50_us=%.1f p99_us=%.1f "
                   "max_us=%.1f close_p50_us=%.1f same_dir=%d\n", done,
                   lost[0], pct(l, got, 0.5), pct(l, got, 0.99),
                   pct(l, got, 1.0), done ? (double)cl[(done - 1) / 2] / 1e3
                                          : 0.0,
                   strcmp(wdir, bdir[0]) == 0);
        if (nw > 1)
            printf("watchlat_dir i=%d dir=%s lost=%ld p50_us=%.1f "
                   "p99_us=%.1f max_us=%.1f lag_p50_us=%.1f "
                   "lag_p99_us=%.1f\n", k, bdir[k], lost[k],
                   pct(l, got, 0.5), pct(l, got, 0.99), pct(l, got, 1.0),
                   pct(lag, got, 0.5), pct(lag, got, 0.99));
    }
    return 0;
}
