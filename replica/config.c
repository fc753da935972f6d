/*
 * config.c — parses and checks the zoo.cfg-style ensemble configuration
 * (include/zk_config.h), reads the peer secret and the myid file.
 *
 * What it keeps true: a struct zk_config handed out has at least one
 * voter, unique server ids and unique host:port pairs, every number in its
 * documented range, its own id among the servers, and (with more than one
 * server) a secret of at least ZK_CONFIG_SECRET_MIN bytes. Every error is
 * one line naming the file and, where there is one, the line. The secret
 * is never printed; temporary copies of it are wiped.
 *
 * The parser works on (pointer, length) slices of the file in memory, so
 * a missing final newline, CRLF line ends and NUL bytes are all handled
 * without copying lines.
 */
#include "zk_config.h"
#include "zk_common.h"
#include "zk_zab.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(ZK_CONFIG_SERVERS_MAX <= ZK_ZAB_MEMBERS_MAX,
               "the core must be able to hold every configured server");

#define TICK_MS_MAX      60000u
#define LIMIT_TICKS_MAX  10000u
#define SESSION_TICKS_MIN 2u     /* ZooKeeper's minSessionTimeout default */
#define SESSION_TICKS_MAX 20u    /* ZooKeeper's maxSessionTimeout default */
#define MYID_FILE_MAX    64u     /* bytes of a myid file                  */
#define SHOW_MAX         64      /* characters of bad input quoted back    */

enum key { K_DATA_DIR, K_TICK, K_INIT, K_SYNC, K_SESSION, K_SECRET,
           K_METRICS_PORT, K_METRICS_HOST, K_COUNT };

static const char *const key_names[K_COUNT] = {
    "dataDir", "tickTime", "initLimit", "syncLimit", "sessionTimeout",
    "secretFile", "metricsProvider.httpPort", "metricsProvider.httpHost",
};

struct parse {
    const char *name;                       /* file name for messages    */
    char base[ZK_CONFIG_PATH_MAX];          /* dir for relative paths    */
    char *err;
    size_t errlen;
    unsigned line;                          /* current line, 1-based     */
    unsigned key_line[K_COUNT];             /* 0: not set                */
    unsigned server_line[ZK_CONFIG_SERVERS_MAX];
    struct zk_config *c;
};

/* ---- helpers ----------------------------------------------------------- */

__attribute__((format(printf, 4, 5)))
static int fail_at(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Writes "name:line: message" (or "name: message" for line 0), returns
 * -EINVAL. */
__attribute__((format(printf, 3, 4)))
static int fail(const struct parse *p, unsigned line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line)
        return fail_at(p->err, p->errlen, -EINVAL, "%s:%u: %s", p->name,
                       line, msg);
    return fail_at(p->err, p->errlen, -EINVAL, "%s: %s", p->name, msg);
}

static int show_len(size_t n)
{
    return n > SHOW_MAX ? SHOW_MAX : (int)n;
}

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' ||
           ch == '\f' || ch == '\n';
}

static void trim(const char **s, size_t *n)
{
    while (*n && is_space(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && is_space((*s)[*n - 1]))
        (*n)--;
}

/* Decimal digits only (no sign, no spaces), value in [lo, hi]. */
static int parse_u32(const char *s, size_t n, uint32_t lo, uint32_t hi,
                     uint32_t *out)
{
    uint64_t v = 0;

    if (n == 0 || n > 10)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/*
 * Reads the regular file at path into buf[0..cap). Returns 0, the length
 * and (if mode_out is not NULL) the file's mode; a negative errno from
 * open/read, -EINVAL if it is not a regular file, -EFBIG if it holds more
 * than cap bytes.
 */
static int read_small(const char *path, uint8_t *buf, size_t cap,
                      size_t *len_out, mode_t *mode_out)
{
    struct stat st;
    size_t len = 0;
    uint8_t extra;
    int rc = 0;

    /* O_NONBLOCK: opening a named pipe for reading would otherwise wait
     * for a writer, and the daemon would hang before saying anything.
     * (Reads of a regular file ignore it.) */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        goto out;
    }
    for (;;) {
        uint8_t *dst = len < cap ? buf + len : &extra;
        ssize_t got = read(fd, dst, len < cap ? cap - len : 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = -errno;
            goto out;
        }
        if (got == 0)
            break;
        if (len >= cap) {
            rc = -EFBIG;
            goto out;
        }
        len += (size_t)got;
    }
    *len_out = len;
    if (mode_out)
        *mode_out = st.st_mode;
out:
    close(fd);
    return rc;
}

static const char *read_error(int rc, char *tmp, size_t tmplen)
{
    if (rc == -EINVAL)
        return "not a regular file";
    if (rc == -EFBIG)
        return "file too large";
    snprintf(tmp, tmplen, "%s", zk_strerror(rc));
    return tmp;
}

/* ---- keys -------------------------------------------------------------- */

/* Copies a path value, taking a relative one from p->base. */
static int set_path(struct parse *p, char *dst, const char *v, size_t n)
{
    int w;

    size_t bn = strlen(p->base);

    if (v[0] == '/' || bn == 0)
        w = snprintf(dst, ZK_CONFIG_PATH_MAX, "%.*s", (int)n, v);
    else
        w = snprintf(dst, ZK_CONFIG_PATH_MAX, "%s%s%.*s", p->base,
                     p->base[bn - 1] == '/' ? "" : "/", (int)n, v);
    if (w < 0 || (size_t)w >= ZK_CONFIG_PATH_MAX)
        return fail(p, p->line, "path too long (max %d bytes)",
                    ZK_CONFIG_PATH_MAX - 1);
    return 0;
}

static int set_number(struct parse *p, enum key k, const char *v, size_t n)
{
    static const uint32_t lo[K_COUNT] = {0, 1, 1, 1, 1, 0, 0, 0};
    static const uint32_t hi[K_COUNT] = {
        0, TICK_MS_MAX, LIMIT_TICKS_MAX, LIMIT_TICKS_MAX, UINT32_MAX, 0,
        65535, 0};
    uint32_t *dst[K_COUNT] = {
        NULL, &p->c->tick_time_ms, &p->c->init_limit_ticks,
        &p->c->sync_limit_ticks, &p->c->session_timeout_ms, NULL,
        &p->c->metrics_port, NULL};

    if (parse_u32(v, n, lo[k], hi[k], dst[k]) < 0)
        return fail(p, p->line, "%s: '%.*s' is not a number in %u..%u",
                    key_names[k], show_len(n), v, lo[k], hi[k]);
    return 0;
}

/* metricsProvider.httpHost: an IPv4 or IPv6 address literal (what
 * uv_ip4_addr/uv_ip6_addr take), no brackets. */
static int set_metrics_host(struct parse *p, const char *v, size_t n)
{
    char host[ZK_CONFIG_METRICS_HOST_MAX];
    unsigned char addr[sizeof(struct in6_addr)];

    if (n >= sizeof(host))
        return fail(p, p->line, "metricsProvider.httpHost: too long");
    memcpy(host, v, n);
    host[n] = '\0';
    if (inet_pton(AF_INET, host, addr) != 1 &&
        inet_pton(AF_INET6, host, addr) != 1)
        return fail(p, p->line, "metricsProvider.httpHost: '%.*s' is not an "
                    "IP address", show_len(n), v);
    memcpy(p->c->metrics_host, host, n + 1);
    return 0;
}

static int set_key(struct parse *p, const char *key, size_t kn,
                   const char *v, size_t n)
{
    unsigned k;

    for (k = 0; k < K_COUNT; k++)
        if (strlen(key_names[k]) == kn && memcmp(key_names[k], key, kn) == 0)
            break;
    if (k == K_COUNT)
        return fail(p, p->line, "unknown key '%.*s'", show_len(kn), key);
    if (p->key_line[k])
        return fail(p, p->line, "duplicate key %s (first on line %u)",
                    key_names[k], p->key_line[k]);
    p->key_line[k] = p->line;
    if (k == K_DATA_DIR)
        return set_path(p, p->c->data_dir, v, n);
    if (k == K_SECRET)
        return set_path(p, p->c->secret_file, v, n);
    if (k == K_METRICS_HOST)
        return set_metrics_host(p, v, n);
    return set_number(p, (enum key)k, v, n);
}

/* ---- server.N ---------------------------------------------------------- */

static int check_host(struct parse *p, const char *h, size_t n, int v6,
                      char *dst)
{
    unsigned char addr[16];
    int dotted = 1;

    if (n == 0 || n >= ZK_CONFIG_HOST_MAX)
        return fail(p, p->line, "host must be 1..%d characters",
                    ZK_CONFIG_HOST_MAX - 1);
    memcpy(dst, h, n);
    dst[n] = '\0';
    if (v6) {
        if (inet_pton(AF_INET6, dst, addr) != 1)
            return fail(p, p->line, "'%.*s' is not an IPv6 address",
                        show_len(n), h);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = h[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_'))
            return fail(p, p->line, "'%.*s' is not a host name or address",
                        show_len(n), h);
        if (!(ch == '.' || (ch >= '0' && ch <= '9')))
            dotted = 0;
    }
    if (dotted && inet_pton(AF_INET, dst, addr) != 1)
        return fail(p, p->line, "'%.*s' is not an IPv4 address",
                    show_len(n), h);
    return 0;
}

/* Splits "host:port[:role]" or "[v6]:port[:role]" and fills s. */
static int parse_address(struct parse *p, const char *v, size_t n,
                         struct zk_config_server *s)
{
    const char *host = v, *rest;
    size_t hn;
    int v6 = v[0] == '[';
    static const char usage[] =
        "expected host:port or host:port:observer";

    if (v6) {
        const char *rb = memchr(v, ']', n);
        if (!rb)
            return fail(p, p->line, "missing ']' after IPv6 address");
        host = v + 1;
        hn = (size_t)(rb - host);
        rest = rb + 1;
    } else {
        const char *colon = memchr(v, ':', n);
        size_t colons = 0;
        for (size_t i = 0; i < n; i++)
            colons += v[i] == ':';
        if (colons > 2)
            return fail(p, p->line, "%s (an IPv6 address goes in brackets: "
                        "[addr]:port)", usage);
        hn = colon ? (size_t)(colon - v) : n;
        rest = v + hn;
    }
    size_t rn = n - (size_t)(rest - v);
    if (rn == 0 || rest[0] != ':')
        return fail(p, p->line, "%s", usage);
    rest++;
    rn--;
    const char *role = memchr(rest, ':', rn);
    size_t pn = role ? (size_t)(role - rest) : rn;
    uint32_t port;
    int rc = check_host(p, host, hn, v6, s->host);
    if (rc)
        return rc;
    if (parse_u32(rest, pn, 1, 65535, &port) < 0)
        return fail(p, p->line, "'%.*s' is not a port (1..65535)",
                    show_len(pn), rest);
    s->port = (uint16_t)port;
    s->observer = 0;
    if (role) {
        size_t ln = rn - pn - 1;
        if (ln == 8 && memcmp(role + 1, "observer", 8) == 0)
            s->observer = 1;
        else if (!(ln == 11 && memcmp(role + 1, "participant", 11) == 0))
            return fail(p, p->line, "%s (zkfs uses one port per server)",
                        usage);
    }
    return 0;
}

static int add_server(struct parse *p, const char *idtxt, size_t idn,
                      const char *v, size_t n)
{
    struct zk_config *c = p->c;
    struct zk_config_server s;
    uint32_t id;

    if (parse_u32(idtxt, idn, 1, ZK_CONFIG_ID_MAX, &id) < 0)
        return fail(p, p->line, "server id '%.*s' is not a number in 1..%d",
                    show_len(idn), idtxt, ZK_CONFIG_ID_MAX);
    for (uint32_t i = 0; i < c->n_servers; i++)
        if (c->servers[i].id == id)
            return fail(p, p->line, "duplicate server id %u (first on line "
                        "%u)", id, p->server_line[i]);
    if (c->n_servers == ZK_CONFIG_SERVERS_MAX)
        return fail(p, p->line, "too many servers (at most %d)",
                    ZK_CONFIG_SERVERS_MAX);
    memset(&s, 0, sizeof(s));
    s.id = id;
    int rc = parse_address(p, v, n, &s);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < c->n_servers; i++)
        if (c->servers[i].port == s.port &&
            strcasecmp(c->servers[i].host, s.host) == 0)
            return fail(p, p->line, "duplicate address %s:%u (server.%u on "
                        "line %u)", s.host, s.port, c->servers[i].id,
                        p->server_line[i]);
    p->server_line[c->n_servers] = p->line;
    c->servers[c->n_servers++] = s;
    return 0;
}

/* ---- lines and final checks ------------------------------------------- */

static int parse_line(struct parse *p, const char *s, size_t n)
{
    if (memchr(s, '\0', n))
        return fail(p, p->line, "NUL byte in line");
    trim(&s, &n);
    if (n == 0 || s[0] == '#')
        return 0;
    const char *eq = memchr(s, '=', n);
    if (!eq)
        return fail(p, p->line, "expected key=value, got '%.*s'",
                    show_len(n), s);
    const char *key = s, *v = eq + 1;
    size_t kn = (size_t)(eq - s), vn = n - kn - 1;
    trim(&key, &kn);
    trim(&v, &vn);
    if (kn == 0)
        return fail(p, p->line, "missing key before '='");
    if (vn == 0)
        return fail(p, p->line, "%.*s has an empty value", show_len(kn), key);
    if (kn > 7 && memcmp(key, "server.", 7) == 0)
        return add_server(p, key + 7, kn - 7, v, vn);
    return set_key(p, key, kn, v, vn);
}

static int read_secret(struct parse *p)
{
    struct zk_config *c = p->c;
    uint8_t buf[ZK_CONFIG_SECRET_MAX];
    char tmp[128];
    size_t len = 0;
    mode_t mode = 0;
    unsigned line = p->key_line[K_SECRET];

    int rc = read_small(c->secret_file, buf, sizeof(buf), &len, &mode);
    if (rc) {
        rc = fail(p, line, "secretFile %s: %s", c->secret_file,
                  rc == -EFBIG ? "longer than 1024 bytes"
                               : read_error(rc, tmp, sizeof(tmp)));
        goto out;
    }
    /* A trailing newline is an editor's, not the secret's: both "echo"
     * and "printf" then give the same key. */
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    if (len < ZK_CONFIG_SECRET_MIN) {
        rc = fail(p, line, "secretFile %s: %s (need at least %d bytes)",
                  c->secret_file, len ? "secret too short" : "empty",
                  ZK_CONFIG_SECRET_MIN);
        goto out;
    }
    if (mode & (S_IRWXG | S_IRWXO))
        zk_log(ZK_LOG_WARN, "%s:%u: secretFile %s is accessible to group or "
               "others (chmod 600 it)", p->name, line, c->secret_file);
    memcpy(c->secret, buf, len);
    c->secret_len = len;
out:
    sodium_memzero(buf, sizeof(buf));
    return rc;
}

static int resolve_id(struct parse *p, const struct zk_config_args *args)
{
    struct zk_config *c = p->c;
    char msg[512];

    if (args && args->id) {
        c->my_id = args->id;
    } else {
        int rc = zk_config_read_myid(c->data_dir, &c->my_id, msg,
                                     sizeof(msg));
        if (rc)
            return fail(p, 0, "no server id given and %s", msg);
    }
    if (!zk_config_server(c, c->my_id))
        return fail(p, 0, "this server's id %u is not among the server.N "
                    "lines", c->my_id);
    return 0;
}

static int finish(struct parse *p, const struct zk_config_args *args)
{
    struct zk_config *c = p->c;
    /* ZooKeeper's rule: a zoo.cfg without server lines is standalone. */
    int standalone = c->n_servers == 0 && args && args->standalone_ok;

    if (c->n_servers == 0 && !standalone)
        return fail(p, 0, "no server.N=host:port lines");
    for (uint32_t i = 0; i < c->n_servers; i++)
        c->n_voters += !c->servers[i].observer;
    if (c->n_voters == 0 && !standalone)
        return fail(p, 0, "no voting server (all are observers)");
    c->quorum = c->n_voters / 2 + 1;
    if (!p->key_line[K_SESSION])
        c->session_timeout_ms =
            c->tick_time_ms * ZK_CONFIG_SESSION_TICKS_DEFAULT;
    uint32_t lo = c->tick_time_ms * SESSION_TICKS_MIN;
    uint32_t hi = c->tick_time_ms * SESSION_TICKS_MAX;
    if (c->session_timeout_ms < lo || c->session_timeout_ms > hi)
        return fail(p, p->key_line[K_SESSION], "sessionTimeout %u ms is "
                    "outside 2*tickTime..20*tickTime (%u..%u ms)",
                    c->session_timeout_ms, lo, hi);
    if (args && args->data_dir &&
        snprintf(c->data_dir, sizeof(c->data_dir), "%s", args->data_dir) >=
            (int)sizeof(c->data_dir))
        return fail(p, 0, "data directory path too long");
    if (c->data_dir[0] == '\0')
        return fail(p, 0, "dataDir is not set");
    if (p->key_line[K_SECRET]) {
        int rc = read_secret(p);
        if (rc)
            return rc;
    } else if (c->n_servers > 1) {
        return fail(p, 0, "secretFile is required with more than one "
                    "server (peers authenticate with it)");
    }
    if (standalone && args->id == 0)
        return 0;       /* no id: --id N still fails in resolve_id */
    return resolve_id(p, args);
}

static void set_base(struct parse *p)
{
    const char *slash = strrchr(p->name, '/');

    p->base[0] = '\0';
    if (!slash)
        return;
    size_t n = (size_t)(slash - p->name);
    if (n == 0)
        snprintf(p->base, sizeof(p->base), "/");
    else if (n < sizeof(p->base))
        snprintf(p->base, sizeof(p->base), "%.*s", (int)n, p->name);
}

/* ---- public ------------------------------------------------------------ */

int zk_config_parse(const char *name, const char *text, size_t len,
                    const struct zk_config_args *args,
                    struct zk_config *out, char *err, size_t errlen)
{
    struct zk_config *c = calloc(1, sizeof(*c));
    struct parse *p = calloc(1, sizeof(*p));
    int rc = 0;

    if (!c || !p) {
        rc = fail_at(err, errlen, -ENOMEM, "out of memory");
        goto out;
    }
    p->name = name ? name : "(config)";
    p->err = err;
    p->errlen = errlen;
    p->c = c;
    set_base(p);
    c->tick_time_ms = ZK_CONFIG_TICK_MS_DEFAULT;
    snprintf(c->metrics_host, sizeof(c->metrics_host), "127.0.0.1");
    c->init_limit_ticks = ZK_CONFIG_INIT_LIMIT_DEFAULT;
    c->sync_limit_ticks = ZK_CONFIG_SYNC_LIMIT_DEFAULT;
    for (size_t pos = 0; pos < len;) {
        const char *s = text + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        p->line++;
        rc = parse_line(p, s, n);
        if (rc)
            goto out;
        pos += n + 1;
    }
    rc = finish(p, args);
    if (rc == 0)
        *out = *c;
out:
    if (c) {
        zk_config_wipe(c);
        free(c);
    }
    free(p);
    return rc;
}

int zk_config_load(const char *path, const struct zk_config_args *args,
                   struct zk_config *out, char *err, size_t errlen)
{
    char tmp[128];
    size_t len = 0;
    uint8_t *buf = malloc(ZK_CONFIG_FILE_MAX);

    if (!buf)
        return fail_at(err, errlen, -ENOMEM, "%s: out of memory", path);
    int rc = read_small(path, buf, ZK_CONFIG_FILE_MAX, &len, NULL);
    if (rc == -EINVAL || rc == -EFBIG)
        rc = fail_at(err, errlen, -EINVAL, "%s: %s (at most %d bytes)", path,
                     read_error(rc, tmp, sizeof(tmp)), ZK_CONFIG_FILE_MAX);
    else if (rc)
        rc = fail_at(err, errlen, rc, "%s: %s", path, zk_strerror(rc));
    else
        rc = zk_config_parse(path, (const char *)buf, len, args, out, err,
                             errlen);
    free(buf);
    return rc;
}

int zk_config_read_myid(const char *data_dir, uint32_t *id_out, char *err,
                        size_t errlen)
{
    char path[ZK_CONFIG_PATH_MAX], tmp[128];
    uint8_t buf[MYID_FILE_MAX];
    size_t len = 0;
    uint32_t id;

    if (snprintf(path, sizeof(path), "%s/myid", data_dir) >= (int)sizeof(path))
        return fail_at(err, errlen, -EINVAL, "%s/myid: path too long",
                       data_dir);
    int rc = read_small(path, buf, sizeof(buf), &len, NULL);
    if (rc == -EINVAL || rc == -EFBIG)
        return fail_at(err, errlen, -EINVAL, "%s: %s", path,
                       read_error(rc, tmp, sizeof(tmp)));
    if (rc)
        return fail_at(err, errlen, rc, "%s: %s", path, zk_strerror(rc));
    const char *s = (const char *)buf;
    trim(&s, &len);
    if (parse_u32(s, len, 1, ZK_CONFIG_ID_MAX, &id) < 0)
        return fail_at(err, errlen, -EINVAL, "%s: not a server id (1..%d)",
                       path, ZK_CONFIG_ID_MAX);
    *id_out = id;
    return 0;
}

const struct zk_config_server *zk_config_server(const struct zk_config *c,
                                                uint32_t id)
{
    for (uint32_t i = 0; i < c->n_servers && i < ZK_CONFIG_SERVERS_MAX; i++)
        if (c->servers[i].id == id)
            return &c->servers[i];
    return NULL;
}

void zk_config_wipe(struct zk_config *c)
{
    sodium_memzero(c->secret, sizeof(c->secret));
    c->secret_len = 0;
}
