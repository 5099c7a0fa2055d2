/* Opens PATH (created), writes K blocks of S bytes, preads them back, fsyncs and closes,
 * then prints "<pid> <fd>" on stdout with one write. Usage: file_io PATH K S */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	long k = atol(argv[2]), s = atol(argv[3]);
	char *buf = malloc(s);
	memset(buf, 'x', s);
	int fd = open(argv[1], O_CREAT | O_RDWR | O_TRUNC, 0644);
	if (fd < 0)
		return 3;
	for (long i = 0; i < k; i++)
		if (write(fd, buf, s) != s)
			return 4;
	for (long i = 0; i < k; i++)
		if (pread(fd, buf, s, i * s) != s)
			return 5;
	if (fsync(fd) || close(fd))
		return 6;
	dprintf(1, "%d %d\n", getpid(), fd);
	return 0;
}
