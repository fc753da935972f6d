/*
 * mntopts.h — private to the `zkfs` command (fs/main.c): the command line
 * mount(8) uses through mount.fuse3 (`zkfs SOURCE DIR -o OPTS`), and the
 * check of FUSE options before a daemon is started (fs/mntopts.c). Main
 * thread only: the check swaps libfuse's global log function.
 */
#ifndef ZK_MNTOPTS_H
#define ZK_MNTOPTS_H

#include <stddef.h>

#define ZK_CLI_MOUNT_OPTS_MAX 1024  /* all FUSE -o options together, bytes */

/* Whether argv (the whole command line) has the mount(8) form: argv[1] is
 * not an option, argv[2] names a directory, and argv[3] is "-o" or
 * argv[1] is "zkfs". The caller has checked that argv[1] is no command. */
int zk__mount_helper_form(int argc, char **argv);

/* Turns `zkfs SOURCE DIR [-o OPTS]...` into the arguments of `zkfs mount`
 * (out_argv[0] is "mount"); the options are described in mntopts.c.
 * Modifies the -o strings of argv in place. *out_argc and *out_argv are
 * written on success and point to static storage. Returns -1 on success,
 * or 2 after printing one line "zkfs: mount option 'OPT': reason" (an
 * unknown FUSE option is reported there too). */
int zk__mount_helper_argv(int argc, char **argv, int *out_argc,
                          char ***out_argv);

/* Checks that libfuse accepts every comma-separated option of opts (NULL
 * or "" is fine). Mounts nothing. On -EINVAL the first refused option is
 * copied to bad (size bytes). Errors: -EINVAL, -ENOMEM. */
int zk__fs_check_fuse_opts(const char *opts, char *bad, size_t size);

#endif /* ZK_MNTOPTS_H */
