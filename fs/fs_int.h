/*
 * fs_int.h — private to fs/: the daemon's state (struct zk_fs), the file,
 * directory and control-file handles, the inode lookup-count map and the
 * echo thread's queue, plus the helpers the op files share.
 *
 * Threads: everything here belongs to the loop thread (the one running
 * zk_fs_run's libuv loop, where FUSE requests are processed and zk_replica
 * callbacks arrive), except struct zk__fs_echo, which is shared with the
 * echo thread under its mutex, and the two atomics in it. Only fs/ includes
 * FUSE headers.
 */
#ifndef ZK_FS_INT_H
#define ZK_FS_INT_H

#define FUSE_USE_VERSION 34

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <uv.h>

#include "zk_common.h"
#include "zk_ctl.h"
#include "zk_fs.h"
#include "zk_replica.h"
#include "zk_store.h"
#include "zk_txn.h"

/* Kernel cache lifetimes: long, because every commit invalidates exactly
 * what it changed (see echo.c). */
#define ZK__FS_TIMEOUT_S        86400.0
/* FUSE requests processed per wake-up of the loop before other handles
 * (replica answers, signals) get their turn. */
#define ZK__FS_RECV_BATCH       64
#define ZK__FS_STOP_WAIT_MS     10000   /* a stop waits this long for the echo thread */
/* Invalidations and holder deletions waiting for the echo thread. Past it
 * invalidations are dropped (and counted, logged): the only unbounded
 * alternative would be to block the loop, which can deadlock the kernel. */
#define ZK__FS_ECHO_QUEUE_MAX   (1u << 20)
/* Ephemerals one control-file description may hold. */
#define ZK__FS_CTL_HELD_MAX     64
/* Supplementary groups looked at for a control-file permission check. */
#define ZK__FS_GROUPS_MAX       64

/* --- inode lookup counts (what the kernel knows) ----------------------- */

struct zk__fs_ino_slot {
    uint64_t ino;          /* 0: free slot */
    uint64_t nlookup;
    uint32_t nopen;        /* open files of it                       */
    uint8_t user;          /* an entry of it was given to the kernel
                              for a request not of the echo thread:
                              somebody on this mount may watch it
                              (echo.c, watched()); until FORGET */
    uint32_t nwriters;     /* of which open for writing (not O_APPEND):
                              its attributes are not cached meanwhile */
    uint32_t nappend;      /* of which O_APPEND writers (their read view
                              follows every data change: file.c) */
    struct zk_stat *st;    /* its stat at the latest open (valid while
                              nopen > 0; freed with the slot) */
    struct zk_stat *gone;  /* deleted while the kernel held it: its stat
                              then, for fstat (also of O_PATH descriptors,
                              which reach no FUSE open) until FORGET */
    uint64_t alias;        /* prov.c: for a provisional nodeid, the inode
                              its create was committed as; for that
                              inode, the provisional nodeid the kernel may
                              still hold for it (0: none) */
};

struct zk__fs_inomap {
    struct zk__fs_ino_slot *slots;
    size_t cap;            /* power of two */
    size_t len;
};

/* --- echo thread -------------------------------------------------------- */

enum zk__fs_echo_kind {
    ZK__ECHO_INVAL_INODE = 1,  /* notify_inval_inode(ino)                  */
    ZK__ECHO_INVAL_ENTRY,      /* notify_inval_entry(parent, name)         */
    ZK__ECHO_DELETE,           /* notify_delete(parent, ino, name)         */
    ZK__ECHO_UNLINK,           /* unlink(path) of the held ephemeral ino   */
    /* Replays of changes no local syscall made (control file, other
     * replicas, session expiry), so that inotify reports them: */
    ZK__ECHO_R_CREATE,         /* mknod/mkdir(path)                        */
    ZK__ECHO_R_DELETE,         /* unlink/rmdir(path) of ino                */
    ZK__ECHO_R_DATA,           /* open(path), write 1 byte (ignored), close */
    ZK__ECHO_R_ATTR,           /* utimensat(path)                          */
    ZK__ECHO_R_RENAME,         /* rename(path, path2) of ino               */
    ZK__ECHO_BARRIER           /* back to the loop: cb(cb_arg)             */
};

struct zk__fs_echo_item {
    struct zk__fs_echo_item *next;
    uint8_t kind;
    /* R_DELETE, R_RENAME: which of its names (1 the old, 2 the new) the
     * echo thread's syscall has had answered by zk__fs_echo_lookup in
     * this attempt, i.e. the kernel's entry for it is the item's node
     * (zk__fs_echo_entry_ours). Reset by the thread before the syscall,
     * set on the loop while the syscall waits for its LOOKUP. */
    _Atomic uint8_t answered;
    uint32_t node_kind;        /* enum zk_kind of ino (replays)            */
    /* R_RENAME of a node a process here may watch: every entry its walk
     * is given counts as that process's (echo.c, zk__fs_echo_marks). */
    uint8_t mark_walk;
    uint64_t zxid;             /* replays: their transaction; else 0       */
    uint64_t ino, parent, parent2, replaced;
    void (*cb)(void *);        /* BARRIER                                  */
    uint64_t t0_ns;            /* BARRIER: when staged (uv_hrtime)         */
    void *cb_arg;
    const char *name, *name2;  /* point into buf                           */
    const char *path, *path2;  /* znode paths (mountpoint prepended later) */
    char buf[];
};

struct zk__fs_echo {
    pthread_t thread;
    int started;
    /* ZKFS_TEST_ECHO_DELAY_MS (tests only): the thread waits this long
     * before each replay, so that a test can act while the kernel is
     * behind the store (t_echo_behind). */
    unsigned test_delay_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Two queues: invalidations and barriers (head), acted out first,
     * and replays and holder deletions (rhead), one at a time when the
     * first is empty. An invalidation is one write to /dev/fuse; a
     * replay is a syscall costing several FUSE round trips; so the
     * kernel's caches follow the store within microseconds even while
     * the replays (the inotify events) lag behind (BUGS.md 8). */
    struct zk__fs_echo_item *head, *tail;
    size_t len;
    struct zk__fs_echo_item *rhead, *rtail;
    size_t rlen;
    /* Items the thread has acted out, freed by the loop (whose handlers
     * may have read them while answering the thread's syscalls). */
    struct zk__fs_echo_item *done;
    int quit;
    uint64_t dropped;
    /* Replays acted out (inotify events for changes made elsewhere), and
     * those whose syscall failed; echo thread writes, metrics reads. */
    _Atomic uint64_t replays, replays_failed;
    uint64_t local_skipped;    /* loop: writers' data commits answered
                                  without an invalidation (file.c) */
    /* The echo thread's id (what fuse_req_ctx()->pid says for its
     * syscalls) and the item its current syscall acts out (read by the
     * handlers of that syscall's requests; valid while it runs). */
    _Atomic int tid;
    struct zk__fs_echo_item *_Atomic cur;
    /* Loop side: work staged during one loop iteration, handed to the
     * thread after it (so a local syscall's commit can take back the
     * replay of its own change first). */
    struct zk__fs_echo_item *stage_head, *stage_tail;
    size_t stage_len;
    size_t barriers_out;        /* barriers not yet called back (loop)     */
    uv_check_t check;
    int check_init;
    /* Deletions the echo thread could not do through the mount, handed
     * back to the loop (which proposes them directly). */
    struct zk__fs_echo_item *back_head, *back_tail;
    uv_async_t back_async;
    int back_async_init;
};

/* --- provisional creates (prov.c) ----------------------------------------- */

/* Nodeids given to the kernel for files created but not committed yet:
 * bit 62 set (a store's inode counter never gets there; ZK_METRICS_INO
 * has bit 63). */
#define ZK__FS_PROV_BASE      UINT64_C(0x4000000000000000)
#define ZK__FS_IS_PROV(ino)   (((ino) >> 62) == 1)
/* Attempts of a provisional create's commit: CREATE, then (the name
 * appeared meanwhile) SET_DATA of what has it, then CREATE again (that
 * was deleted meanwhile), and so on. */
#define ZK__FS_PROV_TRIES     4

struct zk__fs_defer;

/* A file created by an open(O_CREAT) without O_EXCL, answered at once and
 * committed (create and data as one transaction) at the creator's
 * flush/fsync/release, or earlier when something needs it to exist. Only
 * while pending: once committed, the inode map's alias says which inode
 * the nodeid stands for. */
struct zk__fs_prov {
    struct zk__fs_prov *prev, *next;   /* fs->provs, circular */
    uint64_t pino;             /* the nodeid the kernel got */
    uint64_t parent;
    struct zk__fs_fh *fh;      /* the creator's open file */
    struct zk_stat st;         /* what GETATTR answers meanwhile */
    int committing;            /* its create is proposed */
    struct zk__fs_defer *waiters;  /* requests re-run once it is settled */
    char name[ZK_NAME_MAX + 1];
};

/* --- handles ------------------------------------------------------------- */

/* Every open file, directory and control-file description is on the
 * daemon's list from its open reply until it is freed, so that those the
 * kernel never releases (still open when the mount goes) are freed at
 * take-down. First member of each handle. */
struct zk__fs_handle {
    struct zk__fs_handle *prev, *next;     /* circular; self: not listed */
    void (*destroy)(struct zk__fs_handle *h);
};

/* --- listings (listing.c) ------------------------------------------------ */

/* Bytes of directory listings the daemon keeps (children, names, READDIR
 * entries: about 100 bytes per child), least recently listed out first. A
 * directory bigger than that is read from the store at each uncached
 * listing. */
#define ZK__FS_LISTING_BYTES_MAX  (64u << 20)
/* Children a READDIRPLUS from offset 0 gives attributes for (the kernel
 * asks one at the start of every listing, READDIRPLUS_AUTO): all of a
 * small directory's, so `ls -l` of it needs no LOOKUP; for a big one the
 * rest come as plain READDIR, as on the floor, instead of the kernel
 * making an inode for each of the hundreds that fit in one reply (which
 * made a first listing of 10,000 cost 1.4x the floor's time). */
#define ZK__FS_PLUS_FIRST_MAX     32

/* One child in a listing. */
struct zk__fs_lent {
    uint64_t ino;
    size_t name_off;           /* in the listing's names */
    size_t doff;               /* its READDIR entry in dbuf (once laid out) */
    uint64_t owner;            /* its session, if ephemeral (lease.c) */
    uint32_t kind;             /* enum zk_kind */
};

/* One directory's children in name order, as of the store version whose
 * last applied zxid is zxid plus the changes patched in since. Shared
 * between the cache and the open directories that read it (refs); never
 * changed while an open directory holds it. */
struct zk__fs_listing {
    struct zk__fs_listing *hnext;          /* cache's hash chain */
    struct zk__fs_listing *prev, *next;    /* cache's LRU list */
    uint64_t dir, zxid;
    unsigned refs;
    int cached;                /* kept, so current: every applied change
                                  of dir is in it */
    unsigned reads;            /* listings answered without the kernel's
                                  readdir cache on */
    unsigned skip;             /* opens to go without it (it was lost) */
    int filled;                /* an open with it read to the end */
    size_t n, cap;
    struct zk__fs_lent *ents;
    char *names;               /* NUL-terminated, some of removed children */
    size_t names_len, names_cap, names_dead;
    char *dbuf;                /* the children's READDIR entries, or NULL */
    size_t dbuf_len;
    size_t bytes;              /* as counted in the cache */
};

struct zk__fs_lcache {
    struct zk__fs_listing **tab;           /* by directory inode */
    size_t nbuckets;                       /* power of two */
    size_t count, bytes, bytes_max;
    struct zk__fs_listing lru;             /* sentinel; next: newest */
    /* metrics.c: listings answered from the cache, read from the store
     * into it, read for one open directory only, changes patched in,
     * listings dropped for a patch that did not fit, evicted */
    uint64_t hits, misses, private_reads, patched, dropped, evicted;
};

/* --- the daemon --------------------------------------------------------- */

struct zk_fs {
    const struct zk_fs_opts *opts;
    uv_loop_t loop;
    int loop_init;
    uv_poll_t poll;
    int poll_init;
    uv_prepare_t idle;         /* before each wait: zk_store_reader_idle */
    int idle_init;
    uv_signal_t sigint, sigterm;
    int signals_init;
    uv_timer_t stop_timer;     /* bounds the wait for the echo thread */
    int stop_timer_init;
    struct fuse_session *se;
    int mounted;
    struct fuse_buf fbuf;
    struct zk_store *store;
    struct zk_replica *replica;
    char host[128];
    char owner[ZK_OWNER_MAX];  /* this daemon, "host:pid" */
    uid_t uid;
    gid_t gid;
    struct timespec started;   /* the control file's times */
    int ready_fd;
    uint64_t session_deadline; /* start: uv_now() to stop waiting at */
    /* lease.c: sessions this replica gave up, whose ephemerals this mount
     * hides until the store closes them. */
    uint64_t lost[8];
    unsigned n_lost;
    uint64_t lost_nodes;       /* ephemerals hidden so far (counter) */
    /* lock.c: flock requests queued in the lock table, answered by the
     * commit that grants them; whether this mount ever took a lock. */
    struct zk__fs_park *parked;
    struct zk__fs_lk *posix;   /* fcntl owners used, per open file */
    int locks_used;
    /* snapdiff.c: the old tree's part the kernel knows, while a
     * snapshot installs */
    struct zk__fs_snapdiff *snapdiff;
    int stopping;
    int leaving;               /* leave.c: closing the session to stop */
    struct zk__fs_notify *notify; /* notify.c: NULL without systemd */
#define ZK__FS_OPCODE_MAX 64
    uint64_t requests[ZK__FS_OPCODE_MAX]; /* metrics.c: by FUSE opcode */
    uint64_t errors[ZK__FS_OPCODE_MAX];   /* ... answered with an error */
#define ZK__FS_REQMAP 4096      /* power of 2: requests in flight, mapped */
    uint64_t req_unique[ZK__FS_REQMAP];   /* unique -> opcode, loop only */
    uint8_t req_op[ZK__FS_REQMAP];
    uint64_t txns_applied, txns_failed, ops_applied, changes_applied;
    uint64_t txn_bytes_applied;
#define ZK__FS_LAT_BUCKETS 14
    /* metrics.c: proposal-to-answer latency of this mount's proposals */
    uint64_t commit_le[ZK__FS_LAT_BUCKETS]; /* not cumulative */
    uint64_t commit_count, commit_sum_ns;
    /* ... and how long answers waited for an echo barrier (echo.c) */
    uint64_t barrier_le[ZK__FS_LAT_BUCKETS];
    uint64_t barrier_count, barrier_sum_ns;
    /* ctl_snapshot.c: backups written, failed (or abandoned), bytes */
    uint64_t backups, backups_failed, backup_bytes;
    struct zk__fs_http *http;  /* metrics_http.c: NULL when off */
    int gone;                  /* the kernel ended the connection */
    int paused;                /* > 0: no new requests are read */
    struct zk__fs_inomap inomap;
    struct zk__fs_prov provs;      /* pending provisional creates: head */
    uint64_t prov_seq;             /* the last provisional nodeid's number */
    uint64_t prov_created, prov_forced; /* metrics.c: provisional creates, of which committed early */
    struct zk__fs_echo echo;
    struct zk__fs_lcache listings; /* listing.c */
    struct zk__fs_handle handles;  /* list head */
};

/* What a permission check needs about the requester. */
struct zk__fs_cred {
    uid_t uid;
    gid_t gid;
    pid_t pid;                 /* the calling thread's id */
    int ngroups;
    gid_t groups[ZK__FS_GROUPS_MAX];
};

/* An open regular file. data/len is the write buffer: the whole content
 * for a normal descriptor (loaded from the store at open: the one version
 * its reads see), only the bytes not yet committed for an O_APPEND one. */
struct zk__fs_fh {
    struct zk__fs_handle hd;
    uint64_t ino;
    uint64_t knode;            /* the nodeid the kernel opened it on (a
                                  provisional one stays so after its
                                  create committed as ino) */
    struct zk_stat st;         /* at open: fstat after a delete uses it */
    int oflags;
    uint8_t *data;
    size_t len, cap;
    /* O_APPEND: the committed content as last seen (at open, at each read
     * and after each data change applied here), which its reads return
     * once the node is deleted. */
    uint8_t *view;
    size_t view_len;
    uint64_t wgen;             /* bumped by every change of the buffer */
    uint64_t flushed_wgen;     /* wgen at the last flush/fsync (+1) */
    unsigned loaded : 1, dirty : 1, poisoned : 1, append : 1, holder : 1,
        released : 1,
        trunc : 1,             /* opened O_TRUNC, truncation not committed */
        echo : 1,              /* opened by an echo replay: no data */
        kill_priv : 1,         /* written or truncated by a non-root user:
                                  the commit clears setuid/setgid */
        mtime_set : 1,         /* utimensat after the last write: the
                                  commit keeps mtime_ms, not its own time */
        writer : 1;            /* counted in its inode's nwriters */
    uint64_t mtime_ms;
    int inflight;              /* commits not yet answered */
    /* O_APPEND: a data commit is under way (file.c, commit_fh_ex): each
     * commit appends the buffer as it was when proposed and cuts that
     * much off its front when applied, so a second one must not start
     * before (it would append the same bytes again). Flushes and fsyncs
     * that come meanwhile wait in waits, in order. */
    unsigned acommit : 1;
    struct zk__fs_fh_wait *waits;
    struct zk__fs_prov *prov;  /* prov.c: its create is not committed yet */
    unsigned empty_flushes;    /* prov: flushes with nothing written */
    uint64_t lock_session;     /* lock.c: a lock was granted through this
                                  open file to that session (0: none) */
};

/* What "." and ".." name for an open directory, and whether its open
 * let the kernel cache the listing. */
struct zk__fs_dirpos {
    uint64_t self, parent;
    int kcache;
};

/* An open directory: the listing it read at its first readdir (the
 * kernel's readdir cache answers most listings without one). */
struct zk__fs_dh {
    struct zk__fs_handle hd;
    struct zk_stat self;
    uint64_t parent_ino;
    int kcache;                /* opened with cache_readdir */
    struct zk__fs_listing *ls; /* NULL until the first READDIR */
};

/* --- fs.c ---------------------------------------------------------------- */

void zk__fs_stop(struct zk_fs *fs);
/* leave.c: closes this replica's session (bounded wait), then stops. */
void zk__fs_leave(struct zk_fs *fs);
void zk__fs_handle_add(struct zk_fs *fs, struct zk__fs_handle *h,
                       void (*destroy)(struct zk__fs_handle *h));
void zk__fs_handle_del(struct zk__fs_handle *h);
void zk__fs_pause(struct zk_fs *fs);
void zk__fs_resume(struct zk_fs *fs);
uint64_t zk__fs_inomap_get(const struct zk__fs_inomap *m, uint64_t ino);
int zk__fs_inomap_add(struct zk__fs_inomap *m, uint64_t ino, uint64_t n);
void zk__fs_inomap_sub(struct zk__fs_inomap *m, uint64_t ino, uint64_t n);
void zk__fs_inomap_free(struct zk__fs_inomap *m);
void zk__fs_inomap_open(struct zk__fs_inomap *m, const struct zk_stat *st);
void zk__fs_inomap_close(struct zk__fs_inomap *m, uint64_t ino);
void zk__fs_inomap_writer(struct zk__fs_inomap *m, uint64_t ino, int delta);
uint32_t zk__fs_inomap_writers(const struct zk__fs_inomap *m, uint64_t ino);
/* An O_APPEND open file of ino came (delta 1) or went (-1); how many. */
void zk__fs_inomap_appender(struct zk__fs_inomap *m, uint64_t ino, int delta);
uint32_t zk__fs_inomap_appenders(const struct zk__fs_inomap *m, uint64_t ino);
/* A node the kernel may hold was deleted: keeps its last stat (st) for
 * GETATTR until the kernel forgets the inode. No-op for inodes the kernel
 * does not hold, or without memory. */
void zk__fs_inomap_gone(struct zk__fs_inomap *m, const struct zk_stat *st);
/* For a GETATTR of deleted ino: the stat kept by zk__fs_inomap_gone (the
 * last committed one, which later commits made through a descriptor
 * opened before may have changed since its open: seed 71611), else
 * open_st (the descriptor's, if the GETATTR came with one), else the one
 * kept by zk__fs_inomap_open, else NULL. */
const struct zk_stat *zk__fs_inomap_kept_stat(const struct zk__fs_inomap *m,
                                              uint64_t ino,
                                              const struct zk_stat *open_st);

/* Links a provisional nodeid to the inode its create was committed as
 * (both slots then carry the other as alias). -ENOMEM: not linked. */
int zk__fs_inomap_link(struct zk__fs_inomap *m, uint64_t pino, uint64_t ino);
/* The alias of ino (see struct zk__fs_ino_slot), 0 if none. */
uint64_t zk__fs_inomap_alias(const struct zk__fs_inomap *m, uint64_t ino);
/* Marks ino's slot as given to the kernel for another process than the
 * echo thread (no-op without a slot); whether it is, or its alias is. */
void zk__fs_inomap_mark_user(struct zk__fs_inomap *m, uint64_t ino);
int zk__fs_inomap_user(const struct zk__fs_inomap *m, uint64_t ino);
/* The kernel now holds one more lookup of the nodeid ino, given to it in
 * an entry: counted, and marked as the user's if the request was not the
 * echo thread's (user: !zk__fs_is_echo(), taken before the reply, which
 * frees the request). */
void zk__fs_kernel_entry(struct zk_fs *fs, int user, uint64_t ino);

/* --- prov.c -------------------------------------------------------------- */

/* What a deferred request needs to be made again (copies of its
 * arguments). */
enum zk__fs_defer_op {
    ZK__DEFER_OPEN = 1, ZK__DEFER_SETATTR, ZK__DEFER_GETXATTR,
    ZK__DEFER_LISTXATTR, ZK__DEFER_SETXATTR, ZK__DEFER_REMOVEXATTR,
    ZK__DEFER_FLOCK, ZK__DEFER_GETLK, ZK__DEFER_SETLK, ZK__DEFER_UNLINK,
    ZK__DEFER_RMDIR, ZK__DEFER_RENAME, ZK__DEFER_MKNOD, ZK__DEFER_MKDIR,
    ZK__DEFER_CREATE,
    ZK__DEFER_COMMIT           /* the creator's own flush/fsync/release */
};
struct zk__fs_defer {
    struct zk__fs_defer *next;
    fuse_req_t req;
    enum zk__fs_defer_op op;
    uint64_t ino, parent, newparent;
    int has_fi;
    struct fuse_file_info fi;
    struct stat attr;
    int to_set, flags, sleep;
    mode_t mode;
    size_t size;
    struct flock lock;
    struct zk__fs_fh *fh;      /* COMMIT: counted in its inflight */
    int all;                   /* COMMIT: fsync or release */
    const char *name, *name2;  /* point into buf */
    const char *value;
    char buf[];
};

/* Whether CREATE of name in parent (a directory whose stat is pst) with
 * fi->flags may be answered provisionally; if so answers it and returns
 * 1. Loop thread. */
int zk__fs_prov_create(fuse_req_t req, uint64_t parent, const char *name,
                       mode_t mode, uint32_t gid,
                       const struct zk_stat *pst, struct fuse_file_info *fi);
/* The pending provisional create of nodeid ino, or NULL. */
struct zk__fs_prov *zk__fs_prov_of(struct zk_fs *fs, uint64_t ino);
/* The pending provisional create of name in parent, or NULL. */
struct zk__fs_prov *zk__fs_prov_named(struct zk_fs *fs, uint64_t parent,
                                      const char *name);
/* A pending provisional create in directory dir, or NULL (an rmdir, or a
 * rename over dir, commits them first: dir is not empty). */
struct zk__fs_prov *zk__fs_prov_in(struct zk_fs *fs, uint64_t dir);
/* The inode nodeid ino stands for: itself, or the committed inode of a
 * provisional one (unknown: itself). */
uint64_t zk__fs_ino(struct zk_fs *fs, uint64_t ino);
/* Parks request d (copied) until pv is committed (or has failed), then
 * makes it again; starts pv's commit if it is not under way. */
void zk__fs_prov_defer(struct zk_fs *fs, struct zk__fs_prov *pv,
                       const struct zk__fs_defer *d);
/* Parks req (an op on names: unlink, rename, ...) behind whichever of
 * (parent, name) and (parent2, name2) is pending; returns 1 if it did. */
int zk__fs_prov_defer_names(struct zk_fs *fs, const struct zk__fs_defer *d);
/* pv's create was committed as ino (fh moved to it by the caller), or
 * failed with err (pv stays pending for a retry by a later flush):
 * re-runs or fails the parked requests; on success frees pv. */
void zk__fs_prov_settled(struct zk_fs *fs, struct zk__fs_prov *pv,
                         uint64_t ino, int err);
/* pv's creator let go without a committed create: forgets pv (the name
 * disappears from this mount); parked requests fail with ENOENT. */
void zk__fs_prov_drop(struct zk_fs *fs, struct zk__fs_prov *pv);
/* Adds the pending creates in parent to a listing through add(arg, ...). */
int zk__fs_prov_list(struct zk_fs *fs, uint64_t parent,
                     int (*add)(void *arg, const char *name,
                                const struct zk_stat *st), void *arg);
/* file.c: proposes pv's create (the creator's buffer so far) for a
 * deferred request; nobody waits on the reply. */
void zk__fs_prov_commit(struct zk_fs *fs, struct zk__fs_fh *fh);
/* file.c: a flush/fsync/release commit of fh that waited for its create
 * (err: the create failed; answered with it). Drops the inflight count
 * the deferral took. */
void zk__fs_prov_commit_again(struct zk_fs *fs, fuse_req_t req,
                              struct zk__fs_fh *fh, int all, int err);

/* --- util.c -------------------------------------------------------------- */

void zk__fs_fill_attr(const struct zk_fs *fs, const struct zk_stat *st,
                      struct stat *out);
/* A time as stored (ms since the epoch, two's complement; clamped to the
 * range) and back (util.c). */
uint64_t zk__fs_time_ms(const struct timespec *ts);
struct timespec zk__fs_ms_time(uint64_t stored);
/* The attributes of a file the daemon serves itself (the control file,
 * the metrics file): a regular file of mode, owned by the daemon's user,
 * all three times set to when. */
void zk__fs_special_attr(const struct zk_fs *fs, uint64_t ino, mode_t mode,
                         struct timespec when, struct stat *out);
void zk__fs_ctl_attr(const struct zk_fs *fs, struct stat *out);
/* Fills the entry FUSE replies for st (LOOKUP, MKDIR, CREATE, ...). */
void zk__fs_entry_param(const struct zk_fs *fs, const struct zk_stat *st,
                        double entry_timeout, double attr_timeout,
                        struct fuse_entry_param *e);
int zk__fs_reply_entry(struct zk_fs *fs, fuse_req_t req,
                       const struct zk_stat *st, double entry_timeout);
int zk__fs_reply_entry_t(struct zk_fs *fs, fuse_req_t req,
                         const struct zk_stat *st, double entry_timeout,
                         double attr_timeout);
int zk__fs_child_path(struct zk_fs *fs, uint64_t parent, const char *name,
                      char *buf, size_t size);
int zk__fs_check_new_name(uint64_t parent, const char *name);
/* Fills *c as the deletion of ino from where it is now (its parent and
 * name in the store). Returns 0, or the store's error (-ENOENT: gone). */
int zk__fs_deletion_of(struct zk_fs *fs, uint64_t ino, struct zk_change *c);
int zk__fs_propose1(struct zk_fs *fs, const struct zk_op *op,
                    zk_replica_done_cb cb, void *arg);
/* metrics.c: zk_replica_propose on fs->replica, timing the answer for
 * the commit latency histogram. Same contract and errors (-ENOMEM too). */
int zk__fs_propose(struct zk_fs *fs, const struct zk_txn *txn,
                   zk_replica_done_cb cb, void *arg);
/* metrics.c: an echo barrier staged at t0_ns (uv_hrtime) is answered. */
void zk__fs_barrier_waited(struct zk_fs *fs, uint64_t t0_ns);
int zk__fs_result_err(int err, const struct zk_apply_result *res);
void zk__fs_reply_errno(fuse_req_t req, int err);
int zk__fs_stale(int err);
/* The process (thread group) of thread tid, from /proc; tid itself if
 * that cannot be read. */
pid_t zk__fs_tgid(pid_t tid);
/* "host:pid", the owner of an ephemeral or a lock, for process pid. */
void zk__fs_owner_of(struct zk_fs *fs, pid_t pid, char *buf, size_t size);
void zk__fs_caller_owner(struct zk_fs *fs, pid_t tid, char *buf,
                         size_t size);
void zk__fs_cred_from_req(fuse_req_t req, struct zk__fs_cred *out);
int zk__fs_may(const struct zk__fs_cred *c, const struct zk_stat *st,
               int mask);
int zk__fs_zkstat_value(const struct zk_stat *st, const char *key,
                        char *buf, size_t size);
extern const char *const zk__fs_zkstat_keys[];
extern const size_t zk__fs_zkstat_nkeys;

/* --- ops.c / file.c / xattr.c / ctl.c --------------------------------- */

extern const struct fuse_lowlevel_ops zk__fs_ops;

void zk__fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void zk__fs_getattr(fuse_req_t req, fuse_ino_t ino,
                    struct fuse_file_info *fi);
void zk__fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                    int to_set, struct fuse_file_info *fi);
void zk__fs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                   mode_t mode, struct fuse_file_info *fi);
void zk__fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void zk__fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                 struct fuse_file_info *fi);
void zk__fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
                  size_t size, off_t off, struct fuse_file_info *fi);
void zk__fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void zk__fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                  struct fuse_file_info *fi);
void zk__fs_release(fuse_req_t req, fuse_ino_t ino,
                    struct fuse_file_info *fi);
struct zk__fs_fh *zk__fs_fh_new(uint64_t ino, int oflags);
/* Attributes of ino asked through fh (NULL: no descriptor named). Through
 * a writer's own descriptor (lseek SEEK_END/DATA/HOLE, and the reply to
 * its ftruncate: the kernel names the descriptor only there, never for
 * fstat) with unsaved writes, sets attr's size to what fh holds so far.
 * Returns the attribute timeout to reply with: 0 while ino is open for
 * writing anywhere on this mount (so the kernel asks again, through the
 * descriptor when it has one), else the usual long one. */
double zk__fs_writer_attr(struct zk_fs *fs, const struct zk__fs_fh *fh,
                          uint64_t ino, struct stat *attr);
/* Answers a GETATTR (or an ftruncate's SETATTR) of deleted ino with kept,
 * the stat zk__fs_inomap_kept_stat gave, st_nlink 0, seen through fh as
 * zk__fs_writer_attr says. */
void zk__fs_reply_gone_attr(struct zk_fs *fs, fuse_req_t req, uint64_t ino,
                            const struct zk__fs_fh *fh,
                            const struct zk_stat *kept);
/* prov: the request is a provisional create (see prov.c); the open file
 * is its creator. Returns the open file, or NULL (already answered with
 * an error, or the creator is gone). */
struct zk__fs_fh *zk__fs_reply_create(struct zk_fs *fs, fuse_req_t req,
                                      const struct zk_stat *st,
                                      struct fuse_file_info *fi,
                                      double entry_timeout, int created,
                                      struct zk__fs_prov *prov);
void zk__fs_release_holder(struct zk_fs *fs, uint64_t ino);
/* A data change of ino was applied: the O_APPEND open files of ino take
 * the new committed content as their read view. Loop thread. */
void zk__fs_append_views(struct zk_fs *fs, uint64_t ino);
void zk__fs_delete_ino(struct zk_fs *fs, uint64_t ino);

void zk__fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                     size_t size);
void zk__fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void zk__fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                     const char *value, size_t size, int flags);
void zk__fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

void zk__fs_ctl_open(fuse_req_t req, struct fuse_file_info *fi);
void zk__fs_ctl_read(fuse_req_t req, size_t size, struct fuse_file_info *fi);
void zk__fs_ctl_write(fuse_req_t req, const char *buf, size_t size,
                      struct fuse_file_info *fi);
void zk__fs_ctl_release(fuse_req_t req, struct fuse_file_info *fi);

/* ctl_snapshot.c: writes a backup file (snapfile.h) of the committed
 * tree on a worker thread; done(arg, 0, fd, len) hands over an unnamed
 * file of len bytes (the callee closes fd), or done(arg, err, -1, 0).
 * Loop thread; *out, written on success, names the job for
 * zk__fs_snapshot_cancel (no done call then; valid until done would have
 * been called). Errors of start: -ENOMEM, libuv's. */
struct zk__fs_snapjob;
typedef void (*zk__fs_snapshot_cb)(void *arg, int err, int fd, uint64_t len);
int zk__fs_snapshot_start(struct zk_fs *fs, zk__fs_snapshot_cb done,
                          void *arg, struct zk__fs_snapjob **out);
void zk__fs_snapshot_cancel(struct zk__fs_snapjob *j);

/* --- echo.c -------------------------------------------------------------- */

int zk__fs_echo_start(struct zk_fs *fs);
int zk__fs_echo_stop(struct zk_fs *fs);
void zk__fs_echo_join(struct zk_fs *fs);
void zk__fs_echo_push(struct zk_fs *fs, enum zk__fs_echo_kind kind,
                      uint64_t ino, uint64_t parent, const char *name);
void zk__fs_echo_applied(void *arg, const struct zk_apply_result *res);
/* Stages the kernel work of one change no transaction made here (a
 * lease.c deletion): invalidations and its replay. Loop thread. */
void zk__fs_echo_change(struct zk_fs *fs, const struct zk_change *c);
/* The replica's reset callback, around the install of a snapshot: notes
 * the names of the inodes the kernel knows from the old tree, then tells
 * the kernel what the new tree changed about them. Loop thread. */
void zk__fs_echo_reset(void *arg, int done);
/* Invalidates ino's attributes, data and listing if the kernel knows it.
 * Loop thread. */
void zk__fs_echo_inval(struct zk_fs *fs, uint64_t ino);
/* Stages the replay (kind ZK__ECHO_R_*) of c at the znode paths given
 * (path2: a rename's target, else NULL). Loop thread. */
void zk__fs_echo_replay_at(struct zk_fs *fs, enum zk__fs_echo_kind kind,
                           const struct zk_change *c, const char *path,
                           const char *path2);

/* --- listing.c ----------------------------------------------------------- */

/* A reference to dir's listing for an open directory (*out, on success):
 * the kept one, or one read from the store and kept; for a directory with
 * a pending provisional create here, or with children of a session this
 * replica gave up, one of its own. Errors: the store's (-ENOENT,
 * -ENOTDIR), -ENOMEM. */
int zk__fs_listing_open(struct zk_fs *fs, uint64_t dir,
                        struct zk__fs_listing **out);
/* Whether an OPENDIR of dir lets the kernel cache its listing (call once
 * per OPENDIR: it counts them). */
int zk__fs_listing_kcache(struct zk_fs *fs, uint64_t dir);
/* Drops a reference (NULL: nothing). */
void zk__fs_listing_put(struct zk__fs_listing *ls);
/* Answers a READDIR (plus 0) or READDIRPLUS of size bytes from entry off
 * (0 ".", 1 "..", then the children) out of ls. */
void zk__fs_listing_reply(struct zk_fs *fs, fuse_req_t req,
                          struct zk__fs_listing *ls,
                          const struct zk__fs_dirpos *d, size_t size,
                          off_t off, int plus);
/* The applied callback's part: patches the kept listings with res's
 * creates, deletes and renames. */
void zk__fs_listing_applied(struct zk_fs *fs,
                            const struct zk_apply_result *res);
/* Forgets every kept listing (a snapshot install); _free_all also the
 * table (take-down). */
void zk__fs_listing_reset(struct zk_fs *fs);
void zk__fs_listing_free_all(struct zk_fs *fs);

/* --- snapdiff.c ---------------------------------------------------------- */

/* Before a snapshot's install (the old tree still in the store): notes
 * every directory the kernel knows with its children, and the names of
 * the other known inodes. After it: stages, for every difference, the
 * invalidations and the replay that make inotify report it (see the top
 * of snapdiff.c), and frees the notes. Loop thread. */
struct zk__fs_snapdiff;
void zk__fs_snapdiff_begin(struct zk_fs *fs);
void zk__fs_snapdiff_end(struct zk_fs *fs);
void zk__fs_snapdiff_free(struct zk__fs_snapdiff *sd);

/* lease.c: whether st belongs to a session this replica gave up (the
 * node is then invisible through this mount). For a node of this
 * replica's own session it first checks the lease on the monotonic clock
 * (zk_replica_lease_check), which may give the session up right then:
 * call it before answering anything about an ephemeral. The replica's
 * session_lost callback. */
int zk__fs_hidden(struct zk_fs *fs, const struct zk_stat *st);
void zk__fs_session_lost(void *arg, uint64_t session);
/* lock.c: cluster-wide flock (see the top of lock.c). zk__fs_applied is
 * the replica's applied callback (grants, then zk__fs_echo_applied);
 * zk__fs_lock_posix_used says whether an fcntl owner locked ino through
 * this mount and still has it open (then opens keep FLUSH);
 * zk__fs_lock_session_lost answers the session's parked waits ENOLINK
 * (session 0: all of them, at shutdown); zk__fs_lock_check is
 * ZK_ESESSION when a lock on ino belongs to a session given up or the
 * own lease ran out; zk__fs_lock_token / zk__fs_lock_list serve the
 * user.zkfs.lock.token and user.zkfs.locks xattrs. Loop thread. */
struct zk__fs_park;
struct zk__fs_lk;
void zk__fs_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                  int op);
void zk__fs_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                  struct flock *lock, int sleep);
void zk__fs_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                  struct flock *lock);
int zk__fs_lock_flush(struct zk_fs *fs, fuse_req_t req, uint64_t ino,
                      const struct fuse_file_info *fi);
void zk__fs_flush_commit(struct zk_fs *fs, fuse_req_t req,
                         struct zk__fs_fh *fh);
void zk__fs_lock_release(struct zk_fs *fs, uint64_t ino,
                         const struct fuse_file_info *fi);
int zk__fs_lock_posix_used(const struct zk_fs *fs, uint64_t ino);
void zk__fs_applied(void *arg, const struct zk_apply_result *res);
void zk__fs_reset(void *arg, int done);
void zk__fs_lock_session_lost(struct zk_fs *fs, uint64_t session);
int zk__fs_lock_check(struct zk_fs *fs, uint64_t ino);
int zk__fs_lock_lost(struct zk_fs *fs, uint64_t session);
uint64_t zk__fs_lock_counts(struct zk_fs *fs);  /* files with locks */
unsigned zk__fs_lock_waits(struct zk_fs *fs);   /* parked here */
int zk__fs_lock_token(struct zk_fs *fs, uint64_t ino, char *buf,
                      size_t size);
int zk__fs_lock_list(struct zk_fs *fs, uint64_t ino, uint8_t **out,
                     size_t *len);
/* watchdog.c: starts `zkfs __watchdog` for this daemon and its mount. */
void zk__fs_watchdog_start(struct zk_fs *fs);
/* Aborts FUSE connection dev (its number under /sys/fs/fuse/connections);
 * 0 or -errno. */
int zk__fs_abort_connection(const char *dev);
void zk__fs_echo_local(struct zk_fs *fs, const struct zk_apply_result *res);
int zk__fs_echo_local_attrs(struct zk_fs *fs,
                             const struct zk_apply_result *res, uint64_t knode);
struct zk__fs_echo_item *zk__fs_echo_cur(struct zk_fs *fs, fuse_req_t req);
/* Whether an entry given for req counts as given to a process that may
 * watch: any request but the echo thread's, and the echo thread's walk
 * of a rename that moves a watched node (its new ancestors can be
 * reached with "..", which the kernel never asks about). */
int zk__fs_echo_marks(struct zk_fs *fs, fuse_req_t req);
int zk__fs_is_echo(struct zk_fs *fs, fuse_req_t req);
void zk__fs_echo_barrier(struct zk_fs *fs, void (*cb)(void *), void *arg);
/* Whether an item that may make the kernel take a file's inode lock (a
 * replay of a change to a file, a notify_delete, an unlink) is staged,
 * queued or being acted out: a request that holds a file's inode lock
 * (FSYNC) must then not wait for the echo thread. Loop thread. */
int zk__fs_echo_file_lock_pending(struct zk_fs *fs);
size_t zk__fs_echo_backlog(struct zk_fs *fs);
int zk__fs_echo_waited_for(const struct zk_fs *fs);
int zk__fs_echo_lookup(struct zk_fs *fs, fuse_req_t req, uint64_t parent,
                       const char *name);
int zk__fs_echo_entry_ours(const struct zk__fs_echo_item *it, uint64_t parent,
                           const char *name, uint64_t parent2,
                           const char *name2);

#endif /* ZK_FS_INT_H */
