/*
 * zab_msg.c — the wire encoding of struct zk_zab_msg, for the runtime that
 * carries the core's messages over TCP (and for the simulator, which
 * passes every message through it so that the codec is exercised by every
 * seed).
 *
 * Layout, all integers big-endian:
 *   u8 version (ZK_ZAB_MSG_VERSION), u8 type, u8 flags, u8 zero,
 *   u32 from, u32 to, u64 epoch, u64 link, u64 seq, u64 zxid, u64 zxid2,
 *   u64 aux, u32 state, u32 leader,
 *   u32 n_sessions, n_sessions x u64,
 *   u32 n_entries, n_entries x { u64 zxid, u64 req_id, u32 origin,
 *                               u32 type, u32 len, len bytes }.
 * The decoder checks every length against the buffer before reading,
 * every count against its limit, and that nothing trails the message. It
 * does not authenticate: checksums and HMAC belong to the transport.
 */
#include "zk_zab.h"
#include "zk_common.h"

#include <errno.h>

#define HDR_BYTES   72u
#define ENT_HDR     28u

static const char *const msg_names[] = {
    "?", "VOTE", "FOLLOWERINFO", "LEADERINFO", "ACKEPOCH", "DIFF", "TRUNC",
    "SNAP", "PROPOSE", "NEWLEADER", "COMMIT", "INFORM", "PING", "ACK",
    "REQUEST",
};

const char *zk_zab_msg_name(unsigned type)
{
    if (type == 0 || type >= ZK_ARRAY_LEN(msg_names))
        return "?";
    return msg_names[type];
}

static int valid_entry_type(uint32_t t)
{
    return t >= ZK_ZAB_ENTRY_WRITE && t <= ZK_ZAB_ENTRY_SESSION_CLOSE;
}

static int carries_entries(unsigned type)
{
    return type == ZK_ZAB_MSG_PROPOSE || type == ZK_ZAB_MSG_INFORM ||
           type == ZK_ZAB_MSG_REQUEST;
}

size_t zk_zab_msg_encoded_size(const struct zk_zab_msg *m)
{
    size_t n = HDR_BYTES + 4 + 8u * m->n_sessions;
    for (uint32_t i = 0; i < m->n_entries; i++)
        n += ENT_HDR + m->entries[i].len;
    return n;
}

static int check_limits(const struct zk_zab_msg *m)
{
    if (m->n_sessions > ZK_ZAB_MEMBERS_MAX ||
        m->n_entries > ZK_ZAB_MSG_ENTRIES_MAX)
        return -EINVAL;
    for (uint32_t i = 0; i < m->n_entries; i++)
        if (m->entries[i].len > ZK_ZAB_PAYLOAD_MAX ||
            !valid_entry_type(m->entries[i].type))
            return -EINVAL;     /* what decode would refuse */
    return 0;
}

int zk_zab_msg_encode(const struct zk_zab_msg *m, uint8_t *buf, size_t cap,
                      size_t *len_out)
{
    int rc = check_limits(m);
    if (rc)
        return rc;
    size_t need = zk_zab_msg_encoded_size(m);
    if (need > cap)
        return -ENOBUFS;
    uint8_t *p = buf;
    p[0] = ZK_ZAB_MSG_VERSION; p[1] = m->type; p[2] = m->flags; p[3] = 0;
    zk_put_be32(p + 4, m->from);
    zk_put_be32(p + 8, m->to);
    zk_put_be64(p + 12, m->epoch);
    zk_put_be64(p + 20, m->link);
    zk_put_be64(p + 28, m->seq);
    zk_put_be64(p + 36, m->zxid);
    zk_put_be64(p + 44, m->zxid2);
    zk_put_be64(p + 52, m->aux);
    zk_put_be32(p + 60, m->state);
    zk_put_be32(p + 64, m->leader);
    zk_put_be32(p + 68, m->n_sessions);
    p += HDR_BYTES;
    for (uint32_t i = 0; i < m->n_sessions; i++, p += 8)
        zk_put_be64(p, m->sessions[i]);
    zk_put_be32(p, m->n_entries);
    p += 4;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const struct zk_zab_entry *e = &m->entries[i];
        zk_put_be64(p, e->zxid);
        zk_put_be64(p + 8, e->req_id);
        zk_put_be32(p + 16, e->origin);
        zk_put_be32(p + 20, e->type);
        zk_put_be32(p + 24, e->len);
        p += ENT_HDR;
        if (e->len)
            memcpy(p, e->data, e->len);
        p += e->len;
    }
    ZK_ASSERT((size_t)(p - buf) == need);
    *len_out = need;
    return 0;
}

/* Checks the fixed header; fills the scalar fields of *m. */
static int decode_header(const uint8_t *buf, size_t len, struct zk_zab_msg *m)
{
    if (len < HDR_BYTES)
        return ZK_ETRUNCATED;
    if (buf[0] != ZK_ZAB_MSG_VERSION || buf[3] != 0)
        return ZK_ECORRUPT;
    if (buf[1] == 0 || buf[1] > ZK_ZAB_MSG_TYPE_MAX)
        return ZK_ECORRUPT;
    if (buf[2] & ~(ZK_ZAB_MF_OBSERVER | ZK_ZAB_MF_COUNTED | ZK_ZAB_MF_SYNCED |
                   ZK_ZAB_MF_ABSTAIN | ZK_ZAB_MF_ESTABLISHED |
                   ZK_ZAB_MF_RESTORED))
        return ZK_ECORRUPT;
    m->type = buf[1];
    m->flags = buf[2];
    m->from = zk_get_be32(buf + 4);
    m->to = zk_get_be32(buf + 8);
    m->epoch = zk_get_be64(buf + 12);
    m->link = zk_get_be64(buf + 20);
    m->seq = zk_get_be64(buf + 28);
    m->zxid = zk_get_be64(buf + 36);
    m->zxid2 = zk_get_be64(buf + 44);
    m->aux = zk_get_be64(buf + 52);
    m->state = zk_get_be32(buf + 60);
    m->leader = zk_get_be32(buf + 64);
    m->n_sessions = zk_get_be32(buf + 68);
    if (m->n_sessions > ZK_ZAB_MEMBERS_MAX)
        return ZK_ECORRUPT;
    return 0;
}

static int decode_entries(const uint8_t *p, size_t left, struct zk_zab_msg *m,
                          struct zk_zab_entry *ents, size_t cap)
{
    if (left < 4)
        return ZK_ETRUNCATED;
    uint32_t n = zk_get_be32(p);
    p += 4; left -= 4;
    if (n > ZK_ZAB_MSG_ENTRIES_MAX || (n && !carries_entries(m->type)))
        return ZK_ECORRUPT;
    if (n > cap)
        return -ENOBUFS;
    for (uint32_t i = 0; i < n; i++) {
        if (left < ENT_HDR)
            return ZK_ETRUNCATED;
        struct zk_zab_entry *e = &ents[i];
        e->zxid = zk_get_be64(p);
        e->req_id = zk_get_be64(p + 8);
        e->origin = zk_get_be32(p + 16);
        e->type = zk_get_be32(p + 20);
        e->len = zk_get_be32(p + 24);
        p += ENT_HDR; left -= ENT_HDR;
        if (!valid_entry_type(e->type) || e->len > ZK_ZAB_PAYLOAD_MAX)
            return ZK_ECORRUPT;
        if (m->type != ZK_ZAB_MSG_REQUEST && i > 0 &&
            e->zxid <= ents[i - 1].zxid)
            return ZK_ECORRUPT;
        if (left < e->len)
            return ZK_ETRUNCATED;
        e->data = p;
        p += e->len; left -= e->len;
    }
    if (left != 0)
        return ZK_ECORRUPT;
    m->n_entries = n;
    m->entries = ents;
    return 0;
}

int zk_zab_msg_decode(const uint8_t *buf, size_t len, struct zk_zab_msg *m,
                      struct zk_zab_entry *entries, size_t entries_cap)
{
    struct zk_zab_msg t;
    memset(&t, 0, sizeof(t));
    int rc = decode_header(buf, len, &t);
    if (rc)
        return rc;
    size_t off = HDR_BYTES;
    if (len - off < 8u * t.n_sessions)
        return ZK_ETRUNCATED;
    for (uint32_t i = 0; i < t.n_sessions; i++, off += 8)
        t.sessions[i] = zk_get_be64(buf + off);
    rc = decode_entries(buf + off, len - off, &t, entries, entries_cap);
    if (rc)
        return rc;
    *m = t;
    return 0;
}
