/*
 * test_lease.c — the session lease: the runtime's arithmetic
 * (replica/lease.c) and, in the deterministic simulator (which runs that
 * same code on simulated time, test/sim/sim_lease.c), the invariant that
 * no replica applies the close of a session while its owner's lease still
 * runs — checked after every step, so each scenario here only has to
 * create the situation: a follower or a leader cut off, a steady state
 * that must keep every lease.
 */
#include <check.h>
#include <stdlib.h>

#include "zk_common.h"
#include "zk_zab.h"
#include "../../replica/lease_int.h"
#include "../sim/sim.h"

#define SEC 1000000ull
#define MS  1000ull

static struct sim *mk(uint32_t voters, uint64_t seed)
{
    struct sim_opts o = { .seed = seed, .voters = voters };
    struct sim *s = sim_create(&o);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(sim_run_while_not(s, 2 * SEC, sim_pred_leader, NULL), 1);
    ck_assert_int_eq(sim_run_while_not(s, 2 * SEC, sim_pred_converged, NULL),
                     1);
    ck_assert_int_eq(sim_run_until(s, sim_now(s) + 200 * MS), 0);
    return s;
}

static void ok(struct sim *s)
{
    ck_assert_msg(sim_failure(s) == NULL, "%s", sim_failure(s));
}

static uint64_t session_of(struct sim *s, uint32_t id)
{
    struct zk_zab_status st;
    sim_status(s, id, &st);
    return st.session_open ? st.session : 0;
}

START_TEST(lease_length)
{
    ck_assert_uint_eq(zk__lease_ms(2000, 100), 1200);
    ck_assert_uint_eq(zk__lease_ms(4000, 200), 2400);
    ck_assert_uint_eq(zk__lease_ms(1000, 200), 400);
    ck_assert_uint_eq(zk__lease_ms(400, 200), 200);    /* never below a tick */
    ck_assert_uint_eq(zk__lease_ms(500, 200), 200);
}
END_TEST

START_TEST(lease_from_the_sent_tick)
{
    struct zk__lease *l = malloc(sizeof(*l));
    ck_assert_ptr_nonnull(l);
    zk__lease_init(l, 1000, 0);
    for (uint64_t t = 1; t <= 10; t++)
        zk__lease_ticked(l, t, t * 100000000ull);      /* 100 ms ticks */
    struct zk_zab_status st = { .session_open = 1, .session = 7,
                                .tick = 10, .contact_tick = 0,
                                .session_sent_tick = 5 };
    /* Just opened, no echo yet: one lease from the OPEN's send (0.5 s). */
    ck_assert_uint_eq(zk__lease_until(l, &st), 1500000000ull);
    /* An echo of tick 8 (sent at 0.8 s) moves it on. */
    st.contact_tick = 8;
    ck_assert_uint_eq(zk__lease_until(l, &st), 1800000000ull);
    zk__lease_ticked(l, 11, 1100000000ull);
    st.tick = 11;
    st.contact_tick = 11;
    ck_assert_uint_eq(zk__lease_until(l, &st), 2100000000ull);
    /* Ticks older than the ring count for nothing. */
    st.tick = 12 + ZK__LEASE_TICKS;
    ck_assert_uint_eq(zk__lease_until(l, &st), 0);
    /* A tick from the future (a stale status) neither. */
    st.tick = 10;
    st.contact_tick = 11;
    st.session_sent_tick = 0;
    ck_assert_uint_eq(zk__lease_until(l, &st), 0);
    /* No open session: nothing to rely on. */
    st.session_open = 0;
    st.contact_tick = 9;
    ck_assert_uint_eq(zk__lease_until(l, &st), 0);
    free(l);
}
END_TEST

START_TEST(steady_state_keeps_every_lease)
{
    struct sim *s = mk(3, 21);
    uint64_t before[4];
    for (uint32_t i = 1; i <= 3; i++) {
        before[i] = session_of(s, i);
        ck_assert_uint_ne(before[i], 0);
    }
    for (int k = 0; k < 20; k++) {
        (void)sim_write(s, (uint32_t)(k % 3) + 1);   /* load, if ready */
        ck_assert_int_eq(sim_run_until(s, sim_now(s) + 100 * MS), 0);
    }
    for (uint32_t i = 1; i <= 3; i++)
        ck_assert_uint_eq(session_of(s, i), before[i]);
    ok(s);
    sim_destroy(s);
}
END_TEST

/* Cuts id off; its session must be given up by itself (the lease) and
 * closed by the others, in that order (the simulator's invariant). */
static void cut_off(struct sim *s, uint32_t id)
{
    uint64_t sid = session_of(s, id);
    ck_assert_uint_ne(sid, 0);
    sim_isolate(s, id);
    uint64_t t0 = sim_now(s);
    struct zk_zab_status st;
    do {
        ck_assert_int_eq(sim_run_until(s, sim_now(s) + 10 * MS), 0);
        sim_status(s, id, &st);
        ck_assert_uint_lt(sim_now(s) - t0, 2 * SEC);
    } while (st.session == sid);
    uint32_t other = id == 1 ? 2 : 1;
    while (sim_model_session(s, other, id) == sid) {
        ck_assert_int_eq(sim_run_until(s, sim_now(s) + 10 * MS), 0);
        ck_assert_uint_lt(sim_now(s) - t0, 3 * SEC);
    }
    ok(s);
    sim_heal(s);
    ck_assert_int_eq(sim_run_while_not(s, 3 * SEC, sim_pred_converged, NULL),
                     1);
    ok(s);
}

START_TEST(cut_off_follower_gives_up_first)
{
    struct sim *s = mk(3, 22);
    uint32_t l = sim_leader(s);
    cut_off(s, l == 1 ? 2 : 1);
    sim_destroy(s);
}
END_TEST

START_TEST(cut_off_leader_gives_up_first)
{
    struct sim *s = mk(3, 23);
    cut_off(s, sim_leader(s));
    sim_destroy(s);
}
END_TEST

/* The ephemeral lock recipe across a pause (issue 11 item 2: the recipe
 * once lost mutual exclusion when the holder's replica stopped for longer
 * than sessionTimeout). Replica h takes name 0 and is stopped for 3 x
 * sessionTimeout (400 ms); the others expire its session, whose close
 * deletes the ephemeral, and replica t takes the name while h is still
 * stopped. The simulator's checks after every step (sim_eph.c) fail the
 * run if h still relied on its lease when the close was applied, or if
 * h and t ever both believe they hold the name. */
static void run_for(struct sim *s, uint64_t us)
{
    ck_assert_msg(sim_run_until(s, sim_now(s) + us) == 0, "%s",
                  sim_failure(s));
}

static void eph_handover(struct sim *s, uint32_t h, uint32_t t)
{
    ck_assert_int_eq(sim_eph_take(s, h, 0), 0);
    uint64_t t0 = sim_now(s);
    while (!sim_eph_holds(s, h, 0)) {
        run_for(s, 10 * MS);
        ck_assert_uint_lt(sim_now(s) - t0, SEC);
    }
    ck_assert_int_eq(sim_eph_take(s, t, 0), 0);      /* refused: taken */
    run_for(s, 100 * MS);
    ck_assert(!sim_eph_holds(s, t, 0));
    sim_pause(s, h, 1200 * MS);
    t0 = sim_now(s);
    while (!sim_eph_holds(s, t, 0)) {
        (void)sim_eph_take(s, t, 0);                 /* -EBUSY: asking */
        run_for(s, 20 * MS);
        ck_assert_uint_lt(sim_now(s) - t0, 1200 * MS);  /* h still stopped */
    }
    run_for(s, t0 + 2000 * MS - sim_now(s));
    ck_assert(!sim_eph_holds(s, h, 0));
    ck_assert(sim_eph_holds(s, t, 0));
    ok(s);
}

START_TEST(ephemeral_handover_after_follower_pause)
{
    struct sim *s = mk(3, 24);
    uint32_t l = sim_leader(s);
    uint32_t h = l == 1 ? 2 : 1;
    eph_handover(s, h, 6 - l - h);
    sim_destroy(s);
}
END_TEST

START_TEST(ephemeral_handover_after_leader_pause)
{
    struct sim *s = mk(3, 25);
    uint32_t l = sim_leader(s);
    eph_handover(s, l, l == 1 ? 2 : 1);
    sim_destroy(s);
}
END_TEST

START_TEST(random_runs_keep_the_invariant)
{
    for (uint64_t seed = 1; seed <= 8; seed++) {
        struct sim_opts o = { .seed = seed, .voters = seed % 2 ? 3 : 5,
                              .faults = 1, .clients = 1 };
        struct sim *s = sim_create(&o);
        ck_assert_ptr_nonnull(s);
        int rc = sim_random_run(s, 30000);
        ck_assert_msg(rc == 0, "seed %llu: %s", (unsigned long long)seed,
                      sim_failure(s) ? sim_failure(s) : "failed");
        sim_destroy(s);
    }
}
END_TEST

/* Seeds the long simulator runs broke, replayed exactly (main.c's
 * options). 1020089: a duplicated SESSION_OPEN request of an observer's
 * old session reached the leader after the OPEN of its new one; proposed,
 * it closed the new session while the observer's lease still ran, and a
 * lock it held was granted to another session (the leader now refuses
 * such stale OPENs: zab_leader.c, recv_request). 1020178: how far that
 * refusal may go: a replica synced by snapshot after its session was
 * closed never saw the close and asks to open the same id again; refusing
 * a closed id left it without a session. 1079759: an observer restarted
 * and followed a stale leader of an epoch older than its applied zxid's,
 * whose snapshot took it back in time (a learner now refuses such a
 * leader: zab_learner.c, recv_leaderinfo). Since observers apply an
 * INFORM in the Ready that logs it, 1020089 and 1079759 run differently
 * and no longer reach their scenarios (they still pass); the zab suite
 * scripts both message by message (leader_refuses_overtaken_session_open,
 * observer_refuses_leader_older_than_applied), and those catch the two
 * mutants (scripts/mutate.sh). The runs stay as long random runs. */
START_TEST(long_run_regressions)
{
    static const struct { uint64_t seed; uint32_t voters, observers; }
    runs[] = {{1020089, 3, 2}, {1020178, 5, 2}, {1079759, 3, 2}};
    for (size_t i = 0; i < ZK_ARRAY_LEN(runs); i++) {
        /* The runs as they were found: before power cuts and ephemeral
         * clients were modelled. */
        struct sim_opts o = { .seed = runs[i].seed, .voters = runs[i].voters,
                              .observers = runs[i].observers, .faults = 1,
                              .clients = 1, .no_power_cuts = 1,
                              .no_ephemerals = 1 };
        struct sim *s = sim_create(&o);
        ck_assert_ptr_nonnull(s);
        int rc = sim_random_run(s, 100000);
        ck_assert_msg(rc == 0, "seed %llu: %s",
                      (unsigned long long)runs[i].seed,
                      sim_failure(s) ? sim_failure(s) : "failed");
        sim_destroy(s);
    }
}
END_TEST

Suite *lease_suite(void);
Suite *lease_suite(void)
{
    Suite *su = suite_create("lease");
    TCase *tc = tcase_create("lease");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, lease_length);
    tcase_add_test(tc, lease_from_the_sent_tick);
    tcase_add_test(tc, steady_state_keeps_every_lease);
    tcase_add_test(tc, cut_off_follower_gives_up_first);
    tcase_add_test(tc, cut_off_leader_gives_up_first);
    tcase_add_test(tc, ephemeral_handover_after_follower_pause);
    tcase_add_test(tc, ephemeral_handover_after_leader_pause);
    tcase_add_test(tc, random_runs_keep_the_invariant);
    tcase_add_test(tc, long_run_regressions);
    suite_add_tcase(su, tc);
    return su;
}
