/* A setgid program that gives its group back first thing (real, effective and saved gid all the
 * user's again), then makes N one-byte write()s to PATH and prints its pid. Its credentials then
 * look like any of the user's processes; only its mm, made undumpable by the setgid exec, says
 * it ran with more. Usage: after_drop PATH N */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	gid_t gid = getgid();

	if (argc != 3)
		return 2;
	if (setresgid(gid, gid, gid) != 0 || getegid() != gid)
		return 3;
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return 4;
	long n = atol(argv[2]);
	for (long i = 0; i < n; i++)
		if (write(fd, "x", 1) != 1)
			return 5;
	close(fd);
	printf("%d\n", getpid());
	return 0;
}
