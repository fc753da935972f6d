/*
 * main.c — build/zkfs-sim, the command line of the deterministic
 * simulator.
 *
 *   zkfs-sim [--seed S] [--seeds N] [--steps K] [--replicas R]
 *            [--observers O] [--counter-max C] [--wipe]
 *            [--lose-tail | --lose-undetected | --put-back]
 *            [--no-ephemerals] [-v]
 *   zkfs-sim --bench [--replicas R] [--txns N]
 *
 * A run of seeds S..S+N-1 stops at the first broken invariant, printing
 * the seed, the invariant and the command that replays it exactly (add -v
 * for the full trace: every line carries simulated time and replica id).
 * Without --replicas / --observers each seed picks 3 or 5 voters and 0-2
 * observers from the seed itself; the replay line spells them out.
 * Exit status: 0 if every seed passed, 1 on a broken invariant, 2 on bad
 * usage. --bench prints transactions committed per CPU-second of the
 * whole simulation (core + simulator), measured with
 * CLOCK_PROCESS_CPUTIME_ID.
 */
#include "sim.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SIM_DEFAULT_STEPS 100000

struct args {
    uint64_t seed, seeds, steps, txns;
    long voters, observers;
    uint32_t counter_max;
    int verbose, bench, wipe, lose_tail, lose_undetected, put_back;
    int no_eph;                 /* the runs before the ephemeral clients */
};

static volatile sig_atomic_t cur_seed_lo, cur_seed_hi;

/* A failed core assertion aborts: say which seed to replay. */
static void on_abort(int sig)
{
    char msg[96];
    uint64_t seed = (uint64_t)cur_seed_hi << 32 | (uint32_t)cur_seed_lo;
    int n = snprintf(msg, sizeof(msg), "zkfs-sim: aborted in seed %llu\n",
                     (unsigned long long)seed);
    if (n > 0 && write(2, msg, (size_t)n) < 0)
        _exit(3);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int usage(void)
{
    fprintf(stderr, "usage: zkfs-sim [--seed S] [--seeds N] [--steps K] "
            "[--replicas R] [--observers O] [--counter-max C] [--wipe]\n"
            "                [--lose-tail | --lose-undetected | --put-back]\n"
            "                [--no-ephemerals] [-v]\n"
            "       zkfs-sim --bench [--replicas R] [--txns N]\n");
    return 2;
}

static int parse(int argc, char **argv, struct args *a)
{
    *a = (struct args){ 1, 1, SIM_DEFAULT_STEPS, 200000, -1, -1, 0, 0, 0, 0,
                        0, 0, 0, 0 };
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (!strcmp(k, "-v")) { a->verbose = 1; continue; }
        if (!strcmp(k, "-vv")) { a->verbose = 2; continue; }
        if (!strcmp(k, "--bench")) { a->bench = 1; continue; }
        if (!strcmp(k, "--wipe")) { a->wipe = 1; continue; }
        if (!strcmp(k, "--lose-tail")) { a->lose_tail = 1; continue; }
        if (!strcmp(k, "--no-ephemerals")) { a->no_eph = 1; continue; }
        if (!strcmp(k, "--put-back")) {
            a->lose_tail = a->put_back = 1;
            continue;
        }
        if (!strcmp(k, "--lose-undetected")) {
            a->lose_tail = a->lose_undetected = 1;
            continue;
        }
        if (i + 1 >= argc)
            return -1;
        char *end;
        unsigned long long v = strtoull(argv[++i], &end, 10);
        if (*end)
            return -1;
        if (!strcmp(k, "--seed")) a->seed = v;
        else if (!strcmp(k, "--seeds")) a->seeds = v;
        else if (!strcmp(k, "--steps")) a->steps = v;
        else if (!strcmp(k, "--txns")) a->txns = v;
        else if (!strcmp(k, "--replicas")) a->voters = (long)v;
        else if (!strcmp(k, "--observers")) a->observers = (long)v;
        else if (!strcmp(k, "--counter-max")) a->counter_max = (uint32_t)v;
        else return -1;
    }
    if (a->voters == 0 || a->voters > 9 || a->observers > 6)
        return -1;
    return 0;
}

static int run_seed(const struct args *a, uint64_t seed, uint64_t *hist,
                    uint64_t *lin)
{
    struct sim_opts o = { .seed = seed, .verbose = a->verbose, .faults = 1,
                          .wipe = a->wipe, .lose_tail = a->lose_tail,
                          .lose_undetected = a->lose_undetected,
                          .put_back = a->put_back,
                          .clients = 1, .counter_max = a->counter_max,
                          .no_ephemerals = a->no_eph };
    o.voters = a->voters > 0 ? (uint32_t)a->voters : (seed % 2 ? 3 : 5);
    o.observers = a->observers >= 0 ? (uint32_t)a->observers
                                    : (uint32_t)((seed / 2) % 3);
    if (!a->counter_max && a->voters < 0 && seed % 7 == 3)
        o.counter_max = 40;        /* exercise epoch roll-over by counter */
    cur_seed_lo = (sig_atomic_t)(uint32_t)seed;
    cur_seed_hi = (sig_atomic_t)(uint32_t)(seed >> 32);
    struct sim *s = sim_create(&o);
    if (!s) {
        fprintf(stderr, "zkfs-sim: out of memory\n");
        return 1;
    }
    int rc = sim_random_run(s, a->steps);
    if (rc) {
        printf("FAIL seed %llu: %s\n", (unsigned long long)seed,
               sim_failure(s));
        printf("replay: build/zkfs-sim --seed %llu --steps %llu "
               "--replicas %u --observers %u --counter-max %u%s%s%s -v\n",
               (unsigned long long)seed, (unsigned long long)a->steps,
               o.voters, o.observers, o.counter_max,
               a->wipe ? " --wipe" : "", a->lose_undetected ?
               " --lose-undetected" : a->put_back ? " --put-back" :
               a->lose_tail ? " --lose-tail" : "",
               a->no_eph ? " --no-ephemerals" : "");
    }
    *hist += sim_history_len(s);
    *lin += sim_lin_ops(s);
    sim_destroy(s);
    return rc ? 1 : 0;
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench(const struct args *a)
{
    uint32_t voters = a->voters > 0 ? (uint32_t)a->voters : 3;
    struct sim_opts o = { .seed = a->seed, .voters = voters };
    struct sim *s = sim_create(&o);
    if (!s)
        return 1;
    double t0 = cpu_seconds();
    uint64_t n = sim_bench(s, a->txns);
    double t1 = cpu_seconds();
    int ok = n == a->txns && !sim_failure(s);
    printf("zab-core bench: %u voters, %llu txns committed, %.3f CPU-s, "
           "%.0f txn/CPU-s%s\n", voters, (unsigned long long)n, t1 - t0,
           t1 > t0 ? (double)n / (t1 - t0) : 0.0, ok ? "" : " (INCOMPLETE)");
    if (sim_failure(s))
        printf("FAIL: %s\n", sim_failure(s));
    sim_destroy(s);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct args a;
    if (parse(argc, argv, &a))
        return usage();
    signal(SIGABRT, on_abort);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (a.bench)
        return bench(&a);
    uint64_t hist = 0, lin = 0;
    for (uint64_t k = 0; k < a.seeds; k++)
        if (run_seed(&a, a.seed + k, &hist, &lin))
            return 1;
    printf("zkfs-sim: %llu seeds passed (%llu..%llu), %llu steps each, "
           "%llu register operations linearizable, "
           "%llu transactions committed\n", (unsigned long long)a.seeds,
           (unsigned long long)a.seed,
           (unsigned long long)(a.seed + a.seeds - 1),
           (unsigned long long)a.steps, (unsigned long long)lin,
           (unsigned long long)hist);
    return 0;
}
