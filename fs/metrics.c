/*
 * metrics.c — the metrics file (metrics.h): renders the replica's status,
 * its members, the store's counts and the requests this mount served as
 * Prometheus text, one snapshot per open.
 *
 * Every value comes from what the daemon already keeps (zk_replica_status,
 * zk_store_info, the echo queue, the lease's counters) plus one counter
 * per FUSE opcode bumped as requests are read from /dev/fuse, so a scrape
 * costs one pass over them and nothing on the request path but an add.
 * Gauges and counters follow Prometheus' naming: zkfs_ prefix, _total for
 * counters, base units (bytes, seconds).
 */
#include "metrics.h"
#include "zk_version.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* FUSE opcodes (the kernel ABI, <linux/fuse.h>) by number; NULL: not
 * counted under a name of its own. */
static const char *const opcode_names[ZK__FS_OPCODE_MAX] = {
    [1] = "lookup", [2] = "forget", [3] = "getattr", [4] = "setattr",
    [5] = "readlink", [6] = "symlink", [8] = "mknod", [9] = "mkdir",
    [10] = "unlink", [11] = "rmdir", [12] = "rename", [13] = "link",
    [14] = "open", [15] = "read", [16] = "write", [17] = "statfs",
    [18] = "release", [20] = "fsync", [21] = "setxattr", [22] = "getxattr",
    [23] = "listxattr", [24] = "removexattr", [25] = "flush", [26] = "init",
    [27] = "opendir", [28] = "readdir", [29] = "releasedir",
    [30] = "fsyncdir", [31] = "getlk", [32] = "setlk", [33] = "setlkw",
    [34] = "access", [35] = "create", [36] = "interrupt", [37] = "bmap",
    [38] = "destroy", [39] = "ioctl", [40] = "poll",
    [41] = "notify_reply", [42] = "batch_forget", [43] = "fallocate",
    [44] = "readdirplus", [45] = "rename2", [46] = "lseek",
    [47] = "copy_file_range", [48] = "setupmapping",
    [49] = "removemapping", [50] = "syncfs", [51] = "tmpfile"};

/* The kernel's fuse_in_header: len u32, opcode u32, unique u64, ...;
 * fuse_out_header: len u32, error i32, unique u64. */
#define IN_HDR_MIN  16
#define OUT_HDR_LEN 16

void zk__fs_metrics_request(struct zk_fs *fs, const struct fuse_buf *b)
{
    uint32_t opcode;
    uint64_t unique;

    if ((b->flags & FUSE_BUF_IS_FD) || b->size < IN_HDR_MIN || !b->mem)
        return;
    memcpy(&opcode, (const char *)b->mem + 4, sizeof(opcode));
    memcpy(&unique, (const char *)b->mem + 8, sizeof(unique));
    if (opcode >= ZK__FS_OPCODE_MAX)
        opcode = 0;
    fs->requests[opcode]++;
    fs->req_unique[unique & (ZK__FS_REQMAP - 1)] = unique;
    fs->req_op[unique & (ZK__FS_REQMAP - 1)] = (uint8_t)opcode;
}

/* libfuse's writes to /dev/fuse (custom io): an answer with an error is
 * counted under the opcode its request had. Notifications (unique 0)
 * come from the echo thread and are only passed on; answers come from
 * the loop thread, which alone touches the map. */
static ssize_t io_writev(int fd, struct iovec *iov, int count,
                         void *userdata)
{
    struct zk_fs *fs = userdata;
    int32_t error;
    uint64_t unique;

    if (count > 0 && iov[0].iov_len >= OUT_HDR_LEN) {
        memcpy(&error, (const char *)iov[0].iov_base + 4, sizeof(error));
        memcpy(&unique, (const char *)iov[0].iov_base + 8, sizeof(unique));
        if (unique != 0 && error != 0) {
            size_t i = unique & (ZK__FS_REQMAP - 1);
            fs->errors[fs->req_unique[i] == unique ? fs->req_op[i] : 0]++;
        }
    }
    return writev(fd, iov, count);
}

static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
    (void)userdata;
    return read(fd, buf, len);
}

int zk__fs_metrics_io(struct zk_fs *fs)
{
    static const struct fuse_custom_io io = {.writev = io_writev,
                                             .read = io_read};

    return fuse_session_custom_io(fs->se, &io, fuse_session_fd(fs->se));
}

void zk__fs_metrics_applied(void *arg, const struct zk_apply_result *res)
{
    struct zk_fs *fs = arg;

    fs->txns_applied++;
    fs->txn_bytes_applied += res->bytes;
    fs->txns_failed += res->err != 0;
    fs->ops_applied += res->nops;
    fs->changes_applied += res->nchanges;
    zk__fs_applied(arg, res);           /* lock.c: grants, then echo.c */
}

/* Upper bounds of the latency buckets, nanoseconds (the last is +Inf). */
static const uint64_t lat_le_ns[ZK__FS_LAT_BUCKETS - 1] = {
    250000, 500000, 1000000, 2000000, 5000000, 10000000, 20000000,
    50000000, 100000000, 200000000, 500000000, 1000000000, 5000000000};

struct timed {
    struct zk_fs *fs;
    zk_replica_done_cb cb;
    void *arg;
    uint64_t t0_ns;
};

/* Counts ns in a latency histogram of ZK__FS_LAT_BUCKETS buckets. */
static void lat_observe(uint64_t *le, uint64_t *count, uint64_t *sum_ns,
                        uint64_t ns)
{
    size_t b = 0;

    while (b < ZK_ARRAY_LEN(lat_le_ns) && ns > lat_le_ns[b])
        b++;
    le[b]++;
    (*count)++;
    *sum_ns += ns;
}

static void timed_done(void *arg, int err, const struct zk_apply_result *res)
{
    struct timed t = *(struct timed *)arg;

    free(arg);
    lat_observe(t.fs->commit_le, &t.fs->commit_count, &t.fs->commit_sum_ns,
                uv_hrtime() - t.t0_ns);
    t.cb(t.arg, err, res);
}

void zk__fs_barrier_waited(struct zk_fs *fs, uint64_t t0_ns)
{
    lat_observe(fs->barrier_le, &fs->barrier_count, &fs->barrier_sum_ns,
                uv_hrtime() - t0_ns);
}

int zk__fs_propose(struct zk_fs *fs, const struct zk_txn *txn,
                   zk_replica_done_cb cb, void *arg)
{
    struct timed *t = malloc(sizeof(*t));

    if (t == NULL)
        return -ENOMEM;
    *t = (struct timed){fs, cb, arg, uv_hrtime()};
    int rc = zk_replica_propose(fs->replica, txn, timed_done, t);
    if (rc)
        free(t);
    return rc;
}

/* ======================== rendering ===================================== */

struct out {
    char *buf;
    size_t size, len;
};

static void put(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(o->buf + (o->len < o->size ? o->len : o->size),
                      o->len < o->size ? o->size - o->len : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

/* # HELP and # TYPE of one metric family. */
static void family(struct out *o, const char *name, const char *type,
                   const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(struct out *o, const char *name, const char *type,
                const char *help, uint64_t v)
{
    family(o, name, type, help);
    put(o, "%s %" PRIu64 "\n", name, v);
}

static void render_replica(struct out *o, const struct zk_replica_status *rs)
{
    static const char *const roles[] = {"standalone", "leader", "follower",
                                        "observer", "looking"};
    family(o, "zkfs_role", "gauge", "1 for the replica's current role.");
    for (size_t i = 0; i < ZK_ARRAY_LEN(roles); i++)
        put(o, "zkfs_role{role=\"%s\"} %d\n", roles[i],
            strcmp(rs->role, roles[i]) == 0);
    one(o, "zkfs_server_id", "gauge", "This server's id.", rs->my_id);
    one(o, "zkfs_leader_id", "gauge", "The leader's id (0: none known).",
        rs->leader_id);
    one(o, "zkfs_epoch", "gauge", "The current epoch.", rs->epoch);
    one(o, "zkfs_last_zxid", "gauge", "The last zxid applied here.",
        rs->last_zxid);
    one(o, "zkfs_commit_zxid", "gauge", "The highest zxid known committed.",
        rs->commit_zxid);
    one(o, "zkfs_commit_lag", "gauge",
        "Transactions committed but not yet applied here.", rs->lag);
    one(o, "zkfs_stale", "gauge", "1 when cut off from the quorum.",
        (uint64_t)(rs->stale != 0));
    one(o, "zkfs_syncing", "gauge", "1 while a snapshot streams.",
        (uint64_t)(rs->syncing != 0));
    one(o, "zkfs_proposals_in_flight", "gauge",
        "Proposals of this replica not yet answered.", rs->pending);
    one(o, "zkfs_commit_batches_total", "counter",
        "Group-commit batches made durable.", rs->batches);
    one(o, "zkfs_fsyncs_total", "counter", "fsyncs of the store.",
        rs->fsyncs);
    one(o, "zkfs_commit_batches_here_total", "counter",
        "Of the batches, those written on the loop thread without a "
        "hand-off to the worker (an observer's; a follower's while its "
        "loop has nothing else to do).", rs->batches_here);
    family(o, "zkfs_commit_write_avg_seconds", "gauge",
           "A batch's write, running average (1/8 weight; batches are "
           "written on the loop thread only while it is under 1 ms).");
    put(o, "zkfs_commit_write_avg_seconds %.6f\n",
        (double)rs->write_avg_ns / 1e9);
    one(o, "zkfs_snapshots_sent_total", "counter",
        "Snapshot streams completed to learners.", rs->snapshots_sent);
    one(o, "zkfs_snapshots_installed_total", "counter",
        "Snapshots received and installed.", rs->snapshots_installed);
    one(o, "zkfs_snapshots_rejected_total", "counter",
        "Snapshots received corrupt or truncated.", rs->snapshots_rejected);
    one(o, "zkfs_store_failures_total", "counter",
        "Store batches that failed (a full disk, an I/O error): the "
        "replica stopped taking part until a new core could write.",
        rs->store_failures);
    one(o, "zkfs_store_recoveries_total", "counter",
        "New cores made from the store after a failed batch, the mount "
        "kept.", rs->store_recoveries);
    one(o, "zkfs_snapshots_held_total", "counter",
        "Snapshots a learner asked for again too soon, held back (the "
        "connection dropped) rather than streamed.", rs->snapshots_held);
    family(o, "zkfs_snapshot_bytes_total", "counter",
           "Snapshot bytes sent to learners and installed here; raw: "
           "uncompressed, wire: zstd.");
    put(o, "zkfs_snapshot_bytes_total{direction=\"sent\",form=\"raw\"} "
        "%" PRIu64 "\n"
        "zkfs_snapshot_bytes_total{direction=\"sent\",form=\"wire\"} "
        "%" PRIu64 "\n"
        "zkfs_snapshot_bytes_total{direction=\"installed\",form=\"raw\"} "
        "%" PRIu64 "\n"
        "zkfs_snapshot_bytes_total{direction=\"installed\",form=\"wire\"} "
        "%" PRIu64 "\n", rs->snap_sent_raw_bytes, rs->snap_sent_wire_bytes,
        rs->snap_installed_raw_bytes, rs->snap_installed_wire_bytes);
    one(o, "zkfs_elections_total", "counter",
        "Times this replica went looking for a leader.", rs->elections);
    family(o, "zkfs_syncs_total", "counter",
           "Learners synchronised by this replica as leader, by mode.");
    put(o, "zkfs_syncs_total{mode=\"diff\"} %" PRIu64 "\n"
        "zkfs_syncs_total{mode=\"trunc\"} %" PRIu64 "\n"
        "zkfs_syncs_total{mode=\"snap\"} %" PRIu64 "\n", rs->syncs_diff,
        rs->syncs_trunc, rs->syncs_snap);
}

static void render_members(struct out *o, const struct zk_replica_status *rs)
{
    family(o, "zkfs_member_connected", "gauge",
           "1 when this replica has a connection to the member.");
    for (uint32_t i = 0; i < rs->n_members; i++)
        put(o, "zkfs_member_connected{id=\"%u\",type=\"%s\",state=\"%s\"} "
            "%d\n", rs->members[i].id,
            rs->members[i].observer ? "observer" : "voter",
            rs->members[i].state ? rs->members[i].state : "?",
            rs->members[i].connected != 0);
    family(o, "zkfs_member_lag", "gauge",
           "Transactions the member is behind, as known here.");
    for (uint32_t i = 0; i < rs->n_members; i++)
        if (rs->members[i].zxid_known)
            put(o, "zkfs_member_lag{id=\"%u\"} %" PRIu64 "\n",
                rs->members[i].id, rs->members[i].lag);
    family(o, "zkfs_member_snapshot_bytes", "gauge",
           "Bytes of a snapshot streaming to or from the member.");
    for (uint32_t i = 0; i < rs->n_members; i++)
        if (rs->members[i].snapshot)
            put(o, "zkfs_member_snapshot_bytes{id=\"%u\"} %" PRIu64 "\n",
                rs->members[i].id, rs->members[i].snap_bytes);
}

static void render_store(struct out *o, struct zk_fs *fs)
{
    struct zk_store_info si;

    if (zk_store_info(fs->store, &si) != 0)
        return;
    one(o, "zkfs_znodes", "gauge", "Znodes, the root included.", si.znodes);
    one(o, "zkfs_sessions", "gauge", "Open sessions.", si.sessions);
    one(o, "zkfs_ephemerals", "gauge", "Ephemeral znodes.", si.ephemerals);
    one(o, "zkfs_backups_total", "counter",
        "Backups (zkfs snapshot save) written by this daemon.", fs->backups);
    one(o, "zkfs_backups_failed_total", "counter",
        "Backups that failed or were abandoned.", fs->backups_failed);
    one(o, "zkfs_backup_bytes_total", "counter",
        "Bytes of the backup files written.", fs->backup_bytes);
    one(o, "zkfs_data_bytes", "gauge", "Bytes of znode data.",
        si.data_bytes);
    one(o, "zkfs_store_file_bytes", "gauge", "Size of the LMDB file.",
        si.file_bytes);
    one(o, "zkfs_store_reserve_refusals_total", "counter",
        "Writes refused with ENOSPC at the disk reserve "
        "(ZKFS_DISK_RESERVE_BYTES).", si.reserve_refusals);
    one(o, "zkfs_store_at_reserve", "gauge",
        "1 while the store refuses writes that add data (disk or map at "
        "its reserve).", (uint64_t)si.at_reserve);
}

/* A histogram from non-cumulative counts le[0..n) whose upper bounds
 * are le_ns[0..n-1) (the last bucket is +Inf); Prometheus wants the
 * buckets cumulative. */
static void histogram(struct out *o, const char *name, const char *help,
                      const uint64_t *le_ns, size_t n, const uint64_t *le,
                      uint64_t count, uint64_t sum_ns)
{
    uint64_t cum = 0;

    family(o, name, "histogram", help);
    for (size_t b = 0; b < n; b++) {
        cum += le[b];
        if (b + 1 < n)
            put(o, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name,
                (double)le_ns[b] / 1e9, cum);
        else
            put(o, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cum);
    }
    put(o, "%s_sum %.6f\n", name, (double)sum_ns / 1e9);
    put(o, "%s_count %" PRIu64 "\n", name, count);
}

static void render_latency(struct out *o, const struct zk_fs *fs,
                           const struct zk_replica_status *rs)
{
    struct zk_store_fsync_stats fst;

    histogram(o, "zkfs_commit_latency_seconds",
              "From proposal to answer (committed by a quorum and applied "
              "here, or failed), for this mount's writes.", lat_le_ns,
              ZK__FS_LAT_BUCKETS, fs->commit_le, fs->commit_count,
              fs->commit_sum_ns);
    histogram(o, "zkfs_echo_barrier_wait_seconds",
              "How long answers waited for the echo thread to finish what "
              "was queued before them (a new file's close(), control file "
              "answers, appends): the kernel's caches invalidated first.",
              lat_le_ns, ZK__FS_LAT_BUCKETS, fs->barrier_le,
              fs->barrier_count, fs->barrier_sum_ns);
    zk_store_fsync_stats(fs->store, &fst);
    histogram(o, "zkfs_fsync_duration_seconds",
              "Durations of the store's commits (pages written, data and "
              "meta page fsynced), every batch of this replica.",
              zk_store_fsync_le_ns, ZK_STORE_FSYNC_BUCKETS, fst.le,
              fst.count, fst.sum_ns);
    histogram(o, "zkfs_election_duration_seconds",
              "From this replica going looking for a leader to an "
              "established one (leading with a quorum, or synced with it).",
              zk_replica_election_le_ns, ZK_REPLICA_ELECTION_BUCKETS,
              rs->election_le, rs->election_count, rs->election_sum_ns);
}

/* fs/listing.c's kept directory listings. */
static void render_listings(struct out *o, const struct zk__fs_lcache *lc)
{
    one(o, "zkfs_listings_kept", "gauge",
        "Directory listings the daemon keeps (fs/listing.c).", lc->count);
    one(o, "zkfs_listing_bytes", "gauge",
        "Bytes of the listings kept (bounded: least recently listed "
        "out first).", lc->bytes);
    family(o, "zkfs_listings_total", "counter",
           "Listings an open directory read: from a kept one (hit), read "
           "from the store and kept (miss), read for that open directory "
           "only (private: pending creates or hidden ephemerals in it).");
    put(o, "zkfs_listings_total{source=\"hit\"} %" PRIu64 "\n"
        "zkfs_listings_total{source=\"miss\"} %" PRIu64 "\n"
        "zkfs_listings_total{source=\"private\"} %" PRIu64 "\n",
        lc->hits, lc->misses, lc->private_reads);
    one(o, "zkfs_listing_patches_total", "counter",
        "Creates, deletes and renames patched into kept listings.",
        lc->patched);
    one(o, "zkfs_listing_evictions_total", "counter",
        "Kept listings dropped to stay within the bound.", lc->evicted);
    one(o, "zkfs_listing_mismatches_total", "counter",
        "Kept listings dropped because a change did not fit them (a bug: "
        "logged).", lc->dropped);
}

static void render_fs(struct out *o, struct zk_fs *fs)
{
    struct timespec now;

    family(o, "zkfs_fuse_requests_total", "counter",
           "FUSE requests this mount read, by operation.");
    for (int i = 1; i < ZK__FS_OPCODE_MAX; i++)
        if (opcode_names[i] && fs->requests[i])
            put(o, "zkfs_fuse_requests_total{op=\"%s\"} %" PRIu64 "\n",
                opcode_names[i], fs->requests[i]);
    if (fs->requests[0])
        put(o, "zkfs_fuse_requests_total{op=\"other\"} %" PRIu64 "\n",
            fs->requests[0]);
    family(o, "zkfs_fuse_errors_total", "counter",
           "FUSE requests answered with an error (ENOENT of a lookup "
           "included), by operation.");
    for (int i = 0; i < ZK__FS_OPCODE_MAX; i++)
        if (fs->errors[i])
            put(o, "zkfs_fuse_errors_total{op=\"%s\"} %" PRIu64 "\n",
                opcode_names[i] ? opcode_names[i] : "other", fs->errors[i]);
    one(o, "zkfs_transactions_applied_total", "counter",
        "Transactions applied here (committed, in zxid order).",
        fs->txns_applied);
    one(o, "zkfs_transaction_bytes_applied_total", "counter",
        "Bytes of the transactions applied here (as encoded in the log).",
        fs->txn_bytes_applied);
    one(o, "zkfs_transactions_failed_total", "counter",
        "Applied transactions whose operations failed (e.g. EEXIST).",
        fs->txns_failed);
    one(o, "zkfs_operations_applied_total", "counter",
        "Operations in the transactions applied here.", fs->ops_applied);
    one(o, "zkfs_znode_changes_total", "counter",
        "Znode changes applied here (what watches report).",
        fs->changes_applied);
    family(o, "zkfs_watch_replays_total", "counter",
           "Changes made elsewhere (other replicas, zkfs commands, session "
           "expiry) acted out through the mount so that inotify watchers "
           "see them, by result.");
    put(o, "zkfs_watch_replays_total{result=\"ok\"} %" PRIu64 "\n"
        "zkfs_watch_replays_total{result=\"failed\"} %" PRIu64 "\n",
        (uint64_t)atomic_load(&fs->echo.replays),
        (uint64_t)atomic_load(&fs->echo.replays_failed));
    one(o, "zkfs_echo_local_skipped_total", "counter",
        "Data commits of a writer on this mount answered without a kernel "
        "invalidation: its own writes had marked size and times stale "
        "(fs/file.c, local_inval_needed).", fs->echo.local_skipped);
    one(o, "zkfs_echo_dropped_total", "counter",
        "Kernel invalidations dropped (echo queue full).", fs->echo.dropped);
    one(o, "zkfs_echo_queue_items", "gauge",
        "Kernel invalidations, replays and barriers the echo thread has "
        "not done yet, the one in progress included (a backlog: its "
        "replays lag the store by that much).",
        (uint64_t)zk__fs_echo_backlog(fs));
    one(o, "zkfs_provisional_creates_total", "counter",
        "Files created without O_EXCL, answered at once and committed "
        "with their data as one transaction (fs/prov.c).",
        fs->prov_created);
    one(o, "zkfs_provisional_creates_forced_total", "counter",
        "Of those, creates committed before the creator's close because "
        "another request on this mount needed the file to exist.",
        fs->prov_forced);
    one(o, "zkfs_ephemerals_given_up_total", "counter",
        "Own ephemerals hidden after the session was given up.",
        fs->lost_nodes);
    render_listings(o, &fs->listings);
    clock_gettime(CLOCK_REALTIME, &now);
    family(o, "zkfs_start_time_seconds", "gauge",
           "When the daemon started, seconds since the epoch.");
    put(o, "zkfs_start_time_seconds %lld\n", (long long)fs->started.tv_sec);
    family(o, "zkfs_info", "gauge", "The release and the mountpoint.");
    put(o, "zkfs_info{version=\"%s\"} 1\n", ZK_VERSION);
}

size_t zk__fs_metrics_render(struct zk_fs *fs, char *buf, size_t size)
{
    struct out o = {buf, size, 0};
    static struct zk_replica_status rs;   /* large; loop thread only */

    if (size)
        buf[0] = '\0';
    zk_replica_status(fs->replica, &rs);
    render_replica(&o, &rs);
    render_members(&o, &rs);
    render_store(&o, fs);
    render_latency(&o, fs, &rs);
    render_fs(&o, fs);
    return o.len;
}

/* ======================== the file ====================================== */

struct metrics_fh {
    struct zk__fs_handle hd;       /* first: on the daemon's list */
    size_t len;
    char text[];
};

static void attr(const struct zk_fs *fs, struct stat *out)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);           /* a fresh scrape */
    zk__fs_special_attr(fs, ZK_METRICS_INO, 0444, now, out);
}

void zk__fs_metrics_lookup(fuse_req_t req)
{
    struct fuse_entry_param e;

    memset(&e, 0, sizeof(e));
    e.ino = ZK_METRICS_INO;
    e.generation = 1;
    attr(fuse_req_userdata(req), &e.attr);   /* timeouts 0: always fresh */
    fuse_reply_entry(req, &e);
}

void zk__fs_metrics_getattr(fuse_req_t req)
{
    struct stat a;

    attr(fuse_req_userdata(req), &a);
    fuse_reply_attr(req, &a, 0);
}

static void fh_destroy(struct zk__fs_handle *h)
{
    free(h);
}

void zk__fs_metrics_open(fuse_req_t req, struct fuse_file_info *fi)
{
    struct zk_fs *fs = fuse_req_userdata(req);
    static char text[ZK_METRICS_MAX_BYTES];

    if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
        fuse_reply_err(req, EACCES);
        return;
    }
    size_t n = zk__fs_metrics_render(fs, text, sizeof(text));
    if (n >= sizeof(text))
        n = sizeof(text) - 1;      /* cut: never with 16 members */
    struct metrics_fh *fh = malloc(sizeof(*fh) + n);
    if (fh == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    fh->len = n;
    memcpy(fh->text, text, n);
    fi->fh = (uintptr_t)fh;
    fi->direct_io = 1;
    fi->keep_cache = 0;
    if (fuse_reply_open(req, fi) != 0)
        free(fh);
    else
        zk__fs_handle_add(fs, &fh->hd, fh_destroy);
}

void zk__fs_metrics_read(fuse_req_t req, size_t size, off_t off,
                         struct fuse_file_info *fi)
{
    const struct metrics_fh *fh = (const struct metrics_fh *)(uintptr_t)fi->fh;

    if (off < 0 || (size_t)off >= fh->len) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    size_t n = fh->len - (size_t)off;
    fuse_reply_buf(req, fh->text + off, n < size ? n : size);
}

void zk__fs_metrics_release(fuse_req_t req, struct fuse_file_info *fi)
{
    struct metrics_fh *fh = (struct metrics_fh *)(uintptr_t)fi->fh;

    zk__fs_handle_del(&fh->hd);
    free(fh);
    fuse_reply_err(req, 0);
}
