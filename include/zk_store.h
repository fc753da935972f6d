/*
 * zk_store.h — the durable state of one replica: in LMDB the znode tree
 * and persistent metadata (format, epochs, last applied zxid, next inode
 * number, this replica's session), plus sessions; the transaction log in a
 * write-ahead log of its own beside it (store/wal.c).
 *
 * Threads: any number of readers (zk_store_getattr and friends) on any
 * threads, concurrently with one writer that owns the single open
 * zk_store_batch (one batch at a time; batches may come from different
 * threads, one after another, as an ensemble observer's do). Readers
 * never wait for the writer (LMDB MVCC) and see only committed batches.
 *
 * Only this module sees MDB_* codes: every function returns 0, a negative
 * errno (-ENOSPC when the disk or map is full, -EIO) or a ZK_E* code
 * (ZK_EFOREIGN, ZK_ECORRUPT).
 *
 * Apply rules (zk_store_batch_apply): all ops of a transaction succeed or
 * none has any effect; the first failing op's error is the transaction's
 * result and is itself deterministic (every replica computes the same), so
 * a failed transaction still consumes its zxid and is recorded as applied.
 * Inode numbers come from a persistent counter advanced at apply time, so
 * they are the same on every replica. The root "/" is inode ZK_INO_ROOT.
 */
#ifndef ZK_STORE_H
#define ZK_STORE_H

#include <stdint.h>
#include <stddef.h>
#include "zk_txn.h"

#define ZK_INO_ROOT          1
#define ZK_INO_FIRST_NODE    16   /* first inode a created znode gets; 2..15 reserved */
#define ZK_STORE_FORMAT      1    /* on-disk format version */
#define ZK_LOG_KEEP          100000 /* log entries kept behind the last applied */
#define ZK_LOG_KEEP_BYTES    (64u << 20) /* ... in segments of at most this */

struct zk_store;
struct zk_store_batch;

enum zk_kind { ZK_KIND_FILE = 1, ZK_KIND_DIR = 2 };

/* ZooKeeper's stat plus what the filesystem needs. Times are ms since the
 * epoch, taken from the transactions that made the change. */
struct zk_stat {
    uint64_t ino, parent;
    uint32_t kind;              /* enum zk_kind */
    uint32_t mode;              /* permission bits only (07777) */
    uint32_t uid, gid;
    uint64_t czxid, mzxid, pzxid;
    uint64_t ctime_ms;          /* ZooKeeper ctime: creation */
    uint64_t mtime_ms;          /* ZooKeeper mtime: last data change */
    uint64_t chtime_ms;         /* last change of any kind (data, attrs,
                                   children, rename): POSIX st_ctime */
    uint64_t cmtime_ms;         /* last data or children change: POSIX st_mtime */
    int32_t version, cversion, aversion;
    uint64_t ephemeral_owner;   /* session id, 0 if persistent */
    uint32_t data_length, num_children;
    uint32_t children_flags;    /* ZK_CHILDREN_* (directories) */
};

/* One change an applied transaction made, for kernel cache invalidation
 * and inotify echoes. name/name2 are NUL-terminated. */
enum zk_change_kind {
    ZK_CHANGE_CREATE = 1,  /* ino created as parent/name               */
    ZK_CHANGE_DELETE,      /* ino removed from parent/name             */
    ZK_CHANGE_DATA,        /* ino's data changed                       */
    ZK_CHANGE_ATTR,        /* ino's mode/uid/gid/children flags changed */
    ZK_CHANGE_RENAME,      /* ino moved parent/name -> parent2/name2;
                              replaced_ino (0 if none) was the target  */
    ZK_CHANGE_LOCK         /* a queued lock request on ino was granted
                              (lock_*: whose, and its token); nothing
                              for the kernel's caches                  */
};
struct zk_change {
    uint8_t kind;
    uint32_t node_kind;    /* enum zk_kind of ino */
    uint64_t ino, parent, parent2, replaced_ino;
    uint64_t lock_session, lock_owner, lock_token;  /* ZK_CHANGE_LOCK */
    uint32_t lock_flags;                            /* ZK_LOCK_* */
    /* DELETE: the removed node's stat as it was just before; RENAME with
     * replaced_ino: the replaced node's. Zero otherwise. (An open or
     * O_PATH descriptor of it still answers fstat with it.) */
    struct zk_stat gone;
    char name[ZK_NAME_MAX + 1];
    char name2[ZK_NAME_MAX + 1];
};

struct zk_op_result {
    int err;               /* 0 or this op's error (see zk_store_batch_apply).
                              In a failed txn: ops before the failing one
                              say 0 (rolled back), the failing op its error,
                              later ops -ECANCELED (not run). */
    uint64_t ino;          /* node the op acted on (created, deleted, ...) */
    uint64_t token;        /* ZK_OP_LOCK: the grant's zxid (its fencing
                              token); 0: queued (ZK_LOCK_WAIT)          */
    int refused;           /* ZK_OP_LOCK: refused like -EAGAIN, but the
                              owner's old flock lock was dropped (a failed
                              conversion, committed: see store/lock.c)   */
    char path[ZK_PATH_MAX];/* ZK_OP_CREATE: the created path (sequential
                              suffix included); others: the op's path */
    struct zk_stat st;     /* ZK_OP_SET_DATA, ZK_OP_APPEND that applied:
                              the node's stat right after this op (a later
                              transaction may have changed the node before
                              the answer; in a txn that a later op failed,
                              rolled back like the op); zeroed otherwise */
};

struct zk_apply_result {
    int err;               /* 0, or the first failing op's error */
    uint32_t failed_op;    /* index of that op when err != 0 */
    uint64_t zxid;
    uint32_t bytes;        /* the encoded transaction's length */
    uint32_t nops;
    struct zk_op_result *ops;      /* nops entries */
    uint32_t nchanges;
    struct zk_change *changes;     /* nchanges entries, in the order made */
};

void zk_apply_result_free(struct zk_apply_result *res);

/* Opens (and with create != 0, initializes if empty) the store in directory
 * dir, which must exist. Refuses a directory holding something that is not a
 * zkfs store (ZK_EFOREIGN, with the reason logged), a store of another
 * format version (ZK_EFOREIGN), or one whose metadata fails its checks
 * (ZK_ECORRUPT). Takes an exclusive lock on the directory: -EBUSY if another
 * process has it open. *out is written only on success. */
/*
 * Files in dir: zkfs.mdb (the LMDB environment, MDB_NOSUBDIR), zkfs.mdb-lock
 * (LMDB's reader table), zkfs-wal/ (the log's segments) and LOCK (the
 * flock). A store whose log is still in LMDB (written before the
 * write-ahead log) has it moved at open, crash-safely. A directory without zkfs.mdb
 * may hold only "myid", "LOCK", "lost+found" and names starting with "zkfs"
 * to be initialized; anything else is ZK_EFOREIGN. With create == 0 and no
 * zkfs.mdb: -ENOENT. See docs/formats.md for the layout.
 *
 * Environment variables read here (mainly for tests):
 *   ZKFS_MAP_SIZE_BYTES  LMDB map size (default 64 GiB on 64-bit, 1 GiB on
 *                        32-bit; sparse, so it costs no disk). A full map
 *                        makes writes fail with -ENOSPC.
 *   ZKFS_LOG_KEEP        log entries kept behind the last applied zxid
 *                        (default ZK_LOG_KEEP).
 *   ZKFS_LOG_KEEP_BYTES  ... and at most this many bytes of log segments
 *                        from the oldest kept on (default
 *                        ZK_LOG_KEEP_BYTES, 64 MiB).
 *   ZKFS_WAL_SEGMENT_BYTES  size of the log's segment files (default
 *                        4 MiB, at least 4096).
 *   ZKFS_DISK_RESERVE_BYTES  zk_store_room's reserve (default 16 MiB;
 *                        0: none). */
int zk_store_open(const char *dir, int create, struct zk_store **out);

/* Whether a write of about need bytes should be taken: -ENOSPC when it
 * would leave less than the reserve (ZKFS_DISK_RESERVE_BYTES) free on the
 * data directory's file system or in LMDB's map (free pages counted),
 * else 0. Asked before a proposal that adds
 * data (replica.c), so that a disk fills up with the writer told ENOSPC
 * and room left for the deletes that free it, instead of every replica
 * of an ensemble (they hold the same data) failing to store a committed
 * batch at about the same time. Logs when its answer changes. Any
 * thread. */
int zk_store_room(struct zk_store *s, uint64_t need);

/* Closes the store. No batch may be open and no reader may be inside a
 * call. s must not be used again. */
void zk_store_close(struct zk_store *s);

/* --- reads: any thread, never blocked by the writer -------------------- */

/* on: the calling thread's reads below reuse one LMDB read transaction
 * for as long as no commit has been published since it began (checked at
 * every read, so a read still sees every commit published before it
 * started), instead of taking one from the pool and renewing it each
 * time (fs.c: the loop thread, which answers every FUSE read). One thread
 * per store; off (0) from the same thread gives the transaction up.
 * zk_store_reader_idle, on that thread, lets go of a version that a
 * commit has replaced, so that a thread which stops reading does not
 * keep LMDB from reusing the pages of later commits (the loop calls it
 * before it waits). Both are no-ops on other threads. */
void zk_store_reader_keep(struct zk_store *s, int on);
void zk_store_reader_idle(struct zk_store *s);

int zk_store_getattr(struct zk_store *s, uint64_t ino, struct zk_stat *out);
/* -ENOENT if parent has no child name; -ENOTDIR if parent is a file. */
int zk_store_lookup(struct zk_store *s, uint64_t parent, const char *name,
                    struct zk_stat *out);
/* Resolves an absolute path ("/" is the root). */
int zk_store_resolve(struct zk_store *s, const char *path, struct zk_stat *out);
/* Writes ino's absolute path into buf (NUL-terminated). -ERANGE if short. */
int zk_store_path(struct zk_store *s, uint64_t ino, char *buf, size_t size);
/* Copies ino's data into a new malloc'd buffer (*data may be NULL when
 * *len is 0); the caller frees it. *stat_out (may be NULL) gets the stat of
 * the same committed version, so data and version always match. */
int zk_store_read(struct zk_store *s, uint64_t ino, uint8_t **data,
                  size_t *len, struct zk_stat *stat_out);
/* The ephemeral holder description stored at creation ("host:pid"), or
 * -ENODATA for a persistent znode. */
int zk_store_owner(struct zk_store *s, uint64_t ino, char *buf, size_t size);
/* Calls cb for each child of dir in name order, from one consistent
 * version; stops early when cb returns non-zero (that value is returned). */
typedef int (*zk_store_list_cb)(void *arg, const char *name,
                                const struct zk_stat *st);
int zk_store_list(struct zk_store *s, uint64_t dir, zk_store_list_cb cb,
                  void *arg);
/* zk_store_list, and the last applied zxid of the version it listed
 * (*zxid, written on success): every transaction up to it is in the
 * listing, none after it. fs/listing.c patches its kept listings with
 * the changes of later transactions only. */
int zk_store_list_at(struct zk_store *s, uint64_t dir, zk_store_list_cb cb,
                     void *arg, uint64_t *zxid);

struct zk_store_info {
    uint64_t last_applied_zxid;
    uint64_t accepted_epoch, current_epoch;
    uint64_t next_ino;
    uint64_t znodes;        /* number of znodes including the root */
    uint64_t sessions;      /* open sessions */
    uint64_t data_bytes;    /* bytes of znode data */
    uint64_t log_first_zxid, log_last_zxid; /* 0,0 when the log is empty */
    uint64_t file_bytes;    /* size of the LMDB file */
    uint64_t ephemerals;    /* ephemeral znodes (rows of that table) */
    uint64_t reserve_refusals; /* zk_store_room's -ENOSPC answers       */
    int at_reserve;         /* refusing now (zk_store_room)           */
};
int zk_store_info(struct zk_store *s, struct zk_store_info *out);

/* How long this store's batch commits took (the log's write and
 * fdatasync, then mdb_txn_commit: the pages and their sync, and for a
 * durable commit the meta page's), since it was opened:
 * a histogram, bucket i counting commits of at most
 * zk_store_fsync_le_ns[i] ns (not cumulative; the last bucket is the
 * rest). Failed commits are not counted. Any thread (the counters are
 * atomics, read one by one: a commit landing meanwhile may be half in). */
#define ZK_STORE_FSYNC_BUCKETS 14
extern const uint64_t zk_store_fsync_le_ns[ZK_STORE_FSYNC_BUCKETS - 1];
struct zk_store_fsync_stats {
    uint64_t le[ZK_STORE_FSYNC_BUCKETS];
    uint64_t count, sum_ns;
};
void zk_store_fsync_stats(struct zk_store *s,
                          struct zk_store_fsync_stats *out);

/* Reads metadata value key (a short ASCII name) into *val; -ENOENT if unset. */
int zk_store_meta_get(struct zk_store *s, const char *key, uint64_t *val);

/* Stores in *id a number naming the data file itself, not its contents:
 * its inode number and, where the filesystem keeps one, its birth time.
 * A copy of the directory put back in its place (cp -a, rsync, a
 * filesystem backup restored) holds another file, so another id; the
 * same file keeps its id across restarts and snapshot installs. Without
 * a birth time (some filesystems, or no statx(2): then fstat's inode) a
 * copy that gets the freed inode number of the file it replaces has the
 * same id. Any thread. Errors: -errno from statx(2) or fstat(2). */
int zk_store_file_id(struct zk_store *s, uint64_t *id);

/* Log entry at zxid into a new malloc'd buffer; -ENOENT if absent. */
int zk_store_log_get(struct zk_store *s, uint64_t zxid, uint8_t **buf,
                     size_t *len);
/* Calls cb for each log entry with zxid > after, in zxid order; stops when
 * cb returns non-zero (returned). buf is valid only during the call. The
 * log's lock is held meanwhile: cb must not call zk_store_log_get,
 * _log_scan or zk_store_info (a batch's functions are fine). */
typedef int (*zk_store_log_cb)(void *arg, uint64_t zxid, const uint8_t *buf,
                               size_t len);
int zk_store_log_scan(struct zk_store *s, uint64_t after, zk_store_log_cb cb,
                      void *arg);

/* One entry of an inode's lock table (store/lock.c): a holder or, with
 * ZK_LOCK_QUEUED, a waiter (waiters in FIFO order). */
#define ZK_LOCK_QUEUED 0x100u
struct zk_lock_ent {
    uint32_t flags;            /* ZK_LOCK_WRITE | ZK_LOCK_FLOCK | _QUEUED */
    uint64_t session, owner;   /* whose: the replica's session and the
                                  kernel's lock owner (or open file)     */
    uint64_t start, end;       /* bytes, end inclusive (UINT64_MAX: EOF) */
    uint64_t token;            /* grant zxid (holder) / request zxid     */
    uint32_t pid;
    char who[ZK_OWNER_MAX + 1];/* "host:pid" of the requester            */
};

/* Most entries (holders and waiters) one inode's lock table holds; a
 * request beyond it fails with -ENOLCK. */
#define ZK_LOCK_ENTS_MAX 256

/* The lock table of ino, holders and waiters in table order: cb per
 * entry; its non-zero value stops the scan and is returned. No table: 0,
 * no call. Any thread. */
typedef int (*zk_store_lock_cb)(void *arg, const struct zk_lock_ent *e);
int zk_store_locks(struct zk_store *s, uint64_t ino, zk_store_lock_cb cb,
                   void *arg);

/* How many inodes have a lock table (holders or waiters). Any thread. */
int zk_store_locked_files(struct zk_store *s, uint64_t *n_out);

/* Sessions open in the store, for expiry after a restart. */
typedef int (*zk_store_session_cb)(void *arg, uint64_t session,
                                   uint32_t timeout_ms, const char *owner);
int zk_store_sessions(struct zk_store *s, zk_store_session_cb cb, void *arg);

/* The inodes of session's ephemerals, in inode order (none: 0 and no
 * call). cb's non-zero value stops the scan and is returned. */
typedef int (*zk_store_ephemeral_cb)(void *arg, uint64_t ino);
int zk_store_ephemerals(struct zk_store *s, uint64_t session,
                        zk_store_ephemeral_cb cb, void *arg);

/* --- writes: one writer thread, one batch at a time -------------------- */

/* Starts a write batch (one LMDB write transaction). */
int zk_store_batch_begin(struct zk_store *s, struct zk_store_batch **out);
/* Appends payload to the log at zxid (must exceed every logged zxid). */
int zk_store_batch_log(struct zk_store_batch *b, uint64_t zxid,
                       const uint8_t *payload, size_t len);
/* Removes log entries with zxid > after (Zab TRUNC); entries at or below the
 * last applied zxid cannot be removed (-EINVAL). */
int zk_store_batch_log_truncate(struct zk_store_batch *b, uint64_t after);
/* Decodes payload and applies it as the transaction at zxid (which must
 * exceed the last applied zxid, else -EINVAL), recording zxid as the last
 * applied in the same LMDB transaction. On return 0, *res (malloc'd; free
 * with zk_apply_result_free) says whether the txn's ops succeeded: per-op
 * errors are -ENOENT, -EEXIST, -ENOTEMPTY, -ENOTDIR, -EISDIR, -EINVAL,
 * ZK_EBADVERSION, -EFBIG, -EPERM (reserved name; a child of an ephemeral
 * node), -EBUSY (delete or rename of "/", rename onto "/"), -ENAMETOOLONG
 * (a path or sequential name too long). A non-zero return
 * (-ENOSPC, -EIO, ZK_ECORRUPT payload) means the batch must be aborted.
 * The commit trims the log to ZK_LOG_KEEP entries behind the last applied
 * zxid that LMDB holds durably. */
int zk_store_batch_apply(struct zk_store_batch *b, uint64_t zxid,
                         const uint8_t *payload, size_t len,
                         struct zk_apply_result **res);
/* Sets metadata value key (1..64 ASCII bytes), e.g. "accepted_epoch",
 * "current_epoch" (zk_store_info reports those two). The keys the store
 * maintains itself ("zkfs.format", "last_applied", "next_ino", "znodes",
 * "sessions", "data_bytes", "commit_txn") are refused with -EINVAL. */
int zk_store_batch_meta_set(struct zk_store_batch *b, const char *key,
                            uint64_t val);
/* Makes the batch durable and visible to readers, and frees b whatever
 * the outcome: first its log truncation and records (the write-ahead
 * log's fdatasync, none for a log without sync: zk_store_log_sync), then
 * its LMDB transaction if it changed anything there, then a checkpoint of
 * it (LMDB's file synced, and its version recorded: store/ckpt.c). A
 * batch that only logs costs one fdatasync. -ENOSPC when the disk is
 * full: nothing of the batch is kept. */
int zk_store_batch_commit(struct zk_store_batch *b);
/* The same, but LMDB's transaction is written without any sync: it is
 * visible at once, and the next checkpoint (in the background, or at the
 * next durable commit or close) makes it durable. The log part is as
 * durable as with zk_store_batch_commit. A power cut before that takes
 * the tree back to the last checkpoint, whole (store/ckpt.c), and the log
 * keeps every entry after it. For batches whose tree changes can be made
 * again from the log: applies of logged entries (an ensemble replays them
 * at restart once it learns they committed; a standalone replica at
 * start). A batch that sets meta keys or installs is made durable anyway.
 * (Where LMDB's meta pages are not where ckpt.c expects them, there are
 * no checkpoints: the pages are synced, the meta page written but not, as
 * before checkpoints.) */
int zk_store_batch_commit_lazy(struct zk_store_batch *b);
/* A checkpoint of the newest commit now (store/ckpt.c; otherwise one is
 * taken in the background ZKFS_CHECKPOINT_MS, default 100, after a lazy
 * commit): LMDB's file synced and its version recorded in zkfs.ckpt, the
 * version a power cut goes back to; the log is trimmed up to it from the
 * next commit on. Any thread. */
int zk_store_checkpoint(struct zk_store *s);
/* After a commit failed with -ENOSPC on a full map: if the last
 * checkpoint is behind the newest commit, takes one (pages freed since
 * are held by its reader until then) and returns 1: the batch may be
 * tried again, once. 0: nothing to gain. Writer thread, no batch open. */
int zk_store_map_unpin(struct zk_store *s);
void zk_store_batch_abort(struct zk_store_batch *b);
/* sync 0: from now on the log's records (zk_store_batch_log) are written
 * at commit but not synced (truncations, installs and a full segment
 * still are). For a replica whose log promises nothing to anyone (an
 * observer: it acknowledges no proposal), it saves a flush per batch. A
 * power cut may then take the last records of the log, also records at
 * or below last_applied: opening accepts a log that ends anywhere from
 * the last durable segment on, without a hole (store/wal.c), and
 * zk_store_log_scan gives only what is left; what the replica lost it
 * must fetch again (an observer syncs from its leader). A kill -9 loses
 * nothing (the records are in the page cache). sync 1 (the default after
 * zk_store_open): every record durable at commit. Writer thread, no
 * batch open. */
void zk_store_log_sync(struct zk_store *s, int sync);
/* 1 if n more log records of bytes payload bytes in all fit in the log's
 * current segment (appending them starts no new one: no 4 MiB of zeros
 * and flushes). Writer thread, or while no batch is open. */
int zk_store_log_fits(struct zk_store *s, uint64_t n, uint64_t bytes);
/* 1 if a lazy commit (zk_store_batch_commit_lazy) makes no flush of its
 * own (the checkpoints are on: store/ckpt.c); 0 if it syncs LMDB's pages
 * (an LMDB whose file format the checkpoints do not know). Any thread. */
int zk_store_lazy_is_free(struct zk_store *s);

/* --- snapshots (Zab SNAP); added after the first interface ------------ */

/* Streams a snapshot of the committed state: tree, data, sessions,
 * ephemeral owners and the store's counters (not the log, not meta keys set
 * with zk_store_batch_meta_set such as the epochs), all from one committed
 * version, exactly the state at *zxid_out (written on success). cb gets the
 * raw stream (docs/formats.md) in chunks of up to 64 KiB, valid only during
 * the call; the caller may compress them (zstd). A non-zero return of cb
 * stops the stream and is returned. Any thread; does not block the writer.
 * Errors: -ENOMEM, -EIO, ZK_ECORRUPT. */
typedef int (*zk_store_snap_cb)(void *arg, const uint8_t *buf, size_t len);
int zk_store_snapshot(struct zk_store *s, zk_store_snap_cb cb, void *arg,
                      uint64_t *zxid_out);

/* The same in three steps, so that the state is pinned on one thread and
 * streamed on another (the ensemble pins it on its loop thread, where the
 * store is known to be at the SNAP's zxid, and compresses it on a sender
 * thread). zk_store_snapshot_open pins the committed state now (one read
 * transaction; any thread) and writes *zxid_out (may be NULL) and *out on
 * success. zk_store_snapshot_stream streams the pinned state as above, on
 * any one thread at a time, as often as wanted (the same bytes each time:
 * a first pass may count them). zk_store_snapshot_close releases it (NULL
 * is fine); close every handle before zk_store_close. A pinned version
 * keeps LMDB from reusing the pages it needs, so do not hold it longer
 * than the transfer. Errors as zk_store_snapshot. */
struct zk_store_snap;
int zk_store_snapshot_open(struct zk_store *s, struct zk_store_snap **out,
                           uint64_t *zxid_out);
int zk_store_snapshot_stream(struct zk_store_snap *sn, zk_store_snap_cb cb,
                             void *arg);
/* The exact number of bytes zk_store_snapshot_stream gives for sn, found
 * by walking the tables without copying (a few times faster than a
 * counting stream). *bytes_out written on success. */
int zk_store_snapshot_size(struct zk_store_snap *sn, uint64_t *bytes_out);
void zk_store_snapshot_close(struct zk_store_snap *sn);

/* --- backups (zkfs snapshot save/restore, zkfs check) ------------------ */

/* What a backup stream holds. */
struct zk_store_backup_info {
    uint64_t znodes;           /* znodes in it, root included */
    uint64_t data_bytes;       /* their data */
    uint64_t ephemerals;       /* ephemeral znodes left out */
};

/* Streams the pinned state sn as a backup: the snapshot stream above
 * (the same format, installed the same way) without what belongs to the
 * sessions of this ensemble, which a restored store will not have:
 * ephemeral znodes (with their data and directory entries), sessions,
 * ephemeral rows and lock tables. The counters (znodes, data_bytes,
 * sessions = 0) and the parents' numChildren are adjusted to match;
 * everything else is kept as is, cversion (the sequence counter) and
 * pzxid included. *info (may be NULL) is written on success. Any thread,
 * as zk_store_snapshot_stream. Errors as zk_store_snapshot. */
int zk_store_backup_stream(struct zk_store_snap *sn, zk_store_snap_cb cb,
                           void *arg, struct zk_store_backup_info *info);

/* Offline verification of an open store (store/check.c): every record of
 * every table decodes, parent/child links and directory entries agree
 * both ways, every znode is reachable from the root, numChildren,
 * dataLength and the meta counters match what the tables hold,
 * ephemerals have their rows (and rows their ephemerals), lock tables
 * decode and name existing znodes, and every log entry decodes with its
 * checksum. Each problem found is reported to cb (what: the table or
 * check, text: one line), up to every problem; the walk goes on after
 * one. *out gets the totals. Returns 0 when the walk finished (look at
 * out->problems), or an error that stopped it (-ENOMEM, -EIO). Takes one
 * read transaction; meant for a store no daemon serves. */
struct zk_store_check_stats {
    uint64_t znodes, dirs, data_bytes, dirents, sessions, ephemerals;
    uint64_t lock_tables, log_entries, problems;
    uint64_t last_applied;
};
typedef void (*zk_store_check_cb)(void *arg, const char *what,
                                  const char *text);
int zk_store_check(struct zk_store *s, zk_store_check_cb cb, void *arg,
                   struct zk_store_check_stats *out);

/* Zab INSTALL inside batch b: empties the tree, data, sessions, counters
 * and the log at once, then refills them from the stream fed with
 * zk_store_install_feed (any chunking). Readers see the old state until
 * the batch commits. *out is written only on success. */
struct zk_store_install;
int zk_store_batch_install_begin(struct zk_store_batch *b,
                                 struct zk_store_install **out);
/* ZK_ECORRUPT or ZK_EFOREIGN (other store format) on a malformed stream,
 * -ENOSPC/-EIO/-ENOMEM: then call zk_store_install_abort and abort b. */
int zk_store_install_feed(struct zk_store_install *in, const uint8_t *buf,
                          size_t len);
/* Checks the stream is complete (ZK_ETRUNCATED if not), its checksum and
 * the installed state (root, counters); frees in. On 0 the batch's last
 * applied zxid is the snapshot's (*zxid_out, may be NULL): commit b to make
 * it durable, and later applies need zxids above it. Otherwise abort b. */
int zk_store_install_finish(struct zk_store_install *in, uint64_t *zxid_out);
/* Frees in; the batch must then be aborted. */
void zk_store_install_abort(struct zk_store_install *in);

#endif /* ZK_STORE_H */
