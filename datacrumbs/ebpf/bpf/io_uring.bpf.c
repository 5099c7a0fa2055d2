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
#include "dc_valve.h"

/* io_uring requests (6.0+ tracepoints io_uring:io_uring_submit_req, named io_uring_submit_sqe
 * before 6.4, and io_uring_complete, one perf-event link each): the request's opcode, fd and
 * file, size and offset (reads and writes), result and latency from submission to completion.
 * The event's function id is the attach cookie (the first of the opcodes' ids, in opcode order)
 * plus the opcode. On kernels without these tracepoints the programs are never attached; the
 * CO-RE guards keep them loadable.
 *
 * A request is recorded only when the job submitted it, on the ring it completes on. The kernel
 * reuses its request structs (each ring keeps a cache of them, and a ring torn down gives them
 * back to the allocator for another ring, of any user, to take; a ring's own address is reused
 * the same way), and not every request posts a completion: so dc_uring_inflight is keyed by
 * (ring, request), an entry holds the request's user_data, checked at completion, and every
 * submission of a (ring, request) by another task deletes the job's entry for it: a completion
 * can then only match the submission that made the entry. A request submitted with
 * IOSQE_CQE_SKIP_SUCCESS posts no completion when it succeeds, and no tracepoint marks its end:
 * it is counted lost (DC_LOST_INFLIGHT), never kept. An entry whose completion is never seen
 * otherwise (a CQE the full ring took to its overflow list, on 6.12+; the links after a failed
 * IOSQE_CQE_SKIP_SUCCESS request, whose CQEs the kernel skips too) can match no other
 * submission, and leaves the LRU map in time. */

/* The submit tracepoint's record under each of its names, as local CO-RE flavors (libbpf
 * matches "x___dc" with the kernel's "x"), so the object builds against either kernel's BTF
 * and one program reads both: the fields it uses are the same, but flags is 32 bits before
 * 6.4 and 64 after (only its low byte is read, little-endian). */
struct trace_event_raw_io_uring_submit_req___dc {
	void *ctx;
	void *req;
	__u64 user_data;
	__u8 opcode;
	__u32 flags;
} __attribute__((preserve_access_index));

struct trace_event_raw_io_uring_submit_sqe___dc {
	void *ctx;
	void *req;
	__u64 user_data;
	__u8 opcode;
	__u32 flags;
} __attribute__((preserve_access_index));

#define DC_URING_SUBMIT_READ(tp, field)                                                   \
	(bpf_core_type_exists(struct trace_event_raw_io_uring_submit_req___dc)             \
		 ? BPF_CORE_READ((struct trace_event_raw_io_uring_submit_req___dc *)(tp), field) \
		 : BPF_CORE_READ((struct trace_event_raw_io_uring_submit_sqe___dc *)(tp), field))
#define DC_URING_OPS 256
/* The request's flags (REQ_F_*): the first ones are the SQE's (IOSQE_*_BIT, uapi) */
#define DC_REQ_F_FIXED_FILE (1U << 0)
#define DC_REQ_F_CQE_SKIP (1U << 6) /* IOSQE_CQE_SKIP_SUCCESS: no CQE when it succeeds */
static __always_inline bool dc_uring_rw(__u32 op)
{
	/* IORING_OP_READV, WRITEV, READ_FIXED, WRITE_FIXED, READ, WRITE (uapi numbers) */
	return op == 1 || op == 2 || op == 4 || op == 5 || op == 22 || op == 23;
}

/* Delete the job's entry for (ring, request), if it has one: a lookup first, lock-free, so
 * that the submissions of other tasks pay no bucket lock. */
static __always_inline void dc_uring_forget(struct dc_uring_key *key)
{
	if (bpf_map_lookup_elem(&dc_uring_inflight, key))
		bpf_map_delete_elem(&dc_uring_inflight, key);
}

SEC("tracepoint")
int dc_uring_submit(void *ctx)
{
	struct dc_uring_entry e = {};
	struct dc_uring_req *r = &e.r;
	struct dc_uring_key key = {};
	struct io_kiocb *req;
	struct io_rw *rw;
	struct dc_thread *th;
	__u32 flags;
	__u64 id;
	int fd;

	if ((!bpf_core_type_exists(struct trace_event_raw_io_uring_submit_req___dc) &&
	     !bpf_core_type_exists(struct trace_event_raw_io_uring_submit_sqe___dc)) ||
	    !bpf_core_type_exists(struct io_rw))
		return 0;
	req = DC_URING_SUBMIT_READ(ctx, req);
	key.ring = (__u64)DC_URING_SUBMIT_READ(ctx, ctx);
	key.req = (__u64)req;
	if (!dc_wanted()) {
		/* another task's request: what the job left at this (ring, request) is stale */
		dc_uring_forget(&key);
		return 0;
	}
	flags = DC_URING_SUBMIT_READ(ctx, flags);
	if (flags & DC_REQ_F_CQE_SKIP) {
		/* its end is never seen when it succeeds: counted, not kept */
		dc_uring_forget(&key);
		dc_count_lost(DC_LOST_INFLIGHT);
		return 0;
	}
	th = dc_thread(true);
	if (!th) {
		dc_uring_forget(&key);
		dc_count_lost(DC_LOST_INFLIGHT);
		return 0;
	}
	id = bpf_get_current_pid_tgid();
	dc_ids(th, id);
	r->opcode = DC_URING_SUBMIT_READ(ctx, opcode);
	fd = BPF_CORE_READ(req, cqe.fd);
	r->args[0] = fd;
	if (dc_uring_rw(r->opcode)) { /* prepared: struct io_rw overlays the request's command */
		rw = (void *)req + bpf_core_field_offset(struct io_kiocb, cmd);
		r->args[1] = BPF_CORE_READ(rw, len);
		r->args[2] = BPF_CORE_READ(rw, kiocb.ki_pos);
	}
	if (flags & DC_REQ_F_FIXED_FILE) /* an index into the ring's registered files: named at */
		r->args[3] = 1;          /* completion, by the file the request took from the table */
	else
		r->fhash = dc_fd_name(id >> 32, fd, th->pid, th->tid);
	r->pid = th->pid;
	r->tid = th->tid;
	r->ts = bpf_ktime_get_ns();
	e.user_data = DC_URING_SUBMIT_READ(ctx, user_data);
	if (bpf_map_update_elem(&dc_uring_inflight, &key, &e, BPF_ANY)) {
		dc_uring_forget(&key);
		dc_count_lost(DC_LOST_INFLIGHT);
	}
	dc_describe_task(th);
	return 0;
}

SEC("tracepoint")
int dc_uring_complete(struct trace_event_raw_io_uring_complete *ctx)
{
	struct dc_uring_key key = {};
	struct dc_uring_entry *entry;
	struct dc_uring_req *r;
	struct io_kiocb *req;
	__u64 now;
	__u32 fid, go;
	struct dc_call *e;
	void *ring;

	if (!bpf_core_type_exists(struct trace_event_raw_io_uring_complete) ||
	    !bpf_core_field_exists(ctx->req) || !bpf_core_field_exists(ctx->ctx) ||
	    !bpf_core_field_exists(ctx->user_data))
		return 0;
	key.ring = (__u64)BPF_CORE_READ(ctx, ctx);
	key.req = (__u64)BPF_CORE_READ(ctx, req);
	if (!key.req)
		return 0; /* a CQE of no request (a message from another ring, ...) */
	entry = bpf_map_lookup_elem(&dc_uring_inflight, &key);
	if (!entry)
		return 0; /* not the job's, or a multishot request's later completion */
	if (entry->user_data != BPF_CORE_READ(ctx, user_data)) {
		/* the request struct now carries another request, not submitted by the job */
		bpf_map_delete_elem(&dc_uring_inflight, &key);
		return 0;
	}
	r = &entry->r;
	if (r->args[3] && !r->fhash) { /* a registered file: the request holds it by now */
		req = (struct io_kiocb *)key.req;
		r->fhash = dc_file_name(r->pid, DC_FIXED_SLOT | (__u32)r->args[0],
					(__u64)BPF_CORE_READ(req, file), r->pid, r->tid);
	}
	now = bpf_ktime_get_ns();
	fid = DC_COOKIE_FID(bpf_get_attach_cookie(ctx) + (r->opcode % DC_URING_OPS));
	/* where dc_file_name sent the name: it comes first */
	ring = dc_cfg.profile ? NULL : dc_current_ring();
	e = dc_call_reserve(ring, fid, now, &go);
	if (!e) {
		__u64 args[DC_MAX_ARGS] = {r->args[0], r->args[1], r->args[2], r->args[3], 0, 0};

		dc_call_fold(go, NULL, fid, r->pid, r->tid, r->fhash, 0, now, now - r->ts,
			     BPF_CORE_READ(ctx, res), args);
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
