/*
 * replica.c — the public zk_replica_* functions (zk_replica.h), the same
 * for every kind of replica: each is handed through the replica's ops
 * table (replica_int.h) to standalone.c or to the ensemble runtime
 * (ens_*.c). A proposal is encoded here, once, before it is handed over.
 */
#include "replica_int.h"

#include "zk_store.h"

#include <errno.h>

#include <stdlib.h>
#include <time.h>

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int zk__replica_encode(const struct zk_txn *txn, uint8_t **out,
                       size_t *out_len)
{
    struct zk_txn stamped = *txn;

    if (stamped.time_ms == 0)
        stamped.time_ms = now_ms();
    return zk_txn_encode(&stamped, out, out_len);
}

/* Whether txn adds a znode or data: one that only removes, renames,
 * changes attributes, opens or closes a session, locks or checks takes
 * a few bytes of log and is let through even when the disk is low
 * (zk_store_room): it is how room is made again, and a mount needs its
 * session and read barriers to work at all. */
static int txn_adds(const struct zk_txn *txn)
{
    for (size_t i = 0; i < txn->nops; i++) {
        const struct zk_op *op = &txn->ops[i];
        if (op->type == ZK_OP_CREATE || op->type == ZK_OP_APPEND ||
            (op->type == ZK_OP_SET_DATA && op->data_len > 0))
            return 1;
    }
    return 0;
}

/* A proposal that adds data, counted in r->adding until answered. */
struct adding {
    struct zk_replica *r;
    size_t len;
    zk_replica_done_cb cb;
    void *arg;
};

static void adding_done(void *arg, int err, const struct zk_apply_result *res)
{
    struct adding *a = arg;

    a->r->adding -= a->len;
    a->cb(a->arg, err, res);
    free(a);
}

int zk_replica_propose(struct zk_replica *r, const struct zk_txn *txn,
                       zk_replica_done_cb cb, void *arg)
{
    uint8_t *buf;
    size_t len;
    struct adding *a = NULL;
    int rc = zk__replica_encode(txn, &buf, &len);

    if (rc)
        return rc;
    /* Refused here, before anything is sent: known not to be applied, so
     * ENOSPC is the writer's answer (a batch that fails on a full disk
     * once proposed gets EIO: it may be committed elsewhere). Each
     * replica asks its own disk, counting what its mount has on the way
     * (many writers at once would each see the same free room); those of
     * an ensemble hold the same data, so the one a write comes through
     * stands for all (what the other mounts have on the way is not
     * seen: the reserve must cover it). */
    if (r->store && txn_adds(txn)) {
        rc = zk_store_room(r->store, r->adding + len);
        if (rc == 0 && !(a = malloc(sizeof(*a))))
            rc = -ENOMEM;
        if (rc) {
            free(buf);
            return rc;
        }
        *a = (struct adding){.r = r, .len = len, .cb = cb, .arg = arg};
        cb = adding_done;
        arg = a;
        r->adding += len;
    }
    rc = r->ops->propose(r, buf, len, cb, arg);
    if (rc) {
        free(buf);
        if (a) {
            r->adding -= len;
            free(a);
        }
    }
    return rc;
}

int zk_replica_sync(struct zk_replica *r, zk_replica_done_cb cb, void *arg)
{
    return r->ops->sync(r, cb, arg);
}

uint64_t zk_replica_session(const struct zk_replica *r)
{
    return r->ops->session(r);
}

int zk_replica_lease_check(struct zk_replica *r)
{
    return r->ops->lease_check(r);
}

void zk_replica_give_up(struct zk_replica *r)
{
    r->ops->give_up(r);
}

void zk_replica_status(const struct zk_replica *r,
                       struct zk_replica_status *out)
{
    r->ops->status(r, out);
}

void zk_replica_stop(struct zk_replica *r, int close_session)
{
    r->ops->stop(r, close_session);
}
