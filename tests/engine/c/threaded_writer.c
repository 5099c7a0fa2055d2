/* THREADS threads at once, each opening DIR/thread-<i>.out and writing WRITES lines to it.
 * Usage: threaded_writer DIR THREADS WRITES. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *dir;
static long writes;

static void *work(void *arg)
{
	char path[4096];
	long i = (long)arg;

	snprintf(path, sizeof path, "%s/thread-%ld.out", dir, i);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return (void *)1;
	for (long n = 0; n < writes; n++)
		if (write(fd, "threaded\n", 9) != 9)
			return (void *)1;
	close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t threads[64];
	long count;
	void *failed;
	int status = 0;

	if (argc != 4)
		return 64;
	dir = argv[1];
	count = atol(argv[2]);
	writes = atol(argv[3]);
	if (count < 1 || count > 64)
		return 64;
	for (long i = 0; i < count; i++)
		if (pthread_create(&threads[i], NULL, work, (void *)i))
			return 1;
	for (long i = 0; i < count; i++) {
		pthread_join(threads[i], &failed);
		status |= failed != NULL;
	}
	return status;
}
