/*
 * ensemble_int.h — what replica/standalone.c (which owns struct
 * zk_replica and its public functions) needs from the ensemble runtime
 * (replica/ensemble.c) to dispatch to it. A struct zk_replica is either a
 * standalone replica or a thin shell around a struct zk__ens.
 *
 * Threads: every function here runs on the loop thread.
 */
#ifndef ZK_ENSEMBLE_INT_H
#define ZK_ENSEMBLE_INT_H

#include "zk_replica.h"
#include "zk_zab.h"

struct zk__ens;

/* Wraps e in a new struct zk_replica (standalone.c). NULL: no memory. */
struct zk_replica *zk__replica_wrap_ensemble(struct zk__ens *e);

/* Stamps txn (time_ms 0 means "now", wall clock) and encodes it into a
 * new malloc'd buffer: the one place a proposal's bytes are made, for both
 * kinds of replica (standalone.c). Errors as zk_txn_encode. */
int zk__replica_encode(const struct zk_txn *txn, uint8_t **out,
                       size_t *out_len);

/* The ensemble's implementations of the public zk_replica_* functions;
 * same contracts as in zk_replica.h, except that zk__ens_propose takes an
 * encoded proposal (zk__replica_encode) and owns buf only when it returns
 * 0. */
int zk__ens_propose(struct zk__ens *e, uint8_t *buf, size_t len,
                    zk_replica_done_cb cb, void *arg);
int zk__ens_sync(struct zk__ens *e, zk_replica_done_cb cb, void *arg);
uint64_t zk__ens_session(const struct zk__ens *e);
int zk__ens_lease_check(struct zk__ens *e);
void zk__ens_give_up(struct zk__ens *e);
void zk__ens_status(const struct zk__ens *e, struct zk_replica_status *out);

/* Test hook (tests only, loop thread): every snapshot this process
 * streams from now on is faulty: ZK__SNAP_FAULT_FLIP flips a byte of the
 * compressed stream, _TRUNCATE leaves the last compressed chunk out,
 * _VERSION announces an unknown format version; 0 ends the faults. The
 * receiver must reject each (its snapshots_rejected grows). */
enum {
    ZK__SNAP_FAULT_FLIP = 1,
    ZK__SNAP_FAULT_TRUNCATE = 2,
    ZK__SNAP_FAULT_VERSION = 3,
};
void zk__ens_test_snap_fault(int fault);

/* The envelope a log entry is stored in (the store's log holds it under
 * the entry's zxid): u8 0xE5 | u8 version 1 | u32 type | u32 origin |
 * u64 req_id | the entry's bytes. zk__ens_env_encode returns a new
 * malloc'd buffer (NULL: no memory) and its length in *len_out.
 * zk__ens_env_decode fills *en (zxid as given, data pointing into buf)
 * from what a log scan read back; ZK_ECORRUPT for anything the encoder
 * cannot have written for an entry the core can carry. Any thread. */
uint8_t *zk__ens_env_encode(const struct zk_zab_entry *en, size_t *len_out);
int zk__ens_env_decode(uint64_t zxid, const uint8_t *buf, size_t len,
                       struct zk_zab_entry *en);

/* Stops the runtime: answers what waits with -ESHUTDOWN, joins the
 * persistence thread, destroys the core and starts closing every handle;
 * e is freed by the loop once the last handle has closed (run the loop
 * until it has no active handles). */
void zk__ens_stop(struct zk__ens *e, int close_session);

#endif /* ZK_ENSEMBLE_INT_H */
