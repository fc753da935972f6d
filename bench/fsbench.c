/*
 * fsbench.c — a filesystem workload driver that runs against ANY directory,
 * so one binary measures zkfs, the trivial FUSE floor (bench/floorfs) and
 * tmpfs the same way, through ordinary system calls, as users use them.
 *
 *   fsbench --dir D [--procs P] [--ops N] [--workload W] [--size BYTES]
 *           [--files F] [--entries E] [--time-cap S] [--keep-list]
 *           [--spread DIR2,DIR3,...]
 *
 * Workloads (each "op" is what one latency sample measures):
 *   create     open(O_CREAT|O_EXCL|O_WRONLY) + write SIZE bytes + close,
 *              unique names
 *   creat      open(O_CREAT|O_TRUNC|O_WRONLY) + write + close, unique
 *              names: `echo x > newfile`, cp (no O_EXCL: on zkfs one
 *              transaction at close, docs/filesystem.md)
 *   set        open(O_WRONLY|O_TRUNC) + write + close of an existing file
 *   get        open(O_RDONLY) + read + close of an existing file
 *   stat       stat() of an existing file, already looked up (cached)
 *   list       opendir + readdir to the end + closedir of a directory of E
 *              (default 10,000) entries; also reported as ms per listing
 *   firstlist  the same listing, each one after the kernel's dentry and
 *              inode caches were dropped (untimed), so nothing of the
 *              directory is cached: the daemon builds every listing
 *   firststat  stat() of a file the kernel has not looked up (an uncached
 *              LOOKUP): the entries of the list fixture, each stat'ed
 *              once, after the caches were dropped at the barrier
 *              (ops per process at most E / P)
 *   delete     unlink() of an existing file
 *   ephemeral  open(O_CREAT|O_EXCL) + close in a directory whose xattr
 *              user.zkfs.children is "ephemeral" (zkfs deletes the file at
 *              the last close); where that xattr cannot be set (not zkfs)
 *              it degenerates to create + close + unlink, and says so.
 *              On zkfs the run then waits (bounded) until the files are
 *              gone and reports how long after the last close that was
 *   lock       flock(LOCK_EX) + flock(LOCK_UN) on one shared file
 *
 * All processes work in one shared directory (as clients of one znode
 * do), or with --private-dirs each in its own subdirectory: the kernel
 * serializes creates and unlinks within one directory (the parent's inode
 * lock), which decides whether concurrent writers can share a commit.
 *
 * --spread B,C (zkfs ensembles): B and C are other replicas' mounts of the
 * same tree, at the same relative place as D. Process p then works through
 * the (p % 3)th of D, B, C (same znodes, different mounts), after waiting
 * (bounded) until the fixtures made through D are visible through its own.
 *
 * P processes (fork) each do N ops after a common start barrier (a pipe
 * whose write end the parent closes). Every op's latency is taken with
 * CLOCK_MONOTONIC into an array preallocated before the barrier (shared
 * memory, so the parent can merge them). Set-up (creating the files a
 * workload needs) and clean-up are not timed. On zkfs, the barrier also
 * waits (bounded by the set-up cap) until every mount used has no echo
 * backlog left (zkfs_echo_queue_items 0 in its .zkfs.prom), so that the
 * other mounts' inotify replays of the set-up's files are not timed with
 * the workload (--no-settle: start at once; settle_ms= says how long).
 *
 * Output: one line per run, key=value pairs:
 *   workload=W procs=P ops=TOTAL elapsed_s=... ops_per_s=... p50_us=...
 *   p99_us=... errors=K [ms_per_list=...] [note=...]
 * ops_per_s is the total of completed ops over the wall time from the
 * barrier to the last process's end.
 *
 * firstlist and firststat drop the caches with "2" in
 * /proc/sys/vm/drop_caches (root; dentries and inodes of every file
 * system on the machine, not page contents): other programs on the
 * machine then look their names up again once.
 *
 * Everything is bounded: N ops per process, and an overall time cap (default
 * 60 s) after which processes stop early (the figures then cover the ops
 * done; note=time-cap says so). A process that is still stuck after the cap
 * plus a grace period is killed. A benchmark prints figures; it never passes
 * or fails — the exit status is 0 unless the run could not be made at all.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define PROCS_MAX        256          /* most worker processes            */
#define OPS_MAX          10000000     /* most ops per process             */
#define SIZE_MAX_BYTES   (1024 * 1024)/* largest write                    */
#define ENTRIES_MAX      1000000      /* largest listed directory         */
#define GRACE_S          10           /* after the cap, before SIGKILL    */
#define NAME_LEN         64
#define FUSE_SUPER_MAGIC 0x65735546   /* statfs f_type of FUSE mounts  */

enum workload { W_CREATE, W_SET, W_GET, W_STAT, W_LIST, W_DELETE,
                W_EPHEMERAL, W_LOCK, W_CREAT, W_FIRSTSTAT, W_FIRSTLIST };

static const char *const workload_names[] = {
    "create", "set", "get", "stat", "list", "delete", "ephemeral", "lock",
    "creat", "firststat", "firstlist"
};

/* Workloads that read the list fixture. */
static int uses_list(enum workload w)
{
    return w == W_LIST || w == W_FIRSTSTAT || w == W_FIRSTLIST;
}

struct opts {
    const char *dir;
    int procs;
    long ops;
    enum workload w;
    size_t size_bytes;
    long files;              /* files per process for set/get/stat       */
    long entries;            /* entries of the listed directory          */
    double time_cap_s;
    int keep_list;           /* keep the list fixture for the next run   */
    int private_dirs;        /* each process works in its own directory  */
    int no_settle;           /* do not wait for zkfs's echo threads      */
    const char *spread[8];   /* --spread: other mounts of the same tree  */
    int nspread;
};

/* Per-process results, in shared memory. */
struct proc_result {
    uint64_t done;
    uint64_t errors;
    int first_errno;
    int first_errno_op;      /* which step failed first (for the message) */
    int capped;
    uint64_t end_ns;
};

struct shared {
    struct proc_result *res;  /* procs entries */
    uint64_t *lat_ns;         /* procs * ops entries */
};

struct run {
    const struct opts *o;
    char base[4096];          /* this run's private directory           */
    char listdir[4096];       /* the list fixture                       */
    char ephdir[4096];
    int eph_native;           /* the ephemeral xattr could be set       */
    char *payload;
    char **names;             /* this process's set/get/stat files      */
    uint64_t t0_ns;
    double settle_ms;         /* < 0: no zkfs metrics file found          */
    int settle_left;          /* the deadline came first: a backlog left  */
    uint64_t setup_deadline_ns;
    uint64_t cap_ns;
};

/* Set by SIGINT/SIGTERM in the parent: stop the workers (by pid), clean
 * up, report nothing. The one global: a signal handler needs it. */
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* ------------------------------------------------------------------------
 * Small helpers
 * --------------------------------------------------------------------- */

static void die(const char *what)
{
    fprintf(stderr, "fsbench: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* snprintf through a va_list: paths are bounded by the buffer, and a
 * truncated one simply fails its system call with a clear error. */
static void fmt_path(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fmt_path(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

static void file_name(char *buf, size_t size, const char *dir, int proc,
                      long i)
{
    fmt_path(buf, size, "%s/p%d-%ld", dir, proc, i);
}

/* Removes every entry of dir (one level: the fixtures are flat), then dir. */
static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char path[4096 + NAME_LEN * 4];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        fmt_path(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) < 0 && (errno == EISDIR || errno == EPERM))
            remove_tree(path);
    }
    closedir(d);
    rmdir(dir);
}

/* Counts the entries of dir other than "." and "..", or -1; with deep,
 * a subdirectory counts as the entries in it (one level). */
static long count_entries_at(const char *dir, int deep)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    long n = 0;
    struct dirent *e;
    char path[4096 + NAME_LEN * 4];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (deep && e->d_type == DT_DIR) {
            fmt_path(path, sizeof path, "%s/%s", dir, e->d_name);
            long k = count_entries_at(path, 0);
            n += k > 0 ? k : 0;
        } else {
            n++;
        }
    }
    closedir(d);
    return n;
}

static long count_entries(const char *dir)
{
    return count_entries_at(dir, 0);
}

#define DROP_SETTLE_MS 50    /* after a drop, for the FORGETs to drain */

/* Drops the kernel's dentry and inode caches (all file systems), then
 * waits DROP_SETTLE_MS: the drop makes every FUSE daemon on the machine
 * (this target's, and the one measured just before) answer a FORGET per
 * inode it held, which would otherwise run during the measurement. 0 or
 * an errno (EACCES when not root). */
static int drop_caches(void)
{
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int err = write(fd, "2", 1) == 1 ? 0 : errno;
    close(fd);
    if (err == 0)
        poll(NULL, 0, DROP_SETTLE_MS);
    return err;
}

/* ------------------------------------------------------------------------
 * One operation of each workload. Each returns 0 or an errno, with *step
 * naming the system call that failed.
 * --------------------------------------------------------------------- */

static int op_create(const struct run *r, const char *path, int excl,
                     const char **step)
{
    int fd = open(path, O_CREAT | (excl ? O_EXCL : O_TRUNC) | O_WRONLY |
                            O_CLOEXEC, 0644);
    if (fd < 0)
        return *step = excl ? "open(O_CREAT|O_EXCL)" : "open(O_CREAT|O_TRUNC)",
               errno;
    if (write_all(fd, r->payload, r->o->size_bytes) < 0) {
        int e = errno;
        close(fd);
        return *step = "write", e;
    }
    if (close(fd) < 0)
        return *step = "close", errno;
    return 0;
}

static int op_set(const struct run *r, const char *path, const char **step)
{
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
        return *step = "open(O_TRUNC)", errno;
    if (write_all(fd, r->payload, r->o->size_bytes) < 0) {
        int e = errno;
        close(fd);
        return *step = "write", e;
    }
    if (close(fd) < 0)
        return *step = "close", errno;
    return 0;
}

static int op_get(const char *path, char *buf, size_t size,
                  const char **step)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return *step = "open(O_RDONLY)", errno;
    ssize_t n;
    do {
        n = read(fd, buf, size);
    } while (n == (ssize_t)size);
    int e = errno;
    close(fd);
    if (n < 0)
        return *step = "read", e;
    return 0;
}

static int op_list(const struct run *r, const char **step)
{
    DIR *d = opendir(r->listdir);
    if (d == NULL)
        return *step = "opendir", errno;
    long n = 0;
    errno = 0;
    while (readdir(d) != NULL)
        n++;
    int e = errno;
    closedir(d);
    if (e != 0)
        return *step = "readdir", e;
    if (n < r->o->entries)
        return *step = "readdir (short listing)", EIO;
    return 0;
}

static int op_ephemeral(const struct run *r, const char *path,
                        const char **step)
{
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0)
        return *step = "open(O_CREAT|O_EXCL)", errno;
    if (close(fd) < 0)
        return *step = "close", errno;
    if (!r->eph_native && unlink(path) < 0)
        return *step = "unlink", errno;
    return 0;
}

static int op_lock(int fd, const char **step)
{
    if (flock(fd, LOCK_EX) < 0)
        return *step = "flock(LOCK_EX)", errno;
    if (flock(fd, LOCK_UN) < 0)
        return *step = "flock(LOCK_UN)", errno;
    return 0;
}

/* ------------------------------------------------------------------------
 * Worker process
 * --------------------------------------------------------------------- */

/* Files this process needs before the barrier: set/get/stat reuse
 * o->files files round-robin; delete needs one per op. */
static long files_needed(const struct opts *o)
{
    switch (o->w) {
    case W_SET: case W_GET: case W_STAT:
        return o->files < o->ops ? o->files : o->ops;
    case W_DELETE:
        return o->ops;
    default:
        return 0;
    }
}

static int setup_files(const struct run *r, int proc, long nfiles)
{
    char path[4096 + NAME_LEN];
    const char *step = "";
    for (long i = 0; i < nfiles; i++) {
        if (bench_now_ns() > r->setup_deadline_ns) {
            fprintf(stderr, "fsbench: set-up exceeded the time cap\n");
            return ETIMEDOUT;
        }
        file_name(path, sizeof path, r->base, proc, i);
        int err = op_create(r, path, 1, &step);
        if (err != 0) {
            fprintf(stderr, "fsbench: set-up %s %s: %s\n", step, path,
                    strerror(err));
            return err;
        }
        if (r->o->w == W_STAT) {   /* look it up now: the run measures */
            struct stat st;        /* cached stats                     */
            if (stat(path, &st) < 0)
                return errno;
        }
    }
    return 0;
}

static void record_error(struct proc_result *pr, int err, const char *step,
                         const char *path)
{
    if (pr->errors++ == 0) {
        pr->first_errno = err;
        fprintf(stderr, "fsbench: %s %s: %s\n", step, path, strerror(err));
    }
}

static int do_op(const struct run *r, int proc, long i, int lockfd,
                 char *buf, size_t bufsize, const char **step, char *path,
                 size_t pathsize)
{
    const struct opts *o = r->o;
    long nfiles = files_needed(o);
    int err = 0;
    switch (o->w) {
    case W_CREATE:
    case W_CREAT:
        file_name(path, pathsize, r->base, proc, i);
        return op_create(r, path, o->w == W_CREATE, step);
    case W_SET:
        err = op_set(r, r->names[i % nfiles], step);
        break;
    case W_GET:
        err = op_get(r->names[i % nfiles], buf, bufsize, step);
        break;
    case W_STAT: {
        /* Names are prepared before the barrier, so a cached stat
         * (a microsecond or two) is not measured with a snprintf. */
        struct stat st;
        if (stat(r->names[i % nfiles], &st) < 0)
            err = (*step = "stat", errno);
        break;
    }
    case W_LIST:
        fmt_path(path, pathsize, "%s", r->listdir);
        return op_list(r, step);
    case W_FIRSTLIST:       /* the caches were dropped before this op */
        fmt_path(path, pathsize, "%s", r->listdir);
        return op_list(r, step);
    case W_FIRSTSTAT: {
        /* Process p stats entries p, p + P, p + 2P, ...: each once. */
        struct stat st;
        fmt_path(path, pathsize, "%s/entry-%06ld", r->listdir,
                 (long)proc + i * o->procs);
        return stat(path, &st) < 0 ? (*step = "stat", errno) : 0;
    }
    case W_DELETE:
        file_name(path, pathsize, r->base, proc, i);
        return unlink(path) < 0 ? (*step = "unlink", errno) : 0;
    case W_EPHEMERAL:
        file_name(path, pathsize, r->ephdir, proc, i);
        return op_ephemeral(r, path, step);
    case W_LOCK:
        if ((err = op_lock(lockfd, step)) != 0)
            fmt_path(path, pathsize, "%s/lockfile", r->base);
        return err;
    }
    if (err != 0)
        fmt_path(path, pathsize, "%s", r->names[i % nfiles]);
    return err;
}

/* --spread: makes buf (which starts with dir) start with alt instead. */
static void rebase(char *buf, size_t size, const char *dir, const char *alt)
{
    size_t n = strlen(dir);
    if (buf[0] == '\0' || strncmp(buf, dir, n) != 0)
        return;
    char tmp[4096];
    fmt_path(tmp, sizeof tmp, "%s%s", alt, buf + n);
    fmt_path(buf, size, "%s", tmp);
}

/* --spread: this process works through another mount; waits (until the
 * set-up deadline) for the fixtures the parent made through o->dir to be
 * visible through it (replicas apply commits a little apart). */
static int use_spread_dir(struct run *r, int proc)
{
    const struct opts *o = r->o;
    int k = proc % (o->nspread + 1);
    if (k == 0)
        return 0;
    const char *alt = o->spread[k - 1];
    rebase(r->base, sizeof r->base, o->dir, alt);
    rebase(r->listdir, sizeof r->listdir, o->dir, alt);
    rebase(r->ephdir, sizeof r->ephdir, o->dir, alt);
    for (;;) {
        struct stat st;
        int ok = stat(r->base, &st) == 0;
        if (ok && uses_list(o->w))
            ok = count_entries(r->listdir) >= o->entries;
        if (ok && o->w == W_EPHEMERAL)
            ok = stat(r->ephdir, &st) == 0;
        if (ok)
            return 0;
        if (bench_now_ns() > r->setup_deadline_ns) {
            fprintf(stderr, "fsbench: %s: fixtures not visible in time\n",
                    alt);
            return ETIMEDOUT;
        }
        poll(NULL, 0, 5);
    }
}

/* The echo backlog of the zkfs mount holding dir: zkfs_echo_queue_items
 * from the metrics file at the mount's root (found by walking up from
 * dir); -1 if there is none (not zkfs). */
static long echo_backlog(const char *dir)
{
    char p[PATH_MAX];
    if (realpath(dir, p) == NULL)
        return -1;
    for (;;) {
        size_t n = strlen(p);
        char f[PATH_MAX + 16];
        fmt_path(f, sizeof f, "%s/.zkfs.prom", n > 1 ? p : "");
        FILE *fp = fopen(f, "r");
        if (fp) {
            char line[512];
            long v = -1;
            while (fgets(line, sizeof line, fp))
                if (sscanf(line, "zkfs_echo_queue_items %ld", &v) == 1)
                    break;
            fclose(fp);
            if (v >= 0)
                return v;       /* else a file of that name, not ours */
        }
        char *slash = strrchr(p, '/');
        if (slash == NULL || n <= 1)
            return -1;
        if (slash == p)
            slash[1] = '\0';   /* up to "/" */
        else
            *slash = '\0';
    }
}

/* Before the barrier: waits (until the set-up deadline) for every zkfs
 * mount the run uses to have replayed what the set-up made, so that the
 * timed ops do not share the CPUs with the other mounts' replays of the
 * set-up's files (thousands of creates for set/get/stat: their inotify
 * replays lag by seconds on two CPUs, docs/performance.md). Sets
 * r->settle_ms (-1: no zkfs mount). */
static void settle(struct run *r)
{
    const struct opts *o = r->o;
    uint64_t t0 = bench_now_ns();
    r->settle_ms = -1;
    r->settle_left = 0;
    /* firststat/firstlist: nothing may look a name up between the cache
     * drop and the barrier. */
    if (o->no_settle || o->w == W_FIRSTSTAT || o->w == W_FIRSTLIST)
        return;
    for (;;) {
        int busy = 0, found = 0;
        for (int k = 0; k <= o->nspread; k++) {
            long v = echo_backlog(k == 0 ? o->dir : o->spread[k - 1]);
            found |= v >= 0;
            busy |= v > 0;
        }
        if (!found)
            return;
        r->settle_ms = (double)(bench_now_ns() - t0) / 1e6;
        r->settle_left = busy;
        if (!busy || stop_requested || bench_now_ns() > r->setup_deadline_ns)
            return;
        poll(NULL, 0, 10);
    }
}

/* Runs in the child: set-up, report ready, wait for the barrier, run. */
static void worker(struct run *r, struct shared *sh, int proc, int ready_fd,
                   int start_fd)
{
    const struct opts *o = r->o;
    struct proc_result *pr = &sh->res[proc];
    uint64_t *lat = sh->lat_ns + (size_t)proc * (size_t)o->ops;
    char path[4096 + NAME_LEN];
    size_t bufsize = o->size_bytes < 4096 ? 65536 : o->size_bytes * 2;
    char *buf = malloc(bufsize);
    int lockfd = -1;

    if (buf == NULL)
        _exit(1);
    if (o->nspread > 0 && use_spread_dir(r, proc) != 0)
        _exit(1);
    if (o->private_dirs) {
        /* r is this process's own copy (fork): point it at p<N>/. */
        char dir[sizeof r->base];
        fmt_path(dir, sizeof dir, "%s/p%d", r->base, proc);
        if (mkdir(dir, 0755) < 0)
            _exit(1);
        memcpy(r->base, dir, sizeof dir);
        if (o->w == W_EPHEMERAL) {
            static const char v[] = "ephemeral";
            fmt_path(dir, sizeof dir, "%s/p%d", r->ephdir, proc);
            if (mkdir(dir, 0755) < 0 || (r->eph_native &&
                setxattr(dir, "user.zkfs.children", v, sizeof v - 1, 0) < 0))
                _exit(1);
            memcpy(r->ephdir, dir, sizeof dir);
        }
    }
    long nfiles = files_needed(o);
    if (setup_files(r, proc, nfiles) != 0)
        _exit(1);
    r->names = calloc((size_t)nfiles + 1, sizeof(char *));
    if (r->names == NULL)
        _exit(1);
    for (long i = 0; i < nfiles; i++) {
        file_name(path, sizeof path, r->base, proc, i);
        if ((r->names[i] = strdup(path)) == NULL)
            _exit(1);
    }
    if (o->w == W_LOCK) {
        fmt_path(path, sizeof path, "%s/lockfile", r->base);
        lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (lockfd < 0)
            _exit(1);
    }
    if (write(ready_fd, "r", 1) != 1)
        _exit(1);
    char c;
    while (read(start_fd, &c, 1) < 0 && errno == EINTR)
        ;   /* EOF: the parent closed the write end; go */

    const char *step = "";
    uint64_t t = bench_now_ns();
    uint64_t deadline = t + r->cap_ns;
    for (long i = 0; i < o->ops; i++) {
        if (o->w == W_FIRSTLIST) {      /* untimed */
            int e = drop_caches();
            if (e != 0) {
                record_error(pr, e, "drop_caches", "/proc/sys/vm");
                break;
            }
            t = bench_now_ns();
        }
        int err = do_op(r, proc, i, lockfd, buf, bufsize, &step, path,
                        sizeof path);
        uint64_t t2 = bench_now_ns();
        if (err != 0) {
            record_error(pr, err, step, path);
            break;
        }
        lat[pr->done++] = t2 - t;
        t = t2;
        if (t > deadline) {
            pr->capped = 1;
            break;
        }
    }
    pr->end_ns = bench_now_ns();
    _exit(0);
}

/* ------------------------------------------------------------------------
 * Parent: fixtures, fork, barrier, wait, report, clean up
 * --------------------------------------------------------------------- */

/* Makes (or reuses, when it holds exactly o->entries entries) the directory
 * that the list workload reads. Untimed. */
static int setup_list(struct run *r)
{
    const struct opts *o = r->o;
    fmt_path(r->listdir, sizeof r->listdir, "%s/fsbench-list.%ld", o->dir,
             o->entries);
    long have = count_entries(r->listdir);
    if (have == o->entries)
        return 0;
    if (have >= 0)
        remove_tree(r->listdir);
    if (mkdir(r->listdir, 0755) < 0)
        return errno;
    char path[4096 + NAME_LEN];
    for (long i = 0; i < o->entries; i++) {
        if (stop_requested)
            return EINTR;
        if (bench_now_ns() > r->setup_deadline_ns)
            return ETIMEDOUT;
        fmt_path(path, sizeof path, "%s/entry-%06ld", r->listdir, i);
        int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0)
            return errno;
        close(fd);
    }
    return 0;
}

static int setup_ephemeral(struct run *r)
{
    fmt_path(r->ephdir, sizeof r->ephdir, "%s/eph", r->base);
    if (mkdir(r->ephdir, 0755) < 0)
        return errno;
    /* Only zkfs gives the xattr its meaning; tmpfs, for one, stores any
     * user.* xattr, so also require a FUSE mount (floorfs refuses it). */
    static const char v[] = "ephemeral";
    struct statfs sf;
    int set = setxattr(r->ephdir, "user.zkfs.children", v, sizeof v - 1,
                       0) == 0;
    r->eph_native = set && statfs(r->ephdir, &sf) == 0 &&
                    sf.f_type == FUSE_SUPER_MAGIC;
    if (set && !r->eph_native)
        removexattr(r->ephdir, "user.zkfs.children");
    return 0;
}

static int setup_shared(struct run *r)
{
    const struct opts *o = r->o;
    fmt_path(r->base, sizeof r->base, "%s/fsbench.%ld", o->dir,
             (long)getpid());
    if (mkdir(r->base, 0755) < 0)
        return errno;
    if (uses_list(o->w))
        return setup_list(r);
    if (o->w == W_EPHEMERAL)
        return setup_ephemeral(r);
    return 0;
}

/* Waits for all children until deadline_ns, then kills what is left. */
static void reap(pid_t *pids, int n, uint64_t deadline_ns)
{
    int left = n;
    while (left > 0) {
        for (int i = 0; i < n; i++) {
            if (pids[i] > 0 && waitpid(pids[i], NULL, WNOHANG) == pids[i]) {
                pids[i] = 0;
                left--;
            }
        }
        if (left == 0)
            break;
        if (bench_now_ns() > deadline_ns || stop_requested) {
            if (!stop_requested)
                fprintf(stderr, "fsbench: %d process(es) still running "
                        "after the cap; killing them\n", left);
            for (int i = 0; i < n; i++)
                if (pids[i] > 0)
                    kill(pids[i], SIGKILL);
            for (int i = 0; i < n; i++)
                if (pids[i] > 0)
                    waitpid(pids[i], NULL, 0);
            break;
        }
        poll(NULL, 0, 2);
    }
}

/* Waits for one ready byte from each child until the deadline. Returns the
 * number received. */
static int await_ready(int fd, int n, uint64_t deadline_ns)
{
    int got = 0;
    char buf[PROCS_MAX];
    while (got < n && !stop_requested) {
        uint64_t now = bench_now_ns();
        if (now > deadline_ns)
            break;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int ms = (int)((deadline_ns - now) / 1000000u) + 1;
        if (poll(&p, 1, ms) <= 0)
            continue;
        ssize_t k = read(fd, buf, sizeof buf);
        if (k <= 0)
            break;       /* every child exited (set-up failed) */
        got += (int)k;
    }
    return got;
}

/* After an ephemeral run on zkfs the files go by themselves at the last
 * close, possibly after close() returned. Waits (bounded by the time cap)
 * until they are gone, so that the next run does not compete with the
 * deletions, and says how long that took. Returns the number left. */
static long drain_ephemerals(const struct run *r, double *secs)
{
    uint64_t t0 = bench_now_ns(), deadline = t0 + r->cap_ns;
    long left = count_entries_at(r->ephdir, 1);
    while (left > 0 && bench_now_ns() < deadline) {
        poll(NULL, 0, 10);
        left = count_entries_at(r->ephdir, 1);
    }
    *secs = (double)(bench_now_ns() - t0) / 1e9;
    return left;
}

static void report(const struct run *r, struct shared *sh)
{
    const struct opts *o = r->o;
    uint64_t total = 0, errors = 0, end = r->t0_ns;
    int capped = 0;
    for (int p = 0; p < o->procs; p++) {
        struct proc_result *pr = &sh->res[p];
        /* Pack each process's samples to the front of one array. */
        memmove(sh->lat_ns + total, sh->lat_ns + (size_t)p * (size_t)o->ops,
                pr->done * sizeof(uint64_t));
        total += pr->done;
        errors += pr->errors;
        capped |= pr->capped;
        if (pr->end_ns > end)
            end = pr->end_ns;
    }
    double secs = (double)(end - r->t0_ns) / 1e9;
    double p50 = 0, p99 = 0;
    if (total > 0) {
        qsort(sh->lat_ns, total, sizeof(uint64_t), bench_cmp_u64);
        p50 = (double)sh->lat_ns[(total - 1) / 2] / 1e3;
        size_t i99 = (size_t)((double)total * 0.99 + 0.999999);
        p99 = (double)sh->lat_ns[(i99 > 0 ? i99 : 1) - 1] / 1e3;
    }
    printf("workload=%s procs=%d ops=%" PRIu64 " elapsed_s=%.3f "
           "ops_per_s=%.0f p50_us=%.1f p99_us=%.1f errors=%" PRIu64,
           workload_names[o->w], o->procs, total, secs,
           secs > 0 ? (double)total / secs : 0.0, p50, p99, errors);
    if (o->private_dirs)
        printf(" dirs=private");
    if (o->nspread > 0)
        printf(" mounts=%d", o->nspread + 1);
    if (r->settle_ms >= 0)
        printf(" settle_ms=%.0f%s", r->settle_ms,
               r->settle_left ? " note=settle-timeout" : "");
    if (o->w == W_LIST || o->w == W_FIRSTLIST)
        printf(" ms_per_list=%.2f entries=%ld", p50 / 1e3, o->entries);
    if (o->w == W_EPHEMERAL && !r->eph_native)
        printf(" note=not-zkfs:ephemeral-degenerates-to-create+unlink");
    if (o->w == W_EPHEMERAL && r->eph_native) {
        double drain_s;
        long left = drain_ephemerals(r, &drain_s);
        printf(" ephemerals_gone_after_s=%.3f", drain_s);
        if (left != 0)
            printf(" ephemerals_left=%ld", left);
    }
    if (capped)
        printf(" note=time-cap:stopped-early");
    printf("\n");
    fflush(stdout);
}

static int run_bench(struct run *r)
{
    const struct opts *o = r->o;
    size_t nlat = (size_t)o->procs * (size_t)o->ops;
    struct shared sh;
    size_t reslen = (size_t)o->procs * sizeof(struct proc_result);
    sh.res = mmap(NULL, reslen, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    sh.lat_ns = mmap(NULL, nlat * sizeof(uint64_t), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh.res == MAP_FAILED || sh.lat_ns == MAP_FAILED)
        die("mmap");
    memset(sh.res, 0, reslen);
    /* Touch every latency page now so the run takes no page faults. */
    memset(sh.lat_ns, 0, nlat * sizeof(uint64_t));

    int ready[2], start[2];
    if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(start, O_CLOEXEC) < 0)
        die("pipe");
    pid_t pids[PROCS_MAX];
    /* Nothing a firststat worker does before the barrier looks a name
     * up, so the caches can be dropped before the fork. */
    int e = o->w == W_FIRSTSTAT ? drop_caches() : 0;
    if (e != 0) {
        fprintf(stderr, "fsbench: writing /proc/sys/vm/drop_caches: %s\n",
                strerror(e));
        return 1;
    }
    fflush(NULL);
    for (int p = 0; p < o->procs; p++) {
        pids[p] = fork();
        if (pids[p] < 0)
            die("fork");
        if (pids[p] == 0) {
            signal(SIGINT, SIG_DFL);
            signal(SIGTERM, SIG_DFL);
            close(ready[0]);
            close(start[1]);
            worker(r, &sh, p, ready[1], start[0]);
        }
    }
    close(ready[1]);
    close(start[0]);
    /* Set-up has the cap (plus the grace period for stragglers); the run
     * has the cap again, counted from the barrier. */
    int got = await_ready(ready[0], o->procs, r->setup_deadline_ns +
                          (uint64_t)GRACE_S * 1000000000u);
    if (got == o->procs)
        settle(r);
    r->t0_ns = bench_now_ns();
    close(start[1]);
    close(ready[0]);
    reap(pids, o->procs,
         r->t0_ns + r->cap_ns + (uint64_t)GRACE_S * 1000000000u);
    if (stop_requested) {
        fprintf(stderr, "fsbench: stopped by a signal\n");
        return 130;
    }
    if (got < o->procs) {
        fprintf(stderr, "fsbench: only %d of %d processes finished set-up\n",
                got, o->procs);
        return 1;
    }
    report(r, &sh);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: fsbench --dir D [--procs P] [--ops N] [--workload W]\n"
        "               [--size BYTES] [--files F] [--entries E]\n"
        "               [--time-cap SECONDS] [--keep-list] [--private-dirs]\n"
        "               [--no-settle]\n"
        "               [--spread DIR2,DIR3,...]\n"
        "workloads: create creat set get stat firststat list firstlist\n"
        "           delete ephemeral lock\n"
        "defaults: --procs 1 --ops 2000 --workload create --size 16\n"
        "          --files 1000 --entries 10000 --time-cap 60\n");
}

static long parse_long(const char *s, long min, long max, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || end == s || v < min || v > max) {
        fprintf(stderr, "fsbench: bad %s '%s' (%ld..%ld)\n", what, s, min,
                max);
        exit(2);
    }
    return v;
}

static void parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        { "dir", required_argument, NULL, 'd' },
        { "procs", required_argument, NULL, 'p' },
        { "ops", required_argument, NULL, 'n' },
        { "workload", required_argument, NULL, 'w' },
        { "size", required_argument, NULL, 's' },
        { "files", required_argument, NULL, 'f' },
        { "entries", required_argument, NULL, 'e' },
        { "time-cap", required_argument, NULL, 't' },
        { "keep-list", no_argument, NULL, 'k' },
        { "private-dirs", no_argument, NULL, 'P' },
        { "no-settle", no_argument, NULL, 'N' },
        { "spread", required_argument, NULL, 'S' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int c, found;
    char *tok, *save;
    while ((c = getopt_long(argc, argv, "d:p:n:w:s:f:e:t:kPS:h", lo, NULL)) != -1) {
        switch (c) {
        case 'd': o->dir = optarg; break;
        case 'p': o->procs = (int)parse_long(optarg, 1, PROCS_MAX, "procs"); break;
        case 'n': o->ops = parse_long(optarg, 1, OPS_MAX, "ops"); break;
        case 's': o->size_bytes = (size_t)parse_long(optarg, 0, SIZE_MAX_BYTES, "size"); break;
        case 'f': o->files = parse_long(optarg, 1, OPS_MAX, "files"); break;
        case 'e': o->entries = parse_long(optarg, 1, ENTRIES_MAX, "entries"); break;
        case 't': o->time_cap_s = (double)parse_long(optarg, 1, 86400, "time-cap"); break;
        case 'k': o->keep_list = 1; break;
        case 'P': o->private_dirs = 1; break;
        case 'N': o->no_settle = 1; break;
        case 'S':
            for (tok = strtok_r(optarg, ",", &save); tok != NULL;
                 tok = strtok_r(NULL, ",", &save)) {
                if (o->nspread == (int)(sizeof o->spread / sizeof *o->spread)) {
                    fprintf(stderr, "fsbench: too many --spread dirs\n");
                    exit(2);
                }
                o->spread[o->nspread++] = tok;
            }
            break;
        case 'w':
            found = 0;
            for (size_t i = 0; i < sizeof workload_names / sizeof *workload_names; i++)
                if (strcmp(optarg, workload_names[i]) == 0) {
                    o->w = (enum workload)i;
                    found = 1;
                }
            if (!found) {
                fprintf(stderr, "fsbench: unknown workload '%s'\n", optarg);
                usage(stderr);
                exit(2);
            }
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (o->dir == NULL || optind != argc) {
        usage(stderr);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    struct opts o = {
        .procs = 1, .ops = 2000, .w = W_CREATE, .size_bytes = 16,
        .files = 1000, .entries = 10000, .time_cap_s = 60, .keep_list = 0,
    };
    parse_args(argc, argv, &o);
    /* firststat looks each entry up once: at most E / P per process. */
    if (o.w == W_FIRSTSTAT && o.ops > o.entries / o.procs)
        o.ops = o.entries / o.procs > 0 ? o.entries / o.procs : 1;

    struct run r = { .o = &o };
    r.payload = malloc(o.size_bytes + 1);
    if (r.payload == NULL)
        die("malloc");
    for (size_t i = 0; i < o.size_bytes; i++)
        r.payload[i] = (char)('a' + (int)(i % 26));
    if (o.size_bytes > 0)
        r.payload[o.size_bytes - 1] = '\n';
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* Set-up gets the same cap as the run. */
    r.cap_ns = (uint64_t)(o.time_cap_s * 1e9);
    r.setup_deadline_ns = bench_now_ns() + r.cap_ns;

    int err = setup_shared(&r);
    if (err != 0) {
        errno = err;
        fprintf(stderr, "fsbench: set-up in %s: %s\n", o.dir, strerror(err));
        remove_tree(r.base);
        return 1;
    }
    r.setup_deadline_ns = bench_now_ns() + r.cap_ns;
    int rc = run_bench(&r);
    remove_tree(r.base);
    if (uses_list(o.w) && !o.keep_list)
        remove_tree(r.listdir);
    free(r.payload);
    return rc;
}
