/*
 * fuzz_txn.c — the transaction decoder (store/txn.c): zk_txn_verify and
 * zk_txn_decode on bytes from a peer or the log, and the name and path
 * checks on what they hand back.
 *
 * The first input byte chooses the mode. Odd: the rest goes to the
 * decoder as it is (header checks, checksum, truncation). Even: the rest
 * is a body and the target writes a valid header and crc32 in front of
 * it, so that mutations reach the ops instead of dying at the checksum.
 * Whatever decodes must encode again to exactly the same bytes (the
 * decoder accepts nothing the encoder cannot produce), and decode again
 * to the same transaction.
 */
#include "fuzz.h"
#include "zk_common.h"
#include "zk_txn.h"

#include <string.h>
#include <zlib.h>

static void same_op(const struct zk_op *a, const struct zk_op *b)
{
    FZ_CHECK(a->type == b->type && a->flags == b->flags &&
             a->version == b->version && a->mode == b->mode &&
             a->uid == b->uid && a->gid == b->gid &&
             a->attr_mask == b->attr_mask && a->ino == b->ino &&
             a->session == b->session && a->timeout_ms == b->timeout_ms);
    FZ_CHECK(a->path_len == b->path_len && a->path2_len == b->path2_len &&
             a->data_len == b->data_len && a->owner_len == b->owner_len);
    FZ_CHECK(memcmp(a->path, b->path, a->path_len) == 0 &&
             memcmp(a->path2, b->path2, a->path2_len) == 0 &&
             memcmp(a->data, b->data, a->data_len) == 0 &&
             memcmp(a->owner, b->owner, a->owner_len) == 0);
    FZ_CHECK(a->path[a->path_len] == '\0' && a->path2[a->path2_len] == '\0' &&
             a->owner[a->owner_len] == '\0');
}

static void round_trip(const uint8_t *buf, size_t len, struct zk_txn *t)
{
    uint8_t *enc;
    size_t enc_len;
    struct zk_txn *t2;

    FZ_CHECK(zk_txn_encode(t, &enc, &enc_len) == 0);
    FZ_CHECK(enc_len == len && memcmp(enc, buf, len) == 0);
    FZ_CHECK(zk_txn_decode(enc, enc_len, &t2) == 0);
    FZ_CHECK(t2->nops == t->nops && t2->time_ms == t->time_ms);
    for (uint32_t i = 0; i < t->nops; i++) {
        same_op(&t->ops[i], &t2->ops[i]);
        /* The checks the store and fs/ apply to decoded paths. */
        (void)zk_path_check(t->ops[i].path, t->ops[i].path_len);
        (void)zk_path_check(t->ops[i].path2, t->ops[i].path2_len);
        (void)zk_name_check(t->ops[i].path, t->ops[i].path_len);
    }
    zk_txn_free(t2);
    free(enc);
}

static void decode(const uint8_t *buf, size_t len)
{
    struct zk_txn *t;
    int vrc = zk_txn_verify(buf, len);
    int rc = zk_txn_decode(buf, len, &t);

    FZ_CHECK(rc == 0 || rc == ZK_ECORRUPT || rc == ZK_ETRUNCATED ||
             rc == ZK_EFOREIGN);
    FZ_CHECK(vrc == 0 || vrc == rc);    /* decode rejects what verify does */
    if (rc != 0)
        return;
    FZ_CHECK(t->nops >= 1 && t->nops <= ZK_TXN_OPS_MAX);
    round_trip(buf, len, t);
    zk_txn_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1) {
        decode(data + 1, size - 1);
        return 0;
    }
    size_t body = size - 1;
    uint8_t *buf = malloc(ZK_TXN_HDR_SIZE + body + 1);
    FZ_CHECK(buf != NULL);
    memcpy(buf, "ZKTX", 4);
    buf[4] = 0; buf[5] = ZK_TXN_VERSION; buf[6] = 0; buf[7] = 0;
    zk_put_be32(buf + 8, (uint32_t)body);
    memcpy(buf + ZK_TXN_HDR_SIZE, data + 1, body);
    zk_put_be32(buf + 12, (uint32_t)crc32(0L, buf + ZK_TXN_HDR_SIZE,
                                          (uInt)body));
    decode(buf, ZK_TXN_HDR_SIZE + body);
    free(buf);
    return 0;
}
