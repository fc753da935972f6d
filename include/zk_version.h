/*
 * zk_version.h — the one place that names zkfs's release version.
 *
 * The formats a release reads and writes have their own numbers, kept
 * beside the code that owns them and only reported here (`zkfs version`):
 * the store's on-disk format (ZK_STORE_FORMAT, zk_store.h), the
 * transaction encoding in the log and on the wire (ZK_TXN_VERSION,
 * zk_txn.h), the peer frame (ZK_FRAME_VERSION, zk_frame.h) and the Zab
 * messages inside it (ZK_ZAB_MSG_VERSION, zk_zab.h). Bump one of those
 * when its bytes change; bump this one for every release.
 */
#ifndef ZK_VERSION_H
#define ZK_VERSION_H

/* A packager may pass -DZK_VERSION='"0.1.0-1"'. */
#ifndef ZK_VERSION
#define ZK_VERSION "0.1.0"
#endif

#endif /* ZK_VERSION_H */
