/* LD_PRELOAD for slurmd in the test cluster: /proc/<pid>/cgroup shows only its cgroup v2 line.
 *
 * Slurm 22.05's cgroup/v2 plugin refuses a hybrid host ("Hybrid mode is not supported": it
 * wants /proc/self/cgroup to start with "0::"), and this machine kind mounts v1 hierarchies
 * beside v2. The machines boot seeing pure v2 (SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1), but the
 * kernel still lists the v1 lines. This keeps the "0::" line alone, for slurmd and the
 * slurmstepd it starts (the job's own processes do not inherit it). A test-only measure for
 * this layout, never part of the product. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int is_cgroup_file(const char *path)
{
	static regex_t re;
	static int ready;

	if (!ready) {
		regcomp(&re, "^/proc/(self|thread-self|[0-9]+)(/task/[0-9]+)?/cgroup$", REG_EXTENDED);
		ready = 1;
	}
	return path && regexec(&re, path, 0, NULL, 0) == 0;
}

/* A memfd holding the v2 line of the real file (opened with the real open). */
static int v2_only(int real)
{
	char buf[8192], out[8192];
	ssize_t n = read(real, buf, sizeof(buf) - 1);
	size_t len = 0;
	int fd;

	close(real);
	if (n < 0)
		return -1;
	buf[n] = 0;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		if (strncmp(line, "0::", 3) == 0 && len + strlen(line) + 1 < sizeof(out))
			len += (size_t)snprintf(out + len, sizeof(out) - len, "%s\n", line);
	fd = memfd_create("cgroup", MFD_CLOEXEC);
	if (fd < 0 || write(fd, out, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET) != 0)
		return -1;
	return fd;
}

#define WRAP(name)                                                                              \
	int name(const char *path, int flags, ...)                                             \
	{                                                                                       \
		static int (*real)(const char *, int, ...);                                     \
		mode_t mode = 0;                                                                \
		va_list ap;                                                                     \
		int fd;                                                                         \
		if (!real)                                                                      \
			real = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, #name);       \
		if (flags & O_CREAT) {                                                          \
			va_start(ap, flags);                                                    \
			mode = va_arg(ap, mode_t);                                              \
			va_end(ap);                                                             \
		}                                                                               \
		fd = real(path, flags, mode);                                                   \
		return fd >= 0 && is_cgroup_file(path) ? v2_only(fd) : fd;                      \
	}

WRAP(open)
WRAP(open64)
