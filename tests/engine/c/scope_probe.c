/* A process that shows whether the kernel wrote a uprobe's breakpoint into its own memory:
 * it prints its pid and the first byte of dc_add's code as it sees it (0xcc is x86's int3),
 * then calls dc_add N times. With "fork", it forks first: the child prints its own pid, waits
 * for a line on stdin (the test lets it go once the tracer follows it) and calls dc_add N
 * times; the parent waits for it. With "threads", 4 threads each call dc_add N times. With
 * "thread-exec", a second thread execs "scope_probe N await" (the process keeps its pid, its
 * leader task is replaced); "await" waits (up to 10 s) for the breakpoint to appear in its own
 * code, and 0.2 s more (the first breakpoint is the exit link's), before its calls.
 * Usage: scope_probe N [fork|threads|thread-exec|await] */
#include <dlfcn.h>
#include <pthread.h>
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

static void *thread_calls(void *n)
{
	calls(*(long *)n);
	return NULL;
}

static char **exec_argv;

static void *thread_exec(void *unused)
{
	(void)unused;
	execv(exec_argv[0], exec_argv);
	_exit(5);
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
	if (argc > 2 && strcmp(argv[2], "thread-exec") == 0) {
		char *again[] = {argv[0], argv[1], "await", NULL};
		pthread_t thread;

		exec_argv = again;
		pthread_create(&thread, NULL, thread_exec, NULL);
		pthread_join(thread, NULL); /* never returns: the exec ends this program */
		return 6;
	}
	if (argc > 2 && strcmp(argv[2], "await") == 0) {
		for (int i = 0; i < 10000 && code[0] != 0xcc; i++)
			usleep(1000);
		usleep(200000);
	}
	printf("%d %02x\n", getpid(), code[0]);
	fflush(stdout);
	if (argc > 2 && strcmp(argv[2], "threads") == 0) {
		pthread_t threads[4];

		for (int i = 0; i < 4; i++)
			pthread_create(&threads[i], NULL, thread_calls, &n);
		for (int i = 0; i < 4; i++)
			pthread_join(threads[i], NULL);
		return 0;
	}
	calls(n);
	return 0;
}
