/*
 * lease.c — what this mount does when its replica gives its session up.
 *
 * An ensemble member without word from a quorum for 3/5 of the session
 * timeout gives its session up (replica/ensemble.c, lease_check) before the
 * leader can expire it: its ephemerals, and whatever they stand for (a
 * lock, a leadership), must be lost HERE first, so that no two holders
 * ever exist at once. The store cannot delete them (it only changes by
 * committed transactions, in zxid order, or it would diverge from the
 * other replicas), so this mount hides them:
 *
 *  - the session joins fs->lost; every node it owns is then invisible
 *    through the mount (lookup, getattr, open and listings say ENOENT),
 *  - each one is deleted for the kernel by an echo replay (a real unlink
 *    through the mountpoint), so local inotify watchers see IN_DELETE and
 *    the kernel's caches forget it,
 *  - descriptors on them fail writes, fsync and close with ENOLINK.
 *
 * The session is closed everywhere once this replica rejoins (its new
 * session's SESSION_OPEN closes the old one) or when the leader expires
 * it; the committed deletions then find nothing left to tell the kernel.
 * A session leaves fs->lost once the store no longer has it.
 *
 * Polled from a timer on the loop thread (ensemble only): the replica has
 * no callback for it, and a few tens of milliseconds do not matter next
 * to a lease of seconds.
 */
#include "fs_int.h"

#include <errno.h>
#include <stdio.h>

#define LEASE_POLL_MS 50

int zk__fs_hidden(const struct zk_fs *fs, const struct zk_stat *st)
{
    if (st->ephemeral_owner == 0 || fs->n_lost == 0)
        return 0;
    for (unsigned i = 0; i < fs->n_lost; i++)
        if (fs->lost[i] == st->ephemeral_owner)
            return 1;
    return 0;
}

struct find_session {
    uint64_t session;
    int found;
};

static int find_cb(void *arg, uint64_t session, uint32_t timeout_ms,
                   const char *owner)
{
    struct find_session *f = arg;
    (void)timeout_ms;
    (void)owner;
    if (session == f->session)
        f->found = 1;
    return 0;
}

/* 1 if the store still has session open, 0 if not, < 0 on an error. */
static int session_in_store(struct zk_fs *fs, uint64_t session)
{
    struct find_session f = {session, 0};
    int rc = zk_store_sessions(fs->store, find_cb, &f);
    return rc < 0 ? rc : f.found;
}

/* Tells the kernel (and local watchers) that ephemeral ino is gone. */
static int vanish(void *arg, uint64_t ino)
{
    struct zk_fs *fs = arg;
    struct zk_change c;

    if (zk__fs_deletion_of(fs, ino, &c) == 0) {
        zk__fs_echo_change(fs, &c);
        fs->lost_nodes++;
    }
    return 0;
}

/* Hides session's ephemerals on this mount (see the top of the file). */
static void lose(struct zk_fs *fs, uint64_t session)
{
    if (fs->n_lost == ZK_ARRAY_LEN(fs->lost)) {
        /* Oldest first out: by now the ensemble has long closed it. */
        memmove(fs->lost, fs->lost + 1, sizeof(fs->lost) - sizeof(fs->lost[0]));
        fs->n_lost--;
    }
    fs->lost[fs->n_lost++] = session;
    uint64_t before = fs->lost_nodes;
    int rc = zk_store_ephemerals(fs->store, session, vanish, fs);
    zk_log(rc ? ZK_LOG_ERROR : ZK_LOG_WARN, "session %016llx given up: "
           "%llu ephemerals are gone from this mount%s%s",
           (unsigned long long)session,
           (unsigned long long)(fs->lost_nodes - before),
           rc ? "; listing them failed: " : "", rc ? zk_strerror(rc) : "");
}

/* Forgets lost sessions the store has closed (their nodes are deleted). */
static void prune(struct zk_fs *fs)
{
    unsigned j = 0;
    for (unsigned i = 0; i < fs->n_lost; i++)
        if (session_in_store(fs, fs->lost[i]) != 0)
            fs->lost[j++] = fs->lost[i];
    fs->n_lost = j;
}

static void on_lease_poll(uv_timer_t *t)
{
    struct zk_fs *fs = t->data;
    uint64_t cur = zk_replica_session(fs->replica);

    if (fs->n_lost)
        prune(fs);
    if (cur == fs->session_seen || fs->stopping)
        return;
    uint64_t old = fs->session_seen;
    fs->session_seen = cur;
    /* A session that is no longer open in the store was closed by a
     * commit, whose deletions reached the kernel the ordinary way. One
     * that is still open was given up by this replica. */
    if (old && session_in_store(fs, old) > 0)
        lose(fs, old);
}

int zk__fs_lease_start(struct zk_fs *fs)
{
    int rc = uv_timer_init(&fs->loop, &fs->lease_timer);
    if (rc)
        return rc;
    fs->lease_timer_init = 1;
    fs->lease_timer.data = fs;
    fs->session_seen = zk_replica_session(fs->replica);
    return uv_timer_start(&fs->lease_timer, on_lease_poll, LEASE_POLL_MS,
                          LEASE_POLL_MS);
}

void zk__fs_lease_close(struct zk_fs *fs)
{
    if (fs->lease_timer_init && !uv_is_closing((uv_handle_t *)&fs->lease_timer))
        uv_close((uv_handle_t *)&fs->lease_timer, NULL);
}
