"""The demo's built-in workload: a C program compiled at demo time, and what it will do.

Why C and not Python: the job user (``nobody``) may not be able to run the project's
interpreter (pyenv under a 0700 ``/root``), while ``gcc`` is installed by the bootstrap; and a
C program makes exactly the calls it says, so the demo can check the trace's counts.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from datacrumbs.common.errors import DatacrumbsError

__all__ = ["SOURCE_NAME", "WorkloadPlan", "build_workload"]

SOURCE_NAME = "workload.c"
BINARY_NAME = "dcdemo_io"  # short: the kernel keeps 15 characters of a command name


@dataclass(frozen=True)
class WorkloadPlan:
    """How much the workload does (the arguments of workload.c) and the counts that follow."""

    files: int = 3
    writes: int = 1000  # per file; also the reads per file and the preads of data-0.bin
    block: int = 4096
    lines: int = 100  # stdio lines, each fprintf + fflush (one write() each)

    @property
    def write_calls(self) -> int:
        return self.files * self.writes + self.lines

    def argv(self, binary: Path, data_dir: Path) -> list[str]:
        return [
            str(binary),
            str(data_dir),
            str(self.files),
            str(self.writes),
            str(self.block),
            str(self.lines),
        ]

    def describe(self) -> str:
        return (
            f"{self.files} files x {self.writes:,} writes + {self.writes:,} reads of "
            f"{self.block} B, {self.writes:,} preads, {self.lines} stdio lines"
        )


def build_workload(bin_dir: Path) -> Path:
    """Compile workload.c into ``bin_dir`` (root, 0755: the job user must run it); its parent
    must exist and be reachable."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise DatacrumbsError("no C compiler (gcc) found; run scripts/bootstrap")
    bin_dir.mkdir(mode=0o755, exist_ok=True)
    bin_dir.chmod(0o755)
    source = files("datacrumbs.demo").joinpath(SOURCE_NAME)
    binary = bin_dir / BINARY_NAME
    result = subprocess.run(
        [compiler, "-O1", "-Wall", "-o", str(binary), "-x", "c", "-"],
        input=source.read_bytes(),
        capture_output=True,
    )
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise DatacrumbsError(f"compiling the demo workload failed: {message[-1:] or '?'}")
    binary.chmod(0o755)
    return binary
