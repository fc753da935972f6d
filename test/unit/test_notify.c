/*
 * test_notify.c — the sd_notify datagram (fs/notify.c): sent whole to a
 * path socket and to an abstract one ('@'), nothing at all without
 * $NOTIFY_SOCKET, -EINVAL for an address systemd would never give, and
 * the STATUS= text.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../fs/notify.h"

/* Binds a datagram socket to addr ("@name": abstract). */
static int listener(const char *addr)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(addr);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    memcpy(sa.sun_path, addr, n);
    if (addr[0] == '@')
        sa.sun_path[0] = '\0';
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa,
                          (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
                                      n + (addr[0] == '/'))), 0);
    return fd;
}

static void expect(int fd, const char *want)
{
    char buf[1024];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

    ck_assert_int_eq(n, (ssize_t)strlen(want));
    buf[n] = '\0';
    ck_assert_str_eq(buf, want);
}

static void expect_nothing(int fd)
{
    char buf[16];

    ck_assert_int_lt(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), 0);
    ck_assert_int_eq(errno, EAGAIN);
}

START_TEST(path_socket)
{
    char dir[] = "/tmp/zkfs-notify.XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/notify", dir);
    int fd = listener(path);

    ck_assert_int_eq(zk__notify_send(path, "READY=1\nSTATUS=x\n"), 0);
    expect(fd, "READY=1\nSTATUS=x\n");
    setenv("NOTIFY_SOCKET", path, 1);
    ck_assert_int_eq(zk__notify("STOPPING=1\n"), 0);
    expect(fd, "STOPPING=1\n");
    unsetenv("NOTIFY_SOCKET");
    ck_assert_int_eq(zk__notify("READY=1\n"), 0);   /* no systemd: quiet */
    expect_nothing(fd);
    close(fd);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(abstract_socket)
{
    char addr[64];
    snprintf(addr, sizeof(addr), "@zkfs-test-notify-%ld", (long)getpid());
    int fd = listener(addr);

    setenv("NOTIFY_SOCKET", addr, 1);
    ck_assert_int_eq(zk__notify("READY=1\nSTATUS=role leader\n"), 0);
    expect(fd, "READY=1\nSTATUS=role leader\n");
    unsetenv("NOTIFY_SOCKET");
    close(fd);
}
END_TEST

START_TEST(bad_addresses)
{
    char longer[200];
    memset(longer, 'a', sizeof(longer) - 1);
    longer[0] = '/';
    longer[sizeof(longer) - 1] = '\0';

    ck_assert_int_eq(zk__notify_send("", "READY=1\n"), -EINVAL);
    ck_assert_int_eq(zk__notify_send(NULL, "READY=1\n"), -EINVAL);
    ck_assert_int_eq(zk__notify_send("relative/sock", "READY=1\n"), -EINVAL);
    ck_assert_int_eq(zk__notify_send(longer, "READY=1\n"), -EINVAL);
    ck_assert_int_eq(zk__notify_send("/nonexistent/zkfs/notify", "x\n"),
                     -ENOENT);
}
END_TEST

START_TEST(status_text)
{
    char buf[128];

    zk__notify_status(buf, sizeof(buf), "follower", 2, 0);
    ck_assert_str_eq(buf, "role follower, leader 2, stale no");
    zk__notify_status(buf, sizeof(buf), "looking", 0, 1);
    ck_assert_str_eq(buf, "role looking, leader 0, stale yes");
}
END_TEST

Suite *notify_suite(void)
{
    Suite *s = suite_create("notify");
    TCase *tc = tcase_create("notify");
    tcase_add_test(tc, path_socket);
    tcase_add_test(tc, abstract_socket);
    tcase_add_test(tc, bad_addresses);
    tcase_add_test(tc, status_text);
    suite_add_tcase(s, tc);
    return s;
}
