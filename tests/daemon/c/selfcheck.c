/* Prints the first byte of its own dc_target() as the process sees it (0xcc while a uprobe's
 * breakpoint sits there), then calls dc_target() N times. Usage: selfcheck N */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) int dc_target(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 1;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 0, sum = 0;
	volatile unsigned char *code = (volatile unsigned char *)&dc_target;

	printf("%02x\n", code[0]);
	fflush(stdout);
	for (int i = 0; i < n; i++)
		sum += dc_target(i);
	return sum == -1;
}
