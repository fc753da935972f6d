/*
 * test_config_standalone.c — a zoo.cfg without server lines (as shipped in
 * /etc/zkfs/zoo.cfg) is a standalone replica when the caller allows it
 * (zk_config_args.standalone_ok, as `zkfs mount -c` does), and stays an
 * error otherwise; the keys it has are still checked.
 */
#include <check.h>
#include <string.h>

#include "zk_config.h"

static int parse(const char *text, int ok, uint32_t id, struct zk_config *c,
                 char *err, size_t n)
{
    struct zk_config_args a = {.id = id, .standalone_ok = ok};
    memset(c, 0, sizeof(*c));
    err[0] = '\0';
    return zk_config_parse("/etc/zkfs/zoo.cfg", text, strlen(text), &a, c,
                           err, n);
}

START_TEST(no_servers_standalone)
{
    static struct zk_config c;
    char err[512];
    const char *text = "# defaults\ndataDir=/var/lib/zkfs\ntickTime=200\n"
                       "initLimit=50\nsyncLimit=5\nsessionTimeout=4000\n"
                       "# server.1=zk1.example.com:2888\n";

    ck_assert_int_eq(parse(text, 1, 0, &c, err, sizeof(err)), 0);
    ck_assert_uint_eq(c.n_servers, 0);
    ck_assert_uint_eq(c.my_id, 0);
    ck_assert_str_eq(c.data_dir, "/var/lib/zkfs");
    ck_assert_uint_eq(c.session_timeout_ms, 4000);
    /* Not allowed: the old error. */
    ck_assert_int_ne(parse(text, 0, 0, &c, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "no server.N"));
    /* An id names a server that is not there. */
    ck_assert_int_ne(parse(text, 1, 2, &c, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "not among"));
}
END_TEST

START_TEST(no_servers_still_checked)
{
    static struct zk_config c;
    char err[512];

    ck_assert_int_ne(parse("dataDir=/d\nbogus=1\n", 1, 0, &c, err,
                           sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "zoo.cfg:2:"));
    ck_assert_int_ne(parse("tickTime=200\n", 1, 0, &c, err, sizeof(err)),
                     0);
    ck_assert_ptr_nonnull(strstr(err, "dataDir"));
    ck_assert_int_ne(parse("dataDir=/d\nsessionTimeout=10\n", 1, 0, &c, err,
                           sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "sessionTimeout"));
}
END_TEST

Suite *config_standalone_suite(void)
{
    Suite *s = suite_create("config_standalone");
    TCase *tc = tcase_create("config_standalone");
    tcase_add_test(tc, no_servers_standalone);
    tcase_add_test(tc, no_servers_still_checked);
    suite_add_tcase(s, tc);
    return s;
}
