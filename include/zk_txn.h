/*
 * zk_txn.h — the transaction: what every change to the znode tree is, and its
 * one versioned, checksummed encoding.
 *
 * A transaction is an all-or-nothing list of operations (a ZooKeeper multi;
 * a single change is a list of one). The bytes produced by zk_txn_encode are
 * what the replicated log carries unchanged: the consensus core treats them
 * as opaque, the store's log keeps them under their zxid, and every replica
 * applies them with zk_store_batch_apply. The zxid is NOT inside the
 * encoding: the log entry carries it (the leader assigns it after encoding).
 *
 * Encoding, version 1 (all integers big-endian):
 *   header (16 bytes): magic "ZKTX" | u16 version=1 | u16 flags=0 |
 *                      u32 body length | u32 crc32 (zlib) of the body
 *   body: u64 time_ms | u32 nops | nops x op
 *   op:   u8 type | u32 flags | i32 version | u32 mode | u32 uid | u32 gid |
 *         u32 attr_mask | u64 ino | u64 session | u32 timeout_ms |
 *         bytes path | bytes path2 | bytes data | bytes owner
 *   bytes: u32 length | length bytes
 * docs/formats.md documents it for readers of the on-disk log.
 */
#ifndef ZK_TXN_H
#define ZK_TXN_H

#include <stdint.h>
#include <stddef.h>

#define ZK_DATA_MAX      (1024 * 1024) /* largest znode data, bytes       */
#define ZK_NAME_MAX      255           /* longest path component, bytes   */
#define ZK_PATH_MAX      4097          /* longest path + its NUL, bytes   */
#define ZK_OWNER_MAX     256           /* longest owner description       */
#define ZK_TXN_OPS_MAX   1024          /* most operations in one txn      */
#define ZK_TXN_VERSION   1
#define ZK_TXN_HDR_SIZE  16
/* Largest encoded transaction a peer or the log may hand us. */
#define ZK_TXN_ENC_MAX   (ZK_DATA_MAX + 64 * 1024 + ZK_TXN_OPS_MAX * 128)

enum zk_op_type {
    ZK_OP_CREATE = 1,        /* path, data, mode, uid, gid, flags, session, owner */
    ZK_OP_DELETE = 2,        /* path, version, ino                             */
    ZK_OP_SET_DATA = 3,      /* path, data, version, ino                       */
    ZK_OP_APPEND = 4,        /* path, data (appended at apply time), ino        */
    ZK_OP_SET_ATTR = 5,      /* path, attr_mask, mode, uid, gid, version, ino   */
    ZK_OP_RENAME = 6,        /* path -> path2, flags, ino                       */
    ZK_OP_CHECK = 7,         /* path, version: fails the txn if it differs      */
    ZK_OP_SET_CHILDREN = 8,  /* path (a directory), flags = ZK_CHILDREN_*       */
    ZK_OP_SESSION_OPEN = 9,  /* session, timeout_ms, owner                      */
    ZK_OP_SESSION_CLOSE = 10,/* session: deletes every ephemeral it owns
                                (and releases its locks)                      */
    ZK_OP_LOCK = 11,         /* ino, session, flags = ZK_LOCK_*, data = lock
                                range (ZK_LOCK_DATA_SIZE), owner = "host:pid" */
    ZK_OP_UNLOCK = 12        /* ino, session, flags = ZK_LOCK_FLOCK |
                                ZK_UNLOCK_WAITS, data = lock range            */
};

#define ZK_OP_TYPE_MAX ZK_OP_UNLOCK

/* ZK_OP_LOCK / ZK_OP_UNLOCK flags (store/lock.c has the semantics). */
#define ZK_LOCK_WRITE    0x1u  /* exclusive (else shared)                  */
#define ZK_LOCK_WAIT     0x2u  /* queue behind a conflict (else -EAGAIN)   */
#define ZK_LOCK_FLOCK    0x4u  /* a flock(2) lock (else an fcntl one)      */
#define ZK_UNLOCK_WAITS  0x8u  /* UNLOCK: also drop the owner's waits      */
#define ZK_UNLOCK_NO_HOLDS 0x10u /* UNLOCK: keep what the owner holds (with
                                  ZK_UNLOCK_WAITS: cancel a wait only)   */

/* A lock op's data: u64 owner (the kernel's lock owner or open file),
 * u64 start, u64 end (inclusive; UINT64_MAX: to the end of the file),
 * u32 pid (for display). */
#define ZK_LOCK_DATA_SIZE 28

/* ZK_OP_CREATE flags. The parent's children kind (ZK_CHILDREN_*) is added
 * at apply time: a file created in an "ephemeral" directory is ephemeral,
 * any child of a "sequential" directory gets the %010d suffix. */
#define ZK_CREATE_DIR         0x1u
#define ZK_CREATE_EPHEMERAL   0x2u
#define ZK_CREATE_SEQUENTIAL  0x4u

/* ZK_OP_SET_CHILDREN flags: the directory's user.zkfs.children value. */
#define ZK_CHILDREN_EPHEMERAL  0x1u
#define ZK_CHILDREN_SEQUENTIAL 0x2u

/* ZK_OP_RENAME flags. */
#define ZK_RENAME_NOREPLACE   0x1u

/* ZK_OP_SET_ATTR attr_mask bits. */
#define ZK_ATTR_MODE  0x1u
#define ZK_ATTR_UID   0x2u
#define ZK_ATTR_GID   0x4u
/* st_mtime (utimensat, touch -d): data holds it as a big-endian u64 of
 * milliseconds since the epoch, or is empty for "now" (the transaction's
 * time). Changes POSIX st_mtime only, not ZooKeeper's mtime. */
#define ZK_ATTR_MTIME 0x8u
#define ZK_ATTR_TIME_LEN 8

/* One operation. Strings are not NUL-terminated in what the caller passes
 * to zk_txn_encode (lengths rule); zk_txn_decode NUL-terminates them.
 * version -1 means "any version"; ino 0 means "whatever the path names",
 * otherwise the op fails with -ENOENT unless path names that inode. */
struct zk_op {
    uint8_t type;
    uint32_t flags;
    int32_t version;
    uint32_t mode;          /* permission bits (07777), no file type bits */
    uint32_t uid, gid;
    uint32_t attr_mask;
    uint64_t ino;
    uint64_t session;
    uint32_t timeout_ms;
    const char *path;   uint32_t path_len;
    const char *path2;  uint32_t path2_len;
    const uint8_t *data; uint32_t data_len;
    const char *owner;  uint32_t owner_len;
};

struct zk_txn {
    uint64_t time_ms;       /* wall-clock ms stamped by the proposer */
    uint32_t nops;
    struct zk_op *ops;
};

/* Encodes txn into a new malloc'd buffer; *out and *out_len are written only on
 * success and the caller frees *out. Errors: -EINVAL (nops 0 or over
 * ZK_TXN_OPS_MAX, unknown type, data over ZK_DATA_MAX, path over
 * ZK_PATH_MAX), -ENOMEM. Any thread. */
int zk_txn_encode(const struct zk_txn *txn, uint8_t **out, size_t *out_len);

/* Checks header, version and checksum of buf without decoding the ops.
 * Errors: ZK_ETRUNCATED, ZK_ECORRUPT (bad magic/length/crc), ZK_EFOREIGN
 * (unknown version). Any thread. */
int zk_txn_verify(const uint8_t *buf, size_t len);

/* Decodes buf into one malloc'd block (*out; free it with zk_txn_free);
 * every string is NUL-terminated and points into that block. Rejects what
 * zk_txn_verify rejects plus malformed bodies (ZK_ECORRUPT) — never reads
 * past len. Any thread. */
int zk_txn_decode(const uint8_t *buf, size_t len, struct zk_txn **out);

void zk_txn_free(struct zk_txn *txn);

/* Validates one path component as a znode name: 1..ZK_NAME_MAX bytes, no
 * '/', NUL or control characters, not "." or "..". Returns 0, -EINVAL or
 * -ENAMETOOLONG. Any thread. */
int zk_name_check(const char *name, size_t len);

/* Validates an absolute znode path ("/" or "/a/b", no trailing '/', every
 * component valid). Returns 0, -EINVAL or -ENAMETOOLONG. */
int zk_path_check(const char *path, size_t len);

#endif /* ZK_TXN_H */
