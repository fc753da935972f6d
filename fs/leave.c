/*
 * leave.c — stopping the way `zkfs umount` does when the stop comes from
 * elsewhere: an unmount by the kernel (umount(8), fusermount3 -u, systemd
 * stopping a mount unit) or SIGINT/SIGTERM.
 *
 * The replica first commits the close of its session, so its ephemerals
 * go on every replica at once instead of after the session timeout; then
 * the loop stops. The wait is bounded by the replica (a proposal without
 * a quorum fails after 3 x syncLimit ticks), and whatever the outcome the
 * daemon stops. A standalone replica would also close its session in
 * zk_replica_stop, but an ensemble member does not wait for that close
 * there, hence this.
 */
#include "fs_int.h"

static void leave_done(void *arg, int err, const struct zk_apply_result *res)
{
    struct zk_fs *fs = arg;
    int rc = zk__fs_result_err(err, res);

    if (rc)
        zk_log(ZK_LOG_WARN, "leaving: this replica's session was not "
               "closed (%s); the ensemble expires it after the session "
               "timeout", zk_strerror(rc));
    else
        zk_log(ZK_LOG_INFO, "leaving: session closed");
    zk__fs_stop(fs);
}

void zk__fs_leave(struct zk_fs *fs)
{
    if (fs->stopping || fs->leaving)
        return;
    uint64_t sid = fs->replica ? zk_replica_session(fs->replica) : 0;
    if (sid == 0) {             /* none (no quorum yet): nothing to close */
        zk__fs_stop(fs);
        return;
    }
    struct zk_op op = {.type = ZK_OP_SESSION_CLOSE, .version = -1,
                       .session = sid};
    fs->leaving = 1;
    int rc = zk__fs_propose1(fs, &op, leave_done, fs);
    if (rc) {
        zk_log(ZK_LOG_WARN, "leaving: cannot close the session: %s",
               zk_strerror(rc));
        zk__fs_stop(fs);
    }
}
