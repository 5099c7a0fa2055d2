/* THREADS threads at once, each making N write()s of SIZE bytes to /dev/null, optionally paced
 * to RATE calls per second per thread (0: as fast as they can). Prints "<wall ns> <calls>":
 * from the moment all threads are released to the end of the last.
 * Usage: threads_write THREADS N SIZE [RATE] */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long n, size;
static double rate;
static int fd;
static pthread_barrier_t start;

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *work(void *arg)
{
	static char buf[1 << 16];
	long long begun;

	(void)arg;
	pthread_barrier_wait(&start);
	begun = now_ns();
	for (long i = 0; i < n; i++) {
		if (write(fd, buf, size) != size)
			return (void *)1;
		if (rate > 0 && (i & 255) == 255) {
			long long due = begun + (long long)((i + 1) / rate * 1e9), t = now_ns();

			if (due > t) {
				struct timespec ts = {(due - t) / 1000000000LL, (due - t) % 1000000000LL};

				nanosleep(&ts, NULL);
			}
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 4 && argc != 5)
		return 2;
	int threads = atoi(argv[1]);
	n = atol(argv[2]);
	size = atol(argv[3]);
	rate = argc == 5 ? atof(argv[4]) : 0;
	if (threads < 1 || size < 0 || size > (1 << 16))
		return 2;
	fd = open("/dev/null", O_WRONLY);
	if (fd < 0)
		return 3;
	pthread_t tids[threads];
	pthread_barrier_init(&start, NULL, threads + 1);
	for (int i = 0; i < threads; i++)
		if (pthread_create(&tids[i], NULL, work, NULL))
			return 4;
	pthread_barrier_wait(&start);
	long long begun = now_ns();
	for (int i = 0; i < threads; i++) {
		void *ret;

		pthread_join(tids[i], &ret);
		if (ret)
			return 5;
	}
	printf("%lld %ld\n", now_ns() - begun, threads * n);
	return 0;
}
