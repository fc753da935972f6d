/*
 * watchdog.c — makes sure a killed daemon does not leave its mount hung.
 *
 * The problem (found by t_ens_kill9): when the daemon is killed (kill -9,
 * a crash), its threads die, but a thread that is inside a system call on
 * the kernel's FUSE side in uninterruptible sleep cannot. The echo thread
 * can be there: fuse_reverse_inval_entry() (an invalidation) waits for the
 * directory's lock, held by a local create that only the dead loop could
 * answer. The process then never finishes dying, so /dev/fuse is never
 * closed, the kernel never aborts the connection, and the create, the
 * echo thread and every later access to the mount wait forever; the
 * half-dead process even keeps the data directory's lock.
 *
 * The fix is outside the daemon, since nothing inside it survives: at
 * mount the daemon starts `zkfs __watchdog PID DEV` (the same binary, a
 * hidden command, re-parented to init by a double fork, holding none of
 * the daemon's descriptors). Every WATCHDOG_POLL_MS it looks at the
 * daemon: gone — it exits; its main thread a zombie while other threads
 * still exist (the state above; a normal exit ends every other thread
 * first) — it aborts the FUSE connection through fusectl
 * (/sys/fs/fuse/connections/DEV/abort, mounting fusectl if needed), which
 * fails every pending request, so the stuck thread returns and the
 * process can die; the mount is then a dead one (ENOTCONN), as after any
 * crash. The connection cannot have been reused by another mount: the
 * stuck process still holds its /dev/fuse descriptor.
 */
#include "cli.h"
#include "fs_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WATCHDOG_POLL_MS   100
#define WATCHDOG_AFTER_S   30      /* after an abort: wait this long to go */
#define FUSECTL_DIR        "/sys/fs/fuse/connections"

/* Starts the watchdog for this daemon and mount. A failure is logged and
 * otherwise ignored: the watchdog is a safety net, not a requirement. The
 * connection's number comes from mountinfo, never from stat(mountpoint),
 * which would ask this very daemon, whose loop is not serving yet. */
void zk__fs_watchdog_start(struct zk_fs *fs)
{
    char pid_s[32], dev_s[32];
    char *argv[] = {"zkfs", "__watchdog", pid_s, dev_s, NULL};
    unsigned minor = 0;
    int err = zk__mount_dev(fs->opts->mountpoint, &minor);

    if (err) {
        zk_log(ZK_LOG_WARN, "watchdog: %s not found in mountinfo: %s",
               fs->opts->mountpoint, zk_strerror(err));
        return;
    }
    snprintf(pid_s, sizeof(pid_s), "%ld", (long)getpid());
    snprintf(dev_s, sizeof(dev_s), "%u", minor);
    pid_t child = fork();
    if (child < 0) {
        zk_log(ZK_LOG_WARN, "watchdog: fork: %s", strerror(errno));
        return;
    }
    if (child == 0) {
        /* Only async-signal-safe calls until exec (other threads may hold
         * locks). The grandchild is re-parented: nobody has to reap it. */
        if (fork() != 0)
            _exit(0);
        /* Nothing of the daemon's: not /dev/fuse, not the store's lock,
         * not even stdio (a caller reading `zkfs mount`'s output to EOF
         * would wait for the watchdog). It logs to syslog. */
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
        }
        syscall(SYS_close_range, 3u, ~0u, 0u);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* The state letter of pid's main thread ('R', 'S', 'D', 'Z', ...), 0 if
 * the process is gone. */
static char proc_state(long pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' ? rp[2] : 0;
}

/* Whether pid has a thread other than its main one. */
static int other_threads(long pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' && atol(e->d_name) != pid)
            found = 1;
    closedir(d);
    return found;
}

static int write_abort(const char *dev)
{
    char path[128];
    snprintf(path, sizeof(path), FUSECTL_DIR "/%s/abort", dev);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, "1", 1);
    int err = n == 1 ? 0 : -errno;
    close(fd);
    return err;
}

/* Aborts FUSE connection dev (its number in fusectl), mounting fusectl
 * if needed: every pending request fails and no new one is served. */
int zk__fs_abort_connection(const char *dev)
{
    int err = write_abort(dev);
    if (err == -ENOENT && mount("fusectl", FUSECTL_DIR, "fusectl", 0,
                                NULL) == 0)
        err = write_abort(dev);
    return err;
}

static void abort_connection(long pid, const char *dev)
{
    int err = zk__fs_abort_connection(dev);
    if (err)
        zk_log(ZK_LOG_ERROR, "watchdog: zkfs pid %ld died with a thread "
               "stuck on its mount; aborting FUSE connection %s failed: "
               "%s (echo 1 > " FUSECTL_DIR "/%s/abort)", pid, dev,
               zk_strerror(err), dev);
    else
        zk_log(ZK_LOG_WARN, "watchdog: zkfs pid %ld died with a thread "
               "stuck on its mount; FUSE connection %s aborted", pid, dev);
}

int zk_fs_watchdog_main(int argc, char **argv)
{
    const struct timespec poll = {0, WATCHDOG_POLL_MS * 1000000L};

    if (argc != 3)
        return 2;
    long pid = atol(argv[1]);
    const char *dev = argv[2];
    if (pid <= 1 || strspn(dev, "0123456789") != strlen(dev) || !*dev)
        return 2;
    zk_log_setup(ZK_LOG_INFO, 1);
    signal(SIGINT, SIG_IGN);      /* the daemon's group may get these; */
    signal(SIGHUP, SIG_IGN);      /* the daemon decides when we go     */
    if (chdir("/") != 0)
        return 1;
    for (;;) {
        char s = proc_state(pid);
        if (s == 0 || s == 'X')
            return 0;
        if (s == 'Z') {
            if (!other_threads(pid))
                return 0;         /* exited normally, not reaped yet */
            abort_connection(pid, dev);
            for (int i = 0; i < WATCHDOG_AFTER_S * 1000 / WATCHDOG_POLL_MS &&
                            proc_state(pid) != 0; i++)
                nanosleep(&poll, NULL);
            return 0;
        }
        nanosleep(&poll, NULL);
    }
}
