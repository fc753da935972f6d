/*
 * linclient.c — a client of t_ens_linear.sh: it runs random operations on
 * a few zkfs files through one mount and records each one's invocation
 * and completion (CLOCK_MONOTONIC: every client runs on this host, so one
 * clock orders them all), arguments and result, in the history format of
 * test/lin/lincheck.h. It links nothing of zkfs: whole-file writes and
 * reads are plain system calls, and `zkfs set -v`, `zkfs sync` and
 * `zkfs stat` are the same requests the zkfs command sends over the
 * mount's control file (include/zk_ctl.h).
 *
 *   linclient now
 *       prints CLOCK_MONOTONIC in nanoseconds (START_NS for run)
 *   linclient setup MNT GENS KEYS HISTORY
 *       creates MNT/lin/gGGG-kK (G < GENS, K < KEYS), each holding the
 *       initial value, and writes their "init" lines to HISTORY
 *   linclient run PROC MNT HISTORY STOPFILE START_NS GEN_MS GENS KEYS SEED
 *       runs operations until STOPFILE exists or the last generation's
 *       time is over. The keys of generation (now - START_NS) / GEN_MS are
 *       used, so that each key's history stays short (the search is
 *       exponential in the indeterminate operations of one key)
 *
 * Operations: write (open O_WRONLY, one pwrite of a unique value of fixed
 * length at offset 0, close: the commit; no O_TRUNC, which would commit
 * an empty value by itself if the write failed), conditional write
 * (control file "set VERSION PATH", the version last seen by this client),
 * read (control file "sync PATH", then open, read, close; a file that is
 * not there reads as <absent>), version read ("sync PATH", then "stat
 * PATH"), exclusive create ("create - PATH" with a value) and delete
 * ("rm -1 PATH"), 7 % and 3 %. A write or conditional write writes its
 * line before it is invoked (indeterminate) and again when it completes,
 * so a client killed meanwhile leaves an indeterminate operation. Results:
 * a failure before anything reached the daemon (open of the file or of the
 * control file) is "fail"; a version mismatch (ESTALE) is "bad"; any other
 * failure of a write is "info" (it may have committed: ETIMEDOUT after a
 * lost quorum, ENOTCONN from a killed daemon); a failed read is "fail".
 * A create that found the file (EEXIST) or a delete that did not
 * (ENOENT) is "bad"; a write or conditional write whose file was gone
 * (ENOENT: the commit names the file by inode and is refused) "fail".
 *
 * With LIN_NO_SYNC=1 in the environment, reads and version reads skip the
 * sync (plain local reads, only sequentially consistent: the checker must
 * then find stale reads on a cut-off replica; a check of the check).
 *
 * Exit status 0, 2 on wrong usage or a set-up failure.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define VAL_LEN      11          /* "p%02d-%07d" and "init-000000" */
#define INIT_VALUE   "init-000000"
#define RESP_MAX     4096
#define KEYS_MAX     16
#define PAUSE_US_MAX 4000        /* between two operations, at random */

static int hist_fd = -1;
static dev_t ctl_dev;            /* the mount the last ctl() talked to */
static int no_sync;              /* LIN_NO_SYNC=1: reads skip the sync */
static int proc_id;
static int64_t op_id;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t rng;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

/* Appends one line to the history (one write: a kill loses no half line). */
static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0 && n < (int)sizeof(line) && write(hist_fd, line, (size_t)n) != n)
        _exit(2);
}

/* ======================== the control file ============================= */

/* One request over MNT/.zkfs; the response code in *code and its body
 * (NUL-terminated) in body. Returns 0, -errno of opening the control file
 * as 1 + errno (nothing reached the daemon), or -errno of the exchange. */
static int ctl(const char *mnt, const char *hdr, const char *payload,
               int *code, char *body, size_t body_len)
{
    char path[4096], req[512], resp[RESP_MAX + 1];
    size_t hl = strlen(hdr), pl = payload ? strlen(payload) : 0, got = 0;
    ssize_t n;

    snprintf(path, sizeof(path), "%s/.zkfs", mnt);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return 1 + errno;
    struct stat st;
    ctl_dev = fstat(fd, &st) == 0 ? st.st_dev : 0;
    uint32_t len = (uint32_t)(hl + pl);
    req[0] = (char)(len >> 24), req[1] = (char)(len >> 16);
    req[2] = (char)(len >> 8), req[3] = (char)len;
    memcpy(req + 4, hdr, hl);
    memcpy(req + 4 + hl, payload ? payload : "", pl);
    if (write(fd, req, 4 + len) != (ssize_t)(4 + len)) {
        int err = errno ? errno : EIO;
        close(fd);
        return -err;
    }
    while (got < RESP_MAX && (n = read(fd, resp + got, RESP_MAX - got)) > 0)
        got += (size_t)n;
    int err = n < 0 ? errno : 0;
    close(fd);
    if (err)
        return -err;
    resp[got] = '\0';
    char *nl = strchr(resp, '\n');
    if (nl == NULL || sscanf(resp, "%d", code) != 1)
        return -EPROTO;
    snprintf(body, body_len, "%s", nl + 1);
    return 0;
}

/* The value of "NAME=value" in a stat body, or -1. */
static long stat_field(const char *body, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (strncmp(p, name, len) == 0 && p[len] == '=')
            return strtol(p + len + 1, NULL, 10);
    return -1;
}

/* ======================== operations =================================== */

struct key {
    char name[32], znode[64], path[4096];
    long known_ver;
};

static void op_write(const char *mnt, struct key *k, const char *val)
{
    int64_t id = ++op_id, t0 = now_ns();
    (void)mnt;
    emit("%d %" PRId64 " %" PRId64 " - %s w %s - info -\n", proc_id, id, t0,
         k->name, val);
    int fd = open(k->path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        emit("%d %" PRId64 " %" PRId64 " %" PRId64 " %s w %s - fail -\n",
             proc_id, id, t0, now_ns(), k->name, val);
        return;
    }
    int ok = pwrite(fd, val, VAL_LEN, 0) == VAL_LEN;
    int rc = close(fd) == 0 ? 0 : errno;
    if (ok && rc == 0)
        emit("%d %" PRId64 " %" PRId64 " %" PRId64 " %s w %s - ok -\n",
             proc_id, id, t0, now_ns(), k->name, val);
    else if (ok && rc == ENOENT)  /* the file was deleted: refused */
        emit("%d %" PRId64 " %" PRId64 " %" PRId64 " %s w %s - fail -\n",
             proc_id, id, t0, now_ns(), k->name, val);
    /* else the line written before stays: indeterminate. */
}

static void op_cas(const char *mnt, struct key *k, const char *val)
{
    char hdr[128], body[RESP_MAX];
    long ver = k->known_ver;
    int code, rc;
    int64_t id = ++op_id, t0 = now_ns();

    emit("%d %" PRId64 " %" PRId64 " - %s cas %ld %s info -\n", proc_id, id,
         t0, k->name, ver, val);
    snprintf(hdr, sizeof(hdr), "set\t%ld\t%s\n", ver, k->znode);
    rc = ctl(mnt, hdr, val, &code, body, sizeof(body));
    int64_t t1 = now_ns();
    if (rc > 0) {
        emit("%d %" PRId64 " %" PRId64 " %" PRId64 " %s cas %ld %s fail -\n",
             proc_id, id, t0, t1, k->name, ver, val);
    } else if (rc == 0 && code == 0 && stat_field(body, "version") >= 0) {
        k->known_ver = stat_field(body, "version");
        emit("%d %" PRId64 " %" PRId64 " %" PRId64 " %s cas %ld %s ok %ld\n",
             proc_id, id, t0, t1, k->name, ver, val, k->known_ver);
    } else if (rc == 0 && code == -ENOENT) {
        emit("%d %" PRId64 " %" PRId64 " %" PRId64 " %s cas %ld %s fail -\n",
             proc_id, id, t0, t1, k->name, ver, val);
    } else if (rc == 0 && code == -ESTALE) {
        emit("%d %" PRId64 " %" PRId64 " %" PRId64 " %s cas %ld %s bad -\n",
             proc_id, id, t0, t1, k->name, ver, val);
    }
}

/* Exclusive create (control file "create - PATH", as `zkfs create`) or
 * delete ("rm -1 PATH", as `zkfs rm`): ok, bad (EEXIST for a create,
 * ENOENT for a delete: it certainly did nothing), fail (nothing reached
 * the daemon), or the line written before stays: indeterminate. */
static void op_create_delete(const char *mnt, struct key *k, const char *val,
                             int create)
{
    char hdr[128], body[RESP_MAX];
    const char *op = create ? "c" : "d", *arg = create ? val : "-";
    int code, rc;
    int64_t id = ++op_id, t0 = now_ns();

    emit("%d %" PRId64 " %" PRId64 " - %s %s %s - info -\n", proc_id, id, t0,
         k->name, op, arg);
    if (create)
        snprintf(hdr, sizeof(hdr), "create\t-\t%s\n", k->znode);
    else
        snprintf(hdr, sizeof(hdr), "rm\t-1\t%s\n", k->znode);
    rc = ctl(mnt, hdr, create ? val : NULL, &code, body, sizeof(body));
    const char *st = rc > 0 ? "fail" : rc < 0 ? NULL : code == 0 ? "ok"
                   : code == (create ? -EEXIST : -ENOENT) ? "bad" : NULL;
    if (st != NULL)
        emit("%d %" PRId64 " %" PRId64 " %" PRId64 " %s %s %s - %s -\n",
             proc_id, id, t0, now_ns(), k->name, op, arg, st);
    if (create && code == 0 && rc == 0)
        k->known_ver = 0;
}

/* "sync PATH": 0 when the barrier passed, with the device number of the
 * mount that passed it in *dev. A read is kept only if it was served by
 * that same mount: a daemon killed and mounted again in between (a new
 * FUSE connection, a new device number) may not have caught up. */
static int sync_key(const char *mnt, const struct key *k, dev_t *dev)
{
    char hdr[128], body[RESP_MAX];
    int code;
    snprintf(hdr, sizeof(hdr), "sync\t%s\n", k->znode);
    *dev = 0;
    if (no_sync)
        return 0;
    if (ctl(mnt, hdr, NULL, &code, body, sizeof(body)) != 0 || code != 0)
        return -1;
    *dev = ctl_dev;
    return 0;
}

/* Whether the key directory MNT/lin is on the mount of device dev: then
 * an ENOENT for a file in it came from that daemon, not from the bare
 * mountpoint directory of a killed one. */
static int absent_on(const char *mnt, dev_t dev)
{
    char dir[4096];
    struct stat st;
    snprintf(dir, sizeof(dir), "%.4000s/lin", mnt);
    return stat(dir, &st) == 0 && (no_sync || st.st_dev == dev);
}

/* Whether fd is on the mount of device dev (any, without a sync). */
static int same_mount(int fd, dev_t dev)
{
    struct stat st;
    return fstat(fd, &st) == 0 && (no_sync || st.st_dev == dev);
}

/* Makes buf one history token: printable, no white space, not empty. */
static void tokenize(char *buf, ssize_t n)
{
    if (n <= 0) {
        strcpy(buf, "<empty>");
        return;
    }
    buf[n] = '\0';
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] <= ' ' || buf[i] > '~')
            buf[i] = '?';
}

/* The file's version now, as the next conditional write's guess (not
 * recorded: it is not read at the same instant as the data). */
static void learn_version(int fd, struct key *k)
{
    char v[32];
    ssize_t n = fgetxattr(fd, "user.zk.version", v, sizeof(v) - 1);
    if (n > 0) {
        v[n] = '\0';
        k->known_ver = strtol(v, NULL, 10);
    }
}

static void op_read(const char *mnt, struct key *k)
{
    char buf[64];
    int64_t id = ++op_id, t0 = now_ns();
    ssize_t n = -1;

    dev_t dev;

    if (sync_key(mnt, k, &dev) == 0) {
        int fd = open(k->path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            n = read(fd, buf, 40);
            learn_version(fd, k);
            if (!same_mount(fd, dev))
                n = -1;
            if (close(fd) != 0)
                n = -1;
        } else if (errno == ENOENT && absent_on(mnt, dev)) {
            n = -2;
        }
    }
    int64_t t1 = now_ns();
    if (n == -2)
        strcpy(buf, "<absent>");
    else if (n < 0)
        return;                 /* a failed read constrains nothing */
    else
        tokenize(buf, n);
    emit("%d %" PRId64 " %" PRId64 " %" PRId64 " %s r - - ok %s\n", proc_id,
         id, t0, t1, k->name, buf);
}

static void op_version(const char *mnt, struct key *k)
{
    char hdr[128], body[RESP_MAX];
    int code;
    int64_t id = ++op_id, t0 = now_ns();

    dev_t dev;

    if (sync_key(mnt, k, &dev) != 0)
        return;
    snprintf(hdr, sizeof(hdr), "stat\t%s\n", k->znode);
    if (ctl(mnt, hdr, NULL, &code, body, sizeof(body)) != 0 || code != 0 ||
        (!no_sync && ctl_dev != dev))
        return;
    int64_t t1 = now_ns();
    long ver = stat_field(body, "version");
    if (ver < 0)
        return;
    k->known_ver = ver;
    emit("%d %" PRId64 " %" PRId64 " %" PRId64 " %s v - - ok %ld\n", proc_id,
         id, t0, t1, k->name, ver);
}

/* ======================== main ========================================= */

static void key_init(struct key *k, const char *mnt, int gen, int i)
{
    snprintf(k->name, sizeof(k->name), "g%03d-k%d", gen, i);
    snprintf(k->znode, sizeof(k->znode), "/lin/%.31s", k->name);
    snprintf(k->path, sizeof(k->path), "%.3900s/lin/%.31s", mnt, k->name);
    k->known_ver = 0;
}

static int setup(const char *mnt, int gens, int keys)
{
    char dir[4096], hdr[128], body[RESP_MAX];
    int code;
    snprintf(dir, sizeof(dir), "%s/lin", mnt);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        perror(dir);
        return 2;
    }
    for (int g = 0; g < gens; g++) {
        for (int i = 0; i < keys; i++) {
            struct key k;
            key_init(&k, mnt, g, i);
            snprintf(hdr, sizeof(hdr), "create\t-\t%s\n", k.znode);
            if (ctl(mnt, hdr, INIT_VALUE, &code, body, sizeof(body)) != 0 ||
                code != 0) {
                fprintf(stderr, "linclient: create %s failed\n", k.znode);
                return 2;
            }
            snprintf(hdr, sizeof(hdr), "stat\t%s\n", k.znode);
            if (ctl(mnt, hdr, NULL, &code, body, sizeof(body)) != 0 ||
                code != 0 || stat_field(body, "version") < 0) {
                fprintf(stderr, "linclient: stat %s failed\n", k.znode);
                return 2;
            }
            emit("init %s %s %ld\n", k.name, INIT_VALUE,
                 stat_field(body, "version"));
        }
    }
    return 0;
}

static int run(const char *mnt, const char *stop, int64_t start, long gen_ms,
               int gens, int keys)
{
    struct key k[KEYS_MAX];
    int cur = -1;
    unsigned long seq = 0;
    struct stat st;

    while (stat(stop, &st) != 0) {
        int gen = (int)((now_ns() - start) / (gen_ms * 1000000));
        if (gen >= gens)
            break;
        if (gen != cur) {
            for (int i = 0; i < keys; i++)
                key_init(&k[i], mnt, gen, i);
            cur = gen;
        }
        struct key *key = &k[rnd((uint32_t)keys)];
        char val[VAL_LEN + 8];
        snprintf(val, sizeof(val), "p%02u-%07lu", (unsigned)proc_id % 100,
                 (unsigned long)++seq % 10000000);
        uint32_t r = rnd(100);
        if (r < 28)
            op_write(mnt, key, val);
        else if (r < 50)
            op_cas(mnt, key, val);
        else if (r < 78)
            op_read(mnt, key);
        else if (r < 90)
            op_version(mnt, key);
        else
            op_create_delete(mnt, key, val, r < 97);
        usleep(rnd(PAUSE_US_MAX));
    }
    return 0;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: linclient now\n"
            "       linclient setup MNT GENS KEYS HISTORY\n"
            "       linclient run PROC MNT HISTORY STOPFILE START_NS GEN_MS "
            "GENS KEYS SEED\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "now") == 0) {
        printf("%" PRId64 "\n", now_ns());
        return 0;
    }
    if (argc == 6 && strcmp(argv[1], "setup") == 0) {
        int gens = atoi(argv[3]), keys = atoi(argv[4]);
        if (gens < 1 || keys < 1 || keys > KEYS_MAX)
            return usage();
        hist_fd = open(argv[5], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        return hist_fd < 0 ? usage() : setup(argv[2], gens, keys);
    }
    if (argc != 11 || strcmp(argv[1], "run") != 0)
        return usage();
    proc_id = atoi(argv[2]);
    no_sync = getenv("LIN_NO_SYNC") != NULL && strcmp(getenv("LIN_NO_SYNC"), "1") == 0;
    int64_t start = strtoll(argv[6], NULL, 10);
    long gen_ms = atol(argv[7]);
    int gens = atoi(argv[8]), keys = atoi(argv[9]);
    rng = strtoull(argv[10], NULL, 10) * 2654435761u + 88172645463325252ull;
    if (proc_id < 0 || start <= 0 || gen_ms < 1 || gens < 1 || keys < 1 ||
        keys > KEYS_MAX)
        return usage();
    hist_fd = open(argv[4], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (hist_fd < 0) {
        perror(argv[4]);
        return 2;
    }
    return run(argv[3], argv[5], start, gen_ms, gens, keys);
}
