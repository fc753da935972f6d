/*
 * echo.c — the echo thread: the only thread that talks to the kernel about
 * the mount outside of request replies.
 *
 * For every applied transaction (zk_replica's `applied` callback, on the
 * loop thread) the loop queues, in zxid order, the kernel cache
 * invalidations the changes call for — only for inodes the kernel holds
 * (lookup count > 0). The echo thread sends them with
 * fuse_lowlevel_notify_*. It also deletes released ephemerals with a real
 * unlink() through the mountpoint, so local inotify watchers see IN_DELETE;
 * the UNLINK handler recognizes those requests by the thread id (see
 * zk__fs_is_echo) and deletes by the held inode, so a node that replaced
 * the ephemeral under the same name survives. An unlink that fails is
 * handed back to the loop, which proposes the delete directly.
 *
 * Why a thread: a notification or a syscall on the mount made from the
 * loop thread deadlocks as soon as the kernel needs a reply the loop would
 * have to send (FUSE-FACTS.md). The echo thread only ever waits on its own
 * queue and on the kernel, never answers a request, and the loop never
 * waits for it — except at shutdown, where the loop keeps serving requests
 * until the echo thread has left (zk__fs_stop).
 */
#include "fs_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* queue                                                                     */
/* ------------------------------------------------------------------------ */

static struct zk__fs_echo_item *item_new(uint8_t kind, uint64_t ino,
                                         uint64_t parent, const char *name)
{
    size_t n = name ? strlen(name) : 0;
    struct zk__fs_echo_item *it = malloc(sizeof(*it) + n + 1);
    if (!it)
        return NULL;
    it->next = NULL;
    it->kind = kind;
    it->ino = ino;
    it->parent = parent;
    memcpy(it->name, name ? name : "", n + 1);
    return it;
}

/* Queues one piece of work for the echo thread. Dropped (counted, logged)
 * when the thread is stopping or ZK__FS_ECHO_QUEUE_MAX items wait. Loop
 * thread. */
void zk__fs_echo_push(struct zk_fs *fs, enum zk__fs_echo_kind kind,
                      uint64_t ino, uint64_t parent, const char *name)
{
    struct zk__fs_echo *e = &fs->echo;
    if (!e->started)
        return;
    struct zk__fs_echo_item *it = item_new((uint8_t)kind, ino, parent, name);
    pthread_mutex_lock(&e->mu);
    if (!it || e->quit || e->len >= ZK__FS_ECHO_QUEUE_MAX) {
        e->dropped++;
        if (!e->quit && (e->dropped & (e->dropped - 1)) == 0)
            zk_log(ZK_LOG_WARN, "echo queue full: %llu invalidations "
                   "dropped", (unsigned long long)e->dropped);
        pthread_mutex_unlock(&e->mu);
        free(it);
        return;
    }
    if (e->tail)
        e->tail->next = it;
    else
        e->head = it;
    e->tail = it;
    e->len++;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

/* ------------------------------------------------------------------------ */
/* from applied changes to work                                              */
/* ------------------------------------------------------------------------ */

static int known(struct zk_fs *fs, uint64_t ino)
{
    return ino == ZK_INO_ROOT || zk__fs_inomap_get(&fs->inomap, ino) > 0;
}

static void inval_inode(struct zk_fs *fs, uint64_t ino)
{
    if (ino && known(fs, ino))
        zk__fs_echo_push(fs, ZK__ECHO_INVAL_INODE, ino, 0, NULL);
}

/* A name that went away (or now names another inode). */
static void inval_name(struct zk_fs *fs, uint64_t parent, const char *name,
                       uint64_t child)
{
    if (!known(fs, parent))
        return;
    if (child && known(fs, child))
        zk__fs_echo_push(fs, ZK__ECHO_DELETE, child, parent, name);
    else
        zk__fs_echo_push(fs, ZK__ECHO_INVAL_ENTRY, 0, parent, name);
}

static void change_work(struct zk_fs *fs, const struct zk_change *c)
{
    switch (c->kind) {
    case ZK_CHANGE_CREATE:
        /* No negative dentries are cached (ENOENT lookups carry no
         * timeout), so only the parent's attributes and listing change. */
        inval_inode(fs, c->parent);
        break;
    case ZK_CHANGE_DELETE:
        inval_name(fs, c->parent, c->name, c->ino);
        inval_inode(fs, c->parent);
        break;
    case ZK_CHANGE_DATA:
    case ZK_CHANGE_ATTR:
        inval_inode(fs, c->ino);
        break;
    case ZK_CHANGE_RENAME:
        if (known(fs, c->parent))
            zk__fs_echo_push(fs, ZK__ECHO_INVAL_ENTRY, 0, c->parent,
                             c->name);
        inval_name(fs, c->parent2, c->name2, c->replaced_ino);
        inval_inode(fs, c->parent);
        if (c->parent2 != c->parent)
            inval_inode(fs, c->parent2);
        inval_inode(fs, c->ino);
        break;
    default:
        break;
    }
}

/* zk_replica's applied callback: queues the invalidations every change of
 * res calls for, in order. Loop thread. */
void zk__fs_echo_applied(void *arg, const struct zk_apply_result *res)
{
    struct zk_fs *fs = arg;
    for (uint32_t i = 0; i < res->nchanges; i++)
        change_work(fs, &res->changes[i]);
}

/* ------------------------------------------------------------------------ */
/* the thread                                                                */
/* ------------------------------------------------------------------------ */

/* Whether req was made by the echo thread (its unlink of a holder). */
int zk__fs_is_echo(struct zk_fs *fs, fuse_req_t req)
{
    int tid = atomic_load(&fs->echo.tid);
    return tid > 0 && fuse_req_ctx(req)->pid == (pid_t)tid;
}

static void give_back(struct zk_fs *fs, struct zk__fs_echo_item *it)
{
    pthread_mutex_lock(&fs->echo.mu);
    it->next = fs->echo.back_head;
    fs->echo.back_head = it;
    pthread_mutex_unlock(&fs->echo.mu);
    uv_async_send(&fs->echo.back_async);
}

/* Deletes a released ephemeral through the mount. Returns 1 when it is
 * handed back to the loop (it then owns it). */
static int do_unlink(struct zk_fs *fs, struct zk__fs_echo_item *it)
{
    char path[ZK_PATH_MAX + 1024];
    snprintf(path, sizeof(path), "%s%s", fs->opts->mountpoint, it->name);
    atomic_store(&fs->echo.unlink_ino, it->ino);
    int rc = unlink(path);
    int err = errno;
    atomic_store(&fs->echo.unlink_ino, 0);
    if (rc == 0)
        return 0;
    zk_log(ZK_LOG_DEBUG, "echo unlink %s: %s; proposing directly", path,
           strerror(err));
    give_back(fs, it);
    return 1;
}

static void do_item(struct zk_fs *fs, struct zk__fs_echo_item *it)
{
    int rc = 0;
    switch (it->kind) {
    case ZK__ECHO_INVAL_INODE:
        rc = fuse_lowlevel_notify_inval_inode(fs->se, it->ino, 0, 0);
        break;
    case ZK__ECHO_INVAL_ENTRY:
        rc = fuse_lowlevel_notify_inval_entry(fs->se, it->parent, it->name,
                                              strlen(it->name));
        break;
    case ZK__ECHO_DELETE:
        rc = fuse_lowlevel_notify_delete(fs->se, it->parent, it->ino,
                                         it->name, strlen(it->name));
        break;
    case ZK__ECHO_UNLINK:
        if (do_unlink(fs, it))
            return;
        break;
    default:
        break;
    }
    if (rc && rc != -ENOENT && rc != -ENOTDIR)
        zk_log(ZK_LOG_DEBUG, "echo notify %d ino %llu: %s", it->kind,
               (unsigned long long)it->ino, strerror(-rc));
    free(it);
}

static void *echo_main(void *arg)
{
    struct zk_fs *fs = arg;
    struct zk__fs_echo *e = &fs->echo;

    atomic_store(&e->tid, (int)gettid());
    pthread_mutex_lock(&e->mu);
    while (!e->quit) {
        struct zk__fs_echo_item *it = e->head;
        if (!it) {
            pthread_cond_wait(&e->cv, &e->mu);
            continue;
        }
        e->head = it->next;
        if (!e->head)
            e->tail = NULL;
        e->len--;
        pthread_mutex_unlock(&e->mu);
        do_item(fs, it);
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    atomic_store(&e->tid, -1);
    uv_async_send(&e->back_async);   /* tells zk__fs_stop we are gone */
    return NULL;
}

/* Loop side of the hand-back: proposes the deletes the echo thread could
 * not do, and finishes a stop once the thread has left. */
static void on_back(uv_async_t *h)
{
    struct zk_fs *fs = h->data;
    pthread_mutex_lock(&fs->echo.mu);
    struct zk__fs_echo_item *list = fs->echo.back_head;
    fs->echo.back_head = NULL;
    pthread_mutex_unlock(&fs->echo.mu);
    while (list) {
        struct zk__fs_echo_item *it = list;
        list = it->next;
        zk__fs_delete_ino(fs, it->ino);
        free(it);
    }
    if (fs->stopping && atomic_load(&fs->echo.tid) < 0)
        uv_stop(&fs->loop);
}

/* Starts the echo thread. Loop thread, before the mount serves. */
int zk__fs_echo_start(struct zk_fs *fs)
{
    struct zk__fs_echo *e = &fs->echo;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    int rc = uv_async_init(&fs->loop, &e->back_async, on_back);
    if (rc)
        return rc;
    e->back_async_init = 1;
    e->back_async.data = fs;
    atomic_store(&e->tid, 0);
    rc = pthread_create(&e->thread, NULL, echo_main, fs);
    if (rc)
        return -rc;
    e->started = 1;
    return 0;
}

/* Tells the echo thread to leave after its current item; queued work is
 * dropped. Returns whether the thread is still running (the loop must then
 * go on serving until on_back sees it gone). */
int zk__fs_echo_stop(struct zk_fs *fs)
{
    struct zk__fs_echo *e = &fs->echo;
    if (!e->started)
        return 0;
    pthread_mutex_lock(&e->mu);
    e->quit = 1;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return atomic_load(&e->tid) >= 0;
}

static void free_list(struct zk__fs_echo_item *it)
{
    while (it) {
        struct zk__fs_echo_item *next = it->next;
        free(it);
        it = next;
    }
}

/* Joins the thread and frees what is left. Loop thread, at take-down. */
void zk__fs_echo_join(struct zk_fs *fs)
{
    struct zk__fs_echo *e = &fs->echo;
    if (e->started) {
        zk__fs_echo_stop(fs);
        pthread_join(e->thread, NULL);
        e->started = 0;
        free_list(e->head);
        free_list(e->back_head);
        e->head = e->tail = e->back_head = NULL;
        pthread_cond_destroy(&e->cv);
        pthread_mutex_destroy(&e->mu);
    }
    if (e->back_async_init) {
        uv_close((uv_handle_t *)&e->back_async, NULL);
        e->back_async_init = 0;
    }
}
