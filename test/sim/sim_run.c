/*
 * sim_run.c — the seeded random run and the benchmark.
 *
 * A random run has two phases. The fault phase (`steps` events): clients
 * write on every replica all the time; the network drops, duplicates and
 * delays (so reorders) messages; a fault event every 20-300 ms crashes a
 * replica (restarted 0.2-1 s later; two in three crash the process only,
 * and its peers hear of the reset connections at once, as they do of a
 * fail-stop), drops a connection between two live replicas (both ends
 * hear of it), splits the ensemble in two, blocks
 * one direction of a link, isolates the current leader, heals everything,
 * slows a disk, makes a disk write fail (fail-stop), makes a replica
 * give its session up (the driver's lease, zk_driver_give_up), pauses a
 * replica (SIGSTOP) or stalls its loop on a disk write for 1.2-3 x
 * sessionTimeout, or makes a replica die right after its next batch is
 * durable (before the Ready's messages leave). Each replica's clock runs at its own rate within the
 * bound the lease tolerates. Lock clients run beside the writers
 * (sim_lock.c). After a heal a leader must be followed by a quorum
 * within SIM_HEAL_LEADER_US unless another fault comes. The quiet tail:
 * every link healed, every replica restarted, no more faults; clients keep
 * writing for SIM_TAIL_WRITES_US, then the run must reach, within
 * SIM_TAIL_US, a state where every replica acknowledged a write submitted
 * in the tail, all replicas applied the same history, and every replica's
 * own session is open.
 */
#include "sim_int.h"

#include <stdlib.h>

#define SIM_TAIL_US          6000000ull  /* quiet tail length            */
#define SIM_TAIL_WRITES_US   4000000ull  /* clients write this long      */

/* After a heal a leader followed by a quorum of voters must be
 * established within this (simulated) time, counted from when a quorum of
 * voters is running (alive and not stopped). */
#define SIM_HEAL_LEADER_US   2000000ull

static void heal_all(struct sim *s)
{
    memset(s->blocked, 0, sizeof(s->blocked));
}

void sim_heal(struct sim *s)
{
    sim_log(s, 0, "heal all links");
    heal_all(s);
    if (s->faults_on && !s->heal_at)
        s->heal_at = s->now;
}

static int voters_up(const struct sim *s)
{
    uint32_t up = 0;
    for (uint32_t i = 0; i < s->n; i++)
        up += !s->rep[i].observer && s->rep[i].alive &&
              s->now >= s->rep[i].paused_until;
    return up > s->o.voters / 2;
}

/* sim_leader() on the views the checks read. */
static uint32_t view_leader(struct sim *s)
{
    uint32_t best = 0;
    uint64_t best_epoch = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        const struct zk_zab_status *st = &sim_view(s, i)->st;
        if (st->role == ZK_ZAB_LEADING && st->established &&
            st->epoch > best_epoch) {
            best = i + 1;
            best_epoch = st->epoch;
        }
    }
    return best;
}

/* A leader a quorum of voters follows, established in its epoch. */
static uint32_t leader_followed(struct sim *s)
{
    uint32_t l = view_leader(s), n = 0;
    if (!l)
        return 0;
    uint64_t epoch = sim_view(s, l - 1)->st.epoch;
    for (uint32_t i = 0; i < s->n; i++) {
        const struct zk_zab_status *st = &sim_view(s, i)->st;
        n += !s->rep[i].observer && st->established && st->leader == l &&
             st->epoch == epoch;
    }
    return n > s->o.voters / 2 ? l : 0;
}

/* Checked every step while a heal is being watched (no fault since). */
void sim_heal_check(struct sim *s)
{
    if (!s->heal_at)
        return;
    if (!voters_up(s)) {
        s->heal_at = s->now;
        return;
    }
    uint32_t l = leader_followed(s);
    if (l) {
        uint64_t took = s->now - s->heal_at;
        if (took > s->heal_max_us)
            s->heal_max_us = took;
        sim_log(s, l, "leader followed %llu us after the heal",
                (unsigned long long)took);
        s->heal_at = 0;
    } else if (s->now - s->heal_at > SIM_HEAL_LEADER_US) {
        sim_fail(s, 0, "no leader followed by a quorum %llu ms after the "
                 "last heal", SIM_HEAL_LEADER_US / 1000);
    }
}

/* Whether a quorum of the voters other than i remember their promises:
 * they have synced at least once (as their disks say), lost no writes
 * that they have not made good yet, and have no such loss pending. A
 * voter's disk is wiped, or loses its last writes, only then: with
 * fewer, the ensemble must stall (docs/ensemble.md). */
static int others_remember(const struct sim *s, uint32_t i)
{
    uint32_t remember = 0;
    for (uint32_t j = 0; j < s->n; j++)
        remember += j != i && !s->rep[j].observer &&
                    s->rep[j].hard.current_epoch > 0 &&
                    !sim_store_behind(&s->rep[j]) && !s->rep[j].ckpt;
    return remember > s->o.voters / 2;
}

/* --wipe: the replica's disk is lost while the others run (a new disk,
 * an operator's rm -rf): it restarts empty, as the daemon does with an
 * empty data directory (a new store, incarnation 1, no promises
 * remembered), and must abstain until it has synced. A voter is wiped
 * only while a quorum of the other voters remember (have synced at least
 * once, as their disks say): with fewer, the ensemble stalls, as it must
 * (docs/ensemble.md). */
/* Replica i's disk forgets the epoch it accepted: the promise must be
 * kept by what it accepts next (sim_node.c, ghost_acc) while another
 * voter shares it (the leader it accepted the epoch from); one only it
 * accepted (its own proposal) dies with its disk. An observer promises
 * nothing (protocol.md 4.5): a wiped one may follow a leader of an older
 * epoch that is still established (seed 5 of --wipe, once ephemeral
 * clients changed the runs); it cannot apply what was not committed
 * (the history checks), and it had nothing to go back from. */
static void forget_epoch(struct sim *s, uint32_t i)
{
    struct sim_replica *r = &s->rep[i];
    if (r->observer)
        return;
    for (uint32_t j = 0; j < s->n; j++)
        if (j != i && !s->rep[j].observer &&
            s->rep[j].hard.accepted_epoch >= r->hard.accepted_epoch &&
            r->hard.accepted_epoch > r->ghost_acc)
            r->ghost_acc = r->hard.accepted_epoch;
}

static void fault_wipe(struct sim *s, uint32_t i)
{
    struct sim_replica *r = &s->rep[i];
    if (!r->observer && !others_remember(s, i))
        return;
    sim_log(s, r->id, "disk wiped");
    sim_crash(s, r->id);
    sim_ckpt_free(r);
    memset(&r->mark_hard, 0, sizeof(r->mark_hard));   /* in the data dir */
    r->mark_last = 0;
    /* Added to what earlier wipes lost: a copy lost in the first of two
     * wipes in a row was still acknowledged (seed 120018 of --wipe: a
     * leader paused between a commit and its first apply while one of
     * its quorum was wiped twice). */
    r->ghost = realloc(r->ghost, (r->nghost + r->nlog + 1) *
                       sizeof(*r->ghost));
    ZK_ASSERT(r->ghost != NULL);
    forget_epoch(s, i);
    for (size_t k = 0; k < r->nlog; k++)
        r->ghost[r->nghost++] = r->log[k].zxid;
    for (size_t k = 0; k < r->nlog; k++)
        free(r->log[k].data);
    r->nlog = 0;
    memset(&r->hard, 0, sizeof(r->hard));
    memset(&r->model, 0, sizeof(r->model));
    r->incarnation = 0;
    sim_push(s, s->now + sim_range(s, 200000, 1000000), SIM_EV_RESTART, i,
             NULL);
}

/* --lose-tail: the replica's disk loses its last writes (a disk that
 * acknowledged fsync without writing, a store put back from an older
 * copy): its durable state now is kept aside, and 20-300 ms later the
 * replica dies and restarts from it, having lost every batch made
 * durable since (entries it acknowledged, epochs it accepted). Its
 * marker (sim_node.c) is not lost, so its start sees the store behind
 * it and the core abstains until it has synced in a fresh epoch
 * (protocol.md 4.2); --lose-undetected starts it without telling, to
 * show what that gate prevents. As for a wipe, at most one voter at a
 * time has forgotten: only while a quorum of the others remember. */
static void fault_lose_tail(struct sim *s, uint32_t i)
{
    struct sim_replica *r = &s->rep[i];
    if (r->ckpt || (!r->observer && !others_remember(s, i)))
        return;
    struct sim_ckpt *c = calloc(1, sizeof(*c));
    ZK_ASSERT(c != NULL);
    c->hard = r->hard;
    c->incarnation = r->incarnation;
    c->model = r->model;
    c->nlog = r->nlog;
    c->log = malloc((r->nlog ? r->nlog : 1) * sizeof(*c->log));
    ZK_ASSERT(c->log != NULL);
    for (size_t k = 0; k < r->nlog; k++) {
        c->log[k] = r->log[k];
        c->log[k].data = malloc(r->log[k].len ? r->log[k].len : 1);
        ZK_ASSERT(c->log[k].data != NULL);
        memcpy(c->log[k].data, r->log[k].data, r->log[k].len);
    }
    r->ckpt = c;
    sim_log(s, r->id, "disk will lose the writes made from now on "
            "(applied %016llx, accepted epoch %llu)",
            (unsigned long long)r->model.applied,
            (unsigned long long)r->hard.accepted_epoch);
    sim_push(s, s->now + sim_range(s, 20000, 300000), SIM_EV_LOSE, i, NULL);
}

/* The entries and the epoch r forgets (for the checks, as a wipe's). */
static void lose_ghosts(struct sim *s, struct sim_replica *r, uint32_t i)
{
    const struct sim_ckpt *c = r->ckpt;
    r->ghost = realloc(r->ghost, (r->nghost + r->nlog + 1) *
                       sizeof(*r->ghost));
    ZK_ASSERT(r->ghost != NULL);
    for (size_t k = 0; k < r->nlog; k++)
        r->ghost[r->nghost++] = r->log[k].zxid;
    if (r->hard.accepted_epoch > c->hard.accepted_epoch)
        forget_epoch(s, i);
}

void sim_on_lose(struct sim *s, uint32_t i)
{
    struct sim_replica *r = &s->rep[i];
    struct sim_ckpt *c = r->ckpt;
    if (!c)
        return;
    int was_alive = r->alive;
    sim_crash(s, r->id);
    sim_log(s, r->id, "disk lost its last writes: back to applied %016llx "
            "(from %016llx), accepted epoch %llu (from %llu)",
            (unsigned long long)c->model.applied,
            (unsigned long long)r->model.applied,
            (unsigned long long)c->hard.accepted_epoch,
            (unsigned long long)r->hard.accepted_epoch);
    lose_ghosts(s, r, i);
    for (size_t k = 0; k < r->nlog; k++)
        free(r->log[k].data);
    free(r->log);
    r->log = c->log;
    r->nlog = r->caplog = c->nlog;
    c->log = NULL;
    c->nlog = 0;
    r->hard = c->hard;
    r->incarnation = c->incarnation;
    r->model = c->model;
    sim_ckpt_free(r);
    if (was_alive)
        sim_push(s, s->now + sim_range(s, 50000, 300000), SIM_EV_RESTART,
                 i, NULL);
}

/* The process stops (SIGSTOP, a VM migration, or a disk whose write
 * stalls the loop) for longer than sessionTimeout: nothing it is sent is
 * read, none of its timers runs, its clock goes on. */
static void fault_pause(struct sim *s, uint32_t i, int stall)
{
    struct sim_replica *r = &s->rep[i];
    uint64_t t = SIM_SESSION_TIMEOUT * SIM_TICK_US;
    if (!r->alive || s->now < r->paused_until)
        return;
    r->paused_until = s->now + sim_range(s, t * 6 / 5, 3 * t);
    if (stall)
        r->slow_until = r->paused_until;
    sim_log(s, r->id, "%s until %llu us", stall ? "disk stalls the loop"
            : "paused (SIGSTOP)", (unsigned long long)r->paused_until);
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

/* Two crashes in three are of the process (kill -9: the peers' TCP
 * connections are reset and they hear of it at once), one of the host
 * (silence: the peers notice by timeouts). */
static void fault_crash(struct sim *s)
{
    uint32_t i = (uint32_t)sim_range(s, 0, s->n - 1);
    if (!s->rep[i].alive)
        return;
    if (sim_range(s, 0, 2)) {
        sim_kill(s, i + 1);
    } else {
        if (!s->o.no_power_cuts)
            sim_power_cut(s, &s->rep[i]);
        sim_crash(s, i + 1);
    }
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

/* Faults come every 20-300 ms, and most elect a new leader, which
 * renews every session: a session would hardly ever be expired. So a
 * third of the partitions and pauses are left alone for 0.6-1.5 s,
 * longer than sessionTimeout, for the majority's leader to expire the
 * sessions of those it cannot hear (what the lease invariants are
 * about). */
static uint64_t settle(struct sim *s, uint64_t next)
{
    if (sim_range(s, 0, 2))
        return next;
    return sim_range(s, 15 * SIM_SESSION_TIMEOUT * SIM_TICK_US / 10,
                     15 * SIM_SESSION_TIMEOUT * SIM_TICK_US / 4);
}

void sim_on_fault(struct sim *s)
{
    if (!s->faults_on)
        return;
    uint64_t pick = sim_range(s, 0, 99);
    uint32_t i = (uint32_t)sim_range(s, 0, s->n - 1);
    uint64_t next = sim_range(s, 20000, 300000);
    if (pick < 45 || pick >= 65)
        s->heal_at = 0;             /* a new fault: the watch ends */
    if (pick < 15) {
        fault_crash(s);
    } else if (pick < 27) {
        fault_split(s);
        next = settle(s, next);
    } else if (pick < 37) {
        fault_oneway(s);
    } else if (pick < 45) {
        uint32_t l = sim_leader(s);
        if (l)
            sim_isolate(s, l);
        next = settle(s, next);
    } else if (pick < 65) {
        sim_heal(s);
        if (sim_range(s, 0, 99) < 30)
            next = sim_range(s, 1000000, 3000000);  /* time to elect */
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
    } else if (pick < 89) {
        fault_pause(s, i, 0);
        next = settle(s, next);
    } else if (pick < 92) {
        fault_pause(s, i, 1);
        next = settle(s, next);
    } else if (pick < 98 && (s->o.wipe || s->o.lose_tail)) {
        if (s->o.lose_tail && (!s->o.wipe || sim_range(s, 0, 1)))
            fault_lose_tail(s, i);
        else
            fault_wipe(s, i);
    } else if (pick < 96) {
        if (s->rep[i].alive && (s->o.no_power_cuts || sim_range(s, 0, 1))) {
            sim_log(s, i + 1, "dies once its next write is durable");
            s->rep[i].crash_after_write = 1;
        } else if (s->rep[i].alive) {
            sim_log(s, i + 1, "power cut during its next write");
            s->rep[i].crash_after_write = 2;
        }
    } else if (pick >= 98) {
        /* A connection dropped between live replicas (the runtime drops
         * one whose send queue overflows): both ends hear of it. */
        sim_reset_link(s, i + 1, (uint32_t)sim_range(s, 1, s->n));
    }
    sim_push(s, s->now + next, SIM_EV_FAULT, SIM_REPLICAS_MAX, NULL);
}

static void start_clients(struct sim *s)
{
    s->clients_on = 1;
    for (uint32_t i = 0; i < s->n; i++) {
        sim_push(s, s->now + sim_range(s, 1000, 10000), SIM_EV_CLIENT, i,
                 NULL);
        sim_push(s, s->now + sim_range(s, 1000, 50000), SIM_EV_LOCK, i,
                 NULL);
        sim_push(s, s->now + sim_range(s, 1000, 30000), SIM_EV_REG, i,
                 NULL);
        if (!s->o.no_ephemerals)
            sim_push(s, s->now + sim_range(s, 1000, 50000), SIM_EV_EPH, i,
                     NULL);
    }
}

static void quiet(struct sim *s)
{
    s->faults_on = 0;
    heal_all(s);
    s->heal_at = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        s->rep[i].slow_until = 0;
        s->rep[i].fail_next = 0;
        s->rep[i].crash_after_write = 0;
        s->rep[i].paused_until = 0;
        sim_ckpt_free(&s->rep[i]);          /* no more lost writes */
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

/* Each replica's clock runs at its own rate, the fastest at most DEN/NUM
 * (1.5) times the slowest: the bound the lease tolerates
 * (ZK__LEASE_RATE_RATIO_*, replica/lease.c): most at either end of it,
 * where a lease too long for the bound shows. One seed in four has no
 * drift. */
static void draw_drift(struct sim *s)
{
    if (sim_range(s, 0, 3) == 0)
        return;
    uint64_t hi = 1000000ull * ZK__LEASE_RATE_RATIO_DEN /
                  ZK__LEASE_RATE_RATIO_NUM;
    for (uint32_t i = 0; i < s->n; i++) {
        uint64_t pick = sim_range(s, 0, 9);   /* the extremes, mostly */
        s->rep[i].rate_ppm = pick < 4 ? 1000000 : pick < 8 ? hi
                             : sim_range(s, 1000000, hi);
        sim_log(s, i + 1, "clock rate %llu ppm",
                (unsigned long long)s->rep[i].rate_ppm);
    }
}

int sim_random_run(struct sim *s, uint64_t steps)
{
    if (s->o.faults)
        draw_drift(s);
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
    if (check_tail(s))
        return -1;
    return sim_lin_check(s);
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
