/* Rounds of io_uring writes, each round on a ring of its own that is torn down at its end (its
 * requests go back to the kernel's allocator, for another ring to take). A round submits two
 * batches on its ring (the second reuses the first's requests): REQS writes of SIZE bytes, then
 * one more write of SIZE bytes, all linked (each starts when the one before is done); with
 * "skip", the REQS writes carry IOSQE_CQE_SKIP_SUCCESS (no completion is posted for them) and
 * only the last one of each batch completes; with "plain", every write completes and is waited
 * for. Usage: uring_rounds PATH ROUNDS REQS SIZE skip|plain. Prints its pid. */
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	struct io_uring ring;
	int fd, rounds, reqs, size, skip, expect;
	unsigned long long off = 0;
	char *buf;

	if (argc != 6)
		return 2;
	rounds = atoi(argv[2]);
	reqs = atoi(argv[3]);
	size = atoi(argv[4]);
	skip = strcmp(argv[5], "skip") == 0;
	buf = malloc(size);
	memset(buf, 'k', size);
	fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return 1;
	for (int r = 0; r < rounds; r++) {
		if (io_uring_queue_init(2 * (reqs + 1), &ring, 0) != 0)
			return 3;
		for (int batch = 0; batch < 2; batch++) {
			for (int i = 0; i <= reqs; i++, off += size) {
				sqe = io_uring_get_sqe(&ring);
				io_uring_prep_write(sqe, fd, buf, size, off);
				if (i < reqs && skip)
					sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
				if (i < reqs)
					sqe->flags |= IOSQE_IO_LINK;
			}
			expect = skip ? 1 : reqs + 1;
			if (io_uring_submit_and_wait(&ring, expect) != reqs + 1)
				return 4;
			for (int i = 0; i < expect; i++) {
				if (io_uring_wait_cqe(&ring, &cqe) != 0 || cqe->res != size)
					return 5;
				io_uring_cqe_seen(&ring, cqe);
			}
			if (io_uring_peek_cqe(&ring, &cqe) == 0)
				return 6; /* a skipped write posted a completion */
		}
		io_uring_queue_exit(&ring);
	}
	close(fd);
	printf("%d\n", getpid());
	return 0;
}
