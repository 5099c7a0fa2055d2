/* A 32-bit (ia32) process without a C library, so that no 32-bit toolchain beyond gcc -m32 is
 * needed: open(PATH), 3 write()s of 5 bytes, one pwrite64 (split 64-bit offset: counted, not
 * read), close, exit; every call through int $0x80 with ia32 numbers. Usage: ia32_io PATH. */
static long sys5(long nr, long a, long b, long c, long d, long e)
{
	long ret;

	__asm__ volatile("int $0x80"
			 : "=a"(ret)
			 : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e)
			 : "memory");
	return ret;
}

__attribute__((force_align_arg_pointer)) void _start_c(long *stack)
{
	char **argv = (char **)(stack + 1);
	long fd = sys5(5 /* open */, (long)argv[1], 0x241 /* O_WRONLY|O_CREAT|O_TRUNC */, 0644, 0, 0);
	long status = fd < 0;

	for (int i = 0; i < 3; i++)
		status |= sys5(4 /* write */, fd, (long)"ia32\n", 5, 0, 0) != 5;
	status |= sys5(181 /* pwrite64 */, fd, (long)"tail\n", 5, 15 /* offset low */, 0) != 5;
	status |= sys5(6 /* close */, fd, 0, 0, 0, 0) != 0;
	sys5(1 /* exit */, status, 0, 0, 0, 0);
	for (;;)
		;
}

__asm__(".globl _start\n_start:\n\tmovl %esp, %eax\n\tpushl %eax\n\tcall _start_c\n");
