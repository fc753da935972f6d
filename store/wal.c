/*
 * wal.c — the proposal log: a write-ahead log of its own in DIR/zkfs-wal/,
 * beside the LMDB tree (docs/formats.md, "The write-ahead log").
 *
 * Segment files "GGGGGGGGGGGGGGGG-SSSSSSSSSSSSSSSS.wal" (generation and
 * sequence number, hex) are preallocated: made under a ".tmp" name,
 * written with zeros to their full size, synced and renamed into place.
 * Records are appended into the zeros with pwrite, and a batch costs one
 * fdatasync (two when it crosses into a new segment): the file's size and
 * blocks never change after it is made, so there is no metadata to write.
 *
 * What it keeps true: a record is in the index (and so visible to readers
 * and counted as logged) only once it is durable (written, in a log
 * without sync); zxids increase along the log; at open the log ends at
 * the first record that is not whole (its checksum fails, it runs past
 * the segment, or its zxid does not increase) or that is missing (zeros
 * where bytes follow: the page cache wrote a later page of the batch and
 * not this one), and everything after it is zeroed or deleted, durably,
 * before anything new is written, so a record that was never acknowledged
 * cannot come back after a later crash. Without sync every segment but
 * the last is durable whole (it is synced when it is full), so the log
 * that opening finds never has a hole: it may only end earlier. Segments of another generation than the
 * store's belong to a replaced log (a snapshot install or a migration
 * that did not finish, or did) and are deleted at open.
 */
#include "wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "zk_common.h"

#define WAL_MAGIC      "zkfswal1"
#define WAL_ZERO_CHUNK (1u << 20)   /* bytes of zeros written per pwrite */

struct seg {
    uint64_t seq;
    int fd;
    uint64_t size;      /* file size, fixed when made                 */
    uint64_t end;       /* offset just past the last record           */
};

struct ent {
    uint64_t zxid, seq, off;   /* off: the record's header           */
    uint32_t len;              /* payload bytes                      */
};

struct zk__wal {
    pthread_mutex_t mu;        /* segs, ents (readers and the writer) */
    char dir[PATH_MAX];
    int dirfd;
    uint64_t gen, seg_bytes;
    int err;                   /* a failed write: every later one fails */
    int nosync;                /* appends not synced (zk__wal_set_sync) */
    struct seg *segs;
    size_t nsegs, capsegs;
    struct ent *ents;          /* ents[head .. head + n)              */
    size_t head, n, cap;
    uint8_t *buf;              /* the writer's encoding buffer        */
    size_t bufcap;
    struct zk__wal_cut cut;
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static uint32_t rec_crc(const uint8_t *hdr, const uint8_t *payload,
                        uint32_t len)
{
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, hdr, 12);
    return (uint32_t)crc32(c, payload, len);
}

static void rec_encode(uint8_t *p, const struct zk__wal_rec *r)
{
    zk_put_be64(p, r->zxid);
    zk_put_be32(p + 8, r->len);
    memcpy(p + ZK__WAL_REC_HDR, r->payload, r->len);
    zk_put_be32(p + 12, rec_crc(p, p + ZK__WAL_REC_HDR, r->len));
}

/* pwrite (writing) or pread of all len bytes at off; a short transfer
 * goes on, end of file is -EIO. */
static int io_all(int fd, void *buf, size_t len, uint64_t off, int writing)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t k = writing ? pwrite(fd, p, len, (off_t)off)
                            : pread(fd, p, len, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? -errno : -EIO;
        p += k;
        len -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

int zk__sync_dir_path(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd >= 0 && fsync(fd) == 0 ? 0 : -errno;
    if (fd >= 0)
        close(fd);
    return rc;
}

int zk__pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    return io_all(fd, (void *)buf, len, off, 1);
}

int zk__pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    return io_all(fd, buf, len, off, 0);
}

static int zero_range(int fd, uint64_t from, uint64_t to)
{
    static const uint8_t zeros[WAL_ZERO_CHUNK];
    int rc = 0;
    while (rc == 0 && from < to) {
        size_t k = to - from < sizeof(zeros) ? (size_t)(to - from)
                                             : sizeof(zeros);
        rc = zk__pwrite_all(fd, zeros, k, from);
        from += k;
    }
    return rc;
}

static int wal_fail(struct zk__wal *w, int rc, const char *what)
{
    zk_log(ZK_LOG_ERROR, "store: write-ahead log %s: %s: %s", w->dir, what,
           zk_strerror(rc));
    if (w->err == 0)
        w->err = rc;
    return rc;
}

static void seg_name(char *buf, size_t size, uint64_t gen, uint64_t seq,
                     const char *ext)
{
    snprintf(buf, size, "%016" PRIx64 "-%016" PRIx64 ".%s", gen, seq, ext);
}

static int sync_dir(struct zk__wal *w)
{
    return fsync(w->dirfd) == 0 ? 0 : -errno;
}

static struct seg *seg_find(struct zk__wal *w, uint64_t seq)
{
    size_t lo = 0, hi = w->nsegs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (w->segs[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < w->nsegs && w->segs[lo].seq == seq ? &w->segs[lo] : NULL;
}

/* Index of the first entry with zxid > z (n when none). */
static size_t ent_upper(struct zk__wal *w, uint64_t z)
{
    size_t lo = 0, hi = w->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (w->ents[w->head + mid].zxid <= z)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int ent_push(struct zk__wal *w, const struct ent *e)
{
    if (w->head + w->n == w->cap) {
        if (w->head > 0) {
            memmove(w->ents, w->ents + w->head, w->n * sizeof(*w->ents));
            w->head = 0;
        }
        if (w->n == w->cap) {
            size_t cap = w->cap ? w->cap * 2 : 1024;
            struct ent *p = realloc(w->ents, cap * sizeof(*p));
            if (p == NULL)
                return -ENOMEM;
            w->ents = p;
            w->cap = cap;
        }
    }
    w->ents[w->head + w->n++] = *e;
    return 0;
}

static int seg_push(struct zk__wal *w, const struct seg *sg)
{
    if (w->nsegs == w->capsegs) {
        size_t cap = w->capsegs ? w->capsegs * 2 : 8;
        struct seg *p = realloc(w->segs, cap * sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        w->segs = p;
        w->capsegs = cap;
    }
    w->segs[w->nsegs++] = *sg;
    return 0;
}

/* Deletes segment sg's file and closes it; -errno (logged) when the
 * file cannot be deleted: then it stays open. */
static int seg_unlink(struct zk__wal *w, struct seg *sg)
{
    char name[64];
    seg_name(name, sizeof(name), w->gen, sg->seq, "wal");
    if (unlinkat(w->dirfd, name, 0) != 0) {
        int err = -errno;
        zk_log(ZK_LOG_WARN, "store: cannot delete %s/%s: %s", w->dir, name,
               strerror(-err));
        return err;
    }
    close(sg->fd);
    return 0;
}

/* Closes and deletes segments [from, nsegs), the last one first. With
 * durable, the directory is synced after each deletion, and the first
 * deletion or sync that fails stops it (the segments not deleted stay,
 * and the error is returned): the log's segments from the first on then
 * never have a gap (a truncation that removed a middle segment durably
 * but not a later one would leave records after a hole, which open would
 * take as the log; without a journal, or between two journal commits,
 * deletions reach the disk in any order). Without durable (a whole
 * generation thrown away), every one is tried. */
static int segs_drop_tail(struct zk__wal *w, size_t from, int durable)
{
    while (w->nsegs > from) {
        struct seg *sg = &w->segs[w->nsegs - 1];
        int rc = seg_unlink(w, sg);
        if (rc != 0 && durable)
            return rc;
        if (rc != 0)
            close(sg->fd);
        w->nsegs--;
        if (durable && (rc = sync_dir(w)) != 0)
            return rc;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Segments                                                            */
/* ------------------------------------------------------------------ */

/* Makes segment seq of size bytes: header, zeros, synced, renamed into
 * place, directory synced. */
static int seg_create(struct zk__wal *w, uint64_t seq, uint64_t size,
                      struct seg *out)
{
    char tmp[64], name[64];
    uint8_t h[ZK__WAL_SEG_HDR] = {0};
    seg_name(tmp, sizeof(tmp), w->gen, seq, "tmp");
    seg_name(name, sizeof(name), w->gen, seq, "wal");
    int fd = openat(w->dirfd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
                    0600);
    if (fd < 0)
        return -errno;
    memcpy(h, WAL_MAGIC, 8);
    zk_put_be64(h + 8, w->gen);
    zk_put_be64(h + 16, seq);
    zk_put_be32(h + 24, (uint32_t)crc32(0L, h, 24));
    int rc = zk__pwrite_all(fd, h, sizeof(h), 0);
    if (rc == 0)
        rc = zero_range(fd, sizeof(h), size);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (rc == 0 && renameat(w->dirfd, tmp, w->dirfd, name) != 0)
        rc = -errno;
    if (rc == 0)
        rc = sync_dir(w);
    if (rc != 0) {
        close(fd);
        unlinkat(w->dirfd, tmp, 0);
        return rc;
    }
    *out = (struct seg){.seq = seq, .fd = fd, .size = size,
                        .end = ZK__WAL_SEG_HDR};
    return 0;
}

/* Checks the record at p (avail bytes to the segment's end) after prev:
 * its payload length, or -1 if it is not a whole record. */
static int64_t rec_check(const uint8_t *p, uint64_t avail, uint64_t prev)
{
    if (avail < ZK__WAL_REC_HDR)
        return -1;
    uint64_t zxid = zk_get_be64(p);
    uint32_t len = zk_get_be32(p + 8);
    if (zxid <= prev || len > avail - ZK__WAL_REC_HDR ||
        zk_get_be32(p + 12) != rec_crc(p, p + ZK__WAL_REC_HDR, len))
        return -1;
    return len;
}

/* Reads segment file sg (opened) whole into *data. */
static int seg_load(struct seg *sg, uint64_t gen, uint8_t **data)
{
    struct stat st;
    if (fstat(sg->fd, &st) != 0)
        return -errno;
    sg->size = (uint64_t)st.st_size;
    if (sg->size < ZK__WAL_SEG_HDR)
        return ZK_ECORRUPT;
    uint8_t *p = malloc(sg->size);
    if (p == NULL)
        return -ENOMEM;
    int rc = zk__pread_all(sg->fd, p, sg->size, 0);
    if (rc == 0 && (memcmp(p, WAL_MAGIC, 8) != 0 ||
                    zk_get_be64(p + 8) != gen ||
                    zk_get_be64(p + 16) != sg->seq ||
                    zk_get_be32(p + 24) != (uint32_t)crc32(0L, p, 24)))
        rc = ZK_ECORRUPT;
    if (rc != 0) {
        free(p);
        return rc;
    }
    *data = p;
    return 0;
}

static int all_zero(const uint8_t *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

/* Indexes sg's records after *prev; returns 1 if the segment ends in a
 * bad record (cut there: w->cut), 0 if it ends in zeros. A zero zxid
 * with bytes after it is a missing record (a batch torn by a crash, or
 * an unsynced page lost): cut there too, so that those bytes are zeroed
 * before a later append could end next to them and make them look like
 * its successors. */
static int seg_index(struct zk__wal *w, struct seg *sg, const uint8_t *p,
                     uint64_t *prev, int *err)
{
    uint64_t off = ZK__WAL_SEG_HDR;
    *err = 0;
    for (;;) {
        if (off + 8 > sg->size ||
            (zk_get_be64(p + off) == 0 && all_zero(p + off, sg->size - off))) {
            sg->end = off;
            return 0;
        }
        int64_t len = rec_check(p + off, sg->size - off, *prev);
        if (len < 0)
            break;
        struct ent e = {zk_get_be64(p + off), sg->seq, off, (uint32_t)len};
        if ((*err = ent_push(w, &e)) != 0)
            return 0;
        *prev = e.zxid;
        off += ZK__WAL_REC_HDR + (uint64_t)len;
    }
    sg->end = off;
    w->cut = (struct zk__wal_cut){.seq = sg->seq, .off = off, .cut = 1};
    /* Whole records after the bad one: corruption, not a torn batch. */
    if (off + ZK__WAL_REC_HDR > sg->size)
        return 1;
    uint32_t blen = zk_get_be32(p + off + 8);
    uint64_t o2 = off + ZK__WAL_REC_HDR + blen, pz = *prev;
    while (blen <= sg->size - off && o2 < sg->size) {
        int64_t l2 = rec_check(p + o2, sg->size - o2, pz);
        if (l2 < 0)
            break;
        w->cut.dropped_records++;
        pz = zk_get_be64(p + o2);
        o2 += ZK__WAL_REC_HDR + (uint64_t)l2;
    }
    return 1;
}

/* ------------------------------------------------------------------ */
/* Open and close                                                      */
/* ------------------------------------------------------------------ */

static int seq_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The sequence numbers of generation gen's segments, sorted; other
 * generations' segments and unfinished ".tmp" files deleted with prune. */
static int list_segs(struct zk__wal *w, int prune, uint64_t **out, size_t *n)
{
    DIR *d = fdopendir(dup(w->dirfd));
    if (d == NULL)
        return -errno;
    uint64_t *seqs = NULL;
    size_t cnt = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        unsigned long long g, q;
        char ext[8];
        if (sscanf(e->d_name, "%16llx-%16llx.%7s", &g, &q, ext) != 3)
            continue;
        if (g == w->gen && strcmp(ext, "wal") == 0) {
            if (cnt == cap) {
                cap = cap ? cap * 2 : 16;
                uint64_t *p = realloc(seqs, cap * sizeof(*p));
                if (p == NULL) {
                    rc = -ENOMEM;
                    break;
                }
                seqs = p;
            }
            seqs[cnt++] = q;
        } else if (prune && unlinkat(w->dirfd, e->d_name, 0) == 0) {
            zk_log(ZK_LOG_INFO, "store: deleted %s/%s (not this log's)",
                   w->dir, e->d_name);
        }
    }
    closedir(d);
    if (rc != 0) {
        free(seqs);
        return rc;
    }
    if (cnt > 1)
        qsort(seqs, cnt, sizeof(*seqs), seq_cmp);
    *out = seqs;
    *n = cnt;
    return 0;
}

/* Loads every listed segment; a bad one or a bad record ends the log. */
static int load_segs(struct zk__wal *w, const uint64_t *seqs, size_t cnt,
                     size_t *cut_at)
{
    uint64_t prev = 0;
    *cut_at = cnt;
    for (size_t i = 0; i < cnt; i++) {
        char name[64];
        uint8_t *data = NULL;
        int err = 0;
        seg_name(name, sizeof(name), w->gen, seqs[i], "wal");
        struct seg sg = {.seq = seqs[i]};
        sg.fd = openat(w->dirfd, name, O_RDWR | O_CLOEXEC);
        if (sg.fd < 0)
            return -errno;
        int rc = seg_load(&sg, w->gen, &data);
        if (rc == ZK_ECORRUPT) {       /* a bad header: the log ends here */
            close(sg.fd);
            w->cut = (struct zk__wal_cut){.seq = sg.seq, .cut = 1};
            *cut_at = i;
            return 0;
        }
        if (rc == 0)
            rc = seg_push(w, &sg);
        if (rc != 0) {
            free(data);
            close(sg.fd);
            return rc;
        }
        int bad = seg_index(w, &w->segs[w->nsegs - 1], data, &prev, &err);
        free(data);
        if (err != 0)
            return err;
        if (bad) {
            *cut_at = i + 1;
            return 0;
        }
    }
    return 0;
}

/* Makes the cut found at open durable: later segments deleted (the
 * directory synced), the rest of the last one zeroed and synced. */
static int apply_cut(struct zk__wal *w, const uint64_t *seqs, size_t cnt,
                     size_t cut_at)
{
    char name[64];
    int rc = 0;
    for (size_t i = cnt; i > cut_at; i--) {  /* the last first: no gap */
        seg_name(name, sizeof(name), w->gen, seqs[i - 1], "wal");
        if (unlinkat(w->dirfd, name, 0) != 0 && errno != ENOENT)
            return -errno;
        if ((rc = sync_dir(w)) != 0)
            return rc;
    }
    if (w->cut.cut && w->nsegs > 0 &&
        w->segs[w->nsegs - 1].seq == w->cut.seq) {
        struct seg *sg = &w->segs[w->nsegs - 1];
        rc = zero_range(sg->fd, sg->end, sg->size);
        if (rc == 0 && fdatasync(sg->fd) != 0)
            rc = -errno;
    }
    if (w->cut.cut && w->cut.dropped_records == 0)
        zk_log(ZK_LOG_WARN, "store: write-ahead log %s: cut at segment %"
               PRIu64 " offset %" PRIu64 ": the end of a batch that was "
               "being written or not synced (never acknowledged)", w->dir,
               w->cut.seq, w->cut.off);
    else if (w->cut.cut)
        zk_log(ZK_LOG_ERROR, "store: write-ahead log %s: damaged at segment "
               "%" PRIu64 " offset %" PRIu64 ", cut there: %" PRIu64 " whole "
               "records after it are dropped (this replica syncs them again "
               "from the ensemble's leader)", w->dir, w->cut.seq, w->cut.off,
               w->cut.dropped_records);
    return rc;
}

static int wal_dir_open(struct zk__wal *w, const char *dir)
{
    if (snprintf(w->dir, sizeof(w->dir), "%s/%s", dir, ZK__WAL_DIR) >=
        (int)sizeof(w->dir))
        return -ENAMETOOLONG;
    if (mkdir(w->dir, 0700) != 0 && errno != EEXIST)
        return -errno;
    /* Both directories are synced at every open, not only after the
     * mkdir or a segment's rename: a process killed between one of those
     * and its sync left entries a power cut could still take away (a
     * segment whose records were synced and acknowledged among them),
     * and the next open, finding them, would not sync them again. */
    int rc = zk__sync_dir_path(dir);
    if (rc != 0)
        return rc;
    w->dirfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dirfd < 0)
        return -errno;
    return sync_dir(w);
}

int zk__wal_open(const char *dir, uint64_t gen, uint64_t seg_bytes,
                 int prune, struct zk__wal **out)
{
    struct zk__wal *w = calloc(1, sizeof(*w));
    uint64_t *seqs = NULL;
    size_t cnt = 0, cut_at = 0;
    if (w == NULL)
        return -ENOMEM;
    pthread_mutex_init(&w->mu, NULL);
    w->gen = gen;
    w->seg_bytes = seg_bytes < ZK__WAL_SEG_MIN ? ZK__WAL_SEG_MIN : seg_bytes;
    w->dirfd = -1;
    int rc = wal_dir_open(w, dir);
    if (rc == 0)
        rc = list_segs(w, prune, &seqs, &cnt);
    if (rc == 0)
        rc = load_segs(w, seqs, cnt, &cut_at);
    if (rc == 0)
        rc = apply_cut(w, seqs, cnt, cut_at);
    /* What was read back may be in the page cache only: a process killed
     * in its fdatasync left records that pass their checksums but were
     * never made durable (nor acknowledged). They count as logged from
     * now on, so they are made durable first. */
    for (size_t i = 0; rc == 0 && i < w->nsegs; i++)
        if (fdatasync(w->segs[i].fd) != 0)
            rc = -errno;
    if (rc == 0 && w->nsegs == 0) {
        struct seg sg;
        rc = seg_create(w, cnt ? seqs[cnt - 1] + 1 : 0, w->seg_bytes, &sg);
        if (rc == 0 && (rc = seg_push(w, &sg)) != 0)
            close(sg.fd);
    }
    free(seqs);
    if (rc != 0) {
        zk_log(ZK_LOG_ERROR, "store: cannot open the write-ahead log %s: %s",
               w->dir, zk_strerror(rc));
        zk__wal_close(w);
        return rc;
    }
    *out = w;
    return 0;
}

void zk__wal_close(struct zk__wal *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->nsegs; i++)
        close(w->segs[i].fd);
    if (w->dirfd >= 0)
        close(w->dirfd);
    pthread_mutex_destroy(&w->mu);
    free(w->segs);
    free(w->ents);
    free(w->buf);
    free(w);
}

void zk__wal_destroy(struct zk__wal *w)
{
    if (w == NULL)
        return;
    segs_drop_tail(w, 0, 0);
    zk__wal_close(w);
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

static int buf_reserve(struct zk__wal *w, size_t len)
{
    if (len <= w->bufcap)
        return 0;
    size_t cap = w->bufcap ? w->bufcap : 65536;
    while (cap < len)
        cap *= 2;
    uint8_t *p = realloc(w->buf, cap);
    if (p == NULL)
        return -ENOMEM;
    w->buf = p;
    w->bufcap = cap;
    return 0;
}

/* Opens a new last segment big enough for a record of len bytes. The
 * full one is durable first (already, unless the log has no sync): a
 * power cut may then only shorten the last segment, never leave a hole
 * in front of a later one. */
static int roll(struct zk__wal *w, uint32_t len)
{
    uint64_t need = ZK__WAL_SEG_HDR + ZK__WAL_REC_HDR + (uint64_t)len;
    struct seg sg;
    if (w->nosync && fdatasync(w->segs[w->nsegs - 1].fd) != 0)
        return wal_fail(w, -errno, "fdatasync");
    int rc = seg_create(w, w->segs[w->nsegs - 1].seq + 1,
                        need > w->seg_bytes ? need : w->seg_bytes, &sg);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&w->mu);
    rc = seg_push(w, &sg);
    pthread_mutex_unlock(&w->mu);
    if (rc != 0)
        close(sg.fd);
    return rc;
}

/* Writes and syncs recs[0..n) that fit in the last segment, then indexes
 * them; *done says how many. */
static int append_seg(struct zk__wal *w, const struct zk__wal_rec *recs,
                      size_t n, size_t *done)
{
    struct seg *sg = &w->segs[w->nsegs - 1];
    uint64_t room = sg->size - sg->end, bytes = 0;
    size_t k = 0;
    while (k < n && ZK__WAL_REC_HDR + (uint64_t)recs[k].len <= room - bytes)
        bytes += ZK__WAL_REC_HDR + recs[k++].len;
    *done = k;
    if (k == 0)
        return 0;
    int rc = buf_reserve(w, (size_t)bytes);
    if (rc != 0)
        return rc;
    for (size_t i = 0, o = 0; i < k; o += ZK__WAL_REC_HDR + recs[i++].len)
        rec_encode(w->buf + o, &recs[i]);
    rc = zk__pwrite_all(sg->fd, w->buf, (size_t)bytes, sg->end);
    if (rc != 0)
        return wal_fail(w, rc, "append");
    if (!w->nosync && fdatasync(sg->fd) != 0)
        return wal_fail(w, -errno, "fdatasync");
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < k && rc == 0; i++) {
        struct ent e = {recs[i].zxid, sg->seq, sg->end, recs[i].len};
        rc = ent_push(w, &e);
        sg->end += ZK__WAL_REC_HDR + recs[i].len;
    }
    pthread_mutex_unlock(&w->mu);
    return rc == 0 ? 0 : wal_fail(w, rc, "index");
}

int zk__wal_append(struct zk__wal *w, const struct zk__wal_rec *recs,
                   size_t n)
{
    if (w->err != 0)
        return w->err;
    while (n > 0) {
        size_t done = 0;
        int rc = append_seg(w, recs, n, &done);
        if (rc == 0 && done == 0)
            rc = roll(w, recs[0].len);
        if (rc != 0)
            return rc;
        recs += done;
        n -= done;
    }
    return 0;
}

void zk__wal_set_sync(struct zk__wal *w, int sync)
{
    w->nosync = !sync;
}

uint64_t zk__wal_room(struct zk__wal *w)
{
    uint64_t room = 0;

    pthread_mutex_lock(&w->mu);
    if (w->nsegs > 0)
        room = w->segs[w->nsegs - 1].size - w->segs[w->nsegs - 1].end;
    pthread_mutex_unlock(&w->mu);
    return room;
}

int zk__wal_truncate(struct zk__wal *w, uint64_t after)
{
    if (w->err != 0)
        return w->err;
    pthread_mutex_lock(&w->mu);
    size_t k = ent_upper(w, after);
    int rc = 0;
    if (k < w->n) {
        struct ent e = w->ents[w->head + k];
        struct seg *sg = seg_find(w, e.seq);
        ZK_ASSERT(sg != NULL);
        size_t i = (size_t)(sg - w->segs);
        if (i + 1 < w->nsegs)
            rc = segs_drop_tail(w, i + 1, 1);
        if (rc == 0)
            rc = zero_range(sg->fd, e.off, sg->end);
        if (rc == 0 && fdatasync(sg->fd) != 0)
            rc = -errno;
        sg->end = e.off;
        w->n = k;
    }
    pthread_mutex_unlock(&w->mu);
    return rc == 0 ? 0 : wal_fail(w, rc, "truncate");
}

/* Bytes of the segments from the one of the oldest record on. */
static uint64_t live_bytes(const struct zk__wal *w)
{
    uint64_t b = 0;
    for (size_t i = 0; i < w->nsegs; i++)
        if (w->n == 0 || w->segs[i].seq >= w->ents[w->head].seq)
            b += w->segs[i].size;
    return b;
}

void zk__wal_trim(struct zk__wal *w, uint64_t upto, uint64_t keep,
                  uint64_t keep_bytes)
{
    pthread_mutex_lock(&w->mu);
    size_t k = ent_upper(w, upto);
    if (k > keep) {
        w->head += k - keep;
        w->n -= k - keep;
        k = keep;
    }
    /* Large records: whole segments of them go while what is kept spans
     * more than keep_bytes (a follower further behind gets a snapshot
     * instead of the log). Only records at or below upto. */
    while (k > 0 && live_bytes(w) > keep_bytes) {
        uint64_t seq = w->ents[w->head].seq;
        while (k > 0 && w->ents[w->head].seq == seq) {
            w->head++;
            w->n--;
            k--;
        }
    }
    size_t drop = 0;            /* whole segments before the first entry */
    while (drop + 1 < w->nsegs &&
           (w->n == 0 || w->segs[drop].seq < w->ents[w->head].seq))
        drop++;
    /* The oldest first, each deletion synced before the next: a crash in
     * the middle must not leave an older segment without the one after it
     * (its records and the next segment's would read as one log with a
     * hole; deletions reach the disk in any order otherwise). */
    for (size_t i = 0; i < drop; i++) {
        if (seg_unlink(w, &w->segs[i]) != 0) {
            drop = i;           /* it and the later ones: the next trim */
            break;
        }
        if (sync_dir(w) != 0) {
            zk_log(ZK_LOG_WARN, "store: cannot sync %s: %s (the later "
                   "segments stay until the next trim)", w->dir,
                   strerror(errno));
            drop = i + 1;
        }
    }
    if (drop > 0) {
        memmove(w->segs, w->segs + drop, (w->nsegs - drop) * sizeof(*w->segs));
        w->nsegs -= drop;
    }
    pthread_mutex_unlock(&w->mu);
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */
/* ------------------------------------------------------------------ */

uint64_t zk__wal_last_upto(struct zk__wal *w, uint64_t at)
{
    pthread_mutex_lock(&w->mu);
    size_t k = ent_upper(w, at);
    uint64_t z = k > 0 ? w->ents[w->head + k - 1].zxid : 0;
    pthread_mutex_unlock(&w->mu);
    return z;
}

void zk__wal_bounds(struct zk__wal *w, uint64_t *first, uint64_t *last)
{
    pthread_mutex_lock(&w->mu);
    *first = w->n ? w->ents[w->head].zxid : 0;
    *last = w->n ? w->ents[w->head + w->n - 1].zxid : 0;
    pthread_mutex_unlock(&w->mu);
}

/* Reads entry e's record into p (e->len + header bytes) and checks it. */
static int ent_read(struct zk__wal *w, const struct ent *e, uint8_t *p)
{
    struct seg *sg = seg_find(w, e->seq);
    if (sg == NULL)
        return ZK_ECORRUPT;
    int rc = zk__pread_all(sg->fd, p, ZK__WAL_REC_HDR + e->len, e->off);
    if (rc != 0)
        return rc;
    if (rec_check(p, ZK__WAL_REC_HDR + e->len, 0) != e->len ||
        zk_get_be64(p) != e->zxid) {
        zk_log(ZK_LOG_ERROR, "store: write-ahead log %s: record %#" PRIx64
               " no longer matches its checksum", w->dir, e->zxid);
        return ZK_ECORRUPT;
    }
    return 0;
}

int zk__wal_get(struct zk__wal *w, uint64_t zxid, uint8_t **buf,
                size_t *len)
{
    pthread_mutex_lock(&w->mu);
    size_t k = ent_upper(w, zxid);
    int rc = -ENOENT;
    if (k > 0 && w->ents[w->head + k - 1].zxid == zxid) {
        struct ent e = w->ents[w->head + k - 1];
        uint8_t *p = malloc(ZK__WAL_REC_HDR + e.len);
        rc = p ? ent_read(w, &e, p) : -ENOMEM;
        if (rc == 0) {
            memmove(p, p + ZK__WAL_REC_HDR, e.len);
            *buf = p;
            *len = e.len;
        } else {
            free(p);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int zk__wal_scan(struct zk__wal *w, uint64_t after, zk__wal_cb cb, void *arg)
{
    uint8_t *p = NULL;
    size_t cap = 0;
    int rc = 0;
    pthread_mutex_lock(&w->mu);
    for (size_t k = ent_upper(w, after); rc == 0 && k < w->n; k++) {
        struct ent e = w->ents[w->head + k];
        if (ZK__WAL_REC_HDR + e.len > cap) {
            uint8_t *q = realloc(p, ZK__WAL_REC_HDR + e.len);
            if (q == NULL) {
                rc = -ENOMEM;
                break;
            }
            p = q;
            cap = ZK__WAL_REC_HDR + e.len;
        }
        rc = ent_read(w, &e, p);
        if (rc == 0)
            rc = cb(arg, e.zxid, p + ZK__WAL_REC_HDR, e.len);
    }
    pthread_mutex_unlock(&w->mu);
    free(p);
    return rc;
}

void zk__wal_cut_info(struct zk__wal *w, struct zk__wal_cut *out)
{
    *out = w->cut;
}

/* Walks segment sg's records on disk: every one whole and increasing,
 * zeros after the last; the index entries *k.. that lie in sg found. */
static int verify_seg(struct zk__wal *w, struct seg *sg, uint64_t *prev,
                      size_t *k, uint64_t *records,
                      void (*problem)(void *, const char *), void *arg)
{
    char text[256];
    uint8_t *p = NULL;
    struct seg copy = *sg;
    int rc = seg_load(&copy, w->gen, &p);
    if (rc == ZK_ECORRUPT) {
        snprintf(text, sizeof(text), "segment %" PRIu64 ": bad header",
                 sg->seq);
        problem(arg, text);
        return 0;
    }
    if (rc != 0)
        return rc;
    uint64_t off = ZK__WAL_SEG_HDR;
    while (off + 8 <= copy.size && zk_get_be64(p + off) != 0) {
        int64_t len = rec_check(p + off, copy.size - off, *prev);
        if (len < 0) {
            snprintf(text, sizeof(text), "segment %" PRIu64 " offset %"
                     PRIu64 ": a record with a bad checksum, length or "
                     "zxid (not above %#" PRIx64 ")", sg->seq, off, *prev);
            problem(arg, text);
            break;
        }
        if (*k < w->n && w->ents[w->head + *k].seq == sg->seq &&
            w->ents[w->head + *k].off == off)
            ++*k;
        *prev = zk_get_be64(p + off);
        ++*records;
        off += ZK__WAL_REC_HDR + (uint64_t)len;
    }
    free(p);
    return 0;
}

int zk__wal_verify(struct zk__wal *w,
                   void (*problem)(void *arg, const char *text), void *arg,
                   uint64_t *records)
{
    uint64_t prev = 0;
    size_t k = 0;
    int rc = 0;
    *records = 0;
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; rc == 0 && i < w->nsegs; i++)
        rc = verify_seg(w, &w->segs[i], &prev, &k, records, problem, arg);
    if (rc == 0 && k != w->n) {
        char text[128];
        snprintf(text, sizeof(text), "%zu of the %zu indexed records are not "
                 "found on disk", w->n - k, w->n);
        problem(arg, text);
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}
