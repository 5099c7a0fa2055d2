// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The object's global data and maps, shared by every entry file: declared extern there, and
 * defined once, in maps.bpf.c (DC_DEFINE_MAPS); the BPF static linker (bpftool gen object)
 * joins them. Python names the ones it touches in datacrumbs/ebpf/object_names.py.
 */
#ifndef DC_MAPS_H
#define DC_MAPS_H

#include "dc_records.h"

#ifdef DC_DEFINE_MAPS
#define DC_SHARED
#define DC_INITIALLY(...) = __VA_ARGS__
#else
#define DC_SHARED extern
#define DC_INITIALLY(...)
#endif

/* Set by user space before load (read-only data is frozen at load, so the verifier folds the
 * disabled filters away), in a section of its own: .rodata holds the format strings. Layout
 * mirrored by datacrumbs/ebpf/records.py:Config. */
DC_SHARED const volatile struct dc_config dc_cfg SEC(".rodata.config") DC_INITIALLY({});

/* The ring buffers, one per CPU up to DC_MAX_RINGS (dc_cfg.rings): a thread reserves in the one
 * of the CPU it first ran on, for its whole life, so that threads on different CPUs do not
 * contend for one buffer's lock and producer position, and each thread's records stay in order
 * in one buffer. User space creates them (all of one size: the inner map's) and fills the
 * array before attaching. */
struct dc_ring {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24); /* resized by user space before load */
};
DC_SHARED struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, DC_MAX_RINGS);
	__type(key, __u32);
	__array(values, struct dc_ring);
} dc_rings SEC(".maps");

/* When this CPU last woke the consumer (dc_wakeup_flags). */
DC_SHARED struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dc_woke SEC(".maps");

/* Failed deliveries per CPU, indexed by enum dc_lost_slot. */
DC_SHARED struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DC_LOST_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} dc_lost SEC(".maps");

/* The job's cgroups (v2 ids) when dc_cfg.filter_cgroup is set: a task is traced when its cgroup
 * is one of them. User space puts the job's cgroup and the descendants it has; dc_cgroup_mkdir
 * adds each cgroup made below one of them, and the job's own when it is made later. An id is
 * the cgroup directory's inode, the same in every cgroup namespace, never reused. */
DC_SHARED struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, __u8);
} dc_job_cgroups SEC(".maps");

/* The job's processes (host tgids) when dc_cfg.filter_tasks is set, for schedulers that give
 * a job no cgroup: what a step daemon (dc_cfg.parent_cmdline) forks, and what those fork in
 * turn, added by dc_task_fork; a process leaves when its last thread exits (dc_task_exit), so
 * a reused pid is not taken for the job's. */
DC_SHARED struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} dc_job_tasks SEC(".maps");

/* The job's cgroup while it does not exist yet: the names below an existing ancestor. */
DC_SHARED struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dc_scope);
} dc_scope SEC(".maps");

/* Per-thread state in task-local storage (kernel 5.11+ for tracing programs): the syscall in
 * flight, the thread's ids in the daemon's pid namespace and whether user space already has
 * its names. A pointer away from the task, without the hash map's bucket lock and the
 * allocation on every entry. */
DC_SHARED struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct dc_thread);
} dc_threads SEC(".maps");

/* Syscall number (x86-64) -> cookie of the traced syscall; 0 = not traced. Array lookups are
 * inlined by the verifier: an untraced syscall costs a bounds check and a load. */
DC_SHARED struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DC_MAX_SYSCALL_NR);
	__type(key, __u32);
	__type(value, __u64);
} dc_syscall_cookies SEC(".maps");

/* The same for 32-bit (compat) syscalls, by their own (ia32) numbers. */
DC_SHARED struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DC_MAX_SYSCALL_NR);
	__type(key, __u32);
	__type(value, __u64);
} dc_compat_cookies SEC(".maps");

/* A user function in flight, keyed by (pid_tgid, cookie). */
DC_SHARED struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct dc_ukey);
	__type(value, struct dc_inflight);
} dc_func_inflight SEC(".maps");

/* Fds named so far: (tgid, fd) -> its identity when named (dc_fd_ident) and its name's hash
 * (files.bpf.c). LRU: processes that die do not fill it up. */
DC_SHARED struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct dc_fdkey);
	__type(value, struct dc_fdname);
} dc_fd_names SEC(".maps");

/* File-name hashes already delivered: each distinct name crosses the ring buffer once. */
DC_SHARED struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} dc_names_sent SEC(".maps");

#define DC_PATH_MASK (DC_PATH_MAX - 1)

/* Per-CPU scratch for a name being built (files.bpf.c), too big for the 512-byte BPF stack: the
 * name record being filled (a name may run into spill while it is built; what is sent is cut to
 * DC_PATH_MAX - 1 bytes), and the buffer a dentry walk fills from its middle down. */
struct dc_path_scratch {
	struct dc_name rec;
	char spill[DC_PATH_MAX];
	char walk[2 * DC_PATH_MAX];
};
DC_SHARED struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dc_path_scratch);
} dc_scratch SEC(".maps");

/* io_uring requests of the job in flight (io_uring.bpf.c), by ring (struct io_ring_ctx *) and
 * request (struct io_kiocb *): both are reused by the kernel, so the entry holds the request's
 * user_data too, and any other task's submission of the same (ring, request) deletes it.
 * Submitted by the job's thread, completed there or in a kernel worker. LRU: an entry whose
 * completion is never seen (a CQE that overflowed, a ring torn down) does not fill it up. */
struct dc_uring_key {
	__u64 ring;
	__u64 req;
};
struct dc_uring_entry {
	struct dc_uring_req r;
	__u64 user_data;
};
DC_SHARED struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct dc_uring_key);
	__type(value, struct dc_uring_entry);
} dc_uring_inflight SEC(".maps");

/* Hits of each function probe (uprobe, kprobe) by function id, in every process, counted before
 * any filter: a breakpoint costs every process that runs the code, not only the job's, so the
 * daemon detaches a function whose rate passes the job's limit. Sized by user space. */
DC_SHARED struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dc_func_hits SEC(".maps");

/* Profile mode (dc_cfg.profile): the calls of each (process, thread, function, file, interval),
 * aggregated, instead of one ring-buffer record per call. User space harvests and deletes the
 * intervals that are over; a call that finds the map full is counted lost (DC_LOST_PROFILE).
 * Preallocated (resized by user space): an update never allocates. */
DC_SHARED struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1); /* resized by user space before load */
	__type(key, struct dc_agg_key);
	__type(value, struct dc_agg);
} dc_profile SEC(".maps");

/* Profile mode: aggregates threads handed over (their interval over, the thread gone, or the
 * harvest's task iterator took them): only ever inserted, never updated, so user space may read
 * and delete them at any time; a key comes here once (a thread leaves an interval once). */
DC_SHARED struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1); /* resized by user space before load */
	__type(key, struct dc_agg_key);
	__type(value, struct dc_agg);
} dc_profile_done SEC(".maps");

/* Profile mode: the first interval still open, for the task iterator (dc_profile_flush): the
 * threads' aggregates of earlier intervals are handed over. */
DC_SHARED struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dc_flush_before SEC(".maps");

/* Profile mode: which argument of a function is its file offset (index + 1, 0 = none), by
 * function id; sized and filled by user space. */
DC_SHARED struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} dc_offset_args SEC(".maps");

/* Profile mode: a new aggregate being built (too big for the BPF stack); slot 1 for io_uring
 * completions, which may interrupt a syscall's program on the same CPU. */
DC_SHARED struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct dc_agg);
} dc_agg_scratch SEC(".maps");

/* Trace mode's valve: each function's rule (DC_RULE_*), by function id; sized and filled by
 * user space from the probe file. */
DC_SHARED struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* resized by user space before load */
	__type(key, __u32);
	__type(value, __u32);
} dc_fold_rules SEC(".maps");

/* Trace mode's valve: the calls folded per function and CPU, by reason, and the function's
 * rate window on the CPU (struct dc_fold); user space turns the counts into the trace's marks
 * of when and why a function switched to aggregates and back. Sized by user space. */
DC_SHARED struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1); /* resized by user space before load */
	__type(key, __u32);
	__type(value, struct dc_fold);
} dc_folds SEC(".maps");

/* Trace mode's valve: flags user space sets (DC_VALVE_BUDGET_SPENT). */
DC_SHARED struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dc_valve SEC(".maps");

#endif /* DC_MAPS_H */
