/*
 * driver.h — private to replica/ and test/sim: the driver of the Zab core,
 * the one layer between the pure core (zk_zab.h) and the outside. The
 * daemon's ensemble runtime (ens_*.c) and the simulator (test/sim) both run
 * it; each injects three things:
 *
 *  - a store (struct zk_driver_store): one batch per Ready — log appends,
 *    truncations, a snapshot's install, the hard state and the commits
 *    applied — made durable at once (LMDB, or the simulator's disk);
 *  - a transport: send one Zab message to a member (TCP, or the simulated
 *    network); what arrives is handed to zk_driver_step;
 *  - a clock: the monotonic time in ns, read when the driver decides
 *    (the lease, proposal deadlines), so a stopped process sees the time
 *    that passed.
 *
 * What the driver keeps true:
 *  - At most one Ready is outstanding. A Ready with something to persist
 *    is handed to the store's schedule(); whoever runs zk_driver_write()
 *    (a worker thread, a simulated disk event) reports back with
 *    zk_driver_written() on the driver's thread. Only then are the commits
 *    delivered (applied callback in zxid order, then the proposers' done
 *    callbacks), the Ready's messages sent and the core advanced — except
 *    a leading prefix of PROPOSE, COMMIT, INFORM and REQUEST messages of a
 *    Ready without hard state, sent as soon as the batch is handed to the
 *    store (pipelining: none of them claims anything about this replica's
 *    disk; the core counts the leader's own copy only at advance). A
 *    failed batch is fail-stop: the core is never advanced or stepped
 *    again and every write fails (-EIO, outcome unknown: a PROPOSE may
 *    have left, and the others may commit it). A Ready with nothing to
 *    persist is sent at once. A store may also write a Ready on the
 *    driver's thread when it is asked (write_here); then none of its
 *    messages leaves before the batch is written.
 *  - The session table follows the core's exactly (an OPEN from member m
 *    also closes m's previous session, which the store is told), is
 *    replaced by a snapshot's, and is rolled back with a failed batch.
 *  - Proposals wait in a bounded FIFO (ZK_DRIVER_PENDING_MAX) until the
 *    core takes them; a write not committed by its deadline fails with
 *    ZK_ENOTREADY; a write submitted in an older epoch that the new
 *    leader's history turned out not to hold is proposed again.
 *  - The session lease (lease.c) is checked at every tick and by
 *    zk_driver_lease_check; once it ran out the session is given up.
 *
 * Pure: no libuv, LMDB or FUSE, no clock of its own, logging only through
 * the log callback it is given (the Makefile compiles it with the core's
 * poison headers).
 *
 * Threads: every function runs on the driver's thread (the loop thread;
 * the simulator's one thread), except zk_driver_write(), which may run on
 * another thread while a Ready is outstanding: it touches only the store,
 * the outstanding Ready and the driver's write-side state (the session
 * table, the store's applied zxid, the results), none of which the
 * driver's thread touches until zk_driver_written() (or, when the store's
 * write_here ran it on the driver's thread, until it returned).
 */
#ifndef ZK_DRIVER_H
#define ZK_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#include "zk_common.h"
#include "zk_zab.h"

#define ZK_DRIVER_PENDING_MAX 4096   /* proposals waiting (= ZK_PENDING_MAX) */
#define ZK_DRIVER_PUMP_ROUNDS 64     /* message-only Readies per event       */

struct zk_driver;
struct zk_apply_result;              /* the store's; opaque to the driver */

/* The same shapes as zk_replica.h's callbacks, so that the runtime hands
 * fs/'s through unchanged. res is valid only during the call. */
typedef void (*zk_driver_applied_cb)(void *arg,
                                     const struct zk_apply_result *res);
typedef void (*zk_driver_done_cb)(void *arg, int err,
                                  const struct zk_apply_result *res);

/* A Ready's batch, for the store's write_here. */
struct zk_driver_batch_size {
    size_t appends, commits;          /* log entries; commits applied    */
    uint64_t append_bytes, commit_bytes;   /* their payloads' bytes      */
    size_t early;                     /* messages of a kind that may
                                         leave before the batch is
                                         written (PROPOSE, COMMIT, INFORM,
                                         REQUEST: driver.c, msg_early),
                                         wherever they are in the Ready */
};

/* The store. Every op but schedule, write_here, install_prepare and
 * install_done runs inside zk_driver_write(); batch is what begin gave.
 * Errors: 0 or a negative errno / ZK_E code; any error aborts the whole
 * batch. */
struct zk_driver_store {
    void *arg;
    int (*begin)(void *arg, void **batch);
    int (*append)(void *arg, void *batch, const struct zk_zab_entry *en);
    int (*truncate)(void *arg, void *batch, uint64_t zxid);
    /* Replaces tree and log by the snapshot at zxid (install_prepare told
     * which); fills sessions (indexed like the members) with its table. */
    int (*install)(void *arg, void *batch, const struct zk_zab_op *op,
                   uint64_t sessions[ZK_ZAB_MEMBERS_MAX]);
    int (*hard_state)(void *arg, void *batch,
                      const struct zk_zab_hard_state *hs);
    /* Applies a committed entry; for a SESSION_OPEN, close_prev is the
     * owner's previous session to close first (0: none). *res: the
     * result handed to the callbacks (non-NULL on success). */
    int (*apply)(void *arg, void *batch, const struct zk_zab_entry *en,
                 uint64_t close_prev, struct zk_apply_result **res);
    int (*commit)(void *arg, void *batch);      /* durable when 0 */
    void (*abort)(void *arg, void *batch);
    void (*result_free)(void *arg, struct zk_apply_result *res);
    /* Driver's thread: run zk_driver_write() somewhere, then call
     * zk_driver_written() with its result on the driver's thread. */
    void (*schedule)(void *arg);
    /* Optional (NULL: always schedule). Driver's thread, instead of
     * schedule(), for a Ready whose ops are only log appends and commits
     * (sz says how many and how big), without hard state: the store may
     * run zk_driver_write() right here and return 1 with its result in
     * *err (the driver then finishes the Ready at once, as
     * zk_driver_written() would: inside zk_driver_pump, tick or
     * peer_down, never inside zk_driver_propose), or return 0 to have
     * it scheduled. A hand-off to another thread and back can cost
     * more than the write: an observer's batches make nothing durable
     * that anyone waits for, and a batch with no message of a kind
     * that may leave before it is written (sz->early 0: a follower's
     * append and its ACK, an apply) overlaps with nothing on the
     * worker. */
    int (*write_here)(void *arg, const struct zk_driver_batch_size *sz,
                      int *err);
    /* Driver's thread: a Ready with an INSTALL of zxid was taken (the
     * snapshot received for it must be set aside for install); and that
     * Ready is done with (durable or not). NULL: nothing to do. */
    void (*install_prepare)(void *arg, uint64_t zxid);
    void (*install_done)(void *arg);
};

struct zk_driver_config {
    const struct zk_zab_config *zab;  /* the core's (trace included)     */
    const struct zk_zab_restore *restore; /* from the store              */
    struct zk_driver_store store;
    /* transport: sends m to m->to, or drops it (the core copes) */
    void (*send)(void *arg, const struct zk_zab_msg *m);
    void *send_arg;
    /* clock: monotonic ns */
    uint64_t (*now_ns)(void *arg);
    void *clock_arg;
    /* log: one line (no newline) */
    void (*log)(void *arg, enum zk_log_level level, const char *line);
    void *log_arg;
    /* up-calls (NULL: not told); cb_arg for all three */
    zk_driver_applied_cb applied;
    void (*reset)(void *arg, int done);
    void (*session_lost)(void *arg, uint64_t session);
    void *cb_arg;
    uint32_t tick_ms, session_timeout_ms;
    uint64_t prop_wait_ms;            /* a proposal's deadline           */
};

/* Creates the driver and its core from cfg (copied; restore's entries
 * are copied by the core). *out written only on success. Errors: from
 * zk_zab_create, -ENOMEM. */
int zk_driver_create(const struct zk_driver_config *cfg,
                     struct zk_driver **out);

/* Frees d and its core at once, answering nothing (a crash, or after
 * zk_driver_fail_all). Results of an outstanding Ready are freed; the
 * caller must make sure no zk_driver_write() is running. */
void zk_driver_destroy(struct zk_driver *d);

/* Stops taking Readies (a stop is under way). */
void zk_driver_stopping(struct zk_driver *d);

/* Answers every proposal with err (-ESHUTDOWN at stop). */
void zk_driver_fail_all(struct zk_driver *d, int err);

/* Queues a proposal: payload (malloc'd; the driver owns it once this
 * returns 0) is the entry's bytes; is_sync: a read barrier (answered with
 * res NULL). cb exactly once, later (never from inside this call, which
 * takes Readies but writes none here: see write_here). Errors:
 * -ESHUTDOWN (stopping), -EAGAIN (ZK_DRIVER_PENDING_MAX waiting),
 * -ENOMEM. */
int zk_driver_propose(struct zk_driver *d, uint8_t *payload, size_t len,
                      int is_sync, zk_driver_done_cb cb, void *arg);

/* A message from the transport (already checked as coming from m->from). */
void zk_driver_step(struct zk_driver *d, const struct zk_zab_msg *m);

/* The transport heard from member id (a snapshot frame, for example). */
void zk_driver_heard(struct zk_driver *d, uint32_t id);

/* The transport lost its connection to member id (zk_zab_peer_down: a
 * learner of that leader goes back to election at once); then pumps. */
void zk_driver_peer_down(struct zk_driver *d, uint32_t id);

/* One tick: the lease's tick time, the core's tick, the lease check,
 * expired proposals answered, Readies taken. */
void zk_driver_tick(struct zk_driver *d);

/* Takes Readies while none is outstanding (after anything that may have
 * given the core work). Through the store's write_here it may finish a
 * Ready at once: applied and done callbacks, or a fail-stop, then run
 * inside it (and inside zk_driver_tick and zk_driver_peer_down, which
 * pump). */
void zk_driver_pump(struct zk_driver *d);

/* Runs the outstanding Ready's store batch (any thread, see above).
 * Returns 0 or the error that aborted it (nothing of it kept). */
int zk_driver_write(struct zk_driver *d);

/* The outstanding Ready's batch ended with err: 0 delivers, sends,
 * advances and pumps; an error is fail-stop. */
void zk_driver_written(struct zk_driver *d, int err);

/* The lease, checked now: ZK_ESESSION (after giving the session up) when
 * it ran out, else 0. */
int zk_driver_lease_check(struct zk_driver *d);

/* Gives the session up: a new one is taken (opened when the replica
 * serves again, closing this one everywhere); session_lost is told. */
void zk_driver_give_up(struct zk_driver *d);

/* This replica's open session, or 0. */
uint64_t zk_driver_session(const struct zk_driver *d);

/* Until when (ns on the driver's clock) the open session may be relied
 * on; 0 without one. */
uint64_t zk_driver_lease_until(const struct zk_driver *d);

struct zk_driver_stats {
    uint64_t applied_zxid;            /* last commit delivered            */
    uint64_t pending;                 /* proposals not yet answered       */
    uint64_t batches, fsyncs;         /* store batches run, committed     */
    uint64_t batches_here;            /* of them, written by write_here   */
    uint64_t installed;               /* snapshots installed              */
    uint64_t resubmitted, leases_lost;
    uint64_t skipped;                 /* commits at or below the store's
                                         applied zxid (never, if the core
                                         is right)                         */
    int failed;                       /* fail-stopped: its error          */
};
void zk_driver_stats(const struct zk_driver *d, struct zk_driver_stats *out);

/* The core, for status (read only). */
const struct zk_zab *zk_driver_core(const struct zk_driver *d);

#endif /* ZK_DRIVER_H */
