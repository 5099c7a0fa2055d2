/* A process that shows whether the kernel wrote a uprobe's breakpoint into its own memory:
 * it prints its pid and the first byte of dc_add's code as it sees it (0xcc is x86's int3),
 * then calls dc_add N times. With "fork", it forks first: the child prints its own pid, waits
 * for a line on stdin (the test lets it go once the tracer follows it) and calls dc_add N
 * times; the parent waits for it. Usage: scope_probe N [fork] */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int dc_add(int a, int b);

static int calls(long n)
{
	int total = 0;

	for (long i = 0; i < n; i++)
		total += dc_add((int)i, 1);
	return total;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1;
	const unsigned char *code = dlsym(RTLD_DEFAULT, "dc_add");
	char line[16];
	pid_t child;
	int status;

	if (!code)
		return 2;
	if (argc > 2 && strcmp(argv[2], "fork") == 0) {
		fflush(stdout);
		child = fork();
		if (child == 0) {
			printf("%d\n", getpid());
			fflush(stdout);
			if (!fgets(line, sizeof(line), stdin))
				return 3;
			calls(n);
			return 0;
		}
		waitpid(child, &status, 0);
		return WIFEXITED(status) ? WEXITSTATUS(status) : 4;
	}
	printf("%d %02x\n", getpid(), code[0]);
	fflush(stdout);
	calls(n);
	return 0;
}
