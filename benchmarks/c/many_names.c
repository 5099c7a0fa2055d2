/* open() of N distinct names DIR/f<i> that do not exist (ENOENT: no file is made, but each is a
 * file name the tracer has not seen), optionally paced to RATE opens per second (0: as fast as
 * it goes). Prints the opens made. Usage: many_names DIR N [RATE] */
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

	if (argc < 3)
		return 2;
	long n = atol(argv[2]);
	double rate = argc > 3 ? atof(argv[3]) : 0;
	long long start = now_ns();
	for (long i = 0; i < n; i++) {
		snprintf(path, sizeof path, "%s/f%07ld", argv[1], i);
		if (open(path, O_RDONLY) >= 0)
			return 3; /* the names must not exist */
		if (rate > 0 && (i & 255) == 255) {
			long long due = start + (long long)((i + 1) / rate * 1e9);
			long long wait = due - now_ns();

			if (wait > 0)
				usleep(wait / 1000);
		}
	}
	printf("%ld\n", n);
	return 0;
}
