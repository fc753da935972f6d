/*
 * cli.c — the client half of the `zkfs` command: every subcommand except
 * `mount` (fs/main.c). They all work THROUGH the mount: a filesystem path
 * is resolved to the zkfs mount holding it (the longest mountpoint prefix in
 * /proc/self/mountinfo, which must be of type fuse.zkfs) and a znode path,
 * and the request goes to the daemon over the mount's control file
 * (include/zk_ctl.h): one write of a length-prefixed request, then the
 * response read to EOF.
 *
 * What this file keeps true: usage errors exit 2 with one "zkfs CMD: reason"
 * line and a hint, runtime errors exit 1 with "zkfs CMD: PATH: reason", and
 * the control file descriptor is never inherited by a program we start
 * (O_CLOEXEC), so an ephemeral node held by `create -e` goes away exactly
 * when this process ends.
 */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "zk_common.h"
#include "zk_ctl.h"

#define MOUNTINFO_LINE_MAX (3 * PATH_MAX + 1024)
#define READ_CHUNK_BYTES   (64 * 1024)

/* ======================== usage and errors ============================== */

struct usage { const char *cmd, *text; };

static const struct usage usages[] = {
    {"mount",
     "Usage: zkfs mount [-f] [-c FILE [--id N]] [--data DIR] [-o FUSEOPTS]\n"
     "                  [-d] [MOUNTPOINT]\n"
     "Starts a zkfs replica and mounts its znode tree: a standalone one, or\n"
     "with -c one server of the ensemble FILE describes.\n\n"
     "  -f, --foreground   stay in the foreground, log to stderr\n"
     "      --data DIR     data directory (default: the config's dataDir, else\n"
     "                     /var/lib/zkfs for root,\n"
     "                     ${XDG_DATA_HOME:-$HOME/.local/share}/zkfs otherwise)\n"
     "  -o FUSEOPTS        extra FUSE mount options, comma-separated\n"
     "  -d, --debug        FUSE debug output (implies -f)\n"
     "  -c, --config FILE  configuration (zoo.cfg keys: server.N,\n"
     "                     tickTime, initLimit, syncLimit, sessionTimeout,\n"
     "                     dataDir, secretFile; no server.N lines: a\n"
     "                     standalone replica); a bad one exits 2\n"
     "      --id N         this server's id (default: DATADIR/myid)\n"
     "      --help         show this help\n\n"
     "MOUNTPOINT defaults to /mnt/zkfs for root and $HOME/zkfs otherwise.\n"
     "Missing directories are created. Without -f the command returns once\n"
     "the mount serves requests, and the daemon runs on in the background.\n"
     "mount(8) and fstab use 'zkfs SOURCE DIR -o config=FILE,...' (type\n"
     "fuse.zkfs; options in zkfs(8)).\n"},
    {"umount",
     "Usage: zkfs umount MOUNTPOINT\n"
     "Closes this replica's session (its ephemeral nodes go at once),\n"
     "unmounts and stops the daemon. Waits until the mount is gone.\n"},
    {"status",
     "Usage: zkfs status [--json] MOUNTPOINT\n"
     "Shows the replica's role, epoch, last zxid, znode and session counts,\n"
     "data size and group-commit counters, in 80 columns (the middle of a\n"
     "value too long for them is shown as '...').\n\n"
     "      --json   print the daemon's JSON object unchanged\n"},
    {"create",
     "Usage: zkfs create [-e] [-s] [-d] PATH [DATA] [-- CMD [ARG...]]\n"
     "Creates a znode and prints its path (with the sequential suffix).\n"
     "PATH is a path inside a zkfs mount. DATA '-' reads standard input.\n\n"
     "  -e, --ephemeral    the node lives while this command runs: with\n"
     "                     -- CMD, until CMD exits (the exit status is CMD's);\n"
     "                     without, until SIGINT, SIGTERM or SIGHUP. If the\n"
     "                     node is lost (this server gave its session up),\n"
     "                     CMD gets SIGTERM, then SIGKILL 5 s later; without\n"
     "                     CMD the command exits with status 1\n"
     "  -s, --sequential   append ZooKeeper's %010d suffix\n"
     "  -d, --dir          create a directory znode (DATA is its\n"
     "                     user.zkfs.data)\n"},
    {"set",
     "Usage: zkfs set [-v VERSION] PATH DATA\n"
     "Replaces a znode's data, only if its version is VERSION when given.\n"
     "DATA '-' reads standard input.\n"},
    {"rm",
     "Usage: zkfs rm [-v VERSION] PATH\n"
     "Deletes a znode (a directory must be empty), only if its version is\n"
     "VERSION when given.\n"},
    {"stat",
     "Usage: zkfs stat PATH\n"
     "Prints the znode's ZooKeeper stat, as zkCli's stat does.\n"},
    {"sync",
     "Usage: zkfs sync PATH\n"
     "Read barrier: returns once every write committed before it is applied\n"
     "on this replica, so the next read through the mount is linearizable.\n"},
    {"txn",
     "Usage: zkfs txn [MOUNTPOINT-or-PATH] < OPS\n"
     "Runs the operations read from standard input as one all-or-nothing\n"
     "transaction. One operation per line; blank lines and lines starting\n"
     "with '#' are skipped:\n"
     "  create [-e] [-s] [-d] PATH [DATA]\n"
     "  set [-v VERSION] PATH DATA\n"
     "  rm [-v VERSION] PATH\n"
     "  check -v VERSION PATH\n"
     "PATH is a path inside the mount or a znode path (\"/a/b\"); DATA is the\n"
     "rest of the line. Prints one line per operation. Exit status 0 when the\n"
     "transaction committed, 1 when it was refused, 2 for malformed input.\n"
     "An ephemeral node (-e) created here is held by this command, so it\n"
     "goes again when the command ends.\n"},
    {"version",
     "Usage: zkfs version\n"
     "Prints the release, the on-disk format versions (a data directory\n"
     "of another store format is refused) and the wire protocol versions\n"
     "(servers of one ensemble must speak the same). Same as --version.\n"},
    {"locks",
     "Usage: zkfs locks PATH\n"
     "Shows who holds and who waits for the cluster-wide flock/fcntl locks\n"
     "on a file, as this replica has applied them: state (holds/waits),\n"
     "kind, mode, byte range, the replica session, the token (the grant's\n"
     "zxid: the fencing token) and host:pid of the requester.\n"},
    {"snapshot",
     "Usage: zkfs snapshot save MOUNTPOINT FILE\n"
     "       zkfs snapshot restore FILE --data DIR\n"
     "save: writes a backup of the committed tree at one zxid to FILE ('-':\n"
     "standard output), compressed (zstd) and checksummed, while the mount\n"
     "serves. Ephemeral nodes, sessions and locks are left out; sequence\n"
     "counters are kept. Root or the daemon's user only.\n"
     "restore: makes a new data directory DIR from FILE (DIR must be empty\n"
     "or not exist); `zkfs mount --data DIR` then starts a standalone\n"
     "replica from it, or copy it to every server of a new ensemble.\n"
     "A truncated, corrupt or foreign FILE is refused and nothing written.\n"},
    {"check",
     "Usage: zkfs check DATA_DIR\n"
     "Verifies a data directory offline (no daemon may be using it): every\n"
     "record decodes, parent/child links and directory entries agree, every\n"
     "znode is reachable, counts, sessions and ephemerals, lock tables and\n"
     "the log's checksums. Prints each problem, then a summary. Exit status\n"
     "0 when the store is sound, 1 when a problem was found or it could not\n"
     "be opened, 2 for wrong usage.\n"},
    {"help", "Usage: zkfs help [COMMAND]\n"},
};

const char *zk__cli_usage(const char *cmd)
{
    for (size_t i = 0; i < ZK_ARRAY_LEN(usages); i++)
        if (strcmp(usages[i].cmd, cmd) == 0)
            return usages[i].text;
    return NULL;
}

int zk__cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "zkfs %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'zkfs %s --help'.\n", cmd);
    return 2;
}

/* Names an error for a person: ZooKeeper's version conflict reaches us as
 * ESTALE (zk_err_to_errno), which would read oddly as "Stale file handle". */
static const char *err_text(int err)
{
    if (err == -ESTALE || err == ZK_EBADVERSION)
        return "znode version does not match";
    if (err == -EXDEV)
        return "not inside a zkfs mount";
    return zk_strerror(err);
}

int zk__cli_fail(const char *cmd, const char *what, int err, const char *msg)
{
    /* The daemon names a version conflict by its errno (ESTALE). */
    if (msg == NULL || msg[0] == '\0' || err == -ESTALE)
        msg = err_text(err);
    fprintf(stderr, "zkfs %s: %s: %s\n", cmd, what, msg);
    return 1;
}

/* Handles getopt_long's '?' and ':' results uniformly. */
static int bad_option(const char *cmd, int c, char **argv)
{
    const char *arg = argv[optind - 1];

    if (c == ':')
        return zk__cli_usage_error(cmd, "option '%s' needs an argument", arg);
    if (optopt != 0 && optopt != '?')
        return zk__cli_usage_error(cmd, "unknown option '-%c'", optopt);
    return zk__cli_usage_error(cmd, "unknown option '%s'", arg);
}

static int print_help(const char *cmd)
{
    fputs(zk__cli_usage(cmd), stdout);
    return 0;
}

/* ======================== the control file ============================== */

int zk__ctl_open(const char *mnt)
{
    char path[PATH_MAX];

    if ((size_t)snprintf(path, sizeof(path), "%s/%s", mnt, ZK_CTL_NAME) >=
        sizeof(path))
        return -ENAMETOOLONG;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int zk__cli_write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads fd to EOF into a new buffer with room for a final NUL. */
static int read_all(int fd, size_t max, char **out, size_t *out_len)
{
    size_t len = 0, cap = 0;
    char *buf = NULL;

    for (;;) {
        if (cap - len < READ_CHUNK_BYTES + 1) {
            char *nb = realloc(buf, cap + READ_CHUNK_BYTES + 1);
            if (nb == NULL) {
                free(buf);
                return -ENOMEM;
            }
            buf = nb;
            cap += READ_CHUNK_BYTES + 1;
        }
        ssize_t n = read(fd, buf + len, READ_CHUNK_BYTES);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = -errno;
            free(buf);
            return err;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max) {
            free(buf);
            return -EMSGSIZE;
        }
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}

/* Splits "<code>\t<message>\n<body>" in place. */
static int parse_resp(char *buf, size_t len, struct zk_ctl_resp *out)
{
    char *nl = memchr(buf, '\n', len);
    char *end;

    if (nl == NULL)
        nl = buf + len;
    *nl = '\0';
    errno = 0;
    long code = strtol(buf, &end, 10);
    if (end == buf || errno != 0 || code > 0 || code < INT_MIN ||
        (*end != '\t' && *end != '\0'))
        return -EPROTO;
    out->code = (int)code;
    out->msg = *end == '\t' ? end + 1 : end;
    out->body = nl < buf + len ? nl + 1 : nl;
    out->body_len = (size_t)(buf + len - out->body);
    out->buf_ = buf;
    return 0;
}

int zk__ctl_send(int fd, const char *hdr, const void *payload, size_t len)
{
    size_t hlen = strlen(hdr), n = hlen + len;

    if (n > ZK_CTL_REQ_MAX)
        return -EMSGSIZE;
    uint8_t *req = malloc(4 + n);
    if (req == NULL)
        return -ENOMEM;
    zk_put_be32(req, (uint32_t)n);
    memcpy(req + 4, hdr, hlen);
    if (len > 0)
        memcpy(req + 4 + hlen, payload, len);
    int err = zk__cli_write_all(fd, req, 4 + n);
    free(req);
    return err;
}

int zk__ctl_call(int fd, const char *hdr, const void *payload, size_t len,
                 struct zk_ctl_resp *out)
{
    char *resp;
    size_t resp_len;
    int err = zk__ctl_send(fd, hdr, payload, len);

    if (err < 0)
        return err;
    err = read_all(fd, ZK_CTL_RESP_MAX + 4096, &resp, &resp_len);
    if (err < 0)
        return err;
    err = parse_resp(resp, resp_len, out);
    if (err < 0)
        free(resp);
    return err;
}

void zk__ctl_resp_free(struct zk_ctl_resp *r)
{
    free(r->buf_);
    r->buf_ = r->msg = r->body = NULL;
}

/* ======================== mounts and paths ============================== */

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
    char *w = s;

    for (char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' &&
            r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

struct mount_entry { char *id, *dir, *fstype, *source, *dev; };

/* Parses one mountinfo line in place: "id parent maj:min root DIR opts
 * [optional...] - FSTYPE SOURCE superopts". Returns 0 or -1. */
static int parse_mountinfo(char *line, struct mount_entry *m)
{
    char *save = NULL, *tok;
    int field = 0;

    m->id = m->dir = m->fstype = m->source = m->dev = NULL;
    for (tok = strtok_r(line, " \n", &save); tok;
         tok = strtok_r(NULL, " \n", &save), field++) {
        if (field == 0)
            m->id = tok;
        else if (field == 2)
            m->dev = tok;
        else if (field == 4)
            m->dir = tok;
        else if (field > 5 && strcmp(tok, "-") == 0)
            break;
    }
    if (tok == NULL || m->dir == NULL || m->dev == NULL)
        return -1;
    m->fstype = strtok_r(NULL, " \n", &save);
    m->source = strtok_r(NULL, " \n", &save);
    if (m->fstype == NULL || m->source == NULL)
        return -1;
    unescape(m->dir);
    return 0;
}

static int is_zkfs(const struct mount_entry *m)
{
    return strcmp(m->fstype, "fuse.zkfs") == 0 ||
           (strncmp(m->fstype, "fuse", 4) == 0 && strcmp(m->source, "zkfs") == 0);
}

/* Whether dir is path or an ancestor of it (both canonical). */
static int is_prefix(const char *dir, const char *path)
{
    size_t n = strlen(dir);

    if (strcmp(dir, "/") == 0)
        return 1;
    return strncmp(dir, path, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Finds the mount holding abs: with exact != 0 only a mount AT abs. The
 * last matching line wins (it is the mount on top). Returns 1 and fills
 * dir/fstype, *zk and *dev ("maj:min" of the mount, when dev is not
 * NULL), 0 if none, or a negative errno. */
static int mount_find(const char *abs, int exact, char *dir, size_t dsize,
                      char *fstype, size_t fsize, int *zk, char *dev,
                      size_t devsize)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char *line = malloc(MOUNTINFO_LINE_MAX);
    size_t best = 0;
    int found = 0;
    struct mount_entry m;

    if (f == NULL || line == NULL) {
        int err = f == NULL ? -errno : -ENOMEM;
        if (f)
            fclose(f);
        free(line);
        return err;
    }
    while (fgets(line, MOUNTINFO_LINE_MAX, f)) {
        if (parse_mountinfo(line, &m) < 0)
            continue;
        if (exact ? strcmp(m.dir, abs) != 0 : !is_prefix(m.dir, abs))
            continue;
        if (strlen(m.dir) < best)
            continue;
        best = strlen(m.dir);
        found = 1;
        *zk = is_zkfs(&m);
        if (dir)
            snprintf(dir, dsize, "%s", m.dir);
        if (fstype)
            snprintf(fstype, fsize, "%s", m.fstype);
        if (dev)
            snprintf(dev, devsize, "%s", m.dev);
    }
    fclose(f);
    free(line);
    return found;
}

int zk__mount_lookup(const char *abs, char *fstype, size_t size)
{
    int zk;

    return mount_find(abs, 1, NULL, 0, fstype, size, &zk, NULL, 0);
}

/* Whether mountinfo lists a mount with id at abs. */
static int mount_listed(const char *abs, unsigned long long id)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char *line = malloc(MOUNTINFO_LINE_MAX);
    struct mount_entry m;
    int found = 0;

    while (f && line && !found && fgets(line, MOUNTINFO_LINE_MAX, f))
        found = parse_mountinfo(line, &m) == 0 && strcmp(m.dir, abs) == 0 &&
                strtoull(m.id, NULL, 10) == id;
    if (f)
        fclose(f);
    free(line);
    return found;
}

/* zk__mount_reached, also giving the mount's id in *id (0: unknown, the
 * path could not be looked up). */
static int mount_reached_id(const char *abs, char *fstype, size_t size,
                            unsigned long long *id)
{
    struct statx stx;
    int found = zk__mount_lookup(abs, fstype, size);

    *id = 0;
    /* A path whose lookup fails (a dead FUSE mount: ENOTCONN) counts as
     * the mount mountinfo lists. */
    if (found != 1 ||
        statx(AT_FDCWD, abs, AT_NO_AUTOMOUNT, STATX_MNT_ID, &stx) < 0 ||
        !(stx.stx_mask & STATX_MNT_ID))
        return found;
    found = mount_listed(abs, stx.stx_mnt_id);
    if (found)
        *id = stx.stx_mnt_id;
    return found;
}

int zk__mount_reached(const char *abs, char *fstype, size_t size)
{
    unsigned long long id;

    return mount_reached_id(abs, fstype, size, &id);
}

int zk__mount_dev(const char *abs, unsigned *minor)
{
    char dev[64];
    unsigned maj;
    int zk, found = mount_find(abs, 1, NULL, 0, NULL, 0, &zk, dev,
                               sizeof(dev));

    if (found <= 0)
        return found < 0 ? found : -ENOENT;
    return sscanf(dev, "%u:%u", &maj, minor) == 2 ? 0 : -EINVAL;
}

/* Makes path absolute and canonical: the longest existing prefix goes
 * through realpath(3), the components that do not exist yet are appended.
 * Trailing slashes are ignored. */
static int canonical(const char *path, char *out)
{
    char abs[PATH_MAX], real[PATH_MAX], rest[PATH_MAX] = "", tmp[PATH_MAX];
    size_t n;

    if (path[0] == '\0')
        return -ENOENT;
    if (path[0] == '/')
        n = (size_t)snprintf(abs, sizeof(abs), "%s", path);
    else if (getcwd(tmp, sizeof(tmp)) == NULL)
        return -errno;
    else
        n = (size_t)snprintf(abs, sizeof(abs), "%s/%s", tmp, path);
    if (n >= sizeof(abs))
        return -ENAMETOOLONG;
    while (realpath(abs, real) == NULL) {
        if (errno != ENOENT)
            return -errno;
        while (n > 1 && abs[n - 1] == '/')
            abs[--n] = '\0';
        char *slash = strrchr(abs, '/');
        const char *comp = slash + 1;
        if (strcmp(comp, ".") == 0 || strcmp(comp, "..") == 0)
            return -ENOENT;
        if ((size_t)snprintf(tmp, sizeof(tmp), "%s%s%s", comp,
                             rest[0] ? "/" : "", rest) >= sizeof(tmp))
            return -ENAMETOOLONG;
        memcpy(rest, tmp, sizeof(rest));
        n = slash == abs ? 1 : (size_t)(slash - abs);
        abs[n] = '\0';
        if (n == 1)
            abs[0] = '/';
    }
    n = (size_t)snprintf(out, PATH_MAX, "%s%s%s", real,
                         rest[0] && strcmp(real, "/") ? "/" : "", rest);
    return n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

int zk__cli_resolve(const char *path, struct zk_cli_target *out)
{
    char full[PATH_MAX], dir[PATH_MAX];
    int zk = 0, err;

    err = canonical(path, full);
    if (err < 0)
        return err;
    err = mount_find(full, 0, dir, sizeof(dir), NULL, 0, &zk, NULL, 0);
    if (err < 0)
        return err;
    if (err == 0 || !zk)
        return -EXDEV;
    const char *rel = strcmp(dir, "/") == 0 ? full : full + strlen(dir);
    if (rel[0] == '\0')
        rel = "/";
    if (strlen(rel) >= sizeof(out->znode))
        return -ENAMETOOLONG;
    if (strpbrk(rel, "\t\n") != NULL)
        return -EINVAL;
    snprintf(out->mnt, sizeof(out->mnt), "%s", dir);
    snprintf(out->znode, sizeof(out->znode), "%s", rel);
    return 0;
}

/* ======================== shared helpers ================================ */

/* Parses a znode version: an integer >= -1 (-1 means any). */
static int parse_version(const char *s, int32_t *out)
{
    char *end;

    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0 || v < -1 || v > INT32_MAX)
        return -EINVAL;
    *out = (int32_t)v;
    return 0;
}

/* DATA as given, or standard input for "-", into a new malloc'd *buf
 * (the caller frees it; it may be set even on error). -EFBIG past
 * ZK_DATA_MAX. */
static int get_data(const char *arg, char **buf, size_t *len)
{
    if (strcmp(arg, "-") != 0) {
        *len = strlen(arg);
        *buf = strdup(arg);
        if (*buf == NULL)
            return -ENOMEM;
        return *len > ZK_DATA_MAX ? -EFBIG : 0;
    }
    int err = read_all(STDIN_FILENO, ZK_DATA_MAX, buf, len);
    return err == -EMSGSIZE ? -EFBIG : err;
}

/* Resolves path, opens its mount's control file and sends one request
 * whose header is fmt formatted with arg and then the znode path (fmt may
 * use neither, one or both %s). On success
 * returns 0 with *resp filled (code 0) and, if fd_out is not NULL, the
 * still-open control fd. Otherwise reports and returns the exit status. */
static int request(const char *cmd, const char *path, const char *fmt,
                   const char *arg, const void *payload, size_t len,
                   struct zk_cli_target *t, struct zk_ctl_resp *resp,
                   int *fd_out)
{
    char hdr[ZK_PATH_MAX + 128];
    int err = zk__cli_resolve(path, t);

    if (err < 0)
        return zk__cli_fail(cmd, path, err, NULL);
    snprintf(hdr, sizeof(hdr), fmt, arg, t->znode);
    int fd = zk__ctl_open(t->mnt);
    if (fd < 0)
        return zk__cli_fail(cmd, path, fd, NULL);
    err = zk__ctl_call(fd, hdr, payload, len, resp);
    if (err < 0) {
        close(fd);
        return zk__cli_fail(cmd, path, err, NULL);
    }
    if (resp->code != 0) {
        int status = zk__cli_fail(cmd, path, resp->code, resp->msg);
        zk__ctl_resp_free(resp);
        close(fd);
        return status;
    }
    if (fd_out)
        *fd_out = fd;
    else
        close(fd);
    return 0;
}

/* ======================== create ======================================== */

/* Blocks the signals hold() waits for. */
static void hold_signals(sigset_t *set, sigset_t *old)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGCHLD);
    sigprocmask(SIG_BLOCK, set, old);
}

/* Parses create's options into flags ("es d" letters) and returns -1 to go
 * on, or an exit status. */
static int create_opts(int argc, char **argv, char *flags)
{
    static const struct option longopts[] = {
        {"ephemeral", no_argument, NULL, 'e'},
        {"sequential", no_argument, NULL, 's'},
        {"dir", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;
    size_t n = 0;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":esd", longopts, NULL)) != -1) {
        if (c == 'h')
            return print_help("create");
        if (c == '?' || c == ':')
            return bad_option("create", c, argv);
        if (strchr(flags, c) == NULL)
            flags[n++] = (char)c;
    }
    if (n == 0)
        flags[n++] = '-';
    flags[n] = '\0';
    return -1;
}

int zk__cli_create(int argc, char **argv)
{
    char flags[8] = "", *data = NULL, **cmdv = NULL;
    size_t len = 0;
    struct zk_cli_target t;
    struct zk_ctl_resp resp;
    int fd = -1, status, nopt = argc;

    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--") == 0) {
            nopt = i;
            cmdv = argv + i + 1;
            break;
        }
    argv[nopt] = NULL; /* getopt stops at our "--" */
    if ((status = create_opts(nopt, argv, flags)) >= 0)
        return status;
    int nargs = nopt - optind;
    if (nargs < 1 || nargs > 2)
        return zk__cli_usage_error("create", nargs < 1 ? "missing PATH" :
                                   "too many arguments (quote DATA)");
    if (cmdv && (cmdv[0] == NULL || strchr(flags, 'e') == NULL))
        return zk__cli_usage_error("create", cmdv[0] == NULL ?
                                   "'--' needs a command" :
                                   "'-- CMD' needs -e");
    const char *path = argv[optind];
    sigset_t set, old;
    sigemptyset(&set);
    sigemptyset(&old);
    if (strchr(flags, 'e') != NULL)
        hold_signals(&set, &old);
    int err = get_data(nargs == 2 ? argv[optind + 1] : "", &data, &len);
    if (err < 0) {
        free(data);
        return zk__cli_fail("create", path, err, NULL);
    }
    status = request("create", path, "create\t%s\t%s\n", flags, data, len,
                     &t, &resp, &fd);
    free(data);
    if (status != 0)
        return status;
    while (resp.body_len > 0 && resp.body[resp.body_len - 1] == '\n')
        resp.body[--resp.body_len] = '\0';
    const char *made = resp.body_len ? resp.body : t.znode;
    char node[PATH_MAX + ZK_PATH_MAX];
    snprintf(node, sizeof(node), "%s%s", strcmp(t.mnt, "/") ? t.mnt : "",
             made);
    printf("%s\n", node);
    fflush(stdout);
    zk__ctl_resp_free(&resp);
    if (strchr(flags, 'e') == NULL) {
        close(fd);
        return 0;
    }
    return zk__cli_hold(fd, cmdv, &set, &old, node);   /* cli_hold.c */
}

/* ======================== set, rm, sync ================================= */

/* Parses [-v VERSION] (and --help) for set and rm. Returns -1 to go on or
 * an exit status. */
static int version_opts(const char *cmd, int argc, char **argv,
                        int32_t *version)
{
    static const struct option longopts[] = {
        {"version", required_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;

    *version = -1;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":v:", longopts, NULL)) != -1) {
        if (c == 'h')
            return print_help(cmd);
        if (c == '?' || c == ':')
            return bad_option(cmd, c, argv);
        if (parse_version(optarg, version) < 0)
            return zk__cli_usage_error(cmd, "bad version '%s'", optarg);
    }
    return -1;
}

int zk__cli_set(int argc, char **argv)
{
    int32_t version;
    char vbuf[16], *data = NULL;
    size_t len;
    struct zk_cli_target t;
    struct zk_ctl_resp resp;
    int status = version_opts("set", argc, argv, &version);

    if (status >= 0)
        return status;
    if (argc - optind != 2)
        return zk__cli_usage_error("set", argc - optind < 2 ?
                                   "needs PATH and DATA" :
                                   "too many arguments (quote DATA)");
    int err = get_data(argv[optind + 1], &data, &len);
    if (err < 0) {
        free(data);
        return zk__cli_fail("set", argv[optind], err, NULL);
    }
    snprintf(vbuf, sizeof(vbuf), "%" PRId32, version);
    status = request("set", argv[optind], "set\t%s\t%s\n", vbuf, data, len,
                     &t, &resp, NULL);
    free(data);
    if (status == 0)
        zk__ctl_resp_free(&resp);
    return status;
}

int zk__cli_rm(int argc, char **argv)
{
    int32_t version;
    char vbuf[16];
    struct zk_cli_target t;
    struct zk_ctl_resp resp;
    int status = version_opts("rm", argc, argv, &version);

    if (status >= 0)
        return status;
    if (argc - optind != 1)
        return zk__cli_usage_error("rm", argc - optind < 1 ?
                                   "missing PATH" : "too many arguments");
    snprintf(vbuf, sizeof(vbuf), "%" PRId32, version);
    status = request("rm", argv[optind], "rm\t%s\t%s\n", vbuf, NULL, 0, &t,
                     &resp, NULL);
    if (status == 0)
        zk__ctl_resp_free(&resp);
    return status;
}

/* Parses the options of a command that takes only --help (and, for
 * status, --json) and exactly one operand. Returns -1 to go on or an exit
 * status. */
static int simple_opts(const char *cmd, int argc, char **argv, int *json,
                       int optional)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0}};
    int c;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        if (c == 'h')
            return print_help(cmd);
        if (c == 'j' && json != NULL) {
            *json = 1;
            continue;
        }
        if (c == 'j')
            return zk__cli_usage_error(cmd, "unknown option '--json'");
        return bad_option(cmd, c, argv);
    }
    if (argc - optind > 1 || (argc - optind < 1 && !optional))
        return zk__cli_usage_error(cmd, argc - optind < 1 ? "missing %s" :
                                   "too many arguments",
                                   strcmp(cmd, "status") ? "PATH" :
                                   "MOUNTPOINT");
    return -1;
}

int zk__cli_sync(int argc, char **argv)
{
    struct zk_cli_target t;
    struct zk_ctl_resp resp;
    int status = simple_opts("sync", argc, argv, NULL, 0);

    if (status >= 0)
        return status;
    status = request("sync", argv[optind], "sync%s\t%s\n", "", NULL, 0, &t,
                     &resp, NULL);
    if (status == 0)
        zk__ctl_resp_free(&resp);
    return status;
}

/* ======================== stat ========================================== */

/* Finds "key=value" in a body of such lines; returns value's start. */
static const char *kv_get(const char *body, const char *key)
{
    size_t n = strlen(key);

    for (const char *p = body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (strncmp(p, key, n) == 0 && p[n] == '=')
            return p + n + 1;
    return NULL;
}

static unsigned long long kv_num(const char *body, const char *key)
{
    const char *v = kv_get(body, key);

    return v ? strtoull(v, NULL, 0) : 0;
}

/* Formats ms since the epoch as Java's Date.toString() does. */
static void fmt_time(unsigned long long ms, char *buf, size_t size)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;

    localtime_r(&secs, &tm);
    strftime(buf, size, "%a %b %d %H:%M:%S %Z %Y", &tm);
}

static void print_stat(const char *body)
{
    char ct[64], mt[64];

    fmt_time(kv_num(body, "ctime"), ct, sizeof(ct));
    fmt_time(kv_num(body, "mtime"), mt, sizeof(mt));
    printf("cZxid = 0x%llx\nctime = %s\nmZxid = 0x%llx\nmtime = %s\n"
           "pZxid = 0x%llx\ncversion = %lld\ndataVersion = %lld\n"
           "aclVersion = %lld\nephemeralOwner = 0x%llx\n"
           "dataLength = %llu\nnumChildren = %llu\n",
           kv_num(body, "czxid"), ct, kv_num(body, "mzxid"), mt,
           kv_num(body, "pzxid"), (long long)kv_num(body, "cversion"),
           (long long)kv_num(body, "version"),
           (long long)kv_num(body, "aversion"),
           kv_num(body, "ephemeralOwner"), kv_num(body, "dataLength"),
           kv_num(body, "numChildren"));
}

int zk__cli_stat(int argc, char **argv)
{
    struct zk_cli_target t;
    struct zk_ctl_resp resp;
    int status = simple_opts("stat", argc, argv, NULL, 0);

    if (status >= 0)
        return status;
    status = request("stat", argv[optind], "stat%s\t%s\n", "", NULL, 0, &t,
                     &resp, NULL);
    if (status != 0)
        return status;
    print_stat(resp.body);
    zk__ctl_resp_free(&resp);
    return 0;
}

/* ======================== status ======================================== */

/* Copies the value of "key" in a flat JSON object (a string without its
 * quotes, or a bare number/true/false) into buf; "?" when absent. */
static const char *json_get(const char *json, const char *key, char *buf,
                            size_t size)
{
    char pat[64];
    const char *p;
    size_t n = 0;

    snprintf(pat, sizeof(pat), "\"%s\"", key);
    snprintf(buf, size, "?");
    if ((p = strstr(json, pat)) == NULL)
        return buf;
    p += strlen(pat);
    while (isspace((unsigned char)*p) || *p == ':')
        p++;
    if (*p == '"') {
        for (p++; *p && *p != '"' && n + 1 < size; p++)
            buf[n++] = *p == '\\' && p[1] ? *++p : *p;
    } else {
        while (*p && *p != ',' && *p != '}' && !isspace((unsigned char)*p) &&
               n + 1 < size)
            buf[n++] = *p++;
    }
    buf[n] = '\0';
    return buf;
}

/* One row of the members table from one {...} of "members": at most
 * 2+6+9+10+5+19+20 = 71 columns; a snapshot in transfer gets a line of
 * its own under the row. */
static void print_member(const char *obj)
{
    char id[16], type[16], state[16], conn[8], self[8], zxid[32], lag[24];
    char bytes[24], total[24];

    json_get(obj, "id", id, sizeof(id));
    json_get(obj, "type", type, sizeof(type));
    json_get(obj, "state", state, sizeof(state));
    json_get(obj, "connected", conn, sizeof(conn));
    json_get(obj, "self", self, sizeof(self));
    json_get(obj, "member_zxid_hex", zxid, sizeof(zxid));
    json_get(obj, "lag", lag, sizeof(lag));
    printf("  %-5s %-8s %-9s %-4s %-18s %s\n",
           strcmp(self, "true") ? id : strcat(id, "*"), type, state,
           strcmp(conn, "true") ? "no" : "yes",
           strcmp(zxid, "null") ? zxid : "-",
           strcmp(lag, "null") ? lag : "-");
    if (strstr(obj, "\"bytes\"")) {
        json_get(obj, "bytes", bytes, sizeof(bytes));
        json_get(obj, "total", total, sizeof(total));
        printf("        snapshot %s of %s bytes sent\n", bytes, total);
    }
}

/* The "members" array as a table (its objects hold one nested object,
 * "snapshot", and no braces inside strings). */
static void print_members(const char *json)
{
    const char *p = strstr(json, "\"members\":[");
    char obj[1024];

    if (!p)
        return;
    printf("members     (* = this replica; zxid and lag as known here)\n");
    printf("  %-5s %-8s %-9s %-4s %-18s %s\n", "id", "type", "state",
           "conn", "zxid", "lag");
    for (p = strchr(p, '['); p && *p && *p != ']'; ) {
        const char *o = strchr(p, '{');
        size_t n = 0;
        int depth = 0;
        if (!o)
            break;
        for (p = o; *p; p++) {
            depth += *p == '{' ? 1 : *p == '}' ? -1 : 0;
            if (n + 1 < sizeof(obj))
                obj[n++] = *p;
            if (depth == 0) {
                p++;
                break;
            }
        }
        obj[n] = '\0';
        print_member(obj);
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
    }
}

/* Value columns of `zkfs status`: 12 for the label, the rest of an
 * 80-column line for the value. */
#define STATUS_VALUE_COLS 67

/* Shortens a value wider than STATUS_VALUE_COLS in place by replacing its
 * middle with "..." (both ends of a path say the most); --json has it
 * whole. */
static void fit_value(char *v)
{
    size_t n = strlen(v), keep = STATUS_VALUE_COLS - 3, head = keep / 3;

    if (n <= STATUS_VALUE_COLS)
        return;
    memmove(v + head + 3, v + n - (keep - head), keep - head + 1);
    memcpy(v + head, "...", 3);
}

static void print_status(const char *json)
{
    static const char *const rows[][2] = {
        {"role", "role"}, {"id", "my_id"}, {"leader", "leader_id"},
        {"epoch", "epoch"}, {"zxid", "zxid"}, {"commit lag", "commit_lag"},
        {"stale", "stale"}, {"syncing", "syncing"}, {"store", "store"},
        {"znodes", "znodes"}, {"sessions", "sessions"},
        {"data size", "data_bytes"}, {"pending", "pending"},
        {"batches", "batches"}, {"fsyncs", "fsyncs"},
        {"mountpoint", "mountpoint"}, {"data dir", "data_dir"}};
    char v[PATH_MAX], hex[64];

    for (size_t i = 0; i < ZK_ARRAY_LEN(rows); i++) {
        json_get(json, rows[i][1], v, sizeof(v));
        fit_value(v);
        printf("%-11s %s", rows[i][0], v);
        if (strcmp(rows[i][1], "zxid") == 0)
            printf(" (%s)", json_get(json, "zxid_hex", hex, sizeof(hex)));
        else if (strcmp(rows[i][1], "data_bytes") == 0)
            printf(" bytes");
        else if (strcmp(rows[i][1], "commit_lag") == 0)
            printf(" transactions behind the commit known here");
        printf("\n");
    }
    print_members(json);
}

int zk__cli_status(int argc, char **argv)
{
    struct zk_cli_target t;
    struct zk_ctl_resp resp;
    int json = 0;
    int status = simple_opts("status", argc, argv, &json, 0);

    if (status >= 0)
        return status;
    status = request("status", argv[optind], "status\t-\n", "", NULL, 0,
                     &t, &resp, NULL);
    if (status != 0)
        return status;
    if (json) {
        fwrite(resp.body, 1, resp.body_len, stdout);
        if (resp.body_len && resp.body[resp.body_len - 1] != '\n')
            putchar('\n');
    } else {
        print_status(resp.body);
    }
    zk__ctl_resp_free(&resp);
    return 0;
}

/* ======================== umount ======================================== */

/* Polls mountinfo until mount id (0: any mount) is no longer at mnt, for
 * at most ZK_CLI_UMOUNT_WAIT_MS. Returns 0 once gone, -ETIMEDOUT. */
static int wait_unmounted(const char *mnt, unsigned long long id)
{
    struct timespec ts = {0, ZK_CLI_POLL_MS * 1000000L};

    for (int i = 0; i <= ZK_CLI_UMOUNT_WAIT_MS / ZK_CLI_POLL_MS; i++) {
        if (id ? !mount_listed(mnt, id) : zk__mount_lookup(mnt, NULL, 0) == 0)
            return 0;
        nanosleep(&ts, NULL);
    }
    return -ETIMEDOUT;
}

/* Unmounts with fusermount3 -u; returns its exit status or -errno. */
static int fusermount_u(const char *mnt)
{
    int status;
    pid_t pid = fork();

    if (pid < 0)
        return -errno;
    if (pid == 0) {
        execlp("fusermount3", "fusermount3", "-u", "--", mnt, (char *)NULL);
        fprintf(stderr, "zkfs umount: fusermount3: %s\n", strerror(errno));
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* Asks the daemon at mnt to leave cleanly. Returns 0, a negative errno
 * when the control file could not be used, or 1 (reported) when the daemon
 * refused. */
static int umount_ctl(const char *mnt)
{
    struct zk_ctl_resp resp;
    int fd = zk__ctl_open(mnt), err;

    if (fd < 0)
        return fd;
    err = zk__ctl_call(fd, "umount\t-\n", NULL, 0, &resp);
    close(fd);
    if (err < 0)
        return err;
    if (resp.code != 0) {
        zk__cli_fail("umount", mnt, resp.code, resp.msg);
        zk__ctl_resp_free(&resp);
        return 1;
    }
    zk__ctl_resp_free(&resp);
    return 0;
}

/* Makes path absolute without touching it (no symlinks resolved) and
 * drops trailing slashes. */
static int absolute(const char *path, char *out)
{
    char cwd[PATH_MAX];
    size_t n;

    if (path[0] == '/')
        n = (size_t)snprintf(out, PATH_MAX, "%s", path);
    else if (getcwd(cwd, sizeof(cwd)) == NULL)
        return -errno;
    else
        n = (size_t)snprintf(out, PATH_MAX, "%s/%s", cwd, path);
    if (n >= PATH_MAX)
        return -ENAMETOOLONG;
    while (n > 1 && out[n - 1] == '/')
        out[--n] = '\0';
    return 0;
}

int zk__cli_umount(int argc, char **argv)
{
    char mnt[PATH_MAX], fstype[64];
    int status = simple_opts("umount", argc, argv, NULL, 0);

    if (status >= 0)
        return status;
    const char *arg = argv[optind];
    /* realpath() of a dead FUSE mount fails (ENOTCONN): then use the path
     * as given, made absolute, which is what mountinfo lists. */
    if (canonical(arg, mnt) < 0 && absolute(arg, mnt) < 0)
        return zk__cli_fail("umount", arg, -ENAMETOOLONG, NULL);
    unsigned long long id;
    int found = mount_reached_id(mnt, fstype, sizeof(fstype), &id);
    if (found <= 0)
        return zk__cli_fail("umount", arg, found < 0 ? found : -EINVAL,
                            found < 0 ? NULL : "not mounted");
    if (strcmp(fstype, "fuse.zkfs") != 0 && strcmp(fstype, "fuse") != 0) {
        fprintf(stderr, "zkfs umount: %s: not a zkfs mount (%s)\n", arg,
                fstype);
        return 1;
    }
    int err = umount_ctl(mnt);
    if (err == 1)
        return 1;
    if (err < 0 && fusermount_u(mnt) != 0)
        return zk__cli_fail("umount", arg, err, NULL);
    err = wait_unmounted(mnt, id);
    if (err < 0)
        return zk__cli_fail("umount", arg, err, "still mounted after 10 s");
    return 0;
}

/* ======================== txn =========================================== */

/* Returns the next blank-separated word of *pp (NUL-terminated in place)
 * and leaves *pp just past the one separator that ended it. */
static char *next_word(char **pp)
{
    char *p = *pp, *w;

    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0') {
        *pp = p;
        return NULL;
    }
    for (w = p; *p && *p != ' ' && *p != '\t'; p++)
        ;
    if (*p)
        *p++ = '\0';
    *pp = p;
    return w;
}

/* Parses one option word of a txn line; returns NULL or why not. */
static const char *txn_option(struct zk__cli_txn_op *o, char *w, char **pp,
                              int *has_v)
{
    static char why[64];

    if (o->op.type == ZK_OP_CREATE) {
        for (const char *c = w + 1; *c; c++) {
            if (*c == 'e')
                o->op.flags |= ZK_CREATE_EPHEMERAL;
            else if (*c == 's')
                o->op.flags |= ZK_CREATE_SEQUENTIAL;
            else if (*c == 'd')
                o->op.flags |= ZK_CREATE_DIR;
            else
                goto unknown;
        }
        return NULL;
    }
    if (w[1] != 'v')
        goto unknown;
    const char *v = w[2] ? w + 2 : next_word(pp);
    if (v == NULL || parse_version(v, &o->op.version) < 0)
        return "bad or missing VERSION after -v";
    *has_v = 1;
    return NULL;
unknown:
    snprintf(why, sizeof(why), "unknown option '%.20s' for %s", w, o->name);
    return why;
}

/* Parses one non-blank line into o. Returns NULL or the reason it is
 * malformed. */
static const char *txn_parse(char *line, struct zk__cli_txn_op *o)
{
    static const struct { const char *name; uint8_t type; } kinds[] = {
        {"create", ZK_OP_CREATE}, {"set", ZK_OP_SET_DATA},
        {"rm", ZK_OP_DELETE}, {"check", ZK_OP_CHECK}};
    char *p = line, *w;
    const char *why;
    int has_v = 0;

    o->op.version = -1;
    o->name = next_word(&p);
    for (size_t i = 0; i < ZK_ARRAY_LEN(kinds); i++)
        if (strcmp(o->name, kinds[i].name) == 0)
            o->op.type = kinds[i].type;
    if (o->op.type == 0)
        return "unknown operation (create, set, rm or check)";
    while ((w = next_word(&p)) != NULL && w[0] == '-' && w[1] != '\0')
        if ((why = txn_option(o, w, &p, &has_v)) != NULL)
            return why;
    if (w == NULL)
        return "missing PATH";
    o->arg = w;
    if (o->op.type == ZK_OP_CHECK && !has_v)
        return "check needs -v VERSION";
    if (o->op.type == ZK_OP_DELETE || o->op.type == ZK_OP_CHECK) {
        if (p[strspn(p, " \t")] != '\0')
            return "unexpected text after PATH";
        return NULL;
    }
    if (strlen(p) > ZK_DATA_MAX)
        return "DATA over 1 MiB";
    o->op.data = (const uint8_t *)p;
    o->op.data_len = (uint32_t)strlen(p);
    return NULL;
}

int zk__cli_txn_parse(char *in, struct zk__cli_txn_op *ops, uint32_t *nops,
                      int *line_out, const char **why_out)
{
    static char many[64];
    char *line;
    int lineno = 0;
    uint32_t n = 0;

    *line_out = 0;
    for (char *p = in; (line = strsep(&p, "\n")) != NULL; ) {
        lineno++;
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\r')
            line[len - 1] = '\0';
        const char *s = line + strspn(line, " \t");
        if (*s == '\0' || *s == '#')
            continue;
        *line_out = lineno;
        if (n == ZK_TXN_OPS_MAX) {
            snprintf(many, sizeof(many), "more than %d operations",
                     ZK_TXN_OPS_MAX);
            *why_out = many;
            return -EINVAL;
        }
        memset(&ops[n], 0, sizeof(ops[n]));
        ops[n].line = lineno;
        if ((*why_out = txn_parse(line, &ops[n])) != NULL)
            return -EINVAL;
        n++;
    }
    *line_out = 0;
    if (n == 0) {
        *why_out = "no operations on standard input";
        return -EINVAL;
    }
    *nops = n;
    return 0;
}

/* zk__cli_txn_parse with its error reported. Returns -1 to go on or an
 * exit status. */
static int txn_read(char *in, struct zk__cli_txn_op *ops, uint32_t *nops)
{
    const char *why;
    int line;

    if (zk__cli_txn_parse(in, ops, nops, &line, &why) == 0)
        return -1;
    if (line)
        return zk__cli_usage_error("txn", "line %d: %s", line, why);
    return zk__cli_usage_error("txn", "%s", why);
}

/* Turns each op's PATH into a znode path: a path inside a zkfs mount
 * (relative, or absolute under the mount) is a filesystem path; another
 * absolute path is a znode path. All must name the same mount, which is
 * where's, else the first filesystem path's, else the current
 * directory's. Returns -1 to go on or an exit status. */
static int txn_resolve(struct zk__cli_txn_op *ops, uint32_t n, const char *where,
                       char *mnt)
{
    struct zk_cli_target t;
    int err;

    mnt[0] = '\0';
    if (where && (err = zk__cli_resolve(where, &t)) < 0)
        return zk__cli_fail("txn", where, err, NULL);
    if (where)
        snprintf(mnt, PATH_MAX, "%s", t.mnt);
    for (uint32_t i = 0; i < n; i++) {
        err = zk__cli_resolve(ops[i].arg, &t);
        if (err == -EXDEV && ops[i].arg[0] == '/') {
            ops[i].znode = strdup(ops[i].arg);
        } else if (err < 0) {
            return zk__cli_fail("txn", ops[i].arg, err, NULL);
        } else if (mnt[0] && strcmp(mnt, t.mnt) != 0) {
            fprintf(stderr, "zkfs txn: %s: not in the mount %s\n",
                    ops[i].arg, mnt);
            return 1;
        } else {
            snprintf(mnt, PATH_MAX, "%s", t.mnt);
            ops[i].znode = strdup(t.znode);
        }
        if (ops[i].znode == NULL)
            return zk__cli_fail("txn", ops[i].arg, -ENOMEM, NULL);
        ops[i].op.path = ops[i].znode;
        ops[i].op.path_len = (uint32_t)strlen(ops[i].znode);
    }
    if (mnt[0] == '\0' && zk__cli_resolve(".", &t) == 0)
        snprintf(mnt, PATH_MAX, "%s", t.mnt);
    if (mnt[0] == '\0')
        return zk__cli_usage_error("txn", "no zkfs mount named: give "
                                   "MOUNTPOINT or a path inside the mount");
    return -1;
}

/* Fills what the daemon would otherwise take from the caller. */
static void txn_fill(struct zk__cli_txn_op *ops, uint32_t n)
{
    mode_t mask = umask(022);

    umask(mask);
    for (uint32_t i = 0; i < n; i++) {
        struct zk_op *op = &ops[i].op;
        if (op->type == ZK_OP_CREATE)
            op->mode = (op->flags & ZK_CREATE_DIR ? 0777u : 0666u) & ~mask;
        op->uid = getuid();
        op->gid = getgid();
    }
}

/* Prints one line per op from the response body ("<errno>\t<path>"):
 * "ok", the op's error, or, when another op refused the transaction,
 * "not applied". Returns the index of the first failed op, or -1. */
static int txn_report(const struct zk__cli_txn_op *ops, uint32_t n, const char *mnt,
                      char *body, int refused, int *first_err)
{
    char *p = body, *line;
    int failed = -1;

    for (uint32_t i = 0; i < n; i++) {
        int err = 0;
        const char *path = ops[i].znode;
        if ((line = strsep(&p, "\n")) != NULL && *line) {
            char *tab = strchr(line, '\t');
            err = (int)strtol(line, NULL, 10);
            if (tab && tab[1])
                path = tab + 1;
        }
        if (err > 0)
            err = -err;
        if (err && failed < 0) {
            failed = (int)i;
            *first_err = err;
        }
        printf("%s %s%s: %s\n", ops[i].name, strcmp(mnt, "/") ? mnt : "",
               path, err ? err_text(err) :
               refused ? "not applied (the transaction was refused)" : "ok");
    }
    return failed;
}

/* Whether any "<errno>\t<path>" line of body has a non-zero errno. */
static int body_has_error(const char *body)
{
    for (const char *p = body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (strtol(p, NULL, 10) != 0)
            return 1;
    return 0;
}

/* Encodes the ops, sends them as one "txn" request and reports. */
static int txn_send(struct zk__cli_txn_op *ops, uint32_t n, const char *mnt)
{
    struct zk_op *zops = calloc(n, sizeof(*zops));
    struct zk_txn txn = {0, n, zops};
    struct zk_ctl_resp resp;
    struct timespec now;
    uint8_t *enc;
    size_t len;
    int err, first_err = 0;

    if (zops == NULL)
        return zk__cli_fail("txn", mnt, -ENOMEM, NULL);
    for (uint32_t i = 0; i < n; i++)
        zops[i] = ops[i].op;
    clock_gettime(CLOCK_REALTIME, &now);
    txn.time_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
    err = zk_txn_encode(&txn, &enc, &len);
    free(zops);
    if (err < 0)
        return zk__cli_fail("txn", mnt, err, NULL);
    int fd = zk__ctl_open(mnt);
    err = fd < 0 ? fd : zk__ctl_call(fd, "txn\t-\n", enc, len, &resp);
    free(enc);
    if (fd >= 0)
        close(fd);
    if (err < 0)
        return zk__cli_fail("txn", mnt, err, NULL);
    int refused = resp.code != 0 || body_has_error(resp.body);
    int failed = txn_report(ops, n, mnt, resp.body, refused, &first_err);
    fflush(stdout);
    if (resp.code == 0 && failed < 0) {
        zk__ctl_resp_free(&resp);
        return 0;
    }
    if (failed >= 0)
        fprintf(stderr, "zkfs txn: refused: line %d (%s %s): %s\n",
                ops[failed].line, ops[failed].name, ops[failed].arg,
                err_text(first_err));
    else
        zk__cli_fail("txn", "refused", resp.code, resp.msg);
    zk__ctl_resp_free(&resp);
    return 1;
}

int zk__cli_txn(int argc, char **argv)
{
    struct zk__cli_txn_op *ops = NULL;
    uint32_t n = 0;
    char *in = NULL, mnt[PATH_MAX];
    size_t len;
    int status = simple_opts("txn", argc, argv, NULL, 1);

    if (status >= 0)
        return status;
    status = read_all(STDIN_FILENO, ZK_CTL_REQ_MAX, &in, &len);
    if (status < 0)
        return zk__cli_fail("txn", "standard input", status, NULL);
    if (memchr(in, '\0', len) != NULL) {
        free(in);
        return zk__cli_usage_error("txn", "NUL byte in the input");
    }
    ops = calloc(ZK_TXN_OPS_MAX, sizeof(*ops));
    status = ops == NULL ? zk__cli_fail("txn", "input", -ENOMEM, NULL)
                         : txn_read(in, ops, &n);
    if (status < 0)
        status = txn_resolve(ops, n, argc > optind ? argv[optind] : NULL,
                             mnt);
    if (status < 0) {
        txn_fill(ops, n);
        status = txn_send(ops, n, mnt);
    }
    for (uint32_t i = 0; ops && i < n; i++)
        free(ops[i].znode);
    free(ops);
    free(in);
    return status;
}
