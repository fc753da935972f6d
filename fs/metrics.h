/*
 * metrics.h — the metrics file MOUNTPOINT/.zkfs.prom: the replica's state
 * and counters in Prometheus' text exposition format (version 0.0.4),
 * readable with cat(1) and by node_exporter's textfile collector (through
 * a symbolic link to it in the collector's directory). Like the control
 * file it is found by lookup only, never listed, and cannot be written,
 * removed, renamed or created over. Each open takes one consistent
 * snapshot of the values; reads are served from it. Loop thread only.
 */
#ifndef ZK_METRICS_H
#define ZK_METRICS_H

#include "fs_int.h"

#define ZK_METRICS_NAME      ".zkfs.prom"
#define ZK_METRICS_INO       UINT64_C(0xfffffffffffffff0) /* never a znode's */
#define ZK_METRICS_MAX_BYTES (256 * 1024)  /* one rendering, at most */

/* Renders every metric of fs into buf (size bytes, NUL-terminated).
 * Returns the length, or the length it needed when that is >= size. */
size_t zk__fs_metrics_render(struct zk_fs *fs, char *buf, size_t size);

/* The replica's applied callback (fs.c): counts the transaction, then
 * hands it to zk__fs_echo_applied. */
void zk__fs_metrics_applied(void *arg, const struct zk_apply_result *res);

/* Counts one request read from /dev/fuse by its opcode (fs.c). */
void zk__fs_metrics_request(struct zk_fs *fs, const struct fuse_buf *b);

/* Puts a custom io under fs->se, once mounted (fs.c), that counts the
 * answers with an error by operation. Returns fuse_session_custom_io's
 * result (0 or a negative errno); without it the errors are not
 * counted and nothing else changes. */
int zk__fs_metrics_io(struct zk_fs *fs);

/* The FUSE handlers' part for ZK_METRICS_INO (ops.c, file.c). Each
 * replies exactly once. Opening for writing is refused (EACCES, root
 * too). */
void zk__fs_metrics_lookup(fuse_req_t req);
void zk__fs_metrics_getattr(fuse_req_t req);
void zk__fs_metrics_open(fuse_req_t req, struct fuse_file_info *fi);
void zk__fs_metrics_read(fuse_req_t req, size_t size, off_t off,
                         struct fuse_file_info *fi);
void zk__fs_metrics_release(fuse_req_t req, struct fuse_file_info *fi);

/* metrics_http.c: with opts.metrics_port, serves GET /metrics on
 * opts.metrics_host (default 127.0.0.1) from the loop. Returns 0 (also
 * when off) or a negative errno (-EINVAL: bad host; from libuv:
 * -EADDRINUSE, ...), logged. stop closes the server and every
 * connection; their memory goes in the close callbacks (run the loop). */
int zk__fs_metrics_http_start(struct zk_fs *fs);
void zk__fs_metrics_http_stop(struct zk_fs *fs);

#endif /* ZK_METRICS_H */
