/* Calls the dcdemo library a known number of times with known arguments:
 * dc_add(-i, 3 * i) for i in 0..9, dc_scale(1000 * i) for i in 0..4, dc_peek(&v) with v = 41.
 * Prints its pid. */
#include <stdio.h>
#include <unistd.h>

int dc_add(int a, int b);
long dc_scale(long x);
int dc_peek(const int *p);

int main(void)
{
	long total = 0;
	int v = 41;

	for (int i = 0; i < 10; i++)
		total += dc_add(-i, 3 * i);
	for (long i = 0; i < 5; i++)
		total += dc_scale(1000 * i);
	total += dc_peek(&v);
	printf("%d %ld\n", getpid(), total);
	return 0;
}
