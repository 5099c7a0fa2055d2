// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * What every program does for the thread that made a call: the entry filter, the thread's
 * state in task storage and its ids, its ring buffer and wakeups, loss counting, and the
 * description of the thread (comm) that user space names it by.
 */
#ifndef DC_TASK_H
#define DC_TASK_H

#include "dc_maps.h"

/* Argument n (1-based; the caller has checked 1 <= n <= DC_MAX_ARGS) as an index into an args
 * array. The bound is set again in assembly, on the very register the access then uses:
 * verifiers before 6.8 lose a bound checked on a 32-bit subregister once the compiler
 * zero-extends the value into another register, and refuse the access as unbounded (Debian
 * 12's 6.1 did). */
static __always_inline __u64 dc_arg_index(__u32 n)
{
	__u64 i = (__u64)n - 1;

	asm volatile("if %[i] < %[max] goto +1\n\t%[i] = 0" : [i] "+r"(i) : [max] "i"(DC_MAX_ARGS));
	return i;
}

static __always_inline void dc_count_lost_n(__u32 slot, __u64 calls)
{
	__u64 *n = bpf_map_lookup_elem(&dc_lost, &slot);

	if (n)
		*n += calls; /* per-CPU slot: no atomics needed */
}

static __always_inline void dc_count_lost(__u32 slot)
{
	dc_count_lost_n(slot, 1);
}

static __always_inline struct dc_thread *dc_thread(bool create)
{
	return bpf_task_storage_get(&dc_threads, bpf_get_current_task_btf(), 0,
				    create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
}

/* Wake the consumer only when the buffer is filling up, and then at most once a millisecond
 * per CPU; otherwise it drains on its timer. A wakeup is an irq_work, a self-IPI: on a VM a
 * trap to the hypervisor. Waking at every record while the consumer catches up (the buffer
 * above the mark for tens of thousands of records) cost more than the record itself. */
#define DC_WAKEUP_GAP_NS 1000000
static __always_inline __u64 dc_wakeup_flags(void *ring)
{
	__u32 zero = 0;
	__u64 *woke, now;

	if (bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) < dc_cfg.wakeup_bytes)
		return BPF_RB_NO_WAKEUP;
	woke = bpf_map_lookup_elem(&dc_woke, &zero);
	if (!woke)
		return BPF_RB_FORCE_WAKEUP;
	now = bpf_ktime_get_ns();
	if (now - *woke < DC_WAKEUP_GAP_NS)
		return BPF_RB_NO_WAKEUP;
	*woke = now;
	return BPF_RB_FORCE_WAKEUP;
}

/* The ring buffer of this CPU (records of no thread: io_uring completions). */
static __always_inline void *dc_cpu_ring(void)
{
	__u32 idx = bpf_get_smp_processor_id() % dc_cfg.rings;

	return bpf_map_lookup_elem(&dc_rings, &idx);
}

/* The thread's ring buffer: the one of the CPU it first produced a record on. */
static __always_inline void *dc_ring(struct dc_thread *th)
{
	__u32 idx;

	if (!th->ring_known) {
		th->ring = bpf_get_smp_processor_id() % dc_cfg.rings;
		th->ring_known = 1;
	}
	idx = th->ring;
	return bpf_map_lookup_elem(&dc_rings, &idx);
}

/* The current thread's ring buffer, without its storage at hand (file names). */
static __always_inline void *dc_current_ring(void)
{
	struct dc_thread *th = dc_thread(false);

	return th ? dc_ring(th) : dc_cpu_ring();
}

/* Whether the job user could ptrace the current task — the kernel's own rule
 * (__ptrace_may_access), applied before anything is recorded: its real, effective, saved and
 * file-system uids are all the job user's; its gids are all one (no setgid gain); it holds no
 * capability; and its mm is dumpable as the user's (SUID_DUMP_USER: the kernel clears it when a
 * setuid, setgid or file-capability program is exec'd, and it stays cleared after that program
 * drops its privileges, because it may still hold what it read with them). A setuid-root
 * helper (passwd), a setgid one (chage reading /etc/shadow) or a cap_dac_read_search one is
 * thus never traced: its file names, return values and reads are not the user's to see. Only
 * tasks whose real uid already matched pay for these reads. cap_effective/cap_permitted
 * (u32[2] before 6.3, u64 since) and mm->flags are read as 8 raw bytes at their CO-RE
 * offsets. */
/* mm->flags: an unsigned long up to 6.17, a one-word bitmap (mm_flags_t) since; CO-RE
 * matches a field only against a compatible local type, so each shape is a flavor and the
 * running kernel's is chosen (the other branch is dead code to the verifier). */
struct mm_struct___flags_long {
	unsigned long flags;
} __attribute__((preserve_access_index));
struct mm_struct___flags_bitmap {
	struct {
		unsigned long bits[1];
	} flags;
} __attribute__((preserve_access_index));

static __always_inline __u64 dc_mm_flags(struct mm_struct *mm)
{
	__u64 flags = 0;

	if (bpf_core_field_exists(((struct mm_struct___flags_bitmap *)mm)->flags))
		bpf_core_read(&flags, sizeof(flags), &((struct mm_struct___flags_bitmap *)mm)->flags);
	else
		bpf_core_read(&flags, sizeof(flags), &((struct mm_struct___flags_long *)mm)->flags);
	return flags;
}

static __always_inline bool dc_acts_as_user(void)
{
	/* through the task's BTF pointer: a load each, where BPF_CORE_READ costs a helper call */
	struct task_struct *task = bpf_get_current_task_btf();
	const struct cred *cred = task->cred;
	__u64 caps[2] = {};
	struct mm_struct *mm;

	if (cred->euid.val != dc_cfg.uid || cred->suid.val != dc_cfg.uid ||
	    cred->fsuid.val != dc_cfg.uid)
		return false;
	if (cred->egid.val != cred->gid.val || cred->sgid.val != cred->gid.val ||
	    cred->fsgid.val != cred->gid.val)
		return false;
	if (bpf_core_read(&caps[0], sizeof(caps[0]), &cred->cap_effective) ||
	    bpf_core_read(&caps[1], sizeof(caps[1]), &cred->cap_permitted) || (caps[0] | caps[1]))
		return false;
	mm = task->mm;
	return mm && (dc_mm_flags(mm) & 3) == 1; /* MMF_DUMPABLE_MASK == SUID_DUMP_USER */
}

/* Filter at entry: unrelated processes cost the uid check and nothing else. */
static __always_inline bool dc_wanted(void)
{
	if ((bpf_get_current_pid_tgid() >> 32) == dc_cfg.self_tgid)
		return false;
	if (dc_cfg.filter_uid &&
	    ((__u32)bpf_get_current_uid_gid() != dc_cfg.uid || !dc_acts_as_user()))
		return false;
	if (dc_cfg.filter_cgroup) {
		__u64 cgroup = bpf_get_current_cgroup_id();

		if (!bpf_map_lookup_elem(&dc_job_cgroups, &cgroup))
			return false;
	}
	if (dc_cfg.filter_tasks) {
		__u32 tgid = bpf_get_current_pid_tgid() >> 32;

		if (!bpf_map_lookup_elem(&dc_job_tasks, &tgid))
			return false;
	}
	return true;
}

/* pid and tid as seen from the daemon's pid namespace, computed once per thread; host ids
 * when the task lives in a pid namespace other than the daemon's (the helper only answers for
 * that exact namespace). */
static __always_inline void dc_ids(struct dc_thread *th, __u64 pid_tgid)
{
	struct bpf_pidns_info ns = {};

	if (th->ids_known)
		return;
	if (dc_cfg.pidns_ino &&
	    bpf_get_ns_current_pid_tgid(dc_cfg.pidns_dev, dc_cfg.pidns_ino, &ns, sizeof(ns)) == 0) {
		th->pid = ns.tgid;
		th->tid = ns.pid;
	} else {
		th->pid = pid_tgid >> 32;
		th->tid = (__u32)pid_tgid;
	}
	th->ids_known = 1;
}

/* Describe a thread the first time it produces an event (and again after an exec). */
static __always_inline void dc_describe_task(struct dc_thread *th)
{
	struct dc_task *t;
	struct task_struct *task;
	void *ring;

	if (th->described)
		return;
	ring = dc_ring(th);
	t = ring ? bpf_ringbuf_reserve(ring, sizeof(*t), 0) : NULL;
	if (!t) {
		dc_count_lost(DC_LOST_TASKS);
		return;
	}
	t->type = DC_REC_TASK;
	t->pad = 0;
	t->pid = th->pid;
	t->tid = th->tid;
	bpf_get_current_comm(t->comm, sizeof(t->comm));
	task = (struct task_struct *)bpf_get_current_task();
	BPF_CORE_READ_STR_INTO(&t->process_comm, task, group_leader, comm);
	bpf_ringbuf_submit(t, dc_wakeup_flags(ring));
	th->described = 1;
}

#endif /* DC_TASK_H */
