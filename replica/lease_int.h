/*
 * lease_int.h — the runtime's side of the session lease (replica/lease.c):
 * when this replica's session can still be relied on, on the monotonic
 * clock. The core (zab_leader.c, "lease") says which of our own ticks a
 * quorum acknowledged (status.contact_tick); this module remembers when
 * each tick was taken and so when the acknowledged message left.
 *
 * Threads: the loop thread only. Pure: every function takes the time.
 */
#ifndef ZK_LEASE_INT_H
#define ZK_LEASE_INT_H

#include <stdint.h>

struct zk_zab_status;

/* Ticks whose start time is remembered: a contact older than this many
 * ticks is treated as no contact (it is far older than any lease). */
#define ZK__LEASE_TICKS 1024

/* The clock rates the lease tolerates (lease.c): every replica's clock
 * runs at least NUM/DEN as fast as any other's (2/3: the fastest at most
 * 1.5 times the slowest). */
#define ZK__LEASE_RATE_RATIO_NUM 2
#define ZK__LEASE_RATE_RATIO_DEN 3

struct zk__lease {
    uint64_t lease_ns;                    /* from a sent message's time  */
    uint64_t tick_ns[ZK__LEASE_TICKS];    /* when tick t was taken       */
};

/* The lease's length for a session timeout (ms): (the timeout less two
 * ticks) x 2/3, the clock rate ratio tolerated (see lease.c for why).
 * Never below one tick. */
uint64_t zk__lease_ms(uint32_t session_timeout_ms, uint32_t tick_ms);

/* Starts l: lease_ms long, tick 0 taken at now_ns. */
void zk__lease_init(struct zk__lease *l, uint64_t lease_ms, uint64_t now_ns);

/* Records that tick `tick` is being taken at now_ns (call it just before
 * the core's zk_zab_tick() that makes its tick `tick`). */
void zk__lease_ticked(struct zk__lease *l, uint64_t tick, uint64_t now_ns);

/* Until when (monotonic ns) the session in *st may be relied on: a lease
 * from its contact_tick or, for a session that just opened, from the send
 * of its first SESSION_OPEN, whichever ends later; 0 if there is no open
 * session or neither tick is usable (older than the ring). */
uint64_t zk__lease_until(const struct zk__lease *l,
                         const struct zk_zab_status *st);

#endif /* ZK_LEASE_INT_H */
