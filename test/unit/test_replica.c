/*
 * test_replica.c — the standalone replica's write path: proposals are
 * committed and applied in order, answers arrive on the loop, the read
 * barrier waits for earlier writes, every start takes a new epoch, the
 * sessions of an earlier run (and their ephemerals) are closed, and a
 * disk under its reserve refuses what adds data.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zk_replica.h"
#include "zk_store.h"

#define N_PROPS 200

struct env {
    char dir[64];
    uv_loop_t loop;
    struct zk_store *store;
    struct zk_replica *r;
    int applied;
};

struct answer {
    int done, err, txn_err;
    uint64_t zxid;
    int order;
};

static int answer_seq;

static void on_applied(void *arg, const struct zk_apply_result *res)
{
    struct env *e = arg;
    ck_assert_uint_gt(res->zxid, 0);
    e->applied++;
}

static void on_done(void *arg, int err, const struct zk_apply_result *res)
{
    struct answer *a = arg;
    a->done = 1;
    a->err = err;
    a->txn_err = res ? res->err : 0;
    a->zxid = res ? res->zxid : 0;
    a->order = ++answer_seq;
}

static void env_start(struct env *e)
{
    struct zk_replica_opts o = {
        .loop = &e->loop, .store = e->store, .applied = on_applied,
        .applied_arg = e, .owner = "test:1", .session_timeout_ms = 1000,
    };
    ck_assert_int_eq(zk_store_open(e->dir, 1, &e->store), 0);
    o.store = e->store;
    ck_assert_int_eq(zk_replica_start(&o, &e->r), 0);
}

static void env_stop(struct env *e, int close_session)
{
    zk_replica_stop(e->r, close_session);
    uv_run(&e->loop, UV_RUN_DEFAULT);   /* lets the async handle close */
    zk_store_close(e->store);
}

static void env_init(struct env *e)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/zk-replica-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(e->dir));
    ck_assert_int_eq(uv_loop_init(&e->loop), 0);
    env_start(e);
}

static void env_fini(struct env *e)
{
    char cmd[128];
    uv_loop_close(&e->loop);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Runs the loop until every answer in a[0..n) arrived (bounded). */
static void wait_all(struct env *e, struct answer *a, int n)
{
    for (int round = 0; round < 100000; round++) {
        int missing = 0;
        for (int i = 0; i < n; i++)
            missing += !a[i].done;
        if (!missing)
            return;
        uv_run(&e->loop, UV_RUN_ONCE);
    }
    ck_abort_msg("answers did not arrive");
}

static int propose_create(struct env *e, const char *path, uint32_t flags,
                          struct answer *a)
{
    struct zk_op op = {
        .type = ZK_OP_CREATE, .flags = flags, .version = -1, .mode = 0644,
        .session = zk_replica_session(e->r), .path = path,
        .path_len = (uint32_t)strlen(path), .owner = "test:1",
        .owner_len = 6,
    };
    struct zk_txn txn = {.nops = 1, .ops = &op};
    return zk_replica_propose(e->r, &txn, on_done, a);
}

START_TEST(commits_in_order)
{
    static struct answer a[N_PROPS + 1];
    struct env e;
    char path[32];

    memset(a, 0, sizeof(a));
    env_init(&e);
    for (int i = 0; i < N_PROPS; i++) {
        snprintf(path, sizeof(path), "/n%d", i);
        ck_assert_int_eq(propose_create(&e, path, 0, &a[i]), 0);
    }
    ck_assert_int_eq(zk_replica_sync(e.r, on_done, &a[N_PROPS]), 0);
    wait_all(&e, a, N_PROPS + 1);
    for (int i = 0; i < N_PROPS; i++) {
        ck_assert_int_eq(a[i].err, 0);
        ck_assert_int_eq(a[i].txn_err, 0);
        if (i > 0)
            ck_assert_uint_eq(a[i].zxid, a[i - 1].zxid + 1);
        ck_assert_int_lt(a[i].order, a[N_PROPS].order);
    }
    ck_assert_int_eq(e.applied, N_PROPS);

    struct zk_replica_status st;
    zk_replica_status(e.r, &st);
    ck_assert_str_eq(st.role, "standalone");
    ck_assert_uint_eq(st.last_zxid, a[N_PROPS - 1].zxid);
    ck_assert_uint_eq(st.pending, 0);
    ck_assert_uint_le(st.fsyncs, st.batches);

    struct zk_stat s;
    ck_assert_int_eq(zk_store_resolve(e.store, "/n199", &s), 0);
    ck_assert_uint_eq(s.czxid, a[N_PROPS - 1].zxid);
    env_stop(&e, 1);
    env_fini(&e);
}
END_TEST

START_TEST(failed_txn_is_answered)
{
    struct answer a[2];
    struct env e;

    memset(a, 0, sizeof(a));
    env_init(&e);
    ck_assert_int_eq(propose_create(&e, "/dup", 0, &a[0]), 0);
    ck_assert_int_eq(propose_create(&e, "/dup", 0, &a[1]), 0);
    wait_all(&e, a, 2);
    ck_assert_int_eq(a[0].err, 0);
    ck_assert_int_eq(a[0].txn_err, 0);
    ck_assert_int_eq(a[1].err, 0);           /* committed ... */
    ck_assert_int_eq(a[1].txn_err, -EEXIST); /* ... as a failed txn */
    ck_assert_uint_eq(a[1].zxid, a[0].zxid + 1);
    env_stop(&e, 1);
    env_fini(&e);
}
END_TEST

START_TEST(restart_new_epoch_closes_old_session)
{
    struct answer a[1];
    struct env e;
    struct zk_stat s;

    memset(a, 0, sizeof(a));
    env_init(&e);
    uint64_t session1 = zk_replica_session(e.r);
    ck_assert_int_eq(propose_create(&e, "/eph", ZK_CREATE_EPHEMERAL, &a[0]),
                     0);
    wait_all(&e, a, 1);
    ck_assert_int_eq(a[0].txn_err, 0);
    ck_assert_int_eq(zk_store_resolve(e.store, "/eph", &s), 0);
    ck_assert_uint_eq(s.ephemeral_owner, session1);
    uint64_t epoch1 = a[0].zxid >> 32;
    env_stop(&e, 0);          /* as after kill -9: the session stays */

    env_start(&e);
    ck_assert_uint_ne(zk_replica_session(e.r), session1);
    ck_assert_int_eq(zk_store_resolve(e.store, "/eph", &s), -ENOENT);
    struct zk_replica_status st;
    zk_replica_status(e.r, &st);
    ck_assert_uint_gt(st.epoch, epoch1);
    ck_assert_uint_gt(st.last_zxid, a[0].zxid);
    env_stop(&e, 1);
    env_fini(&e);
}
END_TEST

START_TEST(stop_closes_session)
{
    struct answer a[1];
    struct env e;
    struct zk_stat s;
    struct zk_store_info info;

    memset(a, 0, sizeof(a));
    env_init(&e);
    ck_assert_int_eq(propose_create(&e, "/eph", ZK_CREATE_EPHEMERAL, &a[0]),
                     0);
    wait_all(&e, a, 1);
    zk_replica_stop(e.r, 1);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(zk_store_resolve(e.store, "/eph", &s), -ENOENT);
    ck_assert_int_eq(zk_store_info(e.store, &info), 0);
    ck_assert_uint_eq(info.sessions, 0);
    zk_store_close(e.store);
    env_fini(&e);
}
END_TEST

/* A disk under its reserve (ZKFS_DISK_RESERVE_BYTES, read at the store's
 * open; here more than any disk has): what adds a znode or data is
 * refused at once with -ENOSPC, proposed nowhere and never answered; what
 * removes (a delete, a truncation to empty) and the read barrier go on.
 * 0 turns the reserve off. */
START_TEST(disk_reserve_refuses_what_adds)
{
    struct answer a[4];
    struct env e;
    static const uint8_t data[] = "x";

    memset(a, 0, sizeof(a));
    setenv("ZKFS_DISK_RESERVE_BYTES", "1125899906842624", 1);  /* 1 PiB */
    env_init(&e);
    ck_assert_int_eq(propose_create(&e, "/new", 0, &a[0]), -ENOSPC);
    struct zk_op set = {.type = ZK_OP_SET_DATA, .version = -1, .path = "/",
                        .path_len = 1, .data = data, .data_len = 1};
    struct zk_txn txn = {.nops = 1, .ops = &set};
    ck_assert_int_eq(zk_replica_propose(e.r, &txn, on_done, &a[0]), -ENOSPC);
    set.data_len = 0;                      /* a truncation: goes on */
    ck_assert_int_eq(zk_replica_propose(e.r, &txn, on_done, &a[1]), 0);
    struct zk_op del = {.type = ZK_OP_DELETE, .version = -1, .path = "/gone",
                        .path_len = 5};
    txn.ops = &del;
    ck_assert_int_eq(zk_replica_propose(e.r, &txn, on_done, &a[2]), 0);
    ck_assert_int_eq(zk_replica_sync(e.r, on_done, &a[3]), 0);
    wait_all(&e, a + 1, 3);
    ck_assert_int_eq(a[0].done, 0);        /* the refused: no answer */
    ck_assert_int_eq(a[2].err, 0);
    ck_assert_int_eq(a[2].txn_err, -ENOENT);
    env_stop(&e, 1);

    setenv("ZKFS_DISK_RESERVE_BYTES", "0", 1);
    env_start(&e);
    ck_assert_int_eq(propose_create(&e, "/new", 0, &a[0]), 0);
    wait_all(&e, a, 1);
    ck_assert_int_eq(a[0].txn_err, 0);
    unsetenv("ZKFS_DISK_RESERVE_BYTES");
    env_stop(&e, 1);
    env_fini(&e);
}
END_TEST

Suite *replica_suite(void);
Suite *replica_suite(void)
{
    Suite *s = suite_create("replica");
    TCase *tc = tcase_create("standalone");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, commits_in_order);
    tcase_add_test(tc, failed_txn_is_answered);
    tcase_add_test(tc, restart_new_epoch_closes_old_session);
    tcase_add_test(tc, stop_closes_session);
    tcase_add_test(tc, disk_reserve_refuses_what_adds);
    suite_add_tcase(s, tc);
    return s;
}
