/*
 * ens_status.c — zk_replica_status for an ensemble member: its role,
 * epoch, commit and lag, counters, and every member's connection,
 * snapshot transfer, zxid and lag as this replica sees them.
 */
#include "ens_int.h"

#include <string.h>

/* Transactions from zxid z to ref, within ref's epoch (see zk_replica.h:
 * across epochs only ref's epoch counts, a lower bound). */
static uint64_t zxid_lag(uint64_t ref, uint64_t z)
{
    if (z >= ref)
        return 0;
    if (ZK_ZAB_EPOCH(z) == ZK_ZAB_EPOCH(ref))
        return ZK_ZAB_COUNTER(ref) - ZK_ZAB_COUNTER(z);
    return ZK_ZAB_COUNTER(ref);
}

/* A member's connection, snapshot transfer, zxid and lag. */
static void status_member(const struct zk__ens *e,
                          const struct zk_zab_status *st,
                          uint64_t applied_zxid, uint32_t i,
                          struct zk_replica_member *m)
{
    struct zk_zab_member_status ms;
    const struct peer *p = NULL;

    zk_zab_member_status(zk_driver_core(e->d), i, &ms);
    for (uint32_t k = 0; k < e->n_peers; k++)
        if (e->peers[k].id == ms.id)
            p = &e->peers[k];
    memset(m, 0, sizeof(*m));
    m->id = ms.id;
    m->observer = ms.observer;
    m->self = ms.self;
    m->connected = ms.self || (p && p->conn && p->conn->ready &&
                               !p->conn->closing);
    if (ms.self) {
        m->state = st->role == ZK_ZAB_LOOKING ? "looking"
                   : st->established ? "synced" : "syncing";
        m->zxid_known = 1;
        m->zxid = st->role == ZK_ZAB_LEADING ? st->persisted_zxid
                                             : applied_zxid;
        m->lag = st->role == ZK_ZAB_LEADING
                     ? zxid_lag(st->last_zxid, m->zxid)
                     : zxid_lag(st->commit_zxid, m->zxid);
    } else if (!m->connected) {
        m->state = "down";
    } else if (st->role == ZK_ZAB_LEADING) {
        m->state = ms.synced ? "synced" : ms.linked ? "syncing"
                                                   : "connected";
        m->zxid_known = ms.synced;
        m->zxid = ms.acked_zxid;
        m->lag = ms.synced ? zxid_lag(st->last_zxid, ms.acked_zxid) : 0;
    } else {
        m->state = ms.id == st->leader ? "leading" : "connected";
        m->zxid_known = ms.id == st->leader && st->established;
        m->zxid = m->zxid_known ? st->commit_zxid : 0;
    }
    if (!p || !p->conn)
        return;
    if (p->conn->stx && p->conn->stx->c == p->conn) {
        const struct snap_tx *t = p->conn->stx;
        m->snapshot = 1;
        m->snap_bytes = t->raw_sent;
        m->snap_total = t->total;
        m->snap_wire_bytes = t->wire_sent;
        m->state = "syncing";
    } else if (p->conn->snap && p->conn->snap->begun) {
        const struct zk__snap_rx *sn = p->conn->snap;
        m->snapshot = 1;
        m->snap_bytes = sn->len;
        m->snap_total = sn->total;
        m->snap_wire_bytes = sn->wire;
    }
}

void zk__ens_status(const struct zk__ens *e, struct zk_replica_status *out)
{
    static const char *const names[] = {"looking", "follower", "leader",
                                        "observer"};
    struct zk_zab_status st;
    struct zk_driver_stats ds;

    memset(out, 0, sizeof(*out));
    out->my_id = e->my_id;
    out->stale = 1;
    out->role = "stopped";
    if (!e->d)
        return;
    zk_driver_stats(e->d, &ds);
    out->last_zxid = ds.applied_zxid;
    out->pending = ds.pending;
    out->batches = e->carry_batches + ds.batches;
    out->fsyncs = e->carry_fsyncs + ds.fsyncs;
    out->batches_here = e->carry_here + ds.batches_here;
    out->write_avg_ns = __atomic_load_n(&e->write_avg_ns, __ATOMIC_RELAXED);
    zk_zab_status(zk_driver_core(e->d), &st);
    out->role = (unsigned)st.role < ZK_ARRAY_LEN(names) ? names[st.role]
                                                       : "?";
    out->leader_id = st.leader;
    out->epoch = st.epoch;
    out->abstaining = st.abstaining;
    out->stale = ds.failed || !st.established ||
                 st.role == ZK_ZAB_LOOKING ||
                 st.tick - st.contact_tick > e->sync_limit;
    out->commit_zxid = st.commit_zxid > ds.applied_zxid ? st.commit_zxid
                                                         : ds.applied_zxid;
    out->lag = zxid_lag(out->commit_zxid, ds.applied_zxid);
    _Static_assert(ZK_REPLICA_MEMBERS_MAX >= ZK_ZAB_MEMBERS_MAX,
                   "a status member per core member");
    out->snapshots_sent = e->snaps_sent;
    out->snapshots_installed = e->snaps_installed;
    out->snapshots_rejected = e->snaps_rejected;
    out->snapshots_held = e->snaps_held;
    out->store_failures = e->recoveries + (ds.failed ? 1 : 0);
    out->store_recoveries = e->recoveries;
    out->store_error = ds.failed;
    out->elections = st.n_elections;
    out->syncs_diff = st.n_diff;
    out->syncs_trunc = st.n_trunc;
    out->syncs_snap = st.n_snap;
    out->snap_sent_raw_bytes = e->snap_sent_raw;
    out->snap_sent_wire_bytes = e->snap_sent_wire;
    out->snap_installed_raw_bytes = e->snap_inst_raw;
    out->snap_installed_wire_bytes = e->snap_inst_wire;
    memcpy(out->election_le, e->elect_le, sizeof(out->election_le));
    out->election_count = e->elect_count;
    out->election_sum_ns = e->elect_sum_ns;
    out->n_members = e->n_members;
    for (uint32_t i = 0; i < e->n_members; i++) {
        status_member(e, &st, ds.applied_zxid, i, &out->members[i]);
        out->syncing |= out->members[i].snapshot;
    }
}

const uint64_t zk_replica_election_le_ns[ZK_REPLICA_ELECTION_BUCKETS - 1] = {
    50000000, 100000000, 200000000, 400000000, 800000000, 1600000000,
    3200000000, 6400000000, 12800000000, 25600000000};

void zk__ens_elect_watch(struct zk__ens *e)
{
    struct zk_zab_status st;

    if (!e->d)
        return;
    zk_zab_status(zk_driver_core(e->d), &st);
    if (st.role == ZK_ZAB_LOOKING) {
        if (!e->elect_t0_ns)
            e->elect_t0_ns = zk__ens_clock_ns();
        return;
    }
    if (!e->elect_t0_ns || !st.established)
        return;
    uint64_t ns = zk__ens_clock_ns() - e->elect_t0_ns;
    size_t b = 0;
    while (b < ZK_ARRAY_LEN(zk_replica_election_le_ns) &&
           ns > zk_replica_election_le_ns[b])
        b++;
    e->elect_le[b]++;
    e->elect_count++;
    e->elect_sum_ns += ns;
    e->elect_t0_ns = 0;
    zk_log(ZK_LOG_INFO, "ensemble: leader %u established %llu ms after "
           "this replica went looking", st.leader,
           (unsigned long long)(ns / 1000000));
}
