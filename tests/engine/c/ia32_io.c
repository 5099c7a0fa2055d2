/* A 32-bit (ia32) process without a C library, so that no 32-bit toolchain beyond gcc -m32 is
 * needed: open(PATH), 3 write()s of 5 bytes, one pwrite64 at offset 15, statx(fd, "",
 * AT_EMPTY_PATH) (32-bit glibc 2.36's fstat), mmap2 of its first page, msync(MS_SYNC), munmap,
 * close, exit; every call through int $0x80 with ia32 numbers. Usage: ia32_io PATH. */
static long sys5(long nr, long a, long b, long c, long d, long e)
{
	long ret;

	__asm__ volatile("int $0x80"
			 : "=a"(ret)
			 : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e)
			 : "memory");
	return ret;
}

static long arg6; /* at a fixed address: the push below moves the stack */

/* mmap2's sixth argument goes in ebp, the frame pointer: swapped in around the call */
static long sys6(long nr, long a, long b, long c, long d, long e, long f)
{
	long ret;

	arg6 = f;
	__asm__ volatile("push %%ebp\n\tmovl %7, %%ebp\n\tint $0x80\n\tpop %%ebp"
			 : "=a"(ret)
			 : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e), "m"(arg6)
			 : "memory");
	return ret;
}

__attribute__((force_align_arg_pointer)) void _start_c(long *stack)
{
	char **argv = (char **)(stack + 1);
	long fd = sys5(5 /* open */, (long)argv[1], 0x242 /* O_RDWR|O_CREAT|O_TRUNC */, 0644, 0, 0);
	long status = fd < 0;

	for (int i = 0; i < 3; i++)
		status |= sys5(4 /* write */, fd, (long)"ia32\n", 5, 0, 0) != 5;
	static char stx[256];
	long map;

	status |= sys5(181 /* pwrite64 */, fd, (long)"tail\n", 5, 15 /* offset low */, 0) != 5;
	status |= sys5(383 /* statx */, fd, (long)"", 0x1000 /* AT_EMPTY_PATH */, 0x200 /* SIZE */,
		       (long)stx) != 0;
	map = sys6(192 /* mmap2 */, 0, 4096, 3 /* PROT_READ|PROT_WRITE */, 1 /* MAP_SHARED */, fd,
		   0);
	status |= (unsigned long)map >= -4095UL;
	status |= sys5(144 /* msync */, map, 4096, 4 /* MS_SYNC */, 0, 0) != 0;
	status |= sys5(91 /* munmap */, map, 4096, 0, 0, 0) != 0;
	status |= sys5(6 /* close */, fd, 0, 0, 0, 0) != 0;
	sys5(1 /* exit */, status, 0, 0, 0, 0);
	for (;;)
		;
}

__asm__(".globl _start\n_start:\n\tmovl %esp, %eax\n\tpushl %eax\n\tcall _start_c\n");
