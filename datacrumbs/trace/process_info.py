"""What a trace says about each process beyond its name: its command line, executable, working
directory, parent and MPI rank — DFTracer-style process metadata, read from ``/proc`` when the
process first appears in the trace (and again after an exec).

The rank is the first of ``SLURM_PROCID``, ``PMI_RANK``, ``OMPI_COMM_WORLD_RANK`` and
``PMIX_RANK`` in the process's environment, so that the tools' per-rank views work. A process
that has already exited when its first records are formatted, or a field the daemon may not
read, is simply left out: nothing here can fail the trace.
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["RANK_VARIABLES", "read_process_info"]

RANK_VARIABLES = (b"SLURM_PROCID", b"PMI_RANK", b"OMPI_COMM_WORLD_RANK", b"PMIX_RANK")
_MAX_CMDLINE = 4096


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20)
    except OSError:
        return None


def read_process_info(pid: int) -> dict[str, str]:
    """``cmd``, ``exe``, ``cwd``, ``ppid`` and ``rank`` of process ``pid``, as far as readable."""
    proc = f"/proc/{pid}"
    info: dict[str, str] = {}
    cmdline = _read(f"{proc}/cmdline")
    if cmdline:
        text = cmdline.rstrip(b"\0").replace(b"\0", b" ").decode(errors="backslashreplace")
        info["cmd"] = text[:_MAX_CMDLINE]
    for key in ("exe", "cwd"):
        with contextlib.suppress(OSError):  # gone, or not the daemon's to read
            info[key] = os.readlink(f"{proc}/{key}")
    status = _read(f"{proc}/status") or b""
    for line in status.splitlines():
        if line.startswith(b"PPid:"):
            info["ppid"] = line.split()[1].decode()
    environ = _read(f"{proc}/environ") or b""
    variables = dict(entry.split(b"=", 1) for entry in environ.split(b"\0") if b"=" in entry)
    for name in RANK_VARIABLES:
        value = variables.get(name, b"")
        if value.isdigit():
            info["rank"] = value.decode()
            break
    return info
