/* A pid reused on purpose, as an attacker waits for one (issue 25, N11).
 *
 *   pid_reuse once               one write() of its pid to stdout, then exit (the traced process)
 *   pid_reuse hold MARKER        make no system call the tests trace; wait until killed
 *   pid_reuse as PID UID GID MARKER
 *                                (root) start "hold MARKER" as UID/GID with pid PID exactly
 *                                (clone3 with set_tid, retried while PID is still taken), print
 *                                that pid and wait for it; argv[0] must be an absolute path
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int start_as(char **argv)
{
	pid_t want = (pid_t)atol(argv[2]), pid = -1;
	uid_t uid = (uid_t)atol(argv[3]);
	gid_t gid = (gid_t)atol(argv[4]);
	struct clone_args args;
	int status;

	memset(&args, 0, sizeof(args));
	args.exit_signal = SIGCHLD;
	args.set_tid = (uint64_t)(uintptr_t)&want;
	args.set_tid_size = 1;
	for (int tries = 0; tries < 5000; tries++) { /* the traced process may not be reaped yet */
		pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
		if (pid >= 0 || errno != EEXIST)
			break;
		usleep(1000);
	}
	if (pid < 0) {
		perror("clone3");
		return 2;
	}
	if (pid == 0) {
		char *hold[] = {argv[0], "hold", argv[5], NULL};

		if (setgroups(0, NULL) || setgid(gid) || setuid(uid))
			_exit(3);
		execv(argv[0], hold);
		_exit(4);
	}
	printf("%d\n", pid);
	fflush(stdout);
	if (waitpid(pid, &status, 0) != pid)
		return 5;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "once")) {
		printf("%d\n", getpid());
		return fflush(stdout) ? 1 : 0;
	}
	if (argc == 3 && !strcmp(argv[1], "hold")) {
		pause();
		return 0;
	}
	if (argc == 6 && !strcmp(argv[1], "as"))
		return start_as(argv);
	return 2;
}
