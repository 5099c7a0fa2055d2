/* Exactly N one-byte write()s to /dev/null, and no other write. Usage: flood N */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	long n = atol(argv[1]);
	int fd = open("/dev/null", O_WRONLY);
	if (fd < 0)
		return 3;
	for (long i = 0; i < n; i++)
		if (write(fd, "x", 1) != 1)
			return 4;
	return 0;
}
