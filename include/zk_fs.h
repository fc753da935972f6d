/*
 * zk_fs.h — the FUSE side: mounts the znode tree and serves it until it is
 * unmounted or told to stop.
 */
#ifndef ZK_FS_H
#define ZK_FS_H

struct zk_config;

struct zk_fs_opts {
    const char *mountpoint;     /* absolute path, an existing directory */
    const char *data_dir;       /* absolute path, an existing directory */
    const char *fuse_opts;      /* extra -o options, or NULL */
    int foreground;             /* log to stderr instead of syslog */
    int debug;                  /* FUSE debug output */
    int ready_fd;               /* >= 0: write one byte here once the mount
                                   serves requests, then close it */
    unsigned session_timeout_ms; /* standalone; an ensemble's is in config */
    const struct zk_config *config; /* NULL: standalone; else this server of
                                       an ensemble (zk_config.h) */
    unsigned metrics_port;      /* > 0: serve the metrics over HTTP here */
    const char *metrics_host;   /* ... bound to this address literal */
};

/* Opens the store in data_dir, starts the replica, mounts, and runs the
 * event loop until the filesystem is unmounted (zkfs umount, fusermount3
 * -u) or SIGINT/SIGTERM; then closes this replica's session, unmounts and
 * closes everything. Returns a process exit status: 0 after a clean stop,
 * 1 when set-up failed (the reason is logged). Main thread only. */
int zk_fs_run(const struct zk_fs_opts *opts);

/* `zkfs __watchdog PID DEV` (fs/watchdog.c), started by every daemon at
 * mount: aborts the FUSE connection DEV if daemon PID dies with a thread
 * stuck on its own mount. argv[0] is "__watchdog". Returns an exit
 * status. */
int zk_fs_watchdog_main(int argc, char **argv);

#endif /* ZK_FS_H */
