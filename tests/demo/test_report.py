"""``datacrumbs_report`` on real traces: the demo workload (trace mode, whole and cut) and an
MPI job of two ranks (Open MPI's ``mpirun``), each number against what the workload did, and
the page opened in headless Chromium with the network off."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from demo_support import SummaryInstall, TracedRun, data_dir, trace_command
from dftracer import utils  # dftracer-utils 0.0.14, in the test extra
from PIL import Image
from support import command

from datacrumbs.trace.reading import read_trace_lines
from datacrumbs.trace.summary import summarize

MPI_IO = Path(__file__).parent / "c" / "mpi_io.c"
DRISHTI = Path(__file__).resolve().parents[2] / ".venv-drishti" / "bin"
K, S = 50, 4096  # rank r writes (r + 1) * K blocks of S bytes, then preads them back
PLOTS = ("timeline", "ranks", "sizes", "operations", "files")


def report(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([command("datacrumbs_report"), *map(str, args)], capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def report_json(tmp_path: Path, *args: str | Path) -> dict[str, Any]:
    out = tmp_path / "numbers.json"
    done = report(*args, "--json", out, "-o", tmp_path / "report.html", "--quiet")
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


def _by(rows: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    return {r[key]: r for r in rows}


def _events(trace: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in read_trace_lines(trace) if line.startswith("{")]


def test_the_demo_workloads_numbers(traced_run: TracedRun, tmp_path: Path) -> None:
    plan, data, pid = traced_run.plan, traced_run.data_dir, traced_run.pid
    numbers = report_json(tmp_path, traced_run.trace)
    s = numbers["sections"]
    w, block, text = plan.writes, plan.block, sum(
        len(f"line {i} of the datacrumbs demo\n") for i in range(plan.lines))  # fmt: skip
    files = _by(s["files"], "path")
    assert {k: files[f"{data}/{name}"][k] for name in ("data-0.bin",) for k in
            ("calls", "reads", "writes", "read_bytes", "write_bytes", "ranks")} == {
        "calls": 3 * w + 5, "reads": 2 * w, "writes": w, "read_bytes": 2 * w * block,
        "write_bytes": w * block, "ranks": 1}  # fmt: skip
    one = files[f"{data}/data-1.bin"]
    assert (one["calls"], one["reads"], one["writes"]) == (2 * w + 3, w, w)
    assert (one["read_bytes"], one["write_bytes"]) == (w * block, w * block)
    notes = files[f"{data}/notes.txt"]
    assert (notes["calls"], notes["writes"], notes["write_bytes"]) == (
        plan.lines + 6, plan.lines, text)  # fmt: skip
    # the same numbers as datacrumbs_summary, per function, and one process, by node and pid
    summary = summarize(traced_run.trace)
    ops = {(r["name"]): (r["calls"], r["bytes"], r["us"]) for r in s["operations"]}
    assert ops == {f.name: (f.count, f.bytes, f.total_us) for f in summary.functions.values()}
    assert ops["write"][:2] == (plan.write_calls, plan.files * w * block + text)
    [rank] = s["ranks"]
    assert rank["label"] == f"{summary.host} pid {pid}" and rank["rank"] is None
    assert rank["calls"] == summary.events
    assert rank["read_bytes"] + rank["write_bytes"] == sum(
        f.bytes for f in summary.functions.values()
    )
    assert sum(r["bytes"] for r in s["heat"]) == rank["read_bytes"] + rank["write_bytes"]
    sizes = Counter({(r["dir"], r["bucket"]): r["calls"] for r in s["sizes"]})
    assert sizes["write", block.bit_length()] == plan.files * w  # 1024 B: bucket 11
    assert sizes["read", block.bit_length()] == plan.files * w + w
    [trace] = s["traces"]
    assert (trace["calls"], trace["aggregated"], trace["mode"]) == (summary.events, 0, "trace")
    [loss] = s["loss"]
    assert (loss["lost_events"], loss["finished"]) == (0, True)
    assert numbers["cut"] == []


def test_a_cut_trace_is_reported_up_to_its_last_line(killed_run: TracedRun, tmp_path: Path) -> None:
    numbers = report_json(tmp_path, killed_run.trace)
    assert numbers["cut"] == [str(killed_run.trace)]
    [trace] = numbers["sections"]["traces"]
    assert trace["calls"] == summarize(killed_run.trace).events > 0
    [partial] = [i for i in numbers["insights"] if i["title"] == "Partial data"]
    assert partial["level"] == "high" and "1 trace(s) cut" in partial["detail"]


@pytest.fixture(scope="session")
def mpi_run(summary_install: SummaryInstall) -> tuple[Path, dict[int, int], Path]:
    """Two MPI ranks under ``mpirun`` as nobody, traced: the trace, rank -> pid, the data."""
    binary = summary_install.world / "bin" / "mpi_io"
    subprocess.run(["mpicc", "-O1", "-Wall", "-o", str(binary), str(MPI_IO)], check=True)
    data = data_dir(summary_install, "mpi")
    env = {"PATH": os.environ["PATH"], "HOME": str(data)}  # nobody's home does not exist
    argv = ["mpirun", "-np", "2", "--oversubscribe", str(binary), f"{data}/f", str(K), str(S)]
    trace, _, out = trace_command(summary_install, "mpi", argv, env=env)
    ranks = dict(tuple(map(int, line.split())) for line in out.split("\n") if line.strip())
    return trace, ranks, data


def test_an_mpi_jobs_ranks(mpi_run: tuple[Path, dict[int, int], Path], tmp_path: Path) -> None:
    trace, pids, data = mpi_run
    assert sorted(pids) == [0, 1]
    s = report_json(tmp_path, trace)["sections"]
    files = _by(s["files"], "path")
    for rank in (0, 1):
        k = (rank + 1) * K
        row = files[f"{data}/f-{rank}.bin"]
        assert {c: row[c] for c in ("calls", "reads", "writes", "read_bytes", "write_bytes",
                                    "ranks")} == {
            "calls": 2 * k + 2, "reads": k, "writes": k, "read_bytes": k * S,
            "write_bytes": k * S, "ranks": 1}  # fmt: skip
    # each rank's row holds exactly the calls of the processes whose PR record gives its rank
    events = _events(trace)
    rank_of = {e["pid"]: int(e["args"]["value"]) for e in events
               if e["name"] == "PR" and e["args"]["name"] == "rank"}  # fmt: skip
    assert {rank_of[pid] for pid in pids.values()} == {0, 1}
    assert rank_of[pids[0]] == 0 and rank_of[pids[1]] == 1
    calls = Counter(rank_of.get(e["pid"]) for e in events if e["ph"] == "X")
    ranks = _by(s["ranks"], "label")
    for rank in (0, 1):
        assert ranks[f"rank {rank}"]["calls"] == calls[rank]
        assert ranks[f"rank {rank}"]["rank"] == rank
        assert ranks[f"rank {rank}"]["write_bytes"] >= (rank + 1) * K * S
    heat = Counter()
    for r in s["heat"]:
        heat[r["label"]] += r["bytes"]
    assert heat == {
        label: (r["read_bytes"] or 0) + (r["write_bytes"] or 0)
        for label, r in ranks.items()
        if (r["read_bytes"] or r["write_bytes"])
    }


def test_dftracer_utils_reads_each_ranks_pid(
    mpi_run: tuple[Path, dict[int, int], Path], tmp_path: Path
) -> None:
    """The ranks reach DFTracer's newest reader too: dftracer-utils 0.0.14's index (the test
    extra's, beside DFTracer 2.2) takes each process's rank from its PR record, into its
    ``ranks`` row set (pid, rank). dftracer-analyzer 0.0.9 has no rank column it fills from any
    trace (docs/report.md)."""
    trace, pids, _ = mpi_run
    traces = tmp_path / "traces"
    traces.mkdir()
    shutil.copy(trace, traces / trace.name)
    index = utils.Indexer(directory=str(traces), index_dir=str(tmp_path / "index"))
    index.ensure_indexed()
    ranks = index.rowset("ranks").to_dict()
    assert dict(zip(ranks["pid"], ranks["rank"], strict=True)) == {
        pid: str(rank) for rank, pid in pids.items()
    }


def _chromium(page: Path, work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on ``page`` with no network at all (a network namespace of its own)."""
    browser = shutil.which("chromium")
    assert browser, "chromium is installed by scripts/bootstrap"
    return subprocess.run(
        ["unshare", "--net", browser, "--headless", "--no-sandbox", "--disable-gpu",
         "--hide-scrollbars", f"--user-data-dir={work / 'profile'}", "--window-size=1200,4000",
         *args, page.as_uri()],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(work)},
    )  # fmt: skip


def test_the_page_opens_offline_with_every_plot_drawn(
    mpi_run: tuple[Path, dict[int, int], Path], tmp_path: Path
) -> None:
    trace, _, _ = mpi_run
    page = tmp_path / "job.html"
    done = report(trace, "-o", page)
    assert done.returncode == 0, done.stderr
    assert f"report: {page}" in done.stdout
    assert "Insights" in done.stdout and "rank 1" in done.stdout
    text = page.read_text()
    for outside in ("<script", "<link", "src=", "@import"):
        assert outside not in text, outside
    # what the page refers to is in it: SVG clip paths (#id) and embedded images (data:)
    assert not re.findall(r"url\((?!#)", text)
    assert not [h for h in re.findall(r'href="([^"]*)"', text) if not h.startswith(("#", "data:"))]
    shot = tmp_path / "page.png"
    taken = _chromium(page, tmp_path, f"--screenshot={shot}")
    assert taken.returncode == 0 and shot.stat().st_size > 0, taken.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1200, 4000)
        assert len(image.convert("RGB").getcolors(1 << 20) or ()) > 100  # drawn, not blank
    dom = _chromium(page, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    for plot in PLOTS:
        start = dom.stdout.index(f'id="plot-{plot}"')
        figure = dom.stdout[start : dom.stdout.index("</figure>", start)]
        assert figure.count("<path") > 20, plot  # axes, ticks, glyphs and the data drawn


def test_drishti_reads_the_job_and_finds_every_file(
    mpi_run: tuple[Path, dict[int, int], Path], tmp_path: Path
) -> None:
    """``--drishti OUT``: Drishti (drishti-io 0.8, .venv-drishti) runs on the export, offline,
    and counts every file the ranks read or wrote: each one named."""
    trace, _, data = mpi_run
    out = tmp_path / "job"
    numbers = report_json(tmp_path, trace, "--drishti", out)
    moved = [f for f in numbers["sections"]["files"] if f["reads"] or f["writes"]]
    assert {f"{data}/f-0.bin", f"{data}/f-1.bin"} <= {f["path"] for f in moved}
    drishti = subprocess.run(
        ["unshare", "--net", str(DRISHTI / "drishti"), str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert drishti.returncode == 0, drishti.stderr[-2000:]
    found = re.search(r"FILES:\s+(\d+) files \((\d+) use STDIO, (\d+) use POSIX", drishti.stdout)
    assert found, drishti.stdout
    assert int(found[1]) == int(found[3]) == len(moved)  # every file resolved: 100%
    filemap = (tmp_path / "job.filemap.csv").read_text().splitlines()
    assert len(filemap) == len(moved) + 1
    rows = (tmp_path / "job.intervals.csv").read_text().splitlines()[1:]
    assert len(rows) == sum((f["reads"] or 0) + (f["writes"] or 0) for f in moved)


def _clock_line(ts: int, at: str, offset_ns: int) -> str:
    args = {"at": at, "realtime_minus_monotonic_ns": offset_ns, "synced": True, "maxerror_us": 9}
    return json.dumps({"id": 0, "name": "datacrumbs_clock", "cat": "datacrumbs", "pid": 1,
                       "tid": 1, "ts": ts, "ph": "M", "args": args})  # fmt: skip


def test_a_nodes_clock_drift_is_spread_over_its_calls(tmp_path: Path) -> None:
    """A node whose wall clock moved 1 s against CLOCK_MONOTONIC between its trace's start and
    end clock records: each call's stamp gets its share of that second, by its time."""
    t0 = 1_796_000_000_000_000
    calls = [
        json.dumps({"id": i, "name": "write", "cat": "POSIX", "pid": 7, "tid": 7,
                    "ts": t0 + i * 500_000, "dur": 1, "ph": "X",
                    "args": {"hhash": "a", "ret": 8, "size": 8}})
        for i in range(3)
    ]  # fmt: skip
    lines = ["[", '{"id":9,"name":"HH","cat":"dftracer","pid":1,"tid":1,"ph":"M","args":'
             '{"hhash":"a","name":"n1","value":"a"}}', _clock_line(t0, "start", 5 * 10**9),
             *calls, _clock_line(t0 + 10**6, "end", 6 * 10**9), "]"]  # fmt: skip
    trace = tmp_path / "n1.pfw.gz"
    trace.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    [row] = report_json(tmp_path, trace)["sections"]["traces"]
    # the first call as stamped; the last (at the end record) one second later, plus its µs
    assert (row["first_us"], row["last_us"]) == (t0, t0 + 10**6 + 10**6 + 1)


@pytest.mark.parametrize("bad", ["not-gzip", "missing", "empty-dir"])
def test_bad_input_is_one_line(bad: str, tmp_path: Path) -> None:
    target = tmp_path / bad
    if bad == "not-gzip":
        target.write_text('{"id":1}\n')
    elif bad == "empty-dir":
        target.mkdir()
    done = report(target, "-o", tmp_path / "r.html")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("datacrumbs_report: error: ")
    assert not (tmp_path / "r.html").exists()


def test_an_unwritable_page_is_one_line(traced_run: TracedRun, tmp_path: Path) -> None:
    done = report(traced_run.trace, "--quiet", "-o", "/proc/r.html")  # not even root writes there
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "/proc/r.html: cannot write" in done.stderr
