/*
 * release.c — deleting a released ephemeral, so that it never lingers.
 *
 * The last close of a holder's descriptor (or its process's death) deletes
 * its ephemeral by a committed DELETE (file.c: through the echo thread's
 * unlink when it runs; here when it does not or its unlink failed). While
 * this replica has no quorum that DELETE fails (ETIMEDOUT after the
 * replica's bounded wait, or at once when its queue is full), and the
 * session that owns the node stays alive when the quorum comes back
 * within the lease: the node, and the lock it stands for, would stay held
 * with no holder. So a failed delete is proposed again, at most
 * ZK__FS_DELETE_TRIES times (each try waits for its commit, so this never
 * spins), and if it still fails this replica gives its session up
 * (zk_replica_give_up): every ephemeral of the session is then lost here
 * at once and closed everywhere by the ensemble (the new session's
 * SESSION_OPEN, or the leader's expiry). Nothing released stays held.
 */
#include "fs_int.h"

#include <errno.h>
#include <stdlib.h>

/* Proposals of one release's DELETE before the session is given up. */
#define ZK__FS_DELETE_TRIES 3

struct del {
    struct zk_fs *fs;
    uint64_t ino;
    uint64_t session;          /* the node's owner, when released */
    unsigned tries;
};

static int propose(struct del *d);

/* The node is still there and still ours: the release must not linger. */
static int still_held(struct del *d)
{
    struct zk_stat st;

    return !d->fs->stopping &&
           zk_store_getattr(d->fs->store, d->ino, &st) == 0 &&
           st.ephemeral_owner == d->session &&
           d->session == zk_replica_session(d->fs->replica);
}

static void give_up(struct del *d, int rc)
{
    zk_log(ZK_LOG_WARN, "deleting released ephemeral %llu failed %u times "
           "(%s): giving the session up so that it cannot linger",
           (unsigned long long)d->ino, d->tries, zk_strerror(rc));
    zk_replica_give_up(d->fs->replica);
}

static void delete_done(void *arg, int err, const struct zk_apply_result *res)
{
    struct del *d = arg;
    int rc = zk__fs_result_err(err, res);

    if (rc && rc != -ENOENT && still_held(d)) {
        zk_log(ZK_LOG_WARN, "deleting released ephemeral %llu: %s",
               (unsigned long long)d->ino, zk_strerror(rc));
        if (d->tries < ZK__FS_DELETE_TRIES && propose(d) == 0)
            return;
        give_up(d, rc);
    }
    free(d);
}

/* Proposes d's DELETE; on failure d is still the caller's. */
static int propose(struct del *d)
{
    char path[ZK_PATH_MAX];
    int rc = zk_store_path(d->fs->store, d->ino, path, sizeof(path));
    if (rc)
        return rc;
    struct zk_op op = {
        .type = ZK_OP_DELETE, .version = -1, .ino = d->ino,
        .path = path, .path_len = (uint32_t)strlen(path),
    };
    d->tries++;
    return zk__fs_propose1(d->fs, &op, delete_done, d);
}

/* Proposes the delete of ino wherever it is now (nothing if it is gone). */
void zk__fs_delete_ino(struct zk_fs *fs, uint64_t ino)
{
    struct zk_stat st;

    if (zk_store_getattr(fs->store, ino, &st) != 0)
        return;
    struct del *d = calloc(1, sizeof(*d));
    if (!d) {
        zk_log(ZK_LOG_ERROR, "cannot delete released ephemeral %llu: no "
               "memory", (unsigned long long)ino);
        zk_replica_give_up(fs->replica);
        return;
    }
    d->fs = fs;
    d->ino = ino;
    d->session = st.ephemeral_owner;
    int rc = propose(d);
    if (rc == 0)
        return;
    if (rc != -ENOENT && still_held(d))
        give_up(d, rc);
    free(d);
}
