/*
 * notify.c — tells systemd (Type=notify) when the mount is ready and what
 * the replica is doing; the protocol is described in notify.h.
 *
 * Readiness is the moment the kernel's FUSE INIT is answered, the same
 * moment `zkfs mount` returns to its caller. After that a timer on the
 * loop compares the status text with the last one sent every
 * ZK_NOTIFY_PERIOD_MS and sends it when it changed, so `systemctl status`
 * shows "role follower, leader 2, stale no" as it is now. Sending is
 * best effort: a failure is logged once at debug level and never stops
 * the daemon.
 */
#include "fs_int.h"
#include "notify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ======================== the protocol ================================== */

int zk__notify_send(const char *addr, const char *msg)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = addr ? strlen(addr) : 0;

    if (n == 0 || n >= sizeof(sa.sun_path) || (addr[0] != '/' &&
                                                addr[0] != '@'))
        return -EINVAL;
    memcpy(sa.sun_path, addr, n);
    if (addr[0] == '@')
        sa.sun_path[0] = '\0';          /* abstract namespace */
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
                                (addr[0] == '/'));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    ssize_t sent = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL,
                          (struct sockaddr *)&sa, len);
    int err = sent < 0 ? -errno : 0;
    close(fd);
    return err;
}

int zk__notify(const char *msg)
{
    const char *addr = getenv("NOTIFY_SOCKET");

    return addr && *addr ? zk__notify_send(addr, msg) : 0;
}

void zk__notify_status(char *buf, size_t size, const char *role,
                       unsigned leader_id, int stale)
{
    snprintf(buf, size, "role %s, leader %u, stale %s", role, leader_id,
             stale ? "yes" : "no");
}

/* ======================== the daemon's side ============================= */

struct zk__fs_notify {
    uv_timer_t timer;
    struct zk_fs *fs;
    char last[ZK_NOTIFY_MSG_MAX];
};

/* Sends "READY=1\n" (when first) and STATUS= if it changed. */
static void send_status(struct zk__fs_notify *n, int first)
{
    struct zk_replica_status rs;
    char status[ZK_NOTIFY_MSG_MAX / 2], msg[ZK_NOTIFY_MSG_MAX];

    if (n->fs->replica == NULL)
        return;
    zk_replica_status(n->fs->replica, &rs);
    zk__notify_status(status, sizeof(status), rs.role, rs.leader_id,
                      rs.stale);
    if (!first && strcmp(status, n->last) == 0)
        return;
    snprintf(n->last, sizeof(n->last), "%s", status);
    snprintf(msg, sizeof(msg), "%sSTATUS=%s\n", first ? "READY=1\n" : "",
             status);
    int err = zk__notify(msg);
    if (err)
        zk_log(ZK_LOG_DEBUG, "sd_notify: %s", strerror(-err));
}

static void on_notify_timer(uv_timer_t *t)
{
    send_status(t->data, 0);
}

void zk__fs_notify_ready(struct zk_fs *fs)
{
    const char *addr = getenv("NOTIFY_SOCKET");

    if (addr == NULL || *addr == '\0' || fs->notify != NULL)
        return;
    struct zk__fs_notify *n = calloc(1, sizeof(*n));
    if (n == NULL) {
        zk__notify("READY=1\n");
        return;
    }
    n->fs = fs;
    send_status(n, 1);
    uv_timer_init(&fs->loop, &n->timer);
    n->timer.data = n;
    uv_timer_start(&n->timer, on_notify_timer, ZK_NOTIFY_PERIOD_MS,
                   ZK_NOTIFY_PERIOD_MS);
    uv_unref((uv_handle_t *)&n->timer);   /* never keeps the loop alive */
    fs->notify = n;
}

static void notify_closed(uv_handle_t *h)
{
    free(h->data);
}

void zk__fs_notify_stop(struct zk_fs *fs)
{
    if (fs->notify == NULL)
        return;
    uv_close((uv_handle_t *)&fs->notify->timer, notify_closed);
    fs->notify = NULL;
}
