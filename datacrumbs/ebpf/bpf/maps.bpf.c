// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * datacrumbs' kernel half: generic programs that serve every traced function, in entry files
 * by what they trace (syscalls.bpf.c; functions.bpf.c: uprobes and kernel functions;
 * io_uring.bpf.c; scope.bpf.c: the job's cgroups and tasks; follow.bpf.c: the job's processes
 * for uprobes scoped to the job; profile.bpf.c: profile mode's task iterator) and the file
 * names' functions (files.bpf.c), over shared headers (dc_*.h), joined into one object,
 * datacrumbs.bpf.o, by libbpf's static linker (ebpf/build.py). This file holds the one
 * definition of every map and of dc_cfg (dc_maps.h declares them extern elsewhere) and the
 * license; it is linked first.
 *
 * One program pair serves thousands of targets: the BPF cookie given at attach time (or the
 * per-syscall cookie map) says which function fired and how to read its arguments (layout in
 * dc_records.h, mirrored in Python by datacrumbs/ebpf/syscalls.py and uprobes.py). Events
 * leave through a ring buffer per CPU; every failed reservation is counted per CPU in dc_lost
 * so that user space can report loss exactly. User space disables (autoload off) the programs
 * of the variants it does not use, and names them all in datacrumbs/ebpf/object_names.py.
 *
 * Minimum kernel: 5.15 (bpf_get_attach_cookie for tracepoints and uprobes; user space refuses
 * an older one, datacrumbs/ebpf/features.py). Other features used: bpf_snprintf (5.13),
 * task-local storage from tracing programs (5.11), tp_btf (5.5), ring buffer +
 * bpf_ringbuf_query (5.8), the task iterator (5.8: profile mode), bpf_get_ns_current_pid_tgid
 * (5.7), bpf_get_current_cgroup_id (4.18), bounded loops (5.3), global data (5.2);
 * uprobe_multi (6.6) and fentry/fexit with cookies (6.0) when available.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define DC_DEFINE_MAPS
#include "dc_maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
