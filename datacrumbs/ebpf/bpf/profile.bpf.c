// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Profile mode's task iterator, run by user space before each harvest.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "dc_arch.h"
#include "dc_task.h"
#include "dc_profile.h"

/* Profile mode: run by user space before each harvest, over every task: hand over what a thread
 * still holds of an interval before dc_flush_before (all of them, at the end), so that a thread
 * that stopped calling does not keep its last aggregate from the trace. */
SEC("iter/task")
int dc_profile_flush(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct dc_thread *th;
	__u32 zero = 0;
	__u64 *before = bpf_map_lookup_elem(&dc_flush_before, &zero);

	if (!task || !before)
		return 0;
	th = bpf_task_storage_get(&dc_threads, task, 0, 0);
	if (th && th->agg_key.interval < *before)
		dc_agg_release(th);
	return 0;
}
