/*
 * wal.h — the proposal log of a store (store/wal.c): a write-ahead log of
 * its own in DIR/zkfs-wal/, beside the LMDB tree. Private to store/.
 *
 * Threads: one writer (the store's batch thread) calls the writing
 * functions; readers (zk__wal_get, _scan, _bounds, _verify) may run on any
 * thread at the same time: the index is behind the log's mutex, and a
 * record is in the index only once it is durable (once written, for a
 * log without sync: zk__wal_set_sync).
 *
 * Errors: 0, a negative errno (-EIO, -ENOSPC, -ENOMEM) or ZK_ECORRUPT.
 * After a failed write or sync the log refuses every later write with
 * the same error (what reached the disk is unknown: the page cache may
 * have dropped the dirty pages, fsyncgate); reopening the store repairs it.
 */
#ifndef ZK_STORE_WAL_H
#define ZK_STORE_WAL_H

#include <stddef.h>
#include <stdint.h>

#define ZK__WAL_DIR        "zkfs-wal"
#define ZK__WAL_SEG_BYTES  (4u << 20)   /* default segment size          */
#define ZK__WAL_SEG_MIN    4096u        /* smallest ZKFS_WAL_SEGMENT_BYTES */
#define ZK__WAL_SEG_HDR    32u          /* "zkfswal1" gen seq crc pad    */
#define ZK__WAL_REC_HDR    16u          /* zxid len crc                  */

struct zk__wal;

/* One record to append: payload is only read during zk__wal_append. */
struct zk__wal_rec {
    uint64_t zxid;
    const uint8_t *payload;
    uint32_t len;
};

/* What opening found beyond the last good record (a torn or corrupt
 * tail, cut): bytes that were not zero, and how many of them looked like
 * good records after the first bad one (non-zero: corruption inside the
 * log rather than a batch that was being written). */
struct zk__wal_cut {
    uint64_t seq, off;         /* where the log was cut                 */
    uint64_t dropped_records;  /* well-formed records after the cut     */
    int cut;                   /* 1 if anything was cut                 */
};

/* Opens the log of generation gen in dir/zkfs-wal (made if missing),
 * reads every segment of that generation and indexes its records, cuts
 * a torn or corrupt tail at the first bad record (zeroing it, durably)
 * and, with prune, deletes the segments of every other generation.
 * seg_bytes: size of new segments. *out written on success. */
int zk__wal_open(const char *dir, uint64_t gen, uint64_t seg_bytes,
                 int prune, struct zk__wal **out);
/* Closes the log (no sync: every acknowledged record already is). */
void zk__wal_close(struct zk__wal *w);
/* Closes the log and deletes its segment files (a replaced generation). */
void zk__wal_destroy(struct zk__wal *w);

/* Appends n records (zxids increasing, above every indexed one) with
 * one pwrite per segment touched and one fdatasync each, then indexes
 * them. Segments are preallocated (written with zeros and synced when
 * made), so the fdatasync writes no file metadata. Without sync
 * (zk__wal_set_sync) the fdatasync is left out, except for a segment
 * that is full: it is synced before the next one is made. */
int zk__wal_append(struct zk__wal *w, const struct zk__wal_rec *recs,
                   size_t n);
/* sync 0: later appends are written but not made durable (an observer's
 * log, which promises nothing to anyone): a power cut may then take any
 * of the records of the last segment, and opening cuts the log before
 * the first one missing (seg_index). A record is then indexed once
 * written. sync 1 (the default) is the durable log. Writer thread. */
void zk__wal_set_sync(struct zk__wal *w, int sync);
/* Bytes left in the last segment for records (headers included). */
uint64_t zk__wal_room(struct zk__wal *w);
/* Removes every record with zxid > after, durably: later segments are
 * deleted (directory synced), then the rest of the segment holding the
 * first removed record is zeroed and synced. */
int zk__wal_truncate(struct zk__wal *w, uint64_t after);
/* Forgets the oldest records while more than keep records are at or
 * below upto, then (whole segments of them) while the segments from the
 * oldest record on are more than keep_bytes, and deletes the segments
 * only they used. Not synced: a
 * segment whose deletion a crash undoes only makes the log longer. */
/* pwrite / pread of all len bytes at off (a short transfer goes on; end
 * of file is -EIO); -errno. Also ckpt.c's. */
int zk__pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/* fsync of directory dir (its entries durable); -errno on failure. */
int zk__sync_dir_path(const char *dir);
int zk__pread_all(int fd, void *buf, size_t len, uint64_t off);
void zk__wal_trim(struct zk__wal *w, uint64_t upto, uint64_t keep,
                  uint64_t keep_bytes);

/* The largest indexed zxid at or below at (0: none). */
uint64_t zk__wal_last_upto(struct zk__wal *w, uint64_t at);
void zk__wal_bounds(struct zk__wal *w, uint64_t *first, uint64_t *last);
/* Record zxid into a new malloc'd buffer; -ENOENT if not in the log. */
int zk__wal_get(struct zk__wal *w, uint64_t zxid, uint8_t **buf,
                size_t *len);
/* cb for each record with zxid > after, in order, under the log's lock
 * (cb must not call into the log); its non-zero value stops the scan. */
typedef int (*zk__wal_cb)(void *arg, uint64_t zxid, const uint8_t *buf,
                          size_t len);
int zk__wal_scan(struct zk__wal *w, uint64_t after, zk__wal_cb cb,
                 void *arg);
/* What zk__wal_open cut. */
void zk__wal_cut_info(struct zk__wal *w, struct zk__wal_cut *out);
/* Re-reads every segment from disk and checks each record's checksum,
 * that zxids increase and that the indexed records are all there;
 * problem(arg, text) per finding. Returns 0 or an I/O error. */
int zk__wal_verify(struct zk__wal *w,
                   void (*problem)(void *arg, const char *text), void *arg,
                   uint64_t *records);

#endif /* ZK_STORE_WAL_H */
