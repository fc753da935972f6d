/*
 * snapdiff.c — what a snapshot install changed, told to the kernel and to
 * inotify watchers as if each change had arrived one by one.
 *
 * A replica that catches up by snapshot never applies the transactions it
 * missed, so no applied callback stages their replays (echo.c). Instead,
 * before the install (the reset callback with done 0, while the store
 * still holds the old tree) the loop notes every directory the kernel
 * knows (lookup count > 0: nobody can watch any other), with its path and
 * the stat of each of its children, and the name of every other known
 * inode. After the install the new tree is compared with the notes, and
 * each difference is staged as the replay the echo thread acts out
 * through the mount:
 *
 *  - a noted child whose inode is gone: unlink/rmdir at its old path
 *    (IN_DELETE), deepest directories first, so that a directory's
 *    children go before it;
 *  - a noted child whose inode has another name now: rename (IN_MOVED_FROM
 *    and IN_MOVED_TO);
 *  - a child of a noted directory that no noted listing held, and all
 *    that is below it: mknod/mkdir (IN_CREATE), in czxid order (a queue's
 *    items in the order they were made), parents before children;
 *  - then, in mzxid order, data changed since the note or since the create
 *    (IN_MODIFY; for a directory, whose data is user.zkfs.data, IN_ATTRIB)
 *    and mode, owner or children flags changed (IN_ATTRIB).
 *
 * Every known inode is invalidated afterwards (attributes, data,
 * listings). A known inode whose directory was not noted is handled as
 * before this comparison existed: deleted for the kernel if it is gone or
 * was moved.
 *
 * What a snapshot cannot tell: the order of changes across nodes (only
 * czxid and mzxid), a node made and removed within the gap, several
 * changes of one node (one event), and a node moved in from a directory
 * nobody watched (IN_CREATE rather than IN_MOVED_TO). Past
 * ZK__FS_SNAPDIFF_NOTES_MAX noted children a directory is not noted, and
 * past ZK__FS_SNAPDIFF_REPLAYS_MAX replays the rest is only invalidated;
 * both are logged.
 */
#include "fs_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZK__FS_SNAPDIFF_NOTES_MAX   (1u << 18) /* children noted, in all */
#define ZK__FS_SNAPDIFF_REPLAYS_MAX (1u << 18) /* replays staged per install */

struct sd_child {
    struct zk_stat st;            /* in the old tree */
    char *name;
};

struct sd_dir {
    uint64_t ino;
    char *path;                   /* in the old tree */
    int depth;
    size_t first, n;              /* its children in kids */
};

/* A create or a data/attribute change, staged after sorting. */
struct sd_op {
    uint64_t key;                 /* czxid (creates) or mzxid (changes) */
    int depth;
    enum zk__fs_echo_kind kind;
    struct zk_change c;
    char *path;
};

struct sd_ops {
    struct sd_op *v;
    size_t n, cap;
};

struct zk__fs_snapdiff {
    struct sd_dir *dirs;
    size_t n_dirs, cap_dirs;
    struct sd_child *kids;
    size_t n_kids, cap_kids;
    size_t *by_ino;               /* kids' indexes sorted by inode (end) */
    uint64_t *dir_inos;           /* the noted directories, sorted       */
    struct zk_change *loose;      /* known inodes of no noted directory */
    size_t n_loose, cap_loose;
    size_t replays, skipped;
    int partial;                  /* a directory was left out */
};

/* ------------------------------------------------------------------------ */
/* small helpers                                                             */
/* ------------------------------------------------------------------------ */

static int grow(void **v, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t cap2 = *cap ? *cap * 2 : 64;
    while (cap2 < need)
        cap2 *= 2;
    void *nv = realloc(*v, cap2 * size);
    if (!nv)
        return -ENOMEM;
    *v = nv;
    *cap = cap2;
    return 0;
}

static int depth_of(const char *path)
{
    int d = 0;
    for (const char *p = path; *p; p++)
        d += *p == '/';
    return strcmp(path, "/") == 0 ? 0 : d;
}

/* dir + "/" + name as a new string (root's children: "/" + name). */
static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", name);
    return p;
}

static void set_name(char *dst, size_t size, const char *name)
{
    snprintf(dst, size, "%s", name);
}

/* Stages a replay unless the bound is reached (then it is counted). */
static void replay(struct zk_fs *fs, struct zk__fs_snapdiff *sd,
                   enum zk__fs_echo_kind kind, const struct zk_change *c,
                   const char *path, const char *path2)
{
    if (sd->replays >= ZK__FS_SNAPDIFF_REPLAYS_MAX) {
        sd->skipped++;
        return;
    }
    sd->replays++;
    zk__fs_echo_replay_at(fs, kind, c, path, path2);
}

void zk__fs_snapdiff_free(struct zk__fs_snapdiff *sd)
{
    if (!sd)
        return;
    for (size_t i = 0; i < sd->n_dirs; i++)
        free(sd->dirs[i].path);
    for (size_t i = 0; i < sd->n_kids; i++)
        free(sd->kids[i].name);
    free(sd->dirs);
    free(sd->kids);
    free(sd->by_ino);
    free(sd->dir_inos);
    free(sd->loose);
    free(sd);
}

/* ------------------------------------------------------------------------ */
/* before: the notes                                                         */
/* ------------------------------------------------------------------------ */

static int note_child(void *arg, const char *name, const struct zk_stat *st)
{
    struct zk__fs_snapdiff *sd = arg;
    if (sd->n_kids >= ZK__FS_SNAPDIFF_NOTES_MAX ||
        grow((void **)&sd->kids, &sd->cap_kids, sd->n_kids + 1,
             sizeof(*sd->kids)))
        return -ENOSPC;
    struct sd_child *k = &sd->kids[sd->n_kids];
    if (!(k->name = strdup(name)))
        return -ENOMEM;
    k->st = *st;
    sd->n_kids++;
    return 0;
}

/* Notes directory ino and its children; on failure (too many, no memory)
 * nothing of it stays noted. */
static void note_dir(struct zk_fs *fs, struct zk__fs_snapdiff *sd,
                     uint64_t ino)
{
    char path[ZK_PATH_MAX];
    size_t first = sd->n_kids;
    if (zk_store_path(fs->store, ino, path, sizeof(path)) ||
        grow((void **)&sd->dirs, &sd->cap_dirs, sd->n_dirs + 1,
             sizeof(*sd->dirs)))
        goto fail;
    struct sd_dir *d = &sd->dirs[sd->n_dirs];
    if (!(d->path = strdup(path)))
        goto fail;
    if (zk_store_list(fs->store, ino, note_child, sd)) {
        free(d->path);
        goto fail;
    }
    d->ino = ino;
    d->depth = depth_of(path);
    d->first = first;
    d->n = sd->n_kids - first;
    sd->n_dirs++;
    return;
fail:
    while (sd->n_kids > first)
        free(sd->kids[--sd->n_kids].name);
    sd->partial = 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Whether ino is a noted directory (dir_inos, or a scan without it). */
static int dir_noted(const struct zk__fs_snapdiff *sd, uint64_t ino)
{
    if (sd->dir_inos)
        return bsearch(&ino, sd->dir_inos, sd->n_dirs, sizeof(uint64_t),
                       cmp_u64) != NULL;
    for (size_t i = 0; i < sd->n_dirs; i++)
        if (sd->dirs[i].ino == ino)
            return 1;
    return 0;
}

/* A known inode that no noted listing holds: its name, for the check
 * after the install. */
static void note_loose(struct zk_fs *fs, struct zk__fs_snapdiff *sd,
                       uint64_t ino)
{
    struct zk_change c;
    if (zk__fs_deletion_of(fs, ino, &c) || dir_noted(sd, c.parent) ||
        grow((void **)&sd->loose, &sd->cap_loose, sd->n_loose + 1,
             sizeof(*sd->loose)))
        return;
    sd->loose[sd->n_loose++] = c;
}

void zk__fs_snapdiff_begin(struct zk_fs *fs)
{
    const struct zk__fs_inomap *m = &fs->inomap;
    struct zk__fs_snapdiff *sd = calloc(1, sizeof(*sd));

    zk__fs_snapdiff_free(fs->snapdiff);
    fs->snapdiff = sd;
    if (!sd)
        return;
    note_dir(fs, sd, ZK_INO_ROOT);
    for (size_t i = 0; i < m->cap; i++) {
        struct zk_stat st;
        uint64_t ino = m->slots[i].ino;
        if (ino && ino != ZK_INO_ROOT && m->slots[i].nlookup &&
            zk_store_getattr(fs->store, ino, &st) == 0 &&
            st.kind == ZK_KIND_DIR)
            note_dir(fs, sd, ino);
    }
    if (sd->n_dirs && (sd->dir_inos = malloc(sd->n_dirs * sizeof(uint64_t)))) {
        for (size_t i = 0; i < sd->n_dirs; i++)
            sd->dir_inos[i] = sd->dirs[i].ino;
        qsort(sd->dir_inos, sd->n_dirs, sizeof(uint64_t), cmp_u64);
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].ino && m->slots[i].ino != ZK_INO_ROOT &&
            m->slots[i].nlookup)
            note_loose(fs, sd, m->slots[i].ino);
    if (sd->partial)
        zk_log(ZK_LOG_WARN, "snapshot: some known directories were not "
               "noted (over %u children in all, or out of memory): "
               "watchers of them may miss what the snapshot changed",
               ZK__FS_SNAPDIFF_NOTES_MAX);
}

/* ------------------------------------------------------------------------ */
/* after: the differences                                                    */
/* ------------------------------------------------------------------------ */

static int cmp_kid_ino(const void *a, const void *b, void *arg)
{
    const struct zk__fs_snapdiff *sd = arg;
    uint64_t x = sd->kids[*(const size_t *)a].st.ino;
    uint64_t y = sd->kids[*(const size_t *)b].st.ino;
    return x < y ? -1 : x > y;
}

static int cmp_dir_deep(const void *a, const void *b)
{
    const struct sd_dir *x = a, *y = b;
    return y->depth - x->depth;
}

static int cmp_op(const void *a, const void *b)
{
    const struct sd_op *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->depth - y->depth;
}

/* Whether a noted listing held ino (binary search in by_ino). */
static int was_noted(const struct zk__fs_snapdiff *sd, uint64_t ino)
{
    size_t lo = 0, hi = sd->by_ino ? sd->n_kids : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t x = sd->kids[sd->by_ino[mid]].st.ino;
        if (x == ino)
            return 1;
        if (x < ino)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static void op_add(struct sd_ops *ops, uint64_t key, int depth,
                   enum zk__fs_echo_kind kind, const struct zk_change *c,
                   const char *path)
{
    char *p = strdup(path);
    if (!p || grow((void **)&ops->v, &ops->cap, ops->n + 1, sizeof(*ops->v))) {
        free(p);
        return;
    }
    ops->v[ops->n++] = (struct sd_op){.key = key, .depth = depth,
                                      .kind = kind, .c = *c, .path = p};
}

static void ops_stage(struct zk_fs *fs, struct zk__fs_snapdiff *sd,
                      struct sd_ops *ops)
{
    if (ops->n)
        qsort(ops->v, ops->n, sizeof(*ops->v), cmp_op);
    for (size_t i = 0; i < ops->n; i++) {
        replay(fs, sd, ops->v[i].kind, &ops->v[i].c, ops->v[i].path, NULL);
        free(ops->v[i].path);
    }
    free(ops->v);
    ops->v = NULL;
    ops->n = ops->cap = 0;
}

/* A noted child that kept its name (now: its name and stat in the new
 * tree): what changed about it goes to mods. */
static void child_changed(struct zk_fs *fs, struct sd_ops *mods,
                          const struct sd_child *k,
                          const struct zk_change *now)
{
    const struct zk_stat *a = &k->st, *b = &now->gone;
    int attr = a->mode != b->mode || a->uid != b->uid || a->gid != b->gid ||
               a->children_flags != b->children_flags;
    enum zk__fs_echo_kind kind = ZK__ECHO_R_ATTR;
    char path[ZK_PATH_MAX];

    if (a->mzxid != b->mzxid && b->kind == ZK_KIND_FILE)
        kind = ZK__ECHO_R_DATA;
    else if (a->mzxid == b->mzxid && !attr)
        return;
    if (zk_store_path(fs->store, b->ino, path, sizeof(path)) == 0)
        op_add(mods, b->mzxid, 0, kind, now, path);
}

/* One noted child: gone (delete at its old path), moved (rename), or
 * still there (its changes go to mods). */
static void child_diff(struct zk_fs *fs, struct zk__fs_snapdiff *sd,
                       const struct sd_dir *d, const struct sd_child *k,
                       struct sd_ops *mods)
{
    struct zk_change c, now;
    char *old = join(d->path, k->name);
    char path2[ZK_PATH_MAX];

    if (!old)
        return;
    memset(&c, 0, sizeof(c));
    c.node_kind = k->st.kind;
    c.ino = k->st.ino;
    c.parent = d->ino;
    set_name(c.name, sizeof(c.name), k->name);
    if (zk__fs_deletion_of(fs, k->st.ino, &now)) {
        c.kind = ZK_CHANGE_DELETE;
        c.gone = k->st;
        zk__fs_inomap_gone(&fs->inomap, &k->st);
        replay(fs, sd, ZK__ECHO_R_DELETE, &c, old, NULL);
    } else if (now.parent != d->ino || strcmp(now.name, k->name) != 0) {
        if (zk_store_path(fs->store, k->st.ino, path2, sizeof(path2)) == 0) {
            c.kind = ZK_CHANGE_RENAME;
            c.parent2 = now.parent;
            set_name(c.name2, sizeof(c.name2), now.name);
            replay(fs, sd, ZK__ECHO_R_RENAME, &c, old, path2);
        }
    } else {
        child_changed(fs, mods, k, &now);
    }
    free(old);
}

/* Directories to list for new children (noted ones, then new ones). */
struct sd_walk {
    struct zk_fs *fs;
    struct zk__fs_snapdiff *sd;
    struct sd_ops *creates, *mods;
    uint64_t *todo;
    size_t n_todo, cap_todo;
    uint64_t dir;
    const char *dir_path;
    int depth;
};

static int new_child(void *arg, const char *name, const struct zk_stat *st)
{
    struct sd_walk *w = arg;
    struct zk_change c;

    if (was_noted(w->sd, st->ino))
        return 0;                 /* kept its place, or moved: done */
    if (w->creates->n + w->mods->n >= ZK__FS_SNAPDIFF_REPLAYS_MAX) {
        w->sd->skipped++;
        return 0;
    }
    char *path = join(w->dir_path, name);
    if (!path)
        return -ENOMEM;
    memset(&c, 0, sizeof(c));
    c.kind = ZK_CHANGE_CREATE;
    c.node_kind = st->kind;
    c.ino = st->ino;
    c.parent = w->dir;
    set_name(c.name, sizeof(c.name), name);
    op_add(w->creates, st->czxid, w->depth, ZK__ECHO_R_CREATE, &c, path);
    if (st->kind == ZK_KIND_FILE && st->mzxid != st->czxid)
        op_add(w->mods, st->mzxid, w->depth, ZK__ECHO_R_DATA, &c, path);
    free(path);
    if (st->kind == ZK_KIND_DIR &&
        grow((void **)&w->todo, &w->cap_todo, w->n_todo + 1,
             sizeof(*w->todo)) == 0)
        w->todo[w->n_todo++] = st->ino;
    return 0;
}

/* Lists dir in the new tree for children no note held. */
static void walk_dir(struct sd_walk *w, uint64_t dir)
{
    char path[ZK_PATH_MAX];
    struct zk_stat st;
    if (zk_store_getattr(w->fs->store, dir, &st) || st.kind != ZK_KIND_DIR ||
        zk_store_path(w->fs->store, dir, path, sizeof(path)))
        return;
    w->dir = dir;
    w->dir_path = path;
    w->depth = depth_of(path) + 1;
    zk_store_list(w->fs->store, dir, new_child, w);
}

static void creates(struct zk_fs *fs, struct zk__fs_snapdiff *sd,
                    struct sd_ops *cr, struct sd_ops *mods)
{
    struct sd_walk w = {.fs = fs, .sd = sd, .creates = cr, .mods = mods};
    for (size_t i = 0; i < sd->n_dirs; i++)
        walk_dir(&w, sd->dirs[i].ino);
    while (w.n_todo)              /* below new directories */
        walk_dir(&w, w.todo[--w.n_todo]);
    free(w.todo);
}

/* Known inodes of no noted directory: gone or moved ones are deleted for
 * the kernel (the comparison's fallback). */
static void loose_diff(struct zk_fs *fs, struct zk__fs_snapdiff *sd)
{
    struct zk_change now;
    for (size_t i = 0; i < sd->n_loose; i++) {
        const struct zk_change *c = &sd->loose[i];
        if (zk__fs_deletion_of(fs, c->ino, &now) == 0 &&
            now.parent == c->parent && strcmp(now.name, c->name) == 0)
            continue;
        zk__fs_echo_change(fs, c);
    }
}

static void inval_known(struct zk_fs *fs)
{
    const struct zk__fs_inomap *m = &fs->inomap;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].ino && (m->slots[i].nlookup || m->slots[i].alias))
            zk__fs_echo_inval(fs, m->slots[i].ino);   /* (and its alias) */
    zk__fs_echo_inval(fs, ZK_INO_ROOT);
}

void zk__fs_snapdiff_end(struct zk_fs *fs)
{
    struct zk__fs_snapdiff *sd = fs->snapdiff;
    struct sd_ops cr = {0}, mods = {0};

    fs->snapdiff = NULL;
    if (sd && sd->n_kids && (sd->by_ino = malloc(sd->n_kids * sizeof(size_t)))) {
        for (size_t i = 0; i < sd->n_kids; i++)
            sd->by_ino[i] = i;
        qsort_r(sd->by_ino, sd->n_kids, sizeof(size_t), cmp_kid_ino, sd);
    }
    if (!sd || (sd->n_kids && !sd->by_ino)) {
        zk_log(ZK_LOG_WARN, "snapshot installed: no comparison with the old "
               "tree (out of memory); watchers may miss its changes");
        inval_known(fs);
        zk__fs_snapdiff_free(sd);
        return;
    }
    /* Deletes and renames, deepest directories first. The noted indexes
     * in kids stay valid: sorting dirs moves only the directory records. */
    struct sd_dir *dirs = sd->dirs;
    qsort(dirs, sd->n_dirs, sizeof(*dirs), cmp_dir_deep);
    for (size_t i = 0; i < sd->n_dirs; i++)
        for (size_t j = 0; j < dirs[i].n; j++)
            child_diff(fs, sd, &dirs[i], &sd->kids[dirs[i].first + j], &mods);
    creates(fs, sd, &cr, &mods);
    size_t n_cr = cr.n, n_mods = mods.n;
    ops_stage(fs, sd, &cr);
    ops_stage(fs, sd, &mods);
    loose_diff(fs, sd);
    inval_known(fs);
    zk_log(sd->skipped ? ZK_LOG_WARN : ZK_LOG_INFO,
           "snapshot installed: %zu known directories (%zu children) "
           "compared: %zu replays staged (%zu creates, %zu changes), %zu "
           "left out past the bound", sd->n_dirs, sd->n_kids, sd->replays,
           n_cr, n_mods, sd->skipped);
    zk__fs_snapdiff_free(sd);
}
