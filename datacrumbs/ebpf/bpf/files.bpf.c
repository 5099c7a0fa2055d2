// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * File names, as the kernel knows them (the functions here; dc_files.h declares them).
 *
 * An fd is named by the file the process's fd table holds for it, read when the call uses it: the
 * path from the file's dentry up to the root of its mount namespace (the walk d_path does, crossing
 * mounts), " (deleted)" after it once the file is unlinked, or for pipes, sockets, anonymous inodes
 * and shmem's files with no path "pipe:[ino]", "socket:[ino]", "anon_inode:[eventfd]", "/memfd:NAME
 * (deleted)", as /proc/PID/fd (and so strace -y) shows them. Nothing has to watch open, close, dup,
 * rename or unlink: the walk is done once per (process, fd) and identity, dc_fd_names remembering
 * the name with the fd's identity (dc_fd_ident), and a call whose fd's identity differs walks
 * again. The identity is what the file is, not where its memory was: a pipe's or socket's dentry is
 * freed at close and the next file opened on the fd may get the same memory, and a pipe made again
 * gets back its file, dentry and inode memory (the name cache once compared only the dentry's
 * address, and named such files "pipe:[...]"). It is made of the struct file, its mount, dentry,
 * inode and inode number, whether the dentry is unlinked, a pseudo file's name, and for each dentry
 * up to the root its parent and name (hash and length) and each mount crossed: a rename of the file
 * or of any directory above it, an unlink, another file or pipe on the fd, all change it. Checking
 * it costs a read per path component (the walk it saves, five and the name's bytes). Fds inherited
 * from a parent (a shell's redirections) are named the same way.
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
#define DC_TMPFS_MAGIC 0x01021994
/* Bytes of a pseudo file's name an identity holds (the inline names are at least 32). */
#define DC_IDENT_NAME 32

/* The fields of a dentry that name it, in one read: d_hash.pprev (NULL once unhashed),
 * d_parent, d_name (hash_len, name) and d_inode lie in this order in every kernel this runs on
 * (dc_views_fit checks it). */
struct dc_dentry_view {
	__u64 pprev;
	__u64 parent;
	__u64 hash_len;
	__u64 name;
	__u64 inode;
};

/* The same for a mount: mnt_parent, mnt_mountpoint and its vfsmount's mnt_root. */
struct dc_mount_view {
	__u64 parent;
	__u64 mountpoint;
	__u64 root;
};

/* Whether the running kernel lays out dentries, mounts and paths as the views read them. The
 * offsets are CO-RE constants: the verifier folds the test away. */
static __always_inline bool dc_views_fit(void)
{
	__u64 h = bpf_core_field_offset(struct dentry, d_hash.pprev);
	__u64 m = bpf_core_field_offset(struct mount, mnt_parent);

	return bpf_core_field_offset(struct dentry, d_parent) == h + 8 &&
	       bpf_core_field_offset(struct dentry, d_name.hash_len) == h + 16 &&
	       bpf_core_field_offset(struct dentry, d_name.name) == h + 24 &&
	       bpf_core_field_offset(struct dentry, d_inode) == h + 32 &&
	       bpf_core_field_offset(struct mount, mnt_mountpoint) == m + 8 &&
	       bpf_core_field_offset(struct mount, mnt) == m + 16 &&
	       bpf_core_field_offset(struct vfsmount, mnt_root) == 0 &&
	       bpf_core_field_offset(struct path, mnt) == 0 &&
	       bpf_core_field_offset(struct path, dentry) == 8;
}

static __always_inline long dc_read_dentry(struct dc_dentry_view *v, __u64 d)
{
	return bpf_probe_read_kernel(v, sizeof(*v),
				     (void *)(d + bpf_core_field_offset(struct dentry, d_hash.pprev)));
}

static __always_inline long dc_read_mount(struct dc_mount_view *v, __u64 m)
{
	return bpf_probe_read_kernel(v, sizeof(*v),
				     (void *)(m + bpf_core_field_offset(struct mount, mnt_parent)));
}

/* d_unlinked(): unhashed, and not a root (pseudo files' dentries are their own parents). */
static __always_inline bool dc_unlinked(const struct dc_dentry_view *v, __u64 d)
{
	return v->pprev == 0 && v->parent != d;
}

static __always_inline __u64 dc_mix(__u64 h, __u64 v)
{
	h = (h ^ v) * 0x9E3779B97F4A7C15ULL;
	return h ^ (h >> 29);
}

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

/* A walked name of len bytes, and " (deleted)" after it when its dentry d is unlinked, as
 * d_path writes it (and so /proc/PID/fd and strace -y); returns the length. */
static __always_inline __u64 dc_deleted(struct dc_path_scratch *s, struct dentry *d, __u64 len)
{
	static const char deleted[] = " (deleted)";
	struct dc_dentry_view v;

	if (!len || len + sizeof(deleted) > DC_PATH_MAX || !dc_views_fit() ||
	    dc_read_dentry(&v, (__u64)d) || !dc_unlinked(&v, (__u64)d))
		return len;
	bpf_probe_read_kernel(&s->rec.name[len & DC_PATH_MASK], sizeof(deleted) - 1, deleted);
	return len + sizeof(deleted) - 1;
}

/* The name of an open file (its dentry d) into the record; returns its length, 0 if none. */
static __always_inline __u64 dc_file_path(struct dc_path_scratch *s, struct file *f,
					  struct dentry *d)
{
	const struct dentry_operations *op = BPF_CORE_READ(d, d_op);
	static const char pipe_fmt[] = "pipe:[%lu]";
	static const char socket_fmt[] = "socket:[%lu]";
	static const char anon_fmt[] = "anon_inode:%s";
	static const char shmem_fmt[] = "/%s (deleted)";
	static const char other_fmt[] = "%s:[%lu]";
	__u64 data[2];
	long n;

	if (!op || !BPF_CORE_READ(op, d_dname))
		return dc_deleted(s, d,
				  dc_walk_to_name(s, dc_walk(s, d, BPF_CORE_READ(f, f_path.mnt))));
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
	case DC_TMPFS_MAGIC: /* shmem's files with no path (memfd, SysV shm): simple_dname */
		data[0] = (__u64)BPF_CORE_READ(d, d_name.name);
		n = bpf_snprintf(s->rec.name, DC_PATH_MAX, shmem_fmt, data, sizeof(__u64));
		break;
	default:
		data[0] = (__u64)BPF_CORE_READ(d, d_sb, s_type, name);
		data[1] = BPF_CORE_READ(f, f_inode, i_ino);
		n = bpf_snprintf(s->rec.name, DC_PATH_MAX, other_fmt, data, sizeof(data));
	}
	return n > 1 ? n - 1 : 0;
}

/* What the current task's fd names, as a number (0 when it holds no file): the struct file,
 * its mount, dentry, inode and inode number, whether the dentry is unlinked, and up to the root
 * each dentry's parent and name (a pseudo file's name itself) and each mount crossed, as the
 * walk in dc_walk goes. Two equal
 * identities name the same file by the same name (but for a 64-bit collision, or a rename to
 * a name of the same length and 32-bit hash in the same directory). Where the kernel's layout
 * is not the views' (or a read fails), a number never seen again: the fd is walked each time. */
static __always_inline __u64 dc_ident_of(struct file *f)
{
	struct dc_dentry_view dv;
	struct dc_mount_view mv;
	__u64 path[2], d, m, h, name[DC_IDENT_NAME / 8];
	struct inode *inode;

	if (!dc_views_fit() ||
	    bpf_probe_read_kernel(path, sizeof(path),
				  (void *)f + bpf_core_field_offset(struct file, f_path)))
		goto unknown;
	d = path[1];
	m = path[0] - bpf_core_field_offset(struct mount, mnt);
	if (dc_read_mount(&mv, m) || dc_read_dentry(&dv, d))
		goto unknown;
	h = dc_mix(DC_FNV_OFFSET, (__u64)f);
	h = dc_mix(h, m);
	h = dc_mix(h, d);
	h = dc_mix(h, dv.inode);
	h = dc_mix(h, dc_unlinked(&dv, d));
	if (d == dv.parent && d != mv.root) {
		/* A pseudo file (its own root, not a mount's), named from its inode number or its
		 * name. Addresses alone are not enough: a pipe closed and made again in a loop gets
		 * back the same file, dentry and inode memory, under another inode number; and its
		 * name's hash is not computed ("[eventfd]" and "[timerfd]" have the same length). */
		inode = (struct inode *)dv.inode;
		h = dc_mix(h, BPF_CORE_READ(inode, i_ino));
		if (bpf_probe_read_kernel(name, sizeof(name), (void *)dv.name))
			goto unknown;
		for (int i = 0; i < DC_IDENT_NAME / 8; i++)
			h = dc_mix(h, name[i]);
		return h ? h : 1;
	}
	for (int i = 0; i < DC_WALK_DEPTH; i++) {
		if (d == mv.root || d == dv.parent) {
			if (d != mv.root || mv.parent == m)
				break; /* the namespace's root (or a tree no longer mounted) */
			d = mv.mountpoint;
			m = mv.parent;
			h = dc_mix(dc_mix(h, m), d);
			if (dc_read_mount(&mv, m) || dc_read_dentry(&dv, d))
				goto unknown;
			continue;
		}
		h = dc_mix(dc_mix(h, dv.hash_len), dv.name);
		d = dv.parent;
		h = dc_mix(h, d);
		if (dc_read_dentry(&dv, d))
			goto unknown;
	}
	return h ? h : 1;
unknown:
	h = dc_mix(bpf_ktime_get_ns(), (__u64)f);
	return h ? h : 1;
}

__noinline __u64 dc_fd_ident(__s64 fd)
{
	struct file *f = dc_fd_file(fd);

	return f ? dc_ident_of(f) : 0;
}

/* Name open file f (identity ident) and remember it under key: walked and delivered. */
static __always_inline __u64 dc_remember_name(struct dc_fdkey *key, struct file *f, __u64 ident,
					      __u32 pid, __u32 tid)
{
	struct dc_fdname v = {};
	struct dc_path_scratch *s;
	struct dentry *d;
	__u64 len;
	__u32 zero = 0;

	d = BPF_CORE_READ(f, f_path.dentry);
	s = bpf_map_lookup_elem(&dc_scratch, &zero);
	if (!s || !d)
		return 0;
	len = dc_file_path(s, f, d);
	if (!len)
		return 0;
	v.ident = ident;
	v.hash = dc_name_emit(len, pid, tid);
	bpf_map_update_elem(&dc_fd_names, key, &v, BPF_ANY);
	return v.hash;
}

/* The name hash of the current task's fd, whose identity is ident: remembered per (tgid, fd)
 * with the identity it was named for, walked and delivered when that differs. */
__noinline __u64 dc_fd_name_of(__u32 tgid, __s64 fd, __u64 ident, __u32 pid, __u32 tid)
{
	struct dc_fdkey key = {.tgid = tgid, .fd = (__u32)fd};
	struct dc_fdname *known;
	struct file *f;

	known = bpf_map_lookup_elem(&dc_fd_names, &key);
	if (known && known->ident == ident)
		return known->hash;
	/* Named after ident was taken: a rename or a new file meanwhile is named now, and the
	 * identity stored is then the older one, which the next call's no longer equals. */
	f = dc_fd_file(fd);
	return f ? dc_remember_name(&key, f, ident, pid, tid) : 0;
}

/* The name hash of open file ``file`` that process ``tgid`` reaches through ``slot`` (an
 * io_uring request's registered file: DC_FIXED_SLOT | its index), remembered as an fd's is. */
__noinline __u64 dc_file_name(__u32 tgid, __u32 slot, __u64 file, __u32 pid, __u32 tid)
{
	struct dc_fdkey key = {.tgid = tgid, .fd = slot};
	struct file *f = (struct file *)file;
	struct dc_fdname *known;
	__u64 ident;

	if (!f)
		return 0;
	ident = dc_ident_of(f);
	known = bpf_map_lookup_elem(&dc_fd_names, &key);
	if (known && known->ident == ident)
		return known->hash;
	return dc_remember_name(&key, f, ident, pid, tid);
}

/* The name hash of the current task's fd (0 when it holds no file). */
__noinline __u64 dc_fd_name(__u32 tgid, __s64 fd, __u32 pid, __u32 tid)
{
	__u64 ident = dc_fd_ident(fd);

	return ident ? dc_fd_name_of(tgid, fd, ident, pid, tid) : 0;
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

/* The name hash of the current task's working directory (0 when it cannot be walked). */
__noinline __u64 dc_cwd_name(__u32 pid, __u32 tid)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct dc_path_scratch *s;
	__u64 len;
	__u32 zero = 0;

	s = bpf_map_lookup_elem(&dc_scratch, &zero);
	if (!s)
		return 0;
	len = dc_walk_to_name(s, dc_walk(s, BPF_CORE_READ(task, fs, pwd.dentry),
					 BPF_CORE_READ(task, fs, pwd.mnt)));
	return len ? dc_name_emit(len, pid, tid) : 0;
}
