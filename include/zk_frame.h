/*
 * zk_frame.h — the wire frame between replicas: authenticated,
 * length-prefixed, versioned, sequence-numbered, and the handshake that
 * starts every connection. Pure byte functions: no sockets, no libuv; the
 * runtime feeds in what it read and writes out what these produce.
 *
 * Frame (all integers big-endian):
 *
 *   off size
 *    0   4   magic "ZKFR" (0x5a4b4652)
 *    4   1   version (1)
 *    5   1   type: 1 HELLO, 2 AUTH, 3 DATA
 *    6   2   flags: the caller's for DATA (e.g. what the payload is), 0
 *            otherwise
 *    8   4   payload length, at most ZK_FRAME_PAYLOAD_MAX
 *   12   8   sender's server id
 *   20   8   sequence number: HELLO 0, AUTH 1, DATA 2, 3, ... (per
 *            connection and direction, no gaps)
 *   28   n   payload
 *  28+n 32   tag: HMAC-SHA256 over bytes [0, 28+n)
 *
 * Handshake (symmetric; both sides do the same, in any interleaving):
 *
 *   1. On connect, each side sends HELLO: payload = its fresh random
 *      32-byte nonce, then the id it expects the peer to have (0 if it does
 *      not know, as on an accepted connection). The tag is keyed with
 *      K_hello = HMAC(secret, "zkfs-hello-v1"), so a peer without the
 *      secret is refused at once; a replayed HELLO gets no further than
 *      step 2.
 *   2. On the peer's HELLO, each side derives the two direction keys
 *        K(a->b) = HMAC(secret, "zkfs-key-v1" || id_a || id_b
 *                               || nonce_a || nonce_b)     (ids as u64 BE)
 *      and sends AUTH, keyed with K(self->peer), whose payload echoes the
 *      peer's nonce. A valid AUTH proves that the sender knows the secret
 *      now, for this pair of nonces: it cannot be recorded from an older
 *      connection. Each direction has its own key, so a frame cannot be
 *      reflected back to its sender.
 *   3. After the peer's AUTH, DATA frames flow, each keyed with the
 *      direction key, with the next sequence number. A recorded frame from
 *      an older connection fails its tag (other nonces, other keys); one
 *      replayed within a connection has an old sequence number.
 *
 * HMAC is libsodium's HMAC-SHA-256 (the key HMAC takes the secret at any
 * length). Frames are authenticated, not encrypted: anyone on the path
 * can read them (use a private network or IPsec/WireGuard if the tree's
 * data must stay confidential), but no one can forge, alter or replay one.
 *
 * Threads: a connection is used by one thread at a time; distinct
 * connections are independent.
 */
#ifndef ZK_FRAME_H
#define ZK_FRAME_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define ZK_FRAME_MAGIC          0x5a4b4652u   /* "ZKFR"                  */
#define ZK_FRAME_VERSION        1
#define ZK_FRAME_HEADER_SIZE    28
#define ZK_FRAME_TAG_SIZE       32
#define ZK_FRAME_NONCE_SIZE     32
#define ZK_FRAME_PAYLOAD_MAX    (4u << 20)    /* bytes of one payload    */
#define ZK_FRAME_MAX            (ZK_FRAME_HEADER_SIZE + ZK_FRAME_PAYLOAD_MAX \
                                 + ZK_FRAME_TAG_SIZE)
#define ZK_FRAME_HELLO_LEN      (ZK_FRAME_NONCE_SIZE + 8) /* payload     */
#define ZK_FRAME_AUTH_LEN       ZK_FRAME_NONCE_SIZE       /* payload     */
#define ZK_FRAME_SECRET_MIN     16            /* bytes                   */
#define ZK_FRAME_BUF_KEEP       65536 /* receive buffer kept between frames */

/* An authentic frame whose sequence number is not the next one: replayed,
 * reordered or dropped. (A negative errno, distinct from ZK_ECORRUPT.) */
#define ZK_FRAME_EREPLAY        (-EPROTO)

enum zk_frame_type {
    ZK_FRAME_HELLO = 1,
    ZK_FRAME_AUTH = 2,
    ZK_FRAME_DATA = 3,
};

/* What zk_frame_conn_feed() found. */
enum zk_frame_event {
    ZK_FRAME_EV_NONE = 0,   /* all input consumed, no complete frame yet  */
    ZK_FRAME_EV_HELLO = 1,  /* peer's HELLO verified: send ..._conn_auth() */
    ZK_FRAME_EV_READY = 2,  /* peer's AUTH verified: it knows the secret;
                               DATA flows once our AUTH is made too      */
    ZK_FRAME_EV_DATA = 3,   /* *out holds a verified DATA frame            */
};

/* A received DATA frame. payload points into the connection's buffer and
 * stays valid until the next zk_frame_conn_feed() or _free() call. */
struct zk_frame {
    uint16_t flags;
    uint32_t len;
    uint64_t seq;
    const uint8_t *payload;
};

struct zk_frame_conn;

/*
 * Creates the state of one connection between self_id and a peer. secret
 * (at least ZK_FRAME_SECRET_MIN bytes) is only used here, to derive keys;
 * the caller keeps ownership. peer_id is the id expected at the other end
 * (it is checked against the peer's HELLO, and the peer checks that it is
 * the one we meant), or 0 to accept any id (an accepted connection: read
 * the id with zk_frame_conn_peer() after ZK_FRAME_EV_HELLO and check that
 * it is a configured server). Draws the nonce from libsodium's CSPRNG.
 * *out is written only on success; free it with zk_frame_conn_free().
 * Errors: -EINVAL (short secret, id 0, peer_id == self_id), -ENOMEM, -EIO
 * (libsodium failed to initialise).
 */
int zk_frame_conn_new(const uint8_t *secret, size_t secret_len,
                      uint64_t self_id, uint64_t peer_id,
                      struct zk_frame_conn **out);

/* Wipes the keys and frees c and its buffer. NULL is allowed. */
void zk_frame_conn_free(struct zk_frame_conn *c);

/* Bytes of a frame with payload_len bytes of payload. */
size_t zk_frame_size(uint32_t payload_len);

/*
 * Writes our HELLO into buf[0..cap) and its length to *len_out; send it
 * first, once. Errors: -ENOBUFS (cap < zk_frame_size(ZK_FRAME_HELLO_LEN)),
 * -EALREADY (HELLO already made), or the connection's sticky error.
 */
int zk_frame_conn_hello(struct zk_frame_conn *c, uint8_t *buf, size_t cap,
                        size_t *len_out);

/*
 * Writes our AUTH into buf[0..cap); send it after ZK_FRAME_EV_HELLO (and
 * after our HELLO). Errors: -ENOBUFS, -EAGAIN (peer's HELLO not yet
 * received or our HELLO not made), -EALREADY (AUTH already made), or the
 * connection's sticky error.
 */
int zk_frame_conn_auth(struct zk_frame_conn *c, uint8_t *buf, size_t cap,
                       size_t *len_out);

/*
 * Consumes bytes of the peer's stream from in[0..len), any chunking, and
 * stops after the first complete frame. Returns an enum zk_frame_event
 * (>= 0) and the number of bytes used in *consumed (all of them for
 * ZK_FRAME_EV_NONE); call again with the rest. For ZK_FRAME_EV_DATA, *out
 * (which must not be NULL) is filled. Partial input is never an error: the bytes are kept (at most
 * one frame) until the rest arrives.
 *
 * Errors (the connection is then dead, and every later call returns the
 * same error; close the socket; zk_frame_conn_why() says what happened):
 *   ZK_ECORRUPT       bad magic, version, type, flags or length field, a
 *                     tag that does not verify after the handshake, a
 *                     frame the handshake does not expect
 *   -EMSGSIZE         a length over ZK_FRAME_PAYLOAD_MAX
 *   -EACCES           the peer failed the handshake: HELLO or AUTH tag
 *                     wrong (wrong secret), wrong or unexpected id, our
 *                     own nonce echoed back, or AUTH for the wrong nonce
 *   ZK_FRAME_EREPLAY  an authentic DATA frame out of sequence
 *   -ENOMEM           no memory for the frame's bytes
 * Before the handshake ends a peer can make us hold only HELLO/AUTH-sized
 * frames: longer lengths are refused from the header alone.
 */
int zk_frame_conn_feed(struct zk_frame_conn *c, const uint8_t *in,
                       size_t len, size_t *consumed, struct zk_frame *out);

/*
 * Seals a DATA frame for zero-copy sending: writes the header to
 * header[0..ZK_FRAME_HEADER_SIZE) and the tag to tag[0..ZK_FRAME_TAG_SIZE);
 * send header, payload, tag in that order (e.g. one uv_write of 3
 * buffers), and in the order sealed. Takes the next sequence number.
 * Errors: -ENOTCONN (handshake not finished), -EMSGSIZE (len over
 * ZK_FRAME_PAYLOAD_MAX), -EOVERFLOW (sequence numbers used up), or the
 * connection's sticky error.
 */
int zk_frame_conn_seal(struct zk_frame_conn *c, uint16_t flags,
                       const uint8_t *payload, uint32_t len,
                       uint8_t *header, uint8_t *tag);

/* The same as zk_frame_conn_seal(), into one buffer buf[0..cap) (-ENOBUFS
 * if cap < zk_frame_size(len)); *len_out is the frame's length. */
int zk_frame_conn_encode(struct zk_frame_conn *c, uint16_t flags,
                         const uint8_t *payload, uint32_t len, uint8_t *buf,
                         size_t cap, size_t *len_out);

/* The peer's id: from its HELLO (0 before that). */
uint64_t zk_frame_conn_peer(const struct zk_frame_conn *c);

/* Non-zero once both AUTH frames are done and DATA may flow. */
int zk_frame_conn_ready(const struct zk_frame_conn *c);

/* A static one-line reason for the connection's error, for the log ("peer
 * HELLO tag does not verify (wrong secret?)"); "" if none. */
const char *zk_frame_conn_why(const struct zk_frame_conn *c);

#endif /* ZK_FRAME_H */
