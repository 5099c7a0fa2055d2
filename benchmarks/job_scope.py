"""What scoping to a job's cgroup costs per traced call: 1 M one-byte write()s, side by side.

Three configurations, interleaved round by round: untraced; traced by uid (every process of the
user); traced by uid and job cgroup (the daemon under a scheduler: DATACRUMBS_JOB_CGROUP). The
workload runs inside a fresh cgroup v2 directory in every configuration, so only the filter
differs. Run as root: ``.venv/bin/python benchmarks/job_scope.py [--calls N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import statistics
import uuid

from bench_support import USER, Traced, compile_workload, machine, run_as_user, workdir

from datacrumbs.ebpf.cgroups import cgroup2_mounts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    where = workdir()
    argv = [str(compile_workload(where)), str(args.calls)]
    job = cgroup2_mounts()[0] / f"dc-bench-job-{uuid.uuid4().hex[:8]}"
    job.mkdir()
    results: dict[str, list[float]] = {"untraced": [], "by uid": [], "by uid + job cgroup": []}
    lost = 0
    try:
        for _ in range(args.rounds):
            results["untraced"].append(float(run_as_user(argv, cgroup=job)))
            for label, cgroup in (("by uid", None), ("by uid + job cgroup", job)):
                traced = Traced(where / "scope.pfw.gz", USER.pw_uid, cgroup=cgroup)
                with traced:
                    results[label].append(float(run_as_user(argv, cgroup=job)))
                assert traced.stats is not None
                lost += traced.stats.lost
    finally:
        job.rmdir()
    print(machine())
    print(f"{args.calls} write()s per run, {args.rounds} rounds, medians:")
    base = statistics.median(results["untraced"])
    for label, values in results.items():
        median = statistics.median(values)
        print(f"  {label:<20} {median:6.0f} ns/call  (range {min(values):.0f}-{max(values):.0f})"
              f"  +{median - base:5.0f}  ratio {median / base:5.2f}")  # fmt: skip
    print(f"  traced runs: {lost} events lost")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
