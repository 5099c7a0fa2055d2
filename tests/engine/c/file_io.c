/* Opens PATH (created), writes K blocks of S bytes, preads them back, fsyncs and closes,
 * then prints "<pid> <fd>" on stdout with one write. With "await", it first waits (up to 10 s)
 * for a uprobe's breakpoint on the C library's fsync to appear in its own memory: a process
 * entering a job gets its uprobes a few milliseconds after it starts (the first breakpoint is
 * its exit link's; the entry link follows within a millisecond, so it waits 0.2 s more).
 * With "linger", it stays 1 s before exiting: long enough for the tracer to read its
 * /proc/PID metadata (its rank among them), as a real job's long-lived ranks allow.
 * Usage: file_io PATH K S [await|linger] */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int linger = argc == 5 && strcmp(argv[4], "linger") == 0;

	if (argc != 4 && !(argc == 5 && (linger || strcmp(argv[4], "await") == 0)))
		return 2;
	if (argc == 5 && !linger) {
		volatile unsigned char *code = dlsym(RTLD_DEFAULT, "fsync");

		for (int i = 0; code && i < 10000 && *code != 0xcc; i++)
			usleep(1000);
		usleep(200000); /* the breakpoint is the exit link's: the entry link comes next */
	}
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
	if (linger)
		sleep(1);
	return 0;
}
