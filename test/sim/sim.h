/*
 * sim.h — the deterministic simulator of a zkfs ensemble: N replicas of
 * the real consensus core and its real driver (replica/driver.c: Ready
 * persistence and delivery, proposals and resubmission, the lease) in one
 * process, simulated time (microseconds),
 * a seeded network (delay, loss, duplication, reordering, partitions),
 * crashes that lose whatever was not persisted, slow and failing disks,
 * process pauses, clocks running at different rates, and clients that
 * keep writing, locking and taking ephemeral names. Invariants are checked after every step;
 * the first broken one is kept in sim_failure().
 *
 * Used by build/zkfs-sim (test/sim/main.c) for seeded random runs and the
 * benchmark, and by the Check scenarios in test/unit/test_zab*.c, which
 * script faults by hand. Everything here is prefixed sim_ so that it links
 * into the unit runner.
 */
#ifndef ZK_SIM_H
#define ZK_SIM_H

#include <stdint.h>
#include <stdio.h>

#include "zk_zab.h"

#define SIM_TICK_US        10000u    /* one core tick = 10 ms simulated  */
#define SIM_REPLICAS_MAX   ZK_ZAB_MEMBERS_MAX

struct sim_opts {
    uint64_t seed;
    uint32_t voters, observers;
    int verbose;              /* trace every core line and sim event     */
    int faults;               /* random faults and client load           */
    int clients;              /* random client writes                    */
    int wipe;                 /* also wipe a replica's disk as a fault   */
    int lose_tail;            /* also lose a replica's last writes       */
    int lose_undetected;      /* ... without telling its core (no marker) */
    int put_back;             /* ... telling it the store was put back
                                 (restored), as a restored or copied data
                                 directory's mark does, not lost_writes */
    int no_power_cuts;        /* host crashes lose no part of a durable
                                 batch (the runs before power cuts were
                                 modelled: regression seeds replay them) */
    int no_ephemerals;        /* no ephemeral clients (the runs before
                                 they were added: regression seeds)      */
    uint32_t counter_max;     /* core's zxid counter limit (0: default)  */
    FILE *out;                /* trace destination (default stdout)      */
};

struct sim;

/* Creates an ensemble (ids 1..voters+observers, observers last) with no
 * event run yet. Returns NULL on allocation failure. */
struct sim *sim_create(const struct sim_opts *o);
void sim_destroy(struct sim *s);

/* Processes events up to simulated time `until_us` (absolute). Returns 0,
 * or -1 once an invariant broke (see sim_failure). */
int sim_run_until(struct sim *s, uint64_t until_us);

/* Processes events until pred(s, arg) holds (checked after every step)
 * or max_us of simulated time passed. Returns 1 if pred held, 0 on
 * timeout, -1 on a broken invariant. */
int sim_run_while_not(struct sim *s, uint64_t max_us,
                      int (*pred)(struct sim *, void *), void *arg);

/* Processes n events. Returns 0, or -1 on a broken invariant. */
int sim_run_steps(struct sim *s, uint64_t n);

/* The full seeded random run used by zkfs-sim: `steps` events with
 * faults, then a quiet tail that checks liveness and convergence.
 * Returns 0 if every invariant held. */
int sim_random_run(struct sim *s, uint64_t steps);

/* Benchmark: commits `n` transactions with no faults; returns the count
 * committed (the caller measures CPU time). */
uint64_t sim_bench(struct sim *s, uint64_t n);

const char *sim_failure(const struct sim *s);
uint64_t sim_now(const struct sim *s);
uint64_t sim_steps(const struct sim *s);

/* Scripted faults. Ids are member ids (1-based). */
void sim_crash(struct sim *s, uint32_t id);     /* silent: a host dies   */
/* A crash of the process only (kill -9): its peers' connections to it
 * are reset, and they hear of it (zk_driver_peer_down) after what it
 * had sent before. */
void sim_kill(struct sim *s, uint32_t id);
/* The connection between two live replicas is dropped: each hears of
 * it (zk_driver_peer_down), as when a send queue overflows. */
void sim_reset_link(struct sim *s, uint32_t a, uint32_t b);
void sim_restart(struct sim *s, uint32_t id);
void sim_block(struct sim *s, uint32_t from, uint32_t to, int blocked);
void sim_isolate(struct sim *s, uint32_t id);   /* both directions       */
void sim_heal(struct sim *s);
void sim_disk_fail_next(struct sim *s, uint32_t id);

/* Stops replica id for us (SIGSTOP): its events wait, its clock runs. */
void sim_pause(struct sim *s, uint32_t id, uint64_t us);

/* The ephemeral lock recipe, scripted (test/sim/sim_eph.c): client 0 of
 * replica id asks for name (an exclusive create of an ephemeral in the
 * replica's session). Returns 0, -EBUSY if that client is not idle
 * (asking or holding), -EINVAL if the replica has no session or name is
 * not one of the model's. The outcome is known when the replica applies
 * the create: see sim_eph_holds. */
int sim_eph_take(struct sim *s, uint32_t id, uint32_t name);
/* Whether client 0 of replica id believes now that it holds name (as
 * the random clients' beliefs: its replica applied its create, the node
 * is in its tree, its session is open and its lease runs). */
int sim_eph_holds(struct sim *s, uint32_t id, uint32_t name);

/* Submits a write on replica id; returns the core's result. */
int sim_write(struct sim *s, uint32_t id);
/* Writes submitted on id that were acknowledged (committed + applied). */
uint64_t sim_acked(const struct sim *s, uint32_t id);

int sim_alive(const struct sim *s, uint32_t id);
void sim_status(const struct sim *s, uint32_t id, struct zk_zab_status *st);
/* The established leader with the highest epoch among live replicas, or
 * 0. */
uint32_t sim_leader(const struct sim *s);
/* The model state machine of replica id: applied zxid and hash chain. */
uint64_t sim_applied(const struct sim *s, uint32_t id);
uint64_t sim_chain(const struct sim *s, uint32_t id);
/* The session table of replica id's model state machine. */
uint64_t sim_model_session(const struct sim *s, uint32_t id, uint32_t owner);
/* Number of session-close transactions applied by replica id. */
uint64_t sim_closes(const struct sim *s, uint32_t id);
/* Transactions in the global committed history. */
uint64_t sim_history_len(const struct sim *s);
/* Register operations recorded for the linearizability check, and the
 * checker's search steps (sim_lin.c; after sim_random_run). */
uint64_t sim_lin_ops(const struct sim *s);
uint64_t sim_lin_steps(const struct sim *s);

/* Predicates for sim_run_while_not. */
int sim_pred_leader(struct sim *s, void *unused);
int sim_pred_converged(struct sim *s, void *unused);

#endif /* ZK_SIM_H */
