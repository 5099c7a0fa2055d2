"""datacrumbs_summary on a real trace of a known workload, on a cut trace, and on bad files."""

from __future__ import annotations

import gzip
import json
import subprocess
import zlib
from collections import Counter
from pathlib import Path

import pytest
from demo_support import TracedRun
from support import command

from datacrumbs.common.dftracer_names import DATA_CALLS, LIBC_ITEM_RETURNS
from datacrumbs.trace.reading import read_trace_lines
from datacrumbs.trace.summary import summarize


def _lines_bytes(lines: int) -> int:
    """Bytes the workload's stdio part writes to notes.txt (workload.c's fprintf)."""
    return sum(len(f"line {i} of the datacrumbs demo\n") for i in range(lines))


def _reference(lines: list[str], pid: int | None = None) -> tuple[Counter, Counter, Counter]:
    """Counts, bytes and durations per (name, category), read plainly with json.loads: the
    category is the probe file's (``args.category``); bytes are the positive returns of the
    data calls (fread and fwrite, and io_uring's reads and writes, named as the data calls,
    included), and of other calls within their ``size``."""
    data_calls = DATA_CALLS | LIBC_ITEM_RETURNS
    counts: Counter = Counter()
    done: Counter = Counter()
    durations: Counter = Counter()
    for line in lines:
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event["ph"] != "X" or (pid is not None and event["pid"] != pid):
            continue
        args = event["args"]
        key = (event["name"], args.get("category", event["cat"]))
        counts[key] += 1
        durations[key] += event["dur"]
        if args["ret"] > 0 and (
            event["name"] in data_calls or ("size" in args and args["ret"] <= args["size"])
        ):
            done[key] += args["ret"]
    return counts, done, durations


def _run_summary(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [command("datacrumbs_summary"), *args], capture_output=True, text=True, timeout=60
    )


def test_summary_counts_every_call_of_the_workload_exactly(traced_run: TracedRun) -> None:
    plan, data = traced_run.plan, traced_run.data_dir
    summary = summarize(traced_run.trace, [traced_run.pid])
    functions = {f.name: f for f in summary.functions.values()}
    text = _lines_bytes(plan.lines)
    assert functions["write"].count == plan.files * plan.writes + plan.lines
    assert functions["write"].bytes == plan.files * plan.writes * plan.block + text
    assert functions["fsync"].count == plan.files
    assert {f.cat for f in summary.functions.values()} == {"posix"}
    files = {f.path: (f.count, f.bytes) for f in summary.files}
    w, block = plan.writes, plan.block
    # data-0: open, W writes, fsync, W reads, close; reopened: W preads, close
    assert files[f"{data}/data-0.bin"] == (3 * w + 5, 3 * w * block)
    assert files[f"{data}/data-1.bin"] == (2 * w + 3, 2 * w * block)
    # notes.txt: fopen "w", L writes, fclose; fopen "r", one read of it all + one at EOF, fclose
    assert files[f"{data}/notes.txt"] == (plan.lines + 6, 2 * text)
    assert summary.processes == {traced_run.pid: "dcdemo_io"}
    assert summary.complete
    assert summary.lost == {"lost_events": 0, "lost_names": 0, "lost_tasks": 0}


def test_summary_equals_a_plain_json_reading_of_the_whole_trace(traced_run: TracedRun) -> None:
    counts, done, durations = _reference(read_trace_lines(traced_run.trace))
    summary = summarize(traced_run.trace)
    assert {k: f.count for k, f in summary.functions.items()} == dict(counts)
    assert {k: f.bytes for k, f in summary.functions.items() if f.bytes} == dict(done)
    assert {k: f.total_us for k, f in summary.functions.items()} == {
        k: durations[k] for k in counts
    }
    assert summary.events == sum(counts.values())
    assert summary.other_events == 0


def test_json_output_lists_functions_files_and_loss(traced_run: TracedRun) -> None:
    result = _run_summary(str(traced_run.trace), "--json", "--pid", str(traced_run.pid))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    expected = summarize(traced_run.trace, [traced_run.pid]).to_json()
    assert data == expected
    plan = traced_run.plan
    write = next(f for f in data["functions"] if f["name"] == "write")
    assert write["count"] == plan.files * plan.writes + plan.lines
    assert write["mean_us"] == round(write["total_us"] / write["count"], 3)
    assert (data["complete"], data["lost_events"], data["pids"]) == (True, 0, [traced_run.pid])
    assert data["processes"] == [{"pid": traced_run.pid, "comm": "dcdemo_io"}]
    assert data["trace"] == str(traced_run.trace)


def test_text_output_shows_the_table_the_files_the_loss_and_how_to_open(
    traced_run: TracedRun,
) -> None:
    result = _run_summary(str(traced_run.trace), "--pid", str(traced_run.pid))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    plan = traced_run.plan
    writes = plan.files * plan.writes + plan.lines
    assert f"calls of dcdemo_io (pid {traced_run.pid})" in out
    write_row = next(line for line in out.splitlines() if "│ write " in line)
    assert write_row.split("│")[3].strip() == f"{writes:,}"
    assert f"{traced_run.data_dir}/data-0.bin" in out
    assert "events lost: 0 (file names lost: 0, process names lost: 0)\n" in out
    assert f"trace: {traced_run.trace}\n" in out
    assert "ui.perfetto.dev" in out
    assert "gzip.open(" in out


def test_cut_trace_is_summarised_up_to_its_last_complete_line(
    traced_run: TracedRun, tmp_path: Path
) -> None:
    data = traced_run.trace.read_bytes()
    cut = tmp_path / "cut.pfw.gz"
    cut.write_bytes(data[: len(data) // 2])
    lines = read_trace_lines(cut)
    counts, done, _ = _reference(lines)
    summary = summarize(cut)
    assert not summary.complete
    assert 0 < summary.events == sum(counts.values())
    assert {k: f.count for k, f in summary.functions.items()} == dict(counts)
    assert {k: f.bytes for k, f in summary.functions.items() if f.bytes} == dict(done)
    result = _run_summary(str(cut))
    assert result.returncode == 0, result.stderr
    assert "the trace is cut (its daemon did not finish it)" in result.stdout


def test_trace_of_a_killed_daemon_has_every_flushed_call(killed_run: TracedRun) -> None:
    plan = killed_run.plan
    summary = summarize(killed_run.trace, [killed_run.pid])
    functions = {f.name: f for f in summary.functions.values()}
    assert not summary.complete
    assert functions["write"].count == plan.files * plan.writes + plan.lines
    assert functions["write"].bytes == (
        plan.files * plan.writes * plan.block + _lines_bytes(plan.lines)
    )
    assert summary.lost["lost_events"] == 0
    result = _run_summary(str(killed_run.trace), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["complete"] is False


def _gzip_lines(path: Path, lines: list[str], finish: bool = True) -> Path:
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    data = z.compress(("\n".join(lines) + "\n").encode())
    path.write_bytes(data + z.flush(zlib.Z_FINISH if finish else zlib.Z_SYNC_FLUSH))
    return path


def test_loss_comes_from_the_last_counter_of_a_trace_without_end_summary(tmp_path: Path) -> None:
    counter = (
        '{"id":%d,"name":"datacrumbs_loss","cat":"datacrumbs","pid":1,"tid":1,"ts":5,'
        '"ph":"M","args":{"lost_events":%d,"lost_names":%d,"lost_tasks":0}}'
    )
    write = (
        '{"id":2,"name":"write","cat":"io","pid":7,"tid":7,"ts":1,"dur":3,"ph":"X",'
        '"args":{"hhash":"0000000000000001","ret":10,"fd":3,"size":10}}'
    )
    trace = _gzip_lines(
        tmp_path / "t.pfw.gz", ["[", write, counter % (3, 5, 1), counter % (4, 12, 2)], finish=False
    )
    summary = summarize(trace)
    assert summary.lost == {"lost_events": 12, "lost_names": 2, "lost_tasks": 0}
    assert (summary.events, summary.complete) == (1, False)
    assert summary.files == []  # the write has no fhash


def test_escaped_names_are_read_through_json(tmp_path: Path) -> None:
    line = (
        '{"id":1,"name":"we\\"ird","cat":"c","pid":7,"tid":7,"ts":1,"dur":2,"ph":"X",'
        '"args":{"hhash":"0000000000000001","ret":4,"size":8,"fhash":"00000000000000aa"}}'
    )
    name = (
        '{"id":2,"name":"FH","cat":"dftracer","pid":7,"tid":7,"ph":"M","args":{'
        '"hhash":"0000000000000001","name":"/x/y","value":"00000000000000aa"}}'
    )
    summary = summarize(_gzip_lines(tmp_path / "t.pfw.gz", ["[", line, name, "]"]))
    [totals] = summary.functions.values()
    assert (totals.name, totals.count, totals.bytes, totals.total_us) == ('we"ird', 1, 4, 2)
    assert [(f.path, f.count, f.bytes) for f in summary.files] == [("/x/y", 1, 4)]
    assert summary.complete


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "{path}: no such file"),
        (b"not a trace\n", "{path}: not a datacrumbs trace (not gzip data, or corrupt)"),
        (gzip.compress(b"[\n{oops\n]\n"), "{path}: line 2 is not a trace event"),
        (gzip.compress(b""), "{path}: empty trace (no complete line)"),
    ],
)
def test_bad_file_is_one_line_error(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "t.pfw.gz"
    if content is not None:
        path.write_bytes(content)
    result = _run_summary(str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"datacrumbs_summary: error: {message.format(path=path)}\n"
