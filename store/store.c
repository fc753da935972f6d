/*
 * store.c — opening, checking and closing a zkfs store, and its readers.
 *
 * Layout: DIR/zkfs.mdb is one LMDB environment opened with MDB_NOSUBDIR
 * (LMDB adds DIR/zkfs.mdb-lock), DIR/LOCK carries an flock(2) that keeps a
 * second daemon out. Opening checks only O(1) things (format record,
 * counters, root node), so restart time does not depend on tree size.
 *
 * Readers run on any thread (MDB_NOTLS): each call takes an idle read-only
 * transaction from a small pool (mdb_txn_renew), reads one consistent
 * version and gives it back (mdb_txn_reset).
 */
#include "store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sched.h>
#include <unistd.h>

#define STORE_FILE "zkfs.mdb"
#define LOCK_FILE  "LOCK"
#define STORE_MAXDBS 16

static const char *const reserved_meta[] = {
    ZK__META_FORMAT, ZK__META_LAST_APPLIED, ZK__META_NEXT_INO,
    ZK__META_ZNODES, ZK__META_SESSIONS, ZK__META_DATA_BYTES,
    ZK__META_COMMIT_TXN, ZK__META_WAL_GEN,
};

/* ------------------------------------------------------------------ */
/* Read transactions                                                   */
/* ------------------------------------------------------------------ */

static void rc_free(struct zk_store *s);     /* the kept txn's nodes */

/* Takes an idle read txn from the pool (or makes one) and renews it. */
static int rd_get(struct zk_store *s, MDB_txn **out)
{
    MDB_txn *t = NULL;
    int rc;
    pthread_mutex_lock(&s->pool_mu);
    if (s->npool > 0)
        t = s->pool[--s->npool];
    pthread_mutex_unlock(&s->pool_mu);
    if (t != NULL) {
        rc = mdb_txn_renew(t);
        if (rc != 0)
            mdb_txn_abort(t);
    } else {
        rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t);
    }
    if (rc != 0)
        return zk__mdb_err(rc, "read txn begin");
    *out = t;
    return 0;
}

/* True when t shows the version its LMDB txn id names. LMDB 0.9 lets a
 * reader that was descheduled between reading the current txn id and
 * copying that txn's meta page copy a NEWER meta page written into the same
 * slot by a later commit that is not yet published; its next read may then
 * see the published, older, version: reads would go back in time. Every
 * commit records its own txn id in meta, so such a read is recognized. */
static int rd_consistent(struct zk_store *s, MDB_txn *t)
{
    MDB_val k = {strlen(ZK__META_COMMIT_TXN), (void *)ZK__META_COMMIT_TXN}, v;
    if (mdb_get(t, s->meta, &k, &v) != 0 || v.mv_size != 8)
        return 1;   /* not recorded yet: nothing to compare */
    return zk_get_be64(v.mv_data) == (uint64_t)mdb_txn_id(t);
}

/* Makes t, just renewed, show a whole published version (see
 * rd_consistent); on failure t is aborted. */
static int rd_settle(struct zk_store *s, MDB_txn *t)
{
    /* A retry reads the published txn id again: its meta page is whole. */
    for (int i = 0; i < ZK__READ_RETRY_MAX; i++) {
        if (rd_consistent(s, t))
            break;
        mdb_txn_reset(t);
        sched_yield();
        int rc = mdb_txn_renew(t);
        if (rc != 0) {
            mdb_txn_abort(t);
            return zk__mdb_err(rc, "read txn renew");
        }
    }
    return 0;
}

int zk__rd_begin(struct zk_store *s, MDB_txn **out)
{
    MDB_txn *t = NULL;
    int rc = rd_get(s, &t);
    if (rc == 0)
        rc = rd_settle(s, t);
    if (rc == 0)
        *out = t;
    return rc;
}

void zk__rd_end(struct zk_store *s, MDB_txn *t)
{
    mdb_txn_reset(t);
    pthread_mutex_lock(&s->pool_mu);
    if (s->npool < ZK__READER_POOL_MAX) {
        s->pool[s->npool++] = t;
        t = NULL;
    }
    pthread_mutex_unlock(&s->pool_mu);
    if (t != NULL)
        mdb_txn_abort(t);
}

/* ------------------------------------------------------------------ */
/* Open: directory check, lock, environment, format                    */
/* ------------------------------------------------------------------ */

static int allowed_name(const char *name)
{
    return strcmp(name, LOCK_FILE) == 0 || strcmp(name, "myid") == 0 ||
           strcmp(name, "lost+found") == 0 ||
           strncmp(name, "zkfs", 4) == 0;
}

/* Looks at dir's entries: *exists says whether zkfs.mdb is there. A
 * directory without it must hold nothing but names zkfs may own. */
static int check_dir(const char *dir, int create, int *exists)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        int err = errno;
        zk_log(ZK_LOG_ERROR, "store: cannot open data directory %s: %s", dir,
               strerror(err));
        return -err;
    }
    char foreign[NAME_MAX + 1] = "";
    struct dirent *e;
    *exists = 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (strcmp(e->d_name, STORE_FILE) == 0)
            *exists = 1;
        else if (!allowed_name(e->d_name) && foreign[0] == '\0')
            snprintf(foreign, sizeof(foreign), "%s", e->d_name);
    }
    closedir(d);
    if (*exists)
        return 0;
    if (foreign[0] != '\0') {
        zk_log(ZK_LOG_ERROR, "store: %s is not a zkfs data directory: it "
               "holds '%s' but no %s; refusing to use it", dir, foreign,
               STORE_FILE);
        return ZK_EFOREIGN;
    }
    if (!create) {
        zk_log(ZK_LOG_ERROR, "store: no zkfs store in %s", dir);
        return -ENOENT;
    }
    return 0;
}

static int lock_dir(const char *dir, int *fd_out)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, LOCK_FILE) >=
        (int)sizeof(path))
        return -ENAMETOOLONG;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        int err = errno;
        zk_log(ZK_LOG_ERROR, "store: cannot open %s: %s", path, strerror(err));
        return -err;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        close(fd);
        if (err == EWOULDBLOCK) {
            zk_log(ZK_LOG_ERROR, "store: %s is in use by another process",
                   dir);
            return -EBUSY;
        }
        return -err;
    }
    *fd_out = fd;
    return 0;
}

/* A positive number from the environment, else dflt. */
static uint64_t env_u64(const char *name, uint64_t dflt)
{
    uint64_t x = 0;
    int rc = zk_env_u64(name, UINT64_MAX, &x);

    if (rc == 1 && x == 0)
        zk_log(ZK_LOG_WARN, "store: ignoring %s=0 (not a positive number)",
               name);
    return rc == 1 && x > 0 ? x : dflt;
}

/* The same, where 0 is a value (off). */
static uint64_t env_u64z(const char *name, uint64_t dflt)
{
    uint64_t x = dflt;

    (void)zk_env_u64(name, UINT64_MAX, &x);
    return x;
}

static int env_open(struct zk_store *s, const char *dir)
{
    char path[PATH_MAX];
    uint64_t dflt = sizeof(size_t) >= 8 ? (UINT64_C(64) << 30)
                                        : (UINT64_C(1) << 30);
    uint64_t map = env_u64("ZKFS_MAP_SIZE_BYTES", dflt);
    if (snprintf(path, sizeof(path), "%s/%s", dir, STORE_FILE) >=
        (int)sizeof(path))
        return -ENAMETOOLONG;
    int rc = mdb_env_create(&s->env);
    if (rc != 0)
        return zk__mdb_err(rc, "env create");
    mdb_env_set_maxdbs(s->env, STORE_MAXDBS);
    mdb_env_set_maxreaders(s->env, ZK__MAXREADERS);
    rc = mdb_env_set_mapsize(s->env, (size_t)map);
    if (rc == 0) {
        int r = zk__ckpt_restore(dir, path);   /* before LMDB reads it */
        if (r != 0) {
            mdb_env_close(s->env);
            s->env = NULL;
            return r;
        }
    }
    if (rc == 0)
        rc = mdb_env_open(s->env, path,
                          MDB_NOSUBDIR | MDB_NOTLS | MDB_NOMETASYNC, 0600);
    if (rc == 0)
        return 0;
    mdb_env_close(s->env);
    s->env = NULL;
    if (rc == MDB_INVALID) {
        zk_log(ZK_LOG_ERROR, "store: %s is not a valid LMDB file (corrupt); "
               "refusing to start", path);
        return ZK_ECORRUPT;
    }
    if (rc == MDB_VERSION_MISMATCH) {
        zk_log(ZK_LOG_ERROR, "store: %s was written by an incompatible LMDB "
               "version; refusing to start", path);
        return ZK_EFOREIGN;
    }
    if (rc == ENODEV) {     /* mmap refused: FUSE direct I/O, some NFS */
        zk_log(ZK_LOG_ERROR, "store: %s: its file system cannot map files "
               "into memory (a FUSE mount such as zkfs itself?); put the "
               "data directory on a local disk", path);
        return -ENODEV;
    }
    return zk__mdb_err(rc, path);
}

/* A file shorter than the pages its meta page claims would fault (SIGBUS)
 * on the first read of a missing page: refuse it up front. O(1). */
static int env_check_size(struct zk_store *s, const char *dir)
{
    MDB_envinfo info;
    MDB_stat st;
    struct stat sb;
    int fd;
    if (mdb_env_info(s->env, &info) != 0 || mdb_env_stat(s->env, &st) != 0 ||
        mdb_env_get_fd(s->env, &fd) != 0 || fstat(fd, &sb) != 0)
        return -EIO;
    uint64_t need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    if ((uint64_t)sb.st_size < need) {
        zk_log(ZK_LOG_ERROR, "store: %s/%s is truncated (%lld bytes, its "
               "metadata needs %llu); refusing to start", dir, STORE_FILE,
               (long long)sb.st_size, (unsigned long long)need);
        return ZK_ECORRUPT;
    }
    return 0;
}

static int dbis_open(struct zk_store *s, MDB_txn *txn, unsigned flags)
{
    static const char *const names[] = {"nodes", "data", "dirents",
                                        "sessions", "ephemerals"};
    MDB_dbi *dbis[] = {&s->nodes, &s->data, &s->dirents, &s->sessions,
                       &s->ephem};
    for (size_t i = 0; i < ZK_ARRAY_LEN(names); i++) {
        int rc = mdb_dbi_open(txn, names[i], flags, dbis[i]);
        if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE) {
            zk_log(ZK_LOG_ERROR, "store: table '%s' is missing; refusing "
                   "to start", names[i]);
            return ZK_ECORRUPT;
        }
        if (rc == 0)
            rc = mdb_set_compare(txn, *dbis[i], zk__key_cmp);
        if (rc != 0)
            return zk__mdb_err(rc, "dbi open");
    }
    return 0;
}

/* Writes a new store: format record, zero counters, the root directory. */
static int format_init(struct zk_store *s, MDB_txn *txn)
{
    int rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta);
    if (rc != 0)
        return zk__mdb_err(rc, "meta create");
    rc = dbis_open(s, txn, MDB_CREATE);
    if (rc != 0)
        return rc;
    uint8_t fmt[8] = {'z', 'k', 'f', 's'};
    zk_put_be32(fmt + 4, ZK_STORE_FORMAT);
    MDB_val k = {strlen(ZK__META_FORMAT), (void *)ZK__META_FORMAT};
    MDB_val v = {8, fmt};
    rc = zk__mdb_err(mdb_put(txn, s->meta, &k, &v, 0), "format put");
    struct zk__counters c = {ZK_INO_FIRST_NODE, 1, 0, 0};
    if (rc == 0)
        rc = zk__counters_put(s, txn, &c);
    if (rc == 0)
        rc = zk__meta_put(s, txn, ZK__META_LAST_APPLIED, 0);
    struct zk__node root;
    memset(&root, 0, sizeof(root));
    root.st.ino = ZK_INO_ROOT;
    root.st.kind = ZK_KIND_DIR;
    root.st.mode = 0755;
    if (rc == 0)
        rc = zk__node_put(s, txn, &root);
    return rc;
}

static int format_check(struct zk_store *s, MDB_txn *txn, const char *dir)
{
    MDB_val k = {strlen(ZK__META_FORMAT), (void *)ZK__META_FORMAT}, v;
    int rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == MDB_NOTFOUND || (rc == 0 && v.mv_size != 8)) {
        zk_log(ZK_LOG_ERROR, "store: %s: format record is %s; refusing to "
               "start", dir, rc ? "missing" : "garbled");
        return ZK_ECORRUPT;
    }
    if (rc != 0)
        return zk__mdb_err(rc, "format get");
    const uint8_t *f = v.mv_data;
    if (memcmp(f, "zkfs", 4) != 0) {
        zk_log(ZK_LOG_ERROR, "store: %s: format magic is not 'zkfs'; not a "
               "zkfs store", dir);
        return ZK_EFOREIGN;
    }
    if (zk_get_be32(f + 4) != ZK_STORE_FORMAT) {
        zk_log(ZK_LOG_ERROR, "store: %s: store format %u, this zkfs reads "
               "only format %d; refusing to start", dir, zk_get_be32(f + 4),
               ZK_STORE_FORMAT);
        return ZK_EFOREIGN;
    }
    rc = dbis_open(s, txn, 0);
    struct zk__counters c;
    uint64_t last;
    if (rc == 0)
        rc = zk__counters_get(s, txn, &c);
    if (rc == 0)
        rc = zk__meta_get(s, txn, ZK__META_LAST_APPLIED, &last);
    if (rc == -ENOENT || (rc == 0 && c.next_ino < ZK_INO_FIRST_NODE)) {
        zk_log(ZK_LOG_ERROR, "store: %s: metadata counters are missing or "
               "invalid; refusing to start", dir);
        return ZK_ECORRUPT;
    }
    struct zk__node root;
    if (rc == 0)
        rc = zk__node_get(s, txn, ZK_INO_ROOT, &root);
    if (rc == -ENOENT || (rc == 0 && root.st.kind != ZK_KIND_DIR)) {
        zk_log(ZK_LOG_ERROR, "store: %s: root node missing or not a "
               "directory; refusing to start", dir);
        return ZK_ECORRUPT;
    }
    return rc;
}

/* Opens every table, initializing an empty environment when allowed. */
static int format_open(struct zk_store *s, const char *dir, int create)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return zk__mdb_err(rc, "open txn");
    rc = mdb_dbi_open(txn, "meta", 0, &s->meta);
    if (rc == MDB_NOTFOUND) {
        MDB_dbi main_dbi;
        MDB_stat st;
        rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
        if (rc == 0)
            rc = mdb_stat(txn, main_dbi, &st);
        if (rc != 0) {
            rc = zk__mdb_err(rc, "main dbi");
        } else if (st.ms_entries != 0) {
            zk_log(ZK_LOG_ERROR, "store: %s/%s is an LMDB file without zkfs "
                   "tables; refusing to use it", dir, STORE_FILE);
            rc = ZK_EFOREIGN;
        } else if (!create) {
            zk_log(ZK_LOG_ERROR, "store: %s/%s was never initialized", dir,
                   STORE_FILE);
            rc = ZK_ECORRUPT;
        } else {
            rc = format_init(s, txn);
        }
    } else if (rc == MDB_INCOMPATIBLE) {
        zk_log(ZK_LOG_ERROR, "store: %s/%s: 'meta' is not a table; not a "
               "zkfs store", dir, STORE_FILE);
        rc = ZK_EFOREIGN;
    } else if (rc != 0) {
        rc = zk__mdb_err(rc, "meta open");
    } else {
        rc = format_check(s, txn, dir);
    }
    if (rc == 0)
        rc = zk__lock_open(s, txn);
    if (rc == 0)
        rc = zk__meta_put(s, txn, ZK__META_COMMIT_TXN, mdb_txn_id(txn));
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = zk__ckpt_commit(s, txn, 0);
    if (rc == 0)        /* durable: a checkpoint of it (ckpt.c) */
        rc = zk__ckpt_run(s);
    return rc < 0 ? rc : zk__mdb_err(rc, "open commit");
}

/* A format-1 store keeps its log in LMDB's "log" table. It is moved into
 * the write-ahead log as an install is (batch.c, install_log): a new
 * generation of the log holding every entry, durable, then one durable
 * LMDB transaction that names that generation and drops the table. A
 * crash before that commit leaves the table in place (the new
 * generation's files are deleted at the next open, which migrates
 * again); after it, the table is gone. A zkfs older than this one then
 * refuses the store ("table 'log' is missing") rather than opening it
 * with an empty log. */
static int log_migrate(struct zk_store *s)
{
    struct zk_store_batch *b = NULL;
    MDB_dbi log;
    MDB_cursor *c = NULL;
    MDB_val k, v;
    uint64_t n = 0;
    int err = 0;        /* ours; rc holds only LMDB's (negative too) */
    int rc = zk_store_batch_begin(s, &b);
    if (rc != 0)
        return rc;
    rc = mdb_dbi_open(b->txn, "log", 0, &log);
    if (rc == MDB_NOTFOUND) {
        zk_store_batch_abort(b);
        return 0;
    }
    zk__batch_log_reset(b);
    if (rc == 0)
        rc = mdb_cursor_open(b->txn, log, &c);
    int op = MDB_FIRST;
    while (rc == 0 && err == 0 &&
           (rc = mdb_cursor_get(c, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        err = k.mv_size != 8 ? ZK_ECORRUPT
                             : zk_store_batch_log(b, zk_get_be64(k.mv_data),
                                                  v.mv_data, v.mv_size);
        n++;
    }
    if (c != NULL)
        mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND)
        rc = mdb_drop(b->txn, log, 1);
    if (rc != 0 || err != 0) {
        zk_store_batch_abort(b);
        return err != 0 ? err : zk__mdb_err(rc, "log migration");
    }
    rc = zk_store_batch_commit(b);
    if (rc == 0)
        zk_log(ZK_LOG_INFO, "store: %s: moved %llu log entries from LMDB "
               "into the write-ahead log %s/%s", s->dir,
               (unsigned long long)n, s->dir, ZK__WAL_DIR);
    return rc;
}

/* A log that ends below last_applied lost its tail to a power cut (a
 * log without sync, zk_store_log_sync) or to damage: what is left of it
 * is all applied, and the entries after it are gone. It is emptied,
 * durably, so that the next entries do not follow it with a hole
 * (nothing reads the log at or below last_applied but zkfs check and
 * status; an ensemble's restart reads the entries above it, and a
 * learner fetches what it lacks from its leader). */
static int wal_behind(struct zk_store *s, uint64_t last_applied)
{
    uint64_t first, last;
    zk__wal_bounds(s->wal, &first, &last);
    if (last == 0 || last >= last_applied)
        return 0;
    zk_log(ZK_LOG_WARN, "store: %s: the log ends at %#llx, below the last "
           "applied transaction %#llx (a power cut took records that were "
           "not synced): its %#llx..%#llx dropped", s->dir,
           (unsigned long long)last, (unsigned long long)last_applied,
           (unsigned long long)first, (unsigned long long)last);
    return zk__wal_truncate(s->wal, 0);
}

/* Opens the write-ahead log of the store's generation, migrates a
 * format-1 log into it, trims it as a commit would. */
static int wal_open(struct zk_store *s)
{
    uint64_t last = 0;
    int rc = zk_store_meta_get(s, ZK__META_WAL_GEN, &s->wal_gen);
    if (rc == -ENOENT) {
        s->wal_gen = 0;
        rc = 0;
    }
    if (rc == 0)
        rc = zk_store_meta_get(s, ZK__META_LAST_APPLIED, &last);
    if (rc == 0)
        rc = zk__wal_open(s->dir, s->wal_gen, s->wal_seg_bytes, 1, &s->wal);
    if (rc == 0)
        rc = wal_behind(s, last);
    if (rc == 0)
        rc = log_migrate(s);
    if (rc == 0) {
        s->applied_committed = last;
        zk__wal_trim(s->wal, last, s->log_keep, s->log_keep_bytes);
    }
    return rc;
}

int zk_store_open(const char *dir, int create, struct zk_store **out)
{
    int exists, rc = check_dir(dir, create, &exists);
    if (rc != 0)
        return rc;
    struct zk_store *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->lock_fd = -1;
    s->log_keep = env_u64("ZKFS_LOG_KEEP", ZK_LOG_KEEP);
    s->log_keep_bytes = env_u64("ZKFS_LOG_KEEP_BYTES", ZK_LOG_KEEP_BYTES);
    s->wal_seg_bytes = env_u64("ZKFS_WAL_SEGMENT_BYTES", ZK__WAL_SEG_BYTES);
    s->reserve_bytes = env_u64z("ZKFS_DISK_RESERVE_BYTES",
                                ZK__DISK_RESERVE_BYTES);
    pthread_mutex_init(&s->pool_mu, NULL);
    pthread_mutex_init(&s->wal_mu, NULL);
    if (snprintf(s->dir, sizeof(s->dir), "%s", dir) >= (int)sizeof(s->dir)) {
        rc = -ENAMETOOLONG;
        goto fail;
    }
    rc = lock_dir(dir, &s->lock_fd);
    if (rc != 0)
        goto fail;
    if (!exists)        /* a checkpoint of a store deleted since */
        zk__ckpt_forget(dir);
    rc = env_open(s, dir);
    if (rc == 0)
        rc = env_check_size(s, dir);
    if (rc != 0)
        goto fail;
    rc = zk__ckpt_start(s, env_u64("ZKFS_CHECKPOINT_MS", ZK__CHECKPOINT_MS),
                        env_u64z("ZKFS_CHECKPOINT_TRICKLE_US",
                                 ZK__CKPT_TRICKLE_US));
    if (rc == 0)
        rc = format_open(s, dir, create);
    if (rc == 0)
        rc = wal_open(s);
    if (rc != 0)
        goto fail;
    *out = s;
    return 0;
fail:
    zk_store_close(s);
    return rc;
}

/* Pages on LMDB's freelist (what later commits reuse before the file
 * grows), as mdb_stat -f counts them; 0 if unknown. */
static uint64_t free_pages(struct zk_store *s)
{
    MDB_txn *t;
    MDB_cursor *c;
    MDB_val k, v;
    uint64_t pages = 0;

    if (zk__rd_begin(s, &t) != 0)
        return 0;
    if (mdb_cursor_open(t, 0, &c) == 0) {        /* FREE_DBI */
        while (mdb_cursor_get(c, &k, &v, MDB_NEXT) == 0)
            if (v.mv_size >= sizeof(size_t)) {   /* an IDL: its count first */
                size_t n;
                memcpy(&n, v.mv_data, sizeof(n));
                pages += n;
            }
        mdb_cursor_close(c);
    }
    zk__rd_end(s, t);
    return pages;
}

/* Whether reserve bytes are left after a write of need bytes: one copy
 * in the write-ahead log, always new room on the file system (deletes
 * free none of the log, which keeps the last entries up to
 * ZKFS_LOG_KEEP / ZKFS_LOG_KEEP_BYTES), and one in
 * LMDB, from its free pages first (spare) — the map holds only that
 * one. */
static int room_short(uint64_t avail, uint64_t map_left, uint64_t spare,
                      uint64_t reserve, uint64_t need)
{
    uint64_t lmdb_new = need > spare ? need - spare : 0;
    uint64_t map_room = map_left + spare;

    return avail < reserve || avail - reserve < need + lmdb_new ||
           map_room < reserve || map_room - reserve < need;
}

int zk_store_room(struct zk_store *s, uint64_t need)
{
    struct statvfs sv;
    MDB_envinfo ei;
    MDB_stat st;

    if (s->reserve_bytes == 0 || fstatvfs(s->lock_fd, &sv) != 0 ||
        mdb_env_info(s->env, &ei) != 0 || mdb_env_stat(s->env, &st) != 0)
        return 0;   /* (cannot say: the write decides) */
    if (need > UINT64_MAX / 4)
        return -ENOSPC;
    /* Two limits: the file system, and LMDB's map (ZKFS_MAP_SIZE_BYTES),
     * which a full one wedged for good: every replica failed the same
     * batch again at each new core, and no delete got through. */
    uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    uint64_t used = ((uint64_t)ei.me_last_pgno + 1) * st.ms_psize;
    uint64_t map_left = ei.me_mapsize > used ? ei.me_mapsize - used : 0;
    /* LMDB's file never shrinks: after deletes the room is in its free
     * pages, which the next writes take first. (Those freed since the
     * last checkpoint wait for the next one, ZKFS_CHECKPOINT_MS.) */
    uint64_t spare = 0;
    if (room_short(avail, map_left, 0, s->reserve_bytes, need))
        spare = free_pages(s) * st.ms_psize;
    int low = room_short(avail, map_left, spare, s->reserve_bytes, need);
    if (low)
        atomic_fetch_add_explicit(&s->room_refusals, 1,
                                  memory_order_relaxed);
    /* Logged: the first refusal, and the room back with a margin (so
     * that writes of mixed sizes near the reserve log nothing more). */
    if (low ? !atomic_exchange(&s->room_low, 1)
            : atomic_load(&s->room_low) &&
                  !room_short(avail, map_left,
                              spare ? spare : free_pages(s) * st.ms_psize,
                              s->reserve_bytes, ZK__ROOM_LOG_MARGIN) &&
                  atomic_exchange(&s->room_low, 0))
        zk_log(low ? ZK_LOG_WARN : ZK_LOG_INFO,
               "store: %s: %llu bytes free on its file system, %llu in its "
               "map and %llu in its free pages: %s the reserve of %llu "
               "(ZKFS_DISK_RESERVE_BYTES): %s", s->dir,
               (unsigned long long)avail, (unsigned long long)map_left,
               (unsigned long long)spare, low ? "at" : "above",
               (unsigned long long)s->reserve_bytes,
               low ? "writes that add data fail with ENOSPC, deletes go on"
                   : "writes go on");
    return low ? -ENOSPC : 0;
}

void zk_store_close(struct zk_store *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < s->npool; i++)
        mdb_txn_abort(s->pool[i]);
    if (s->kept != NULL)
        mdb_txn_abort(s->kept);
    rc_free(s);
    if (s->env != NULL) {
        /* The last commits synced and checkpointed (ckpt.c), or without
         * checkpoints a lazy commit's meta page (batch.c). */
        zk__ckpt_stop(s);
        mdb_env_close(s->env);
    }
    zk__wal_close(s->wal);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    pthread_mutex_destroy(&s->pool_mu);
    pthread_mutex_destroy(&s->wal_mu);
    free(s);
}

/* ------------------------------------------------------------------ */
/* The kept read transaction                                           */
/* ------------------------------------------------------------------ */

/* Whether the kept txn still shows the newest commit: none was counted
 * since it was renewed. (One published but not counted yet is as if the
 * read came just before it: its committer has not gone on, so nobody was
 * told it is done.) */
static int kept_current(struct zk_store *s)
{
    return atomic_load_explicit(&s->commits, memory_order_acquire) ==
           s->kept_commits;
}

static int on_keeper(const struct zk_store *s)
{
    return s->keep_on && pthread_equal(pthread_self(), s->keep_owner);
}

/* A node as the kept txn showed it, valid while that txn is current and
 * was renewed at commit count gen: reading the same node again from the
 * same version gives the same answer, without LMDB's page walks (which
 * cost a get more than all of zkfs's own work). Data only up to
 * ZK__RC_DATA_MAX bytes. One direct-mapped slot per inode hash. */
struct zk__rc_slot {
    uint64_t ino, gen;
    struct zk_stat st;
    uint8_t *data;          /* has_data: len bytes (NULL when 0)  */
    uint32_t len;
    int has_data;
};

static void rc_free(struct zk_store *s)
{
    if (s->rc == NULL)
        return;
    for (size_t i = 0; i < ZK__RC_SLOTS; i++)
        free(s->rc[i].data);
    free(s->rc);
    s->rc = NULL;
}

/* ino's slot, on the keeping thread; NULL elsewhere (or without memory). */
static struct zk__rc_slot *rc_slot(struct zk_store *s, uint64_t ino)
{
    if (!on_keeper(s))
        return NULL;
    if (s->rc == NULL && !(s->rc = calloc(ZK__RC_SLOTS, sizeof(*s->rc))))
        return NULL;
    return &s->rc[(ino * 0x9E3779B97F4A7C15ull) >> 54];  /* 10 bits */
}

/* Whether sl holds ino as the newest version shows it. */
static int rc_hit(struct zk_store *s, const struct zk__rc_slot *sl,
                  uint64_t ino)
{
    return sl != NULL && sl->ino == ino && s->kept_live &&
           sl->gen == s->kept_commits && kept_current(s);
}

/* Remembers st (and data, when data_too and small enough) as read from
 * txn t, if t is the kept txn. */
static void rc_fill(struct zk_store *s, MDB_txn *t, struct zk__rc_slot *sl,
                    const struct zk_stat *st, const uint8_t *data,
                    size_t len, int data_too)
{
    if (sl == NULL || t != s->kept)
        return;
    if (!data_too && sl->ino == st->ino && sl->gen == s->kept_commits)
        return;             /* (keeps its data) */
    sl->ino = st->ino;
    sl->gen = s->kept_commits;
    sl->st = *st;
    sl->has_data = 0;
    if (!data_too || len > ZK__RC_DATA_MAX)
        return;
    if (len > 0) {
        uint8_t *p = realloc(sl->data, len);
        if (p == NULL)
            return;
        sl->data = p;
        memcpy(p, data, len);
    }
    sl->len = (uint32_t)len;
    sl->has_data = 1;
}

void zk_store_reader_keep(struct zk_store *s, int on)
{
    if (!on || !on_keeper(s)) {
        zk_store_reader_idle(s);
        if (s->kept != NULL && !s->kept_busy) {
            mdb_txn_abort(s->kept);
            s->kept = NULL;
            s->kept_live = 0;
        }
    }
    if (!on)
        rc_free(s);
    s->keep_owner = pthread_self();
    s->keep_on = on;
}

void zk_store_reader_idle(struct zk_store *s)
{
    if (!on_keeper(s) || !s->kept_live || s->kept_busy || kept_current(s))
        return;
    mdb_txn_reset(s->kept);
    s->kept_live = 0;
}

int zk__rd_short(struct zk_store *s, MDB_txn **out)
{
    if (!on_keeper(s) || s->kept_busy)
        return zk__rd_begin(s, out);
    if (s->kept_live && !kept_current(s)) {
        mdb_txn_reset(s->kept);
        s->kept_live = 0;
    }
    if (!s->kept_live) {
        /* Counted before the renew: a commit counted later is seen as
         * newer, even if the renewed txn already shows it. */
        s->kept_commits = atomic_load_explicit(&s->commits,
                                               memory_order_acquire);
        int rc = s->kept != NULL
                     ? mdb_txn_renew(s->kept)
                     : mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->kept);
        if (rc != 0) {
            if (s->kept != NULL)
                mdb_txn_abort(s->kept);
            s->kept = NULL;
            return zk__mdb_err(rc, "read txn begin");
        }
        rc = rd_settle(s, s->kept);
        if (rc != 0) {
            s->kept = NULL;
            return rc;
        }
        s->kept_live = 1;
    }
    s->kept_busy = 1;
    *out = s->kept;
    return 0;
}

void zk__rd_short_end(struct zk_store *s, MDB_txn *t)
{
    if (t == s->kept && s->kept_busy)
        s->kept_busy = 0;       /* stays renewed for the next read */
    else
        zk__rd_end(s, t);
}

/* ------------------------------------------------------------------ */
/* Reads                                                               */
/* ------------------------------------------------------------------ */

int zk_store_getattr(struct zk_store *s, uint64_t ino, struct zk_stat *out)
{
    MDB_txn *t;
    struct zk__node n;
    struct zk__rc_slot *sl = rc_slot(s, ino);
    if (rc_hit(s, sl, ino)) {
        *out = sl->st;
        return 0;
    }
    int rc = zk__rd_short(s, &t);
    if (rc != 0)
        return rc;
    rc = zk__node_get(s, t, ino, &n);
    if (rc == 0)
        rc_fill(s, t, sl, &n.st, NULL, 0, 0);
    zk__rd_short_end(s, t);
    if (rc == 0)
        *out = n.st;
    return rc;
}

static int lookup_txn(struct zk_store *s, MDB_txn *t, uint64_t parent,
                      const char *name, struct zk__node *n)
{
    size_t len = strlen(name);
    uint64_t ino;
    if (len > ZK_NAME_MAX)
        return -ENAMETOOLONG;
    int rc = zk__dirent_get(s, t, parent, name, len, &ino);
    if (rc == -ENOENT) {
        rc = zk__node_get(s, t, parent, n);
        if (rc == 0)
            rc = n->st.kind == ZK_KIND_FILE ? -ENOTDIR : -ENOENT;
        return rc;
    }
    if (rc != 0)
        return rc;
    return zk__node_get(s, t, ino, n);
}

int zk_store_lookup(struct zk_store *s, uint64_t parent, const char *name,
                    struct zk_stat *out)
{
    MDB_txn *t;
    struct zk__node n;
    int rc = zk__rd_short(s, &t);
    if (rc != 0)
        return rc;
    rc = lookup_txn(s, t, parent, name, &n);
    zk__rd_short_end(s, t);
    if (rc == 0)
        *out = n.st;
    return rc;
}

int zk_store_resolve(struct zk_store *s, const char *path,
                     struct zk_stat *out)
{
    MDB_txn *t;
    struct zk__node n;
    size_t len = strlen(path);
    int rc = zk_path_check(path, len);
    if (rc != 0)
        return rc;
    rc = zk__rd_short(s, &t);
    if (rc != 0)
        return rc;
    rc = zk__resolve(s, t, path, len, &n);
    zk__rd_short_end(s, t);
    if (rc == 0)
        *out = n.st;
    return rc;
}

int zk_store_path(struct zk_store *s, uint64_t ino, char *buf, size_t size)
{
    MDB_txn *t;
    int rc = zk__rd_short(s, &t);
    if (rc != 0)
        return rc;
    rc = zk__path(s, t, ino, buf, size);
    zk__rd_short_end(s, t);
    return rc;
}

static int read_txn(struct zk_store *s, MDB_txn *t, uint64_t ino,
                    uint8_t **data, size_t *len, struct zk__node *n)
{
    int rc = zk__node_get(s, t, ino, n);
    if (rc != 0)
        return rc;
    uint8_t kb[8];
    zk_put_be64(kb, ino);
    MDB_val k = {8, kb}, v = {0, NULL};
    rc = mdb_get(t, s->data, &k, &v);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return zk__mdb_err(rc, "data get");
    if (v.mv_size != n->st.data_length) {
        zk_log(ZK_LOG_ERROR, "store: data of inode %llu has %zu bytes, its "
               "stat says %u", (unsigned long long)ino, v.mv_size,
               n->st.data_length);
        return ZK_ECORRUPT;
    }
    uint8_t *copy = NULL;
    if (v.mv_size > 0) {
        copy = malloc(v.mv_size);
        if (copy == NULL)
            return -ENOMEM;
        memcpy(copy, v.mv_data, v.mv_size);
    }
    *data = copy;
    *len = v.mv_size;
    return 0;
}

int zk_store_read(struct zk_store *s, uint64_t ino, uint8_t **data,
                  size_t *len, struct zk_stat *stat_out)
{
    MDB_txn *t;
    struct zk__node n;
    struct zk__rc_slot *sl = rc_slot(s, ino);
    if (rc_hit(s, sl, ino) && sl->has_data) {
        uint8_t *copy = NULL;
        if (sl->len > 0 && !(copy = malloc(sl->len)))
            return -ENOMEM;
        if (sl->len > 0)
            memcpy(copy, sl->data, sl->len);
        *data = copy;
        *len = sl->len;
        if (stat_out != NULL)
            *stat_out = sl->st;
        return 0;
    }
    int rc = zk__rd_short(s, &t);
    if (rc != 0)
        return rc;
    rc = read_txn(s, t, ino, data, len, &n);
    if (rc == 0)
        rc_fill(s, t, sl, &n.st, *data, *len, 1);
    zk__rd_short_end(s, t);
    if (rc == 0 && stat_out != NULL)
        *stat_out = n.st;
    return rc;
}

static int owner_txn(struct zk_store *s, MDB_txn *t, uint64_t ino, char *buf,
                     size_t size)
{
    struct zk__node n;
    int rc = zk__node_get(s, t, ino, &n);
    if (rc != 0)
        return rc;
    if (n.st.ephemeral_owner == 0)
        return -ENODATA;
    uint8_t kb[16];
    zk_put_be64(kb, n.st.ephemeral_owner);
    zk_put_be64(kb + 8, ino);
    MDB_val k = {16, kb}, v;
    rc = mdb_get(t, s->ephem, &k, &v);
    if (rc == MDB_NOTFOUND) {
        zk_log(ZK_LOG_ERROR, "store: ephemeral inode %llu has no owner row",
               (unsigned long long)ino);
        return ZK_ECORRUPT;
    }
    if (rc != 0)
        return zk__mdb_err(rc, "owner get");
    if (v.mv_size + 1 > size)
        return -ERANGE;
    memcpy(buf, v.mv_data, v.mv_size);
    buf[v.mv_size] = '\0';
    return 0;
}

int zk_store_owner(struct zk_store *s, uint64_t ino, char *buf, size_t size)
{
    MDB_txn *t;
    int rc = zk__rd_short(s, &t);
    if (rc != 0)
        return rc;
    rc = owner_txn(s, t, ino, buf, size);
    zk__rd_short_end(s, t);
    return rc;
}

/* The node record of ino through cursor c on the nodes table: LMDB
 * searches only the cursor's leaf page when ino is on it, and children
 * made one after another have neighbouring inode numbers, so a listing
 * mostly skips the descent from the root that mdb_get makes each time. */
static int node_at(MDB_cursor *c, uint64_t ino, struct zk__node *out)
{
    uint8_t kb[8];
    zk_put_be64(kb, ino);
    MDB_val k = {8, kb}, v;
    return zk__node_found(mdb_cursor_get(c, &k, &v, MDB_SET_KEY), &v, ino,
                          out);
}

static int list_txn(struct zk_store *s, MDB_txn *t, uint64_t dir,
                    zk_store_list_cb cb, void *arg)
{
    struct zk__node n;
    int rc = zk__node_get(s, t, dir, &n);
    if (rc != 0)
        return rc;
    if (n.st.kind != ZK_KIND_DIR)
        return -ENOTDIR;
    MDB_cursor *c, *nc;
    rc = mdb_cursor_open(t, s->dirents, &c);
    if (rc != 0)
        return zk__mdb_err(rc, "cursor open");
    rc = mdb_cursor_open(t, s->nodes, &nc);
    if (rc != 0) {
        mdb_cursor_close(c);
        return zk__mdb_err(rc, "cursor open");
    }
    uint8_t kb[8];
    zk_put_be64(kb, dir);
    MDB_val k = {8, kb}, v;
    int op = MDB_SET_RANGE;
    while ((rc = mdb_cursor_get(c, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        if (k.mv_size < 9 || k.mv_size > 8 + ZK_NAME_MAX ||
            zk_get_be64(k.mv_data) != dir)
            break;
        if (v.mv_size != 8) {
            rc = ZK_ECORRUPT;
            goto done;
        }
        char name[ZK_NAME_MAX + 1];
        memcpy(name, (const uint8_t *)k.mv_data + 8, k.mv_size - 8);
        name[k.mv_size - 8] = '\0';
        rc = node_at(nc, zk_get_be64(v.mv_data), &n);
        if (rc == 0)
            rc = cb(arg, name, &n.st);
        if (rc != 0)
            goto done;   /* an error, or the callback's value as is */
    }
    rc = rc == MDB_NOTFOUND ? 0 : zk__mdb_err(rc, "list");
done:
    mdb_cursor_close(nc);
    mdb_cursor_close(c);
    return rc;
}

int zk_store_list(struct zk_store *s, uint64_t dir, zk_store_list_cb cb,
                  void *arg)
{
    return zk_store_list_at(s, dir, cb, arg, NULL);
}

int zk_store_list_at(struct zk_store *s, uint64_t dir, zk_store_list_cb cb,
                     void *arg, uint64_t *zxid)
{
    MDB_txn *t;
    uint64_t z = 0;
    int rc = zk__rd_short(s, &t);
    if (rc != 0)
        return rc;
    if (zxid)
        rc = zk__meta_get(s, t, ZK__META_LAST_APPLIED, &z);
    if (rc == -ENOENT)
        rc = 0;                 /* a new store: nothing applied yet */
    if (rc == 0)
        rc = list_txn(s, t, dir, cb, arg);
    zk__rd_short_end(s, t);
    if (rc == 0 && zxid)
        *zxid = z;
    return rc;
}

static int info_txn(struct zk_store *s, MDB_txn *t, struct zk_store_info *o)
{
    struct zk__counters c;
    int rc = zk__counters_get(s, t, &c);
    if (rc == 0)
        rc = zk__meta_get(s, t, ZK__META_LAST_APPLIED, &o->last_applied_zxid);
    if (rc != 0)
        return rc;
    o->next_ino = c.next_ino;
    o->znodes = c.znodes;
    o->sessions = c.sessions;
    o->data_bytes = c.data_bytes;
    rc = zk__meta_get(s, t, "accepted_epoch", &o->accepted_epoch);
    if (rc == -ENOENT)
        rc = 0;
    if (rc == 0)
        rc = zk__meta_get(s, t, "current_epoch", &o->current_epoch);
    if (rc == -ENOENT)
        rc = 0;
    if (rc == 0) {
        pthread_mutex_lock(&s->wal_mu);
        zk__wal_bounds(s->wal, &o->log_first_zxid, &o->log_last_zxid);
        pthread_mutex_unlock(&s->wal_mu);
    }
    MDB_stat st;
    if (rc == 0 && (rc = mdb_stat(t, s->ephem, &st)) != 0)
        rc = zk__mdb_err(rc, "ephemerals stat");
    else if (rc == 0)
        o->ephemerals = st.ms_entries;
    return rc;
}

int zk_store_info(struct zk_store *s, struct zk_store_info *out)
{
    struct zk_store_info o;
    MDB_txn *t;
    memset(&o, 0, sizeof(o));
    int rc = zk__rd_short(s, &t);
    if (rc != 0)
        return rc;
    rc = info_txn(s, t, &o);
    zk__rd_short_end(s, t);
    if (rc != 0)
        return rc;
    int fd;
    struct stat sb;
    if (mdb_env_get_fd(s->env, &fd) == 0 && fstat(fd, &sb) == 0)
        o.file_bytes = (uint64_t)sb.st_size;
    o.reserve_refusals = atomic_load_explicit(&s->room_refusals,
                                              memory_order_relaxed);
    o.at_reserve = atomic_load(&s->room_low);
    *out = o;
    return 0;
}

int zk_store_meta_get(struct zk_store *s, const char *key, uint64_t *val)
{
    MDB_txn *t;
    uint64_t v;
    if (key == NULL || *key == '\0' || strlen(key) > 64)
        return -EINVAL;
    int rc = zk__rd_short(s, &t);
    if (rc != 0)
        return rc;
    rc = zk__meta_get(s, t, key, &v);
    zk__rd_short_end(s, t);
    if (rc == 0)
        *val = v;
    return rc;
}

int zk_store_file_id(struct zk_store *s, uint64_t *id)
{
    struct statx sx;
    int fd;
    if (mdb_env_get_fd(s->env, &fd) != 0)
        return -EIO;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_INO | STATX_BTIME, &sx) != 0) {
        /* No statx (an old kernel, a seccomp filter): the inode alone. */
        struct stat sb;
        if ((errno != ENOSYS && errno != EPERM) || fstat(fd, &sb) != 0)
            return -errno;
        memset(&sx, 0, sizeof(sx));
        sx.stx_ino = sb.st_ino;
    }
    uint64_t v = sx.stx_ino * 0x9e3779b97f4a7c15ull;
    if (sx.stx_mask & STATX_BTIME)
        v ^= (uint64_t)sx.stx_btime.tv_sec * 1000000000u +
             sx.stx_btime.tv_nsec;
    *id = v;
    return 0;
}

int zk__meta_reserved(const char *key)
{
    for (size_t i = 0; i < ZK_ARRAY_LEN(reserved_meta); i++)
        if (strcmp(key, reserved_meta[i]) == 0)
            return 1;
    return 0;
}
