/*
 * cli_hold.c — how `zkfs create -e` holds its ephemeral: it keeps the
 * control descriptor open (so the daemon keeps the node) while CMD runs,
 * forwarding SIGINT/SIGTERM/SIGHUP to it, or until one of those signals
 * arrives when there is no CMD.
 *
 * When the ephemeral is lost while held — this server gave its session up
 * (cut off from the quorum or paused past its lease: the mount deletes the
 * node for the kernel, which reports IN_DELETE_SELF), or someone deleted
 * it — whatever CMD does under its protection must stop: CMD gets SIGTERM
 * and, if it is still running ZK__CLI_LOST_GRACE_MS later, SIGKILL; the
 * command exits as CMD did. Without CMD the command exits with status 1.
 * The loss is reported on stderr. One poll() on a signalfd and an inotify
 * descriptor: no polling of the node. A node that is gone before the
 * watch is set counts as lost: CMD is not started, the exit status is 1.
 */
#include "cli.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define ZK__CLI_LOST_GRACE_MS 5000   /* SIGTERM to SIGKILL after a loss */

/* An inotify descriptor watching node for its deletion, or -1: *gone
 * says whether that is because the node is gone already (lost before the
 * watch began: a session given up at once, or a quick delete by someone
 * else); other failures (inotify limits) are reported and CMD runs
 * unwatched. */
static int watch_node(const char *node, int *gone)
{
    int ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    *gone = 0;
    if (ifd >= 0 && inotify_add_watch(ifd, node, IN_DELETE_SELF) < 0) {
        int e = errno;
        close(ifd);
        ifd = -1;
        errno = e;
    }
    if (ifd < 0 && (errno == ENOENT || errno == ESTALE))
        *gone = 1;
    else if (ifd < 0)
        fprintf(stderr, "zkfs create: %s: cannot watch the node (%s): its "
                "loss will not stop the command\n", node, strerror(errno));
    return ifd;
}

/* Waits for a signal in set or the node's loss (then returns 0 and says
 * so); the signal's number otherwise. timeout_ms < 0: no limit; on
 * timeout returns -1. */
static int wait_event(int sfd, int ifd, int timeout_ms, const char *node)
{
    struct pollfd p[2] = { { sfd, POLLIN, 0 }, { ifd, POLLIN, 0 } };
    int n = poll(p, ifd >= 0 ? 2 : 1, timeout_ms);
    if (n == 0)
        return -1;
    if (n > 0 && ifd >= 0 && (p[1].revents & POLLIN)) {
        char buf[4096];
        ssize_t r = read(ifd, buf, sizeof(buf));
        (void)r;
        fprintf(stderr, "zkfs create: %s: the ephemeral node is lost "
                "(this server gave its session up, or it was deleted)\n",
                node);
        return 0;
    }
    struct signalfd_siginfo si;
    if (n > 0 && read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        return (int)si.ssi_signo;
    return SIGCHLD;             /* interrupted: look at the child again */
}

static int exit_status(int status)
{
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                               : WEXITSTATUS(status);
}

/* Runs CMD and waits for it (see the top of the file). */
static int run_cmd(char **cmdv, const sigset_t *old, int sfd, int ifd,
                   const char *node)
{
    int status, timeout = -1, lost = 0;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return zk__cli_fail("create", cmdv[0], -errno, NULL);
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, old, NULL);
        execvp(cmdv[0], cmdv);
        fprintf(stderr, "zkfs create: %s: %s\n", cmdv[0], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    for (;;) {
        int ev = wait_event(sfd, lost ? -1 : ifd, timeout, node);
        if (ev == 0) {              /* lost: stop CMD, gently first */
            lost = 1;
            kill(pid, SIGTERM);
            timeout = ZK__CLI_LOST_GRACE_MS;
        } else if (ev < 0) {        /* the grace ran out */
            kill(pid, SIGKILL);
            timeout = -1;
        } else if (ev != SIGCHLD) {
            kill(pid, ev);
        }
        if (waitpid(pid, &status, WNOHANG) == pid)
            return exit_status(status);
    }
}

int zk__cli_hold(int fd, char **cmdv, const sigset_t *set,
                 const sigset_t *old, const char *node)
{
    int gone;
    int sfd = signalfd(-1, set, SFD_CLOEXEC);
    int ifd = watch_node(node, &gone), rc = 0;
    if (sfd < 0) {
        rc = zk__cli_fail("create", "signalfd", -errno, NULL);
    } else if (gone) {              /* lost already: CMD must not start */
        fprintf(stderr, "zkfs create: %s: the ephemeral node is lost "
                "(gone before it could be watched); not running the "
                "command\n", node);
        rc = 1;
    } else if (cmdv) {
        rc = run_cmd(cmdv, old, sfd, ifd, node);
    } else {
        int ev;
        do
            ev = wait_event(sfd, ifd, -1, node);
        while (ev == SIGCHLD);
        rc = ev == 0 ? 1 : 0;
    }
    if (ifd >= 0)
        close(ifd);
    if (sfd >= 0)
        close(sfd);
    close(fd);
    return rc;
}
