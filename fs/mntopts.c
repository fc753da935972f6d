/*
 * mntopts.c — the form mount(8) uses, and checking FUSE options before
 * anything is started.
 *
 * `mount -t fuse.zkfs SOURCE DIR -o OPTS` (or an fstab line of type
 * fuse.zkfs) runs mount.fuse3, which runs `/bin/sh -c 'zkfs SOURCE DIR -o
 * OPTS'` with `zkfs` looked up in PATH. It has dropped the options that
 * only mount(8) reads (user, users, nouser, auto, noauto, _netdev, nofail)
 * and, as root, appended "dev,suid". zkfs turns that command line into
 * `zkfs mount [-f] [-c FILE] [--id N] [--data DIR] [-o REST] DIR`:
 *
 *   config=FILE  data=DIR  id=N  foreground   zkfs's own options
 *   dev, suid, defaults, x-*, comment=*,      dropped: a zkfs mount stays
 *   the mount(8)-only ones above               nosuid,nodev (see below)
 *   anything else                              passed to FUSE, checked first
 *
 * SOURCE is not used ("zkfs" by convention). "dev" and "suid" are dropped
 * because mount.fuse3 adds them to every root mount, so they cannot be
 * told from a request; a coordination tree has no business holding
 * devices or setuid programs.
 *
 * Every FUSE option is tried with fuse_session_new() (which mounts
 * nothing), one at a time, so a typo is reported as one line naming it
 * instead of a daemon that fails to start.
 */
#include "fs_int.h"
#include "mntopts.h"
#include "zk_config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HELPER_ARGV_MAX 16      /* mount -f -c F --id N --data D -o O DIR */

/* ======================== checking FUSE options ======================== */

static void log_nothing(enum fuse_log_level level, const char *fmt,
                        va_list ap)
{
    (void)level;
    (void)fmt;
    (void)ap;
}

/* Whether libfuse accepts "-o opt" for a low-level session. */
static int fuse_accepts(const char *opt)
{
    static const struct fuse_lowlevel_ops no_ops;
    char *argv[] = {"zkfs", "-o", (char *)opt, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(3, argv);

    struct fuse_session *se = fuse_session_new(&args, &no_ops,
                                               sizeof(no_ops), NULL);
    fuse_opt_free_args(&args);
    if (se == NULL)
        return 0;
    fuse_session_destroy(se);
    return 1;
}

int zk__fs_check_fuse_opts(const char *opts, char *bad, size_t size)
{
    char *copy = strdup(opts ? opts : ""), *save = NULL;
    int rc = 0;

    if (copy == NULL)
        return -ENOMEM;
    fuse_set_log_func(log_nothing);
    for (char *o = strtok_r(copy, ",", &save); o && rc == 0;
         o = strtok_r(NULL, ",", &save)) {
        if (!fuse_accepts(o)) {
            snprintf(bad, size, "%s", o);
            rc = -EINVAL;
        }
    }
    fuse_set_log_func(NULL);
    free(copy);
    return rc;
}

/* ======================== the mount(8) form ============================= */

/* mount.fuse3 always passes -o (as root at least "dev,suid"); SOURCE
 * "zkfs" alone also counts. So a mistyped command (`zkfs stauts DIR`) is
 * an unknown command, not a mount. */
int zk__mount_helper_form(int argc, char **argv)
{
    struct stat st;

    return argc >= 3 && argv[1][0] != '-' && argv[2][0] != '-' &&
           ((argc >= 4 && strcmp(argv[3], "-o") == 0) ||
            strcmp(argv[1], "zkfs") == 0) &&
           stat(argv[2], &st) == 0 && S_ISDIR(st.st_mode);
}

/* Options that mount(8) or mount.fuse3 handle, or that a zkfs mount
 * refuses on purpose (see the top of the file): never given to FUSE. */
static int dropped(const char *o)
{
    static const char *const names[] = {
        "", "defaults", "dev", "suid", "user", "users", "nouser", "auto",
        "noauto", "_netdev", "nofail", "owner", "group"};

    for (size_t i = 0; i < ZK_ARRAY_LEN(names); i++)
        if (strcmp(o, names[i]) == 0)
            return 1;
    return strncmp(o, "x-", 2) == 0 || strncmp(o, "comment=", 8) == 0;
}

struct helper {
    char *argv[HELPER_ARGV_MAX];
    int argc;
    char fuse[ZK_CLI_MOUNT_OPTS_MAX];
};

static int helper_error(const char *opt, const char *why)
{
    fprintf(stderr, "zkfs: mount option '%s': %s\n", opt, why);
    return 2;
}

/* Appends "-o VALUE"-style pairs and FUSE options. Returns -1 to go on or
 * an exit status (reported). */
static int helper_opt(struct helper *h, char *o)
{
    static const struct { const char *key, *flag; } own[] = {
        {"config=", "-c"}, {"data=", "--data"}, {"id=", "--id"}};

    if (strcmp(o, "foreground") == 0) {
        h->argv[h->argc++] = "-f";
        return -1;
    }
    for (size_t i = 0; i < ZK_ARRAY_LEN(own); i++) {
        size_t n = strlen(own[i].key);
        if (strncmp(o, own[i].key, n) != 0)
            continue;
        if (o[n] == '\0')
            return helper_error(o, "needs a value");
        if (strcmp(own[i].key, "id=") == 0 &&
            (strspn(o + n, "0123456789") != strlen(o + n) ||
             strlen(o + n) > 3 || atoi(o + n) < 1 ||
             atoi(o + n) > ZK_CONFIG_ID_MAX))
            return helper_error(o, "not a server id in 1..255");
        if (h->argc + 2 >= HELPER_ARGV_MAX - 3)
            return helper_error(o, "too many options");
        h->argv[h->argc++] = (char *)own[i].flag;
        h->argv[h->argc++] = o + n;
        return -1;
    }
    if (strcmp(o, "config") == 0 || strcmp(o, "data") == 0 ||
        strcmp(o, "id") == 0)
        return helper_error(o, "needs a value (NAME=VALUE)");
    if (dropped(o))
        return -1;
    if (strlen(h->fuse) + strlen(o) + 2 > sizeof(h->fuse))
        return helper_error(o, "options too long");
    if (h->fuse[0])
        strcat(h->fuse, ",");
    strcat(h->fuse, o);
    return -1;
}

int zk__mount_helper_argv(int argc, char **argv, int *out_argc,
                          char ***out_argv)
{
    static struct helper h;     /* its strings live until the exit */
    int status;

    h.argc = 0;
    h.fuse[0] = '\0';
    h.argv[h.argc++] = "mount";
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "-o") != 0) {
            /* mount(8)'s flags (-n, -v, -s, -f, -r, -w) are its own. */
            continue;
        }
        if (++i == argc)
            return helper_error("-o", "needs a value");
        char *save = NULL;
        for (char *o = strtok_r(argv[i], ",", &save); o;
             o = strtok_r(NULL, ",", &save))
            if ((status = helper_opt(&h, o)) >= 0)
                return status;
    }
    char bad[256];
    if (zk__fs_check_fuse_opts(h.fuse, bad, sizeof(bad)) == -EINVAL)
        return helper_error(bad, "not a zkfs or FUSE mount option");
    if (h.fuse[0]) {
        h.argv[h.argc++] = "-o";
        h.argv[h.argc++] = h.fuse;
    }
    h.argv[h.argc++] = argv[2];
    h.argv[h.argc] = NULL;
    *out_argc = h.argc;
    *out_argv = h.argv;
    return -1;
}
