/*
 * probe.c — a lock holder and a lock taker for the lease tests
 * (t_ens_pause.sh), stamping every answer with CLOCK_MONOTONIC so that
 * processes on different mounts of one host can be ordered on one clock.
 * Built by the test itself (cc), not by the Makefile.
 *
 *   probe hold PATH LOG STOP   creates PATH exclusively and holds it; every
 *                              10 ms asks the daemon about it through the
 *                              held descriptor (fgetxattr user.zkfs.owner
 *                              and pread) and logs "T0 T1 ok" or
 *                              "T0 T1 ERRNO"; stops 50 checks after the
 *                              first failure, when STOP exists, or after
 *                              120 s.
 *   probe grab PATH LOG STOP   tries to create PATH exclusively every 5 ms;
 *                              logs "T0 T1 granted" once it did (T0..T1
 *                              spans the successful open) and holds it
 *                              until STOP exists or 120 s passed.
 *   probe flockwait PATH LOG STOP
 *                              opens PATH, logs "waiting", takes flock
 *                              LOCK_EX with SIGUSR1 caught without
 *                              SA_RESTART, logs "EINTR" or "locked", then
 *                              keeps PATH open until STOP exists (120 s
 *                              at most).
 *   probe flockwait2 PATH LOG STOP
 *                              opens PATH once and forks: both processes
 *                              (one open file, so one flock owner) take
 *                              flock LOCK_EX once (a daemon's EINTR is not
 *                              retried), each logs "waiting" before and
 *                              "locked" or the errno after; both keep PATH
 *                              open until STOP exists (120 s at most).
 *   probe flockhold PATH LOG STOP / probe flockgrab PATH LOG STOP
 *                              the same as hold and grab with flock(2)
 *                              LOCK_EX on an existing PATH instead of an
 *                              exclusive create; the holder's check is
 *                              pread, then fgetxattr user.zkfs.lock.token.
 *   probe lk PATH LOG STOP SPEC...
 *                              opens PATH read-write and runs each SPEC in
 *                              turn, logging one line per SPEC, then keeps
 *                              PATH open until STOP exists (120 s at most).
 *                              SPEC: [o]T:START:LEN with T one of r w u
 *                              (F_SETLK; R W: F_SETLKW; g: F_GETLK for a
 *                              write lock), o for the OFD variant; logs
 *                              "SPEC ok|ERRNO", for g "SPEC unlck" or
 *                              "SPEC rd|wr START LEN PID". SPEC c: open
 *                              PATH again read-only and close that
 *                              descriptor (POSIX: the process's fcntl
 *                              locks on the file go); logs "c ok".
 *   probe lkro PATH LOG STOP SPEC...
 *                              the same through a read-only descriptor.
 * Times are ns of CLOCK_MONOTONIC; T0 before the call, T1 after it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define RUN_NS_MAX (120ull * 1000000000u)
#define AFTER_FAIL_CHECKS 50

static uint64_t mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void nap(long ms)
{
    struct timespec ts = { 0, ms * 1000000L };
    nanosleep(&ts, NULL);
}

static int use_flock;

static int check(int fd)
{
    if (use_flock) {
        char b[64];
        if (pread(fd, b, sizeof(b), 0) < 0)
            return errno;
        if (fgetxattr(fd, "user.zkfs.lock.token", b, sizeof(b)) < 0)
            return errno;
        return 0;
    }
    char buf[256];
    if (fgetxattr(fd, "user.zkfs.owner", buf, sizeof(buf)) < 0)
        return errno;
    if (pread(fd, buf, sizeof(buf), 0) < 0)
        return errno;
    return 0;
}

static int hold(const char *path, FILE *log, const char *stop)
{
    int fd = use_flock ? open(path, O_RDWR)
                       : open(path, O_CREAT | O_EXCL | O_RDWR, 0644);
    if (fd >= 0 && use_flock && flock(fd, LOCK_EX) != 0) {
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        fprintf(stderr, "probe: create %s: %s\n", path, strerror(errno));
        return 1;
    }
    fprintf(log, "%llu %llu created\n", (unsigned long long)mono(),
            (unsigned long long)mono());
    fflush(log);
    uint64_t start = mono();
    int failed = 0;
    while (access(stop, F_OK) != 0 && mono() - start < RUN_NS_MAX &&
           failed <= AFTER_FAIL_CHECKS) {
        uint64_t t0 = mono();
        int err = check(fd);
        uint64_t t1 = mono();
        if (err)
            fprintf(log, "%llu %llu %s\n", (unsigned long long)t0,
                    (unsigned long long)t1, strerrorname_np(err));
        else
            fprintf(log, "%llu %llu ok\n", (unsigned long long)t0,
                    (unsigned long long)t1);
        fflush(log);
        failed += err != 0 || failed > 0;
        nap(10);
    }
    close(fd);
    return 0;
}

static int grab(const char *path, FILE *log, const char *stop)
{
    uint64_t start = mono();
    int fd = -1, lfd = use_flock ? open(path, O_RDONLY) : -1;
    while (fd < 0 && mono() - start < RUN_NS_MAX) {
        uint64_t t0 = mono();
        if (use_flock)
            fd = flock(lfd, LOCK_EX | LOCK_NB) == 0 ? lfd : -1;
        else
            fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
        uint64_t t1 = mono();
        if (fd >= 0) {
            fprintf(log, "%llu %llu granted\n", (unsigned long long)t0,
                    (unsigned long long)t1);
            fflush(log);
            break;
        }
        if (errno != EEXIST && errno != ETIMEDOUT && errno != EIO &&
            errno != EWOULDBLOCK) {
            fprintf(log, "%llu %llu %s\n", (unsigned long long)t0,
                    (unsigned long long)t1, strerrorname_np(errno));
            fflush(log);
        }
        nap(5);
    }
    while (fd >= 0 && access(stop, F_OK) != 0 &&
           mono() - start < RUN_NS_MAX)
        nap(20);
    if (fd >= 0)
        close(fd);
    return 0;
}

static void on_usr1(int sig)
{
    (void)sig;
}

static int flockwait(const char *path, FILE *log, const char *stop)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_usr1;      /* no SA_RESTART: flock ends with EINTR */
    sigaction(SIGUSR1, &sa, NULL);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 1;
    fprintf(log, "%llu 0 waiting\n", (unsigned long long)mono());
    fflush(log);
    int rc = flock(fd, LOCK_EX);
    fprintf(log, "%llu 0 %s\n", (unsigned long long)mono(),
            rc == 0 ? "locked" : strerrorname_np(errno));
    fflush(log);
    uint64_t start = mono();
    while (access(stop, F_OK) != 0 && mono() - start < RUN_NS_MAX)
        nap(20);
    close(fd);
    return 0;
}

static int flockwait2(const char *path, FILE *log, const char *stop)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 1;
    pid_t child = fork();
    if (child < 0)
        return 1;
    fprintf(log, "%d waiting\n", (int)getpid());
    fflush(log);
    int rc = flock(fd, LOCK_EX);
    fprintf(log, "%d %s\n", (int)getpid(),
            rc == 0 ? "locked" : strerrorname_np(errno));
    fflush(log);
    uint64_t start = mono();
    while (access(stop, F_OK) != 0 && mono() - start < RUN_NS_MAX)
        nap(20);
    close(fd);
    if (child == 0)
        _exit(0);
    waitpid(child, NULL, 0);
    return 0;
}

static void lk_one(const char *path, int fd, const char *spec, FILE *log)
{
    const char *p = spec;
    if (strcmp(spec, "c") == 0) {
        int fd2 = open(path, O_RDONLY);
        int rc = fd2 < 0 ? -1 : close(fd2);
        fprintf(log, "c %s\n", rc == 0 ? "ok" : strerrorname_np(errno));
        fflush(log);
        return;
    }
    int ofd = *p == 'o';
    p += ofd;
    char t = *p;
    long long start = 0, len = 0;
    if (sscanf(p + 1, ":%lld:%lld", &start, &len) != 2) {
        fprintf(log, "%s bad-spec\n", spec);
        return;
    }
    struct flock fl;
    memset(&fl, 0, sizeof(fl));
    fl.l_whence = SEEK_SET;
    fl.l_start = start;
    fl.l_len = len;
    fl.l_type = t == 'r' || t == 'R' ? F_RDLCK
                : t == 'u' ? F_UNLCK : F_WRLCK;
    int cmd = t == 'g' ? (ofd ? F_OFD_GETLK : F_GETLK)
              : (t == 'R' || t == 'W') ? (ofd ? F_OFD_SETLKW : F_SETLKW)
                                       : (ofd ? F_OFD_SETLK : F_SETLK);
    int rc = fcntl(fd, cmd, &fl);
    if (rc < 0)
        fprintf(log, "%s %s\n", spec, strerrorname_np(errno));
    else if (t != 'g')
        fprintf(log, "%s ok\n", spec);
    else if (fl.l_type == F_UNLCK)
        fprintf(log, "%s unlck\n", spec);
    else
        fprintf(log, "%s %s %lld %lld %d\n", spec,
                fl.l_type == F_WRLCK ? "wr" : "rd", (long long)fl.l_start,
                (long long)fl.l_len, (int)fl.l_pid);
    fflush(log);
}

static int lk(const char *path, int flags, FILE *log, const char *stop,
              int n, char **specs)
{
    int fd = open(path, flags);
    if (fd < 0) {
        fprintf(log, "open %s\n", strerrorname_np(errno));
        return 1;
    }
    for (int i = 0; i < n; i++)
        lk_one(path, fd, specs[i], log);
    fprintf(log, "done\n");
    fflush(log);
    uint64_t start = mono();
    while (access(stop, F_OK) != 0 && mono() - start < RUN_NS_MAX)
        nap(20);
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 6 && (strcmp(argv[1], "lk") == 0 ||
                      strcmp(argv[1], "lkro") == 0)) {
        FILE *f = fopen(argv[3], "a");
        int flags = strcmp(argv[1], "lk") == 0 ? O_RDWR : O_RDONLY;
        return f ? lk(argv[2], flags, f, argv[4], argc - 5, argv + 5) : 2;
    }
    if (argc != 5) {
        fprintf(stderr, "usage: probe hold|grab|flockwait|flockwait2 PATH LOG "
                        "STOP\n");
        return 2;
    }
    FILE *log = fopen(argv[3], "a");
    if (!log)
        return 2;
    use_flock = strncmp(argv[1], "flock", 5) == 0 &&
                strncmp(argv[1], "flockwait", 9) != 0;
    if (strcmp(argv[1], "hold") == 0 || strcmp(argv[1], "flockhold") == 0)
        return hold(argv[2], log, argv[4]);
    if (strcmp(argv[1], "flockgrab") == 0)
        return grab(argv[2], log, argv[4]);
    if (strcmp(argv[1], "grab") == 0)
        return grab(argv[2], log, argv[4]);
    if (strcmp(argv[1], "flockwait") == 0)
        return flockwait(argv[2], log, argv[4]);
    if (strcmp(argv[1], "flockwait2") == 0)
        return flockwait2(argv[2], log, argv[4]);
    return 2;
}
