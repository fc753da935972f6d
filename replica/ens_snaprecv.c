/*
 * ens_snaprecv.c — a learner receiving a snapshot: the SNAP message is
 * held, the stream that follows is checked and written to a temporary
 * file (snap_rx.c), and at its end the SNAP is stepped; the worker
 * installs the file with the INSTALL op that follows (ens_driver.c).
 */
#include "ens_int.h"

#include <stdlib.h>
#include <string.h>

/* A SNAP message is held until its snapshot stream has arrived, then
 * stepped: the INSTALL op it leads to finds the snapshot complete. */
int zk__ens_snap_hold(struct conn *c, const struct zk_zab_msg *m)
{
    zk__snap_rx_free(c->snap);
    c->snap = zk__snap_rx_new(m->zxid);
    if (!c->snap || m->n_sessions > ZK_ZAB_MEMBERS_MAX)
        return -ENOMEM;
    for (uint32_t i = 0; i < m->n_sessions; i++)
        c->snap->sessions[i] = m->sessions[i];
    c->snap_msg = *m;
    c->snap_msg.n_entries = 0;
    c->snap_msg.entries = NULL;
    return 0;
}

/* BEGIN: the format, zxid and size (snap_rx.c), then the progress log. */
static const char *snap_begin(struct zk__ens *e, struct conn *c,
                              struct zk__snap_rx *sn,
                              const struct zk_frame *f)
{
    const char *bad = zk__snap_rx_begin(sn, e->snap_dir, f->payload, f->len);

    if (bad)
        return bad;
    sn->start_ms = sn->log_ms = uv_now(e->loop);
    zk_log(ZK_LOG_INFO, "ensemble: receiving a snapshot of %llu bytes at "
           "0x%llx from server %u", (unsigned long long)sn->total,
           (unsigned long long)sn->zxid, c->peer->id);
    return NULL;
}

void zk__ens_on_snap_frame(struct conn *c, const struct zk_frame *f)
{
    struct zk__ens *e = c->e;
    struct zk__snap_rx *sn = c->snap;
    const char *bad;

    if (!sn) {
        zk__ens_conn_close(c, "snapshot data without SNAP");
        return;
    }
    zk_driver_heard(e->d, c->peer->id);
    if (f->flags == ENS_FRAME_SNAP_BEGIN)
        bad = snap_begin(e, c, sn, f);
    else if (f->flags == ENS_FRAME_SNAP)
        bad = zk__snap_rx_data(sn, f->payload, f->len);
    else
        bad = zk__snap_rx_end(sn, f->payload, f->len);
    if (bad) {
        zk_log(ZK_LOG_WARN, "ensemble: snapshot at 0x%llx from server %u "
               "rejected: %s", (unsigned long long)sn->zxid, c->peer->id,
               bad);
        e->snaps_rejected++;
        zk__snap_rx_free(sn);
        c->snap = NULL;
        zk__ens_conn_close(c, bad);
        return;
    }
    uint64_t now = uv_now(e->loop);
    if (f->flags == ENS_FRAME_SNAP &&
        zk__ens_progress_due(sn->len, sn->total, &sn->log_pct, &sn->log_ms, now))
        zk_log(ZK_LOG_INFO, "ensemble: snapshot from server %u: %llu of "
               "%llu bytes (%u%%), %llu compressed", c->peer->id,
               (unsigned long long)sn->len,
               (unsigned long long)sn->total, sn->log_pct,
               (unsigned long long)sn->wire);
    if (f->flags != ENS_FRAME_SNAP_END)
        return;
    zk_log(ZK_LOG_INFO, "ensemble: received a snapshot of %llu bytes (%llu "
           "with zstd) at 0x%llx from server %u in %llu ms",
           (unsigned long long)sn->len,
           (unsigned long long)sn->wire, (unsigned long long)sn->zxid,
           c->peer->id, (unsigned long long)(now - sn->start_ms));
    zk__snap_rx_free(e->snap_pending);
    e->snap_pending = sn;
    c->snap = NULL;
    zk_driver_step(e->d, &c->snap_msg);
}
