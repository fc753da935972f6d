/*
 * listing.c — directory listings kept in the daemon, so that a READDIR is
 * answered without reading the store.
 *
 * A listing is one directory's children (name, inode, kind) in name order
 * as of one store version, and, once a plain READDIR asked for them, their
 * READDIR entries laid out as FUSE sends them (a reply is then one slice of
 * that buffer, as in the floor's bench/floorfs.c). The daemon keeps the
 * listings of the directories listed lately, by inode; past
 * ZK__FS_LISTING_BYTES_MAX bytes the least recently used go. The applied
 * callback patches a kept listing with every change of a transaction it
 * does not contain yet (a create, a delete, a rename in or out of it), so
 * a directory of 10,000 that gains a child is not read again; a snapshot
 * install drops them all.
 *
 * What it keeps true: a kept listing of directory D has exactly the
 * children D has in the store as of the last transaction the applied
 * callback reported. It rests on two things: the store makes a
 * transaction readable before the callback reports it (zk_replica.h), and
 * each listing remembers the last zxid applied in the version it was read
 * from (zk_store_list_at), so the changes of transactions up to it, which
 * the callback may report after the read, are not applied twice.
 *
 * An open directory holds its listing (a reference) from its first
 * READDIR on: its offsets are indexes into it, so one open directory reads
 * one consistent version however the directory changes meanwhile. A change
 * to a listing an open directory holds patches a copy, which the cache
 * keeps from then on. Directories with something this mount must add or
 * leave out (a pending provisional create, prov.c; ephemerals of a session
 * given up, lease.c) get a listing of their own, read from the store and
 * never kept.
 *
 * Loop thread only.
 */
#include "fs_int.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/uio.h>

#define LC_BUCKETS_MIN 64

/* ------------------------------------------------------------------------ */
/* one listing                                                               */
/* ------------------------------------------------------------------------ */

static size_t ls_bytes(const struct zk__fs_listing *ls)
{
    return sizeof(*ls) + ls->cap * sizeof(*ls->ents) + ls->names_cap +
           ls->dbuf_len;
}

static void ls_free(struct zk__fs_listing *ls)
{
    free(ls->ents);
    free(ls->names);
    free(ls->dbuf);
    free(ls);
}

void zk__fs_listing_put(struct zk__fs_listing *ls)
{
    if (ls && --ls->refs == 0)
        ls_free(ls);
}

static const char *ls_name(const struct zk__fs_listing *ls, size_t i)
{
    return ls->names + ls->ents[i].name_off;
}

/* Room for one more entry whose name is len bytes (NUL not counted). */
static int ls_reserve(struct zk__fs_listing *ls, size_t len)
{
    if (ls->n == ls->cap) {
        size_t cap = ls->cap ? ls->cap * 2 : 64;
        void *p = realloc(ls->ents, cap * sizeof(*ls->ents));
        if (!p)
            return -ENOMEM;
        ls->ents = p;
        ls->cap = cap;
    }
    if (ls->names_cap - ls->names_len < len + 1) {
        size_t cap = ls->names_cap ? ls->names_cap * 2 : 4096;
        while (cap - ls->names_len < len + 1)
            cap *= 2;
        char *p = realloc(ls->names, cap);
        if (!p)
            return -ENOMEM;
        ls->names = p;
        ls->names_cap = cap;
    }
    return 0;
}

/* Puts a child at position i (the caller keeps the order). */
static int ls_insert(struct zk__fs_listing *ls, size_t i, const char *name,
                     const struct zk_stat *st)
{
    size_t len = strlen(name);
    int rc = ls_reserve(ls, len);
    if (rc)
        return rc;
    memmove(&ls->ents[i + 1], &ls->ents[i], (ls->n - i) * sizeof(*ls->ents));
    memcpy(ls->names + ls->names_len, name, len + 1);
    ls->ents[i] = (struct zk__fs_lent){.ino = st->ino, .kind = st->kind,
                                       .owner = st->ephemeral_owner,
                                       .name_off = ls->names_len};
    ls->names_len += len + 1;
    ls->n++;
    return 0;
}

/* zk_store_list's callback: the store lists in name order. */
static int ls_add(void *arg, const char *name, const struct zk_stat *st)
{
    struct zk__fs_listing *ls = arg;
    return ls_insert(ls, ls->n, name, st);
}

/* The position of name, or where it would go (*found 0). Names are in
 * the store's order: bytes compared unsigned, as strcmp does. */
static size_t ls_find(const struct zk__fs_listing *ls, const char *name,
                      int *found)
{
    size_t lo = 0, hi = ls->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ls_name(ls, mid), name);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

/* Names of removed children stay in the block until they are half of it. */
static void ls_compact(struct zk__fs_listing *ls)
{
    if (ls->names_dead < 4096 || ls->names_dead * 2 < ls->names_len)
        return;
    char *p = malloc(ls->names_len - ls->names_dead);
    if (!p)
        return;                 /* keeps the bigger block */
    size_t off = 0;
    for (size_t i = 0; i < ls->n; i++) {
        size_t len = strlen(ls_name(ls, i)) + 1;
        memcpy(p + off, ls_name(ls, i), len);
        ls->ents[i].name_off = off;
        off += len;
    }
    free(ls->names);
    ls->names = p;
    ls->names_len = ls->names_cap = off;
    ls->names_dead = 0;
}

static void ls_remove(struct zk__fs_listing *ls, size_t i)
{
    ls->names_dead += strlen(ls_name(ls, i)) + 1;
    memmove(&ls->ents[i], &ls->ents[i + 1],
            (ls->n - i - 1) * sizeof(*ls->ents));
    ls->n--;
    ls_compact(ls);
}

static struct zk__fs_listing *ls_new(uint64_t dir)
{
    struct zk__fs_listing *ls = calloc(1, sizeof(*ls));
    if (ls) {
        ls->dir = dir;
        ls->refs = 1;
    }
    return ls;
}

/* A copy of ls's children (not its READDIR buffer), for a patch. */
static struct zk__fs_listing *ls_copy(const struct zk__fs_listing *ls)
{
    struct zk__fs_listing *c = ls_new(ls->dir);
    if (!c)
        return NULL;
    c->zxid = ls->zxid;
    c->ents = malloc((ls->cap ? ls->cap : 1) * sizeof(*ls->ents));
    c->names = malloc(ls->names_cap ? ls->names_cap : 1);
    if (!c->ents || !c->names) {
        ls_free(c);
        return NULL;
    }
    if (ls->n)                  /* an empty one may have no arrays */
        memcpy(c->ents, ls->ents, ls->n * sizeof(*ls->ents));
    if (ls->names_len)
        memcpy(c->names, ls->names, ls->names_len);
    c->n = ls->n;
    c->cap = ls->cap;
    c->names_len = ls->names_len;
    c->names_cap = ls->names_cap;
    c->names_dead = ls->names_dead;
    return c;
}

/* ------------------------------------------------------------------------ */
/* the cache                                                                 */
/* ------------------------------------------------------------------------ */

static void lc_init(struct zk__fs_lcache *lc)
{
    if (lc->lru.next)
        return;
    lc->lru.next = lc->lru.prev = &lc->lru;
    if (!lc->bytes_max)
        lc->bytes_max = ZK__FS_LISTING_BYTES_MAX;
}

static size_t lc_bucket(const struct zk__fs_lcache *lc, uint64_t dir)
{
    return (size_t)((dir * 0x9e3779b97f4a7c15ull) >> 32) & (lc->nbuckets - 1);
}

static struct zk__fs_listing **lc_slot(struct zk__fs_lcache *lc, uint64_t dir)
{
    struct zk__fs_listing **pp = &lc->tab[lc_bucket(lc, dir)];
    while (*pp && (*pp)->dir != dir)
        pp = &(*pp)->hnext;
    return pp;
}

static struct zk__fs_listing *lc_find(struct zk__fs_lcache *lc, uint64_t dir)
{
    return lc->nbuckets ? *lc_slot(lc, dir) : NULL;
}

static void lru_unlink(struct zk__fs_listing *ls)
{
    ls->prev->next = ls->next;
    ls->next->prev = ls->prev;
    ls->prev = ls->next = NULL;
}

static void lru_front(struct zk__fs_lcache *lc, struct zk__fs_listing *ls)
{
    if (ls->prev)
        lru_unlink(ls);
    ls->next = lc->lru.next;
    ls->prev = &lc->lru;
    lc->lru.next->prev = ls;
    lc->lru.next = ls;
}

/* Forgets dir's kept listing (the open directories holding it keep it). */
static void lc_drop(struct zk__fs_lcache *lc, struct zk__fs_listing *ls)
{
    struct zk__fs_listing **pp = lc_slot(lc, ls->dir);
    *pp = ls->hnext;
    ls->hnext = NULL;
    lru_unlink(ls);
    lc->count--;
    lc->bytes -= ls->bytes;
    ls->cached = 0;
    zk__fs_listing_put(ls);
}

static int lc_grow(struct zk__fs_lcache *lc)
{
    size_t nb = lc->nbuckets ? lc->nbuckets * 2 : LC_BUCKETS_MIN;
    struct zk__fs_listing **tab = calloc(nb, sizeof(*tab));
    if (!tab)
        return -ENOMEM;
    struct zk__fs_listing **old = lc->tab;
    size_t onb = lc->nbuckets;
    lc->tab = tab;
    lc->nbuckets = nb;
    for (size_t i = 0; i < onb; i++) {
        for (struct zk__fs_listing *ls = old[i], *next; ls; ls = next) {
            next = ls->hnext;
            struct zk__fs_listing **b = &tab[lc_bucket(lc, ls->dir)];
            ls->hnext = *b;
            *b = ls;
        }
    }
    free(old);
    return 0;
}

/* Drops the least recently used listings (never keep) until the bytes
 * kept are within the bound. */
static void lc_evict(struct zk__fs_lcache *lc, const struct zk__fs_listing *keep)
{
    while (lc->bytes > lc->bytes_max && lc->lru.prev != &lc->lru) {
        struct zk__fs_listing *ls = lc->lru.prev;
        if (ls == keep) {
            if (ls->prev == &lc->lru)
                return;
            ls = ls->prev;
        }
        lc->evicted++;
        lc_drop(lc, ls);
    }
}

/* Keeps ls (its one reference becomes the cache's). A listing bigger than
 * the whole bound is not kept: -E2BIG. */
static int lc_insert(struct zk__fs_lcache *lc, struct zk__fs_listing *ls)
{
    ls->bytes = ls_bytes(ls);
    if (ls->bytes > lc->bytes_max)
        return -E2BIG;
    if (lc->count + 1 > lc->nbuckets && lc_grow(lc) != 0 && !lc->nbuckets)
        return -ENOMEM;
    struct zk__fs_listing **b = &lc->tab[lc_bucket(lc, ls->dir)];
    ls->hnext = *b;
    *b = ls;
    lru_front(lc, ls);
    ls->cached = 1;
    lc->count++;
    lc->bytes += ls->bytes;
    lc_evict(lc, ls);
    return 0;
}

/* The bytes of a kept listing changed (a patch, its READDIR buffer). */
static void lc_resize(struct zk__fs_lcache *lc, struct zk__fs_listing *ls)
{
    size_t b = ls_bytes(ls);
    if (!ls->cached) {
        ls->bytes = b;
        return;
    }
    lc->bytes = lc->bytes - ls->bytes + b;
    ls->bytes = b;
    if (b > lc->bytes_max)
        lc_drop(lc, ls);
    else
        lc_evict(lc, ls);
}

void zk__fs_listing_reset(struct zk_fs *fs)
{
    struct zk__fs_lcache *lc = &fs->listings;
    lc_init(lc);
    while (lc->lru.next != &lc->lru)
        lc_drop(lc, lc->lru.next);
}

void zk__fs_listing_free_all(struct zk_fs *fs)
{
    zk__fs_listing_reset(fs);
    free(fs->listings.tab);
    fs->listings.tab = NULL;
    fs->listings.nbuckets = 0;
}

/* ------------------------------------------------------------------------ */
/* reading a listing                                                         */
/* ------------------------------------------------------------------------ */

/* A listing for one open directory only: the store's children without
 * those hidden here (lease.c), plus this mount's pending creates. */
struct private_read {
    struct zk_fs *fs;
    struct zk__fs_listing *ls;
};

static int private_add(void *arg, const char *name, const struct zk_stat *st)
{
    struct private_read *pr = arg;
    if (pr->fs->n_lost && zk__fs_hidden(pr->fs, st))
        return 0;
    return ls_add(pr->ls, name, st);
}

static int read_private(struct zk_fs *fs, uint64_t dir,
                        struct zk__fs_listing **out)
{
    struct zk__fs_listing *ls = ls_new(dir);
    if (!ls)
        return -ENOMEM;
    struct private_read pr = {.fs = fs, .ls = ls};
    int rc = zk_store_list_at(fs->store, dir, private_add, &pr, &ls->zxid);
    if (rc == 0)
        rc = zk__fs_prov_list(fs, dir, ls_add, ls);
    if (rc) {
        ls_free(ls);
        return rc;
    }
    *out = ls;
    return 0;
}

/* Whether ls has a child of a session this replica gave up (lease.c):
 * such a directory is listed from the store, without them. */
static int ls_hides(const struct zk_fs *fs, const struct zk__fs_listing *ls)
{
    for (size_t i = 0; fs->n_lost && i < ls->n; i++) {
        if (!ls->ents[i].owner)
            continue;
        for (unsigned j = 0; j < fs->n_lost; j++)
            if (ls->ents[i].owner == fs->lost[j])
                return 1;
    }
    return 0;
}

/* dir's kept listing, read (and kept) now if there is none. */
static int kept(struct zk_fs *fs, uint64_t dir, struct zk__fs_listing **out)
{
    struct zk__fs_lcache *lc = &fs->listings;
    struct zk__fs_listing *ls = lc_find(lc, dir);
    if (ls) {
        lc->hits++;
        lru_front(lc, ls);
        ls->refs++;
        *out = ls;
        return 0;
    }
    lc->misses++;
    ls = ls_new(dir);
    if (!ls)
        return -ENOMEM;
    int rc = zk_store_list_at(fs->store, dir, ls_add, ls, &ls->zxid);
    if (rc) {
        ls_free(ls);
        return rc;
    }
    if (lc_insert(lc, ls) == 0)
        ls->refs++;             /* the cache's and the caller's */
    *out = ls;
    return 0;
}

int zk__fs_listing_open(struct zk_fs *fs, uint64_t dir,
                        struct zk__fs_listing **out)
{
    struct zk__fs_lcache *lc = &fs->listings;
    struct zk__fs_listing *ls;
    lc_init(lc);
    if (!zk__fs_prov_in(fs, dir)) {
        int rc = kept(fs, dir, &ls);
        if (rc || !ls_hides(fs, ls)) {
            if (rc == 0)
                *out = ls;
            return rc;
        }
        zk__fs_listing_put(ls);
    }
    lc->private_reads++;
    return read_private(fs, dir, out);
}

/* The kernel's readdir cache (cache_readdir) costs a first listing about
 * twice the floor's time: the kernel copies every entry into it. It pays
 * only when the same version is listed again while the kernel keeps it.
 * So an open directory gets it once the daemon has answered one listing
 * of the version it keeps now. A loss is an open with it whose READDIR
 * starts again at offset 0 after one such open read the version to its
 * end (the kernel had it whole, then evicted the directory's inode:
 * memory pressure, a drop_caches; opens that overlap a fill are not
 * losses). After a loss the next LISTING_SKIP_OPENS opens go without it
 * (answered by the daemon, at the floor's cost), so a kernel that keeps
 * losing it does not make every listing pay for filling it. */
#define LISTING_SKIP_OPENS 4

int zk__fs_listing_kcache(struct zk_fs *fs, uint64_t dir)
{
    struct zk__fs_lcache *lc = &fs->listings;
    if (zk__fs_prov_in(fs, dir))
        return 0;
    struct zk__fs_listing *ls = lc_find(lc, dir);
    if (!ls || ls_hides(fs, ls) || ls->reads < 1)
        return 0;
    if (ls->skip) {
        ls->skip--;
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------------ */
/* patches from applied transactions                                         */
/* ------------------------------------------------------------------------ */

/* dir's kept listing, if a change of transaction zxid is not in it yet,
 * ready to be changed (a copy when an open directory holds it); else
 * NULL. */
static struct zk__fs_listing *to_patch(struct zk__fs_lcache *lc, uint64_t dir,
                                       uint64_t zxid)
{
    struct zk__fs_listing *ls = lc_find(lc, dir);
    if (!ls || zxid <= ls->zxid)
        return NULL;
    if (ls->refs > 1) {
        struct zk__fs_listing *c = ls_copy(ls);
        lc_drop(lc, ls);
        if (!c || lc_insert(lc, c) != 0) {
            if (c)
                ls_free(c);
            return NULL;
        }
        ls = c;
    }
    free(ls->dbuf);             /* laid out again at the next READDIR */
    ls->dbuf = NULL;
    ls->dbuf_len = 0;
    ls->reads = ls->skip = 0;   /* a new version */
    ls->filled = 0;
    return ls;
}

/* A patch that does not fit what the listing holds means it went wrong
 * somewhere: it is dropped and read again. */
static void patch_failed(struct zk__fs_lcache *lc, struct zk__fs_listing *ls,
                         const char *what, const char *name)
{
    zk_log(ZK_LOG_WARN, "listing of %llu: %s of '%s' does not fit; read "
           "again", (unsigned long long)ls->dir, what, name);
    lc->dropped++;
    lc_drop(lc, ls);
}

/* A child came: its stat from the store (the session owning it never
 * changes; the store may be ahead, and if the child is gone again
 * already, the listing is read again). */
static void patch_add(struct zk_fs *fs, uint64_t zxid, uint64_t dir,
                      const char *name, uint64_t ino)
{
    struct zk__fs_lcache *lc = &fs->listings;
    struct zk__fs_listing *ls = to_patch(lc, dir, zxid);
    struct zk_stat st;
    int found;
    if (!ls)
        return;
    size_t i = ls_find(ls, name, &found);
    if (zk_store_getattr(fs->store, ino, &st) != 0) {
        lc_drop(lc, ls);
        return;
    }
    if (found || ls_insert(ls, i, name, &st) != 0) {
        patch_failed(lc, ls, "create", name);
        return;
    }
    lc->patched++;
    lc_resize(lc, ls);
}

static void patch_del(struct zk__fs_lcache *lc, uint64_t zxid, uint64_t dir,
                      const char *name, uint64_t ino)
{
    struct zk__fs_listing *ls = to_patch(lc, dir, zxid);
    int found;
    if (!ls)
        return;
    size_t i = ls_find(ls, name, &found);
    if (!found || ls->ents[i].ino != ino) {
        patch_failed(lc, ls, "removal", name);
        return;
    }
    ls_remove(ls, i);
    lc->patched++;
    lc_resize(lc, ls);
}

/* A directory that went away takes its listing along. */
static void gone(struct zk__fs_lcache *lc, uint64_t ino)
{
    struct zk__fs_listing *ls = ino ? lc_find(lc, ino) : NULL;
    if (ls)
        lc_drop(lc, ls);
}

void zk__fs_listing_applied(struct zk_fs *fs,
                            const struct zk_apply_result *res)
{
    struct zk__fs_lcache *lc = &fs->listings;
    if (!lc->count)
        return;
    for (uint32_t i = 0; i < res->nchanges; i++) {
        const struct zk_change *c = &res->changes[i];
        switch (c->kind) {
        case ZK_CHANGE_CREATE:
            patch_add(fs, res->zxid, c->parent, c->name, c->ino);
            break;
        case ZK_CHANGE_DELETE:
            patch_del(lc, res->zxid, c->parent, c->name, c->ino);
            gone(lc, c->ino);
            break;
        case ZK_CHANGE_RENAME:
            patch_del(lc, res->zxid, c->parent, c->name, c->ino);
            if (c->replaced_ino)
                patch_del(lc, res->zxid, c->parent2, c->name2,
                          c->replaced_ino);
            patch_add(fs, res->zxid, c->parent2, c->name2, c->ino);
            gone(lc, c->replaced_ino);
            break;
        default:
            break;              /* data, attributes, locks: same children */
        }
    }
}

/* ------------------------------------------------------------------------ */
/* answering READDIR and READDIRPLUS                                         */
/* ------------------------------------------------------------------------ */

static mode_t kind_mode(uint32_t kind)
{
    return kind == ZK_KIND_DIR ? S_IFDIR : S_IFREG;
}

/* Lays the children's READDIR entries out (entry i's offset is i + 3:
 * "." and ".." come first), and where each starts. */
static int ls_layout(struct zk_fs *fs, fuse_req_t req,
                     struct zk__fs_listing *ls)
{
    size_t total = 0;
    if (ls->dbuf || ls->n == 0)
        return 0;
    for (size_t i = 0; i < ls->n; i++) {
        ls->ents[i].doff = total;
        total += fuse_add_direntry(req, NULL, 0, ls_name(ls, i), NULL, 0);
    }
    char *buf = malloc(total);
    if (!buf)
        return -ENOMEM;
    struct stat st;
    memset(&st, 0, sizeof(st));
    for (size_t i = 0; i < ls->n; i++) {
        size_t end = i + 1 < ls->n ? ls->ents[i + 1].doff : total;
        st.st_ino = ls->ents[i].ino;
        st.st_mode = kind_mode(ls->ents[i].kind);
        fuse_add_direntry(req, buf + ls->ents[i].doff,
                          end - ls->ents[i].doff, ls_name(ls, i), &st,
                          (off_t)i + 3);
    }
    ls->dbuf = buf;
    ls->dbuf_len = total;
    lc_resize(&fs->listings, ls);
    return 0;
}

static size_t ent_end(const struct zk__fs_listing *ls, size_t i)
{
    return i + 1 < ls->n ? ls->ents[i + 1].doff : ls->dbuf_len;
}

/* How many children from k on fit in room bytes of READDIR entries. */
static size_t fitting(const struct zk__fs_listing *ls, size_t k, size_t room)
{
    size_t lo = k, hi = ls->n, start = k < ls->n ? ls->ents[k].doff : 0;
    while (lo < hi) {           /* the first child that does not fit */
        size_t mid = lo + (hi - lo) / 2;
        if (ent_end(ls, mid) - start <= room)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo - k;
}

/* "." and ".." from entry i on into buf; returns the bytes, and in *next
 * the first entry not added. */
static size_t dots(fuse_req_t req, const struct zk__fs_dirpos *d, size_t i,
                   char *buf, size_t size, int plus, size_t *next)
{
    size_t pos = 0;
    for (; i < 2; i++) {
        struct fuse_entry_param e;
        memset(&e, 0, sizeof(e));
        e.attr.st_ino = i == 0 ? d->self : d->parent;
        e.attr.st_mode = S_IFDIR;
        const char *name = i == 0 ? "." : "..";
        size_t need = plus ? fuse_add_direntry_plus(req, buf + pos, size - pos,
                                                    name, &e, (off_t)i + 1)
                           : fuse_add_direntry(req, buf + pos, size - pos,
                                               name, &e.attr, (off_t)i + 1);
        if (need > size - pos)
            break;
        pos += need;
    }
    *next = i;
    return pos;
}

static void reply_plain(struct zk_fs *fs, fuse_req_t req,
                        struct zk__fs_listing *ls,
                        const struct zk__fs_dirpos *d, size_t size, size_t i)
{
    char head[128];
    size_t next, len = dots(req, d, i, head, size < sizeof(head) ? size
                                                                 : sizeof(head),
                            0, &next);
    struct iovec iov[2] = {{head, len}, {NULL, 0}};
    int rc = next < 2 ? 0 : ls_layout(fs, req, ls);
    if (rc) {
        zk__fs_reply_errno(req, rc);
        return;
    }
    size_t k = next - 2;
    if (next >= 2 && k < ls->n) {
        size_t m = fitting(ls, k, size - len);
        if (m) {
            iov[1].iov_base = ls->dbuf + ls->ents[k].doff;
            iov[1].iov_len = ent_end(ls, k + m - 1) - ls->ents[k].doff;
        }
    }
    fuse_reply_iov(req, iov, 2);
}

/* The stat READDIRPLUS gives child k, if any: for a listing that is not
 * the current one, only while the name still names that inode (the
 * kernel keeps the entry). */
static int plus_stat(struct zk_fs *fs, const struct zk__fs_listing *ls,
                     size_t k, struct zk_stat *st)
{
    uint64_t ino = ls->ents[k].ino;
    if (ZK__FS_IS_PROV(ino)) {
        struct zk__fs_prov *pv = zk__fs_prov_of(fs, ino);
        if (!pv)
            return -ENOENT;
        *st = pv->st;
        return 0;
    }
    int rc = ls->cached ? zk_store_getattr(fs->store, ino, st)
                        : zk_store_lookup(fs->store, ls->dir, ls_name(ls, k),
                                          st);
    return rc == 0 && st->ino != ino ? -ENOENT : rc;
}

static void reply_plus(struct zk_fs *fs, fuse_req_t req,
                       const struct zk__fs_listing *ls,
                       const struct zk__fs_dirpos *d, size_t size, size_t i)
{
    int user = zk__fs_echo_marks(fs, req);
    char *buf = malloc(size ? size : 1);
    if (!buf) {
        zk__fs_reply_errno(req, -ENOMEM);
        return;
    }
    size_t next, pos = dots(req, d, i, buf, size, 1, &next);
    size_t end = ls->n + 2;
    if (i == 0 && end > 2 + ZK__FS_PLUS_FIRST_MAX)
        end = 2 + ZK__FS_PLUS_FIRST_MAX;
    for (i = next; i >= 2 && i < end; i++) {
        size_t k = i - 2;
        struct fuse_entry_param e;
        struct zk_stat st;
        if (plus_stat(fs, ls, k, &st) == 0) {
            zk__fs_entry_param(fs, &st, ZK__FS_TIMEOUT_S, ZK__FS_TIMEOUT_S,
                               &e);
        } else {                /* gone: a name without attributes */
            memset(&e, 0, sizeof(e));
            e.attr.st_ino = ls->ents[k].ino;
            e.attr.st_mode = kind_mode(ls->ents[k].kind);
        }
        size_t need = fuse_add_direntry_plus(req, buf + pos, size - pos,
                                             ls_name(ls, k), &e, (off_t)i + 1);
        if (need > size - pos)
            break;
        pos += need;
        if (e.ino)
            zk__fs_kernel_entry(fs, user, e.ino);
    }
    fuse_reply_buf(req, buf, pos);
    free(buf);
}

void zk__fs_listing_reply(struct zk_fs *fs, fuse_req_t req,
                          struct zk__fs_listing *ls,
                          const struct zk__fs_dirpos *d, size_t size,
                          off_t off, int plus)
{
    size_t i = off < 0 ? 0 : (size_t)off;
    if (i == 0 && d->kcache && ls->filled) {
        ls->skip = LISTING_SKIP_OPENS;  /* it had it whole, asks again */
        ls->filled = 0;
    } else if (i == 0 && !d->kcache) {
        ls->reads++;
    }
    if (d->kcache && i >= ls->n + 2)
        ls->filled = 1;         /* read to the end: the kernel has it */
    if (plus)
        reply_plus(fs, req, ls, d, size, i);
    else
        reply_plain(fs, req, ls, d, size, i);
}
