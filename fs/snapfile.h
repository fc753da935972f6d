/*
 * snapfile.h — private to fs/: the backup file `zkfs snapshot save`
 * writes and `zkfs snapshot restore` reads (docs/formats.md, section 5).
 * All integers big-endian.
 *
 *   header  (48 bytes)
 *     0  4  magic "ZKBK"
 *     4  4  u32 file version (ZK__SNAPFILE_VERSION)
 *     8  4  u32 store format of the stream (ZK_STORE_FORMAT)
 *    12  4  u32 flags, 0
 *    16  8  u64 zxid of the snapshot
 *    24  8  u64 wall-clock ms when it was taken
 *    32  8  u64 znodes in it (root included)
 *    40  8  u64 bytes of the snapshot stream (uncompressed)
 *   body    one zstd frame (with its content checksum) of the snapshot
 *           stream (formats.md section 4) without ephemerals, sessions
 *           and locks (zk_store_backup_stream)
 *   trailer (16 bytes)
 *     0  4  magic "ZKBE"
 *     4  8  u64 body length (compressed bytes)
 *    12  4  u32 crc32 (zlib) of every byte of the file before it
 *
 * So a file is checked three times over: the trailer's crc32 (truncation,
 * any flipped byte; checked before anything is decompressed), zstd's
 * checksum of the decompressed stream, and the stream's own crc32 and
 * record count (what the store checks while installing it).
 */
#ifndef ZK_SNAPFILE_H
#define ZK_SNAPFILE_H

#include <stdint.h>

#include "zk_common.h"

#define ZK__SNAPFILE_MAGIC     "ZKBK"
#define ZK__SNAPFILE_END_MAGIC "ZKBE"
#define ZK__SNAPFILE_VERSION   1
#define ZK__SNAPFILE_HDR       48
#define ZK__SNAPFILE_TRAILER   16
#define ZK__SNAPFILE_ZSTD_LEVEL 3

struct zk__snapfile_hdr {
    uint32_t version, store_format, flags;
    uint64_t zxid, time_ms, znodes, raw_bytes;
};

static inline void zk__snapfile_hdr_encode(const struct zk__snapfile_hdr *h,
                                           uint8_t *p)
{
    memcpy(p, ZK__SNAPFILE_MAGIC, 4);
    zk_put_be32(p + 4, h->version);
    zk_put_be32(p + 8, h->store_format);
    zk_put_be32(p + 12, h->flags);
    zk_put_be64(p + 16, h->zxid);
    zk_put_be64(p + 24, h->time_ms);
    zk_put_be64(p + 32, h->znodes);
    zk_put_be64(p + 40, h->raw_bytes);
}

/* 0, or ZK_EFOREIGN (not a backup file, or another file version). */
static inline int zk__snapfile_hdr_decode(const uint8_t *p,
                                          struct zk__snapfile_hdr *h)
{
    if (memcmp(p, ZK__SNAPFILE_MAGIC, 4) != 0)
        return ZK_EFOREIGN;
    h->version = zk_get_be32(p + 4);
    h->store_format = zk_get_be32(p + 8);
    h->flags = zk_get_be32(p + 12);
    h->zxid = zk_get_be64(p + 16);
    h->time_ms = zk_get_be64(p + 24);
    h->znodes = zk_get_be64(p + 32);
    h->raw_bytes = zk_get_be64(p + 40);
    return h->version == ZK__SNAPFILE_VERSION ? 0 : ZK_EFOREIGN;
}

#endif /* ZK_SNAPFILE_H */
