/*
 * truncseek.c — a truncation committed at the last close of its
 * descriptor must be what every later call sees, also one that asks
 * the kernel for the size through another open file.
 *
 *   truncseek PATH ROUNDS [append]
 *
 * Each round, on PATH: a descriptor W stays open for writing (O_WRONLY,
 * like the holder of a log file); another descriptor sets the file to
 * 100 bytes and closes; a third opens it with O_TRUNC (nothing written)
 * while a stat() reads the committed size (100: the truncation is not
 * committed yet), then closes. From then on the file is empty: lseek(W,
 * 0, SEEK_END) must say 0 and stat() must say 0. With "append", the
 * third descriptor is opened O_APPEND as well.
 *
 *   truncseek PATH ROUNDS path
 *
 * Each round: PATH is rewritten with 10 bytes; a descriptor D opens it
 * O_RDWR and ftruncates it to 131071 (its buffer: nothing committed);
 * truncate(2) of the path commits 5 bytes. Then stat() must say 5 (the
 * committed size) and lseek(D, 1, SEEK_HOLE) 131071 (a descriptor with
 * unsaved writes seeks in its own buffer, docs/filesystem.md): the
 * truncate's commit must not invalidate the attributes after its answer,
 * or the kernel drops the answer of the GETATTR the lseek sends (fsfuzz
 * seed 72317).
 *
 * Prints "truncseek: ROUNDS rounds, N stale" and exits 0 when no round
 * saw a stale size, 1 when one did, 2 on a usage or system call error.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(const char *what)
{
    fprintf(stderr, "truncseek: %s: %s\n", what, strerror(errno));
    return 2;
}

/* The "path" mode (see the top). */
static int path_rounds(const char *path, int rounds)
{
    int stale = 0;
    struct stat st;
    for (int i = 0; i < rounds; i++) {
        int w = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (w < 0 || write(w, "0123456789", 10) != 10 || close(w) != 0)
            return fail("rewrite");
        int d = open(path, O_RDWR | O_CLOEXEC);
        if (d < 0 || ftruncate(d, 131071) != 0)
            return fail("ftruncate D");
        if (truncate(path, 5) != 0)
            return fail("truncate");
        off_t hole = lseek(d, 1, SEEK_HOLE);
        if (hole < 0 || stat(path, &st) != 0)
            return fail("lseek");
        if (hole != 131071 || st.st_size != 5) {
            if (stale++ < 5)
                fprintf(stderr, "truncseek: round %d: lseek(SEEK_HOLE) %lld "
                        "(want 131071), stat %lld (want 5)\n", i,
                        (long long)hole, (long long)st.st_size);
        }
        if (close(d) != 0)
            return fail("close D");
    }
    printf("truncseek: %d rounds, %d stale\n", rounds, stale);
    return stale ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4 || atoi(argv[2]) <= 0 ||
        (argc == 4 && strcmp(argv[3], "append") != 0 &&
         strcmp(argv[3], "path") != 0)) {
        fprintf(stderr, "usage: truncseek PATH ROUNDS [append|path]\n");
        return 2;
    }
    if (argc == 4 && strcmp(argv[3], "path") == 0)
        return path_rounds(argv[1], atoi(argv[2]));
    int append = argc == 4 ? O_APPEND : 0;
    const char *path = argv[1];
    int rounds = atoi(argv[2]), stale = 0;
    struct stat st;
    for (int i = 0; i < rounds; i++) {
        int w = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (w < 0)
            return fail("open W");
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0 || ftruncate(fd, 100) != 0 || close(fd) != 0)
            return fail("set 100 bytes");
        fd = open(path, O_RDWR | O_TRUNC | O_CLOEXEC | append);
        if (fd < 0 || stat(path, &st) != 0)
            return fail("open O_TRUNC");
        if (close(fd) != 0)
            return fail("close O_TRUNC");
        off_t end = lseek(w, 0, SEEK_END);
        if (end < 0 || stat(path, &st) != 0)
            return fail("lseek");
        if (end != 0 || st.st_size != 0) {
            if (stale++ < 5)
                fprintf(stderr, "truncseek: round %d: lseek(SEEK_END) %lld,"
                        " stat %lld, want 0\n", i, (long long)end,
                        (long long)st.st_size);
        }
        if (close(w) != 0)
            return fail("close W");
    }
    printf("truncseek: %d rounds, %d stale\n", rounds, stale);
    return stale ? 1 : 0;
}
