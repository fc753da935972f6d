/*
 * ens_net.c — the ensemble's transport: one authenticated TCP connection
 * per pair of servers (dialled by the higher id, reconnected with
 * exponential backoff, a newer connection replacing an older one), the
 * handshake (zk_frame.h), DATA frames carrying Zab messages (fragmented
 * past one frame), messages held while a snapshot streams, and the
 * dispatch of what arrives to the core or to the snapshot receiver.
 */
#include "ens_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static struct peer *peer_by_id(struct zk__ens *e, uint32_t id)
{
    for (uint32_t i = 0; i < e->n_peers; i++)
        if (e->peers[i].id == id)
            return &e->peers[i];
    return NULL;
}

/* Closes connections that have not finished the handshake in time. */
void zk__ens_handshake_sweep(struct zk__ens *e)
{
    uint64_t now = uv_now(e->loop);
    struct conn *c, *next;

    for (c = e->conns; c; c = next) {
        next = c->next;
        if (!c->ready && !c->closing && now - c->born_ms > ENS_HANDSHAKE_MS)
            zk__ens_conn_close(c, "no handshake in time");
    }
}

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *c = w->c;

    c->queued_bytes -= w->len;
    free(w);
    if (status < 0 && status != UV_ECANCELED)
        zk__ens_conn_close(c, uv_strerror(status));
    else if (c->stx)
        zk__ens_stx_pump(c->stx);          /* room for more of the snapshot */
}

/* Queues w (its buffer filled) on c. */
static void conn_write(struct conn *c, struct wreq *w)
{
    uv_buf_t buf = uv_buf_init((char *)w->buf, (unsigned)w->len);

    w->c = c;
    c->queued_bytes += w->len;
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
    if (rc) {
        c->queued_bytes -= w->len;
        free(w);
        zk__ens_conn_close(c, uv_strerror(rc));
    }
}

/* Sends our HELLO (first) or AUTH. */
static void conn_send_handshake(struct conn *c, int auth)
{
    size_t cap = zk_frame_size(auth ? ZK_FRAME_AUTH_LEN : ZK_FRAME_HELLO_LEN);
    struct wreq *w = malloc(sizeof(*w) + cap);
    int rc;

    if (!w) {
        zk__ens_conn_close(c, "out of memory");
        return;
    }
    rc = auth ? zk_frame_conn_auth(c->fc, w->buf, cap, &w->len)
              : zk_frame_conn_hello(c->fc, w->buf, cap, &w->len);
    if (rc) {
        free(w);
        zk__ens_conn_close(c, zk_strerror(rc));
        return;
    }
    conn_write(c, w);
}

/* Writes c's sealed frames: at once where the socket takes them (no
 * request, no completion callback, no change of the poll set), the rest
 * queued behind the connection's earlier writes. */
static void conn_flush(struct conn *c)
{
    size_t len = c->olen, off = 0;

    if (!len)
        return;
    c->olen = 0;            /* first: a close from in here finds nothing */
    c->queued_bytes -= len;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0) {
        uv_buf_t buf = uv_buf_init((char *)c->obuf, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
        if (n < 0 && n != UV_EAGAIN) {
            zk__ens_conn_close(c, uv_strerror(n));
            return;
        }
        off = n > 0 ? (size_t)n : 0;
    }
    if (off < len && !c->closing) {
        struct wreq *w = malloc(sizeof(*w) + (len - off));
        if (!w) {
            zk__ens_conn_close(c, "out of memory");
            return;
        }
        memcpy(w->buf, c->obuf + off, len - off);
        w->len = len - off;
        conn_write(c, w);
    }
    if (c->ocap > ZK_FRAME_BUF_KEEP && !c->olen) {  /* after a large batch */
        free(c->obuf);
        c->obuf = NULL;
        c->ocap = 0;
    }
}

void zk__ens_flush(uv_prepare_t *h)
{
    struct zk__ens *e = h->data;

    uv_prepare_stop(h);
    e->flush_armed = 0;
    for (struct conn *c = e->conns; c; c = c->next)
        if (!c->closing)
            conn_flush(c);
}

/* Room for n more bytes in c's frames to send. */
static int obuf_reserve(struct conn *c, size_t n)
{
    if (c->olen + n <= c->ocap)
        return 0;
    size_t cap = c->ocap ? c->ocap : 4096;
    while (cap < c->olen + n)
        cap *= 2;
    uint8_t *p = realloc(c->obuf, cap);
    if (!p)
        return -ENOMEM;
    c->obuf = p;
    c->ocap = cap;
    return 0;
}

/* Seals buf[0..len) as one DATA frame with flags into c's frames to send,
 * written before the loop next polls (zk__ens_flush). A snapshot's stream
 * is written frame by frame as before: its pump runs on the completion of
 * each write. */
int zk__ens_send_frame(struct conn *c, uint16_t flags, const uint8_t *buf,
                      size_t len)
{
    size_t size = zk_frame_size((uint32_t)len);
    struct zk__ens *e = c->e;
    int rc;

    if (c->stx) {
        conn_flush(c);
        struct wreq *w = malloc(sizeof(*w) + size);
        if (!w)
            return -ENOMEM;
        uint8_t *payload = w->buf + ZK_FRAME_HEADER_SIZE;
        memcpy(payload, buf, len);
        rc = zk_frame_conn_seal(c->fc, flags, payload, (uint32_t)len,
                                w->buf, payload + len);
        if (rc) {
            free(w);
            return rc;
        }
        w->len = size;
        conn_write(c, w);
        return 0;
    }
    if ((rc = obuf_reserve(c, size)))
        return rc;
    uint8_t *frame = c->obuf + c->olen;
    uint8_t *payload = frame + ZK_FRAME_HEADER_SIZE;
    memcpy(payload, buf, len);
    rc = zk_frame_conn_seal(c->fc, flags, payload, (uint32_t)len, frame,
                            payload + len);
    if (rc)
        return rc;
    c->olen += size;
    c->queued_bytes += size;
    if (!e->flush_armed && !e->stopping &&
        uv_prepare_start(&e->flush, zk__ens_flush) == 0)
        e->flush_armed = 1;
    return 0;
}

/* Sends an encoded message as one DATA frame, or as fragments of at most
 * ZK_FRAME_PAYLOAD_MAX bytes (flags ENS_FRAME_ZAB_MORE, the last one
 * ENS_FRAME_ZAB) when it is larger (a PROPOSE batch can pass 4 MiB). */
static int send_bytes(struct conn *c, const uint8_t *buf, size_t n)
{
    size_t off = 0;
    int rc = 0;

    while (rc == 0 && !c->closing) {
        size_t chunk = n - off > ZK_FRAME_PAYLOAD_MAX ? ZK_FRAME_PAYLOAD_MAX
                                                      : n - off;
        int last = off + chunk == n;
        rc = zk__ens_send_frame(c, last ? ENS_FRAME_ZAB : ENS_FRAME_ZAB_MORE,
                        buf + off, chunk);
        off += chunk;
        if (last)
            break;
    }
    return rc;
}

/* Encodes m into a new buffer of exactly len bytes (*out; free it). */
static int encode_msg(const struct zk_zab_msg *m, size_t len, uint8_t **out)
{
    uint8_t *buf = malloc(len ? len : 1);
    size_t n;
    int rc = buf ? zk_zab_msg_encode(m, buf, len, &n) : -ENOMEM;

    if (rc == 0 && n != len)
        rc = -EINVAL;
    if (rc) {
        free(buf);
        return rc;
    }
    if (n > ZK_FRAME_PAYLOAD_MAX)
        zk_log(ZK_LOG_DEBUG, "ensemble: %s to %u (%zu bytes) in fragments",
               zk_zab_msg_name(m->type), m->to, n);
    *out = buf;
    return 0;
}

int zk__ens_send_encoded(struct conn *c, const struct zk_zab_msg *m,
                        size_t len)
{
    uint8_t *buf;
    int rc = encode_msg(m, len, &buf);

    if (rc == 0) {
        rc = send_bytes(c, buf, len);
        free(buf);
    }
    return rc;
}

/* Keeps m for after the snapshot streaming on c (bounded like a send
 * queue: past ENS_SENDQ_BYTES_MAX the connection is dropped). */
static int hold_msg(struct conn *c, const struct zk_zab_msg *m, size_t len)
{
    struct held *h;
    uint8_t *buf;
    int rc;

    if (c->held_bytes + len > ENS_SENDQ_BYTES_MAX)
        return -ENOBUFS;
    h = malloc(sizeof(*h) + len);
    if (!h)
        return -ENOMEM;
    rc = encode_msg(m, len, &buf);
    if (rc) {
        free(h);
        return rc;
    }
    memcpy(h->buf, buf, len);
    free(buf);
    h->len = len;
    h->next = NULL;
    if (c->held_tail)
        c->held_tail->next = h;
    else
        c->held = h;
    c->held_tail = h;
    c->held_bytes += len;
    return 0;
}

static void held_free(struct conn *c)
{
    for (struct held *h = c->held, *next; h; h = next) {
        next = h->next;
        free(h);
    }
    c->held = c->held_tail = NULL;
    c->held_bytes = 0;
}

/* The snapshot on c has ended: what was held goes out, in order. */
void zk__ens_held_flush(struct conn *c)
{
    int rc = 0;

    for (struct held *h = c->held; h && rc == 0 && !c->closing; h = h->next)
        rc = send_bytes(c, h->buf, h->len);
    held_free(c);
    if (rc)
        zk__ens_conn_close(c, zk_strerror(rc));
}

/* Sends m to its peer; drops it if there is no authenticated connection
 * (the core treats that as loss). */
void zk__ens_send_msg(struct zk__ens *e, const struct zk_zab_msg *m)
{
    struct peer *p = peer_by_id(e, m->to);
    struct conn *c = p ? p->conn : NULL;
    size_t len = zk_zab_msg_encoded_size(m);

    if (!c || !c->ready || c->closing)
        return;
    if (m->type == ZK_ZAB_MSG_SNAP) {
        zk__ens_send_snap(e, c, m, len);
        return;
    }
    if (len > ENS_MSG_BYTES_MAX) {
        zk_log(ZK_LOG_WARN, "ensemble: %s to %u is %zu bytes; dropped",
               zk_zab_msg_name(m->type), m->to, len);
        return;
    }
    if (c->queued_bytes + len > ENS_SENDQ_BYTES_MAX) {
        zk__ens_conn_close(c, "send queue full");
        return;
    }
    int rc = c->stx ? hold_msg(c, m, len) : zk__ens_send_encoded(c, m, len);
    if (rc) {
        zk_log(ZK_LOG_WARN, "ensemble: cannot send %s to %u: %s",
               zk_zab_msg_name(m->type), m->to, zk_strerror(rc));
        if (rc != -EINVAL)
            zk__ens_conn_close(c, zk_strerror(rc));
    }
}

static void peer_schedule(struct peer *p)
{
    if (p->e->stopping || p->conn || p->dialing)
        return;
    uv_timer_start(&p->timer, zk__ens_on_reconnect_timer, p->backoff_ms, 0);
    p->backoff_ms = p->backoff_ms * 2 > ENS_BACKOFF_MAX_MS
                        ? ENS_BACKOFF_MAX_MS : p->backoff_ms * 2;
}

/* c was its peer's connection and no newer one replaced it: the core
 * hears of the loss now (a dead leader's TCP reset starts the election at
 * once), not after syncLimit ticks of silence. From the close callback,
 * so that the core is never entered from inside a send. */
static void report_down(struct conn *c)
{
    struct zk__ens *e = c->e;

    if (!c->was_current || !c->peer || c->peer->conn || e->stopping || !e->d)
        return;
    zk_driver_peer_down(e->d, c->peer->id);
    zk__ens_elect_watch(e);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data, **pp;
    struct zk__ens *e = c->e;

    report_down(c);

    for (pp = &e->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    zk_frame_conn_free(c->fc);
    if (c->snap && c->snap->begun)
        zk_log(ZK_LOG_WARN, "ensemble: snapshot at 0x%llx abandoned after "
               "%llu of %llu bytes", (unsigned long long)c->snap->zxid,
               (unsigned long long)c->snap->len,
               (unsigned long long)c->snap->total);
    zk__snap_rx_free(c->snap);
    held_free(c);
    free(c->frag);
    free(c->obuf);
    free(c);
    zk__ens_handle_closed(e);
}

void zk__ens_conn_close(struct conn *c, const char *why)
{
    struct peer *p = c->peer;

    if (c->closing)
        return;
    conn_flush(c);            /* what was sealed before, as it would have */
    if (c->closing)
        return;
    c->closing = 1;
    if (!c->e->stopping && p)
        zk_log(*zk_frame_conn_why(c->fc) ? ZK_LOG_WARN : ZK_LOG_INFO,
               "ensemble: connection %s server %u closed: %s",
               c->outbound ? "to" : "from", p->id, why);
    else if (!c->e->stopping)
        zk_log(ZK_LOG_WARN, "ensemble: unidentified connection refused: %s",
               why);
    if (!c->outbound && !c->ready)
        c->e->n_inbound--;
    if (c->stx)
        zk__ens_stx_cancel(c->stx);
    if (p && p->conn == c) {
        p->conn = NULL;
        c->was_current = 1;
    }
    if (p && p->dialing == c)
        p->dialing = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    if (p && p->dial)
        peer_schedule(p);
}

/* The peer's HELLO verified: check who it is, then send our AUTH. */
static void on_hello(struct conn *c)
{
    uint32_t id = (uint32_t)zk_frame_conn_peer(c->fc);
    struct peer *p = peer_by_id(c->e, id);

    if (!c->outbound) {
        if (!p || p->dial) {
            zk__ens_conn_close(c, "HELLO from a server that should not dial us");
            return;
        }
        c->peer = p;
    }
    conn_send_handshake(c, 1);
}

/* Both AUTHs done: c becomes its peer's connection. */
static void on_ready(struct conn *c)
{
    struct peer *p = c->peer;

    if (!zk_frame_conn_ready(c->fc)) {
        zk__ens_conn_close(c, "handshake out of order");
        return;
    }
    if (!c->outbound)
        c->e->n_inbound--;
    c->ready = 1;
    if (p->dialing == c)
        p->dialing = NULL;
    if (p->conn && p->conn != c)
        zk__ens_conn_close(p->conn, "replaced by a newer connection");
    p->conn = c;
    p->backoff_ms = ENS_BACKOFF_MIN_MS;
    zk_log(ZK_LOG_INFO, "ensemble: server %u connected (%s)", p->id,
           c->outbound ? "dialled" : "accepted");
}

/* Keeps a fragment (ENS_FRAME_ZAB_MORE) until the last one arrives. */
static int frag_add(struct conn *c, const struct zk_frame *f)
{
    if (c->frag_len + f->len > ENS_MSG_BYTES_MAX)
        return -EMSGSIZE;
    if (c->frag_len + f->len > c->frag_cap) {
        size_t cap = c->frag_len + f->len;
        void *p = realloc(c->frag, cap);
        if (!p)
            return -ENOMEM;
        c->frag = p;
        c->frag_cap = cap;
    }
    memcpy(c->frag + c->frag_len, f->payload, f->len);
    c->frag_len += f->len;
    return 0;
}

static void on_data(struct conn *c, const struct zk_frame *f)
{
    struct zk__ens *e = c->e;
    const uint8_t *buf = f->payload;
    size_t len = f->len;
    struct zk_zab_msg m;
    int rc = 0;

    if (f->flags == ENS_FRAME_SNAP || f->flags == ENS_FRAME_SNAP_END ||
        f->flags == ENS_FRAME_SNAP_BEGIN) {
        zk__ens_on_snap_frame(c, f);
        return;
    }
    if (f->flags == ENS_FRAME_ZAB_MORE ||
        (f->flags == ENS_FRAME_ZAB && c->frag_len)) {
        rc = frag_add(c, f);
        if (rc == 0 && f->flags == ENS_FRAME_ZAB_MORE)
            return;
        buf = c->frag;
        len = c->frag_len;
    } else if (f->flags != ENS_FRAME_ZAB) {
        rc = ZK_ECORRUPT;
    }
    if (rc == 0)
        rc = zk_zab_msg_decode(buf, len, &m, e->rx_entries,
                               ZK_ARRAY_LEN(e->rx_entries));
    if (rc == 0 && (m.from != c->peer->id || m.to != e->my_id))
        rc = ZK_ECORRUPT;
    if (rc == 0 && m.type == ZK_ZAB_MSG_SNAP)
        rc = zk__ens_snap_hold(c, &m);
    else if (rc == 0) {
        zk_driver_step(e->d, &m);
        zk__ens_elect_watch(e);
    }
    if (rc) {
        zk__ens_conn_close(c, "malformed message");
        return;
    }
    c->frag_len = 0;
    if (c->frag_cap > ZK_FRAME_BUF_KEEP) {
        free(c->frag);
        c->frag = NULL;
        c->frag_cap = 0;
    }
}

static void conn_feed(struct conn *c, const uint8_t *buf, size_t n)
{
    size_t off = 0, used;
    struct zk_frame f;

    while (off < n && !c->closing) {
        int ev = zk_frame_conn_feed(c->fc, buf + off, n - off, &used, &f);
        if (ev < 0) {
            zk__ens_conn_close(c, zk_frame_conn_why(c->fc));
            return;
        }
        off += used;
        if (ev == ZK_FRAME_EV_HELLO)
            on_hello(c);
        else if (ev == ZK_FRAME_EV_READY)
            on_ready(c);
        else if (ev == ZK_FRAME_EV_DATA)
            on_data(c, &f);
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)hint;
    *buf = uv_buf_init((char *)c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;

    if (nread < 0) {
        zk__ens_conn_close(c, nread == UV_EOF ? "closed by peer"
                                      : uv_strerror((int)nread));
        return;
    }
    conn_feed(c, (const uint8_t *)buf->base, (size_t)nread);
    zk_driver_pump(c->e->d);
}

/* A new connection object with its TCP handle initialised. */
static struct conn *conn_new(struct zk__ens *e, struct peer *p)
{
    struct conn *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    if (zk_frame_conn_new(e->secret, e->secret_len, e->my_id,
                          p ? p->id : 0, &c->fc) ||
        uv_tcp_init(e->loop, &c->tcp)) {
        zk_frame_conn_free(c->fc);
        free(c);
        return NULL;
    }
    c->e = e;
    c->peer = p;
    c->born_ms = uv_now(e->loop);
    c->outbound = p != NULL;
    c->tcp.data = c;
    c->creq.data = c;
    c->next = e->conns;
    e->conns = c;
    e->n_handles++;
    return c;
}

/* Sends HELLO and starts reading. */
static void conn_start(struct conn *c)
{
    uv_tcp_nodelay(&c->tcp, 1);
    conn_send_handshake(c, 0);
    if (c->closing)
        return;
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc)
        zk__ens_conn_close(c, uv_strerror(rc));
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;

    if (c->closing)
        return;
    if (status < 0) {
        zk__ens_conn_close(c, uv_strerror(status));
        return;
    }
    conn_start(c);
}

void zk__ens_on_reconnect_timer(uv_timer_t *t)
{
    struct peer *p = t->data;
    struct zk__ens *e = p->e;

    if (e->stopping || p->conn || p->dialing)
        return;
    struct conn *c = conn_new(e, p);
    if (!c) {
        peer_schedule(p);
        return;
    }
    p->dialing = c;
    int rc = uv_tcp_connect(&c->creq, &c->tcp,
                            (const struct sockaddr *)&p->addr, on_connect);
    if (rc)
        zk__ens_conn_close(c, uv_strerror(rc));
}

void zk__ens_on_connection(uv_stream_t *server, int status)
{
    struct zk__ens *e = server->data;

    if (status < 0 || e->stopping)
        return;
    struct conn *c = conn_new(e, NULL);
    if (!c)
        return;
    e->n_inbound++;
    int rc = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rc) {
        zk__ens_conn_close(c, uv_strerror(rc));
        return;
    }
    /* Full: the oldest connection that has not proved the secret makes
     * room, so that idle strangers cannot lock the real peers out. */
    if (e->n_inbound > ENS_INBOUND_MAX) {
        struct conn *old = NULL;
        for (struct conn *o = e->conns; o; o = o->next)
            if (o != c && !o->outbound && !o->ready && !o->closing &&
                (!old || o->born_ms <= old->born_ms))
                old = o;
        if (old)
            zk__ens_conn_close(old, "too many unauthenticated connections");
    }
    conn_start(c);
}
