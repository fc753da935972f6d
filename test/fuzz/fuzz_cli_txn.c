/*
 * fuzz_cli_txn.c — `zkfs txn` input (fs/cli.c, zk__cli_txn_parse): the
 * lines a user pipes in (create [-esd] PATH [DATA], set [-v VER] PATH
 * DATA, rm [-v VER] PATH, check -v VER PATH, comments, CRLF), and what
 * zkfs txn then does without a mount: the ops, with PATH taken as a znode
 * path, are encoded with zk_txn_encode and must decode to the same ops.
 *
 * Input: the bytes of standard input. zkfs txn refuses input holding a
 * NUL byte before parsing; the target cuts the input at its first NUL,
 * which the parser would see the same way.
 *
 * Checks: a parse that succeeds gives 1..ZK_TXN_OPS_MAX ops of the four
 * kinds with a PATH, data within ZK_DATA_MAX, a version >= -1, data and
 * words inside the input; one that fails names a reason.
 */
#include "fuzz.h"
#include "cli.h"
#include "zk_common.h"
#include "zk_txn.h"

#include <errno.h>
#include <string.h>

static struct zk__cli_txn_op ops[ZK_TXN_OPS_MAX];

static void inside(const char *in, size_t len, const void *p)
{
    FZ_CHECK((const char *)p >= in && (const char *)p <= in + len);
}

static void encode_round_trip(uint32_t n)
{
    struct zk_op *zops = calloc(n, sizeof(*zops));
    struct zk_txn txn = {0, n, zops}, *back;
    uint8_t *enc;
    size_t len;

    FZ_CHECK(zops != NULL);
    for (uint32_t i = 0; i < n; i++) {
        zops[i] = ops[i].op;
        zops[i].path = ops[i].arg;
        zops[i].path_len = (uint32_t)strlen(ops[i].arg);
    }
    int rc = zk_txn_encode(&txn, &enc, &len);
    if (rc == 0) {
        FZ_CHECK(zk_txn_decode(enc, len, &back) == 0 && back->nops == n);
        for (uint32_t i = 0; i < n; i++) {
            FZ_CHECK(back->ops[i].type == zops[i].type &&
                     back->ops[i].version == zops[i].version &&
                     back->ops[i].flags == zops[i].flags &&
                     back->ops[i].data_len == zops[i].data_len &&
                     strcmp(back->ops[i].path, zops[i].path) == 0);
            FZ_CHECK(zops[i].data_len == 0 ||
                     memcmp(back->ops[i].data, zops[i].data,
                            zops[i].data_len) == 0);
        }
        zk_txn_free(back);
        free(enc);
    } else {
        FZ_CHECK(rc == -EINVAL);    /* a PATH over ZK_PATH_MAX */
    }
    free(zops);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 1);
    uint32_t n = 0;
    const char *why = NULL;
    int line = -1;

    FZ_CHECK(in != NULL);
    memcpy(in, data, size);
    in[size] = '\0';
    size_t len = strlen(in);
    int rc = zk__cli_txn_parse(in, ops, &n, &line, &why);
    if (rc != 0) {
        FZ_CHECK(rc == -EINVAL && why != NULL && why[0] && line >= 0);
        free(in);
        return 0;
    }
    FZ_CHECK(n >= 1 && n <= ZK_TXN_OPS_MAX);
    for (uint32_t i = 0; i < n; i++) {
        const struct zk_op *op = &ops[i].op;
        FZ_CHECK(op->type == ZK_OP_CREATE || op->type == ZK_OP_SET_DATA ||
                 op->type == ZK_OP_DELETE || op->type == ZK_OP_CHECK);
        FZ_CHECK(ops[i].arg && ops[i].arg[0] && ops[i].line >= 1);
        inside(in, len, ops[i].arg);
        FZ_CHECK(op->version >= -1 && op->data_len <= ZK_DATA_MAX);
        FZ_CHECK((op->flags & ~7u) == 0);
        if (op->data_len) {
            inside(in, len, op->data);
            inside(in, len, op->data + op->data_len);
        }
    }
    encode_round_trip(n);
    free(in);
    return 0;
}
