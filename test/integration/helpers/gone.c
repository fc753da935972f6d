/*
 * gone.c — descriptors of deleted nodes (t_gone.sh): what a descriptor
 * still answers after its node was deleted, the way tmpfs answers it.
 *
 *   gone append DIR        DIR/a holds "one\n"; an O_RDWR|O_APPEND
 *                          descriptor appends "two\n" (fsync), another
 *                          descriptor appends "three\n" (close), DIR/a
 *                          is unlinked; the first descriptor must still
 *                          read "one\ntwo\nthree\n" (the committed content
 *                          at the delete), also after a pending append.
 *   gone opath PATH CMD    PATH exists; opens it O_PATH, runs CMD (sh -c)
 *                          which deletes it, then fstat on the descriptor
 *                          must succeed with st_nlink 0 and PATH's mode,
 *                          owner and size as they were before.
 *   gone alias DIR ROUNDS [rename]
 *                          each round: DIR/f is created by an open
 *                          without O_EXCL (a provisional create), opened
 *                          again read-only (which commits it: the kernel
 *                          holds it as the provisional nodeid), the first
 *                          descriptor closed, DIR listed (which gave the
 *                          kernel the committed inode for the name
 *                          until entries named the provisional nodeid
 *                          while it is held: fs/util.c), then
 *                          DIR/f unlinked — or, with "rename", replaced
 *                          by a rename of a new DIR/g over it; right
 *                          after, fstat of the read-only descriptor must
 *                          say st_nlink 0 (fsfuzz seed 70612). Prints
 *                          "gone alias: ROUNDS rounds, N stale".
 *
 * Prints what differs and exits 1; exits 0 when all is as expected, 2 on
 * a usage or set-up error.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int bad(const char *what)
{
    fprintf(stderr, "gone: %s: %s\n", what, strerror(errno));
    return 2;
}

static int put(const char *path, int flags, const char *s)
{
    int fd = open(path, flags, 0644);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, s, strlen(s));
    int rc = close(fd);
    return n == (ssize_t)strlen(s) && rc == 0 ? 0 : -1;
}

/* Reads fd from offset 0 and compares with want. */
static int expect(int fd, const char *want, const char *when)
{
    char buf[256];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n < 0) {
        printf("%s: pread failed: %s\n", when, strerror(errno));
        return 1;
    }
    buf[n] = '\0';
    if (strcmp(buf, want) != 0) {
        printf("%s: read [%s], expected [%s]\n", when, buf, want);
        return 1;
    }
    return 0;
}

static int do_append(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/a", dir);
    if (put(path, O_WRONLY | O_CREAT | O_TRUNC, "one\n"))
        return bad("create a");
    int fd = open(path, O_RDWR | O_APPEND);
    if (fd < 0)
        return bad("open O_RDWR|O_APPEND");
    if (write(fd, "two\n", 4) != 4 || fsync(fd) != 0)
        return bad("append two");
    if (put(path, O_WRONLY | O_APPEND, "three\n"))
        return bad("append three");
    int fails = expect(fd, "one\ntwo\nthree\n", "before the unlink");
    if (unlink(path) != 0)
        return bad("unlink");
    fails += expect(fd, "one\ntwo\nthree\n", "after the unlink");
    if (write(fd, "four\n", 5) != 5)
        return bad("append four");
    fails += expect(fd, "one\ntwo\nthree\n", "after a pending append");
    close(fd);                  /* ENOENT: the node is gone (documented) */
    return fails ? 1 : 0;
}

static int do_opath(const char *path, const char *cmd)
{
    struct stat before, after;
    if (stat(path, &before) != 0)
        return bad("stat before");
    int fd = open(path, O_PATH);
    if (fd < 0)
        return bad("open O_PATH");
    int rc = system(cmd);
    if (rc != 0) {
        fprintf(stderr, "gone: '%s' exited with %d\n", cmd, rc);
        return 2;
    }
    if (stat(path, &after) == 0 || errno != ENOENT) {
        fprintf(stderr, "gone: '%s' did not delete %s\n", cmd, path);
        return 2;
    }
    int fails = 0;
    if (fstat(fd, &after) != 0) {
        printf("fstat of the O_PATH descriptor failed: %s\n",
               strerror(errno));
        return 1;
    }
    if (after.st_nlink != 0)
        printf("st_nlink %lu, expected 0\n", (unsigned long)after.st_nlink),
            fails++;
    if (after.st_mode != before.st_mode)
        printf("st_mode %o, expected %o\n", after.st_mode, before.st_mode),
            fails++;
    if (after.st_uid != before.st_uid || after.st_gid != before.st_gid)
        printf("owner %u:%u, expected %u:%u\n", after.st_uid, after.st_gid,
               before.st_uid, before.st_gid), fails++;
    if (after.st_ino != before.st_ino)
        printf("st_ino changed\n"), fails++;
    if (S_ISREG(before.st_mode) && after.st_size != before.st_size)
        printf("st_size %ld, expected %ld\n", (long)after.st_size,
               (long)before.st_size), fails++;
    close(fd);
    return fails ? 1 : 0;
}

/* Lists dir (READDIRPLUS: entries with their inodes). */
static int list(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    while (readdir(d))
        ;
    return closedir(d);
}

/* One round of do_alias: 1 if the descriptor saw st_nlink other than 0
 * after its file was deleted or replaced, 0 if not, 2 on an error. */
static int alias_round(const char *dir, const char *f, const char *g,
                       int rename_over)
{
    struct stat st;
    /* The previous round's echo work (the notify_delete of its unlink,
     * which waits for DIR's lock) goes by first, so that each round
     * starts from a quiet mount. */
    usleep(5000);
    int a = open(f, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (a < 0)
        return bad("create f");
    int b = open(f, O_RDONLY | O_CLOEXEC);
    if (b < 0 || close(a) != 0)
        return bad("open f again, close the first");
    usleep(1000);               /* the commit's invalidations go by */
    if (fstat(b, &st) != 0 || st.st_nlink != 1 || list(dir) != 0)
        return bad("fstat before, list");
    if (rename_over) {
        if (put(g, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, "g") ||
            rename(g, f) != 0)
            return bad("rename g over f");
    } else if (unlink(f) != 0) {
        return bad("unlink f");
    }
    if (fstat(b, &st) != 0)
        return bad("fstat after");
    close(b);
    if (rename_over && unlink(f) != 0)
        return bad("unlink the new f");
    return st.st_nlink != 0;
}

static int do_alias(const char *dir, int rounds, int rename_over)
{
    char f[4096], g[4096];
    snprintf(f, sizeof(f), "%s/f", dir);
    snprintf(g, sizeof(g), "%s/g", dir);
    int stale = 0;
    for (int i = 0; i < rounds; i++) {
        int rc = alias_round(dir, f, g, rename_over);
        if (rc == 2)
            return 2;
        stale += rc;
    }
    printf("gone alias: %d rounds, %d stale\n", rounds, stale);
    return stale ? 1 : 0;
}

int main(int argc, char **argv)
{
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "alias") == 0 &&
        atoi(argv[3]) > 0 && (argc == 4 || strcmp(argv[4], "rename") == 0))
        return do_alias(argv[2], atoi(argv[3]), argc == 5);
    if (argc == 3 && strcmp(argv[1], "append") == 0)
        return do_append(argv[2]);
    if (argc == 4 && strcmp(argv[1], "opath") == 0)
        return do_opath(argv[2], argv[3]);
    fprintf(stderr, "usage: gone append DIR | gone opath PATH CMD | "
                    "gone alias DIR ROUNDS [rename]\n");
    return 2;
}
