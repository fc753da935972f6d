/*
 * test_lock.c — the replicated lock table's apply rules (store/lock.c):
 * flock conflicts, queueing and idempotent re-requests, FIFO fairness
 * (a reader never overtakes a queued writer), fcntl range split, merge,
 * upgrade and downgrade, independence of flock and fcntl locks, release
 * at session close with the next waiter granted, cancelled waits, and
 * fencing tokens that grow with every grant.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zk_common.h"
#include "zk_store.h"
#include "zk_txn.h"
#include "store_fx.h"

#define SA 0x0100000100000001ull
#define SB 0x0200000100000001ull
#define SC 0x0300000100000001ull
#define EOFF UINT64_MAX

struct fx {
    char dir[64];
    struct zk_store *s;
    uint64_t zxid, ino;
};

/* Applies ops as one committed transaction at the next zxid. */
static struct zk_apply_result *run(struct fx *f, struct zk_op *ops, uint32_t n)
{
    return zk_test_commit(f->s, ++f->zxid, 1700000000000ull, ops, n);
}

static void session(struct fx *f, uint8_t type, uint64_t sid)
{
    struct zk_op o = {.type = type, .session = sid, .timeout_ms = 4000,
                      .owner = "h", .owner_len = 1};
    zk_apply_result_free(run(f, &o, 1));
}

static void fx_open(struct fx *f)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/zkfs-lock-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(f->dir));
    ck_assert_int_eq(zk_store_open(f->dir, 1, &f->s), 0);
    f->zxid = UINT64_C(1) << 32;
    session(f, ZK_OP_SESSION_OPEN, SA);
    session(f, ZK_OP_SESSION_OPEN, SB);
    session(f, ZK_OP_SESSION_OPEN, SC);
    struct zk_op c = {.type = ZK_OP_CREATE, .version = -1, .mode = 0644,
                      .path = "/f", .path_len = 2};
    struct zk_apply_result *r = run(f, &c, 1);
    ck_assert_int_eq(r->err, 0);
    f->ino = r->ops[0].ino;
    zk_apply_result_free(r);
}

static void fx_close(struct fx *f)
{
    zk_store_close(f->s);
    zk_test_rmtree(f->dir);
}

/* One lock op; *res_out gets the result (the caller frees it) or NULL. */
static int op(struct fx *f, uint8_t type, uint64_t sid, uint64_t owner,
              uint32_t flags, uint64_t start, uint64_t end,
              struct zk_apply_result **res_out)
{
    uint8_t d[ZK_LOCK_DATA_SIZE];
    zk_put_be64(d, owner);
    zk_put_be64(d + 8, start);
    zk_put_be64(d + 16, end);
    zk_put_be32(d + 24, 42);
    struct zk_op o = {.type = type, .flags = flags, .ino = f->ino,
                      .session = sid, .data = d, .data_len = sizeof(d),
                      .owner = "host:42", .owner_len = 7};
    struct zk_apply_result *r = run(f, &o, 1);
    int err = r->err;
    if (res_out)
        *res_out = r;
    else
        zk_apply_result_free(r);
    return err;
}

static int flk(struct fx *f, uint64_t sid, uint64_t owner, uint32_t flags)
{
    return op(f, ZK_OP_LOCK, sid, owner, flags | ZK_LOCK_FLOCK, 0, EOFF, NULL);
}

static uint64_t token_of(struct fx *f, uint64_t sid, uint64_t owner,
                         uint32_t flags)
{
    struct zk_apply_result *r;
    ck_assert_int_eq(op(f, ZK_OP_LOCK, sid, owner, flags, 0, EOFF, &r), 0);
    uint64_t t = r->ops[0].token;
    zk_apply_result_free(r);
    return t;
}

/* How many ZK_CHANGE_LOCK grants r reports for (sid, owner). */
static int grants(const struct zk_apply_result *r, uint64_t sid,
                  uint64_t owner)
{
    int n = 0;
    for (uint32_t i = 0; i < r->nchanges; i++)
        n += r->changes[i].kind == ZK_CHANGE_LOCK &&
             r->changes[i].lock_session == sid &&
             r->changes[i].lock_owner == owner &&
             r->changes[i].lock_token == r->zxid;
    return n;
}

static int unlock_grants(struct fx *f, uint64_t sid, uint64_t owner,
                         uint32_t flags, uint64_t gsid, uint64_t gowner)
{
    struct zk_apply_result *r;
    ck_assert_int_eq(op(f, ZK_OP_UNLOCK, sid, owner, flags, 0, EOFF, &r), 0);
    int n = grants(r, gsid, gowner);
    zk_apply_result_free(r);
    return n;
}

struct acc {
    int n;
    struct zk_lock_ent e[16];
};

static int acc_cb(void *arg, const struct zk_lock_ent *e)
{
    struct acc *a = arg;
    if (a->n < 16)
        a->e[a->n] = *e;
    a->n++;
    return 0;
}

static struct acc table(struct fx *f)
{
    struct acc a = {0};
    ck_assert_int_eq(zk_store_locks(f->s, f->ino, acc_cb, &a), 0);
    return a;
}

START_TEST(flock_conflict_queue_and_handoff)
{
    struct fx f;
    fx_open(&f);
    uint64_t t1 = token_of(&f, SA, 1, ZK_LOCK_FLOCK | ZK_LOCK_WRITE);
    ck_assert_uint_eq(t1, f.zxid);
    ck_assert_int_eq(flk(&f, SB, 2, ZK_LOCK_WRITE), -EAGAIN);
    /* Queued, and a request sent again (SA_RESTART) changes nothing. */
    ck_assert_uint_eq(token_of(&f, SB, 2, ZK_LOCK_FLOCK | ZK_LOCK_WRITE |
                                              ZK_LOCK_WAIT), 0);
    ck_assert_uint_eq(token_of(&f, SB, 2, ZK_LOCK_FLOCK | ZK_LOCK_WRITE |
                                              ZK_LOCK_WAIT), 0);
    ck_assert_int_eq(table(&f).n, 2);
    /* The holder asking again keeps its grant and token. */
    ck_assert_uint_eq(token_of(&f, SA, 1, ZK_LOCK_FLOCK | ZK_LOCK_WRITE), t1);
    ck_assert_int_eq(unlock_grants(&f, SA, 1, ZK_LOCK_FLOCK, SB, 2), 1);
    struct acc a = table(&f);
    ck_assert_int_eq(a.n, 1);
    ck_assert_uint_eq(a.e[0].session, SB);
    ck_assert_uint_eq(a.e[0].flags & ZK_LOCK_QUEUED, 0);
    ck_assert_uint_gt(a.e[0].token, t1);           /* fencing token grows */
    ck_assert_str_eq(a.e[0].who, "host:42");
    ck_assert_int_eq(unlock_grants(&f, SB, 2, ZK_LOCK_FLOCK, 0, 0), 0);
    ck_assert_int_eq(table(&f).n, 0);
    fx_close(&f);
}
END_TEST

START_TEST(readers_share_and_never_overtake_a_writer)
{
    struct fx f;
    fx_open(&f);
    ck_assert_int_eq(flk(&f, SA, 1, 0), 0);
    ck_assert_int_eq(flk(&f, SC, 3, 0), 0);             /* shared */
    ck_assert_int_eq(flk(&f, SB, 2, ZK_LOCK_WRITE | ZK_LOCK_WAIT), 0);
    ck_assert_int_eq(flk(&f, SC, 4, 0), -EAGAIN);       /* behind B */
    ck_assert_int_eq(flk(&f, SC, 4, ZK_LOCK_WAIT), 0);
    ck_assert_int_eq(unlock_grants(&f, SA, 1, ZK_LOCK_FLOCK, SB, 2), 0);
    ck_assert_int_eq(unlock_grants(&f, SC, 3, ZK_LOCK_FLOCK, SB, 2), 1);
    ck_assert_int_eq(unlock_grants(&f, SB, 2, ZK_LOCK_FLOCK, SC, 4), 1);
    fx_close(&f);
}
END_TEST

/* flock(2) converts by dropping the old lock first; when the new one
 * cannot be had (LOCK_NB) the old one stays dropped, as on Linux, and
 * that drop lets the next waiter go in the same commit. */
START_TEST(flock_failed_conversion_drops_the_old_lock)
{
    struct fx f;
    fx_open(&f);
    ck_assert_int_eq(flk(&f, SA, 1, 0), 0);                 /* A shared */
    ck_assert_int_eq(flk(&f, SB, 2, 0), 0);                 /* B shared */
    ck_assert_int_eq(flk(&f, SC, 3, ZK_LOCK_WRITE | ZK_LOCK_WAIT), 0);
    struct zk_apply_result *r;
    ck_assert_int_eq(op(&f, ZK_OP_LOCK, SA, 1, ZK_LOCK_FLOCK | ZK_LOCK_WRITE,
                        0, EOFF, &r), 0);
    ck_assert_int_eq(r->ops[0].refused, 1);
    ck_assert_uint_eq(r->ops[0].token, 0);
    ck_assert_int_eq(grants(r, SC, 3), 0);                  /* B still holds */
    zk_apply_result_free(r);
    struct acc a = table(&f);
    ck_assert_int_eq(a.n, 2);                               /* B and C's wait */
    ck_assert_uint_eq(a.e[0].session, SB);
    ck_assert_int_eq(unlock_grants(&f, SB, 2, ZK_LOCK_FLOCK, SC, 3), 1);
    /* Now A conflicts with C's lock while holding nothing: refused as
     * before (-EAGAIN, nothing changes). */
    ck_assert_int_eq(flk(&f, SA, 1, ZK_LOCK_WRITE), -EAGAIN);
    ck_assert_int_eq(table(&f).n, 1);
    /* A queued wait of the owner is not a lock: a refused non-waiting
     * request leaves it in place. */
    ck_assert_int_eq(flk(&f, SA, 1, ZK_LOCK_WAIT), 0);
    ck_assert_int_eq(flk(&f, SA, 1, ZK_LOCK_WRITE), -EAGAIN);
    ck_assert_int_eq(table(&f).n, 2);
    fx_close(&f);
}
END_TEST

START_TEST(fcntl_ranges_split_merge_convert)
{
    struct fx f;
    fx_open(&f);
    ck_assert_int_eq(op(&f, ZK_OP_LOCK, SA, 1, ZK_LOCK_WRITE, 0, 99, NULL), 0);
    ck_assert_int_eq(op(&f, ZK_OP_UNLOCK, SA, 1, 0, 10, 19, NULL), 0);
    struct acc a = table(&f);
    ck_assert_int_eq(a.n, 2);                           /* split */
    ck_assert_int_eq(op(&f, ZK_OP_LOCK, SB, 2, ZK_LOCK_WRITE, 10, 19, NULL), 0);
    ck_assert_int_eq(op(&f, ZK_OP_LOCK, SB, 2, ZK_LOCK_WRITE, 5, 5, NULL),
                     -EAGAIN);
    /* Downgrade part of A's range: B may then read there, not write. */
    ck_assert_int_eq(op(&f, ZK_OP_LOCK, SA, 1, 0, 20, 29, NULL), 0);
    ck_assert_int_eq(op(&f, ZK_OP_LOCK, SC, 3, 0, 25, 25, NULL), 0);
    ck_assert_int_eq(op(&f, ZK_OP_LOCK, SC, 3, ZK_LOCK_WRITE, 30, 30, NULL),
                     -EAGAIN);
    /* Merge: A's write ranges [30,99] and [100,EOF] become one. */
    ck_assert_int_eq(op(&f, ZK_OP_LOCK, SA, 1, ZK_LOCK_WRITE, 100, EOFF,
                        NULL), 0);
    a = table(&f);
    int found = 0;
    for (int i = 0; i < a.n; i++)
        found += a.e[i].session == SA && a.e[i].start == 30 &&
                 a.e[i].end == EOFF && (a.e[i].flags & ZK_LOCK_WRITE);
    ck_assert_int_eq(found, 1);
    /* Upgrade blocked by C's reader at 25, granted when C unlocks. */
    ck_assert_int_eq(op(&f, ZK_OP_LOCK, SA, 1, ZK_LOCK_WRITE | ZK_LOCK_WAIT,
                        20, 29, NULL), 0);
    ck_assert_int_eq(unlock_grants(&f, SC, 3, 0, SA, 1), 1);
    /* flock and fcntl locks do not see each other. */
    ck_assert_int_eq(flk(&f, SC, 3, ZK_LOCK_WRITE), 0);
    fx_close(&f);
}
END_TEST

START_TEST(session_close_releases_and_grants)
{
    struct fx f;
    fx_open(&f);
    ck_assert_int_eq(flk(&f, SA, 1, ZK_LOCK_WRITE), 0);
    ck_assert_int_eq(op(&f, ZK_OP_LOCK, SA, 1, ZK_LOCK_WRITE, 0, 9, NULL), 0);
    ck_assert_int_eq(flk(&f, SB, 2, ZK_LOCK_WRITE | ZK_LOCK_WAIT), 0);
    ck_assert_int_eq(flk(&f, SC, 3, ZK_LOCK_WRITE | ZK_LOCK_WAIT), 0);
    struct zk_op o = {.type = ZK_OP_SESSION_CLOSE, .session = SA};
    struct zk_apply_result *r = run(&f, &o, 1);
    ck_assert_int_eq(r->err, 0);
    ck_assert_int_eq(grants(r, SB, 2), 1);
    ck_assert_int_eq(grants(r, SC, 3), 0);
    zk_apply_result_free(r);
    ck_assert_int_eq(table(&f).n, 2);   /* B holds, C waits; A is gone */
    /* A closed session can take no lock. */
    ck_assert_int_eq(flk(&f, SA, 1, 0), ZK_ESESSION);
    fx_close(&f);
}
END_TEST

START_TEST(cancelled_wait_leaves_the_queue_clean)
{
    struct fx f;
    fx_open(&f);
    ck_assert_int_eq(flk(&f, SA, 1, ZK_LOCK_WRITE), 0);
    ck_assert_int_eq(flk(&f, SB, 2, ZK_LOCK_WRITE | ZK_LOCK_WAIT), 0);
    ck_assert_int_eq(op(&f, ZK_OP_UNLOCK, SB, 2,
                        ZK_LOCK_FLOCK | ZK_UNLOCK_WAITS, 0, EOFF, NULL), 0);
    ck_assert_int_eq(table(&f).n, 1);
    ck_assert_int_eq(unlock_grants(&f, SA, 1, ZK_LOCK_FLOCK, SB, 2), 0);
    ck_assert_int_eq(table(&f).n, 0);
    fx_close(&f);
}
END_TEST

START_TEST(cancel_only_keeps_what_is_held)
{
    struct fx f;
    fx_open(&f);
    ck_assert_int_eq(op(&f, ZK_OP_LOCK, SB, 2, ZK_LOCK_WRITE, 0, 9, NULL), 0);
    ck_assert_int_eq(op(&f, ZK_OP_LOCK, SA, 1, ZK_LOCK_WRITE, 20, 29, NULL), 0);
    ck_assert_int_eq(op(&f, ZK_OP_LOCK, SA, 1, ZK_LOCK_WRITE | ZK_LOCK_WAIT,
                        0, 9, NULL), 0);
    ck_assert_int_eq(table(&f).n, 3);
    ck_assert_int_eq(op(&f, ZK_OP_UNLOCK, SA, 1,
                        ZK_UNLOCK_WAITS | ZK_UNLOCK_NO_HOLDS, 0, EOFF, NULL), 0);
    struct acc a = table(&f);
    ck_assert_int_eq(a.n, 2);                   /* A's [20,29] stays */
    ck_assert_int_eq(op(&f, ZK_OP_LOCK, SC, 3, 0, 25, 25, NULL), -EAGAIN);
    fx_close(&f);
}
END_TEST

START_TEST(lock_rejects_bad_requests)
{
    struct fx f;
    fx_open(&f);
    ck_assert_int_eq(op(&f, ZK_OP_LOCK, SA, 1, ZK_LOCK_WRITE, 9, 3, NULL),
                     -EINVAL);
    /* A file deleted while open can still be locked (POSIX). */
    f.ino += 1000;
    ck_assert_int_eq(flk(&f, SA, 1, 0), 0);
    fx_close(&f);
}
END_TEST

Suite *lock_suite(void);
Suite *lock_suite(void)
{
    Suite *su = suite_create("lock");
    TCase *tc = tcase_create("apply");
    tcase_add_test(tc, flock_conflict_queue_and_handoff);
    tcase_add_test(tc, readers_share_and_never_overtake_a_writer);
    tcase_add_test(tc, flock_failed_conversion_drops_the_old_lock);
    tcase_add_test(tc, fcntl_ranges_split_merge_convert);
    tcase_add_test(tc, session_close_releases_and_grants);
    tcase_add_test(tc, cancelled_wait_leaves_the_queue_clean);
    tcase_add_test(tc, cancel_only_keeps_what_is_held);
    tcase_add_test(tc, lock_rejects_bad_requests);
    suite_add_tcase(su, tc);
    return su;
}
