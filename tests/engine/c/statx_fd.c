/* statx as 32-bit glibc's fstat and coreutils' stat call it: N times by fd with an empty path
 * (AT_EMPTY_PATH), then once by its path relative to the working directory, then fstatat by
 * fd the same way. Prints "<pid> <fd>". Usage: statx_fd PATH N */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct statx stx;
	struct stat st;
	int fd, n;

	if (argc != 3)
		return 2;
	n = atoi(argv[2]);
	fd = open(argv[1], O_CREAT | O_RDWR, 0644);
	if (fd < 0)
		return 3;
	for (int i = 0; i < n; i++)
		if (statx(fd, "", AT_EMPTY_PATH, STATX_SIZE, &stx))
			return 4;
	if (statx(AT_FDCWD, argv[1], 0, STATX_SIZE, &stx) || fstatat(fd, "", &st, AT_EMPTY_PATH))
		return 5;
	printf("%d %d\n", getpid(), fd);
	return close(fd) ? 6 : 0;
}
