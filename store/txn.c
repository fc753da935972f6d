/*
 * txn.c — the transaction encoding (see include/zk_txn.h for the layout):
 * encode, verify, decode, and the name/path checks every layer shares.
 *
 * What it keeps true: zk_txn_decode never reads a byte outside [buf,
 * buf+len), rejects every length field that would overrun its container,
 * and hands back one malloc'd block whose strings are NUL-terminated, so
 * arbitrary bytes from a peer or a damaged log can only produce an error.
 * Decode is structural: it accepts any path bytes up to ZK_PATH_MAX; the
 * store checks paths when it applies the ops (a deterministic per-op error).
 */
#include "zk_txn.h"
#include "zk_common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const uint8_t txn_magic[4] = {'Z', 'K', 'T', 'X'};

/* Fixed part of one encoded op, then four u32 length prefixes. */
#define OP_FIXED_SIZE (1 + 4 + 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4)
#define OP_MIN_SIZE   (OP_FIXED_SIZE + 4 * 4)
#define BODY_HDR_SIZE (8 + 4)

/* ------------------------------------------------------------------ */
/* Checks                                                              */
/* ------------------------------------------------------------------ */

int zk_name_check(const char *name, size_t len)
{
    if (name == NULL || len == 0)
        return -EINVAL;
    if (len > ZK_NAME_MAX)
        return -ENAMETOOLONG;
    if ((len == 1 && name[0] == '.') ||
        (len == 2 && name[0] == '.' && name[1] == '.'))
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '/' || c < 0x20 || c == 0x7f)
            return -EINVAL;
    }
    return 0;
}

int zk_path_check(const char *path, size_t len)
{
    if (path == NULL || len == 0 || path[0] != '/')
        return -EINVAL;
    if (len >= ZK_PATH_MAX)
        return -ENAMETOOLONG;
    if (len == 1)
        return 0;
    size_t start = 1;
    for (size_t i = 1; i <= len; i++) {
        if (i < len && path[i] != '/')
            continue;
        int rc = zk_name_check(path + start, i - start);
        if (rc != 0)
            return rc;
        start = i + 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Encode                                                              */
/* ------------------------------------------------------------------ */

static int op_check(const struct zk_op *op)
{
    if (op->type < ZK_OP_CREATE || op->type > ZK_OP_TYPE_MAX)
        return -EINVAL;
    if (op->data_len > ZK_DATA_MAX || op->path_len > ZK_PATH_MAX ||
        op->path2_len > ZK_PATH_MAX || op->owner_len > ZK_OWNER_MAX)
        return -EINVAL;
    if ((op->path_len && !op->path) || (op->path2_len && !op->path2) ||
        (op->data_len && !op->data) || (op->owner_len && !op->owner))
        return -EINVAL;
    return 0;
}

static uint8_t *put_bytes(uint8_t *p, const void *src, uint32_t len)
{
    zk_put_be32(p, len);
    if (len)
        memcpy(p + 4, src, len);
    return p + 4 + len;
}

static uint8_t *put_op(uint8_t *p, const struct zk_op *op)
{
    *p++ = op->type;
    zk_put_be32(p, op->flags); p += 4;
    zk_put_be32(p, (uint32_t)op->version); p += 4;
    zk_put_be32(p, op->mode); p += 4;
    zk_put_be32(p, op->uid); p += 4;
    zk_put_be32(p, op->gid); p += 4;
    zk_put_be32(p, op->attr_mask); p += 4;
    zk_put_be64(p, op->ino); p += 8;
    zk_put_be64(p, op->session); p += 8;
    zk_put_be32(p, op->timeout_ms); p += 4;
    p = put_bytes(p, op->path, op->path_len);
    p = put_bytes(p, op->path2, op->path2_len);
    p = put_bytes(p, op->data, op->data_len);
    return put_bytes(p, op->owner, op->owner_len);
}

int zk_txn_encode(const struct zk_txn *txn, uint8_t **out, size_t *out_len)
{
    if (txn == NULL || txn->nops == 0 || txn->nops > ZK_TXN_OPS_MAX ||
        txn->ops == NULL)
        return -EINVAL;
    size_t body = BODY_HDR_SIZE;
    for (uint32_t i = 0; i < txn->nops; i++) {
        const struct zk_op *op = &txn->ops[i];
        int rc = op_check(op);
        if (rc != 0)
            return rc;
        body += OP_MIN_SIZE + (size_t)op->path_len + op->path2_len +
                op->data_len + op->owner_len;
    }
    if (body > ZK_TXN_ENC_MAX)
        return -EINVAL;
    uint8_t *buf = malloc(ZK_TXN_HDR_SIZE + body);
    if (buf == NULL)
        return -ENOMEM;
    uint8_t *p = buf + ZK_TXN_HDR_SIZE;
    zk_put_be64(p, txn->time_ms); p += 8;
    zk_put_be32(p, txn->nops); p += 4;
    for (uint32_t i = 0; i < txn->nops; i++)
        p = put_op(p, &txn->ops[i]);
    ZK_ASSERT((size_t)(p - buf) == ZK_TXN_HDR_SIZE + body);
    memcpy(buf, txn_magic, 4);
    buf[4] = 0; buf[5] = ZK_TXN_VERSION;
    buf[6] = 0; buf[7] = 0;
    zk_put_be32(buf + 8, (uint32_t)body);
    zk_put_be32(buf + 12, (uint32_t)crc32(0L, buf + ZK_TXN_HDR_SIZE,
                                          (uInt)body));
    *out = buf;
    *out_len = ZK_TXN_HDR_SIZE + body;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Verify and decode                                                   */
/* ------------------------------------------------------------------ */

int zk_txn_verify(const uint8_t *buf, size_t len)
{
    if (buf == NULL || len < ZK_TXN_HDR_SIZE)
        return ZK_ETRUNCATED;
    if (memcmp(buf, txn_magic, 4) != 0)
        return ZK_ECORRUPT;
    uint16_t version = (uint16_t)(buf[4] << 8 | buf[5]);
    uint16_t flags = (uint16_t)(buf[6] << 8 | buf[7]);
    if (version != ZK_TXN_VERSION)
        return ZK_EFOREIGN;
    if (flags != 0)
        return ZK_ECORRUPT;
    uint32_t body = zk_get_be32(buf + 8);
    if (body > ZK_TXN_ENC_MAX || body < BODY_HDR_SIZE)
        return ZK_ECORRUPT;
    if (len - ZK_TXN_HDR_SIZE < body)
        return ZK_ETRUNCATED;
    if (len - ZK_TXN_HDR_SIZE > body)
        return ZK_ECORRUPT;  /* trailing bytes: not what encode produced */
    uint32_t crc = (uint32_t)crc32(0L, buf + ZK_TXN_HDR_SIZE, (uInt)body);
    if (crc != zk_get_be32(buf + 12))
        return ZK_ECORRUPT;
    return 0;
}

/* A bounded reader over the body: every take checks what is left. */
struct rd {
    const uint8_t *p;
    size_t left;
    char *strings;  /* where the next NUL-terminated copy goes */
};

static int rd_u32(struct rd *r, uint32_t *v)
{
    if (r->left < 4)
        return ZK_ECORRUPT;
    *v = zk_get_be32(r->p);
    r->p += 4; r->left -= 4;
    return 0;
}

static int rd_u64(struct rd *r, uint64_t *v)
{
    if (r->left < 8)
        return ZK_ECORRUPT;
    *v = zk_get_be64(r->p);
    r->p += 8; r->left -= 8;
    return 0;
}

/* Copies a length-prefixed field into the string area, NUL-terminated. */
static int rd_bytes(struct rd *r, uint32_t max, const char **s, uint32_t *len)
{
    uint32_t n;
    if (rd_u32(r, &n) != 0 || n > max || n > r->left)
        return ZK_ECORRUPT;
    memcpy(r->strings, r->p, n);
    r->strings[n] = '\0';
    *s = r->strings;
    *len = n;
    r->strings += (size_t)n + 1;
    r->p += n; r->left -= n;
    return 0;
}

static int rd_op(struct rd *r, struct zk_op *op)
{
    uint32_t v[6];
    const char *data;
    if (r->left < OP_MIN_SIZE)
        return ZK_ECORRUPT;
    op->type = *r->p;
    r->p++; r->left--;
    if (op->type < ZK_OP_CREATE || op->type > ZK_OP_TYPE_MAX)
        return ZK_ECORRUPT;
    for (int i = 0; i < 6; i++)
        if (rd_u32(r, &v[i]) != 0)
            return ZK_ECORRUPT;
    op->flags = v[0];
    op->version = (int32_t)v[1];
    op->mode = v[2]; op->uid = v[3]; op->gid = v[4]; op->attr_mask = v[5];
    if (rd_u64(r, &op->ino) || rd_u64(r, &op->session) ||
        rd_u32(r, &op->timeout_ms) ||
        rd_bytes(r, ZK_PATH_MAX, &op->path, &op->path_len) ||
        rd_bytes(r, ZK_PATH_MAX, &op->path2, &op->path2_len) ||
        rd_bytes(r, ZK_DATA_MAX, &data, &op->data_len) ||
        rd_bytes(r, ZK_OWNER_MAX, &op->owner, &op->owner_len))
        return ZK_ECORRUPT;
    op->data = (const uint8_t *)data;
    return 0;
}

int zk_txn_decode(const uint8_t *buf, size_t len, struct zk_txn **out)
{
    int rc = zk_txn_verify(buf, len);
    if (rc != 0)
        return rc;
    struct rd r = {buf + ZK_TXN_HDR_SIZE, len - ZK_TXN_HDR_SIZE, NULL};
    uint64_t time_ms;
    uint32_t nops;
    if (rd_u64(&r, &time_ms) || rd_u32(&r, &nops))
        return ZK_ECORRUPT;
    if (nops == 0 || nops > ZK_TXN_OPS_MAX || nops > r.left / OP_MIN_SIZE)
        return ZK_ECORRUPT;
    /* Strings total at most the body bytes, plus four NULs per op. */
    size_t size = sizeof(struct zk_txn) + nops * sizeof(struct zk_op) +
                  r.left + (size_t)nops * 4;
    struct zk_txn *txn = malloc(size);
    if (txn == NULL)
        return -ENOMEM;
    txn->time_ms = time_ms;
    txn->nops = nops;
    txn->ops = (struct zk_op *)(txn + 1);
    r.strings = (char *)(txn->ops + nops);
    for (uint32_t i = 0; i < nops; i++) {
        if (rd_op(&r, &txn->ops[i]) != 0)
            goto corrupt;
    }
    if (r.left != 0)
        goto corrupt;
    *out = txn;
    return 0;
corrupt:
    free(txn);
    return ZK_ECORRUPT;
}

void zk_txn_free(struct zk_txn *txn)
{
    free(txn);
}
