/* Prints the first byte of its own dc_target() as the process sees it (0xcc while a uprobe's
 * breakpoint sits there), then calls dc_target() N times. With "wait", it first waits (up to
 * 10 s) for the breakpoint to appear: a process entering a job gets its uprobes a few
 * milliseconds after it starts. Usage: selfcheck N [wait] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((noinline)) int dc_target(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 1;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 0, sum = 0;
	volatile unsigned char *code = (volatile unsigned char *)&dc_target;

	if (argc > 2 && strcmp(argv[2], "wait") == 0)
		for (int i = 0; i < 10000 && code[0] != 0xcc; i++)
			usleep(1000);
	if (argc > 2 && strcmp(argv[2], "wait") == 0)
		usleep(200000); /* the breakpoint is the exit link's: the entry link comes next */
	printf("%02x\n", code[0]);
	fflush(stdout);
	for (int i = 0; i < n; i++)
		sum += dc_target(i);
	return sum == -1;
}
