// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * datacrumbs' kernel half: generic programs that serve every traced function.
 *
 *   dc_raw_sys_enter / _exit     tp_btf/sys_enter and sys_exit (raw tracepoints, two links in
 *                                all): the syscall number indexes dc_syscall_cookies, 0 means
 *                                untraced (the default: see docs/design.md for the choice)
 *   dc_sys_enter / dc_sys_exit   alternative: attached to each syscalls:sys_enter_X /
 *                                sys_exit_X tracepoint (one perf-event link each)
 *   dc_umulti_enter / _exit      uprobe_multi links (6.6+): one link per binary and direction
 *   dc_func_enter / dc_func_exit   attached to one traced function each: uprobe/uretprobe on
 *                                  user code (kernels without uprobe_multi),
 *                                  kprobe/kretprobe on kernel code (same program type)
 *
 * One program pair serves thousands of targets: the BPF cookie given at attach time (or the
 * per-syscall cookie map) says which function fired and how to read its arguments (layout in
 * dc_records.h, mirrored in Python by datacrumbs/ebpf/syscalls.py and uprobes.py). Events
 * leave through one ring buffer; every failed reservation is counted per CPU in dc_lost so
 * that user space can report loss exactly. User space disables (autoload off) the programs of
 * the variants it does not use.
 *
 * Minimum kernel: 5.15 (bpf_get_attach_cookie for tracepoints and uprobes). Other features
 * used: task-local storage from tracing programs (5.11), tp_btf (5.5), ring buffer +
 * bpf_ringbuf_query (5.8), bpf_get_ns_current_pid_tgid (5.7),
 * bpf_get_current_cgroup_id (4.18), bounded loops (5.3), global data (5.2);
 * uprobe_multi (6.6) when available.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "dc_arch.h"
#include "dc_records.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by user space before load (read-only data is frozen at load, so the verifier folds the
 * disabled filters away), in a section of its own: .rodata holds the format strings. Layout
 * mirrored by datacrumbs/ebpf/records.py:Config. */
const volatile struct dc_config dc_cfg SEC(".rodata.config") = {};

/* The ring buffers, one per CPU up to DC_MAX_RINGS (dc_cfg.rings): a thread reserves in the one
 * of the CPU it first ran on, for its whole life, so that threads on different CPUs do not
 * contend for one buffer's lock and producer position, and each thread's records stay in order
 * in one buffer. User space creates them (all of one size: the inner map's) and fills the
 * array before attaching. */
struct dc_ring {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24); /* resized by user space before load */
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, DC_MAX_RINGS);
	__type(key, __u32);
	__array(values, struct dc_ring);
} dc_rings SEC(".maps");

/* When this CPU last woke the consumer (dc_wakeup_flags). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dc_woke SEC(".maps");

/* Failed deliveries per CPU, indexed by enum dc_lost_slot. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DC_LOST_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} dc_lost SEC(".maps");

/* The job's cgroups (v2 ids) when dc_cfg.filter_cgroup is set: a task is traced when its cgroup
 * is one of them. User space puts the job's cgroup and the descendants it has; dc_cgroup_mkdir
 * adds each cgroup made below one of them, and the job's own when it is made later. An id is
 * the cgroup directory's inode, the same in every cgroup namespace, never reused. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, __u8);
} dc_job_cgroups SEC(".maps");

/* The job's processes (host tgids) when dc_cfg.filter_tasks is set, for schedulers that give
 * a job no cgroup: what a step daemon (dc_cfg.parent_cmdline) forks, and what those fork in
 * turn, added by dc_task_fork; a process leaves when its last thread exits (dc_task_exit), so
 * a reused pid is not taken for the job's. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} dc_job_tasks SEC(".maps");

/* The job's cgroup while it does not exist yet: the names below an existing ancestor. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dc_scope);
} dc_scope SEC(".maps");

/* Per-thread state in task-local storage (kernel 5.11+ for tracing programs): the syscall in
 * flight, the thread's ids in the daemon's pid namespace and whether user space already has
 * its names. A pointer away from the task, without the hash map's bucket lock and the
 * allocation on every entry. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct dc_thread);
} dc_threads SEC(".maps");

/* Syscall number (x86-64) -> cookie of the traced syscall; 0 = not traced. Array lookups are
 * inlined by the verifier: an untraced syscall costs a bounds check and a load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DC_MAX_SYSCALL_NR);
	__type(key, __u32);
	__type(value, __u64);
} dc_syscall_cookies SEC(".maps");

/* The same for 32-bit (compat) syscalls, by their own (ia32) numbers. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DC_MAX_SYSCALL_NR);
	__type(key, __u32);
	__type(value, __u64);
} dc_compat_cookies SEC(".maps");

/* A user function in flight, keyed by (pid_tgid, cookie). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct dc_ukey);
	__type(value, struct dc_inflight);
} dc_func_inflight SEC(".maps");

/* Fds named so far: (tgid, fd) -> the dentry it held and its name's hash (dc_files.h). LRU:
 * processes that die do not fill it up. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct dc_fdkey);
	__type(value, struct dc_fdname);
} dc_fd_names SEC(".maps");

/* File-name hashes already delivered: each distinct name crosses the ring buffer once. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} dc_names_sent SEC(".maps");

#define DC_PATH_MASK (DC_PATH_MAX - 1)

/* Per-CPU scratch for a name being built (dc_files.h), too big for the 512-byte BPF stack: the
 * name record being filled (a name may run into spill while it is built; what is sent is cut to
 * DC_PATH_MAX - 1 bytes), and the buffer a dentry walk fills from its middle down. */
struct dc_path_scratch {
	struct dc_name rec;
	char spill[DC_PATH_MAX];
	char walk[2 * DC_PATH_MAX];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dc_path_scratch);
} dc_scratch SEC(".maps");

/* io_uring requests of the job in flight, by request (struct io_kiocb *): submitted by the job's
 * thread, completed there or in a kernel worker. LRU: a request that never completes (a ring
 * torn down) does not fill it up. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct dc_uring_req);
} dc_uring_inflight SEC(".maps");

/* Hits of each function probe (uprobe, kprobe) by function id, in every process, counted before
 * any filter: a breakpoint costs every process that runs the code, not only the job's, so the
 * daemon detaches a function whose rate passes the job's limit. Sized by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dc_func_hits SEC(".maps");

/* Profile mode (dc_cfg.profile): the calls of each (process, thread, function, file, interval),
 * aggregated, instead of one ring-buffer record per call. User space harvests and deletes the
 * intervals that are over; a call that finds the map full is counted lost (DC_LOST_PROFILE).
 * Preallocated (resized by user space): an update never allocates. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1); /* resized by user space before load */
	__type(key, struct dc_agg_key);
	__type(value, struct dc_agg);
} dc_profile SEC(".maps");

/* Profile mode: aggregates threads handed over (their interval over, the thread gone, or the
 * harvest's task iterator took them): only ever inserted, never updated, so user space may read
 * and delete them at any time; a key comes here once (a thread leaves an interval once). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1); /* resized by user space before load */
	__type(key, struct dc_agg_key);
	__type(value, struct dc_agg);
} dc_profile_done SEC(".maps");

/* Profile mode: the first interval still open, for the task iterator (dc_profile_flush): the
 * threads' aggregates of earlier intervals are handed over. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dc_flush_before SEC(".maps");

/* Profile mode: which argument of a function is its file offset (index + 1, 0 = none), by
 * function id; sized and filled by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} dc_offset_args SEC(".maps");

/* Profile mode: a new aggregate being built (too big for the BPF stack); slot 1 for io_uring
 * completions, which may interrupt a syscall's program on the same CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct dc_agg);
} dc_agg_scratch SEC(".maps");

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

/* The bucket of dc_agg.ret_log2 a return value falls in: 0 for ret <= 0, else 1 + its log2. */
static __always_inline __u32 dc_log2_bucket(__s64 ret)
{
	__u64 x = ret;
	__u32 k = 1;

	if (ret <= 0)
		return 0;
	if (x >> 32) {
		x >>= 32;
		k += 32;
	}
	if (x >> 16) {
		x >>= 16;
		k += 16;
	}
	if (x >> 8) {
		x >>= 8;
		k += 8;
	}
	if (x >> 4) {
		x >>= 4;
		k += 4;
	}
	if (x >> 2) {
		x >>= 2;
		k += 2;
	}
	if (x >> 1)
		k += 1;
	return k < DC_HIST_BUCKETS ? k : DC_HIST_BUCKETS - 1;
}

/* Profile mode: the interval a call that ended at ``now`` belongs to (see dc_cfg.interval_shift).
 * A thread keeps its last one and when it ends: most calls fall in the same interval as the one
 * before, and skip the 64-bit division (tens of cycles). */
static __always_inline __u64 dc_interval(struct dc_thread *th, __u64 now)
{
	__u64 t = now + dc_cfg.interval_shift, interval;

	if (th && t < th->interval_end && t + dc_cfg.interval_ns >= th->interval_end)
		return th->interval;
	interval = t / dc_cfg.interval_ns;
	if (th) {
		th->interval = interval;
		th->interval_end = (interval + 1) * dc_cfg.interval_ns;
	}
	return interval;
}

/* One call, as profile mode adds it to an aggregate. */
struct dc_agg_call {
	__u64 dur;
	__s64 ret;
	__s64 offset;
	__u32 bucket;
};

static __always_inline void dc_agg_first(struct dc_agg *a, const struct dc_agg_call *c)
{
	__builtin_memset(a->ret_log2, 0, sizeof(a->ret_log2));
	a->count = 1;
	a->dur_sum = a->dur_min = a->dur_max = c->dur;
	a->ret_sum = c->ret >= 0 ? c->ret : 0;
	a->errors = c->ret < 0;
	a->ret_min = a->ret_max = c->ret;
	a->offset_min = a->offset_max = c->offset;
	a->ret_log2[c->bucket & (DC_HIST_BUCKETS - 1)] = 1;
}

static __always_inline void dc_agg_minmax(struct dc_agg *a, __u64 dur_min, __u64 dur_max,
					  __s64 ret_min, __s64 ret_max, __s64 off_min,
					  __s64 off_max)
{
	if (dur_min < a->dur_min)
		a->dur_min = dur_min;
	if (dur_max > a->dur_max)
		a->dur_max = dur_max;
	if (ret_min < a->ret_min)
		a->ret_min = ret_min;
	if (ret_max > a->ret_max)
		a->ret_max = ret_max;
	if (off_min < a->offset_min)
		a->offset_min = off_min;
	if (off_max > a->offset_max)
		a->offset_max = off_max;
}

/* Add a call to an aggregate only this CPU updates (plain stores), or, ``shared``, one that
 * io_uring completions on other CPUs may update at once (counts and sums atomic; min and max
 * may then miss a value completed at the very same moment). */
static __always_inline void dc_agg_add(struct dc_agg *a, const struct dc_agg_call *c, bool shared)
{
	__u32 bucket = c->bucket & (DC_HIST_BUCKETS - 1);

	if (shared) {
		__sync_fetch_and_add(&a->count, 1);
		__sync_fetch_and_add(&a->dur_sum, c->dur);
		if (c->ret >= 0)
			__sync_fetch_and_add(&a->ret_sum, c->ret);
		else
			__sync_fetch_and_add(&a->errors, 1);
		__sync_fetch_and_add(&a->ret_log2[bucket], 1);
	} else {
		a->count += 1;
		a->dur_sum += c->dur;
		if (c->ret >= 0)
			a->ret_sum += c->ret;
		else
			a->errors += 1;
		a->ret_log2[bucket] += 1;
	}
	dc_agg_minmax(a, c->dur, c->dur, c->ret, c->ret, c->offset, c->offset);
}

/* Add a call to its aggregate in dc_profile (made when missing). */
static __always_inline void dc_profile_map_add(struct dc_agg_key *key, const struct dc_agg_call *c,
					       bool shared)
{
	__u32 slot = shared;
	struct dc_agg *a = bpf_map_lookup_elem(&dc_profile, key);

	if (!a) {
		struct dc_agg *init = bpf_map_lookup_elem(&dc_agg_scratch, &slot);

		if (!init)
			return;
		dc_agg_first(init, c);
		if (!bpf_map_update_elem(&dc_profile, key, init, BPF_NOEXIST))
			return;
		/* full, or made meanwhile on another CPU (an io_uring completion) */
		a = bpf_map_lookup_elem(&dc_profile, key);
		if (!a) {
			dc_count_lost(DC_LOST_PROFILE);
			return;
		}
	}
	dc_agg_add(a, c, shared);
}

/* Add a thread's aggregate of the open interval to dc_profile (the thread moves on to another
 * function or file: it may come back to this one within the interval). */
static __noinline void dc_profile_map_merge(struct dc_agg_key *key, struct dc_agg *src)
{
	struct dc_agg *a = bpf_map_lookup_elem(&dc_profile, key);

	if (!a) {
		if (!bpf_map_update_elem(&dc_profile, key, src, BPF_NOEXIST))
			return;
		a = bpf_map_lookup_elem(&dc_profile, key);
		if (!a) {
			dc_count_lost_n(DC_LOST_PROFILE, src->count);
			return;
		}
	}
	a->count += src->count;
	a->dur_sum += src->dur_sum;
	a->ret_sum += src->ret_sum;
	a->errors += src->errors;
	for (int i = 0; i < DC_HIST_BUCKETS; i++)
		a->ret_log2[i] += src->ret_log2[i];
	dc_agg_minmax(a, src->dur_min, src->dur_max, src->ret_min, src->ret_max, src->offset_min,
		      src->offset_max);
}

/* Hand a thread's aggregate over to user space (dc_profile_done). */
static __always_inline void dc_agg_hand_over(struct dc_agg_key *key, struct dc_agg *a)
{
	if (bpf_map_update_elem(&dc_profile_done, key, a, BPF_NOEXIST))
		dc_count_lost_n(DC_LOST_PROFILE, a->count);
}

/* The thread's held aggregate, handed over if it still holds one (its exit; the iterator). */
static __always_inline void dc_agg_release(struct dc_thread *th)
{
	if (th->agg_state != DC_AGG_HELD ||
	    __sync_val_compare_and_swap(&th->agg_state, DC_AGG_HELD, DC_AGG_HANDING) != DC_AGG_HELD)
		return;
	dc_agg_hand_over(&th->agg_key, &th->agg);
	__sync_lock_test_and_set(&th->agg_state, DC_AGG_EMPTY);
}

/* Profile mode: add one completed call to its aggregate (interval by its exit time ``now``).
 *
 * A thread's calls (``th``) go to the aggregate it holds in its own storage while they keep one
 * function, file and interval: a compare and a few adds, no map lookup. When a call leaves it,
 * the held aggregate goes to dc_profile (same interval: the thread may come back to it) or is
 * handed over to dc_profile_done (its interval is over). So that no aggregate is left behind
 * in a thread that stops calling, the harvest's task iterator (dc_profile_flush) and the
 * thread's exit (dc_task_exit) hand over what a thread still holds; ``agg_state`` is swapped
 * atomically so that one of them only does it. The thread adds to its held aggregate only in
 * the open interval, which the iterator never takes.
 *
 * io_uring completions (no ``th``) go to dc_profile directly, atomically (``shared``). */
static __always_inline void dc_profile_add(struct dc_thread *th, __u32 fid, __u32 pid, __u32 tid,
					   __u64 fhash, __u64 now, __u64 dur, __s64 ret,
					   const __u64 *args)
{
	struct dc_agg_key key = {
		.pid = pid,
		.tid = tid,
		.fid = fid,
		.interval = dc_interval(th, now),
		.fhash = fhash,
	};
	struct dc_agg_call c = {.dur = dur, .ret = ret, .bucket = dc_log2_bucket(ret)};
	__u32 *offset_arg = bpf_map_lookup_elem(&dc_offset_args, &fid);

	if (offset_arg && *offset_arg) {
		__u32 i = *offset_arg - 1;

		if (i < DC_MAX_ARGS)
			c.offset = args[i];
	}
	if (!th) {
		dc_profile_map_add(&key, &c, true);
		return;
	}
	if (th->agg_state == DC_AGG_HELD && th->agg_key.fid == fid &&
	    th->agg_key.fhash == fhash && th->agg_key.interval == key.interval &&
	    th->agg_key.tid == tid && th->agg_key.pid == pid) {
		dc_agg_add(&th->agg, &c, false);
		return;
	}
	if (th->agg_state == DC_AGG_HELD) {
		if (__sync_val_compare_and_swap(&th->agg_state, DC_AGG_HELD, DC_AGG_HANDING) !=
		    DC_AGG_HELD) {
			dc_profile_map_add(&key, &c, false); /* the iterator is handing it over */
			return;
		}
		if (th->agg_key.interval == key.interval)
			dc_profile_map_merge(&th->agg_key, &th->agg);
		else
			dc_agg_hand_over(&th->agg_key, &th->agg);
	} else if (th->agg_state != DC_AGG_EMPTY) {
		dc_profile_map_add(&key, &c, false); /* the iterator is handing it over */
		return;
	}
	th->agg_key = key;
	dc_agg_first(&th->agg, &c);
	__sync_lock_test_and_set(&th->agg_state, DC_AGG_HELD);
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

static __always_inline struct dc_thread *dc_thread(bool create);

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

#include "dc_files.h"

/* Whether the current task acts as the job user and no one else: its real, effective and
 * file-system uids are all the job user's. A setuid-root helper the user starts (passwd, a
 * site's sudo-like tool) keeps the user's real uid but acts as root: tracing it would hand the
 * user root's file names, return values and reads, so it is left out. Only tasks whose real
 * uid already matched pay for the two extra reads. */
static __always_inline bool dc_acts_as_user(void)
{
	/* through the task's BTF pointer: a load each, where BPF_CORE_READ costs a helper call */
	const struct cred *cred = bpf_get_current_task_btf()->cred;

	return cred->euid.val == dc_cfg.uid && cred->fsuid.val == dc_cfg.uid;
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

static __always_inline struct dc_thread *dc_thread(bool create)
{
	return bpf_task_storage_get(&dc_threads, bpf_get_current_task_btf(), 0,
				    create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
}

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
 * and it held the same dentry (a loop of reads or writes on one file, a copy's two fds), else
 * from dc_fd_name, remembered in the thread's oldest slot. The check costs the two reads that
 * find the fd's dentry; the (process, fd) map's lookup is skipped. */
static __always_inline __u64 dc_thread_fd_name(struct dc_thread *th, __u32 tgid, __s64 fd)
{
	struct file *f = dc_fd_file(fd);
	struct dentry *d;
	__u32 slot;
	__u64 hash;

	if (!f)
		return 0;
	d = BPF_CORE_READ(f, f_path.dentry);
	if (!th->fds_known) {
		for (int i = 0; i < DC_FDS_SEEN; i++)
			th->fds[i].fd = -1;
		th->fds_known = 1;
	}
	for (int i = 0; i < DC_FDS_SEEN; i++) {
		if (th->fds[i].fd == fd && th->fds[i].dentry == (__u64)d)
			return th->fds[i].hash;
	}
	hash = dc_fd_name(tgid, fd, th->pid, th->tid);
	if (hash) {
		slot = th->fds_next % DC_FDS_SEEN;
		th->fds[slot].fd = fd;
		th->fds[slot].dentry = (__u64)d;
		th->fds[slot].hash = hash;
		th->fds_next = slot + 1;
	}
	return hash;
}

/* Syscall entry, once the arguments are in: name the fd argument now, while it still holds
 * its file (close and dup2 release it by the exit). */
static __always_inline void dc_sys_fd(struct dc_thread *th)
{
	__u32 fd_arg = DC_SYS_FD_ARG(th->sys.cookie);
	__u64 id;

	th->sys.fhash = 0;
	if (!fd_arg || fd_arg > DC_MAX_ARGS)
		return;
	id = bpf_get_current_pid_tgid();
	dc_ids(th, id);
	th->sys.fhash = dc_thread_fd_name(th, id >> 32, (__s32)th->sys.args[dc_arg_index(fd_arg)]);
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
	__u32 fd_arg, path1, path2;
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
	} else {
		hash1 = dc_sys_path(th, path1);
		if (hash1) /* else an empty path: the file is the fd argument's (fstat) */
			fhash = hash1;
	}

	if (dc_cfg.profile) {
		dc_profile_add(th, DC_COOKIE_FID(cookie), th->pid, th->tid, fhash, now, now - in->ts,
			       ret, in->args);
		in->ts = 0;
		dc_describe_task(th);
		return 0;
	}
	ring = dc_ring(th);
	e = ring ? bpf_ringbuf_reserve(ring, sizeof(*e), 0) : NULL;
	if (!e) {
		dc_count_lost(DC_LOST_CALLS);
		in->ts = 0;
		return 0;
	}
	e->type = DC_REC_CALL;
	e->fid = DC_COOKIE_FID(cookie);
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
	if (compat)
		DC_COMPAT_SYSCALL_ARGS(regs, th->sys.args);
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

static __always_inline int dc_func_begin(struct pt_regs *ctx)
{
	struct dc_inflight in = {};
	struct dc_inflight *outer;
	struct dc_thread *th;
	struct dc_ukey key;
	__s64 fd;
	__u64 cookie = bpf_get_attach_cookie(ctx);
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
	in.args[0] = PT_REGS_PARM1(ctx);
	in.args[1] = PT_REGS_PARM2(ctx);
	in.args[2] = PT_REGS_PARM3(ctx);
	in.args[3] = PT_REGS_PARM4(ctx);
	in.args[4] = PT_REGS_PARM5(ctx);
	in.args[5] = DC_PT_REGS_PARM6(ctx);
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

static __always_inline int dc_func_end(struct pt_regs *ctx)
{
	struct dc_ukey key = {.pid_tgid = bpf_get_current_pid_tgid(),
			      .cookie = bpf_get_attach_cookie(ctx)};
	struct dc_inflight *in = bpf_map_lookup_elem(&dc_func_inflight, &key);
	struct dc_thread *th;
	struct dc_call *e;
	__u64 now, fhash;
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
	ret = key.cookie & DC_FUNC_NO_RET ? 0 : PT_REGS_RC(ctx);
	if (key.cookie & DC_FUNC_RET_ITEMS)
		ret *= (__s64)in->args[1];
	fhash = dc_func_file(in, PT_REGS_RC(ctx), th->pid, th->tid, key.pid_tgid >> 32);
	if (dc_cfg.profile) {
		dc_profile_add(th, DC_COOKIE_FID(key.cookie), th->pid, th->tid, fhash, now,
			       now - in->ts, ret, in->args);
		bpf_map_delete_elem(&dc_func_inflight, &key);
		dc_describe_task(th);
		return 0;
	}
	ring = dc_ring(th);
	e = ring ? bpf_ringbuf_reserve(ring, sizeof(*e), 0) : NULL;
	if (!e) {
		dc_count_lost(DC_LOST_CALLS);
		bpf_map_delete_elem(&dc_func_inflight, &key);
		return 0;
	}
	e->type = DC_REC_CALL;
	e->fid = DC_COOKIE_FID(key.cookie);
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

SEC("uprobe")
int dc_func_enter(struct pt_regs *ctx)
{
	return dc_func_begin(ctx);
}

SEC("uretprobe")
int dc_func_exit(struct pt_regs *ctx)
{
	return dc_func_end(ctx);
}

/* The same bodies for uprobe_multi links: user space loads these two with expected attach type
 * BPF_TRACE_UPROBE_MULTI (libbpf 1.1 has no section name for it); bpf_get_attach_cookie then
 * reads the cookie of the offset that fired (6.6+). */
SEC("uprobe")
int dc_umulti_enter(struct pt_regs *ctx)
{
	return dc_func_begin(ctx);
}

SEC("uretprobe")
int dc_umulti_exit(struct pt_regs *ctx)
{
	return dc_func_end(ctx);
}

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

/* Every thread's exit (one link while dc_cfg.filter_tasks or dc_cfg.profile, in the exiting
 * thread): in profile mode its held aggregate is handed over (its storage goes with it); a
 * process whose last thread exits leaves the job's set (its pid may be reused). */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(dc_task_exit, struct task_struct *p)
{
	__u32 tgid = p->tgid;

	if (dc_cfg.profile) {
		struct dc_thread *th = dc_thread(false);

		if (th)
			dc_agg_release(th);
	}
	if (dc_cfg.filter_tasks && p->signal->live.counter == 0)
		bpf_map_delete_elem(&dc_job_tasks, &tgid);
	return 0;
}

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
