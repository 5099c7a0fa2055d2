/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What the BPF programs need to know of the CPU architecture, in one place: where a syscall's
 * arguments and number are in pt_regs, the sixth function argument, and how to tell a 32-bit
 * compat syscall. x86-64 is implemented; the user-space side is datacrumbs/ebpf/arch.py
 * (syscall numbers, symbol names). Another architecture stops the build here, with its name.
 */
#ifndef DC_ARCH_H
#define DC_ARCH_H

#if defined(__TARGET_ARCH_x86)

/* x86-64 syscall arguments: di, si, dx, r10, r8, r9 (not the function-call r10 -> cx). */
#define DC_SYSCALL_ARGS(regs, args)           \
	do {                                  \
		(args)[0] = (regs)->di;       \
		(args)[1] = (regs)->si;       \
		(args)[2] = (regs)->dx;       \
		(args)[3] = (regs)->r10;      \
		(args)[4] = (regs)->r8;       \
		(args)[5] = (regs)->r9;       \
	} while (0)
/* The syscall number, still there at exit: an int to the kernel (do_syscall_64's and
 * syscall_32_enter's nr), whatever the register's upper half holds. */
#define DC_SYSCALL_NR(regs) ((__u32)(regs)->orig_ax)

/* ia32 syscalls (a 32-bit process, or int $0x80 from a 64-bit one): the arguments are in bx,
 * cx, dx, si, di, bp, and the kernel reads only their low 32 bits (SC_IA32_REGS_TO_ARGS), so
 * a 64-bit process's upper halves are no part of the call. Their layout, by the cookie's bits
 * 46-48 (dc_compat_cookies only; datacrumbs/ebpf/arch.py, IA32_*), says how they become the
 * x86-64 syscall's: */
#define DC_IA32_LAYOUT(c) ((__u32)(((c) >> 46) & 7))
#define DC_IA32_SAME 0	 /* as they are */
#define DC_IA32_OFF1 1	 /* argument 1 is a compat_off_t: signed (lseek, truncate) */
#define DC_IA32_POS34 2	 /* a 64-bit position, low (3) and high (4): pread64, preadv(2) */
#define DC_IA32_LEN12 3	 /* a 64-bit length, low (1) and high (2): truncate64, ftruncate64 */
#define DC_IA32_LLSEEK 4 /* _llseek(fd, high, low, result, whence): lseek's (fd, offset, whence) */
#define DC_IA32_MMAP2 5	 /* mmap2: the offset (5) in 4096-byte pages */

static __always_inline void dc_ia32_syscall_args(struct pt_regs *regs, __u64 *args, __u64 cookie)
{
	args[0] = (__u32)regs->bx;
	args[1] = (__u32)regs->cx;
	args[2] = (__u32)regs->dx;
	args[3] = (__u32)regs->si;
	args[4] = (__u32)regs->di;
	args[5] = (__u32)regs->bp;
	switch (DC_IA32_LAYOUT(cookie)) {
	case DC_IA32_OFF1:
		args[1] = (__s64)(__s32)args[1];
		break;
	case DC_IA32_POS34:
		args[3] |= args[4] << 32;
		args[4] = 0;
		break;
	case DC_IA32_LEN12:
		args[1] |= args[2] << 32;
		args[2] = 0;
		break;
	case DC_IA32_LLSEEK:
		args[1] = args[1] << 32 | args[2];
		args[2] = args[4];
		args[3] = 0;
		args[4] = 0;
		break;
	case DC_IA32_MMAP2:
		args[5] <<= 12;
		break;
	}
}

/* libbpf 1.1's bpf_tracing.h stops at PT_REGS_PARM5 on x86-64; the sixth argument is r9. */
#ifdef PT_REGS_PARM6
#define DC_PT_REGS_PARM6(x) PT_REGS_PARM6(x)
#else
#define DC_PT_REGS_PARM6(x) ((x)->r9)
#endif

/* thread_info.status bit of a task in a 32-bit syscall (arch/x86/include/asm/thread_info.h):
 * its number means another syscall in the x86-64 table. */
#define DC_TS_COMPAT 0x0002
#define DC_COMPAT_SYSCALL(task) ((task)->thread_info.status & DC_TS_COMPAT)

/* glibc's struct _IO_FILE on x86-64: _fileno after _flags and 13 pointers (a stable ABI;
 * tests/engine/test_stdio_files.py compiles offsetof(FILE, _fileno) to check it). */
#define DC_GLIBC_FILENO_OFFSET 112

#else
#error "datacrumbs: only x86-64 is implemented (see dc_arch.h and datacrumbs/ebpf/arch.py)"
#endif

#endif /* DC_ARCH_H */
