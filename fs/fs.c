/*
 * fs.c — zk_fs_run: opens the store, starts the replica, mounts, and runs
 * the one libuv loop that serves FUSE requests and hears the replica's
 * answers; then takes everything down in reverse order.
 *
 * The /dev/fuse descriptor is non-blocking and polled by the loop: on
 * readable, up to ZK__FS_RECV_BATCH requests are received and processed,
 * until -EAGAIN. Every FUSE handler and every zk_replica callback therefore
 * runs on this one thread, and nothing here ever blocks on the mount (the
 * echo thread, echo.c, is the only one that touches it). Stopping: SIGINT,
 * SIGTERM, `zkfs umount` (ctl.c) or an external unmount (-ENODEV) end the
 * loop; then the replica closes this run's session (ephemerals go), the
 * mount is removed and the store closed.
 *
 * Also here: the map of inode lookup counts, which tells which inodes the
 * kernel knows and so which invalidations are worth sending.
 */
#include "cli.h"
#include "fs_int.h"
#include "metrics.h"
#include "notify.h"
#include "zk_config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* inode lookup counts                                                       */
/* ------------------------------------------------------------------------ */

#define INOMAP_MIN_CAP 1024

static size_t ino_home(uint64_t ino, size_t cap)
{
    return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
}

static size_t ino_find(const struct zk__fs_inomap *m, uint64_t ino)
{
    size_t i = ino_home(ino, m->cap);
    while (m->slots[i].ino != 0 && m->slots[i].ino != ino)
        i = (i + 1) & (m->cap - 1);
    return i;
}

/* Returns how many lookups of ino the kernel holds (0: unknown to it). */
uint64_t zk__fs_inomap_get(const struct zk__fs_inomap *m, uint64_t ino)
{
    if (m->cap == 0)
        return 0;
    return m->slots[ino_find(m, ino)].nlookup;
}

static int inomap_grow(struct zk__fs_inomap *m)
{
    size_t cap = m->cap ? m->cap * 2 : INOMAP_MIN_CAP;
    struct zk__fs_ino_slot *old = m->slots;
    size_t old_cap = m->cap;

    m->slots = calloc(cap, sizeof(*m->slots));
    if (!m->slots) {
        m->slots = old;
        return -ENOMEM;
    }
    m->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].ino)
            m->slots[ino_find(m, old[i].ino)] = old[i];
    free(old);
    return 0;
}

/* Counts n more kernel lookups of ino (a LOOKUP/CREATE/MKDIR/READDIRPLUS
 * reply). Returns 0 or -ENOMEM (the count is then lost: only an
 * invalidation is skipped later, nothing breaks). */
int zk__fs_inomap_add(struct zk__fs_inomap *m, uint64_t ino, uint64_t n)
{
    if ((m->len + 1) * 4 > m->cap * 3) {
        int rc = inomap_grow(m);
        if (rc)
            return rc;
    }
    size_t i = ino_find(m, ino);
    if (m->slots[i].ino == 0) {
        memset(&m->slots[i], 0, sizeof(m->slots[i]));
        m->slots[i].ino = ino;
        m->len++;
    }
    m->slots[i].nlookup += n;
    return 0;
}

/* Frees slot i (backward-shift deletion of linear probing). */
static void slot_del(struct zk__fs_inomap *m, size_t i)
{
    free(m->slots[i].st);
    free(m->slots[i].gone);
    size_t mask = m->cap - 1, j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (m->slots[j].ino == 0)
            break;
        size_t k = ino_home(m->slots[j].ino, m->cap);
        /* Move j into the hole at i unless its home lies in (i, j]. */
        int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    memset(&m->slots[i], 0, sizeof(m->slots[i]));
    m->len--;
}

/* Frees ino's slot if nothing keeps it: no lookup, no open file, no
 * provisional nodeid standing for it. */
static void slot_gc(struct zk__fs_inomap *m, uint64_t ino)
{
    size_t i = ino_find(m, ino);
    struct zk__fs_ino_slot *sl = &m->slots[i];
    if (sl->ino == ino && sl->nlookup == 0 && sl->nopen == 0 && !sl->alias)
        slot_del(m, i);
}

/* FORGET: drops n lookups; the slot is freed when none remain (a
 * committed inode's slot stays while a provisional nodeid stands for it
 * or a file of it is open; a provisional nodeid's alias is unlinked). */
void zk__fs_inomap_sub(struct zk__fs_inomap *m, uint64_t ino, uint64_t n)
{
    if (m->cap == 0)
        return;
    size_t i = ino_find(m, ino);
    if (m->slots[i].ino == 0)
        return;
    if (m->slots[i].nlookup > n) {
        m->slots[i].nlookup -= n;
        return;
    }
    m->slots[i].nlookup = 0;
    uint64_t alias = m->slots[i].alias;
    if (ZK__FS_IS_PROV(ino) || !alias) {
        slot_del(m, i);
        if (ZK__FS_IS_PROV(ino) && alias) {
            size_t k = ino_find(m, alias);
            if (m->slots[k].ino == alias && m->slots[k].alias == ino) {
                m->slots[k].alias = 0;
                slot_gc(m, alias);
            }
        }
    }
}

int zk__fs_inomap_link(struct zk__fs_inomap *m, uint64_t pino, uint64_t ino)
{
    int rc = zk__fs_inomap_add(m, ino, 0);
    size_t p = m->cap ? ino_find(m, pino) : 0;
    if (rc || m->slots[p].ino != pino) {
        if (rc == 0)
            slot_gc(m, ino);
        return rc ? rc : -ENOENT;
    }
    m->slots[p].alias = ino;
    m->slots[ino_find(m, ino)].alias = pino;
    return 0;
}

uint64_t zk__fs_inomap_alias(const struct zk__fs_inomap *m, uint64_t ino)
{
    if (m->cap == 0)
        return 0;
    const struct zk__fs_ino_slot *sl = &m->slots[ino_find(m, ino)];
    return sl->ino == ino ? sl->alias : 0;
}

void zk__fs_inomap_mark_user(struct zk__fs_inomap *m, uint64_t ino)
{
    if (m->cap == 0)
        return;
    struct zk__fs_ino_slot *sl = &m->slots[ino_find(m, ino)];
    if (sl->ino == ino)
        sl->user = 1;
}

int zk__fs_inomap_user(const struct zk__fs_inomap *m, uint64_t ino)
{
    if (m->cap == 0)
        return 0;
    const struct zk__fs_ino_slot *sl = &m->slots[ino_find(m, ino)];
    if (sl->ino != ino)
        return 0;
    if (sl->user)
        return 1;
    if (!sl->alias)
        return 0;
    const struct zk__fs_ino_slot *al = &m->slots[ino_find(m, sl->alias)];
    return al->ino == sl->alias && al->user;
}

/* An open file of st->ino: its stat is kept, so that fstat still works
 * after the node was deleted or replaced (the kernel's GETATTR carries no
 * file handle). The kernel holds a lookup of every open inode, so its
 * slot exists. The stat's memory stays with the slot once no file is
 * open (a get opens the same inode again and again), valid only while
 * nopen > 0. */
void zk__fs_inomap_open(struct zk__fs_inomap *m, const struct zk_stat *st)
{
    if (m->cap == 0)
        return;
    struct zk__fs_ino_slot *sl = &m->slots[ino_find(m, st->ino)];
    if (sl->ino != st->ino)
        return;
    if (!sl->st && !(sl->st = malloc(sizeof(*sl->st))))
        return;
    *sl->st = *st;
    sl->nopen++;
}

/* The release of an open file of ino. */
void zk__fs_inomap_close(struct zk__fs_inomap *m, uint64_t ino)
{
    if (m->cap == 0)
        return;
    struct zk__fs_ino_slot *sl = &m->slots[ino_find(m, ino)];
    if (sl->ino != ino || sl->nopen == 0)
        return;
    if (--sl->nopen == 0)
        slot_gc(m, ino);
}

/* ino's slot, or NULL if the kernel does not hold ino. */
static struct zk__fs_ino_slot *slot_of(const struct zk__fs_inomap *m,
                                       uint64_t ino)
{
    if (m->cap == 0)
        return NULL;
    struct zk__fs_ino_slot *sl = &m->slots[ino_find(m, ino)];
    return sl->ino == ino ? sl : NULL;
}

/* Adds delta (1 or -1) to a count of open files, never below 0. */
static void count_add(uint32_t *n, int delta)
{
    if (delta > 0 || *n > 0)
        *n = (uint32_t)((int)*n + delta);
}

/* An open file for writing of ino came (delta 1) or went (-1). */
void zk__fs_inomap_writer(struct zk__fs_inomap *m, uint64_t ino, int delta)
{
    struct zk__fs_ino_slot *sl = slot_of(m, ino);
    if (sl)
        count_add(&sl->nwriters, delta);
}

uint32_t zk__fs_inomap_writers(const struct zk__fs_inomap *m, uint64_t ino)
{
    const struct zk__fs_ino_slot *sl = slot_of(m, ino);
    return sl ? sl->nwriters : 0;
}

void zk__fs_inomap_appender(struct zk__fs_inomap *m, uint64_t ino, int delta)
{
    struct zk__fs_ino_slot *sl = slot_of(m, ino);
    if (sl)
        count_add(&sl->nappend, delta);
}

uint32_t zk__fs_inomap_appenders(const struct zk__fs_inomap *m, uint64_t ino)
{
    const struct zk__fs_ino_slot *sl = slot_of(m, ino);
    return sl ? sl->nappend : 0;
}

void zk__fs_inomap_gone(struct zk__fs_inomap *m, const struct zk_stat *st)
{
    struct zk__fs_ino_slot *sl = st->ino ? slot_of(m, st->ino) : NULL;
    if (!sl || (sl->nlookup == 0 && !sl->alias))
        return;         /* (the kernel may hold it as a provisional one) */
    if (!sl->gone && !(sl->gone = malloc(sizeof(*sl->gone))))
        return;
    *sl->gone = *st;
}

const struct zk_stat *zk__fs_inomap_kept_stat(const struct zk__fs_inomap *m,
                                              uint64_t ino,
                                              const struct zk_stat *open_st)
{
    const struct zk__fs_ino_slot *sl = slot_of(m, ino);
    if (sl && sl->gone)
        return sl->gone;
    if (open_st)
        return open_st;
    return sl && sl->nopen ? sl->st : NULL;
}

void zk__fs_inomap_free(struct zk__fs_inomap *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free(m->slots[i].st);
        free(m->slots[i].gone);
    }
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------------------ */
/* handles                                                                   */
/* ------------------------------------------------------------------------ */

/* Lists h (opened and answered) with its destructor. */
void zk__fs_handle_add(struct zk_fs *fs, struct zk__fs_handle *h,
                       void (*destroy)(struct zk__fs_handle *h))
{
    h->destroy = destroy;
    h->next = fs->handles.next;
    h->prev = &fs->handles;
    fs->handles.next->prev = h;
    fs->handles.next = h;
}

/* Takes h off the list (harmless if it never was on it, once zeroed or
 * pointing to itself). */
void zk__fs_handle_del(struct zk__fs_handle *h)
{
    if (!h->next || h->next == h)
        return;
    h->prev->next = h->next;
    h->next->prev = h->prev;
    h->prev = h->next = h;
}

/* Frees what the kernel never released. */
static void handles_free(struct zk_fs *fs)
{
    while (fs->handles.next != &fs->handles) {
        struct zk__fs_handle *h = fs->handles.next;
        zk__fs_handle_del(h);
        h->destroy(h);
    }
}

/* ------------------------------------------------------------------------ */
/* the loop                                                                  */
/* ------------------------------------------------------------------------ */

/* The echo thread did not leave: it waits, inside a syscall or a
 * notification on the mount, for something no request answer will give.
 * Aborting the connection fails every pending request and notification,
 * so it returns and leaves (on_back then ends the loop). */
static void on_stop_timeout(uv_timer_t *t)
{
    struct zk_fs *fs = t->data;
    unsigned minor = 0;
    char dev[32];
    int err = zk__mount_dev(fs->opts->mountpoint, &minor);
    if (err == 0) {
        snprintf(dev, sizeof(dev), "%u", minor);
        err = zk__fs_abort_connection(dev);
    }
    zk_log(ZK_LOG_ERROR, "stopping: the echo thread is still on the mount "
           "after %d ms; %s%s", ZK__FS_STOP_WAIT_MS,
           err ? "aborting the FUSE connection failed: "
               : "FUSE connection aborted (its pending requests fail)",
           err ? zk_strerror(err) : "");
    if (err)
        uv_stop(&fs->loop);
}

/* Ends the loop; zk_fs_run then takes everything down. The loop goes on
 * serving requests until the echo thread has left, because the thread may
 * be inside a syscall on the mount that only the loop can answer. Loop
 * thread. */
void zk__fs_stop(struct zk_fs *fs)
{
    if (fs->stopping)
        return;
    fs->stopping = 1;
    zk_log(ZK_LOG_INFO, "stopping: unmounting %s", fs->opts->mountpoint);
    zk__notify("STOPPING=1\n");        /* systemd, notify.c */
    if (!zk__fs_echo_stop(fs)) {
        uv_stop(&fs->loop);
        return;
    }
    /* A safety net: should the thread wait for something no request
     * answer will ever give (BUGS.md 5 was such a deadlock), the stop
     * still ends; closing /dev/fuse at take-down frees the thread. */
    if (uv_timer_init(&fs->loop, &fs->stop_timer) == 0) {
        fs->stop_timer_init = 1;
        fs->stop_timer.data = fs;
        uv_timer_start(&fs->stop_timer, on_stop_timeout, ZK__FS_STOP_WAIT_MS, 0);
    }
}

/* The kernel ended the connection (unmounted or aborted): leave as
 * `zkfs umount` does (leave.c). */
static void fuse_gone(struct zk_fs *fs)
{
    fs->gone = 1;
    if (fs->poll_init)
        uv_poll_stop(&fs->poll);
    zk__fs_leave(fs);
}

static void on_fuse_readable(uv_poll_t *h, int status, int events);

/* Stops reading requests until the matching zk__fs_resume: a commit the
 * kernel no longer waits for (made at RELEASE) must be applied before any
 * later request of the same process is served, or it could read the old
 * value. Nests. Loop thread. */
void zk__fs_pause(struct zk_fs *fs)
{
    if (fs->paused++ == 0 && fs->poll_init && !fs->gone)
        uv_poll_stop(&fs->poll);
}

void zk__fs_resume(struct zk_fs *fs)
{
    ZK_ASSERT(fs->paused > 0);
    if (--fs->paused == 0 && fs->poll_init && !fs->gone)
        uv_poll_start(&fs->poll, UV_READABLE, on_fuse_readable);
}

static void on_fuse_readable(uv_poll_t *h, int status, int events)
{
    struct zk_fs *fs = h->data;
    (void)events;

    if (status < 0) {
        /* POLLERR (reported as UV_EBADF): the mount is gone. */
        zk_log(status == UV_EBADF ? ZK_LOG_INFO : ZK_LOG_ERROR,
               "/dev/fuse: %s: connection ended",
               status == UV_EBADF ? "unmounted" : uv_strerror(status));
        fuse_gone(fs);
        return;
    }
    for (int i = 0; i < ZK__FS_RECV_BATCH && !fs->paused; i++) {
        int rc = fuse_session_receive_buf(fs->se, &fs->fbuf);
        if (rc == -EAGAIN)
            return;
        if (rc == -EINTR)
            continue;
        if (rc <= 0 || fuse_session_exited(fs->se)) {
            if (rc < 0 && rc != -ENODEV)
                zk_log(ZK_LOG_ERROR, "reading /dev/fuse: %s", strerror(-rc));
            fuse_gone(fs);
            return;
        }
        zk__fs_metrics_request(fs, &fs->fbuf);
        fuse_session_process_buf(fs->se, &fs->fbuf);
        if (fuse_session_exited(fs->se)) {
            fuse_gone(fs);
            return;
        }
    }
}

/* SIGINT/SIGTERM: leave cleanly; a second one stops at once. */
static void on_signal(uv_signal_t *h, int signum)
{
    struct zk_fs *fs = h->data;

    zk_log(ZK_LOG_INFO, "signal %d", signum);
    if (fs->leaving)
        zk__fs_stop(fs);
    else
        zk__fs_leave(fs);
}

/* libfuse's messages go to zk_log. */
static void fuse_log_to_zk(enum fuse_log_level level, const char *fmt,
                           va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    if (n && msg[n - 1] == '\n')
        msg[n - 1] = '\0';
    enum zk_log_level l = level <= FUSE_LOG_ERR ? ZK_LOG_ERROR
                          : level <= FUSE_LOG_WARNING ? ZK_LOG_WARN
                          : level <= FUSE_LOG_INFO ? ZK_LOG_INFO
                                                   : ZK_LOG_DEBUG;
    zk_log(l, "fuse: %s", msg);
}

/* ------------------------------------------------------------------------ */
/* set-up and take-down                                                      */
/* ------------------------------------------------------------------------ */

/* allow_other needs root, or user_allow_other in /etc/fuse.conf. */
static int may_allow_other(void)
{
    if (geteuid() == 0)
        return 1;
    FILE *f = fopen("/etc/fuse.conf", "r");
    if (!f)
        return 0;
    char line[256];
    int ok = 0;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "user_allow_other", 16) == 0)
            ok = 1;
    fclose(f);
    return ok;
}

static int session_open(struct zk_fs *fs)
{
    const struct zk_fs_opts *o = fs->opts;
    char mopts[256];
    snprintf(mopts, sizeof(mopts), "default_permissions,fsname=zkfs,"
             "subtype=zkfs%s", may_allow_other() ? ",allow_other" : "");
    char *argv[8];
    int argc = 0;
    argv[argc++] = "zkfs";
    argv[argc++] = "-o";
    argv[argc++] = mopts;
    if (o->fuse_opts && *o->fuse_opts) {
        argv[argc++] = "-o";
        argv[argc++] = (char *)o->fuse_opts;
    }
    if (o->debug)
        argv[argc++] = "-d";
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);

    fs->se = fuse_session_new(&args, &zk__fs_ops, sizeof(zk__fs_ops), fs);
    fuse_opt_free_args(&args);
    if (!fs->se) {
        zk_log(ZK_LOG_ERROR, "cannot create the FUSE session (options?)");
        return -EINVAL;
    }
    if (fuse_session_mount(fs->se, o->mountpoint) != 0) {
        zk_log(ZK_LOG_ERROR, "cannot mount on %s", o->mountpoint);
        return -EIO;
    }
    fs->mounted = 1;
    if (zk__fs_metrics_io(fs) != 0)
        zk_log(ZK_LOG_WARN, "metrics: FUSE errors will not be counted");
    int fd = fuse_session_fd(fs->se);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

/* Before the loop waits: the store's kept read transaction (this
 * thread's, zk_store_reader_keep) lets go of a replaced version. */
static void on_idle(uv_prepare_t *h)
{
    struct zk_fs *fs = h->data;
    zk_store_reader_idle(fs->store);
}

static int loop_handles(struct zk_fs *fs)
{
    /* Every FUSE read is answered on this thread: one read transaction
     * for all of them while nothing is committed (zk_store.h). */
    zk_store_reader_keep(fs->store, 1);
    int rc = uv_prepare_init(&fs->loop, &fs->idle);
    if (rc)
        return rc;
    fs->idle_init = 1;
    fs->idle.data = fs;
    rc = uv_prepare_start(&fs->idle, on_idle);
    if (rc)
        return rc;
    rc = uv_poll_init(&fs->loop, &fs->poll, fuse_session_fd(fs->se));
    if (rc)
        return rc;
    fs->poll_init = 1;
    fs->poll.data = fs;
    rc = uv_poll_start(&fs->poll, UV_READABLE, on_fuse_readable);
    if (rc)
        return rc;
    uv_signal_init(&fs->loop, &fs->sigint);
    uv_signal_init(&fs->loop, &fs->sigterm);
    fs->signals_init = 1;
    fs->sigint.data = fs->sigterm.data = fs;
    rc = uv_signal_start(&fs->sigint, on_signal, SIGINT);
    if (rc == 0)
        rc = uv_signal_start(&fs->sigterm, on_signal, SIGTERM);
    return rc;
}

/* The replica's busy(): requests the kernel has queued for this loop, or
 * a reply waiting for the echo thread (whose replays are requests to this
 * loop). Replays nobody waits for do not count: inotify watchers see them
 * a batch later. */
static int loop_busy(void *arg)
{
    struct zk_fs *fs = arg;

    if (!fs->se)            /* not mounted yet: nobody waits */
        return 0;
    if (zk__fs_echo_waited_for(fs))
        return 1;
    struct pollfd p = {.fd = fuse_session_fd(fs->se), .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

static int start_replica(struct zk_fs *fs)
{
    struct zk_replica_opts ro = {
        .loop = &fs->loop,
        .store = fs->store,
        .applied = zk__fs_metrics_applied, /* then lock.c's, then echo.c's */
        .applied_arg = fs,
        .reset = zk__fs_reset,      /* lock.c: echo.c's, then waits */
        .session_lost = zk__fs_session_lost,
        .busy = loop_busy,
        .owner = fs->owner,
        .session_timeout_ms = fs->opts->session_timeout_ms,
    };
    int rc = fs->opts->config
                 ? zk_replica_start_ensemble(&ro, fs->opts->config,
                                             &fs->replica)
                 : zk_replica_start(&ro, &fs->replica);
    if (rc && fs->opts->config)
        uv_run(&fs->loop, UV_RUN_NOWAIT);  /* close what it had opened */
    if (rc)
        zk_log(ZK_LOG_ERROR, "cannot start the replica: %s", zk_strerror(rc));
    return rc;
}

/* An ensemble member mounts once it holds its session (so that the first
 * ephemeral create works), or after SESSION_WAIT_MS without one: then it
 * has no quorum, serves reads and fails writes until it finds one. */
#define SESSION_WAIT_MS 5000

static void session_poll(uv_timer_t *t)
{
    struct zk_fs *fs = t->data;
    uint64_t now = uv_now(&fs->loop);

    if (zk_replica_session(fs->replica) != 0 || now >= fs->session_deadline)
        uv_timer_stop(t);
}

static void wait_session(struct zk_fs *fs)
{
    uv_timer_t t;

    uv_timer_init(&fs->loop, &t);
    t.data = fs;
    fs->session_deadline = uv_now(&fs->loop) + SESSION_WAIT_MS;
    uv_timer_start(&t, session_poll, 10, 10);
    while (uv_is_active((uv_handle_t *)&t))
        uv_run(&fs->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&fs->loop, UV_RUN_NOWAIT);
    if (zk_replica_session(fs->replica) == 0)
        zk_log(ZK_LOG_WARN, "no quorum after %d ms: mounting anyway; reads "
               "are served, writes wait for a quorum", SESSION_WAIT_MS);
}

static int setup(struct zk_fs *fs)
{
    int rc = uv_loop_init(&fs->loop);
    if (rc)
        return rc;
    fs->loop_init = 1;
    rc = zk_store_open(fs->opts->data_dir, 1, &fs->store);
    if (rc) {
        zk_log(ZK_LOG_ERROR, "cannot open the store in %s: %s",
               fs->opts->data_dir, zk_strerror(rc));
        return rc;
    }
    rc = start_replica(fs);
    if (rc == 0 && fs->opts->config)
        wait_session(fs);
    if (rc == 0)
        rc = zk__fs_echo_start(fs);
    if (rc == 0)
        rc = session_open(fs);
    if (rc == 0)
        zk__fs_watchdog_start(fs);
    if (rc == 0)
        rc = loop_handles(fs);
    if (rc == 0)
        rc = zk__fs_metrics_http_start(fs);
    return rc;
}

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

/* Closes this run's session, unmounts, stops the echo thread and closes
 * the store. Idempotent pieces: each checks what setup got to. */
static void teardown(struct zk_fs *fs)
{
    /* First: their callbacks read the replica, which stops next. */
    zk__fs_notify_stop(fs);
    zk__fs_metrics_http_stop(fs);
    if (fs->replica)
        zk_replica_stop(fs->replica, 1);
    fs->replica = NULL;
    handles_free(fs);
    zk__fs_lock_session_lost(fs, 0);    /* waits still parked */
    if (fs->poll_init)
        uv_close((uv_handle_t *)&fs->poll, close_cb);
    if (fs->idle_init)
        uv_close((uv_handle_t *)&fs->idle, close_cb);
    if (fs->stop_timer_init)
        uv_close((uv_handle_t *)&fs->stop_timer, close_cb);
    if (fs->signals_init) {
        uv_close((uv_handle_t *)&fs->sigint, close_cb);
        uv_close((uv_handle_t *)&fs->sigterm, close_cb);
    }
    if (fs->se) {
        if (fs->mounted)
            fuse_session_unmount(fs->se);
        /* Closing /dev/fuse aborts whatever the echo thread still waits
         * for on the mount, so it can be joined afterwards. */
        fuse_session_destroy(fs->se);
        fs->se = NULL;
    }
    zk__fs_echo_join(fs);
    if (fs->loop_init) {
        uv_run(&fs->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&fs->loop) != 0)
            zk_log(ZK_LOG_WARN, "libuv loop still had handles at exit");
    }
    if (fs->store) {
        zk_store_reader_keep(fs->store, 0);
        zk_store_close(fs->store);
    }
    fs->store = NULL;
    free(fs->fbuf.mem);
    zk__fs_snapdiff_free(fs->snapdiff);
    fs->snapdiff = NULL;
    zk__fs_inomap_free(&fs->inomap);
    zk__fs_listing_free_all(fs);
}

int zk_fs_run(const struct zk_fs_opts *opts)
{
    /* Before any thread: a daemon logs to syslog, -f to stderr. */
    zk_log_setup(opts->debug ? ZK_LOG_DEBUG : ZK_LOG_INFO, !opts->foreground);
    struct zk_fs *fs = calloc(1, sizeof(*fs));
    if (!fs)
        return 1;
    fs->opts = opts;
    fs->handles.prev = fs->handles.next = &fs->handles;
    fs->provs.prev = fs->provs.next = &fs->provs;
    fs->ready_fd = opts->ready_fd;
    fs->uid = geteuid();
    fs->gid = getegid();
    clock_gettime(CLOCK_REALTIME, &fs->started);
    if (gethostname(fs->host, sizeof(fs->host)) != 0)
        snprintf(fs->host, sizeof(fs->host), "localhost");
    fs->host[sizeof(fs->host) - 1] = '\0';
    snprintf(fs->owner, sizeof(fs->owner), "%s:%ld", fs->host,
             (long)getpid());
    fuse_set_log_func(fuse_log_to_zk);
    signal(SIGPIPE, SIG_IGN);

    int rc = setup(fs);
    if (rc == 0) {
        zk_log(ZK_LOG_INFO, "mounted %s (data %s)", opts->mountpoint,
               opts->data_dir);
        uv_run(&fs->loop, UV_RUN_DEFAULT);
    } else {
        zk_log(ZK_LOG_ERROR, "set-up failed: %s", zk_strerror(rc));
        /* A daemon logs to syslog, but whoever started it is still
         * waiting on our stderr: tell them why too. */
        if (!opts->foreground)
            fprintf(stderr, "zkfs: cannot mount %s (data %s): %s\n",
                    opts->mountpoint, opts->data_dir, zk_strerror(rc));
    }
    teardown(fs);
    if (fs->ready_fd >= 0)
        close(fs->ready_fd);
    free(fs);
    return rc == 0 ? 0 : 1;
}
