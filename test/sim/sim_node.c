/*
 * sim_node.c — what each simulated replica plugs into the real driver
 * (replica/driver.c, the code the daemon runs): its store is the
 * simulated disk (a Ready's batch runs at a disk event after a normal,
 * slow or failing fsync; entries, truncations, snapshot installs, hard
 * state, and commits applied to the model state machine), its transport
 * the simulated network (loss, duplication, delay that reorders, blocked
 * links), its clock simulated time. The driver does the rest: one Ready
 * at a time, persist before send, delivery, proposals and their
 * resubmission, the lease. Also the clients that submit writes through
 * the driver and see them acknowledged.
 *
 * Every apply is checked against the global committed history here (see
 * the invariants listed in sim.c).
 */
#include "sim_int.h"

#include <stdlib.h>

/* ====================================================================== */
/* the global committed history and the model state machine               */
/* ====================================================================== */

static uint64_t payload_hash(const struct zk_zab_entry *e)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint32_t i = 0; i < e->len; i++)
        h = (h ^ e->data[i]) * 0x100000001b3ull;
    h = sim_mix(h, (uint64_t)e->type << 40 | (uint64_t)e->origin << 32);
    return sim_mix(h, e->req_id) | 1;
}

/* A write's own bytes (the client's id, write number and incarnation
 * lead them): the same write proposed twice has two request ids but the
 * same data hash. */
static uint64_t data_hash(const struct zk_zab_entry *e)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint32_t i = 0; i < e->len; i++)
        h = (h ^ e->data[i]) * 0x100000001b3ull;
    return h | 1;
}

static int set_add(struct sim_set *set, uint64_t x)
{
    if (set->n * 2 >= set->cap) {
        struct sim_set big = { calloc(set->cap ? set->cap * 2 : 1024,
                                      sizeof(uint64_t)), 0,
                               set->cap ? set->cap * 2 : 1024 };
        ZK_ASSERT(big.v != NULL);
        for (size_t i = 0; i < set->cap; i++)
            if (set->v[i])
                set_add(&big, set->v[i]);
        free(set->v);
        *set = big;
    }
    size_t i = x & (set->cap - 1);
    while (set->v[i]) {
        if (set->v[i] == x)
            return 0;
        i = (i + 1) & (set->cap - 1);
    }
    set->v[i] = x;
    set->n++;
    return 1;
}

static long hist_find(const struct sim *s, uint64_t zxid)
{
    size_t lo = 0, hi = s->nhist;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->hist[mid].zxid < zxid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->nhist && s->hist[lo].zxid == zxid ? (long)lo : -1;
}

static long disk_find(const struct sim_replica *r, uint64_t zxid);

static int ghost_held(const struct sim_replica *r, uint64_t zxid)
{
    for (size_t k = 0; k < r->nghost; k++)
        if (r->ghost[k] == zxid)
            return 1;
    return 0;
}

/* The first apply of e anywhere: e must be on the disks of a quorum of
 * voters by then (a commit counts only durable acknowledgements; this is
 * what lets a leader send PROPOSE before its own copy is durable). */
static void check_quorum_durable(struct sim *s, struct sim_replica *r,
                                 const struct zk_zab_entry *e)
{
    uint32_t voters = 0, have = 0;

    for (uint32_t i = 0; i < s->n; i++) {
        if (s->rep[i].observer)
            continue;
        voters++;
        if (disk_find(&s->rep[i], e->zxid) >= 0 ||
            ghost_held(&s->rep[i], e->zxid))
            have++;
    }
    if (have < voters / 2 + 1)
        sim_fail(s, r->id, "%016llx applied while on %u of %u voters' "
                 "disks (not a quorum)", (unsigned long long)e->zxid,
                 have, voters);
}

/* Checks that replica r applying e extends the global history. */
static void hist_apply(struct sim *s, struct sim_replica *r,
                       const struct zk_zab_entry *e, uint64_t ph,
                       uint64_t chain)
{
    long k = hist_find(s, e->zxid);
    if (k >= 0) {
        if (s->hist[k].ph != ph)
            sim_fail(s, r->id, "different transaction applied at %016llx",
                     (unsigned long long)e->zxid);
        else if (s->hist[k].chain != chain)
            sim_fail(s, r->id, "history diverged before %016llx",
                     (unsigned long long)e->zxid);
        return;
    }
    uint64_t last_chain = s->nhist ? s->hist[s->nhist - 1].chain : 0;
    uint64_t last = s->nhist ? s->hist[s->nhist - 1].zxid : 0;
    if (e->zxid < last || r->model.chain != last_chain) {
        sim_fail(s, r->id, "applied %016llx, not in the committed history "
                 "(fork or lost commit; history ends at %016llx)",
                 (unsigned long long)e->zxid, (unsigned long long)last);
        return;
    }
    if (s->nhist == s->caphist) {
        s->caphist = s->caphist ? 2 * s->caphist : 1024;
        s->hist = realloc(s->hist, s->caphist * sizeof(*s->hist));
        ZK_ASSERT(s->hist != NULL);
    }
    s->hist[s->nhist++] = (struct sim_hist){ e->zxid, ph, chain, 0 };
    check_quorum_durable(s, r, e);
    if (e->type == ZK_ZAB_ENTRY_WRITE && !set_add(&s->writes, data_hash(e)))
        sim_fail(s, r->id, "write committed twice (again at %016llx)",
                 (unsigned long long)e->zxid);
}

/* The session an OPEN from its member replaces (0: none). */
static uint64_t model_replaced(const struct sim_model *m,
                               const struct zk_zab_entry *e)
{
    if (e->type != ZK_ZAB_ENTRY_SESSION_OPEN || e->len != 8 ||
        e->origin < 1 || e->origin > ZK_ZAB_MEMBERS_MAX)
        return 0;
    uint64_t prev = m->sessions[e->origin - 1];
    return prev != zk_get_be64(e->data) ? prev : 0;
}

static void model_sessions(struct sim *s, struct sim_replica *r,
                           const struct zk_zab_entry *e)
{
    struct sim_model *m = &r->model;
    if (e->type == ZK_ZAB_ENTRY_WRITE || e->len != 8)
        return;
    uint64_t sid = zk_get_be64(e->data);
    if (e->type == ZK_ZAB_ENTRY_SESSION_OPEN) {
        uint64_t prev = model_replaced(m, e);
        if (prev) {
            sim_lock_close(s, r, prev, e->zxid);
            sim_eph_close(s, r, prev);
        }
        if (e->origin >= 1 && e->origin <= ZK_ZAB_MEMBERS_MAX)
            m->sessions[e->origin - 1] = sid;
        return;
    }
    uint32_t owner = ZK_ZAB_SESSION_OWNER(sid);
    m->closes++;
    if (owner >= 1 && owner <= ZK_ZAB_MEMBERS_MAX &&
        m->sessions[owner - 1] == sid)
        m->sessions[owner - 1] = 0;
    sim_lock_close(s, r, sid, e->zxid);
    sim_eph_close(s, r, sid);
}

uint64_t sim_disk_last(const struct sim_replica *r)
{
    return r->nlog ? r->log[r->nlog - 1].zxid : r->model.applied;
}

int sim_store_behind(const struct sim_replica *r)
{
    return !r->observer &&
           (r->hard.accepted_epoch < r->mark_hard.accepted_epoch ||
            r->hard.current_epoch < r->mark_hard.current_epoch ||
            sim_disk_last(r) < r->mark_last);
}

static long disk_find(const struct sim_replica *r, uint64_t zxid)
{
    size_t lo = 0, hi = r->nlog;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->log[mid].zxid < zxid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < r->nlog && r->log[lo].zxid == zxid ? (long)lo : -1;
}

static void client_ack(struct sim *s, struct sim_replica *r, uint64_t wseq)
{
    size_t lo = r->headpend, hi = r->npend;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->pend[mid].wseq < wseq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo >= r->npend || r->pend[lo].wseq != wseq || r->pend[lo].acked)
        return;
    r->pend[lo].acked = 1;
    r->acked++;
    if (s->tail_start && r->pend[lo].submit_us >= s->tail_start)
        r->tail_acked++;
    while (r->headpend < r->npend && r->pend[r->headpend].acked)
        r->headpend++;
}

/* The ephemerals of r after it applied or installed zxid must be the
 * committed history's there: the first replica to apply it records
 * them (sim_eph.c). */
static void hist_tree(struct sim *s, struct sim_replica *r, uint64_t zxid,
                      const char *how)
{
    long k = hist_find(s, zxid);
    if (k < 0)
        return;
    uint64_t t = sim_eph_digest(&r->model);
    if (!s->hist[k].tree)
        s->hist[k].tree = t;
    else if (s->hist[k].tree != t)
        sim_fail(s, r->id, "%s %016llx: its ephemerals are not those of the "
                 "committed history there", how, (unsigned long long)zxid);
}

static void apply(struct sim *s, struct sim_replica *r,
                  const struct zk_zab_entry *e, struct sim_res *out)
{
    if (e->zxid <= r->model.applied) {
        sim_fail(s, r->id, "applied %016llx again (already at %016llx)",
                 (unsigned long long)e->zxid,
                 (unsigned long long)r->model.applied);
        return;
    }
    if (disk_find(r, e->zxid) < 0)
        sim_fail(s, r->id, "applied %016llx before it was on disk",
                 (unsigned long long)e->zxid);
    uint64_t ph = payload_hash(e);
    uint64_t chain = sim_mix(r->model.chain, sim_mix(e->zxid, ph));
    if (e->type != ZK_ZAB_ENTRY_WRITE && e->len == 8)
        sim_log(s, r->id, "apply %016llx type %u origin %u session %016llx",
                (unsigned long long)e->zxid, e->type, e->origin,
                (unsigned long long)zk_get_be64(e->data));
    else
        sim_log(s, r->id, "apply %016llx type %u origin %u req %llu hash "
                "%016llx data %016llx", (unsigned long long)e->zxid, e->type,
                e->origin, (unsigned long long)e->req_id,
                (unsigned long long)ph, (unsigned long long)data_hash(e));
    hist_apply(s, r, e, ph, chain);
    r->model.chain = chain;
    r->model.applied = e->zxid;
    r->model.count++;
    if (e->type == ZK_ZAB_ENTRY_SESSION_CLOSE)
        sim_lease_check_close(s, r, e);
    if (e->type == ZK_ZAB_ENTRY_SESSION_OPEN && e->len == 8 &&
        ZK_ZAB_SESSION_OWNER(zk_get_be64(e->data)) == r->id)
        r->own_open_zxid = e->zxid;
    model_sessions(s, r, e);
    if (sim_lock_payload(e))
        sim_lock_apply(s, r, e);
    if (out && sim_reg_payload(e))
        sim_reg_apply(s, r, e, out);
    if (sim_eph_payload(e))
        sim_eph_apply(s, r, e);
    hist_tree(s, r, e->zxid, "applying");
}

/* ====================================================================== */
/* the disk                                                               */
/* ====================================================================== */

static void install(struct sim *s, struct sim_replica *r, uint64_t zxid)
{
    const struct sim_model *m = NULL;
    for (uint32_t k = r->nsnap; k-- > 0;)
        if (r->snaps[k].applied == zxid) {
            m = &r->snaps[k];
            break;
        }
    if (!m) {
        sim_fail(s, r->id, "INSTALL %016llx without a matching snapshot",
                 (unsigned long long)zxid);
        return;
    }
    if (zxid < r->model.applied)
        sim_fail(s, r->id, "snapshot %016llx would move back from %016llx",
                 (unsigned long long)zxid,
                 (unsigned long long)r->model.applied);
    long k = hist_find(s, zxid);
    uint64_t chain = k >= 0 ? s->hist[k].chain : 0;
    if ((zxid && k < 0) || chain != m->chain)
        sim_fail(s, r->id, "snapshot %016llx is not the committed state",
                 (unsigned long long)zxid);
    r->model = *m;
    hist_tree(s, r, zxid, "installing");
    for (size_t i = 0; i < r->nlog; i++)
        free(r->log[i].data);
    r->nlog = 0;
}

static void truncate_log(struct sim *s, struct sim_replica *r, uint64_t zxid)
{
    if (zxid < r->model.applied)
        sim_fail(s, r->id, "TRUNC to %016llx below applied %016llx",
                 (unsigned long long)zxid,
                 (unsigned long long)r->model.applied);
    while (r->nlog && r->log[r->nlog - 1].zxid > zxid)
        free(r->log[--r->nlog].data);
}

static void append(struct sim *s, struct sim_replica *r,
                   const struct zk_zab_entry *e)
{
    uint64_t last = r->nlog ? r->log[r->nlog - 1].zxid : 0;
    if (e->zxid <= last || e->zxid <= r->model.applied)
        sim_fail(s, r->id, "append %016llx after %016llx",
                 (unsigned long long)e->zxid, (unsigned long long)last);
    if (r->nlog == r->caplog) {
        r->caplog = r->caplog ? 2 * r->caplog : 256;
        r->log = realloc(r->log, r->caplog * sizeof(*r->log));
        ZK_ASSERT(r->log != NULL);
    }
    struct sim_ent *x = &r->log[r->nlog++];
    x->zxid = e->zxid; x->req_id = e->req_id; x->origin = e->origin;
    x->type = e->type; x->len = e->len;
    x->data = malloc(e->len ? e->len : 1);
    ZK_ASSERT(x->data != NULL);
    memcpy(x->data, e->data, e->len);
}

static void compact(struct sim_replica *r, uint64_t upto)
{
    if (r->nlog < 2 * SIM_DISK_LOG_KEEP)
        return;
    size_t drop = 0;
    while (drop < r->nlog - SIM_DISK_LOG_KEEP &&
           r->log[drop].zxid <= upto)
        free(r->log[drop++].data);
    memmove(r->log, r->log + drop, (r->nlog - drop) * sizeof(*r->log));
    r->nlog -= drop;
}

/* ====================================================================== */
/* the driver's store: the simulated disk                                 */
/* ====================================================================== */

/* The result every applied commit but a register op's hands to the
 * driver's callbacks (those clients only need to know that it
 * committed); a register op's is its own (sim_lin.c). */
static struct sim_res sim_result;

/* Whether the batch being written syncs LMDB whole: it holds the hard
 * state or an install (store/batch.c syncs a batch with meta keys or an
 * install whole even when asked for a lazy commit, as an observer's
 * every batch is). */
static int lmdb_synced(const struct sim_replica *r)
{
    return r->b_durable;
}

static int st_begin(void *arg, void **batch)
{
    struct sim_replica *r = arg;
    *batch = arg;
    r->b_lmdb = r->b_durable = 0;
    r->pre = (struct sim_undo){r->hard, r->incarnation, r->model, 1};
    return 0;
}

static int st_append(void *arg, void *batch, const struct zk_zab_entry *en)
{
    struct sim_replica *r = arg;
    (void)batch;
    if (r->log_only == 2)
        return 0;
    sim_log(r->s, r->id, "disk op %u %016llx", ZK_ZAB_OP_APPEND,
            (unsigned long long)en->zxid);
    append(r->s, r, en);
    return 0;
}

static int st_truncate(void *arg, void *batch, uint64_t zxid)
{
    struct sim_replica *r = arg;
    (void)batch;
    if (r->log_only == 2)
        return 0;
    sim_log(r->s, r->id, "disk op %u %016llx", ZK_ZAB_OP_TRUNCATE,
            (unsigned long long)zxid);
    truncate_log(r->s, r, zxid);
    return 0;
}

static int st_install(void *arg, void *batch, const struct zk_zab_op *op,
                      uint64_t sessions[ZK_ZAB_MEMBERS_MAX])
{
    struct sim_replica *r = arg;
    (void)batch;
    r->b_lmdb = r->b_durable = 1;
    if (r->log_only) {           /* its log is a new generation, lost too */
        r->log_only = 2;
        memcpy(sessions, r->model.sessions, sizeof(r->model.sessions));
        return 0;
    }
    sim_log(r->s, r->id, "disk op %u %016llx", op->kind,
            (unsigned long long)op->zxid);
    install(r->s, r, op->zxid);
    memcpy(sessions, r->model.sessions, sizeof(r->model.sessions));
    return 0;
}

static int st_hard_state(void *arg, void *batch,
                         const struct zk_zab_hard_state *hs)
{
    struct sim_replica *r = arg;
    (void)batch;
    r->b_lmdb = r->b_durable = 1;
    if (r->log_only)
        return 0;
    if (hs->accepted_epoch < r->hard.accepted_epoch ||
        hs->current_epoch < r->hard.current_epoch ||
        hs->current_epoch > hs->accepted_epoch)
        sim_fail(r->s, r->id, "hard state went back or is inconsistent");
    if (r->ghost_acc && hs->accepted_epoch != r->hard.accepted_epoch) {
        if (hs->accepted_epoch < r->ghost_acc)
            sim_fail(r->s, r->id, "%s: accepts epoch %llu, below the "
                     "epoch %llu it had accepted before (a forgotten "
                     "promise)", r->hard.accepted_epoch ? "lost writes"
                     : "wiped", (unsigned long long)hs->accepted_epoch,
                     (unsigned long long)r->ghost_acc);
        r->ghost_acc = 0;
    }
    r->hard = *hs;
    if (hs->incarnation > r->incarnation)   /* learnt after a wipe */
        r->incarnation = hs->incarnation;
    return 0;
}

/* The model's session table follows OPEN and CLOSE entries itself (an
 * OPEN replaces the owner's session): the driver's close_prev must name
 * the session the model replaces. */
static int st_apply(void *arg, void *batch, const struct zk_zab_entry *en,
                    uint64_t close_prev, struct zk_apply_result **res)
{
    struct sim_replica *r = arg;
    (void)batch;
    r->b_lmdb = 1;
    if (r->log_only) {
        *res = (struct zk_apply_result *)&sim_result;
        return 0;
    }
    if (close_prev != model_replaced(&r->model, en))
        sim_fail(r->s, r->id, "driver: close_prev %016llx, the model "
                 "replaces %016llx", (unsigned long long)close_prev,
                 (unsigned long long)model_replaced(&r->model, en));
    struct sim_res *out = &sim_result;
    if (sim_reg_payload(en)) {
        out = malloc(sizeof(*out));
        ZK_ASSERT(out != NULL);
    }
    apply(r->s, r, en, out == &sim_result ? NULL : out);
    *res = (struct zk_apply_result *)out;
    return 0;
}

/* The log keeps every entry above what LMDB holds durably: the store
 * trims it only up to its last checkpoint (store/ckpt.c). After a lazy
 * commit that is the checkpoint before it (r->undo) or, when the state
 * before the batch was one, that state; after a synced one, this. */
static int st_commit(void *arg, void *batch)
{
    struct sim_replica *r = arg;
    (void)batch;
    uint64_t keep_above = r->model.applied;
    if (r->undo.valid)
        keep_above = r->undo.model.applied;
    else if (r->b_lmdb && !lmdb_synced(r))
        keep_above = r->pre.model.applied;
    if (r->b_lmdb && lmdb_synced(r))
        keep_above = r->model.applied;
    compact(r, keep_above);
    return 0;
}

static void st_abort(void *arg, void *batch)
{
    (void)arg;
    (void)batch;
}

static void st_result_free(void *arg, struct zk_apply_result *res)
{
    (void)arg;
    if ((struct sim_res *)res != &sim_result)
        free(res);
}

/* The Ready's batch runs at a disk event, after a normal or slow fsync. */
static void st_schedule(void *arg)
{
    struct sim_replica *r = arg;
    struct sim *s = r->s;
    uint64_t d = sim_range(s, 20, 200);

    if (s->now < r->slow_until)
        d = sim_range(s, 5000, 50000);
    r->busy = 1;
    sim_push(s, s->now + d, SIM_EV_DISK, r->id - 1, NULL);
}

static void send_msg(struct sim *s, struct sim_replica *r,
                     const struct zk_zab_msg *m);
static int st_write_here(void *arg, const struct zk_driver_batch_size *sz,
                         int *err);

static void tp_send(void *arg, const struct zk_zab_msg *m)
{
    struct sim_replica *r = arg;
    send_msg(r->s, r, m);
}

uint64_t sim_local_ns(const struct sim *s, const struct sim_replica *r)
{
    return s->now * r->rate_ppm / 1000u;
}

uint64_t sim_real_us(const struct sim_replica *r, uint64_t local_us)
{
    return local_us * 1000000u / r->rate_ppm;
}

static uint64_t clock_ns(void *arg)
{
    struct sim_replica *r = arg;
    return sim_local_ns(r->s, r);
}

static void drv_log(void *arg, enum zk_log_level level, const char *line)
{
    struct sim_replica *r = arg;
    (void)level;
    sim_log(r->s, r->id, "driver: %s", line);
}

void sim_driver_wire(struct sim *s, struct sim_replica *r,
                     struct zk_driver_config *dc)
{
    r->s = s;
    dc->store = (struct zk_driver_store){
        .arg = r, .begin = st_begin, .append = st_append,
        .truncate = st_truncate, .install = st_install,
        .hard_state = st_hard_state, .apply = st_apply,
        .commit = st_commit, .abort = st_abort,
        .result_free = st_result_free, .schedule = st_schedule,
        .write_here = st_write_here,
    };
    dc->send = tp_send;
    dc->send_arg = r;
    dc->now_ns = clock_ns;
    dc->clock_arg = r;
    if (s->o.verbose) {             /* the driver formats only for a log */
        dc->log = drv_log;
        dc->log_arg = r;
    }
    dc->tick_ms = SIM_TICK_US / 1000;
    dc->session_timeout_ms = SIM_SESSION_TIMEOUT * SIM_TICK_US / 1000;
    /* The daemon's rule (ens_start.c): 3 x syncLimit, at least 1 s. */
    dc->prop_wait_ms = 3ull * SIM_SYNC_LIMIT * SIM_TICK_US / 1000;
    if (dc->prop_wait_ms < 1000)
        dc->prop_wait_ms = 1000;
}

const struct zk_zab *sim_core(const struct sim_replica *r)
{
    return zk_driver_core(r->drv);
}

/* ====================================================================== */
/* the network                                                            */
/* ====================================================================== */

void sim_pkt_free(struct sim_pkt *p)
{
    if (p) {
        free(p->buf);
        free(p->snap);
        free(p);
    }
}

/* Delivery time of a message on link a->b. Links are FIFO like the TCP
 * connections Zab runs on, except for a message picked to be reordered:
 * it is delayed past later ones (and duplicates are never ordered). */
static uint64_t net_time(struct sim *s, uint32_t a, uint32_t b, int fifo)
{
    uint64_t t = s->now + sim_range(s, s->delay_min_us, s->delay_max_us);
    if (s->faults_on && sim_range(s, 0, 999) < s->slow_pm)
        return t + sim_range(s, 1000, 30000);
    if (!fifo)
        return t;
    if (t < s->link_last[a][b])
        t = s->link_last[a][b];
    s->link_last[a][b] = t;
    return t;
}

static void send_msg(struct sim *s, struct sim_replica *r,
                     const struct zk_zab_msg *m)
{
    uint32_t to = m->to - 1;
    struct sim_pkt *p = malloc(sizeof(*p));
    ZK_ASSERT(p != NULL);
    p->snap = NULL;
    p->from = r->id - 1;
    p->to = to;
    p->len = zk_zab_msg_encoded_size(m);
    p->buf = malloc(p->len);
    ZK_ASSERT(p->buf != NULL);
    size_t len;
    int rc = zk_zab_msg_encode(m, p->buf, p->len, &len);
    ZK_ASSERT(rc == 0 && len == p->len);
    if (m->type == ZK_ZAB_MSG_SNAP) {
        if (r->model.applied != m->zxid)
            sim_fail(s, r->id, "SNAP at %016llx but state is at %016llx",
                     (unsigned long long)m->zxid,
                     (unsigned long long)r->model.applied);
        p->snap = malloc(sizeof(*p->snap));
        ZK_ASSERT(p->snap != NULL);
        *p->snap = r->model;
    }
    if (s->blocked[p->from][to] ||
        (s->faults_on && sim_range(s, 0, 999) < s->drop_pm)) {
        sim_pkt_free(p);
        return;
    }
    if (s->faults_on && sim_range(s, 0, 999) < s->dup_pm) {
        struct sim_pkt *q = malloc(sizeof(*q));
        ZK_ASSERT(q != NULL);
        *q = *p;
        q->buf = malloc(p->len);
        ZK_ASSERT(q->buf != NULL);
        memcpy(q->buf, p->buf, p->len);
        if (p->snap) {
            q->snap = malloc(sizeof(*q->snap));
            ZK_ASSERT(q->snap != NULL);
            *q->snap = *p->snap;
        }
        sim_push(s, net_time(s, q->from, q->to, 0), SIM_EV_MSG,
                 SIM_REPLICAS_MAX, q);
    }
    sim_push(s, net_time(s, p->from, to, 1), SIM_EV_MSG, SIM_REPLICAS_MAX, p);
}

/* The connection from `from` to `to` is reset (its process died, or the
 * connection was dropped): `to` hears of it after what was already on
 * the link (FIFO), unless the link is cut (no RST crosses a partition). */
void sim_send_reset(struct sim *s, uint32_t from, uint32_t to)
{
    if (from == to || s->blocked[from][to])
        return;
    struct sim_pkt *p = calloc(1, sizeof(*p));
    ZK_ASSERT(p != NULL);
    p->from = from;
    p->to = to;
    sim_push(s, net_time(s, from, to, 1), SIM_EV_MSG, SIM_REPLICAS_MAX, p);
}

void sim_deliver(struct sim *s, struct sim_pkt *p)
{
    struct sim_replica *r = &s->rep[p->to];
    if (!r->alive || s->blocked[p->from][p->to]) {
        sim_pkt_free(p);
        return;
    }
    if (!p->buf) {                        /* sim_send_reset */
        sim_log(s, r->id, "connection to r%u reset", p->from + 1);
        zk_driver_peer_down(r->drv, p->from + 1);
        sim_pkt_free(p);
        return;
    }
    static struct zk_zab_entry ents[ZK_ZAB_MSG_ENTRIES_MAX];
    struct zk_zab_msg m;
    int rc = zk_zab_msg_decode(p->buf, p->len, &m, ents, ZK_ZAB_MSG_ENTRIES_MAX);
    if (rc) {
        sim_fail(s, r->id, "decode failed: %s", zk_strerror(rc));
        sim_pkt_free(p);
        return;
    }
    if (p->snap) {
        if (r->nsnap == SIM_SNAPS_MAX) {
            memmove(r->snaps, r->snaps + 1,
                    (SIM_SNAPS_MAX - 1) * sizeof(r->snaps[0]));
            r->nsnap--;
        }
        r->snaps[r->nsnap++] = *p->snap;
    }
    uint32_t to = p->to;
    if (s->o.verbose > 1)
        sim_log(s, r->id, "recv %s from r%u link %llx seq %llu epoch %llu "
                "zxid %016llx n %u", zk_zab_msg_name(m.type), m.from,
                (unsigned long long)m.link, (unsigned long long)m.seq,
                (unsigned long long)m.epoch, (unsigned long long)m.zxid,
                m.n_entries);
    zk_driver_step(r->drv, &m);
    sim_pkt_free(p);
    zk_driver_pump(s->rep[to].drv);
}

/* ====================================================================== */
/* the disk event and the tick                                            */
/* ====================================================================== */

/* A deep copy of r's log (to put it back when a batch cut by the power
 * turns out to hold an install). */
static struct sim_ent *log_copy(const struct sim_replica *r)
{
    struct sim_ent *c = malloc((r->nlog ? r->nlog : 1) * sizeof(*c));
    ZK_ASSERT(c != NULL);
    for (size_t k = 0; k < r->nlog; k++) {
        c[k] = r->log[k];
        c[k].data = malloc(c[k].len ? c[k].len : 1);
        ZK_ASSERT(c[k].data != NULL);
        memcpy(c[k].data, r->log[k].data, c[k].len);
    }
    return c;
}

/* The batch on its way to disk reaches it only in part: its log records
 * were durable, its LMDB part not (an install's log is a new generation
 * that only the LMDB commit makes current: nothing then). */
static void cut_batch(struct sim *s, struct sim_replica *r)
{
    size_t n = r->nlog;
    struct sim_ent *copy = log_copy(r);
    r->log_only = 1;
    r->busy = 0;
    (void)zk_driver_write(r->drv);
    int voided = r->log_only == 2;
    r->log_only = 0;
    if (voided) {
        for (size_t k = 0; k < r->nlog; k++)
            free(r->log[k].data);
        free(r->log);
        r->log = copy;
        r->nlog = r->caplog = n;
    } else {
        for (size_t k = 0; k < n; k++)
            free(copy[k].data);
        free(copy);
    }
    sim_log(s, r->id, "power cut: the batch's log part was durable, "
            "its LMDB part lost%s", voided ? " (an install: nothing)" : "");
}

/* Writes the taken Ready's batch and keeps the disk's bookkeeping. */
static int disk_write(struct sim *s, struct sim_replica *r)
{
    int rc = zk_driver_write(r->drv);
    /* The store's checkpoints (store/ckpt.c): a synced commit is one; a
     * lazy commit leaves the last one where it was (the state before
     * it, when that was one); the background thread takes one now and
     * then (here: at a quarter of the disk events). A power cut goes
     * back to the last one (sim_power_cut). */
    if (rc == 0 && r->b_lmdb && lmdb_synced(r))
        r->undo.valid = 0;
    else if (rc == 0 && r->b_lmdb && !r->undo.valid)
        r->undo = r->pre;
    /* (A hash, not a draw from the run's generator: the runs' course
     * stays what it was before checkpoints, and so what seeds find.) */
    if (rc == 0 &&
        sim_mix(s->o.seed ^ ((uint64_t)r->id << 48), r->model.count) % 4 == 0)
        r->undo.valid = 0;
    if (rc == 0) {
        /* The marker follows the store once the batch is durable, except
         * while the core abstains (a store behind it stays behind it
         * until the core synced in a fresh epoch). */
        struct zk_zab_status st;
        zk_zab_status(sim_core(r), &st);
        if (!st.abstaining) {
            r->mark_hard = r->hard;
            r->mark_last = sim_disk_last(r);
        }
    }
    return rc;
}

/* A batch written on the driver's thread, as the daemon writes them
 * (ens_driver.c, st_write_here): at once, with no disk event in between.
 * An observer's, or a voter's that has no message to send while it is
 * written (a follower's log append with its ACK, an apply): the daemon
 * does that only while its loop is idle and its flushes are fast, which
 * the simulator stands in for with a hash, so that both paths run (a
 * quarter of an observer's batches and three quarters of a voter's go to
 * the disk event). Not when a fault is staged for its next write (those
 * act at a disk event). */
static int st_write_here(void *arg, const struct zk_driver_batch_size *sz,
                         int *err)
{
    struct sim_replica *r = arg;
    struct sim *s = r->s;
    uint64_t h = sim_mix(s->o.seed ^ ((uint64_t)r->id << 40) ^ 0x4865726555ull,
                         r->model.count);

    if ((!r->observer && (sz->early || h % 2 == 0)) || r->fail_next ||
        r->crash_after_write || h % 4 == 1)
        return 0;
    *err = disk_write(s, r);
    return 1;
}

/* The scheduled Ready's batch: a failing disk is fail-stop (the process
 * dies and restarts from what its disk holds). */
void sim_on_disk(struct sim *s, uint32_t i)
{
    struct sim_replica *r = &s->rep[i];
    if (!r->alive || !r->busy)
        return;
    if (r->fail_next) {
        sim_log(s, r->id, "disk write failed: fail-stop");
        sim_kill(s, r->id);
        sim_push(s, s->now + sim_range(s, 50000, 300000), SIM_EV_RESTART, i,
                 NULL);
        return;
    }
    if (r->crash_after_write == 2) {
        /* A power cut while the batch is on its way to disk: and the
         * tree back to the last checkpoint, as any power cut. */
        cut_batch(s, r);
        sim_power_cut(s, r);
        sim_crash(s, r->id);
        sim_push(s, s->now + sim_range(s, 50000, 300000), SIM_EV_RESTART, i,
                 NULL);
        return;
    }
    r->busy = 0;
    int rc = disk_write(s, r);
    if (r->crash_after_write) {
        /* Durable, but nothing of the Ready was sent, delivered or
         * answered: the process died between fsync and the rest. */
        sim_log(s, r->id, "crash after the write was durable (rc %d)", rc);
        sim_kill(s, r->id);
        sim_push(s, s->now + sim_range(s, 50000, 300000), SIM_EV_RESTART, i,
                 NULL);
        return;
    }
    zk_driver_written(r->drv, rc);
}

void sim_power_cut(struct sim *s, struct sim_replica *r)
{
    if (!r->alive)
        return;
    if (r->busy && sim_range(s, 0, 1))
        cut_batch(s, r);
    if (r->undo.valid && sim_range(s, 0, 1)) {
        sim_log(s, r->id, "power cut: the tree back to its last "
                "checkpoint: applied %016llx (from %016llx)",
                (unsigned long long)r->undo.model.applied,
                (unsigned long long)r->model.applied);
        r->hard = r->undo.hard;
        r->incarnation = r->undo.incarnation;
        r->model = r->undo.model;
    }
    r->undo.valid = 0;
}

void sim_on_tick(struct sim *s, uint32_t i)
{
    struct sim_replica *r = &s->rep[i];
    if (!r->alive)
        return;
    zk_driver_tick(r->drv);
    sim_push(s, s->now + sim_real_us(r, SIM_TICK_US), SIM_EV_TICK, i, NULL);
}

/* ====================================================================== */
/* clients                                                                */
/* ====================================================================== */

/* One client write: acknowledged when the driver answers it (committed
 * and applied here); an error (deadline, shutdown, crash) is a write the
 * client gave up on. */
struct sim_wreq {
    struct sim *s;
    uint32_t i;
    uint64_t wseq;
};

static void client_done(void *arg, int err,
                        const struct zk_apply_result *res)
{
    struct sim_wreq *w = arg;
    (void)res;
    if (err == 0)
        client_ack(w->s, &w->s->rep[w->i], w->wseq);
    free(w);
}

void sim_client_header(struct sim_replica *r, uint8_t *buf)
{
    r->wseq++;
    zk_put_be32(buf, r->id);
    zk_put_be64(buf + 4, r->wseq);
    zk_put_be32(buf + 12, r->incarnation);
}

int sim_write(struct sim *s, uint32_t id)
{
    struct sim_replica *r = &s->rep[id - 1];
    if (!r->alive)
        return ZK_ENOTREADY;
    s->dirty |= 1u << (id - 1);
    uint32_t len = (uint32_t)sim_range(s, 16, 96);
    uint8_t *buf = malloc(len);
    struct sim_wreq *w = malloc(sizeof(*w));
    ZK_ASSERT(buf != NULL && w != NULL);
    sim_client_header(r, buf);
    for (uint32_t k = 16; k < len; k++)
        buf[k] = (uint8_t)sim_rand(s);
    if (len > 16)
        buf[16] = 0;          /* not a lock or ephemeral op (sim_lock.c) */
    *w = (struct sim_wreq){ s, id - 1, r->wseq };
    int rc = zk_driver_propose(r->drv, buf, len, 0, client_done, w);
    if (rc) {
        free(buf);
        free(w);
        return rc;
    }
    if (r->npend - r->headpend >= SIM_PENDING_MAX)
        r->headpend++;                      /* the client gave up on it */
    if (r->npend == r->cappend) {
        if (r->headpend > r->cappend / 2) {
            memmove(r->pend, r->pend + r->headpend,
                    (r->npend - r->headpend) * sizeof(*r->pend));
            r->npend -= r->headpend;
            r->headpend = 0;
        } else {
            r->cappend = r->cappend ? 2 * r->cappend : 256;
            r->pend = realloc(r->pend, r->cappend * sizeof(*r->pend));
            ZK_ASSERT(r->pend != NULL);
        }
    }
    r->pend[r->npend++] = (struct sim_pend){ r->wseq, s->now, 0 };
    return 0;
}

/* A client writes every 2-10 ms while it has fewer than
 * SIM_CLIENT_INFLIGHT writes unanswered (as fs/ is bounded by the
 * requests the kernel has outstanding): the driver queues what the core
 * cannot take yet, so an unbounded client would pile up a backlog that
 * only deadlines clear. */
void sim_on_client(struct sim *s, uint32_t i)
{
    struct zk_driver_stats ds;

    if (!s->clients_on)
        return;
    if (s->rep[i].alive)
        zk_driver_stats(s->rep[i].drv, &ds);
    if (s->rep[i].alive && ds.pending < SIM_CLIENT_INFLIGHT)
        sim_write(s, i + 1);
    sim_push(s, s->now + sim_range(s, 2000, 10000), SIM_EV_CLIENT, i, NULL);
}
