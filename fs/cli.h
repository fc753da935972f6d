/*
 * cli.h — private to the `zkfs` command (fs/main.c, fs/cli.c): the client
 * side of the control-file protocol (include/zk_ctl.h), finding the zkfs
 * mount a path lies in, and the subcommands other than `mount`.
 *
 * Every zk__cli_* command takes the arguments after the command name
 * (argv[0] is the command name itself) and returns the process exit status:
 * 0 success, 1 runtime error (already reported on stderr as
 * "zkfs CMD: PATH: reason"), 2 usage error ("zkfs CMD: reason" plus a hint).
 * Nothing here is thread-safe; it runs on the command's only thread.
 */
#ifndef ZK_CLI_H
#define ZK_CLI_H

#include <limits.h>
#include <signal.h>
#include <stddef.h>

#include "zk_txn.h"
#include "zk_version.h"

#define ZK_CLI_UMOUNT_WAIT_MS 10000 /* how long `zkfs umount` waits */
#define ZK_CLI_POLL_MS        20    /* mountinfo polling interval   */

/* One response of the daemon: "<code>\t<message>\n" then body. */
struct zk_ctl_resp {
    int code;        /* 0 or a negative errno */
    char *msg;       /* NUL-terminated, no newline; never NULL */
    char *body;      /* NUL-terminated (body_len bytes before the NUL) */
    size_t body_len;
    char *buf_;      /* owns msg and body */
};

/* A filesystem path resolved to its mount and znode path. */
struct zk_cli_target {
    char mnt[PATH_MAX];      /* absolute mountpoint, no trailing '/' */
    char znode[ZK_PATH_MAX]; /* "/"-rooted znode path */
};

/* Opens MNT/.zkfs for read and write with O_CLOEXEC. Returns the fd or a
 * negative errno (-ENOTCONN for a dead daemon). */
int zk__ctl_open(const char *mnt);

/* One exchange on fd: writes the request (length prefix, hdr which must end
 * in '\n', then payload of len bytes) and reads the response until EOF.
 * *out is written only on success and then owns memory freed with
 * zk__ctl_resp_free. Returns 0 (even when the daemon answered an error:
 * see out->code) or a negative errno when the exchange itself failed
 * (-EMSGSIZE: request over ZK_CTL_REQ_MAX or response over
 * ZK_CTL_RESP_MAX, -EPROTO: malformed response). */
int zk__ctl_call(int fd, const char *hdr, const void *payload, size_t len,
                 struct zk_ctl_resp *out);
void zk__ctl_resp_free(struct zk_ctl_resp *r);
/* Writes all of p[0..len) to fd (EINTR retried). 0 or a negative errno. */
int zk__cli_write_all(int fd, const uint8_t *p, size_t len);

/* The request half of zk__ctl_call: for a response read by the caller
 * (zkfs snapshot save streams one of any size). */
int zk__ctl_send(int fd, const char *hdr, const void *payload, size_t len);

/* One line of `zkfs txn` input. arg and data point into the input buffer. */
struct zk__cli_txn_op {
    struct zk_op op;
    const char *name;   /* the operation's word: create, set, rm, check */
    char *arg;          /* PATH as written */
    char *znode;        /* malloc'd znode path (zkfs txn sets it later) */
    int line;
};

/* Parses `zkfs txn` input: in is NUL-terminated and cut into words in
 * place (ops point into it); ops has room for ZK_TXN_OPS_MAX. On success
 * returns 0 with the ops and *nops (at least 1). Otherwise -EINVAL with
 * *line_out (the line at fault, 0 for the input as a whole) and *why_out
 * (a static string). op.path is not set: PATH must still be resolved
 * (arg). Pure; not thread-safe (why_out may point to a static buffer). */
int zk__cli_txn_parse(char *in, struct zk__cli_txn_op *ops, uint32_t *nops,
                      int *line_out, const char **why_out);

/* Finds the mount of type fuse.zkfs holding path (a filesystem path,
 * relative to the current directory or absolute, that may name something
 * not yet existing) and the znode path it names. *out written only on
 * success. Errors: -ENOENT/-ENOTCONN/... from resolving the path,
 * -EXDEV when the path is not inside a zkfs mount, -ENAMETOOLONG. */
int zk__cli_resolve(const char *path, struct zk_cli_target *out);

/* Whether abs (an absolute, canonical path) is a mountpoint according to
 * /proc/self/mountinfo. If fstype is not NULL, it receives the type
 * (size bytes). Returns 1, 0, or a negative errno. */
int zk__mount_lookup(const char *abs, char *fstype, size_t size);

/* As zk__mount_lookup, but only a mount that a lookup of abs reaches: a
 * mount hidden under another one mounted over a parent directory (still
 * listed in mountinfo, e.g. in a private mount namespace with a bind
 * mount over /mnt) does not count. Stats abs: never call it on the
 * daemon's own mount from the thread that serves it. */
int zk__mount_reached(const char *abs, char *fstype, size_t size);

/* The device minor number of the mount AT abs (FUSE's connection number
 * in /sys/fs/fuse/connections). Returns 0, -ENOENT (not a mountpoint), or
 * a negative errno. */
int zk__mount_dev(const char *abs, unsigned *minor);

/* Prints "zkfs CMD: reason" and "Try 'zkfs CMD --help'." on stderr and
 * returns 2. */
int zk__cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "zkfs CMD: what: reason" on stderr and returns 1. err is a
 * negative errno; msg (may be NULL or empty) overrides strerror. */
int zk__cli_fail(const char *cmd, const char *what, int err, const char *msg);

/* The subcommands. */
int zk__cli_umount(int argc, char **argv);
int zk__cli_status(int argc, char **argv);
int zk__cli_create(int argc, char **argv);
int zk__cli_set(int argc, char **argv);
int zk__cli_rm(int argc, char **argv);
int zk__cli_stat(int argc, char **argv);
int zk__cli_sync(int argc, char **argv);
int zk__cli_txn(int argc, char **argv);
/* fs/version.c: the release and format versions. */
int zk__cli_version(int argc, char **argv);

int zk__cli_locks(int argc, char **argv);    /* cli_locks.c */
int zk__cli_snapshot(int argc, char **argv); /* cli_snapshot.c */
int zk__cli_check(int argc, char **argv);    /* cli_check.c */

/* cli_hold.c: holds create -e's node through the control descriptor fd
 * while cmdv runs (NULL: until SIGINT/SIGTERM/SIGHUP), forwarding those
 * signals; stops cmdv (SIGTERM, then SIGKILL) when node, its path through
 * the mount, is lost. set must be blocked already (old: the mask to give
 * cmdv). Closes fd. Returns the exit status. */
int zk__cli_hold(int fd, char **cmdv, const sigset_t *set,
                 const sigset_t *old, const char *node);

/* Usage texts, for `zkfs help CMD` and `zkfs CMD --help`. Returns NULL for
 * an unknown command. */
const char *zk__cli_usage(const char *cmd);

#endif /* ZK_CLI_H */
