// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The job's scope and the tasks' lifecycle: the job's cgroups as they are made, the job's
 * processes by fork (schedulers without job cgroups), thread exits and execs.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "dc_arch.h"
#include "dc_task.h"
#include "dc_profile.h"

/* Every cgroup made (tp_btf/cgroup_mkdir, one link while a cgroup filter is on): below a job
 * cgroup it is the job's too; else it may be the awaited job cgroup itself, matched one path
 * component at a time below the ancestor that existed (by id: no path or level is compared,
 * which would differ between cgroup namespaces). */
SEC("tp_btf/cgroup_mkdir")
int BPF_PROG(dc_cgroup_mkdir, struct cgroup *cgrp, const char *path)
{
	struct cgroup_subsys_state *up = BPF_CORE_READ(cgrp, self.parent);
	struct cgroup *parent = (void *)up - bpf_core_field_offset(struct cgroup, self);
	__u64 id = BPF_CORE_READ(cgrp, kn, id), parent_id;
	char name[DC_SCOPE_NAME];
	struct dc_scope *scope;
	__u32 zero = 0, next;
	__u8 one = 1;

	if (!up)
		return 0;
	parent_id = BPF_CORE_READ(parent, kn, id);
	if (bpf_map_lookup_elem(&dc_job_cgroups, &parent_id)) {
		bpf_map_update_elem(&dc_job_cgroups, &id, &one, BPF_ANY);
		return 0;
	}
	scope = bpf_map_lookup_elem(&dc_scope, &zero);
	if (!scope || scope->found || parent_id != scope->parent)
		return 0;
	next = scope->next;
	if (next >= DC_SCOPE_DEPTH || next >= scope->depth)
		return 0;
	if (bpf_probe_read_kernel_str(name, sizeof(name), BPF_CORE_READ(cgrp, kn, name)) <= 0)
		return 0;
	for (int i = 0; i < DC_SCOPE_NAME; i++) {
		if (name[i] != scope->names[next][i])
			return 0;
		if (!name[i])
			break;
	}
	if (next + 1 == scope->depth) { /* the job's cgroup: traced from its first task */
		bpf_map_update_elem(&dc_job_cgroups, &id, &one, BPF_ANY);
		scope->found = id;
	} else {
		scope->parent = id;
		scope->next = next + 1;
	}
	return 0;
}

/* Whether the task is one the daemon sees: its pid namespace is the daemon's or below it. A
 * step daemon of another machine sharing this kernel (a container of its own) is not this
 * node's, though its command line is the same. */
static __always_inline bool dc_seen_by_daemon(struct task_struct *task)
{
	struct pid *pid = task->thread_pid;
	struct pid_namespace *ns;
	struct upid upid;

	if (!pid || bpf_probe_read_kernel(&upid, sizeof(upid), &pid->numbers[pid->level & 31]))
		return false;
	ns = upid.ns;
	for (int i = 0; i < 32 && ns; i++) {
		if (BPF_CORE_READ(ns, ns.inum) == dc_cfg.pidns_ino)
			return true;
		ns = BPF_CORE_READ(ns, parent);
	}
	return false;
}

/* Whether the forking task is a step daemon: its command line starts with dc_cfg.parent_cmdline
 * (a NUL between arguments compared as a space), in a pid namespace the daemon sees. The fork
 * tracepoint runs in the forking task, so its own memory is read. */
static __always_inline bool dc_step_daemon(struct task_struct *task)
{
	char cmdline[DC_PARENT_CMDLINE];
	__u32 len = dc_cfg.parent_cmdline_len;
	struct mm_struct *mm = task->mm;
	unsigned long start, end;

	if (!mm || len == 0 || len >= DC_PARENT_CMDLINE)
		return false;
	start = mm->arg_start;
	end = mm->arg_end;
	if (end < start + len || bpf_probe_read_user(cmdline, len, (void *)start))
		return false;
	for (int i = 0; i < DC_PARENT_CMDLINE - 1; i++) {
		char c = cmdline[i];

		if (i >= len)
			break;
		if (c != dc_cfg.parent_cmdline[i] && !(c == 0 && dc_cfg.parent_cmdline[i] == ' '))
			return false;
	}
	return dc_seen_by_daemon(task);
}

/* Every new process (tp_btf/sched_process_fork, one link while dc_cfg.filter_tasks): the
 * job's when its parent is, or when a step daemon forked it. A new thread (same tgid) is its
 * process's already. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(dc_task_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 parent_tgid = parent->tgid, tgid = child->tgid;
	__u8 one = 1;

	if (tgid == parent_tgid)
		return 0;
	if (bpf_map_lookup_elem(&dc_job_tasks, &parent_tgid) || dc_step_daemon(parent))
		bpf_map_update_elem(&dc_job_tasks, &tgid, &one, BPF_ANY);
	return 0;
}

/* Every thread's exit (one link while dc_cfg.filter_tasks, dc_cfg.profile or dc_cfg.valve, in
 * the exiting thread): its held aggregate is handed over (its storage goes with it); a
 * process whose last thread exits leaves the job's set (its pid may be reused). */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(dc_task_exit, struct task_struct *p)
{
	__u32 tgid = p->tgid;

	if (dc_cfg.profile || dc_cfg.valve) {
		struct dc_thread *th = dc_thread(false);

		if (th)
			dc_agg_release(th);
	}
	if (dc_cfg.filter_tasks && p->signal->live.counter == 0)
		bpf_map_delete_elem(&dc_job_tasks, &tgid);
	return 0;
}

/* After an exec the thread's comm changes (and a non-leader thread takes the leader's id):
 * describe it again at its next event. A raw tracepoint (tp_btf, one link whose teardown
 * needs no RCU grace period of its own) on sched_process_exec. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(dc_task_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct dc_thread *th;

	if (!dc_wanted())
		return 0;
	th = dc_thread(false);
	if (th) {
		th->described = 0;
		th->ids_known = 0;
	}
	return 0;
}
