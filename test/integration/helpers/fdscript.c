/*
 * fdscript.c — one open file driven step by step, so a test can see what
 * each system call returns (a shell's redirection hides close()'s error).
 *
 *   fdscript PATH STEP...
 *
 * Steps, in order:
 *   open       open(PATH, O_CREAT|O_TRUNC|O_WRONLY, 0644) (no O_EXCL)
 *   excl       open(PATH, O_CREAT|O_EXCL|O_WRONLY, 0644)
 *   w:TEXT     write TEXT
 *   fsync      fsync
 *   close      close
 *   say:TEXT   print TEXT and a newline on stdout (flushed)
 *   wait       read one line from stdin (the test's go-ahead)
 *
 * Prints "STEP: strerror" on stderr and exits 1 at the first step that
 * fails; exits 0 when all succeeded, 2 on a usage error.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int step(const char *path, const char *s, int *fd)
{
    int rc = 0;
    char line[256];
    if (strcmp(s, "open") == 0 || strcmp(s, "excl") == 0) {
        int fl = O_CREAT | O_WRONLY | O_CLOEXEC;
        fl |= strcmp(s, "excl") == 0 ? O_EXCL : O_TRUNC;
        *fd = open(path, fl, 0644);
        rc = *fd < 0 ? -1 : 0;
    } else if (strncmp(s, "w:", 2) == 0) {
        size_t n = strlen(s + 2);
        rc = write(*fd, s + 2, n) == (ssize_t)n ? 0 : -1;
    } else if (strcmp(s, "fsync") == 0) {
        rc = fsync(*fd);
    } else if (strcmp(s, "close") == 0) {
        rc = close(*fd);
        *fd = -1;
    } else if (strncmp(s, "say:", 4) == 0) {
        printf("%s\n", s + 4);
        fflush(stdout);
    } else if (strcmp(s, "wait") == 0) {
        rc = fgets(line, sizeof(line), stdin) ? 0 : -1;
        if (rc)
            errno = EPIPE;
    } else {
        fprintf(stderr, "fdscript: unknown step '%s'\n", s);
        return 2;
    }
    if (rc) {
        fprintf(stderr, "%s: %s\n", s, strerror(errno));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int fd = -1;
    if (argc < 3) {
        fprintf(stderr, "usage: fdscript PATH STEP...\n");
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        int rc = step(argv[1], argv[i], &fd);
        if (rc)
            return rc;
    }
    return 0;
}
