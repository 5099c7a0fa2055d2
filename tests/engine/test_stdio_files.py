"""C-library stdio events carry their file (issue 13): a FILE * call is named by the file its
stream was opened for (the stream's fd, read from glibc's FILE at entry), fopen by its path, so
that per-file views of the DFTracer tools see them — with no syscall probe at all."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from engine_support import user_dir

from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.common.settings import load_settings

STDIO = ["fopen", "fwrite", "fflush", "fclose", "fgets", "fread"]
FILENO = r"""
#include <stddef.h>
#include <stdio.h>
int main(void) { printf("%zu\n", offsetof(FILE, _fileno)); return 0; }
"""


def test_glibc_keeps_the_stream_s_fd_where_the_kernel_side_reads_it(tmp_path):
    source = tmp_path / "fileno.c"
    source.write_text(FILENO)
    subprocess.run(["gcc", "-o", str(tmp_path / "fileno"), str(source)], check=True)
    out = subprocess.run([str(tmp_path / "fileno")], capture_output=True, text=True, check=True)
    arch = (Path(__file__).resolve().parents[2] / "datacrumbs/ebpf/bpf/dc_arch.h").read_text()
    assert f"#define DC_GLIBC_FILENO_OFFSET {out.stdout.strip()}\n" in arch


def test_stdio_calls_name_their_file_without_any_syscall_probe(
    session, compile_c, public_dir, traced_user
):
    binary = compile_c("stdio_files.c", "stdio_files")
    work = user_dir(public_dir, traced_user, "stdio-files")
    path = work / "notes.txt"
    libc = os.path.realpath(load_settings().libc_so)
    probes = [Probe(type=ProbeType.UPROBE, name="stdio", binary_path=libc, functions=STDIO)]
    with session(probes, uid=traced_user.uid) as s:
        out = s.run(traced_user, [str(binary), str(path)]).stdout  # fmt: skip
    trace = s.trace
    pid = int(out.split()[0])
    names = trace.file_names()
    calls = [
        (e["name"], e["cat"], names.get(e["args"].get("fhash")))
        for e in sorted(trace.events_of(pid), key=lambda e: e["ts"])
    ]
    mine = [c for c in calls if c[2] == str(path)]
    assert [name for name, _, _ in mine] == (
        ["fopen"] + ["fwrite"] * 3 + ["fflush", "fclose", "fopen"] + ["fgets"] * 4
        + ["fread", "fclose"]
    )  # fmt: skip
    assert {cat for _, cat, _ in mine} == {"STDIO"}
    events = {e["name"]: e for e in trace.events_of(pid)}
    # fwrite's ret is bytes (1 item x 11), as the tools take sizes from ret; fopen's and
    # fgets's are pointers: not written
    assert [e["args"]["ret"] for e in trace.events_of(pid, "fwrite")] == [11, 11, 11]
    assert "ret" not in events["fopen"]["args"] and "ret" not in events["fgets"]["args"]
    # stdout's stream is the pid's line: the pipe it inherited, named as such
    assert any(c[0] == "fflush" and str(c[2]).startswith("pipe:[") for c in calls)
