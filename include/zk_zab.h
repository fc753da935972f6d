/*
 * zk_zab.h — the consensus core: ZooKeeper's Zab (Fast-Leader-Election style
 * votes, discovery, synchronisation by DIFF/TRUNC/SNAP, broadcast by
 * PROPOSE/ACK/COMMIT, INFORM for observers) and per-replica sessions, as a
 * deterministic state machine without I/O.
 *
 * Events go in (zk_zab_step for a received message, zk_zab_tick for one
 * tick of logical time, zk_zab_propose for a local write, zk_zab_advance
 * for "everything in the last Ready is persisted / installed"); actions
 * come out in a struct zk_zab_ready, in the style of etcd raft's
 * Ready/Advance:
 *
 *   while (zk_zab_has_ready(z)) {
 *       struct zk_zab_ready rd;
 *       zk_zab_ready(z, &rd);
 *       1. perform rd.ops in order (install snapshot / truncate / append)
 *          and write rd.hard_state if rd.has_hard_state — all durably
 *          (fsync; one LMDB transaction is fine);
 *       2. apply rd.commits in order to the state machine;
 *       3. send rd.msgs (for a ZK_ZAB_MSG_SNAP message, stream the state
 *          machine's snapshot at msg.zxid after it);
 *       zk_zab_advance(z);
 *   }
 *
 * Durability contract: no message of a Ready may leave before step 1 of
 * that Ready (and of every earlier one) is on disk — except PROPOSE,
 * COMMIT, INFORM and REQUEST messages of a Ready without hard state,
 * which claim nothing about this replica's disk and may leave while step
 * 1 runs (in the Ready's order; ACK never may). zk_zab_advance() tells
 * the core that step 1 is durable; only then does the core count its own
 * entries as persisted (a write is committed only when a quorum has it on
 * disk, the leader included only once its own write is durable). Events may
 * be fed between zk_zab_ready() and zk_zab_advance(); zk_zab_ready() must
 * not be called again before zk_zab_advance(). If a write fails, the
 * embedder must not call zk_zab_advance(): it destroys the core and
 * restarts the replica from what is on disk (fail-stop).
 *
 * The core never reads a clock, draws randomness only from cfg.seed, does
 * no I/O and logs only through cfg.trace. Every function must be called
 * from one thread (the core is not thread-safe); none blocks.
 */
#ifndef ZK_ZAB_H
#define ZK_ZAB_H

#include <stddef.h>
#include <stdint.h>

#include "zk_envelope.h"

/* --- limits ---------------------------------------------------------- */

#define ZK_ZAB_MEMBERS_MAX      16        /* voters + observers           */
#define ZK_ZAB_MSG_ENTRIES_MAX  256       /* entries in one message batch */
#define ZK_ZAB_MSG_BATCH_BYTES  (4u << 20) /* payload bytes a batch stops at
                                             (one entry may exceed it)   */
#define ZK_ZAB_PAYLOAD_MAX      ((1u << 20) + 65536) /* bytes of one entry */
#define ZK_ZAB_LOG_KEEP         1024      /* applied entries kept for DIFF */
#define ZK_ZAB_PENDING_MAX      8192      /* uncommitted entries at leader */
#define ZK_ZAB_MSG_VERSION      1         /* wire format version          */

/* zxid = epoch << 32 | counter. */
#define ZK_ZAB_ZXID(epoch, ctr) (((uint64_t)(epoch) << 32) | (uint32_t)(ctr))
#define ZK_ZAB_EPOCH(zxid)      ((uint32_t)((uint64_t)(zxid) >> 32))
#define ZK_ZAB_COUNTER(zxid)    ((uint32_t)(zxid))

/* Session ids: owner's member id in the top byte, the owner's incarnation
 * in the next 24 bits, a per-incarnation counter in the low 32. */
#define ZK_ZAB_SESSION_OWNER(sid) ((uint32_t)((uint64_t)(sid) >> 56))

enum zk_zab_role {
    ZK_ZAB_LOOKING = 0,
    ZK_ZAB_FOLLOWING = 1,
    ZK_ZAB_LEADING = 2,
    ZK_ZAB_OBSERVING = 3,
};

/* Entry types. WRITE payloads are opaque to the core. SESSION_OPEN and
 * SESSION_CLOSE are produced by the core; their payload is the 8-byte
 * big-endian session id. The state machine must apply them as follows
 * (the core keeps the same table): OPEN from member m sets m's session to
 * the id (implicitly closing m's previous session, if any); CLOSE of id s
 * clears the owner's slot if it still holds s (otherwise it is a no-op). */
enum zk_zab_entry_type {
    ZK_ZAB_ENTRY_WRITE = ZK_ENTRY_WRITE,
    ZK_ZAB_ENTRY_SESSION_OPEN = ZK_ENTRY_SESSION_OPEN,
    ZK_ZAB_ENTRY_SESSION_CLOSE = ZK_ENTRY_SESSION_CLOSE,
};

/* A transaction. `data` is borrowed: in a Ready it stays valid until
 * zk_zab_advance(); as an input it is copied before the call returns. */
struct zk_zab_entry {
    uint64_t zxid;
    uint64_t req_id;   /* origin's request id (0 for core-made entries)  */
    uint32_t origin;   /* member id of the replica that submitted it     */
    uint32_t type;     /* enum zk_zab_entry_type                         */
    uint32_t len;
    const uint8_t *data;
};

/* --- messages (see docs/protocol.md for each field's meaning) -------- */

enum zk_zab_msg_type {
    ZK_ZAB_MSG_VOTE = 1,         /* election notification               */
    ZK_ZAB_MSG_FOLLOWERINFO = 2, /* learner -> leader: accepted epoch   */
    ZK_ZAB_MSG_LEADERINFO = 3,   /* leader -> learner: new epoch        */
    ZK_ZAB_MSG_ACKEPOCH = 4,     /* learner -> leader: history summary  */
    ZK_ZAB_MSG_DIFF = 5,         /* sync: entries after zxid follow     */
    ZK_ZAB_MSG_TRUNC = 6,        /* sync: drop entries after zxid       */
    ZK_ZAB_MSG_SNAP = 7,         /* sync: snapshot at zxid follows      */
    ZK_ZAB_MSG_PROPOSE = 8,      /* entries to log (sync or broadcast)  */
    ZK_ZAB_MSG_NEWLEADER = 9,    /* sync done up to zxid                */
    ZK_ZAB_MSG_COMMIT = 10,      /* everything <= zxid is committed     */
    ZK_ZAB_MSG_INFORM = 11,      /* committed entries (observers)       */
    ZK_ZAB_MSG_PING = 12,        /* leader -> learner keep-alive        */
    ZK_ZAB_MSG_ACK = 13,         /* learner -> leader: persisted + ping */
    ZK_ZAB_MSG_REQUEST = 14,     /* learner -> leader: forwarded writes */
};
#define ZK_ZAB_MSG_TYPE_MAX 14

#define ZK_ZAB_MF_OBSERVER 0x01  /* FOLLOWERINFO: sender is an observer */
#define ZK_ZAB_MF_COUNTED  0x02  /* ACKEPOCH: counts toward the quorum  */
#define ZK_ZAB_MF_SYNCED   0x04  /* ACK: NEWLEADER processed (durable)  */
#define ZK_ZAB_MF_ABSTAIN  0x08  /* FOLLOWERINFO: empty store, not counted
                                    (zab_elect.c, "empty stores")      */
#define ZK_ZAB_MF_ESTABLISHED 0x10 /* COMMIT, PING: the sender leads an
                                    established epoch (a quorum acked its
                                    NEWLEADER); ZooKeeper's UPTODATE   */
#define ZK_ZAB_MF_RESTORED 0x20  /* VOTE: the sender's store was put back
                                    (a backup restored, a copy put back)
                                    and has accepted no epoch since
                                    (zab_elect.c, "restored stores")   */

struct zk_zab_msg {
    uint8_t type;          /* enum zk_zab_msg_type                      */
    uint8_t flags;         /* ZK_ZAB_MF_*                               */
    uint32_t from, to;     /* member ids                                */
    uint64_t epoch;        /* leader epoch; election round for VOTE     */
    uint64_t link;         /* learner connection id                     */
    uint64_t seq;          /* position in the leader->learner stream    */
    uint64_t zxid;
    uint64_t zxid2;
    uint64_t aux;
    uint32_t state;        /* VOTE: sender's role                       */
    uint32_t leader;       /* VOTE: proposed or known leader            */
    uint32_t n_sessions;   /* SNAP: session table, indexed by member    */
    uint64_t sessions[ZK_ZAB_MEMBERS_MAX];
    uint32_t n_entries;
    const struct zk_zab_entry *entries;
};

/* Returns the exact number of bytes zk_zab_msg_encode() writes for m. */
size_t zk_zab_msg_encoded_size(const struct zk_zab_msg *m);

/* Encodes m (big-endian, versioned) into buf[0..cap). On success stores
 * the length in *len_out. Errors: -ENOBUFS if cap is too small, -EINVAL if
 * m breaks a limit (too many entries or sessions, payload too large, an
 * entry of an unknown type). */
int zk_zab_msg_encode(const struct zk_zab_msg *m, uint8_t *buf, size_t cap,
                      size_t *len_out);

/* Decodes buf[0..len) into *m. Entry descriptors are written to
 * entries[0..entries_cap) and m->entries points there; entry data points
 * into buf (so buf must outlive *m). Errors: ZK_ETRUNCATED if buf ends
 * early, ZK_ECORRUPT for an unknown version/type, a broken limit,
 * unordered entries or trailing bytes, -ENOBUFS if entries_cap is too
 * small. *m is written only on success. */
int zk_zab_msg_decode(const uint8_t *buf, size_t len, struct zk_zab_msg *m,
                      struct zk_zab_entry *entries, size_t entries_cap);

/* Returns a static name for a message type ("PROPOSE"), "?" if unknown. */
const char *zk_zab_msg_name(unsigned type);

/* --- configuration and restart state --------------------------------- */

struct zk_zab_member {
    uint32_t id;           /* 1..255, unique                              */
    int observer;          /* non-zero: learns commits, never votes       */
};

/* Tracer: one line, no newline; `tick` is the core's logical time. */
typedef void zk_zab_trace_fn(void *arg, uint32_t id, uint64_t tick,
                             const char *line);

struct zk_zab_config {
    uint32_t id;                       /* this replica's member id         */
    uint32_t n_members;
    struct zk_zab_member members[ZK_ZAB_MEMBERS_MAX];
    uint32_t init_limit_ticks;  /* discovery+sync must finish within     */
    uint32_t sync_limit_ticks;  /* silence after which a link is dead    */
    uint32_t session_timeout_ticks;
    uint32_t incarnation;       /* must grow at every start (persist it) */
    uint32_t counter_max;       /* 0: 0xffffffff; tests use small values */
    uint64_t seed;              /* the only source of randomness         */
    zk_zab_trace_fn *trace;     /* NULL: silent                          */
    void *trace_arg;
};

struct zk_zab_hard_state {
    uint64_t accepted_epoch;    /* highest epoch acknowledged (LEADERINFO) */
    uint64_t current_epoch;     /* epoch of the last NEWLEADER processed   */
    uint32_t incarnation;       /* 0, or an incarnation the core moved to
                                   after seeing its own ids of a higher
                                   one from before its disk was wiped: the
                                   embedder's persisted incarnation must
                                   not be below it (the next start takes a
                                   higher one). Not restored.            */
    int member_again;           /* Ready only: this Ready holds the sync
                                   that ends an abstention (an empty,
                                   restored or lost-writes store); once it
                                   is durable the replica votes again, so
                                   an embedder's mark of such a store
                                   goes in the same batch. Not restored. */
};

/* What the embedder read from disk at start. All zeros for a new replica. */
struct zk_zab_restore {
    struct zk_zab_hard_state hard;
    uint64_t applied_zxid;      /* the state machine's last applied zxid  */
    uint64_t sessions[ZK_ZAB_MEMBERS_MAX]; /* state machine's table,
                                           indexed like cfg.members     */
    const struct zk_zab_entry *entries; /* logged entries > applied_zxid,
                                           in zxid order (copied)       */
    size_t n_entries;
    int lost_writes;            /* the store is behind what this replica
                                   had made durable (its embedder's
                                   marker says so: a disk that lost its
                                   last writes): a voter abstains, as an
                                   empty store does, until it has synced
                                   in a fresh epoch (zab_elect.c)       */
    int restored;               /* the store was put back from a backup
                                   or a copy and has accepted no epoch
                                   since (its embedder's mark says so):
                                   it may have forgotten promises made
                                   after that copy. A voter abstains as
                                   with lost_writes, unless every other
                                   voter reports a restored or empty
                                   store too (a new ensemble restored
                                   from one backup): then it votes
                                   (zab_elect.c, "restored stores")    */
};

/* --- the core ---------------------------------------------------------- */

struct zk_zab;

/* Creates a core. cfg and st are copied. Errors: -EINVAL (bad config,
 * own id missing, unordered restore entries or one of an unknown type),
 * -ENOMEM. *out is written only on success; free it with
 * zk_zab_destroy(). */
int zk_zab_create(const struct zk_zab_config *cfg,
                  const struct zk_zab_restore *st, struct zk_zab **out);

/* Frees the core and everything a pending Ready points to. */
void zk_zab_destroy(struct zk_zab *z);

/* Feeds one received message (copied). Messages that are stale, foreign,
 * or out of order are ignored (and may make a learner resynchronise).
 * Returns 0, or -EINVAL if m->to is not this replica. */
int zk_zab_step(struct zk_zab *z, const struct zk_zab_msg *m);

/* Advances logical time by one tick (the embedder's tickTime). */
void zk_zab_tick(struct zk_zab *z);

/* Submits a WRITE: proposed here if this replica leads, else forwarded to
 * the leader. The commit, if any, is an entry with origin == own id and
 * req_id == *req_id_out. A forwarded write may be lost: the embedder times
 * out. Errors: ZK_ENOTREADY (not synced with an established leader),
 * -EAGAIN (ZK_ZAB_PENDING_MAX uncommitted), -EMSGSIZE. */
int zk_zab_propose(struct zk_zab *z, const uint8_t *data, uint32_t len,
                   uint64_t *req_id_out);

enum zk_zab_op_kind {
    ZK_ZAB_OP_INSTALL = 1,  /* replace state machine and log by the
                               snapshot at zxid received with the SNAP
                               message from `from` (the op is in the first
                               Ready taken after that message was
                               stepped); the log becomes empty           */
    ZK_ZAB_OP_TRUNCATE = 2, /* remove logged entries with zxid > zxid    */
    ZK_ZAB_OP_APPEND = 3,   /* append *entry                             */
};

struct zk_zab_op {
    uint32_t kind;
    uint32_t from;
    uint64_t zxid;
    const struct zk_zab_entry *entry;
};

/* One batch of actions; every pointer is valid until zk_zab_advance(). */
struct zk_zab_ready {
    int has_hard_state;
    struct zk_zab_hard_state hard_state;
    const struct zk_zab_op *ops;         size_t n_ops;
    const struct zk_zab_entry *commits;  size_t n_commits;
    const struct zk_zab_msg *msgs;       size_t n_msgs;
};

/* Non-zero if zk_zab_ready() would return anything, and no Ready is
 * outstanding. */
int zk_zab_has_ready(const struct zk_zab *z);

/* Takes the pending actions. Must not be called while a Ready is
 * outstanding. The Ready may be empty. */
void zk_zab_ready(struct zk_zab *z, struct zk_zab_ready *rd);

/* The outstanding Ready's ops and hard state are durable, its commits
 * applied and its messages handed to the transport. */
void zk_zab_advance(struct zk_zab *z);

struct zk_zab_status {
    enum zk_zab_role role;
    uint32_t leader;           /* 0 if unknown                           */
    uint64_t epoch;            /* epoch of the leader followed / led     */
    int established;           /* leader: a quorum acked NEWLEADER;
                                  learner: synced and following           */
    struct zk_zab_hard_state hard;
    uint64_t last_zxid, persisted_zxid, commit_zxid, applied_zxid;
    uint64_t session;          /* own session id (0: none yet)            */
    int session_open;          /* own session open in the applied state   */
    uint64_t tick;
    uint64_t contact_tick;     /* the lease (zab_leader.c, "lease"): the
                                  latest of our own ticks whose message a
                                  quorum-backed leader acknowledged; no
                                  replica can expire our session before
                                  that message's send + sessionTimeout */
    uint64_t session_sent_tick; /* tick at which the first SESSION_OPEN of
                                  `session` was sent (0: not yet): the
                                  leader that commits it heard from us
                                  then (it counts a forwarded OPEN as a
                                  heartbeat), so the lease may run from
                                  it until the first echo arrives      */
    uint64_t n_diff, n_trunc, n_snap; /* syncs sent as leader, by mode   */
    uint64_t n_elections;      /* times this replica went LOOKING         */
    int leader_established;    /* leader: as established; learner: its
                                  leader said its epoch is established
                                  (ZK_ZAB_MF_ESTABLISHED) on this link,
                                  so the history it synced us to is
                                  final: an older-epoch entry not in it
                                  can never commit                       */
    int abstaining;            /* store empty while the ensemble has
                                  history: neither votes nor counts
                                  toward any quorum until its sync in a
                                  fresh epoch is durable (zab_elect.c)   */
};

/* Fills *st with a snapshot of the core's view. */
void zk_zab_status(const struct zk_zab *z, struct zk_zab_status *st);

/* One member as the core sees it, for status only (nothing the core
 * decides reads these fields). The link fields are the leader's view and
 * stay 0 unless this replica leads. */
struct zk_zab_member_status {
    uint32_t id;
    int observer;
    int self;
    int linked;          /* leader: in discovery, sync or broadcast with us */
    int synced;          /* leader: it processed NEWLEADER (ACKs say so)    */
    uint64_t acked_zxid; /* leader: highest zxid its ACKs reported durable
                            (voters) or received (observers), capped at
                            what was sent; 0 before it synced            */
    uint64_t sent_zxid;  /* leader: last zxid streamed to it             */
};

/* Fills *out for member i (index as in cfg.members). -EINVAL if i is not
 * a member index. */
int zk_zab_member_status(const struct zk_zab *z, uint32_t i,
                         struct zk_zab_member_status *out);

/* The embedder is receiving a long transfer from member `from` (the
 * snapshot that follows a SNAP, which it steps only once complete): for a
 * learner syncing with that leader this counts as hearing from it and as
 * progress of the sync, so syncLimit bounds silence and initLimit the
 * sync without progress, not the size of the transfer (as ZooKeeper's
 * initLimit read timeout does while a snapshot streams). Ignored in every
 * other case. A leader that still needs this learner for its quorum is
 * bounded by initLimit as before. */
void zk_zab_heard(struct zk_zab *z, uint32_t from);

/* The embedder's connection to member `id` was lost (a TCP reset or close:
 * typically the process died). A follower or observer whose leader that
 * is goes back to election at once instead of after syncLimit ticks of
 * silence; a LOOKING voter no longer waits for that member's vote before
 * it decides (see zab_elect.c). The member counts as reachable again as
 * soon as any message from it is stepped. Liveness only: nothing here
 * decides what is committed, and a wrong report costs at most an
 * election. Unknown ids and our own are ignored. */
void zk_zab_peer_down(struct zk_zab *z, uint32_t id);

/* Gives up this replica's own session (the runtime's lease ran out: it
 * has treated the session's ephemerals as lost). A new session id is taken
 * at once (status.session changes, session_open is 0) and opened as soon
 * as this replica serves again; its SESSION_OPEN closes the old session
 * everywhere, if the leader has not expired it already. */
void zk_zab_session_renew(struct zk_zab *z);

/* The applied session table (indexed like cfg.members); n_out = count. */
const uint64_t *zk_zab_sessions(const struct zk_zab *z, uint32_t *n_out);

const char *zk_zab_role_name(enum zk_zab_role r);

#endif /* ZK_ZAB_H */
