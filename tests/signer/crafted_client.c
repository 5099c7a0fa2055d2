/*
 * Test-only signer client: sends a request file's bytes as they are and prints the reply.
 *
 * The tests install it, setgid datacrumbs, in place of the launcher of a second installation:
 * the signer then takes it for the launcher (exact path, inode, group), so the tests can send
 * documents the real configurator would never produce and prove the content checks refuse them.
 * Usage: crafted_client SOCKET REQUEST_FILE
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3)
        return 64;
    FILE *in = fopen(argv[2], "rb");
    if (!in)
        return 65;
    static char buf[1 << 24];
    size_t len = fread(buf, 1, sizeof buf, in);
    fclose(in);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, argv[1], sizeof addr.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("connect");
        return 66;
    }
    for (size_t off = 0; off < len;) {
        ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        fwrite(buf, 1, (size_t)n, stdout);
    return 0;
}
