/* Opens and closes /dev/null with stdio N times, then prints its pid. Usage: stdio_loop N */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1;
	for (long i = 0; i < n; i++) {
		FILE *f = fopen("/dev/null", "r");
		if (!f || fclose(f))
			return 3;
	}
	printf("%d\n", getpid());
	return 0;
}
