/*
 * test_txn.c — the transaction encoding: round trips of every op type,
 * truncation at every length, a flipped byte at every position, random and
 * mutated garbage (meant to run under ASan), and the name/path checks.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "zk_common.h"
#include "zk_txn.h"

#define FUZZ_ROUNDS 20000   /* random inputs per fuzz test */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* One op of every type with every field set. */
static struct zk_op sample_ops[10];

static void sample_fill(void)
{
    static const uint8_t data[] = {0, 1, 2, 0xff, 'x'};
    for (int i = 0; i < 10; i++) {
        struct zk_op *op = &sample_ops[i];
        memset(op, 0, sizeof(*op));
        op->type = (uint8_t)(i + 1);
        op->flags = 0x10u + (uint32_t)i;
        op->version = i % 2 ? -1 : i * 7;
        op->mode = 0644;
        op->uid = 1000u + (uint32_t)i;
        op->gid = 2000u + (uint32_t)i;
        op->attr_mask = 7;
        op->ino = 0x0102030405060708ull + (uint64_t)i;
        op->session = 0xdeadbeef00000000ull | (uint64_t)i;
        op->timeout_ms = 30000;
        op->path = "/a/b";
        op->path_len = 4;
        op->path2 = i == 5 ? "/c/d" : NULL;
        op->path2_len = i == 5 ? 4 : 0;
        op->data = data;
        op->data_len = (uint32_t)(i % 3 ? sizeof(data) : 0);
        op->owner = "host:123";
        op->owner_len = 8;
    }
}

static void encode_sample(uint8_t **buf, size_t *len)
{
    struct zk_txn txn = {1234567890123ull, 10, sample_ops};
    sample_fill();
    ck_assert_int_eq(zk_txn_encode(&txn, buf, len), 0);
}

static void assert_bytes(const void *a, uint32_t alen, const void *b,
                         uint32_t blen)
{
    ck_assert_uint_eq(alen, blen);
    if (alen)
        ck_assert(memcmp(a, b, alen) == 0);
}

START_TEST(roundtrip_every_op)
{
    uint8_t *buf;
    size_t len;
    struct zk_txn *t;
    encode_sample(&buf, &len);
    ck_assert_int_eq(zk_txn_verify(buf, len), 0);
    ck_assert_int_eq(zk_txn_decode(buf, len, &t), 0);
    ck_assert_uint_eq(t->time_ms, 1234567890123ull);
    ck_assert_uint_eq(t->nops, 10);
    for (int i = 0; i < 10; i++) {
        const struct zk_op *a = &sample_ops[i], *b = &t->ops[i];
        ck_assert_uint_eq(a->type, b->type);
        ck_assert_uint_eq(a->flags, b->flags);
        ck_assert_int_eq(a->version, b->version);
        ck_assert_uint_eq(a->mode, b->mode);
        ck_assert_uint_eq(a->uid, b->uid);
        ck_assert_uint_eq(a->gid, b->gid);
        ck_assert_uint_eq(a->attr_mask, b->attr_mask);
        ck_assert_uint_eq(a->ino, b->ino);
        ck_assert_uint_eq(a->session, b->session);
        ck_assert_uint_eq(a->timeout_ms, b->timeout_ms);
        assert_bytes(a->path, a->path_len, b->path, b->path_len);
        assert_bytes(a->path2, a->path2_len, b->path2, b->path2_len);
        assert_bytes(a->data, a->data_len, b->data, b->data_len);
        assert_bytes(a->owner, a->owner_len, b->owner, b->owner_len);
        ck_assert_int_eq(b->path[b->path_len], '\0');
        ck_assert_int_eq(b->path2[b->path2_len], '\0');
        ck_assert_int_eq(b->owner[b->owner_len], '\0');
    }
    zk_txn_free(t);
    free(buf);
}
END_TEST

START_TEST(roundtrip_max_data)
{
    uint8_t *data = malloc(ZK_DATA_MAX), *buf;
    size_t len;
    struct zk_txn *t;
    for (size_t i = 0; i < ZK_DATA_MAX; i++)
        data[i] = (uint8_t)(i * 31);
    struct zk_op op = {.type = ZK_OP_SET_DATA, .version = -1, .path = "/x",
                       .path_len = 2, .data = data, .data_len = ZK_DATA_MAX};
    struct zk_txn txn = {1, 1, &op};
    ck_assert_int_eq(zk_txn_encode(&txn, &buf, &len), 0);
    ck_assert_int_eq(zk_txn_decode(buf, len, &t), 0);
    ck_assert_uint_eq(t->ops[0].data_len, ZK_DATA_MAX);
    ck_assert(memcmp(t->ops[0].data, data, ZK_DATA_MAX) == 0);
    zk_txn_free(t);
    free(buf);
    free(data);
}
END_TEST

START_TEST(encode_rejects)
{
    uint8_t *buf = NULL;
    size_t len;
    struct zk_op op = {.type = ZK_OP_CREATE, .path = "/x", .path_len = 2};
    struct zk_txn txn = {1, 0, &op};
    ck_assert_int_eq(zk_txn_encode(&txn, &buf, &len), -EINVAL);
    txn.nops = ZK_TXN_OPS_MAX + 1;
    ck_assert_int_eq(zk_txn_encode(&txn, &buf, &len), -EINVAL);
    txn.nops = 1;
    op.type = 0;
    ck_assert_int_eq(zk_txn_encode(&txn, &buf, &len), -EINVAL);
    op.type = ZK_OP_TYPE_MAX + 1;
    ck_assert_int_eq(zk_txn_encode(&txn, &buf, &len), -EINVAL);
    op.type = ZK_OP_SET_DATA;
    op.data = (const uint8_t *)"x";
    op.data_len = ZK_DATA_MAX + 1;
    ck_assert_int_eq(zk_txn_encode(&txn, &buf, &len), -EINVAL);
    op.data_len = 0;
    op.path_len = ZK_PATH_MAX + 1;
    ck_assert_int_eq(zk_txn_encode(&txn, &buf, &len), -EINVAL);
    ck_assert_ptr_null(buf);
}
END_TEST

START_TEST(truncated_every_length)
{
    uint8_t *buf;
    size_t len;
    struct zk_txn *t = NULL;
    encode_sample(&buf, &len);
    for (size_t n = 0; n < len; n++) {
        /* A copy of exactly n bytes, so ASan catches any over-read. */
        uint8_t *cut = malloc(n ? n : 1);
        memcpy(cut, buf, n);
        int rc = zk_txn_decode(cut, n, &t);
        ck_assert_msg(rc == ZK_ETRUNCATED, "len %zu: %d", n, rc);
        ck_assert_int_ne(zk_txn_verify(cut, n), 0);
        free(cut);
    }
    ck_assert_ptr_null(t);
    free(buf);
}
END_TEST

START_TEST(flipped_byte_every_position)
{
    uint8_t *buf;
    size_t len;
    struct zk_txn *t = NULL;
    encode_sample(&buf, &len);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            buf[i] ^= (uint8_t)(1u << bit);
            int rc = zk_txn_decode(buf, len, &t);
            ck_assert_msg(rc == ZK_ECORRUPT || rc == ZK_EFOREIGN ||
                          rc == ZK_ETRUNCATED, "pos %zu: %d", i, rc);
            buf[i] ^= (uint8_t)(1u << bit);
        }
    }
    ck_assert_ptr_null(t);
    ck_assert_int_eq(zk_txn_verify(buf, len), 0);
    free(buf);
}
END_TEST

START_TEST(trailing_bytes_rejected)
{
    uint8_t *buf;
    size_t len;
    struct zk_txn *t = NULL;
    encode_sample(&buf, &len);
    uint8_t *longer = calloc(1, len + 1);
    memcpy(longer, buf, len);
    ck_assert_int_eq(zk_txn_decode(longer, len + 1, &t), ZK_ECORRUPT);
    buf[5] = 2;   /* version 2 */
    ck_assert_int_eq(zk_txn_verify(buf, len), ZK_EFOREIGN);
    free(longer);
    free(buf);
}
END_TEST

/* Rewrites the header crc so that the body is decoded, not crc-rejected. */
static void fix_crc(uint8_t *buf, size_t len)
{
    if (len < ZK_TXN_HDR_SIZE)
        return;
    zk_put_be32(buf + 8, (uint32_t)(len - ZK_TXN_HDR_SIZE));
    zk_put_be32(buf + 12, (uint32_t)crc32(0L, buf + ZK_TXN_HDR_SIZE,
                                          (uInt)(len - ZK_TXN_HDR_SIZE)));
}

START_TEST(fuzz_mutated_bodies)
{
    uint8_t *orig;
    size_t olen;
    encode_sample(&orig, &olen);
    int decoded = 0;
    for (int round = 0; round < FUZZ_ROUNDS; round++) {
        size_t len = olen - (rng() % 4 == 0 ? rng() % olen : 0);
        uint8_t *buf = malloc(len ? len : 1);
        memcpy(buf, orig, len);
        int nmut = 1 + (int)(rng() % 4);
        for (int m = 0; m < nmut && len > ZK_TXN_HDR_SIZE; m++) {
            size_t pos = ZK_TXN_HDR_SIZE + rng() % (len - ZK_TXN_HDR_SIZE);
            buf[pos] = (uint8_t)(rng() % 3 == 0 ? 0xff : rng());
        }
        fix_crc(buf, len);
        struct zk_txn *t;
        int rc = zk_txn_decode(buf, len, &t);
        if (rc == 0) {
            decoded++;
            for (uint32_t i = 0; i < t->nops; i++) {
                /* Touch every byte: ASan checks they are inside t. */
                const struct zk_op *op = &t->ops[i];
                ck_assert_uint_eq(strlen(op->owner) <= op->owner_len, 1);
                ck_assert_uint_le(op->data_len, ZK_DATA_MAX);
                ck_assert_int_eq(op->path[op->path_len], '\0');
            }
            zk_txn_free(t);
        } else {
            ck_assert(rc == ZK_ECORRUPT || rc == ZK_ETRUNCATED ||
                      rc == ZK_EFOREIGN);
        }
        free(buf);
    }
    ck_assert_int_gt(decoded, 0);
    free(orig);
}
END_TEST

START_TEST(fuzz_random_garbage)
{
    for (int round = 0; round < FUZZ_ROUNDS; round++) {
        size_t len = rng() % 512;
        uint8_t *buf = malloc(len ? len : 1);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rng();
        if (len >= 8 && rng() % 2) {
            memcpy(buf, "ZKTX\0\1\0\0", 8);
            fix_crc(buf, len);
        }
        struct zk_txn *t;
        int rc = zk_txn_decode(buf, len, &t);
        if (rc == 0)
            zk_txn_free(t);
        else
            ck_assert(rc == ZK_ECORRUPT || rc == ZK_ETRUNCATED ||
                      rc == ZK_EFOREIGN);
        free(buf);
    }
}
END_TEST

START_TEST(huge_length_fields)
{
    /* A valid header around a body claiming 4 GiB strings. */
    uint8_t body[12 + 61];
    memset(body, 0xff, sizeof(body));
    zk_put_be32(body + 8, 1);  /* nops */
    body[12] = ZK_OP_CREATE;
    uint8_t buf[ZK_TXN_HDR_SIZE + sizeof(body)];
    memcpy(buf, "ZKTX\0\1\0\0", 8);
    memcpy(buf + ZK_TXN_HDR_SIZE, body, sizeof(body));
    fix_crc(buf, sizeof(buf));
    struct zk_txn *t;
    ck_assert_int_eq(zk_txn_decode(buf, sizeof(buf), &t), ZK_ECORRUPT);
    zk_put_be32(buf + 8, 0xffffffffu);
    ck_assert_int_eq(zk_txn_verify(buf, sizeof(buf)), ZK_ECORRUPT);
}
END_TEST

START_TEST(name_check)
{
    char longname[ZK_NAME_MAX + 2];
    memset(longname, 'a', sizeof(longname));
    ck_assert_int_eq(zk_name_check("a", 1), 0);
    ck_assert_int_eq(zk_name_check("foo.bar-1", 9), 0);
    ck_assert_int_eq(zk_name_check("...", 3), 0);
    ck_assert_int_eq(zk_name_check(longname, ZK_NAME_MAX), 0);
    ck_assert_int_eq(zk_name_check(longname, ZK_NAME_MAX + 1), -ENAMETOOLONG);
    ck_assert_int_eq(zk_name_check("", 0), -EINVAL);
    ck_assert_int_eq(zk_name_check(".", 1), -EINVAL);
    ck_assert_int_eq(zk_name_check("..", 2), -EINVAL);
    ck_assert_int_eq(zk_name_check("a/b", 3), -EINVAL);
    ck_assert_int_eq(zk_name_check("a\0b", 3), -EINVAL);
    ck_assert_int_eq(zk_name_check("a\nb", 3), -EINVAL);
    ck_assert_int_eq(zk_name_check("\x7f", 1), -EINVAL);
    ck_assert_int_eq(zk_name_check("h\xc3\xa9", 3), 0);  /* UTF-8 is fine */
}
END_TEST

START_TEST(path_check)
{
    ck_assert_int_eq(zk_path_check("/", 1), 0);
    ck_assert_int_eq(zk_path_check("/a", 2), 0);
    ck_assert_int_eq(zk_path_check("/a/b/c", 6), 0);
    ck_assert_int_eq(zk_path_check("", 0), -EINVAL);
    ck_assert_int_eq(zk_path_check("a", 1), -EINVAL);
    ck_assert_int_eq(zk_path_check("/a/", 3), -EINVAL);
    ck_assert_int_eq(zk_path_check("//a", 3), -EINVAL);
    ck_assert_int_eq(zk_path_check("/a//b", 5), -EINVAL);
    ck_assert_int_eq(zk_path_check("/a/./b", 6), -EINVAL);
    ck_assert_int_eq(zk_path_check("/a/..", 5), -EINVAL);
    ck_assert_int_eq(zk_path_check("/a\0b", 4), -EINVAL);
    char *p = malloc(ZK_PATH_MAX + 1);
    for (int i = 0; i < ZK_PATH_MAX + 1; i++)
        p[i] = i % 100 == 0 ? '/' : 'x';
    ck_assert_int_eq(zk_path_check(p, ZK_PATH_MAX - 1), 0);
    ck_assert_int_eq(zk_path_check(p, ZK_PATH_MAX), -ENAMETOOLONG);
    memset(p + 1, 'y', ZK_NAME_MAX + 1);
    ck_assert_int_eq(zk_path_check(p, ZK_NAME_MAX + 2), -ENAMETOOLONG);
    free(p);
}
END_TEST

Suite *txn_suite(void);
Suite *txn_suite(void)
{
    Suite *s = suite_create("txn");
    TCase *tc = tcase_create("encoding");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, roundtrip_every_op);
    tcase_add_test(tc, roundtrip_max_data);
    tcase_add_test(tc, encode_rejects);
    tcase_add_test(tc, truncated_every_length);
    tcase_add_test(tc, flipped_byte_every_position);
    tcase_add_test(tc, trailing_bytes_rejected);
    tcase_add_test(tc, fuzz_mutated_bodies);
    tcase_add_test(tc, fuzz_random_garbage);
    tcase_add_test(tc, huge_length_fields);
    tcase_add_test(tc, name_check);
    tcase_add_test(tc, path_check);
    suite_add_tcase(s, tc);
    return s;
}
