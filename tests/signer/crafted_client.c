/*
 * Test-only signer client: a relay between its stdin/stdout and the signer's socket.
 *
 * The tests install it, setgid datacrumbs, in place of the launcher of a second installation:
 * the signer then takes it for the launcher (exact path, inode, group), and every byte the test
 * writes to its stdin reaches the signer as sent by this process, when the test sends it. So
 * the tests can answer the challenge with documents the real configurator would never produce,
 * or trickle, stall or cut a request short, and prove the signer's checks refuse them.
 * Usage: crafted_client SOCKET. End of stdin shuts the socket for writing; the relay exits when
 * the signer closes the connection.
 */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int copy(int from, int to, int is_socket)
{
    char buf[1 << 16];
    ssize_t n = read(from, buf, sizeof buf);
    if (n <= 0)
        return 0;
    for (ssize_t off = 0; off < n;) {
        ssize_t sent = is_socket ? send(to, buf + off, (size_t)(n - off), MSG_NOSIGNAL)
                                 : write(to, buf + off, (size_t)(n - off));
        if (sent <= 0)
            return 0;
        off += sent;
    }
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 64;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, argv[1], sizeof addr.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("connect");
        return 66;
    }
    struct pollfd fds[2] = {{.fd = fd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
    int inputs = 2;
    while (poll(fds, (nfds_t)inputs, -1) > 0) {
        if (fds[0].revents && !copy(fd, 1, 0))
            return 0; /* the signer closed the connection */
        if (inputs == 2 && fds[1].revents && !copy(0, fd, 1)) {
            shutdown(fd, SHUT_WR);
            inputs = 1;
        }
    }
    return 0;
}
