"""Build the BPF object for the running kernel: ``vmlinux.h`` from its BTF, then the ``.bpf.o``.

The kernel side lives in ``ebpf/bpf/``: one entry file per probe kind (``syscalls.bpf.c``,
``functions.bpf.c``, ``io_uring.bpf.c``, ``scope.bpf.c``, ``profile.bpf.c``), the file names'
functions (``files.bpf.c``) and the maps' one definition (``maps.bpf.c``), over shared headers
(``dc_maps.h``, ``dc_task.h``, ``dc_files.h``, ``dc_profile.h``, the ABI ``dc_records.h``,
``dc_arch.h``). Each entry file is compiled on its own and ``bpftool gen object`` (libbpf's
static linker) joins them into the one object the loader opens and the wheel ships.

Why here and at run time: the object is CO-RE, but ``vmlinux.h`` must come from a kernel with
BTF, and this machine kind has no kernel headers at all (the reason BCC fails). Building is
cheap (about 0.2 s for the header, 0.5 s for clang) and cached by content: the cache key is
a hash of the kernel's BTF, the C sources and the compiler flags, so a second call is a no-op
that costs one hash of ``/sys/kernel/btf/vmlinux``. Outputs are written atomically (temporary
file + rename), so concurrent builders never see half a file.

Run ``python -m datacrumbs.ebpf.build [--cache-dir DIR]`` to build and print the object path.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# No datacrumbs imports here: setup.py loads this file by path, before the package exists.
VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")

__all__ = ["BuildError", "build_bpf_object", "cache_home", "default_cache_dir", "vmlinux_header"]

#: The kernel side's sources: the entry files (``*.bpf.c``) and their headers (``*.h``).
SOURCE_DIR = Path(__file__).resolve().parent / "bpf"
#: The entry file that defines the maps and global data the others declare extern.
_DEFINITIONS = "maps.bpf.c"
LIBBPF_INCLUDE = Path("/usr/include")
#: The machine's own headers (Debian's multiarch directory): libbpf's usdt.bpf.h includes
#: <linux/errno.h>, which includes <asm/errno.h> from there. Searched last.
MULTIARCH_INCLUDE = LIBBPF_INCLUDE / f"{os.uname().machine}-linux-gnu"
#: libbpf's name of each machine (bpf_tracing.h); dc_arch.h says which are implemented.
_TARGET_ARCH = {"x86_64": "x86", "aarch64": "arm64", "riscv64": "riscv", "s390x": "s390"}
_MACHINE = os.uname().machine
CFLAGS = (
    "-O2",
    "-g",
    "-target",
    "bpf",
    f"-D__TARGET_ARCH_{_TARGET_ARCH.get(_MACHINE, _MACHINE)}",
    "-Wall",
    "-Werror",
)


class BuildError(RuntimeError):
    """The BPF object cannot be built; the message names the step and the reason."""


def cache_home() -> Path:
    """``$XDG_CACHE_HOME/datacrumbs`` (default ``~/.cache/datacrumbs``): the build caches."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "datacrumbs"


def default_cache_dir() -> Path:
    """``$DATACRUMBS_BPF_CACHE``, else ``ebpf`` under :func:`cache_home`."""
    explicit = os.environ.get("DATACRUMBS_BPF_CACHE")
    return Path(explicit) if explicit else cache_home() / "ebpf"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BuildError(f"cannot build the BPF object: {name} is not installed")
    return path


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _run(argv: list[str], what: str) -> bytes:
    proc = subprocess.run(argv, capture_output=True, check=False)
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        reason = detail[0] if detail else f"exit status {proc.returncode}"
        raise BuildError(f"cannot build the BPF object: {what} failed: {reason}")
    return proc.stdout


def vmlinux_header(cache_dir: Path) -> Path:
    """``vmlinux.h`` of the running kernel (from its BTF), cached in ``cache_dir`` by content."""
    try:
        btf = VMLINUX_BTF.read_bytes()
    except OSError as exc:
        raise BuildError(
            f"cannot build the BPF object: {VMLINUX_BTF} is unreadable ({exc.strerror}); "
            "the kernel needs CONFIG_DEBUG_INFO_BTF"
        ) from exc
    key = hashlib.sha256(btf).hexdigest()[:16]
    header_dir = cache_dir / f"vmlinux-{key}"
    header = header_dir / "vmlinux.h"
    if header.is_file():
        return header
    header_dir.mkdir(parents=True, exist_ok=True)
    text = _run(
        [_tool("bpftool"), "btf", "dump", "file", str(VMLINUX_BTF), "format", "c"],
        "bpftool btf dump",
    )
    _atomic_write(header, text)
    return header


def build_bpf_object(cache_dir: Path | None = None, source_dir: Path = SOURCE_DIR) -> Path:
    """Return the path of an up-to-date ``datacrumbs.bpf.o`` for this kernel, built from the C
    sources in ``source_dir`` if needed. Raises :class:`BuildError` with a one-line reason."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    header = vmlinux_header(cache_dir)
    # maps.bpf.c first: libbpf 1.1's linker lays out .maps right only when the definitions
    # come before the files that declare them extern (else it leaves those at offset 0)
    units = sorted(source_dir.glob("*.bpf.c"), key=lambda p: (p.name != _DEFINITIONS, p.name))
    if not units or units[0].name != _DEFINITIONS:
        raise BuildError(f"cannot build the BPF object: no {_DEFINITIONS} in {source_dir}")
    digest = hashlib.sha256()
    digest.update(str(header).encode())
    digest.update(" ".join(CFLAGS).encode())
    digest.update(" ".join(u.name for u in units).encode())  # the link order
    for path in sorted([*units, *source_dir.glob("*.h")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    obj = cache_dir / f"datacrumbs-{digest.hexdigest()[:16]}.bpf.o"
    if obj.is_file():
        return obj
    work = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".datacrumbs."))
    try:
        parts = []
        for unit in units:
            part = work / unit.name.replace(".c", ".o")
            _run(
                [
                    _tool("clang"),
                    *CFLAGS,
                    "-I",
                    str(header.parent),
                    "-I",
                    str(source_dir),
                    "-I",
                    str(LIBBPF_INCLUDE),
                    "-idirafter",
                    str(MULTIARCH_INCLUDE),
                    "-c",
                    str(unit),
                    "-o",
                    str(part),
                ],
                f"clang {unit.name}",
            )
            parts.append(str(part))
        linked = work / "datacrumbs.bpf.o"
        _run([_tool("bpftool"), "gen", "object", str(linked), *parts], "bpftool gen object")
        os.replace(linked, obj)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return obj


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m datacrumbs.ebpf.build",
        description="Build (or find cached) the datacrumbs BPF object for this kernel.",
    )
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        path = build_bpf_object(args.cache_dir)
    except BuildError as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
