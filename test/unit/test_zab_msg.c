/*
 * test_zab_msg.c — the wire encoding of the consensus core's messages:
 * round trips of every message type, and rejection of truncated,
 * malformed and oversized input with the documented error codes.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zk_common.h"
#include "zk_zab.h"

static const uint8_t pay1[] = "hello, zab";
static const uint8_t pay2[] = { 0, 1, 2, 3, 255 };

static struct zk_zab_entry ents[3] = {
    { ZK_ZAB_ZXID(7, 1), 11, 2, ZK_ZAB_ENTRY_WRITE, sizeof(pay1), pay1 },
    { ZK_ZAB_ZXID(7, 2), 0, 1, ZK_ZAB_ENTRY_SESSION_CLOSE, 5, pay2 },
    { ZK_ZAB_ZXID(7, 3), 12, 2, ZK_ZAB_ENTRY_WRITE, 0, pay1 },
};

static struct zk_zab_msg sample(uint8_t type)
{
    struct zk_zab_msg m;
    memset(&m, 0, sizeof(m));
    m.type = type;
    m.flags = ZK_ZAB_MF_SYNCED;
    m.from = 3; m.to = 1;
    m.epoch = 7; m.link = 0x1234567890abcdefull; m.seq = 42;
    m.zxid = ZK_ZAB_ZXID(7, 3); m.zxid2 = 5; m.aux = ~0ull;
    m.state = ZK_ZAB_LEADING; m.leader = 3;
    if (type == ZK_ZAB_MSG_SNAP) {
        m.n_sessions = 3;
        m.sessions[0] = 1; m.sessions[2] = 0xffffffffffffffffull;
    }
    if (type == ZK_ZAB_MSG_PROPOSE || type == ZK_ZAB_MSG_INFORM ||
        type == ZK_ZAB_MSG_REQUEST) {
        m.n_entries = 3;
        m.entries = ents;
    }
    return m;
}

static size_t enc(const struct zk_zab_msg *m, uint8_t *buf, size_t cap)
{
    size_t len = 0;
    ck_assert_int_eq(zk_zab_msg_encode(m, buf, cap, &len), 0);
    ck_assert_uint_eq(len, zk_zab_msg_encoded_size(m));
    return len;
}

START_TEST(round_trip_every_type)
{
    uint8_t buf[1024];
    for (unsigned t = 1; t <= ZK_ZAB_MSG_TYPE_MAX; t++) {
        struct zk_zab_msg m = sample((uint8_t)t), d;
        struct zk_zab_entry out[8];
        size_t len = enc(&m, buf, sizeof(buf));
        ck_assert_int_eq(zk_zab_msg_decode(buf, len, &d, out, 8), 0);
        ck_assert_uint_eq(d.type, t);
        ck_assert_uint_eq(d.flags, m.flags);
        ck_assert_uint_eq(d.from, 3);
        ck_assert_uint_eq(d.to, 1);
        ck_assert_uint_eq(d.epoch, 7);
        ck_assert_uint_eq(d.link, m.link);
        ck_assert_uint_eq(d.seq, 42);
        ck_assert_uint_eq(d.zxid, m.zxid);
        ck_assert_uint_eq(d.zxid2, 5);
        ck_assert_uint_eq(d.aux, ~0ull);
        ck_assert_uint_eq(d.state, ZK_ZAB_LEADING);
        ck_assert_uint_eq(d.leader, 3);
        ck_assert_uint_eq(d.n_sessions, m.n_sessions);
        for (uint32_t i = 0; i < d.n_sessions; i++)
            ck_assert_uint_eq(d.sessions[i], m.sessions[i]);
        ck_assert_uint_eq(d.n_entries, m.n_entries);
        for (uint32_t i = 0; i < d.n_entries; i++) {
            ck_assert_uint_eq(d.entries[i].zxid, ents[i].zxid);
            ck_assert_uint_eq(d.entries[i].req_id, ents[i].req_id);
            ck_assert_uint_eq(d.entries[i].origin, ents[i].origin);
            ck_assert_uint_eq(d.entries[i].type, ents[i].type);
            ck_assert_uint_eq(d.entries[i].len, ents[i].len);
            ck_assert_mem_eq(d.entries[i].data, ents[i].data, ents[i].len);
        }
        ck_assert_str_ne(zk_zab_msg_name(t), "?");
    }
    ck_assert_str_eq(zk_zab_msg_name(0), "?");
    ck_assert_str_eq(zk_zab_msg_name(99), "?");
}
END_TEST

START_TEST(big_endian_layout)
{
    uint8_t buf[256];
    struct zk_zab_msg m = sample(ZK_ZAB_MSG_COMMIT);
    size_t len = enc(&m, buf, sizeof(buf));
    ck_assert_uint_eq(len, 76);
    ck_assert_uint_eq(buf[0], ZK_ZAB_MSG_VERSION);
    ck_assert_uint_eq(buf[1], ZK_ZAB_MSG_COMMIT);
    ck_assert_uint_eq(zk_get_be32(buf + 4), 3);
    ck_assert_uint_eq(zk_get_be64(buf + 20), 0x1234567890abcdefull);
    ck_assert_uint_eq(buf[20], 0x12);
    ck_assert_uint_eq(zk_get_be64(buf + 36), ZK_ZAB_ZXID(7, 3));
}
END_TEST

/* Every strict prefix of a valid message is ZK_ETRUNCATED. */
START_TEST(every_truncation_rejected)
{
    uint8_t buf[1024];
    unsigned types[] = { ZK_ZAB_MSG_PROPOSE, ZK_ZAB_MSG_SNAP,
                         ZK_ZAB_MSG_VOTE };
    for (size_t k = 0; k < 3; k++) {
        struct zk_zab_msg m = sample((uint8_t)types[k]), d;
        struct zk_zab_entry out[8];
        size_t len = enc(&m, buf, sizeof(buf));
        for (size_t cut = 0; cut < len; cut++) {
            memset(&d, 0xaa, sizeof(d));
            ck_assert_int_eq(zk_zab_msg_decode(buf, cut, &d, out, 8),
                             ZK_ETRUNCATED);
            ck_assert_uint_eq(d.type, 0xaa);      /* untouched on error */
        }
    }
}
END_TEST

START_TEST(malformed_rejected)
{
    uint8_t buf[1024], bad[1024];
    struct zk_zab_msg m = sample(ZK_ZAB_MSG_PROPOSE), d;
    struct zk_zab_entry out[8];
    size_t len = enc(&m, buf, sizeof(buf));
    const size_t ent0 = 72 + 4;          /* first entry header */
#define EXPECT(mut, err) do {                                             \
        memcpy(bad, buf, len);                                            \
        size_t blen = len;                                                \
        mut;                                                              \
        ck_assert_int_eq(zk_zab_msg_decode(bad, blen, &d, out, 8), err); \
    } while (0)
    EXPECT(bad[0] = 2, ZK_ECORRUPT);                      /* version   */
    EXPECT(bad[1] = 0, ZK_ECORRUPT);                      /* type      */
    EXPECT(bad[1] = ZK_ZAB_MSG_TYPE_MAX + 1, ZK_ECORRUPT);
    EXPECT(bad[2] = 0x80, ZK_ECORRUPT);                   /* flags     */
    EXPECT(bad[3] = 1, ZK_ECORRUPT);                      /* reserved  */
    EXPECT(zk_put_be32(bad + 68, ZK_ZAB_MEMBERS_MAX + 1), ZK_ECORRUPT);
    EXPECT(zk_put_be32(bad + 72, ZK_ZAB_MSG_ENTRIES_MAX + 1), ZK_ECORRUPT);
    EXPECT(zk_put_be32(bad + ent0 + 20, 9), ZK_ECORRUPT); /* entry type */
    EXPECT(zk_put_be32(bad + ent0 + 24, ZK_ZAB_PAYLOAD_MAX + 1), ZK_ECORRUPT);
    EXPECT(zk_put_be32(bad + ent0 + 24, 1000), ZK_ETRUNCATED);
    EXPECT(zk_put_be64(bad + ent0, ZK_ZAB_ZXID(9, 0)), ZK_ECORRUPT);
    EXPECT(bad[blen++] = 0, ZK_ECORRUPT);                 /* trailing  */
    EXPECT(bad[1] = ZK_ZAB_MSG_VOTE, ZK_ECORRUPT);        /* entries on VOTE */
#undef EXPECT
    ck_assert_int_eq(zk_zab_msg_decode(buf, len, &d, out, 2), -ENOBUFS);
    ck_assert_int_eq(zk_zab_msg_decode(buf, len, &d, out, 3), 0);
}
END_TEST

START_TEST(encode_limits)
{
    uint8_t buf[1024];
    size_t len = 0;
    struct zk_zab_msg m = sample(ZK_ZAB_MSG_PROPOSE);
    size_t need = zk_zab_msg_encoded_size(&m);
    ck_assert_int_eq(zk_zab_msg_encode(&m, buf, need - 1, &len), -ENOBUFS);
    ck_assert_uint_eq(len, 0);
    m.n_entries = ZK_ZAB_MSG_ENTRIES_MAX + 1;
    ck_assert_int_eq(zk_zab_msg_encode(&m, buf, sizeof(buf), &len), -EINVAL);
    m = sample(ZK_ZAB_MSG_SNAP);
    m.n_sessions = ZK_ZAB_MEMBERS_MAX + 1;
    ck_assert_int_eq(zk_zab_msg_encode(&m, buf, sizeof(buf), &len), -EINVAL);
}
END_TEST

/* An entry type the decoder refuses is not encoded either (a leader fed
 * one from a corrupt log would otherwise send, forever, a DIFF that its
 * followers refuse; found by test/fuzz/fuzz_logrec). */
START_TEST(encode_refuses_unknown_entry_type)
{
    static const uint32_t bad[] = {0, ZK_ZAB_ENTRY_SESSION_CLOSE + 1,
                                   0xffffffffu};
    uint8_t buf[1024];
    size_t len = 0;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct zk_zab_msg m = sample(ZK_ZAB_MSG_PROPOSE);
        struct zk_zab_entry e = m.entries[0];
        e.type = bad[i];
        m.entries = &e;
        m.n_entries = 1;
        ck_assert_int_eq(zk_zab_msg_encode(&m, buf, sizeof(buf), &len),
                         -EINVAL);
    }
}
END_TEST

/* Random corruption never crashes the decoder; what it accepts re-encodes
 * to the same bytes. */
START_TEST(fuzz_corruption)
{
    uint8_t buf[1024], bad[1024], again[1024];
    struct zk_zab_msg m = sample(ZK_ZAB_MSG_PROPOSE), d;
    struct zk_zab_entry out[ZK_ZAB_MSG_ENTRIES_MAX];
    size_t len = enc(&m, buf, sizeof(buf));
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 20000; i++) {
        memcpy(bad, buf, len);
        for (int f = 0; f < 3; f++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            bad[x % len] ^= (uint8_t)(x >> 32);
        }
        size_t blen = len - (x >> 40) % 4;
        int rc = zk_zab_msg_decode(bad, blen, &d, out,
                                   ZK_ZAB_MSG_ENTRIES_MAX);
        if (rc == 0) {
            size_t l2;
            ck_assert_int_eq(zk_zab_msg_encode(&d, again, sizeof(again),
                                               &l2), 0);
            ck_assert_uint_eq(l2, blen);
            ck_assert_mem_eq(again, bad, blen);
        } else {
            ck_assert(rc == ZK_ECORRUPT || rc == ZK_ETRUNCATED);
        }
    }
}
END_TEST

Suite *zab_msg_suite(void);
Suite *zab_msg_suite(void)
{
    Suite *su = suite_create("zab_msg");
    TCase *tc = tcase_create("codec");
    tcase_add_test(tc, round_trip_every_type);
    tcase_add_test(tc, big_endian_layout);
    tcase_add_test(tc, every_truncation_rejected);
    tcase_add_test(tc, malformed_rejected);
    tcase_add_test(tc, encode_limits);
    tcase_add_test(tc, encode_refuses_unknown_entry_type);
    tcase_add_test(tc, fuzz_corruption);
    suite_add_tcase(su, tc);
    return su;
}
