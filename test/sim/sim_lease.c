/*
 * sim_lease.c — the runtime's session lease (replica/lease.c, the code
 * that runs) driven on simulated time, and its invariant: no replica may
 * apply the close of a session while the session's owner still relies on
 * it (its lease has not run out and it has not given the session up).
 * A close applied anywhere is what lets another replica take the
 * owner's ephemerals and locks, so this is "never two holders at once".
 *
 * Like the runtime (replica/ens_driver.c, zk__ens_on_tick), each tick records its
 * time before the core takes it and then checks the lease, giving the
 * session up when it ran out.
 */
#include "sim_int.h"

static uint64_t ns(const struct sim *s)
{
    return s->now * 1000u;
}

void sim_lease_start(struct sim *s, struct sim_replica *r)
{
    uint64_t timeout_ms = (uint64_t)SIM_SESSION_TIMEOUT * SIM_TICK_US / 1000;
    zk__lease_init(&r->lease, zk__lease_ms((uint32_t)timeout_ms,
                                           SIM_TICK_US / 1000), ns(s));
    r->tick_no = 0;
}

void sim_lease_tick(struct sim *s, struct sim_replica *r)
{
    struct zk_zab_status st;

    zk__lease_ticked(&r->lease, ++r->tick_no, ns(s));
    zk_zab_tick(r->core);
    zk_zab_status(r->core, &st);
    if (st.session_open && ns(s) >= zk__lease_until(&r->lease, &st)) {
        sim_log(s, r->id, "lease ran out: session %016llx given up",
                (unsigned long long)st.session);
        zk_zab_session_renew(r->core);
    }
}

void sim_lease_check_close(struct sim *s, const struct sim_replica *by,
                           const struct zk_zab_entry *e)
{
    if (e->len != 8)
        return;
    uint64_t sid = zk_get_be64(e->data);
    uint32_t owner = ZK_ZAB_SESSION_OWNER(sid);
    if (owner < 1 || owner > s->n)
        return;
    struct sim_replica *o = &s->rep[owner - 1];
    struct zk_zab_status st;
    if (!o->alive || !o->core)
        return;
    zk_zab_status(o->core, &st);
    if (!st.session_open || st.session != sid)
        return;                 /* given up (or never its own) */
    uint64_t until = zk__lease_until(&o->lease, &st);
    if (ns(s) < until)
        sim_fail(s, by->id, "applied the close of session %016llx while "
                 "r%u's lease on it runs %llu us more", (unsigned long long)sid,
                 owner, (unsigned long long)((until - ns(s)) / 1000u));
}
