/*
 * zk_ctl.h — the control file: how the `zkfs` command (create -e/-s, set -v,
 * rm -v, stat, sync, txn, status, umount) talks to the daemon THROUGH the
 * mount, with no side channel.
 *
 * Every mount has a file ZK_CTL_NAME at its root. It is not listed by
 * readdir, cannot be created, removed or renamed by anyone, and is opened
 * with direct I/O (no page cache, offsets ignored). One open file
 * description carries a sequence of request/response exchanges:
 *
 *   1. The client write()s one request: a 4-byte big-endian length N of
 *      what follows, then N bytes: a header line of tab-separated fields
 *      ending in '\n', then the raw payload (the rest). The kernel may split
 *      a large write into several WRITE requests; the daemon gathers them
 *      until N bytes arrived. N is at most ZK_CTL_REQ_MAX.
 *   2. The client read()s the response until read() returns 0: a line
 *      "<code>\t<message>\n" then an optional body. code is 0 on success or
 *      a negative errno (zk_err_to_errno mapped); message is one line for a
 *      human. A read issued before the response is ready waits for it.
 *
 * Requests (fields after the op name; PATH is an absolute znode path):
 *   create  FLAGS PATH       payload = data. FLAGS: '-' or letters from
 *                            "e" (ephemeral: held by THIS open file
 *                            description until it is closed), "s"
 *                            (sequential), "d" (directory).
 *                            body = created path.
 *   set     VERSION PATH     payload = data; VERSION -1 = any. body = new
 *                            stat as "key=value\n" lines.
 *   rm      VERSION PATH
 *   stat    PATH             body = "key=value\n" lines: czxid mzxid pzxid
 *                            ctime mtime version cversion aversion
 *                            ephemeralOwner dataLength numChildren (the
 *                            user.zk.* names), ino, kind.
 *   sync    PATH             returns once every write committed before it
 *                            is applied on this replica.
 *   txn     -                payload = a transaction encoded with
 *                            zk_txn_encode (ops CREATE, DELETE, SET_DATA,
 *                            CHECK; mode/uid/gid/session/owner are filled
 *                            in by the daemon from the caller). body = one
 *                            line per op: "0\t<path>" or "<errno>\t<path>".
 *   status  -                body = JSON object (role, my_id, leader_id,
 *                            epoch, zxid, zxid_hex, znodes, sessions,
 *                            data_bytes, pending, batches, fsyncs, stale,
 *                            mountpoint, data_dir).
 *   umount  -                the daemon closes its session, answers, then
 *                            unmounts itself and exits.
 *   snapshot -               body = a backup file (fs/snapfile.h) of the
 *                            committed tree at one zxid, without
 *                            ephemerals; any size (not bound by
 *                            ZK_CTL_RESP_MAX). Root or the daemon's user
 *                            only (-EPERM): it bypasses node permissions.
 * Permissions: requests act with the caller's uid/gid and are checked like
 * the matching system calls (write+search on the parent to create/remove,
 * write on the file to set).
 */
#ifndef ZK_CTL_H
#define ZK_CTL_H

#define ZK_CTL_NAME     ".zkfs"
#define ZK_CTL_INO      2
#define ZK_CTL_REQ_MAX  (2 * 1024 * 1024 + 4096)
#define ZK_CTL_RESP_MAX (1024 * 1024)

#endif /* ZK_CTL_H */
