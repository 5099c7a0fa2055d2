/* The syscalls that name a file without a read or write layout (issue 26, M4), in DIR:
 * two-file copies (copy_file_range, sendfile, splice through a pipe, tee between pipes), space
 * and sync calls (fallocate, sync_file_range), times (utimensat by path, by dirfd and on an fd),
 * the working directory (chdir relative and absolute, fchdir), links (symlink, readlinkat) and
 * faccessat2. Prints "<pid>"; exits non-zero at the first call that fails.
 * Usage: file_calls DIR */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SIZE 65536

static char buf[SIZE];

int main(int argc, char **argv)
{
	int a, b, c, sub, p[2], q[2];
	char link[64];

	if (argc != 2 || chdir(argv[1]))
		return 2;
	memset(buf, 'x', sizeof(buf));
	a = open("a.bin", O_CREAT | O_RDWR | O_TRUNC, 0644);
	b = open("b.bin", O_CREAT | O_WRONLY | O_TRUNC, 0644);
	c = open("c.bin", O_CREAT | O_WRONLY | O_TRUNC, 0644);
	if (a < 0 || b < 0 || c < 0 || write(a, buf, SIZE) != SIZE)
		return 3;
	if (copy_file_range(a, &(loff_t){0}, b, NULL, SIZE, 0) != SIZE)
		return 4;
	if (sendfile(c, a, &(off_t){0}, SIZE) != SIZE)
		return 5;
	if (pipe(p) || pipe(q) || splice(a, &(loff_t){0}, p[1], NULL, 4096, 0) != 4096 ||
	    tee(p[0], q[1], 4096, 0) != 4096 || splice(p[0], NULL, c, NULL, 4096, 0) != 4096)
		return 6;
	if (fallocate(c, 0, 0, 4 * SIZE) || sync_file_range(c, 0, 0, SYNC_FILE_RANGE_WRITE))
		return 7;
	if (mkdir("sub", 0755) || chdir("sub") || chdir("..") ||
	    (sub = open("sub", O_RDONLY | O_DIRECTORY)) < 0 || fchdir(sub) || chdir(argv[1]))
		return 8;
	if (close(open("sub/x", O_CREAT | O_WRONLY, 0644)) ||
	    utimensat(AT_FDCWD, "a.bin", NULL, 0) || utimensat(sub, "x", NULL, 0) ||
	    futimens(c, NULL))
		return 9;
	if (symlink("a.bin", "link") || readlinkat(AT_FDCWD, "link", link, sizeof(link)) != 5 ||
	    syscall(SYS_faccessat2, AT_FDCWD, "a.bin", R_OK, AT_EACCESS))
		return 10;
	printf("%d\n", getpid());
	return 0;
}
