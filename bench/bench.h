/*
 * bench.h — the few helpers every benchmark program uses: the monotonic
 * clock in nanoseconds and an ascending comparison of uint64_t for qsort
 * (percentiles of latencies).
 */
#ifndef ZK_BENCH_H
#define ZK_BENCH_H

#include <stdint.h>
#include <time.h>

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

#endif /* ZK_BENCH_H */
