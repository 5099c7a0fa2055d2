/* Buffered I/O on one file, then reading it back: fopen, 3 fwrite (one item of 11 bytes each),
 * fflush, fclose, fopen, fgets to the end, fread, fclose. Usage: stdio_files PATH. Prints its pid (to stdout: not PATH). */
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char line[64];
	FILE *f;

	if (argc != 2)
		return 64;
	printf("%d\n", getpid());
	fflush(stdout);
	if (!(f = fopen(argv[1], "w")))
		return 1;
	for (int i = 0; i < 3; i++)
		if (fwrite("stdio line\n", 11, 1, f) != 1) /* one item of 11 bytes */
			return 2;
	if (fflush(f) || fclose(f))
		return 3;
	if (!(f = fopen(argv[1], "r")))
		return 4;
	while (fgets(line, sizeof line, f))
		;
	if (fread(line, 1, 1, f) != 0 || fclose(f))
		return 5;
	return 0;
}
