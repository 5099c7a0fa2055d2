"""dftracer-analyzer (the pinned set) reports the same calls and bytes per file from a profile
trace, and from a trace-mode trace whose writes the valve aggregated (events and aggregated
records in one file), as from a trace-mode trace of the same workload; DFTracer's validator
accepts them."""

from __future__ import annotations

import subprocess
from pathlib import Path

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
        with session([probe], uid=traced_user.uid, **config) as s:
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
