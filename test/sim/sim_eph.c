/*
 * sim_eph.c — ephemeral znodes under the simulator: the lock recipe's
 * clients on every replica, the model's ephemeral znodes, and the
 * invariants on them.
 *
 * Each replica has SIM_EPH_OWNERS clients that take SIM_EPH_NAMES names
 * the way the ephemeral lock recipe does through a mount: an exclusive
 * create of an ephemeral file (O_CREAT|O_EXCL in an "ephemeral"
 * directory: ZK_OP_CREATE with ZK_CREATE_EPHEMERAL) in the replica's own
 * session, and later its unlink (ZK_OP_DELETE of that inode: fs/ops.c
 * do_remove deletes the inode the name has in the replica's tree, the
 * holder's own node while it holds; a delete that commits after the name
 * was taken again finds another inode and fails, as store/apply.c's
 * target() does with op->ino).
 *
 * The model is small and apart from the store's code: the tree is one
 * slot per name (no paths, data or stat), and the rules are
 * store/apply.c's for what the recipe does (op_create, op_delete,
 * op_session_close), written again here because the store's are tied to
 * LMDB: a create of an existing name fails (-EEXIST); an ephemeral needs
 * an open session (ZK_ESESSION); a delete of another inode fails
 * (-ENOENT); the close of a session (or its replacement by the owner's
 * next SESSION_OPEN, as the driver's close_prev) deletes its ephemerals.
 * test_store's ephemerals_and_sessions checks those rules on the store.
 *
 * A client believes it holds a name from the moment its own replica
 * applied its create until it asks to delete it, while its replica is
 * alive, its session is the one it created in, the node is still in its
 * replica's tree, and the lease on the replica's own (drifting) clock
 * runs: what the holder's check through the mount answers (as the lock
 * owners of sim_lock.c). Checked:
 *  - after every step: no two clients, anywhere, believe they hold the
 *    same name; no replica's tree holds an ephemeral of a session that is
 *    not open in its session table (the ephemerals of a closed session
 *    are gone from every replica that applied the close);
 *  - at every create a replica applies: nobody still believes it holds
 *    a node of the name created before (the one removed to make room);
 *  - at every close a replica applies: no holder of an ephemeral it
 *    deletes still believes it holds it;
 *  - at every apply and snapshot install (sim_node.c): the replica's
 *    ephemerals are those of the committed history at that zxid (the
 *    first replica to apply it records them), so an install carries the
 *    ephemerals the sender's tree had.
 */
#include "sim_int.h"

#include <errno.h>
#include <stdlib.h>

/* An ephemeral payload: the client header (replica id, write number,
 * incarnation), the marker, then the op. */
#define EP_MARK     'E'
#define EP_OFF      16
#define EP_LEN      (EP_OFF + 3 + 8 + 8 + 8)
#define EP_CREATE   'C'
#define EP_DELETE   'D'

struct ep_op {
    uint8_t type, name;
    uint64_t session, owner, ino;
};

int sim_eph_payload(const struct zk_zab_entry *e)
{
    return e->type == ZK_ZAB_ENTRY_WRITE && e->len == EP_LEN &&
           e->data[EP_OFF] == EP_MARK;
}

static void ep_decode(const uint8_t *p, struct ep_op *o)
{
    p += EP_OFF + 1;
    o->type = p[0];
    o->name = p[1];
    o->session = zk_get_be64(p + 2);
    o->owner = zk_get_be64(p + 10);
    o->ino = zk_get_be64(p + 18);
}

uint64_t sim_eph_digest(const struct sim_model *m)
{
    uint64_t h = 0x6570680000000000ull;
    for (uint32_t k = 0; k < SIM_EPH_NAMES; k++) {
        const struct sim_eph *n = &m->eph[k];
        h = sim_mix(h, sim_mix(n->session, sim_mix(n->owner, n->ino)));
    }
    return h | 1;
}

/* Whether session is open in m's session table. */
static int open_in(const struct sim *s, const struct sim_model *m,
                   uint64_t session)
{
    uint32_t own = ZK_ZAB_SESSION_OWNER(session);
    return session && own >= 1 && own <= s->n &&
           m->sessions[own - 1] == session;
}

/* ====================================================================== */
/* clients                                                                */
/* ====================================================================== */

struct ep_req {
    struct sim *s;
    uint32_t i, o, name;
    uint64_t owner;
};

/* An answer with an error: the create may still commit; the client gives
 * it up (its apply then finds nobody waiting and deletes the node). */
static void ep_done(void *arg, int err, const struct zk_apply_result *res)
{
    struct ep_req *q = arg;
    (void)res;
    struct sim_eclient *c = &q->s->rep[q->i].ep[q->o][q->name];
    if (err && c->owner == q->owner && c->state == SIM_EP_ASKING)
        c->state = SIM_EP_IDLE;
    free(q);
}

static void propose(struct sim *s, struct sim_replica *r, uint32_t o,
                    const struct ep_op *op)
{
    if (!r->alive || !r->drv)
        return;
    uint8_t *buf = malloc(EP_LEN);
    struct ep_req *q = malloc(sizeof(*q));
    ZK_ASSERT(buf != NULL && q != NULL);
    sim_client_header(r, buf);
    uint8_t *p = buf + EP_OFF;
    p[0] = EP_MARK;
    p[1] = op->type;
    p[2] = op->name;
    zk_put_be64(p + 3, op->session);
    zk_put_be64(p + 11, op->owner);
    zk_put_be64(p + 19, op->ino);
    *q = (struct ep_req){ s, r->id - 1, o, op->name, op->owner };
    sim_log(s, r->id, "ephemeral client %u name %u: %s session %016llx "
            "ino %016llx", o, op->name, op->type == EP_CREATE ? "create" :
            "delete", (unsigned long long)op->session,
            (unsigned long long)op->ino);
    if (zk_driver_propose(r->drv, buf, EP_LEN, 0, ep_done, q) != 0) {
        free(buf);
        ep_done(q, -EAGAIN, NULL);
    }
}

static void delete_node(struct sim *s, struct sim_replica *r, uint32_t o,
                        uint32_t name, uint64_t session, uint64_t owner,
                        uint64_t ino)
{
    struct sim_eclient *c = &r->ep[o][name];
    if (c->owner == owner)
        c->state = SIM_EP_IDLE;        /* it stops relying on it at once */
    struct ep_op op = { EP_DELETE, (uint8_t)name, session, owner, ino };
    propose(s, r, o, &op);
}

/* Client o asks for name: an exclusive create of an ephemeral, as a new
 * owner, in the replica's session. */
static void take(struct sim *s, struct sim_replica *r, uint32_t o,
                 uint32_t name, uint64_t session)
{
    struct sim_eclient *c = &r->ep[o][name];
    c->gen++;
    c->state = SIM_EP_ASKING;
    c->session = session;
    c->owner = sim_owner_id(r->id, c->gen, o);
    struct ep_op op = { EP_CREATE, (uint8_t)name, session, c->owner, 0 };
    propose(s, r, o, &op);
}

/* A client acts every 5-50 ms: takes a name when idle, gives a held one
 * up now and then. */
void sim_on_eph(struct sim *s, uint32_t i)
{
    struct sim_replica *r = &s->rep[i];
    uint32_t o, name;
    uint64_t session = sim_client_turn(s, i, SIM_EV_EPH, SIM_EPH_OWNERS,
                                       SIM_EPH_NAMES, &o, &name);
    if (!session)
        return;
    struct sim_eclient *c = &r->ep[o][name];
    if (c->session != session && c->state != SIM_EP_IDLE)
        c->state = SIM_EP_IDLE;       /* its session was given up */
    if (c->state == SIM_EP_IDLE)
        take(s, r, o, name, session);
    else if (c->state == SIM_EP_HOLD && sim_range(s, 0, 99) < 60)
        delete_node(s, r, o, name, session, c->owner, c->ino);
}

int sim_eph_take(struct sim *s, uint32_t id, uint32_t name)
{
    struct sim_replica *r = &s->rep[id - 1];
    uint64_t session = r->alive && r->drv ? zk_driver_session(r->drv) : 0;
    if (name >= SIM_EPH_NAMES || !session)
        return -EINVAL;
    if (r->ep[0][name].state != SIM_EP_IDLE)
        return -EBUSY;
    s->dirty |= 1u << (id - 1);
    take(s, r, 0, name, session);
    return 0;
}

int sim_eph_holds(struct sim *s, uint32_t id, uint32_t name)
{
    if (name >= SIM_EPH_NAMES)
        return 0;
    const struct sim_replica *r = &s->rep[id - 1];
    const struct sim_eclient *c = &r->ep[0][name];
    const struct sim_eph *n = &r->model.eph[name];
    return c->state == SIM_EP_HOLD && n->owner == c->owner &&
           n->ino == c->ino && sim_relies(s, r, c->session);
}

void sim_eph_crashed(struct sim_replica *r)
{
    memset(r->ep, 0, sizeof(r->ep));
}

/* Replica r applied the create of owner (session) on name: ino if it
 * succeeded, 0 if not. Only the owner's own replica tells its client; a
 * node nobody waits for is deleted. */
static void answer(struct sim *s, struct sim_replica *r, uint64_t session,
                   uint64_t owner, uint32_t name, uint64_t ino)
{
    uint32_t rid, o;
    if (!sim_owner_of(s, session, owner, SIM_EPH_OWNERS, &rid, &o) ||
        rid != r->id)
        return;
    struct sim_eclient *c = &r->ep[o][name];
    uint64_t mine = r->drv ? zk_driver_session(r->drv) : 0;
    if (c->session == session && c->owner == owner &&
        c->state == SIM_EP_ASKING) {
        c->state = ino ? SIM_EP_HOLD : SIM_EP_IDLE;
        c->ino = ino;
        return;
    }
    if (ino && session == mine)
        delete_node(s, r, o, name, session, owner, ino);
}

/* ====================================================================== */
/* applying                                                               */
/* ====================================================================== */

/* Replica `by` applied a create of name at zxid, so the name was free
 * there: no client may still believe it holds a node of the name created
 * before (whose removal made room; a node created after is of a later
 * history than a lagging replica applies). */
static void check_taken(struct sim *s, const struct sim_replica *by,
                        uint32_t name, uint64_t owner, uint64_t zxid)
{
    for (uint32_t i = 0; i < s->n; i++) {
        const struct sim_replica *hr = &s->rep[i];
        for (uint32_t o = 0; o < SIM_EPH_OWNERS; o++) {
            const struct sim_eclient *c = &hr->ep[o][name];
            if (c->state != SIM_EP_HOLD || c->ino >= zxid ||
                !sim_relies(s, hr, c->session))
                continue;
            sim_fail(s, by->id, "name %u: created for %llx while its "
                     "holder %llx (session %016llx) on r%u still relies on "
                     "it (lease runs %lld us more on its clock)", name,
                     (unsigned long long)owner, (unsigned long long)c->owner,
                     (unsigned long long)c->session, hr->id,
                     (long long)(zk_driver_lease_until(hr->drv) -
                                 sim_local_ns(s, hr)) / 1000);
        }
    }
}

void sim_eph_apply(struct sim *s, struct sim_replica *r,
                   const struct zk_zab_entry *e)
{
    struct ep_op op;
    ep_decode(e->data, &op);
    if (op.name >= SIM_EPH_NAMES ||
        (op.type != EP_CREATE && op.type != EP_DELETE)) {
        sim_fail(s, r->id, "ephemeral op %u on unknown name %u", op.type,
                 op.name);
        return;
    }
    struct sim_eph *n = &r->model.eph[op.name];
    int rc;
    if (op.type == EP_CREATE) {
        /* store/apply.c op_create: the name first, then the session */
        rc = n->session ? -EEXIST :
             !open_in(s, &r->model, op.session) ? ZK_ESESSION : 0;
        if (rc == 0) {
            check_taken(s, r, op.name, op.owner, e->zxid);
            *n = (struct sim_eph){ op.session, op.owner, e->zxid };
        }
    } else {
        /* op_delete of an inode: another node of the name is not it */
        rc = !n->session || n->ino != op.ino ? -ENOENT : 0;
        if (rc == 0)
            memset(n, 0, sizeof(*n));
    }
    sim_log(s, r->id, "ephemeral apply %016llx name %u %s by %016llx/%llx: "
            "%d", (unsigned long long)e->zxid, op.name,
            op.type == EP_CREATE ? "create" : "delete",
            (unsigned long long)op.session, (unsigned long long)op.owner,
            rc);
    if (op.type == EP_CREATE)
        answer(s, r, op.session, op.owner, op.name, rc == 0 ? e->zxid : 0);
}

/* Replica `by` deletes node n with its session: its holder must not
 * rely on it any more (its own replica may not have applied the close
 * yet; what it reads there must already be stale). */
static void check_gone(struct sim *s, const struct sim_replica *by,
                       uint32_t name, const struct sim_eph *n)
{
    uint32_t rid, o;
    if (!sim_owner_of(s, n->session, n->owner, SIM_EPH_OWNERS, &rid, &o))
        return;
    const struct sim_replica *hr = &s->rep[rid - 1];
    const struct sim_eclient *c = &hr->ep[o][name];
    if (c->state == SIM_EP_HOLD && c->owner == n->owner &&
        c->ino == n->ino && sim_relies(s, hr, c->session))
        sim_fail(s, by->id, "name %u: ephemeral %016llx deleted with its "
                 "session %016llx while its holder on r%u relies on it "
                 "(lease runs %lld us more on its clock)", name,
                 (unsigned long long)n->ino, (unsigned long long)n->session,
                 rid, (long long)(zk_driver_lease_until(hr->drv) -
                                  sim_local_ns(s, hr)) / 1000);
}

/* Replica r applied the close of session (or its owner's next OPEN):
 * store/apply.c op_session_close deletes every ephemeral it owns. */
void sim_eph_close(struct sim *s, struct sim_replica *r, uint64_t session)
{
    for (uint32_t k = 0; k < SIM_EPH_NAMES; k++) {
        struct sim_eph *n = &r->model.eph[k];
        if (n->session == session) {
            sim_log(s, r->id, "ephemeral name %u of %016llx deleted with "
                    "its session", k, (unsigned long long)session);
            check_gone(s, r, k, n);
            memset(n, 0, sizeof(*n));
        }
    }
}

/* ====================================================================== */
/* every step                                                             */
/* ====================================================================== */

struct ebelief {
    uint32_t rid, o, name;
    const struct sim_eclient *c;
};

/* The tree of replica i holds only ephemerals of sessions open there. */
static void check_tree(struct sim *s, uint32_t i)
{
    const struct sim_replica *r = &s->rep[i];
    for (uint32_t k = 0; k < SIM_EPH_NAMES; k++) {
        const struct sim_eph *n = &r->model.eph[k];
        if (n->session && !open_in(s, &r->model, n->session))
            sim_fail(s, r->id, "name %u: ephemeral %016llx of session "
                     "%016llx, which is not open here", k,
                     (unsigned long long)n->ino,
                     (unsigned long long)n->session);
    }
}

/* After every step: no two clients believe they hold the same name. A
 * belief appears only at a step of its own replica (a create applied, a
 * session or lease taken); time only ends beliefs. So only pairs with a
 * replica the step touched are compared (as sim_lock_check). */
void sim_eph_check(struct sim *s, uint32_t touched)
{
    struct ebelief b[SIM_REPLICAS_MAX * SIM_EPH_OWNERS * SIM_EPH_NAMES];
    uint32_t nb = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        const struct sim_replica *r = &s->rep[i];
        if (touched & (1u << i))
            check_tree(s, i);
        for (uint32_t o = 0; o < SIM_EPH_OWNERS; o++)
            for (uint32_t k = 0; k < SIM_EPH_NAMES; k++) {
                const struct sim_eclient *c = &r->ep[o][k];
                const struct sim_eph *n = &r->model.eph[k];
                if (c->state == SIM_EP_HOLD && n->session == c->session &&
                    n->owner == c->owner && n->ino == c->ino &&
                    sim_view_relies(s, i, c->session))
                    b[nb++] = (struct ebelief){ r->id, o, k, c };
            }
    }
    for (uint32_t x = 0; x < nb; x++)
        for (uint32_t y = x + 1; y < nb; y++)
            if (b[x].name == b[y].name &&
                (touched & (1u << (b[x].rid - 1) | 1u << (b[y].rid - 1))))
                sim_fail(s, b[x].rid, "name %u: two clients believe they "
                         "hold it: %016llx/%llx (ino %016llx) on r%u and "
                         "%016llx/%llx (ino %016llx) on r%u", b[x].name,
                         (unsigned long long)b[x].c->session,
                         (unsigned long long)b[x].c->owner,
                         (unsigned long long)b[x].c->ino, b[x].rid,
                         (unsigned long long)b[y].c->session,
                         (unsigned long long)b[y].c->owner,
                         (unsigned long long)b[y].c->ino, b[y].rid);
}
