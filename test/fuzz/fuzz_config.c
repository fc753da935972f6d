/*
 * fuzz_config.c — the configuration parser (replica/config.c,
 * zk_config_parse) on arbitrary file contents, with the secret and myid
 * files it may read.
 *
 * The file is parsed as "<tmp>/zoo.cfg", so relative dataDir and
 * secretFile values land in a private directory the target prepares:
 * "secret" (a good secret), "short" (too short), "fifo" (a named pipe,
 * which must be refused without blocking), "data/myid" (2), "bad/myid"
 * (not an id). Byte 0 picks the command-line overrides (--id, --data).
 *
 * Checks on every configuration accepted: what config.c promises at its
 * top: at least one voter, unique ids and host:port pairs, numbers in
 * range, the own id among the servers, a secret with more than one server.
 */
#include "fuzz.h"
#include "zk_config.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static char cfg_name[600], data_dir[600];

static void put_file(const char *dir, const char *name, const char *text)
{
    char path[700];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    FZ_CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
    chmod(path, 0600);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *d = fz_tmpdir("config");
    char path[700];

    (void)argc;
    (void)argv;
    put_file(d, "secret", "0123456789abcdef0123456789abcdef\n");
    put_file(d, "short", "tiny\n");
    snprintf(path, sizeof(path), "%s/fifo", d);
    FZ_CHECK(mkfifo(path, 0600) == 0);
    snprintf(path, sizeof(path), "%s/data", d);
    FZ_CHECK(mkdir(path, 0700) == 0);
    put_file(path, "myid", " 2\n");
    snprintf(data_dir, sizeof(data_dir), "%s", path);
    snprintf(path, sizeof(path), "%s/bad", d);
    FZ_CHECK(mkdir(path, 0700) == 0);
    put_file(path, "myid", "two\n");
    snprintf(cfg_name, sizeof(cfg_name), "%s/zoo.cfg", d);
    return 0;
}

static void check_config(const struct zk_config *c, int standalone_ok)
{
    uint32_t voters = 0;

    if (c->n_servers == 0) {            /* ZooKeeper's standalone rule */
        FZ_CHECK(standalone_ok && c->my_id == 0 && c->data_dir[0] != '\0');
        FZ_CHECK(c->secret_len <= ZK_CONFIG_SECRET_MAX);
        return;
    }
    FZ_CHECK(c->n_servers <= ZK_CONFIG_SERVERS_MAX);
    for (uint32_t i = 0; i < c->n_servers; i++) {
        const struct zk_config_server *s = &c->servers[i];
        FZ_CHECK(s->id >= 1 && s->id <= ZK_CONFIG_ID_MAX && s->port >= 1);
        FZ_CHECK(memchr(s->host, '\0', sizeof(s->host)) && s->host[0]);
        voters += !s->observer;
        for (uint32_t j = 0; j < i; j++) {
            FZ_CHECK(c->servers[j].id != s->id);
            FZ_CHECK(c->servers[j].port != s->port ||
                     strcasecmp(c->servers[j].host, s->host) != 0);
        }
    }
    FZ_CHECK(voters >= 1 && voters == c->n_voters &&
             c->quorum == voters / 2 + 1);
    FZ_CHECK(zk_config_server(c, c->my_id) != NULL);
    FZ_CHECK(c->tick_time_ms >= 1 && c->tick_time_ms <= 60000);
    FZ_CHECK(c->init_limit_ticks >= 1 && c->init_limit_ticks <= 10000);
    FZ_CHECK(c->sync_limit_ticks >= 1 && c->sync_limit_ticks <= 10000);
    FZ_CHECK(c->session_timeout_ms >= 2 * c->tick_time_ms &&
             c->session_timeout_ms <= 20 * c->tick_time_ms);
    FZ_CHECK(c->data_dir[0] != '\0');
    FZ_CHECK(c->secret_len <= ZK_CONFIG_SECRET_MAX);
    if (c->n_servers > 1)
        FZ_CHECK(c->secret_len >= ZK_CONFIG_SECRET_MIN);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct zk_config_args args;
    memset(&args, 0, sizeof(args));
    struct zk_config *c;
    char err[256];

    if (size == 0 || size > ZK_CONFIG_FILE_MAX)
        return 0;
    args.id = data[0] & 3;                  /* 0: read the myid file */
    args.data_dir = data[0] & 4 ? data_dir : NULL;
    args.standalone_ok = (data[0] & 8) != 0;
    c = malloc(sizeof(*c));
    FZ_CHECK(c != NULL);
    err[0] = '\0';
    int rc = zk_config_parse(cfg_name, (const char *)data + 1, size - 1,
                             &args, c, err, sizeof(err));
    if (rc == 0) {
        check_config(c, args.standalone_ok);
        zk_config_wipe(c);
    } else {
        FZ_CHECK(rc == -EINVAL && err[0] != '\0');
    }
    free(c);
    return 0;
}
