/*
 * sim_lease.c — the invariant on the session lease: no replica may apply
 * the close of a session while the session's owner still relies on it
 * (its lease has not run out and it has not given the session up). A
 * close applied anywhere is what lets another replica take the owner's
 * ephemerals and locks, so this is "never two holders at once".
 *
 * The lease itself is the driver's (replica/driver.c, replica/lease.c),
 * the code that runs in the daemon, on the owner's own clock (each
 * replica's runs at its own rate, within the bound the lease tolerates:
 * sim_run.c): each tick records its time before the core takes it and
 * then checks the lease, giving the session up when it ran out. The
 * owner's clock is read when the close is applied, as a holder's check
 * reads it when it is answered.
 */
#include "sim_int.h"

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
    if (!o->alive || !o->drv)
        return;
    zk_zab_status(sim_core(o), &st);
    sim_log(s, by->id, "close of %016llx applied: r%u %s",
            (unsigned long long)sid, owner,
            st.session_open && st.session == sid ? "relies on it" :
            "gave it up");
    if (!st.session_open || st.session != sid)
        return;                 /* given up (or never its own) */
    if (e->zxid < o->own_open_zxid) {
        /* The close of an earlier opening of that id: the owner opened
         * it again after it (a retried OPEN whose first one committed
         * and expired meanwhile), and this replica is only behind. Its
         * lease is on the later opening, which this close precedes. */
        sim_log(s, by->id, "(a close from before r%u's open %016llx)",
                owner, (unsigned long long)o->own_open_zxid);
        return;
    }
    uint64_t until = zk_driver_lease_until(o->drv), now = sim_local_ns(s, o);
    if (now < until)
        sim_fail(s, by->id, "applied the close of session %016llx while "
                 "r%u's lease on it runs %llu us more on its clock (rate "
                 "%llu ppm)", (unsigned long long)sid, owner,
                 (unsigned long long)((until - now) / 1000u),
                 (unsigned long long)o->rate_ppm);
}
