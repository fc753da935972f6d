/*
 * metrics_http.c — the metrics (metrics.c) over HTTP, for a Prometheus
 * server that scrapes instead of node_exporter: ZooKeeper's
 * metricsProvider.httpPort, bound to metricsProvider.httpHost (127.0.0.1
 * unless configured, so nothing is exposed by accident).
 *
 * A deliberately small server on the daemon's loop: every connection
 * sends one request (at most HTTP_REQ_MAX bytes until the blank line,
 * within HTTP_TIMEOUT_MS), gets one HTTP/1.0 answer and is closed. `GET
 * /metrics` (or `/`) answers the text format; other paths 404, other
 * methods 405. At most HTTP_CONNS_MAX connections at once; more are
 * closed at accept. No keep-alive, no TLS: put a proxy in front for more.
 */
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

#define HTTP_REQ_MAX     4096
#define HTTP_TIMEOUT_MS  5000
#define HTTP_CONNS_MAX   16
#define HTTP_BACKLOG     16

struct conn;

/* Freed once the server handle and every connection are closed. */
struct zk__fs_http {
    uv_tcp_t server;
    struct zk_fs *fs;
    int nconns;
    int closing, server_open;
    struct conn *conns;     /* every connection not yet freed */
};

struct conn {
    struct conn *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    struct zk__fs_http *http;
    size_t len;
    int closed;         /* handles closing: 2 callbacks to go */
    char req[HTTP_REQ_MAX + 1];
    char *resp;
};

/* ======================== connections =================================== */

static void http_maybe_free(struct zk__fs_http *http)
{
    if (http->closing && !http->server_open && http->conns == NULL)
        free(http);
}

static void conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct zk__fs_http *http = c->http;

    if (--c->closed > 0)
        return;
    http->nconns--;
    if (c->prev)
        c->prev->next = c->next;
    else
        http->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->resp);
    free(c);
    http_maybe_free(http);
}

static void conn_close(struct conn *c)
{
    if (c->closed)
        return;
    c->closed = 2;
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
    uv_close((uv_handle_t *)&c->timer, conn_closed);
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    conn_close(w->data);
}

/* Sends one answer: status line, headers and body, then closes. */
static void answer(struct conn *c, const char *status, const char *body,
                   size_t len)
{
    static const char fmt[] =
        "HTTP/1.0 %s\r\nContent-Type: text/plain; version=0.0.4; "
        "charset=utf-8\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n";
    size_t hn = (size_t)snprintf(NULL, 0, fmt, status, len);

    uv_read_stop((uv_stream_t *)&c->tcp);
    c->resp = malloc(hn + len + 1);
    if (c->resp == NULL) {
        conn_close(c);
        return;
    }
    snprintf(c->resp, hn + 1, fmt, status, len);
    memcpy(c->resp + hn, body, len);
    uv_buf_t b = uv_buf_init(c->resp, (unsigned)(hn + len));
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0)
        conn_close(c);
}

/* Answers a complete request head. */
static void serve(struct conn *c)
{
    static char text[ZK_METRICS_MAX_BYTES];

    if (strncmp(c->req, "GET ", 4) != 0) {
        answer(c, "405 Method Not Allowed", "GET only\n", 9);
        return;
    }
    const char *path = c->req + 4;
    size_t pn = strcspn(path, " ?\r\n");
    if (!((pn == 1 && path[0] == '/') ||
          (pn == 8 && memcmp(path, "/metrics", 8) == 0))) {
        answer(c, "404 Not Found", "try /metrics\n", 13);
        return;
    }
    size_t n = zk__fs_metrics_render(c->http->fs, text, sizeof(text));
    answer(c, "200 OK", text, n < sizeof(text) ? n : sizeof(text) - 1);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)suggested;

    *buf = uv_buf_init(c->req + c->len, (unsigned)(HTTP_REQ_MAX - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    (void)buf;

    if (n < 0) {
        conn_close(c);
        return;
    }
    c->len += (size_t)n;
    c->req[c->len] = '\0';
    if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n"))
        serve(c);
    else if (c->len == HTTP_REQ_MAX)
        answer(c, "431 Request Header Fields Too Large", "too large\n", 10);
}

static void on_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct zk__fs_http *http = server->data;
    struct conn *c = status == 0 ? calloc(1, sizeof(*c)) : NULL;

    if (c == NULL)
        return;
    c->http = http;
    uv_tcp_init(server->loop, &c->tcp);
    uv_timer_init(server->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    http->nconns++;
    c->next = http->conns;
    if (c->next)
        c->next->prev = c;
    http->conns = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        http->nconns > HTTP_CONNS_MAX || http->closing) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, HTTP_TIMEOUT_MS, 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ======================== start and stop ================================ */

int zk__fs_metrics_http_start(struct zk_fs *fs)
{
    const struct zk_fs_opts *o = fs->opts;
    struct sockaddr_storage sa;
    const char *host = o->metrics_host ? o->metrics_host : "127.0.0.1";

    if (o->metrics_port == 0)
        return 0;
    if (uv_ip4_addr(host, (int)o->metrics_port, (struct sockaddr_in *)&sa) &&
        uv_ip6_addr(host, (int)o->metrics_port, (struct sockaddr_in6 *)&sa))
        return -EINVAL;
    struct zk__fs_http *http = calloc(1, sizeof(*http));
    if (http == NULL)
        return -ENOMEM;
    http->fs = fs;
    uv_tcp_init(&fs->loop, &http->server);
    http->server.data = http;
    http->server_open = 1;
    fs->http = http;
    int rc = uv_tcp_bind(&http->server, (struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&http->server, HTTP_BACKLOG,
                       on_connection);
    if (rc) {
        zk_log(ZK_LOG_ERROR, "metrics: cannot listen on %s:%u: %s", host,
               o->metrics_port, uv_strerror(rc));
        zk__fs_metrics_http_stop(fs);
        return rc;
    }
    zk_log(ZK_LOG_INFO, "metrics: http://%s:%u/metrics", host,
           o->metrics_port);
    return 0;
}

static void server_closed(uv_handle_t *h)
{
    struct zk__fs_http *http = h->data;

    http->server_open = 0;
    http_maybe_free(http);
}

void zk__fs_metrics_http_stop(struct zk_fs *fs)
{
    struct zk__fs_http *http = fs->http;

    if (http == NULL)
        return;
    fs->http = NULL;
    http->closing = 1;
    for (struct conn *c = http->conns; c; c = c->next)
        conn_close(c);
    uv_close((uv_handle_t *)&http->server, server_closed);
}
