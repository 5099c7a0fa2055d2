"""dftracer-analyzer, as the project's users run it, reports from the demo's trace exactly what
the workload did: bytes read and written, calls per I/O class, and its files (issue 13).

The analyzer classes calls by their libc name and takes sizes only for the POSIX and STDIO
layers, from ``args.ret``; it leaves out files under the system's directories (its
``IGNORED_FILE_PATTERNS``: the loader's reads of /etc and the libraries). The pinned analyzer
lives in ``.venv-dftracer`` (scripts/bootstrap).
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from demo_support import TracedRun
from dftracer_support import ANALYZER, analyze

from datacrumbs.trace.summary import summarize


def _analyze(trace: Path, work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The analyzer's JSON summary and its per-class sums by file, on this trace alone."""
    return analyze([trace], work)


def _expected(run: TracedRun) -> dict[str, dict[str, float]]:
    """What workload.c does to each of its files, in the analyzer's per-class sums."""
    plan, data = run.plan, run.data_dir
    block = float(plan.writes * plan.block)
    notes = float(sum(len(f"line {i} of the datacrumbs demo\n") for i in range(plan.lines)))
    files = {}
    for i in range(plan.files):
        again = 2 if i == 0 else 1  # data-0.bin is opened again for the preads
        files[str(data / f"data-{i}.bin")] = {
            "write_count": plan.writes, "write_size": block,
            "read_count": again * plan.writes, "read_size": again * block,
            "open_count": again, "close_count": again, "sync_count": 1,
        }  # fmt: skip
    files[str(data / "notes.txt")] = {  # fopen/fprintf+fflush/fclose, fopen/fgets/fclose
        "write_count": plan.lines, "write_size": notes,
        "read_count": 2, "read_size": notes,  # one read of it all, one of the end
        "open_count": 2, "close_count": 2,
    }  # fmt: skip
    return files


def test_the_analyzer_reports_the_workload_s_bytes_and_calls(
    traced_run: TracedRun, tmp_path: Path
) -> None:
    summary, by_file = _analyze(traced_run.trace, tmp_path)
    for path, expected in _expected(traced_run).items():
        found = by_file[path]
        assert {k: found.get(f"posix_{k}_sum", 0.0) for k in expected} == expected, path
    # every byte of the trace is named, and every byte of a file outside the system's
    # directories (which the analyzer leaves out: the loader's reads of libc) is in its total
    [view] = [v for k, v in summary["views"].items() if k == "proc_name"]
    posix = view["summary"]["layers"]["posix"]
    ours = summarize(traced_run.trace, [traced_run.pid])
    assert sum(f.bytes for f in ours.functions.values()) == sum(f.bytes for f in ours.files)
    left_out = [f.path for f in ours.files if f.path not in by_file]
    assert all(p.startswith(("/usr/", "/etc/")) for p in left_out), left_out
    kept = sum(f.bytes for f in ours.files if f.path in by_file)
    assert posix["size_bytes"] == kept == sum(f["posix_size_sum"] for f in by_file.values())
    assert summary["raw_stats"]["unique_process_count"] == 1


#: dftracer-utils' io preset (``dftracer_view --preset io --save-recipe``): the calls it keeps.
IO_PRESET_CATS = {"POSIX", "STDIO"}
IO_PRESET_NAMES = {"read", "write", "open", "close", "pread", "pwrite", "pread64", "pwrite64",
                   "readv", "writev", "fopen", "fclose", "fread", "fwrite", "lseek", "stat",
                   "fstat", "lseek64", "fstat64"}  # fmt: skip


def test_dftracer_view_s_io_preset_and_validate_accept_the_trace(
    traced_run: TracedRun, tmp_path: Path
) -> None:
    trace = tmp_path / traced_run.trace.name
    shutil.copyfile(traced_run.trace, trace)
    text = gzip.decompress(trace.read_bytes()).decode()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    validated = subprocess.run(
        [str(ANALYZER / "dftracer_validate"), "--files", str(trace)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert validated.returncode == 0, validated.stderr
    assert f"1 passed, 0 failed, {len(lines)} lines" in validated.stdout  # "[", "]" aside
    out = tmp_path / "io.pfw"
    viewed = subprocess.run(
        [str(ANALYZER / "dftracer_view"), "--files", str(trace), "--preset", "io",
         "--index-dir", str(tmp_path / "index"), "--no-metadata", "-o", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert viewed.returncode == 0, viewed.stderr
    kept = [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]
    io = [e for e in lines if e["ph"] == "X" and e["cat"] in IO_PRESET_CATS]
    expected = [e["id"] for e in io if e["name"] in IO_PRESET_NAMES]
    assert [e["id"] for e in kept] == expected
    assert len(expected) > 1000  # the workload's reads, writes, opens, closes and fstats
