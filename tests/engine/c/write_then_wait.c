/* N one-byte write()s to /dev/null, then prints "ready" and waits for a line on stdin (the
 * thread stays alive and idle until the test lets it go). Usage: write_then_wait N */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	long n = atol(argv[1]);
	int fd = open("/dev/null", O_WRONLY);
	char line[16];

	if (fd < 0)
		return 3;
	for (long i = 0; i < n; i++)
		if (write(fd, "x", 1) != 1)
			return 4;
	printf("ready\n");
	fflush(stdout);
	return fgets(line, sizeof line, stdin) ? 0 : 5;
}
