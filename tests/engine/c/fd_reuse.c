/* An fd used for one object, closed, and used again for a file: the file must be named as the
 * file it is, never after what the fd held before (issue 26, M1), and a file renamed, its
 * directory renamed, or unlinked while open must be named as it is now (M2).
 *
 * Usage: fd_reuse MODE DIR ROUNDS, MODE one of
 *   pipe, socket, eventfd, memfd
 *                          each round: make the object, write to it and read it back (so its
 *                          name is taken), close it, open DIR/newN on the fd it had, write, close
 *   rename                 each round: open DIR/dN/a, write; rename it to DIR/dN/b, write;
 *                          rename DIR/dN to DIR/eN, write; close
 *   unlink                 each round: open DIR/uN, write; unlink it, write; close
 * Prints its pid. Exits non-zero when a call fails, or when the new file does not reuse the fd.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static void must(int ok, const char *what)
{
	if (!ok) {
		perror(what);
		exit(1);
	}
}

/* Two fds of a new object of the kind, used once each way (an eventfd, a memfd: one fd). */
static void object(const char *mode, int fds[2])
{
	unsigned long long v = 1;
	char c = 'p';

	if (strcmp(mode, "memfd") == 0) {
		fds[0] = fds[1] = memfd_create("dc-memfd", 0);
		must(fds[0] >= 0, "memfd_create");
		must(write(fds[1], &c, 1) == 1, "write memfd");
		must(pread(fds[0], &c, 1, 0) == 1, "pread memfd");
		return;
	}
	if (strcmp(mode, "eventfd") == 0) {
		fds[0] = fds[1] = eventfd(0, 0);
		must(fds[0] >= 0, "eventfd");
		must(write(fds[1], &v, sizeof(v)) == sizeof(v), "write eventfd");
		must(read(fds[0], &v, sizeof(v)) == sizeof(v), "read eventfd");
		return;
	}
	if (strcmp(mode, "pipe") == 0)
		must(pipe(fds) == 0, "pipe");
	else
		must(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0, "socketpair");
	must(write(fds[1], &c, 1) == 1, "write object");
	must(read(fds[0], &c, 1) == 1, "read object");
}

static void reuse(const char *mode, const char *dir, int rounds)
{
	char path[4096];
	int fds[2];

	for (int i = 0; i < rounds; i++) {
		object(mode, fds);
		close(fds[0]);
		if (fds[1] != fds[0])
			close(fds[1]);
		snprintf(path, sizeof(path), "%s/new%03d", dir, i);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		must(fd == fds[0], "open on the object's fd");
		must(write(fd, "new\n", 4) == 4, "write new");
		close(fd);
	}
}

static void renames(const char *dir, int rounds)
{
	char d[4096], e[4096], a[4200], b[4200];

	for (int i = 0; i < rounds; i++) {
		snprintf(d, sizeof(d), "%s/d%d", dir, i);
		snprintf(e, sizeof(e), "%s/e%d", dir, i);
		snprintf(a, sizeof(a), "%s/a", d);
		snprintf(b, sizeof(b), "%s/b", d);
		must(mkdir(d, 0755) == 0, "mkdir");
		int fd = open(a, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		must(fd >= 0, "open");
		must(write(fd, "1", 1) == 1, "write a");
		must(rename(a, b) == 0, "rename file");
		must(write(fd, "2", 1) == 1, "write b");
		must(rename(d, e) == 0, "rename directory");
		must(write(fd, "3", 1) == 1, "write e/b");
		close(fd);
	}
}

static void unlinks(const char *dir, int rounds)
{
	char path[4096];

	for (int i = 0; i < rounds; i++) {
		snprintf(path, sizeof(path), "%s/u%d", dir, i);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		must(fd >= 0, "open");
		must(write(fd, "1", 1) == 1, "write");
		must(unlink(path) == 0, "unlink");
		must(write(fd, "2", 1) == 1, "write unlinked");
		close(fd);
	}
}

int main(int argc, char **argv)
{
	if (argc != 4)
		return 64;
	int rounds = atoi(argv[3]);

	printf("%d\n", getpid());
	fflush(stdout);
	if (strcmp(argv[1], "rename") == 0)
		renames(argv[2], rounds);
	else if (strcmp(argv[1], "unlink") == 0)
		unlinks(argv[2], rounds);
	else
		reuse(argv[1], argv[2], rounds);
	return 0;
}
