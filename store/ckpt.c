/*
 * ckpt.c — checkpoints: how the tree's LMDB commits go without a flush.
 *
 * Every entry a replica applies is in its write-ahead log first (durable
 * before the apply), and a restart applies again what the tree lacks. So
 * the tree's own commits need no flush to be safe, only to never be torn:
 * LMDB with MDB_NOSYNC writes a commit's pages and then its meta page,
 * none synced, and the system may write them back to the disk in any
 * order. A power cut could leave a meta page that names pages never
 * written, or pages of the last synced version overwritten by later
 * commits that reused them.
 *
 * A checkpoint is a version of the file that is whole on the disk, and
 * that the next power cut can go back to:
 *  - the writer thread, right after each commit and under ck_mu, copies
 *    the two meta pages of the file as they are now (the commit's and the
 *    one before): the capture;
 *  - a checkpoint (the background thread, ZKFS_CHECKPOINT_MS after a
 *    commit, or a durable commit, open or close) takes the capture and, before
 *    any later commit, renews a read transaction on that version: LMDB
 *    reuses no page that version (or the one before it) uses for as long
 *    as the reader is held. Then it syncs the file (every page of that
 *    version is on the disk), then writes the capture into zkfs.ckpt (two
 *    slots, the older one overwritten, checksummed, synced), and only then
 *    lets the previous checkpoint's reader go;
 *  - at open, when the checkpoint was written in another boot of the
 *    system (a power cut or a crash of the system may have lost writes
 *    since), both meta pages of the file are put back as they were at the
 *    checkpoint: the file is that version, whole, and the log holds every
 *    entry after it (the store trims the log only up to the checkpoint's
 *    last applied). In the same boot the page cache kept every write, and
 *    LMDB is whole after a crash of the process alone: nothing is put
 *    back.
 *
 * Meanwhile the thread starts the writeback of the commits' pages every
 * ZKFS_CHECKPOINT_TRICKLE_US (sync_file_range, without waiting for it),
 * so that a checkpoint's sync finds few pages left: a burst of them
 * would hold up the writers' log syncs on the same disk (p99 of a write
 * 2.5-6.7 ms with a 100 ms interval and no trickle, 1.0-2.2 ms with it;
 * docs/performance.md).
 *
 * Copying the meta pages as bytes needs nothing of LMDB's format but
 * where they are (pages 0 and 1) and, to check them, where a meta page
 * keeps its magic and txn id (LMDB's data format 1, the only one 0.9.x
 * knows). If the running LMDB's pages do not look so, checkpoints are off
 * and every commit is synced as before (MDB_NOMETASYNC's page sync).
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define CK_FILE         "zkfs.ckpt"
#define CK_TMP          "zkfs.ckpt.tmp"
#define CK_CLEAN        1u          /* slot flag: taken at a clean close */
#define CK_BOOT_FAILED  "checkpoint-failed" /* never a boot id: restore */
#define CK_MAGIC        "ZKFSCKP1"
#define CK_HDR          96          /* slot header, then the two pages  */
#define LMDB_MAGIC      0xBEEFC0DEu
#define LMDB_OFF_MAGIC  16          /* after the page header            */
#define LMDB_OFF_ROOT   128         /* MDB_meta.mm_dbs[MAIN_DBI].md_root */
#define LMDB_OFF_TXNID  144         /* MDB_meta.mm_txnid (64-bit build) */

/* Slot layout (formats.md, "Checkpoints"): magic[8] | u32 version |
 * u32 page size | u64 seq | u64 LMDB txn id | u64 last applied zxid |
 * boot id[40] | u32 crc32 of the rest of the slot | u32 crc32 of the
 * version's root page | u32 flags | 4 zero bytes | pages. */
struct ck_slot {
    uint64_t seq, txnid, applied;
    uint32_t root_crc, flags;
    char boot[40];
    const uint8_t *pages;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t slot_size(size_t psize)
{
    return (CK_HDR + 2 * psize + 4095) & ~(size_t)4095;
}

static int meta_ok(const uint8_t *p)
{
    uint32_t magic;
    memcpy(&magic, p + LMDB_OFF_MAGIC, 4);
    return magic == LMDB_MAGIC;
}

/* The meta page's txn id, or 0 when p does not look like one. */
static uint64_t meta_txnid(const uint8_t *p)
{
    uint64_t txnid;
    if (!meta_ok(p))
        return 0;
    memcpy(&txnid, p + LMDB_OFF_TXNID, 8);
    return txnid;
}

static uint64_t metas_newest(const uint8_t *pages, size_t psize)
{
    uint64_t a = meta_txnid(pages), b = meta_txnid(pages + psize);
    return a > b ? a : b;
}


/* This boot of the system (or ZKFS_TEST_BOOT_ID: tests make a "power
 * cut" by opening as another boot). */
static void boot_id(char out[40])
{
    const char *t = getenv("ZKFS_TEST_BOOT_ID");
    memset(out, 0, 40);
    if (t != NULL && *t != '\0') {
        snprintf(out, 40, "%s", t);
        return;
    }
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, out, 39);
        close(fd);
        if (n > 0 && out[n - 1] == '\n')
            out[n - 1] = '\0';
    }
}

/* *crc: CRC-32 of the root page of the newest version the meta pages
 * name (0 for an empty main table): the file's identity at a checkpoint,
 * as that page is never written again while the checkpoint holds.
 * -EIO when it cannot be read. */
static int root_crc(int fd, const uint8_t *pages, size_t psize,
                    uint32_t *crc)
{
    const uint8_t *m = meta_txnid(pages) >= meta_txnid(pages + psize)
                           ? pages : pages + psize;
    uint64_t root;
    memcpy(&root, m + LMDB_OFF_ROOT, 8);
    *crc = 0;
    if (root == UINT64_MAX)         /* P_INVALID: no root */
        return 0;
    uint8_t *pg = malloc(psize);
    if (pg == NULL)
        return -ENOMEM;
    int rc = root < (UINT64_C(1) << 40)
                 ? zk__pread_all(fd, pg, psize, root * psize) : -EIO;
    if (rc == 0)
        *crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), pg, (uInt)psize);
    free(pg);
    return rc == 0 ? 0 : -EIO;
}

static void slot_encode(uint8_t *b, size_t psize, const struct ck_slot *sl)
{
    size_t sz = slot_size(psize);
    memset(b, 0, sz);
    memcpy(b, CK_MAGIC, 8);
    zk_put_be32(b + 8, 1);
    zk_put_be32(b + 12, (uint32_t)psize);
    zk_put_be64(b + 16, sl->seq);
    zk_put_be64(b + 24, sl->txnid);
    zk_put_be64(b + 32, sl->applied);
    memcpy(b + 40, sl->boot, 40);
    zk_put_be32(b + 84, sl->root_crc);
    zk_put_be32(b + 88, sl->flags);
    memcpy(b + CK_HDR, sl->pages, 2 * psize);
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, b, 80);
    crc = crc32(crc, b + 84, CK_HDR - 84);
    crc = crc32(crc, b + CK_HDR, (uInt)(2 * psize));
    zk_put_be32(b + 80, (uint32_t)crc);
}

/* 0 and *sl filled (pages point into b) when slot b is whole. */
static int slot_decode(const uint8_t *b, size_t psize, struct ck_slot *sl)
{
    if (memcmp(b, CK_MAGIC, 8) != 0 || zk_get_be32(b + 8) != 1 ||
        zk_get_be32(b + 12) != psize)
        return -1;
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, b, 80);
    crc = crc32(crc, b + 84, CK_HDR - 84);
    crc = crc32(crc, b + CK_HDR, (uInt)(2 * psize));
    if (zk_get_be32(b + 80) != (uint32_t)crc)
        return -1;
    sl->seq = zk_get_be64(b + 16);
    sl->txnid = zk_get_be64(b + 24);
    sl->applied = zk_get_be64(b + 32);
    memcpy(sl->boot, b + 40, 40);
    sl->boot[39] = '\0';
    sl->root_crc = zk_get_be32(b + 84);
    sl->flags = zk_get_be32(b + 88);
    sl->pages = b + CK_HDR;
    if (!meta_ok(sl->pages) || !meta_ok(sl->pages + psize) ||
        metas_newest(sl->pages, psize) != sl->txnid)
        return -1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* At open, before LMDB: putting the checkpoint back                   */
/* ------------------------------------------------------------------ */

void zk__ckpt_forget(const char *dir)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, CK_FILE) <
        (int)sizeof(path))
        unlink(path);
}

/* Reads the newest whole slot of dir's zkfs.ckpt into *sl (buf holds it:
 * free it). -ENOENT: no checkpoint file; ZK_ECORRUPT: one without a whole
 * slot. */
static int ckpt_read(const char *dir, size_t psize, uint8_t **buf,
                     struct ck_slot *sl, int quiet)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, CK_FILE) >=
        (int)sizeof(path))
        return -ENAMETOOLONG;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t sz = slot_size(psize);
    uint8_t *b = malloc(2 * sz);
    if (b == NULL) {
        close(fd);
        return -ENOMEM;
    }
    struct ck_slot s0, s1;
    int ok0 = zk__pread_all(fd, b, sz, 0) == 0 && slot_decode(b, psize, &s0) == 0;
    int ok1 = zk__pread_all(fd, b + sz, sz, sz) == 0 &&
              slot_decode(b + sz, psize, &s1) == 0;
    close(fd);
    if (!ok0 && !ok1) {
        free(b);
        if (quiet)
            return ZK_ECORRUPT;
        zk_log(ZK_LOG_ERROR, "store: %s has no whole checkpoint; refusing "
               "to start (it cannot tell which version of zkfs.mdb is whole)",
               path);
        return ZK_ECORRUPT;
    }
    *sl = ok0 && (!ok1 || s0.seq > s1.seq) ? s0 : s1;
    *buf = b;
    return 0;
}

int zk__ckpt_restore(const char *dir, const char *store_path)
{
    size_t psize = (size_t)sysconf(_SC_PAGESIZE);
    uint8_t *buf = NULL, *cur = NULL;
    struct ck_slot sl;
    char boot[40];
    int rc = ckpt_read(dir, psize, &buf, &sl, 0);
    if (rc == -ENOENT)
        return 0;       /* a store from before checkpoints: synced whole */
    if (rc != 0)
        return rc;
    boot_id(boot);
    if (strcmp(boot, sl.boot) == 0 || (sl.flags & CK_CLEAN)) {
        /* Same boot: the page cache kept every write. A clean close: the
         * file was synced whole then (and a zkfs without checkpoints
         * that ran on it since synced every commit). */
        free(buf);
        return 0;
    }
    int fd = open(store_path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    cur = malloc(2 * psize);
    if (cur == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    rc = zk__pread_all(fd, cur, 2 * psize, 0);
    if (rc != 0)
        goto out;
    if (memcmp(cur, sl.pages, 2 * psize) == 0)
        goto out;       /* nothing was committed after it */
    /* The file was synced at the checkpoint, its meta pages only go
     * forward since, and the checkpoint's root page stays as it was: a
     * file older than the checkpoint, or with another page there, is not
     * the file it was taken of (a zkfs.mdb copied in by hand). */
    uint64_t newest = metas_newest(cur, psize);
    uint32_t crc;
    if ((meta_ok(cur) && meta_ok(cur + psize) && newest < sl.txnid) ||
        root_crc(fd, sl.pages, psize, &crc) != 0 || crc != sl.root_crc) {
        zk_log(ZK_LOG_ERROR, "store: %s is not the file its checkpoint %s/%s "
               "was taken of (copied in by hand?); refusing to start. If "
               "that zkfs.mdb is whole (copied from a zkfs that was stopped "
               "with zkfs umount), delete %s/%s and start again", store_path,
               dir, CK_FILE, dir, CK_FILE);
        rc = ZK_ECORRUPT;
        goto out;
    }
    zk_log(ZK_LOG_WARN, "store: %s: %s: the tree goes back to version %llu "
           "(applied %#llx) from %llu; the log holds what came after",
           store_path, strcmp(sl.boot, CK_BOOT_FAILED) == 0
               ? "a checkpoint failed" : "the system restarted since the "
               "last checkpoint", (unsigned long long)sl.txnid,
           (unsigned long long)sl.applied, (unsigned long long)newest);
    rc = zk__pwrite_all(fd, sl.pages, 2 * psize, 0);
    if (rc == 0 && fdatasync(fd) != 0)
        rc = -errno;
out:
    if (fd >= 0)
        close(fd);
    free(cur);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------ */
/* While open                                                          */
/* ------------------------------------------------------------------ */

/* Writer thread, under ck_mu, right after a commit: the file's meta
 * pages as that commit left them. */
int zk__ckpt_capture(struct zk_store *s, uint64_t txnid, uint64_t applied)
{
    struct zk__ckpt *c = &s->ck;
    if (!c->on)
        return 0;
    int rc = zk__pread_all(c->env_fd, c->cap, 2 * c->psize, 0);
    if (rc != 0)
        return rc;
    if (metas_newest(c->cap, c->psize) != txnid) {
        /* (checked at open: LMDB wrote its meta page elsewhere?) */
        zk_log(ZK_LOG_ERROR, "store: %s: meta page of commit %llu not "
               "found where expected", s->dir, (unsigned long long)txnid);
        return -EIO;
    }
    c->cap_txnid = txnid;
    c->cap_applied = applied;
    return 0;
}

int zk__ckpt_commit(struct zk_store *s, MDB_txn *t, uint64_t applied)
{
    uint64_t txnid = (uint64_t)mdb_txn_id(t);
    if (s->ck.inited)
        pthread_mutex_lock(&s->ck.mu);
    int rc = mdb_txn_commit(t);
    /* LMDB's own codes are negative like our -errno, and its commit may
     * return one (MDB_MAP_FULL: saving the freelist needs pages too): a
     * caller would take it for ours and hand it on (a FUSE reply of
     * -30792, which libfuse turns into ERANGE). A system errno (EIO,
     * ENOSPC: positive) is left to the caller (batch.c, commit_err). */
    if (rc < 0)
        rc = zk__mdb_err(rc, "commit");
    /* (also when it failed: a kept reader renews for nothing) */
    atomic_fetch_add_explicit(&s->commits, 1, memory_order_release);
    if (rc == 0)
        rc = zk__ckpt_capture(s, txnid, applied);
    if (s->ck.inited)
        pthread_mutex_unlock(&s->ck.mu);
    return rc;
}

/* After a failed checkpoint: the last good slot is written again with a
 * boot id that is never this boot's, so that the next open puts it back
 * whatever the boot (the system may have dropped pages it could not
 * write, and the page cache is then not to be trusted either). It goes
 * as the next seq into the other slot, the one the failed checkpoint
 * wrote or was to write: that slot may hold the failed version, whole
 * on the disk, whose pages are not (it would be the newest slot at the
 * next open), and a torn write of the marker leaves the good slot
 * itself as it was. Best effort: the disk is failing. Under io_mu. */
static void mark_failed(struct zk__ckpt *c)
{
    struct ck_slot sl;
    size_t sz = slot_size(c->psize);
    if (c->seq == 0 || slot_decode(c->gbuf, c->psize, &sl) != 0)
        return;
    sl.seq = c->seq + 1;
    sl.flags &= ~CK_CLEAN;      /* (a clean slot is never put back) */
    memset(sl.boot, 0, sizeof(sl.boot));
    snprintf(sl.boot, sizeof(sl.boot), "%s", CK_BOOT_FAILED);
    slot_encode(c->wbuf, c->psize, &sl);
    if (zk__pwrite_all(c->fd, c->wbuf, sz, sl.seq % 2 * sz) == 0)
        (void)fdatasync(c->fd);
}

/* One checkpoint of the newest commit (any thread; one at a time), with
 * slot flags (CK_CLEAN at close). After one failed, every later one
 * fails too: a sync that failed once may not say so again (Linux reports
 * a writeback error once per open file). */
static int ckpt_run(struct zk_store *s, uint32_t flags)
{
    struct zk__ckpt *c = &s->ck;
    if (!c->on)
        return mdb_env_sync(s->env, 1) == 0 ? 0 : -EIO;
    pthread_mutex_lock(&c->io_mu);
    int rc = -atomic_load_explicit(&c->err, memory_order_acquire);
    if (rc != 0) {
        pthread_mutex_unlock(&c->io_mu);
        return rc;
    }
    pthread_mutex_lock(&c->mu);
    if (c->cap_txnid == c->txnid && flags == c->flags) {
        pthread_mutex_unlock(&c->mu);
        pthread_mutex_unlock(&c->io_mu);
        return 0;
    }
    /* No commit can come before this reader: it shows the capture's
     * version, and from now on LMDB keeps that version's pages. */
    MDB_txn *rd = c->rd[c->cur ^ 1];
    rc = rd == NULL ? mdb_txn_begin(s->env, NULL, MDB_RDONLY, &rd)
                    : mdb_txn_renew(rd);
    if (rc == 0 && (uint64_t)mdb_txn_id(rd) != c->cap_txnid)
        rc = EIO;
    struct ck_slot sl = {.seq = c->seq + 1, .txnid = c->cap_txnid,
                         .applied = c->cap_applied, .flags = flags,
                         .pages = c->snap};
    memcpy(c->snap, c->cap, 2 * c->psize);
    pthread_mutex_unlock(&c->mu);
    if (rd != NULL)
        c->rd[c->cur ^ 1] = rd;
    if (rc != 0) {
        rc = zk__mdb_err(rc, "checkpoint reader");
        goto fail;
    }
    memcpy(sl.boot, c->boot, 40);
    rc = root_crc(c->env_fd, sl.pages, c->psize, &sl.root_crc);
    if (rc != 0)
        goto fail;
    slot_encode(c->wbuf, c->psize, &sl);
    size_t sz = slot_size(c->psize);
    rc = mdb_env_sync(s->env, 1) == 0 ? 0 : -EIO;
    if (c->fail_at != 0 &&
        atomic_load_explicit(&c->count, memory_order_relaxed) + 1 ==
            c->fail_at)
        rc = -EIO;
    if (rc == 0)
        rc = zk__pwrite_all(c->fd, c->wbuf, sz, sl.seq % 2 * sz);
    if (rc == 0 && fdatasync(c->fd) != 0)
        rc = -errno;
    if (rc != 0)
        goto fail;
    memcpy(c->gbuf, c->wbuf, sz);
    if (c->rd[c->cur] != NULL)
        mdb_txn_reset(c->rd[c->cur]);
    c->cur ^= 1;
    c->seq = sl.seq;
    c->txnid = sl.txnid;
    c->flags = flags;
    atomic_store_explicit(&c->last_ns, mono_ns(), memory_order_relaxed);
    atomic_store_explicit(&c->applied, sl.applied, memory_order_release);
    atomic_fetch_add_explicit(&c->count, 1, memory_order_relaxed);
    pthread_mutex_unlock(&c->io_mu);
    return 0;
fail:
    if (c->rd[c->cur ^ 1] != NULL)
        mdb_txn_reset(c->rd[c->cur ^ 1]);
    atomic_store_explicit(&c->err, rc < 0 ? -rc : EIO, memory_order_release);
    mark_failed(c);
    pthread_mutex_unlock(&c->io_mu);
    zk_log(ZK_LOG_ERROR, "store: %s: checkpoint failed: %s; no commit "
           "succeeds after it, and the next start goes back to the last "
           "checkpoint", s->dir, zk_strerror(rc < 0 ? rc : -EIO));
    return rc;
}

int zk__ckpt_unpin(struct zk_store *s)
{
    struct zk__ckpt *c = &s->ck;
    if (!c->on)
        return 0;
    pthread_mutex_lock(&c->io_mu);
    pthread_mutex_lock(&c->mu);
    int behind = c->txnid != c->cap_txnid;
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_unlock(&c->io_mu);
    if (!behind)
        return 0;
    zk_log(ZK_LOG_INFO, "store: %s: map full; a checkpoint lets the pages "
           "freed since the last one go", s->dir);
    return ckpt_run(s, 0) == 0;
}

int zk_store_map_unpin(struct zk_store *s)
{
    return zk__ckpt_unpin(s);
}

int zk__ckpt_run(struct zk_store *s)
{
    return ckpt_run(s, 0);
}

int zk_store_checkpoint(struct zk_store *s)
{
    return zk__ckpt_run(s);
}

static void *ckpt_main(void *arg)
{
    struct zk_store *s = arg;
    struct zk__ckpt *c = &s->ck;
    struct timespec ts;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->stop && c->cap_txnid == c->seen) {
            c->idle = 1;        /* only then does a commit wake it */
            pthread_cond_wait(&c->cond, &c->mu);
        }
        c->idle = 0;
        if (c->stop)
            break;
        /* Wait out the interval since the last checkpoint: the commits
         * made meanwhile go into the next one. */
        uint64_t due = atomic_load_explicit(&c->last_ns,
                                            memory_order_relaxed) +
                       c->interval_ns;
        uint64_t now = mono_ns();
        if (now >= due) {
            c->seen = c->cap_txnid;
            pthread_mutex_unlock(&c->mu);
            if (zk__ckpt_run(s) != 0)
                /* Not tried again: the next commit fails (c->err). */
                atomic_store_explicit(&c->last_ns, mono_ns(),
                                      memory_order_relaxed);
            pthread_mutex_lock(&c->mu);
            continue;
        }
        if (c->trickle_ns != 0 && c->cap_txnid != c->trickled &&
            now >= c->trickled_ns + c->trickle_ns) {
            /* Meanwhile the commits' pages start on their way to the
             * disk, so that the checkpoint's sync finds few left: a
             * writer's log sync then does not wait behind a burst. */
            c->trickled = c->cap_txnid;
            c->trickled_ns = now;
            pthread_mutex_unlock(&c->mu);
            sync_file_range(c->env_fd, 0, 0, SYNC_FILE_RANGE_WRITE);
            pthread_mutex_lock(&c->mu);
        }
        /* A look every trickle_ns while a checkpoint is due (commits
         * do not wake the thread then). */
        now = mono_ns();
        uint64_t wake = due;
        if (c->trickle_ns != 0 && now + c->trickle_ns < wake)
            wake = now + c->trickle_ns;
        if (wake <= now)
            continue;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t t = (uint64_t)ts.tv_sec * 1000000000u +
                     (uint64_t)ts.tv_nsec + (wake - now);
        ts.tv_sec = (time_t)(t / 1000000000u);
        ts.tv_nsec = (long)(t % 1000000000u);
        pthread_cond_timedwait(&c->cond, &c->mu, &ts);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

void zk__ckpt_poke(struct zk_store *s)
{
    struct zk__ckpt *c = &s->ck;
    if (!c->on || !c->thread_on)
        return;
    pthread_mutex_lock(&c->mu);
    if (c->idle)            /* (waiting for a commit: not for a time) */
        pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->mu);
}

/* Right after LMDB is open, before any commit: checks that the meta
 * pages are where this file expects them, opens zkfs.ckpt, takes the
 * first checkpoint of the file as it is (after a crash of the process
 * alone, the page cache's version: from now on on the disk too, and its
 * pages kept from reuse), turns LMDB's syncs off and starts the
 * background thread. */
int zk__ckpt_start(struct zk_store *s, uint64_t interval_ms,
                   uint64_t trickle_us)
{
    struct zk__ckpt *c = &s->ck;
    MDB_envinfo info;
    char path[PATH_MAX];
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->io_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &ca);
    pthread_condattr_destroy(&ca);
    c->inited = 1;
    c->fd = -1;
    c->psize = (size_t)sysconf(_SC_PAGESIZE);
    c->interval_ns = interval_ms * 1000000u;
    c->trickle_ns = trickle_us * 1000u;
    /* Tests: the sync of the Nth checkpoint (counted from this open)
     * fails with EIO, as a failing disk's would. */
    const char *f = getenv("ZKFS_TEST_CHECKPOINT_FAIL");
    c->fail_at = f != NULL ? strtoull(f, NULL, 10) : 0;
    boot_id(c->boot);
    if (mdb_env_get_fd(s->env, &c->env_fd) != 0 ||
        mdb_env_info(s->env, &info) != 0)
        return -EIO;
    c->cap = malloc(2 * c->psize);
    c->snap = malloc(2 * c->psize);
    c->wbuf = malloc(slot_size(c->psize));
    c->gbuf = malloc(slot_size(c->psize));
    if (c->cap == NULL || c->snap == NULL || c->wbuf == NULL ||
        c->gbuf == NULL)
        return -ENOMEM;
    c->on = 1;
    /* (last_applied 0: the log is not trimmed before a commit's own.) */
    int rc = zk__ckpt_capture(s, (uint64_t)info.me_last_txnid, 0);
    if (rc != 0) {
        c->on = 0;
        zk_log(ZK_LOG_WARN, "store: %s: LMDB's meta pages are not where "
               "zkfs looks for them: no checkpoints, every commit synced",
               s->dir);
        return 0;
    }
    /* zkfs.ckpt exists whole (restore read it), or is made as
     * zkfs.ckpt.tmp with its first slot and renamed into place, the
     * directory synced: never a zkfs.ckpt without a whole slot. */
    char tmp[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", s->dir, CK_FILE) >=
            (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/%s", s->dir, CK_TMP) >=
            (int)sizeof(tmp))
        return -ENAMETOOLONG;
    unlink(tmp);
    int fresh = 0;
    c->fd = open(path, O_RDWR | O_CLOEXEC);
    if (c->fd < 0 && errno == ENOENT) {
        fresh = 1;
        c->fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (c->fd >= 0) {
            rc = posix_fallocate(c->fd, 0, (off_t)(2 * slot_size(c->psize)));
            if (rc != 0)
                return -rc;
        }
    }
    if (c->fd < 0)
        return -errno;
    uint8_t *old = NULL;
    struct ck_slot sl;
    if (!fresh && ckpt_read(s->dir, c->psize, &old, &sl, 1) == 0) {
        c->seq = sl.seq;
        slot_encode(c->gbuf, c->psize, &sl);  /* (mark_failed's) */
        free(old);
    }
    c->txnid = UINT64_MAX;      /* (the first run always writes) */
    rc = zk__ckpt_run(s);
    if (rc != 0)
        return rc;
    if (fresh && rename(tmp, path) != 0)
        return -errno;
    /* The directory is synced at every open, not only after the rename:
     * a process killed between its rename and its sync left a zkfs.ckpt
     * that a power cut could still take away, and the next open, finding
     * it, would not sync again (then a later open would take the LMDB
     * file, written without syncs, for whole). */
    rc = zk__sync_dir_path(s->dir);
    if (rc != 0)
        return rc;
    /* From here on a commit is not synced: its pages and meta page are
     * written, and the next checkpoint syncs them. */
    if (mdb_env_set_flags(s->env, MDB_NOSYNC, 1) != 0)
        return -EIO;
    if (pthread_create(&c->thread, NULL, ckpt_main, s) != 0)
        return -EAGAIN;
    c->thread_on = 1;
    return 0;
}

/* Close: the thread stopped, a last checkpoint (the next open in this
 * boot or another finds the newest version whole), the readers let go. */
int zk__ckpt_stop(struct zk_store *s)
{
    struct zk__ckpt *c = &s->ck;
    int rc = 0;
    if (!c->inited)
        return 0;
    if (c->thread_on) {
        pthread_mutex_lock(&c->mu);
        c->stop = 1;
        pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL);
        c->thread_on = 0;
    }
    /* Marked clean: the next open puts nothing back, whatever the boot
     * (nothing is written after it; a zkfs without checkpoints that
     * runs on the store syncs every commit). Not after a failed one. */
    if (c->on && c->fd >= 0)
        rc = ckpt_run(s, CK_CLEAN);
    else if (s->env != NULL)
        mdb_env_sync(s->env, 1);
    for (int i = 0; i < 2; i++)
        if (c->rd[i] != NULL)
            mdb_txn_abort(c->rd[i]);
    if (c->fd >= 0)
        close(c->fd);
    free(c->cap);
    free(c->snap);
    free(c->wbuf);
    free(c->gbuf);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->io_mu);
    memset(c, 0, sizeof(*c));
    return rc;
}
