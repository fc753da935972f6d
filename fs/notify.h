/*
 * notify.h — systemd's readiness protocol (sd_notify(3)), spoken without
 * libsystemd: one datagram of "KEY=VALUE\n" lines to the AF_UNIX socket
 * named by $NOTIFY_SOCKET (a path, or an abstract name written with a
 * leading '@'). Without $NOTIFY_SOCKET nothing is sent, so a daemon not
 * started by systemd behaves as before.
 *
 * zkfs sends READY=1 with STATUS= once the mount serves requests,
 * STATUS= again whenever the role, leader or staleness changes, and
 * STOPPING=1 when it starts to stop (fs/notify.c, zk__fs_stop).
 */
#ifndef ZK_NOTIFY_H
#define ZK_NOTIFY_H

#include <stddef.h>

#define ZK_NOTIFY_MSG_MAX    512   /* bytes of one notification */
#define ZK_NOTIFY_PERIOD_MS  1000  /* how often STATUS= is re-checked */

struct zk_fs;

/* Sends msg as one datagram to the socket named by addr (a path or
 * "@abstract"). Any thread. Returns 0, -EINVAL (addr empty, relative or
 * too long), or a negative errno from socket/sendto. */
int zk__notify_send(const char *addr, const char *msg);

/* Sends msg to $NOTIFY_SOCKET if it is set (0 without it). Any thread. */
int zk__notify(const char *msg);

/* The STATUS= text for a role: "role ROLE, leader N, stale yes|no" into
 * buf (size bytes). */
void zk__notify_status(char *buf, size_t size, const char *role,
                       unsigned leader_id, int stale);

/* Loop thread, fs.c: once the mount serves (READY=1 and the status, then
 * a timer that reports status changes), and at teardown (closes the
 * timer; its memory is freed in the close callback). Both do nothing
 * without $NOTIFY_SOCKET. */
void zk__fs_notify_ready(struct zk_fs *fs);
void zk__fs_notify_stop(struct zk_fs *fs);

#endif /* ZK_NOTIFY_H */
