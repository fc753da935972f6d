/*
 * zk_replica.h — the write path's middle: what fs/ hands a change to and
 * hears back from. propose -> commit -> apply.
 *
 * Two kinds of replica stand behind the same struct zk_replica (an ops
 * table, replica/replica_int.h): the standalone one-replica ensemble
 * (zk_replica_start, replica/standalone.c: a commit thread takes every
 * proposal waiting, assigns zxids, appends them to the log and applies
 * them in one LMDB transaction, fsyncs once for the whole batch (group
 * commit), then reports back on the libuv loop), and a member of an
 * ensemble (zk_replica_start_ensemble, the Zab core driven by
 * replica/ens_*.c). fs/ calls the same functions either way.
 *
 * Threads: every function here and every callback runs on the loop thread.
 */
#ifndef ZK_REPLICA_H
#define ZK_REPLICA_H

#include <stdint.h>
#include <uv.h>
#include "zk_store.h"
#include "zk_txn.h"

#define ZK_BATCH_MAX        256   /* proposals committed by one fsync     */
#define ZK_PENDING_MAX      4096  /* proposals waiting; more: -EAGAIN      */

struct zk_replica;

/* Called once per applied transaction, for every transaction whatever its
 * origin (this mount, another replica, session expiry), in zxid order and
 * BEFORE the done callback of the proposal it belongs to. res is valid only
 * during the call. fs/ uses it to invalidate kernel caches. */
typedef void (*zk_replica_applied_cb)(void *arg,
                                      const struct zk_apply_result *res);

/* Answer to one proposal. err 0: committed and applied here, and res->err
 * says whether the transaction's ops succeeded. err < 0: not committed, not
 * applied (-ENOSPC disk full, -EIO, -EAGAIN queue full, ZK_ENOTREADY no
 * quorum, -ESHUTDOWN replica stopping); res is NULL. res is valid only
 * during the call. */
typedef void (*zk_replica_done_cb)(void *arg, int err,
                                   const struct zk_apply_result *res);

/* A snapshot is about to replace (done 0: the old state is still what the
 * store reads) or has replaced (done 1) the whole store, outside of any
 * transaction (an ensemble member far behind its leader). Loop thread. */
typedef void (*zk_replica_reset_cb)(void *arg, int done);

/* This replica gives its session up (an ensemble member whose lease ran
 * out: no quorum acknowledged a message it sent within the lease, see
 * replica/lease.c; found by a tick or by zk_replica_lease_check): the session's
 * ephemerals must count as lost here at once, although the store keeps
 * them until the ensemble closes the session. Loop thread. */
typedef void (*zk_replica_session_lost_cb)(void *arg, uint64_t session);

struct zk_replica_opts {
    uv_loop_t *loop;
    struct zk_store *store;
    zk_replica_applied_cb applied;
    void *applied_arg;            /* also reset's */
    zk_replica_reset_cb reset;    /* NULL: not told */
    zk_replica_session_lost_cb session_lost; /* NULL: not told */
    /* Whether the loop has other work waiting (requests from the kernel,
     * the echo thread's backlog): an ensemble voter then leaves its next
     * batch to the worker instead of writing it on the loop (ensemble.md,
     * "One loop, one worker thread"). applied_arg; NULL: never busy. */
    int (*busy)(void *arg);
    const char *owner;            /* "host:pid" recorded with the session */
    uint32_t session_timeout_ms;
};

/* Starts the standalone replica: closes every session left in the store by
 * an earlier run (deleting their ephemerals), opens this run's session, and
 * starts the commit thread. Blocks until those transactions are durable.
 * *out written only on success. Errors: from the store, -ENOMEM. */
int zk_replica_start(const struct zk_replica_opts *opts,
                     struct zk_replica **out);

struct zk_config;

/* Starts one replica of an ensemble (replica/ens_*.c): the Zab core
 * driven from opts->loop, TCP to the other servers of cfg (authenticated
 * frames with cfg->secret), persistence in opts->store on a worker thread.
 * cfg is copied (wipe yours when you like); opts->owner and
 * opts->session_timeout_ms are ignored (cfg->session_timeout_ms is used;
 * the core opens this replica's session once it has joined a leader).
 * Every other zk_replica_* function works on the result as documented
 * above, with these differences: proposals wait (at most 3 × syncLimit
 * ticks) while there is no established leader and then fail
 * with ZK_ENOTREADY; zk_replica_sync commits a no-op transaction through
 * the leader; zk_replica_stop does not wait for the close of the session
 * (the leader expires it after sessionTimeout). Resolves host names with
 * getaddrinfo (blocking, once). Ignores SIGPIPE process-wide (a closed
 * peer is an error on its connection). *out written only on success; on
 * an error, run the loop once more so that handles already opened close
 * (their memory is freed in their close callbacks). Errors:
 * -EINVAL (cfg without this server, names that do not resolve), from the
 * store, from libuv as a negative errno (-EADDRINUSE), -ENOMEM. */
int zk_replica_start_ensemble(const struct zk_replica_opts *opts,
                              const struct zk_config *cfg,
                              struct zk_replica **out);

/* Proposes txn (time_ms 0 means "now"). Encodes it before returning, so
 * txn and its strings may be freed as soon as this returns. cb is called
 * exactly once, later, never from inside this call. Returns 0, or -EINVAL
 * (zk_txn_encode refused it), -EAGAIN (ZK_PENDING_MAX waiting),
 * -ESHUTDOWN, -ENOSPC (it adds a znode or data and the store is at its
 * disk reserve: zk_store_room), -ENOMEM; then cb is not called. */
int zk_replica_propose(struct zk_replica *r, const struct zk_txn *txn,
                       zk_replica_done_cb cb, void *arg);

/* Read barrier: cb(arg, 0, NULL) once every transaction committed anywhere
 * before this call has been applied here (standalone: every earlier local
 * proposal). Same error rules as zk_replica_propose. */
int zk_replica_sync(struct zk_replica *r, zk_replica_done_cb cb, void *arg);

/* This replica's session id (ephemeral owner of what it creates). */
uint64_t zk_replica_session(const struct zk_replica *r);

/* Checks this replica's session lease on the monotonic clock, now: call it
 * before answering anything that relies on the session (a request about
 * one of its ephemerals or locks). If the lease ran out, the session is
 * given up at once (the session_lost callback runs inside this call) and
 * ZK_ESESSION is returned; 0 otherwise (standalone: always 0). Loop
 * thread. */
int zk_replica_lease_check(struct zk_replica *r);

/* Gives this replica's session up now (an ensemble member that could not
 * commit the release of one of its ephemerals: rather than let it linger,
 * every ephemeral of the session is lost here at once and closed by the
 * ensemble). The session_lost callback runs inside this call. Standalone:
 * nothing (its commits do not depend on others). Loop thread. */
void zk_replica_give_up(struct zk_replica *r);

#define ZK_REPLICA_MEMBERS_MAX 16  /* = ZK_ZAB_MEMBERS_MAX */
#define ZK_REPLICA_ELECTION_BUCKETS 11
/* Upper bounds (ns) of the election duration buckets but the last. */
extern const uint64_t
    zk_replica_election_le_ns[ZK_REPLICA_ELECTION_BUCKETS - 1];

/* One server of the ensemble as this replica sees it.
 *
 * zxid and lag (valid when zxid_known): on the leader, for itself its
 * durable zxid, for a member the highest zxid that member acknowledged
 * (observers: reported as received), and lag = how many transactions the
 * leader has logged after it. On a learner, for itself its applied zxid
 * and its lag behind the commit it has heard of; for the leader that
 * commit; other members unknown. Lag counts transactions within one
 * epoch (the counter difference); when the member's zxid is of an older
 * epoch than the reference, lag is the reference's counter, i.e. only the
 * newer epoch's transactions: a lower bound. */
struct zk_replica_member {
    uint32_t id;
    int observer;
    int self;
    int connected;                /* authenticated connection now (1: self) */
    const char *state;            /* another member: "down" (no connection),
                                     "connected", "syncing" (leader: it is
                                     being synchronised, e.g. a snapshot
                                     streams), "synced" (leader: it follows
                                     us), "leading" (learner: our leader);
                                     self: "looking", "syncing", "synced" */
    int zxid_known;
    uint64_t zxid, lag;
    /* A snapshot streaming to this member (leader) or from it (learner):
     * uncompressed bytes done and the total, compressed bytes on the
     * wire so far. */
    int snapshot;
    uint64_t snap_bytes, snap_total, snap_wire_bytes;
};

struct zk_replica_status {
    const char *role;             /* "standalone", "leader", ... */
    uint32_t my_id, leader_id;
    uint64_t epoch, last_zxid;
    int stale;                    /* cut off from the quorum */
    int abstaining;               /* votes for nobody, counts toward no
                                     quorum until synced: its data
                                     directory was empty, restored or
                                     copied back (ensemble.md) */
    uint64_t pending;             /* proposals not yet answered */
    uint64_t batches, fsyncs;     /* group commit counters */
    uint64_t batches_here;        /* of the batches, written on the loop
                                     thread (an observer's, a follower's
                                     while its loop is idle) */
    uint64_t write_avg_ns;        /* a batch's write, running average
                                     (ensemble; batches go on the loop
                                     only while it is under 1 ms) */
    uint64_t commit_zxid;         /* highest zxid known committed */
    uint64_t lag;                 /* transactions applied here behind it */
    int syncing;                  /* a snapshot streams to or from here */
    uint64_t snapshots_sent;      /* streams completed to learners */
    uint64_t snapshots_installed; /* received and installed here */
    uint64_t snapshots_rejected;  /* received corrupt or truncated */
    uint64_t snapshots_held;      /* leader: not streamed, asked for again
                                     too soon (ens_snapsend.c) */
    uint64_t elections;           /* times this replica went looking */
    uint64_t store_failures;      /* store batches that failed (the core
                                     stopped: a full disk, an I/O error) */
    uint64_t store_recoveries;    /* new cores made from the store after
                                     such a failure, keeping the mount */
    int store_error;              /* the store's last batch failed with
                                     this (0: it writes) */
    uint64_t syncs_diff, syncs_trunc, syncs_snap; /* as leader, by mode */
    /* Snapshot bytes sent to learners (counted as each chunk goes out,
     * so an abandoned transfer counts what it sent) and installed here;
     * raw: uncompressed, wire: as zstd carried them. */
    uint64_t snap_sent_raw_bytes, snap_sent_wire_bytes;
    uint64_t snap_installed_raw_bytes, snap_installed_wire_bytes;
    /* Elections ended: time from going LOOKING to an established leader
     * (leading with a quorum, or synced with one). election_le[b] counts
     * those up to zk_replica_election_le_ns[b] (not cumulative; the last
     * bucket is +Inf). */
    uint64_t election_le[ZK_REPLICA_ELECTION_BUCKETS];
    uint64_t election_count, election_sum_ns;
    uint32_t n_members;           /* every configured server, self too */
    struct zk_replica_member members[ZK_REPLICA_MEMBERS_MAX];
};
void zk_replica_status(const struct zk_replica *r,
                       struct zk_replica_status *out);

/* Stops the replica: with close_session != 0, first commits the close of
 * this run's session (its ephemerals are deleted). Answers every proposal
 * still waiting with -ESHUTDOWN, joins the commit thread, frees r. Blocks;
 * the store stays open (the caller closes it). */
void zk_replica_stop(struct zk_replica *r, int close_session);

#endif /* ZK_REPLICA_H */
