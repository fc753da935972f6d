/*
 * replica_int.h — private to replica/: the one struct zk_replica behind
 * include/zk_replica.h, and the ops table through which replica.c hands
 * every public zk_replica_* call to the kind of replica it is: the
 * standalone one (standalone.c) or an ensemble member (ens_*.c). Each
 * implementation embeds a struct zk_replica as the FIRST member of its
 * own struct and gets back to that struct by a cast; neither knows the
 * other.
 *
 * Threads: every op runs on the loop thread.
 */
#ifndef ZK_REPLICA_INT_H
#define ZK_REPLICA_INT_H

#include "zk_replica.h"

/* What a kind of replica implements; the contracts are those of the
 * public functions of the same names in zk_replica.h, except that propose
 * takes a proposal already encoded by zk__replica_encode and owns buf
 * only when it returns 0, and stop frees the replica (now, or once its
 * handles have closed). */
struct zk__replica_ops {
    int (*propose)(struct zk_replica *r, uint8_t *buf, size_t len,
                   zk_replica_done_cb cb, void *arg);
    int (*sync)(struct zk_replica *r, zk_replica_done_cb cb, void *arg);
    uint64_t (*session)(const struct zk_replica *r);
    int (*lease_check)(struct zk_replica *r);
    void (*give_up)(struct zk_replica *r);
    void (*status)(const struct zk_replica *r,
                   struct zk_replica_status *out);
    void (*stop)(struct zk_replica *r, int close_session);
};

struct zk_replica {
    const struct zk__replica_ops *ops;
    struct zk_store *store;          /* opts->store: zk_store_room */
    uint64_t adding;                 /* bytes of proposals that add data,
                                        taken and not yet answered      */
};

/* Stamps txn (time_ms 0 means "now", wall clock) and encodes it into a
 * new malloc'd buffer: the one place a proposal's bytes are made, for
 * every kind of replica (replica.c). Errors as zk_txn_encode. */
int zk__replica_encode(const struct zk_txn *txn, uint8_t **out,
                       size_t *out_len);

#endif /* ZK_REPLICA_INT_H */
