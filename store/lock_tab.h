/*
 * lock_tab.h — private to store/ and test/sim: the rules of the lock
 * table (lock_tab.c) on one inode's table held in memory. store/lock.c
 * loads and stores the tables in LMDB around these calls; the simulator
 * keeps its tables in its model state machine. Pure: no LMDB, no I/O.
 * Threads: whoever owns the table.
 */
#ifndef ZK_LOCK_TAB_H
#define ZK_LOCK_TAB_H

#include <stdint.h>

#include "zk_common.h"
#include "zk_store.h"
#include "zk_txn.h"

/* One inode's holders and waiters (ZK_LOCK_QUEUED), waiters in the order
 * they queued. */
struct zk__lock_tab {
    uint32_t n;
    struct zk_lock_ent e[ZK_LOCK_ENTS_MAX];
};

/* Told about every waiter granted (ino, the entry as it now holds, merged
 * with the owner's adjacent ranges); a non-zero return aborts the op and
 * is returned. */
typedef int (*zk__lock_emit_cb)(void *arg, uint64_t ino,
                                const struct zk_lock_ent *e);

/* Applies a ZK_OP_LOCK or ZK_OP_UNLOCK of op to t at zxid (the node and
 * the session are checked by the caller). r->token: the grant's zxid, 0
 * when queued; r->refused: see store/lock.c. Errors: -EAGAIN (conflict,
 * no wait), -EINVAL (bad range or data), -ENOLCK (table full), emit's;
 * on an error t may be half changed (the caller drops it). */
int zk__lock_tab_op(struct zk__lock_tab *t, uint64_t ino, uint64_t zxid,
                    const struct zk_op *op, struct zk_op_result *r,
                    zk__lock_emit_cb emit, void *arg);

/* Drops every holder and waiter of session from t (it closed) and grants
 * the waiters that can go now. *changed: whether t changed. Errors: as
 * zk__lock_tab_op. */
int zk__lock_tab_drop_session(struct zk__lock_tab *t, uint64_t ino,
                              uint64_t zxid, uint64_t session,
                              zk__lock_emit_cb emit, void *arg, int *changed);

/* Whether a and b conflict: same namespace (flock or fcntl), other
 * owners, overlapping ranges, and one of them exclusive. */
int zk__lock_conflict(const struct zk_lock_ent *a,
                      const struct zk_lock_ent *b);

#endif /* ZK_LOCK_TAB_H */
