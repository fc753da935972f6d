/*
 * ctl_parse.h — private to fs/: the control file's request format
 * (include/zk_ctl.h) as pure functions of bytes, so that the daemon
 * (fs/ctl.c) and the fuzzer (test/fuzz/fuzz_ctl.c) parse requests with the
 * same code and without FUSE. Any thread; no allocation.
 */
#ifndef ZK_CTL_PARSE_H
#define ZK_CTL_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define ZK__CTL_FIELDS_MAX 4        /* tab-separated fields looked at */

enum zk__ctl_op {
    ZK__CTL_CREATE = 1, ZK__CTL_SET, ZK__CTL_RM, ZK__CTL_STAT, ZK__CTL_SYNC,
    ZK__CTL_TXN, ZK__CTL_STATUS, ZK__CTL_UMOUNT, ZK__CTL_SNAPSHOT,
};

/* One parsed request. Pointers are into the buffer given to
 * zk__ctl_parse, which must outlive it. */
struct zk__ctl_req {
    enum zk__ctl_op op;
    uint32_t flags;             /* create: ZK_CREATE_*                   */
    int32_t version;            /* set, rm: -1 = any                     */
    const char *path;           /* create, set, rm, stat: NUL-terminated,
                                   not yet checked (zk_path_check)       */
    const uint8_t *payload;     /* the bytes after the header line       */
    size_t payload_len;
};

/* Whether req[0..len) (the bytes gathered so far, starting with the
 * 4-byte length prefix) is a whole request: 1 yes, 0 not yet, -EINVAL if
 * the prefix is 0 or over ZK_CTL_REQ_MAX or more bytes came than it
 * announced. */
int zk__ctl_gathered(const uint8_t *req, size_t len);

/* Parses a whole request (req as accepted by zk__ctl_gathered, len bytes
 * including the prefix). Writes NULs into the header line. *out is written
 * only on success. Errors: -EINVAL (no header line, unknown op, wrong
 * field count, bad flags or version), -EFBIG (create/set/rm payload
 * over ZK_DATA_MAX); *why (may be NULL) then says which when it is not the
 * errno's own text (NULL otherwise). */
int zk__ctl_parse(uint8_t *req, size_t len, struct zk__ctl_req *out,
                  const char **why);

#endif /* ZK_CTL_PARSE_H */
