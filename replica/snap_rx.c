/*
 * snap_rx.c — the receiving end of a snapshot stream (snap_rx.h): checks
 * the BEGIN frame (format, zxid, announced size), decompresses the zstd
 * bytes into an unnamed temporary file as they come, and at END checks
 * that everything announced arrived whole.
 *
 * What it keeps true: memory stays bounded (one output buffer, zstd's
 * window); the file never holds more than the announced size; nothing is
 * accepted after the zstd frame's end; END passes only when sizes, the
 * compressed byte count, the zstd frame and the crc32 all agree.
 */
#include "snap_rx.h"
#include "zk_common.h"
#include "zk_config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

struct zk__snap_rx *zk__snap_rx_new(uint64_t zxid)
{
    struct zk__snap_rx *sn = calloc(1, sizeof(*sn));

    if (sn) {
        sn->fd = -1;
        sn->zxid = zxid;
    }
    return sn;
}

void zk__snap_rx_free(struct zk__snap_rx *sn)
{
    if (sn) {
        if (sn->fd >= 0)
            close(sn->fd);
        free(sn->obuf);
        ZSTD_freeDCtx(sn->dctx);
    }
    free(sn);
}

/* An unnamed file in dir for a received snapshot (O_TMPFILE, else a
 * named one unlinked at once): nothing to clean up after a crash. */
static int snap_tmpfile(const char *dir)
{
    char path[ZK_CONFIG_PATH_MAX + 32];
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR &&
                    errno != EINVAL))
        return fd >= 0 ? fd : -errno;
    snprintf(path, sizeof(path), "%s/zkfs-snapshot.XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    unlink(path);
    return fd;
}

const char *zk__snap_rx_begin(struct zk__snap_rx *sn, const char *dir,
                              const uint8_t *p, size_t len)
{
    if (sn->begun || len != ZK__SNAP_BEGIN_LEN ||
        zk_get_be32(p) != ZK__SNAP_MAGIC)
        return "malformed snapshot start";
    if (p[4] != ZK__SNAP_VERSION || p[5] != ZK__SNAP_CODEC_ZSTD)
        return "unsupported snapshot format version or codec";
    if (zk_get_be64(p + 8) != sn->zxid)
        return "snapshot start for another zxid";
    sn->total = zk_get_be64(p + 16);
    if (sn->total > ZK__SNAP_BYTES_MAX)
        return "snapshot too large";
    if (!(sn->dctx = ZSTD_createDCtx()) ||
        !(sn->obuf = malloc(ZK__SNAP_IO_BYTES)))
        return "out of memory";
    sn->fd = snap_tmpfile(dir);
    if (sn->fd < 0) {
        zk_log(ZK_LOG_ERROR, "ensemble: cannot create a temporary file in "
               "%s for a snapshot: %s", dir, zk_strerror(sn->fd));
        return "no temporary file for the snapshot";
    }
    sn->begun = 1;
    return NULL;
}

/* Appends n bytes of decompressed snapshot to its file (the page cache
 * takes them; at most ZK__SNAP_IO_BYTES per call). */
static int snap_write(struct zk__snap_rx *sn, const uint8_t *buf, size_t n)
{
    sn->crc = (uint32_t)crc32(sn->crc, buf, (uInt)n);
    while (n > 0) {
        ssize_t w = pwrite(sn->fd, buf, n, (off_t)sn->len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int rc = -errno;
            zk_log(ZK_LOG_ERROR, "ensemble: writing a received snapshot: "
                   "%s", zk_strerror(rc));
            return rc;
        }
        buf += w;
        n -= (size_t)w;
        sn->len += (uint64_t)w;
    }
    return 0;
}

const char *zk__snap_rx_data(struct zk__snap_rx *sn, const uint8_t *p,
                             size_t len)
{
    ZSTD_inBuffer in = {p, len, 0};

    if (!sn->begun)
        return "snapshot data before its start";
    sn->wire += len;
    while (in.pos < in.size) {
        if (sn->frame_done)
            return "bytes after the snapshot's end";
        ZSTD_outBuffer out = {sn->obuf, ZK__SNAP_IO_BYTES, 0};
        size_t ret = ZSTD_decompressStream(sn->dctx, &out, &in);
        if (ZSTD_isError(ret)) {
            zk_log(ZK_LOG_WARN, "ensemble: snapshot: zstd: %s",
                   ZSTD_getErrorName(ret));
            return "corrupt snapshot stream";
        }
        if (out.pos > sn->total - sn->len)
            return "snapshot longer than announced";
        if (out.pos && snap_write(sn, sn->obuf, out.pos))
            return "cannot store the snapshot";
        sn->frame_done = ret == 0;
    }
    return NULL;
}

const char *zk__snap_rx_end(struct zk__snap_rx *sn, const uint8_t *p,
                            size_t len)
{
    if (!sn->begun || len != ZK__SNAP_END_LEN ||
        zk_get_be64(p) != sn->zxid)
        return "bad end of snapshot";
    if (!sn->frame_done || sn->len != sn->total ||
        zk_get_be64(p + 8) != sn->total ||
        zk_get_be64(p + 16) != sn->wire)
        return "truncated snapshot";
    if (zk_get_be32(p + 24) != sn->crc)
        return "snapshot checksum mismatch";
    ZSTD_freeDCtx(sn->dctx);
    free(sn->obuf);
    sn->dctx = NULL;
    sn->obuf = NULL;
    return NULL;
}
