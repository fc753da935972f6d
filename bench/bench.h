/*
 * bench.h — the few helpers the benchmark programs share: the monotonic
 * clock in nanoseconds, an ascending comparison of uint64_t for qsort
 * (percentiles of latencies), and a log file written with zeros before
 * use (floorfs --sync, flushlat).
 */
#ifndef ZK_BENCH_H
#define ZK_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int bench_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Writes bytes of zeros into fd from offset 0 and fsyncs it, as zkfs
 * prepares its write-ahead log segments, so that a later append +
 * fdatasync has no block allocation to make durable. 0, or -1 (errno). */
static inline int bench_prewrite(int fd, size_t bytes)
{
    static const char zeros[1 << 16];
    for (size_t off = 0; off < bytes; off += sizeof zeros)
        if (pwrite(fd, zeros, sizeof zeros, (off_t)off) != sizeof zeros)
            return -1;
    return fsync(fd);
}

#endif /* ZK_BENCH_H */
