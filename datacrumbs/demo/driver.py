"""The demo, step by step: install, signer, probe file, daemon, workload, stop, summary.

Each step is what an admin or a user would do by hand, with the project's own commands, so the
demo doubles as a worked example (docs/demo.md lists the same commands). Everything started is
registered on an :class:`~contextlib.ExitStack` the moment it starts, so an error or a Ctrl-C
at any point stops the daemon (which finishes its trace) and then the signer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
from rich.console import Console

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.demo.layout import RUN_ID, DemoLayout, installer
from datacrumbs.demo.services import Daemon, Signer, start_daemon, systemd_is_running
from datacrumbs.demo.workload import WorkloadPlan, build_workload
from datacrumbs.trace.summary import TraceSummary, render_tables, summarize, summary_lines

__all__ = ["DemoOptions", "DemoResult", "print_summary", "run_demo"]

READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class DemoOptions:
    prefix: Path = Path("/opt/datacrumbs-demo")
    user: str = "nobody"
    stdio: bool = True  # also trace libc stdio with uprobes (libc-stdio.yaml's "stdio")
    systemd: bool | None = None  # None: use systemd when it is running
    plan: WorkloadPlan = field(default_factory=WorkloadPlan)


@dataclass(frozen=True)
class DemoResult:
    trace: Path
    workload_pid: int
    summary: TraceSummary


class _Steps:
    """Shows each step with a spinner while it runs and a ✓/✗ line with its time after."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.number = 0

    @contextmanager
    def __call__(self, title: str) -> Iterator[Callable[[str], None]]:
        self.number += 1
        label = f"[{self.number}] {title}"
        notes: list[str] = []
        started = time.monotonic()
        try:
            with self.console.status(label):
                yield notes.append
        except BaseException:
            self.console.print(f"[red]✗[/] {label}", soft_wrap=True)
            raise
        took = time.monotonic() - started
        self.console.print(f"[green]✓[/] {label} [dim]({took:.1f} s)[/]", soft_wrap=True)
        for note in notes:
            self.console.print(f"    {note}", highlight=False, soft_wrap=True)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _run(
    argv: list[str], env: dict[str, str], what: str, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise DatacrumbsError(
            f"{what} failed (exit {result.returncode}): {lines[-1] if lines else 'no message'}"
        )
    return result


def _probe_config(stdio: bool) -> tuple[str, dict[str, Any]]:
    """The demo's probe config: the shipped posix-io.yaml, plus the ``stdio`` category of the
    shipped libc-stdio.yaml (not its POSIX wrappers: the syscalls already show those calls)."""
    examples = files("datacrumbs").joinpath("examples")
    config = yaml.safe_load(examples.joinpath("posix-io.yaml").read_text())
    if not stdio:
        return "posix-io", config
    stdio_config = yaml.safe_load(examples.joinpath("libc-stdio.yaml").read_text())
    config["capture_probes"] += [c for c in stdio_config["capture_probes"] if c["name"] == "stdio"]
    return "posix-io-stdio", config


def _write_config(layout: DemoLayout, stdio: bool) -> tuple[Path, Path]:
    """Write the probe config (root-owned, readable) and name the probe file to make."""
    name, config = _probe_config(stdio)
    path = layout.demo_dir / f"{name}.yaml"
    header = (
        "# The datacrumbs demo's probe config: datacrumbs/examples/posix-io.yaml"
        + (" + the stdio category of libc-stdio.yaml" if stdio else "")
        + "\n"
    )
    path.write_text(header + yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o644)
    return path, layout.home / f"{name}.json.gz"


def _make_probe_file(layout: DemoLayout, options: DemoOptions, note: Callable[[str], None]) -> Path:
    """Run the configurator as the job user; without stdio if the stdio uprobes fail."""
    attempts = [True, False] if options.stdio else [False]
    for stdio in attempts:
        config, output = _write_config(layout, stdio)
        argv = layout.as_job_user(
            [layout.command("datacrumbs_probe_configurator"), str(config), str(output)]
        )
        try:
            result = _run(
                argv, layout.env(HOME=str(layout.home)), "the probe configurator", cwd=layout.home
            )
        except DatacrumbsError as exc:
            if stdio is attempts[-1]:
                raise
            note(f"[yellow]without libc stdio[/]: {exc}")
            continue
        note(f"as {layout.user}: datacrumbs_probe_configurator {config} {output}")
        note(result.stdout.strip())
        return output
    raise AssertionError("not reached")


def run_demo(options: DemoOptions, console: Console) -> DemoResult:
    """Run the whole demo; raises :class:`DatacrumbsError` (one line) if a step fails."""
    if os.geteuid() != 0:
        raise DatacrumbsError("must run as root: it installs, and runs the signer and daemon")
    layout = DemoLayout(options.prefix, options.user)
    layout.check_reachable()
    use_systemd = systemd_is_running() if options.systemd is None else options.systemd
    step = _Steps(console)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with ExitStack() as stack:
            with step(f"install into {layout.prefix}") as note:
                out = _run(
                    [installer(), "--prefix", str(layout.prefix)],
                    layout.env(),
                    "datacrumbs_install",
                ).stdout.splitlines()
                # "<what was done> <path>": kept, or "secret kept", "signing key kept (…)"
                kept = [line for line in out if "kept" in line.rsplit(maxsplit=1)[0].split()]
                note(
                    f"datacrumbs_install --prefix {layout.prefix}: {len(out)} items, "
                    f"{len(out) - len(kept)} made or updated, {len(kept)} kept as they were"
                )
                layout.prepare_home()

            with step("start the probe signer (root)") as note:
                signer = Signer(
                    [layout.command("datacrumbs_sign_probes")], layout.env(), layout.signer_log
                )
                stack.callback(_stop_signer, signer, console)
                signer.wait_listening()
                note(f"listening on {layout.socket}; log {layout.signer_log}")

            with step(f"make a signed probe file as {layout.user}") as note:
                probes = _make_probe_file(layout, options, note)

            how = "under systemd" if use_systemd else "as a supervised subprocess"
            with step(f"start the tracing daemon for run-id {RUN_ID} {how}") as note:
                ready = layout.run_dir / f"datacrumbs-{RUN_ID}.ready"
                daemon = start_daemon(
                    [layout.command("datacrumbs"), str(probes), RUN_ID],
                    layout.env(DATACRUMBS_USER=layout.user),
                    ready,
                    layout.daemon_log,
                    use_systemd,
                )
                stack.callback(_stop_daemon, daemon, console)
                trace = daemon.wait_ready(READY_TIMEOUT)
                note(f"ready; tracing every process of {layout.user} into {trace}")

            with step(f"run the workload as {layout.user}") as note:
                binary = build_workload(layout.bin_dir)
                argv = layout.as_job_user(options.plan.argv(binary, layout.data_dir))
                workload = subprocess.Popen(
                    argv, env=layout.env(), cwd=layout.home, stderr=subprocess.PIPE, text=True
                )
                _, err = workload.communicate(timeout=300)
                if workload.returncode != 0:
                    raise DatacrumbsError(
                        f"the workload failed (exit {workload.returncode}): {err.strip()}"
                    )
                note(f"{binary.name} (pid {workload.pid}): {options.plan.describe()}")

            with step("stop the daemon (detach the probes, finish the trace)") as note:
                status = daemon.stop()
                if status != 0:
                    raise DatacrumbsError(
                        f"the daemon exited with status {status}; see {daemon.log}"
                    )
                note(f"log {daemon.log}")

            with step("stop the probe signer"):
                stack.close()
    finally:
        signal.signal(signal.SIGTERM, previous)

    summary = summarize(trace, [workload.pid])
    return DemoResult(trace, workload.pid, summary)


def _stop_daemon(daemon: Daemon, console: Console) -> None:
    with console.status("stopping the daemon"):
        daemon.stop()  # idempotent: a stopped daemon returns its status at once


def _stop_signer(signer: Signer, console: Console) -> None:
    with console.status("stopping the signer"):
        signer.stop()


def print_summary(result: DemoResult, plan: WorkloadPlan, console: Console) -> None:
    """The demo's closing screen: the workload's table, files, loss and the trace's path."""
    summary = result.summary
    console.print()
    console.print(render_tables(summary))
    writes = sum(f.count for f in summary.functions.values() if f.name == "write")
    console.print(
        f"workload check: {plan.write_calls:,} write calls made, {writes:,} in the "
        f"trace; {summary.lost['lost_events']:,} events lost",
        highlight=False,
    )
    for line in summary_lines(summary):
        console.print(line, highlight=False, soft_wrap=True)
    console.print(
        f"  Summary:  datacrumbs_summary {result.trace} [--json] [--pid {result.workload_pid}]",
        highlight=False,
        soft_wrap=True,
    )
