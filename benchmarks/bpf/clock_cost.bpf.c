// SPDX-License-Identifier: GPL-2.0
/* What one precise clock read costs a traced syscall: four sys_enter programs that differ only
 * in how many bpf_ktime_get_ns() calls they make (0, 1, 2, 4) for the benchmark's uid. Each
 * keeps its result in a per-CPU slot so that no read is optimised away. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#ifndef TARGET_UID
#error "build with -DTARGET_UID=<uid>"
#endif

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sink SEC(".maps");

static __always_inline int keep(__u64 v)
{
	__u32 zero = 0;
	__u64 *slot = bpf_map_lookup_elem(&sink, &zero);

	if (slot)
		*slot += v;
	return 0;
}

static __always_inline bool ours(void)
{
	return (__u32)bpf_get_current_uid_gid() == TARGET_UID;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(clock0, struct pt_regs *regs, long id)
{
	return ours() ? keep(1) : 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(clock1, struct pt_regs *regs, long id)
{
	return ours() ? keep(bpf_ktime_get_ns()) : 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(clock2, struct pt_regs *regs, long id)
{
	__u64 a;

	if (!ours())
		return 0;
	a = bpf_ktime_get_ns();
	return keep(bpf_ktime_get_ns() - a);
}

SEC("tp_btf/sys_enter")
int BPF_PROG(clock4, struct pt_regs *regs, long id)
{
	__u64 a, b;

	if (!ours())
		return 0;
	a = bpf_ktime_get_ns();
	b = bpf_ktime_get_ns();
	b -= bpf_ktime_get_ns();
	return keep(bpf_ktime_get_ns() - a + b);
}
