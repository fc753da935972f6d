/*
 * ctl_parse.c — the control file's request format (fs/ctl_parse.h,
 * include/zk_ctl.h): the length prefix that says when a request is whole,
 * and the header line that says what it asks. Pure functions of their
 * bytes; fs/ctl.c runs what they return.
 *
 * What it keeps true: nothing is read outside the length the prefix
 * announced; every field handed out is NUL-terminated inside the header
 * line; a request is either fully understood or refused with -EINVAL.
 */
#include "ctl_parse.h"
#include "zk_common.h"
#include "zk_ctl.h"
#include "zk_txn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int zk__ctl_gathered(const uint8_t *req, size_t len)
{
    if (len < 4)
        return 0;
    uint32_t n = zk_get_be32(req);
    if (n == 0 || n > ZK_CTL_REQ_MAX || len > 4 + (size_t)n)
        return -EINVAL;
    return len == 4 + (size_t)n;
}

static int parse_version(const char *s, int32_t *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < -1 || v > INT32_MAX)
        return -EINVAL;
    *out = (int32_t)v;
    return 0;
}

static int parse_create_flags(const char *s, uint32_t *out)
{
    uint32_t f = 0;
    if (strcmp(s, "-") != 0)
        for (; *s; s++) {
            if (*s == 'e') f |= ZK_CREATE_EPHEMERAL;
            else if (*s == 's') f |= ZK_CREATE_SEQUENTIAL;
            else if (*s == 'd') f |= ZK_CREATE_DIR;
            else return -EINVAL;
        }
    if ((f & ZK_CREATE_EPHEMERAL) && (f & ZK_CREATE_DIR))
        return -EINVAL;         /* ephemerals have no children */
    *out = f;
    return 0;
}

/* The op named by f[0] if it has the fields it needs, else 0. */
static enum zk__ctl_op op_of(char **f, int nf)
{
    static const struct {
        const char *name;
        enum zk__ctl_op op;
        int nf;                 /* fields incl. the name; 0: any */
    } ops[] = {
        {"create", ZK__CTL_CREATE, 3}, {"set", ZK__CTL_SET, 3},
        {"rm", ZK__CTL_RM, 3}, {"stat", ZK__CTL_STAT, 2},
        {"sync", ZK__CTL_SYNC, 0}, {"txn", ZK__CTL_TXN, 0},
        {"status", ZK__CTL_STATUS, 0}, {"umount", ZK__CTL_UMOUNT, 0},
        {"snapshot", ZK__CTL_SNAPSHOT, 0},
    };
    for (size_t i = 0; nf > 0 && i < ZK_ARRAY_LEN(ops); i++)
        if (strcmp(f[0], ops[i].name) == 0)
            return !ops[i].nf || ops[i].nf == nf ? ops[i].op : 0;
    return 0;
}

/* Fills the op's own fields from f[1..]. */
static int parse_fields(char **f, struct zk__ctl_req *r)
{
    int rc = 0;

    switch (r->op) {
    case ZK__CTL_CREATE:
        rc = parse_create_flags(f[1], &r->flags);
        r->path = f[2];
        break;
    case ZK__CTL_SET:
    case ZK__CTL_RM:
        rc = parse_version(f[1], &r->version);
        r->path = f[2];
        break;
    case ZK__CTL_STAT:
        r->path = f[1];
        break;
    default:
        break;
    }
    if (rc == 0 && r->path && r->op != ZK__CTL_STAT &&
        r->payload_len > ZK_DATA_MAX)
        rc = -EFBIG;
    return rc;
}

int zk__ctl_parse(uint8_t *req, size_t len, struct zk__ctl_req *out,
                  const char **why)
{
    struct zk__ctl_req r = {.version = -1};
    char *f[ZK__CTL_FIELDS_MAX] = {0}, *save = NULL;
    int nf = 0;

    if (why)
        *why = NULL;
    if (zk__ctl_gathered(req, len) != 1)
        return -EINVAL;
    char *hdr = (char *)req + 4;
    char *nl = memchr(hdr, '\n', len - 4);
    if (!nl) {
        if (why)
            *why = "no header line";
        return -EINVAL;
    }
    *nl = '\0';
    r.payload = (const uint8_t *)nl + 1;
    r.payload_len = len - (size_t)(r.payload - req);
    for (char *t = strtok_r(hdr, "\t", &save); t && nf < ZK__CTL_FIELDS_MAX;
         t = strtok_r(NULL, "\t", &save))
        f[nf++] = t;
    r.op = op_of(f, nf);
    if (r.op == 0)
        return -EINVAL;
    int rc = parse_fields(f, &r);
    if (rc == 0)
        *out = r;
    return rc;
}
