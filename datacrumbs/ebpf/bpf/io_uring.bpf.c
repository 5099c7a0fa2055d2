// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * io_uring requests, from the io_uring tracepoints (the syscall io_uring_enter asks for them).
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "dc_arch.h"
#include "dc_task.h"
#include "dc_files.h"
#include "dc_profile.h"

/* io_uring requests (6.0+ tracepoints io_uring:io_uring_submit_req, named io_uring_submit_sqe
 * before 6.4, and io_uring_complete, one perf-event link each): the request's opcode, fd and
 * file, size and offset (reads and writes), result and latency from submission to completion.
 * The event's function id is the attach cookie (the first of the opcodes' ids, in opcode order)
 * plus the opcode. On kernels without these tracepoints the programs are never attached; the
 * CO-RE guards keep them loadable. */

/* The submit tracepoint's record under each of its names, as local CO-RE flavors (libbpf
 * matches "x___dc" with the kernel's "x"), so the object builds against either kernel's BTF
 * and one program reads both: the fields it uses are the same, but flags is 32 bits before
 * 6.4 and 64 after (only its low bit is read, little-endian). */
struct trace_event_raw_io_uring_submit_req___dc {
	void *req;
	__u8 opcode;
	__u32 flags;
} __attribute__((preserve_access_index));

struct trace_event_raw_io_uring_submit_sqe___dc {
	void *req;
	__u8 opcode;
	__u32 flags;
} __attribute__((preserve_access_index));

#define DC_URING_SUBMIT_READ(ctx, field)                                                  \
	(bpf_core_type_exists(struct trace_event_raw_io_uring_submit_req___dc)             \
		 ? BPF_CORE_READ((struct trace_event_raw_io_uring_submit_req___dc *)(ctx), field) \
		 : BPF_CORE_READ((struct trace_event_raw_io_uring_submit_sqe___dc *)(ctx), field))
#define DC_URING_OPS 256
static __always_inline bool dc_uring_rw(__u32 op)
{
	/* IORING_OP_READV, WRITEV, READ_FIXED, WRITE_FIXED, READ, WRITE (uapi numbers) */
	return op == 1 || op == 2 || op == 4 || op == 5 || op == 22 || op == 23;
}

SEC("tracepoint")
int dc_uring_submit(void *ctx)
{
	struct dc_uring_req r = {};
	struct io_kiocb *req;
	struct io_rw *rw;
	struct dc_thread *th;
	__u64 id, key;
	int fd;

	if ((!bpf_core_type_exists(struct trace_event_raw_io_uring_submit_req___dc) &&
	     !bpf_core_type_exists(struct trace_event_raw_io_uring_submit_sqe___dc)) ||
	    !bpf_core_type_exists(struct io_rw) || !dc_wanted())
		return 0;
	th = dc_thread(true);
	if (!th) {
		dc_count_lost(DC_LOST_INFLIGHT);
		return 0;
	}
	id = bpf_get_current_pid_tgid();
	dc_ids(th, id);
	req = DC_URING_SUBMIT_READ(ctx, req);
	r.opcode = DC_URING_SUBMIT_READ(ctx, opcode);
	fd = BPF_CORE_READ(req, cqe.fd);
	r.args[0] = fd;
	if (dc_uring_rw(r.opcode)) { /* prepared: struct io_rw overlays the request's command */
		rw = (void *)req + bpf_core_field_offset(struct io_kiocb, cmd);
		r.args[1] = BPF_CORE_READ(rw, len);
		r.args[2] = BPF_CORE_READ(rw, kiocb.ki_pos);
	}
	if (DC_URING_SUBMIT_READ(ctx, flags) & 1) /* REQ_F_FIXED_FILE: an index into registered files */
		r.args[3] = 1;
	else
		r.fhash = dc_fd_name(id >> 32, fd, th->pid, th->tid);
	r.pid = th->pid;
	r.tid = th->tid;
	r.ts = bpf_ktime_get_ns();
	key = (__u64)req;
	if (bpf_map_update_elem(&dc_uring_inflight, &key, &r, BPF_ANY))
		dc_count_lost(DC_LOST_INFLIGHT);
	dc_describe_task(th);
	return 0;
}

SEC("tracepoint")
int dc_uring_complete(struct trace_event_raw_io_uring_complete *ctx)
{
	__u64 now, key;
	struct dc_uring_req *r;
	__u32 fid;
	struct dc_call *e;
	void *ring;

	if (!bpf_core_type_exists(struct trace_event_raw_io_uring_complete) ||
	    !bpf_core_field_exists(ctx->req))
		return 0;
	key = (__u64)BPF_CORE_READ(ctx, req);
	r = bpf_map_lookup_elem(&dc_uring_inflight, &key);
	if (!r)
		return 0; /* not the job's, or a multishot request's later completion */
	now = bpf_ktime_get_ns();
	fid = DC_COOKIE_FID(bpf_get_attach_cookie(ctx) + (r->opcode % DC_URING_OPS));
	if (dc_cfg.profile) {
		__u64 args[DC_MAX_ARGS] = {r->args[0], r->args[1], r->args[2], r->args[3], 0, 0};

		dc_profile_add(NULL, fid, r->pid, r->tid, r->fhash, now, now - r->ts,
			       BPF_CORE_READ(ctx, res), args);
		bpf_map_delete_elem(&dc_uring_inflight, &key);
		return 0;
	}
	ring = dc_cpu_ring();
	e = ring ? bpf_ringbuf_reserve(ring, sizeof(*e), 0) : NULL;
	if (!e) {
		dc_count_lost(DC_LOST_CALLS);
		bpf_map_delete_elem(&dc_uring_inflight, &key);
		return 0;
	}
	e->type = DC_REC_CALL;
	e->fid = fid;
	e->pid = r->pid;
	e->tid = r->tid;
	e->ts = r->ts;
	e->dur = now - r->ts;
	e->ret = BPF_CORE_READ(ctx, res);
	e->fhash = r->fhash;
	for (int i = 0; i < 4; i++)
		e->args[i] = r->args[i];
	e->args[4] = 0;
	e->args[5] = 0;
	bpf_map_delete_elem(&dc_uring_inflight, &key);
	bpf_ringbuf_submit(e, dc_wakeup_flags(ring));
	return 0;
}
