"""The BPF object's maps and programs, by the names the kernel side (``ebpf/bpf/``) gives them:
the one place Python names them. The loader, the attachers and the engine all take their names from
here, so none imports another for a name, and renaming one in the C is one change here
(``tests/engine/test_build.py`` checks every name against the compiled object)."""

from __future__ import annotations

__all__ = [
    "CGROUP_MKDIR",
    "COMPAT_COOKIES_MAP",
    "FLUSH_BEFORE_MAP",
    "FOLDS_MAP",
    "FOLD_RULES_MAP",
    "FOLLOWED_MAP",
    "FOLLOW_EXEC",
    "FOLLOW_EXIT",
    "FOLLOW_FORK",
    "FOLLOW_LOST_MAP",
    "FOLLOW_RING_MAP",
    "FUNC_ENTER",
    "FUNC_EXIT",
    "HITS_MAP",
    "JOB_CGROUPS_MAP",
    "KFUNC_ENTER",
    "KFUNC_EXIT",
    "LOST_MAP",
    "MAPS",
    "OFFSET_ARGS_MAP",
    "PROFILE_DONE_MAP",
    "PROFILE_FLUSH",
    "PROFILE_MAP",
    "PROGRAMS",
    "RAW_SYS_ENTER",
    "RAW_SYS_EXIT",
    "RINGS_MAP",
    "SCOPE_MAP",
    "SYSCALL_COOKIES_MAP",
    "SYS_ENTER",
    "SYS_EXIT",
    "TASK_EXEC",
    "TASK_EXIT",
    "TASK_FORK",
    "UMULTI_ENTER",
    "UMULTI_EXIT",
    "URING_COMPLETE",
    "URING_SUBMIT",
    "USDT",
    "VALVE_MAP",
]

# Every map of the object (a per-function fentry object shares them all). First those user
# space reads or writes.
RINGS_MAP = "dc_rings"  # array of the per-CPU ring buffers
LOST_MAP = "dc_lost"  # per-CPU loss counters
JOB_CGROUPS_MAP = "dc_job_cgroups"  # the job's cgroup ids
SCOPE_MAP = "dc_scope"  # the awaited job cgroup, one component at a time
HITS_MAP = "dc_func_hits"  # per-function probe hits
FOLLOW_RING_MAP = "dc_follow_ring"  # the job's processes as they are born, exec and die
FOLLOWED_MAP = "dc_followed"  # the processes told so far
FOLLOW_LOST_MAP = "dc_follow_lost"  # records the follow ring could not take
PROFILE_MAP = "dc_profile"  # profile mode: aggregates of open intervals
PROFILE_DONE_MAP = "dc_profile_done"  # profile mode: aggregates handed over
FLUSH_BEFORE_MAP = "dc_flush_before"  # profile mode: hand over intervals before this
OFFSET_ARGS_MAP = "dc_offset_args"  # profile mode: which argument is a function's offset
FOLD_RULES_MAP = "dc_fold_rules"  # the valve: each function's rule
FOLDS_MAP = "dc_folds"  # the valve: calls folded per function and CPU, by reason
VALVE_MAP = "dc_valve"  # the valve: user space's flags (the trace's budget spent)
SYSCALL_COOKIES_MAP = "dc_syscall_cookies"  # syscall number -> cookie (raw_tp mode)
COMPAT_COOKIES_MAP = "dc_compat_cookies"  # ia32 syscall number -> cookie
MAPS = (
    "dc_woke",
    "dc_job_tasks",
    "dc_threads",
    "dc_func_inflight",
    "dc_fd_names",
    "dc_names_sent",
    "dc_scratch",
    "dc_uring_inflight",
    "dc_agg_scratch",
    RINGS_MAP,
    LOST_MAP,
    JOB_CGROUPS_MAP,
    SCOPE_MAP,
    HITS_MAP,
    PROFILE_MAP,
    PROFILE_DONE_MAP,
    FLUSH_BEFORE_MAP,
    FOLLOW_RING_MAP,
    FOLLOWED_MAP,
    FOLLOW_LOST_MAP,
    OFFSET_ARGS_MAP,
    FOLD_RULES_MAP,
    FOLDS_MAP,
    VALVE_MAP,
    SYSCALL_COOKIES_MAP,
    COMPAT_COOKIES_MAP,
    "__bpf_usdt_specs",  # libbpf's USDT argument specs (usdt.bpf.h), filled at attach
    "__bpf_usdt_ip_to_spec_id",
)

# Programs, by probe kind.
RAW_SYS_ENTER, RAW_SYS_EXIT = "dc_raw_sys_enter", "dc_raw_sys_exit"  # syscalls, raw_tp mode
SYS_ENTER, SYS_EXIT = "dc_sys_enter", "dc_sys_exit"  # syscalls, tracepoint mode
URING_SUBMIT, URING_COMPLETE = "dc_uring_submit", "dc_uring_complete"  # io_uring requests
FUNC_ENTER, FUNC_EXIT = "dc_func_enter", "dc_func_exit"  # a uprobe or kprobe per function
USDT = "dc_usdt"  # USDT probes, attached by libbpf
UMULTI_ENTER, UMULTI_EXIT = "dc_umulti_enter", "dc_umulti_exit"  # uprobe_multi links
KFUNC_ENTER, KFUNC_EXIT = "dc_kfunc_enter", "dc_kfunc_exit"  # fentry/fexit, loaded per function
TASK_EXEC, TASK_FORK, TASK_EXIT = "dc_task_exec", "dc_task_fork", "dc_task_exit"  # lifecycle
CGROUP_MKDIR = "dc_cgroup_mkdir"  # the job's cgroups as they are made
FOLLOW_FORK, FOLLOW_EXEC, FOLLOW_EXIT = "dc_follow_fork", "dc_follow_exec", "dc_follow_exit"
PROFILE_FLUSH = "dc_profile_flush"  # profile mode: the task iterator run before each harvest
PROGRAMS = (
    RAW_SYS_ENTER,
    RAW_SYS_EXIT,
    SYS_ENTER,
    SYS_EXIT,
    URING_SUBMIT,
    URING_COMPLETE,
    FUNC_ENTER,
    FUNC_EXIT,
    UMULTI_ENTER,
    UMULTI_EXIT,
    USDT,
    KFUNC_ENTER,
    KFUNC_EXIT,
    TASK_EXEC,
    TASK_FORK,
    TASK_EXIT,
    CGROUP_MKDIR,
    FOLLOW_FORK,
    FOLLOW_EXEC,
    FOLLOW_EXIT,
    PROFILE_FLUSH,
)
