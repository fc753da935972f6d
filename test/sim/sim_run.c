/*
 * sim_run.c — the seeded random run and the benchmark.
 *
 * A random run has two phases. The fault phase (`steps` events): clients
 * write on every replica all the time; the network drops, duplicates and
 * delays (so reorders) messages; a fault event every 20-300 ms crashes a
 * replica (restarted 0.2-1 s later), splits the ensemble in two, blocks
 * one direction of a link, isolates the current leader, heals everything,
 * slows a disk, makes a disk write fail (fail-stop) or makes a replica
 * give its session up (the driver's lease, zk_driver_give_up). The quiet tail:
 * every link healed, every replica restarted, no more faults; clients keep
 * writing for SIM_TAIL_WRITES_US, then the run must reach, within
 * SIM_TAIL_US, a state where every replica acknowledged a write submitted
 * in the tail, all replicas applied the same history, and every replica's
 * own session is open.
 */
#include "sim_int.h"

#define SIM_TAIL_US          6000000ull  /* quiet tail length            */
#define SIM_TAIL_WRITES_US   4000000ull  /* clients write this long      */

static void heal_all(struct sim *s)
{
    memset(s->blocked, 0, sizeof(s->blocked));
}

void sim_heal(struct sim *s)
{
    sim_log(s, 0, "heal all links");
    heal_all(s);
}

void sim_block(struct sim *s, uint32_t from, uint32_t to, int blocked)
{
    s->blocked[from - 1][to - 1] = (uint8_t)!!blocked;
}

void sim_isolate(struct sim *s, uint32_t id)
{
    sim_log(s, id, "isolated");
    for (uint32_t k = 1; k <= s->n; k++)
        if (k != id) {
            sim_block(s, id, k, 1);
            sim_block(s, k, id, 1);
        }
}

static void fault_crash(struct sim *s)
{
    uint32_t i = (uint32_t)sim_range(s, 0, s->n - 1);
    if (!s->rep[i].alive)
        return;
    sim_crash(s, i + 1);
    sim_push(s, s->now + sim_range(s, 200000, 1000000), SIM_EV_RESTART, i,
             NULL);
}

static void fault_split(struct sim *s)
{
    uint32_t side = (uint32_t)sim_rand(s);
    sim_log(s, 0, "partition, side mask %x", side & ((1u << s->n) - 1));
    for (uint32_t a = 0; a < s->n; a++)
        for (uint32_t b = 0; b < s->n; b++)
            if (((side >> a) & 1) != ((side >> b) & 1))
                s->blocked[a][b] = 1;
}

static void fault_oneway(struct sim *s)
{
    uint32_t a = (uint32_t)sim_range(s, 0, s->n - 1);
    uint32_t b = (uint32_t)sim_range(s, 0, s->n - 1);
    if (a != b) {
        sim_log(s, a + 1, "link to r%u blocked one way", b + 1);
        s->blocked[a][b] = 1;
    }
}

void sim_on_fault(struct sim *s)
{
    if (!s->faults_on)
        return;
    uint64_t pick = sim_range(s, 0, 99);
    uint32_t i = (uint32_t)sim_range(s, 0, s->n - 1);
    if (pick < 15) {
        fault_crash(s);
    } else if (pick < 27) {
        fault_split(s);
    } else if (pick < 37) {
        fault_oneway(s);
    } else if (pick < 45) {
        uint32_t l = sim_leader(s);
        if (l)
            sim_isolate(s, l);
    } else if (pick < 65) {
        sim_heal(s);
    } else if (pick < 75) {
        sim_log(s, i + 1, "slow disk");
        s->rep[i].slow_until = s->now + sim_range(s, 100000, 1000000);
    } else if (pick < 80) {
        if (s->rep[i].alive) {
            sim_log(s, i + 1, "next disk write fails");
            s->rep[i].fail_next = 1;
        }
    } else if (pick < 84) {
        /* The runtime's lease ran out: the replica gives its session up. */
        if (s->rep[i].alive && s->rep[i].drv) {
            sim_log(s, i + 1, "session given up (lease)");
            zk_driver_give_up(s->rep[i].drv);
        }
    }
    sim_push(s, s->now + sim_range(s, 20000, 300000), SIM_EV_FAULT,
             SIM_REPLICAS_MAX, NULL);
}

static void start_clients(struct sim *s)
{
    s->clients_on = 1;
    for (uint32_t i = 0; i < s->n; i++)
        sim_push(s, s->now + sim_range(s, 1000, 10000), SIM_EV_CLIENT, i,
                 NULL);
}

static void quiet(struct sim *s)
{
    s->faults_on = 0;
    heal_all(s);
    for (uint32_t i = 0; i < s->n; i++) {
        s->rep[i].slow_until = 0;
        s->rep[i].fail_next = 0;
        sim_restart(s, i + 1);
    }
    s->tail_start = s->now;
    for (uint32_t i = 0; i < s->n; i++)
        s->rep[i].tail_acked = 0;
    sim_log(s, 0, "quiet tail begins");
}

static void dump(struct sim *s)
{
    for (uint32_t i = 0; i < s->n; i++) {
        struct sim_replica *r = &s->rep[i];
        struct zk_zab_status st;
        sim_status(s, r->id, &st);
        sim_log(s, r->id, "%s leader %u epoch %llu est %d busy %d applied "
                "%016llx last %016llx persisted %016llx commit %016llx",
                zk_zab_role_name(st.role), st.leader,
                (unsigned long long)st.epoch, st.established, r->busy,
                (unsigned long long)st.applied_zxid,
                (unsigned long long)st.last_zxid,
                (unsigned long long)st.persisted_zxid,
                (unsigned long long)st.commit_zxid);
        for (size_t k = 0; k < s->nev; k++)
            if (s->ev[k].r == i)
                sim_log(s, r->id, "  event kind %u at %llu life %u/%u",
                        s->ev[k].kind, (unsigned long long)s->ev[k].t,
                        s->ev[k].life, r->life);
    }
}

static int check_tail(struct sim *s)
{
    dump(s);
    uint64_t last = s->nhist ? s->hist[s->nhist - 1].zxid : 0;
    uint64_t chain = s->nhist ? s->hist[s->nhist - 1].chain : 0;
    for (uint32_t i = 0; i < s->n && !s->failed; i++) {
        struct sim_replica *r = &s->rep[i];
        struct zk_zab_status st;
        zk_zab_status(sim_core(r), &st);
        if (r->tail_acked == 0)
            sim_fail(s, r->id, "liveness: no write acknowledged within "
                     "%llu ms of quiet", SIM_TAIL_WRITES_US / 1000);
        else if (r->model.applied != last || r->model.chain != chain)
            sim_fail(s, r->id, "did not converge: applied %016llx, history "
                     "ends at %016llx", (unsigned long long)r->model.applied,
                     (unsigned long long)last);
        else if (!st.session_open)
            sim_fail(s, r->id, "own session not open after the quiet tail");
    }
    return s->failed ? -1 : 0;
}

int sim_random_run(struct sim *s, uint64_t steps)
{
    s->faults_on = s->o.faults;
    s->drop_pm = 10;
    s->dup_pm = 10;
    s->slow_pm = 30;
    if (s->o.clients)
        start_clients(s);
    sim_push(s, s->now + sim_range(s, 50000, 300000), SIM_EV_FAULT,
             SIM_REPLICAS_MAX, NULL);
    if (sim_run_steps(s, steps))
        return -1;
    quiet(s);
    if (sim_run_until(s, s->tail_start + SIM_TAIL_WRITES_US))
        return -1;
    s->clients_on = 0;
    if (sim_run_until(s, s->tail_start + SIM_TAIL_US))
        return -1;
    return check_tail(s);
}

/* ====================================================================== */
/* benchmark                                                              */
/* ====================================================================== */

#define SIM_BENCH_INFLIGHT 4000  /* writes kept outstanding at the leader */

uint64_t sim_bench(struct sim *s, uint64_t n)
{
    s->faults_on = 0;
    s->delay_min_us = 50;
    s->delay_max_us = 100;
    if (sim_run_while_not(s, 10000000, sim_pred_leader, NULL) != 1)
        return 0;
    uint32_t l = sim_leader(s);
    struct sim_replica *r = &s->rep[l - 1];
    uint64_t base = r->acked, submitted = 0;
    while (!s->failed && r->acked - base < n && sim_leader(s) == l) {
        while (submitted - (r->acked - base) < SIM_BENCH_INFLIGHT &&
               submitted < n && sim_write(s, l) == 0)
            submitted++;
        if (sim_run_until(s, s->now + 1000))
            break;
    }
    return r->acked - base;
}
