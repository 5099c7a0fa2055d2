/* Exactly N one-byte write()s to /dev/null, and no other write; with RATE, at most RATE per
 * second (paced every 100 writes). Usage: flood N [RATE] */
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 2 && argc != 3)
		return 2;
	long n = atol(argv[1]);
	double rate = argc == 3 ? atof(argv[2]) : 0, start = now();
	int fd = open("/dev/null", O_WRONLY);
	if (fd < 0)
		return 3;
	for (long i = 0; i < n; i++) {
		if (write(fd, "x", 1) != 1)
			return 4;
		if (rate > 0 && i % 100 == 99) {
			double ahead = (i + 1) / rate - (now() - start);

			if (ahead > 0)
				usleep((useconds_t)(ahead * 1e6));
		}
	}
	return 0;
}
