/*
 * check.c — zk_store_check: `zkfs check DATA_DIR`, a whole-store walk in
 * one read transaction that reports every inconsistency between what the
 * tables say, instead of stopping at the first, so that a damaged store
 * can be judged (and a restored backup proven sound).
 *
 * Each link is checked from both ends: a node names its parent and its
 * entry there (nodes walk), an entry names a node that names it back
 * (dirents walk); a directory's numChildren is the number of its entries;
 * every node is reached from the root over entries (a cycle cut off from
 * the root is found only so); dataLength is the data record's length; an
 * ephemeral has its ephemeral row and every row its ephemeral; the meta
 * counters equal what was counted. LMDB keeps no page checksums, so the
 * only checksums are the log entries' (zk_txn_decode checks each crc32).
 * Problems are reported, never repaired.
 */
#include "store_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zk_txn.h"
#include "zk_envelope.h"

struct chk {
    struct zk_store *s;
    MDB_txn *t;
    zk_store_check_cb cb;
    void *arg;
    struct zk_store_check_stats *st;
    struct zk__counters cn;
    int have_counters;
    uint64_t max_ino;
    uint64_t log_prev;        /* check_log: the previous entry's zxid */
};

static void problem(struct chk *c, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(struct chk *c, const char *what, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    c->st->problems++;
    c->cb(c->arg, what, text);
}

/* Calls fn for every record of dbi, in key order; fn's error stops it. */
static int each(struct chk *c, MDB_dbi dbi,
                int (*fn)(struct chk *c, const MDB_val *k, const MDB_val *v))
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(c->t, dbi, &cur);
    if (rc != 0)
        return zk__mdb_err(rc, "check cursor");
    int op = MDB_FIRST;
    while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        if ((rc = fn(c, &k, &v)) != 0)
            goto done;
    }
    /* LMDB's code, never passed on as is: its own are negative too (a
     * damaged page, which is what a check is run for). */
    rc = rc == MDB_NOTFOUND ? 0 : zk__mdb_err(rc, "check read");
done:
    mdb_cursor_close(cur);
    return rc;
}

/* Entries under dir: how many (stops counting past limit + 1). */
static int count_entries(struct chk *c, uint64_t dir, uint64_t *n)
{
    MDB_cursor *cur;
    uint8_t kb[8];
    zk_put_be64(kb, dir);
    MDB_val k = {8, kb}, v;
    int rc = mdb_cursor_open(c->t, c->s->dirents, &cur);
    if (rc != 0)
        return zk__mdb_err(rc, "check cursor");
    *n = 0;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size >= 8 && zk_get_be64(k.mv_data) == dir) {
        (*n)++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : zk__mdb_err(rc, "check read");
}

static int name_ok(const struct zk__node *n)
{
    return n->name_len > 0 && !memchr(n->name, '/', n->name_len) &&
           !memchr(n->name, '\0', n->name_len) && strcmp(n->name, ".") &&
           strcmp(n->name, "..");
}

/* ------------------------------------------------------------------ */
/* nodes                                                               */
/* ------------------------------------------------------------------ */

static void node_links(struct chk *c, const struct zk__node *n)
{
    const struct zk_stat *st = &n->st;
    struct zk__node p;
    uint64_t child;
    int rc = zk__node_get(c->s, c->t, st->parent, &p);
    if (rc != 0) {
        problem(c, "nodes", "ino %" PRIu64 " (%s): parent %" PRIu64 " %s",
                st->ino, n->name, st->parent, rc == -ENOENT ? "does not exist"
                                                            : "is unreadable");
        return;
    }
    if (p.st.kind != ZK_KIND_DIR)
        problem(c, "nodes", "ino %" PRIu64 ": parent %" PRIu64 " is a file",
                st->ino, st->parent);
    if (p.st.ephemeral_owner)
        problem(c, "nodes", "ino %" PRIu64 ": parent %" PRIu64 " is "
                "ephemeral", st->ino, st->parent);
    rc = zk__dirent_get(c->s, c->t, st->parent, n->name, n->name_len, &child);
    if (rc != 0 || child != st->ino)
        problem(c, "dirents", "ino %" PRIu64 " (%s): no entry in its parent "
                "%" PRIu64, st->ino, n->name, st->parent);
}

static void node_data(struct chk *c, const struct zk_stat *st)
{
    uint8_t kb[8];
    zk_put_be64(kb, st->ino);
    MDB_val k = {8, kb}, v = {0, NULL};
    int rc = mdb_get(c->t, c->s->data, &k, &v);
    size_t len = rc == 0 ? v.mv_size : 0;
    if ((rc != 0 && rc != MDB_NOTFOUND) || len != st->data_length)
        problem(c, "data", "ino %" PRIu64 ": dataLength %u, data record of "
                "%zu bytes", st->ino, st->data_length, len);
}

static void node_ephemeral(struct chk *c, const struct zk_stat *st)
{
    uint8_t kb[16];
    zk_put_be64(kb, st->ephemeral_owner);
    zk_put_be64(kb + 8, st->ino);
    MDB_val k = {16, kb}, v;
    c->st->ephemerals++;
    if (mdb_get(c->t, c->s->ephem, &k, &v) != 0)
        problem(c, "ephemerals", "ino %" PRIu64 ": ephemeral of session "
                "%#" PRIx64 " has no ephemeral row", st->ino,
                st->ephemeral_owner);
    if (st->num_children)
        problem(c, "nodes", "ino %" PRIu64 ": ephemeral with %u children",
                st->ino, st->num_children);
}

/* A failed read of the entries is the store's error, not a problem of
 * the tree: it stops the check (as in reach()). */
static int node_children(struct chk *c, const struct zk_stat *st)
{
    uint64_t n = 0;
    int rc = count_entries(c, st->ino, &n);
    if (rc != 0)
        return rc;
    if (st->kind == ZK_KIND_FILE && n)
        problem(c, "dirents", "ino %" PRIu64 ": a file with %" PRIu64
                " entries under it", st->ino, n);
    else if (n != st->num_children)
        problem(c, "nodes", "ino %" PRIu64 ": numChildren %u, %" PRIu64
                " entries", st->ino, st->num_children, n);
    return 0;
}

static int on_node(struct chk *c, const MDB_val *k, const MDB_val *v)
{
    struct zk__node n;
    if (k->mv_size != 8) {
        problem(c, "nodes", "key of %zu bytes", k->mv_size);
        return 0;
    }
    uint64_t ino = zk_get_be64(k->mv_data);
    if (zk__node_decode(v->mv_data, v->mv_size, ino, &n) != 0) {
        problem(c, "nodes", "ino %" PRIu64 ": record does not decode", ino);
        return 0;
    }
    c->st->znodes++;
    c->st->dirs += n.st.kind == ZK_KIND_DIR;
    c->st->data_bytes += n.st.data_length;
    if (ino > c->max_ino)
        c->max_ino = ino;
    if (ino == ZK_INO_ROOT) {
        if (n.st.kind != ZK_KIND_DIR || n.st.parent != 0 || n.name_len)
            problem(c, "nodes", "the root is not a directory without parent");
    } else if (ino < ZK_INO_FIRST_NODE) {
        problem(c, "nodes", "ino %" PRIu64 " is reserved", ino);
    } else if (!name_ok(&n)) {
        problem(c, "nodes", "ino %" PRIu64 ": bad name", ino);
    } else {
        node_links(c, &n);
    }
    node_data(c, &n.st);
    if (n.st.ephemeral_owner)
        node_ephemeral(c, &n.st);
    return node_children(c, &n.st);
}

/* ------------------------------------------------------------------ */
/* the other tables                                                    */
/* ------------------------------------------------------------------ */

static int on_dirent(struct chk *c, const MDB_val *k, const MDB_val *v)
{
    struct zk__node n;
    c->st->dirents++;
    if (k->mv_size < 9 || k->mv_size > 8 + ZK_NAME_MAX || v->mv_size != 8) {
        problem(c, "dirents", "record of %zu+%zu bytes", k->mv_size,
                v->mv_size);
        return 0;
    }
    uint64_t parent = zk_get_be64(k->mv_data), ino = zk_get_be64(v->mv_data);
    const char *name = (const char *)k->mv_data + 8;
    size_t len = k->mv_size - 8;
    int rc = zk__node_get(c->s, c->t, ino, &n);
    if (rc != 0)
        problem(c, "dirents", "entry %" PRIu64 "/%.*s: ino %" PRIu64 " %s",
                parent, (int)len, name, ino,
                rc == -ENOENT ? "does not exist" : "is unreadable");
    else if (n.st.parent != parent || n.name_len != len ||
             memcmp(n.name, name, len) != 0)
        problem(c, "dirents", "entry %" PRIu64 "/%.*s: ino %" PRIu64
                " names another place (%" PRIu64 "/%s)", parent, (int)len,
                name, ino, n.st.parent, n.name);
    return 0;
}

static int on_data(struct chk *c, const MDB_val *k, const MDB_val *v)
{
    struct zk__node n;
    if (k->mv_size != 8 || v->mv_size == 0 || v->mv_size > ZK_DATA_MAX) {
        problem(c, "data", "record of %zu+%zu bytes", k->mv_size, v->mv_size);
        return 0;
    }
    uint64_t ino = zk_get_be64(k->mv_data);
    if (zk__node_get(c->s, c->t, ino, &n) != 0)
        problem(c, "data", "data of ino %" PRIu64 ", which does not exist",
                ino);
    return 0;
}

static int on_session(struct chk *c, const MDB_val *k, const MDB_val *v)
{
    c->st->sessions++;
    if (k->mv_size != 8 || v->mv_size < 4 || v->mv_size > 4 + ZK_OWNER_MAX)
        problem(c, "sessions", "record of %zu+%zu bytes", k->mv_size,
                v->mv_size);
    return 0;
}

static int on_ephem(struct chk *c, const MDB_val *k, const MDB_val *v)
{
    struct zk__node n;
    if (k->mv_size != 16 || v->mv_size > ZK_OWNER_MAX) {
        problem(c, "ephemerals", "record of %zu+%zu bytes", k->mv_size,
                v->mv_size);
        return 0;
    }
    uint64_t session = zk_get_be64(k->mv_data);
    uint64_t ino = zk_get_be64((const uint8_t *)k->mv_data + 8);
    if (zk__node_get(c->s, c->t, ino, &n) != 0 ||
        n.st.ephemeral_owner != session)
        problem(c, "ephemerals", "row of session %#" PRIx64 ": ino %" PRIu64
                " is not its ephemeral", session, ino);
    return 0;
}

static int no_op_lock(void *arg, const struct zk_lock_ent *e)
{
    (void)arg;
    (void)e;
    return 0;
}

static int on_lock(struct chk *c, const MDB_val *k, const MDB_val *v)
{
    struct zk__node n;
    (void)v;
    c->st->lock_tables++;
    if (k->mv_size != 8) {
        problem(c, "locks", "key of %zu bytes", k->mv_size);
        return 0;
    }
    uint64_t ino = zk_get_be64(k->mv_data);
    if (zk__node_get(c->s, c->t, ino, &n) != 0)
        problem(c, "locks", "lock table of ino %" PRIu64 ", which does not "
                "exist", ino);
    if (zk_store_locks(c->s, ino, no_op_lock, NULL) != 0)
        problem(c, "locks", "lock table of ino %" PRIu64 " does not decode",
                ino);
    return 0;
}

/* One log entry: its envelope (ensemble) or transaction (standalone)
 * decodes, and within an epoch zxids follow each other without a gap. */
static int on_log(void *arg, uint64_t zxid, const uint8_t *p, size_t len)
{
    struct chk *c = arg;
    struct zk_txn *txn;
    if (c->st->log_entries++ > 0 && zxid >> 32 == c->log_prev >> 32 &&
        zxid != c->log_prev + 1)
        problem(c, "log", "entries %#" PRIx64 "..%#" PRIx64 " are missing",
                c->log_prev + 1, zxid - 1);
    c->log_prev = zxid;
    if (len >= 2 && p[0] == ZK_ENV_MAGIC) {
        uint32_t type = len >= ZK_ENV_HDR ? zk_get_be32(p + 2) : 0;
        if (len < ZK_ENV_HDR || p[1] != ZK_ENV_VERSION ||
            type < ZK_ENTRY_WRITE || type > ZK_ENTRY_SESSION_CLOSE) {
            problem(c, "log", "entry %#" PRIx64 ": bad envelope", zxid);
            return 0;
        }
        if (type != ZK_ENTRY_WRITE)
            return 0;
        p += ZK_ENV_HDR;
        len -= ZK_ENV_HDR;
    }
    int rc = zk_txn_decode(p, len, &txn);
    if (rc == -ENOMEM)
        return rc;
    if (rc != 0)
        problem(c, "log", "entry %#" PRIx64 ": %s", zxid, zk_strerror(rc));
    else
        zk_txn_free(txn);
    return 0;
}

static void wal_problem(void *arg, const char *text)
{
    problem(arg, "log", "%s", text);
}

/* The write-ahead log (wal.c): every record on disk whole, zxids
 * increasing, the index found on disk, what opening cut, each entry's
 * transaction, and the log continuing the tree: no entry of
 * last_applied's epoch missing between last_applied and the log. */
static int check_log(struct chk *c)
{
    struct zk__wal_cut cut;
    uint64_t on_disk, first, last;
    struct zk__wal *w = c->s->wal;
    zk__wal_cut_info(w, &cut);
    if (cut.cut && cut.dropped_records > 0)
        problem(c, "log", "opening cut the log at segment %" PRIu64
                " offset %" PRIu64 " before %" PRIu64 " whole records: "
                "damaged inside, not a torn tail", cut.seq, cut.off,
                cut.dropped_records);
    int rc = zk__wal_verify(w, wal_problem, c, &on_disk);
    if (rc != 0)
        return rc;
    zk__wal_bounds(w, &first, &last);
    uint64_t la = c->st->last_applied;
    if (first != 0 && la != 0 && first > la + 1 && first >> 32 == la >> 32)
        problem(c, "log", "the log starts at %#" PRIx64 ", entries from "
                "last_applied + 1 (%#" PRIx64 ") are missing", first,
                la + 1);
    return zk__wal_scan(w, 0, on_log, c);
}

/* ------------------------------------------------------------------ */
/* reachability and counters                                           */
/* ------------------------------------------------------------------ */

/* Walks the tree from the root over entries (an explicit stack of
 * directories): every znode must be reached, and none twice. */
static int reach(struct chk *c)
{
    size_t cap = 256, n = 1;
    uint64_t *stack = malloc(cap * sizeof(*stack)), reached = 1;
    if (stack == NULL)
        return -ENOMEM;
    stack[0] = ZK_INO_ROOT;
    int rc = 0;
    while (n > 0 && rc == 0 && reached <= c->st->znodes) {
        uint64_t dir = stack[--n];
        MDB_cursor *cur;
        uint8_t kb[8];
        zk_put_be64(kb, dir);
        MDB_val k = {8, kb}, v;
        if ((rc = mdb_cursor_open(c->t, c->s->dirents, &cur)) != 0) {
            rc = zk__mdb_err(rc, "check cursor");
            break;
        }
        int r = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        for (; r == 0 && k.mv_size >= 8 && zk_get_be64(k.mv_data) == dir &&
               v.mv_size == 8; r = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            struct zk__node ch;
            uint64_t ino = zk_get_be64(v.mv_data);
            if (ino == ZK_INO_ROOT || zk__node_get(c->s, c->t, ino, &ch) != 0)
                continue;       /* reported by the dirents walk */
            reached++;
            if (ch.st.kind != ZK_KIND_DIR)
                continue;
            if (n == cap) {
                uint64_t *ns = realloc(stack, 2 * cap * sizeof(*stack));
                if (ns == NULL) {
                    rc = -ENOMEM;
                    break;
                }
                stack = ns;
                cap *= 2;
            }
            stack[n++] = ino;
        }
        mdb_cursor_close(cur);
        /* a read that failed is the store's error, not a cut-off tree */
        if (rc == 0 && r != 0 && r != MDB_NOTFOUND)
            rc = zk__mdb_err(r, "check cursor");
    }
    free(stack);
    if (rc == 0 && reached != c->st->znodes)
        problem(c, "tree", "%" PRIu64 " znodes, %" PRIu64 " reached from the "
                "root (%s)", c->st->znodes, reached, reached > c->st->znodes
                ? "a cycle" : "the others are cut off");
    return rc;
}

static void counters(struct chk *c)
{
    if (!c->have_counters)
        return;
    if (c->cn.znodes != c->st->znodes)
        problem(c, "meta", "znodes says %" PRIu64 ", the tree has %" PRIu64,
                c->cn.znodes, c->st->znodes);
    if (c->cn.data_bytes != c->st->data_bytes)
        problem(c, "meta", "data_bytes says %" PRIu64 ", the data is %"
                PRIu64, c->cn.data_bytes, c->st->data_bytes);
    if (c->cn.sessions != c->st->sessions)
        problem(c, "meta", "sessions says %" PRIu64 ", the table has %"
                PRIu64, c->cn.sessions, c->st->sessions);
    if (c->cn.next_ino <= c->max_ino)
        problem(c, "meta", "next_ino %" PRIu64 " is not above the largest "
                "inode %" PRIu64, c->cn.next_ino, c->max_ino);
}

static int walk(struct chk *c)
{
    int rc;
    if (zk__counters_get(c->s, c->t, &c->cn) == 0)
        c->have_counters = 1;
    else
        problem(c, "meta", "the counters are missing or malformed");
    if (zk__meta_get(c->s, c->t, ZK__META_LAST_APPLIED,
                     &c->st->last_applied) != 0)
        problem(c, "meta", "last_applied is missing or malformed");
    if ((rc = each(c, c->s->nodes, on_node)) != 0 ||
        (rc = each(c, c->s->dirents, on_dirent)) != 0 ||
        (rc = each(c, c->s->data, on_data)) != 0 ||
        (rc = each(c, c->s->sessions, on_session)) != 0 ||
        (rc = each(c, c->s->ephem, on_ephem)) != 0 ||
        (rc = each(c, c->s->locks, on_lock)) != 0)
        return rc;
    counters(c);
    return reach(c);
}

/* What an installed snapshot must be before it is used: one tree
 * (every node reached from the root once, every link checked from both
 * ends). A stream is crc-checked, but a peer's or a backup's store could
 * itself be damaged, and a cycle of parents would make every later path
 * lookup walk ZK__DEPTH_MAX steps. Problems of the tree's shape ("nodes",
 * "dirents", "tree") reject it; the others (counters, sizes, the log
 * table) are logged as warnings, as the store that sent it has them too. */
struct tree_chk {
    uint64_t shape;
    char first[256];
};

static void tree_problem(void *arg, const char *what, const char *text)
{
    struct tree_chk *tc = arg;
    int shape = !strcmp(what, "nodes") || !strcmp(what, "dirents") ||
                !strcmp(what, "tree");
    if (!shape) {
        zk_log(ZK_LOG_WARN, "store: installed snapshot: %s: %s", what, text);
        return;
    }
    if (tc->shape++ == 0)
        snprintf(tc->first, sizeof(tc->first), "%s: %s", what, text);
}

int zk__check_tree(struct zk_store *s, MDB_txn *t)
{
    struct zk_store_check_stats st = {0};
    struct tree_chk tc = {0};
    struct chk c = {.s = s, .t = t, .cb = tree_problem, .arg = &tc,
                    .st = &st};
    int rc = walk(&c);
    if (rc == 0 && tc.shape > 0) {
        zk_log(ZK_LOG_ERROR, "store: snapshot is not one tree (%llu "
               "problems, the first: %s)", (unsigned long long)tc.shape,
               tc.first);
        rc = ZK_ECORRUPT;
    }
    return rc;
}

int zk_store_check(struct zk_store *s, zk_store_check_cb cb, void *arg,
                   struct zk_store_check_stats *out)
{
    struct zk_store_check_stats st = {0};
    struct chk c = {.s = s, .cb = cb, .arg = arg, .st = &st};
    int rc = zk__rd_begin(s, &c.t);
    if (rc != 0)
        return rc;
    rc = walk(&c);
    zk__rd_end(s, c.t);
    if (rc == 0)
        rc = check_log(&c);
    if (rc == 0)
        *out = st;
    return rc;
}
