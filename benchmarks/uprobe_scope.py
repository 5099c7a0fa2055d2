"""What a job's uprobes cost another user's process (issue 25, N2): libstdc++'s ``operator new``
and ``operator delete`` probed for a job, while another user's program calls them in a loop.

    .venv/bin/python benchmarks/uprobe_scope.py [--calls 200000] [--rounds 5]

Each round runs the other user's loop (``c/newdelete.cc``, timed inside the program) three
ways, in one run and interleaved: with no tracing, with the job's uprobes scoped to the job
(the default: the breakpoints are written only into the job's processes) and scoped to the node
(one set of links for every process). The job user has a process running throughout (a
``sleep``), so the job scope has a process to follow. Prints the median and range of each
way's time and its ratio to the untraced median. Run as root.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
from pathlib import Path

from bench_support import C_DIR, OTHER_USER, USER, machine, workdir

from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.ebpf.engine import Engine, EngineConfig

LIBSTDCXX = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"
PROBE = Probe(
    type=ProbeType.UPROBE, name="CXX", binary_path=LIBSTDCXX, functions=["_Znwm", "_ZdlPv"]
)


def _as(uid: int, argv: list[str]) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", *argv]


def _loop(binary: Path, calls: int) -> int:
    """The other user's loop: its own time for ``calls`` new/delete pairs, in ns."""
    argv = _as(OTHER_USER.pw_uid, [str(binary), str(calls)])
    return int(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)


def _traced(binary: Path, calls: int, scope: str) -> int:
    with Engine(EngineConfig(uid=USER.pw_uid, uprobe_scope=scope)) as engine:
        engine.load()
        [new, delete] = engine.attach([PROBE])
        assert new.attached and delete.attached, (new, delete)
        return _loop(binary, calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = workdir()
    binary = work / "newdelete"
    subprocess.run(["g++", "-O2", "-o", str(binary), str(C_DIR / "newdelete.cc")], check=True)
    job = subprocess.Popen(_as(USER.pw_uid, ["sleep", "3600"]))  # the job's own process
    times: dict[str, list[int]] = {"untraced": [], "job": [], "node": []}
    try:
        for _ in range(args.rounds):
            times["untraced"].append(_loop(binary, args.calls))
            times["job"].append(_traced(binary, args.calls, "job"))
            times["node"].append(_traced(binary, args.calls, "node"))
    finally:
        job.kill()
        job.wait()
    print(machine())
    print(f"another user's {args.calls:,} new/delete pairs, {args.rounds} rounds:")
    base = statistics.median(times["untraced"])
    for way, values in times.items():
        median = statistics.median(values)
        print(
            f"  {way:9s} median {median / 1e6:9.2f} ms (range {min(values) / 1e6:.2f}"
            f"-{max(values) / 1e6:.2f}), {median / base:7.2f}x untraced"
        )


if __name__ == "__main__":
    main()
