/*
 * snap_rx.h — private to replica/: the receiving end of a snapshot
 * stream (the DATA frames that follow a Zab SNAP message): their format,
 * and the decoder that checks them and decompresses the zstd stream into
 * an unnamed temporary file. ens_snaprecv.c drives it from its connections
 * (ens_snapsend.c sends the same format); test/fuzz/fuzz_snap feeds it
 * directly.
 *
 * Frames (DATA flags ENS_FRAME_SNAP_BEGIN, _SNAP, _END in ens_int.h):
 *   BEGIN  u32 ZK__SNAP_MAGIC | u8 version | u8 codec | u16 0 |
 *          u64 zxid | u64 decompressed size          (ZK__SNAP_BEGIN_LEN)
 *   SNAP   zstd bytes, any number of frames
 *   END    u64 zxid | u64 decompressed size | u64 compressed size |
 *          u32 crc32 of the decompressed bytes      (ZK__SNAP_END_LEN)
 *
 * Threads: one receiver is used by one thread at a time (the loop's).
 */
#ifndef ZK_SNAP_RX_H
#define ZK_SNAP_RX_H

#include <stddef.h>
#include <stdint.h>
#include <zstd.h>

#include "zk_zab.h"

#define ZK__SNAP_MAGIC       0x5a4b535au /* "ZKSZ": BEGIN's first bytes */
#define ZK__SNAP_VERSION     1           /* snapshot stream format       */
#define ZK__SNAP_CODEC_ZSTD  1
#define ZK__SNAP_BEGIN_LEN   24          /* magic ver codec 0 0 zxid total */
#define ZK__SNAP_END_LEN     28          /* zxid raw wire crc32          */
#define ZK__SNAP_BYTES_MAX   (1ull << 40) /* a received snapshot's size  */
#define ZK__SNAP_IO_BYTES    (1u << 20)  /* decompression output unit    */

/* A snapshot stream received after a SNAP message: decompressed as it
 * arrives into an unnamed temporary file (so memory stays bounded
 * whatever its size), read back by whoever installs it. Fields are read
 * by the runtime (progress, install); only the functions below change
 * them, except start_ms, log_ms and log_pct, which are the runtime's. */
struct zk__snap_rx {
    int fd;                       /* -1 until BEGIN                      */
    uint8_t *obuf;                /* ZK__SNAP_IO_BYTES of zstd output    */
    uint64_t len;                 /* bytes in the file                   */
    uint64_t zxid;
    uint64_t sessions[ZK_ZAB_MEMBERS_MAX];  /* the SNAP's session table */
    ZSTD_DCtx *dctx;              /* after BEGIN, until END              */
    int begun, frame_done;        /* frame_done: zstd frame complete     */
    uint64_t total, wire;         /* announced size; compressed bytes    */
    uint32_t crc;                 /* crc32 of the file's bytes           */
    uint64_t start_ms, log_ms;
    unsigned log_pct;
};

/* A receiver for the snapshot at zxid; NULL if out of memory. Free it
 * with zk__snap_rx_free (NULL is fine), which closes the file. */
struct zk__snap_rx *zk__snap_rx_new(uint64_t zxid);
void zk__snap_rx_free(struct zk__snap_rx *sn);

/* The three frames. Each returns NULL, or why the stream is refused (a
 * static string; the receiver must then be freed, not fed again).
 * zk__snap_rx_begin creates the temporary file in dir. A stream is whole
 * once zk__snap_rx_end returned NULL: the file then holds exactly the
 * announced bytes (sn->len) with the announced checksum. */
const char *zk__snap_rx_begin(struct zk__snap_rx *sn, const char *dir,
                              const uint8_t *p, size_t len);
const char *zk__snap_rx_data(struct zk__snap_rx *sn, const uint8_t *p,
                             size_t len);
const char *zk__snap_rx_end(struct zk__snap_rx *sn, const uint8_t *p,
                            size_t len);

#endif /* ZK_SNAP_RX_H */
