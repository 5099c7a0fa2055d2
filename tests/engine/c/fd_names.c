/* Every way a process gets a second name for an open file, then writes through it: dup2 (as dd
 * does with of=), dup, fcntl(F_DUPFD), fstat of the fd, and a pipe dup2'd over a named fd (whose
 * old name must not stick). Usage: fd_names PATH. Prints its pid. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char buf[64] = "datacrumbs";
	struct stat st;
	int p[2];

	if (argc != 2)
		return 64;
	printf("%d\n", getpid());
	fflush(stdout);
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || dup2(fd, 7) != 7 || close(fd))
		return 1;
	if (write(7, buf, 11) != 11) /* dup2'd */
		return 2;
	int copy = dup(7);
	if (copy < 0 || write(copy, buf, 12) != 12) /* dup'd */
		return 3;
	int high = fcntl(7, F_DUPFD_CLOEXEC, 20);
	if (high < 20 || write(high, buf, 13) != 13) /* fcntl(F_DUPFD_CLOEXEC) */
		return 4;
	if (fcntl(7, F_GETFL) < 0 || fstat(7, &st) || st.st_size != 36) /* fstat: newfstatat */
		return 5;
	if (pipe(p) || dup2(p[1], 7) != 7 || write(7, buf, 14) != 14) /* a pipe over it now */
		return 6;
	return 0;
}
