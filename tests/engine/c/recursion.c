/* A recursive function, called CALLS times from main: dc_fact(DEPTH) recurses DEPTH - 1 times.
 * Built with -O0 so the recursion stays a real call. Usage: recursion CALLS DEPTH; prints pid. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((noinline)) long dc_fact(long n)
{
	return n <= 1 ? 1 : n * dc_fact(n - 1);
}

int main(int argc, char **argv)
{
	long calls = argc > 2 ? atol(argv[1]) : 1, depth = argc > 2 ? atol(argv[2]) : 1, sum = 0;

	for (long i = 0; i < calls; i++)
		sum += dc_fact(depth);
	printf("%d %ld\n", getpid(), sum);
	return 0;
}
