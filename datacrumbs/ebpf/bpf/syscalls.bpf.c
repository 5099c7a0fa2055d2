// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Syscalls: dc_raw_sys_enter/_exit on the raw tracepoints (two links in all; the syscall
 * number indexes dc_syscall_cookies, 0 means untraced), or dc_sys_enter/_exit on each
 * syscalls:sys_enter_X / sys_exit_X tracepoint (syscall_mode "tracepoint").
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "dc_arch.h"
#include "dc_task.h"
#include "dc_files.h"
#include "dc_valve.h"

/* Syscall entry, after the cookie is known: filter, then remember the call in the thread's
 * storage. Returns the storage to fill the arguments into, NULL when not traced. */
static __always_inline struct dc_thread *dc_sys_begin(__u64 cookie)
{
	struct dc_thread *th;

	if (!dc_wanted())
		return NULL;
	th = dc_thread(true);
	if (!th) {
		dc_count_lost(DC_LOST_INFLIGHT);
		return NULL;
	}
	th->sys.cookie = cookie;
	return th;
}

/* The name hash of the current thread's fd: the one it had when the thread last used the fd
 * and its identity was the same (a loop of reads or writes on one file, a copy's two fds: the
 * same open file under the same path, dc_fd_ident), else from dc_fd_name_of, remembered in the
 * thread's oldest slot. The (process, fd) map's lookup is skipped. */
static __always_inline __u64 dc_thread_fd_name(struct dc_thread *th, __u32 tgid, __s64 fd)
{
	__u64 ident = dc_fd_ident(fd);
	__u32 slot;
	__u64 hash;

	if (!ident)
		return 0;
	if (!th->fds_known) {
		for (int i = 0; i < DC_FDS_SEEN; i++)
			th->fds[i].fd = -1;
		th->fds_known = 1;
	}
	for (int i = 0; i < DC_FDS_SEEN; i++) {
		if (th->fds[i].fd == fd && th->fds[i].ident == ident)
			return th->fds[i].hash;
	}
	hash = dc_fd_name_of(tgid, fd, ident, th->pid, th->tid);
	if (hash) {
		slot = th->fds_next % DC_FDS_SEEN;
		th->fds[slot].fd = fd;
		th->fds[slot].ident = ident;
		th->fds[slot].hash = hash;
		th->fds_next = slot + 1;
	}
	return hash;
}

/* Syscall entry, once the arguments are in: name the fd argument now, while it still holds
 * its file (close and dup2 release it by the exit); a two-file call's other fd too, its
 * name's hash written over it in its slot. */
static __always_inline void dc_sys_fd(struct dc_thread *th)
{
	__u32 fd_arg = DC_SYS_FD_ARG(th->sys.cookie);
	__u32 fd2_arg = DC_SYS_FD2_ARG(th->sys.cookie);
	__u64 id;

	th->sys.fhash = 0;
	if (!fd_arg || fd_arg > DC_MAX_ARGS)
		return;
	id = bpf_get_current_pid_tgid();
	dc_ids(th, id);
	th->sys.fhash = dc_thread_fd_name(th, id >> 32, (__s32)th->sys.args[dc_arg_index(fd_arg)]);
	if (fd2_arg && fd2_arg <= DC_MAX_ARGS)
		th->sys.args[dc_arg_index(fd2_arg)] =
			dc_thread_fd_name(th, id >> 32, (__s32)th->sys.args[dc_arg_index(fd2_arg)]);
}

/* The name hash of path argument path (index + 1) of a syscall: relative to the directory fd
 * before it in the *at calls, else to the working directory. */
static __always_inline __u64 dc_sys_path(struct dc_thread *th, __u32 path)
{
	__s64 dirfd = DC_AT_FDCWD;

	if (!path || path > DC_MAX_ARGS)
		return 0;
	if ((th->sys.cookie & DC_SYS_AT) && path >= 2)
		dirfd = (__s32)th->sys.args[dc_arg_index(path - 1)];
	return dc_path_name(th->sys.args[dc_arg_index(path)], dirfd, th->pid, th->tid);
}

/* Syscall exit: pair with the entry, name the files, emit the call record. */
static __always_inline int dc_sys_end(__u64 exit_cookie, long ret)
{
	struct dc_thread *th = dc_thread(false);
	struct dc_inflight *in;
	struct dc_call *e;
	__u64 now, id, cookie, fhash, hash1 = 0, hash2;
	__u32 fd_arg, fd2_arg, path1, path2, fid, go;
	void *ring;

	if (!th || !th->sys.ts)
		return 0;
	/* Read after the check: a process the filter left out pays no clock read (one costs
	 * 40-47 ns on these VMs: benchmarks/clock_cost.py) on its every traced syscall. */
	now = bpf_ktime_get_ns();
	in = &th->sys;
	cookie = in->cookie;
	if (DC_COOKIE_FID(cookie) != DC_COOKIE_FID(exit_cookie)) {
		/* entry of another syscall whose exit we missed: drop the stale entry */
		in->ts = 0;
		return 0;
	}
	id = bpf_get_current_pid_tgid();
	dc_ids(th, id);

	fd_arg = DC_SYS_FD_ARG(cookie);
	path1 = DC_SYS_PATH1(cookie);
	path2 = DC_SYS_PATH2(cookie);
	fhash = in->fhash; /* the fd argument's, named at entry */
	/* Paths are read at exit: the syscall itself has faulted their pages in. */
	hash2 = dc_sys_path(th, path2);
	if ((cookie & DC_SYS_RET_FD) && ret >= 0) {
		/* a new fd: the call is named by the file the kernel opened (links resolved) */
		fhash = dc_fd_name(id >> 32, ret, th->pid, th->tid);
	} else if ((cookie & DC_SYS_RET_CWD) && ret == 0) {
		/* the directory it went to: the working directory now (links resolved) */
		fhash = dc_cwd_name(th->pid, th->tid);
	} else {
		hash1 = dc_sys_path(th, path1);
		if (hash1) /* else an empty path: the file is the fd argument's (fstat) */
			fhash = hash1;
	}

	fid = DC_COOKIE_FID(cookie);
	ring = dc_cfg.profile ? NULL : dc_ring(th);
	e = dc_call_reserve(ring, fid, now, &go);
	if (!e) {
		fd2_arg = DC_SYS_FD2_ARG(cookie);
		if (fd2_arg && fd2_arg <= DC_MAX_ARGS)
			hash2 = in->args[dc_arg_index(fd2_arg)];
		dc_call_fold(go, th, fid, th->pid, th->tid, fhash, hash2, now, now - in->ts, ret,
			     in->args);
		in->ts = 0;
		if (go != DC_GO_LOST)
			dc_describe_task(th);
		return 0;
	}
	e->type = DC_REC_CALL;
	e->fid = fid;
	e->pid = th->pid;
	e->tid = th->tid;
	e->ts = in->ts;
	e->dur = now - in->ts;
	e->ret = ret;
	for (int i = 0; i < DC_MAX_ARGS; i++)
		e->args[i] = in->args[i];
	/* the fd as the int it is; raw path pointers replaced by the names' hashes */
	if (fd_arg && fd_arg <= DC_MAX_ARGS)
		e->args[dc_arg_index(fd_arg)] = (__s64)(__s32)in->args[dc_arg_index(fd_arg)];
	if (path2 && path2 <= DC_MAX_ARGS)
		e->args[dc_arg_index(path2)] = hash2;
	if (path1 && path1 <= DC_MAX_ARGS)
		e->args[dc_arg_index(path1)] = hash1;
	e->fhash = fhash;
	in->ts = 0;
	dc_describe_task(th);
	bpf_ringbuf_submit(e, dc_wakeup_flags(ring));
	return 0;
}

/* The cookie of syscall number nr in cookies (dc_syscall_cookies, or dc_compat_cookies for an
 * ia32 number), 0 when it is not traced. */
static __always_inline __u64 dc_cookie_of(void *cookies, __u64 nr)
{
	__u32 key = nr;
	__u64 *cookie;

	if (nr >= DC_MAX_SYSCALL_NR)
		return 0;
	cookie = bpf_map_lookup_elem(cookies, &key);
	return cookie ? *cookie : 0;
}

static __always_inline __u64 dc_syscall_cookie(__u64 nr, bool compat)
{
	return compat ? dc_cookie_of(&dc_compat_cookies, nr) : dc_cookie_of(&dc_syscall_cookies, nr);
}

/* A 32-bit compat syscall: its number is in the ia32 table, its arguments in other registers.
 * The syscall tracepoints skip these (the tracepoint mode cannot see 32-bit processes). */
static __always_inline bool dc_compat_syscall(void)
{
	struct task_struct *task = bpf_get_current_task_btf();

	return DC_COMPAT_SYSCALL(task);
}

/* Raw syscall entry (every syscall of every process): the untraced ones return after one
 * array load, before the uid filter. A 32-bit process's syscalls are looked up in the ia32
 * table and read from its registers. */
SEC("tp_btf/sys_enter")
int BPF_PROG(dc_raw_sys_enter, struct pt_regs *regs, long id)
{
	bool compat = dc_compat_syscall();
	__u64 cookie = dc_syscall_cookie(id, compat);
	struct dc_thread *th;

	if (!cookie)
		return 0;
	if (cookie & DC_SYS_COMPAT_UNTRACED) {
		if (dc_wanted())
			dc_count_lost(DC_LOST_COMPAT);
		return 0;
	}
	th = dc_sys_begin(cookie);
	if (!th)
		return 0;
	if (compat) /* as the kernel reads them, in the x86-64 syscall's layout */
		dc_ia32_syscall_args(regs, th->sys.args, cookie);
	else
		DC_SYSCALL_ARGS(regs, th->sys.args);
	dc_sys_fd(th);
	th->sys.ts = bpf_ktime_get_ns();
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(dc_raw_sys_exit, struct pt_regs *regs, long ret)
{
	__u64 cookie = dc_syscall_cookie(DC_SYSCALL_NR(regs), dc_compat_syscall());

	if (!cookie)
		return 0; /* untraced syscalls pay only the lookup */
	return dc_sys_end(cookie, ret);
}

SEC("tracepoint")
int dc_sys_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct dc_thread *th = dc_sys_begin(bpf_get_attach_cookie(ctx));

	if (!th)
		return 0;
	/* Copied, not read through ctx: a direct ctx read of args[5] makes the kernel refuse to
	 * attach the program to any syscall with fewer than six arguments (EACCES: the program's
	 * max ctx offset exceeds the event's size). The words past a syscall's last argument are
	 * unused (the per-CPU trace buffer is PERF_MAX_TRACE_SIZE bytes, so they are readable). */
	bpf_probe_read_kernel(th->sys.args, sizeof(th->sys.args), ctx->args);
	dc_sys_fd(th);
	th->sys.ts = bpf_ktime_get_ns();
	return 0;
}

SEC("tracepoint")
int dc_sys_exit(struct trace_event_raw_sys_exit *ctx)
{
	return dc_sys_end(bpf_get_attach_cookie(ctx), ctx->ret);
}
