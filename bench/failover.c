/*
 * failover.c — how long writes stop when the leader dies: the time from
 * kill -9 of a replica (the leader) to the first write committed after it,
 * as a writer on another replica's mount sees it.
 *
 *   failover --dir D --kill PID [--timeout-s T]
 *
 * First one write to D/failover.PID must succeed (the ensemble works), so
 * that the clock starts with a healthy ensemble. Then SIGKILL to PID, and
 * at once, one after the other, writes of the same file (open O_TRUNC,
 * write, close: one transaction; close() returns the commit's error) until
 * one succeeds or T seconds (default 30) have passed. A failed attempt is
 * retried after 1 ms. The value written last is read back through D to
 * check that the successful write is really there.
 *
 * Output: one line, key=value: failover_ms (kill to the successful
 * close()'s return), attempts, last_start_ms (when the successful attempt
 * began), first_error (errno name of the first failed attempt, or "none"),
 * first_error_ms (how long that attempt took to fail), readback=ok|bad.
 * A benchmark prints figures; the exit status is 0 unless the measurement
 * could not be made (no healthy write before the kill, no success in T).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

/* One transaction: 0 or an errno. */
static int put(const char *path, const char *data)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    size_t len = strlen(data);
    ssize_t w = write(fd, data, len);
    int e = w == (ssize_t)len ? 0 : (w < 0 ? errno : EIO);
    if (close(fd) < 0 && e == 0)
        e = errno;
    return e;
}

static const char *errname(int e)
{
    switch (e) {
    case 0: return "none";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EIO: return "EIO";
    case EROFS: return "EROFS";
    case ENOTCONN: return "ENOTCONN";
    case EAGAIN: return "EAGAIN";
    case EINTR: return "EINTR";
    case ECONNABORTED: return "ECONNABORTED";
    default: return "other";
    }
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "dir", required_argument, NULL, 'd' },
        { "kill", required_argument, NULL, 'k' },
        { "timeout-s", required_argument, NULL, 't' },
        { NULL, 0, NULL, 0 }
    };
    const char *dir = NULL;
    long pid = 0, timeout_s = 30;
    int c;
    while ((c = getopt_long(argc, argv, "d:k:t:", lo, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'k': pid = strtol(optarg, NULL, 10); break;
        case 't': timeout_s = strtol(optarg, NULL, 10); break;
        default:
            fprintf(stderr, "usage: failover --dir D --kill PID [--timeout-s T]\n");
            return 2;
        }
    }
    if (dir == NULL || pid <= 1 || timeout_s < 1 || timeout_s > 600) {
        fprintf(stderr, "usage: failover --dir D --kill PID [--timeout-s T]\n");
        return 2;
    }
    char path[4096], data[64], back[64];
    snprintf(path, sizeof path, "%s/failover.%ld", dir, (long)getpid());

    /* A healthy write first (bounded). */
    uint64_t until = bench_now_ns() + (uint64_t)timeout_s * 1000000000u;
    int e;
    while ((e = put(path, "before\n")) != 0) {
        if (bench_now_ns() > until) {
            fprintf(stderr, "failover: no healthy write to %s: %s\n", path,
                    strerror(e));
            return 1;
        }
        poll(NULL, 0, 50);
    }

    uint64_t t0 = bench_now_ns();
    if (kill((pid_t)pid, SIGKILL) < 0) {
        fprintf(stderr, "failover: kill %ld: %s\n", pid, strerror(errno));
        return 1;
    }
    until = t0 + (uint64_t)timeout_s * 1000000000u;
    long attempts = 0;
    int first_err = 0;
    uint64_t first_err_ns = 0, start = 0, end = 0;
    for (;;) {
        attempts++;
        snprintf(data, sizeof data, "after %ld\n", attempts);
        start = bench_now_ns();
        e = put(path, data);
        end = bench_now_ns();
        if (e == 0)
            break;
        if (first_err == 0) {
            first_err = e;
            first_err_ns = end - start;
        }
        if (end > until) {
            fprintf(stderr, "failover: no write committed within %ld s "
                    "(%ld attempts, last: %s)\n", timeout_s, attempts,
                    strerror(e));
            unlink(path);
            return 1;
        }
        poll(NULL, 0, 1);
    }

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, back, sizeof back - 1) : -1;
    if (fd >= 0)
        close(fd);
    back[n > 0 ? n : 0] = '\0';
    int ok = strcmp(back, data) == 0;
    unlink(path);
    printf("failover_ms=%.1f attempts=%ld last_start_ms=%.1f first_error=%s "
           "first_error_ms=%.1f readback=%s\n", (double)(end - t0) / 1e6,
           attempts, (double)(start - t0) / 1e6, errname(first_err),
           (double)first_err_ns / 1e6, ok ? "ok" : "bad");
    return 0;
}
