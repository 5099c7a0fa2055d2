"""dftracer-analyzer's per-file bytes on a real io_uring workload equal the workload's own
numbers (issue 26, M8): fio's io_uring engine with registered files and fixed buffers
(``registerfiles=1``, ``fixedbufs=1``) at depth 8 writes a file, then reads it back at random;
the requests are POSIX events named by the file each request held, and the analyzer's write and
read sums for that file are fio's ``io_bytes`` and ``total_ios``, in trace and profile mode."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from dftracer_support import analyze
from engine_support import User, user_dir

from datacrumbs.common.probes import Probe, ProbeType

MODES = {"trace": 0, "profile": 50_000_000}
FIO = shutil.which("fio") or "/usr/bin/fio"
JOB = ["--ioengine=io_uring", "--registerfiles=1", "--fixedbufs=1", "--iodepth=8",
       "--bs=4k", "--size=2M"]  # fmt: skip


@pytest.mark.parametrize("mode", MODES)
def test_the_analyzer_counts_fio_s_registered_file_requests_as_fio_does(
    session, public_dir: Path, traced_user: User, tmp_path: Path, mode: str
) -> None:
    work = user_dir(public_dir, traced_user, f"fio-{mode}")
    data = work / "data.bin"
    argv = [FIO, "--output-format=json", f"--output={work / 'fio.json'}",
            "--name=write", *JOB, "--rw=write", f"--filename={data}",
            "--name=read", "--stonewall", *JOB, "--rw=randread", f"--filename={data}"]  # fmt: skip
    probes = [Probe(type=ProbeType.SYSCALLS, name="rings", functions=["io_uring_enter"])]
    # aggregates as the released analyzer reads them: "ph": "C"
    config = {"profile_interval_ns": MODES[mode], "aggregate_ph": "C"}
    with session(probes, uid=traced_user.uid, **config) as s:
        s.run(traced_user, argv)
    trace = s.trace
    assert trace is not None and trace.stats.lost == 0
    jobs = {j["jobname"]: j for j in json.loads((work / "fio.json").read_text())["jobs"]}
    own = {
        "posix_write_count_sum": jobs["write"]["write"]["total_ios"],
        "posix_write_size_sum": jobs["write"]["write"]["io_bytes"],
        "posix_read_count_sum": jobs["read"]["read"]["total_ios"],
        "posix_read_size_sum": jobs["read"]["read"]["io_bytes"],
    }
    assert own == {
        "posix_write_count_sum": 512, "posix_write_size_sum": 2 << 20,
        "posix_read_count_sum": 512, "posix_read_size_sum": 2 << 20,
    }  # fmt: skip
    if mode == "trace":  # every data request went through the registered file
        data_requests = [e for e in trace.events if e["args"].get("syscall") == "io_uring"
                         and e["name"] in ("read", "write")]  # fmt: skip
        fixed = {e["args"]["fixed_file"] for e in data_requests}
        assert fixed == {1}
    _summary, by_file = analyze([trace.path], tmp_path)
    assert {key: by_file[str(data)][key] for key in own} == own
