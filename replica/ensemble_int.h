/*
 * ensemble_int.h — what the ensemble runtime (replica/ens_*.c) offers
 * beyond zk_replica.h to tests and fuzz targets: a snapshot fault hook
 * and the log entry envelope. Its own files share ens_int.h.
 */
#ifndef ZK_ENSEMBLE_INT_H
#define ZK_ENSEMBLE_INT_H

#include "zk_replica.h"
#include "zk_zab.h"

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

#endif /* ZK_ENSEMBLE_INT_H */
