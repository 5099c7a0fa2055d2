// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The job's processes as they are born, exec and die, told to user space so that it can give
 * each one its own uprobes (issue 25, N2). A uprobe is a breakpoint written into the code
 * pages of every process that maps the file, unless each of its consumers filters by process:
 * uprobe_multi's pid, or a perf-event uprobe opened on one task. The daemon attaches those per
 * job process, so other users' processes never trap, whatever function is probed. It learns of
 * the processes here: one record per new job process (a fork by a job process, or an exec into
 * the job: a process that became the user's, or entered the job's cgroup, before its exec),
 * one when a followed process execs from a thread other than its leader (the task the links
 * hold is gone: attach again), one when its last thread exits (free its links). Attached only
 * while uprobes are scoped to the job's processes.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "dc_arch.h"
#include "dc_task.h"

/* The records: mirrored by datacrumbs/ebpf/process_follower.py. */
enum dc_follow_kind {
	DC_FOLLOW_NEW = 1,    /* a job process to attach to */
	DC_FOLLOW_LEADER = 2, /* a followed process execed from another thread: attach again */
	DC_FOLLOW_GONE = 3,   /* a followed process exited: free its links */
};

struct dc_follow {
	__u32 kind;
	__u32 pid;   /* in the daemon's pid namespace: what uprobe_multi's pid and perf take */
	__u64 start; /* the process's start_boottime (ns): /proc/<pid>/stat's starttime */
	__u64 time;  /* CLOCK_MONOTONIC when the kernel saw it: the attach latency is measured */
};

/* The records, each one waking the reader (they are few: one per process). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} dc_follow_ring SEC(".maps");

/* The processes told (host tgid -> start): an exec of a followed process tells nothing (its
 * links follow the task through exec), its exit is told once. LRU: never full. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} dc_followed SEC(".maps");

/* Records the ring could not take (the reader fell behind): processes not followed. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dc_follow_lost SEC(".maps");

/* The process's number in the daemon's pid namespace (0: not visible there). */
static __always_inline __u32 dc_daemon_pid(struct task_struct *leader)
{
	struct pid *pid = leader->thread_pid;
	unsigned int level;
	struct upid upid;

	if (!pid)
		return 0;
	level = pid->level;
	for (int i = 0; i < 8; i++) {
		if (i > level)
			break;
		if (bpf_probe_read_kernel(&upid, sizeof(upid), &pid->numbers[i]))
			return 0;
		if (!dc_cfg.pidns_ino || BPF_CORE_READ(upid.ns, ns.inum) == dc_cfg.pidns_ino)
			return upid.nr;
	}
	return 0;
}

static __always_inline void dc_tell(__u32 kind, struct task_struct *leader)
{
	__u32 tgid = leader->tgid, zero = 0;
	__u64 start = leader->start_boottime;
	struct dc_follow *rec;
	__u32 pid = dc_daemon_pid(leader);
	__u64 *lost;

	if (!pid)
		return;
	if (kind == DC_FOLLOW_GONE)
		bpf_map_delete_elem(&dc_followed, &tgid);
	else
		bpf_map_update_elem(&dc_followed, &tgid, &start, BPF_ANY);
	rec = bpf_ringbuf_reserve(&dc_follow_ring, sizeof(*rec), 0);
	if (!rec) {
		lost = bpf_map_lookup_elem(&dc_follow_lost, &zero);
		if (lost)
			*lost += 1;
		return;
	}
	rec->kind = kind;
	rec->pid = pid;
	rec->start = start;
	rec->time = bpf_ktime_get_ns();
	bpf_ringbuf_submit(rec, BPF_RB_FORCE_WAKEUP);
}

/* A new process forked by a job process (the tracepoint runs in the parent, before the child
 * first runs): the child is the job's too. A new thread is its process's already. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(dc_follow_fork, struct task_struct *parent, struct task_struct *child)
{
	if (child->tgid == parent->tgid || !dc_wanted())
		return 0;
	dc_tell(DC_FOLLOW_NEW, child);
	return 0;
}

/* An exec (in the new program, its credentials committed): a process not followed yet that
 * now is the job's; or a followed one whose exec ran on a thread other than its leader. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(dc_follow_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = p->tgid;
	bool followed = bpf_map_lookup_elem(&dc_followed, &tgid) != NULL;

	if (followed && old_pid == p->pid)
		return 0;
	if (!followed && !dc_wanted())
		return 0;
	dc_tell(followed ? DC_FOLLOW_LEADER : DC_FOLLOW_NEW, p);
	return 0;
}

/* The last thread of a followed process exits. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(dc_follow_exit, struct task_struct *p)
{
	__u32 tgid = p->tgid;

	if (p->signal->live.counter != 0 || !bpf_map_lookup_elem(&dc_followed, &tgid))
		return 0;
	dc_tell(DC_FOLLOW_GONE, p->group_leader);
	return 0;
}
