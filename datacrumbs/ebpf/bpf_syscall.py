"""The few bpf(2) commands made without libbpf: feature probes and uprobe_multi links.

libbpf 1.1 (Debian 12) predates uprobe_multi links (kernel 6.6), so they are created with
``BPF_LINK_CREATE`` directly, and the feature probe loads a two-instruction program the same
way. The attribute layouts mirror ``include/uapi/linux/bpf.h``.
"""

from __future__ import annotations

import ctypes
import os
from ctypes import Structure, c_int, c_uint32, c_uint64

__all__ = [
    "BPF_F_UPROBE_MULTI_RETURN",
    "BPF_PROG_TYPE_KPROBE",
    "BPF_TRACE_UPROBE_MULTI",
    "FdLink",
    "UprobeMultiAttr",
    "bpf_syscall",
    "link_create_uprobe_multi",
    "prog_load_trivial",
]

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

#: bpf(2) on x86-64 (arch/x86/entry/syscalls/syscall_64.tbl).
SYS_BPF = 321
BPF_PROG_LOAD = 5
BPF_LINK_CREATE = 28
BPF_PROG_TYPE_KPROBE = 2
#: enum bpf_attach_type value of uprobe_multi links (kernel 6.6+), and its return-probe flag.
BPF_TRACE_UPROBE_MULTI = 48
BPF_F_UPROBE_MULTI_RETURN = 1


class UprobeMultiAttr(Structure):
    """``union bpf_attr`` as ``BPF_LINK_CREATE`` reads it for a uprobe_multi link (kernel 6.6+):
    the ``link_create`` struct with its ``uprobe_multi`` member, laid out exactly as in
    ``include/uapi/linux/bpf.h`` (tests/engine/test_libbpf_abi.py checks every offset against
    the running kernel's BTF)."""

    _fields_ = [
        ("prog_fd", c_uint32),  # 0
        ("target_fd", c_uint32),  # 4
        ("attach_type", c_uint32),  # 8
        ("flags", c_uint32),  # 12: link_create.flags (0)
        ("path", c_uint64),  # 16: uprobe_multi.path (const char *)
        ("offsets", c_uint64),  # 24: const __u64 *
        ("ref_ctr_offsets", c_uint64),  # 32: const __u64 * (may be NULL)
        ("cookies", c_uint64),  # 40: const __u64 * (may be NULL)
        ("cnt", c_uint32),  # 48
        ("multi_flags", c_uint32),  # 52: uprobe_multi.flags (BPF_F_UPROBE_MULTI_RETURN)
        ("pid", c_uint32),  # 56: 0 = every process
        ("_pad", c_uint32),  # 60: keeps the size a multiple of 8; must be zero
    ]


class _ProgLoadAttr(Structure):
    """The head of ``union bpf_attr`` for ``BPF_PROG_LOAD`` up to ``expected_attach_type``."""

    _fields_ = [
        ("prog_type", c_uint32),
        ("insn_cnt", c_uint32),
        ("insns", c_uint64),
        ("license", c_uint64),
        ("log_level", c_uint32),
        ("log_size", c_uint32),
        ("log_buf", c_uint64),
        ("kern_version", c_uint32),
        ("prog_flags", c_uint32),
        ("prog_name", ctypes.c_char * 16),
        ("prog_ifindex", c_uint32),
        ("expected_attach_type", c_uint32),
    ]


def bpf_syscall(cmd: int, attr: Structure) -> int:
    """``bpf(cmd, &attr, sizeof(attr))``; the non-negative result, else :class:`OSError`."""
    ctypes.set_errno(0)
    ret = _libc.syscall(
        ctypes.c_long(SYS_BPF), c_int(cmd), ctypes.byref(attr), c_uint32(ctypes.sizeof(attr))
    )
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(ret)


def prog_load_trivial(prog_type: int, expected_attach_type: int) -> int:
    """Load ``r0 = 0; exit`` (for feature probes); the program fd."""
    insns = (c_uint64 * 2)(0x00000000000000B7, 0x0000000000000095)  # mov64 r0, 0; exit
    license_ = ctypes.create_string_buffer(b"GPL")
    attr = _ProgLoadAttr(
        prog_type=prog_type,
        insn_cnt=2,
        insns=ctypes.addressof(insns),
        license=ctypes.addressof(license_),
        expected_attach_type=expected_attach_type,
    )
    return bpf_syscall(BPF_PROG_LOAD, attr)


def link_create_uprobe_multi(
    prog_fd: int,
    path: str,
    offsets: list[int],
    cookies: list[int],
    *,
    retprobe: bool,
    pid: int = 0,
) -> int:
    """One uprobe_multi link (kernel 6.6+) on ``offsets`` of ``path``, each with its cookie;
    returns the link fd (closing it detaches). Raises :class:`OSError` with the errno."""
    cnt = len(offsets)
    offs = (c_uint64 * cnt)(*offsets)
    cooks = (c_uint64 * cnt)(*cookies)
    path_buf = ctypes.create_string_buffer(os.fsencode(path))
    attr = UprobeMultiAttr(
        prog_fd=prog_fd,
        attach_type=BPF_TRACE_UPROBE_MULTI,
        path=ctypes.addressof(path_buf),
        offsets=ctypes.addressof(offs),
        cookies=ctypes.addressof(cooks),
        cnt=cnt,
        multi_flags=BPF_F_UPROBE_MULTI_RETURN if retprobe else 0,
        pid=pid,
    )
    return bpf_syscall(BPF_LINK_CREATE, attr)


class FdLink:
    """A link held as a bare fd (created with bpf(2) directly); :meth:`destroy` closes it,
    which detaches (idempotent)."""

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def destroy(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
