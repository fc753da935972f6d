/*
 * main.c — the `zkfs` command: dispatches to a subcommand, and implements
 * `zkfs mount` (the others live in fs/cli.c).
 *
 * `zkfs mount` works with no configuration: missing directories are created
 * (the data directory private, mode 0700), both paths are made absolute
 * before anything forks, and a mountpoint that is already mounted or not an
 * empty directory is refused before the store is touched. Without -f it
 * daemonizes only once the mount serves requests, so that when the command
 * returns 0 the filesystem is usable, and when set-up fails the command
 * fails with the daemon's own message on its stderr:
 *
 *   parent ── fork ──> child: setsid, stdin/stdout to /dev/null,
 *     |                 zk_fs_run(ready_fd = inner pipe)
 *     |                 relay thread: inner pipe byte -> stderr to /dev/null,
 *     |                                                  byte to the parent
 *     └─ waits for that byte (exit 0) or EOF (exit 1)
 *
 * The relay thread exists because the daemon must drop the caller's stderr
 * once it is ready: otherwise `out=$(zkfs mount 2>&1)` would wait for the
 * daemon's exit. With -f the same thread prints the "mounted at" line once
 * the mount is ready, so it never appears for a mount that failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "mntopts.h"
#include "zk_common.h"
#include "zk_config.h"
#include "zk_fs.h"

#define SESSION_TIMEOUT_MS 30000   /* this replica's session */
#define FUSE_OPTS_MAX      ZK_CLI_MOUNT_OPTS_MAX

/* ======================== mount: arguments and directories ============= */

struct mount_args {
    int foreground, debug;
    const char *data, *mnt, *config;
    uint32_t id;                    /* --id N; 0: the data dir's myid */
    char fuse_opts[FUSE_OPTS_MAX];
};

/* Parses `zkfs mount` options into a. Returns -1 to go on or an exit
 * status. */
static int mount_opts(int argc, char **argv, struct mount_args *a)
{
    static const struct option longopts[] = {
        {"foreground", no_argument, NULL, 'f'},
        {"data", required_argument, NULL, 'D'},
        {"debug", no_argument, NULL, 'd'},
        {"config", required_argument, NULL, 'c'},
        {"id", required_argument, NULL, 'I'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":fdo:c:", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': a->foreground = 1; break;
        case 'd': a->debug = a->foreground = 1; break;
        case 'D': a->data = optarg; break;
        case 'h': fputs(zk__cli_usage("mount"), stdout); return 0;
        case 'c': a->config = optarg; break;
        case 'I': {
            char *end;
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-' ||
                v < 1 || v > ZK_CONFIG_ID_MAX)
                return zk__cli_usage_error("mount", "--id: '%s' is not a "
                                           "server id in 1..%d", optarg,
                                           ZK_CONFIG_ID_MAX);
            a->id = (uint32_t)v;
            break;
        }
        case 'o':
            if (strlen(a->fuse_opts) + strlen(optarg) + 2 > FUSE_OPTS_MAX)
                return zk__cli_usage_error("mount", "-o: options too long");
            if (a->fuse_opts[0])
                strcat(a->fuse_opts, ",");
            strcat(a->fuse_opts, optarg);
            break;
        case ':':
            return zk__cli_usage_error("mount", "option '%s' needs an "
                                       "argument", argv[optind - 1]);
        default:
            return zk__cli_usage_error("mount", "unknown option '%s'",
                                       argv[optind - 1]);
        }
    }
    if (argc - optind > 1)
        return zk__cli_usage_error("mount", "too many arguments");
    if (a->id && !a->config)
        return zk__cli_usage_error("mount", "--id needs -c FILE");
    char bad[256], what[270];   /* exit 1, as when the daemon refused */
    if (zk__fs_check_fuse_opts(a->fuse_opts, bad, sizeof(bad)) == -EINVAL) {
        snprintf(what, sizeof(what), "-o %s", bad);
        return zk__cli_fail("mount", what, -EINVAL, "not a FUSE mount "
                            "option (see mount.fuse3(8))");
    }
    a->mnt = argc > optind ? argv[optind] : NULL;
    return -1;
}

/* Fills buf with "$HOME/rest", or fails when HOME is unset. */
static int home_path(char *buf, const char *base, const char *rest)
{
    if (base == NULL || base[0] != '/')
        return -ENOENT;
    if ((size_t)snprintf(buf, PATH_MAX, "%s/%s", base, rest) >= PATH_MAX)
        return -ENAMETOOLONG;
    return 0;
}

/* The default mountpoint and data directory (see `zkfs mount --help`). */
static int default_dirs(char *mnt, char *data)
{
    const char *home = getenv("HOME"), *xdg = getenv("XDG_DATA_HOME");

    if (getuid() == 0) {
        snprintf(mnt, PATH_MAX, "/mnt/zkfs");
        snprintf(data, PATH_MAX, "/var/lib/zkfs");
        return 0;
    }
    int err = home_path(mnt, home, "zkfs");
    if (err == 0 && xdg && xdg[0] == '/')
        err = home_path(data, xdg, "zkfs");
    else if (err == 0)
        err = home_path(data, home, ".local/share/zkfs");
    return err;
}

/* mkdir -p: missing parents get 0755, the last component mode. */
static int mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    struct stat st;

    if ((size_t)snprintf(buf, sizeof(buf), "%s", path) >= sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -errno;
    if (stat(buf, &st) < 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* Creates dir if missing and makes it absolute and canonical in out. */
static int prepare_dir(const char *dir, mode_t mode, char *out)
{
    int err = mkdir_p(dir, mode);

    if (err < 0)
        return err;
    return realpath(dir, out) ? 0 : -errno;
}

/* Refuses a mountpoint that is mounted already or not an empty directory.
 * Returns 0 or an exit status (reported). */
static int check_mountpoint(const char *arg, const char *mnt)
{
    char fstype[64];
    struct dirent *e;
    int n = 0;

    if (zk__mount_reached(mnt, fstype, sizeof(fstype)) == 1) {
        fprintf(stderr, "zkfs mount: %s: already a mount (%s); "
                "unmount it first\n", arg, fstype);
        return 1;
    }
    DIR *d = opendir(mnt);
    if (d == NULL)
        return zk__cli_fail("mount", arg, -errno, NULL);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    if (n > 0)
        return zk__cli_fail("mount", arg, -ENOTEMPTY,
                            "not an empty directory");
    return 0;
}

/* ======================== mount: running ================================ */

/* What the relay thread does once the mount is ready: with out_fd >= 0
 * (background), drop stderr and pass the byte on; otherwise (-f) print
 * the mount lines. */
struct relay {
    int in_fd, out_fd;
    const char *mnt, *data;
};

static void print_mounted(const char *data, const char *mnt)
{
    printf("zkfs: data directory %s\nzkfs: mounted at %s\n", data, mnt);
    fflush(stdout);
}

/* Waits for zk_fs_run's ready byte, then does what struct relay says. */
static void *relay_ready(void *arg)
{
    struct relay *r = arg;
    char b;
    ssize_t n;

    do
        n = read(r->in_fd, &b, 1);
    while (n < 0 && errno == EINTR);
    close(r->in_fd);
    if (n == 1 && r->out_fd < 0) {
        print_mounted(r->data, r->mnt);
        return NULL;
    }
    if (n == 1) {
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, STDERR_FILENO);
            close(null);
        }
        if (write(r->out_fd, &b, 1) < 0) {
            /* The parent is gone: nobody to tell. */
        }
    }
    close(r->out_fd);
    return NULL;
}

/* Starts the relay thread with every signal blocked (they belong to the
 * main thread; a write to a vanished parent must not raise SIGPIPE). */
static int start_relay(struct relay *r)
{
    sigset_t all, old;
    pthread_t t;

    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int err = pthread_create(&t, NULL, relay_ready, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0)
        return -err;
    pthread_detach(t);
    return 0;
}

/* The daemon process: never returns. */
static void daemon_child(struct zk_fs_opts *o, int out_fd)
{
    static struct relay r;
    int inner[2], null = open("/dev/null", O_RDWR);

    setsid();
    if (chdir("/") < 0 || null < 0 || pipe2(inner, O_CLOEXEC) < 0) {
        perror("zkfs mount");
        _exit(1);
    }
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    close(null);
    r = (struct relay){inner[0], out_fd, o->mountpoint, o->data_dir};
    if (start_relay(&r) < 0) {
        perror("zkfs mount: thread");
        _exit(1);
    }
    o->ready_fd = inner[1];
    _exit(zk_fs_run(o));
}

/* -f: serves in this process; the lines are printed once the mount is
 * ready (by the relay thread). */
static int run_foreground(struct zk_fs_opts *o)
{
    static struct relay r;
    int p[2];

    if (pipe2(p, O_CLOEXEC) < 0)
        return zk__cli_fail("mount", "pipe", -errno, NULL);
    r = (struct relay){p[0], -1, o->mountpoint, o->data_dir};
    if (start_relay(&r) < 0) {
        close(p[0]);
        close(p[1]);
        print_mounted(o->data_dir, o->mountpoint);
    } else {
        o->ready_fd = p[1];
    }
    return zk_fs_run(o);
}

/* Forks the daemon and waits until its mount is ready. */
static int run_background(struct zk_fs_opts *o)
{
    int p[2];
    char b;
    ssize_t n;

    fflush(NULL);
    if (pipe2(p, O_CLOEXEC) < 0)
        return zk__cli_fail("mount", "pipe", -errno, NULL);
    pid_t pid = fork();
    if (pid < 0)
        return zk__cli_fail("mount", "fork", -errno, NULL);
    if (pid == 0) {
        close(p[0]);
        daemon_child(o, p[1]);
    }
    close(p[1]);
    do
        n = read(p[0], &b, 1);
    while (n < 0 && errno == EINTR);
    close(p[0]);
    if (n == 1)
        return 0;
    /* The daemon reported why on stderr; reap it if it is gone already. */
    waitpid(pid, NULL, WNOHANG);
    fprintf(stderr, "zkfs mount: %s: the daemon did not start\n",
            o->mountpoint);
    return 1;
}

/* -c FILE: reads and checks the whole configuration (and the secret)
 * before anything is created or mounted. A bad one exits 2. */
static int load_config(const struct mount_args *a, struct zk_config *cfg)
{
    struct zk_config_args ca = {.id = a->id, .data_dir = a->data,
                                .standalone_ok = 1};
    char err[512];

    if (zk_config_load(a->config, &ca, cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "zkfs mount: %s\n", err);
        return 2;
    }
    return 0;
}

static int cmd_mount(int argc, char **argv)
{
    struct mount_args a = {0};
    static struct zk_config cfg;   /* large; lives until the daemon ends */
    char dmnt[PATH_MAX], ddata[PATH_MAX], mnt[PATH_MAX], data[PATH_MAX];
    int status = mount_opts(argc, argv, &a);

    if (status >= 0)
        return status;
    if (a.config) {
        if ((status = load_config(&a, &cfg)) != 0)
            return status;
        a.data = cfg.data_dir;
    }
    if ((!a.mnt || !a.data) && default_dirs(dmnt, ddata) < 0) {
        fprintf(stderr, "zkfs mount: HOME is not set: name MOUNTPOINT and "
                "--data DIR\n");
        return 1;
    }
    const char *mnt_arg = a.mnt ? a.mnt : dmnt;
    const char *data_arg = a.data ? a.data : ddata;
    int err = prepare_dir(data_arg, 0700, data);
    if (err < 0)
        return zk__cli_fail("mount", data_arg, err, NULL);
    err = prepare_dir(mnt_arg, 0755, mnt);
    if (err == -ENOTCONN)
        return zk__cli_fail("mount", mnt_arg, err, "Transport endpoint is "
                            "not connected (a dead mount? run 'zkfs umount')");
    if (err < 0)
        return zk__cli_fail("mount", mnt_arg, err, NULL);
    if ((status = check_mountpoint(mnt_arg, mnt)) != 0)
        return status;
    struct zk_fs_opts o = {
        .mountpoint = mnt, .data_dir = data,
        .fuse_opts = a.fuse_opts[0] ? a.fuse_opts : NULL,
        .foreground = a.foreground, .debug = a.debug, .ready_fd = -1,
        .session_timeout_ms = SESSION_TIMEOUT_MS,
        .config = a.config && cfg.n_servers ? &cfg : NULL,
        .metrics_port = a.config ? cfg.metrics_port : 0,
        .metrics_host = cfg.metrics_host};
    if (a.foreground)
        return run_foreground(&o);
    if ((status = run_background(&o)) == 0)
        print_mounted(data, mnt);
    return status;
}

/* ======================== dispatch ====================================== */

static const char general_usage[] =
    "Usage: zkfs COMMAND [ARGS]\n"
    "ZooKeeper's data model as a filesystem.\n\n"
    "  mount [-f] [-c FILE [--id N]] [--data DIR] [-o OPTS] [MOUNTPOINT]\n"
    "                                     start a replica and mount\n"
    "  umount MOUNTPOINT                  leave cleanly and unmount\n"
    "  status [--json] MOUNTPOINT         role, zxid, counts\n"
    "  create [-e] [-s] [-d] PATH [DATA] [-- CMD...]  create a znode\n"
    "  set [-v VERSION] PATH DATA         conditional set\n"
    "  rm [-v VERSION] PATH               conditional delete\n"
    "  stat PATH                          ZooKeeper's stat\n"
    "  sync PATH                          read barrier\n"
    "  txn [MOUNTPOINT] < OPS             all-or-nothing multi-op\n"
    "  version                            release and format versions\n"
    "  locks PATH                         holders and waiters of a lock\n"
    "  snapshot save MOUNTPOINT FILE      back up the tree\n"
    "  snapshot restore FILE --data DIR   make a data directory from one\n"
    "  check DATA_DIR                     verify a store offline\n"
    "  help [COMMAND]                     this text, or a command's\n\n"
    "'zkfs COMMAND --help' describes one command. zkfs --version.\n";

struct command { const char *name; int (*fn)(int, char **); };

static int cmd_help(int argc, char **argv)
{
    if (argc > 2)
        return zk__cli_usage_error("help", "too many arguments");
    if (argc == 2 && strcmp(argv[1], "--help") != 0) {
        const char *text = zk__cli_usage(argv[1]);
        if (text == NULL)
            return zk__cli_usage_error("help", "unknown command '%s'",
                                       argv[1]);
        fputs(text, stdout);
        return 0;
    }
    fputs(general_usage, stdout);
    return 0;
}

static const struct command commands[] = {
    {"mount", cmd_mount},          {"umount", zk__cli_umount},
    {"status", zk__cli_status},    {"create", zk__cli_create},
    {"set", zk__cli_set},          {"rm", zk__cli_rm},
    {"stat", zk__cli_stat},        {"sync", zk__cli_sync},
    {"txn", zk__cli_txn},          {"help", cmd_help},
    {"version", zk__cli_version},
    {"locks", zk__cli_locks},
    {"snapshot", zk__cli_snapshot}, {"check", zk__cli_check},
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(general_usage, stderr);
        return 2;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)
        return zk__cli_version(1, argv + 1);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        return cmd_help(1, argv);
    if (strcmp(argv[1], "__watchdog") == 0)     /* started by the daemon */
        return zk_fs_watchdog_main(argc - 1, argv + 1);
    for (size_t i = 0; i < ZK_ARRAY_LEN(commands); i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        int status = commands[i].fn(argc - 1, argv + 1);
        if (fflush(stdout) != 0 && status == 0) {
            perror("zkfs: standard output");
            status = 1;
        }
        return status;
    }
    if (zk__mount_helper_form(argc, argv)) {     /* mount(8), mntopts.c */
        int margc, status = zk__mount_helper_argv(argc, argv, &margc, &argv);
        return status >= 0 ? status : cmd_mount(margc, argv);
    }
    fprintf(stderr, "zkfs: unknown command '%s'\nTry 'zkfs help'.\n",
            argv[1]);
    return 2;
}
