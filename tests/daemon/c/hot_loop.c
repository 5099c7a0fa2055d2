/* A runaway workload: calls dc_hot() as fast as it can for S seconds, then dc_cold() 3 times,
 * and prints how many times it called dc_hot(). It first waits (up to 10 s) for dc_hot's
 * breakpoint to appear in its own code: a process entering a job gets its uprobes a few
 * milliseconds after it starts. Usage: hot_loop S */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline)) int dc_hot(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 1;
}

__attribute__((noinline)) int dc_cold(int x)
{
	__asm__ volatile("" ::: "memory");
	return x - 1;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 1, start = now();
	volatile unsigned char *code = (volatile unsigned char *)&dc_hot;
	long calls = 0;
	int v = 0;

	for (int i = 0; i < 10000 && code[0] != 0xcc; i++)
		usleep(1000);
	usleep(200000); /* the breakpoint is the exit link's: the entry link comes next */
	start = now();
	while (now() - start < seconds) {
		for (int i = 0; i < 1000; i++)
			v = dc_hot(v);
		calls += 1000;
	}
	for (int i = 0; i < 3; i++)
		v = dc_cold(v);
	printf("%ld\n", calls);
	return v == -1;
}
