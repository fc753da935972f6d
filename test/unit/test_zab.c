/*
 * test_zab.c — scripted scenarios for the consensus core, run in the
 * deterministic simulator (test/sim) with random faults off: every fault
 * is placed by hand and the simulated outcome (who leads, in which epoch,
 * how a learner was synchronised, what committed and by when) is asserted.
 * The simulator's invariants are checked after every step as well.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zk_common.h"

#include "../sim/sim.h"

#define SEC 1000000ull
#define MS  1000ull

static struct sim *mk(uint32_t voters, uint32_t observers, uint64_t seed)
{
    struct sim_opts o = { .seed = seed, .voters = voters,
                          .observers = observers };
    struct sim *s = sim_create(&o);
    ck_assert_ptr_nonnull(s);
    return s;
}

static void ok(struct sim *s)
{
    ck_assert_msg(sim_failure(s) == NULL, "%s", sim_failure(s));
}

static uint32_t wait_leader(struct sim *s, uint64_t max_us)
{
    ck_assert_int_eq(sim_run_while_not(s, max_us, sim_pred_leader, NULL), 1);
    return sim_leader(s);
}

static int leader_is(struct sim *s, void *arg)
{
    return sim_leader(s) == *(uint32_t *)arg;
}

static void wait_leader_is(struct sim *s, uint32_t id, uint64_t max_us)
{
    ck_assert_int_eq(sim_run_while_not(s, max_us, leader_is, &id), 1);
}

static int converged(struct sim *s, void *arg)
{
    (void)arg;
    return sim_pred_converged(s, NULL);
}

/* Submits n writes on id (retrying while not ready) and waits until all
 * are acknowledged. Returns the simulated time it took. */
static uint64_t write_n(struct sim *s, uint32_t id, uint32_t n, uint64_t max_us)
{
    uint64_t t0 = sim_now(s), want = sim_acked(s, id) + n;
    for (uint32_t k = 0; k < n;) {
        if (sim_write(s, id) == 0)
            k++;
        else
            ck_assert_int_eq(sim_run_until(s, sim_now(s) + 10 * MS), 0);
        ck_assert_uint_lt(sim_now(s) - t0, max_us);
    }
    while (sim_acked(s, id) < want) {
        ck_assert_int_eq(sim_run_until(s, sim_now(s) + MS), 0);
        ck_assert_msg(sim_now(s) - t0 < max_us, "writes on r%u not acked", id);
    }
    return sim_now(s) - t0;
}

static void wait_converged(struct sim *s, uint64_t max_us)
{
    ck_assert_int_eq(sim_run_while_not(s, max_us, converged, NULL), 1);
}

static uint32_t role(struct sim *s, uint32_t id)
{
    struct zk_zab_status st;
    sim_status(s, id, &st);
    return st.role;
}

/* Three voters led by 3 (equal histories: the highest id), n writes on
 * 1 committed and applied everywhere. */
static struct sim *mk_led3(uint64_t seed, uint32_t n)
{
    struct sim *s = mk(3, 0, seed);
    ck_assert_uint_eq(wait_leader(s, 2 * SEC), 3);
    write_n(s, 1, n, SEC);
    wait_converged(s, SEC);
    return s;
}

/* ---------------------------------------------------------------------- */

START_TEST(first_election)
{
    struct sim *s = mk(3, 0, 1);
    /* Equal (epoch, zxid): the highest id wins, in the first epoch. */
    ck_assert_uint_eq(wait_leader(s, 2 * SEC), 3);
    struct zk_zab_status st;
    sim_status(s, 3, &st);
    ck_assert_uint_eq(st.epoch, 1);
    ck_assert_uint_lt(sim_now(s), 100 * MS);
    write_n(s, 1, 10, SEC);
    wait_converged(s, SEC);
    ok(s);
    sim_destroy(s);
}
END_TEST

START_TEST(election_after_leader_crash)
{
    struct sim *s = mk_led3(2, 20);
    uint64_t t0 = sim_now(s);
    sim_crash(s, 3);
    /* Followers notice within syncLimit (10 ticks), elect 2 (same
     * history, higher id) in a new epoch. */
    ck_assert_uint_eq(wait_leader(s, 2 * SEC), 2);
    uint64_t took = sim_now(s) - t0;
    ck_assert_uint_ge(took, 100 * MS);
    ck_assert_uint_lt(took, 300 * MS);
    struct zk_zab_status st;
    sim_status(s, 2, &st);
    ck_assert_uint_eq(st.epoch, 2);
    write_n(s, 1, 20, SEC);
    sim_restart(s, 3);
    wait_converged(s, 2 * SEC);
    ck_assert_uint_eq(role(s, 3), ZK_ZAB_FOLLOWING);
    ok(s);
    sim_destroy(s);
}
END_TEST

/* kill -9 of the leader's process: the followers' connections to it are
 * reset, so they go LOOKING at once and, both having voted, decide
 * without waiting for a tick; a write submitted on a follower right after
 * the kill commits within a few simulated round trips and disk writes,
 * not after syncLimit (100 ms) as when the leader's host goes silent. */
START_TEST(election_after_leader_kill)
{
    struct sim *s = mk_led3(2, 20);
    uint64_t t0 = sim_now(s);
    sim_kill(s, 3);
    ck_assert_uint_eq(wait_leader(s, 2 * SEC), 2);
    ck_assert_uint_lt(sim_now(s) - t0, 10 * MS);
    struct zk_zab_status st;
    sim_status(s, 2, &st);
    ck_assert_uint_eq(st.epoch, 2);
    sim_kill(s, 2);                 /* no quorum: nobody leads */
    ck_assert_int_eq(sim_run_until(s, sim_now(s) + 500 * MS), 0);
    ck_assert_uint_eq(sim_leader(s), 0);
    sim_restart(s, 3);
    wait_leader(s, 2 * SEC);
    uint64_t took = write_n(s, 1, 1, SEC);
    ck_assert_uint_lt(took, 20 * MS);
    sim_restart(s, 2);
    wait_converged(s, 2 * SEC);
    ok(s);
    sim_destroy(s);
}
END_TEST

/* A connection between the leader and a follower is dropped while both
 * live: the follower goes LOOKING, hears from the leader that it leads
 * and follows it again in the same epoch (no election of a new leader). */
START_TEST(dropped_connection_rejoins_same_leader)
{
    struct sim *s = mk_led3(3, 5);
    struct zk_zab_status st;
    sim_status(s, 1, &st);
    uint64_t looked = st.n_elections;
    sim_reset_link(s, 3, 1);
    ck_assert_int_eq(sim_run_until(s, sim_now(s) + 2 * MS), 0);
    sim_status(s, 1, &st);
    ck_assert_uint_eq(st.n_elections, looked + 1);
    write_n(s, 1, 5, SEC);
    ck_assert_uint_eq(sim_leader(s), 3);
    sim_status(s, 3, &st);
    ck_assert_uint_eq(st.epoch, 1);
    sim_status(s, 1, &st);
    ck_assert_uint_eq(st.role, ZK_ZAB_FOLLOWING);
    ck_assert_uint_eq(st.epoch, 1);
    wait_converged(s, SEC);
    ok(s);
    sim_destroy(s);
}
END_TEST

START_TEST(far_behind_follower_gets_snap)
{
    struct sim *s = mk(3, 0, 3);
    ck_assert_uint_eq(wait_leader(s, 2 * SEC), 3);
    write_n(s, 3, 10, SEC);
    wait_converged(s, SEC);
    sim_crash(s, 1);
    /* More than ZK_ZAB_LOG_KEEP entries: the leader's log no longer
     * reaches back to r1's last zxid. */
    write_n(s, 3, ZK_ZAB_LOG_KEEP + 500, 20 * SEC);
    struct zk_zab_status before;
    sim_status(s, 3, &before);
    sim_restart(s, 1);
    wait_converged(s, 2 * SEC);
    struct zk_zab_status after;
    sim_status(s, 3, &after);
    ck_assert_uint_eq(after.n_snap, before.n_snap + 1);
    ck_assert_uint_eq(sim_chain(s, 1), sim_chain(s, 3));
    write_n(s, 1, 5, SEC);
    ok(s);
    sim_destroy(s);
}
END_TEST

START_TEST(uncommitted_entries_truncated)
{
    struct sim *s = mk(3, 0, 4);
    ck_assert_uint_eq(wait_leader(s, 2 * SEC), 3);
    write_n(s, 1, 10, SEC);
    wait_converged(s, SEC);
    uint64_t acked3 = sim_acked(s, 3);
    /* The leader is cut off and logs writes nobody else sees. */
    sim_isolate(s, 3);
    for (int k = 0; k < 5; k++)
        ck_assert_int_eq(sim_write(s, 3), 0);
    struct zk_zab_status st;
    ck_assert_int_eq(sim_run_until(s, sim_now(s) + 50 * MS), 0);
    sim_status(s, 3, &st);
    ck_assert_uint_gt(st.last_zxid, sim_applied(s, 1));
    /* 1 and 2 elect 2 in epoch 2 and commit more. */
    wait_leader_is(s, 2, 2 * SEC);
    write_n(s, 1, 10, SEC);
    struct zk_zab_status lead;
    sim_status(s, 2, &lead);
    sim_heal(s);
    wait_converged(s, 2 * SEC);
    struct zk_zab_status after;
    sim_status(s, 2, &after);
    ck_assert_uint_eq(after.n_trunc, lead.n_trunc + 1);
    ck_assert_uint_eq(sim_acked(s, 3), acked3);   /* never committed */
    ck_assert_uint_eq(sim_chain(s, 3), sim_chain(s, 2));
    ok(s);
    sim_destroy(s);
}
END_TEST

START_TEST(minority_cannot_commit)
{
    struct sim *s = mk(5, 0, 5);
    ck_assert_uint_eq(wait_leader(s, 2 * SEC), 5);
    write_n(s, 1, 5, SEC);
    wait_converged(s, SEC);
    for (uint32_t a = 1; a <= 2; a++)
        for (uint32_t b = 3; b <= 5; b++) {
            sim_block(s, a, b, 1);
            sim_block(s, b, a, 1);
        }
    uint64_t a1 = sim_acked(s, 1), a2 = sim_acked(s, 2);
    for (int t = 0; t < 100; t++) {
        sim_write(s, 1);
        sim_write(s, 2);
        ck_assert_int_eq(sim_run_until(s, sim_now(s) + 20 * MS), 0);
    }
    ck_assert_uint_eq(sim_acked(s, 1), a1);
    ck_assert_uint_eq(sim_acked(s, 2), a2);
    ck_assert_uint_ne(role(s, 1), ZK_ZAB_LEADING);
    ck_assert_uint_ne(role(s, 2), ZK_ZAB_LEADING);
    write_n(s, 4, 10, SEC);                        /* majority goes on */
    sim_heal(s);
    wait_converged(s, 3 * SEC);
    write_n(s, 1, 5, SEC);
    ok(s);
    sim_destroy(s);
}
END_TEST

static int majority_leads(struct sim *s, void *arg)
{
    (void)arg;
    return sim_leader(s) >= 1 && sim_leader(s) <= 3;
}

START_TEST(isolated_leader_steps_down)
{
    struct sim *s = mk(5, 0, 6);
    ck_assert_uint_eq(wait_leader(s, 2 * SEC), 5);
    write_n(s, 2, 5, SEC);
    wait_converged(s, SEC);
    uint64_t acked5 = sim_acked(s, 5);
    /* {4,5} against {1,2,3}: the leader is in the minority. */
    for (uint32_t a = 4; a <= 5; a++)
        for (uint32_t b = 1; b <= 3; b++) {
            sim_block(s, a, b, 1);
            sim_block(s, b, a, 1);
        }
    uint64_t t0 = sim_now(s);
    for (int k = 0; k < 3; k++)
        sim_write(s, 5);
    while (role(s, 5) == ZK_ZAB_LEADING) {
        ck_assert_int_eq(sim_run_until(s, sim_now(s) + MS), 0);
        ck_assert_uint_lt(sim_now(s) - t0, 200 * MS);  /* syncLimit+1 */
    }
    ck_assert_uint_ge(sim_now(s) - t0, 100 * MS);
    /* A member of the majority leads epoch 2 (which one depends on what
     * each had logged when the link broke). */
    ck_assert_int_eq(sim_run_while_not(s, 2 * SEC, majority_leads, NULL), 1);
    struct zk_zab_status st;
    sim_status(s, sim_leader(s), &st);
    ck_assert_uint_eq(st.epoch, 2);
    write_n(s, 1, 5, SEC);
    ck_assert_uint_eq(sim_acked(s, 5), acked5);   /* not while cut off */
    sim_heal(s);
    wait_converged(s, 3 * SEC);
    /* The driver proposes them again in the new epoch if their deadline
     * has not passed (they never committed in the old one): each at most
     * once (the simulator's invariants check that none commits twice). */
    ck_assert_uint_le(sim_acked(s, 5), acked5 + 3);
    ok(s);
    sim_destroy(s);
}
END_TEST

START_TEST(observers_catch_up)
{
    struct sim *s = mk(3, 2, 7);
    ck_assert_uint_eq(wait_leader(s, 2 * SEC), 3);
    wait_converged(s, SEC);
    ck_assert_uint_eq(role(s, 4), ZK_ZAB_OBSERVING);
    sim_crash(s, 4);
    write_n(s, 5, 50, 2 * SEC);                  /* observers can write */
    write_n(s, 1, 50, 2 * SEC);
    sim_restart(s, 4);
    wait_converged(s, 2 * SEC);
    ck_assert_uint_eq(sim_chain(s, 4), sim_chain(s, 3));
    /* Observers do not vote: losing both changes nothing. */
    sim_crash(s, 4);
    sim_crash(s, 5);
    write_n(s, 2, 10, SEC);
    ck_assert_uint_eq(sim_leader(s), 3);
    ok(s);
    sim_destroy(s);
}
END_TEST

START_TEST(session_expires_and_closes)
{
    struct sim *s = mk(3, 0, 8);
    ck_assert_uint_eq(wait_leader(s, 2 * SEC), 3);
    wait_converged(s, SEC);
    ck_assert_int_eq(sim_run_until(s, sim_now(s) + 100 * MS), 0);
    struct zk_zab_status st1;
    sim_status(s, 1, &st1);
    ck_assert_int_eq(st1.session_open, 1);
    ck_assert_uint_eq(sim_model_session(s, 3, 1), st1.session);
    uint64_t closes = sim_closes(s, 3);
    sim_isolate(s, 1);
    /* sessionTimeout is 40 ticks: the leader proposes the close. */
    ck_assert_int_eq(sim_run_until(s, sim_now(s) + 600 * MS), 0);
    ck_assert_uint_eq(sim_closes(s, 3), closes + 1);
    ck_assert_uint_eq(sim_model_session(s, 3, 1), 0);
    ck_assert_uint_eq(sim_model_session(s, 2, 1), 0);
    sim_heal(s);
    wait_converged(s, 2 * SEC);
    ck_assert_int_eq(sim_run_until(s, sim_now(s) + 200 * MS), 0);
    struct zk_zab_status again;
    sim_status(s, 1, &again);
    ck_assert_int_eq(again.session_open, 1);
    ck_assert_uint_ne(again.session, st1.session);
    ck_assert_uint_eq(sim_model_session(s, 2, 1), again.session);
    ok(s);
    sim_destroy(s);
}
END_TEST

/* Crash the future leader (or a follower) after k steps, for k covering
 * election, discovery, sync and broadcast, including in the middle of an
 * unpersisted Ready; it must come back and everything converge. */
START_TEST(restart_in_every_phase)
{
    for (uint64_t k = 1; k < 1500; k += 23) {
        struct sim *s = mk(3, 1, 100 + k);
        uint32_t victim = (uint32_t)(k % 4) + 1;
        ck_assert_int_eq(sim_run_steps(s, k), 0);
        sim_write(s, 1);
        ck_assert_int_eq(sim_run_steps(s, k / 2), 0);
        sim_crash(s, victim);
        ck_assert_int_eq(sim_run_until(s, sim_now(s) + 50 * MS), 0);
        sim_restart(s, victim);
        wait_leader(s, 3 * SEC);
        write_n(s, victim, 3, 3 * SEC);
        wait_converged(s, 3 * SEC);
        ok(s);
        sim_destroy(s);
    }
}
END_TEST

START_TEST(counter_overflow_forces_new_epoch)
{
    struct sim_opts o = { .seed = 9, .voters = 3, .counter_max = 20 };
    struct sim *s = sim_create(&o);
    ck_assert_uint_eq(wait_leader(s, 2 * SEC), 3);
    /* Written on the leader: a forwarded write may be lost when the
     * leader steps down for a new epoch, one logged there is not. */
    uint64_t t0 = sim_now(s);
    for (int k = 0; k < 60;) {
        uint32_t l = wait_leader(s, 2 * SEC);
        if (sim_write(s, l) == 0)
            k++;
        ck_assert_int_eq(sim_run_until(s, sim_now(s) + 5 * MS), 0);
    }
    wait_converged(s, 2 * SEC);
    uint64_t acked = 0;
    for (uint32_t id = 1; id <= 3; id++)
        acked += sim_acked(s, id);
    ck_assert_uint_eq(acked, 60);
    struct zk_zab_status st;
    sim_status(s, sim_leader(s), &st);
    ck_assert_uint_ge(st.epoch, 4);
    ck_assert_uint_le(ZK_ZAB_COUNTER(st.last_zxid), 20);
    ck_assert_uint_lt(sim_now(s) - t0, 5 * SEC);
    ok(s);
    sim_destroy(s);
}
END_TEST

START_TEST(replay_is_deterministic)
{
    uint64_t chain[2], len[2];
    for (int i = 0; i < 2; i++) {
        struct sim_opts o = { .seed = 4242, .voters = 5, .observers = 1,
                              .faults = 1, .clients = 1 };
        struct sim *s = sim_create(&o);
        ck_assert_int_eq(sim_random_run(s, 30000), 0);
        chain[i] = sim_chain(s, 1);
        len[i] = sim_history_len(s);
        sim_destroy(s);
    }
    ck_assert_uint_eq(chain[0], chain[1]);
    ck_assert_uint_eq(len[0], len[1]);
    ck_assert_uint_gt(len[0], 100);
}
END_TEST

/* The API's error paths, on a bare core. */
START_TEST(api_errors)
{
    struct zk_zab_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.id = 1;
    cfg.n_members = 2;
    cfg.members[0].id = 1;
    cfg.members[1].id = 2;
    cfg.init_limit_ticks = cfg.sync_limit_ticks = 5;
    cfg.session_timeout_ticks = 10;
    struct zk_zab *z = NULL;
    struct zk_zab_config bad = cfg;
    bad.id = 3;                                       /* not a member */
    ck_assert_int_eq(zk_zab_create(&bad, NULL, &z), -EINVAL);
    bad = cfg;
    bad.members[1].id = 1;                            /* duplicate id */
    ck_assert_int_eq(zk_zab_create(&bad, NULL, &z), -EINVAL);
    bad = cfg;
    bad.sync_limit_ticks = 0;
    ck_assert_int_eq(zk_zab_create(&bad, NULL, &z), -EINVAL);
    ck_assert_ptr_null(z);
    uint8_t p[2] = { 1, 2 };
    struct zk_zab_entry e[2] = { { 5, 0, 1, ZK_ZAB_ENTRY_WRITE, 2, p },
                                 { 4, 0, 1, ZK_ZAB_ENTRY_WRITE, 2, p } };
    struct zk_zab_restore st;
    memset(&st, 0, sizeof(st));
    st.entries = e;
    st.n_entries = 2;                                 /* unordered   */
    ck_assert_int_eq(zk_zab_create(&cfg, &st, &z), -EINVAL);
    st.n_entries = 1;
    ck_assert_int_eq(zk_zab_create(&cfg, &st, &z), 0);
    struct zk_zab_status s1;
    zk_zab_status(z, &s1);
    ck_assert_uint_eq(s1.role, ZK_ZAB_LOOKING);
    ck_assert_uint_eq(s1.last_zxid, 5);
    ck_assert_uint_eq(s1.persisted_zxid, 5);
    uint64_t req;
    ck_assert_int_eq(zk_zab_propose(z, p, 2, &req), ZK_ENOTREADY);
    ck_assert_int_eq(zk_zab_propose(z, p, ZK_ZAB_PAYLOAD_MAX + 1, &req),
                     -EMSGSIZE);
    struct zk_zab_msg m;
    memset(&m, 0, sizeof(m));
    m.type = ZK_ZAB_MSG_PING;
    m.from = 2;
    m.to = 2;
    ck_assert_int_eq(zk_zab_step(z, &m), -EINVAL);    /* not for us  */
    /* The first Ready carries election votes to the peer. */
    ck_assert_int_eq(zk_zab_has_ready(z), 1);
    struct zk_zab_ready rd;
    zk_zab_ready(z, &rd);
    ck_assert_uint_ge(rd.n_msgs, 1);
    ck_assert_uint_eq(rd.msgs[0].type, ZK_ZAB_MSG_VOTE);
    ck_assert_uint_eq(rd.msgs[0].to, 2);
    ck_assert_int_eq(zk_zab_has_ready(z), 0);         /* outstanding */
    zk_zab_advance(z);
    zk_zab_destroy(z);
}
END_TEST

/* Drains z's Readies; returns how many messages of type went to `to`, and
 * the link of the last FOLLOWERINFO in *link (if not NULL). */
/* Member 1 of three voters, short limits. */
static void cfg_three(struct zk_zab_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->id = 1;
    cfg->n_members = 3;
    for (uint32_t i = 0; i < 3; i++)
        cfg->members[i].id = i + 1;
    cfg->init_limit_ticks = cfg->sync_limit_ticks = 5;
    cfg->session_timeout_ticks = 10;
}

/* A store that accepted and is in epoch, with nothing else in it. */
static void restore_at(struct zk_zab_restore *rs, uint64_t epoch)
{
    memset(rs, 0, sizeof(*rs));
    rs->hard.accepted_epoch = rs->hard.current_epoch = epoch;
}

static int drain(struct zk_zab *z, unsigned type, uint32_t to,
                 uint64_t *link)
{
    int n = 0;
    while (zk_zab_has_ready(z)) {
        struct zk_zab_ready rd;
        zk_zab_ready(z, &rd);
        for (size_t i = 0; i < rd.n_msgs; i++) {
            if (rd.msgs[i].type == type && rd.msgs[i].to == to)
                n++;
            if (link && rd.msgs[i].type == ZK_ZAB_MSG_FOLLOWERINFO)
                *link = rd.msgs[i].link;
        }
        zk_zab_advance(z);
    }
    return n;
}

/* Zab discovery: a learner that has accepted epoch 5 must refuse a leader
 * that proposes epoch 3 (it would follow a history older than one it
 * promised), and must accept epoch 6. */
START_TEST(learner_refuses_older_epoch)
{
    struct zk_zab_config cfg;
    cfg_three(&cfg);
    struct zk_zab_restore st;
    restore_at(&st, 5);
    for (uint64_t epoch = 3; epoch <= 6; epoch += 3) {
        struct zk_zab *z = NULL;
        ck_assert_int_eq(zk_zab_create(&cfg, &st, &z), 0);
        drain(z, 0, 0, NULL);
        struct zk_zab_msg m;
        memset(&m, 0, sizeof(m));
        m.type = ZK_ZAB_MSG_VOTE;           /* 3 reports that it leads */
        m.from = 3;
        m.to = 1;
        m.state = ZK_ZAB_LEADING;
        m.leader = 3;
        m.zxid2 = epoch;
        ck_assert_int_eq(zk_zab_step(z, &m), 0);
        uint64_t link = 0;
        ck_assert_int_eq(drain(z, ZK_ZAB_MSG_FOLLOWERINFO, 3, &link), 1);
        memset(&m, 0, sizeof(m));
        m.type = ZK_ZAB_MSG_LEADERINFO;
        m.from = 3;
        m.to = 1;
        m.epoch = epoch;
        m.zxid2 = link;
        m.link = 77;
        ck_assert_int_eq(zk_zab_step(z, &m), 0);
        int acks = drain(z, ZK_ZAB_MSG_ACKEPOCH, 3, NULL);
        struct zk_zab_status s1;
        zk_zab_status(z, &s1);
        if (epoch < 5) {
            ck_assert_int_eq(acks, 0);
            ck_assert_uint_eq(s1.hard.accepted_epoch, 5);
            ck_assert_uint_ne(s1.role, ZK_ZAB_FOLLOWING);
        } else {
            ck_assert_int_eq(acks, 1);
            ck_assert_uint_eq(s1.hard.accepted_epoch, epoch);
        }
        zk_zab_destroy(z);
    }
}
END_TEST

/* Takes z's Readies; returns the flags of the last message of type to
 * `to` (-1 if none), and the link of the last FOLLOWERINFO in *link. */
/* Takes every Ready; *out (if set) is the last message of type to `to`.
 * Returns whether there was one. */
static int last_msg(struct zk_zab *z, unsigned type, uint32_t to,
                    uint64_t *link, struct zk_zab_msg *out)
{
    int found = 0;
    while (zk_zab_has_ready(z)) {
        struct zk_zab_ready rd;
        zk_zab_ready(z, &rd);
        for (size_t i = 0; i < rd.n_msgs; i++) {
            if (rd.msgs[i].type == type && rd.msgs[i].to == to) {
                found = 1;
                if (out)
                    *out = rd.msgs[i];
            }
            if (link && rd.msgs[i].type == ZK_ZAB_MSG_FOLLOWERINFO)
                *link = rd.msgs[i].link;
        }
        zk_zab_advance(z);
    }
    return found;
}

static int last_flags(struct zk_zab *z, unsigned type, uint32_t to,
                      uint64_t *link)
{
    struct zk_zab_msg m;
    return last_msg(z, type, to, link, &m) ? (int)m.flags : -1;
}

static void step_msg(struct zk_zab *z, uint8_t type, uint64_t epoch,
                     uint64_t link, uint64_t seq, uint64_t zxid2)
{
    struct zk_zab_msg m;
    memset(&m, 0, sizeof(m));
    m.type = type;
    m.from = 3;
    m.to = 1;
    m.epoch = epoch;
    m.link = link;
    m.seq = seq;
    m.zxid2 = zxid2;
    ck_assert_int_eq(zk_zab_step(z, &m), 0);
}

/* z (replica 1) hears replica 3's VOTE: it leads epoch 5. */
static void hear_leader3(struct zk_zab *z)
{
    struct zk_zab_msg m;
    memset(&m, 0, sizeof(m));
    m.type = ZK_ZAB_MSG_VOTE;
    m.from = 3;
    m.to = 1;
    m.state = ZK_ZAB_LEADING;
    m.leader = 3;
    m.zxid2 = m.link = m.seq = m.aux = 5;
    ck_assert_int_eq(zk_zab_step(z, &m), 0);
}

/* Syncs z (server 1) with leader 3 in epoch 5 by DIFF from an empty
 * log, then hands it two committed entries: as an INFORM (observer) or
 * as a PROPOSE and a COMMIT (follower). Returns the first Ready's commit
 * count after that, and its status before advancing in *st. */
static size_t learn_two(struct zk_zab *z, int observer,
                        struct zk_zab_status *st)
{
    static const uint8_t data[4] = "abc";
    struct zk_zab_entry en[2];
    struct zk_zab_msg m;
    struct zk_zab_ready rd;
    uint64_t link = 0;
    hear_leader3(z);
    ck_assert(last_msg(z, ZK_ZAB_MSG_FOLLOWERINFO, 3, &link, NULL));
    step_msg(z, ZK_ZAB_MSG_LEADERINFO, 5, 77, 0, link);
    step_msg(z, ZK_ZAB_MSG_DIFF, 5, 77, 1, 0);
    step_msg(z, ZK_ZAB_MSG_NEWLEADER, 5, 77, 2, 0);
    ck_assert(last_msg(z, ZK_ZAB_MSG_ACK, 3, NULL, NULL));
    for (int i = 0; i < 2; i++)
        en[i] = (struct zk_zab_entry){.zxid = ZK_ZAB_ZXID(5, i + 1),
                                      .type = ZK_ZAB_ENTRY_WRITE,
                                      .origin = 2, .req_id = i + 1,
                                      .len = 4, .data = data};
    memset(&m, 0, sizeof(m));
    m.type = observer ? ZK_ZAB_MSG_INFORM : ZK_ZAB_MSG_PROPOSE;
    m.from = 3;
    m.to = 1;
    m.epoch = 5;
    m.link = 77;
    m.seq = 3;
    m.entries = en;
    m.n_entries = 2;
    ck_assert_int_eq(zk_zab_step(z, &m), 0);
    if (!observer) {
        memset(&m, 0, sizeof(m));
        m.type = ZK_ZAB_MSG_COMMIT;
        m.from = 3;
        m.to = 1;
        m.epoch = 5;
        m.link = 77;
        m.seq = 4;
        m.zxid = ZK_ZAB_ZXID(5, 2);
        ck_assert_int_eq(zk_zab_step(z, &m), 0);
    }
    ck_assert(zk_zab_has_ready(z));
    zk_zab_ready(z, &rd);
    ck_assert_uint_eq(rd.n_ops, 2);
    ck_assert_uint_eq(rd.ops[0].kind, ZK_ZAB_OP_APPEND);
    zk_zab_status(z, st);
    return rd.n_commits;
}

/* An observer applies an INFORM's entries in the Ready that logs them
 * (one store batch per INFORM: it promises nothing, so its apply need not
 * wait for its log to be durable); a follower applies entries only after
 * the Ready that logs them is durable (applied <= persisted). */
START_TEST(observer_applies_in_the_logging_ready)
{
    for (int observer = 0; observer <= 1; observer++) {
        struct zk_zab_config cfg;
        struct zk_zab_status st;
        struct zk_zab *z = NULL;
        cfg_three(&cfg);
        cfg.members[0].observer = observer;
        ck_assert_int_eq(zk_zab_create(&cfg, NULL, &z), 0);
        drain(z, 0, 0, NULL);
        size_t n = learn_two(z, observer, &st);
        ck_assert_uint_eq(st.persisted_zxid, 0);
        if (observer) {
            ck_assert_uint_eq(n, 2);
            ck_assert_uint_eq(st.applied_zxid, ZK_ZAB_ZXID(5, 2));
            zk_zab_advance(z);
            zk_zab_status(z, &st);
            ck_assert_uint_eq(st.persisted_zxid, ZK_ZAB_ZXID(5, 2));
            ck_assert_uint_eq(st.applied_zxid, ZK_ZAB_ZXID(5, 2));
        } else {
            ck_assert_uint_eq(n, 0);
            ck_assert_uint_eq(st.applied_zxid, 0);
            zk_zab_advance(z);
            struct zk_zab_ready rd;
            ck_assert(zk_zab_has_ready(z));
            zk_zab_ready(z, &rd);
            ck_assert_uint_eq(rd.n_commits, 2);
            ck_assert_uint_eq(rd.n_ops, 0);
            zk_zab_advance(z);
        }
        zk_zab_destroy(z);
    }
}
END_TEST

/* Replica 3 reports that it leads epoch 5; z (abstaining) follows it
 * with an ABSTAIN FOLLOWERINFO, its ACKEPOCH for `epoch` is not counted
 * and its accepted epoch stays acc; then a DIFF, NEWLEADER and a PING.
 * Returns the flags of z's last ACK. */
static int sync_abstaining(struct zk_zab *z, uint64_t epoch, uint64_t acc)
{
    struct zk_zab_status st;
    hear_leader3(z);
    uint64_t link = 0;
    ck_assert_int_eq(last_flags(z, ZK_ZAB_MSG_FOLLOWERINFO, 3, &link),
                     ZK_ZAB_MF_ABSTAIN);
    step_msg(z, ZK_ZAB_MSG_LEADERINFO, epoch, 77, 0, link);
    ck_assert_int_eq(last_flags(z, ZK_ZAB_MSG_ACKEPOCH, 3, NULL), 0);
    zk_zab_status(z, &st);
    ck_assert_uint_eq(st.hard.accepted_epoch, acc);
    step_msg(z, ZK_ZAB_MSG_DIFF, epoch, 77, 1, 0);
    step_msg(z, ZK_ZAB_MSG_NEWLEADER, epoch, 77, 2, 0);
    last_flags(z, ZK_ZAB_MSG_ACK, 3, NULL);
    step_msg(z, ZK_ZAB_MSG_PING, epoch, 77, 3, 0);
    return last_flags(z, ZK_ZAB_MSG_ACK, 3, NULL);
}

/* After sync_abstaining(): in a fresh epoch (6) a member again, SYNCED
 * ACKs and current epoch 6; in a stale one still abstaining, ACKs
 * without SYNCED and the current epoch it had (cur). */
static void check_synced(const struct zk_zab_status *st, int ack,
                         int fresh, uint64_t cur)
{
    ck_assert_int_eq(st->abstaining, !fresh);
    ck_assert_uint_eq(st->hard.current_epoch, fresh ? 6 : cur);
    ck_assert_int_eq(ack, fresh ? ZK_ZAB_MF_SYNCED : 0);
}

/* A voter with an empty store (its disk was wiped) that hears a peer
 * with history abstains: no vote, an uncounted FOLLOWERINFO and
 * ACKEPOCH, no epoch persisted; synced by a leader of epoch 5 while
 * peer 2 reports it accepted 6, it only learns (ACKs without SYNCED); in
 * epoch 6 (fresh: no voter of the quorum it heard accepted more) it is a
 * member again once NEWLEADER is durable. With no history anywhere (a
 * new ensemble) it votes. */
START_TEST(empty_store_abstains)
{
    struct zk_zab_config cfg;
    cfg_three(&cfg);
    for (uint64_t epoch = 4; epoch <= 6; epoch++) {
        struct zk_zab *z = NULL;
        struct zk_zab_status st;
        ck_assert_int_eq(zk_zab_create(&cfg, NULL, &z), 0);
        drain(z, 0, 0, NULL);
        struct zk_zab_msg m;
        memset(&m, 0, sizeof(m));
        m.type = ZK_ZAB_MSG_VOTE;           /* 2 looking, no history */
        m.from = 2;
        m.to = 1;
        m.epoch = 1;
        m.leader = 2;
        ck_assert_int_eq(zk_zab_step(z, &m), 0);
        zk_zab_status(z, &st);
        ck_assert_int_eq(st.abstaining, 0);
        if (epoch == 4) {       /* new ensemble: votes for 2 as usual */
            ck_assert_int_eq(last_flags(z, ZK_ZAB_MSG_VOTE, 2, NULL), 0);
            zk_zab_destroy(z);
            continue;
        }
        m.seq = m.aux = 4;          /* 2 has history: current epoch 4, */
        m.link = 6;                 /* and accepted 6 from a candidate */
        m.zxid = ZK_ZAB_ZXID(4, 9);
        ck_assert_int_eq(zk_zab_step(z, &m), 0);
        zk_zab_status(z, &st);
        ck_assert_int_eq(st.abstaining, 1);
        int ack = sync_abstaining(z, epoch, 0);
        zk_zab_status(z, &st);
        ck_assert_uint_eq(st.role, ZK_ZAB_FOLLOWING);
        ck_assert_int_eq(st.established, 1);            /* it serves */
        check_synced(&st, ack, epoch == 6, 0);
        zk_zab_destroy(z);
    }
}
END_TEST

/* A voter whose store lost its last writes (restore's lost_writes: the
 * embedder's marker is ahead of the store) abstains from its start as an
 * empty store does, although its store holds epochs: it votes for
 * nobody, its FOLLOWERINFO says ABSTAIN, its ACKEPOCH is not counted and
 * nothing is persisted; synced in epoch 5 while peer 2 reports it
 * accepted 6 it only learns; in epoch 6 it is a member again once
 * NEWLEADER is durable. The same store without lost_writes votes. */
START_TEST(lost_writes_abstain)
{
    struct zk_zab_config cfg;
    cfg_three(&cfg);
    struct zk_zab_restore rs;
    restore_at(&rs, 4);
    for (uint64_t epoch = 4; epoch <= 6; epoch++) {
        struct zk_zab *z = NULL;
        struct zk_zab_status st;
        rs.lost_writes = epoch > 4;
        ck_assert_int_eq(zk_zab_create(&cfg, &rs, &z), 0);
        zk_zab_status(z, &st);
        ck_assert_int_eq(st.abstaining, rs.lost_writes);
        struct zk_zab_msg v;
        ck_assert(last_msg(z, ZK_ZAB_MSG_VOTE, 2, NULL, &v));
        ck_assert_uint_eq(v.leader, rs.lost_writes ? 0 : 1);
        if (epoch == 4) {
            zk_zab_destroy(z);
            continue;
        }
        struct zk_zab_msg m;
        memset(&m, 0, sizeof(m));
        m.type = ZK_ZAB_MSG_VOTE;           /* 2 accepted 6 */
        m.from = 2;
        m.to = 1;
        m.epoch = 1;
        m.leader = 2;
        m.seq = m.aux = 4;
        m.link = 6;
        m.zxid = ZK_ZAB_ZXID(4, 9);
        ck_assert_int_eq(zk_zab_step(z, &m), 0);
        int ack = sync_abstaining(z, epoch, 4);
        zk_zab_status(z, &st);
        ck_assert_int_eq(st.established, 1);            /* it serves */
        check_synced(&st, ack, epoch == 6, 4);
        zk_zab_destroy(z);
    }
}
END_TEST

/* A VOTE to 1 from `from`, LOOKING in round 1 for itself, with its
 * current and accepted epochs and flags. */
static void step_vote(struct zk_zab *z, uint32_t from, uint64_t cur,
                      uint64_t acc, uint64_t zxid, uint8_t flags)
{
    struct zk_zab_msg m;
    memset(&m, 0, sizeof(m));
    m.type = ZK_ZAB_MSG_VOTE;
    m.from = from;
    m.to = 1;
    m.epoch = 1;
    m.leader = from;
    m.seq = m.aux = cur;
    m.link = acc;
    m.zxid = zxid;
    m.flags = flags;
    ck_assert_int_eq(zk_zab_step(z, &m), 0);
}

/* A voter whose store was put back (restore's restored) abstains from
 * its start and says RESTORED in its VOTEs. Every other voter reporting
 * a restored store (2) or an empty one (3): it votes, for itself. One
 * that reports history without RESTORED (2, and 3 heard RESTORED first
 * but then with history): it keeps abstaining, and is a member again
 * only once synced in a fresh epoch, its VOTEs no longer RESTORED. */
START_TEST(restored_store_abstains_unless_all_restored)
{
    struct zk_zab_config cfg;
    cfg_three(&cfg);
    struct zk_zab_restore rs;
    restore_at(&rs, 4);
    rs.restored = 1;      /* no entries: sync_abstaining's DIFF is empty */
    for (int all = 0; all <= 1; all++) {
        struct zk_zab *z = NULL;
        struct zk_zab_status st;
        struct zk_zab_msg v;
        ck_assert_int_eq(zk_zab_create(&cfg, &rs, &z), 0);
        zk_zab_status(z, &st);
        ck_assert_int_eq(st.abstaining, 1);
        ck_assert(last_msg(z, ZK_ZAB_MSG_VOTE, 2, NULL, &v));
        ck_assert_uint_eq(v.leader, 0);
        ck_assert_int_eq(v.flags, ZK_ZAB_MF_RESTORED);
        step_vote(z, 2, 4, 4, rs.applied_zxid,
                  all ? ZK_ZAB_MF_RESTORED : 0);
        zk_zab_status(z, &st);
        ck_assert_int_eq(st.abstaining, 1);       /* 3 not heard yet */
        if (all) {
            step_vote(z, 3, 0, 0, 0, 0);          /* 3 is empty */
            zk_zab_status(z, &st);
            ck_assert_int_eq(st.abstaining, 0);
            ck_assert(last_msg(z, ZK_ZAB_MSG_VOTE, 2, NULL, &v));
            ck_assert_uint_eq(v.leader, 1);
            ck_assert_uint_eq(v.aux, 4);
            ck_assert_int_eq(v.flags, ZK_ZAB_MF_RESTORED);
            zk_zab_destroy(z);
            continue;
        }
        step_vote(z, 3, 4, 4, rs.applied_zxid, ZK_ZAB_MF_RESTORED);
        step_vote(z, 3, 5, 6, ZK_ZAB_ZXID(5, 2), 0);
        step_vote(z, 2, 4, 6, rs.applied_zxid, 0);
        zk_zab_status(z, &st);
        ck_assert_int_eq(st.abstaining, 1);
        int ack = sync_abstaining(z, 6, 4);
        zk_zab_status(z, &st);
        check_synced(&st, ack, 1, 4);
        step_vote(z, 2, 4, 6, rs.applied_zxid, 0);  /* answered at once */
        ck_assert(last_msg(z, ZK_ZAB_MSG_VOTE, 2, NULL, &v));
        ck_assert_uint_eq(v.leader, 3);
        ck_assert_int_eq(v.flags & ZK_ZAB_MF_RESTORED, 0);
        zk_zab_destroy(z);
    }
}
END_TEST

/* A message to 1 from voter 2. */
static struct zk_zab_msg msg_from2(uint8_t type, uint64_t epoch,
                                   uint64_t link)
{
    struct zk_zab_msg m;
    memset(&m, 0, sizeof(m));
    m.type = type;
    m.from = 2;
    m.to = 1;
    m.epoch = epoch;
    m.link = link;
    return m;
}

/* Takes the leader z's Readies (every one durable) until one is empty
 * (a leader marks itself dirty at every advance, so it always has one),
 * at most 32. With a link, answers each PROPOSE to 2 with 2's ACK of its
 * last entry on that link. *out (if set) is the last message of type to
 * 2 (type 0 if none). Returns how many entries z appended (proposed). */
static int lead_serve(struct zk_zab *z, uint64_t link, uint8_t type,
                      struct zk_zab_msg *out)
{
    int appended = 0, n = 0, empty = 0;
    if (out)
        memset(out, 0, sizeof(*out));
    while (!empty) {
        struct zk_zab_ready rd;
        uint64_t ack = 0;
        ck_assert_int_lt(n++, 32);
        ck_assert(zk_zab_has_ready(z));
        zk_zab_ready(z, &rd);
        empty = !rd.n_ops && !rd.n_msgs && !rd.n_commits &&
                !rd.has_hard_state;
        for (size_t i = 0; i < rd.n_ops; i++)
            appended += rd.ops[i].kind == ZK_ZAB_OP_APPEND;
        for (size_t i = 0; i < rd.n_msgs; i++) {
            const struct zk_zab_msg *m = &rd.msgs[i];
            if (m->to != 2)
                continue;
            if (m->type == ZK_ZAB_MSG_PROPOSE && m->n_entries && link)
                ack = m->entries[m->n_entries - 1].zxid;
            if (out && m->type == type) {
                *out = *m;
                out->entries = NULL;    /* valid until advance only */
            }
        }
        zk_zab_advance(z);
        if (ack) {
            struct zk_zab_msg m = msg_from2(ZK_ZAB_MSG_ACK, 5, link);
            m.zxid = ack;
            m.flags = ZK_ZAB_MF_SYNCED;
            ck_assert_int_eq(zk_zab_step(z, &m), 0);
        }
    }
    return appended;
}

/* z (member 1 of cfg_three, restored in epoch 4, its log ending at last:
 * the best candidate, as 2's log is empty) is elected with 2's vote,
 * proposes epoch 5 and gets 2's FOLLOWERINFO and ACKEPOCH, message by
 * message; the Readies that sync 2 are left to the caller. Returns the
 * link it gave 2. */
static uint64_t lead_to_sync_2(struct zk_zab *z, uint64_t last)
{
    struct zk_zab_status st;
    struct zk_zab_msg m = msg_from2(ZK_ZAB_MSG_VOTE, 1, 4), li;
    m.leader = 1;                       /* LOOKING, round 1, for 1 */
    m.seq = m.aux = 4;
    m.zxid = last;                      /* 1's history */
    ck_assert_int_eq(zk_zab_step(z, &m), 0);
    zk_zab_tick(z);                     /* FLE's finalize wait */
    zk_zab_status(z, &st);
    ck_assert_uint_eq(st.role, ZK_ZAB_LEADING);
    m = msg_from2(ZK_ZAB_MSG_FOLLOWERINFO, 0, 41);
    m.aux = 4;
    ck_assert_int_eq(zk_zab_step(z, &m), 0);
    lead_serve(z, 0, ZK_ZAB_MSG_LEADERINFO, &li);
    ck_assert_uint_eq(li.type, ZK_ZAB_MSG_LEADERINFO);
    ck_assert_uint_eq(li.epoch, 5);
    ck_assert_uint_eq(li.zxid2, 41);
    m = msg_from2(ZK_ZAB_MSG_ACKEPOCH, 5, li.link);
    m.aux = 4;                          /* 2's log is empty: zxid 0 */
    m.flags = ZK_ZAB_MF_COUNTED;
    ck_assert_int_eq(zk_zab_step(z, &m), 0);
    return li.link;
}

/* z (as for lead_to_sync_2, with an empty log) is also established with
 * 2 following (the ACK of NEWLEADER). Returns the link it gave 2. */
static uint64_t lead_with_2(struct zk_zab *z)
{
    struct zk_zab_status st;
    struct zk_zab_msg m, nl;
    uint64_t link = lead_to_sync_2(z, 0);
    lead_serve(z, 0, ZK_ZAB_MSG_NEWLEADER, &nl);
    ck_assert_uint_eq(nl.type, ZK_ZAB_MSG_NEWLEADER);
    m = msg_from2(ZK_ZAB_MSG_ACK, 5, link);
    m.flags = ZK_ZAB_MF_SYNCED;
    ck_assert_int_eq(zk_zab_step(z, &m), 0);
    lead_serve(z, 0, 0, NULL);
    zk_zab_status(z, &st);
    ck_assert_int_eq(st.established, 1);
    ck_assert_uint_eq(st.epoch, 5);
    return link;
}

/* Member 2's session id number ctr (incarnation 1). */
#define SID2(ctr) ((2ull << 56) | (1ull << 32) | (ctr))

/* 2 forwards (REQUEST, epoch 5) a SESSION_OPEN of sid. */
static void request_open(struct zk_zab *z, uint64_t sid)
{
    uint8_t b[8];
    zk_put_be64(b, sid);
    struct zk_zab_entry e = { .type = ZK_ZAB_ENTRY_SESSION_OPEN,
                              .origin = 2, .len = 8, .data = b };
    struct zk_zab_msg m = msg_from2(ZK_ZAB_MSG_REQUEST, 5, 0);
    m.entries = &e;
    m.n_entries = 1;
    ck_assert_int_eq(zk_zab_step(z, &m), 0);
}

static uint64_t session_at(const struct zk_zab *z, uint32_t i)
{
    uint32_t n;
    const uint64_t *s = zk_zab_sessions(z, &n);
    ck_assert_uint_lt(i, n);
    return s[i];
}

/* A delayed duplicate of a member's SESSION_OPEN request (a resend of
 * its session 1, which the member gave up for session 2) reaches the
 * leader after the OPEN of session 2 was proposed — or committed: the
 * leader must not propose it, which would close session 2 everywhere
 * while its owner's lease still runs (seed 1,020,089 of the long run;
 * mutant stale-open-accepted). Nothing is appended, committed or applied,
 * and 2's session stays 2; a newer id (3) is still proposed. */
START_TEST(leader_refuses_overtaken_session_open)
{
    struct zk_zab_config cfg;
    cfg_three(&cfg);
    struct zk_zab_restore rs;
    restore_at(&rs, 4);
    for (int committed = 0; committed <= 1; committed++) {
        struct zk_zab *z = NULL;
        struct zk_zab_status st0, st;
        ck_assert_int_eq(zk_zab_create(&cfg, &rs, &z), 0);
        uint64_t link = lead_with_2(z);
        request_open(z, SID2(2));
        if (committed)
            ck_assert_int_eq(lead_serve(z, link, 0, NULL), 1);
        zk_zab_status(z, &st0);
        request_open(z, SID2(1));         /* the delayed duplicate */
        ck_assert_int_eq(lead_serve(z, link, 0, NULL), !committed);
        zk_zab_status(z, &st);
        ck_assert_uint_eq(st.last_zxid, ZK_ZAB_ZXID(5, 1));
        ck_assert_uint_eq(st.commit_zxid, ZK_ZAB_ZXID(5, 1));
        ck_assert_uint_eq(st.applied_zxid, ZK_ZAB_ZXID(5, 1));
        if (committed)
            ck_assert_uint_eq(st0.applied_zxid, ZK_ZAB_ZXID(5, 1));
        ck_assert_uint_eq(session_at(z, 1), SID2(2));
        request_open(z, SID2(3));         /* a newer one is proposed */
        ck_assert_int_eq(lead_serve(z, link, 0, NULL), 1);
        ck_assert_uint_eq(session_at(z, 1), SID2(3));
        zk_zab_destroy(z);
    }
}
END_TEST

/* A learner synced while the leader is still syncing (before a quorum
 * is synced and it is established) is told, in its DIFF/SNAP/TRUNC's
 * aux, the highest request id of its own that the leader's log holds:
 * one whose disk was wiped moves its ids above it (zab.c, learn_inc).
 * The leader took those ids from its log only once established, so such
 * a learner was told an older life's id, restarted its ids below those
 * of its last life, and the leader dropped every request of it as a
 * duplicate (simulator, seed 110065 with --observers 2 --wipe). */
START_TEST(leader_tells_learner_its_ids_while_syncing)
{
    struct zk_zab_config cfg;
    cfg_three(&cfg);
    struct zk_zab_restore rs;
    restore_at(&rs, 4);
    uint8_t one = 1;
    struct zk_zab_entry logged = {
        .zxid = ZK_ZAB_ZXID(4, 1), .type = ZK_ZAB_ENTRY_WRITE, .origin = 2,
        .req_id = 0x300000024ull, .len = 1, .data = &one};
    rs.entries = &logged;
    rs.n_entries = 1;
    struct zk_zab *z = NULL;
    struct zk_zab_status st;
    ck_assert_int_eq(zk_zab_create(&cfg, &rs, &z), 0);
    lead_to_sync_2(z, logged.zxid);
    int synced = 0;
    while (zk_zab_has_ready(z) && !synced) {
        struct zk_zab_ready rd;
        zk_zab_ready(z, &rd);
        for (size_t i = 0; i < rd.n_msgs; i++) {
            const struct zk_zab_msg *x = &rd.msgs[i];
            if (x->to != 2 || (x->type != ZK_ZAB_MSG_DIFF &&
                               x->type != ZK_ZAB_MSG_SNAP &&
                               x->type != ZK_ZAB_MSG_TRUNC))
                continue;
            ck_assert_uint_eq(x->aux, 0x300000024ull);
            synced = 1;
        }
        zk_zab_advance(z);
    }
    ck_assert_int_eq(synced, 1);
    zk_zab_status(z, &st);
    ck_assert_int_eq(st.established, 0);  /* told before it was */
    zk_zab_destroy(z);
}
END_TEST

/* Takes z's Readies; returns how many ops of kind they held. */
static int count_ops(struct zk_zab *z, uint32_t kind)
{
    int n = 0;
    while (zk_zab_has_ready(z)) {
        struct zk_zab_ready rd;
        zk_zab_ready(z, &rd);
        for (size_t i = 0; i < rd.n_ops; i++)
            n += rd.ops[i].kind == kind;
        zk_zab_advance(z);
    }
    return n;
}

/* An observer restarts with its hard state (epochs 5) lagging what it
 * applied (epoch 6: it promises nothing and applies an INFORM in the
 * Ready that logs it). A stale leader of epoch 5 — older than its applied
 * zxid's epoch, not than its hard state — offers it a sync by SNAP at
 * 5:9: it must refuse to follow (no ACKEPOCH, back to LOOKING) and never
 * install that snapshot, which would take its applied state back in time
 * (seed 1,079,759 of the long run; mutant learner-follows-older). A
 * leader of epoch 6 it follows, synced by DIFF from what it applied. */
START_TEST(observer_refuses_leader_older_than_applied)
{
    struct zk_zab_config cfg;
    cfg_three(&cfg);
    cfg.members[0].observer = 1;
    struct zk_zab_restore rs;
    restore_at(&rs, 5);
    rs.applied_zxid = ZK_ZAB_ZXID(6, 3);
    rs.sessions[0] = (1ull << 56) | (1ull << 32) | 1;
    for (uint64_t epoch = 5; epoch <= 6; epoch++) {
        struct zk_zab *z = NULL;
        struct zk_zab_status st;
        struct zk_zab_msg m;
        uint64_t link = 0;
        ck_assert_int_eq(zk_zab_create(&cfg, &rs, &z), 0);
        drain(z, 0, 0, NULL);
        hear_leader3(z);
        ck_assert_int_eq(last_flags(z, ZK_ZAB_MSG_FOLLOWERINFO, 3, &link),
                         ZK_ZAB_MF_OBSERVER);
        step_msg(z, ZK_ZAB_MSG_LEADERINFO, epoch, 77, 0, link);
        ck_assert_int_eq(drain(z, ZK_ZAB_MSG_ACKEPOCH, 3, NULL),
                         epoch == 6);
        memset(&m, 0, sizeof(m));         /* the leader's sync */
        m.type = epoch == 6 ? ZK_ZAB_MSG_DIFF : ZK_ZAB_MSG_SNAP;
        m.from = 3;
        m.to = 1;
        m.epoch = epoch;
        m.link = 77;
        m.seq = 1;
        m.zxid = epoch == 6 ? rs.applied_zxid : ZK_ZAB_ZXID(5, 9);
        m.n_sessions = cfg.n_members;
        ck_assert_int_eq(zk_zab_step(z, &m), 0);
        m.type = ZK_ZAB_MSG_NEWLEADER;    /* at the same zxid */
        m.seq = 2;
        m.n_sessions = 0;
        ck_assert_int_eq(zk_zab_step(z, &m), 0);
        ck_assert_int_eq(count_ops(z, ZK_ZAB_OP_INSTALL), 0);
        zk_zab_status(z, &st);
        ck_assert_uint_eq(st.applied_zxid, rs.applied_zxid);
        ck_assert_uint_eq(session_at(z, 0), rs.sessions[0]);
        if (epoch == 5) {
            ck_assert_uint_eq(st.role, ZK_ZAB_LOOKING);
            ck_assert_uint_eq(st.hard.current_epoch, 5);
        } else {
            ck_assert_uint_eq(st.role, ZK_ZAB_OBSERVING);
            ck_assert_int_eq(st.established, 1);
            ck_assert_uint_eq(st.hard.current_epoch, 6);
        }
        zk_zab_destroy(z);
    }
}
END_TEST

Suite *zab_suite(void);
Suite *zab_suite(void)
{
    Suite *su = suite_create("zab");
    TCase *tc = tcase_create("scenarios");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, first_election);
    tcase_add_test(tc, election_after_leader_crash);
    tcase_add_test(tc, election_after_leader_kill);
    tcase_add_test(tc, dropped_connection_rejoins_same_leader);
    tcase_add_test(tc, far_behind_follower_gets_snap);
    tcase_add_test(tc, uncommitted_entries_truncated);
    tcase_add_test(tc, minority_cannot_commit);
    tcase_add_test(tc, isolated_leader_steps_down);
    tcase_add_test(tc, observers_catch_up);
    tcase_add_test(tc, session_expires_and_closes);
    tcase_add_test(tc, restart_in_every_phase);
    tcase_add_test(tc, counter_overflow_forces_new_epoch);
    tcase_add_test(tc, replay_is_deterministic);
    suite_add_tcase(su, tc);
    TCase *api = tcase_create("api");
    tcase_add_test(api, api_errors);
    tcase_add_test(api, observer_applies_in_the_logging_ready);
    tcase_add_test(api, learner_refuses_older_epoch);
    tcase_add_test(api, leader_refuses_overtaken_session_open);
    tcase_add_test(api, leader_tells_learner_its_ids_while_syncing);
    tcase_add_test(api, observer_refuses_leader_older_than_applied);
    tcase_add_test(api, empty_store_abstains);
    tcase_add_test(api, lost_writes_abstain);
    tcase_add_test(api, restored_store_abstains_unless_all_restored);
    suite_add_tcase(su, api);
    return su;
}
