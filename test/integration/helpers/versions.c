/*
 * versions.c — each open file reads the one version it loaded at open,
 * whatever happens to the file meanwhile (t_atomic.sh). The sequence is
 * the one that tore reads when read-only opens used the page cache
 * (docs/performance.md, "Page cache for read-only opens"): a writer's
 * O_TRUNC open and writes while a reader is open, a commit of a version
 * of another size, a commit of the same size, new readers (and a
 * MAP_PRIVATE mapping, which uses the page cache) of newer versions.
 *
 *   versions FILE
 *
 * Prints each read that is not exactly its descriptor's version and exits
 * 1; exits 0 when all are; 2 on a set-up error.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define V1_BYTES 200000
static char buf[V1_BYTES + 4096];
static int fails;

/* fd must read exactly len bytes of c from off to the end. */
static void expect(int fd, off_t off, size_t len, char c, const char *when)
{
    ssize_t n = pread(fd, buf, sizeof(buf), off);
    size_t bad = 0;
    for (ssize_t i = 0; i < n; i++)
        bad += buf[i] != c;
    if (n != (ssize_t)len || bad) {
        printf("%s: read %zd bytes from %ld (%zu not '%c'), expected %zu "
               "bytes of '%c'\n", when, n, (long)off, bad, c, len, c);
        fails++;
    }
}

/* Writes len bytes of c into path (flags), closing it (the commit). */
static int put(const char *path, int flags, size_t len, char c)
{
    int fd = open(path, flags, 0644);
    if (fd < 0)
        return -1;
    memset(buf, c, len);
    ssize_t n = write(fd, buf, len);
    return close(fd) == 0 && n == (ssize_t)len ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: versions FILE\n");
        return 2;
    }
    const char *f = argv[1];
    if (put(f, O_WRONLY | O_CREAT | O_TRUNC, V1_BYTES, 'A'))
        return perror("v1"), 2;
    int r1 = open(f, O_RDONLY);
    if (r1 < 0)
        return perror("open r1"), 2;
    expect(r1, 0, V1_BYTES, 'A', "r1 at open");

    /* A writer's O_TRUNC open sets the kernel's size to 0; its writes
     * grow it. */
    int w = open(f, O_WRONLY | O_TRUNC);
    if (w < 0)
        return perror("open O_TRUNC"), 2;
    expect(r1, 65536, V1_BYTES - 65536, 'A', "r1 after a writer's O_TRUNC open");
    memset(buf, 'B', 10);
    if (write(w, buf, 10) != 10)
        return perror("write"), 2;
    expect(r1, 65536, V1_BYTES - 65536, 'A', "r1 after the writer's write");
    if (close(w) != 0)
        return perror("close (v2 commit)"), 2;
    /* v2 (10 bytes) is committed: the kernel's size is v2's now. */
    expect(r1, 0, V1_BYTES, 'A', "r1 after v2 (10 bytes) was committed");
    int r2 = open(f, O_RDONLY);
    if (r2 < 0)
        return perror("open r2"), 2;
    expect(r2, 0, 10, 'B', "r2 (v2)");

    /* v3: same size as v2, other bytes; v4: 5000 bytes. */
    if (put(f, O_WRONLY, 10, 'C'))
        return perror("v3"), 2;
    if (put(f, O_WRONLY | O_TRUNC, 5000, 'D'))
        return perror("v4"), 2;
    int r3 = open(f, O_RDONLY);
    if (r3 < 0)
        return perror("open r3"), 2;
    expect(r3, 0, 5000, 'D', "r3 (v4)");
    char *map = mmap(NULL, 5000, PROT_READ, MAP_PRIVATE, r3, 0);
    if (map == MAP_FAILED)
        return perror("mmap"), 2;
    size_t bad = 0;
    for (size_t i = 0; i < 5000; i++)
        bad += map[i] != 'D';
    if (bad)
        printf("a MAP_PRIVATE mapping of v4: %zu bytes not 'D'\n", bad), fails++;
    expect(r1, 0, V1_BYTES, 'A', "r1 after v4 and its mapping");
    expect(r2, 0, 10, 'B', "r2 after v4 and its mapping");
    expect(r3, 4096, 5000 - 4096, 'D', "r3 after its mapping");
    munmap(map, 5000);
    close(r1);
    close(r2);
    close(r3);
    return fails ? 1 : 0;
}
