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
/* ia32 syscall arguments (a 32-bit process, or int $0x80): bx, cx, dx, si, di, bp. */
#define DC_COMPAT_SYSCALL_ARGS(regs, args)    \
	do {                                  \
		(args)[0] = (regs)->bx;       \
		(args)[1] = (regs)->cx;       \
		(args)[2] = (regs)->dx;       \
		(args)[3] = (regs)->si;       \
		(args)[4] = (regs)->di;       \
		(args)[5] = (regs)->bp;       \
	} while (0)
/* The syscall number, still there at exit. */
#define DC_SYSCALL_NR(regs) ((regs)->orig_ax)

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
