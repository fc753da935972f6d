/*
 * fuzz_ctl.c — the control-file request parser (fs/ctl_parse.c): the
 * length prefix gathered over several writes as zk__fs_ctl_write does,
 * then zk__ctl_parse on each whole request, then what ctl.c does next
 * with the pieces that need no mount (the path check; a txn payload's
 * decoding).
 *
 * Input: a list of writes, each a 1-byte length step (0 means "the rest
 * of the input") followed by that many bytes, so one input may carry
 * several requests, split anywhere, like the kernel's WRITE requests.
 *
 * Checks: every field handed out lies inside the request's header line
 * and is NUL-terminated there; the payload is exactly the bytes after
 * the header line; a known op has the fields it needs; errors are the
 * documented ones.
 */
#include "fuzz.h"
#include "ctl_parse.h"
#include "zk_common.h"
#include "zk_ctl.h"
#include "zk_txn.h"

#include <errno.h>
#include <string.h>

#define WRITE_MAX 4096          /* a write of this target, bytes */

static void check_req(const uint8_t *req, size_t len,
                      const struct zk__ctl_req *r)
{
    const uint8_t *end = req + len;

    FZ_CHECK(r->op >= ZK__CTL_CREATE && r->op <= ZK__CTL_SNAPSHOT);
    FZ_CHECK(r->payload > req + 4 && r->payload <= end &&
             r->payload + r->payload_len == end && r->payload[-1] == '\0');
    if (r->op == ZK__CTL_CREATE || r->op == ZK__CTL_SET ||
        r->op == ZK__CTL_RM || r->op == ZK__CTL_STAT) {
        const uint8_t *p = (const uint8_t *)r->path;
        FZ_CHECK(p > req + 4 && p < r->payload);
        FZ_CHECK(memchr(p, '\0', (size_t)(r->payload - p)) != NULL);
        (void)zk_path_check(r->path, strlen(r->path));
        FZ_CHECK(r->payload_len <= ZK_DATA_MAX || r->op == ZK__CTL_STAT);
    }
    if (r->op == ZK__CTL_SET || r->op == ZK__CTL_RM)
        FZ_CHECK(r->version >= -1);
    if (r->op == ZK__CTL_CREATE)
        FZ_CHECK((r->flags & ~7u) == 0 &&
                 (r->flags & (ZK_CREATE_DIR | ZK_CREATE_EPHEMERAL)) !=
                     (ZK_CREATE_DIR | ZK_CREATE_EPHEMERAL));
    if (r->op == ZK__CTL_TXN) {
        struct zk_txn *t;
        if (zk_txn_decode(r->payload, r->payload_len, &t) == 0)
            zk_txn_free(t);
    }
}

static void dispatch(uint8_t *req, size_t len)
{
    struct zk__ctl_req r;
    const char *why;
    int rc = zk__ctl_parse(req, len, &r, &why);

    FZ_CHECK(rc == 0 || rc == -EINVAL || rc == -EFBIG);
    if (rc == 0)
        check_req(req, len, &r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = {data, size};
    uint8_t *req = NULL;
    size_t req_len = 0;

    while (f.left) {
        size_t n = fz_u8(&f) * 16u;
        if (f.left == 0)
            break;
        if (n == 0 || n > f.left)
            n = f.left;
        if (n > WRITE_MAX)
            n = WRITE_MAX;
        if (req_len + n > 4 + (size_t)ZK_CTL_REQ_MAX) {
            req_len = 0;                /* EMSGSIZE */
        } else {
            uint8_t *nb = realloc(req, req_len + n);
            FZ_CHECK(nb != NULL);
            req = nb;
            memcpy(req + req_len, f.p, n);
            req_len += n;
            int complete = zk__ctl_gathered(req, req_len);
            if (complete < 0)
                req_len = 0;            /* EINVAL */
            if (complete > 0) {
                dispatch(req, req_len);
                req_len = 0;
            }
        }
        f.p += n;
        f.left -= n;
    }
    free(req);
    return 0;
}
