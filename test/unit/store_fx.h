/*
 * store_fx.h — what the store's unit suites share (test_store.c,
 * test_lock.c): a store in a fresh temporary directory, removed again, and
 * a transaction logged, applied and committed as its own batch.
 */
#ifndef ZK_TEST_STORE_FX_H
#define ZK_TEST_STORE_FX_H

#include <stdint.h>

#include "zk_store.h"
#include "zk_txn.h"

/* Removes dir and everything under it (errors ignored: a test's tidy-up). */
void zk_test_rmtree(const char *dir);

/* Copies file src into a new file dst (asserted): a `cp`, not a rename. */
void zk_test_copy_file(const char *src, const char *dst);

/* An op of type on path (and path2, a rename's target; either may be
 * NULL): any version (-1), mode 0644, the rest zero. */
struct zk_op zk_test_op(uint8_t type, const char *path, const char *path2);

/* Encodes ops[0..n) as one transaction stamped time_ms, then logs,
 * applies and commits it at zxid in one batch of s (every step asserted).
 * Returns the apply result; the caller frees it. */
struct zk_apply_result *zk_test_commit(struct zk_store *s, uint64_t zxid,
                                       uint64_t time_ms,
                                       struct zk_op *ops, uint32_t n);
/* The same, committed lazily (zk_store_batch_commit_lazy). */
struct zk_apply_result *zk_test_commit_lazy(struct zk_store *s,
                                            uint64_t zxid, uint64_t time_ms,
                                            struct zk_op *ops, uint32_t n);

#endif /* ZK_TEST_STORE_FX_H */
