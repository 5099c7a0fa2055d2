/* The peer benchmarks' workload: N small write()s or N 4 KiB pread()s on a file, timed inside.
 *
 * Usage: peers_io write FILE N SIZE    N write()s of SIZE bytes to FILE (created, truncated)
 *        peers_io pread FILE N SPAN    N 4 KiB pread()s at offsets cycling over the first
 *                                      SPAN bytes of FILE (made beforehand by the benchmark,
 *                                      so its pages are in the page cache)
 *        peers_io ior FILE BYTES XFER  BYTES written in XFER-byte write()s (IOR-like,
 *                                      through the page cache); fsync'd after the timed loop
 *                                      so that the next run starts with no dirty pages
 * Prints "<ns per call> <calls> <loop seconds>" on stdout; only the loop is timed, so tracer
 * start-up and shut-down (bpftrace's compile, DFTracer's final flush) are not in the number.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int report(long long start, long calls)
{
	long long elapsed = now_ns() - start;
	printf("%.1f %ld %.6f\n", (double)elapsed / calls, calls, elapsed / 1e9);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 5)
		return 2;
	const char *mode = argv[1], *path = argv[2];
	long n = atol(argv[3]), arg = atol(argv[4]);
	if (strcmp(mode, "write") == 0) {
		char *buf = calloc(1, arg);
		int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
		if (fd < 0 || buf == NULL)
			return 3;
		long long start = now_ns();
		for (long i = 0; i < n; i++)
			if (write(fd, buf, arg) != arg)
				return 4;
		report(start, n);
		return close(fd) ? 5 : 0;
	}
	if (strcmp(mode, "pread") == 0) {
		static char buf[4096];
		long blocks = arg / 4096;
		int fd = open(path, O_RDONLY);
		if (fd < 0 || blocks < 1)
			return 3;
		long long start = now_ns();
		for (long i = 0; i < n; i++)
			if (pread(fd, buf, 4096, (i % blocks) * 4096) != 4096)
				return 4;
		report(start, n);
		return close(fd) ? 5 : 0;
	}
	if (strcmp(mode, "ior") == 0) {
		char *buf = malloc(arg);
		long calls = n / arg;
		/* no O_TRUNC: rewriting a file whose pages are cached measures the copy into the
		 * page cache, not the allocation of fresh pages and the writeback of the last run */
		int fd = open(path, O_CREAT | O_WRONLY, 0644);
		if (fd < 0 || buf == NULL)
			return 3;
		memset(buf, 'i', arg);
		long long start = now_ns();
		for (long i = 0; i < calls; i++)
			if (write(fd, buf, arg) != arg)
				return 4;
		report(start, calls);
		return fsync(fd) || close(fd) ? 5 : 0;
	}
	return 2;
}
