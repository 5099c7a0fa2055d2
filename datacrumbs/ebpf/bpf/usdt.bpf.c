// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * USDT probes: dc_usdt, attached by libbpf's bpf_program__attach_usdt (a perf-event uprobe at
 * each place of the probe, the semaphore counted by the kernel) to every probe of a probe
 * file's usdt categories. libbpf fills the argument specs (usdt.bpf.h's maps) that
 * bpf_usdt_arg reads: a register, memory at a register plus an offset, or a constant, sized
 * and signed as the note says. The USDT cookie is the function id. A hit is an instant: one
 * record with its arguments, no duration, no return value.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/* Specs are allocated per attachment, and the job's processes are attached one by one (each
 * takes one per probe): room for thousands. */
#define BPF_USDT_MAX_SPEC_CNT 4096
#include <bpf/usdt.bpf.h>

#include "dc_arch.h"
#include "dc_task.h"
#include "dc_valve.h"

SEC("usdt")
int dc_usdt(struct pt_regs *ctx)
{
	__u32 fid = DC_COOKIE_FID(bpf_usdt_cookie(ctx));
	__u64 *hits = bpf_map_lookup_elem(&dc_func_hits, &fid);
	__u64 args[DC_MAX_ARGS] = {}, now;
	struct dc_thread *th;
	struct dc_call *e;
	void *ring;
	__u32 go;
	int count;

	if (hits)
		*hits += 1; /* per-CPU slot: the trap budget counts USDT hits too */
	if (!dc_wanted())
		return 0;
	th = dc_thread(true);
	if (!th) {
		dc_count_lost(DC_LOST_INFLIGHT);
		return 0;
	}
	dc_ids(th, bpf_get_current_pid_tgid());
	now = bpf_ktime_get_ns();
	count = bpf_usdt_arg_cnt(ctx);
	for (int i = 0; i < DC_MAX_ARGS; i++) {
		long v = 0;

		if (i < count && bpf_usdt_arg(ctx, i, &v))
			v = 0;
		args[i] = v;
	}
	ring = dc_cfg.profile ? NULL : dc_ring(th);
	e = dc_call_reserve(ring, fid, now, &go);
	if (!e) {
		dc_call_fold(go, th, fid, th->pid, th->tid, 0, 0, now, 0, 0, args);
		if (go != DC_GO_LOST)
			dc_describe_task(th);
		return 0;
	}
	e->type = DC_REC_CALL;
	e->fid = fid;
	e->pid = th->pid;
	e->tid = th->tid;
	e->ts = now;
	e->dur = 0;
	e->ret = 0;
	e->fhash = 0;
	for (int i = 0; i < DC_MAX_ARGS; i++)
		e->args[i] = args[i];
	dc_describe_task(th);
	bpf_ringbuf_submit(e, dc_wakeup_flags(ring));
	return 0;
}
