/*
 * env.c — zk_env_u64: a numeric knob read from the environment, with a
 * line in the log when one is ignored. Not for the consensus core (it
 * reads the environment); the fuzz targets link it with their own log.
 */
#include "zk_common.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

int zk_env_u64(const char *name, uint64_t max, uint64_t *out)
{
    const char *v = getenv(name);
    char *end;
    unsigned long long x;

    if (v == NULL || *v == '\0')
        return 0;
    errno = 0;
    x = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0' || *v < '0' || *v > '9' || x > max) {
        if (max == UINT64_MAX)
            zk_log(ZK_LOG_WARN, "ignoring %s=%s (not a number)", name, v);
        else
            zk_log(ZK_LOG_WARN, "ignoring %s=%s (not a number up to %"
                   PRIu64 ")", name, v, max);
        return -1;
    }
    *out = x;
    return 1;
}
