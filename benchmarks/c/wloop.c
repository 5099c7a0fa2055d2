/* N one-byte write()s to /dev/null, optionally paced to RATE calls per second (0: as fast as
 * possible). Prints the mean nanoseconds per call. Usage: wloop N [RATE] */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	long n = atol(argv[1]);
	double rate = argc > 2 ? atof(argv[2]) : 0;
	int fd = open("/dev/null", O_WRONLY);
	if (fd < 0)
		return 3;
	long long start = now_ns();
	for (long i = 0; i < n; i++) {
		if (write(fd, "x", 1) != 1)
			return 4;
		if (rate > 0 && (i & 255) == 255) {
			long long due = start + (long long)((i + 1) * 1e9 / rate);
			long long t = now_ns();
			if (due > t) {
				struct timespec d = {(due - t) / 1000000000LL, (due - t) % 1000000000LL};
				nanosleep(&d, NULL);
			}
		}
	}
	long long elapsed = now_ns() - start;
	printf("%.1f\n", (double)elapsed / n);
	return 0;
}
