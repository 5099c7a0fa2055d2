/* open() of DIR/f0000000 .. DIR/f<N-1>, then of the first K of them again, paced to RATE opens
 * per second (0: unpaced). DIR does not exist: every open fails with ENOENT, makes no file and
 * names a file the tracer has not seen (the first N) or saw long ago (the K again). Prints its
 * pid. Usage: many_names DIR N K RATE */
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
	char path[4096];

	if (argc != 5)
		return 2;
	long n = atol(argv[2]), k = atol(argv[3]);
	double rate = atof(argv[4]);
	long long start = now_ns();
	for (long i = 0; i < n + k; i++) {
		snprintf(path, sizeof path, "%s/f%07ld", argv[1], i < n ? i : i - n);
		if (open(path, O_RDONLY) >= 0)
			return 3;
		if (rate > 0 && (i & 255) == 255) {
			long long wait = start + (long long)((i + 1) / rate * 1e9) - now_ns();

			if (wait > 0)
				usleep(wait / 1000);
		}
	}
	printf("%d\n", getpid());
	return 0;
}
