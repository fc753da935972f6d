/*
 * lease.c — how long this replica may still answer for its own session.
 *
 * The leader expires a member's session sessionTimeout after it last
 * heard from it, on its own ticks; a new leader renews every session when
 * it is established. The core (zab_leader.c, "lease") turns this into one
 * number: status.contact_tick, the latest of OUR ticks whose message a
 * quorum-backed leader acknowledged — so no replica can be told this
 * session expired before (the moment that tick's message was sent) +
 * sessionTimeout. This module keeps the monotonic time at which each
 * tick was taken (a message of tick t leaves after it), and the lease
 * runs from there for zk__lease_ms().
 *
 * Counting from a SENT message, never from one received, is what makes a
 * pause safe: messages that waited in a socket buffer while this process
 * was stopped (SIGSTOP, a VM migration, a stalled disk) carry only old
 * ticks, so they cannot renew the lease; and the clock is read when a
 * request is answered (zk_replica_lease_check), not cached by a timer.
 *
 * Clock rates. The holder's lease runs on the holder's clock, the
 * leader's expiry on the leader's ticks: a holder whose clock runs slow
 * (or a leader whose clock runs fast) makes the lease outlast the expiry
 * in real time. The leader closes a session when more than
 * sessionTimeout of its ticks passed since the tick in which it heard
 * the message (heard after it was sent), so the close comes at least
 * sessionTimeout / rL after the send (rL: the leader's clock rate), and
 * the lease ends lease / rH after it. Safe while lease <= sessionTimeout
 * x rH / rL. The bound zkfs documents and the simulator enforces
 * (test/sim: every clock at its own rate, the invariant in sim_lease.c
 * and sim_lock.c): no clock runs more than ZK__LEASE_RATE_RATIO_DEN /
 * ZK__LEASE_RATE_RATIO_NUM (1.5) times as fast as another's, so the
 * lease is (sessionTimeout - 2 ticks) x 2/3. The two ticks cover libuv
 * timers that fire up to 1 ms early per tick (millisecond loop time) and
 * the time a reply takes to reach the process after the check. A wider
 * bound would cost availability: a replica gives its session up when no
 * quorum acknowledged it for the lease, and a leader failover (about
 * 1.5 s with the defaults) must fit in it (2.4 s with the defaults).
 *
 * Pure (the caller passes the time: CLOCK_MONOTONIC in the runtime,
 * simulated time in test/sim, which runs this very code).
 *
 * A session just opened has no echo yet (the open commits within a round
 * trip, the first echo takes a few ticks): it is given one lease from the
 * tick at which its first SESSION_OPEN was sent (status.session_sent_tick)
 * — the leader that committed it counted that request as hearing from us,
 * and any later leader renews it when it is established.
 */
#include "lease_int.h"
#include "zk_zab.h"

#include <string.h>

uint64_t zk__lease_ms(uint32_t session_timeout_ms, uint32_t tick_ms)
{
    uint64_t slack = 2ull * tick_ms;

    if (slack >= session_timeout_ms)
        return tick_ms;
    uint64_t lease = (session_timeout_ms - slack) * ZK__LEASE_RATE_RATIO_NUM /
                     ZK__LEASE_RATE_RATIO_DEN;
    return lease < tick_ms ? tick_ms : lease;
}

void zk__lease_init(struct zk__lease *l, uint64_t lease_ms, uint64_t now_ns)
{
    memset(l, 0, sizeof(*l));
    l->lease_ns = lease_ms * 1000000u;
    l->tick_ns[0] = now_ns;
}

void zk__lease_ticked(struct zk__lease *l, uint64_t tick, uint64_t now_ns)
{
    l->tick_ns[tick % ZK__LEASE_TICKS] = now_ns;
}

/* The lease that runs from our message of tick t (0: none). */
static uint64_t from_tick(const struct zk__lease *l,
                          const struct zk_zab_status *st, uint64_t t)
{
    if (t == 0 || t > st->tick || st->tick - t >= ZK__LEASE_TICKS)
        return 0;
    return l->tick_ns[t % ZK__LEASE_TICKS] + l->lease_ns;
}

uint64_t zk__lease_until(const struct zk__lease *l,
                         const struct zk_zab_status *st)
{
    if (!st->session_open)
        return 0;
    uint64_t a = from_tick(l, st, st->contact_tick);
    uint64_t b = from_tick(l, st, st->session_sent_tick);
    return a > b ? a : b;
}
