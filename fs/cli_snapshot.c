/*
 * cli_snapshot.c — `zkfs snapshot save MOUNTPOINT FILE` and `zkfs snapshot
 * restore FILE --data DIR`: backups of the znode tree.
 *
 * save asks the daemon THROUGH the mount (the control file's "snapshot"
 * request, fs/ctl_snapshot.c), which answers with the whole backup file
 * (fs/snapfile.h) as the response body; this side checks its trailer's
 * crc32 while copying it into FILE.XXXXXX beside FILE, fsyncs and renames
 * it over FILE, so FILE is either the old file or a whole, checked new one.
 *
 * restore needs no daemon: it checks the whole file first (magic,
 * version, length, crc32), then creates the store in DIR and installs the
 * decompressed stream in one write batch (zk_store_batch_install_*, which
 * checks the stream's own crc32, order and root again). The store's
 * epochs are set to the snapshot's, so the zxids of a replica started
 * from it continue above the snapshot's. Any failure removes what was
 * created: nothing is left in DIR.
 */
#include "cli.h"
#include "snapfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "zk_common.h"
#include "zk_store.h"

#define SNAP_CHUNK_BYTES (256 * 1024)
#define SNAP_FILE_MIN    (ZK__SNAPFILE_HDR + ZK__SNAPFILE_TRAILER)

/* One read (EINTR retried): bytes read, 0 at EOF, or a negative errno. */
static ssize_t read_some(int fd, uint8_t *p, size_t len)
{
    ssize_t n;
    while ((n = read(fd, p, len)) < 0 && errno == EINTR)
        ;
    return n < 0 ? -errno : n;
}

static ssize_t full_read(int fd, uint8_t *p, size_t len)
{
    size_t got = 0;
    ssize_t n = 1;
    while (got < len && (n = read_some(fd, p + got, len - got)) > 0)
        got += (size_t)n;
    return n < 0 ? n : (ssize_t)got;
}

/* What a whole file of size bytes must satisfy: first the header's magic
 * (not ours: ZK_EFOREIGN), then its length (ZK_ETRUNCATED), then crc, the
 * crc32 of all but its last 4 bytes (ZK_ECORRUPT); tail is its last 16. */
static int check_whole(const uint8_t *hdr, uint64_t size, uint32_t crc,
                       const uint8_t *tail, struct zk__snapfile_hdr *h,
                       const char **why)
{
    if (size < 4 || memcmp(hdr, ZK__SNAPFILE_MAGIC, 4) != 0) {
        *why = "not a zkfs snapshot file";
        return ZK_EFOREIGN;
    }
    if (size < SNAP_FILE_MIN ||
        memcmp(tail, ZK__SNAPFILE_END_MAGIC, 4) != 0 ||
        zk_get_be64(tail + 4) != size - SNAP_FILE_MIN) {
        *why = "truncated: the file ends before its trailer";
        return ZK_ETRUNCATED;
    }
    if (zk_get_be32(tail + 12) != crc) {
        *why = "checksum mismatch: the file is corrupt";
        return ZK_ECORRUPT;
    }
    if (zk__snapfile_hdr_decode(hdr, h) != 0) {
        *why = "snapshot file of another version";
        return ZK_EFOREIGN;
    }
    if (h->store_format != ZK_STORE_FORMAT) {
        *why = "snapshot of another store format";
        return ZK_EFOREIGN;
    }
    return 0;
}

/* ======================== save ========================================== */

/* Copies in to out, keeping the last 16 bytes (the trailer) out of the
 * running crc32, and checks the whole at the end. */
static int copy_checked(int in, int out, const uint8_t *first, size_t nfirst,
                        struct zk__snapfile_hdr *h, const char **why,
                        int *local)
{
    uint8_t *buf = malloc(SNAP_CHUNK_BYTES + ZK__SNAPFILE_TRAILER);
    uint8_t hdr[ZK__SNAPFILE_HDR] = {0};
    size_t held = 0, nhdr = 0;
    uint64_t size = 0;
    uint32_t crc = 0;
    int rc = 0;
    if (buf == NULL)
        return -ENOMEM;
    for (;;) {
        ssize_t n;
        if (nfirst > 0) {
            n = (ssize_t)(nfirst < SNAP_CHUNK_BYTES ? nfirst : SNAP_CHUNK_BYTES);
            memcpy(buf + held, first, (size_t)n);
            first += n;
            nfirst -= (size_t)n;
        } else if ((n = full_read(in, buf + held, SNAP_CHUNK_BYTES)) < 0) {
            rc = (int)n;
            break;
        }
        if (n == 0)
            break;
        if ((rc = zk__cli_write_all(out, buf + held, (size_t)n)) != 0) {
            *local = 1;         /* the output's error, not the mount's */
            break;
        }
        size_t copy = nhdr < sizeof(hdr) ? sizeof(hdr) - nhdr : 0;
        memcpy(hdr + nhdr, buf + held, copy < (size_t)n ? copy : (size_t)n);
        nhdr += copy < (size_t)n ? copy : (size_t)n;
        size += (uint64_t)n;
        held += (size_t)n;
        if (held > ZK__SNAPFILE_TRAILER) {
            size_t done = held - ZK__SNAPFILE_TRAILER;
            crc = (uint32_t)crc32(crc, buf, (uInt)done);
            memmove(buf, buf + done, ZK__SNAPFILE_TRAILER);
            held = ZK__SNAPFILE_TRAILER;
        }
    }
    if (rc == 0 && held == ZK__SNAPFILE_TRAILER)
        crc = (uint32_t)crc32(crc, buf, 12);
    if (rc == 0)
        rc = check_whole(hdr, size, crc, buf, h, why);
    free(buf);
    return rc;
}

/* Reads the response up to the end of its header line, and perhaps more:
 * buf[0..*len) with *nl at that newline. */
static int read_status(int fd, uint8_t *buf, size_t size, size_t *len,
                       char **nl)
{
    *len = 0;
    while (*len < size - 1) {
        ssize_t n = read_some(fd, buf + *len, size - 1 - *len);
        if (n <= 0)
            return n < 0 ? (int)n : -EPROTO;
        *len += (size_t)n;
        buf[*len] = '\0';
        if ((*nl = memchr(buf, '\n', *len)) != NULL)
            return 0;
    }
    return -EPROTO;
}

/* Sends "snapshot", checks the status line and copies the body to out;
 * *local is set when writing out failed. */
static int fetch(const char *mnt, int out, struct zk__snapfile_hdr *h,
                 const char **why, char *msg, size_t msize, int *local)
{
    uint8_t first[4096];
    size_t len;
    char *nl = NULL;
    int fd = zk__ctl_open(mnt);
    if (fd < 0)
        return fd;
    int rc = zk__ctl_send(fd, "snapshot\n", NULL, 0);
    if (rc == 0)
        rc = read_status(fd, first, sizeof(first), &len, &nl);
    if (rc == 0) {
        *nl = '\0';
        char *tab = strchr((char *)first, '\t');
        long code = strtol((char *)first, NULL, 10);
        if (code < 0) {
            snprintf(msg, msize, "%s", tab ? tab + 1 : "");
            *why = msg;
            rc = (int)code;
        } else {
            size_t off = (size_t)((uint8_t *)nl + 1 - first);
            rc = copy_checked(fd, out, first + off, len - off, h, why,
                              local);
        }
    }
    close(fd);
    return rc;
}

/* Where save writes: "-" and an existing file that is not a regular one
 * (a device, a FIFO, /dev/fd/N) are written straight (*direct set, *out
 * the descriptor); otherwise a new FILE.XXXXXX (its name into tmp) beside
 * the real path (into real: an existing file's symbolic links followed),
 * renamed over it at the end. */
static int open_output(const char *file, char *real, char *tmp, size_t size,
                       int *out, int *direct)
{
    struct stat st;
    *direct = 1;
    if (strcmp(file, "-") == 0) {
        *out = 1;
        return 0;
    }
    if (stat(file, &st) == 0 && !S_ISREG(st.st_mode)) {
        if (S_ISDIR(st.st_mode))
            return -EISDIR;
        *out = open(file, O_WRONLY | O_CLOEXEC);
        return *out < 0 ? -errno : 0;
    }
    *direct = 0;
    if (realpath(file, real) == NULL)
        snprintf(real, PATH_MAX, "%s", file);   /* not there yet */
    if ((size_t)snprintf(tmp, size, "%s.XXXXXX", real) >= size)
        return -ENAMETOOLONG;
    *out = mkostemp(tmp, O_CLOEXEC);
    return *out < 0 ? -errno : 0;
}

static int save(const char *mnt_arg, const char *file)
{
    struct zk_cli_target t;
    struct zk__snapfile_hdr h;
    char tmp[PATH_MAX + 8], real[PATH_MAX], msg[256];
    const char *why = NULL;
    int out, direct, local = 0;
    int rc = zk__cli_resolve(mnt_arg, &t);
    if (rc)
        return zk__cli_fail("snapshot", mnt_arg, rc, NULL);
    if ((rc = open_output(file, real, tmp, sizeof(tmp), &out, &direct)) != 0)
        return zk__cli_fail("snapshot", file, rc, NULL);
    rc = fetch(t.mnt, out, &h, &why, msg, sizeof(msg), &local);
    if (rc == 0 && !direct && fsync(out) != 0)
        rc = -errno, local = 1;
    if (out != 1 && close(out) != 0 && rc == 0)
        rc = -errno, local = 1;
    if (rc == 0 && !direct && rename(tmp, real) != 0)
        rc = -errno, local = 1;
    if (rc != 0) {
        if (!direct)
            unlink(tmp);
        return zk__cli_fail("snapshot", local ? file : mnt_arg, rc, why);
    }
    fprintf(stderr, "zkfs snapshot: saved zxid 0x%016llx, %llu znodes to "
            "%s\n", (unsigned long long)h.zxid,
            (unsigned long long)h.znodes, out == 1 ? "standard output"
                                                   : file);
    return 0;
}

/* ======================== restore ======================================= */

/* Checks the whole file (see check_whole); *h on success. */
static int verify_file(int fd, struct zk__snapfile_hdr *h, uint64_t *size,
                       const char **why)
{
    uint8_t *buf = malloc(SNAP_CHUNK_BYTES), hdr[ZK__SNAPFILE_HDR] = {0};
    uint8_t tail[ZK__SNAPFILE_TRAILER] = {0};
    struct stat st;
    uint32_t crc = 0;
    if (buf == NULL)
        return -ENOMEM;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        free(buf);
        *why = "not a regular file";
        return -EINVAL;
    }
    *size = (uint64_t)st.st_size;
    uint64_t body = *size >= 4 ? *size - 4 : 0, off = 0;
    int rc = 0;
    while (off < body && rc == 0) {
        size_t want = body - off < SNAP_CHUNK_BYTES ? (size_t)(body - off)
                                                    : SNAP_CHUNK_BYTES;
        ssize_t n = pread(fd, buf, want, (off_t)off);
        if (n <= 0) {
            rc = n < 0 ? -errno : ZK_ETRUNCATED;
            break;
        }
        crc = (uint32_t)crc32(crc, buf, (uInt)n);
        off += (uint64_t)n;
    }
    free(buf);
    if (rc != 0)
        return rc;
    if (pread(fd, hdr, sizeof(hdr), 0) < 0)
        return -errno;
    if (*size >= sizeof(tail) &&
        pread(fd, tail, sizeof(tail), (off_t)(*size - sizeof(tail))) < 0)
        return -errno;
    return check_whole(hdr, *size, crc, tail, h, why);
}

/* DIR must be empty or missing (then created, *created set). */
static int prepare_dir(const char *dir, int *created, const char **why)
{
    DIR *d = opendir(dir);
    *created = 0;
    if (d == NULL && errno == ENOENT) {
        if (mkdir(dir, 0700) != 0)
            return -errno;
        *created = 1;
        return 0;
    }
    if (d == NULL)
        return -errno;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            *why = "not empty: restore makes a new data directory";
            rc = -ENOTEMPTY;
            break;
        }
    closedir(d);
    return rc;
}

/* Decompresses the body of fd into the install. */
static int feed_body(int fd, uint64_t body, struct zk_store_install *in)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    size_t outsz = ZSTD_DStreamOutSize();
    uint8_t *ibuf = malloc(SNAP_CHUNK_BYTES), *obuf = malloc(outsz);
    uint64_t off = 0;
    size_t last = 1;
    int rc = dctx && ibuf && obuf ? 0 : -ENOMEM;
    while (rc == 0 && off < body) {
        size_t want = body - off < SNAP_CHUNK_BYTES ? (size_t)(body - off)
                                                    : SNAP_CHUNK_BYTES;
        ssize_t n = pread(fd, ibuf, want, (off_t)(ZK__SNAPFILE_HDR + off));
        if (n <= 0) {
            rc = n < 0 ? -errno : ZK_ETRUNCATED;
            break;
        }
        off += (uint64_t)n;
        ZSTD_inBuffer zin = {ibuf, (size_t)n, 0};
        while (rc == 0 && zin.pos < zin.size) {
            ZSTD_outBuffer zout = {obuf, outsz, 0};
            last = ZSTD_decompressStream(dctx, &zout, &zin);
            if (ZSTD_isError(last) || (last == 0 && zin.pos < zin.size))
                rc = ZK_ECORRUPT;      /* bad frame, or bytes after it */
            else
                rc = zk_store_install_feed(in, obuf, zout.pos);
        }
    }
    if (rc == 0 && last != 0)
        rc = ZK_ETRUNCATED;
    ZSTD_freeDCtx(dctx);
    free(ibuf);
    free(obuf);
    return rc;
}

/* Installs the checked file into a new store in dir. */
static int install(int fd, uint64_t size, const struct zk__snapfile_hdr *h,
                   const char *dir)
{
    struct zk_store *s;
    struct zk_store_batch *b = NULL;
    struct zk_store_install *in = NULL;
    uint64_t zxid = 0;
    int rc = zk_store_open(dir, 1, &s);
    if (rc)
        return rc;
    rc = zk_store_batch_begin(s, &b);
    if (rc == 0)
        rc = zk_store_batch_install_begin(b, &in);
    if (rc == 0)
        rc = feed_body(fd, size - SNAP_FILE_MIN, in);
    if (rc == 0) {
        rc = zk_store_install_finish(in, &zxid);
        in = NULL;
    }
    if (rc == 0 && zxid != h->zxid)
        rc = ZK_ECORRUPT;
    /* A replica started here takes an epoch above the snapshot's. */
    if (rc == 0)
        rc = zk_store_batch_meta_set(b, "accepted_epoch", zxid >> 32);
    if (rc == 0)
        rc = zk_store_batch_meta_set(b, "current_epoch", zxid >> 32);
    /* It forgot whatever this server promised after the backup: as a
     * member it waits to sync first (ens_start.c, restored_mark). */
    if (rc == 0)
        rc = zk_store_batch_meta_set(b, "restored", 1);
    zk_store_install_abort(in);
    if (rc == 0)
        rc = zk_store_batch_commit(b);
    else if (b)
        zk_store_batch_abort(b);
    zk_store_close(s);
    return rc;
}

static int remove_one(const char *path, const struct stat *st, int type,
                      struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

/* Removes what a failed restore created in dir: the store's files and
 * the write-ahead log's directory (zk_store_open makes it first). */
static void undo(const char *dir, int created)
{
    static const char *const names[] = {"zkfs.mdb", "zkfs.mdb-lock", "LOCK",
                                        "zkfs.ckpt", "zkfs.ckpt.tmp"};
    char p[PATH_MAX];
    for (size_t i = 0; i < ZK_ARRAY_LEN(names); i++)
        if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, names[i]) <
            sizeof(p))
            unlink(p);
    if ((size_t)snprintf(p, sizeof(p), "%s/zkfs-wal", dir) < sizeof(p))
        nftw(p, remove_one, 4, FTW_DEPTH | FTW_PHYS);
    if (created)
        rmdir(dir);
}

static int restore(const char *file, const char *dir)
{
    struct zk__snapfile_hdr h;
    const char *why = NULL;
    uint64_t size = 0;
    int created = 0;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return zk__cli_fail("snapshot", file, -errno, NULL);
    int rc = verify_file(fd, &h, &size, &why);
    if (rc != 0) {
        close(fd);
        return zk__cli_fail("snapshot", file, rc, why);
    }
    rc = prepare_dir(dir, &created, &why);
    if (rc != 0) {
        close(fd);
        return zk__cli_fail("snapshot", dir, rc, why);
    }
    rc = install(fd, size, &h, dir);
    close(fd);
    if (rc != 0) {
        char why2[160];
        undo(dir, created);
        snprintf(why2, sizeof(why2), "cannot be installed into %s (%s): "
                 "nothing was kept", dir, zk_strerror(rc));
        return zk__cli_fail("snapshot", file, rc, why2);
    }
    fprintf(stderr, "zkfs snapshot: restored zxid 0x%016llx, %llu znodes "
            "into %s\n", (unsigned long long)h.zxid,
            (unsigned long long)h.znodes, dir);
    return 0;
}

/* ======================== the command =================================== */

int zk__cli_snapshot(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *data = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(zk__cli_usage("snapshot"), stdout);
            return 0;
        }
        if (c != 'D')
            return zk__cli_usage_error("snapshot", "unknown option '%s'",
                                       argv[optind - 1]);
        data = optarg;
    }
    /* --data may also follow the words: restore FILE --data DIR */
    int n = argc - optind;
    char **w = argv + optind;
    if (n == 4 && strcmp(w[2], "--data") == 0) {
        data = w[3];
        n = 2;
    } else if (n == 3 && strncmp(w[2], "--data=", 7) == 0) {
        data = w[2] + 7;
        n = 2;
    }
    if (n < 1)
        return zk__cli_usage_error("snapshot", "expected save or restore");
    if (strcmp(w[0], "save") == 0) {
        if (n != 3 || data)
            return zk__cli_usage_error("snapshot", "save takes MOUNTPOINT "
                                       "and FILE");
        return save(w[1], w[2]);
    }
    if (strcmp(w[0], "restore") == 0) {
        if (n != 2 || !data || !*data)
            return zk__cli_usage_error("snapshot", "restore takes FILE and "
                                       "--data DIR");
        return restore(w[1], data);
    }
    return zk__cli_usage_error("snapshot", "unknown action '%s' (save or "
                               "restore)", w[0]);
}
