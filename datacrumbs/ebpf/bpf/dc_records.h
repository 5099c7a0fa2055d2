/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The ABI between the kernel side (ebpf/bpf/) and user space: ring-buffer records, the cookie layout and
 * the configuration. Every record layout, enum, constant and cookie bit here is mirrored in
 * datacrumbs/ebpf/records.py; change both together. tests/engine/test_abi.py compiles this
 * header with gcc and checks every size, field offset, enum value, constant and cookie macro
 * against records.py (and the cookies syscalls.py and uprobes.py build against the macros).
 */
#ifndef DC_RECORDS_H
#define DC_RECORDS_H

#define DC_MAX_ARGS 6
#define DC_PATH_MAX 512 /* a power of two: indexes into path buffers are masked with it */
#define DC_COMM_LEN 16
/* Syscall numbers the cookie map covers (x86-64 numbers are below 512; x32 ones, with bit 30
 * set, fall outside and are never traced). */
#define DC_MAX_SYSCALL_NR 512

#define DC_FNV_OFFSET 0xcbf29ce484222325ULL
#define DC_FNV_PRIME 0x100000001b3ULL

enum dc_record_type {
	DC_REC_CALL = 1, /* struct dc_call: one completed call */
	DC_REC_NAME = 2, /* struct dc_name: a file name and its hash, variable size */
	DC_REC_TASK = 3, /* struct dc_task: a thread's and its process's command names */
};

enum dc_lost_slot {
	DC_LOST_CALLS = 0,    /* call records that found the ring buffer full */
	DC_LOST_NAMES = 1,    /* file-name records that found it full */
	DC_LOST_TASKS = 2,    /* task records that found it full */
	DC_LOST_INFLIGHT = 3, /* entries dropped because the in-flight map was full */
	DC_LOST_NESTED = 4,   /* calls of a function inside a call of it on the same thread */
	DC_LOST_COMPAT = 5,   /* 32-bit syscalls asked for whose arguments are not read */
	DC_LOST_PROFILE = 6,  /* profile mode: calls that found the profile map full */
	DC_LOST_SLOTS = 7,
};

/* Cookie, 64 bits:
 *   bits  0-23  function id (index into user space's function table)
 *   syscalls:  bits 24-26 a second fd argument (index + 1, 0 = none: the source of a copy,
 *              named in its own slot), bit 27 a success makes the path the working directory
 *              (chdir), bits 32-34 fd argument, 35-37 first path argument,
 *              38-40 second path argument, bit 41 the return value is a new fd, bit 42 the
 *              paths are relative to a directory fd, the argument before each (the *at calls)
 *   uprobes:   bits 24-29 which arguments are pointers to dereference,
 *              bits 32-49 three bits per argument: bytes to read minus one
 */
#define DC_COOKIE_FID(c) ((__u32)((c) & 0xffffff))
#define DC_SYS_FD_ARG(c) ((__u32)(((c) >> 32) & 7))
#define DC_SYS_PATH1(c) ((__u32)(((c) >> 35) & 7))
#define DC_SYS_PATH2(c) ((__u32)(((c) >> 38) & 7))
/* The other file of a two-file call (copy_file_range, sendfile, splice: the source): its fd
 * is named at entry and its slot in the record holds the name's hash. */
#define DC_SYS_FD2_ARG(c) ((__u32)(((c) >> 24) & 7))
/* chdir: when it succeeds, the call's file is the new working directory (its real path; a
 * relative path read at exit would be resolved against the directory it changed to). */
#define DC_SYS_RET_CWD (1ULL << 27)
#define DC_SYS_RET_FD (1ULL << 41)
/* Each path argument is relative to the directory fd just before it (openat, renameat, ...),
 * else to the working directory. */
#define DC_SYS_AT (1ULL << 42)
/* A 32-bit (compat) syscall that is asked for but whose ia32 arguments differ: counted, not
 * traced (dc_compat_cookies). */
#define DC_SYS_COMPAT_UNTRACED (1ULL << 45)
#define DC_UPROBE_IS_PTR(c, i) (((c) >> (24 + (i))) & 1)
#define DC_UPROBE_PTR_SIZE(c, i) ((__u32)((((c) >> (32 + 3 * (i))) & 7) + 1))
/* Function probes: the return value is not an integer (a kernel pointer, void): not sent. */
#define DC_FUNC_NO_RET (1ULL << 63)
/* Function probes of the C library, where the call's file is (index + 1, 0 = none): a FILE *
 * argument (its fd read at entry), a path argument (read at exit), an fd argument; and
 * whether the return value is a FILE * or an fd that the call opened for that file. */
#define DC_FUNC_FILE_ARG(c) ((__u32)(((c) >> 50) & 7))
#define DC_FUNC_PATH_ARG(c) ((__u32)(((c) >> 53) & 7))
#define DC_FUNC_FD_ARG(c) ((__u32)(((c) >> 56) & 7))
#define DC_FUNC_RET_FILE (1ULL << 59)
#define DC_FUNC_RET_FD (1ULL << 60)
/* The return value counts items of the second argument's size (fread, fwrite): the event's
 * ret is their bytes, as the tools take sizes from ret. */
#define DC_FUNC_RET_ITEMS (1ULL << 61)

/* 96 bytes (+8 ring-buffer header). */
struct dc_call {
	__u32 type; /* DC_REC_CALL */
	__u32 fid;
	__u32 pid; /* process id, in the daemon's pid namespace */
	__u32 tid; /* thread id, same namespace */
	__u64 ts;  /* entry, CLOCK_MONOTONIC ns */
	__u64 dur; /* ns */
	__s64 ret;
	__u64 fhash; /* hash of the file name, 0 = unknown */
	__u64 args[DC_MAX_ARGS];
};

/* Variable size: the header and len + 1 bytes of name. */
struct dc_name {
	__u32 type; /* DC_REC_NAME */
	__u32 len;  /* bytes of name, without the NUL */
	__u64 hash;
	__u32 pid;
	__u32 tid;
	char name[DC_PATH_MAX];
};

struct dc_task {
	__u32 type; /* DC_REC_TASK */
	__u32 pad;
	__u32 pid;
	__u32 tid;
	char comm[DC_COMM_LEN];
	char process_comm[DC_COMM_LEN];
};

/* The start of the command line of the processes that start a job's tasks (a scheduler's
 * step daemon), NUL compared as a space: DATACRUMBS_JOB_PARENT_CMDLINE. */
#define DC_PARENT_CMDLINE 64
/* Ring buffers at most (dc_rings): one per CPU up to this many. */
#define DC_MAX_RINGS 64

struct dc_config {
	__u32 uid;
	__u32 filter_uid;
	__u32 filter_cgroup;
	__u32 self_tgid; /* the daemon itself (host tgid): never traced, or it would trace its
			  * own trace writes */
	__u64 pidns_dev;
	__u64 pidns_ino;
	__u64 wakeup_bytes;
	__u32 filter_tasks; /* only the processes in dc_job_tasks */
	__u32 parent_cmdline_len; /* 1..DC_PARENT_CMDLINE - 1 when filter_tasks */
	char parent_cmdline[DC_PARENT_CMDLINE];
	__u32 rings; /* ring buffers in dc_rings, 1..DC_MAX_RINGS */
	__u32 profile; /* profile mode: calls are aggregated in dc_profile, not sent */
	__u64 interval_ns; /* profile mode and the valve: the length of an aggregate's interval */
	/* profile mode: added to CLOCK_MONOTONIC before dividing, so that intervals start on
	 * whole multiples of their length in wall-clock time (on every node alike): the wall
	 * clock's offset from CLOCK_MONOTONIC modulo interval_ns, at load */
	__u64 interval_shift;
	/* trace mode's valve (valve = 1): a call that would be an event is folded into its
	 * aggregate, as profile mode makes them, when its ring holds more than fold_above bytes
	 * not consumed yet (0: only when the ring is full), when its function passed rate_limit
	 * calls (0: no limit) in rate_window_ns on this CPU, when user space said the trace's
	 * byte budget is spent (dc_valve), or by the function's rule (dc_fold_rules) */
	__u64 fold_above;
	__u64 rate_window_ns;
	__u32 rate_limit;
	__u32 valve;
};

/* Why a call was folded into an aggregate instead of sent (trace mode's valve): counted per
 * function and CPU in struct dc_fold. */
enum dc_fold_reason {
	DC_FOLD_RING = 0,   /* its ring above the high-water mark, or full */
	DC_FOLD_RATE = 1,   /* its function above its rate on this CPU */
	DC_FOLD_BUDGET = 2, /* the trace's byte budget spent */
	DC_FOLD_RULE = 3,   /* its function's rule: always aggregated */
	DC_FOLD_REASONS = 4,
};

/* A function's rule (dc_fold_rules): events until the valve opens (the default), always events
 * (never folded: a full ring loses them), always aggregated. */
#define DC_RULE_VALVE 0
#define DC_RULE_EVENTS 1
#define DC_RULE_AGGREGATE 2

/* Per function and CPU (dc_folds): the calls folded, by reason, and this CPU's rate window
 * (its start, ns, and the calls in it). Slot 0 (no function has id 0) holds the totals. */
struct dc_fold {
	__u64 calls[DC_FOLD_REASONS];
	__u64 window;
	__u64 window_calls;
};

/* dc_valve's flags, set by user space. */
#define DC_VALVE_BUDGET_SPENT 1

struct dc_inflight {
	__u64 ts;
	__u64 cookie;
	__u64 args[DC_MAX_ARGS];
	__u64 depth; /* function probes: calls of it nested inside this one, still running */
	__u64 fhash; /* the name of the call's fd (0: none), resolved at entry: close frees it */
};

/* Profile mode: one aggregate per (process, thread, function, file, interval). An interval is
 * the call's exit time (CLOCK_MONOTONIC) plus dc_cfg.interval_shift, divided by
 * dc_cfg.interval_ns. */
#define DC_HIST_BUCKETS 32
struct dc_agg_key {
	__u32 pid; /* ids in the daemon's pid namespace */
	__u32 tid;
	__u32 fid;
	__u32 pad;
	__u64 interval;
	__u64 fhash;  /* the call's file, 0 = none or unknown */
	__u64 fhash2; /* its other file: a copy's source, a rename's new name; 0 = none */
};

struct dc_agg {
	__u64 count;
	__u64 dur_sum; /* ns */
	__u64 dur_min;
	__u64 dur_max;
	__s64 ret_sum; /* of the calls that did not fail (ret >= 0): the bytes of reads and writes */
	__u64 errors;  /* calls that failed (ret < 0) */
	__s64 ret_min;
	__s64 ret_max;
	__s64 offset_min; /* functions with an offset argument (dc_offset_args); else 0 */
	__s64 offset_max;
	/* calls by their return value (bytes, for reads and writes): bucket 0 holds ret <= 0,
	 * bucket k the values from 2^(k-1) to 2^k - 1, the last one everything above */
	__u64 ret_log2[DC_HIST_BUCKETS];
};

/* A file the thread used lately, by fd: its name holds while dc_fd_ident(fd) is the same. */
struct dc_fd_seen {
	__s64 fd; /* -1: none */
	__u64 ident;
	__u64 hash;
};
#define DC_FDS_SEEN 2

struct dc_thread {
	struct dc_inflight sys; /* the syscall in flight; ts == 0: none */
	__u32 pid;		/* ids in the daemon's pid namespace, once ids_known */
	__u32 tid;
	__u32 ids_known;
	__u32 described; /* user space has this thread's names */
	__u32 ring;	 /* its ring buffer (index in dc_rings), once ring_known */
	__u32 ring_known;
	/* the fds of its last calls (a read loop's, a copy's two): named without dc_fd_names */
	struct dc_fd_seen fds[DC_FDS_SEEN];
	__u32 fds_next; /* the slot to replace next */
	__u32 fds_known; /* fds[] initialised (task storage starts zeroed: fd 0 would match) */
	__u64 interval;	    /* profile mode: the interval of its last call, */
	__u64 interval_end; /* and when it ends (ns, CLOCK_MONOTONIC; 0: none yet) */
	/* profile mode: the aggregate its calls go to while they keep the same function, file
	 * and interval, added to without a map lookup; agg_state says who holds it */
	__u64 agg_state; /* 64 bits: the atomic swaps of BPF's default instruction set */
	struct dc_agg_key agg_key;
	struct dc_agg agg;
};

/* dc_thread.agg_state: nothing held; the thread's aggregate; being handed over to user space
 * (by the thread, its exit, or the harvest's task iterator: whoever swapped HELD for it). */
#define DC_AGG_EMPTY 0
#define DC_AGG_HELD 1
#define DC_AGG_HANDING 2

struct dc_ukey {
	__u64 pid_tgid;
	__u64 cookie;
};

struct dc_fdkey {
	__u32 tgid;
	__u32 fd;
};

/* What a (tgid, fd) was last found to name: the name is good while the fd's identity
 * (dc_fd_ident: the open file and every dentry and mount of its path) is the same. */
struct dc_fdname {
	__u64 ident;
	__u64 hash;
};

/* An io_uring request of the job between submission and completion. args: fd, size (iovecs
 * for READV/WRITEV), offset, whether fd indexes the ring's registered files. */
struct dc_uring_req {
	__u64 ts;
	__u64 fhash;
	__u64 args[4];
	__u32 pid;
	__u32 tid;
	__u32 opcode;
	__u32 pad;
};

/* The job's cgroup before it exists (dc_scope): ``depth`` names below the cgroup ``parent``
 * (user space's), matched in order as they are made; ``found`` is the job's cgroup id. */
#define DC_SCOPE_DEPTH 4
#define DC_SCOPE_NAME 64
struct dc_scope {
	__u64 parent;
	__u64 found;
	__u32 next;
	__u32 depth;
	char names[DC_SCOPE_DEPTH][DC_SCOPE_NAME];
};

/* The sizes records.py assumes (tests/engine/test_abi.py checks every offset). */
_Static_assert(sizeof(struct dc_call) == 96, "dc_call is 96 bytes");
_Static_assert(sizeof(struct dc_name) == 24 + DC_PATH_MAX, "dc_name header is 24 bytes");
_Static_assert(sizeof(struct dc_task) == 48, "dc_task is 48 bytes");
_Static_assert(sizeof(struct dc_config) == 160, "dc_config is 160 bytes");
_Static_assert(sizeof(struct dc_fold) == 48, "dc_fold is 48 bytes");
_Static_assert(sizeof(struct dc_agg_key) == 40, "dc_agg_key is 40 bytes");
_Static_assert(sizeof(struct dc_agg) == 80 + 8 * DC_HIST_BUCKETS, "dc_agg is 336 bytes");

#endif /* DC_RECORDS_H */
