/*
 * common.c — error names and the assertion handler. Pure: it is linked into
 * the consensus core, so it does no I/O beyond the final message of a failed
 * assertion. It lives in common/, below replica/, store/ and fs/, which all
 * depend on it (include/zk_common.h) and on nothing of each other's for it.
 */
#include "zk_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

const char *zk_strerror(int err)
{
    switch (err) {
    case 0: return "success";
    case ZK_ECORRUPT: return "corrupt data (checksum or structure check failed)";
    case ZK_EFOREIGN: return "not a zkfs data directory, or an unsupported format version";
    case ZK_EBADVERSION: return "znode version does not match";
    case ZK_ETRUNCATED: return "truncated input";
    case ZK_ENOTREADY: return "replica not ready for writes (no quorum)";
    case ZK_ESESSION: return "session expired or closed";
    default: break;
    }
    if (err < 0 && err > ZK_ERR_MAX)
        return strerror(-err);
    return "unknown error";
}

int zk_err_to_errno(int err)
{
    switch (err) {
    case ZK_ECORRUPT: return -EIO;
    case ZK_EFOREIGN: return -EINVAL;
    case ZK_EBADVERSION: return -ESTALE;
    case ZK_ETRUNCATED: return -EIO;
    case ZK_ENOTREADY: return -ETIMEDOUT;
    case ZK_ESESSION: return -ENOLINK;
    default: return err;
    }
}

void zk__assert_fail(const char *expr, const char *file, int line,
                     const char *func)
{
    fprintf(stderr, "zkfs: assertion failed: %s (%s:%d, %s)\n", expr, file,
            line, func);
    fflush(stderr);
    abort();
}
