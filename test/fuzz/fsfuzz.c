/*
 * fsfuzz.c — a seeded syscall fuzzer for a zkfs mount.
 *
 * Compare mode (the default): every seed generates a sequence of random
 * operations (open/creat with odd flags, read/write/pread/pwrite/readv/
 * writev at odd offsets and sizes up to past the 1 MiB limit, truncate,
 * fallocate, lseek, fsync, dup/fork/close orders, rename/renameat2, link/
 * symlink/mknod/mkfifo, unlink/mkdir/rmdir, chmod/chown/utimensat, xattrs,
 * flock/OFD locks, mmap, readdir while the directory changes, telldir/
 * seekdir, statfs, access, long names and paths, non-UTF-8 names, and
 * path operations run as other users) and runs each operation on the zkfs
 * root and on a model root (a tmpfs directory), comparing the results
 * (return value, errno, data read, stat fields, listings, xattr values).
 * The model applies zkfs's documented semantics on top of tmpfs: file
 * contents are buffered per open file description and committed at
 * close/fsync (SPEC section 2), so the model keeps that buffer itself and
 * writes the tmpfs file only when zkfs would commit. Every other difference
 * must be one of the deviations in `devs[]` below, each quoting the line of
 * docs/filesystem.md that documents it (or, named BUG, a known bug listed
 * in docs/testing.md); the hits of each are counted and printed.
 *
 * Every seed runs in a worker process watched by a supervisor: a worker
 * that makes no progress for --op-timeout-ms is a hang. On a failure
 * (divergence, hang, crash of the worker) the supervisor prints the seed
 * and shrinks the failing sequence by delta debugging (each trial runs on
 * fresh directories) and prints the shortest one found as readable lines.
 *
 * Solo mode (--solo): no model; the operations run against one root only
 * (several fuzzers may share a directory, e.g. on two mounts of one
 * ensemble) and only a hang, a dead mount (ENOTCONN) or EIO fails.
 *
 * The PRNG is seeded from --seed only, never from the clock.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define DATA_MAX (1024 * 1024)      /* zkfs's largest file (ZK_DATA_MAX) */
#define NSLOT 6                     /* open descriptors at once */
#define NDESC (NSLOT * 2)           /* open file descriptions at once */
#define BIG (3 * 1024 * 1024)       /* largest I/O buffer */
#define MSG_MAX 2048
#define SHRINK_TRIALS_MAX 400
#define SHRINK_SECONDS_MAX 120
#define TREE_EVERY 16               /* ops between full tree comparisons */
#define LIST_MAX 256                /* names in one directory listing */

enum { Z = 0, M = 1 };              /* zkfs side, model side */

/* ------------------------------------------------------------------------ */
/* deviations: every allowed difference, keyed to docs/filesystem.md          */
/* ------------------------------------------------------------------------ */

enum dev_id {
    DEV_LINK, DEV_SYMLINK, DEV_SPECIAL, DEV_NAME_CTL, DEV_EXCHANGE,
    DEV_TMPFILE, DEV_FALLOCATE, DEV_XATTR_ZK, DEV_XATTR_OTHER,
    DEV_XATTR_ZKFS, DEV_MMAP_SHARED, DEV_DIR_NLINK, DEV_DIR_SIZE,
    DEV_CLOSE_GONE, DEV_EFBIG, DEV_APPEND_POS, DEV_TIMES, DEV_FSTAT_GONE,
    DEV_APPEND_READ,
    DEV_SUID_AT_COMMIT, DEV_COUNT
};

static struct dev {
    const char *name;
    const char *doc;    /* the line of docs/filesystem.md that allows it */
    long hits;
} devs[DEV_COUNT] = {
    [DEV_LINK] = {"link", "`symlink`, `link`: `EPERM`"},
    [DEV_SYMLINK] = {"symlink", "`symlink`, `link`: `EPERM`"},
    [DEV_SPECIAL] = {"mknod", "`mknod` of devices, FIFOs, sockets: `EPERM`"},
    [DEV_NAME_CTL] = {"name", "Names: 1..255 bytes, no `/`, NUL or control characters (`zk_name_check`) ... others with `EINVAL`"},
    [DEV_EXCHANGE] = {"exchange", "`RENAME_EXCHANGE`/`WHITEOUT` → `EINVAL`"},
    [DEV_TMPFILE] = {"tmpfile", "`O_TMPFILE` opens fail with `EOPNOTSUPP`"},
    [DEV_FALLOCATE] = {"fallocate", "... and so does `fallocate`"},
    [DEV_XATTR_ZK] = {"user.zk.*", "xattrs `user.zk.czxid` ... Read-only (`EPERM` to set)"},
    [DEV_XATTR_OTHER] = {"user.*", "Other `user.*` names: `ENODATA` to read, `ENOTSUP` to set"},
    [DEV_XATTR_ZKFS] = {"user.zkfs.*", "`user.zkfs.name` ... `user.zkfs.owner` ... `user.zkfs.data` ... `user.zkfs.children`"},
    [DEV_MMAP_SHARED] = {"mmap", "`mmap(MAP_SHARED)` is refused (`ENODEV`)"},
    [DEV_DIR_NLINK] = {"dir nlink", "`st_nlink` ... 2 + number of children for directories"},
    [DEV_DIR_SIZE] = {"dir size", "`st_size` = data length"},
    [DEV_CLOSE_GONE] = {"close gone", "`close()` can fail with ... `ENOENT` when the node was deleted or replaced meanwhile"},
    [DEV_EFBIG] = {"efbig", "at most 1 MiB: a write that would pass it fails with `EFBIG` and poisons the descriptor"},
    [DEV_APPEND_POS] = {"append pos", "The offset after an `O_APPEND` write is the kernel's size (the committed size, sometimes plus earlier pending appends) plus the write"},
    [DEV_TIMES] = {"times", "Times are transaction times unless `utimensat` set them (millisecond resolution); there is no atime."},
    [DEV_APPEND_READ] = {"append read", "A writable descriptor reads its own unsaved buffer, except an `O_APPEND` one, which reads the committed content"},
    [DEV_SUID_AT_COMMIT] = {"suid at commit", "A write ... by any user but root ... clears `S_ISUID` ... in the same transaction as the data (so at the commit, not at the write)"},
    [DEV_FSTAT_GONE] = {"fstat gone", "`fstat` on a descriptor whose file was deleted or replaced meanwhile returns the node's last committed stat"},
};

/* ------------------------------------------------------------------------ */
/* PRNG (splitmix64) and data                                                */
/* ------------------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint32_t rnd(uint64_t *s, uint32_t n) { return (uint32_t)(rng_next(s) % n); }

static unsigned char *databuf;     /* BIG bytes of a write's data */
static unsigned char *readbuf[2];  /* BIG bytes each side reads into */

static void fill_data(uint32_t dseed, size_t len)
{
    uint64_t s = dseed;
    for (size_t i = 0; i < len; i += 8) {
        uint64_t v = rng_next(&s);
        memcpy(databuf + i, &v, len - i < 8 ? len - i : 8);
    }
}

/* ------------------------------------------------------------------------ */
/* operations                                                                */
/* ------------------------------------------------------------------------ */

enum op_kind {
    OP_OPEN, OP_CLOSE, OP_DUP, OP_READ, OP_PREAD, OP_READV, OP_WRITE,
    OP_PWRITE, OP_WRITEV, OP_FTRUNCATE, OP_TRUNCATE, OP_FALLOCATE, OP_LSEEK,
    OP_FSYNC, OP_FDATASYNC, OP_FORK_CLOSE, OP_FORK_WRITE, OP_RENAME, OP_LINK,
    OP_SYMLINK, OP_MKNOD, OP_MKFIFO, OP_UNLINK, OP_MKDIR, OP_RMDIR, OP_CHMOD,
    OP_CHOWN, OP_UTIMENS, OP_SETXATTR, OP_GETXATTR, OP_LISTXATTR,
    OP_REMOVEXATTR, OP_FLOCK, OP_OFDLOCK, OP_MMAP, OP_READDIR, OP_READDIR_MUT,
    OP_SEEKDIR, OP_STATFS, OP_ACCESS, OP_STAT, OP_FSTAT, OP_TMPFILE,
    OP_USER_CREATE, OP_USER_WRITE, OP_USER_READ, OP_COUNT
};

static const char *op_names[OP_COUNT] = {
    "open", "close", "dup", "read", "pread", "readv", "write", "pwrite",
    "writev", "ftruncate", "truncate", "fallocate", "lseek", "fsync",
    "fdatasync", "fork+close", "fork+write", "renameat2", "link", "symlink",
    "mknod", "mkfifo", "unlink", "mkdir", "rmdir", "chmod", "chown",
    "utimensat", "setxattr", "getxattr", "listxattr", "removexattr", "flock",
    "ofd-lock", "mmap", "readdir", "readdir+change", "telldir/seekdir",
    "statfs", "access", "stat", "fstat", "open(O_TMPFILE)", "creat",
    "open+write+close", "open+read+close",
};

struct op {
    uint32_t idx;               /* index in the seed's generated sequence */
    uint8_t kind;
    uint8_t slot, slot2;        /* descriptor slots */
    uint8_t user;               /* 0 root, 1 uid 1000, 2 uid 1001 */
    uint8_t p1, p2;             /* path pool indexes */
    uint8_t sub;                /* a per-op choice (whence, xattr name...) */
    uint32_t flags;
    uint32_t mode;
    int64_t off;
    uint32_t len;
    uint32_t dseed;
};

/* The path pool: short names in a few directories, and corner cases. */
#define NPATH 24
static char *paths[NPATH];

static void paths_init(void)
{
    static const char *fixed[] = {
        "a", "b", "c", "d1", "d2", "d1/a", "d1/b", "d1/d3", "d1/d3/x",
        "d2/a", "d2/d4", NULL, NULL, "n\xff\xfe\x80", "sp ace", "a/x", NULL,
        NULL, NULL, "c\x01t", ".", "d1/..", "", "d2/d4/b",
    };
    for (int i = 0; i < NPATH; i++)
        paths[i] = fixed[i] ? strdup(fixed[i]) : NULL;
    char l255[256], l256[257];
    memset(l255, 'L', 255), l255[255] = 0;
    memset(l256, 'M', 256), l256[256] = 0;
    paths[11] = strdup(l255);
    paths[12] = strdup(l256);
    char *deep = calloc(1, PATH_MAX + 64), *deeper = calloc(1, PATH_MAX + 64);
    strcpy(deep, "d1");
    while (strlen(deep) + 6 < PATH_MAX - 12)
        strcat(deep, "/../d1");
    strcat(deep, "/a");                         /* < PATH_MAX: works */
    strcpy(deeper, deep);
    while (strlen(deeper) < PATH_MAX + 8)
        strcat(deeper, "/.");                   /* past PATH_MAX */
    paths[16] = deep;
    paths[17] = deeper;
    char *l = malloc(300);
    snprintf(l, 300, "d1/%s", l255);
    paths[18] = l;
}

static const char *path_show(const char *p, char *out, size_t n)
{
    size_t j = 0, len = strlen(p);
    if (len > 40) {
        snprintf(out, n, "<%zu bytes: %.12s...%s>", len, p, p + len - 8);
        return out;
    }
    for (size_t i = 0; i < len && j + 5 < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c >= 0x7f)
            j += (size_t)snprintf(out + j, n - j, "\\x%02x", c);
        else
            out[j++] = (char)c;
    }
    out[j] = 0;
    return out;
}

static const char *xattr_names[] = {
    "user.zkfs.data", "user.zkfs.children", "user.zkfs.name",
    "user.zkfs.owner", "user.zk.version", "user.zk.czxid",
    "user.zk.numChildren", "user.zk.dataLength", "user.fuzz", "user.x",
    "user.zkfsX", "user.zk", "trusted.fuzz", "user.L255", NULL,
};
#define NXATTR 14

static void xattr_name(int i, char *out)
{
    if (i == 13) {                  /* a 255-byte name (the limit) */
        strcpy(out, "user.");
        memset(out + 5, 'n', 250);
        out[255] = 0;
    } else {
        strcpy(out, xattr_names[i]);
    }
}

static const uint32_t sizes[] = {
    0, 1, 3, 7, 100, 511, 4095, 4096, 4097, 65539, 131072, 131075,
    DATA_MAX - 5, DATA_MAX, DATA_MAX + 1, DATA_MAX + 4096 + 3,
};
static const int64_t offsets[] = {
    0, 1, 3, 100, 4095, 4096, 65537, 131071, DATA_MAX - 3, DATA_MAX,
    DATA_MAX + 1, 2 * DATA_MAX + 5, -1,
};

static uint32_t pick_size(uint64_t *s)
{
    uint32_t i = rnd(s, 100);
    if (i < 70)
        return sizes[rnd(s, 9)];
    return sizes[rnd(s, sizeof(sizes) / sizeof(sizes[0]))];
}

static int64_t pick_off(uint64_t *s)
{
    uint32_t i = rnd(s, 100);
    if (i < 75)
        return offsets[rnd(s, 8)];
    return offsets[rnd(s, sizeof(offsets) / sizeof(offsets[0]))];
}

static uint8_t pick_path(uint64_t *s)
{
    uint32_t i = rnd(s, 100);
    if (i < 85)
        return (uint8_t)rnd(s, 11);
    if (i < 90)
        return 23;
    return (uint8_t)(11 + rnd(s, 12));
}

static uint32_t pick_open_flags(uint64_t *s)
{
    static const int acc[] = {O_RDONLY, O_WRONLY, O_RDWR, O_RDWR};
    uint32_t f = (uint32_t)acc[rnd(s, 4)];
    if (rnd(s, 2)) f |= O_CREAT;
    if (rnd(s, 5) == 0) f |= O_EXCL;
    if (rnd(s, 4) == 0) f |= O_TRUNC;
    if (rnd(s, 5) == 0) f |= O_APPEND;
    if (rnd(s, 12) == 0) f |= O_DIRECT;
    if (rnd(s, 12) == 0) f = O_PATH | (rnd(s, 2) ? O_DIRECTORY : 0);
    if (rnd(s, 15) == 0) f |= O_DIRECTORY;
    if (rnd(s, 15) == 0) f |= O_NOFOLLOW;
    return f;
}

static uint32_t pick_mode(uint64_t *s)
{
    static const uint32_t modes[] = {0644, 0600, 0666, 0444, 0755, 0700, 0,
                                     0777, 0640, 0604, 04755, 02775, 01777};
    return modes[rnd(s, sizeof(modes) / sizeof(modes[0]))];
}

static void gen_op(uint64_t *s, struct op *o)
{
    static const uint8_t weights[OP_COUNT] = {
        [OP_OPEN] = 14, [OP_CLOSE] = 8, [OP_DUP] = 3, [OP_READ] = 5,
        [OP_PREAD] = 4, [OP_READV] = 2, [OP_WRITE] = 8, [OP_PWRITE] = 6,
        [OP_WRITEV] = 2, [OP_FTRUNCATE] = 3, [OP_TRUNCATE] = 2,
        [OP_FALLOCATE] = 1, [OP_LSEEK] = 3, [OP_FSYNC] = 3,
        [OP_FDATASYNC] = 1, [OP_FORK_CLOSE] = 2, [OP_FORK_WRITE] = 2,
        [OP_RENAME] = 5, [OP_LINK] = 1, [OP_SYMLINK] = 1, [OP_MKNOD] = 2,
        [OP_MKFIFO] = 1, [OP_UNLINK] = 4, [OP_MKDIR] = 4, [OP_RMDIR] = 3,
        [OP_CHMOD] = 3, [OP_CHOWN] = 2, [OP_UTIMENS] = 1, [OP_SETXATTR] = 3,
        [OP_GETXATTR] = 3, [OP_LISTXATTR] = 2, [OP_REMOVEXATTR] = 2,
        [OP_FLOCK] = 2, [OP_OFDLOCK] = 2, [OP_MMAP] = 2, [OP_READDIR] = 3,
        [OP_READDIR_MUT] = 2, [OP_SEEKDIR] = 1, [OP_STATFS] = 1,
        [OP_ACCESS] = 2, [OP_STAT] = 4, [OP_FSTAT] = 3, [OP_TMPFILE] = 1,
        [OP_USER_CREATE] = 3, [OP_USER_WRITE] = 3, [OP_USER_READ] = 2,
    };
    static int total;
    if (!total)
        for (int i = 0; i < OP_COUNT; i++)
            total += weights[i];
    int r = (int)rnd(s, (uint32_t)total), k = 0;
    while (r >= weights[k])
        r -= weights[k++];
    memset(o, 0, sizeof(*o));
    o->kind = (uint8_t)k;
    o->slot = (uint8_t)rnd(s, NSLOT);
    o->slot2 = (uint8_t)rnd(s, NSLOT);
    o->p1 = pick_path(s);
    o->p2 = pick_path(s);
    o->len = pick_size(s);
    o->off = pick_off(s);
    o->dseed = (uint32_t)rng_next(s);
    o->mode = pick_mode(s);
    o->sub = (uint8_t)rnd(s, 256);
    o->flags = (uint32_t)rng_next(s);
    /* Path operations as another user now and then. */
    switch (k) {
    case OP_USER_CREATE: case OP_USER_WRITE: case OP_USER_READ:
        o->user = (uint8_t)(1 + rnd(s, 2));
        break;
    case OP_UNLINK: case OP_MKDIR: case OP_RMDIR: case OP_RENAME:
    case OP_CHMOD: case OP_CHOWN: case OP_UTIMENS: case OP_TRUNCATE:
    case OP_ACCESS: case OP_STAT: case OP_SETXATTR: case OP_GETXATTR:
    case OP_READDIR:
        o->user = rnd(s, 3) == 0 ? (uint8_t)(1 + rnd(s, 2)) : 0;
        break;
    }
    if (k == OP_OPEN)
        o->flags = pick_open_flags(s);
    if (k == OP_MKDIR || k == OP_USER_CREATE)
        o->mode &= 0777;
}

static void op_show(const struct op *o, char *out, size_t n)
{
    char a[80], b[80];
    path_show(paths[o->p1], a, sizeof(a));
    path_show(paths[o->p2], b, sizeof(b));
    snprintf(out, n,
             "#%-4u %-16s slot=%u slot2=%u user=%u path=\"%s\" path2=\"%s\" "
             "flags=0x%x mode=0%o off=%" PRId64 " len=%u sub=%u data=%u",
             o->idx, op_names[o->kind], o->slot, o->slot2, o->user, a, b, o->flags,
             o->mode, o->off, o->len, o->sub, o->dseed);
}

/* ------------------------------------------------------------------------ */
/* shared state between the supervisor, the worker and its children          */
/* ------------------------------------------------------------------------ */

struct res {                /* one side's outcome of a path operation */
    long ret;               /* >= 0, or -errno */
    long ret2, ret3;        /* a second and third step (write, close) */
    size_t n;               /* bytes in data */
    unsigned char data[70000];
};

struct shm {
    volatile long progress;         /* bumped by the worker at every op */
    volatile int cur;               /* index of the op running */
    volatile int failed;            /* 1 divergence, 2 dead mount/EIO */
    char msg[MSG_MAX];
    long dev_hits[DEV_COUNT];
    long ops_done;
    struct res res[2];              /* results of children (user ops) */
    long fork_rc[NSLOT + 1];        /* a forked child's close results */
};

static struct shm *shm;

struct desc {                       /* the model of an open file description */
    int refs;
    int kind;                       /* 0 file, 1 directory, 2 O_PATH */
    int acc, append, trunc, dirty, poisoned;
    unsigned char *buf;             /* loaded content, or pending appends */
    size_t len;
    int64_t pos;
};

struct slot {
    int used;
    int fd[2];
    int desc;
};

struct run {
    const struct op *ops;
    int nops;
    int dirfd[2];                   /* the work directories (O_PATH) */
    struct slot slot[NSLOT];
    struct desc desc[NDESC];
    int solo;
    int cur;
};

static int opt_solo, opt_rm_work, opt_verbose;

static long sysret(long r) { return r < 0 ? -errno : r; }

static const char *errname(long r)
{
    static char b[4][32];
    static int i;
    i = (i + 1) % 4;
    if (r >= 0)
        snprintf(b[i], sizeof(b[i]), "%ld", r);
    else
        snprintf(b[i], sizeof(b[i]), "%s", strerrorname_np((int)-r) ? strerrorname_np((int)-r) : "E?");
    return b[i];
}

/* Ends the worker with a divergence message. */
__attribute__((format(printf, 2, 3), noreturn))
static void diverge(struct run *R, const char *fmt, ...)
{
    va_list ap;
    char op[512];
    op_show(&R->ops[R->cur], op, sizeof(op));
    int n = snprintf(shm->msg, MSG_MAX, "op %d (%s): ", R->cur, op);
    va_start(ap, fmt);
    vsnprintf(shm->msg + n, MSG_MAX - (size_t)n, fmt, ap);
    va_end(ap);
    shm->failed = 1;
    _exit(1);
}

static void dev_hit(enum dev_id d) { shm->dev_hits[d]++; }

/* The zkfs side's result on its own: a dead mount or EIO always fails. */
static void check_z(struct run *R, long z, const char *what)
{
    if (z == -ENOTCONN || z == -ECONNABORTED || z == -EIO) {
        char op[512];
        op_show(&R->ops[R->cur], op, sizeof(op));
        snprintf(shm->msg, MSG_MAX, "op %d (%s): %s on zkfs: %s", R->cur,
                 op, what, errname(z));
        shm->failed = 2;
        _exit(1);
    }
}

/* Compares two results: equal, or a divergence. */
static void same(struct run *R, long z, long m, const char *what)
{
    check_z(R, z, what);
    if (R->solo || z == m)
        return;
    diverge(R, "%s: zkfs %s, model %s", what, errname(z), errname(m));
}

static void side_cd(struct run *R, int side)
{
    if (fchdir(R->dirfd[side]) != 0) {
        snprintf(shm->msg, MSG_MAX, "fchdir: %s", strerror(errno));
        shm->failed = 2;
        _exit(1);
    }
}

/* A child that shares the descriptor table (its exit closes nothing, so
 * no FLUSH commits anyone's buffer), for operations as another user. */
static pid_t fork_shared_files(void)
{
    return (pid_t)syscall(SYS_clone, CLONE_FILES | SIGCHLD, NULL, NULL, NULL, NULL);
}

static void become(int user)
{
    uid_t uid = user == 1 ? 1000 : 1001;
    gid_t gid = user == 1 ? 1000 : 1001;
    gid_t groups[1] = {user == 1 ? 1001 : 1000};    /* a supplementary group */
    if (setgroups(user == 1 ? 1 : 0, groups) || setresgid(gid, gid, gid) ||
        setresuid(uid, uid, uid))
        _exit(99);
}

/* ------------------------------------------------------------------------ */
/* the model of zkfs's open files                                            */
/* ------------------------------------------------------------------------ */

static size_t committed_size(int mfd)
{
    struct stat st;
    return fstat(mfd, &st) == 0 ? (size_t)st.st_size : 0;
}

static int reopen_ro(int fd)
{
    char p[64];
    snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
    return open(p, O_RDONLY);
}

/* Reads a whole file through a fresh read-only descriptor. */
static unsigned char *slurp(int fd, size_t *len)
{
    int r = reopen_ro(fd);
    size_t cap = 4096, n = 0;
    unsigned char *b = malloc(cap);
    if (r < 0) {
        *len = 0;
        return b;
    }
    for (;;) {
        if (n == cap)
            b = realloc(b, cap *= 2);
        ssize_t k = read(r, b + n, cap - n);
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    close(r);
    *len = n;
    return b;
}

/* Commits a description as zkfs's flush (all = 0) or fsync/release (all
 * = 1) does, writing the model's file. Returns the commit's result. */
static long model_commit(struct run *R, int d, int mfd, int all)
{
    struct desc *D = &R->desc[d];
    if (D->kind != 0 || (!D->poisoned && !D->dirty && !(all && D->trunc)))
        return 0;
    if (D->poisoned)
        return -EFBIG;
    struct stat st;
    if (fstat(mfd, &st) != 0 || st.st_nlink == 0) {
        dev_hit(DEV_CLOSE_GONE);
        return -ENOENT;
    }
    if (D->append && (D->trunc ? 0 : st.st_size) + (off_t)D->len > DATA_MAX) {
        dev_hit(DEV_EFBIG);         /* the store refuses the APPEND */
        return -EFBIG;
    }
    /* Through a descriptor of its own: mfd may be read-only (O_TRUNC). */
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", mfd);
    int w = open(proc, O_WRONLY | (D->append ? O_APPEND : 0));
    long rc = w < 0 ? -errno : 0;
    if (rc == 0 && D->append) {
        if (D->trunc && ftruncate(w, 0) != 0)   /* O_APPEND|O_TRUNC */
            rc = -errno;
        if (rc == 0 && D->len && write(w, D->buf, D->len) != (ssize_t)D->len)
            rc = -errno;
        D->len = 0;
        D->trunc = 0;
    } else if (rc == 0) {
        if (ftruncate(w, (off_t)D->len) != 0 ||
            (D->len && pwrite(w, D->buf, D->len, 0) != (ssize_t)D->len))
            rc = -errno;
        D->trunc = 0;
    }
    if (w >= 0)
        close(w);
    D->dirty = 0;
    return rc;
}

/* The view a read of description d sees: its buffer, or for an O_APPEND
 * one the committed file. Sets *tofree when allocated. */
static unsigned char *model_view(struct run *R, int d, int mfd, size_t *len,
                                 unsigned char **tofree)
{
    struct desc *D = &R->desc[d];
    *tofree = NULL;
    if (D->append) {
        if (D->len)
            dev_hit(DEV_APPEND_READ);
        *tofree = slurp(mfd, len);
        return *tofree;
    }
    *len = D->len;
    return D->buf;
}

static long model_read(struct run *R, int d, int mfd, unsigned char *out,
                       size_t size, int64_t off)
{
    struct desc *D = &R->desc[d];
    if (D->kind == 2)
        return -EBADF;
    if (D->acc == O_WRONLY)
        return -EBADF;
    if (D->kind == 1)
        return -EISDIR;
    if (off < -1)
        return -EINVAL;
    int64_t at = off == -1 ? D->pos : off;
    size_t len;
    unsigned char *tofree;
    unsigned char *v = model_view(R, d, mfd, &len, &tofree);
    size_t n = 0;
    if (at < (int64_t)len) {
        n = len - (size_t)at;
        if (n > size)
            n = size;
        memcpy(out, v + at, n);
    }
    free(tofree);
    if (off == -1)
        D->pos += (int64_t)n;
    return (long)n;
}

/* A write of size bytes at off (-1: the position); zret is what zkfs
 * answered, so that a write split by the kernel into requests, the last
 * ones failing with EFBIG, is modelled as the short write it is. */
static long model_write(struct run *R, int d, int mfd, const unsigned char *src,
                        size_t size, int64_t off, long zret)
{
    struct desc *D = &R->desc[d];
    if (D->kind == 2 || D->acc == O_RDONLY)
        return -EBADF;
    if (off < -1)
        return -EINVAL;
    if (size == 0)
        return 0;
    if (D->poisoned)
        return -EFBIG;
    size_t base = D->append ? committed_size(mfd) : 0;
    int64_t at = D->append ? (int64_t)D->len : off == -1 ? D->pos : off;
    if (at + (int64_t)size > DATA_MAX) {
        dev_hit(DEV_EFBIG);
        D->poisoned = 1;
        if (zret <= 0 || at + zret > DATA_MAX || zret >= (long)size)
            return -EFBIG;
        size = (size_t)zret;            /* the requests before the limit */
    }
    size_t end = (size_t)at + size;
    if (end > D->len) {
        D->buf = realloc(D->buf, end);
        memset(D->buf + D->len, 0, end - D->len);
        D->len = end;
    }
    memcpy(D->buf + at, src, size);
    D->dirty = 1;
    if (D->append && off == -1) /* resynchronised by op_write */
        D->pos = (int64_t)(base + D->len);
    else if (off == -1)
        D->pos = at + (int64_t)size;
    return (long)size;
}

static void desc_free(struct desc *D)
{
    free(D->buf);
    memset(D, 0, sizeof(*D));
}

/* ------------------------------------------------------------------------ */
/* descriptor operations                                                     */
/* ------------------------------------------------------------------------ */

#define P_CTL 19    /* the path with a control character */

static void model_unlink_any(struct run *R, const char *p)
{
    side_cd(R, M);
    if (unlink(p) != 0)
        rmdir(p);
}

static int desc_new(struct run *R)
{
    for (int d = 0; d < NDESC; d++)
        if (R->desc[d].refs == 0)
            return d;
    return -1;
}

/* close(): FLUSH commits a dirty buffer; the last close also releases,
 * which commits a truncation alone (O_TRUNC, nothing written). */
static void do_close(struct run *R, int s)
{
    struct slot *S = &R->slot[s];
    if (!S->used)
        return;
    struct desc *D = &R->desc[S->desc];
    long z = sysret(close(S->fd[Z]));
    long m = model_commit(R, S->desc, S->fd[M], 0);
    if (--D->refs == 0) {
        if (m == 0 && !D->poisoned && D->trunc && !D->dirty)
            model_commit(R, S->desc, S->fd[M], 1);
        desc_free(D);
    }
    close(S->fd[M]);
    S->used = 0;
    same(R, z, m, "close");
}

static void op_open(struct run *R, const struct op *o)
{
    struct slot *S = &R->slot[o->slot];
    do_close(R, o->slot);
    int d = desc_new(R);
    if (d < 0)
        return;
    int flags = (int)o->flags, acc = flags & O_ACCMODE;
    const char *p = paths[o->p1];
    side_cd(R, Z);
    long z = sysret(open(p, flags | O_CLOEXEC, o->mode));
    /* The model truncates at the commit, not at open (ATOMIC_O_TRUNC). */
    int mflags = flags;
    if (!(flags & O_PATH))
        mflags &= ~O_TRUNC;
    side_cd(R, M);
    struct stat st;
    int existed = lstat(p, &st) == 0;
    long m;
    if (existed && S_ISDIR(st.st_mode) && (flags & O_TRUNC) &&
        !(flags & O_PATH) && !((flags & O_CREAT) && (flags & O_EXCL)) &&
        !((flags & O_CREAT) && (flags & O_DIRECTORY)))   /* EINVAL first */
        m = -EISDIR;            /* O_TRUNC asks for write access */
    else
        m = sysret(open(p, mflags | O_CLOEXEC, o->mode));
    if (z >= 0 && m >= 0) {
        struct desc *D = &R->desc[d];
        fstat((int)m, &st);
        memset(D, 0, sizeof(*D));
        D->refs = 1;
        D->kind = (flags & O_PATH) ? 2 : S_ISDIR(st.st_mode) ? 1 : 0;
        D->acc = acc;
        D->append = acc != O_RDONLY && (flags & O_APPEND);
        if (D->append && (flags & O_TRUNC))
            D->trunc = existed;
        if (D->kind == 0 && !D->append) {
            if (flags & O_TRUNC) {
                D->trunc = existed;     /* a new node is empty already */
                D->buf = malloc(1);
            } else {
                D->buf = slurp((int)m, &D->len);
            }
        }
        S->used = 1;
        S->fd[Z] = (int)z;
        S->fd[M] = (int)m;
        S->desc = d;
        return;
    }
    if (z >= 0)
        close((int)z);
    if (m >= 0)
        close((int)m);
    if (z == -EINVAL && m >= 0 && o->p1 == P_CTL) {
        dev_hit(DEV_NAME_CTL);       /* created in the model only: undone */
        model_unlink_any(R, p);
        return;
    }
    same(R, z >= 0 ? 0 : z, m >= 0 ? 0 : m, "open");
}

static void op_dup(struct run *R, const struct op *o)
{
    struct slot *S = &R->slot[o->slot], *T = &R->slot[o->slot2];
    if (!S->used || T->used)
        return;
    long z = sysret(fcntl(S->fd[Z], F_DUPFD_CLOEXEC, 0));
    long m = sysret(fcntl(S->fd[M], F_DUPFD_CLOEXEC, 0));
    same(R, z >= 0 ? 0 : z, m >= 0 ? 0 : m, "dup");
    if (z < 0 || m < 0)
        return;
    T->used = 1;
    T->fd[Z] = (int)z;
    T->fd[M] = (int)m;
    T->desc = S->desc;
    R->desc[S->desc].refs++;
}

static void compare_data(struct run *R, long n, const unsigned char *z,
                         const unsigned char *m, const char *what)
{
    if (R->solo || n <= 0 || memcmp(z, m, (size_t)n) == 0)
        return;
    long i = 0;
    while (z[i] == m[i])
        i++;
    diverge(R, "%s: %ld bytes differ from byte %ld (zkfs 0x%02x, model 0x%02x)",
            what, n, i, z[i], m[i]);
}

static void op_read(struct run *R, const struct op *o)
{
    struct slot *S = &R->slot[o->slot];
    if (!S->used)
        return;
    size_t size = o->len > BIG ? BIG : o->len;
    int64_t off = o->kind == OP_PREAD ? o->off : -1;
    long z;
    if (o->kind == OP_READV) {
        size_t a = size / 3, b = size / 3;
        struct iovec iov[3] = {{readbuf[Z], a}, {readbuf[Z] + a, b},
                               {readbuf[Z] + a + b, size - a - b}};
        z = sysret(readv(S->fd[Z], iov, 3));
    } else if (off == -1) {
        z = sysret(read(S->fd[Z], readbuf[Z], size));
    } else {
        z = sysret(pread(S->fd[Z], readbuf[Z], size, off));
    }
    long m = model_read(R, S->desc, S->fd[M], readbuf[M], size, off);
    if (o->kind == OP_READV && size == 0 && m == -EISDIR)
        m = 0;                      /* an empty readv never reaches the fs */
    same(R, z, m, op_names[o->kind]);
    compare_data(R, z, readbuf[Z], readbuf[M], op_names[o->kind]);
}

static void op_write(struct run *R, const struct op *o)
{
    struct slot *S = &R->slot[o->slot];
    if (!S->used)
        return;
    size_t size = o->len;
    int64_t off = o->kind == OP_PWRITE ? o->off : -1;
    fill_data(o->dseed, size);
    long z;
    if (o->kind == OP_WRITEV) {
        size_t a = size / 2, b = size / 4;
        struct iovec iov[3] = {{databuf, a}, {databuf + a, b},
                               {databuf + a + b, size - a - b}};
        z = sysret(writev(S->fd[Z], iov, 3));
    } else if (off == -1) {
        z = sysret(write(S->fd[Z], databuf, size));
    } else {
        z = sysret(pwrite(S->fd[Z], databuf, size, off));
    }
    long m = model_write(R, S->desc, S->fd[M], databuf, size, off, z);
    same(R, z, m, op_names[o->kind]);
    struct desc *D = &R->desc[S->desc];
    if (D->append && z > 0) {
        /* The offset after an O_APPEND write is the kernel's size plus
         * the write, and that size may or may not count earlier pending
         * appends (docs/filesystem.md): take zkfs's. */
        int64_t zp = lseek(S->fd[Z], 0, SEEK_CUR);
        if (zp != D->pos)
            dev_hit(DEV_APPEND_POS);
        D->pos = zp;
    }
}

static void op_ftruncate(struct run *R, const struct op *o)
{
    struct slot *S = &R->slot[o->slot];
    if (!S->used)
        return;
    struct desc *D = &R->desc[S->desc];
    int64_t len = o->off;
    long z = sysret(ftruncate(S->fd[Z], len));
    long m;
    struct stat mst;
    int gone = fstat(S->fd[M], &mst) == 0 && mst.st_nlink == 0;
    if (len < 0)                    /* checked before the descriptor */
        m = -EINVAL;
    else if (D->kind == 2)
        m = -EBADF;
    else if (D->kind == 1 || D->acc == O_RDONLY)
        m = -EINVAL;
    else if (D->append && gone)     /* committed at once: no node */
        m = -ENOENT, dev_hit(DEV_CLOSE_GONE);
    else if (len > DATA_MAX)
        m = -EFBIG, dev_hit(DEV_EFBIG);
    else if (D->append) {
        struct stat st;                         /* committed at once */
        if (fstat(S->fd[M], &st) == 0 && st.st_nlink == 0)
            m = -ENOENT, dev_hit(DEV_CLOSE_GONE);
        else
            m = sysret(ftruncate(S->fd[M], len));
    }
    else {
        if ((size_t)len > D->len) {
            D->buf = realloc(D->buf, (size_t)len);
            memset(D->buf + D->len, 0, (size_t)len - D->len);
        }
        D->len = (size_t)len;
        D->dirty = 1;
        m = 0;
    }
    same(R, z, m, "ftruncate");
}

static void op_fallocate(struct run *R, const struct op *o)
{
    struct slot *S = &R->slot[o->slot];
    if (!S->used)
        return;
    struct desc *D = &R->desc[S->desc];
    int mode = (o->sub & 1) ? FALLOC_FL_KEEP_SIZE : 0;
    int64_t len = o->len;
    long z = sysret(fallocate(S->fd[Z], mode, o->off, len));
    long m;
    if (D->kind == 2)
        m = -EBADF;
    else if (o->off < 0 || len <= 0)
        m = -EINVAL;
    else if (D->acc == O_RDONLY)
        m = -EBADF;
    else
        m = -EOPNOTSUPP, dev_hit(DEV_FALLOCATE);
    same(R, z, m, "fallocate");
}

static void op_lseek(struct run *R, const struct op *o)
{
    struct slot *S = &R->slot[o->slot];
    if (!S->used || R->desc[S->desc].kind == 1)
        return;
    struct desc *D = &R->desc[S->desc];
    static const int wh[] = {SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE};
    int whence = wh[o->sub % 5];
    int64_t off = (o->sub & 0x80) ? -o->off : o->off;
    long z = sysret(lseek(S->fd[Z], off, whence));
    /* A descriptor with unsaved writes seeks in its own buffer (zkfs
     * answers the kernel's GETATTR through that descriptor with it). */
    int64_t size = D->dirty && !D->append && D->kind == 0
                       ? (int64_t)D->len : (int64_t)committed_size(S->fd[M]);
    int64_t r;
    long m;
    if (D->kind == 2) {
        m = -EBADF;
    } else {
        switch (whence) {
        case SEEK_SET: r = off; break;
        case SEEK_CUR: r = D->pos + off; break;
        case SEEK_END: r = size + off; break;
        default:
            r = off < 0 || off >= size ? -1 : whence == SEEK_DATA ? off : size;
            break;
        }
        if (whence >= SEEK_DATA && r < 0)
            m = -ENXIO;
        else if (r < 0)
            m = -EINVAL;
        else
            m = r, D->pos = r;
    }
    struct stat mst;
    if (z != m && whence >= SEEK_END && fstat(S->fd[M], &mst) == 0 &&
        mst.st_nlink == 0) {
        dev_hit(DEV_FSTAT_GONE);    /* zkfs's size is the one at the delete */
        if (z >= 0)
            D->pos = z;
        return;
    }
    same(R, z, m, "lseek");
}

static void op_fsync(struct run *R, const struct op *o)
{
    struct slot *S = &R->slot[o->slot];
    if (!S->used)
        return;
    long z = sysret(o->kind == OP_FSYNC ? fsync(S->fd[Z]) : fdatasync(S->fd[Z]));
    long m = R->desc[S->desc].kind == 2 ? -EBADF
             : model_commit(R, S->desc, S->fd[M], 1);
    same(R, z, m, op_names[o->kind]);
}

/* fork(): the child writes (OP_FORK_WRITE) and then closes every
 * descriptor in slot order (each close FLUSHes its description). */
static void op_fork(struct run *R, const struct op *o)
{
    struct slot *S = &R->slot[o->slot];
    size_t size = o->len % 70000;
    fill_data(o->dseed, size);
    pid_t pid = fork();
    if (pid == 0) {
        if (o->kind == OP_FORK_WRITE && S->used)
            shm->fork_rc[NSLOT] = sysret(write(S->fd[Z], databuf, size));
        for (int s = 0; s < NSLOT; s++)
            if (R->slot[s].used)
                shm->fork_rc[s] = sysret(close(R->slot[s].fd[Z]));
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    if (o->kind == OP_FORK_WRITE && S->used) {
        long m = model_write(R, S->desc, S->fd[M], databuf, size, -1,
                             shm->fork_rc[NSLOT]);
        same(R, shm->fork_rc[NSLOT], m, "write in a forked child");
        if (R->desc[S->desc].append && m > 0) {
            dev_hit(DEV_APPEND_POS);    /* as in op_write */
            R->desc[S->desc].pos = lseek(S->fd[Z], 0, SEEK_CUR);
        }
    }
    for (int s = 0; s < NSLOT; s++) {
        if (!R->slot[s].used)
            continue;
        long m = model_commit(R, R->slot[s].desc, R->slot[s].fd[M], 0);
        same(R, shm->fork_rc[s], m, "close in a forked child");
    }
}

static void op_fstat(struct run *R, const struct op *o);

static sigjmp_buf bus_jmp;

static void on_bus(int sig)
{
    (void)sig;
    signal(SIGBUS, SIG_DFL);
    siglongjmp(bus_jmp, 1);
}

/* memcmp of a mapping: -1 if reading it raised SIGBUS. */
static int guarded_cmp(const void *map, const void *want, size_t n)
{
    if (sigsetjmp(bus_jmp, 1) != 0)
        return -1;
    signal(SIGBUS, on_bus);
    int differ = memcmp(map, want, n) != 0;
    signal(SIGBUS, SIG_DFL);
    return differ;
}

static void op_mmap(struct run *R, const struct op *o)
{
    struct slot *S = &R->slot[o->slot];
    if (!S->used)
        return;
    int shared = o->sub & 1;
    size_t len = o->len ? o->len : 1;
    int fl = shared ? MAP_SHARED : MAP_PRIVATE;
    void *zp = mmap(NULL, len, PROT_READ, fl, S->fd[Z], 0);
    long z = zp == MAP_FAILED ? -errno : 0;
    void *mp = mmap(NULL, len, PROT_READ, fl, S->fd[M], 0);
    long m = mp == MAP_FAILED ? -errno : 0;
    if (z == -ENODEV && m == 0 && shared) {
        dev_hit(DEV_MMAP_SHARED);
        m = z;
    }
    struct stat mst;
    if (z == 0 && m == 0 && R->desc[S->desc].kind == 0 &&
        fstat(S->fd[M], &mst) == 0 && mst.st_nlink == 0) {
        dev_hit(DEV_FSTAT_GONE);    /* zkfs's size is the one at the delete */
    } else if (z == 0 && m == 0 && R->desc[S->desc].kind == 0) {
        /* Only bytes inside the committed size (pages past it fault). */
        size_t vlen, n = committed_size(S->fd[M]);
        unsigned char *tofree;
        unsigned char *v = model_view(R, S->desc, S->fd[M], &vlen, &tofree);
        if (n > vlen) n = vlen;
        if (n > len) n = len;
        struct stat zst;
        fstat(S->fd[Z], &zst);
        int c = guarded_cmp(zp, v, n);
        if (c == 1 && !R->solo)
            diverge(R, "mmap: the mapped bytes differ from the description's");
        if (c < 0 && !R->solo) {
            diverge(R, "mmap: SIGBUS reading %zu bytes of the zkfs mapping "
                    "(zkfs fstat size %ld, model committed size %zu)", n,
                    (long)zst.st_size, committed_size(S->fd[M]));
        }
        free(tofree);
    }
    if (zp != MAP_FAILED) munmap(zp, len);
    if (mp != MAP_FAILED) munmap(mp, len);
    same(R, z, m, "mmap");
}

static void op_flock(struct run *R, const struct op *o)
{
    struct slot *S = &R->slot[o->slot];
    if (!S->used)
        return;
    static const int ops[] = {LOCK_SH, LOCK_EX, LOCK_UN};
    int how = ops[o->sub % 3] | LOCK_NB;
    long z = sysret(flock(S->fd[Z], how));
    long m = sysret(flock(S->fd[M], how));
    same(R, z, m, "flock");
}

static void op_ofdlock(struct run *R, const struct op *o)
{
    struct slot *S = &R->slot[o->slot];
    if (!S->used)
        return;
    static const short types[] = {F_RDLCK, F_WRLCK, F_UNLCK};
    int cmd = (o->sub & 8) ? F_OFD_GETLK : F_OFD_SETLK;
    struct flock fl[2];
    for (int i = 0; i < 2; i++) {
        memset(&fl[i], 0, sizeof(fl[i]));
        fl[i].l_type = types[o->sub % 3];
        fl[i].l_whence = SEEK_SET;
        fl[i].l_start = o->off < 0 ? 0 : o->off % 8192;
        fl[i].l_len = o->len % 5000;
        if (cmd == F_OFD_GETLK && fl[i].l_type == F_UNLCK)
            fl[i].l_type = F_WRLCK;
    }
    long z = sysret(fcntl(S->fd[Z], cmd, &fl[Z]));
    long m = sysret(fcntl(S->fd[M], cmd, &fl[M]));
    same(R, z, m, "fcntl lock");
    if (z == 0 && cmd == F_OFD_GETLK && !R->solo &&
        (fl[Z].l_type != fl[M].l_type ||
         (fl[Z].l_type != F_UNLCK && (fl[Z].l_start != fl[M].l_start ||
                                      fl[Z].l_len != fl[M].l_len))))
        diverge(R, "F_OFD_GETLK: zkfs type %d %ld+%ld, model type %d %ld+%ld",
                fl[Z].l_type, (long)fl[Z].l_start, (long)fl[Z].l_len,
                fl[M].l_type, (long)fl[M].l_start, (long)fl[M].l_len);
}

/* ------------------------------------------------------------------------ */
/* stat and listings                                                         */
/* ------------------------------------------------------------------------ */

static void compare_stat(struct run *R, const struct stat *z,
                         const struct stat *m, const char *what)
{
    if (R->solo)
        return;
    if (S_ISREG(z->st_mode) && z->st_mode != m->st_mode &&
        (z->st_mode & ~(mode_t)(S_ISUID | S_ISGID)) == m->st_mode)
        dev_hit(DEV_SUID_AT_COMMIT);
    else if ((z->st_mode & S_IFMT) != (m->st_mode & S_IFMT) ||
        (z->st_mode & 07777) != (m->st_mode & 07777))
        diverge(R, "%s: mode zkfs 0%o, model 0%o", what, z->st_mode, m->st_mode);
    if (z->st_uid != m->st_uid || z->st_gid != m->st_gid)
        diverge(R, "%s: owner zkfs %u:%u, model %u:%u", what, z->st_uid,
                z->st_gid, m->st_uid, m->st_gid);
    if (S_ISDIR(z->st_mode)) {
        if (z->st_nlink != m->st_nlink)
            dev_hit(DEV_DIR_NLINK);
        if (z->st_size != m->st_size)
            dev_hit(DEV_DIR_SIZE);
        return;
    }
    if (z->st_size != m->st_size)
        diverge(R, "%s: size zkfs %ld, model %ld", what, (long)z->st_size,
                (long)m->st_size);
    if (z->st_nlink != m->st_nlink)
        diverge(R, "%s: nlink zkfs %ld, model %ld", what, (long)z->st_nlink,
                (long)m->st_nlink);
}

static void op_fstat(struct run *R, const struct op *o)
{
    struct slot *S = &R->slot[o->slot];
    if (!S->used)
        return;
    struct stat st[2];
    long z = sysret(fstat(S->fd[Z], &st[Z]));
    long m = sysret(fstat(S->fd[M], &st[M]));
    same(R, z, m, "fstat");
    if (z == 0 && st[M].st_nlink == 0 && st[Z].st_nlink == 0 &&
        (st[Z].st_size != st[M].st_size || st[Z].st_mode != st[M].st_mode ||
         st[Z].st_uid != st[M].st_uid || st[Z].st_gid != st[M].st_gid)) {
        dev_hit(DEV_FSTAT_GONE);    /* zkfs: the stat as of the delete */
        if ((st[Z].st_mode & S_IFMT) == (st[M].st_mode & S_IFMT))
            st[Z] = st[M];
    }
    if (z == 0)
        compare_stat(R, &st[Z], &st[M], "fstat");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in directory dfd (not . and ..), sorted, as one string of
 * NUL-terminated names in out; returns the count or -errno. */
static long list_dir(DIR *dir, char *out, size_t cap, size_t *used)
{
    char *names[LIST_MAX];
    int n = 0;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(dir)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (n < LIST_MAX)
            names[n++] = strdup(e->d_name);
    }
    long rc = errno ? -errno : n;
    qsort(names, (size_t)n, sizeof(names[0]), cmp_str);
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(names[i]) + 1;
        if (k + l <= cap) {
            memcpy(out + k, names[i], l);
            k += l;
        }
        free(names[i]);
    }
    *used = k;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* path operations (run in the side's work directory, maybe as a user)       */
/* ------------------------------------------------------------------------ */

static const size_t xsizes[] = {0, 1, 10, 255, 4096, 65536, 65537};

static void path_exec(const struct op *o, int side, struct res *r)
{
    const char *p = paths[o->p1], *q = paths[o->p2];
    char xn[300];
    r->ret = r->ret2 = r->ret3 = 0;
    r->n = 0;
    switch (o->kind) {
    case OP_TRUNCATE:
        if (side == M && o->off > DATA_MAX) {
            /* zkfs refuses past 1 MiB (EFBIG) after the usual checks. */
            int fd = open(p, O_WRONLY);
            r->ret = fd < 0 ? -errno : -EFBIG;
            if (fd >= 0) close(fd);
        } else {
            r->ret = sysret(truncate(p, o->off));
        }
        break;
    case OP_RENAME: {
        static const unsigned fl[] = {0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE};
        r->ret = sysret(renameat2(AT_FDCWD, p, AT_FDCWD, q, fl[o->sub % 4]));
        break;
    }
    case OP_LINK: r->ret = sysret(link(p, q)); break;
    case OP_SYMLINK: r->ret = sysret(symlink(q, p)); break;
    case OP_MKNOD: {
        static const mode_t k[] = {S_IFREG, S_IFCHR, S_IFBLK, S_IFSOCK, S_IFIFO};
        r->ret = sysret(mknod(p, k[o->sub % 5] | (o->mode & 0777), makedev(1, 3)));
        break;
    }
    case OP_MKFIFO: r->ret = sysret(mkfifo(p, o->mode & 0777)); break;
    case OP_UNLINK: r->ret = sysret(unlink(p)); break;
    case OP_MKDIR: r->ret = sysret(mkdir(p, o->mode)); break;
    case OP_RMDIR: r->ret = sysret(rmdir(p)); break;
    case OP_CHMOD: r->ret = sysret(chmod(p, o->mode)); break;
    case OP_CHOWN: {
        static const int ids[] = {0, 1000, 1001, -1};
        r->ret = sysret(chown(p, (uid_t)ids[o->sub % 4], (gid_t)ids[(o->sub >> 2) % 4]));
        break;
    }
    case OP_UTIMENS: {
        struct timespec ts[2] = {{1000000, 5}, {2000000, UTIME_NOW}};
        if (o->sub & 1) ts[1].tv_nsec = 7;
        r->ret = sysret(utimensat(AT_FDCWD, p, (o->sub & 2) ? NULL : ts, 0));
        break;
    }
    case OP_SETXATTR: {
        xattr_name(o->sub % NXATTR, xn);
        size_t n = xsizes[o->len % 7];
        fill_data(o->dseed, n);
        static const int xf[] = {0, 0, XATTR_CREATE, XATTR_REPLACE};
        r->ret = sysret(setxattr(p, xn, databuf, n, xf[(o->sub >> 4) % 4]));
        break;
    }
    case OP_GETXATTR:
        xattr_name(o->sub % NXATTR, xn);
        r->ret = sysret(getxattr(p, xn, r->data, (o->sub & 0x80) ? 0 : 65536));
        r->n = r->ret > 0 && !(o->sub & 0x80) ? (size_t)r->ret : 0;
        break;
    case OP_LISTXATTR:
        r->ret = sysret(listxattr(p, (char *)r->data, sizeof(r->data)));
        r->n = r->ret > 0 ? (size_t)r->ret : 0;
        break;
    case OP_REMOVEXATTR:
        xattr_name(o->sub % NXATTR, xn);
        r->ret = sysret(removexattr(p, xn));
        break;
    case OP_READDIR: {
        int fd = open(p, O_RDONLY | O_DIRECTORY);
        if (fd < 0) {
            r->ret = -errno;
            break;
        }
        DIR *d = fdopendir(fd);
        r->ret = list_dir(d, (char *)r->data, sizeof(r->data), &r->n);
        closedir(d);
        break;
    }
    case OP_STATFS: {
        struct statfs sf;
        r->ret = sysret(statfs(p, &sf));
        if (r->ret == 0)
            r->ret2 = sf.f_namelen;
        break;
    }
    case OP_ACCESS:
        r->ret = sysret(faccessat(AT_FDCWD, p, o->mode & 7,
                                  (o->sub & 1) ? AT_EACCESS : 0));
        break;
    case OP_STAT: {
        struct stat st;
        r->ret = sysret(lstat(p, &st));
        memcpy(r->data, &st, sizeof(st));
        r->n = sizeof(st);
        break;
    }
    case OP_TMPFILE: {
        int fd = open(p, O_TMPFILE | O_RDWR, 0600);
        r->ret = fd < 0 ? -errno : 0;
        if (fd >= 0) {
            r->ret2 = sysret(write(fd, "tmp", 3));
            r->ret3 = sysret(close(fd));
        }
        break;
    }
    case OP_USER_CREATE: {
        int fl = O_CREAT | O_WRONLY | ((o->sub & 1) ? O_EXCL : 0) |
                 ((o->sub & 2) ? O_TRUNC : 0);
        int fd = open(p, fl, o->mode);
        r->ret = fd < 0 ? -errno : 0;
        if (fd >= 0)
            r->ret3 = sysret(close(fd));
        break;
    }
    case OP_USER_WRITE: {
        int fd = open(p, O_WRONLY | ((o->sub & 1) ? O_APPEND : 0));
        r->ret = fd < 0 ? -errno : 0;
        if (fd >= 0) {
            size_t n = o->len % 300;
            struct stat st;
            fill_data(o->dseed, n);
            if (side == M && (o->sub & 1) && fstat(fd, &st) == 0 &&
                st.st_size + (off_t)n > DATA_MAX) {
                r->ret2 = (long)n;      /* the store refuses the APPEND */
                r->ret3 = -EFBIG;
                close(fd);
                break;
            }
            r->ret2 = sysret(pwrite(fd, databuf, n, (o->sub >> 1) % 64));
            r->ret3 = sysret(close(fd));
        }
        break;
    }
    case OP_USER_READ: {
        int fd = open(p, O_RDONLY);
        r->ret = fd < 0 ? -errno : 0;
        if (fd >= 0) {
            r->ret2 = sysret(read(fd, r->data, 4096));
            r->n = r->ret2 > 0 ? (size_t)r->ret2 : 0;
            r->ret3 = sysret(close(fd));
        }
        break;
    }
    default:
        break;
    }
}

/* Runs a path operation on one side, as root or in a child as a user. */
static void path_run(struct run *R, const struct op *o, int side, struct res *r)
{
    side_cd(R, side);
    if (!o->user) {
        path_exec(o, side, r);
        return;
    }
    pid_t pid = fork_shared_files();
    if (pid == 0) {
        become(o->user);
        path_exec(o, side, &shm->res[side]);
        _exit(0);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
        WEXITSTATUS(st) != 0)
        diverge(R, "a child running as user %d failed (status 0x%x)", o->user, st);
    memcpy(r, &shm->res[side], offsetof(struct res, data) + shm->res[side].n);
}

static int is_zk_xattr(const char *n) { return strncmp(n, "user.zk", 7) == 0; }

/* Filters a listxattr answer to the names both sides may hold, sorted. */
static size_t xattr_filter(const struct res *r, char *out)
{
    char *names[64];
    int k = 0;
    for (size_t i = 0; i < r->n && k < 64; i += strlen((char *)r->data + i) + 1) {
        const char *n = (const char *)r->data + i;
        if (!is_zk_xattr(n) && strncmp(n, "security.", 9) != 0)
            names[k++] = (char *)n;
    }
    qsort(names, (size_t)k, sizeof(names[0]), cmp_str);
    size_t len = 0;
    for (int i = 0; i < k; i++)
        len += (size_t)sprintf(out + len, "%s,", names[i]);
    out[len] = 0;
    return len;
}


/* Creations and renames zkfs refuses where tmpfs succeeds: allowed, and
 * undone in the model. Returns 1 if it was one. */
static int namespace_deviation(struct run *R, const struct op *o, long z, long m)
{
    const char *p = paths[o->p1], *q = paths[o->p2];
    int k = o->kind;
    if (m != 0)
        return 0;
    if (z == -EPERM && (k == OP_LINK || k == OP_SYMLINK || k == OP_MKFIFO ||
                        (k == OP_MKNOD && o->sub % 5 != 0))) {
        dev_hit(k == OP_LINK ? DEV_LINK : k == OP_SYMLINK ? DEV_SYMLINK
                                                         : DEV_SPECIAL);
        model_unlink_any(R, k == OP_LINK ? q : p);
        return 1;
    }
    if (z == -EINVAL && k == OP_RENAME && o->sub % 4 == 3) {
        dev_hit(DEV_EXCHANGE);
        side_cd(R, M);
        renameat2(AT_FDCWD, p, AT_FDCWD, q, RENAME_EXCHANGE);
        return 1;
    }
    if (z == -EINVAL && k == OP_RENAME && o->p2 == P_CTL) {
        dev_hit(DEV_NAME_CTL);
        side_cd(R, M);
        rename(q, p);
        return 1;
    }
    if (z == -EINVAL && o->p1 == P_CTL &&
        (k == OP_MKDIR || k == OP_MKNOD || k == OP_USER_CREATE)) {
        dev_hit(DEV_NAME_CTL);
        model_unlink_any(R, p);
        return 1;
    }
    if (z == -EOPNOTSUPP && k == OP_TMPFILE) {
        dev_hit(DEV_TMPFILE);
        return 1;
    }
    return 0;
}

/* set/get/removexattr of zkfs's names and of names zkfs refuses: returns 1
 * if the difference was an allowed one (the model never keeps them). */
static int xattr_deviation(struct run *R, const struct op *o, struct res *r)
{
    const char *p = paths[o->p1];
    long z = r[Z].ret, m = r[M].ret;
    int xi = o->sub % NXATTR, xkind = xi <= 3 ? 1 : xi <= 7 ? 2 : 3;
    char xn[300];
    if (o->kind != OP_SETXATTR && o->kind != OP_REMOVEXATTR &&
        o->kind != OP_GETXATTR)
        return 0;
    xattr_name(xi, xn);
    if (xkind == 1) {               /* user.zkfs.*: not compared */
        if (z != m)
            dev_hit(DEV_XATTR_ZKFS);
        side_cd(R, M);
        removexattr(p, xn);
        if (o->kind == OP_SETXATTR && z == 0 && xi == 0) {
            size_t n = xsizes[o->len % 7];
            fill_data(o->dseed, n);     /* a user's child set it */
            side_cd(R, Z);
            long g = sysret(getxattr(p, xn, r[Z].data, sizeof(r[Z].data)));
            if (g != (long)n || memcmp(r[Z].data, databuf, n) != 0)
                diverge(R, "user.zkfs.data reads back %s bytes after a set of %zu",
                        errname(g), n);
        }
        return 1;
    }
    int want = xkind == 2 ? EPERM : ENOTSUP;
    if (o->kind == OP_SETXATTR && z == -want && (m == 0 || m == -ENODATA)) {
        dev_hit(xkind == 2 ? DEV_XATTR_ZK : DEV_XATTR_OTHER);
        side_cd(R, M);
        removexattr(p, xn);
        return 1;
    }
    if (xkind == 2 && z != m) {     /* user.zk.*: decimal, read-only */
        dev_hit(DEV_XATTR_ZK);
        if (o->kind == OP_GETXATTR && z > 0 && !(o->sub & 0x80))
            for (long i = 0; i < z; i++)
                if (r[Z].data[i] < '0' || r[Z].data[i] > '9')
                    diverge(R, "%s is not a decimal number", xn);
        return 1;
    }
    return 0;
}

static void op_path(struct run *R, const struct op *o)
{
    static struct res r[2];
    char what[64];
    snprintf(what, sizeof(what), "%s%s", op_names[o->kind],
             o->user ? " (as a user)" : "");
    path_run(R, o, Z, &r[Z]);
    if (R->solo) {
        check_z(R, r[Z].ret, what);
        return;
    }
    path_run(R, o, M, &r[M]);
    long z = r[Z].ret, m = r[M].ret;
    if (namespace_deviation(R, o, z, m) || xattr_deviation(R, o, r))
        return;
    if (o->kind == OP_LISTXATTR && z >= 0 && m >= 0)
        z = m;                  /* the lengths differ by user.zk.*: below */
    same(R, z, m, what);
    if (o->kind == OP_UTIMENS && z == 0)
        dev_hit(DEV_TIMES);         /* accepted; times are never compared */
    same(R, r[Z].ret2, r[M].ret2, what);
    same(R, r[Z].ret3, r[M].ret3, what);
    switch (o->kind) {
    case OP_STAT:
        if (z == 0)
            compare_stat(R, (struct stat *)r[Z].data, (struct stat *)r[M].data, what);
        break;
    case OP_LISTXATTR: {
        static char a[70000], b[70000];
        xattr_filter(&r[Z], a);
        xattr_filter(&r[M], b);
        if (strcmp(a, b) != 0)
            diverge(R, "listxattr: zkfs [%.200s], model [%.200s]", a, b);
        break;
    }
    case OP_READDIR:
        if (r[Z].n != r[M].n || memcmp(r[Z].data, r[M].data, r[Z].n) != 0)
            diverge(R, "readdir: the listings differ (%zu and %zu bytes)",
                    r[Z].n, r[M].n);
        break;
    case OP_GETXATTR: case OP_USER_READ:
        if (r[Z].n != r[M].n)
            diverge(R, "%s: %zu bytes on zkfs, %zu in the model", what, r[Z].n, r[M].n);
        compare_data(R, (long)r[Z].n, r[Z].data, r[M].data, what);
        break;
    default:
        break;
    }
}

/* readdir while the directory changes: names present before and after
 * must each appear exactly once; the change itself is compared. */
static long readdir_changing(struct run *R, const struct op *o, int side,
                             long *change)
{
    const char *p = paths[o->p1];
    char name[16];
    snprintf(name, sizeof(name), "m%d", o->sub % 4);
    side_cd(R, side);
    int fd = open(p, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -errno;
    int dfd = dup(fd);
    DIR *d = fdopendir(fd);
    char *seen[LIST_MAX];
    int n = 0;
    struct dirent *e;
    for (int i = 0; i < 3 && (e = readdir(d)) != NULL; i++)
        seen[n++] = strdup(e->d_name);
    if (o->sub & 0x10) {
        *change = sysret(unlinkat(dfd, name, 0));
    } else {
        int f = openat(dfd, name, O_CREAT | O_EXCL | O_WRONLY, 0644);
        *change = f < 0 ? -errno : 0;
        if (f >= 0)
            *change = sysret(close(f));
    }
    while ((e = readdir(d)) != NULL && n < LIST_MAX)
        seen[n++] = strdup(e->d_name);
    /* The stable names: listed after the change, not the changed one.
     * (In --solo mode another fuzzer may have removed the directory by
     * now: then its error is the answer.) */
    int afd = openat(dfd, ".", O_RDONLY | O_DIRECTORY);
    DIR *after = afd >= 0 ? fdopendir(afd) : NULL;
    long bad = after ? 0 : -errno;
    if (!after && afd >= 0)
        close(afd);
    while (after && (e = readdir(after)) != NULL) {
        if (!strcmp(e->d_name, name))
            continue;
        int c = 0;
        for (int i = 0; i < n; i++)
            c += !strcmp(seen[i], e->d_name);
        if (c != 1)
            bad = c + 1;
    }
    if (after)
        closedir(after);
    for (int i = 0; i < n; i++)
        free(seen[i]);
    closedir(d);
    close(dfd);
    return bad < 0 ? bad : bad ? -1000 - bad : 0;
}

static void op_readdir_mut(struct run *R, const struct op *o)
{
    long cz = 0, cm = 0;
    long z = readdir_changing(R, o, Z, &cz);
    if (z <= -1000 && !R->solo)
        diverge(R, "readdir while the directory changed: a stable name seen %ld times",
                -z - 1001);
    if (R->solo) {
        check_z(R, z, "readdir");
        check_z(R, cz, "change during readdir");
        return;
    }
    long m = readdir_changing(R, o, M, &cm);
    same(R, z, m, "opendir");
    same(R, cz, cm, "change during readdir");
}

/* telldir/seekdir: reading on from a telldir() position after seekdir()
 * gives the same names as the first time. */
static long seekdir_check(struct run *R, const struct op *o, int side)
{
    side_cd(R, side);
    int fd = open(paths[o->p1], O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    struct dirent *e;
    for (int i = 0; i < o->sub % 5 && readdir(d); i++)
        ;
    long pos = telldir(d);
    static char a[65536], b[65536];
    size_t na = 0, nb = 0;
    while ((e = readdir(d)) != NULL && na + 300 < sizeof(a))
        na += (size_t)sprintf(a + na, "%s/", e->d_name);
    seekdir(d, pos);
    while ((e = readdir(d)) != NULL && nb + 300 < sizeof(b))
        nb += (size_t)sprintf(b + nb, "%s/", e->d_name);
    closedir(d);
    return na == nb && memcmp(a, b, na) == 0 ? 0 : -2000;
}

static void op_seekdir(struct run *R, const struct op *o)
{
    long z = seekdir_check(R, o, Z);
    if (z == -2000 && !R->solo)
        diverge(R, "seekdir(telldir()) did not return to the same place");
    if (R->solo) {
        check_z(R, z, "opendir");
        return;
    }
    same(R, z, seekdir_check(R, o, M), "opendir");
}

/* ------------------------------------------------------------------------ */
/* whole-tree comparison                                                     */
/* ------------------------------------------------------------------------ */

static void tree_compare(struct run *R, const char *rel, int depth)
{
    char pz[PATH_MAX], names[2][16384];
    size_t used[2];
    long n[2];
    for (int s = 0; s < 2; s++) {
        side_cd(R, s);
        int fd = open(rel, O_RDONLY | O_DIRECTORY);
        if (fd < 0)
            diverge(R, "tree: cannot open %s on side %d: %s", rel, s, strerror(errno));
        DIR *d = fdopendir(fd);
        n[s] = list_dir(d, names[s], sizeof(names[s]), &used[s]);
        closedir(d);
    }
    if (n[Z] != n[M] || used[Z] != used[M] || memcmp(names[Z], names[M], used[Z]))
        diverge(R, "tree: %s lists %ld names on zkfs, %ld in the model (or other names)",
                rel, n[Z], n[M]);
    for (size_t i = 0; i < used[Z]; i += strlen(names[Z] + i) + 1) {
        snprintf(pz, sizeof(pz), "%s/%s", rel, names[Z] + i);
        struct stat st[2];
        for (int s = 0; s < 2; s++) {
            side_cd(R, s);
            if (lstat(pz, &st[s]) != 0)
                diverge(R, "tree: lstat %s: %s", pz, strerror(errno));
        }
        char what[PATH_MAX + 16];
        snprintf(what, sizeof(what), "tree %.200s", pz);
        compare_stat(R, &st[Z], &st[M], what);
        if (S_ISDIR(st[Z].st_mode) && depth < 8) {
            tree_compare(R, pz, depth + 1);
        } else if (S_ISREG(st[Z].st_mode)) {
            size_t len[2];
            unsigned char *data[2];
            for (int s = 0; s < 2; s++) {
                side_cd(R, s);
                int fd = open(pz, O_RDONLY);
                data[s] = fd < 0 ? NULL : slurp(fd, &len[s]);
                if (fd >= 0) close(fd);
            }
            if (!data[Z] || !data[M] || len[Z] != len[M])
                diverge(R, "tree: %s holds %zu bytes on zkfs, %zu in the model",
                        pz, data[Z] ? len[Z] : 0, data[M] ? len[M] : 0);
            compare_data(R, (long)len[Z], data[Z], data[M], what);
            free(data[Z]);
            free(data[M]);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* the worker                                                                */
/* ------------------------------------------------------------------------ */

static void rm_tree_at(int dfd, const char *name)
{
    if (unlinkat(dfd, name, 0) == 0 || (errno != EISDIR && errno != EPERM))
        return;
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (fd < 0)
        return;
    DIR *d = fdopendir(fd);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            rm_tree_at(fd, e->d_name);
    closedir(d);
    unlinkat(dfd, name, AT_REMOVEDIR);
}

static const char *opt_root[2];
static int tree_every = TREE_EVERY;  /* 1 while shrinking */

static void dispatch(struct run *R, const struct op *o)
{
    switch (o->kind) {
    case OP_OPEN: op_open(R, o); break;
    case OP_CLOSE: do_close(R, o->slot); break;
    case OP_DUP: op_dup(R, o); break;
    case OP_READ: case OP_PREAD: case OP_READV: op_read(R, o); break;
    case OP_WRITE: case OP_PWRITE: case OP_WRITEV: op_write(R, o); break;
    case OP_FTRUNCATE: op_ftruncate(R, o); break;
    case OP_FALLOCATE: op_fallocate(R, o); break;
    case OP_LSEEK: op_lseek(R, o); break;
    case OP_FSYNC: case OP_FDATASYNC: op_fsync(R, o); break;
    case OP_FORK_CLOSE: case OP_FORK_WRITE: op_fork(R, o); break;
    case OP_MMAP: op_mmap(R, o); break;
    case OP_FLOCK: op_flock(R, o); break;
    case OP_OFDLOCK: op_ofdlock(R, o); break;
    case OP_FSTAT: op_fstat(R, o); break;
    case OP_READDIR_MUT: op_readdir_mut(R, o); break;
    case OP_SEEKDIR: op_seekdir(R, o); break;
    default: op_path(R, o); break;
    }
}

/* Runs ops[0..n) in fresh work directories named work under both roots;
 * exits 0 when everything agreed (and removes the directories). */
static void worker(const struct op *ops, int n, const char *work)
{
    struct run R = {.ops = ops, .nops = n, .solo = opt_solo};
    umask(0);
    for (int s = 0; s < 2; s++) {
        int root = open(opt_root[s], O_RDONLY | O_DIRECTORY);
        if (root >= 0 && !R.solo)
            rm_tree_at(root, work);     /* left by an earlier failed run */
        int mk = root < 0 ? -1 : mkdirat(root, work, 0777);
        /* In solo mode a replica may be without a quorum for a while (the
         * fault tests): ETIMEDOUT is its documented answer, so try again,
         * at most 20 times 0.5 s. */
        for (int t = 0; mk != 0 && errno == ETIMEDOUT && R.solo && t < 20; t++) {
            usleep(500000);
            mk = mkdirat(root, work, 0777);
        }
        /* A store at its disk reserve (ZKFS_DISK_RESERVE_BYTES) refuses
         * the work directory: a clear answer, not a failure; the seed has
         * nothing to run (the removals of --rm-work make room again). */
        if (mk != 0 && errno == ENOSPC && R.solo && opt_rm_work)
            _exit(0);
        if (root < 0 || (mk != 0 && errno != EEXIST)) {
            snprintf(shm->msg, MSG_MAX, "cannot make %s/%s: %s", opt_root[s],
                     work, strerror(errno));
            shm->failed = 2;
            _exit(1);
        }
        R.dirfd[s] = openat(root, work, O_RDONLY | O_DIRECTORY);
        fchmod(R.dirfd[s], 0777);
        mkdirat(R.dirfd[s], "d1", 0777);
        mkdirat(R.dirfd[s], "d2", 0755);
        close(root);
    }
    for (int i = 0; i < n; i++) {
        R.cur = shm->cur = i;
        shm->progress++;
        if (opt_verbose > 1 && tree_every != 1) {
            char b[512];
            op_show(&ops[i], b, sizeof(b));
            fprintf(stderr, "  %4d %s\n", i, b);
        }
        dispatch(&R, &ops[i]);
        if (!R.solo && (i + 1) % tree_every == 0)
            tree_compare(&R, ".", 0);
        shm->ops_done++;
    }
    R.cur = n > 0 ? n - 1 : 0;
    shm->cur = n;
    for (int s = 0; s < NSLOT; s++)
        do_close(&R, s);
    if (!R.solo)
        tree_compare(&R, ".", 0);
    /* (solo with --rm-work too, best effort: the tree does not grow run
     * after run, and the removals run under the faults as well) */
    for (int s = 0; s < 2 && (!R.solo || opt_rm_work); s++) {
        int root = open(opt_root[s], O_RDONLY | O_DIRECTORY);
        rm_tree_at(root, work);
        close(root);
    }
    _exit(0);
}

/* ------------------------------------------------------------------------ */
/* the supervisor: hangs, crashes, shrinking                                 */
/* ------------------------------------------------------------------------ */

enum { T_OK, T_DIVERGE, T_DEAD, T_HANG, T_CRASH };
static const char *t_names[] = {"ok", "divergence", "dead mount or EIO",
                                "hang", "crash of the fuzzer"};

struct outcome {
    int kind;
    int at;             /* index of the failing op */
    char msg[MSG_MAX];
};

static long opt_op_timeout_ms = 20000;
static uint64_t opt_seed = 1;
static long opt_seeds = 1, opt_ops = 200;
static char opt_work[128];
static char *opt_only;
static uint64_t opt_salt;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void trial(const struct op *ops, int n, const char *work,
                  struct outcome *out)
{
    memset((void *)shm, 0, offsetof(struct shm, res));
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        worker(ops, n, work);
    long last = -1;
    double since = now_s();
    int st = 0;
    memset(out, 0, sizeof(*out));
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            break;
        if (shm->progress != last) {
            last = shm->progress;
            since = now_s();
        } else if ((now_s() - since) * 1000 > (double)opt_op_timeout_ms) {
            out->kind = T_HANG;
            out->at = shm->cur < n ? shm->cur : n - 1;
            snprintf(out->msg, MSG_MAX, "op %d made no progress for %ld ms",
                     shm->cur, opt_op_timeout_ms);
            kill(pid, SIGKILL);
            for (int i = 0; i < 1000 && waitpid(pid, &st, WNOHANG) != pid; i++)
                usleep(10000);
            return;
        }
        usleep(2000);
    }
    out->at = shm->cur < n ? shm->cur : n - 1;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        out->kind = T_OK;
    } else if (WIFEXITED(st) && shm->failed) {
        out->kind = shm->failed == 2 ? T_DEAD : T_DIVERGE;
        memcpy(out->msg, shm->msg, MSG_MAX);
    } else {
        out->kind = T_CRASH;
        snprintf(out->msg, MSG_MAX, "the worker ended with status 0x%x at op %d", st,
                 shm->cur);
    }
}

/* Removes a failed trial's directories (as far as the mount answers). */
static void remove_work(const char *work)
{
    if (opt_solo)
        return;
    for (int s = 0; s < 2; s++) {
        int root = open(opt_root[s], O_RDONLY | O_DIRECTORY);
        if (root >= 0) {
            rm_tree_at(root, work);
            close(root);
        }
    }
}

static int same_failure(const struct outcome *a, const struct outcome *b,
                        const struct op *oa, const struct op *ob)
{
    return a->kind == b->kind && oa[a->at].kind == ob[b->at].kind;
}

/* Delta debugging: removes chunks of ops while the same kind of failure
 * (same outcome, same kind of failing op) remains. */
static int shrink(struct op *ops, int n, struct outcome *fail, uint64_t seed,
                  int *trials)
{
    static struct op cand[100000];
    double t0 = now_s();
    n = fail->at + 1 < n ? fail->at + 1 : n;
    int chunk = n / 2 > 0 ? n / 2 : 1;
    *trials = 0;
    tree_every = 1;
    {
        /* First: where the trees part when compared after every op. */
        char work[160];
        struct outcome o;
        snprintf(work, sizeof(work), "%s%" PRIu64 ".s", opt_work, seed);
        trial(ops, n, work, &o);
        (*trials)++;
        if (o.kind != T_OK && o.kind != T_HANG && fail->kind != T_HANG) {
            *fail = o;
            n = o.at + 1;
            chunk = n / 2 > 0 ? n / 2 : 1;
        }
    }
    while (chunk >= 1) {
        int removed = 0;
        for (int start = 0; start < n && n > 1;) {
            if (*trials >= SHRINK_TRIALS_MAX || now_s() - t0 > SHRINK_SECONDS_MAX)
                return n;
            int k = 0;
            for (int i = 0; i < n; i++)
                if (i < start || i >= start + chunk)
                    cand[k++] = ops[i];
            char work[160];
            snprintf(work, sizeof(work), "%s%" PRIu64 ".s%d", opt_work, seed, *trials);
            struct outcome o;
            trial(cand, k, work, &o);
            (*trials)++;
            if (o.kind != T_HANG)
                remove_work(work);
            if (o.kind != T_OK && (o.kind != T_HANG || fail->kind == T_HANG) &&
                same_failure(&o, fail, cand, ops)) {
                n = o.at + 1 < k ? o.at + 1 : k;
                memcpy(ops, cand, (size_t)n * sizeof(*ops));
                *fail = o;
                removed = 1;
            } else {
                start += chunk;
            }
        }
        if (!removed)
            chunk /= 2;
    }
    return n;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: fsfuzz --zk DIR --model DIR [--seed S] [--seeds N] [--ops N]\n"
            "              [--op-timeout-ms MS] [--work PREFIX] [--salt N] [--solo]\n"
            "              [--rm-work] [--only I,J,...] [-v [-v]]\n"
            "Runs N seeds of random syscalls on the zkfs directory and the model\n"
            "(tmpfs) directory (in PREFIX<seed> under each) and compares them.\n"
            "--solo: no comparison (fuzzers on several mounts share PREFIX<seed>;\n"
            "--salt makes their sequences differ); only hangs, EIO and a dead\n"
            "mount fail. --rm-work (solo): each seed's directory is removed after\n"
            "it, and a seed whose directory is refused with ENOSPC (a store at its\n"
            "disk reserve) is skipped.\n"
            "--only replays some ops of a seed (as printed on failure).\n");
    exit(2);
}

/* The ops of one seed (ops holds --ops entries); --only I,J,... keeps
 * just those. Returns how many. */
static int gen_seed(uint64_t s, struct op *ops)
{
    int n = (int)opt_ops;
    for (int i = 0; i < n; i++) {
        gen_op(&s, &ops[i]);
        ops[i].idx = (uint32_t)i;
    }
    if (!opt_only)
        return n;
    int kept = 0;
    for (char *t = opt_only; *t; t++) {
        long i = strtol(t, &t, 10);
        if (i >= 0 && i < n)
            ops[kept++] = ops[i];
        if (!*t)
            break;
    }
    return kept;
}

/* The zkfs root answers a stat within 5 s (after a hang: worth shrinking). */
static int mount_alive(void)
{
    pid_t pid = fork();
    struct stat st;
    if (pid == 0)
        _exit(stat(opt_root[Z], &st) == 0 ? 0 : 1);
    for (int i = 0; i < 500; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) && WEXITSTATUS(status) == 0;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    return 0;
}

/* Prints a failed seed, shrinks it (not when the mount is dead: nothing
 * to re-run against) and prints the sequence. */
static void report_failure(const char *argv0, uint64_t seed, struct op *ops,
                           int n, struct outcome *o)
{
    printf("FAIL seed %" PRIu64 " (%s): %s\n", seed, t_names[o->kind], o->msg);
    printf("reproduce: %s --zk DIR --model DIR --seed %" PRIu64 " --ops %ld%s\n",
           argv0, seed, opt_ops, opt_solo ? " --solo" : "");
    int trials = 0, m = o->at + 1;
    if (o->kind == T_DIVERGE || o->kind == T_CRASH ||
        (o->kind == T_HANG && mount_alive()) ||
        (o->kind == T_DEAD && !strstr(o->msg, "ENOTCONN"))) {
        m = shrink(ops, n, o, seed, &trials);
        printf("shortest sequence found (%d ops after %d trials; last: %s):\n",
               m, trials, o->msg);
    } else {
        printf("the sequence up to the failure (not shrunk: %s):\n",
               t_names[o->kind]);
    }
    printf("replay it: --seed %" PRIu64 " --ops %ld --only ", seed, opt_ops);
    for (int i = 0; i < m && i < n; i++)
        printf("%s%u", i ? "," : "", ops[i].idx);
    printf("\n");
    for (int i = 0; i < m && i < n; i++) {
        char b[512];
        op_show(&ops[i], b, sizeof(b));
        printf("  %3d  %s\n", i, b);
    }
}

int main(int argc, char **argv)
{
    snprintf(opt_work, sizeof(opt_work), "w");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--zk") && v) opt_root[Z] = v, i++;
        else if (!strcmp(a, "--model") && v) opt_root[M] = v, i++;
        else if (!strcmp(a, "--seed") && v) opt_seed = strtoull(v, NULL, 0), i++;
        else if (!strcmp(a, "--seeds") && v) opt_seeds = atol(v), i++;
        else if (!strcmp(a, "--ops") && v) opt_ops = atol(v), i++;
        else if (!strcmp(a, "--op-timeout-ms") && v) opt_op_timeout_ms = atol(v), i++;
        else if (!strcmp(a, "--work") && v) snprintf(opt_work, sizeof(opt_work), "%s", v), i++;
        else if (!strcmp(a, "--only") && v) opt_only = strdup(v), i++;
        else if (!strcmp(a, "--salt") && v) opt_salt = strtoull(v, NULL, 0), i++;
        else if (!strcmp(a, "--solo")) opt_solo = 1;
        else if (!strcmp(a, "--rm-work")) opt_rm_work = 1;
        else if (!strcmp(a, "-v")) opt_verbose++;
        else usage();
    }
    if (!opt_root[Z] || !opt_root[M] || opt_ops <= 0 || opt_ops > 100000)
        usage();
    /* A --zk directory whose mount is gone (or never came up: a
     * mountpoint left non-empty) is a plain directory, and every
     * divergence found there is the local file system's. */
    struct statfs zsf;
    if (statfs(opt_root[Z], &zsf) != 0 || zsf.f_type != 0x65735546) {
        fprintf(stderr, "fsfuzz: %s is not on a FUSE mount (is zkfs "
                "mounted there?)\n", opt_root[Z]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    paths_init();
    shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    databuf = malloc(BIG);
    readbuf[Z] = malloc(BIG);
    readbuf[M] = malloc(BIG);
    struct op *ops = calloc((size_t)opt_ops, sizeof(*ops));
    long total_hits[DEV_COUNT] = {0}, total_ops = 0;
    double t0 = now_s();
    for (long k = 0; k < opt_seeds; k++) {
        uint64_t seed = opt_seed + (uint64_t)k;
        uint64_t s = seed ^ (opt_salt * 0x9e3779b97f4a7c15ULL);
        int n = gen_seed(s, ops);
        char work[160];
        snprintf(work, sizeof(work), "%s%" PRIu64, opt_work, seed);
        struct outcome o;
        trial(ops, n, work, &o);
        for (int d = 0; d < DEV_COUNT; d++)
            total_hits[d] += shm->dev_hits[d];
        total_ops += shm->ops_done;
        if (opt_verbose)
            printf("seed %" PRIu64 ": %s (%ld ops)\n", seed, t_names[o.kind], shm->ops_done);
        if (o.kind == T_OK)
            continue;
        report_failure(argv[0], seed, ops, n, &o);
        return 1;
    }
    printf("fsfuzz: %ld seeds from %" PRIu64 ", %ld ops, %s, %.1f s; deviations seen:",
           opt_seeds, opt_seed, total_ops, opt_solo ? "solo" : "all agreed with the model",
           now_s() - t0);
    for (int d = 0; d < DEV_COUNT; d++)
        if (total_hits[d])
            printf(" %s %ld", devs[d].name, total_hits[d]);
    printf("\n");
    return 0;
}
