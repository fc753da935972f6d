/*
 * zk_envelope.h — the envelope an ensemble replica keeps each log entry in
 * (docs/formats.md): u8 ZK_ENV_MAGIC | u8 ZK_ENV_VERSION | u32 type |
 * u32 origin | u64 req_id | the entry's bytes (a WRITE's bytes are an
 * encoded transaction, zk_txn.h; a session entry's the 8-byte session id).
 * A standalone replica logs the transaction itself.
 *
 * Written and read by the replica (replica/ens_driver.c), verified by
 * `zkfs check` (store/check.c): the one place both take the format from,
 * so that store/ needs nothing of the consensus core's header.
 */
#ifndef ZK_ENVELOPE_H
#define ZK_ENVELOPE_H

#define ZK_ENV_MAGIC   0xE5
#define ZK_ENV_VERSION 1
#define ZK_ENV_HDR     18          /* magic ver type origin req_id */

/* Entry types (zk_zab.h names them for the core). */
enum zk_entry_type {
    ZK_ENTRY_WRITE = 1,
    ZK_ENTRY_SESSION_OPEN = 2,
    ZK_ENTRY_SESSION_CLOSE = 3,
};

#endif /* ZK_ENVELOPE_H */
