/*
 * flushlat.c — what the machine itself charges a replicated commit, below
 * any software: the latency of one small append + fdatasync to a log on a
 * disk, alone and with other processes flushing their own logs on the same
 * disk at the same time (three replicas on one machine do that for every
 * write), and the round trip of a small message between two processes over
 * TCP on loopback (a proposal and its acknowledgement).
 *
 *   flushlat --dir DIR [--writers K] [--ops N] [--bytes B]
 *   flushlat --rtt [--ops N] [--bytes B]
 *
 * Flush mode: K processes (default 1), each with its own log file in DIR
 * (4 MiB, written with zeros and synced first, as zkfs's write-ahead log
 * segments are, so that an fdatasync has no allocation to make durable),
 * each appending B bytes (default 160, about one small transaction's
 * record) and calling fdatasync N times (default 2000), all starting
 * together. Prints the percentiles over every flush of every writer:
 *   flushlat mode=flush writers=K ops=N bytes=B p50_us=.. p90_us=.. p99_us=..
 * RTT mode: a parent and a child process, B bytes (default 64) there and
 * back N times over a TCP connection on 127.0.0.1 (TCP_NODELAY):
 *   flushlat mode=rtt ops=N bytes=B p50_us=.. p90_us=.. p99_us=..
 * The log files are removed at the end. A benchmark: it prints figures and
 * never passes or fails (exit 1 only when it cannot run).
 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOG_BYTES   (4u << 20)
#define WRITERS_MAX 16
#define BYTES_MAX   4096

static void usage(FILE *f)
{
    fprintf(f, "usage: flushlat --dir DIR [--writers K] [--ops N] [--bytes B]\n"
               "       flushlat --rtt [--ops N] [--bytes B]\n");
}

static void report(const char *what, uint64_t *lat, size_t n)
{
    qsort(lat, n, sizeof *lat, bench_cmp_u64);
    printf("%s p50_us=%.1f p90_us=%.1f p99_us=%.1f\n", what,
           lat[n / 2] / 1e3, lat[n * 9 / 10] / 1e3, lat[n * 99 / 100] / 1e3);
}

/* One writer: its log, then N appends + fdatasync once go is set. */
static int flush_writer(const char *dir, int id, int ops, size_t bytes,
                        volatile int *go, uint64_t *lat)
{
    char path[4096], rec[BYTES_MAX];
    snprintf(path, sizeof path, "%s/flushlat.%d.%d", dir, (int)getpid(), id);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "flushlat: %s: %s\n", path, strerror(errno));
        return 1;
    }
    int rc = bench_prewrite(fd, LOG_BYTES) != 0;
    __atomic_add_fetch(go, 1, __ATOMIC_SEQ_CST);      /* ready */
    while (rc == 0 && __atomic_load_n(go, __ATOMIC_SEQ_CST) > 0)
        usleep(100);                                 /* wait for the start */
    memset(rec, 0x5a, sizeof rec);
    off_t off = 0;
    for (int i = 0; rc == 0 && i < ops; i++) {
        if (off + (off_t)bytes > (off_t)LOG_BYTES)
            off = 0;
        uint64_t t0 = bench_now_ns();
        if (pwrite(fd, rec, bytes, off) != (ssize_t)bytes || fdatasync(fd) != 0)
            rc = 1;
        lat[i] = bench_now_ns() - t0;
        off += (off_t)bytes;
    }
    if (rc != 0)
        fprintf(stderr, "flushlat: %s: %s\n", path, strerror(errno));
    close(fd);
    unlink(path);
    return rc;
}

static int flush_mode(const char *dir, int writers, int ops, size_t bytes)
{
    size_t n = (size_t)writers * (size_t)ops;
    size_t len = sizeof(uint64_t) + n * sizeof(uint64_t);
    void *shm = mmap(NULL, len, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shm == MAP_FAILED)
        return perror("flushlat: mmap"), 1;
    volatile int *go = shm;
    uint64_t *lat = (uint64_t *)((char *)shm + sizeof(uint64_t));
    pid_t pid[WRITERS_MAX];
    for (int w = 0; w < writers; w++) {
        pid[w] = fork();
        if (pid[w] == 0)
            _exit(flush_writer(dir, w, ops, bytes, go, lat + (size_t)w * ops));
        if (pid[w] < 0)
            return perror("flushlat: fork"), 1;
    }
    /* All ready: start them together (go from writers to a negative). */
    for (int k = 0; k < 600000 && __atomic_load_n(go, __ATOMIC_SEQ_CST) < writers; k++)
        usleep(100);
    __atomic_store_n(go, -1, __ATOMIC_SEQ_CST);
    int bad = 0;
    for (int w = 0; w < writers; w++) {
        int st;
        if (waitpid(pid[w], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
            bad = 1;
    }
    if (bad)
        return 1;
    char what[128];
    snprintf(what, sizeof what, "flushlat mode=flush writers=%d ops=%d bytes=%zu",
             writers, ops, bytes);
    report(what, lat, n);
    return 0;
}

static int full_io(int fd, char *p, size_t len, int out)
{
    while (len > 0) {
        ssize_t k = out ? write(fd, p, len) : read(fd, p, len);
        if (k <= 0)
            return -1;
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

static int rtt_mode(int ops, size_t bytes)
{
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(ls, 1) != 0 || getsockname(ls, (struct sockaddr *)&a, &alen) != 0)
        return perror("flushlat: socket"), 1;
    char buf[BYTES_MAX];
    memset(buf, 0x5a, sizeof buf);
    pid_t pid = fork();
    if (pid < 0)
        return perror("flushlat: fork"), 1;
    if (pid == 0) {                           /* the echoing peer */
        int c = accept(ls, NULL, NULL);
        if (c < 0)
            _exit(1);
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        for (int i = 0; i < ops; i++)
            if (full_io(c, buf, bytes, 0) || full_io(c, buf, bytes, 1))
                _exit(1);
        _exit(0);
    }
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = 0;
    uint64_t *lat = calloc((size_t)ops, sizeof *lat);
    if (s < 0 || lat == NULL || connect(s, (struct sockaddr *)&a, sizeof a) != 0)
        rc = 1;
    else
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (int i = 0; rc == 0 && i < ops; i++) {
        uint64_t t0 = bench_now_ns();
        if (full_io(s, buf, bytes, 1) || full_io(s, buf, bytes, 0))
            rc = 1;
        lat[i] = bench_now_ns() - t0;
    }
    if (s >= 0)
        close(s);
    close(ls);
    int st;
    if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
        rc = 1;
    if (rc == 0) {
        char what[96];
        snprintf(what, sizeof what, "flushlat mode=rtt ops=%d bytes=%zu", ops, bytes);
        report(what, lat, (size_t)ops);
    } else {
        fprintf(stderr, "flushlat: the round trips failed\n");
    }
    free(lat);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"writers", required_argument, NULL, 'w'},
        {"ops", required_argument, NULL, 'n'},
        {"bytes", required_argument, NULL, 'b'},
        {"rtt", no_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *dir = NULL;
    long writers = 1, ops = 2000, bytes = -1;
    int rtt = 0, c;
    char *end;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        long *v = c == 'w' ? &writers : c == 'n' ? &ops : c == 'b' ? &bytes : NULL;
        if (v != NULL) {
            errno = 0;
            *v = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg) {
                fprintf(stderr, "flushlat: not a number: '%s'\n", optarg);
                return 2;
            }
        } else if (c == 'd') {
            dir = optarg;
        } else if (c == 'r') {
            rtt = 1;
        } else if (c == 'h') {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (bytes < 0)
        bytes = rtt ? 64 : 160;
    if (optind != argc || (!rtt && dir == NULL) || writers < 1 ||
        writers > WRITERS_MAX || ops < 1 || ops > 1000000 || bytes < 1 ||
        bytes > BYTES_MAX) {
        fprintf(stderr, "flushlat: --writers 1..%d, --ops 1..1000000, "
                "--bytes 1..%d; --dir unless --rtt\n", WRITERS_MAX, BYTES_MAX);
        usage(stderr);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    return rtt ? rtt_mode((int)ops, (size_t)bytes)
               : flush_mode(dir, (int)writers, (int)ops, (size_t)bytes);
}
