/* io_uring I/O with liburing: N writes of S bytes at offsets i*S, an fsync, N reads of the same
 * blocks, one readv of two S-byte blocks, and one write through a registered (fixed) file, each
 * waited for before the next is submitted (so completions are in submission order).
 * Usage: uring_io PATH N S. Prints its pid. */
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static struct io_uring ring;

static int wait_one(void)
{
	struct io_uring_cqe *cqe;
	int res;

	if (io_uring_submit(&ring) != 1 || io_uring_wait_cqe(&ring, &cqe) != 0)
		exit(3);
	res = cqe->res;
	io_uring_cqe_seen(&ring, cqe);
	return res;
}

int main(int argc, char **argv)
{
	struct io_uring_sqe *sqe;
	struct iovec iov[2];
	char *buf;
	int fd, n, size;

	if (argc != 4)
		return 2;
	n = atoi(argv[2]);
	size = atoi(argv[3]);
	buf = calloc(2, size);
	memset(buf, 'u', 2 * size);
	fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || io_uring_queue_init(8, &ring, 0) != 0)
		return 1;
	for (int i = 0; i < n; i++) {
		sqe = io_uring_get_sqe(&ring);
		io_uring_prep_write(sqe, fd, buf, size, (unsigned long long)i * size);
		if (wait_one() != size)
			return 4;
	}
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_fsync(sqe, fd, 0);
	if (wait_one() != 0)
		return 5;
	for (int i = 0; i < n; i++) {
		sqe = io_uring_get_sqe(&ring);
		io_uring_prep_read(sqe, fd, buf, size, (unsigned long long)i * size);
		if (wait_one() != size)
			return 6;
	}
	iov[0].iov_base = buf;
	iov[1].iov_base = buf + size;
	iov[0].iov_len = iov[1].iov_len = size;
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_readv(sqe, fd, iov, 2, 0);
	if (wait_one() != 2 * size)
		return 7;
	if (io_uring_register_files(&ring, &fd, 1) != 0)
		return 8;
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_write(sqe, 0, buf, size, (unsigned long long)n * size);
	sqe->flags |= IOSQE_FIXED_FILE;
	if (wait_one() != size)
		return 9;
	io_uring_queue_exit(&ring);
	close(fd);
	printf("%d\n", getpid());
	return 0;
}
