/* Each MPI rank writes its own file: (rank + 1) * K blocks of S bytes with write(2), then
 * after a barrier reads it back with pread(2); prints "<rank> <pid>". */
#include <fcntl.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int rank;
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	if (argc != 4) {
		fprintf(stderr, "usage: mpi_io PREFIX K S\n");
		MPI_Abort(MPI_COMM_WORLD, 2);
	}
	long k = atol(argv[2]) * (rank + 1), s = atol(argv[3]);
	char path[4096], *buf = calloc(1, s);
	snprintf(path, sizeof(path), "%s-%d.bin", argv[1], rank);
	int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0644);
	if (fd < 0 || !buf)
		MPI_Abort(MPI_COMM_WORLD, 1);
	for (long i = 0; i < k; i++)
		if (write(fd, buf, s) != s)
			MPI_Abort(MPI_COMM_WORLD, 1);
	MPI_Barrier(MPI_COMM_WORLD);
	for (long i = 0; i < k; i++)
		if (pread(fd, buf, s, i * s) != s)
			MPI_Abort(MPI_COMM_WORLD, 1);
	close(fd);
	printf("%d %d\n", rank, (int)getpid());
	MPI_Finalize();
	return 0;
}
