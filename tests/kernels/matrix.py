"""The kernel matrix: the engine and daemon tests that cover each kernel difference, run under
Debian's own kernels (6.1, 6.12) in QEMU guests (:mod:`guest`), beside the host's own run; and
Debian 11's 5.10, below the minimum, which the daemon must refuse in one line.

    python tests/kernels/matrix.py [--kernel 6.1 ...] [-- PYTEST-ARGS]

What runs in each guest is what a site runs: the BPF object built here, on the host's kernel,
relocated by CO-RE onto the guest's (as the wheel's object is on a node); the installation made
here (the daemon test's), seen read-only through the guest's overlay. Under emulation the tests
run 10-30 times slower than on the host, so not the whole suite: each kernel difference once
(syscalls in both modes, uprobes single and multi, kprobes, io_uring, profile mode, loss and
file names, the job filters, one daemon run with exact counts). Both guests run at once, one
vCPU each; a guest that does not boot is retried once (:func:`guest.run`). Exit status: 0 when
every kernel passed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from guest import ROOT, GuestError, Kernel, run

KERNELS = ("6.1", "6.12", "5.10")
#: What covers each kernel difference (the rest of the suite is the host's; see the docstring).
SUPPORTED = (
    "tests/engine/test_syscalls.py",
    "tests/engine/test_uprobes.py",
    "tests/engine/test_uprobe_scope.py",
    "tests/engine/test_many_targets.py",
    "tests/engine/test_kprobes.py",
    "tests/engine/test_build.py",
    "tests/engine/test_io_uring.py",
    "tests/engine/test_profile.py",
    "tests/engine/test_valve.py",
    "tests/engine/test_loss.py::test_every_event_is_either_in_the_trace_or_counted_lost",
    "tests/engine/test_file_names_oracle.py",
    "tests/engine/test_file_calls_oracle.py",
    "tests/engine/test_usdt.py",
    "tests/engine/test_filtering.py",
    "tests/engine/test_compat_syscalls.py",
    "tests/daemon/test_daemon_run.py::test_daemon_traces_a_job_and_stops_cleanly",
    "tests/daemon/test_daemon_run.py::test_the_kernel_is_checked_first_and_one_too_old_refused_in_one_line",
)
#: 5.10 is below the minimum: the daemon must refuse it in one line, and that is all it runs.
TOO_OLD = (SUPPORTED[-1],)
TESTS = {"6.1": SUPPORTED, "6.12": SUPPORTED, "5.10": TOO_OLD}
#: What each kernel is known to run (kernel-matrix.md), so that a test can tell a fall back from
#: a kernel without the feature: fentry programs on Debian's 6.1 and 6.12.
KNOWN = {"6.1": {"DC_TEST_FENTRY": "1"}, "6.12": {"DC_TEST_FENTRY": "1"}, "5.10": {}}
PYTHON = ROOT / ".venv" / "bin" / "python"


def _host_object() -> Path:
    out = subprocess.run(
        [str(PYTHON), "-m", "datacrumbs.ebpf.build"], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip())


def _install(prefix: Path) -> Path:
    """As tests/support.py's install(): key next to the prefix, state and logs in it."""
    sys.path.insert(0, str(ROOT / "tests"))
    from support import install

    return install(prefix)


def _one(series: str, env: dict[str, str], pytest_args: list[str], log: Path) -> tuple[str, int]:
    command = [str(PYTHON), "-m", "pytest", "-p", "no:cacheprovider", "-q", *pytest_args]
    with log.open("w") as out:
        try:
            outcome = run(series, command, env=env, stream=out)
        except GuestError as exc:
            out.write(f"\nguest: {exc}\n")
            return series, 125
        out.write(f"\nguest {series}: exit status {outcome.rc} in {outcome.seconds:.0f} s\n")
    return series, outcome.rc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernel", action="append", choices=KERNELS, default=[])
    parser.add_argument("pytest_args", nargs="*", help="instead of the chosen tests")
    args = parser.parse_args(argv)
    kernels = args.kernel or list(KERNELS)
    for series in kernels:
        kernel = Kernel.find(series)  # fails at once, with the reason, when not fetched
        print(f"matrix: {series} is {kernel.package} ({kernel.release})", flush=True)
    with tempfile.TemporaryDirectory(prefix="dc-matrix-") as tmp:
        Path(tmp).chmod(0o755)  # the daemon test's job user runs from the installation
        env = {
            "DC_TEST_BPF_OBJECT": str(_host_object()),
            "DC_TEST_INSTALLATION": str(_install(Path(tmp) / "prefix")),
            "DC_TEST_NO_SKIPS": "1",
        }
        logs = {series: Path(tmp) / f"{series}.log" for series in kernels}
        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(len(kernels)) as pool:
            futures = [
                pool.submit(_one, s, env | KNOWN[s], args.pytest_args or list(TESTS[s]), logs[s])
                for s in kernels
            ]
            results = {}
            for future in concurrent.futures.as_completed(futures):
                series, rc = future.result()
                results[series] = rc
                took = time.monotonic() - start
                print(f"matrix: {series} finished ({rc=}) after {took:.0f} s", flush=True)
        for series in kernels:
            print(f"\n===== kernel {series} =====", flush=True)
            sys.stdout.write(logs[series].read_text(errors="replace"))
    failed = [s for s in kernels if results[s] != 0]
    print(f"\nmatrix: {'FAILED on ' + ', '.join(failed) if failed else 'passed on every kernel'}")
    return 1 if failed else 0


if __name__ == "__main__":
    os.chdir(ROOT)
    raise SystemExit(main())
