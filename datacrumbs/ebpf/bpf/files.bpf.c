// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * File names, as the kernel knows them (the functions here; dc_files.h declares them).
 *
 * An fd is named by the file the process's fd table holds for it, read when the call uses it:
 * the path from the file's dentry up to the root of its mount namespace (the walk d_path does,
 * crossing mounts), or for pipes, sockets and anonymous inodes "pipe:[ino]", "socket:[ino]",
 * "anon_inode:[eventfd]", as /proc/PID/fd (and so strace -y) shows them. The walk is done once
 * per (process, fd, dentry): dc_fd_names remembers the dentry an fd was named for, so a name is
 * never stale — an fd reused for another file (after a close, a dup2, an exec's close-on-exec,
 * a reused pid) holds another dentry and is named again — and nothing has to watch open, close
 * or dup. Fds inherited from a parent (a shell's redirections) are named the same way.
 *
 * A path argument is named as given when absolute; a relative one is resolved against the
 * directory fd of an *at call (the argument before it) or the task's working directory, as the
 * kernel itself resolves it ("./" dropped, ".." and links kept).
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "dc_files.h"
#include "dc_task.h"

/* Path components walked at most (mount crossings included). */
#define DC_WALK_DEPTH 48
#define DC_PIPEFS_MAGIC 0x50495045
#define DC_SOCKFS_MAGIC 0x534F434B
#define DC_ANON_INODE_FS_MAGIC 0x09041934

/* Hash the name in the CPU's scratch record (FNV-1a 64, 0 maps to 1) and deliver it once.
 * Returns the hash (0 without scratch). */
__noinline __u64 dc_name_emit(__u64 len, __u32 pid, __u32 tid)
{
	__u64 h = DC_FNV_OFFSET;
	struct dc_path_scratch *s;
	__u32 zero = 0;
	__u8 one = 1;
	void *ring;

	s = bpf_map_lookup_elem(&dc_scratch, &zero);
	if (!s)
		return 0;
	if (len > DC_PATH_MASK)
		len = DC_PATH_MASK;
	/* Counted up from 0 on a register the compiler may not rewrite (barrier_var): as a count
	 * down from len, which clang makes of it otherwise, verifiers before 6.8 cannot see the
	 * loop end and refuse it. Each step is then a known index, at most DC_PATH_MAX of them. */
	for (__u64 i = 0; i < DC_PATH_MAX; i++) {
		barrier_var(i);
		if (i >= len)
			break;
		h ^= (__u8)s->rec.name[i & DC_PATH_MASK];
		h *= DC_FNV_PRIME;
	}
	if (h == 0)
		h = 1;
	if (bpf_map_lookup_elem(&dc_names_sent, &h))
		return h;
	s->rec.name[len & DC_PATH_MASK] = 0;
	s->rec.type = DC_REC_NAME;
	s->rec.len = len;
	s->rec.hash = h;
	s->rec.pid = pid;
	s->rec.tid = tid;
	/* the thread's own ring: its name comes before its call that uses it */
	ring = dc_current_ring();
	if (ring && bpf_ringbuf_output(ring, &s->rec,
				       offsetof(struct dc_name, name) + (len & DC_PATH_MASK) + 1,
				       dc_wakeup_flags(ring)) == 0)
		bpf_map_update_elem(&dc_names_sent, &h, &one, BPF_ANY);
	else
		dc_count_lost(DC_LOST_NAMES);
	return h;
}

/* The path of (dentry, mount) from the root of the mount namespace, built backwards so that it
 * ends at s->walk[DC_PATH_MAX]: returns where it starts. Components that do not fit are left
 * out from the top (a name longer than DC_PATH_MAX keeps its end). */
static __noinline __u64 dc_walk(struct dc_path_scratch *s, struct dentry *d, struct vfsmount *vm)
{
	struct mount *m = (void *)vm - bpf_core_field_offset(struct mount, mnt);
	__u64 off = DC_PATH_MAX; /* 64-bit arithmetic throughout: the verifier follows its bounds */

	for (int i = 0; i < DC_WALK_DEPTH; i++) {
		struct dentry *root = BPF_CORE_READ(vm, mnt_root);
		struct dentry *parent = BPF_CORE_READ(d, d_parent);
		const unsigned char *name;
		__u64 len;

		if (d == root || d == parent) {
			struct mount *up = BPF_CORE_READ(m, mnt_parent);

			if (d != root || up == m)
				break; /* the namespace's root (or a tree no longer mounted) */
			d = BPF_CORE_READ(m, mnt_mountpoint);
			m = up;
			vm = &up->mnt;
			continue;
		}
		len = BPF_CORE_READ(d, d_name.len);
		name = BPF_CORE_READ(d, d_name.name);
		if (len == 0 || len >= DC_PATH_MAX || len + 1 > off)
			break;
		off -= len + 1;
		if (off >= DC_PATH_MAX)
			break;
		bpf_probe_read_kernel(&s->walk[(off + 1) & DC_PATH_MASK], len & DC_PATH_MASK, name);
		s->walk[off & DC_PATH_MASK] = '/';
		d = parent;
	}
	if (off == DC_PATH_MAX) { /* the root itself */
		off -= 1;
		s->walk[off & DC_PATH_MASK] = '/';
	}
	return off;
}

/* Copy the walked path s->walk[off .. DC_PATH_MAX) to the start of the record's name; returns
 * its length. */
static __always_inline __u64 dc_walk_to_name(struct dc_path_scratch *s, __u64 off)
{
	__u64 len;

	if (off >= DC_PATH_MAX)
		return 0;
	len = DC_PATH_MAX - off;
	bpf_probe_read_kernel(s->rec.name, len, &s->walk[off]);
	return len;
}

/* The name of an open file (its dentry d) into the record; returns its length, 0 if none. */
static __always_inline __u64 dc_file_path(struct dc_path_scratch *s, struct file *f,
					  struct dentry *d)
{
	const struct dentry_operations *op = BPF_CORE_READ(d, d_op);
	static const char pipe_fmt[] = "pipe:[%lu]";
	static const char socket_fmt[] = "socket:[%lu]";
	static const char anon_fmt[] = "anon_inode:%s";
	static const char other_fmt[] = "%s:[%lu]";
	__u64 data[2];
	long n;

	if (!op || !BPF_CORE_READ(op, d_dname))
		return dc_walk_to_name(s, dc_walk(s, d, BPF_CORE_READ(f, f_path.mnt)));
	/* a pseudo file: its name is made up, as d_path makes it (d_dname) */
	switch (BPF_CORE_READ(d, d_sb, s_magic)) {
	case DC_PIPEFS_MAGIC:
		data[0] = BPF_CORE_READ(f, f_inode, i_ino);
		n = bpf_snprintf(s->rec.name, DC_PATH_MAX, pipe_fmt, data, sizeof(__u64));
		break;
	case DC_SOCKFS_MAGIC:
		data[0] = BPF_CORE_READ(f, f_inode, i_ino);
		n = bpf_snprintf(s->rec.name, DC_PATH_MAX, socket_fmt, data, sizeof(__u64));
		break;
	case DC_ANON_INODE_FS_MAGIC:
		data[0] = (__u64)BPF_CORE_READ(d, d_name.name);
		n = bpf_snprintf(s->rec.name, DC_PATH_MAX, anon_fmt, data, sizeof(__u64));
		break;
	default:
		data[0] = (__u64)BPF_CORE_READ(d, d_sb, s_type, name);
		data[1] = BPF_CORE_READ(f, f_inode, i_ino);
		n = bpf_snprintf(s->rec.name, DC_PATH_MAX, other_fmt, data, sizeof(data));
	}
	return n > 1 ? n - 1 : 0;
}

/* The name hash of the current task's fd (0 when it holds no file): remembered per (tgid, fd)
 * while the fd holds the same dentry, walked and delivered otherwise. */
__noinline __u64 dc_fd_name(__u32 tgid, __s64 fd, __u32 pid, __u32 tid)
{
	struct dc_fdkey key = {.tgid = tgid, .fd = (__u32)fd};
	struct file *f = dc_fd_file(fd);
	struct dc_fdname *known, v = {};
	struct dc_path_scratch *s;
	struct dentry *d;
	__u64 len;
	__u32 zero = 0;

	if (!f)
		return 0;
	d = BPF_CORE_READ(f, f_path.dentry);
	known = bpf_map_lookup_elem(&dc_fd_names, &key);
	if (known && known->dentry == (__u64)d)
		return known->hash;
	s = bpf_map_lookup_elem(&dc_scratch, &zero);
	if (!s || !d)
		return 0;
	len = dc_file_path(s, f, d);
	if (!len)
		return 0;
	v.dentry = (__u64)d;
	v.hash = dc_name_emit(len, pid, tid);
	bpf_map_update_elem(&dc_fd_names, &key, &v, BPF_ANY);
	return v.hash;
}

/* The name hash of a user path argument (0 when unreadable or ""), resolved against the
 * directory fd dirfd (DC_AT_FDCWD: the working directory) when relative. */
__noinline __u64 dc_path_name(__u64 upath, __s64 dirfd, __u32 pid, __u32 tid)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct dc_path_scratch *s;
	struct dentry *d;
	struct vfsmount *vm;
	struct file *f;
	__u64 pos;
	__u32 zero = 0;
	long len;

	s = bpf_map_lookup_elem(&dc_scratch, &zero);
	if (!s || !upath)
		return 0;
	len = bpf_probe_read_user_str(s->rec.name, DC_PATH_MAX, (const void *)upath);
	if (len <= 1)
		return 0; /* unreadable, or "" (AT_EMPTY_PATH: the call is on its fd) */
	if (s->rec.name[0] == '/')
		return dc_name_emit(len - 1, pid, tid);
	if (s->rec.name[0] == '.' && (s->rec.name[1] == '/' || s->rec.name[1] == 0))
		upath += len == 2 ? 1 : 2; /* "./x" is x, "." the directory itself */
	if (dirfd == DC_AT_FDCWD) {
		d = BPF_CORE_READ(task, fs, pwd.dentry);
		vm = BPF_CORE_READ(task, fs, pwd.mnt);
	} else {
		f = dc_fd_file(dirfd);
		if (!f)
			return 0; /* the call failed with EBADF: nothing was named */
		d = BPF_CORE_READ(f, f_path.dentry);
		vm = BPF_CORE_READ(f, f_path.mnt);
	}
	pos = dc_walk_to_name(s, dc_walk(s, d, vm));
	if (pos == 0 || pos >= DC_PATH_MASK)
		return 0; /* no room left for the relative part */
	if (pos > 1) /* not the root: a separator */
		s->rec.name[pos++] = '/';
	len = bpf_probe_read_user_str(&s->rec.name[pos & DC_PATH_MASK], DC_PATH_MAX,
				      (const void *)upath);
	if (len < 1)
		return 0;
	if (len == 1 && pos > 1) /* "." : the directory, without the separator */
		pos -= 1;
	return dc_name_emit(pos + len - 1, pid, tid);
}
