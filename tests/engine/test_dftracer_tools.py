"""DFTracer's own tools (from the dftracer wheel) accept the trace and count what we count."""

from __future__ import annotations

import os
import subprocess
import zlib
from pathlib import Path

import dftracer  # the test extra; scripts/bootstrap installs it
from engine_support import as_user, user_dir

from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.trace.gzip_stream import MEMBER_TEXT

TOOLS = Path(dftracer.__file__).parent


def _run_tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LD_LIBRARY_PATH=f"{TOOLS / 'lib64'}:{TOOLS / 'lib'}")
    return subprocess.run(
        [str(TOOLS / "bin" / name), *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_dftracer_validates_and_counts_the_trace(
    session, compile_c, public_dir, traced_user, tmp_path
):
    binary = compile_c("file_io.c", "file_io")
    work = user_dir(public_dir, traced_user, "dftracer")
    probes = [
        Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=["openat", "write", "pread64"])
    ]
    with session(probes, uid=traced_user.uid, ringbuf_bytes=4096) as s:
        for i in range(3):
            subprocess.run(
                as_user(traced_user, [str(binary), str(work / f"f{i}"), "400", "64"]),
                check=True,
                capture_output=True,
            )
    trace = s.trace
    assert trace.stats.lost > 0  # the loss records are part of what is validated

    validated = _run_tool("dftracer_validate", "--files", str(trace.path))
    assert validated.returncode == 0, validated.stderr
    body_lines = len(trace.lines) - 2  # DFTracer skips the "[" and "]" wrapper lines
    assert f"1 passed, 0 failed, {body_lines} lines" in validated.stdout

    # dftracer_event_count counts every event but metadata (ph "M"): the calls alone, the
    # loss records being the tracer's own metadata (and no end record: no aggregates).
    counted = _run_tool(
        "dftracer_event_count", "-d", str(trace.path.parent), "--index-dir", str(tmp_path / "idx")
    )
    assert counted.returncode == 0, counted.stderr
    not_metadata = [e for e in trace.objects if e["ph"] != "M"]
    assert int(counted.stdout.split()[-1]) == len(not_metadata) == len(trace.events)
    assert len(trace.events) == trace.stats.events


def test_dftracer_indexes_the_trace_at_its_gzip_members(
    session, compile_c, public_dir, traced_user, tmp_path
):
    """A trace of a few MiB is gzip members of about 1 MiB of whole lines each, and DFTracer's
    indexer checkpoints it at each member (what lets its readers and Dask split it)."""
    binary = compile_c("file_io.c", "file_io")
    work = user_dir(public_dir, traced_user, "dftracer-members")
    probes = [Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=["write", "pread64"])]
    with session(probes, uid=traced_user.uid) as s:
        subprocess.run(
            as_user(traced_user, [str(binary), str(work / "f"), "20000", "64"]),
            check=True,
            capture_output=True,
        )
    trace = s.trace
    assert trace.stats.lost == 0
    data, members = trace.path.read_bytes(), []
    while data:
        inflate = zlib.decompressobj(31)
        members.append(inflate.decompress(data))
        assert inflate.eof
        data = inflate.unused_data
    text = b"".join(members)
    assert len(members) == len(text) // MEMBER_TEXT + 1 >= 3
    assert all(m.endswith(b"\n") and len(m) >= MEMBER_TEXT for m in members[:-1])

    info = _run_tool("dftracer_info", "--files", str(trace.path), "--index-dir",
                     str(tmp_path / "idx"), "--query", "detailed")  # fmt: skip
    assert info.returncode == 0, info.stderr
    assert f"Checkpoints: {len(members)}\n" in info.stdout, info.stdout
    counted = _run_tool(
        "dftracer_event_count", "-d", str(trace.path.parent), "--index-dir", str(tmp_path / "i2")
    )
    assert counted.returncode == 0, counted.stderr
    assert int(counted.stdout.split()[-1]) == len(trace.events) >= 40000
