/*
 * sim_int.h — the simulator's private structures, shared by sim.c (engine
 * and invariants), sim_node.c (disks, state machines, network, clients),
 * sim_run.c (fault schedule, random runs, benchmark) and the clients with
 * their invariants (sim_lock.c, sim_eph.c, sim_lin.c, sim_lease.c).
 */
#ifndef ZK_SIM_INT_H
#define ZK_SIM_INT_H

#include "sim.h"
#include "zk_common.h"
#include "../../replica/driver.h"
#include "../../store/lock_tab.h"
#include "../../replica/lease_int.h"

#include <string.h>

/* Core timing, in ticks (SIM_TICK_US each). */
#define SIM_INIT_LIMIT       20
#define SIM_SYNC_LIMIT       10
#define SIM_SESSION_TIMEOUT  40

#define SIM_PENDING_MAX      8192   /* client writes awaiting their commit */
#define SIM_CLIENT_INFLIGHT  4      /* a client's unanswered writes, at most */
#define SIM_SNAPS_MAX        4      /* received snapshots kept per replica */
#define SIM_DISK_LOG_KEEP    2048   /* applied entries kept on a sim disk  */
#define SIM_LOCK_FILES       2      /* inodes the lock clients lock        */
#define SIM_LOCK_OWNERS      2      /* lock owners (processes) per replica */
#define SIM_LOCK_ENTS        64     /* entries of one file's table, at most */
#define SIM_LOCK_GRANTS      64     /* grants one transaction may make     */
#define SIM_REG_CLIENTS      2      /* register clients per replica (sim_lin.c) */
#define SIM_REG_GEN_US       250000 /* clients move to a new key this often */
#define SIM_REG_SLOTS        128    /* keys a model keeps (32 s of keys)   */
#define SIM_EPH_NAMES        2      /* names the ephemeral clients take    */
#define SIM_EPH_OWNERS       2      /* ephemeral clients per replica       */

enum {
    SIM_EV_TICK = 1, SIM_EV_MSG, SIM_EV_DISK, SIM_EV_CLIENT, SIM_EV_RESTART,
    SIM_EV_FAULT, SIM_EV_LOCK, SIM_EV_REG, SIM_EV_LOSE, SIM_EV_EPH,
};

/* A versioned register of the model (sim_lin.c); gen is its key + 1. */
struct sim_reg {
    uint32_t gen, value, version;
};

/* What the store hands the driver for an applied entry (the callbacks'
 * zk_apply_result): a register op's outcome. */
struct sim_res {
    int reg, bad;
    uint32_t version;
};

/* A register client (a process with one operation at a time). */
struct sim_rclient {
    int busy;
    uint32_t key, seen;         /* its key now, the version it saw last */
    uint64_t ops;
};

/* One entry of a lock table in the model (struct zk_lock_ent without the
 * requester's description, which the rules never read). */
struct sim_lent {
    uint32_t flags;
    uint64_t session, owner, start, end, token;
};

struct sim_ltab {
    uint32_t n;
    struct sim_lent e[SIM_LOCK_ENTS];
};

/* What a lock owner on a replica believes (sim_lock.c). */
enum { SIM_LK_IDLE, SIM_LK_ASKING, SIM_LK_QUEUED, SIM_LK_HOLD };
struct sim_lclient {
    int state;
    uint64_t session;           /* the session it asked in              */
    uint64_t owner;             /* the lock owner it asked as            */
    uint32_t gen;               /* a new owner for every request         */
};

/* An ephemeral znode of the model's tree (sim_eph.c): the name's slot. */
struct sim_eph {
    uint64_t session;           /* ephemeralOwner; 0: no node of the name */
    uint64_t owner;             /* the client that created it            */
    uint64_t ino;               /* its inode: the create's zxid          */
};

/* What an ephemeral client (a process taking a name) believes. */
enum { SIM_EP_IDLE, SIM_EP_ASKING, SIM_EP_HOLD };
struct sim_eclient {
    int state;
    uint64_t session;           /* the session it created in            */
    uint64_t owner;             /* a new owner for every request        */
    uint64_t ino;               /* the node it holds (SIM_EP_HOLD)      */
    uint32_t gen;
};

struct sim_model {
    uint64_t applied;
    uint64_t chain;
    uint64_t count;
    uint64_t closes;
    uint64_t sessions[ZK_ZAB_MEMBERS_MAX];
    struct sim_ltab locks[SIM_LOCK_FILES];      /* the lock tables       */
    struct sim_reg regs[SIM_REG_SLOTS];         /* the registers         */
    struct sim_eph eph[SIM_EPH_NAMES];          /* the ephemeral znodes  */
};

struct sim_ent {
    uint64_t zxid, req_id;
    uint32_t origin, type, len;
    uint8_t *data;
};

struct sim_pkt {
    uint32_t from, to;       /* replica indexes */
    uint8_t *buf;
    size_t len;
    struct sim_model *snap;  /* the sender's state, with a SNAP only: a
                                model is kilobytes (the lock tables), too
                                much to zero for every message          */
};

struct sim_ev {
    uint64_t t, seq;
    uint32_t kind, r, life;
    struct sim_pkt *pkt;
};

struct sim_pend {
    uint64_t wseq;                /* the client's write number */
    uint64_t submit_us;
    int acked;
};

struct sim_replica {
    struct sim *s;
    uint32_t id;
    int observer;
    struct zk_driver *drv;      /* the real driver (replica/driver.c)    */
    int alive, busy;            /* busy: a Ready's disk write scheduled  */
    uint32_t life;              /* bumps at crash/start: stale events   */
    uint32_t incarnation;       /* persisted                             */
    /* disk */
    struct zk_zab_hard_state hard;
    struct sim_ent *log;
    size_t nlog, caplog;
    /* --wipe: the zxids its disk held when it was last wiped. A commit
     * it acknowledged still counts as on its disk for the quorum check
     * (the wipe is the failure the quorum tolerates, not a lost ack). */
    uint64_t *ghost;
    size_t nghost;
    /* The accepted epoch its disk held when it was wiped (if another
     * replica accepted it too), until it persists an epoch again: that
     * one must be above it (it never counts with the promises it
     * forgot). */
    uint64_t ghost_acc;
    /* --lose-tail: the durable state when the fault was armed; when it
     * fires the disk goes back to it (its last writes are lost). */
    struct sim_ckpt {
        struct zk_zab_hard_state hard;
        uint32_t incarnation;
        struct sim_ent *log;
        size_t nlog;
        struct sim_model model;
    } *ckpt;
    /* The marker the daemon keeps apart from its store: the durable hard
     * state and log end after each batch (not moved while the core
     * abstains). A store behind it at a start lost writes. */
    struct zk_zab_hard_state mark_hard;
    uint64_t mark_last;
    struct sim_model model;
    /* snapshots received with SNAP messages, newest last */
    struct sim_model snaps[SIM_SNAPS_MAX];
    uint32_t nsnap;
    int fail_next;
    int crash_after_write;      /* 1: dies once its next batch is
                                   durable; 2: a power cut while it is
                                   written (its log part only)          */
    /* Power cuts (the daemon's store, docs/ensemble.md): a batch's log
     * records are durable (the write-ahead log's fdatasync) before LMDB
     * is touched, and LMDB's part is committed without a sync unless it
     * holds the hard state or an install; the store's checkpoints
     * (store/ckpt.c: every synced commit, and now and then in the
     * background) are what a power cut goes back to, whole. `undo`:
     * LMDB's state at the last checkpoint while later commits may still
     * be undone (valid 0: the state now is one); `pre`: before the batch
     * being written. */
    struct sim_undo {
        struct zk_zab_hard_state hard;
        uint32_t incarnation;
        struct sim_model model;
        int valid;
    } undo, pre;
    int b_lmdb, b_durable;      /* the batch touches LMDB / syncs it    */
    uint64_t own_open_zxid;     /* the last OPEN of its own session it
                                   applied (sim_lease.c)                */
    int log_only;               /* 1: only the log part of the batch
                                   reaches the disk; 2: not even that
                                   (it installs: a new log generation) */
    uint64_t slow_until;
    /* client */
    struct sim_pend *pend;
    size_t npend, cappend, headpend;
    uint64_t wseq, acked, tail_acked;
    /* lock clients */
    struct sim_lclient lk[SIM_LOCK_OWNERS][SIM_LOCK_FILES];
    /* register clients */
    struct sim_rclient rg[SIM_REG_CLIENTS];
    /* ephemeral clients */
    struct sim_eclient ep[SIM_EPH_OWNERS][SIM_EPH_NAMES];
    /* its clock runs at rate_ppm millionths of simulated time */
    uint64_t rate_ppm;
    /* stopped (SIGSTOP, a stalled loop): events wait until then */
    uint64_t paused_until;
    /* What the checks after a step read of its driver and core (status,
     * stats, session, lease end): none of it depends on the time, so it
     * is taken again only for a replica the step touched (sim->dirty). */
    struct sim_view {
        struct zk_zab_status st;
        struct zk_driver_stats ds;
        uint64_t session, lease_until;
        int has_lease;          /* lease_until taken (sim_view_lease) */
    } view;
};

struct sim_hist {
    uint64_t zxid, ph, chain;
    uint64_t tree;              /* the ephemerals after it (sim_eph_digest;
                                   0: not applied yet)                   */
};

struct sim_set {                /* open addressing set of uint64 (!= 0) */
    uint64_t *v;
    size_t n, cap;
};

struct sim {
    struct sim_opts o;
    uint64_t rng;
    uint64_t now, steps;
    struct sim_ev *ev;
    size_t nev, capev;
    uint64_t evseq;
    uint32_t n;
    struct sim_replica rep[SIM_REPLICAS_MAX];
    uint8_t blocked[SIM_REPLICAS_MAX][SIM_REPLICAS_MAX];
    uint64_t link_last[SIM_REPLICAS_MAX][SIM_REPLICAS_MAX];
    struct sim_hist *hist;
    size_t nhist, caphist;
    struct { uint64_t epoch; uint32_t leader; } *epochs;
    size_t nepochs, capepochs;
    struct sim_set writes;      /* payload hashes of committed writes    */
    /* network and fault knobs */
    uint32_t drop_pm, dup_pm, slow_pm; /* per mille                     */
    uint64_t delay_min_us, delay_max_us;
    int faults_on, clients_on;
    /* a leader must be established within SIM_HEAL_LEADER_US of a heal
     * (counted from when a quorum of voters is up and running) */
    uint64_t heal_at;
    uint64_t heal_max_us;       /* the longest wait seen (trace)          */
    uint64_t tail_start;
    /* Replicas (bit i: index i) whose driver or core may have changed
     * since the last check: the one a step's event was for, every one
     * after a fault or a scripted change. The checks after a step read
     * the others' views as they were. */
    uint32_t dirty;
    /* the register clients' history, lincheck's text (sim_lin.c) */
    char *lin_buf;
    size_t lin_len, lin_cap;
    uint64_t lin_ops, lin_values, lin_steps;
    uint32_t lin_keys;
    int failed;
    char failure[512];
};

#define SIM_DIRTY_ALL UINT32_MAX

/* The view of replica i the checks read (sim.c), taken again if dirty. */
const struct sim_view *sim_view(struct sim *s, uint32_t i);
/* The lease end of replica i's view, taken when first asked for (only
 * the lock check needs it, for owners that hold). */
uint64_t sim_view_lease(struct sim *s, uint32_t i);

/* The owner id of a lock or ephemeral client: replica rid, its request
 * number gen, its index o. */
uint64_t sim_owner_id(uint32_t rid, uint32_t gen, uint32_t o);
/* The replica and index of owner (of session) if it is one of the
 * simulator's clients (index below owners); 0 if not. */
int sim_owner_of(const struct sim *s, uint64_t session, uint64_t owner,
                 uint32_t owners, uint32_t *rid, uint32_t *o);
/* The start of a lock or ephemeral client's turn on replica i: schedules
 * the next turn (an event of kind in 5-50 ms), picks an owner (*o, below
 * owners) and an object (*obj, below objs). Returns the replica's
 * session, or 0 if the client does nothing this turn (clients stopped,
 * no session, the driver has 2 x SIM_CLIENT_INFLIGHT proposals). */
uint64_t sim_client_turn(struct sim *s, uint32_t i, uint32_t kind,
                         uint32_t owners, uint32_t objs, uint32_t *o,
                         uint32_t *obj);
/* Whether replica r still relies on session (alive, session open and
 * its own, lease running on its clock). */
int sim_relies(const struct sim *s, const struct sim_replica *r,
               uint64_t session);
/* sim_relies() on the view taken after the step (sim_view). */
int sim_view_relies(struct sim *s, uint32_t i, uint64_t session);

uint64_t sim_rand(struct sim *s);
uint64_t sim_range(struct sim *s, uint64_t lo, uint64_t hi);
uint64_t sim_mix(uint64_t a, uint64_t b);
void sim_log_line(struct sim *s, uint32_t id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A trace line (-v); its arguments are not even computed otherwise. */
#define sim_log(s, id, ...)                                              \
    do {                                                                 \
        if ((s)->o.verbose)                                              \
            sim_log_line((s), (id), __VA_ARGS__);                        \
    } while (0)
void sim_fail(struct sim *s, uint32_t id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sim_push(struct sim *s, uint64_t t, uint32_t kind, uint32_t r,
              struct sim_pkt *pkt);
void sim_check(struct sim *s);
void sim_replica_start(struct sim *s, uint32_t i);
/* Frees r's --lose-tail checkpoint, if any. */
void sim_ckpt_free(struct sim_replica *r);

/* sim_node.c */
void sim_driver_wire(struct sim *s, struct sim_replica *r,
                     struct zk_driver_config *dc);
const struct zk_zab *sim_core(const struct sim_replica *r);
void sim_pkt_free(struct sim_pkt *p);
void sim_deliver(struct sim *s, struct sim_pkt *p);
void sim_send_reset(struct sim *s, uint32_t from, uint32_t to);
void sim_on_tick(struct sim *s, uint32_t i);
void sim_on_disk(struct sim *s, uint32_t i);
/* A power cut of replica r's host, before it is crashed: what a batch on
 * its way to disk and the store's last checkpoint leave (see undo). */
void sim_power_cut(struct sim *s, struct sim_replica *r);
void sim_on_client(struct sim *s, uint32_t i);
/* Writes the 16 bytes every client payload leads with (replica id, a new
 * write number, incarnation), which make each one unique. */
void sim_client_header(struct sim_replica *r, uint8_t *buf);

/* sim_run.c */
void sim_on_fault(struct sim *s);
void sim_on_lose(struct sim *s, uint32_t i);
void sim_heal_check(struct sim *s);

/* Local time of replica r's clock (ns), drifting at its own rate. */
uint64_t sim_local_ns(const struct sim *s, const struct sim_replica *r);
/* Real time until r's clock advances by local_us (the tick interval). */
uint64_t sim_real_us(const struct sim_replica *r, uint64_t local_us);

/* sim_lock.c: lock clients and the lock invariants. */
int sim_lock_payload(const struct zk_zab_entry *e);
void sim_lock_apply(struct sim *s, struct sim_replica *r,
                    const struct zk_zab_entry *e);
void sim_lock_close(struct sim *s, struct sim_replica *r, uint64_t session,
                    uint64_t zxid);
void sim_lock_crashed(struct sim_replica *r);
void sim_on_lock(struct sim *s, uint32_t i);
void sim_lock_check(struct sim *s, uint32_t touched);

/* sim_eph.c: ephemeral clients, the model's ephemeral znodes and their
 * invariants. */
int sim_eph_payload(const struct zk_zab_entry *e);
void sim_eph_apply(struct sim *s, struct sim_replica *r,
                   const struct zk_zab_entry *e);
void sim_eph_close(struct sim *s, struct sim_replica *r, uint64_t session);
void sim_eph_crashed(struct sim_replica *r);
void sim_on_eph(struct sim *s, uint32_t i);
void sim_eph_check(struct sim *s, uint32_t touched);
/* A digest of m's ephemeral znodes (never 0). */
uint64_t sim_eph_digest(const struct sim_model *m);

/* sim_lin.c: register clients and the linearizability check. */
int sim_reg_payload(const struct zk_zab_entry *e);
void sim_reg_apply(struct sim *s, struct sim_replica *r,
                   const struct zk_zab_entry *e, struct sim_res *out);
void sim_on_reg(struct sim *s, uint32_t i);
int sim_lin_check(struct sim *s);

/* The last zxid on replica r's disk. */
uint64_t sim_disk_last(const struct sim_replica *r);
/* Whether r's store is behind its marker (it lost writes it had made
 * durable: sim_run.c, --lose-tail). */
int sim_store_behind(const struct sim_replica *r);

/* sim_lease.c: the invariant that no session is closed while its
 * owner's lease (the driver's, on simulated time) runs. */
void sim_lease_check_close(struct sim *s, const struct sim_replica *by,
                           const struct zk_zab_entry *e);

#endif /* ZK_SIM_INT_H */
