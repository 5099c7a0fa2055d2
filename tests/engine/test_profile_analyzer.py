"""dftracer-analyzer (the pinned set) reports the same calls and bytes per file from a profile
trace, and from a trace-mode trace whose writes the valve aggregated (events and aggregated
records in one file), as from a trace-mode trace of the same workload; DFTracer's validator
accepts them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from dftracer import utils  # dftracer-utils 0.0.14, DFTracer 2.2's, in the test extra
from dftracer_support import ANALYZER, analyze
from engine_support import as_user, user_dir

from datacrumbs.common.probes import Probe, ProbeType

K, S = 300, 4096
POSIX = Probe(type=ProbeType.SYSCALLS, name="POSIX", functions=["openat", "write", "pread64",
                                                                  "fsync", "close"])  # fmt: skip
#: the valve's rule: the writes always aggregated, the rest events
MIXED = POSIX.model_copy(update={"function_delivery": {"write": "aggregate"}})
MODES = {
    "trace": (POSIX, {}),
    "profile": (POSIX, {"profile_interval_ns": 100_000_000}),
    "valve": (MIXED, {"valve_interval_ns": 100_000_000}),
}


def test_the_analyzer_reads_a_profile_as_it_reads_a_trace(
    session, compile_c, traced_user, public_dir: Path, tmp_path: Path
) -> None:
    binary = compile_c("file_io.c", "file_io")
    data = user_dir(public_dir, traced_user, "profile-analyzer")
    by_mode = {}
    for mode, (probe, config) in MODES.items():
        # aggregates as the released analyzer reads them: "ph": "C"
        with session([probe], uid=traced_user.uid, aggregate_ph="C", **config) as s:
            for i in range(2):  # two files, each written and read back
                subprocess.run(
                    as_user(traced_user, [str(binary), str(data / f"f{i}.bin"), str(K), str(S)]),
                    check=True, capture_output=True,
                )  # fmt: skip
        assert s.trace is not None and s.trace.stats.lost == 0
        work = tmp_path / mode
        work.mkdir()
        _summary, by_file = analyze([s.trace.path], work)
        by_mode[mode] = {path: sums for path, sums in by_file.items() if path.startswith(str(data))}
        if mode != "trace":
            validated = subprocess.run(
                [str(ANALYZER / "dftracer_validate"), "--files", str(s.trace.path)],
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert validated.returncode == 0, validated.stderr
            assert "1 passed, 0 failed" in validated.stdout
    assert by_mode["profile"] == by_mode["trace"]
    assert by_mode["valve"] == by_mode["trace"]
    for i in range(2):
        sums = by_mode["profile"][str(data / f"f{i}.bin")]
        assert sums["posix_write_count_sum"] == sums["posix_read_count_sum"] == K
        assert sums["posix_write_size_sum"] == sums["posix_read_size_sum"] == K * S
        assert sums["posix_open_count_sum"] == sums["posix_close_count_sum"] == 1


def test_dftracer_utils_reads_the_specs_aggregated_records(
    session, compile_c, traced_user, public_dir: Path, tmp_path: Path
) -> None:
    """The default form, "ph": 3 as DFTracer's spec writes it: dftracer-utils 0.0.14 (the test
    extra's, beside DFTracer 2.2) takes them for aggregated records, with each one's calls,
    time and bytes, and the trace ends with DFTracer's end record."""
    binary = compile_c("file_io.c", "file_io")
    data = user_dir(public_dir, traced_user, "spec-aggregates")
    with session([POSIX], uid=traced_user.uid, profile_interval_ns=100_000_000) as s:
        for i in range(2):
            subprocess.run(
                as_user(traced_user, [str(binary), str(data / f"f{i}.bin"), str(K), str(S)]),
                check=True, capture_output=True,
            )  # fmt: skip
    assert s.trace is not None and s.trace.stats.lost == 0
    names = s.trace.file_names()
    viewer = utils.TraceViewer(str(s.trace.path.parent))
    columns = ("name", "pid", "dft_cnt", "dur_sum", "ret_sum", "fhash")
    rows = viewer.phase("aggregated").select(*columns).collect().to_dict()
    assert not viewer.phase("counters").select("name").collect().to_dict().get("name")
    read = list(zip(*(rows[c if c in ("name", "pid", "fhash") else f"args.{c}"]
                      for c in columns), strict=True))  # fmt: skip
    ours = [e for e in s.trace.objects if e.get("ph") == 3]
    assert len(read) == len(ours) > 0
    totals: dict[tuple[str, str], list[int]] = {}
    for name, _pid, count, _dur, done, fhash in read:
        t = totals.setdefault((name, names.get(fhash, "?")), [0, 0])
        t[0] += count
        t[1] += done or 0
    for i in range(2):
        path = str(data / f"f{i}.bin")
        assert totals[("write", path)] == totals[("pread", path)] == [K, K * S]
        assert totals[("open", path)][0] == totals[("close", path)][0] == 1
    [end] = [e for e in s.trace.objects if e["name"] == "end"]
    assert end["ph"] == 1 and end["args"]["cfg"]["trace_interval_ms"] == 100
    assert end["args"]["num_events"] == sum(e["args"]["dft_cnt"] for e in ours)
