/*
 * frame.c — peer wire frames and the connection handshake
 * (include/zk_frame.h has the byte layout and the protocol).
 *
 * What it keeps true: a frame is handed to the caller only after its tag
 * verified under the key of its stage (K_hello for HELLO, the peer's
 * direction key afterwards) and its sequence number is exactly the next
 * one; the receive buffer never exceeds one frame of the size the current
 * stage allows (HELLO/AUTH sizes before the handshake ends, so an
 * unauthenticated peer cannot make us allocate much); every input byte is
 * copied with its bounds checked first; after the first error the
 * connection only repeats it. The secret itself is not kept: only the
 * HMAC state that has absorbed it, and the derived keys, all wiped on
 * free.
 */
#include "zk_frame.h"
#include "zk_common.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define KEY_SIZE crypto_auth_hmacsha256_KEYBYTES

_Static_assert(KEY_SIZE == 32 && crypto_auth_hmacsha256_BYTES ==
               ZK_FRAME_TAG_SIZE, "HMAC-SHA-256 keys and tags are 32 bytes");

static const char hello_label[] = "zkfs-hello-v1";
static const char key_label[] = "zkfs-key-v1";

struct zk_frame_conn {
    uint64_t self_id;
    uint64_t peer_id;           /* expected (0: any), then from HELLO     */
    crypto_auth_hmacsha256_state secret_state; /* HMAC keyed by secret   */
    uint8_t k_hello[KEY_SIZE];
    uint8_t k_send[KEY_SIZE];
    uint8_t k_recv[KEY_SIZE];
    uint8_t nonce[ZK_FRAME_NONCE_SIZE];
    uint8_t peer_nonce[ZK_FRAME_NONCE_SIZE];
    int hello_sent, auth_sent, got_hello, got_auth;
    uint64_t send_seq;          /* next sequence number to send           */
    uint64_t recv_seq;          /* next sequence number to accept         */
    int err;                    /* sticky receive error                   */
    const char *why;
    /* The frame being received: header first, then the rest into buf. */
    uint8_t hdr[ZK_FRAME_HEADER_SIZE];
    size_t hdr_have;
    uint8_t type;
    uint16_t flags;
    uint32_t len;
    uint64_t sender, seq;
    uint8_t *buf;               /* whole frame: header, payload, tag      */
    size_t buf_cap, need, have;
};

/* ---- helpers ----------------------------------------------------------- */

static int fail(struct zk_frame_conn *c, int err, const char *why)
{
    c->err = err;
    c->why = why;
    return err;
}

/* HMAC(secret, label || ids || nonces) from the state holding the secret. */
static void derive(const struct zk_frame_conn *c, uint64_t from,
                   const uint8_t *from_nonce, uint64_t to,
                   const uint8_t *to_nonce, uint8_t *key)
{
    crypto_auth_hmacsha256_state st = c->secret_state;
    uint8_t ids[16];

    zk_put_be64(ids, from);
    zk_put_be64(ids + 8, to);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)key_label,
                                  sizeof(key_label) - 1);
    crypto_auth_hmacsha256_update(&st, ids, sizeof(ids));
    crypto_auth_hmacsha256_update(&st, from_nonce, ZK_FRAME_NONCE_SIZE);
    crypto_auth_hmacsha256_update(&st, to_nonce, ZK_FRAME_NONCE_SIZE);
    crypto_auth_hmacsha256_final(&st, key);
    sodium_memzero(&st, sizeof(st));
}

static void put_header(uint8_t *h, uint8_t type, uint16_t flags,
                       uint32_t len, uint64_t sender, uint64_t seq)
{
    zk_put_be32(h, ZK_FRAME_MAGIC);
    h[4] = ZK_FRAME_VERSION;
    h[5] = type;
    h[6] = (uint8_t)(flags >> 8);
    h[7] = (uint8_t)flags;
    zk_put_be32(h + 8, len);
    zk_put_be64(h + 12, sender);
    zk_put_be64(h + 20, seq);
}

static void make_tag(const uint8_t *key, const uint8_t *header,
                     const uint8_t *payload, uint32_t len, uint8_t *tag)
{
    crypto_auth_hmacsha256_state st;

    crypto_auth_hmacsha256_init(&st, key, KEY_SIZE);
    crypto_auth_hmacsha256_update(&st, header, ZK_FRAME_HEADER_SIZE);
    if (len)
        crypto_auth_hmacsha256_update(&st, payload, len);
    crypto_auth_hmacsha256_final(&st, tag);
    sodium_memzero(&st, sizeof(st));
}

/* Writes a whole handshake frame (header, payload, tag) to buf. */
static int write_frame(struct zk_frame_conn *c, uint8_t type,
                       const uint8_t *key, const uint8_t *payload,
                       uint32_t len, uint8_t *buf, size_t cap,
                       size_t *len_out)
{
    size_t size = zk_frame_size(len);

    if (cap < size)
        return -ENOBUFS;
    put_header(buf, type, 0, len, c->self_id, c->send_seq++);
    memcpy(buf + ZK_FRAME_HEADER_SIZE, payload, len);
    make_tag(key, buf, payload, len, buf + ZK_FRAME_HEADER_SIZE + len);
    *len_out = size;
    return 0;
}

/* ---- receiving --------------------------------------------------------- */

/* Checks a complete header before any byte of the body is kept. */
static int check_header(struct zk_frame_conn *c)
{
    const uint8_t *h = c->hdr;
    uint8_t want = !c->got_hello ? ZK_FRAME_HELLO
                 : !c->got_auth  ? ZK_FRAME_AUTH : ZK_FRAME_DATA;

    if (zk_get_be32(h) != ZK_FRAME_MAGIC)
        return fail(c, ZK_ECORRUPT, "bad frame magic");
    if (h[4] != ZK_FRAME_VERSION)
        return fail(c, ZK_ECORRUPT, "unsupported frame version");
    c->type = h[5];
    c->flags = (uint16_t)(h[6] << 8 | h[7]);
    c->len = zk_get_be32(h + 8);
    c->sender = zk_get_be64(h + 12);
    c->seq = zk_get_be64(h + 20);
    if (c->type < ZK_FRAME_HELLO || c->type > ZK_FRAME_DATA)
        return fail(c, ZK_ECORRUPT, "unknown frame type");
    if (c->len > ZK_FRAME_PAYLOAD_MAX)
        return fail(c, -EMSGSIZE, "frame longer than ZK_FRAME_PAYLOAD_MAX");
    if (c->type != want)
        return fail(c, ZK_ECORRUPT, "frame type out of handshake order");
    if (want == ZK_FRAME_HELLO &&
        (c->len != ZK_FRAME_HELLO_LEN || c->flags))
        return fail(c, ZK_ECORRUPT, "malformed HELLO header");
    if (want == ZK_FRAME_AUTH && (c->len != ZK_FRAME_AUTH_LEN || c->flags))
        return fail(c, ZK_ECORRUPT, "malformed AUTH header");
    return 0;
}

/* Makes room for the whole frame in buf and puts the header there. */
static int reserve(struct zk_frame_conn *c)
{
    c->need = zk_frame_size(c->len);
    c->have = ZK_FRAME_HEADER_SIZE;
    if (c->buf_cap < c->need) {
        uint8_t *nb = realloc(c->buf, c->need);
        if (!nb)
            return fail(c, -ENOMEM, "out of memory for a frame");
        c->buf = nb;
        c->buf_cap = c->need;
    }
    memcpy(c->buf, c->hdr, ZK_FRAME_HEADER_SIZE);
    return 0;
}

static int take_hello(struct zk_frame_conn *c, const uint8_t *p)
{
    uint64_t to = zk_get_be64(p + ZK_FRAME_NONCE_SIZE);

    if (c->sender == 0 || c->sender == c->self_id)
        return fail(c, -EACCES, "peer HELLO claims id 0 or our own id");
    if (c->peer_id && c->sender != c->peer_id)
        return fail(c, -EACCES, "peer is not the server we connected to");
    if (to && to != c->self_id)
        return fail(c, -EACCES, "peer meant to reach another server");
    if (sodium_memcmp(p, c->nonce, ZK_FRAME_NONCE_SIZE) == 0)
        return fail(c, -EACCES, "peer HELLO echoes our nonce");
    c->peer_id = c->sender;
    memcpy(c->peer_nonce, p, ZK_FRAME_NONCE_SIZE);
    derive(c, c->self_id, c->nonce, c->peer_id, c->peer_nonce, c->k_send);
    derive(c, c->peer_id, c->peer_nonce, c->self_id, c->nonce, c->k_recv);
    c->got_hello = 1;
    return ZK_FRAME_EV_HELLO;
}

/* Verifies the complete frame in buf and says what it was. */
static int take_frame(struct zk_frame_conn *c, struct zk_frame *out)
{
    const uint8_t *payload = c->buf + ZK_FRAME_HEADER_SIZE;
    const uint8_t *key = c->type == ZK_FRAME_HELLO ? c->k_hello : c->k_recv;

    if (crypto_auth_hmacsha256_verify(payload + c->len, c->buf,
                                      ZK_FRAME_HEADER_SIZE + c->len,
                                      key) != 0) {
        if (c->type == ZK_FRAME_HELLO)
            return fail(c, -EACCES, "peer HELLO tag does not verify "
                        "(wrong secret?)");
        if (c->type == ZK_FRAME_AUTH)
            return fail(c, -EACCES, "peer AUTH does not verify (wrong "
                        "secret, or replayed from another connection?)");
        return fail(c, ZK_ECORRUPT, "frame tag does not verify");
    }
    if (c->seq != c->recv_seq)
        return fail(c, ZK_FRAME_EREPLAY, "frame out of sequence (replayed?)");
    if (c->type == ZK_FRAME_HELLO) {
        c->recv_seq++;
        return take_hello(c, payload);
    }
    if (c->sender != c->peer_id)
        return fail(c, ZK_ECORRUPT, "frame from another sender id");
    c->recv_seq++;
    if (c->type == ZK_FRAME_AUTH) {
        if (sodium_memcmp(payload, c->nonce, ZK_FRAME_NONCE_SIZE) != 0)
            return fail(c, -EACCES, "peer AUTH is for another nonce");
        c->got_auth = 1;
        return ZK_FRAME_EV_READY;
    }
    out->flags = c->flags;
    out->len = c->len;
    out->seq = c->seq;
    out->payload = payload;
    return ZK_FRAME_EV_DATA;
}

/* ---- public ------------------------------------------------------------ */

size_t zk_frame_size(uint32_t payload_len)
{
    return (size_t)ZK_FRAME_HEADER_SIZE + payload_len + ZK_FRAME_TAG_SIZE;
}

int zk_frame_conn_new(const uint8_t *secret, size_t secret_len,
                      uint64_t self_id, uint64_t peer_id,
                      struct zk_frame_conn **out)
{
    struct zk_frame_conn *c;

    if (!secret || secret_len < ZK_FRAME_SECRET_MIN || self_id == 0 ||
        peer_id == self_id)
        return -EINVAL;
    if (sodium_init() < 0)
        return -EIO;
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->self_id = self_id;
    c->peer_id = peer_id;
    c->why = "";
    randombytes_buf(c->nonce, sizeof(c->nonce));
    crypto_auth_hmacsha256_init(&c->secret_state, secret, secret_len);
    crypto_auth_hmacsha256_state st = c->secret_state;
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)hello_label,
                                  sizeof(hello_label) - 1);
    crypto_auth_hmacsha256_final(&st, c->k_hello);
    sodium_memzero(&st, sizeof(st));
    *out = c;
    return 0;
}

void zk_frame_conn_free(struct zk_frame_conn *c)
{
    if (!c)
        return;
    free(c->buf);
    sodium_memzero(c, sizeof(*c));
    free(c);
}

int zk_frame_conn_hello(struct zk_frame_conn *c, uint8_t *buf, size_t cap,
                        size_t *len_out)
{
    uint8_t payload[ZK_FRAME_HELLO_LEN];

    if (c->err)
        return c->err;
    if (c->hello_sent)
        return -EALREADY;
    if (cap < zk_frame_size(ZK_FRAME_HELLO_LEN))
        return -ENOBUFS;
    memcpy(payload, c->nonce, ZK_FRAME_NONCE_SIZE);
    zk_put_be64(payload + ZK_FRAME_NONCE_SIZE, c->peer_id);
    int rc = write_frame(c, ZK_FRAME_HELLO, c->k_hello, payload,
                         ZK_FRAME_HELLO_LEN, buf, cap, len_out);
    ZK_ASSERT(rc == 0);
    c->hello_sent = 1;
    return 0;
}

int zk_frame_conn_auth(struct zk_frame_conn *c, uint8_t *buf, size_t cap,
                       size_t *len_out)
{
    if (c->err)
        return c->err;
    if (c->auth_sent)
        return -EALREADY;
    if (!c->hello_sent || !c->got_hello)
        return -EAGAIN;
    if (cap < zk_frame_size(ZK_FRAME_AUTH_LEN))
        return -ENOBUFS;
    int rc = write_frame(c, ZK_FRAME_AUTH, c->k_send, c->peer_nonce,
                         ZK_FRAME_AUTH_LEN, buf, cap, len_out);
    ZK_ASSERT(rc == 0);
    c->auth_sent = 1;
    return 0;
}

int zk_frame_conn_feed(struct zk_frame_conn *c, const uint8_t *in,
                       size_t len, size_t *consumed, struct zk_frame *out)
{
    size_t used = 0;

    if (c->err)
        return c->err;
    if (c->hdr_have == 0 && c->buf_cap > ZK_FRAME_BUF_KEEP) {
        free(c->buf);       /* a big frame was handed out last time */
        c->buf = NULL;
        c->buf_cap = 0;
    }
    while (used < len) {
        if (c->hdr_have < ZK_FRAME_HEADER_SIZE) {
            size_t n = ZK_FRAME_HEADER_SIZE - c->hdr_have;
            n = n < len - used ? n : len - used;
            memcpy(c->hdr + c->hdr_have, in + used, n);
            c->hdr_have += n;
            used += n;
            if (c->hdr_have < ZK_FRAME_HEADER_SIZE)
                break;
            int rc = check_header(c);
            if (rc == 0)
                rc = reserve(c);
            if (rc)
                return rc;
        }
        size_t n = c->need - c->have;
        n = n < len - used ? n : len - used;
        memcpy(c->buf + c->have, in + used, n);
        c->have += n;
        used += n;
        if (c->have < c->need)
            break;
        c->hdr_have = 0;    /* the next byte starts a new frame */
        int ev = take_frame(c, out);
        if (ev >= 0)
            *consumed = used;
        return ev;
    }
    *consumed = used;
    return ZK_FRAME_EV_NONE;
}

/* Whether a DATA frame of len bytes may be sealed now. */
static int check_seal(const struct zk_frame_conn *c, uint32_t len)
{
    if (c->err)
        return c->err;
    if (!zk_frame_conn_ready(c))
        return -ENOTCONN;
    if (len > ZK_FRAME_PAYLOAD_MAX)
        return -EMSGSIZE;
    if (c->send_seq == UINT64_MAX)
        return -EOVERFLOW;
    return 0;
}

int zk_frame_conn_seal(struct zk_frame_conn *c, uint16_t flags,
                       const uint8_t *payload, uint32_t len,
                       uint8_t *header, uint8_t *tag)
{
    int rc = check_seal(c, len);

    if (rc)
        return rc;
    put_header(header, ZK_FRAME_DATA, flags, len, c->self_id, c->send_seq++);
    make_tag(c->k_send, header, payload, len, tag);
    return 0;
}

int zk_frame_conn_encode(struct zk_frame_conn *c, uint16_t flags,
                         const uint8_t *payload, uint32_t len, uint8_t *buf,
                         size_t cap, size_t *len_out)
{
    int rc = check_seal(c, len);

    if (rc)
        return rc;
    if (cap < zk_frame_size(len))
        return -ENOBUFS;
    rc = zk_frame_conn_seal(c, flags, payload, len, buf,
                            buf + ZK_FRAME_HEADER_SIZE + len);
    ZK_ASSERT(rc == 0);
    if (len)
        memcpy(buf + ZK_FRAME_HEADER_SIZE, payload, len);
    *len_out = zk_frame_size(len);
    return 0;
}

uint64_t zk_frame_conn_peer(const struct zk_frame_conn *c)
{
    return c->got_hello ? c->peer_id : 0;
}

int zk_frame_conn_ready(const struct zk_frame_conn *c)
{
    return !c->err && c->auth_sent && c->got_auth;
}

const char *zk_frame_conn_why(const struct zk_frame_conn *c)
{
    return c->why;
}
