/*
 * zab_int.h — the consensus core's private state, shared by zab.c (log,
 * outbox, Ready/Advance, sessions), zab_elect.c (leader election),
 * zab_leader.c (discovery, sync and broadcast as leader) and
 * zab_learner.c (the same phases as follower or observer).
 *
 * What the core keeps true: the in-memory log holds every entry with
 * base < zxid <= last, in zxid order; applied <= persisted (an entry is
 * applied only once it is on this replica's disk); every entry that the
 * outbox or an outstanding Ready points to is pinned by a reference.
 */
#ifndef ZK_ZAB_INT_H
#define ZK_ZAB_INT_H

#include "zk_common.h"
#include "zk_zab.h"

/* A refcounted log entry; the public view's data points at `bytes`. */
struct zk__ent {
    uint32_t refs;
    struct zk_zab_entry e;
    uint8_t bytes[];
};

struct zk__log {
    struct zk__ent **v;
    size_t n, cap;
    uint64_t base;   /* zxid just before v[0] (snapshot / compaction)   */
};

/* Leader's view of one learner link. */
enum zk__pstate {
    ZK__P_NONE = 0,
    ZK__P_INFO,      /* FOLLOWERINFO received, epoch not yet decided     */
    ZK__P_EPOCH,     /* LEADERINFO sent, waiting for ACKEPOCH            */
    ZK__P_NEEDSYNC,  /* ACKEPOCH received, sync to be sent               */
    ZK__P_STREAM,    /* sync sent, entries streamed                      */
};

/* Slots of a leader's per-learner ring of received lease ticks. */
#define ZK__LEASE_RX 8

/* A leader's record of the learner ticks (k) that arrived in one tick. */
struct zk__lease_rx {
    uint64_t tick, k;
};

struct zk__peer {
    uint32_t id;
    int observer;
    /* election */
    int vote_round_valid;
    uint64_t vote_round;
    uint32_t vote_leader;
    uint64_t vote_epoch, vote_zxid;
    uint32_t rep_state, rep_leader;     /* last non-LOOKING report      */
    int acc_heard;                      /* a VOTE since we started      */
    uint64_t rep_acc;                   /* highest accepted epoch in it */
    uint64_t rep_epoch, rep_tick;
    int down;                           /* connection lost, nothing since */
    /* leader side */
    enum zk__pstate ps;
    uint64_t flink;                     /* learner's FOLLOWERINFO link  */
    uint64_t link, seq_next;            /* our id for this connection   */
    uint64_t acc_epoch;                 /* from FOLLOWERINFO            */
    int counted;                        /* ACKEPOCH counted             */
    int abstain;                        /* FOLLOWERINFO: empty store    */
    uint64_t cur_epoch, last_zxid, applied_zxid; /* from ACKEPOCH       */
    uint64_t sent, commit_sent, ack;
    int est_sent;                       /* COMMIT flagged ESTABLISHED sent */
    int synced;                         /* ACK with SYNCED received     */
    uint64_t heard_tick;
    uint64_t sess_heard_tick;
    uint64_t last_req;                  /* dedup of forwarded writes     */
    int st_synced;                      /* status only: ACKs say synced  */
    uint64_t st_acked;                  /* status only: best ACKed zxid  */
    /* The lease (zab_leader.c, "lease"): the highest of our PING ticks
     * this learner echoed, the learner ticks its ACKs carried by the
     * leader tick they arrived in (a ring), and the highest learner tick
     * echoed back to it so far. */
    uint64_t ping_echo;
    struct zk__lease_rx rx[ZK__LEASE_RX];
    uint64_t echo_sent;
};

/* Leader phases. */
enum zk__lphase {
    ZK__L_INFO = 0,  /* collecting FOLLOWERINFO from a quorum            */
    ZK__L_ACKEPOCH,  /* LEADERINFO sent, collecting ACKEPOCH             */
    ZK__L_SYNC,      /* syncing, waiting for a quorum of NEWLEADER acks  */
    ZK__L_BCAST,     /* established                                       */
};

/* Learner stages. */
enum zk__lstage {
    ZK__F_CONNECT = 0, /* FOLLOWERINFO sent, waiting for LEADERINFO      */
    ZK__F_SYNC,        /* ACKEPOCH sent, receiving the sync              */
    ZK__F_ACTIVE,      /* NEWLEADER processed                            */
};

struct zk__outbox {
    struct zk_zab_msg *msgs;   size_t n_msgs, cap_msgs;
    struct zk_zab_op *ops;     size_t n_ops, cap_ops;
    struct zk_zab_entry *commits; size_t n_commits, cap_commits;
    struct zk__ent **pins;     size_t n_pins, cap_pins;
    struct zk_zab_entry **earrs; size_t n_earrs, cap_earrs;
    int has_hard;
    uint64_t last_append;      /* zxid of the last APPEND op             */
    int has_reset;             /* an INSTALL or TRUNCATE op is included  */
    uint64_t trunc_gen;        /* core's trunc_gen when taken            */
    uint64_t member_epoch;     /* abstaining: NEWLEADER of this fresh
                                  epoch; a member once this is durable  */
};

struct zk_zab {
    struct zk_zab_config cfg;
    uint32_t self;             /* index of own member                    */
    int observer;
    uint32_t n_voters, quorum;
    uint64_t rng[2];
    uint64_t tick;
    enum zk_zab_role role;
    struct zk_zab_hard_state hard, durable;

    struct zk__log log;
    uint64_t persisted, applied, commit; /* commit: known committed      */
    uint64_t trunc_gen;
    uint64_t contact_tick;     /* lease: last own tick whose message a
                                  quorum acknowledged (zab_leader.c)  */
    uint64_t lconfirmed;       /* leader: contact_tick of this term    */
    uint64_t ping_seen;        /* learner: leader's last PING tick     */

    uint64_t sessions[ZK_ZAB_MEMBERS_MAX];
    /* Per member, the highest session id seen opened in the log or the
     * applied state (zk__sess_note): the leader refuses an OPEN request
     * it makes stale (zab_leader.c, recv_request). */
    uint64_t open_max[ZK_ZAB_MEMBERS_MAX];
    uint64_t my_sid;
    uint32_t sid_ctr;
    int sid_seen_open;
    uint64_t open_sent_tick;
    uint64_t open_first_tick;  /* lease: first OPEN of my_sid sent (0: none) */
    int open_sent;

    /* An empty store (never accepted an epoch) that heard a peer with
     * history, or a store that lost writes it had made durable
     * (restore's lost_writes): a learner that does not vote or count
     * until the Ready holding its sync in a fresh epoch is durable
     * (zab_elect.c, "empty stores"; zk__outbox.member_epoch). */
    int abstain, lost_writes;

    /* election */
    uint64_t round;
    uint32_t vote_leader;
    uint64_t vote_epoch, vote_zxid;
    uint64_t look_tick;

    /* learner */
    uint32_t leader;
    uint32_t acc_leader;       /* leader whose LEADERINFO we accepted  */
    enum zk__lstage fstage;
    uint64_t link, expect_seq, fepoch;
    uint64_t heard_tick, stage_tick;
    uint64_t sync_last;        /* NEWLEADER zxid                          */
    int lest;                  /* the leader said it is established     */

    /* leader */
    enum zk__lphase lphase;
    uint64_t lepoch, phase_tick;
    uint64_t close_sent[ZK_ZAB_MEMBERS_MAX];

    struct zk__peer peers[ZK_ZAB_MEMBERS_MAX];

    struct zk__outbox out, cur;  /* accumulating / handed out           */
    int outstanding;
    int dirty;                   /* leader: flush may produce messages  */
    uint64_t cur_log_last;       /* last zxid when cur was taken        */
    struct zk_zab_hard_state cur_hard;
    uint32_t req_ctr;            /* request ids of this incarnation     */

    uint64_t n_diff, n_trunc, n_snap, n_elections;
};

/* --- zab.c ------------------------------------------------------------- */
void zk__trace(struct zk_zab *z, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
uint64_t zk__rand(struct zk_zab *z);
int zk__member_index(const struct zk_zab *z, uint32_t id);
uint64_t zk__last_zxid(const struct zk_zab *z);

struct zk__ent *zk__ent_new(const struct zk_zab_entry *e);
void zk__ent_unref(struct zk__ent *x);
/* Index of the entry with zxid, or -1; *pos = first index with > zxid. */
long zk__log_find(const struct zk__log *l, uint64_t zxid, size_t *pos);
/* Notes a SESSION_OPEN entry logged or applied (and, with e NULL, the
 * session table just set) in open_max. */
void zk__sess_note(struct zk_zab *z, const struct zk_zab_entry *e);
/* An OPEN of sid from member index i is stale: a newer id of the same
 * incarnation was opened after it (a closed id may be opened again: a
 * replica that never saw its OPEN applied, e.g. synced by snapshot after
 * the leader closed it, asks for it again). */
int zk__sess_stale_open(const struct zk_zab *z, int i, uint64_t sid);
void zk__log_append(struct zk_zab *z, struct zk__ent *x); /* takes ref */
void zk__log_truncate(struct zk_zab *z, uint64_t zxid);
void zk__log_reset(struct zk_zab *z, uint64_t base, uint32_t from);
void zk__log_compact(struct zk_zab *z);

struct zk_zab_msg *zk__msg(struct zk_zab *z, uint8_t type, uint32_t to);
void zk__msg_entries(struct zk_zab *z, struct zk_zab_msg *m,
                     struct zk__ent **v, size_t n);
void zk__set_hard(struct zk_zab *z, uint64_t accepted, uint64_t current);
void zk__emit_commits(struct zk_zab *z);
void zk__apply_session(struct zk_zab *z, const struct zk_zab_entry *e);
void zk__learn_ids(struct zk_zab *z, const struct zk_zab_entry *e,
                   uint64_t own_sid);
void zk__session_tick(struct zk_zab *z);
void zk__become(struct zk_zab *z, enum zk_zab_role r, uint32_t leader);

/* --- zab_elect.c ------------------------------------------------------- */
void zk__elect_start(struct zk_zab *z);
void zk__elect_tick(struct zk_zab *z);
void zk__elect_recv(struct zk_zab *z, const struct zk_zab_msg *m);
void zk__elect_announce(struct zk_zab *z, uint32_t to);
void zk__elect_broadcast(struct zk_zab *z);
void zk__elect_peer_down(struct zk_zab *z);
int zk__store_empty(const struct zk_zab *z);
int zk__epoch_fresh(const struct zk_zab *z, uint64_t e);
void zk__abstain_check(struct zk_zab *z);

/* --- zab_leader.c ------------------------------------------------------ */
void zk__lead_start(struct zk_zab *z);
void zk__lead_tick(struct zk_zab *z);
void zk__lead_lease_update(struct zk_zab *z);
void zk__lead_recv(struct zk_zab *z, const struct zk_zab_msg *m);
void zk__lead_flush(struct zk_zab *z);
int zk__lead_propose(struct zk_zab *z, const struct zk_zab_entry *e);
void zk__lead_self_persisted(struct zk_zab *z);

/* --- zab_learner.c ----------------------------------------------------- */
void zk__learn_start(struct zk_zab *z);
void zk__learn_tick(struct zk_zab *z);
void zk__learn_recv(struct zk_zab *z, const struct zk_zab_msg *m);
int zk__learn_forward(struct zk_zab *z, const struct zk_zab_entry *e);
void zk__learn_leader_up(struct zk_zab *z);
void zk__learn_peer_down(struct zk_zab *z, uint32_t id);

#endif /* ZK_ZAB_INT_H */
