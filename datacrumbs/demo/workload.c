/* The demo's built-in I/O workload: a small, exactly countable job.
 *
 * Usage: dcdemo_io DIR FILES WRITES BLOCK LINES
 *
 * For each of FILES files DIR/data-<i>.bin: open (created, truncated), WRITES write()s of BLOCK
 * bytes, fsync, lseek to 0, WRITES read()s of BLOCK bytes, close. Then WRITES pread()s of
 * BLOCK bytes at offsets going backwards through DIR/data-0.bin. Then libc stdio on
 * DIR/notes.txt: fopen, LINES fprintf+fflush (one write() each), fclose; fopen, fgets to the
 * end, fclose. So the write() calls of this process are exactly FILES*WRITES + LINES.
 *
 * It prints nothing on success (a print would be one more write); on failure it names the
 * step on stderr and exits non-zero.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fail(const char *what, const char *path)
{
	fprintf(stderr, "dcdemo_io: %s failed on %s\n", what, path);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: %s DIR FILES WRITES BLOCK LINES\n", argv[0]);
		return 2;
	}
	const char *dir = argv[1];
	long files = atol(argv[2]), writes = atol(argv[3]), block = atol(argv[4]);
	long lines = atol(argv[5]);
	char path[4096], line[256];
	char *buf = malloc(block);
	if (buf == NULL)
		return 1;

	for (long f = 0; f < files; f++) {
		snprintf(path, sizeof(path), "%s/data-%ld.bin", dir, f);
		memset(buf, 'a' + (int)(f % 26), block);
		int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
		if (fd < 0)
			return fail("open", path);
		for (long i = 0; i < writes; i++)
			if (write(fd, buf, block) != block)
				return fail("write", path);
		if (fsync(fd) || lseek(fd, 0, SEEK_SET) != 0)
			return fail("fsync/lseek", path);
		for (long i = 0; i < writes; i++)
			if (read(fd, buf, block) != block)
				return fail("read", path);
		if (close(fd))
			return fail("close", path);
	}

	snprintf(path, sizeof(path), "%s/data-0.bin", dir);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return fail("open", path);
	for (long i = writes - 1; i >= 0; i--)
		if (pread(fd, buf, block, i * block) != block)
			return fail("pread", path);
	close(fd);

	snprintf(path, sizeof(path), "%s/notes.txt", dir);
	FILE *out = fopen(path, "w");
	if (out == NULL)
		return fail("fopen", path);
	for (long i = 0; i < lines; i++) {
		fprintf(out, "line %ld of the datacrumbs demo\n", i);
		if (fflush(out))
			return fail("fflush", path);
	}
	if (fclose(out))
		return fail("fclose", path);
	FILE *in = fopen(path, "r");
	if (in == NULL)
		return fail("fopen", path);
	long seen = 0;
	while (fgets(line, sizeof(line), in) != NULL)
		seen++;
	fclose(in);
	return seen == lines ? 0 : fail("fgets", path);
}
