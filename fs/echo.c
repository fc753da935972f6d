/*
 * echo.c — the echo thread: the only thread that talks to the kernel about
 * the mount outside of request replies.
 *
 * For every applied transaction (zk_replica's `applied` callback, on the
 * loop thread) the loop stages, in zxid order, the kernel cache
 * invalidations its changes call for — only for inodes the kernel holds
 * (lookup count > 0) — and, for changes no local syscall made (control
 * file requests, other replicas, session expiry), a replay: the echo
 * thread makes the matching syscall through the mountpoint (mknod/mkdir,
 * unlink/rmdir, rename, open + write + close, utimensat), which is the
 * only way to make inotify report a change (FUSE-FACTS.md). The handlers
 * of those syscalls know the
 * echo thread by its thread id and answer from the item it acts out
 * (zk__fs_echo_cur) without proposing anything. The done callback of every
 * proposal a syscall made takes its transaction's replays back
 * (zk__fs_echo_local); what is left is handed to the thread once per loop
 * iteration (a uv_check handle), into two queues: invalidations and
 * barriers, which the thread acts out first, and replays, one at a time
 * when the first queue is empty; so the kernel's caches follow the store
 * while the inotify events may lag (docs/filesystem.md, "Two queues").
 *
 * The thread also deletes released ephemerals with a real unlink() through
 * the mountpoint, so local watchers see IN_DELETE; the UNLINK handler then
 * deletes the held inode, so a node that replaced the ephemeral under the
 * same name survives. An unlink that fails is handed back to the loop,
 * which proposes the delete directly.
 *
 * Why a thread: a notification or a syscall on the mount made from the
 * loop thread deadlocks as soon as the kernel needs a reply only the loop
 * can send. The echo thread only waits on its own queue and on the kernel,
 * never answers a request, and the loop never waits for it — except at
 * shutdown, where the loop keeps serving requests until it has left.
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* items and the stage                                                       */
/* ------------------------------------------------------------------------ */

static struct zk__fs_echo_item *item_new(uint8_t kind, const char *name,
                                         const char *name2, const char *path,
                                         const char *path2)
{
    const char *s[4] = {name ? name : "", name2 ? name2 : "",
                        path ? path : "", path2 ? path2 : ""};
    size_t n[4], total = 0;
    for (int i = 0; i < 4; i++)
        total += (n[i] = strlen(s[i])) + 1;
    struct zk__fs_echo_item *it = calloc(1, sizeof(*it) + total);
    if (!it)
        return NULL;
    it->kind = kind;
    char *p = it->buf;
    const char **dst[4] = {&it->name, &it->name2, &it->path, &it->path2};
    for (int i = 0; i < 4; i++) {
        memcpy(p, s[i], n[i] + 1);
        *dst[i] = p;
        p += n[i] + 1;
    }
    return it;
}

/* Appends it to a list kept with its tail and length. */
static void append(struct zk__fs_echo_item **head,
                   struct zk__fs_echo_item **tail, size_t *len,
                   struct zk__fs_echo_item *it)
{
    if (*tail)
        (*tail)->next = it;
    else
        *head = it;
    *tail = it;
    (*len)++;
}

/* Takes the first item off such a list (NULL: empty). */
static struct zk__fs_echo_item *pop(struct zk__fs_echo_item **head,
                                    struct zk__fs_echo_item **tail,
                                    size_t *len)
{
    struct zk__fs_echo_item *it = *head;
    if (it) {
        *head = it->next;
        if (!*head)
            *tail = NULL;
        (*len)--;
    }
    return it;
}

static void stage(struct zk_fs *fs, struct zk__fs_echo_item *it)
{
    struct zk__fs_echo *e = &fs->echo;
    if (!it)
        return;
    if (!e->started || fs->stopping) {
        free(it);
        return;
    }
    append(&e->stage_head, &e->stage_tail, &e->stage_len, it);
}

/* Queues one invalidation or holder deletion for the echo thread (after
 * this loop iteration). Loop thread. */
void zk__fs_echo_push(struct zk_fs *fs, enum zk__fs_echo_kind kind,
                      uint64_t ino, uint64_t parent, const char *name)
{
    int is_path = kind == ZK__ECHO_UNLINK;
    struct zk__fs_echo_item *it = item_new((uint8_t)kind,
                                           is_path ? NULL : name, NULL,
                                           is_path ? name : NULL, NULL);
    if (it) {
        it->ino = ino;
        it->parent = parent;
    }
    stage(fs, it);
}

static void free_list(struct zk__fs_echo_item *it)
{
    while (it) {
        struct zk__fs_echo_item *next = it->next;
        free(it);
        it = next;
    }
}

/* Whether it goes to the slow queue: a syscall through the mount (a
 * replay, or the deletion of a released ephemeral), not a notification. */
static int slow(const struct zk__fs_echo_item *it)
{
    return it->kind == ZK__ECHO_UNLINK ||
           (it->kind >= ZK__ECHO_R_CREATE && it->kind != ZK__ECHO_BARRIER);
}

/* A barrier's reply may go: called back, and no longer counted as
 * waited for (zk__fs_echo_waited_for). Loop thread. */
static void barrier_done(struct zk__fs_echo *e,
                         const struct zk__fs_echo_item *it)
{
    e->barriers_out--;
    it->cb(it->cb_arg);
}

/* Frees work that will not be done; barriers still call back (a reply
 * waits on each). Loop thread, while the session exists. */
static void discard(struct zk__fs_echo *e, struct zk__fs_echo_item *it)
{
    while (it) {
        struct zk__fs_echo_item *next = it->next;
        if (it->kind == ZK__ECHO_BARRIER)
            barrier_done(e, it);
        free(it);
        it = next;
    }
}

/* Calls cb(arg) on the loop once the echo thread has done everything
 * staged before (now, when it is not running). A reply to a change that
 * no syscall of the caller made itself (control file requests, appends)
 * goes through here, so that the caller's next read finds the kernel's
 * caches already invalidated. Loop thread. */
static struct zk__fs_echo_item *barrier_new(void (*cb)(void *), void *arg)
{
    struct zk__fs_echo_item *it = item_new(ZK__ECHO_BARRIER, NULL, NULL,
                                           NULL, NULL);
    if (it) {
        it->cb = cb;
        it->cb_arg = arg;
        it->t0_ns = uv_hrtime();
    }
    return it;
}

void zk__fs_echo_barrier(struct zk_fs *fs, void (*cb)(void *), void *arg)
{
    struct zk__fs_echo_item *it = NULL;
    if (fs->echo.started && !fs->stopping)
        it = barrier_new(cb, arg);
    if (!it) {
        cb(arg);
        return;
    }
    fs->echo.barriers_out++;
    stage(fs, it);
}

/* How many items the thread has not done yet: staged, queued (both
 * queues), and the one it is acting out (metrics.c). Loop thread. */
size_t zk__fs_echo_backlog(struct zk_fs *fs)
{
    struct zk__fs_echo *e = &fs->echo;
    size_t n = e->stage_len;
    if (e->started) {
        pthread_mutex_lock(&e->mu);
        n += e->len + e->rlen + (atomic_load(&e->cur) != NULL);
        pthread_mutex_unlock(&e->mu);
    }
    return n;
}

/* Whether a reply waits for the echo thread (a barrier staged or
 * queued): the loop then must not hold up the replays and requests that
 * barrier waits for (fs.c, loop_busy). Loop thread. */
int zk__fs_echo_waited_for(const struct zk_fs *fs)
{
    return fs->echo.barriers_out > 0;
}

/* Whether the kernel may take the inode lock of a file (not only of
 * directories) to carry it out. Which inode is not known here: a path
 * names whatever inode the kernel has under it now (a notify_delete locks
 * the child its dentry points to, which after a local rename over the
 * name is not the deleted one), so every such item counts. */
static int locks_file(const struct zk__fs_echo_item *it)
{
    return it && it->kind != ZK__ECHO_BARRIER &&
           it->kind != ZK__ECHO_INVAL_INODE &&
           it->kind != ZK__ECHO_INVAL_ENTRY && it->kind != ZK__ECHO_R_CREATE;
}

int zk__fs_echo_file_lock_pending(struct zk_fs *fs)
{
    struct zk__fs_echo *e = &fs->echo;
    int found = 0;
    /* What the barrier waits for: the invalidations staged and queued
     * before it, the replay in progress, and the next replay (the thread
     * may start it before this loop iteration hands the barrier over);
     * not the later replays, which go behind it. */
    for (struct zk__fs_echo_item *it = e->stage_head; it && !found; it = it->next)
        found = !slow(it) && locks_file(it);
    if (!e->started || found)
        return found;
    /* Under the mutex: the thread sets cur before it lets go of it. (Items
     * are freed by the loop only, so cur stays readable here.) */
    pthread_mutex_lock(&e->mu);
    found = locks_file(atomic_load(&e->cur));
    for (struct zk__fs_echo_item *it = e->head; it && !found; it = it->next)
        found = locks_file(it);
    /* Of the replays only the next: the thread acts out every queued
     * invalidation and barrier before the one after it. */
    found = found || locks_file(e->rhead);
    pthread_mutex_unlock(&e->mu);
    return found;
}

/* Takes back the replays of a transaction a local syscall made: the
 * syscall itself told inotify. Called from the done callbacks of syscall
 * proposals, before the stage is handed over. Loop thread. */
void zk__fs_echo_local(struct zk_fs *fs, const struct zk_apply_result *res)
{
    struct zk__fs_echo *e = &fs->echo;
    struct zk__fs_echo_item **pp = &e->stage_head, *prev = NULL;
    if (!res)
        return;
    while (*pp) {
        struct zk__fs_echo_item *it = *pp;
        if (it->zxid == res->zxid && it->kind >= ZK__ECHO_R_CREATE) {
            *pp = it->next;
            e->stage_len--;
            free(it);
            continue;
        }
        prev = it;
        pp = &it->next;
    }
    e->stage_tail = prev;
}

/* Takes back the invalidation of the kernel inode knode's attributes that
 * transaction res staged, when the caller knows the kernel holds nothing
 * of that inode it would use without asking (file.c: a truncation
 * committed at its release, a writer's own data commit; knode is the
 * nodeid its descriptor was opened on). Only that one: the kernel may
 * hold the same file as another inode too — the provisional nodeid it was
 * created under and the committed one a later lookup gave (prov.c) —
 * whose attributes (size 0, as created) may be cached for long (fsfuzz
 * seed 70329: a read-only O_CREAT descriptor kept seeing size 0 after a
 * descriptor opened through the renamed name wrote and fsynced). Returns
 * 1 if it took some back and nothing else of res is staged. Loop thread,
 * like zk__fs_echo_local. */
int zk__fs_echo_local_attrs(struct zk_fs *fs, const struct zk_apply_result *res,
                            uint64_t knode)
{
    struct zk__fs_echo *e = &fs->echo;
    struct zk__fs_echo_item **pp = &e->stage_head, *prev = NULL;
    int found = 0, other = 0;
    if (!res || !res->zxid)
        return 0;
    while (*pp) {
        struct zk__fs_echo_item *it = *pp;
        if (it->zxid == res->zxid && it->kind == ZK__ECHO_INVAL_INODE &&
            it->ino == knode) {
            *pp = it->next;
            e->stage_len--;
            free(it);
            found = 1;
            continue;
        }
        if (it->zxid == res->zxid)
            other = 1;
        prev = it;
        pp = &it->next;
    }
    e->stage_tail = prev;
    return found && !other;
}

/* Drops the name invalidations (notify_delete, inval_entry) that only
 * stand in for a replay that stayed: an "alt" item follows the replay of
 * its transaction. The replay makes the kernel's entries follow itself
 * (and does them when its syscall fails). Sent ahead of the replay queue
 * they would be too early: d_invalidate drops every entry under the
 * name, and a replay of an earlier transaction whose path goes through
 * it would then find nothing there (the store has moved on) and fail,
 * losing its inotify event. So names of removed or moved nodes follow
 * the store only when the replay is made (BUGS.md 8). Loop thread. */
static void drop_alts(struct zk__fs_echo_item **head, size_t *len)
{
    uint64_t replayed = 0;
    struct zk__fs_echo_item **pp = head;
    while (*pp) {
        struct zk__fs_echo_item *it = *pp;
        if (slow(it))
            replayed = it->zxid;
        if (it->zxid && it->zxid == replayed &&
            (it->kind == ZK__ECHO_DELETE || it->kind == ZK__ECHO_INVAL_ENTRY)) {
            *pp = it->next;
            (*len)--;
            free(it);
            continue;
        }
        pp = &it->next;
    }
}

/* Hands the stage to the thread, once per loop iteration. Past
 * ZK__FS_ECHO_QUEUE_MAX waiting items the stage is dropped (counted,
 * logged) rather than blocking the loop. */
static void on_check(uv_check_t *h)
{
    struct zk_fs *fs = h->data;
    struct zk__fs_echo *e = &fs->echo;
    struct zk__fs_echo_item *list = e->stage_head;
    size_t n = e->stage_len;
    pthread_mutex_lock(&e->mu);
    struct zk__fs_echo_item *done = e->done;
    e->done = NULL;
    pthread_mutex_unlock(&e->mu);
    free_list(done);
    if (!list)
        return;
    e->stage_head = e->stage_tail = NULL;
    e->stage_len = 0;
    drop_alts(&list, &n);
    pthread_mutex_lock(&e->mu);
    if (e->quit) {
        pthread_mutex_unlock(&e->mu);
        discard(e, list);
        return;
    }
    /* Only replays are bounded: an invalidation or a barrier is always
     * queued (a dropped invalidation would never be sent again). */
    uint64_t before = e->dropped;
    while (list) {              /* in order, each to its queue */
        struct zk__fs_echo_item *it = list;
        list = it->next;
        it->next = NULL;
        if (!slow(it))
            append(&e->head, &e->tail, &e->len, it);
        else if (e->rlen < ZK__FS_ECHO_QUEUE_MAX)
            append(&e->rhead, &e->rtail, &e->rlen, it);
        else {
            e->dropped++;
            free(it);
        }
    }
    if ((before >> 10) != (e->dropped >> 10))
        zk_log(ZK_LOG_WARN, "echo replay queue full: %llu replays dropped",
               (unsigned long long)e->dropped);
    pthread_mutex_unlock(&e->mu);
    /* After the unlock: a thread woken while the mutex is still held
     * blocks on it at once (a futex wait and wake more per hand-off). */
    pthread_cond_signal(&e->cv);
}

/* ------------------------------------------------------------------------ */
/* from applied changes to work                                              */
/* ------------------------------------------------------------------------ */

/* Whether the kernel holds ino, or a provisional nodeid standing for it
 * (prov.c). */
static int known(struct zk_fs *fs, uint64_t ino)
{
    return ino == ZK_INO_ROOT || zk__fs_inomap_get(&fs->inomap, ino) > 0 ||
           zk__fs_inomap_alias(&fs->inomap, ino) != 0;
}

/* Stages the invalidation of ino's attributes as transaction zxid's (0:
 * none), so that zk__fs_echo_local_attrs can take it back. */
static void push_inval(struct zk_fs *fs, uint64_t ino, uint64_t zxid)
{
    struct zk__fs_echo_item *tail = fs->echo.stage_tail;
    zk__fs_echo_push(fs, ZK__ECHO_INVAL_INODE, ino, 0, NULL);
    if (fs->echo.stage_tail != tail)
        fs->echo.stage_tail->zxid = zxid;
}

static void inval_inode(struct zk_fs *fs, uint64_t ino, uint64_t zxid)
{
    if (!ino || !known(fs, ino))
        return;
    uint64_t alias = zk__fs_inomap_alias(&fs->inomap, ino);
    if (zk__fs_inomap_get(&fs->inomap, ino) > 0 || ino == ZK_INO_ROOT)
        push_inval(fs, ino, zxid);
    if (alias)
        push_inval(fs, alias, zxid);
}

/* A name that went away (or now names another inode); zxid marks it as
 * the stand-in of that transaction's replay. */
static void inval_name(struct zk_fs *fs, uint64_t parent, const char *name,
                       uint64_t child, uint64_t zxid)
{
    struct zk__fs_echo_item *it;
    if (!known(fs, parent))
        return;
    /* The kernel may hold the child as the provisional nodeid it was
     * created under (prov.c): the entry names that one then, and its
     * cached attributes (nlink) must go too. */
    uint64_t alias = child ? zk__fs_inomap_alias(&fs->inomap, child) : 0;
    if (alias) {
        zk__fs_echo_push(fs, ZK__ECHO_INVAL_INODE, alias, 0, NULL);
        if (zk__fs_inomap_get(&fs->inomap, child) == 0)
            child = alias;
    }
    if (child && known(fs, child))
        it = item_new(ZK__ECHO_DELETE, name, NULL, NULL, NULL);
    else
        it = item_new(ZK__ECHO_INVAL_ENTRY, name, NULL, NULL, NULL);
    if (it) {
        it->ino = child;
        it->parent = parent;
        it->zxid = zxid;
    }
    stage(fs, it);
}

/* Stages the replay of change c at path (and path2) as transaction zxid's. */
static void replay_item(struct zk_fs *fs, uint64_t zxid, uint8_t kind,
                        const struct zk_change *c, const char *path,
                        const char *path2, int mark_walk)
{
    struct zk__fs_echo_item *it = item_new(kind, c->name, c->name2, path,
                                           path2);
    if (it) {
        it->zxid = zxid;
        it->node_kind = c->node_kind;
        it->ino = c->ino;
        it->parent = c->parent;
        it->parent2 = c->parent2;
        it->replaced = c->replaced_ino;
        it->mark_walk = (uint8_t)mark_walk;
    }
    stage(fs, it);
}

/* Whether a process on this mount may watch ino: the root, or a node (or
 * its provisional nodeid) the kernel was given for another process than
 * the echo thread (a watch needs a path walk to it, and an entry given
 * only to the echo thread expires at once: util.c). */
static int watched(struct zk_fs *fs, uint64_t ino)
{
    return ino == ZK_INO_ROOT || zk__fs_inomap_user(&fs->inomap, ino);
}

/* Stages the replay of change c (taken back if a local syscall made it).
 * Only where a process here may watch the parent or the node: a watch
 * on a directory reports its children's events, one on a node its own
 * (also its deletion and its moves). Under a directory no process here
 * has walked into (an idle mount, a subtree nobody looks at) nothing is
 * replayed. */
static void replay(struct zk_fs *fs, uint64_t zxid, uint8_t kind,
                   const struct zk_change *c)
{
    char path[ZK_PATH_MAX], path2[ZK_PATH_MAX];
    int by_ino = kind == ZK__ECHO_R_DATA || kind == ZK__ECHO_R_ATTR;
    int self = kind != ZK__ECHO_R_CREATE && watched(fs, c->ino);
    if (!watched(fs, c->parent) && !self &&
        !(kind == ZK__ECHO_R_RENAME && watched(fs, c->parent2)))
        return;
    int rc = by_ino ? zk_store_path(fs->store, c->ino, path, sizeof(path))
                    : zk__fs_child_path(fs, c->parent, c->name, path,
                                        sizeof(path));
    if (rc)
        return;
    path2[0] = '\0';
    if (kind == ZK__ECHO_R_RENAME &&
        zk__fs_child_path(fs, c->parent2, c->name2, path2, sizeof(path2)))
        return;
    /* A watched node moved: a process that holds it (a cwd, a watch)
     * reaches its new ancestors with "..", without a LOOKUP. */
    replay_item(fs, zxid, kind, c, path, path2,
                kind == ZK__ECHO_R_RENAME && self);
}

static int created_with_data(struct zk_fs *fs, uint64_t ino)
{
    struct zk_stat st;
    return zk_store_getattr(fs->store, ino, &st) == 0 && st.data_length > 0;
}

static void change_work(struct zk_fs *fs, uint64_t zxid,
                        const struct zk_change *c)
{
    switch (c->kind) {
    case ZK_CHANGE_CREATE:
        /* No negative dentries are cached (ENOENT lookups carry no
         * timeout), so only the parent's attributes and listing change. */
        inval_inode(fs, c->parent, zxid);
        replay(fs, zxid, ZK__ECHO_R_CREATE, c);
        /* A file created with its data (a new file's close elsewhere,
         * zkfs create PATH DATA) is also written: IN_MODIFY and
         * IN_CLOSE_WRITE, as its writer's own mount reports them. */
        if (c->node_kind == ZK_KIND_FILE && created_with_data(fs, c->ino))
            replay(fs, zxid, ZK__ECHO_R_DATA, c);
        break;
    case ZK_CHANGE_DELETE:
        zk__fs_inomap_gone(&fs->inomap, &c->gone);
        inval_inode(fs, c->parent, zxid);
        replay(fs, zxid, ZK__ECHO_R_DELETE, c);
        inval_name(fs, c->parent, c->name, c->ino, zxid);
        break;
    case ZK_CHANGE_DATA:
        /* A directory's data (user.zkfs.data) cannot be opened for
         * writing: its change shows as IN_ATTRIB. */
        if (zk__fs_inomap_appenders(&fs->inomap, c->ino))
            zk__fs_append_views(fs, c->ino);
        inval_inode(fs, c->ino, zxid);
        replay(fs, zxid, c->node_kind == ZK_KIND_DIR ? ZK__ECHO_R_ATTR
                                                     : ZK__ECHO_R_DATA, c);
        break;
    case ZK_CHANGE_ATTR:
        inval_inode(fs, c->ino, zxid);
        replay(fs, zxid, ZK__ECHO_R_ATTR, c);
        break;
    case ZK_CHANGE_RENAME:
        if (c->replaced_ino)
            zk__fs_inomap_gone(&fs->inomap, &c->gone);
        inval_inode(fs, c->parent, zxid);
        if (c->parent2 != c->parent)
            inval_inode(fs, c->parent2, zxid);
        inval_inode(fs, c->ino, zxid);
        replay(fs, zxid, ZK__ECHO_R_RENAME, c);
        inval_name(fs, c->parent, c->name, 0, zxid);
        inval_name(fs, c->parent2, c->name2, c->replaced_ino, zxid);
        break;
    default:
        break;
    }
}

void zk__fs_echo_change(struct zk_fs *fs, const struct zk_change *c)
{
    change_work(fs, 0, c);
}

/* A snapshot replaced the whole tree: snapdiff.c compares the old and
 * the new one and stages through the two functions below. */
void zk__fs_echo_reset(void *arg, int done)
{
    if (done)
        zk__fs_snapdiff_end(arg);
    else
        zk__fs_snapdiff_begin(arg);
}

void zk__fs_echo_inval(struct zk_fs *fs, uint64_t ino)
{
    inval_inode(fs, ino, 0);
}

/* Stages a replay of c with the paths given (snapdiff.c: some are paths
 * of the tree before a snapshot, which the kernel still shows); no
 * transaction of its own, so nothing takes it back. */
void zk__fs_echo_replay_at(struct zk_fs *fs, enum zk__fs_echo_kind kind,
                           const struct zk_change *c, const char *path,
                           const char *path2)
{
    replay_item(fs, 0, (uint8_t)kind, c, path, path2,
                kind == ZK__ECHO_R_RENAME && watched(fs, c->ino));
}

/* zk_replica's applied callback: stages the work every change of res
 * calls for, in order. Loop thread. */
void zk__fs_echo_applied(void *arg, const struct zk_apply_result *res)
{
    struct zk_fs *fs = arg;
    for (uint32_t i = 0; i < res->nchanges; i++)
        change_work(fs, res->zxid, &res->changes[i]);
}

/* ------------------------------------------------------------------------ */
/* the handlers' side                                                        */
/* ------------------------------------------------------------------------ */

/* The item the echo thread acts out, if req comes from it; else NULL. */
struct zk__fs_echo_item *zk__fs_echo_cur(struct zk_fs *fs, fuse_req_t req)
{
    int tid = atomic_load(&fs->echo.tid);
    if (tid <= 0 || fuse_req_ctx(req)->pid != (pid_t)tid)
        return NULL;
    return atomic_load(&fs->echo.cur);
}

int zk__fs_echo_marks(struct zk_fs *fs, fuse_req_t req)
{
    if (!zk__fs_is_echo(fs, req))
        return 1;
    struct zk__fs_echo_item *it = atomic_load(&fs->echo.cur);
    return it && it->kind == ZK__ECHO_R_RENAME && it->mark_walk;
}

/* Whether req was made by the echo thread. */
int zk__fs_is_echo(struct zk_fs *fs, fuse_req_t req)
{
    int tid = atomic_load(&fs->echo.tid);
    return tid > 0 && fuse_req_ctx(req)->pid == (pid_t)tid;
}

/* An entry for an inode the store no longer has under that name: enough
 * for the kernel to carry out the replayed unlink or rename. */
static void reply_ghost(struct zk_fs *fs, fuse_req_t req, uint64_t ino,
                        uint32_t kind)
{
    struct zk_stat st;
    if (zk_store_getattr(fs->store, ino, &st) != 0) {
        memset(&st, 0, sizeof(st));
        st.ino = ino;
        st.kind = kind;
        st.mode = 0;
    }
    zk__fs_reply_entry_t(fs, req, &st, 0.0, 0.0);
}

/* LOOKUP during a replay: the names a replayed syscall needs are answered
 * as they were before the change (a created name is still free, a removed
 * or moved-away one still there). Returns 1 when it replied. */
int zk__fs_echo_lookup(struct zk_fs *fs, fuse_req_t req, uint64_t parent,
                       const char *name)
{
    struct zk__fs_echo_item *it = zk__fs_echo_cur(fs, req);
    if (!it)
        return 0;
    int old = parent == it->parent && strcmp(name, it->name) == 0;
    int new = parent == it->parent2 && strcmp(name, it->name2) == 0;
    switch (it->kind) {
    case ZK__ECHO_R_CREATE:
        if (!old)
            return 0;
        fuse_reply_err(req, ENOENT);
        return 1;
    case ZK__ECHO_R_DELETE:
        if (!old)
            return 0;
        atomic_fetch_or(&it->answered, 1);
        reply_ghost(fs, req, it->ino, it->node_kind);
        return 1;
    case ZK__ECHO_R_RENAME:
        if (old) {
            atomic_fetch_or(&it->answered, 1);
            reply_ghost(fs, req, it->ino, it->node_kind);
        } else if (new && it->replaced) {
            atomic_fetch_or(&it->answered, 2);
            reply_ghost(fs, req, it->replaced, it->node_kind);
        } else if (new) {
            atomic_fetch_or(&it->answered, 2);
            fuse_reply_err(req, ENOENT);
        } else {
            return 0;
        }
        return 1;
    default:
        return 0;
    }
}

/* Whether the UNLINK, RMDIR or RENAME the kernel sent for replay it acts
 * on the replayed node: the kernel names the item's parent(s) and
 * name(s), and it asked zk__fs_echo_lookup for each name during this
 * syscall (do_replay drops the kernel's entries first), so its entry is
 * the node the item removes, moves or replaces. The handler only answers
 * "done" then. An entry the kernel had cached may name another node:
 * one that a later lookup found under that name in the store, which is
 * ahead of the echo thread. The kernel would take that one for removed —
 * a directory is then marked dead for as long as the kernel keeps its
 * inode: its listing empty, its children ENOENT (BUGS.md 7). Otherwise
 * the handler answers ESTALE: the kernel retries the syscall once with
 * every name looked up again, and if that fails too, do_replay falls back
 * to the invalidations. (name2 NULL: an unlink or rmdir.) */
int zk__fs_echo_entry_ours(const struct zk__fs_echo_item *it, uint64_t parent,
                           const char *name, uint64_t parent2,
                           const char *name2)
{
    unsigned want = name2 ? 3 : 1;
    if (parent != it->parent || strcmp(name, it->name) != 0)
        return 0;
    if (name2 && (parent2 != it->parent2 || strcmp(name2, it->name2) != 0))
        return 0;
    return (atomic_load(&it->answered) & want) == want;
}

/* ------------------------------------------------------------------------ */
/* the thread                                                                */
/* ------------------------------------------------------------------------ */

/* Hands an item back to the loop (in order). */
static void give_back(struct zk_fs *fs, struct zk__fs_echo_item *it)
{
    struct zk__fs_echo *e = &fs->echo;
    it->next = NULL;
    pthread_mutex_lock(&e->mu);
    if (e->back_tail)
        e->back_tail->next = it;
    else
        e->back_head = it;
    e->back_tail = it;
    pthread_mutex_unlock(&e->mu);
    uv_async_send(&e->back_async);
}

static void mnt_path(struct zk_fs *fs, const char *zpath, char *buf,
                     size_t size)
{
    snprintf(buf, size, "%s%s", fs->opts->mountpoint, zpath);
}

/* Deletes a released ephemeral through the mount. Returns 1 when it is
 * handed back to the loop (it then owns it). */
static int do_unlink(struct zk_fs *fs, struct zk__fs_echo_item *it)
{
    char path[ZK_PATH_MAX + 1024];
    mnt_path(fs, it->path, path, sizeof(path));
    int rc = unlink(path);
    int err = errno;
    if (rc == 0)
        return 0;
    zk_log(ZK_LOG_DEBUG, "echo unlink %s: %s; proposing directly", path,
           strerror(err));
    give_back(fs, it);
    return 1;
}

/* The test knob's wait before a replay (t_echo_behind). */
static void test_delay(const struct zk__fs_echo *e)
{
    if (e->test_delay_ms) {
        struct timespec ts = {e->test_delay_ms / 1000,
                              (long)(e->test_delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Acts out a replay; when its syscall fails, falls back to the plain
 * invalidations it stood in for. */
static void do_replay(struct zk_fs *fs, struct zk__fs_echo_item *it)
{
    char p[ZK_PATH_MAX + 1024], p2[ZK_PATH_MAX + 1024];
    int is_dir = it->node_kind == ZK_KIND_DIR, rc = 0, fd;
    mnt_path(fs, it->path, p, sizeof(p));
    mnt_path(fs, it->path2, p2, sizeof(p2));
    test_delay(&fs->echo);
    switch (it->kind) {
    case ZK__ECHO_R_CREATE:
        fuse_lowlevel_notify_inval_entry(fs->se, it->parent, it->name,
                                         strlen(it->name));
        rc = is_dir ? mkdir(p, 0) : mknod(p, S_IFREG, 0);
        break;
    case ZK__ECHO_R_DELETE:
        /* Dropped first, so that the kernel asks for the name
         * (zk__fs_echo_entry_ours). */
        atomic_store(&it->answered, 0);
        fuse_lowlevel_notify_inval_entry(fs->se, it->parent, it->name,
                                         strlen(it->name));
        rc = is_dir ? rmdir(p) : unlink(p);
        if (rc)
            fuse_lowlevel_notify_inval_entry(fs->se, it->parent, it->name,
                                             strlen(it->name));
        break;
    case ZK__ECHO_R_DATA:
        /* A write, not an ftruncate: the same IN_MODIFY, one WRITE
         * (answered at once, file.c) where an ftruncate costs the
         * kernel's GETXATTR of security.capability and a SETATTR. */
        fd = open(p, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        /* The kernel's cached size (AT_STATX_DONT_SYNC: no request): a
         * write past a cached size of 0 sets it to 1, which only a full
         * invalidation corrects. And the path may name another inode
         * by now (a later rename here): the write then marked that one
         * stale, not the changed one. */
        struct statx stx;
        int inval = fd < 0 ||
                    statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC,
                          STATX_SIZE | STATX_INO, &stx) != 0 ||
                    stx.stx_size == 0 || stx.stx_ino != it->ino;
        rc = fd < 0 ? -1 : pwrite(fd, "", 1, 0) == 1 ? 0 : -1;
        if (rc || inval)
            fuse_lowlevel_notify_inval_inode(fs->se, it->ino, 0, 0);
        if (fd >= 0)
            close(fd);
        break;
    case ZK__ECHO_R_ATTR:
        rc = utimensat(AT_FDCWD, p, NULL, AT_SYMLINK_NOFOLLOW);
        break;
    case ZK__ECHO_R_RENAME:
        atomic_store(&it->answered, 0);
        fuse_lowlevel_notify_inval_entry(fs->se, it->parent, it->name,
                                         strlen(it->name));
        fuse_lowlevel_notify_inval_entry(fs->se, it->parent2, it->name2,
                                         strlen(it->name2));
        rc = rename(p, p2);
        if (rc)
            fuse_lowlevel_notify_inval_entry(fs->se, it->parent, it->name,
                                             strlen(it->name));
        break;
    default:
        break;
    }
    atomic_fetch_add(rc == 0 ? &fs->echo.replays : &fs->echo.replays_failed,
                     1);        /* metrics.c */
}

/* Hands an acted-out item to the loop, which frees it. */
static void done(struct zk_fs *fs, struct zk__fs_echo_item *it)
{
    atomic_store(&fs->echo.cur, NULL);
    pthread_mutex_lock(&fs->echo.mu);
    it->next = fs->echo.done;
    fs->echo.done = it;
    pthread_mutex_unlock(&fs->echo.mu);
}

static void do_item(struct zk_fs *fs, struct zk__fs_echo_item *it)
{
    int rc = 0;
    atomic_store(&fs->echo.cur, it);
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
        if (do_unlink(fs, it)) {
            atomic_store(&fs->echo.cur, NULL);
            return;
        }
        break;
    case ZK__ECHO_BARRIER:
        atomic_store(&fs->echo.cur, NULL);
        give_back(fs, it);
        return;
    default:
        do_replay(fs, it);
        break;
    }
    if (rc && rc != -ENOENT && rc != -ENOTDIR)
        zk_log(ZK_LOG_DEBUG, "echo notify %d ino %llu: %s", it->kind,
               (unsigned long long)it->ino, strerror(-rc));
    done(fs, it);
}

static void *echo_main(void *arg)
{
    struct zk_fs *fs = arg;
    struct zk__fs_echo *e = &fs->echo;

    atomic_store(&e->tid, (int)gettid());
    pthread_mutex_lock(&e->mu);
    while (!e->quit) {
        /* Every invalidation and barrier first, then one replay. */
        struct zk__fs_echo_item *it = pop(&e->head, &e->tail, &e->len);
        if (!it)
            it = pop(&e->rhead, &e->rtail, &e->rlen);
        if (!it) {
            pthread_cond_wait(&e->cv, &e->mu);
            continue;
        }
        atomic_store(&e->cur, it);  /* seen by zk__fs_echo_file_lock_pending */
        pthread_mutex_unlock(&e->mu);
        do_item(fs, it);
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    atomic_store(&e->tid, -1);
    uv_async_send(&e->back_async);   /* tells the loop we are gone */
    return NULL;
}

/* Loop side of the hand-back: proposes the deletes the echo thread could
 * not do, and finishes a stop once the thread has left. */
static void on_back(uv_async_t *h)
{
    struct zk_fs *fs = h->data;
    struct zk__fs_echo *e = &fs->echo;
    int gone = atomic_load(&e->tid) < 0;
    pthread_mutex_lock(&e->mu);
    struct zk__fs_echo_item *list = e->back_head, *left = NULL;
    e->back_head = e->back_tail = NULL;
    if (gone) {                 /* what the thread left undone */
        left = e->head;
        if (e->tail)
            e->tail->next = e->rhead;
        else
            left = e->rhead;
        e->head = e->tail = e->rhead = e->rtail = NULL;
        e->len = e->rlen = 0;
    }
    pthread_mutex_unlock(&e->mu);
    while (list) {
        struct zk__fs_echo_item *it = list;
        list = it->next;
        if (it->kind == ZK__ECHO_BARRIER) {
            zk__fs_barrier_waited(fs, it->t0_ns);
            barrier_done(e, it);
        } else {
            zk__fs_delete_ino(fs, it->ino);
        }
        free(it);
    }
    discard(e, left);
    if (fs->stopping && gone)
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
    rc = uv_check_init(&fs->loop, &e->check);
    if (rc)
        return rc;
    e->check_init = 1;
    e->check.data = fs;
    rc = uv_check_start(&e->check, on_check);
    if (rc)
        return rc;
    atomic_store(&e->tid, 0);
    atomic_store(&e->cur, NULL);
    /* At most 10 s (a longer wait would outlast a test's bound for the
     * daemon to stop); anything else: off, said in the log. */
    uint64_t ms = 0;
    (void)zk_env_u64("ZKFS_TEST_ECHO_DELAY_MS", 10000, &ms);
    e->test_delay_ms = (unsigned)ms;
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

/* Joins the thread and frees what is left. Loop thread, at take-down. */
void zk__fs_echo_join(struct zk_fs *fs)
{
    struct zk__fs_echo *e = &fs->echo;
    if (e->started) {
        zk__fs_echo_stop(fs);
        pthread_join(e->thread, NULL);
        e->started = 0;
        free_list(e->head);
        free_list(e->rhead);
        free_list(e->back_head);
        free_list(e->done);
        e->head = e->tail = e->back_head = e->back_tail = e->done = NULL;
        e->rhead = e->rtail = NULL;
        pthread_cond_destroy(&e->cv);
        pthread_mutex_destroy(&e->mu);
    }
    free_list(e->stage_head);
    e->stage_head = e->stage_tail = NULL;
    e->stage_len = 0;
    if (e->check_init) {
        uv_close((uv_handle_t *)&e->check, NULL);
        e->check_init = 0;
    }
    if (e->back_async_init) {
        uv_close((uv_handle_t *)&e->back_async, NULL);
        e->back_async_init = 0;
    }
}
