/*
 * test_frame.c — peer wire frames and the handshake: round trips in both
 * directions up to the largest payload, every interleaving of the
 * handshake, byte-by-byte and random chunking, every truncation, a flipped
 * byte at every position of HELLO, AUTH and DATA frames, wrong secrets and
 * ids, frames replayed within a connection and recorded from an older one,
 * oversized lengths, the documented byte layout and key derivation
 * recomputed independently, and random garbage (meant to run under ASan).
 */
#include <check.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "zk_common.h"
#include "zk_config.h"
#include "zk_frame.h"

#define FUZZ_ROUNDS   3000    /* random inputs per fuzz test       */
#define FUZZ_BYTES_MAX 600    /* bytes in one random input         */
#define HS_MAX        128     /* bytes of a HELLO or AUTH frame    */

static const uint8_t secret[] = "the zkfs unit-test shared secret";
static const uint8_t other_secret[] = "another secret, of the wrong kind";

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

struct hs {                        /* the four handshake frames */
    uint8_t hello_a[HS_MAX], hello_b[HS_MAX], auth_a[HS_MAX], auth_b[HS_MAX];
    size_t hello_a_len, hello_b_len, auth_a_len, auth_b_len;
};

static struct zk_frame_conn *conn(const uint8_t *key, uint64_t self,
                                  uint64_t peer)
{
    struct zk_frame_conn *c = NULL;
    ck_assert_int_eq(zk_frame_conn_new(key, sizeof(secret) - 1, self, peer,
                                       &c), 0);
    ck_assert_ptr_nonnull(c);
    return c;
}

/* Feeds all of buf[0..len) in one call; it must end in exactly event ev. */
static void expect_event(struct zk_frame_conn *c, const uint8_t *buf,
                         size_t len, int ev, struct zk_frame *out)
{
    struct zk_frame f;
    size_t used = 0;
    int rc = zk_frame_conn_feed(c, buf, len, &used, out ? out : &f);
    ck_assert_msg(rc == ev, "feed: %d (%s), want %d", rc,
                  zk_frame_conn_why(c), ev);
    ck_assert_uint_eq(used, len);
}

/* Feeds buf[0..len) and returns the first error (or 0 if none). */
static int feed_error(struct zk_frame_conn *c, const uint8_t *buf, size_t len)
{
    struct zk_frame f;
    size_t pos = 0;
    while (pos < len) {
        size_t used = 0;
        int rc = zk_frame_conn_feed(c, buf + pos, len - pos, &used, &f);
        if (rc < 0)
            return rc;
        ck_assert_uint_gt(used, 0);
        pos += used;
    }
    return 0;
}

/* A (id 1) connects to B (id 2, accepting any id); both made ready. */
static void pair_with(struct zk_frame_conn **a, struct zk_frame_conn **b,
                      struct hs *h)
{
    struct hs local;
    if (!h)
        h = &local;
    *a = conn(secret, 1, 2);
    *b = conn(secret, 2, 0);
    ck_assert_int_eq(zk_frame_conn_hello(*a, h->hello_a, HS_MAX,
                                         &h->hello_a_len), 0);
    ck_assert_int_eq(zk_frame_conn_hello(*b, h->hello_b, HS_MAX,
                                         &h->hello_b_len), 0);
    expect_event(*b, h->hello_a, h->hello_a_len, ZK_FRAME_EV_HELLO, NULL);
    expect_event(*a, h->hello_b, h->hello_b_len, ZK_FRAME_EV_HELLO, NULL);
    ck_assert_int_eq(zk_frame_conn_auth(*a, h->auth_a, HS_MAX,
                                        &h->auth_a_len), 0);
    ck_assert_int_eq(zk_frame_conn_auth(*b, h->auth_b, HS_MAX,
                                        &h->auth_b_len), 0);
    expect_event(*b, h->auth_a, h->auth_a_len, ZK_FRAME_EV_READY, NULL);
    expect_event(*a, h->auth_b, h->auth_b_len, ZK_FRAME_EV_READY, NULL);
    ck_assert(zk_frame_conn_ready(*a));
    ck_assert(zk_frame_conn_ready(*b));
    ck_assert_uint_eq(zk_frame_conn_peer(*a), 2);
    ck_assert_uint_eq(zk_frame_conn_peer(*b), 1);
}

static uint8_t *encode(struct zk_frame_conn *c, uint16_t flags,
                       const uint8_t *payload, uint32_t len, size_t *n)
{
    uint8_t *buf = malloc(zk_frame_size(len));
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(zk_frame_conn_encode(c, flags, payload, len, buf,
                                          zk_frame_size(len), n), 0);
    ck_assert_uint_eq(*n, zk_frame_size(len));
    return buf;
}

static uint8_t *random_bytes(size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)rng();
    return p;
}

/* Sends one DATA frame from a to b and checks what b hands out. */
static void send_check(struct zk_frame_conn *a, struct zk_frame_conn *b,
                       uint32_t len, uint16_t flags, uint64_t seq)
{
    uint8_t *payload = random_bytes(len);
    size_t n;
    uint8_t *buf = encode(a, flags, payload, len, &n);
    struct zk_frame f;
    expect_event(b, buf, n, ZK_FRAME_EV_DATA, &f);
    ck_assert_uint_eq(f.len, len);
    ck_assert_uint_eq(f.flags, flags);
    ck_assert_uint_eq(f.seq, seq);
    ck_assert(len == 0 || memcmp(f.payload, payload, len) == 0);
    free(buf);
    free(payload);
}

/* ---- round trips and the handshake ------------------------------------- */

START_TEST(roundtrip_both_directions)
{
    static const uint32_t sizes[] = {0, 1, 2, 100, 4096, 65536, 65537,
                                     ZK_FRAME_PAYLOAD_MAX};
    struct zk_frame_conn *a, *b;
    pair_with(&a, &b, NULL);
    uint64_t seq = 2;
    for (size_t i = 0; i < ZK_ARRAY_LEN(sizes); i++, seq++) {
        send_check(a, b, sizes[i], (uint16_t)(0x1234 + i), seq);
        send_check(b, a, sizes[i], (uint16_t)(0xfff0 + i), seq);
    }
    /* After a big frame the buffer is given back, and small ones go on. */
    send_check(a, b, 10, 0, seq);
    ck_assert_str_eq(zk_frame_conn_why(a), "");
    zk_frame_conn_free(a);
    zk_frame_conn_free(b);
    zk_frame_conn_free(NULL);
}
END_TEST

START_TEST(handshake_orders)
{
    /* B answers only after A's HELLO arrived (an accepting server). */
    struct zk_frame_conn *a = conn(secret, 7, 9), *b = conn(secret, 9, 0);
    uint8_t ha[HS_MAX], hb[HS_MAX], aa[HS_MAX], ab[HS_MAX], both[2 * HS_MAX];
    size_t nha, nhb, naa, nab, used;
    struct zk_frame f;

    ck_assert_uint_eq(zk_frame_conn_peer(b), 0);
    ck_assert_int_eq(zk_frame_conn_hello(a, ha, sizeof(ha), &nha), 0);
    expect_event(b, ha, nha, ZK_FRAME_EV_HELLO, NULL);
    ck_assert_uint_eq(zk_frame_conn_peer(b), 7);
    ck_assert_int_eq(zk_frame_conn_auth(b, ab, sizeof(ab), &nab), -EAGAIN);
    ck_assert_int_eq(zk_frame_conn_hello(b, hb, sizeof(hb), &nhb), 0);
    ck_assert_int_eq(zk_frame_conn_auth(b, ab, sizeof(ab), &nab), 0);
    ck_assert(!zk_frame_conn_ready(b));
    /* A gets B's HELLO and AUTH in one read: it stops after the HELLO. */
    memcpy(both, hb, nhb);
    memcpy(both + nhb, ab, nab);
    ck_assert_int_eq(zk_frame_conn_feed(a, both, nhb + nab, &used, &f),
                     ZK_FRAME_EV_HELLO);
    ck_assert_uint_eq(used, nhb);
    /* Before A made its own AUTH it is not ready even with B's. */
    expect_event(a, both + nhb, nab, ZK_FRAME_EV_READY, NULL);
    ck_assert(!zk_frame_conn_ready(a));
    ck_assert_int_eq(zk_frame_conn_encode(a, 0, NULL, 0, both, sizeof(both),
                                          &used), -ENOTCONN);
    ck_assert_int_eq(zk_frame_conn_auth(a, aa, sizeof(aa), &naa), 0);
    ck_assert(zk_frame_conn_ready(a));
    expect_event(b, aa, naa, ZK_FRAME_EV_READY, NULL);
    send_check(a, b, 33, 1, 2);
    send_check(b, a, 44, 2, 2);
    zk_frame_conn_free(a);
    zk_frame_conn_free(b);
}
END_TEST

START_TEST(api_misuse)
{
    struct zk_frame_conn *c = NULL, *a;
    uint8_t buf[HS_MAX];
    size_t n = 12345;

    ck_assert_int_eq(zk_frame_conn_new(secret, 15, 1, 2, &c), -EINVAL);
    ck_assert_int_eq(zk_frame_conn_new(NULL, 32, 1, 2, &c), -EINVAL);
    ck_assert_int_eq(zk_frame_conn_new(secret, 32, 0, 2, &c), -EINVAL);
    ck_assert_int_eq(zk_frame_conn_new(secret, 32, 3, 3, &c), -EINVAL);
    ck_assert_ptr_null(c);
    a = conn(secret, 1, 2);
    ck_assert_int_eq(zk_frame_conn_auth(a, buf, sizeof(buf), &n), -EAGAIN);
    ck_assert_int_eq(zk_frame_conn_hello(a, buf,
                                         zk_frame_size(ZK_FRAME_HELLO_LEN) - 1,
                                         &n), -ENOBUFS);
    ck_assert_uint_eq(n, 12345);
    ck_assert_int_eq(zk_frame_conn_hello(a, buf, sizeof(buf), &n), 0);
    ck_assert_uint_eq(n, zk_frame_size(ZK_FRAME_HELLO_LEN));
    ck_assert_int_eq(zk_frame_conn_hello(a, buf, sizeof(buf), &n), -EALREADY);
    ck_assert_int_eq(zk_frame_conn_encode(a, 0, buf, 1, buf, sizeof(buf),
                                          &n), -ENOTCONN);
    zk_frame_conn_free(a);

    struct zk_frame_conn *b;
    struct hs h;
    pair_with(&a, &b, &h);
    ck_assert_uint_eq(h.auth_a_len, zk_frame_size(ZK_FRAME_AUTH_LEN));
    ck_assert_int_eq(zk_frame_conn_auth(a, buf, sizeof(buf), &n), -EALREADY);
    ck_assert_int_eq(zk_frame_conn_encode(a, 0, buf, 10, buf, 69, &n),
                     -ENOBUFS);
    ck_assert_int_eq(zk_frame_conn_encode(a, 0, buf,
                                          ZK_FRAME_PAYLOAD_MAX + 1, buf,
                                          sizeof(buf), &n), -EMSGSIZE);
    uint8_t hdr[ZK_FRAME_HEADER_SIZE], tag[ZK_FRAME_TAG_SIZE];
    ck_assert_int_eq(zk_frame_conn_seal(a, 0, buf, ZK_FRAME_PAYLOAD_MAX + 1,
                                        hdr, tag), -EMSGSIZE);
    /* Failed calls used no sequence number. */
    send_check(a, b, 10, 0, 2);
    zk_frame_conn_free(a);
    zk_frame_conn_free(b);
}
END_TEST

START_TEST(seal_zero_copy)
{
    struct zk_frame_conn *a, *b;
    pair_with(&a, &b, NULL);
    for (uint32_t i = 0; i < 20; i++) {
        uint32_t len = (uint32_t)(rng() % 3000);
        uint8_t *payload = random_bytes(len);
        uint8_t hdr[ZK_FRAME_HEADER_SIZE], tag[ZK_FRAME_TAG_SIZE];
        ck_assert_int_eq(zk_frame_conn_seal(a, (uint16_t)i, payload, len,
                                            hdr, tag), 0);
        /* Three separate writes, as a scatter send would do. */
        struct zk_frame f;
        expect_event(b, hdr, sizeof(hdr), ZK_FRAME_EV_NONE, NULL);
        if (len)
            expect_event(b, payload, len, ZK_FRAME_EV_NONE, NULL);
        expect_event(b, tag, sizeof(tag), ZK_FRAME_EV_DATA, &f);
        ck_assert_uint_eq(f.seq, 2 + i);
        ck_assert_uint_eq(f.flags, i);
        ck_assert_uint_eq(f.len, len);
        ck_assert(len == 0 || memcmp(f.payload, payload, len) == 0);
        free(payload);
    }
    zk_frame_conn_free(a);
    zk_frame_conn_free(b);
}
END_TEST

/* ---- chunking and truncation ------------------------------------------- */

#define STREAM_FRAMES 25

START_TEST(byte_by_byte)
{
    struct zk_frame_conn *a, *b;
    struct hs h;
    pair_with(&a, &b, &h);
    /* Build 25 frames A->B; feed them one byte, then random chunks. */
    uint8_t *stream = NULL;
    size_t len = 0;
    uint8_t *payloads[STREAM_FRAMES];
    uint32_t lens[STREAM_FRAMES];
    for (int i = 0; i < STREAM_FRAMES; i++) {
        lens[i] = (uint32_t)(i % 5 == 0 ? 0 : rng() % 2000);
        payloads[i] = random_bytes(lens[i]);
        size_t n;
        uint8_t *f = encode(a, (uint16_t)i, payloads[i], lens[i], &n);
        stream = realloc(stream, len + n);
        memcpy(stream + len, f, n);
        len += n;
        free(f);
    }
    int got = 0;
    size_t pos = 0;
    while (pos < len) {
        size_t chunk = got < STREAM_FRAMES / 2 ? 1 : 1 + rng() % 700;
        if (chunk > len - pos)
            chunk = len - pos;
        size_t off = 0;
        while (off < chunk) {
            struct zk_frame f;
            size_t used = 0;
            int rc = zk_frame_conn_feed(b, stream + pos + off, chunk - off,
                                        &used, &f);
            ck_assert_int_ge(rc, 0);
            off += used;
            if (rc == ZK_FRAME_EV_NONE) {
                ck_assert_uint_eq(off, chunk);
                continue;
            }
            ck_assert_int_eq(rc, ZK_FRAME_EV_DATA);
            ck_assert_int_lt(got, STREAM_FRAMES);
            ck_assert_uint_eq(f.len, lens[got]);
            ck_assert_uint_eq(f.flags, (unsigned)got);
            ck_assert_uint_eq(f.seq, 2 + (unsigned)got);
            ck_assert(f.len == 0 ||
                      memcmp(f.payload, payloads[got], f.len) == 0);
            got++;
        }
        pos += chunk;
    }
    ck_assert_int_eq(got, STREAM_FRAMES);
    for (int i = 0; i < STREAM_FRAMES; i++)
        free(payloads[i]);
    free(stream);
    zk_frame_conn_free(a);
    zk_frame_conn_free(b);
}
END_TEST

START_TEST(every_truncation)
{
    /* Each prefix of a frame is only "wait for more", never an error, and
     * the rest completes it; also for HELLO and AUTH. */
    uint8_t payload[300];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7);
    size_t n;
    struct zk_frame_conn *a, *b;
    pair_with(&a, &b, NULL);
    uint8_t *buf = encode(a, 5, payload, sizeof(payload), &n);
    for (size_t cut = 0; cut < n; cut++) {
        struct zk_frame f;
        if (cut) {
            expect_event(b, buf, cut, ZK_FRAME_EV_NONE, NULL);
            ck_assert(zk_frame_conn_ready(b));
        }
        expect_event(b, buf + cut, n - cut, ZK_FRAME_EV_DATA, &f);
        ck_assert_uint_eq(f.len, sizeof(payload));
        ck_assert_int_eq(memcmp(f.payload, payload, sizeof(payload)), 0);
        /* The next frame, for the next cut. */
        free(buf);
        buf = encode(a, 5, payload, sizeof(payload), &n);
    }
    free(buf);
    zk_frame_conn_free(a);
    zk_frame_conn_free(b);

    struct hs h;
    pair_with(&a, &b, &h);
    zk_frame_conn_free(a);
    zk_frame_conn_free(b);
    for (size_t cut = 1; cut < h.hello_a_len; cut++) {
        struct zk_frame_conn *c = conn(secret, 2, 0);
        expect_event(c, h.hello_a, cut, ZK_FRAME_EV_NONE, NULL);
        expect_event(c, h.hello_a + cut, h.hello_a_len - cut,
                     ZK_FRAME_EV_HELLO, NULL);
        zk_frame_conn_free(c);
    }
}
END_TEST

/* ---- corruption -------------------------------------------------------- */

/* Feeds bad[0..n) and then zeros until the decoder gives up (a length
 * made larger by the damage first waits for that many bytes). */
static int feed_until_error(struct zk_frame_conn *c, const uint8_t *bad,
                            size_t n)
{
    static const uint8_t zeros[65536];
    int rc = feed_error(c, bad, n);
    for (size_t fed = 0; rc == 0 && fed <= ZK_FRAME_MAX; fed += sizeof(zeros))
        rc = feed_error(c, zeros, sizeof(zeros));
    return rc;
}

START_TEST(flipped_data_byte)
{
    static const uint8_t masks[] = {0x01, 0x80, 0xff, 0x10};
    uint8_t payload[64];
    memset(payload, 'p', sizeof(payload));
    for (size_t m = 0; m < ZK_ARRAY_LEN(masks); m++) {
        for (size_t pos = 0; pos < zk_frame_size(sizeof(payload)); pos++) {
            struct zk_frame_conn *a, *b;
            pair_with(&a, &b, NULL);
            size_t n;
            uint8_t *buf = encode(a, 3, payload, sizeof(payload), &n);
            buf[pos] ^= masks[m];
            int rc = feed_until_error(b, buf, n);
            ck_assert_msg(rc == ZK_ECORRUPT ||
                          (rc == -EMSGSIZE && pos >= 8 && pos < 12),
                          "byte %zu mask %x: %d", pos, masks[m], rc);
            /* Sticky: the connection stays dead. */
            struct zk_frame f;
            size_t used;
            ck_assert_int_eq(zk_frame_conn_feed(b, payload, 1, &used, &f),
                             rc);
            ck_assert(!zk_frame_conn_ready(b));
            ck_assert_str_ne(zk_frame_conn_why(b), "");
            ck_assert_int_eq(zk_frame_conn_encode(b, 0, payload, 1, buf, n,
                                                  &used), rc);
            free(buf);
            zk_frame_conn_free(a);
            zk_frame_conn_free(b);
        }
    }
}
END_TEST

START_TEST(flipped_handshake_byte)
{
    for (int which = 0; which < 2; which++) {
        for (size_t pos = 0; pos < HS_MAX; pos++) {
            size_t n = zk_frame_size(which ? ZK_FRAME_AUTH_LEN
                                           : ZK_FRAME_HELLO_LEN);
            if (pos >= n)
                break;
            /* For AUTH, B must have seen A's good HELLO first. */
            struct zk_frame_conn *a = conn(secret, 1, 2);
            struct zk_frame_conn *b = conn(secret, 2, 0);
            uint8_t ha[HS_MAX], hb[HS_MAX], aa[HS_MAX];
            size_t nha, nhb, naa;
            ck_assert_int_eq(zk_frame_conn_hello(a, ha, HS_MAX, &nha), 0);
            ck_assert_int_eq(zk_frame_conn_hello(b, hb, HS_MAX, &nhb), 0);
            expect_event(a, hb, nhb, ZK_FRAME_EV_HELLO, NULL);
            ck_assert_int_eq(zk_frame_conn_auth(a, aa, HS_MAX, &naa), 0);
            uint8_t *bad = which ? aa : ha;
            if (which)
                expect_event(b, ha, nha, ZK_FRAME_EV_HELLO, NULL);
            bad[pos] ^= 0x01;
            int rc = feed_until_error(b, bad, which ? naa : nha);
            ck_assert_msg(rc == ZK_ECORRUPT || rc == -EACCES ||
                          (rc == -EMSGSIZE && pos >= 8 && pos < 12),
                          "%s byte %zu: %d", which ? "AUTH" : "HELLO", pos,
                          rc);
            /* Tampering past the fixed header fields is an auth failure. */
            if (pos >= 12)
                ck_assert_int_eq(rc, -EACCES);
            zk_frame_conn_free(a);
            zk_frame_conn_free(b);
        }
    }
}
END_TEST

START_TEST(wrong_secret_refused)
{
    struct zk_frame_conn *a = conn(secret, 1, 2);
    struct zk_frame_conn *b = conn(other_secret, 2, 0);
    uint8_t ha[HS_MAX], hb[HS_MAX];
    size_t nha, nhb;

    ck_assert_int_eq(zk_frame_conn_hello(a, ha, HS_MAX, &nha), 0);
    ck_assert_int_eq(zk_frame_conn_hello(b, hb, HS_MAX, &nhb), 0);
    ck_assert_int_eq(feed_error(b, ha, nha), -EACCES);
    ck_assert_ptr_nonnull(strstr(zk_frame_conn_why(b), "wrong secret"));
    ck_assert_int_eq(feed_error(a, hb, nhb), -EACCES);
    ck_assert_uint_eq(zk_frame_conn_peer(a), 0);
    uint8_t buf[HS_MAX];
    size_t n;
    ck_assert_int_eq(zk_frame_conn_auth(a, buf, sizeof(buf), &n), -EACCES);
    zk_frame_conn_free(a);
    zk_frame_conn_free(b);
}
END_TEST

START_TEST(wrong_ids_refused)
{
    uint8_t ha[HS_MAX], hb[HS_MAX];
    size_t nha, nhb;

    /* A dials 3 but reaches 2: both sides notice. */
    struct zk_frame_conn *a = conn(secret, 1, 3), *b = conn(secret, 2, 0);
    ck_assert_int_eq(zk_frame_conn_hello(a, ha, HS_MAX, &nha), 0);
    ck_assert_int_eq(zk_frame_conn_hello(b, hb, HS_MAX, &nhb), 0);
    ck_assert_int_eq(feed_error(a, hb, nhb), -EACCES);
    ck_assert_ptr_nonnull(strstr(zk_frame_conn_why(a), "not the server"));
    ck_assert_int_eq(feed_error(b, ha, nha), -EACCES);
    ck_assert_ptr_nonnull(strstr(zk_frame_conn_why(b), "another server"));
    zk_frame_conn_free(b);
    /* Our own HELLO reflected back. */
    b = conn(secret, 2, 0);
    ck_assert_int_eq(zk_frame_conn_hello(b, hb, HS_MAX, &nhb), 0);
    ck_assert_int_eq(feed_error(b, hb, nhb), -EACCES);
    zk_frame_conn_free(a);
    zk_frame_conn_free(b);
    /* A peer that has our id (same nonce impossible, same id possible). */
    a = conn(secret, 5, 0);
    b = conn(secret, 5, 0);
    ck_assert_int_eq(zk_frame_conn_hello(a, ha, HS_MAX, &nha), 0);
    ck_assert_int_eq(feed_error(b, ha, nha), -EACCES);
    zk_frame_conn_free(a);
    zk_frame_conn_free(b);
}
END_TEST

START_TEST(replay_within_connection)
{
    struct zk_frame_conn *a, *b;
    uint8_t p[10] = "payload!!";
    size_t n1, n2;

    pair_with(&a, &b, NULL);
    uint8_t *f1 = encode(a, 0, p, sizeof(p), &n1);
    uint8_t *f2 = encode(a, 0, p, sizeof(p), &n2);
    expect_event(b, f1, n1, ZK_FRAME_EV_DATA, NULL);
    ck_assert_int_eq(feed_error(b, f1, n1), ZK_FRAME_EREPLAY);
    ck_assert_int_ne(ZK_FRAME_EREPLAY, ZK_ECORRUPT);
    ck_assert_int_eq(feed_error(b, f2, n2), ZK_FRAME_EREPLAY); /* sticky */
    zk_frame_conn_free(b);
    free(f1);
    free(f2);
    zk_frame_conn_free(a);

    /* Skipping one (f2 before f1) is refused the same way. */
    pair_with(&a, &b, NULL);
    f1 = encode(a, 0, p, sizeof(p), &n1);
    f2 = encode(a, 0, p, sizeof(p), &n2);
    ck_assert_int_eq(feed_error(b, f2, n2), ZK_FRAME_EREPLAY);
    /* A replayed handshake frame is out of place too. */
    zk_frame_conn_free(a);
    zk_frame_conn_free(b);
    free(f1);
    free(f2);
    struct hs h;
    pair_with(&a, &b, &h);
    ck_assert_int_eq(feed_error(b, h.auth_a, h.auth_a_len), ZK_ECORRUPT);
    zk_frame_conn_free(b);
    zk_frame_conn_free(a);
}
END_TEST

START_TEST(replay_from_old_connection)
{
    struct zk_frame_conn *a, *b, *b2;
    struct hs old;
    uint8_t p[16] = "transfer $1000";
    size_t n;

    pair_with(&a, &b, &old);
    uint8_t *data = encode(a, 0, p, sizeof(p), &n);
    zk_frame_conn_free(a);
    zk_frame_conn_free(b);

    /* An attacker replays A's recorded HELLO and AUTH to a new B. The
     * HELLO passes (it is authentic), the AUTH does not: it was made for
     * the old B's nonce. */
    b2 = conn(secret, 2, 0);
    uint8_t hb[HS_MAX];
    size_t nhb;
    ck_assert_int_eq(zk_frame_conn_hello(b2, hb, HS_MAX, &nhb), 0);
    expect_event(b2, old.hello_a, old.hello_a_len, ZK_FRAME_EV_HELLO, NULL);
    ck_assert_int_eq(feed_error(b2, old.auth_a, old.auth_a_len), -EACCES);
    ck_assert(!zk_frame_conn_ready(b2));
    zk_frame_conn_free(b2);

    /* A recorded DATA frame into a fresh, authenticated connection: its
     * tag was made with the old keys. */
    pair_with(&a, &b, NULL);
    ck_assert_int_eq(feed_error(b, data, n), ZK_ECORRUPT);
    free(data);
    zk_frame_conn_free(a);
    zk_frame_conn_free(b);
}
END_TEST

START_TEST(oversized_refused)
{
    struct zk_frame_conn *a, *b;
    struct hs h;
    uint8_t hdr[ZK_FRAME_HEADER_SIZE];
    size_t used;
    struct zk_frame f;

    pair_with(&a, &b, &h);
    /* A header claiming one byte too many: refused from 28 bytes. */
    memcpy(hdr, h.auth_a, sizeof(hdr));
    hdr[5] = ZK_FRAME_DATA;
    zk_put_be32(hdr + 8, ZK_FRAME_PAYLOAD_MAX + 1);
    ck_assert_int_eq(zk_frame_conn_feed(b, hdr, sizeof(hdr), &used, &f),
                     -EMSGSIZE);
    zk_frame_conn_free(b);
    zk_frame_conn_free(a);
    /* And 4 GiB - 1. */
    pair_with(&a, &b, &h);
    zk_put_be32(hdr + 8, 0xffffffffu);
    ck_assert_int_eq(zk_frame_conn_feed(b, hdr, sizeof(hdr), &used, &f),
                     -EMSGSIZE);
    zk_frame_conn_free(b);
    zk_frame_conn_free(a);
    /* Before the handshake, even a legal DATA length is not buffered. */
    b = conn(secret, 2, 0);
    zk_put_be32(hdr + 8, ZK_FRAME_PAYLOAD_MAX);
    ck_assert_int_eq(zk_frame_conn_feed(b, hdr, sizeof(hdr), &used, &f),
                     ZK_ECORRUPT);
    zk_frame_conn_free(b);
    b = conn(secret, 2, 0);
    memcpy(hdr, h.hello_a, sizeof(hdr));
    zk_put_be32(hdr + 8, ZK_FRAME_HELLO_LEN + 1);
    ck_assert_int_eq(zk_frame_conn_feed(b, hdr, sizeof(hdr), &used, &f),
                     ZK_ECORRUPT);
    zk_frame_conn_free(b);
}
END_TEST

/* ---- the documented format -------------------------------------------- */

static void hmac(const uint8_t *key, size_t keylen, const uint8_t *const *parts,
                 const size_t *lens, int n, uint8_t *out)
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, keylen);
    for (int i = 0; i < n; i++)
        crypto_auth_hmacsha256_update(&st, parts[i], lens[i]);
    crypto_auth_hmacsha256_final(&st, out);
}

START_TEST(documented_layout)
{
    struct zk_frame_conn *a, *b;
    struct hs h;
    const size_t slen = sizeof(secret) - 1;

    pair_with(&a, &b, &h);
    /* HELLO: header fields, payload = nonce || expected peer id. */
    const uint8_t *ha = h.hello_a;
    ck_assert_uint_eq(zk_get_be32(ha), 0x5a4b4652u);
    ck_assert_int_eq(memcmp(ha, "ZKFR", 4), 0);
    ck_assert_uint_eq(ha[4], 1);
    ck_assert_uint_eq(ha[5], ZK_FRAME_HELLO);
    ck_assert_uint_eq(ha[6] | ha[7], 0);
    ck_assert_uint_eq(zk_get_be32(ha + 8), 40);
    ck_assert_uint_eq(zk_get_be64(ha + 12), 1);
    ck_assert_uint_eq(zk_get_be64(ha + 20), 0);
    ck_assert_uint_eq(zk_get_be64(ha + 28 + 32), 2);
    ck_assert_uint_eq(zk_get_be64(h.hello_b + 28 + 32), 0); /* accepting */
    const uint8_t *na = ha + 28, *nb = h.hello_b + 28;
    /* Its tag: HMAC(K_hello, header || payload). */
    uint8_t k_hello[32], tag[32], k_ab[32];
    const uint8_t *p1[] = {(const uint8_t *)"zkfs-hello-v1"};
    size_t l1[] = {13};
    hmac(secret, slen, p1, l1, 1, k_hello);
    crypto_auth_hmacsha256(tag, ha, 28 + 40, k_hello);
    ck_assert_int_eq(memcmp(tag, ha + 68, 32), 0);
    /* K(a->b) = HMAC(secret, "zkfs-key-v1" || id_a || id_b || n_a || n_b) */
    uint8_t ids[16];
    zk_put_be64(ids, 1);
    zk_put_be64(ids + 8, 2);
    const uint8_t *p2[] = {(const uint8_t *)"zkfs-key-v1", ids, na, nb};
    size_t l2[] = {11, 16, 32, 32};
    hmac(secret, slen, p2, l2, 4, k_ab);
    /* AUTH: seq 1, payload = B's nonce, tag under K(a->b). */
    ck_assert_uint_eq(h.auth_a[5], ZK_FRAME_AUTH);
    ck_assert_uint_eq(zk_get_be64(h.auth_a + 20), 1);
    ck_assert_int_eq(memcmp(h.auth_a + 28, nb, 32), 0);
    crypto_auth_hmacsha256(tag, h.auth_a, 28 + 32, k_ab);
    ck_assert_int_eq(memcmp(tag, h.auth_a + 60, 32), 0);
    /* A DATA frame built by hand from the documentation is accepted. */
    uint8_t frame[28 + 5 + 32];
    zk_put_be32(frame, ZK_FRAME_MAGIC);
    frame[4] = 1;
    frame[5] = ZK_FRAME_DATA;
    frame[6] = 0xab;
    frame[7] = 0xcd;
    zk_put_be32(frame + 8, 5);
    zk_put_be64(frame + 12, 1);
    zk_put_be64(frame + 20, 2);
    memcpy(frame + 28, "hello", 5);
    crypto_auth_hmacsha256(frame + 33, frame, 33, k_ab);
    struct zk_frame f;
    expect_event(b, frame, sizeof(frame), ZK_FRAME_EV_DATA, &f);
    ck_assert_uint_eq(f.flags, 0xabcd);
    ck_assert_uint_eq(f.len, 5);
    ck_assert_int_eq(memcmp(f.payload, "hello", 5), 0);
    /* And A's next frame is byte for byte what the documentation says. */
    size_t n;
    uint8_t *enc = encode(a, 0xabcd, (const uint8_t *)"hello", 5, &n);
    zk_put_be64(frame + 20, 2);
    ck_assert_int_eq(memcmp(enc, frame, sizeof(frame)), 0);
    free(enc);
    zk_frame_conn_free(a);
    zk_frame_conn_free(b);
}
END_TEST

/* K(a->b) recomputed from the two HELLOs, as documented. */
static void key_ab(const struct hs *h, uint8_t *k)
{
    uint8_t ids[16];
    zk_put_be64(ids, zk_get_be64(h->hello_a + 12));
    zk_put_be64(ids + 8, zk_get_be64(h->hello_b + 12));
    const uint8_t *parts[] = {(const uint8_t *)"zkfs-key-v1", ids,
                              h->hello_a + 28, h->hello_b + 28};
    size_t lens[] = {11, 16, 32, 32};
    hmac(secret, sizeof(secret) - 1, parts, lens, 4, k);
}

/* A frame with a valid tag under key k. */
static void craft(uint8_t *f, uint8_t type, uint64_t sender, uint64_t seq,
                  const uint8_t *payload, uint32_t len, const uint8_t *k)
{
    zk_put_be32(f, ZK_FRAME_MAGIC);
    f[4] = ZK_FRAME_VERSION;
    f[5] = type;
    f[6] = f[7] = 0;
    zk_put_be32(f + 8, len);
    zk_put_be64(f + 12, sender);
    zk_put_be64(f + 20, seq);
    memcpy(f + 28, payload, len);
    crypto_auth_hmacsha256(f + 28 + len, f, 28 + len, k);
}

START_TEST(authentic_but_wrong)
{
    /* Frames whose tags verify (the test knows the keys) but whose
     * content breaks the protocol: the checks behind the tag. */
    struct zk_frame_conn *a, *b;
    struct hs h;
    uint8_t k[32], f[HS_MAX], other[32];

    pair_with(&a, &b, &h);
    key_ab(&h, k);
    zk_frame_conn_free(b);
    /* AUTH echoing another nonce than B's. */
    b = conn(secret, 2, 0);
    uint8_t hb[HS_MAX];
    size_t nhb;
    ck_assert_int_eq(zk_frame_conn_hello(b, hb, HS_MAX, &nhb), 0);
    memcpy(h.hello_b, hb, nhb);         /* B's new nonce, new keys */
    key_ab(&h, k);
    expect_event(b, h.hello_a, h.hello_a_len, ZK_FRAME_EV_HELLO, NULL);
    memset(other, 7, sizeof(other));
    craft(f, ZK_FRAME_AUTH, 1, 1, other, 32, k);
    ck_assert_int_eq(feed_error(b, f, zk_frame_size(32)), -EACCES);
    ck_assert_ptr_nonnull(strstr(zk_frame_conn_why(b), "another nonce"));
    zk_frame_conn_free(b);
    /* The right AUTH, then DATA claiming another sender, or skipping. */
    for (int i = 0; i < 3; i++) {
        b = conn(secret, 2, 0);
        ck_assert_int_eq(zk_frame_conn_hello(b, hb, HS_MAX, &nhb), 0);
        memcpy(h.hello_b, hb, nhb);
        key_ab(&h, k);
        expect_event(b, h.hello_a, h.hello_a_len, ZK_FRAME_EV_HELLO, NULL);
        craft(f, ZK_FRAME_AUTH, 1, 1, hb + 28, 32, k);
        expect_event(b, f, zk_frame_size(32), ZK_FRAME_EV_READY, NULL);
        craft(f, ZK_FRAME_DATA, i == 0 ? 3 : 1, i == 1 ? 7 : 2,
              (const uint8_t *)"x", 1, k);
        int want = i == 0 ? ZK_ECORRUPT : i == 1 ? ZK_FRAME_EREPLAY
                                                 : ZK_FRAME_EV_DATA;
        if (want == ZK_FRAME_EV_DATA)
            expect_event(b, f, zk_frame_size(1), want, NULL);
        else
            ck_assert_int_eq(feed_error(b, f, zk_frame_size(1)), want);
        zk_frame_conn_free(b);
    }
    /* A HELLO (authentic: made with K_hello) carrying B's own nonce. */
    uint8_t k_hello[32], payload[40];
    const uint8_t *label[] = {(const uint8_t *)"zkfs-hello-v1"};
    size_t label_len[] = {13};
    hmac(secret, sizeof(secret) - 1, label, label_len, 1, k_hello);
    b = conn(secret, 2, 0);
    ck_assert_int_eq(zk_frame_conn_hello(b, hb, HS_MAX, &nhb), 0);
    memcpy(payload, hb + 28, 40);
    craft(f, ZK_FRAME_HELLO, 1, 0, payload, 40, k_hello);
    ck_assert_int_eq(feed_error(b, f, zk_frame_size(40)), -EACCES);
    ck_assert_ptr_nonnull(strstr(zk_frame_conn_why(b), "echoes our nonce"));
    zk_frame_conn_free(b);
    zk_frame_conn_free(a);
}
END_TEST

START_TEST(long_secrets)
{
    /* Secrets longer than an HMAC block are hashed first; one differing
     * only in the last byte is still refused. */
    uint8_t s1[ZK_CONFIG_SECRET_MAX], s2[ZK_CONFIG_SECRET_MAX];
    struct zk_frame_conn *a = NULL, *b = NULL;
    uint8_t ha[HS_MAX];
    size_t n;

    ck_assert_int_eq(ZK_FRAME_SECRET_MIN, ZK_CONFIG_SECRET_MIN);
    memset(s1, 's', sizeof(s1));
    memcpy(s2, s1, sizeof(s2));
    s2[sizeof(s2) - 1] ^= 1;
    ck_assert_int_eq(zk_frame_conn_new(s1, sizeof(s1), 1, 2, &a), 0);
    ck_assert_int_eq(zk_frame_conn_new(s2, sizeof(s2), 2, 0, &b), 0);
    ck_assert_int_eq(zk_frame_conn_hello(a, ha, HS_MAX, &n), 0);
    ck_assert_int_eq(feed_error(b, ha, n), -EACCES);
    zk_frame_conn_free(b);
    ck_assert_int_eq(zk_frame_conn_new(s1, sizeof(s1), 2, 0, &b), 0);
    expect_event(b, ha, n, ZK_FRAME_EV_HELLO, NULL);
    zk_frame_conn_free(a);
    zk_frame_conn_free(b);
}
END_TEST

/* ---- garbage ----------------------------------------------------------- */

START_TEST(fuzz_random_garbage)
{
    for (int round = 0; round < FUZZ_ROUNDS; round++) {
        struct zk_frame_conn *c = conn(secret, 2, round % 2 ? 0 : 1);
        size_t len = rng() % FUZZ_BYTES_MAX;
        uint8_t *g = random_bytes(len);
        /* Half the time, a plausible header in front. */
        if (round % 2 && len >= ZK_FRAME_HEADER_SIZE) {
            zk_put_be32(g, ZK_FRAME_MAGIC);
            g[4] = ZK_FRAME_VERSION;
            g[5] = (uint8_t)(1 + rng() % 3);
            zk_put_be32(g + 8, (uint32_t)(rng() % 128));
        }
        size_t pos = 0;
        while (pos < len) {
            size_t chunk = 1 + rng() % 64, used = 0;
            struct zk_frame f;
            if (chunk > len - pos)
                chunk = len - pos;
            int rc = zk_frame_conn_feed(c, g + pos, chunk, &used, &f);
            ck_assert_msg(rc == ZK_FRAME_EV_NONE || rc == ZK_ECORRUPT ||
                          rc == -EMSGSIZE || rc == -EACCES,
                          "round %d: %d", round, rc);
            if (rc < 0)
                break;
            ck_assert_uint_eq(used, chunk);
            pos += used;
        }
        free(g);
        zk_frame_conn_free(c);
    }
}
END_TEST

START_TEST(fuzz_mutated_stream)
{
    /* Random edits to a valid DATA stream: every frame handed out is one
     * that was sent, in order; the first bad byte ends the connection. */
    for (int round = 0; round < FUZZ_ROUNDS / 10; round++) {
        struct zk_frame_conn *a, *b;
        pair_with(&a, &b, NULL);
        uint8_t *stream = NULL, *payloads[8];
        uint32_t lens[8];
        size_t len = 0;
        for (int i = 0; i < 8; i++) {
            lens[i] = (uint32_t)(rng() % 100);
            payloads[i] = random_bytes(lens[i]);
            size_t n;
            uint8_t *fr = encode(a, 0, payloads[i], lens[i], &n);
            stream = realloc(stream, len + n);
            memcpy(stream + len, fr, n);
            len += n;
            free(fr);
        }
        int edits = 1 + (int)(rng() % 3);
        for (int e = 0; e < edits; e++)
            stream[rng() % len] ^= (uint8_t)(1 + rng() % 255);
        int got = 0, rc = 0;
        size_t pos = 0;
        while (pos < len && rc >= 0) {
            struct zk_frame f;
            size_t used = 0;
            rc = zk_frame_conn_feed(b, stream + pos, len - pos, &used, &f);
            if (rc == ZK_FRAME_EV_DATA) {
                ck_assert_int_lt(got, 8);
                ck_assert_uint_eq(f.len, lens[got]);
                ck_assert(f.len == 0 ||
                          memcmp(f.payload, payloads[got], f.len) == 0);
                got++;
            }
            if (rc >= 0)
                pos += used;
        }
        ck_assert_int_lt(got, 8);   /* at least one edit was caught */
        for (int i = 0; i < 8; i++)
            free(payloads[i]);
        free(stream);
        zk_frame_conn_free(a);
        zk_frame_conn_free(b);
    }
}
END_TEST

Suite *frame_suite(void)
{
    Suite *s = suite_create("frame");
    TCase *tc = tcase_create("frame");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, roundtrip_both_directions);
    tcase_add_test(tc, handshake_orders);
    tcase_add_test(tc, api_misuse);
    tcase_add_test(tc, seal_zero_copy);
    tcase_add_test(tc, byte_by_byte);
    tcase_add_test(tc, every_truncation);
    tcase_add_test(tc, flipped_data_byte);
    tcase_add_test(tc, flipped_handshake_byte);
    tcase_add_test(tc, wrong_secret_refused);
    tcase_add_test(tc, wrong_ids_refused);
    tcase_add_test(tc, replay_within_connection);
    tcase_add_test(tc, replay_from_old_connection);
    tcase_add_test(tc, oversized_refused);
    tcase_add_test(tc, documented_layout);
    tcase_add_test(tc, authentic_but_wrong);
    tcase_add_test(tc, long_secrets);
    tcase_add_test(tc, fuzz_random_garbage);
    tcase_add_test(tc, fuzz_mutated_stream);
    suite_add_tcase(s, tc);
    return s;
}
