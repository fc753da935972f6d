/*
 * fuzz_snap.c — the snapshot stream as a learner receives it after a SNAP
 * message (replica/snap_rx.c): the BEGIN, zstd data and END frames, the
 * decompression into a temporary file, and the checks at the end.
 *
 * Byte 0 picks the mode. Even: the rest is a list of frames, each
 * u8 kind (0 BEGIN, 1 data, 2 END, as ens_int.h's DATA flags say) |
 * u16 length | bytes, fed until one is refused. Odd: the rest is a
 * snapshot's decompressed content; the target compresses it with zstd
 * and sends a correct BEGIN, data frames and END, which must be accepted
 * and leave exactly that content in the file (a round trip through the
 * receiver); with bit 1 set it flips one compressed byte first, which
 * may only be refused or leave a file whose crc32 was checked.
 *
 * Checks: no crash, hang, leak, or memory beyond the receiver's bound;
 * an accepted stream's file holds sn->len bytes with the crc announced.
 */
#include "fuzz.h"
#include "snap_rx.h"
#include "zk_common.h"

#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#define ZXID        0x100000007ull
#define FRAMES_MAX  64
#define PIECE       1000        /* compressed bytes per data frame */

static const char *dir;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (!getenv("TMPDIR") && access("/dev/shm", W_OK) == 0)
        setenv("TMPDIR", "/dev/shm", 1);
    dir = fz_tmpdir("snap");
    return 0;
}

/* The file of an accepted stream holds what END vouched for. */
static void check_file(const struct zk__snap_rx *sn, const uint8_t *want,
                       size_t want_len)
{
    uint8_t *b = malloc(sn->len + 1);
    FZ_CHECK(b != NULL);
    FZ_CHECK(pread(sn->fd, b, sn->len, 0) == (ssize_t)sn->len);
    FZ_CHECK((uint32_t)crc32(0L, b, (uInt)sn->len) == sn->crc);
    if (want)
        FZ_CHECK(want_len == sn->len && memcmp(b, want, want_len) == 0);
    free(b);
}

static void run_frames(struct fz *f)
{
    struct zk__snap_rx *sn = zk__snap_rx_new(ZXID);
    const char *bad = NULL;
    int ended = 0;

    FZ_CHECK(sn != NULL);
    for (int i = 0; i < FRAMES_MAX && f->left && !bad && !ended; i++) {
        uint8_t kind = fz_u8(f) % 3;
        size_t len;
        const uint8_t *p = fz_bytes(f, 1 << 16, &len);
        if (kind == 0)
            bad = zk__snap_rx_begin(sn, dir, p, len);
        else if (kind == 1)
            bad = zk__snap_rx_data(sn, p, len);
        else
            ended = !(bad = zk__snap_rx_end(sn, p, len));
    }
    if (ended)
        check_file(sn, NULL, 0);
    zk__snap_rx_free(sn);
}

static void run_round_trip(const uint8_t *p, size_t len, int flip,
                           struct fz *f)
{
    size_t cap = ZSTD_compressBound(len), zlen;
    uint8_t *z = malloc(cap), begin[ZK__SNAP_BEGIN_LEN],
            end[ZK__SNAP_END_LEN];
    struct zk__snap_rx *sn = zk__snap_rx_new(ZXID);
    const char *bad;

    FZ_CHECK(z != NULL && sn != NULL);
    zlen = ZSTD_compress(z, cap, p, len, 1);
    FZ_CHECK(!ZSTD_isError(zlen));
    if (flip && zlen)
        z[fz_u16(f) % zlen] ^= (uint8_t)(fz_u8(f) | 1);
    zk_put_be32(begin, ZK__SNAP_MAGIC);
    begin[4] = ZK__SNAP_VERSION;
    begin[5] = ZK__SNAP_CODEC_ZSTD;
    begin[6] = begin[7] = 0;
    zk_put_be64(begin + 8, ZXID);
    zk_put_be64(begin + 16, len);
    bad = zk__snap_rx_begin(sn, dir, begin, sizeof(begin));
    FZ_CHECK(bad == NULL);
    for (size_t off = 0; off < zlen && !bad; off += PIECE)
        bad = zk__snap_rx_data(sn, z + off,
                               zlen - off < PIECE ? zlen - off : PIECE);
    zk_put_be64(end, ZXID);
    zk_put_be64(end + 8, len);
    zk_put_be64(end + 16, zlen);
    zk_put_be32(end + 24, (uint32_t)crc32(0L, p, (uInt)len));
    if (!bad)
        bad = zk__snap_rx_end(sn, end, sizeof(end));
    FZ_CHECK(flip || bad == NULL);
    if (!bad)
        check_file(sn, flip ? NULL : p, len);
    zk__snap_rx_free(sn);
    free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = {data, size};
    uint8_t mode = fz_u8(&f);

    if (mode & 1) {
        /* The flip position comes from the input's first bytes. */
        struct fz pos = {f.p, f.left};
        run_round_trip(f.p, f.left, mode & 2, &pos);
    } else {
        run_frames(&f);
    }
    return 0;
}
