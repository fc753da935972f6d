/*
 * lease.c — what this mount does when its replica gives its session up.
 *
 * An ensemble member whose lease ran out (replica/lease.c: no quorum
 * acknowledged what it sent within 2/3 of the session timeout, less two
 * ticks, measured on CLOCK_BOOTTIME, which runs through a suspend) gives its session up before the
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
 *  - descriptors on them fail reads, writes, fsync, close, getxattr and
 *    fstat (when it reaches the daemon) with ENOLINK.
 *
 * The lease is checked on that clock whenever a request about an
 * ephemeral of our own session is answered (zk__fs_hidden), not only by
 * the replica's tick timer: requests that queued up while the process
 * was stopped are answered after the check.
 *
 * The session is closed everywhere once this replica rejoins (its new
 * session's SESSION_OPEN closes the old one) or when the leader expires
 * it; the committed deletions then find nothing left to tell the kernel.
 * A session stays in fs->lost (the last ZK_ARRAY_LEN(fs->lost) of them):
 * session ids are never reused, so once it is closed nothing carries it.
 */
#include "fs_int.h"

#include <errno.h>
#include <stdio.h>

int zk__fs_hidden(struct zk_fs *fs, const struct zk_stat *st)
{
    if (st->ephemeral_owner == 0)
        return 0;
    /* Our own session's node: answer only while the lease holds (a
     * request queued through a pause is answered after it: the clock is
     * read now). Running out puts the session in fs->lost at once. */
    if (st->ephemeral_owner == zk_replica_session(fs->replica))
        zk_replica_lease_check(fs->replica);
    if (fs->n_lost == 0)
        return 0;
    for (unsigned i = 0; i < fs->n_lost; i++)
        if (fs->lost[i] == st->ephemeral_owner)
            return 1;
    return 0;
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

/* zk_replica's session_lost callback: hides session's ephemerals on this
 * mount (see the top of the file). */
void zk__fs_session_lost(void *arg, uint64_t session)
{
    struct zk_fs *fs = arg;

    if (fs->n_lost == ZK_ARRAY_LEN(fs->lost)) {
        /* Oldest first out: by now the ensemble has long closed it (and
         * a closed session's nodes are gone: nothing to hide). */
        memmove(fs->lost, fs->lost + 1, sizeof(fs->lost) - sizeof(fs->lost[0]));
        fs->n_lost--;
    }
    fs->lost[fs->n_lost++] = session;
    zk__fs_lock_session_lost(fs, session);
    uint64_t before = fs->lost_nodes;
    int rc = zk_store_ephemerals(fs->store, session, vanish, fs);
    zk_log(rc ? ZK_LOG_ERROR : ZK_LOG_WARN, "session %016llx given up: "
           "%llu ephemerals are gone from this mount%s%s",
           (unsigned long long)session,
           (unsigned long long)(fs->lost_nodes - before),
           rc ? "; listing them failed: " : "", rc ? zk_strerror(rc) : "");
}
