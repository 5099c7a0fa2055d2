// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Functions: dc_func_enter/_exit attached to one function each (a perf-event uprobe/uretprobe
 * on user code where uprobe_multi is missing, a kprobe/kretprobe on kernel code: the same
 * program type), dc_umulti_enter/_exit to uprobe_multi links (6.6+: one per binary and
 * direction). The cookie says which function fired and how to read its arguments.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "dc_arch.h"
#include "dc_task.h"
#include "dc_files.h"
#include "dc_valve.h"

/* The fd of a C-library call's FILE * (its _fileno) or fd argument, read at entry (fclose frees
 * the FILE); -1 when the function has neither, or the FILE is unreadable. */
static __always_inline __s64 dc_func_fd(__u64 cookie, __u64 *args)
{
	__u32 file_arg = DC_FUNC_FILE_ARG(cookie), fd_arg = DC_FUNC_FD_ARG(cookie);
	int fd = -1;

	if (file_arg && file_arg <= DC_MAX_ARGS) {
		if (bpf_probe_read_user(&fd, sizeof(fd),
					(const void *)(args[dc_arg_index(file_arg)] + DC_GLIBC_FILENO_OFFSET)))
			fd = -1;
	} else if (fd_arg && fd_arg <= DC_MAX_ARGS) {
		fd = (int)args[dc_arg_index(fd_arg)];
	}
	return fd;
}

/* The file of a C-library call, at its exit: the file it opened (fopen's FILE *, open's fd),
 * else its path argument, else its fd's (named at entry). */
static __always_inline __u64 dc_func_file(struct dc_inflight *in, long ret, __u32 pid, __u32 tid,
					  __u32 tgid)
{
	__u32 path_arg = DC_FUNC_PATH_ARG(in->cookie);
	int fd = -1;

	if ((in->cookie & DC_FUNC_RET_FILE) && ret) {
		if (bpf_probe_read_user(&fd, sizeof(fd), (const void *)(ret + DC_GLIBC_FILENO_OFFSET)))
			fd = -1;
	} else if ((in->cookie & DC_FUNC_RET_FD) && ret >= 0) {
		fd = (int)ret;
	}
	if (fd >= 0)
		return dc_fd_name(tgid, fd, pid, tid);
	if (path_arg && path_arg <= DC_MAX_ARGS)
		return dc_path_name(in->args[dc_arg_index(path_arg)], DC_AT_FDCWD, pid, tid);
	return in->fhash;
}

/* A function's entry, with its cookie and its six argument registers. */
static __always_inline int dc_func_begin(__u64 cookie, __u64 *regs)
{
	struct dc_inflight in = {};
	struct dc_inflight *outer;
	struct dc_thread *th;
	struct dc_ukey key;
	__s64 fd;
	__u32 fid = DC_COOKIE_FID(cookie);
	__u64 *hits = bpf_map_lookup_elem(&dc_func_hits, &fid);

	if (hits)
		*hits += 1; /* per-CPU slot: no atomics needed */
	if (!dc_wanted())
		return 0;
	key.pid_tgid = bpf_get_current_pid_tgid();
	key.cookie = cookie;
	/* A call inside a call of the same function on this thread (recursion, a signal handler):
	 * the outer call keeps the one in-flight slot and is recorded whole; the inner ones are
	 * counted as lost, never recorded with the outer call's start. Only this thread uses the
	 * key, so the depth needs no atomics. */
	outer = bpf_map_lookup_elem(&dc_func_inflight, &key);
	if (outer) {
		outer->depth += 1;
		dc_count_lost(DC_LOST_NESTED);
		return 0;
	}
	in.cookie = cookie;
	for (int i = 0; i < DC_MAX_ARGS; i++)
		in.args[i] = regs[i];
	/* Pointer arguments: capture up to 8 bytes they point to, at entry. */
	for (int i = 0; i < DC_MAX_ARGS; i++) {
		if (DC_UPROBE_IS_PTR(cookie, i)) {
			__u64 v = 0;
			__u32 size = DC_UPROBE_PTR_SIZE(cookie, i);

			if (bpf_probe_read_user(&v, size, (const void *)in.args[i]))
				v = 0;
			in.args[i] = v;
		}
	}
	fd = dc_func_fd(cookie, in.args);
	if (fd >= 0) { /* named now: fclose and close release it by the exit */
		th = dc_thread(true);
		if (th) {
			dc_ids(th, key.pid_tgid);
			in.fhash = dc_fd_name(key.pid_tgid >> 32, fd, th->pid, th->tid);
		}
	}
	in.ts = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&dc_func_inflight, &key, &in, BPF_ANY))
		dc_count_lost(DC_LOST_INFLIGHT);
	return 0;
}

/* A function's return, with its cookie and its return register. */
static __always_inline int dc_func_end(__u64 cookie, __u64 rc)
{
	struct dc_ukey key = {.pid_tgid = bpf_get_current_pid_tgid(), .cookie = cookie};
	struct dc_inflight *in = bpf_map_lookup_elem(&dc_func_inflight, &key);
	struct dc_thread *th;
	struct dc_call *e;
	__u64 now, fhash;
	__u32 fid, go;
	__s64 ret;
	void *ring;

	if (!in)
		return 0;
	now = bpf_ktime_get_ns(); /* after the check, as in dc_sys_end */
	if (in->depth) { /* the return of a nested call: the outer one is still running */
		in->depth -= 1;
		return 0;
	}
	th = dc_thread(true);
	if (!th) {
		dc_count_lost(DC_LOST_INFLIGHT);
		bpf_map_delete_elem(&dc_func_inflight, &key);
		return 0;
	}
	dc_ids(th, key.pid_tgid);
	ret = key.cookie & DC_FUNC_NO_RET ? 0 : rc;
	if (key.cookie & DC_FUNC_RET_ITEMS)
		ret *= (__s64)in->args[1];
	fhash = dc_func_file(in, rc, th->pid, th->tid, key.pid_tgid >> 32);
	fid = DC_COOKIE_FID(key.cookie);
	ring = dc_cfg.profile ? NULL : dc_ring(th);
	e = dc_call_reserve(ring, fid, now, &go);
	if (!e) {
		dc_call_fold(go, th, fid, th->pid, th->tid, fhash, 0, now, now - in->ts, ret,
			     in->args);
		bpf_map_delete_elem(&dc_func_inflight, &key);
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
	e->fhash = fhash;
	for (int i = 0; i < DC_MAX_ARGS; i++)
		e->args[i] = in->args[i];
	bpf_map_delete_elem(&dc_func_inflight, &key);
	dc_describe_task(th);
	bpf_ringbuf_submit(e, dc_wakeup_flags(ring));
	return 0;
}

/* A uprobe's or kprobe's entry and return: the six argument registers, the return register. */
static __always_inline int dc_regs_begin(struct pt_regs *ctx)
{
	__u64 regs[DC_MAX_ARGS] = {PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM3(ctx),
				   PT_REGS_PARM4(ctx), PT_REGS_PARM5(ctx), DC_PT_REGS_PARM6(ctx)};

	return dc_func_begin(bpf_get_attach_cookie(ctx), regs);
}

static __always_inline int dc_regs_end(struct pt_regs *ctx)
{
	return dc_func_end(bpf_get_attach_cookie(ctx), PT_REGS_RC(ctx));
}

SEC("uprobe")
int dc_func_enter(struct pt_regs *ctx)
{
	return dc_regs_begin(ctx);
}

SEC("uretprobe")
int dc_func_exit(struct pt_regs *ctx)
{
	return dc_regs_end(ctx);
}

/* The same bodies for uprobe_multi links: user space loads these two with expected attach type
 * BPF_TRACE_UPROBE_MULTI (libbpf 1.1 has no section name for it); bpf_get_attach_cookie then
 * reads the cookie of the offset that fired (6.6+). */
SEC("uprobe")
int dc_umulti_enter(struct pt_regs *ctx)
{
	return dc_regs_begin(ctx);
}

SEC("uretprobe")
int dc_umulti_exit(struct pt_regs *ctx)
{
	return dc_regs_end(ctx);
}

/* Kernel functions through BPF trampolines (fentry/fexit, 5.5+; these read their arguments
 * and return value with bpf_get_func_arg/ret, 5.17+, and their cookie, 6.0+): a direct call
 * from the function's first instruction, where a kprobe takes an ftrace or int3 detour. An
 * fentry program is bound to one function when it is loaded, so user space loads this pair
 * once per kernel function, sharing this object's maps (ebpf/attach_kprobes.py); the main load
 * leaves them out. A missing argument reads as 0. */
SEC("fentry")
int dc_kfunc_enter(__u64 *ctx)
{
	__u64 regs[DC_MAX_ARGS] = {};

	for (int i = 0; i < DC_MAX_ARGS; i++)
		if (bpf_get_func_arg(ctx, i, &regs[i]))
			regs[i] = 0;
	return dc_func_begin(bpf_get_attach_cookie(ctx), regs);
}

SEC("fexit")
int dc_kfunc_exit(__u64 *ctx)
{
	__u64 rc = 0;

	if (bpf_get_func_ret(ctx, &rc))
		rc = 0;
	return dc_func_end(bpf_get_attach_cookie(ctx), rc);
}
