/*
 * fuzz_peer.c — what an authenticated peer can send: DATA frames through
 * the frame layer (replica/frame.c), the Zab message decoder
 * (replica/zab_msg.c) on every message type, and the consensus core
 * (replica/zab*.c) stepping whatever decodes, as a follower of a
 * five-member ensemble (members 1, 2, 3 vote, 4 and 5 observe; we are 2).
 *
 * Input: byte 0 picks the mode. Odd: the rest is raw bytes from an
 * unauthenticated connection, fed to a fresh receiver in chunks whose
 * sizes come from the input (handshake parsing, header checks, the
 * receive buffer bound). Even: each other member (1, 3, 4, 5) completes
 * the handshake with us in memory, then the rest is a list of commands,
 * each for the member its top two bits pick: 0 ticks the core (or
 * proposes a write, hears from the member, renews the session), 1 sends a
 * message the target builds from fields in the input (so that mutations
 * reach the core's rules: an election needs votes from several members),
 * 2 sends raw payload bytes with the frame flags the runtime uses
 * (ENS_FRAME_ZAB or ZAB_MORE fragments, reassembled as ens_net.c does),
 * 3 also flips one byte of the sealed frame (which must then be refused
 * and closes that member's connection).
 *
 * Checks: a decoded message encodes back to the same bytes; a message the
 * core emits encodes (it never breaks the codec's limits); nothing
 * crashes, asserts, leaks or allocates more than a frame's bound.
 */
#include "fuzz.h"
#include "zk_common.h"
#include "zk_frame.h"
#include "zk_zab.h"

#include <errno.h>
#include <string.h>

#define ME          2u
#define FRAME_ZAB   1       /* ens_int.h's ENS_FRAME_ZAB */
#define FRAME_MORE  2       /* ens_int.h's ENS_FRAME_ZAB_MORE */
#define MSG_MAX     (ZK_ZAB_MSG_BATCH_BYTES + 2 * ZK_ZAB_PAYLOAD_MAX)
#define CMDS_MAX    512
#define PEERS       4

static const uint8_t secret[] = "zkfs fuzz secret, 32 bytes long";
static struct zk_zab_entry rx_entries[ZK_ZAB_MSG_ENTRIES_MAX];
static uint8_t tx_buf[1 << 16];

struct peer {
    struct zk_frame_conn *them, *us;
    struct zk_zab *z;           /* ours, shared by every peer */
    uint32_t id;
    uint8_t *frag;
    size_t frag_len;
    int dead;
};

/* ---- raw bytes before authentication ---------------------------------- */

static void feed_raw(struct fz *f)
{
    struct zk_frame_conn *c;
    struct zk_frame fr;

    FZ_CHECK(zk_frame_conn_new(secret, sizeof(secret), ME, 0, &c) == 0);
    while (f->left) {
        size_t n = (size_t)fz_u8(f) + 1, used = 0;
        n = n < f->left ? n : f->left;
        int ev = zk_frame_conn_feed(c, f->p, n, &used, &fr);
        if (ev < 0)
            break;
        FZ_CHECK(used <= n);
        if (ev == ZK_FRAME_EV_NONE)
            FZ_CHECK(used == n);
        f->p += used;
        f->left -= used;
    }
    zk_frame_conn_free(c);
}

/* ---- the core ---------------------------------------------------------- */

/* Plays the embedder: every Ready is "persisted", its messages encoded. */
static void core_drain(struct zk_zab *z)
{
    for (int round = 0; round < 16 && zk_zab_has_ready(z); round++) {
        struct zk_zab_ready rd;
        zk_zab_ready(z, &rd);
        for (size_t i = 0; i < rd.n_msgs; i++) {
            size_t need = zk_zab_msg_encoded_size(&rd.msgs[i]), len;
            uint8_t *b = malloc(need);
            FZ_CHECK(b && zk_zab_msg_encode(&rd.msgs[i], b, need, &len) == 0);
            FZ_CHECK(len == need);
            free(b);
        }
        zk_zab_advance(z);
    }
}

/* ---- receiving a DATA frame as ens_net.c's on_data does --------------- */

static void check_round_trip(const uint8_t *buf, size_t len,
                             const struct zk_zab_msg *m)
{
    size_t need = zk_zab_msg_encoded_size(m), out;
    uint8_t *b = malloc(need);

    FZ_CHECK(b && need == len);
    FZ_CHECK(zk_zab_msg_encode(m, b, need, &out) == 0 && out == len);
    FZ_CHECK(memcmp(b, buf, len) == 0);
    free(b);
}

static void on_data(struct peer *p, const struct zk_frame *fr)
{
    const uint8_t *buf = fr->payload;
    size_t len = fr->len;
    struct zk_zab_msg m;

    if (fr->flags == FRAME_MORE || (fr->flags == FRAME_ZAB && p->frag_len)) {
        if (p->frag_len + fr->len > MSG_MAX) {
            p->dead = 1;
            return;
        }
        uint8_t *nb = realloc(p->frag, p->frag_len + fr->len + 1);
        FZ_CHECK(nb != NULL);
        p->frag = nb;
        memcpy(p->frag + p->frag_len, fr->payload, fr->len);
        p->frag_len += fr->len;
        if (fr->flags == FRAME_MORE)
            return;
        buf = p->frag;
        len = p->frag_len;
    } else if (fr->flags != FRAME_ZAB) {
        p->dead = 1;            /* snapshot frames: not this target's */
        return;
    }
    int rc = zk_zab_msg_decode(buf, len, &m, rx_entries,
                               ZK_ARRAY_LEN(rx_entries));
    FZ_CHECK(rc == 0 || rc == ZK_ECORRUPT || rc == ZK_ETRUNCATED);
    if (rc == 0)
        check_round_trip(buf, len, &m);
    if (rc || m.from != p->id || m.to != ME) {
        p->dead = 1;
        return;
    }
    FZ_CHECK(zk_zab_step(p->z, &m) == 0);
    core_drain(p->z);
    p->frag_len = 0;
}

/* Seals payload as the peer and feeds the frame to us in pieces. */
static void send_frame(struct peer *p, struct fz *f, uint16_t flags,
                       const uint8_t *payload, size_t len, int flip)
{
    size_t size = zk_frame_size((uint32_t)len), off = 0;
    uint8_t *b = malloc(size);
    struct zk_frame fr;

    FZ_CHECK(b != NULL);
    FZ_CHECK(zk_frame_conn_encode(p->them, flags, payload, (uint32_t)len, b,
                                  size, &size) == 0);
    if (flip) {
        size_t at = fz_u16(f) % size;
        b[at] ^= (uint8_t)(fz_u8(f) | 1);
    }
    while (off < size && !p->dead) {
        size_t step = ((size_t)fz_u8(f) + 1) * 64, used = 0;
        step = step < size - off ? step : size - off;
        int ev = zk_frame_conn_feed(p->us, b + off, step, &used, &fr);
        if (ev < 0) {
            p->dead = 1;
            break;
        }
        off += used;
        if (ev == ZK_FRAME_EV_DATA) {
            FZ_CHECK(!flip);    /* a changed byte never verifies */
            on_data(p, &fr);
        } else
            FZ_CHECK(ev == ZK_FRAME_EV_NONE && used == step);
    }
    if (flip)
        p->dead = 1;    /* the receiver waits for the rest or has failed */
    free(b);
}

/* ---- commands ---------------------------------------------------------- */

/* Builds a message from input fields, mostly well-formed. */
static void send_built(struct peer *p, struct fz *f)
{
    struct zk_zab_entry ents[8];
    struct zk_zab_msg m;
    memset(&m, 0, sizeof(m));
    size_t len;

    m.type = (uint8_t)(fz_u8(f) % ZK_ZAB_MSG_TYPE_MAX + 1);
    m.flags = fz_u8(f) & 7;
    m.from = p->id;
    m.to = ME;
    m.epoch = fz_u8(f) % 4;
    m.link = fz_u8(f) % 4;
    m.seq = fz_u8(f);
    m.zxid = ZK_ZAB_ZXID(fz_u8(f) % 4, fz_u8(f) % 8);
    m.zxid2 = ZK_ZAB_ZXID(fz_u8(f) % 4, fz_u8(f) % 8);
    m.aux = fz_u8(f) & 1 ? fz_u32(f) : fz_u8(f);
    m.state = fz_u8(f) % 5;
    m.leader = fz_u8(f) % 7;
    if (m.type == ZK_ZAB_MSG_SNAP)
        m.n_sessions = fz_u8(f) % 6;
    for (uint32_t i = 0; i < m.n_sessions; i++)
        m.sessions[i] = (uint64_t)(i + 1) << 56 | fz_u8(f);
    if (m.type == ZK_ZAB_MSG_PROPOSE || m.type == ZK_ZAB_MSG_INFORM ||
        m.type == ZK_ZAB_MSG_REQUEST)
        m.n_entries = fz_u8(f) % ZK_ARRAY_LEN(ents);
    for (uint32_t i = 0; i < m.n_entries; i++) {
        ents[i].zxid = ZK_ZAB_ZXID(m.zxid >> 32, (uint32_t)m.zxid + i + 1);
        ents[i].req_id = fz_u8(f);
        ents[i].origin = fz_u8(f) % 6;
        ents[i].type = fz_u8(f) % 3 + 1;
        ents[i].data = fz_bytes(f, 64, &len);
        ents[i].len = (uint32_t)len;
    }
    m.entries = ents;
    FZ_CHECK(zk_zab_msg_encode(&m, tx_buf, sizeof(tx_buf), &len) == 0);
    send_frame(p, f, FRAME_ZAB, tx_buf, len, 0);
}

/* What the runtime does to the core besides stepping messages: sub 0-3
 * ticks 1-4 times, 4 proposes a write, 5 says it hears from the member
 * (a snapshot streams), 6 gives the session up, 7 ticks 16 times. */
static void local(struct peer *p, unsigned sub)
{
    uint64_t req;

    if (sub < 4 || sub >= 7) {
        for (unsigned t = sub < 4 ? sub + 1 : 16; t > 0; t--)
            zk_zab_tick(p->z);
    } else if (sub == 4) {
        int rc = zk_zab_propose(p->z, (const uint8_t *)"write", 5, &req);
        FZ_CHECK(rc == 0 || rc == ZK_ENOTREADY || rc == -EAGAIN);
    } else if (sub == 5) {
        zk_zab_heard(p->z, p->id);
    } else {
        zk_zab_session_renew(p->z);
    }
    core_drain(p->z);
}

static void run_commands(struct peer *peers, struct fz *f)
{
    size_t len;

    for (int n = 0; n < CMDS_MAX && f->left; n++) {
        uint8_t cmd = fz_u8(f);
        struct peer *p = &peers[cmd >> 6];
        if (p->dead)
            continue;
        if (cmd % 4 == 0) {
            local(p, cmd >> 2 & 15);
        } else if (cmd % 4 == 1) {
            send_built(p, f);
        } else {
            uint16_t flags = cmd & 4 ? FRAME_MORE : FRAME_ZAB;
            if (cmd & 8)
                flags = fz_u16(f);
            if (cmd & 16)
                p->frag_len = 0;
            const uint8_t *b = fz_bytes(f, 1 << 16, &len);
            send_frame(p, f, flags, b, len, cmd % 4 == 3);
        }
    }
}

static void handshake(struct peer *p)
{
    uint8_t a[256], b[256];
    size_t an, bn, used;
    struct zk_frame fr;

    FZ_CHECK(zk_frame_conn_new(secret, sizeof(secret), p->id, ME,
                               &p->them) == 0);
    FZ_CHECK(zk_frame_conn_new(secret, sizeof(secret), ME, 0, &p->us) == 0);
    FZ_CHECK(zk_frame_conn_hello(p->them, a, sizeof(a), &an) == 0);
    FZ_CHECK(zk_frame_conn_hello(p->us, b, sizeof(b), &bn) == 0);
    FZ_CHECK(zk_frame_conn_feed(p->us, a, an, &used, &fr) ==
             ZK_FRAME_EV_HELLO);
    FZ_CHECK(zk_frame_conn_feed(p->them, b, bn, &used, &fr) ==
             ZK_FRAME_EV_HELLO);
    FZ_CHECK(zk_frame_conn_auth(p->them, a, sizeof(a), &an) == 0);
    FZ_CHECK(zk_frame_conn_auth(p->us, b, sizeof(b), &bn) == 0);
    FZ_CHECK(zk_frame_conn_feed(p->us, a, an, &used, &fr) ==
             ZK_FRAME_EV_READY);
    FZ_CHECK(zk_frame_conn_feed(p->them, b, bn, &used, &fr) ==
             ZK_FRAME_EV_READY);
    FZ_CHECK(zk_frame_conn_ready(p->us) && zk_frame_conn_ready(p->them));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t ids[PEERS] = {1, 3, 4, 5};
    struct fz f = {data, size};
    struct peer p[PEERS];
    struct zk_zab *z;

    memset(p, 0, sizeof(p));
    if (fz_u8(&f) & 1) {
        feed_raw(&f);
        return 0;
    }
    z = fz_core(ME);
    core_drain(z);
    for (int i = 0; i < PEERS; i++) {
        p[i].id = ids[i];
        p[i].z = z;
        handshake(&p[i]);
    }
    run_commands(p, &f);
    if (getenv("ZK_FUZZ_LOG")) {
        struct zk_zab_status st;
        zk_zab_status(z, &st);
        fprintf(stderr, "fuzz_peer: %s epoch %llu commit %#llx; "
                "dead:%d%d%d%d\n",
                zk_zab_role_name(st.role), (unsigned long long)st.epoch,
                (unsigned long long)st.commit_zxid, p[0].dead, p[1].dead,
                p[2].dead, p[3].dead);
    }
    zk_zab_destroy(z);
    for (int i = 0; i < PEERS; i++) {
        zk_frame_conn_free(p[i].them);
        zk_frame_conn_free(p[i].us);
        free(p[i].frag);
    }
    return 0;
}
