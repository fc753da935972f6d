/*
 * notify_listen.c — a stand-in for systemd's notification socket, for
 * t_systemd.sh (compiled there with cc): binds an AF_UNIX datagram socket
 * at PATH and appends every datagram received to OUT followed by a line
 * "--", until SECONDS have passed.
 *
 * Usage: notify_listen PATH OUT SECONDS
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char buf[4096];

    if (argc != 4 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "usage: notify_listen PATH OUT SECONDS\n");
        return 2;
    }
    strcpy(sa.sun_path, argv[1]);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("notify_listen");
        return 1;
    }
    time_t end = time(NULL) + atoi(argv[3]);
    while (time(NULL) < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0)
            continue;
        FILE *out = fopen(argv[2], "a");
        if (out == NULL)
            return 1;
        fwrite(buf, 1, (size_t)n, out);
        fputs(n && buf[n - 1] == '\n' ? "--\n" : "\n--\n", out);
        fclose(out);
    }
    return 0;
}
