/* io_uring I/O as a program does it: on each of FILES files, N writes of S bytes at offsets i*S
 * and then N reads of them, each request in turn a plain, a vectored, a fixed-buffer one
 * (WRITE/WRITEV/WRITE_FIXED, READ/READV/READ_FIXED) and a plain one through the file registered
 * with the ring (IOSQE_FIXED_FILE, as fio's registerfiles=1), submitted DEPTH at a time, with an fsync
 * between. It counts its own bytes from the completions, and prints its pid, then per file:
 * path, requests written, bytes written, requests read, bytes read.
 * Usage: uring_mix DIR FILES N S DEPTH. */
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static struct io_uring ring;

/* Submit what is queued and reap every completion: their results added to *bytes. */
static int reap(int queued, long long *bytes, int *count)
{
	struct io_uring_cqe *cqe;

	if (queued == 0)
		return 0;
	if (io_uring_submit_and_wait(&ring, queued) != queued)
		return -1;
	for (int i = 0; i < queued; i++) {
		if (io_uring_wait_cqe(&ring, &cqe) != 0 || cqe->res < 0)
			return -1;
		*bytes += cqe->res;
		*count += 1;
		io_uring_cqe_seen(&ring, cqe);
	}
	return 0;
}

static int pass(int fd, int write, int n, int size, int depth, char *buf, struct iovec *iovs,
		long long *bytes, int *count)
{
	struct io_uring_sqe *sqe;
	int queued = 0;

	for (int i = 0; i < n; i++) {
		unsigned long long off = (unsigned long long)i * size;
		char *block = buf + (size_t)(i % depth) * size;

		sqe = io_uring_get_sqe(&ring);
		iovs[i % depth].iov_base = block;
		iovs[i % depth].iov_len = size;
		switch (i % 4) {
		case 0:
			if (write)
				io_uring_prep_write(sqe, fd, block, size, off);
			else
				io_uring_prep_read(sqe, fd, block, size, off);
			break;
		case 1:
			if (write)
				io_uring_prep_writev(sqe, fd, &iovs[i % depth], 1, off);
			else
				io_uring_prep_readv(sqe, fd, &iovs[i % depth], 1, off);
			break;
		case 2:
			if (write)
				io_uring_prep_write_fixed(sqe, fd, block, size, off, 0);
			else
				io_uring_prep_read_fixed(sqe, fd, block, size, off, 0);
			break;
		default: /* the registered file, by its index 0 */
			if (write)
				io_uring_prep_write(sqe, 0, block, size, off);
			else
				io_uring_prep_read(sqe, 0, block, size, off);
			sqe->flags |= IOSQE_FIXED_FILE;
		}
		if (++queued == depth) {
			if (reap(queued, bytes, count) != 0)
				return -1;
			queued = 0;
		}
	}
	return reap(queued, bytes, count);
}

int main(int argc, char **argv)
{
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	struct iovec whole, *iovs;
	int files, n, size, depth;
	char path[4096], *buf;

	if (argc != 6)
		return 2;
	files = atoi(argv[2]);
	n = atoi(argv[3]);
	size = atoi(argv[4]);
	depth = atoi(argv[5]);
	buf = malloc((size_t)depth * size);
	iovs = calloc(depth, sizeof(*iovs));
	memset(buf, 'm', (size_t)depth * size);
	if (io_uring_queue_init(depth, &ring, 0) != 0)
		return 3;
	whole.iov_base = buf;
	whole.iov_len = (size_t)depth * size;
	if (io_uring_register_buffers(&ring, &whole, 1) != 0 ||
	    io_uring_register_files_sparse(&ring, 1) != 0)
		return 4;
	printf("%d\n", getpid());
	for (int f = 0; f < files; f++) {
		long long written = 0, read = 0;
		int writes = 0, reads = 0, fd;

		snprintf(path, sizeof(path), "%s/mix-%d.bin", argv[1], f);
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || io_uring_register_files_update(&ring, 0, &fd, 1) != 1)
			return 1;
		if (pass(fd, 1, n, size, depth, buf, iovs, &written, &writes) != 0)
			return 5;
		sqe = io_uring_get_sqe(&ring);
		io_uring_prep_fsync(sqe, fd, 0);
		if (io_uring_submit_and_wait(&ring, 1) != 1 || io_uring_wait_cqe(&ring, &cqe) != 0 ||
		    cqe->res != 0)
			return 6;
		io_uring_cqe_seen(&ring, cqe);
		if (pass(fd, 0, n, size, depth, buf, iovs, &read, &reads) != 0)
			return 7;
		close(fd);
		printf("%s %d %lld %d %lld\n", path, writes, written, reads, read);
	}
	io_uring_queue_exit(&ring);
	return 0;
}
