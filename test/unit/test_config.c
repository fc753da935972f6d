/*
 * test_config.c — the zoo.cfg-style ensemble configuration: good files
 * (defaults, every key, observers, IPv6, CRLF, comments), the quorum size,
 * myid files and command-line overrides, every error the parser promises
 * (with the file:line it names), secret file checks, and mutated files
 * (meant to run under ASan). Each test works in its own temporary
 * directory holding zoo.cfg, secret and data/.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zk_common.h"
#include "zk_config.h"

#define FUZZ_ROUNDS 3000

static const char secret_text[] = "0123456789abcdef-zkfs-test-secret";

static char dir[256];        /* the test's temporary directory */
static char cfg_name[320];   /* dir/zoo.cfg, the name given to the parser */

static void write_file(const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void setup(void)
{
    char path[512];
    snprintf(dir, sizeof(dir), "/tmp/zkfs-test-config-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cfg_name, sizeof(cfg_name), "%s/zoo.cfg", dir);
    snprintf(path, sizeof(path), "%s/data", dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    write_file("secret", secret_text, strlen(secret_text));
}

static void teardown(void)
{
    static const char *const names[] = {"zoo.cfg", "secret", "data/myid",
                                        "empty", "short", "long", "nl"};
    char path[512];
    for (size_t i = 0; i < ZK_ARRAY_LEN(names); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/data", dir);
    rmdir(path);
    rmdir(dir);
}

static int parse_id(const char *text, uint32_t id, struct zk_config *c,
                    char *err, size_t errlen)
{
    struct zk_config_args args = {.id = id, .data_dir = NULL};
    return zk_config_parse(cfg_name, text, strlen(text), &args, c, err,
                           errlen);
}

#define THREE \
    "dataDir=data\nsecretFile=secret\n" \
    "server.1=zk1:2888\nserver.2=zk2:2888\nserver.3=zk3:2888\n"

/* ---- good configurations --------------------------------------------- */

START_TEST(minimal_defaults)
{
    struct zk_config c;
    char err[256] = "";
    int rc = parse_id("dataDir=/var/lib/zkfs\nserver.1=localhost:2888\n", 1,
                      &c, err, sizeof(err));
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_str_eq(c.data_dir, "/var/lib/zkfs");
    ck_assert_uint_eq(c.my_id, 1);
    ck_assert_uint_eq(c.tick_time_ms, 200);
    ck_assert_uint_eq(c.init_limit_ticks, 50);
    ck_assert_uint_eq(c.sync_limit_ticks, 5);
    ck_assert_uint_eq(c.session_timeout_ms, 4000);
    ck_assert_uint_eq(c.n_servers, 1);
    ck_assert_uint_eq(c.n_voters, 1);
    ck_assert_uint_eq(c.quorum, 1);
    ck_assert_uint_eq(c.secret_len, 0);
    ck_assert_str_eq(c.secret_file, "");
    ck_assert_str_eq(c.servers[0].host, "localhost");
    ck_assert_uint_eq(c.servers[0].port, 2888);
    ck_assert_int_eq(c.servers[0].observer, 0);
}
END_TEST

START_TEST(full_file)
{
    static const char text[] =
        "# zkfs ensemble\r\n"
        "\r\n"
        "   tickTime =  100   \r\n"
        "initLimit=20\r\n"
        "\tsyncLimit\t=\t7\r\n"
        "sessionTimeout=1500\r\n"
        "  # indented comment = with equals\n"
        "dataDir=data\n"
        "secretFile=secret\n"
        "server.7=zk-1.example.com:2888\n"
        "server.2=[fd00::2]:2999:participant\n"
        "server.3 = 10.0.0.3:3000:observer\n"
        "server.255=[::1]:1:observer\n"
        "server.1=ZK_1:65535";   /* no final newline */
    struct zk_config c;
    char err[256] = "", want[512];
    int rc = parse_id(text, 3, &c, err, sizeof(err));
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_uint_eq(c.tick_time_ms, 100);
    ck_assert_uint_eq(c.init_limit_ticks, 20);
    ck_assert_uint_eq(c.sync_limit_ticks, 7);
    ck_assert_uint_eq(c.session_timeout_ms, 1500);
    snprintf(want, sizeof(want), "%s/data", dir);
    ck_assert_str_eq(c.data_dir, want);
    snprintf(want, sizeof(want), "%s/secret", dir);
    ck_assert_str_eq(c.secret_file, want);
    ck_assert_uint_eq(c.secret_len, strlen(secret_text));
    ck_assert_int_eq(memcmp(c.secret, secret_text, c.secret_len), 0);
    ck_assert_uint_eq(c.n_servers, 5);
    ck_assert_uint_eq(c.n_voters, 3);
    ck_assert_uint_eq(c.quorum, 2);
    ck_assert_uint_eq(c.my_id, 3);
    ck_assert_uint_eq(c.servers[0].id, 7);
    ck_assert_str_eq(c.servers[0].host, "zk-1.example.com");
    ck_assert_str_eq(c.servers[1].host, "fd00::2");
    ck_assert_uint_eq(c.servers[1].port, 2999);
    ck_assert_int_eq(c.servers[1].observer, 0);
    ck_assert_str_eq(c.servers[2].host, "10.0.0.3");
    ck_assert_int_eq(c.servers[2].observer, 1);
    ck_assert_str_eq(c.servers[3].host, "::1");
    ck_assert_uint_eq(c.servers[3].port, 1);
    ck_assert_uint_eq(c.servers[4].port, 65535);
    const struct zk_config_server *s = zk_config_server(&c, 255);
    ck_assert_ptr_eq(s, &c.servers[3]);
    ck_assert_ptr_null(zk_config_server(&c, 4));
    zk_config_wipe(&c);
    ck_assert_uint_eq(c.secret_len, 0);
    for (size_t i = 0; i < sizeof(c.secret); i++)
        ck_assert_uint_eq(c.secret[i], 0);
}
END_TEST

START_TEST(quorum_sizes)
{
    for (unsigned voters = 1; voters <= 9; voters++) {
        for (unsigned obs = 0; obs <= 3; obs++) {
            char text[2048];
            int off = snprintf(text, sizeof(text),
                               "dataDir=data\nsecretFile=secret\n");
            for (unsigned i = 1; i <= voters + obs; i++)
                off += snprintf(text + off, sizeof(text) - (size_t)off,
                                "server.%u=10.0.0.%u:2888%s\n", i, i,
                                i > voters ? ":observer" : "");
            struct zk_config c;
            char err[256] = "";
            ck_assert_msg(parse_id(text, voters + obs, &c, err,
                                   sizeof(err)) == 0, "%s", err);
            ck_assert_uint_eq(c.n_voters, voters);
            ck_assert_uint_eq(c.n_servers, voters + obs);
            ck_assert_uint_eq(c.quorum, voters / 2 + 1);
        }
    }
}
END_TEST

START_TEST(max_servers)
{
    char text[4096];
    int off = snprintf(text, sizeof(text), "dataDir=d\nsecretFile=secret\n");
    for (unsigned i = 1; i <= ZK_CONFIG_SERVERS_MAX; i++)
        off += snprintf(text + off, sizeof(text) - (size_t)off,
                        "server.%u=h:%u\n", i * 10, 1000 + i);
    struct zk_config c;
    char err[256] = "";
    ck_assert_msg(parse_id(text, 160, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(c.n_servers, ZK_CONFIG_SERVERS_MAX);
    ck_assert_uint_eq(c.quorum, ZK_CONFIG_SERVERS_MAX / 2 + 1);
    /* One more is refused, on its line. */
    snprintf(text + off, sizeof(text) - (size_t)off, "server.1=h:1\n");
    ck_assert_int_eq(parse_id(text, 160, &c, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strstr(err, ":19: too many servers"), "%s", err);
}
END_TEST

START_TEST(secret_bytes)
{
    static const uint8_t bin[20] = {0, 1, 2, 0xff, '\n', 0, 0x80, 9, 9, 9,
                                    9, 9, 9, 9, 9, 9, 9, 9, 0, '\r'};
    struct zk_config c;
    char err[256] = "";

    /* Binary bytes are kept; only trailing CR/LF are dropped. */
    write_file("secret", bin, sizeof(bin));
    ck_assert_msg(parse_id(THREE, 1, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(c.secret_len, 19);
    ck_assert_int_eq(memcmp(c.secret, bin, 19), 0);
    /* echo adds a newline: same key as printf. */
    write_file("secret", "abcdefghijklmnop\n", 17);
    ck_assert_msg(parse_id(THREE, 1, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(c.secret_len, 16);
    /* Exactly the maximum is fine. */
    uint8_t big[ZK_CONFIG_SECRET_MAX];
    memset(big, 'k', sizeof(big));
    write_file("secret", big, sizeof(big));
    ck_assert_msg(parse_id(THREE, 1, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(c.secret_len, ZK_CONFIG_SECRET_MAX);
    /* A single server may still name a secret; it is read and checked. */
    write_file("secret", secret_text, strlen(secret_text));
    ck_assert_msg(parse_id("dataDir=d\nsecretFile=secret\nserver.1=h:1\n", 1,
                           &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(c.secret_len, strlen(secret_text));
}
END_TEST

/* A secretFile or myid that is a named pipe is refused at once: opening
 * it for reading used to wait for a writer forever (found by
 * test/fuzz/fuzz_config). */
START_TEST(fifo_refused)
{
    struct zk_config c;
    char err[256] = "", path[512];
    uint32_t id = 0;

    snprintf(path, sizeof(path), "%s/fifo", dir);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    alarm(10);
    ck_assert_int_eq(parse_id("dataDir=data\nsecretFile=fifo\n"
                              "server.1=a:1\nserver.2=b:2\n", 1, &c, err,
                              sizeof(err)), -EINVAL);
    ck_assert_msg(strstr(err, "not a regular file"), "%s", err);
    unlink(path);
    snprintf(path, sizeof(path), "%s/data/myid", dir);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    snprintf(path, sizeof(path), "%s/data", dir);
    ck_assert_int_eq(zk_config_read_myid(path, &id, err, sizeof(err)),
                     -EINVAL);
    alarm(0);
}
END_TEST

/* ---- myid and overrides ------------------------------------------------ */

START_TEST(myid_file)
{
    struct zk_config c;
    char err[256] = "";
    uint32_t id = 0;

    write_file("data/myid", "  2\n", 4);
    ck_assert_msg(parse_id(THREE, 0, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(c.my_id, 2);
    /* --id wins over myid. */
    ck_assert_msg(parse_id(THREE, 3, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(c.my_id, 3);
    /* The direct reader. */
    char data[300];
    snprintf(data, sizeof(data), "%s/data", dir);
    ck_assert_int_eq(zk_config_read_myid(data, &id, err, sizeof(err)), 0);
    ck_assert_uint_eq(id, 2);
    write_file("data/myid", "255", 3);
    ck_assert_int_eq(zk_config_read_myid(data, &id, err, sizeof(err)), 0);
    ck_assert_uint_eq(id, 255);
    /* A myid naming no server. */
    write_file("data/myid", "4\n", 2);
    ck_assert_int_eq(parse_id(THREE, 0, &c, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strstr(err, "id 4 is not among"), "%s", err);
}
END_TEST

START_TEST(myid_bad)
{
    static const char *const bad[] = {"", "\n", "0", "256", "abc", "1 2",
                                      "-1", "+1", "1x", "99999999999",
                                      "0x1"};
    char data[300], err[512] = "";
    uint32_t id = 77;
    struct zk_config c;

    snprintf(data, sizeof(data), "%s/data", dir);
    ck_assert_int_eq(zk_config_read_myid(data, &id, err, sizeof(err)),
                     -ENOENT);
    ck_assert_msg(strstr(err, "/data/myid"), "%s", err);
    ck_assert_int_eq(parse_id(THREE, 0, &c, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strstr(err, "no server id given") && strstr(err, "myid"),
                  "%s", err);
    for (size_t i = 0; i < ZK_ARRAY_LEN(bad); i++) {
        write_file("data/myid", bad[i], strlen(bad[i]));
        ck_assert_int_eq(zk_config_read_myid(data, &id, err, sizeof(err)),
                         -EINVAL);
        ck_assert_msg(strstr(err, "not a server id"), "%s: %s", bad[i], err);
        ck_assert_int_eq(parse_id(THREE, 0, &c, err, sizeof(err)), -EINVAL);
    }
    char big[100];
    memset(big, ' ', sizeof(big));
    big[99] = '1';
    write_file("data/myid", big, sizeof(big));
    ck_assert_int_eq(zk_config_read_myid(data, &id, err, sizeof(err)),
                     -EINVAL);
    ck_assert_uint_eq(id, 77);   /* untouched on error */
}
END_TEST

START_TEST(data_dir_override)
{
    struct zk_config c;
    char err[256] = "", other[300];
    struct zk_config_args args = {.id = 0, .data_dir = other};

    snprintf(other, sizeof(other), "%s/data", dir);
    write_file("data/myid", "1", 1);
    /* No dataDir in the file: the override supplies it (and myid). */
    static const char text[] = "secretFile=secret\nserver.1=a:1\n"
                               "server.2=b:1\n";
    ck_assert_msg(zk_config_parse(cfg_name, text, strlen(text), &args, &c,
                                  err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c.data_dir, other);
    ck_assert_uint_eq(c.my_id, 1);
    /* Without it, dataDir is required. */
    ck_assert_int_eq(parse_id(text, 1, &c, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strstr(err, "dataDir is not set"), "%s", err);
    /* It also beats the file's dataDir. */
    ck_assert_msg(zk_config_parse(cfg_name, THREE, strlen(THREE), &args, &c,
                                  err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c.data_dir, other);
}
END_TEST

START_TEST(relative_paths)
{
    struct zk_config c;
    char err[256] = "";
    static const char text[] = "dataDir=d\nserver.1=a:1\n";

    /* No directory in the name: paths stay relative to the cwd. */
    ck_assert_int_eq(zk_config_parse("zoo.cfg", text, strlen(text), NULL,
                                     &c, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strncmp(err, "zoo.cfg: ", 9) == 0, "%s", err);
    struct zk_config_args args = {.id = 1, .data_dir = NULL};
    ck_assert_int_eq(zk_config_parse("zoo.cfg", text, strlen(text), &args,
                                     &c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.data_dir, "d");
    ck_assert_int_eq(zk_config_parse("/zoo.cfg", text, strlen(text), &args,
                                     &c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.data_dir, "/d");
    static const char abs[] = "dataDir=/abs\nserver.1=a:1";
    ck_assert_int_eq(zk_config_parse("etc/zoo.cfg", abs, strlen(abs), &args,
                                     &c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.data_dir, "/abs");
}
END_TEST

START_TEST(load_from_disk)
{
    struct zk_config c;
    char err[512] = "";
    struct zk_config_args args = {.id = 2, .data_dir = NULL};

    write_file("zoo.cfg", THREE, strlen(THREE));
    ck_assert_msg(zk_config_load(cfg_name, &args, &c, err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_uint_eq(c.my_id, 2);
    ck_assert_uint_eq(c.quorum, 2);
    ck_assert_uint_eq(c.secret_len, strlen(secret_text));
    /* A missing file: its errno. */
    char path[400];
    snprintf(path, sizeof(path), "%s/nope.cfg", dir);
    ck_assert_int_eq(zk_config_load(path, &args, &c, err, sizeof(err)),
                     -ENOENT);
    ck_assert_msg(strstr(err, "nope.cfg: "), "%s", err);
    /* A directory. */
    ck_assert_int_eq(zk_config_load(dir, &args, &c, err, sizeof(err)),
                     -EINVAL);
    ck_assert_msg(strstr(err, "not a regular file"), "%s", err);
    /* Too large. */
    char *big = malloc(ZK_CONFIG_FILE_MAX + 1);
    ck_assert_ptr_nonnull(big);
    memset(big, '\n', ZK_CONFIG_FILE_MAX + 1);
    write_file("zoo.cfg", big, ZK_CONFIG_FILE_MAX + 1);
    free(big);
    ck_assert_int_eq(zk_config_load(cfg_name, &args, &c, err, sizeof(err)),
                     -EINVAL);
    ck_assert_msg(strstr(err, "too large"), "%s", err);
    /* An error in the file names the file's path and line. */
    write_file("zoo.cfg", THREE "bogus=1\n", strlen(THREE) + 8);
    ck_assert_int_eq(zk_config_load(cfg_name, &args, &c, err, sizeof(err)),
                     -EINVAL);
    snprintf(path, sizeof(path), "%s:6: unknown key 'bogus'", cfg_name);
    ck_assert_str_eq(err, path);
}
END_TEST

/* ---- errors ------------------------------------------------------------ */

struct bad_case {
    const char *text;
    uint32_t id;
    unsigned line;      /* 0: a whole-file error */
    const char *want;
};

#define PRE "dataDir=data\nsecretFile=secret\nserver.1=zk1:2888\n"

static const struct bad_case bad_cases[] = {
    {PRE "foo=1\n", 1, 4, "unknown key 'foo'"},
    {PRE "datadir=x\n", 1, 4, "unknown key 'datadir'"},
    {PRE "tickTime=1\ntickTime=1\n", 1, 5, "duplicate key tickTime (first "
     "on line 4)"},
    {PRE "dataDir=y\n", 1, 4, "duplicate key dataDir (first on line 1)"},
    {PRE "server.1=zk9:1\n", 1, 4, "duplicate server id 1 (first on line 3)"},
    {PRE "server.01=zk9:1\n", 1, 4, "duplicate server id 1"},
    {PRE "server.2=ZK1:2888\n", 1, 4, "duplicate address ZK1:2888 (server.1 "
     "on line 3)"},
    {PRE "tickTime=abc\n", 1, 4, "tickTime: 'abc' is not a number in 1..60000"},
    {PRE "tickTime=0\n", 1, 4, "tickTime: '0' is not a number"},
    {PRE "tickTime=-5\n", 1, 4, "tickTime: '-5'"},
    {PRE "tickTime=+5\n", 1, 4, "tickTime: '+5'"},
    {PRE "tickTime=60001\n", 1, 4, "tickTime: '60001'"},
    {PRE "tickTime=99999999999999999999\n", 1, 4, "not a number"},
    {PRE "tickTime=2000ms\n", 1, 4, "'2000ms'"},
    {PRE "tickTime=2 000\n", 1, 4, "'2 000'"},
    {PRE "initLimit=0\n", 1, 4, "initLimit: '0' is not a number in 1..10000"},
    {PRE "syncLimit=x\n", 1, 4, "syncLimit: 'x'"},
    {PRE "sessionTimeout=1.5\n", 1, 4, "sessionTimeout: '1.5'"},
    {PRE "sessionTimeout=399\n", 1, 4, "sessionTimeout 399 ms is outside "
     "2*tickTime..20*tickTime (400..4000 ms)"},
    {PRE "sessionTimeout=4001\n", 1, 4, "outside"},
    {PRE "sessionTimeout=2001\ntickTime=100\n", 1, 4, "sessionTimeout 2001 "
     "ms is outside 2*tickTime..20*tickTime (200..2000 ms)"},
    {"tickTime=100\nsessionTimeout=250\nserver.1=a:1\n", 1, 0,
     "dataDir is not set"},
    {PRE "server.2=zk2:0\n", 1, 4, "'0' is not a port (1..65535)"},
    {PRE "server.2=zk2:65536\n", 1, 4, "'65536' is not a port"},
    {PRE "server.2=zk2:http\n", 1, 4, "'http' is not a port"},
    {PRE "server.2=zk2:\n", 1, 4, "'' is not a port"},
    {PRE "server.2=zk2\n", 1, 4, "expected host:port or host:port:observer"},
    {PRE "server.2=:2888\n", 1, 4, "host must be 1..253 characters"},
    {PRE "server.2=zk2:2888:3888\n", 1, 4, "zkfs uses one port per server"},
    {PRE "server.2=zk2:2888:Observer\n", 1, 4, "expected host:port"},
    {PRE "server.2=zk2:2888:observer:x\n", 1, 4, "expected host:port"},
    {PRE "server.0=zk2:1\n", 1, 4, "server id '0' is not a number in 1..255"},
    {PRE "server.256=zk2:1\n", 1, 4, "server id '256'"},
    {PRE "server.x=zk2:1\n", 1, 4, "server id 'x'"},
    {PRE "server.1a=zk2:1\n", 1, 4, "server id '1a'"},
    {PRE "server.=zk2:1\n", 1, 4, "unknown key 'server.'"},
    {PRE "server.-1=zk2:1\n", 1, 4, "server id '-1'"},
    {PRE "server.2=zk 2:1\n", 1, 4, "'zk 2' is not a host name or address"},
    {PRE "server.2=zk/2:1\n", 1, 4, "'zk/2' is not a host"},
    {PRE "server.2=1.2.3.256:1\n", 1, 4, "'1.2.3.256' is not an IPv4 address"},
    {PRE "server.2=[::g]:1\n", 1, 4, "'::g' is not an IPv6 address"},
    {PRE "server.2=[]:1\n", 1, 4, "host must be"},
    {PRE "server.2=[10.0.0.1]:1\n", 1, 4, "is not an IPv6 address"},
    {PRE "server.2=[::1:1\n", 1, 4, "missing ']'"},
    {PRE "server.2=[::1]1\n", 1, 4, "expected host:port"},
    {PRE "server.2=fd00::1:2888\n", 1, 4, "IPv6 address goes in brackets"},
    {PRE "just words\n", 1, 4, "expected key=value, got 'just words'"},
    {PRE "=5\n", 1, 4, "missing key before '='"},
    {PRE "tickTime=\n", 1, 4, "tickTime has an empty value"},
    {PRE "tickTime=   \t\n", 1, 4, "tickTime has an empty value"},
    {"dataDir=data\n", 1, 0, "no server.N=host:port lines"},
    {"dataDir=data\n# server.1=a:1\n", 1, 0, "no server.N=host:port lines"},
    {"dataDir=data\nserver.1=a:1:observer\n", 1, 0,
     "no voting server (all are observers)"},
    {PRE "server.2=zk2:1\n", 3, 0, "this server's id 3 is not among the "
     "server.N lines"},
    {"dataDir=data\nserver.1=a:1\nserver.2=b:1\n", 1, 0,
     "secretFile is required with more than one server"},
    {"dataDir=data\nsecretFile=missing\nserver.1=a:1\n", 1, 2,
     "No such file or directory"},
    {"dataDir=data\nsecretFile=empty\nserver.1=a:1\n", 1, 2,
     "/empty: empty (need at least 16 bytes)"},
    {"dataDir=data\nsecretFile=nl\nserver.1=a:1\n", 1, 2,
     "/nl: empty"},
    {"dataDir=data\nsecretFile=short\nserver.1=a:1\n", 1, 2,
     "secret too short (need at least 16 bytes)"},
    {"dataDir=data\nsecretFile=long\nserver.1=a:1\n", 1, 2,
     "longer than 1024 bytes"},
    {"dataDir=data\nsecretFile=data\nserver.1=a:1\n", 1, 2,
     "not a regular file"},
};

START_TEST(every_error)
{
    uint8_t long_secret[ZK_CONFIG_SECRET_MAX + 1];
    memset(long_secret, 's', sizeof(long_secret));
    write_file("empty", "", 0);
    write_file("nl", "\n\r\n", 3);
    write_file("short", "0123456789abcde", 15);
    write_file("long", long_secret, sizeof(long_secret));

    for (size_t i = 0; i < ZK_ARRAY_LEN(bad_cases); i++) {
        const struct bad_case *b = &bad_cases[i];
        struct zk_config c;
        char err[512] = "", prefix[400];
        memset(&c, 0xa5, sizeof(c));
        int rc = parse_id(b->text, b->id, &c, err, sizeof(err));
        ck_assert_msg(rc == -EINVAL, "case %zu: rc %d for %s", i, rc,
                      b->text);
        if (b->line)
            snprintf(prefix, sizeof(prefix), "%s:%u: ", cfg_name, b->line);
        else
            snprintf(prefix, sizeof(prefix), "%s: ", cfg_name);
        ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0,
                      "case %zu: want prefix '%s', got '%s'", i, prefix, err);
        ck_assert_msg(strstr(err, b->want), "case %zu: want '%s', got '%s'",
                      i, b->want, err);
        ck_assert_msg(!strchr(err, '\n'), "case %zu: not one line", i);
        ck_assert_msg(!strstr(err, secret_text), "case %zu: secret shown", i);
        /* *out untouched. */
        for (size_t k = 0; k < sizeof(c); k++)
            ck_assert_uint_eq(((uint8_t *)&c)[k], 0xa5);
    }
}
END_TEST

START_TEST(nul_byte_and_err_buffers)
{
    static const char text[] = "dataDir=data\nserver.1=a:1\0\n";
    struct zk_config c;
    char err[512] = "";

    struct zk_config_args args = {.id = 1, .data_dir = NULL};
    ck_assert_int_eq(zk_config_parse(cfg_name, text, sizeof(text) - 1, &args,
                                     &c, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strstr(err, ":2: NUL byte in line"), "%s", err);
    /* No message buffer, or a tiny one: still the error, no overflow. */
    ck_assert_int_eq(zk_config_parse(cfg_name, text, sizeof(text) - 1, &args,
                                     &c, NULL, 0), -EINVAL);
    char tiny[8];
    memset(tiny, 'x', sizeof(tiny));
    ck_assert_int_eq(zk_config_parse(cfg_name, text, sizeof(text) - 1, &args,
                                     &c, tiny, 4), -EINVAL);
    ck_assert_uint_eq(strlen(tiny), 3);
    ck_assert_int_eq(tiny[4], 'x');
    /* Quoted bad input is cut short. */
    char line[600];
    memset(line, 'q', sizeof(line));
    snprintf(line + 500, 100, "\nserver.1=a:1\n");
    ck_assert_int_eq(parse_id(line, 1, &c, err, sizeof(err)), -EINVAL);
    ck_assert_uint_lt(strlen(err), 200);
    /* An empty file. */
    ck_assert_int_eq(parse_id("", 1, &c, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strstr(err, "no server.N"), "%s", err);
}
END_TEST

START_TEST(long_values)
{
    struct zk_config c;
    char err[512] = "";
    char *text = malloc(3 * ZK_CONFIG_PATH_MAX);
    ck_assert_ptr_nonnull(text);

    /* A host name of 253 characters is fine, 254 is not. */
    char host[300];
    memset(host, 'h', sizeof(host));
    snprintf(text, 3 * ZK_CONFIG_PATH_MAX, "dataDir=/d\nserver.1=%.*s:1\n",
             253, host);
    ck_assert_msg(parse_id(text, 1, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(strlen(c.servers[0].host), 253);
    snprintf(text, 3 * ZK_CONFIG_PATH_MAX, "dataDir=/d\nserver.1=%.*s:1\n",
             254, host);
    ck_assert_int_eq(parse_id(text, 1, &c, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strstr(err, ":2: host must be 1..253"), "%s", err);
    /* A path that does not fit. */
    char *path = malloc(ZK_CONFIG_PATH_MAX + 1);
    ck_assert_ptr_nonnull(path);
    memset(path, 'p', ZK_CONFIG_PATH_MAX);
    path[0] = '/';
    path[ZK_CONFIG_PATH_MAX] = '\0';
    snprintf(text, 3 * ZK_CONFIG_PATH_MAX, "server.1=a:1\ndataDir=%s\n", path);
    ck_assert_int_eq(parse_id(text, 1, &c, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strstr(err, ":2: path too long"), "%s", err);
    free(path);
    free(text);
}
END_TEST

/* ---- mutated files ----------------------------------------------------- */

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

START_TEST(fuzz_mutations)
{
    static const char base[] =
        "tickTime=100\ninitLimit=3\nsessionTimeout=300\ndataDir=data\n"
        "secretFile=secret\nserver.1=[::1]:2888\nserver.2=10.0.0.2:2888\n"
        "server.3=zk3:2888:observer\n";
    static const char alphabet[] = "=:.[]#\n\r 0129server.observer\0x";
    char buf[sizeof(base) + 64];
    int ok = 0;

    for (int round = 0; round < FUZZ_ROUNDS; round++) {
        size_t len = sizeof(base) - 1;
        memcpy(buf, base, len);
        int edits = 1 + (int)(rng() % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = rng() % len;
            char ch = alphabet[rng() % (sizeof(alphabet) - 1)];
            if (rng() % 3 == 0 && len < sizeof(buf)) {   /* insert */
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = ch;
                len++;
            } else if (rng() % 2 && len > 1) {           /* delete */
                memmove(buf + at, buf + at + 1, len - at - 1);
                len--;
            } else {                                     /* replace */
                buf[at] = ch;
            }
        }
        struct zk_config c;
        char err[256];
        struct zk_config_args args = {.id = 1 + (uint32_t)(rng() % 3),
                                      .data_dir = NULL};
        int rc = zk_config_parse(cfg_name, buf, len, &args, &c, err,
                                 sizeof(err));
        ck_assert_msg(rc == 0 || rc == -EINVAL, "rc %d", rc);
        if (rc == 0) {
            ok++;
            ck_assert_uint_ge(c.n_voters, 1);
            ck_assert_uint_eq(c.quorum, c.n_voters / 2 + 1);
            ck_assert_ptr_nonnull(zk_config_server(&c, c.my_id));
        } else {
            ck_assert_int_eq(strncmp(err, cfg_name, strlen(cfg_name)), 0);
        }
    }
    ck_assert_int_gt(ok, 0);
}
END_TEST

/* zk_env_u64: the environment's numeric knobs (store, echo, ensemble). */
START_TEST(env_u64_knobs)
{
    static const struct {
        const char *v;
        int rc;
        uint64_t x;
    } cases[] = {
        {"", 0, 7}, {"0", 1, 0}, {"10", 1, 10}, {"100", 1, 100},
        {"101", -1, 7}, {"-1", -1, 7}, {"+5", -1, 7}, {" 5", -1, 7},
        {"5 ", -1, 7}, {"5x", -1, 7}, {"0x10", -1, 7}, {"abc", -1, 7},
        {"99999999999999999999999", -1, 7},
    };
    uint64_t x = 7;

    unsetenv("ZKFS_TEST_KNOB");
    ck_assert_int_eq(zk_env_u64("ZKFS_TEST_KNOB", 100, &x), 0);
    ck_assert_uint_eq(x, 7);
    for (size_t i = 0; i < ZK_ARRAY_LEN(cases); i++) {
        x = 7;
        setenv("ZKFS_TEST_KNOB", cases[i].v, 1);
        ck_assert_msg(zk_env_u64("ZKFS_TEST_KNOB", 100, &x) == cases[i].rc,
                      "[%s]: return value", cases[i].v);
        ck_assert_msg(x == cases[i].x, "[%s]: %llu", cases[i].v,
                      (unsigned long long)x);
    }
    setenv("ZKFS_TEST_KNOB", "18446744073709551615", 1);
    ck_assert_int_eq(zk_env_u64("ZKFS_TEST_KNOB", UINT64_MAX, &x), 1);
    ck_assert_uint_eq(x, UINT64_MAX);
    unsetenv("ZKFS_TEST_KNOB");
}
END_TEST

Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, minimal_defaults);
    tcase_add_test(tc, full_file);
    tcase_add_test(tc, quorum_sizes);
    tcase_add_test(tc, max_servers);
    tcase_add_test(tc, secret_bytes);
    tcase_add_test(tc, fifo_refused);
    tcase_add_test(tc, myid_file);
    tcase_add_test(tc, myid_bad);
    tcase_add_test(tc, data_dir_override);
    tcase_add_test(tc, relative_paths);
    tcase_add_test(tc, load_from_disk);
    tcase_add_test(tc, every_error);
    tcase_add_test(tc, nul_byte_and_err_buffers);
    tcase_add_test(tc, long_values);
    tcase_add_test(tc, fuzz_mutations);
    tcase_add_test(tc, env_u64_knobs);
    suite_add_tcase(s, tc);
    return s;
}
