/*
 * zk_common.h — what every zkfs module shares: error codes, the always-on
 * assertion, logging and a few byte-order helpers.
 *
 * Errors are int: 0 for success, a negative errno, or a negative project
 * code in [ZK_ERR_MIN, ZK_ERR_MAX]. zk_strerror() names both kinds.
 */
#ifndef ZK_COMMON_H
#define ZK_COMMON_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>

/* Project error codes, a reserved range below every errno. */
#define ZK_ERR_MAX        (-10001)
#define ZK_ECORRUPT       (-10001) /* stored or received bytes fail a check  */
#define ZK_EFOREIGN       (-10002) /* not a zkfs data directory / other format */
#define ZK_EBADVERSION    (-10003) /* conditional op: znode version differs  */
#define ZK_ETRUNCATED     (-10004) /* input ends before the encoding does    */
#define ZK_ENOTREADY      (-10005) /* replica cannot accept writes right now  */
#define ZK_ESESSION       (-10006) /* session expired or closed              */
#define ZK_ERR_MIN        (-10006)

/* Returns a static string naming err (a negative errno or a ZK_E code). */
const char *zk_strerror(int err);

/* Maps a project code to the errno a system call should report; negative
 * errnos pass through unchanged. Returns a negative errno. */
int zk_err_to_errno(int err);

/* Always-on assertion: a broken invariant aborts with file and line. */
#define ZK_ASSERT(cond)                                                    \
    do {                                                                   \
        if (__builtin_expect(!(cond), 0))                                  \
            zk__assert_fail(#cond, __FILE__, __LINE__, __func__);          \
    } while (0)

__attribute__((noreturn)) void zk__assert_fail(const char *expr,
                                               const char *file, int line,
                                               const char *func);

/* Logging (not for the consensus core, which logs through its tracer). */
enum zk_log_level { ZK_LOG_ERROR, ZK_LOG_WARN, ZK_LOG_INFO, ZK_LOG_DEBUG };

/* Sets the most verbose level that is written (default ZK_LOG_INFO) and
 * whether lines go to syslog (daemon) instead of stderr. Call before any
 * thread starts. */
void zk_log_setup(enum zk_log_level level, int use_syslog);
int zk_log_enabled(enum zk_log_level level);
void zk__log(enum zk_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Checks the level before the arguments are formatted. */
#define zk_log(level, ...)                                                 \
    do {                                                                   \
        if (zk_log_enabled(level))                                         \
            zk__log(level, __VA_ARGS__);                                   \
    } while (0)

/* A knob from the environment (not for the consensus core): NAME's value
 * as a decimal number no larger than max in *out, returns 1; unset or
 * empty: 0, *out untouched; anything else: logged as ignored (with what
 * it should be), returns -1, *out untouched. */
int zk_env_u64(const char *name, uint64_t max, uint64_t *out);

#define ZK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Big-endian encoding helpers (wire and on-disk formats are big-endian so
 * that LMDB keys sort numerically). */
static inline void zk_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline uint32_t zk_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}
/* The 64-bit ones as two 32-bit halves, which the compiler turns into one
 * byte swap each (a loop over 8 bytes it did not: node records decode on
 * every read). */
static inline void zk_put_be64(uint8_t *p, uint64_t v)
{
    zk_put_be32(p, (uint32_t)(v >> 32));
    zk_put_be32(p + 4, (uint32_t)v);
}
static inline uint64_t zk_get_be64(const uint8_t *p)
{
    return (uint64_t)zk_get_be32(p) << 32 | zk_get_be32(p + 4);
}

#endif /* ZK_COMMON_H */
