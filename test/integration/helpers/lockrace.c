/*
 * lockrace.c — lock requests that race with their own owner's, for
 * t_lock_races.sh (each case found by a review, 2026-12-05).
 *
 *   lockrace nb FILE        a process blocked in flock(LOCK_EX) through an
 *                           open file, then another sharing that open file
 *                           asks LOCK_EX|LOCK_NB: EWOULDBLOCK at once
 *   lockrace replaced FILE  two threads of one process in F_SETLKW for
 *                           different ranges: the older ends with a real
 *                           errno (ENOLCK), not 512 (ERESTARTSYS)
 *   lockrace shared3 FILE   two threads share a wait for one range, a
 *                           third asks another: both older end (ENOLCK)
 *   lockrace failed FILE    a thread's F_SETLK that conflicts and fails
 *                           leaves another thread's wait as it was
 *   lockrace unlock FILE    LOCK_UN through the open file another process
 *                           waits in flock() on: that wait goes on
 *   lockrace getlkpid FILE  F_GETLK reports the process of a lock a
 *                           thread took, not the thread
 *   lockrace intr DIR N     N new files (1 MiB written, not closed) each
 *                           flock()ed by a child that gets SIGUSR1 every
 *                           200 µs: the request is interrupted while it
 *                           waits for the file's create
 *
 * Another process holds the lock in the first two (killed at the end).
 * Prints what happened; exit status 0 when it is what Linux gives (killed
 * by SIGALRM after 60 s when a request hangs).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void on_sig(int s)
{
    (void)s;
}

static void catch(int sig)
{
    struct sigaction sa = {.sa_handler = on_sig};
    sigaction(sig, &sa, NULL);
}

/* fork(), with the child killed when this process ends (also when a case
 * fails by its alarm: no child is left behind). */
static pid_t spawn(void)
{
    pid_t pid = fork();
    if (pid == 0)
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    return pid;
}

static int setlk(int fd, int cmd, off_t start, off_t len)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET,
                       .l_start = start, .l_len = len};
    return fcntl(fd, cmd, &fl) == 0 ? 0 : errno;
}

/* A process that takes an exclusive lock on path (flock, or POSIX
 * [0,100)) and holds it until killed. */
static pid_t holder(const char *path, int posix)
{
    int p[2];
    if (pipe(p) != 0)
        exit(2);
    pid_t pid = spawn();
    if (pid == 0) {
        int fd = open(path, O_RDWR);
        int rc = fd < 0 ? errno
                 : posix ? setlk(fd, F_SETLK, 0, 100)
                         : (flock(fd, LOCK_EX) == 0 ? 0 : errno);
        if (rc != 0)
            _exit(3);
        if (write(p[1], "x", 1) != 1)
            _exit(3);
        for (;;)
            pause();
    }
    char c;
    if (pid < 0 || read(p[0], &c, 1) != 1)
        exit(2);
    close(p[0]);
    close(p[1]);
    return pid;
}

static void stop(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* A process blocked in flock(fd, LOCK_EX) (at most 20 s): exits 0 once
 * granted. */
static pid_t flock_waiter(int fd)
{
    pid_t w = spawn();
    if (w == 0) {
        catch(SIGALRM);
        alarm(20);
        _exit(flock(fd, LOCK_EX) == 0 ? 0 : 4);
    }
    return w;
}

static int case_nb(const char *path)
{
    pid_t h = holder(path, 0);
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return 2;
    pid_t w = flock_waiter(fd);     /* blocks until the holder goes */
    usleep(500000);
    pid_t nb = spawn();
    if (nb == 0) {
        catch(SIGALRM);
        alarm(5);               /* a parked request: EINTR or 512 */
        double t0 = now();
        int rc = flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : errno;
        printf("nb: LOCK_EX|LOCK_NB through the waiter's open file: %s "
               "after %.2f s\n", rc ? strerror(rc) : "granted", now() - t0);
        _exit(rc == EWOULDBLOCK && now() - t0 < 2 ? 0 : 1);
    }
    int st_nb, st_w;
    waitpid(nb, &st_nb, 0);
    stop(h);
    waitpid(w, &st_w, 0);
    printf("nb: the blocked flock after the holder went: %s\n",
           WIFEXITED(st_w) && WEXITSTATUS(st_w) == 0 ? "granted" : "failed");
    close(fd);
    return WIFEXITED(st_nb) && WEXITSTATUS(st_nb) == 0 &&
           WIFEXITED(st_w) && WEXITSTATUS(st_w) == 0 ? 0 : 1;
}

struct req {
    int fd;
    off_t start, len;
    int rc;
};

static void *setlkw(void *arg)
{
    struct req *r = arg;
    r->rc = setlk(r->fd, F_SETLKW, r->start, r->len);
    return NULL;
}

static int case_replaced(const char *path)
{
    pid_t h = holder(path, 1);
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return 2;
    struct req a = {fd, 0, 10, -1}, b = {fd, 50, 10, -1};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, setlkw, &a);
    usleep(300000);
    pthread_create(&tb, NULL, setlkw, &b);
    pthread_join(ta, NULL);     /* ended by the newer request */
    printf("replaced: the older F_SETLKW [0,10) -> %d (%s)\n", a.rc,
           a.rc > 0 && a.rc < 512 ? strerror(a.rc) : "not an errno");
    stop(h);
    pthread_join(tb, NULL);
    printf("replaced: the newer F_SETLKW [50,60) after the holder went -> "
           "%s\n", b.rc ? strerror(b.rc) : "granted");
    close(fd);
    return a.rc == ENOLCK && b.rc == 0 ? 0 : 1;
}

/* Two threads share a wait for [0,10); a third asks [50,60): both older
 * end (ENOLCK), the third is granted when the holder goes. */
static int case_shared3(const char *path)
{
    pid_t h = holder(path, 1);
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return 2;
    struct req a = {fd, 0, 10, -1}, b = {fd, 0, 10, -1}, c = {fd, 50, 10, -1};
    pthread_t ta, tb, tc;
    pthread_create(&ta, NULL, setlkw, &a);
    usleep(200000);
    pthread_create(&tb, NULL, setlkw, &b);
    usleep(200000);
    pthread_create(&tc, NULL, setlkw, &c);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    stop(h);
    pthread_join(tc, NULL);
    printf("shared3: [0,10) twice -> %s, %s; [50,60) -> %s\n",
           a.rc ? strerror(a.rc) : "granted", b.rc ? strerror(b.rc) : "granted",
           c.rc ? strerror(c.rc) : "granted");
    close(fd);
    return a.rc == ENOLCK && b.rc == ENOLCK && c.rc == 0 ? 0 : 1;
}

/* A thread waits for [0,10); another's F_SETLK of [20,30) conflicts and
 * fails: the first still waits, and is granted when the holder goes. */
static int case_failed(const char *path)
{
    pid_t h = holder(path, 1);
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return 2;
    struct req a = {fd, 0, 10, -1};
    pthread_t ta;
    pthread_create(&ta, NULL, setlkw, &a);
    usleep(300000);
    int rc = setlk(fd, F_SETLK, 20, 10);
    usleep(300000);
    stop(h);
    pthread_join(ta, NULL);
    printf("failed: F_SETLK [20,30) -> %s; the waiting [0,10) -> %s\n",
           rc ? strerror(rc) : "granted", a.rc ? strerror(a.rc) : "granted");
    close(fd);
    return rc == EAGAIN && a.rc == 0 ? 0 : 1;
}

/* A process waits in flock(LOCK_EX); another sharing its open file does
 * LOCK_UN: the wait goes on, and is granted when the holder goes. */
static int case_unlock(const char *path)
{
    pid_t h = holder(path, 0);
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return 2;
    pid_t w = flock_waiter(fd);
    usleep(500000);
    int rc = flock(fd, LOCK_UN) == 0 ? 0 : errno;
    usleep(300000);
    double t0 = now();
    stop(h);
    int st;
    waitpid(w, &st, 0);
    int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    printf("unlock: LOCK_UN through the open file -> %s; the waiting flock "
           "-> %s %.2f s after the holder went\n", rc ? strerror(rc) : "ok",
           ok ? "granted" : "failed", now() - t0);
    close(fd);
    return rc == 0 && ok && now() - t0 < 10 ? 0 : 1;
}

static void *setlk_then_exit(void *arg)
{
    struct req *r = arg;
    r->rc = setlk(r->fd, F_SETLK, r->start, r->len);
    return NULL;
}

/* A thread other than the main one takes [0,10) and exits: another
 * process's F_GETLK reports the locker's process id. */
static int case_getlkpid(const char *path)
{
    int p[2], q[2];
    if (pipe(p) != 0 || pipe(q) != 0)
        return 2;
    pid_t locker = spawn();
    if (locker == 0) {
        int fd = open(path, O_RDWR);
        struct req a = {fd, 0, 10, -1};
        pthread_t t;
        pthread_create(&t, NULL, setlk_then_exit, &a);
        pthread_join(t, NULL);
        char c = a.rc == 0 ? 'y' : 'n';
        if (write(p[1], &c, 1) != 1 || read(q[0], &c, 1) != 1)
            _exit(3);
        _exit(0);
    }
    char c;
    if (read(p[0], &c, 1) != 1 || c != 'y')
        return 1;
    int fd = open(path, O_RDWR);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET,
                       .l_start = 0, .l_len = 10};
    int rc = fcntl(fd, F_GETLK, &fl) == 0 ? 0 : errno;
    printf("getlkpid: F_GETLK -> %s, l_pid %d (the locker is %d)\n",
           rc ? strerror(rc) : fl.l_type == F_UNLCK ? "unlocked" : "locked",
           (int)fl.l_pid, (int)locker);
    if (write(q[1], "x", 1) != 1)
        return 2;
    waitpid(locker, NULL, 0);
    close(fd);
    return rc == 0 && fl.l_type == F_WRLCK && fl.l_pid == locker ? 0 : 1;
}

static int case_intr(const char *dir, int n)
{
    static char buf[1 << 20];
    memset(buf, 'a', sizeof(buf));
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/p%d", dir, i);
        int fd = open(path, O_CREAT | O_RDWR, 0644);
        if (fd < 0 || write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
            return 2;
        int p[2];
        if (pipe(p) != 0)
            return 2;
        pid_t c = spawn();
        if (c == 0) {
            catch(SIGUSR1);
            if (write(p[1], "x", 1) != 1)
                _exit(3);
            int rc = flock(fd, LOCK_EX) == 0 ? 0 : errno;
            _exit(rc == 0 || rc == EINTR ? 0 : 3);
        }
        char ch;
        if (read(p[0], &ch, 1) != 1)
            return 2;
        for (int k = 0; k < 300 && kill(c, SIGUSR1) == 0; k++)
            usleep(200);
        int st;
        waitpid(c, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            printf("intr: file %d: the child's flock failed\n", i);
            return 1;
        }
        close(fd);
        close(p[0]);
        close(p[1]);
    }
    printf("intr: %d new files flock()ed under signals\n", n);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    alarm(60);      /* a request that never comes back fails the case */
    if (argc == 3 && strcmp(argv[1], "nb") == 0)
        return case_nb(argv[2]);
    if (argc == 3 && strcmp(argv[1], "replaced") == 0)
        return case_replaced(argv[2]);
    if (argc == 3 && strcmp(argv[1], "getlkpid") == 0)
        return case_getlkpid(argv[2]);
    if (argc == 3 && strcmp(argv[1], "shared3") == 0)
        return case_shared3(argv[2]);
    if (argc == 3 && strcmp(argv[1], "failed") == 0)
        return case_failed(argv[2]);
    if (argc == 3 && strcmp(argv[1], "unlock") == 0)
        return case_unlock(argv[2]);
    if (argc == 4 && strcmp(argv[1], "intr") == 0)
        return case_intr(argv[2], atoi(argv[3]));
    fprintf(stderr, "usage: lockrace nb|replaced|shared3|failed|unlock|getlkpid FILE | "
                    "intr DIR N\n");
    return 2;
}
