"""32-bit processes are traced too (issue 13): an ia32 process's syscalls are looked up in the
ia32 table and read from its registers, with the same names, arguments and file names as a
64-bit process's. The arguments are what the kernel reads (issue 25, N8): the low 32 bits of
each register, whatever a 64-bit process making ia32 syscalls (int $0x80) put above them, and
64-bit offsets and lengths split over two registers joined; every ia32 syscall that does what a
syscall of the probe file does is traced so, or counted as lost (the old mmap, whose arguments
are in memory)."""

from __future__ import annotations

import subprocess

from engine_support import as_user, user_dir

from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.ebpf import arch, syscalls

GIB = 1 << 30


def test_a_32_bit_process_is_traced_with_the_same_names(
    session, compile_c, public_dir, traced_user
):
    binary = compile_c(
        "ia32_io.c", "ia32_io", "-m32", "-nostdlib", "-static", "-fno-pie", "-no-pie"
    )
    work = user_dir(public_dir, traced_user, "ia32")
    path = work / "out.txt"
    probes = [
        Probe(type=ProbeType.SYSCALLS, name="posix",
              functions=["open", "openat", "write", "pwrite64", "statx", "mmap", "msync",
                         "munmap", "close"])
    ]  # fmt: skip
    with session(probes, uid=traced_user.uid) as s:
        process = subprocess.Popen(as_user(traced_user, [str(binary), str(path)]))
        assert process.wait(timeout=30) == 0
    trace = s.trace
    assert path.read_text() == "ia32\n" * 3 + "tail\n"

    names = trace.file_names()
    events = sorted(trace.events_of(process.pid), key=lambda e: e["ts"])
    calls = [(e["name"], e["args"]["syscall"], names.get(e["args"].get("fhash"))) for e in events]
    f = str(path)
    assert calls == (
        [("open", "open", f)] + [("write", "write", f)] * 3
        + [("pwrite", "pwrite64", f), ("stat", "statx", f), ("mmap", "mmap", f),
           ("msync", "msync", None), ("munmap", "munmap", None), ("close", "close", f)]
    )  # fmt: skip
    fd = events[0]["args"]["ret"]
    assert [e["args"].get("fd", e["args"].get("dirfd")) for e in events[1:6]] == [fd] * 5
    assert [(e["args"]["size"], e["args"].get("offset")) for e in events[1:5]] == [
        (5, None)] * 3 + [(5, 15)]  # fmt: skip
    # statx(fd, "", AT_EMPTY_PATH): 32-bit glibc 2.36's fstat, on its fd's file
    assert (events[5]["args"]["flags"], events[5]["args"]["ret"]) == (0x1000, 0)
    msync, munmap = events[7]["args"], events[8]["args"]
    assert (msync["size"], msync["flags"], msync["ret"]) == (4096, 4, 0)  # MS_SYNC
    assert msync["addr"] == munmap["addr"] != 0 and munmap["size"] == 4096
    assert trace.stats.lost == 0


def test_ia32_calls_of_a_64_bit_process_are_read_as_the_kernel_reads_them(
    session, compile_c, public_dir, traced_user
):
    """Issue 25, N8: a 64-bit process makes ia32 syscalls (int $0x80) with the upper half of
    every register set. Each path is a pointer whose low 32 bits name the real file and whose
    64 bits name a decoy; the kernel uses the low halves, and so does the trace: the files the
    kernel used, the sizes and offsets it used (a write of 5 bytes, an lseek of -2). A syscall
    number is an int to the kernel: an x86-64 write whose number has its upper half set too is
    a write, in the trace as well."""
    binary = compile_c("ia32_from_64.c", "ia32_from_64", "-static", "-fno-pie", "-no-pie")
    work = user_dir(public_dir, traced_user, "ia32-from-64")
    for name in ("decoy", "decoy2"):
        (work / name).write_text(name)
    probes = [
        Probe(type=ProbeType.SYSCALLS, name="posix",
              functions=["open", "write", "lseek", "close", "access", "truncate", "rename",
                         "unlink"])
    ]  # fmt: skip
    with session(probes, uid=traced_user.uid) as s:
        process = subprocess.Popen(as_user(traced_user, [str(binary), str(work)]))
        assert process.wait(timeout=30) == 0
    pid = process.pid
    trace = s.trace
    assert sorted(p.name for p in work.iterdir()) == ["decoy", "decoy2"]  # real2 unlinked
    assert [(work / n).read_text() for n in ("decoy", "decoy2")] == ["decoy", "decoy2"]

    names = trace.file_names()
    real, real2 = str(work / "real"), str(work / "real2")
    events = sorted(trace.events_of(pid), key=lambda e: e["ts"])
    fd = events[0]["args"]["ret"]

    def arg(e, key):  # type: ignore[no-untyped-def]
        value = e["args"].get(key)
        return names[value] if key.endswith("fhash") else value

    got = [
        (e["args"]["syscall"], names.get(e["args"]["fhash"]), arg(e, "fd"), arg(e, "size"),
         arg(e, "offset"), arg(e, "whence"), e["args"]["ret"])
        for e in events
    ]  # fmt: skip
    assert got == [
        ("open", real, None, None, None, None, fd),
        ("write", real, fd, 5, None, None, 5),
        ("write", real, fd, 5, None, None, 5),  # the x86-64 one
        ("lseek", real, fd, None, -2, 1, 8),
        ("close", real, fd, None, None, None, 0),
        ("access", real, None, None, None, None, 0),
        ("truncate", real, None, 3, None, None, 0),
        ("rename", real, None, None, None, None, 0),
        ("unlink", real2, None, None, None, None, 0),
    ]
    assert arg(events[7], "new_fhash") == real2
    assert [e["args"]["flags"] for e in events[:1]] == [0o1101]  # O_WRONLY|O_CREAT|O_TRUNC
    assert not any("decoy" in name for name in names.values())
    assert trace.stats.lost == 0


def test_ia32_split_64_bit_offsets_and_lengths_are_joined(
    session, compile_c, public_dir, traced_user
):
    """Issue 25, N8: a 32-bit process's _llseek, pread64, pwrite64, pwritev, ftruncate64,
    truncate64 and mmap2, past 4 GiB: traced with the offsets and lengths the kernel used
    (the values strace shows); _llseek, which returns 0 and stores the offset, under its own
    name; the old mmap, whose arguments are in memory, counted as lost."""
    binary = compile_c(
        "ia32_large.c", "ia32_large", "-m32", "-nostdlib", "-static", "-fno-pie", "-no-pie"
    )
    work = user_dir(public_dir, traced_user, "ia32-large")
    path = work / "sparse.bin"
    probes = [
        Probe(type=ProbeType.SYSCALLS, name="posix",
              functions=["open", "write", "lseek", "ftruncate", "pwrite64", "pread64",
                         "pwritev", "mmap", "truncate", "close"])
    ]  # fmt: skip
    try:
        with session(probes, uid=traced_user.uid) as s:
            process = subprocess.Popen(as_user(traced_user, [str(binary), str(path)]))
            assert process.wait(timeout=30) == 0
        assert path.stat().st_size == 6 * GIB + 9
        with path.open("rb") as f:
            f.seek(4 * GIB + 7)
            assert f.read(6) == b"large\n"
            f.seek(4 * GIB + 100)
            assert f.read(6) == b"vector"
    finally:
        path.unlink(missing_ok=True)  # a sparse file, but 6 GiB long
    trace = s.trace

    names = trace.file_names()
    events = sorted(trace.events_of(process.pid), key=lambda e: e["ts"])
    assert {names[e["args"]["fhash"]] for e in events} == {str(path)}
    fd = events[0]["args"]["ret"]
    keys = ("fd", "size", "iovcnt", "offset", "whence")
    got = [
        (e["name"], e["args"]["syscall"], *(e["args"].get(k) for k in keys),
         None if e["name"] == "mmap" else e["args"]["ret"])
        for e in events
    ]  # fmt: skip
    assert got == [
        ("open", "open", None, None, None, None, None, fd),
        ("write", "write", fd, 5, None, None, None, 5),
        ("lseek", "lseek", fd, None, None, -2, 1, 3),
        ("ftruncate", "ftruncate", fd, 5 * GIB + 3, None, None, None, 0),
        ("pwrite", "pwrite64", fd, 6, None, 4 * GIB + 7, None, 6),
        ("lseek", "_llseek", fd, None, None, 4 * GIB + 7, 0, 0),
        ("pread", "pread64", fd, 6, None, 4 * GIB + 7, None, 6),
        ("pwritev", "pwritev", fd, None, 1, 4 * GIB + 100, None, 6),
        ("mmap", "mmap", fd, 4096, None, 4 * GIB + 4096, None, None),
        ("truncate", "truncate", None, 6 * GIB + 9, None, None, None, 0),
        ("close", "close", fd, None, None, None, None, 0),
    ]
    assert (trace.stats.loss.compat, trace.stats.lost) == (1, 1)  # the old mmap


def test_every_ia32_syscall_of_a_probe_file_is_traced_or_counted():
    """The table behind the cookies: each ia32 syscall of a syscall the engine knows has a
    layout (only the old mmap and the calls with 64-bit values split in other registers than
    pread64's are counted instead), and one it does not know is counted."""
    split = {"fallocate", "sync_file_range", "fadvise64", "fadvise64_64", "readahead"}
    for name, layout in syscalls.SYSCALLS.items():
        calls = arch.compat_syscalls(layout.tracepoint, "x86_64")
        assert calls, name
        untraced = {c.name for c in calls if c.layout is None}
        assert untraced <= {"mmap", *split}, name
    by_name = {c.name: c for c in arch.compat_syscalls("lseek", "x86_64")}
    assert by_name["_llseek"].number == 140 and by_name["_llseek"].own_name
    assert [(c.number, c.name, c.layout) for c in arch.compat_syscalls("fallocate", "x86_64")] == [
        (324, "fallocate", None)
    ]
    assert [c.name for c in arch.compat_syscalls("fadvise64", "x86_64")] == [
        "fadvise64", "fadvise64_64"
    ]  # fmt: skip
    assert [(c.name, c.layout) for c in arch.compat_syscalls("sendfile64", "x86_64")] == [
        ("sendfile64", arch.IA32_SAME), ("sendfile", arch.IA32_SAME)
    ]  # fmt: skip
    assert arch.compat_syscalls("read", "aarch64") == ()


def test_the_kernel_side_joins_ia32_arguments_as_the_table_says(tmp_path):
    """dc_arch.h's dc_ia32_syscall_args, compiled with gcc, on registers whose upper halves
    are set, under each cookie the attacher builds: the values the kernel uses, in the x86-64
    syscall's places."""
    program = tmp_path / "ia32_args.c"
    program.write_text(
        "#include <stdio.h>\n#include <stdlib.h>\n#include <linux/types.h>\n"
        "struct pt_regs { unsigned long bx, cx, dx, si, di, bp; };\n"
        "#define __TARGET_ARCH_x86\n"
        f'#include "{syscalls.__file__.rsplit("/", 1)[0]}/bpf/dc_arch.h"\n'
        "int main(int argc, char **argv) {\n"
        "  __u64 args[6], cookie = strtoull(argv[1], 0, 0);\n"
        "  struct pt_regs r = {strtoul(argv[2], 0, 0), strtoul(argv[3], 0, 0),\n"
        "    strtoul(argv[4], 0, 0), strtoul(argv[5], 0, 0), strtoul(argv[6], 0, 0),\n"
        "    strtoul(argv[7], 0, 0)};\n"
        "  dc_ia32_syscall_args(&r, args, cookie);\n"
        '  for (int i = 0; i < 6; i++) printf("%lld ", (long long)args[i]);\n'
        "  return 0;\n}\n"
    )
    subprocess.run(["gcc", "-Wall", "-Werror", "-o", str(tmp_path / "a"), str(program)],
                   check=True)  # fmt: skip

    def joined(tracepoint: str, ia32_name: str, *regs: int) -> list[int]:
        (call,) = [c for c in arch.compat_syscalls(tracepoint) if c.name == ia32_name]
        cookie = (call.layout or 0) << arch.IA32_LAYOUT_SHIFT | 12345
        hi = [r | 0xABCD << 32 for r in regs]  # upper halves the kernel does not read
        out = subprocess.run([str(tmp_path / "a"), str(cookie), *map(str, hi)],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        return [int(v) for v in out.split()]

    assert joined("read", "read", 3, 0x1000, 5, 0, 0, 0) == [3, 0x1000, 5, 0, 0, 0]
    assert joined("lseek", "lseek", 3, 0xFFFFFFFE, 1, 0, 0, 0) == [3, -2, 1, 0, 0, 0]
    assert joined("lseek", "_llseek", 3, 1, 7, 0x2000, 2, 0) == [3, 4 * GIB + 7, 2, 0, 0, 0]
    assert joined("pread64", "pread64", 3, 0x2000, 6, 7, 1, 0) == [3, 0x2000, 6, 4 * GIB + 7, 0, 0]
    assert joined("preadv2", "preadv2", 3, 0x2000, 2, 0, 2, 8) == [3, 0x2000, 2, 8 * GIB, 0, 8]
    assert joined("truncate", "truncate64", 0x3000, 9, 1, 0, 0, 0) == [
        0x3000, 4 * GIB + 9, 0, 0, 0, 0
    ]  # fmt: skip
    assert joined("ftruncate", "ftruncate", 3, 0x80000000, 0, 0, 0, 0) == [3, -2 * GIB, 0, 0, 0, 0]
    assert joined("mmap", "mmap2", 0, 4096, 1, 1, 3, (1 << 20) + 1) == [
        0, 4096, 1, 1, 3, 4 * GIB + 4096
    ]  # fmt: skip
