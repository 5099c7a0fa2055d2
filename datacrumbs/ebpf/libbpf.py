"""A thin, typed ctypes face over the few libbpf calls the engine uses.

Why ctypes over libbpf rather than BCC: BCC needs kernel headers (absent on this machine kind)
and LLVM at run time. libbpf is a small stable C library (Debian ``libbpf1``) and the object is
CO-RE, so a binding of ~20 functions is all the native code the engine needs to load and
attach (the hot path's two small C extensions, ``_ringwalk`` and the formatter, need no
libbpf). Raw bpf(2) calls libbpf 1.1 lacks are in ``bpf_syscall.py``.

libbpf 1.x reports failure by returning NULL or a negative errno and setting ``errno``; every
wrapper turns that into :class:`BpfError` (an :class:`OSError` carrying the errno) with one line
naming what failed. libbpf's own messages are routed to the ``datacrumbs.libbpf`` logger.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char_p,
    c_int,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from typing import Any

from datacrumbs.ebpf.bpf_syscall import FdLink, link_create_uprobe_multi

__all__ = [
    "LIBBPF",
    "BpfError",
    "BpfLink",
    "BpfObject",
    "call_error",
    "kernel_has_helper",
    "kernel_has_map_type",
    "ringbuf_create",
]

_log = logging.getLogger("datacrumbs.libbpf")

#: Candidates tried in order; Debian 12 ships libbpf.so.1 (libbpf 1.1).
_LIBRARY_NAMES = ("libbpf.so.1", "libbpf.so")


class BpfError(OSError):
    """A libbpf call failed; ``errno`` holds the error number, the message says what failed."""

    def __str__(self) -> str:
        # The message already says what failed and why: no "[Errno N]" in front of it.
        return self.strerror or super().__str__()


class _TracepointOpts(Structure):
    _fields_ = [("sz", c_size_t), ("bpf_cookie", c_uint64)]


class _UprobeOpts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("ref_ctr_offset", c_size_t),
        ("bpf_cookie", c_uint64),
        ("retprobe", c_bool),
        ("func_name", c_char_p),
    ]


class _UsdtOpts(Structure):
    _fields_ = [("sz", c_size_t), ("usdt_cookie", c_uint64)]


class _TraceOpts(Structure):
    _fields_ = [("sz", c_size_t), ("cookie", c_uint64)]


class _KprobeOpts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("bpf_cookie", c_uint64),
        ("offset", c_size_t),
        ("retprobe", c_bool),
    ]


# libbpf_print_fn_t: int (*)(enum libbpf_print_level, const char *fmt, va_list ap). On x86-64 a
# va_list parameter is passed as a pointer, which vsnprintf accepts unchanged.
_PRINT_FN = CFUNCTYPE(c_int, c_int, c_char_p, c_void_p)
_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}


def _open_library() -> ctypes.CDLL:
    last: OSError | None = None
    for name in _LIBRARY_NAMES:
        try:
            return ctypes.CDLL(name, use_errno=True)
        except OSError as exc:
            last = exc
    found = ctypes.util.find_library("bpf")
    if found:
        try:
            return ctypes.CDLL(found, use_errno=True)
        except OSError as exc:
            last = exc
    raise BpfError(errno.ELIBACC, f"libbpf cannot be loaded (install libbpf1): {last}")


_libc = ctypes.CDLL(None, use_errno=True)
_libc.vsnprintf.argtypes = [c_char_p, c_size_t, c_char_p, c_void_p]
_libc.vsnprintf.restype = c_int

#: The libbpf functions used, with their result and argument types.
# fmt: off
_SIGNATURES: dict[str, tuple[object, ...]] = {
    "bpf_object__open_file": (c_void_p, c_char_p, c_void_p),
    "bpf_object__load": (c_int, c_void_p),
    "bpf_object__close": (None, c_void_p),
    "bpf_object__find_program_by_name": (c_void_p, c_void_p, c_char_p),
    "bpf_object__find_map_by_name": (c_void_p, c_void_p, c_char_p),
    "bpf_program__set_autoload": (c_int, c_void_p, c_bool),
    "bpf_program__set_expected_attach_type": (c_int, c_void_p, c_uint32),
    "bpf_program__fd": (c_int, c_void_p),
    "bpf_program__attach_trace": (c_void_p, c_void_p),
    "bpf_program__attach_trace_opts": (c_void_p, c_void_p, POINTER(_TraceOpts)),
    "bpf_program__set_attach_target": (c_int, c_void_p, c_int, c_char_p),
    "bpf_map__reuse_fd": (c_int, c_void_p, c_int),
    "bpf_map__set_max_entries": (c_int, c_void_p, c_uint32),
    "bpf_map__set_inner_map_fd": (c_int, c_void_p, c_int),
    "bpf_map_create": (c_int, c_int, c_char_p, c_uint32, c_uint32, c_uint32, c_void_p),
    "bpf_map__set_initial_value": (c_int, c_void_p, c_void_p, c_size_t),
    "bpf_map__fd": (c_int, c_void_p),
    "bpf_map_update_elem": (c_int, c_int, c_void_p, c_void_p, c_uint64),
    "bpf_map_lookup_elem": (c_int, c_int, c_void_p, c_void_p),
    "bpf_map_lookup_batch": (c_int, c_int, c_void_p, c_void_p, c_void_p, c_void_p,
                             POINTER(c_uint32), c_void_p),
    "bpf_map_delete_batch": (c_int, c_int, c_void_p, POINTER(c_uint32), c_void_p),
    "bpf_program__attach_tracepoint_opts": (c_void_p, c_void_p, c_char_p, c_char_p,
                                            POINTER(_TracepointOpts)),
    "bpf_program__attach_uprobe_opts": (c_void_p, c_void_p, c_int, c_char_p, c_size_t,
                                        POINTER(_UprobeOpts)),
    "bpf_program__attach_kprobe_opts": (c_void_p, c_void_p, c_char_p, POINTER(_KprobeOpts)),
    "bpf_program__attach_usdt": (c_void_p, c_void_p, c_int, c_char_p, c_char_p, c_char_p,
                                 POINTER(_UsdtOpts)),
    "bpf_link__destroy": (c_int, c_void_p),
    "bpf_link__fd": (c_int, c_void_p),
    "bpf_program__attach_iter": (c_void_p, c_void_p, c_void_p),
    "bpf_iter_create": (c_int, c_int),
    "libbpf_set_print": (c_void_p, _PRINT_FN),
    "libbpf_probe_bpf_map_type": (c_int, c_int, c_void_p),
    "libbpf_probe_bpf_helper": (c_int, c_int, c_int, c_void_p),
}
# fmt: on


def _print(level: int, fmt: bytes | None, ap: int | None) -> int:
    buf = ctypes.create_string_buffer(1 << 18)  # verifier logs arrive in one call
    n = _libc.vsnprintf(buf, len(buf), fmt, ap)
    text = buf.value.decode(errors="replace").rstrip()
    if text:
        _log.log(_LEVELS.get(level, logging.DEBUG), "%s", text)
    return int(n)


#: libbpf's log callback; kept referenced for as long as libbpf may call it.
_PRINT_CALLBACK = _PRINT_FN(_print)


class _Libbpf:
    """libbpf, opened on first use: importing the engine (every command's ``--help`` does)
    must work on a machine without it; the missing library is one :class:`BpfError` line
    when a BPF call is actually made."""

    def __init__(self) -> None:
        self._cdll: ctypes.CDLL | None = None

    def __getattr__(self, name: str) -> Any:
        if self._cdll is None:
            cdll = _open_library()
            for function, (restype, *argtypes) in _SIGNATURES.items():
                fn = getattr(cdll, function)
                fn.restype = restype
                fn.argtypes = argtypes
            cdll.libbpf_set_print(_PRINT_CALLBACK)
            self._cdll = cdll
        function = getattr(self._cdll, name)
        setattr(self, name, function)  # later calls find it directly: no __getattr__ again
        return function


#: The library, for this package's modules that call it (``bpf_maps``).
LIBBPF = _lib = _Libbpf()


def call_error(what: str, err: int | None = None) -> BpfError:
    """The error of a failed libbpf call: ``err`` (negative or positive) or ``errno``."""
    code = abs(err) if err else ctypes.get_errno()
    return BpfError(code, f"{what}: {os.strerror(code) if code else 'unknown error'}")


class BpfLink:
    """An attachment; :meth:`destroy` detaches it (idempotent)."""

    __slots__ = ("_ptr",)

    def __init__(self, ptr: int) -> None:
        self._ptr: int | None = ptr

    def destroy(self) -> None:
        if self._ptr:
            _lib.bpf_link__destroy(self._ptr)
            self._ptr = None

    def run_iter(self) -> None:
        """Run an iterator link's program over everything it iterates (``bpf_iter_create``,
        then read to the end); what the program prints is dropped."""
        if not self._ptr:
            raise BpfError(9, "the iterator link is destroyed")
        fd = _lib.bpf_iter_create(_lib.bpf_link__fd(self._ptr))
        if fd < 0:
            raise call_error("cannot create a BPF iterator", fd)
        try:
            while os.read(fd, 4096):
                pass
        finally:
            os.close(fd)


class BpfObject:
    """An opened (then loaded) BPF ELF object. Programs and maps are addressed by name."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        ctypes.set_errno(0)
        ptr = _lib.bpf_object__open_file(self.path.encode(), None)
        if not ptr:
            raise call_error(f"cannot open BPF object {self.path}")
        self._ptr: int | None = ptr

    def _program(self, name: str) -> int:
        prog = _lib.bpf_object__find_program_by_name(self._handle, name.encode())
        if not prog:
            raise BpfError(2, f"BPF program {name} is not in {self.path}")
        return int(prog)

    def _map(self, name: str) -> int:
        m = _lib.bpf_object__find_map_by_name(self._handle, name.encode())
        if not m:
            raise BpfError(2, f"BPF map {name} is not in {self.path}")
        return int(m)

    @property
    def _handle(self) -> int:
        if not self._ptr:
            raise BpfError(9, f"BPF object {self.path} is closed")
        return self._ptr

    # -- before load ---------------------------------------------------------------------
    def set_autoload(self, program: str, autoload: bool) -> None:
        err = _lib.bpf_program__set_autoload(self._program(program), autoload)
        if err:
            raise call_error(f"cannot change autoload of BPF program {program}", err)

    def set_expected_attach_type(self, program: str, attach_type: int) -> None:
        err = _lib.bpf_program__set_expected_attach_type(self._program(program), attach_type)
        if err:
            raise call_error(f"cannot set the expected attach type of BPF program {program}", err)

    def set_attach_target(self, program: str, function: str) -> None:
        """The kernel function a BTF-typed program (``fentry``, ``fexit``) is bound to."""
        err = _lib.bpf_program__set_attach_target(self._program(program), 0, function.encode())
        if err:
            raise call_error(f"cannot bind BPF program {program} to {function}", err)

    def reuse_map_fd(self, map_name: str, fd: int) -> None:
        """Use the existing map ``fd`` (another object's) for ``map_name``: nothing is made."""
        err = _lib.bpf_map__reuse_fd(self._map(map_name), fd)
        if err:
            raise call_error(f"cannot share BPF map {map_name}", err)

    def set_max_entries(self, map_name: str, max_entries: int) -> None:
        err = _lib.bpf_map__set_max_entries(self._map(map_name), max_entries)
        if err:
            raise call_error(f"cannot resize BPF map {map_name} to {max_entries}", err)

    def set_inner_map_fd(self, map_name: str, fd: int) -> None:
        """The map every map of map-in-map ``map_name`` must match (type and size), instead of
        the declared one. (libbpf 1.1 cannot resize the declared one: its inner map has no
        object, and ``bpf_map__set_max_entries`` dereferences it.)"""
        err = _lib.bpf_map__set_inner_map_fd(self._map(map_name), fd)
        if err:
            raise call_error(f"cannot give BPF map {map_name} its inner map", err)

    def set_initial_value(self, map_name: str, data: bytes) -> None:
        buf = ctypes.create_string_buffer(data, len(data))
        err = _lib.bpf_map__set_initial_value(self._map(map_name), buf, len(data))
        if err:
            raise call_error(f"cannot set the initial value of BPF map {map_name}", err)

    def load(self) -> None:
        ctypes.set_errno(0)
        err = _lib.bpf_object__load(self._handle)
        if err:
            raise call_error(f"cannot load BPF object {self.path} (see the libbpf log)", err)

    # -- after load ----------------------------------------------------------------------
    def map_fd(self, map_name: str) -> int:
        fd = _lib.bpf_map__fd(self._map(map_name))
        if fd < 0:
            raise call_error(f"BPF map {map_name} has no fd (object not loaded?)", fd)
        return int(fd)

    def program_fd(self, program: str) -> int:
        fd = _lib.bpf_program__fd(self._program(program))
        if fd < 0:
            raise call_error(f"BPF program {program} has no fd (object not loaded?)", fd)
        return int(fd)

    def attach_trace(self, program: str, cookie: int | None = None) -> BpfLink:
        """Attach a BTF-typed program (``tp_btf/NAME``: raw tracepoint, kernel 5.5+; ``fentry``,
        ``fexit``) to its target, with a BPF cookie when given (fentry/fexit: 6.0+)."""
        ctypes.set_errno(0)
        if cookie is None:
            link = _lib.bpf_program__attach_trace(self._program(program))
        else:
            opts = _TraceOpts(ctypes.sizeof(_TraceOpts), cookie)
            link = _lib.bpf_program__attach_trace_opts(self._program(program), ctypes.byref(opts))
        if not link:
            raise call_error(f"cannot attach BPF program {program}")
        return BpfLink(link)

    def attach_iter(self, program: str) -> BpfLink:
        """Attach an iterator program (``iter/...``); :meth:`BpfLink.run_iter` runs it."""
        ctypes.set_errno(0)
        link = _lib.bpf_program__attach_iter(self._program(program), None)
        if not link:
            raise call_error(f"cannot attach BPF iterator {program}")
        return BpfLink(link)

    def attach_uprobe_multi(
        self,
        program: str,
        binary: str,
        offsets: list[int],
        cookies: list[int],
        retprobe: bool,
        pid: int = 0,
    ) -> FdLink:
        """One uprobe_multi link (kernel 6.6+) over many ``offsets`` of ``binary``: in every
        process (``pid`` 0), or only in process ``pid``'s memory (the kernel then writes its
        breakpoints into no other process). The program must have been loaded with expected
        attach type BPF_TRACE_UPROBE_MULTI."""
        try:
            fd = link_create_uprobe_multi(
                self.program_fd(program), binary, offsets, cookies, retprobe=retprobe, pid=pid
            )
        except OSError as exc:
            kind = "uretprobe" if retprobe else "uprobe"
            if len(offsets) == 1:
                what = f"{kind} at {binary}+{offsets[0]:#x}"
            else:
                what = f"{len(offsets)} {kind}s in {binary}"
            raise BpfError(exc.errno, f"cannot attach {what}: {exc.strerror}") from None
        return FdLink(fd)

    def attach_tracepoint(self, program: str, category: str, name: str, cookie: int) -> BpfLink:
        """Attach to tracepoint ``category:name`` with a cookie (kernel 5.15+ for cookies)."""
        opts = _TracepointOpts(ctypes.sizeof(_TracepointOpts), cookie)
        ctypes.set_errno(0)
        link = _lib.bpf_program__attach_tracepoint_opts(
            self._program(program), category.encode(), name.encode(), ctypes.byref(opts)
        )
        if not link:
            raise call_error(f"cannot attach tracepoint {category}:{name}")
        return BpfLink(link)

    def attach_uprobe(
        self, program: str, binary: str, offset: int, cookie: int, retprobe: bool, pid: int = -1
    ) -> BpfLink:
        """Attach a uprobe (kernel 3.5+) or uretprobe at a file ``offset`` of ``binary``, with
        a cookie (kernel 5.15+): in every process (``pid`` -1), or a perf event on task
        ``pid``, whose breakpoints the kernel writes only into that task's memory."""
        opts = _UprobeOpts(ctypes.sizeof(_UprobeOpts), 0, cookie, retprobe, None)
        ctypes.set_errno(0)
        link = _lib.bpf_program__attach_uprobe_opts(
            self._program(program), pid, binary.encode(), offset, ctypes.byref(opts)
        )
        if not link:
            kind = "uretprobe" if retprobe else "uprobe"
            raise call_error(f"cannot attach {kind} at {binary}+{offset:#x}")
        return BpfLink(link)

    def attach_usdt(
        self, program: str, binary: str, provider: str, name: str, cookie: int, pid: int = -1
    ) -> BpfLink:
        """Attach USDT probe ``provider:name`` of ``binary`` at every place of it (libbpf 0.8+:
        a perf-event uprobe each, the semaphore counted by the kernel, 4.20+): in every process
        (``pid`` -1) or on task ``pid`` only; ``cookie`` is what ``bpf_usdt_cookie`` reads."""
        opts = _UsdtOpts(ctypes.sizeof(_UsdtOpts), cookie)
        ctypes.set_errno(0)
        link = _lib.bpf_program__attach_usdt(
            self._program(program), pid, binary.encode(), provider.encode(), name.encode(),
            ctypes.byref(opts),
        )  # fmt: skip
        if not link:
            raise call_error(f"cannot attach USDT probe {provider}:{name} of {binary}")
        return BpfLink(link)

    def attach_kprobe(self, program: str, function: str, cookie: int, retprobe: bool) -> BpfLink:
        """Attach a kprobe or kretprobe (needs CONFIG_KPROBES; cookies need 5.15+)."""
        opts = _KprobeOpts(ctypes.sizeof(_KprobeOpts), cookie, 0, retprobe)
        ctypes.set_errno(0)
        link = _lib.bpf_program__attach_kprobe_opts(
            self._program(program), function.encode(), ctypes.byref(opts)
        )
        if not link:
            kind = "kretprobe" if retprobe else "kprobe"
            raise call_error(f"cannot attach {kind} {function}")
        return BpfLink(link)

    def close(self) -> None:
        """Close the object (links must be destroyed first). Idempotent."""
        if self._ptr:
            _lib.bpf_object__close(self._ptr)
            self._ptr = None

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


BPF_MAP_TYPE_RINGBUF = 27


def ringbuf_create(name: str, size: int) -> int:
    """A new BPF ring buffer of ``size`` bytes (a power of two, page multiple); its fd."""
    ctypes.set_errno(0)
    fd = _lib.bpf_map_create(BPF_MAP_TYPE_RINGBUF, name.encode()[:15], 0, 0, size, None)
    if fd < 0:
        raise call_error(f"cannot create a {size >> 10} KiB ring buffer", fd)
    return int(fd)


def kernel_has_map_type(map_type: int) -> bool:
    """Whether this kernel creates maps of ``map_type`` (libbpf creates a small one)."""
    return int(_lib.libbpf_probe_bpf_map_type(map_type, None)) == 1


def kernel_has_helper(prog_type: int, helper: int) -> bool:
    """Whether this kernel lets programs of ``prog_type`` call helper number ``helper``
    (libbpf loads a program that calls it and reads the verifier's answer)."""
    return int(_lib.libbpf_probe_bpf_helper(prog_type, helper, None)) == 1
