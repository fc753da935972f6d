/*
 * lockbench.c — the cost of a cluster-wide lock through zkfs mounts.
 *
 *   lockbench uncontended FILE N
 *       N rounds of flock(LOCK_EX) + flock(LOCK_UN) on one open FILE:
 *       ops/s (lock+unlock pairs) and the pair's p50/p99 latency.
 *   lockbench flock1 FILE N
 *       N runs of `flock FILE true` (flock(1): open, lock, fork+exec of
 *       true, unlock at the last close), one after another, as a shell
 *       lock recipe pays it: runs/s and the run's p50/p99.
 *   lockbench handoff FILE_A FILE_B N
 *       the same file through two mounts (two replicas' mountpoints): a
 *       holder on A and a blocked waiter on B; the holder unlocks, and
 *       the time from just before its LOCK_UN to the waiter's flock()
 *       returning is one handoff (both stamps on CLOCK_MONOTONIC, one
 *       host). The roles swap every round. p50/p99 over N.
 *
 * Output: one line, key=value (latencies in µs, like fsbench). A benchmark prints figures; the exit status
 * is 0 unless the measurement could not be made.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define ROUNDS_MAX 1000000

static double pct_us(uint64_t *v, size_t n, double p)
{
    qsort(v, n, sizeof(*v), bench_cmp_u64);
    size_t i = (size_t)(p * (double)(n - 1));
    return (double)v[i] / 1e3;
}

static void print_rate(const char *workload, const char *what, size_t n,
                       uint64_t start, uint64_t *lat)
{
    double secs = (double)(bench_now_ns() - start) / 1e9;
    printf("workload=%s %s=%zu ops_per_s=%.0f p50_us=%.0f p99_us=%.0f\n",
           workload, what, n, (double)n / secs, pct_us(lat, n, 0.5),
           pct_us(lat, n, 0.99));
}

static int uncontended(const char *file, size_t n)
{
    int fd = open(file, O_RDONLY);
    uint64_t *lat = calloc(n, sizeof(*lat));
    if (fd < 0 || !lat) {
        perror(file);
        return 1;
    }
    uint64_t start = bench_now_ns();
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = bench_now_ns();
        if (flock(fd, LOCK_EX) != 0 || flock(fd, LOCK_UN) != 0) {
            perror("flock");
            return 1;
        }
        lat[i] = bench_now_ns() - t0;
    }
    print_rate("lock", "pairs", n, start, lat);
    free(lat);
    close(fd);
    return 0;
}

/* flock(1) as a shell runs it: `flock FILE true`, one after another. */
static int flock1(const char *file, size_t n)
{
    uint64_t *lat = calloc(n, sizeof(*lat));
    if (!lat)
        return 1;
    uint64_t start = bench_now_ns();
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = bench_now_ns();
        pid_t pid = fork();
        if (pid == 0) {
            execlp("flock", "flock", file, "true", (char *)NULL);
            _exit(127);
        }
        int status;
        if (pid < 0 || waitpid(pid, &status, 0) != pid ||
            !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "lockbench: flock %s true failed\n", file);
            return 1;
        }
        lat[i] = bench_now_ns() - t0;
    }
    print_rate("flock1", "runs", n, start, lat);
    free(lat);
    return 0;
}

/* One side of the handoff: alternately holds (then releases, writing the
 * release stamp to out) and waits (then reads the peer's stamp from in
 * and records the handoff). */
static int side(const char *file, size_t n, int first_holder, int in,
                int out, uint64_t *lat, size_t *nlat)
{
    int fd = open(file, O_RDONLY);
    if (fd < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int holder = (int)(i % 2 == 0) == first_holder;
        uint64_t t;
        if (holder) {
            char go;
            if (flock(fd, LOCK_EX) != 0 || write(out, "h", 1) != 1 ||
                read(in, &go, 1) != 1)  /* the waiter is about to block */
                return -1;
            usleep(20000);          /* let its request reach the table */
            t = bench_now_ns();
            if (flock(fd, LOCK_UN) != 0 ||
                write(out, &t, sizeof(t)) != (ssize_t)sizeof(t))
                return -1;
        } else {
            char h;
            if (read(in, &h, 1) != 1 || write(out, "w", 1) != 1 ||
                flock(fd, LOCK_EX) != 0)
                return -1;
            uint64_t got = bench_now_ns();
            if (read(in, &t, sizeof(t)) != (ssize_t)sizeof(t) ||
                flock(fd, LOCK_UN) != 0)
                return -1;
            lat[(*nlat)++] = got - t;
        }
    }
    close(fd);
    return 0;
}

static int handoff(const char *a, const char *b, size_t n)
{
    int p2c[2], c2p[2];
    uint64_t *lat = calloc(n, sizeof(*lat));
    size_t nlat = 0;
    if (!lat || pipe(p2c) || pipe(c2p))
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        uint64_t *l = calloc(n, sizeof(*l));
        size_t nl = 0;
        int rc = side(b, n, 0, p2c[0], c2p[1], l, &nl);
        /* The child's handoffs go back to the parent after the run. */
        if (rc == 0 && write(c2p[1], &nl, sizeof(nl)) == sizeof(nl) &&
            write(c2p[1], l, nl * sizeof(*l)) == (ssize_t)(nl * sizeof(*l)))
            _exit(0);
        _exit(1);
    }
    int rc = side(a, n, 1, c2p[0], p2c[1], lat, &nlat);
    size_t nl = 0;
    if (rc == 0 && read(c2p[0], &nl, sizeof(nl)) == sizeof(nl) &&
        nl <= n - nlat &&
        read(c2p[0], lat + nlat, nl * sizeof(*lat)) ==
            (ssize_t)(nl * sizeof(*lat)))
        nlat += nl;
    int status;
    waitpid(pid, &status, 0);
    if (rc != 0 || nlat == 0) {
        fprintf(stderr, "lockbench: handoff failed\n");
        return 1;
    }
    printf("workload=handoff handoffs=%zu p50_us=%.0f p99_us=%.0f\n", nlat,
           pct_us(lat, nlat, 0.5), pct_us(lat, nlat, 0.99));
    free(lat);
    return 0;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[argc - 1]) : 0;
    if (n < 1 || n > ROUNDS_MAX) {
        fprintf(stderr, "usage: lockbench uncontended FILE N | "
                        "lockbench flock1 FILE N | "
                        "lockbench handoff FILE_A FILE_B N\n");
        return 2;
    }
    if (argc == 4 && strcmp(argv[1], "uncontended") == 0)
        return uncontended(argv[2], (size_t)n);
    if (argc == 4 && strcmp(argv[1], "flock1") == 0)
        return flock1(argv[2], (size_t)n);
    if (argc == 5 && strcmp(argv[1], "handoff") == 0)
        return handoff(argv[2], argv[3], (size_t)n);
    fprintf(stderr, "lockbench: unknown mode\n");
    return 2;
}
