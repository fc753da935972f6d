/*
 * store_int.h — what the files of store/ share and nobody else sees: the
 * store and batch structures, the on-disk record layouts (docs/formats.md)
 * and the helpers that map LMDB's codes to zkfs errors.
 *
 * Record layouts (all integers big-endian):
 *   nodes    key u64 ino -> node record (zk__node_encode), name at the end
 *   data     key u64 ino -> raw bytes (absent when the data is empty)
 *   dirents  key u64 parent | name bytes -> u64 child ino
 *   log      key u64 zxid -> encoded transaction (format 1 stores only:
 *            moved into the write-ahead log at open, store.c, and dropped)
 *   sessions key u64 session -> u32 timeout_ms | owner bytes
 *   ephem    key u64 session | u64 ino -> owner bytes ("host:pid")
 *   meta     key ASCII name -> u64 (the format record: "zkfs" | u32 format)
 *   locks    key u64 ino -> the inode's lock table (store/lock.c)
 */
#ifndef ZK_STORE_INT_H
#define ZK_STORE_INT_H

#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "zk_common.h"
#include "zk_store.h"
#include "lock_tab.h"
#include "wal.h"

#define ZK__READER_POOL_MAX  64        /* idle read txns kept for reuse */
#define ZK__RC_SLOTS         1024      /* nodes remembered from the kept txn */
#define ZK__RC_DATA_MAX      1024      /* data bytes remembered per node */
#define ZK__MAXREADERS       510       /* LMDB reader slots             */
#define ZK__CHECKPOINT_MS    100       /* ckpt.c: after a commit, at most */
#define ZK__CKPT_TRICKLE_US  5000      /* ckpt.c: writeback started every  */
#define ZK__DEPTH_MAX        (ZK_PATH_MAX / 2) /* deepest possible tree */
#define ZK__NODE_FIXED_SIZE  114       /* node record without its name  */

#define ZK__META_FORMAT       "zkfs.format"
#define ZK__META_LAST_APPLIED "last_applied"
#define ZK__META_NEXT_INO     "next_ino"
#define ZK__META_ZNODES       "znodes"
#define ZK__META_SESSIONS     "sessions"
#define ZK__META_DATA_BYTES   "data_bytes"
#define ZK__META_COMMIT_TXN   "commit_txn"  /* LMDB txn id of the last commit */
#define ZK__META_WAL_GEN      "wal_gen"     /* generation of the WAL (wal.c) */
#define ZK__READ_RETRY_MAX    64            /* read txn restarts (see rd_begin) */
/* A commit failing with EIO while less than this is free is a full disk. */
#define ZK__ENOSPC_SLACK_BYTES (4u * 1024 * 1024)
/* zk_store_room's default reserve: a new log segment (ZK__WAL_SEG_BYTES)
 * and LMDB's copy-on-write pages for a few batches, with room to spare. */
#define ZK__DISK_RESERVE_BYTES (16u * 1024 * 1024)
/* ... and how far above it the room must be again before that is logged */
#define ZK__ROOM_LOG_MARGIN (1u * 1024 * 1024)

/* Checkpoints of the LMDB file (ckpt.c). mu: the capture (the writer
 * holds it from mdb_txn_commit to the capture); io_mu: one checkpoint at
 * a time, and what it keeps (rd, cur, seq, txnid). */
struct zk__ckpt {
    int inited, on, thread_on, stop;
    pthread_mutex_t mu, io_mu;
    pthread_cond_t cond;
    pthread_t thread;
    int fd, env_fd;                  /* zkfs.ckpt, LMDB's file            */
    size_t psize;
    uint8_t *cap, *snap, *wbuf;      /* meta pages: captured, taken; slot */
    uint8_t *gbuf;                   /* the last slot written whole       */
    uint32_t flags;                  /* ... and its flags                 */
    uint64_t cap_txnid, cap_applied; /* under mu                          */
    uint64_t seen;                   /* the thread's: capture it last saw */
    uint64_t trickled, trickle_ns;   /* the thread's: last writeback kick  */
    uint64_t trickled_ns;            /* ... and when                      */
    int idle;                        /* under mu: waiting for a commit    */
    MDB_txn *rd[2];                  /* rd[cur]: holds the checkpoint    */
    int cur;
    uint64_t seq, txnid;             /* of the last checkpoint           */
    uint64_t interval_ns;
    _Atomic uint64_t last_ns;        /* CLOCK_MONOTONIC of the last one  */
    _Atomic uint64_t applied;        /* last applied at the last one     */
    _Atomic uint64_t count;          /* checkpoints taken                */
    _Atomic int err;                 /* errno of a failed one (sticky)    */
    uint64_t fail_at;                /* ZKFS_TEST_CHECKPOINT_FAIL         */
    char boot[40];
};

struct zk_store {
    MDB_env *env;
    MDB_dbi meta, nodes, data, dirents, sessions, ephem;
    MDB_dbi locks;                   /* created when missing (lock.c) */
    int lock_fd;
    uint64_t log_keep;               /* ZK_LOG_KEEP or ZKFS_LOG_KEEP */
    uint64_t log_keep_bytes;         /* ZK_LOG_KEEP_BYTES or ZKFS_...  */
    /* The proposal log (wal.c). wal_mu guards the pointer for readers;
     * only the writer replaces it (installs), holding wal_mu. */
    pthread_mutex_t wal_mu;
    struct zk__wal *wal;
    uint64_t wal_gen, wal_seg_bytes;
    uint64_t reserve_bytes;          /* zk_store_room                  */
    atomic_int room_low;             /* refusing (logged)              */
    atomic_uint_fast64_t room_refusals;  /* zk_store_room's -ENOSPC    */
    int log_nosync;                  /* zk_store_log_sync(s, 0)        */
    char dir[PATH_MAX];
    /* last_applied of the last LMDB commit; what a lazy commit left
     * durable is the one before it (batch.c, trimming the log) */
    uint64_t applied_committed;
    pthread_mutex_t pool_mu;
    int npool;
    MDB_txn *pool[ZK__READER_POOL_MAX];
    /* LMDB commits published so far (batch.c counts each one after
     * mdb_txn_commit returned). */
    _Atomic uint64_t commits;
    /* The kept read txn of one thread (zk_store_reader_keep): touched by
     * that thread only. live: renewed after `commits` was kept_commits;
     * busy: handed out to a read that has not ended. */
    int keep_on, kept_live, kept_busy;
    pthread_t keep_owner;
    MDB_txn *kept;
    uint64_t kept_commits;
    /* What the kept txn showed of recently read nodes (store.c, "The
     * kept read transaction"); that thread only; NULL until first used. */
    struct zk__rc_slot *rc;
    /* batch.c: commit durations (zk_store_fsync_stats) */
    _Atomic uint64_t fsync_le[ZK_STORE_FSYNC_BUCKETS];
    _Atomic uint64_t fsync_count, fsync_sum_ns;
    struct zk__ckpt ck;
};

struct zk_store_batch {
    struct zk_store *s;
    MDB_txn *txn;
    uint64_t last_applied;
    /* The log side, written at commit before the LMDB transaction:
     * an install (a new log generation), then a truncation, then the
     * records logged (copies). */
    struct zk__wal_rec *recs;
    size_t nrecs, caprecs;
    uint64_t log_last;        /* the log's last zxid as the batch sees it */
    uint64_t trunc_after;     /* with truncate: records above it removed */
    unsigned truncate : 1;
    unsigned install : 1;     /* zk_store_batch_install_begin was called */
    unsigned tree : 1;        /* the LMDB transaction has changes */
    unsigned durable : 1;     /* ... that cannot be remade from the log */
};

/* A znode as stored: its stat (ino from the key) and its name. */
struct zk__node {
    struct zk_stat st;
    uint32_t name_len;
    char name[ZK_NAME_MAX + 1];
};

/* The counters kept in meta and updated by every apply. */
struct zk__counters {
    uint64_t next_ino, znodes, sessions, data_bytes;
};

/* lock.c: the lock table (the rules and zk__lock_emit_cb: lock_tab.h). */
/* Applies a ZK_OP_LOCK or ZK_OP_UNLOCK (the node and session are checked
 * by the caller). Errors: -EAGAIN (conflict, no wait), -EINVAL, -ENOLCK,
 * store errors. */
int zk__lock_apply(struct zk_store *s, MDB_txn *txn, uint64_t zxid,
                   const struct zk_op *op, struct zk_op_result *r,
                   zk__lock_emit_cb emit, void *arg);
/* Drops every lock and wait of session (it closed or expired). */
int zk__lock_session_close(struct zk_store *s, MDB_txn *txn, uint64_t zxid,
                           uint64_t session, zk__lock_emit_cb emit, void *arg);
/* Opens (creates when missing) the locks table; store open. */
int zk__lock_open(struct zk_store *s, MDB_txn *txn);

/* Maps an LMDB or system code to a zkfs error, logging what failed. */
int zk__mdb_err(int rc, const char *what);

/* True for errors that abort a batch rather than fail one op. */
int zk__is_fatal(int err);

size_t zk__node_encode(const struct zk__node *n, uint8_t *buf);
/* The node a lookup of ino found: rc is that lookup's LMDB result (-ENOENT
 * when absent), v its value, decoded into *out (ZK_ECORRUPT if malformed). */
int zk__node_found(int rc, const MDB_val *v, uint64_t ino,
                   struct zk__node *out);
int zk__node_get(struct zk_store *s, MDB_txn *txn, uint64_t ino,
                 struct zk__node *out);
int zk__node_put(struct zk_store *s, MDB_txn *txn, const struct zk__node *n);
int zk__dirent_get(struct zk_store *s, MDB_txn *txn, uint64_t parent,
                   const char *name, size_t len, uint64_t *ino);
/* Resolves path[0..len) (already checked with zk_path_check). */
int zk__resolve(struct zk_store *s, MDB_txn *txn, const char *path,
                size_t len, struct zk__node *out);
int zk__path(struct zk_store *s, MDB_txn *txn, uint64_t ino, char *buf,
             size_t size);

int zk__meta_get(struct zk_store *s, MDB_txn *txn, const char *key,
                 uint64_t *val);
int zk__meta_put(struct zk_store *s, MDB_txn *txn, const char *key,
                 uint64_t val);
int zk__counters_get(struct zk_store *s, MDB_txn *txn,
                     struct zk__counters *c);
int zk__counters_put(struct zk_store *s, MDB_txn *txn,
                     const struct zk__counters *c);

/* Read transactions from the store's pool (any thread); every reader of
 * the store goes through these. */
/* check.c: ZK_ECORRUPT unless the tree in t is one tree (installs). */
int zk__check_tree(struct zk_store *s, MDB_txn *t);
int zk__rd_begin(struct zk_store *s, MDB_txn **out);
void zk__rd_end(struct zk_store *s, MDB_txn *t);
/* The same for a read that ends before its call returns (store.c's
 * getters): on the thread of zk_store_reader_keep it reuses the kept txn
 * while no commit has been published since it began. Never for a txn
 * held across calls (snapshots, checks). */
int zk__rd_short(struct zk_store *s, MDB_txn **out);
void zk__rd_short_end(struct zk_store *s, MDB_txn *t);

/* True for the meta keys the store maintains itself (batch_meta_set
 * refuses them). */
int zk__meta_reserved(const char *key);

/* node.c: the tables' key order, exactly LMDB's default (memcmp, then
 * the shorter key first: stores stay readable by anything that opens
 * them without it), with the leading 8 bytes (an inode or session
 * number, big-endian) compared as one number: most of a read's time in
 * LMDB went to its memcmp calls. Set on every table (store.c). */
int zk__key_cmp(const MDB_val *a, const MDB_val *b);

/* node.c: decodes a node record (value of key ino); ZK_ECORRUPT. */
int zk__node_decode(const uint8_t *buf, size_t len, uint64_t ino,
                    struct zk__node *n);

/* The tables of the snapshot stream, in stream order (docs/formats.md). */
enum { ZK__SNAP_META = 1, ZK__SNAP_NODES, ZK__SNAP_DATA, ZK__SNAP_DIRENTS,
       ZK__SNAP_SESSIONS, ZK__SNAP_EPHEM, ZK__SNAP_LOCKS };

/* backup.c: what a backup leaves out of the snapshot stream (ephemeral
 * znodes, sessions, ephemeral rows, lock tables) and the counters and
 * parents' numChildren it adjusts accordingly. _new reads the pinned
 * version t once; zk__snap_filter then says 1 (leave the record out) or
 * 0 (write *out, which may point into buf) for each record. */
struct zk__snap_filter;
int zk__snap_filter_new(struct zk_store *s, MDB_txn *t,
                        struct zk__snap_filter **out);
int zk__snap_filter(struct zk__snap_filter *f, int table, const MDB_val *k,
                    const MDB_val *v, MDB_val *out, uint8_t *buf,
                    size_t size);
void zk__snap_filter_info(const struct zk__snap_filter *f,
                          struct zk_store_backup_info *info);
void zk__snap_filter_free(struct zk__snap_filter *f);

/* batch.c: the batch's log starts empty in a new generation of the
 * write-ahead log, written at commit (installs, the format-1 migration). */
void zk__batch_log_reset(struct zk_store_batch *b);

/* Applies every op of txn inside the (nested) write transaction wtxn. */
int zk__apply_txn(struct zk_store *s, MDB_txn *wtxn, uint64_t zxid,
                  const struct zk_txn *txn, struct zk_apply_result *res);

/* ckpt.c: checkpoints of the LMDB file. restore: before mdb_env_open,
 * puts the last checkpoint's meta pages back when it was taken in another
 * boot; forget: a new store drops a stale one; start: right after LMDB
 * opened (takes the first, then commits go unsynced); capture: writer,
 * under ck.mu, right after each commit; run: one checkpoint now; poke:
 * wakes the thread after a commit; stop: at close (a last one). */
int zk__ckpt_restore(const char *dir, const char *store_path);
void zk__ckpt_forget(const char *dir);
int zk__ckpt_start(struct zk_store *s, uint64_t interval_ms,
                   uint64_t trickle_us);
int zk__ckpt_capture(struct zk_store *s, uint64_t txnid, uint64_t applied);
/* Commits t (a write txn of s), counts it for the kept readers and
 * captures it (under ck.mu); a system errno from LMDB as it is (positive:
 * batch.c, commit_err), or a negative one (LMDB's own codes mapped). */
int zk__ckpt_commit(struct zk_store *s, MDB_txn *t, uint64_t applied);
int zk__ckpt_run(struct zk_store *s);
/* Writer, when a write found the map full: if the last checkpoint is
 * behind the newest commit, takes one (its reader kept the pages freed
 * since from reuse). 1 if it did: the write is worth trying again. */
int zk__ckpt_unpin(struct zk_store *s);
void zk__ckpt_poke(struct zk_store *s);
int zk__ckpt_stop(struct zk_store *s);

#endif /* ZK_STORE_INT_H */
