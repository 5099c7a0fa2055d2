// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * File names: what the entry files call (files.bpf.c has the functions and how names are made).
 *
 * dc_fd_ident, dc_fd_name, dc_file_name, dc_path_name, dc_cwd_name and dc_name_emit (which
 * they call) are global functions (not static): the verifier checks each once, on its own,
 * instead of again at every call in every program (which took dc_raw_sys_exit and
 * dc_func_enter past the 1 M-instruction limit on 6.1). The price of that: only scalars cross
 * their boundary, so each finds its scratch space itself.
 */
#ifndef DC_FILES_H
#define DC_FILES_H

#include "dc_maps.h"

#define DC_AT_FDCWD (-100)

/* What the current task's fd names, as a number (0 when it holds no file): equal on two calls
 * only while the fd holds the same open file under the same path (files.bpf.c says how). */
__u64 dc_fd_ident(__s64 fd);
/* The name hash of the current task's fd (0 when it holds no file). */
__u64 dc_fd_name(__u32 tgid, __s64 fd, __u32 pid, __u32 tid);
/* The same, for a caller that has the fd's dc_fd_ident already (non-zero). */
__u64 dc_fd_name_of(__u32 tgid, __s64 fd, __u64 ident, __u32 pid, __u32 tid);
/* The name hash of a user path argument, relative to dirfd (DC_AT_FDCWD: the working
 * directory); 0 when unreadable or "". */
__u64 dc_path_name(__u64 upath, __s64 dirfd, __u32 pid, __u32 tid);
/* The name hash of an open file (a struct file's address) that process tgid reaches through
 * slot, remembered per (tgid, slot) as an fd's name is: an io_uring request's registered file,
 * slot DC_FIXED_SLOT | its index (no fd has the high bit). */
#define DC_FIXED_SLOT 0x80000000U
__u64 dc_file_name(__u32 tgid, __u32 slot, __u64 file, __u32 pid, __u32 tid);
/* The name hash of the current task's working directory. */
__u64 dc_cwd_name(__u32 pid, __u32 tid);

/* The file the current task's fd table holds at fd, NULL when none. The task's fields are read
 * directly through its BTF pointer (a load each, where BPF_CORE_READ costs a helper call); only
 * the array slot needs a checked read. */
static __always_inline struct file *dc_fd_file(__s64 fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct fdtable *fdt = task->files->fdt;
	struct file **fds;
	struct file *f = NULL;

	if (!fdt || fd < 0 || (__u64)fd >= fdt->max_fds)
		return NULL;
	fds = fdt->fd;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]))
		return NULL;
	return f;
}

#endif /* DC_FILES_H */
