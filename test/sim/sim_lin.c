/*
 * sim_lin.c — linearizability of writes, conditional writes and reads
 * after a sync, checked on the simulated clients' history with the
 * project's checker (test/lin/lincheck.c, linked as a library).
 *
 * The model state machine of every replica keeps versioned registers
 * (value, version), one per key; a key is a generation of
 * SIM_REG_GEN_US of simulated time (clients move to a new key as
 * t_ens_linear's move to new files, so that no key gathers more
 * indeterminate operations than the checker can search). Each replica
 * has SIM_REG_CLIENTS register clients (processes, one operation at a
 * time) which, through the driver, as fs/ does:
 *  - write a unique value (a proposal; ok when the driver answers it);
 *  - conditionally write (the version this client saw last; the apply
 *    result says ok with the new version, or bad);
 *  - read after a sync: a read barrier (zk_driver_propose with is_sync,
 *    a no-op transaction, as zk_replica_sync) and, when it is answered,
 *    the value in this replica's state machine;
 *  - read the version the same way.
 * Times are simulated (one clock for everyone): invoked when proposed,
 * completed when answered. A write or conditional write answered with an
 * error (deadline, crash, end of run) is indeterminate: it may take
 * effect later or never; its line is written, indeterminate, before it
 * is proposed, so one still in flight at the end is indeterminate too.
 * A read answered with an error constrains nothing and is not recorded.
 *
 * At the end of a run the history goes through lin_check(); a violation
 * (or an undecided key) fails the seed, with the failing part printed.
 */
#include "sim_int.h"
#include "../lin/lincheck.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>

/* A register payload: the client header (replica id, write number,
 * incarnation, as every sim write), the marker, then the op. */
#define RG_MARK     'K'
#define RG_SYNC     'S'             /* a read barrier's no-op            */
#define RG_OFF      16
#define RG_LEN      (RG_OFF + 1 + 1 + 4 + 4 + 4)

enum { RG_W, RG_CAS, RG_R, RG_V };
static const char *const rg_name[] = { "w", "cas", "r", "v" };

/* One operation of a register client, from proposal to answer. */
struct rg_req {
    struct sim *s;
    uint32_t i, c, op, key, value, ver;
    uint64_t id, t0;
};

/* The history, as lincheck's text, one line per event. */
static void lin_printf(struct sim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void lin_printf(struct sim *s, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        size_t room = s->lin_cap - s->lin_len;
        va_start(ap, fmt);
        int n = vsnprintf(s->lin_buf + s->lin_len, room, fmt, ap);
        va_end(ap);
        ZK_ASSERT(n >= 0);
        if ((size_t)n < room) {
            s->lin_len += (size_t)n;
            return;
        }
        s->lin_cap = s->lin_cap ? 2 * s->lin_cap : 1 << 16;
        s->lin_buf = realloc(s->lin_buf, s->lin_cap);
        ZK_ASSERT(s->lin_buf != NULL);
    }
}

static void record(struct sim *s, const struct rg_req *q, const char *st,
                   const char *ret)
{
    char a1[16] = "-", a2[16] = "-";
    if (q->op == RG_W)
        snprintf(a1, sizeof(a1), "%" PRIu32, q->value);
    else if (q->op == RG_CAS) {
        snprintf(a1, sizeof(a1), "%" PRIu32, q->ver);
        snprintf(a2, sizeof(a2), "%" PRIu32, q->value);
    }
    char t1[24] = "-";
    if (strcmp(st, "info"))
        snprintf(t1, sizeof(t1), "%" PRIu64, s->now);
    lin_printf(s, "%" PRIu32 " %" PRIu64 " %" PRIu64 " %s g%" PRIu32
               " %s %s %s %s %s\n", q->i * SIM_REG_CLIENTS + q->c, q->id,
               q->t0, t1, q->key, rg_name[q->op], a1, a2, st, ret);
    sim_log(s, q->i + 1, "register client %u: %s key %u %s %s -> %s %s",
            q->c, rg_name[q->op], q->key, a1, a2, st, ret);
}

/* ====================================================================== */
/* the model's registers                                                  */
/* ====================================================================== */

int sim_reg_payload(const struct zk_zab_entry *e)
{
    return e->type == ZK_ZAB_ENTRY_WRITE && e->len == RG_LEN &&
           e->data[RG_OFF] == RG_MARK;
}

/* The register of key in m: NULL when its slot already holds a later
 * key (a retired key: cannot happen within SIM_REG_SLOTS generations). */
static struct sim_reg *reg_of(struct sim_model *m, uint32_t key, int make)
{
    struct sim_reg *g = &m->regs[key % SIM_REG_SLOTS];
    if (g->gen > key + 1)
        return NULL;
    if (g->gen < key + 1 && make)
        *g = (struct sim_reg){ key + 1, 0, 0 };
    return g;
}

/* Applies a register op to r's model; *out the result its client gets. */
void sim_reg_apply(struct sim *s, struct sim_replica *r,
                   const struct zk_zab_entry *e, struct sim_res *out)
{
    const uint8_t *p = e->data + RG_OFF + 1;
    uint32_t op = p[0], key = zk_get_be32(p + 1);
    uint32_t value = zk_get_be32(p + 5), ver = zk_get_be32(p + 9);
    struct sim_reg *g = reg_of(&r->model, key, 1);
    *out = (struct sim_res){ 1, 0, 0 };
    if (!g) {
        sim_fail(s, r->id, "register op on retired key %" PRIu32, key);
        return;
    }
    if (op == RG_CAS && g->version != ver) {
        out->bad = 1;
        return;
    }
    g->value = value;
    g->version++;
    out->version = g->version;
}

/* ====================================================================== */
/* clients                                                                */
/* ====================================================================== */

static void rg_done(void *arg, int err, const struct zk_apply_result *res)
{
    struct rg_req *q = arg;
    struct sim *s = q->s;
    struct sim_replica *r = &s->rep[q->i];
    const struct sim_res *rs = (const struct sim_res *)res;
    char ret[24] = "-";

    r->rg[q->c].busy = 0;
    if (q->op == RG_R || q->op == RG_V) {
        struct sim_reg *g = err ? NULL : reg_of(&r->model, q->key, 0);
        if (g) {
            int cur = g->gen == q->key + 1;
            snprintf(ret, sizeof(ret), "%" PRIu32, q->op == RG_R
                     ? (cur ? g->value : 0) : (cur ? g->version : 0));
            if (q->op == RG_V && q->key == r->rg[q->c].key)
                r->rg[q->c].seen = cur ? g->version : 0;
            record(s, q, "ok", ret);
            s->lin_ops++;
        }
    } else if (err || !rs || !rs->reg) {
        record(s, q, "info", "-");
    } else if (rs->bad) {
        record(s, q, "bad", "-");
    } else {
        snprintf(ret, sizeof(ret), "%" PRIu32, rs->version);
        if (q->op == RG_CAS)
            r->rg[q->c].seen = rs->version;
        record(s, q, "ok", q->op == RG_CAS ? ret : "-");
    }
    free(q);
}

static void rg_propose(struct sim *s, struct sim_replica *r, uint32_t c,
                       uint32_t op)
{
    struct sim_rclient *cl = &r->rg[c];
    uint8_t *buf = malloc(RG_LEN);
    struct rg_req *q = malloc(sizeof(*q));
    ZK_ASSERT(buf != NULL && q != NULL);
    uint32_t key = (uint32_t)(s->now / SIM_REG_GEN_US);
    if (cl->key != key) {
        cl->key = key;
        cl->seen = 0;
    }
    sim_client_header(r, buf);
    uint8_t *p = buf + RG_OFF;
    p[0] = op == RG_R || op == RG_V ? RG_SYNC : RG_MARK;
    p[1] = (uint8_t)op;
    uint32_t value = (r->id << 24) | (uint32_t)(++s->lin_values & 0xffffff);
    zk_put_be32(p + 2, key);
    zk_put_be32(p + 6, value);
    zk_put_be32(p + 10, cl->seen);
    *q = (struct rg_req){ s, r->id - 1, c, op, key, value, cl->seen,
                          ++cl->ops, s->now };
    if (key + 1 > s->lin_keys)
        s->lin_keys = key + 1;
    if (op == RG_W || op == RG_CAS) {
        record(s, q, "info", "-");         /* until it is answered */
        s->lin_ops++;
    }
    cl->busy = 1;                          /* (it may be answered at once) */
    if (zk_driver_propose(r->drv, buf, RG_LEN, op == RG_R || op == RG_V,
                          rg_done, q) != 0) {
        cl->busy = 0;
        free(buf);
        if (op == RG_W || op == RG_CAS)    /* refused: no effect */
            record(s, q, "fail", "-");
        free(q);
    }
}

/* A register client acts every 5-30 ms when it has nothing in flight. */
void sim_on_reg(struct sim *s, uint32_t i)
{
    struct sim_replica *r = &s->rep[i];
    if (!s->clients_on)
        return;
    sim_push(s, s->now + sim_range(s, 5000, 30000), SIM_EV_REG, i, NULL);
    uint32_t c = (uint32_t)sim_range(s, 0, SIM_REG_CLIENTS - 1);
    uint64_t pick = sim_range(s, 0, 99);
    if (!r->alive || !r->drv || r->rg[c].busy)
        return;
    rg_propose(s, r, c, pick < 35 ? RG_W : pick < 55 ? RG_CAS
                        : pick < 85 ? RG_R : RG_V);
}

/* ====================================================================== */
/* the check                                                              */
/* ====================================================================== */

int sim_lin_check(struct sim *s)
{
    struct lin_history *h = lin_history_new();
    struct lin_key_result *res = NULL;
    size_t n = 0;
    char err[256] = "";
    ZK_ASSERT(h != NULL);
    /* every key starts with value 0 at version 0 */
    size_t cap = 32 + (size_t)s->lin_keys * 24;
    char *init = malloc(cap);
    ZK_ASSERT(init != NULL);
    size_t len = 0;
    init[0] = '\0';
    for (uint32_t k = 0; k < s->lin_keys; k++)
        len += (size_t)snprintf(init + len, cap - len,
                                "init g%" PRIu32 " 0 0\n", k);
    int rc = lin_history_parse(h, init, err, sizeof(err));
    free(init);
    if (rc == 0 && s->lin_buf)           /* NUL-terminated by vsnprintf */
        rc = lin_history_parse(h, s->lin_buf, err, sizeof(err));
    if (rc == 0) {
        struct lin_options o = { .explain = s->o.out, .explain_max = 40 };
        rc = lin_check(h, &o, &res, &n, err, sizeof(err));
    }
    for (size_t k = 0; k < n && rc > 0; k++)
        if (res[k].verdict != LIN_LINEARIZABLE) {
            sim_fail(s, 0, "key %s of the register history is %s (%zu "
                     "operations, %zu indeterminate)", res[k].key,
                     lin_verdict_name(res[k].verdict), res[k].ops,
                     res[k].info);
            break;
        }
    if (rc < 0)
        sim_fail(s, 0, "register history refused by lincheck: %s", err);
    for (size_t k = 0; k < n; k++)
        s->lin_steps += res[k].steps;
    free(res);
    lin_history_free(h);
    return s->failed ? -1 : 0;
}
