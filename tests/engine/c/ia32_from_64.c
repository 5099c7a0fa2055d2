/* A 64-bit process making ia32 syscalls (int $0x80) with the upper half of every register set:
 * the kernel reads only the low halves (and the number as an int, as it does for x86-64 ones).
 * Each path is passed as a pointer whose low 32 bits are the real name's address (a non-PIE
 * binary's data, below 4 GiB) and whose upper half is 1: at that address, mapped here, lies the
 * name of a decoy file. Calls, in order: open(DIR/real) for writing, write 5 bytes (the number's
 * upper half set as well), an x86-64 write (syscall) of 5 bytes whose number's upper half is
 * set, lseek(-2, SEEK_CUR), close, access(DIR/real), truncate(DIR/real, 3), rename(DIR/real,
 * DIR/real2), unlink(DIR/real2). Linked statically: no loader's calls. Usage: ia32_from_64 DIR.
 * Exit status 0 when every call did what it should. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define HI (1UL << 32)

static char real[256], real2[256];
static char data[] = "real\n";

static long int80(unsigned long nr, unsigned long a, unsigned long b, unsigned long c)
{
	long ret;

	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
	return (int)ret;
}

static long syscall64(unsigned long nr, unsigned long a, unsigned long b, unsigned long c)
{
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}

/* The address of name with its upper half set; the decoy's name is written there. */
static unsigned long decoy(char *name, const char *decoy_name)
{
	unsigned long addr = (unsigned long)name | HI;
	void *page = (void *)(addr & ~4095UL);

	if (mmap(page, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		 -1, 0) == MAP_FAILED && mprotect(page, 8192, PROT_READ | PROT_WRITE) != 0)
		return 0;
	strcpy((char *)addr, decoy_name);
	return addr;
}

int main(int argc, char **argv)
{
	char decoy1[256], decoy2[256];
	long fd;

	if (argc != 2 || (unsigned long)real >= HI)
		return 2;
	snprintf(real, sizeof(real), "%s/real", argv[1]);
	snprintf(real2, sizeof(real2), "%s/real2", argv[1]);
	snprintf(decoy1, sizeof(decoy1), "%s/decoy", argv[1]);
	snprintf(decoy2, sizeof(decoy2), "%s/decoy2", argv[1]);
	fd = int80(5 /* open */, decoy(real, decoy1), HI | O_WRONLY | O_CREAT | O_TRUNC, HI | 0644);
	if (fd < 0)
		return 3;
	if (int80(HI | 4 /* write */, HI | fd, HI | (unsigned long)data, HI | 5) != 5)
		return 4;
	if (syscall64(HI | 1 /* write */, fd, (unsigned long)data, 5) != 5)
		return 11;
	if (int80(19 /* lseek */, HI | fd, HI | (unsigned int)-2, HI | SEEK_CUR) != 8)
		return 5;
	if (int80(6 /* close */, HI | fd, 0, 0) != 0)
		return 6;
	if (int80(33 /* access */, decoy(real, decoy1), HI | F_OK, 0) != 0)
		return 7;
	if (int80(92 /* truncate */, decoy(real, decoy1), HI | 3, 0) != 0)
		return 8;
	if (int80(38 /* rename */, decoy(real, decoy1), decoy(real2, decoy2), 0) != 0)
		return 9;
	if (int80(10 /* unlink */, decoy(real2, decoy2), 0, 0) != 0)
		return 10;
	return 0;
}
