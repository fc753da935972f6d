/*
 * test_wal.c — the write-ahead log (store/wal.c) on its own and under the
 * store: append and reopen across segments, a torn tail of every length
 * cut (and zeroed, so a later append is not followed by stale bytes),
 * damage inside the log found by zkfs check, truncation, trimming the
 * front, the index after a reopen, the migration of a format-1 store's
 * LMDB log table (also after a migration that crashed half way), and a
 * log without sync (an observer's) that lost records to a power cut: a
 * record missing before others, a log ending below last_applied.
 *
 * Each test works in its own mkdtemp directory under /tmp and removes it.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../../store/store_int.h"
#include "store_fx.h"

#define SEG 4096u      /* small segments: every test crosses several */

static void mkdir_tmp(char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/zkfs-wal-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* Payload of record z: len bytes derived from z and salt. */
static uint32_t payload(uint64_t z, unsigned salt, uint8_t *buf)
{
    uint32_t len = (uint32_t)((z * 37 + salt) % 300) + 1;
    for (uint32_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(z + i * 7 + salt);
    return len;
}

static void append_range(struct zk__wal *w, uint64_t from, uint64_t to,
                         unsigned salt)
{
    static uint8_t bufs[8][512];
    struct zk__wal_rec recs[8];
    size_t n = 0;
    for (uint64_t z = from; z <= to; z++) {
        recs[n] = (struct zk__wal_rec){z, bufs[n], payload(z, salt, bufs[n])};
        if (++n == 8 || z == to) {
            ck_assert_int_eq(zk__wal_append(w, recs, n), 0);
            n = 0;
        }
    }
}

static void expect_get(struct zk__wal *w, uint64_t z, unsigned salt)
{
    uint8_t want[512], *got;
    size_t len;
    uint32_t wl = payload(z, salt, want);
    ck_assert_int_eq(zk__wal_get(w, z, &got, &len), 0);
    ck_assert_uint_eq(len, wl);
    ck_assert(memcmp(got, want, wl) == 0);
    free(got);
}

static void expect_range(struct zk__wal *w, uint64_t from, uint64_t to,
                         unsigned salt)
{
    uint8_t *got;
    size_t len;
    uint64_t first, last;
    zk__wal_bounds(w, &first, &last);
    ck_assert_uint_eq(first, from);
    ck_assert_uint_eq(last, to);
    for (uint64_t z = from; z <= to; z++)
        expect_get(w, z, salt);
    ck_assert_int_eq(zk__wal_get(w, to + 1, &got, &len), -ENOENT);
}

static int count_segs(const char *dir)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, ZK__WAL_DIR);
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, ".wal") != NULL;
    closedir(d);
    return n;
}

/* Path of segment seq of generation gen. */
static void seg_path(char *buf, size_t size, const char *dir, uint64_t gen,
                     uint64_t seq)
{
    snprintf(buf, size, "%s/%s/%016llx-%016llx.wal", dir, ZK__WAL_DIR,
             (unsigned long long)gen, (unsigned long long)seq);
}

static int scan_count(void *arg, uint64_t zxid, const uint8_t *b, size_t l)
{
    uint64_t *a = arg;
    (void)b;
    (void)l;
    ck_assert_uint_gt(zxid, a[1]);
    a[1] = zxid;
    return ++a[0] == a[2] ? 9 : 0;
}

START_TEST(wal_append_reopen)
{
    char dir[64];
    struct zk__wal *w;
    mkdir_tmp(dir, sizeof(dir));
    ck_assert_int_eq(zk__wal_open(dir, 0, SEG, 1, &w), 0);
    append_range(w, 1, 100, 0);
    expect_range(w, 1, 100, 0);
    ck_assert_int_ge(count_segs(dir), 4);
    /* zxids must increase */
    uint8_t b[4] = {0};
    struct zk__wal_rec r = {100, b, 4};
    uint64_t acc[3] = {0, 40, 1000};
    ck_assert_int_eq(zk__wal_scan(w, 40, scan_count, acc), 0);
    ck_assert_uint_eq(acc[0], 60);
    uint64_t stop[3] = {0, 0, 5};
    ck_assert_int_eq(zk__wal_scan(w, 0, scan_count, stop), 9);
    zk__wal_close(w);
    ck_assert_int_eq(zk__wal_open(dir, 0, SEG, 1, &w), 0);
    expect_range(w, 1, 100, 0);
    /* a record bigger than a segment gets a segment of its own */
    static uint8_t big[3 * SEG];
    memset(big, 0xab, sizeof(big));
    r = (struct zk__wal_rec){101, big, sizeof(big)};
    ck_assert_int_eq(zk__wal_append(w, &r, 1), 0);
    zk__wal_close(w);
    ck_assert_int_eq(zk__wal_open(dir, 0, SEG, 1, &w), 0);
    uint8_t *got;
    size_t len;
    ck_assert_int_eq(zk__wal_get(w, 101, &got, &len), 0);
    ck_assert_uint_eq(len, sizeof(big));
    ck_assert(memcmp(got, big, len) == 0);
    free(got);
    struct zk__wal_cut cut;
    zk__wal_cut_info(w, &cut);
    ck_assert_int_eq(cut.cut, 0);
    zk__wal_close(w);
    /* another generation's segments are deleted when pruning */
    ck_assert_int_eq(zk__wal_open(dir, 1, SEG, 1, &w), 0);
    uint64_t first, last;
    zk__wal_bounds(w, &first, &last);
    ck_assert_uint_eq(last, 0);
    ck_assert_int_eq(count_segs(dir), 1);
    zk__wal_close(w);
    zk_test_rmtree(dir);
}
END_TEST

/* Encodes record z (the format of docs/formats.md) into p. */
static size_t encode(uint64_t z, unsigned salt, uint8_t *p)
{
    uint32_t len = payload(z, salt, p + 16);
    zk_put_be64(p, z);
    zk_put_be32(p + 8, len);
    uLong c = crc32(crc32(0L, Z_NULL, 0), p, 12);
    zk_put_be32(p + 12, (uint32_t)crc32(c, p + 16, len));
    return 16 + len;
}

/* The offset after the last record of the single segment of dir. */
static void seg_read(const char *path, uint8_t buf[SEG])
{
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pread(fd, buf, SEG, 0), SEG);
    close(fd);
}

static uint64_t seg_end(const char *path)
{
    uint8_t buf[SEG];
    seg_read(path, buf);
    uint64_t off = ZK__WAL_SEG_HDR;
    while (zk_get_be64(buf + off) != 0)
        off += 16 + zk_get_be32(buf + off + 8);
    return off;
}

static int all_zero_from(const char *path, uint64_t off)
{
    uint8_t buf[SEG];
    seg_read(path, buf);
    for (uint64_t i = off; i < SEG; i++)
        if (buf[i] != 0)
            return 0;
    return 1;
}

START_TEST(wal_torn_tail_every_length)
{
    char dir[64], path[128];
    uint8_t rec[512];
    struct zk__wal *w;
    mkdir_tmp(dir, sizeof(dir));
    ck_assert_int_eq(zk__wal_open(dir, 0, SEG, 1, &w), 0);
    append_range(w, 1, 3, 0);
    zk__wal_close(w);
    seg_path(path, sizeof(path), dir, 0, 0);
    uint64_t end = seg_end(path);
    size_t full = encode(4, 0, rec);
    ck_assert_uint_lt(end + full, SEG);
    /* Every prefix of record 4 (and the whole record with one bit of its
     * payload, or its checksum, flipped) is cut, and zeroed. */
    for (size_t l = 1; l <= full + 2; l++) {
        uint8_t bad[512];
        size_t n = l <= full ? l : full;
        memcpy(bad, rec, full);
        if (l == full)
            bad[full - 1] ^= 1;
        if (l == full + 1)
            bad[13] ^= 0x80;
        if (l == full + 2)
            bad[8] = 0x7f;         /* a length running past the segment */
        int fd = open(path, O_RDWR);
        ck_assert_int_eq(pwrite(fd, bad, n, (off_t)end), (ssize_t)n);
        close(fd);
        ck_assert_int_eq(zk__wal_open(dir, 0, SEG, 1, &w), 0);
        expect_range(w, 1, 3, 0);
        struct zk__wal_cut cut;
        zk__wal_cut_info(w, &cut);
        /* a prefix of up to 7 bytes may leave the zxid field zero */
        ck_assert(cut.cut || l < 8);
        ck_assert_uint_eq(cut.dropped_records, 0);
        zk__wal_close(w);
        ck_assert_msg(all_zero_from(path, end), "length %zu not zeroed", l);
    }
    /* the whole record is a record */
    int fd = open(path, O_RDWR);
    ck_assert_int_eq(pwrite(fd, rec, full, (off_t)end), (ssize_t)full);
    close(fd);
    ck_assert_int_eq(zk__wal_open(dir, 0, SEG, 1, &w), 0);
    expect_range(w, 1, 4, 0);
    /* after a cut, new records follow the good ones (not stale bytes) */
    ck_assert_int_eq(zk__wal_truncate(w, 3), 0);
    append_range(w, 4, 6, 1);
    zk__wal_close(w);
    ck_assert_int_eq(zk__wal_open(dir, 0, SEG, 1, &w), 0);
    uint64_t first, last;
    zk__wal_bounds(w, &first, &last);
    ck_assert_uint_eq(first, 1);
    ck_assert_uint_eq(last, 6);
    for (uint64_t z = 1; z <= 6; z++)
        expect_get(w, z, z > 3);
    zk__wal_close(w);
    zk_test_rmtree(dir);
}
END_TEST

START_TEST(wal_truncate_trim)
{
    char dir[64];
    struct zk__wal *w;
    mkdir_tmp(dir, sizeof(dir));
    ck_assert_int_eq(zk__wal_open(dir, 0, SEG, 1, &w), 0);
    append_range(w, 1, 60, 0);
    int segs = count_segs(dir);
    ck_assert_int_eq(zk__wal_truncate(w, 20), 0);
    ck_assert_int_eq(zk__wal_truncate(w, 30), 0);   /* nothing above: no-op */
    expect_range(w, 1, 20, 0);
    ck_assert_int_lt(count_segs(dir), segs);
    ck_assert_uint_eq(zk__wal_last_upto(w, 15), 15);
    ck_assert_uint_eq(zk__wal_last_upto(w, 99), 20);
    append_range(w, 21, 40, 2);
    zk__wal_close(w);
    ck_assert_int_eq(zk__wal_open(dir, 0, SEG, 1, &w), 0);
    uint8_t *got;
    size_t len;
    expect_get(w, 25, 2);
    expect_get(w, 20, 0);
    /* trim: keep 5 at or below 30, everything above */
    segs = count_segs(dir);
    zk__wal_trim(w, 30, 5, UINT64_MAX);
    uint64_t first, last;
    zk__wal_bounds(w, &first, &last);
    ck_assert_uint_eq(first, 26);
    ck_assert_uint_eq(last, 40);
    ck_assert_int_lt(count_segs(dir), segs);
    ck_assert_int_eq(zk__wal_get(w, 25, &got, &len), -ENOENT);
    zk__wal_trim(w, 40, 0, UINT64_MAX);  /* all: the last segment stays */
    zk__wal_bounds(w, &first, &last);
    ck_assert_uint_eq(last, 0);
    ck_assert_int_eq(count_segs(dir), 1);
    append_range(w, 41, 45, 0);
    zk__wal_close(w);
    ck_assert_int_eq(zk__wal_open(dir, 0, SEG, 1, &w), 0);
    zk__wal_bounds(w, &first, &last);
    ck_assert_uint_le(first, 41);
    ck_assert_uint_eq(last, 45);
    zk__wal_close(w);
    zk_test_rmtree(dir);
}
END_TEST

/* The log's size in bytes is bounded too (ZKFS_LOG_KEEP_BYTES): with
 * many records kept by count, whole segments of the oldest go while the
 * segments from the oldest kept on span more than keep_bytes; never a
 * record above upto, nor the segment being written. */
START_TEST(wal_trim_bytes)
{
    char dir[] = "/tmp/zk-wal-XXXXXX";
    struct zk__wal *w;
    uint64_t first, last;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(zk__wal_open(dir, 0, SEG, 1, &w), 0);
    append_range(w, 1, 200, 0);
    int segs = count_segs(dir);
    ck_assert_int_gt(segs, 6);
    zk__wal_trim(w, 150, 1000, 3 * SEG);   /* 1000: the count keeps all */
    zk__wal_bounds(w, &first, &last);
    ck_assert_uint_gt(first, 1);
    ck_assert_uint_le(first, 151);
    ck_assert_uint_eq(last, 200);
    ck_assert_int_lt(count_segs(dir), segs);
    expect_get(w, 200, 0);
    expect_get(w, 151, 0);
    /* what is left spans at most 3 segments, unless records above 150
     * alone take more */
    int left = count_segs(dir);
    zk__wal_trim(w, 200, 1000, 0);         /* all: the last segment stays */
    ck_assert_int_eq(count_segs(dir), 1);
    ck_assert(left <= 3 || first == 151);
    zk__wal_close(w);
    zk_test_rmtree(dir);
}
END_TEST

static void check_problem(void *arg, const char *what, const char *text)
{
    int *n = arg;
    (void)text;
    if (strcmp(what, "log") == 0)
        ++*n;
}

/* A record damaged inside the log (whole records after it) is cut at
 * open like a torn tail, and zkfs check says it was damage. */
START_TEST(wal_damage_found_by_check)
{
    char dir[64], path[128];
    struct zk_store *s;
    struct zk_store_check_stats st;
    struct zk_op op = {.type = ZK_OP_CREATE, .version = -1, .mode = 0644,
                       .path = "/a", .path_len = 2};
    mkdir_tmp(dir, sizeof(dir));
    setenv("ZKFS_WAL_SEGMENT_BYTES", "65536", 1);
    ck_assert_int_eq(zk_store_open(dir, 1, &s), 0);
    zk_apply_result_free(zk_test_commit(s, 1, 1000, &op, 1));
    op.path = "/b";
    zk_apply_result_free(zk_test_commit(s, 2, 1000, &op, 1));
    op.path = "/c";
    zk_apply_result_free(zk_test_commit(s, 3, 1000, &op, 1));
    int n = 0;
    ck_assert_int_eq(zk_store_check(s, check_problem, &n, &st), 0);
    ck_assert_int_eq(n, 0);
    ck_assert_uint_eq(st.log_entries, 3);
    zk_store_close(s);
    seg_path(path, sizeof(path), dir, 0, 0);    /* a new store: gen 0 */
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    uint8_t b;
    ck_assert_int_eq(pread(fd, &b, 1, ZK__WAL_SEG_HDR + 20), 1);
    b ^= 1;
    ck_assert_int_eq(pwrite(fd, &b, 1, ZK__WAL_SEG_HDR + 20), 1);
    close(fd);
    ck_assert_int_eq(zk_store_open(dir, 0, &s), 0);
    struct zk_store_info info;
    ck_assert_int_eq(zk_store_info(s, &info), 0);
    ck_assert_uint_eq(info.log_last_zxid, 0);
    ck_assert_uint_eq(info.last_applied_zxid, 3);
    n = 0;
    ck_assert_int_eq(zk_store_check(s, check_problem, &n, &st), 0);
    ck_assert_int_gt(n, 0);
    zk_store_close(s);
    unsetenv("ZKFS_WAL_SEGMENT_BYTES");
    zk_test_rmtree(dir);
}
END_TEST

/* Makes dir a format-1 store: its log in LMDB's "log" table (entries
 * 1..n, the payloads of payload()), no write-ahead log. */
static void make_format1(const char *dir, uint64_t n)
{
    char path[128];
    struct zk_store *s;
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi log, meta;
    ck_assert_int_eq(zk_store_open(dir, 1, &s), 0);
    zk_store_close(s);
    snprintf(path, sizeof(path), "%s/%s", dir, ZK__WAL_DIR);
    zk_test_rmtree(path);
    snprintf(path, sizeof(path), "%s/zkfs.mdb", dir);
    ck_assert_int_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    ck_assert_int_eq(mdb_env_open(env, path, MDB_NOSUBDIR, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &t), 0);
    ck_assert_int_eq(mdb_dbi_open(t, "log", MDB_CREATE, &log), 0);
    ck_assert_int_eq(mdb_dbi_open(t, "meta", 0, &meta), 0);
    MDB_val k = {7, "wal_gen"};
    ck_assert_int_eq(mdb_del(t, meta, &k, NULL), MDB_NOTFOUND);
    for (uint64_t z = 1; z <= n; z++) {
        uint8_t kb[8], buf[512];
        zk_put_be64(kb, z);
        MDB_val kk = {8, kb}, v = {payload(z, 0, buf), buf};
        ck_assert_int_eq(mdb_put(t, log, &kk, &v, MDB_APPEND), 0);
    }
    ck_assert_int_eq(mdb_txn_commit(t), 0);
    mdb_env_close(env);
}

static int has_log_table(const char *dir)
{
    char path[128];
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi log;
    snprintf(path, sizeof(path), "%s/zkfs.mdb", dir);
    ck_assert_int_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    ck_assert_int_eq(mdb_env_open(env, path, MDB_NOSUBDIR | MDB_RDONLY,
                                  0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &t), 0);
    int rc = mdb_dbi_open(t, "log", 0, &log);
    mdb_txn_abort(t);
    mdb_env_close(env);
    return rc == 0;
}

static void expect_store_log(struct zk_store *s, uint64_t n)
{
    struct zk_store_info info;
    uint8_t want[512], *got;
    size_t len;
    ck_assert_int_eq(zk_store_info(s, &info), 0);
    ck_assert_uint_eq(info.log_first_zxid, 1);
    ck_assert_uint_eq(info.log_last_zxid, n);
    for (uint64_t z = 1; z <= n; z++) {
        ck_assert_int_eq(zk_store_log_get(s, z, &got, &len), 0);
        ck_assert_uint_eq(len, payload(z, 0, want));
        ck_assert(memcmp(got, want, len) == 0);
        free(got);
    }
}

START_TEST(wal_migrates_format1)
{
    char dir[64], path[160];
    struct zk_store *s;
    mkdir_tmp(dir, sizeof(dir));
    setenv("ZKFS_WAL_SEGMENT_BYTES", "4096", 1);
    make_format1(dir, 200);
    ck_assert(has_log_table(dir));
    /* A migration that crashed after writing the new generation's
     * segment but before the LMDB commit: that file is deleted and the
     * migration done again from the table. */
    snprintf(path, sizeof(path), "%s/%s", dir, ZK__WAL_DIR);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    seg_path(path, sizeof(path), dir, 1, 0);
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    ck_assert_int_eq(write(fd, "garbage", 7), 7);
    close(fd);
    ck_assert_int_eq(zk_store_open(dir, 0, &s), 0);
    expect_store_log(s, 200);
    uint64_t gen;
    ck_assert_int_eq(zk_store_meta_get(s, "wal_gen", &gen), 0);
    ck_assert_uint_eq(gen, 1);
    zk_store_close(s);
    ck_assert(!has_log_table(dir));
    ck_assert_int_gt(count_segs(dir), 5);
    /* reopened: the same log, no second migration */
    ck_assert_int_eq(zk_store_open(dir, 0, &s), 0);
    expect_store_log(s, 200);
    ck_assert_int_eq(zk_store_meta_get(s, "wal_gen", &gen), 0);
    ck_assert_uint_eq(gen, 1);
    /* and it goes on */
    struct zk_store_batch *b;
    ck_assert_int_eq(zk_store_batch_begin(s, &b), 0);
    ck_assert_int_eq(zk_store_batch_log(b, 200, (const uint8_t *)"x", 1),
                     -EINVAL);
    ck_assert_int_eq(zk_store_batch_log(b, 201, (const uint8_t *)"x", 1), 0);
    ck_assert_int_eq(zk_store_batch_commit(b), 0);
    zk_store_close(s);
    unsetenv("ZKFS_WAL_SEGMENT_BYTES");
    zk_test_rmtree(dir);
}
END_TEST

/* The store's rules over the log: a batch that only logs leaves LMDB
 * alone; applies commit after the log; a truncation in the same batch as
 * new records; meta_set refuses the log's generation key. */
START_TEST(wal_store_batches)
{
    char dir[64];
    struct zk_store *s;
    struct zk_store_batch *b;
    struct zk_store_info info;
    mkdir_tmp(dir, sizeof(dir));
    ck_assert_int_eq(zk_store_open(dir, 1, &s), 0);
    ck_assert_int_eq(zk_store_batch_begin(s, &b), 0);
    ck_assert_int_eq(zk_store_batch_meta_set(b, "wal_gen", 7), -EINVAL);
    for (uint64_t z = 1; z <= 5; z++)
        ck_assert_int_eq(zk_store_batch_log(b, z, (const uint8_t *)"ab", 2),
                         0);
    ck_assert_int_eq(zk_store_batch_commit_lazy(b), 0);
    ck_assert_int_eq(zk_store_batch_begin(s, &b), 0);
    ck_assert_int_eq(zk_store_batch_log_truncate(b, 2), 0);
    ck_assert_int_eq(zk_store_batch_log(b, 2, (const uint8_t *)"c", 1),
                     -EINVAL);
    ck_assert_int_eq(zk_store_batch_log(b, 3, (const uint8_t *)"c", 1), 0);
    ck_assert_int_eq(zk_store_batch_log_truncate(b, 1), 0);
    ck_assert_int_eq(zk_store_batch_log(b, 2, (const uint8_t *)"d", 1), 0);
    ck_assert_int_eq(zk_store_batch_commit(b), 0);
    zk_store_close(s);
    ck_assert_int_eq(zk_store_open(dir, 0, &s), 0);
    ck_assert_int_eq(zk_store_info(s, &info), 0);
    ck_assert_uint_eq(info.log_first_zxid, 1);
    ck_assert_uint_eq(info.log_last_zxid, 2);
    uint8_t *got;
    size_t len;
    ck_assert_int_eq(zk_store_log_get(s, 2, &got, &len), 0);
    ck_assert_uint_eq(len, 1);
    ck_assert_int_eq(got[0], 'd');
    free(got);
    zk_store_close(s);
    zk_test_rmtree(dir);
}
END_TEST

/* zk_store_log_fits: what is left of a 4096-byte segment (32 bytes of
 * header, 16 per record besides its payload), before and after a batch,
 * and again in the new segment a record that did not fit opened. */
START_TEST(wal_store_log_fits)
{
    char dir[64];
    static const uint8_t pay[2100];
    struct zk_store *s;
    struct zk_store_batch *b;
    mkdir_tmp(dir, sizeof(dir));
    setenv("ZKFS_WAL_SEGMENT_BYTES", "4096", 1);
    ck_assert_int_eq(zk_store_open(dir, 1, &s), 0);
    ck_assert_int_eq(zk_store_log_fits(s, 1, 4096 - 32 - 16), 1);
    ck_assert_int_eq(zk_store_log_fits(s, 1, 4096 - 32 - 15), 0);
    ck_assert_int_eq(zk_store_log_fits(s, 2, 4096 - 32 - 32), 1);
    ck_assert_int_eq(zk_store_log_fits(s, 2, 4096 - 32 - 31), 0);
    ck_assert_int_eq(zk_store_batch_begin(s, &b), 0);
    ck_assert_int_eq(zk_store_batch_log(b, 1, pay, sizeof(pay)), 0);
    ck_assert_int_eq(zk_store_batch_commit_lazy(b), 0);
    uint64_t left = 4096 - 32 - 16 - sizeof(pay);
    ck_assert_int_eq(zk_store_log_fits(s, 1, left - 16), 1);
    ck_assert_int_eq(zk_store_log_fits(s, 1, left - 15), 0);
    ck_assert_int_eq(zk_store_log_fits(s, 1, sizeof(pay)), 0);
    ck_assert_int_eq(zk_store_batch_begin(s, &b), 0);
    ck_assert_int_eq(zk_store_batch_log(b, 2, pay, sizeof(pay)), 0);
    ck_assert_int_eq(zk_store_batch_commit_lazy(b), 0);
    ck_assert_int_eq(zk_store_log_fits(s, 1, left - 16), 1);
    ck_assert_int_eq(zk_store_log_fits(s, 1, left - 15), 0);
    zk_store_close(s);
    unsetenv("ZKFS_WAL_SEGMENT_BYTES");
    zk_test_rmtree(dir);
}
END_TEST

/* Offset of record z in the single segment at path (asserted there). */
static uint64_t rec_off(const char *path, uint64_t z)
{
    uint8_t buf[SEG];
    seg_read(path, buf);
    uint64_t off = ZK__WAL_SEG_HDR;
    while (zk_get_be64(buf + off) != z) {
        ck_assert_uint_ne(zk_get_be64(buf + off), 0);
        off += 16 + zk_get_be32(buf + off + 8);
    }
    return off;
}

static void zero_file_range(const char *path, uint64_t from, uint64_t to)
{
    static const uint8_t zeros[SEG];
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_uint_le(to - from, sizeof(zeros));
    ck_assert_int_eq(pwrite(fd, zeros, to - from, (off_t)from),
                     (ssize_t)(to - from));
    close(fd);
}

/* A log without sync: a power cut may write a later page of the page
 * cache and not an earlier one. Record 3 missing (zeros) with 4 and 5
 * still on disk: opening ends the log at 2 and zeroes 4 and 5, so that
 * records appended later are never followed by them. (Before, a zero
 * zxid ended the segment silently and left the bytes after it.) */
START_TEST(wal_nosync_missing_record)
{
    char dir[64], path[128];
    struct zk__wal *w;
    struct zk__wal_cut cut;
    mkdir_tmp(dir, sizeof(dir));
    ck_assert_int_eq(zk__wal_open(dir, 0, SEG, 1, &w), 0);
    zk__wal_set_sync(w, 0);
    append_range(w, 1, 5, 0);
    expect_range(w, 1, 5, 0);      /* indexed once written */
    zk__wal_close(w);
    seg_path(path, sizeof(path), dir, 0, 0);
    uint64_t at3 = rec_off(path, 3), at4 = rec_off(path, 4);
    zero_file_range(path, at3, at4);
    ck_assert(!all_zero_from(path, at3));
    ck_assert_int_eq(zk__wal_open(dir, 0, SEG, 1, &w), 0);
    expect_range(w, 1, 2, 0);
    zk__wal_cut_info(w, &cut);
    ck_assert_int_eq(cut.cut, 1);
    ck_assert_uint_eq(cut.off, at3);
    ck_assert(all_zero_from(path, at3));
    /* new records at 3.. follow 2, and only they are found again */
    append_range(w, 3, 4, 1);
    zk__wal_close(w);
    ck_assert_int_eq(zk__wal_open(dir, 0, SEG, 1, &w), 0);
    zk__wal_cut_info(w, &cut);
    ck_assert_int_eq(cut.cut, 0);
    expect_get(w, 2, 0);
    expect_get(w, 3, 1);
    expect_get(w, 4, 1);
    uint64_t first, last;
    zk__wal_bounds(w, &first, &last);
    ck_assert_uint_eq(last, 4);
    zk__wal_close(w);
    zk_test_rmtree(dir);
}
END_TEST

/* A store whose log has no sync (an observer's) and lost records to a
 * power cut, also below last_applied: it opens, keeps its tree and
 * last_applied, drops the rest of its log (all applied: a hole would
 * follow it), logs and applies on from there, and zkfs check finds
 * nothing wrong with it. */
START_TEST(wal_nosync_store_log_behind_applied)
{
    char dir[64], path[128];
    struct zk_store *s;
    struct zk_store_info info;
    struct zk_store_check_stats st;
    struct zk_stat nst;
    struct zk_op op = {.type = ZK_OP_CREATE, .version = -1, .mode = 0644,
                       .path = "/a", .path_len = 2};
    mkdir_tmp(dir, sizeof(dir));
    ck_assert_int_eq(zk_store_open(dir, 1, &s), 0);
    zk_store_log_sync(s, 0);
    static const char *paths[] = {"/a", "/b", "/c", "/d", "/e"};
    for (uint64_t z = 1; z <= 5; z++) {
        op.path = paths[z - 1];
        zk_apply_result_free(zk_test_commit(s, z, 1000, &op, 1));
    }
    zk_store_close(s);
    seg_path(path, sizeof(path), dir, 0, 0);
    zero_file_range(path, rec_off(path, 3), SEG);  /* 3..5 lost */
    ck_assert_int_eq(zk_store_open(dir, 0, &s), 0);
    ck_assert_int_eq(zk_store_info(s, &info), 0);
    ck_assert_uint_eq(info.last_applied_zxid, 5);
    ck_assert_uint_eq(info.log_last_zxid, 0);   /* 1..2 dropped: no hole */
    ck_assert(all_zero_from(path, ZK__WAL_SEG_HDR));
    ck_assert_int_eq(zk_store_resolve(s, "/e", &nst), 0);
    uint64_t acc[3] = {0, 5, 1000};
    ck_assert_int_eq(zk_store_log_scan(s, 5, scan_count, acc), 0);
    ck_assert_uint_eq(acc[0], 0);
    int n = 0;
    ck_assert_int_eq(zk_store_check(s, check_problem, &n, &st), 0);
    ck_assert_int_eq(n, 0);
    zk_store_log_sync(s, 0);
    op.path = "/f";
    op.path_len = 2;
    zk_apply_result_free(zk_test_commit(s, 6, 1000, &op, 1));
    zk_store_close(s);
    ck_assert_int_eq(zk_store_open(dir, 0, &s), 0);
    ck_assert_int_eq(zk_store_info(s, &info), 0);
    ck_assert_uint_eq(info.last_applied_zxid, 6);
    ck_assert_uint_eq(info.log_first_zxid, 6);
    ck_assert_uint_eq(info.log_last_zxid, 6);
    n = 0;
    ck_assert_int_eq(zk_store_check(s, check_problem, &n, &st), 0);
    ck_assert_int_eq(n, 0);
    zk_store_close(s);
    zk_test_rmtree(dir);
}
END_TEST

Suite *wal_suite(void);
Suite *wal_suite(void)
{
    Suite *s = suite_create("wal");
    TCase *tc = tcase_create("wal");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, wal_append_reopen);
    tcase_add_test(tc, wal_torn_tail_every_length);
    tcase_add_test(tc, wal_truncate_trim);
    tcase_add_test(tc, wal_trim_bytes);
    tcase_add_test(tc, wal_damage_found_by_check);
    tcase_add_test(tc, wal_migrates_format1);
    tcase_add_test(tc, wal_store_batches);
    tcase_add_test(tc, wal_store_log_fits);
    tcase_add_test(tc, wal_nosync_missing_record);
    tcase_add_test(tc, wal_nosync_store_log_behind_applied);
    suite_add_tcase(s, tc);
    return s;
}
