/*
 * ctl_snapshot.c — the daemon's half of `zkfs snapshot save`: the control
 * file's "snapshot" request writes a backup file (snapfile.h) of the
 * committed tree, which the control file then serves as the response
 * body (ctl.c), for the command to copy where it was asked to.
 *
 * The work runs on a libuv worker thread, not the loop: it pins one
 * committed version of the store (one LMDB read transaction, so the file
 * is exactly the state at one zxid while the replica keeps committing),
 * streams it without ephemerals (zk_store_backup_stream) through zstd into
 * an unnamed file (O_TMPFILE) in the data directory, and writes the header
 * and trailer. The unnamed file is gone with its last descriptor, so a
 * daemon that dies half-way leaves nothing behind. The requester may go
 * away meanwhile (zk__fs_snapshot_cancel): the worker then stops at its
 * next chunk, and the loop frees the job when the worker returns. Teardown
 * runs the loop until every worker returned, before the store closes.
 */
#include "fs_int.h"
#include "snapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

struct zk__fs_snapjob {
    uv_work_t work;
    struct zk_fs *fs;
    zk__fs_snapshot_cb done;
    void *arg;                  /* NULL: cancelled (loop thread)       */
    _Atomic int cancel;         /* read by the worker                  */
    int fd;
    int err;
    uint64_t len;               /* file bytes                          */
    uint64_t off;               /* worker: next body byte's offset     */
    uint32_t crc;               /* worker: crc32 of the body so far    */
    uint64_t raw;               /* worker: stream bytes compressed     */
    ZSTD_CCtx *cctx;
    uint8_t out[ZSTD_BLOCKSIZE_MAX + 1024];
};

static int write_at(int fd, const void *p, size_t len, uint64_t off)
{
    const uint8_t *b = p;
    while (len > 0) {
        ssize_t n = pwrite(fd, b, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        b += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/* Runs zstd over in[0..len) with mode and appends what it gives. */
static int zcompress(struct zk__fs_snapjob *j, const uint8_t *buf, size_t len,
                    ZSTD_EndDirective mode)
{
    ZSTD_inBuffer in = {buf, len, 0};
    size_t left;
    do {
        ZSTD_outBuffer out = {j->out, sizeof(j->out), 0};
        left = ZSTD_compressStream2(j->cctx, &out, &in, mode);
        if (ZSTD_isError(left))
            return -ENOMEM;     /* zstd fails only for memory here */
        int rc = write_at(j->fd, j->out, out.pos, j->off);
        if (rc != 0)
            return rc;
        j->crc = (uint32_t)crc32(j->crc, j->out, (uInt)out.pos);
        j->off += out.pos;
    } while (mode == ZSTD_e_end ? left != 0 : in.pos < in.size);
    return 0;
}

static int on_chunk(void *arg, const uint8_t *buf, size_t len)
{
    struct zk__fs_snapjob *j = arg;
    if (atomic_load(&j->cancel))
        return -ECANCELED;
    j->raw += len;
    return zcompress(j, buf, len, ZSTD_e_continue);
}

/* Header, then the trailer over header + body. */
static int finish_file(struct zk__fs_snapjob *j, struct zk__snapfile_hdr *h)
{
    uint8_t hb[ZK__SNAPFILE_HDR], tb[ZK__SNAPFILE_TRAILER];
    uint64_t body = j->off - ZK__SNAPFILE_HDR;
    zk__snapfile_hdr_encode(h, hb);
    uint32_t crc = (uint32_t)crc32(0, hb, sizeof(hb));
    crc = (uint32_t)crc32_combine(crc, j->crc, (z_off_t)body);
    memcpy(tb, ZK__SNAPFILE_END_MAGIC, 4);
    zk_put_be64(tb + 4, body);
    crc = (uint32_t)crc32(crc, tb, 12);
    zk_put_be32(tb + 12, crc);
    int rc = write_at(j->fd, hb, sizeof(hb), 0);
    if (rc == 0)
        rc = write_at(j->fd, tb, sizeof(tb), j->off);
    j->len = j->off + sizeof(tb);
    return rc;
}

static int write_backup(struct zk__fs_snapjob *j)
{
    struct zk__snapfile_hdr h = {.version = ZK__SNAPFILE_VERSION,
                                 .store_format = ZK_STORE_FORMAT};
    struct zk_store_backup_info info = {0};
    struct zk_store_snap *sn = NULL;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    h.time_ms = (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
    j->cctx = ZSTD_createCCtx();
    if (j->cctx == NULL)
        return -ENOMEM;
    ZSTD_CCtx_setParameter(j->cctx, ZSTD_c_compressionLevel,
                           ZK__SNAPFILE_ZSTD_LEVEL);
    ZSTD_CCtx_setParameter(j->cctx, ZSTD_c_checksumFlag, 1);
    j->off = ZK__SNAPFILE_HDR;
    int rc = zk_store_snapshot_open(j->fs->store, &sn, &h.zxid);
    if (rc == 0)
        rc = zk_store_backup_stream(sn, on_chunk, j, &info);
    zk_store_snapshot_close(sn);
    if (rc == 0)
        rc = zcompress(j, NULL, 0, ZSTD_e_end);
    h.znodes = info.znodes;
    h.raw_bytes = j->raw;
    if (rc == 0)
        rc = finish_file(j, &h);
    ZSTD_freeCCtx(j->cctx);
    j->cctx = NULL;
    if (rc == 0)
        zk_log(ZK_LOG_INFO, "snapshot: saved zxid %#llx, %llu znodes "
               "(%llu ephemerals left out), %llu bytes",
               (unsigned long long)h.zxid, (unsigned long long)info.znodes,
               (unsigned long long)info.ephemerals,
               (unsigned long long)j->len);
    return rc;
}

static void snap_work(uv_work_t *w)
{
    struct zk__fs_snapjob *j = w->data;
    j->fd = open(j->fs->opts->data_dir, O_TMPFILE | O_RDWR | O_CLOEXEC,
                 0600);
    if (j->fd < 0) {
        j->err = -errno;
        zk_log(ZK_LOG_ERROR, "snapshot: no temporary file in %s: %s",
               j->fs->opts->data_dir, zk_strerror(j->err));
        return;
    }
    j->err = write_backup(j);
}

static void snap_after(uv_work_t *w, int status)
{
    struct zk__fs_snapjob *j = w->data;
    int err = status ? status : j->err;
    if (err == 0 && j->arg != NULL) {
        j->fs->backups++;
        j->fs->backup_bytes += j->len;
    } else {
        j->fs->backups_failed++;
    }
    if (j->arg != NULL && err == 0) {
        j->done(j->arg, 0, j->fd, j->len);   /* the fd is the caller's */
        j->fd = -1;
    } else if (j->arg != NULL) {
        j->done(j->arg, err, -1, 0);
    }
    if (j->fd >= 0)
        close(j->fd);
    free(j);
}

int zk__fs_snapshot_start(struct zk_fs *fs, zk__fs_snapshot_cb done,
                          void *arg, struct zk__fs_snapjob **out)
{
    struct zk__fs_snapjob *j = malloc(sizeof(*j));
    if (j == NULL)
        return -ENOMEM;
    memset(j, 0, offsetof(struct zk__fs_snapjob, out));
    j->fs = fs;
    j->done = done;
    j->arg = arg;
    j->fd = -1;
    j->work.data = j;
    int rc = uv_queue_work(&fs->loop, &j->work, snap_work, snap_after);
    if (rc != 0) {
        free(j);
        return rc;
    }
    *out = j;
    return 0;
}

void zk__fs_snapshot_cancel(struct zk__fs_snapjob *j)
{
    j->arg = NULL;
    atomic_store(&j->cancel, 1);
}
