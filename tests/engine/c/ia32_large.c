/* A 32-bit (ia32) process, without a C library (gcc -m32 is all it needs), whose calls take the
 * 64-bit offsets and lengths split over two registers, past 4 GiB (a sparse file), and a small
 * signed one; every call through int $0x80 with ia32 numbers. In order: open(PATH, O_RDWR |
 * O_CREAT | O_TRUNC | O_LARGEFILE), write 5 bytes, lseek(-2, SEEK_CUR), ftruncate64(5 GiB + 3),
 * pwrite64 6 bytes at 4 GiB + 7, _llseek(4 GiB + 7, SEEK_SET), pread64 6 bytes at 4 GiB + 7,
 * pwritev one 6-byte vector at 4 GiB + 100, mmap2 one page at page 2^20 + 1 (4 GiB + 4096),
 * the old mmap (its arguments in memory), truncate64(PATH, 6 GiB + 9), close. Usage:
 * ia32_large PATH. Exit status 0 when every call did what it should. */
struct iovec32 {
	unsigned int base, len;
};

static long arg6; /* at a fixed address: the push below moves the stack */

static long sys6(long nr, long a, long b, long c, long d, long e, long f)
{
	long ret;

	arg6 = f; /* ebp is the frame pointer: swapped in around the call */
	__asm__ volatile("push %%ebp\n\tmovl %7, %%ebp\n\tint $0x80\n\tpop %%ebp"
			 : "=a"(ret)
			 : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e), "m"(arg6)
			 : "memory");
	return ret;
}

#define GIB 0x40000000UL

__attribute__((force_align_arg_pointer)) void _start_c(long *stack)
{
	char **argv = (char **)(stack + 1);
	static char buf[8];
	static struct iovec32 iov = {0, 6};
	static long old_mmap[6] = {0, 4096, 1 /* PROT_READ */, 1 /* MAP_SHARED */, 0, 0};
	unsigned long long result = 0;
	long fd, status = 0;

	fd = sys6(5 /* open */, (long)argv[1], 0101102 /* O_RDWR|O_CREAT|O_TRUNC|O_LARGEFILE */,
		  0644, 0, 0, 0);
	status |= fd < 0;
	status |= (sys6(4 /* write */, fd, (long)"ia32\n", 5, 0, 0, 0) != 5) << 1;
	status |= (sys6(19 /* lseek */, fd, -2, 1 /* SEEK_CUR */, 0, 0, 0) != 3) << 2;
	status |= (sys6(194 /* ftruncate64 */, fd, GIB + 3, 1, 0, 0, 0) != 0) << 3;
	status |= (sys6(181 /* pwrite64 */, fd, (long)"large\n", 6, 7, 1, 0) != 6) << 4;
	status |= (sys6(140 /* _llseek */, fd, 1, 7, (long)&result, 0 /* SEEK_SET */, 0) != 0 ||
		   result != 4ULL * GIB + 7) << 5;
	status |= (sys6(180 /* pread64 */, fd, (long)buf, 6, 7, 1, 0) != 6 || buf[0] != 'l') << 6;
	iov.base = (unsigned int)"vector";
	status |= (sys6(334 /* pwritev */, fd, (long)&iov, 1, 100, 1, 0) != 6) << 7;
	status |= ((unsigned long)sys6(192 /* mmap2 */, 0, 4096, 1 /* PROT_READ */,
				       1 /* MAP_SHARED */, fd, (1 << 20) + 1) > -4096UL) << 8;
	old_mmap[4] = fd;
	status |= ((unsigned long)sys6(90 /* mmap */, (long)old_mmap, 0, 0, 0, 0, 0) > -4096UL) << 9;
	status |= (sys6(193 /* truncate64 */, (long)argv[1], 2 * GIB + 9, 1, 0, 0, 0) != 0) << 10;
	status |= (sys6(6 /* close */, fd, 0, 0, 0, 0, 0) != 0) << 11;
	sys6(1 /* exit */, status ? 1 : 0, 0, 0, 0, 0, 0);
	for (;;)
		;
}

__asm__(".globl _start\n_start:\n\tmovl %esp, %eax\n\tpushl %eax\n\tcall _start_c\n");
