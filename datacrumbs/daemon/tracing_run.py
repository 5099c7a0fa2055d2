"""One tracing run as an object whose steps are named, in the order the unit relies on.

:meth:`TracingRun.run` calls them in turn: who and what (:meth:`identify`), whether this kernel
can run it at all (:meth:`check_kernel`), the probe file (:meth:`accept_probes`: signature and
summary, read as the job user), the run-id lock and files (:meth:`claim_run_files`), the trace's
directory (:meth:`open_trace_location`, as the job user), the node's status database
(:meth:`open_status_db`), the engine (:meth:`build_engine`), attaching (:meth:`attach`), the
trace file (:meth:`start_trace`), and only then the ready file and ``READY=1``
(:meth:`announce_ready`); then :meth:`trace_until_stopped` and :meth:`finish`. Each step keeps
what it made on the object and registers its clean-up, so a failure at any step undoes exactly
what came before it; any failure before the ready point ends the run with one line.
"""

from __future__ import annotations

import logging
import os
import pwd
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from datacrumbs.common.directories import make_dirs
from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.fs_identity import Identity
from datacrumbs.common.logs import setup_logging
from datacrumbs.common.notify import Notifier
from datacrumbs.common.probes import Probe, ProbeFile
from datacrumbs.common.run_files import RunFiles
from datacrumbs.common.run_id import resolve_run_id
from datacrumbs.common.settings import load_settings
from datacrumbs.common.status_db import Outcome, StatusDB, Target, status_db_path
from datacrumbs.common.status_db import target_of as status_target
from datacrumbs.daemon.hit_limit import HitLimit
from datacrumbs.daemon.job_scope import JobScope
from datacrumbs.daemon.pinned_binaries import PinnedBinaries
from datacrumbs.daemon.probe_acceptance import accept_probe_file
from datacrumbs.daemon.runaways import Runaways
from datacrumbs.daemon.stop_signal import StopSignal
from datacrumbs.daemon.trace_location import TraceLocation, open_trace_location
from datacrumbs.ebpf import features
from datacrumbs.ebpf.attach_syscalls import URING_OPS
from datacrumbs.ebpf.engine import Engine, EngineConfig, EngineError, TargetOutcome
from datacrumbs.ebpf.libbpf import BpfError
from datacrumbs.ebpf.ring_sizing import PROFILE_TOTAL, VALVE_RING, cgroup_memory_limit, ring_layout
from datacrumbs.trace.memory_budget import MemoryBudget
from datacrumbs.trace.recording import Recording, RecordingStats
from datacrumbs.trace.writer import TraceWriter

__all__ = ["TICK_SECONDS", "TracingRun"]

#: Seconds between checks of the probes' hit rates and STATUS= updates while tracing.
TICK_SECONDS = 1.0


def _user(name: str | None, setting: str, what: str) -> pwd.struct_passwd:
    if not name:
        raise DatacrumbsError(
            f"{setting} is not set: name {what} (the unit's environment file sets it)"
        )
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise DatacrumbsError(f"{setting}: no user {name!r} on this host") from None


def _target_of(probe: Probe, function: str) -> Target:
    """The status-database key of one function of one probe."""
    return status_target(probe.type, probe.binary_path, probe.provider, function)


def _outcome_target(outcome: TargetOutcome, probes: dict[str, Probe]) -> Target:
    """The status-database key of what the engine reports an outcome of."""
    return _target_of(probes[outcome.category], outcome.function)


def _without_known_invalid(probes: Iterable[Probe], known: dict[Target, str]) -> list[Probe]:
    kept = []
    for probe in probes:
        functions = [f for f in probe.functions if _target_of(probe, f) not in known]
        if functions:
            kept.append(probe.model_copy(update={"functions": functions}))
    return kept


def _status_line(stats: RecordingStats, profiles: bool) -> str:
    size = f"trace {stats.trace_bytes / 1048576:.1f} MiB"
    if profiles:
        return f"profiling: {stats.events} calls in {stats.aggregates} aggregates, " + (
            f"{stats.lost} lost, {size}"
        )
    folded = f" ({stats.aggregated_calls} in aggregates)" if stats.aggregated_calls else ""
    return f"tracing: {stats.events} events{folded}, {stats.lost} lost, {size}"


@dataclass
class _Attached:
    """What attaching gave: how many were asked for, attached, failed and skipped."""

    requested: int
    attached: int
    failed: int
    skipped: int


class TracingRun:
    """One run of ``datacrumbs``: from the probe file to a finished trace."""

    def __init__(self, probe_path: Path, run_id_argument: str | None, stop: StopSignal) -> None:
        self.probe_path = probe_path
        self.run_id_argument = run_id_argument
        self.stop = stop
        self.cleanup = ExitStack()
        self.log = logging.getLogger("datacrumbs")
        self.started = time.monotonic()
        self._write_failure_reported = False

    def run(self) -> int:
        """Every step in order; the exit status."""
        with self.cleanup:
            self.identify()
            self.check_kernel()
            self.accept_probes()
            self.claim_run_files()
            self.open_trace_location()
            self.open_status_db()
            try:
                self.build_engine()
                self.attach()
                self.start_trace()
                self.announce_ready()
                self.trace_until_stopped()
                final = self.finish()
            except EngineError as exc:
                raise DatacrumbsError(str(exc)) from None
        self.report(final)
        return 0

    # -- before anything is written ------------------------------------------------------
    def identify(self) -> None:
        """Settings, the job user (whose processes are traced and who owns the trace), the
        install user (who owns the status database) and the run-id."""
        self.settings = settings = load_settings()
        job_user = _user(
            settings.user, "DATACRUMBS_USER", "the job user whose processes are traced"
        )
        self.job_user = Identity.of(job_user)
        self.owner = Identity.of(
            _user(settings.install_user, "DATACRUMBS_INSTALL_USER", "the install user")
        )
        self.run_id, source = resolve_run_id(self.run_id_argument, settings.job_id_var)
        self.log = setup_logging(
            "datacrumbs",
            "datacrumbs",
            DATACRUMBS_RUN_ID=self.run_id,
            DATACRUMBS_USER=job_user.pw_name,
        )
        self.log.info(
            "run-id %s (from %s), user %s, probe file %s",
            self.run_id,
            source,
            job_user.pw_name,
            self.probe_path,
        )

    def check_kernel(self) -> None:
        """A node whose kernel is too old gets one line, and no empty trace."""
        try:
            refusal = features.kernel_refusal()
        except BpfError as exc:  # libbpf itself is missing or broken: one line too
            raise DatacrumbsError(str(exc)) from None
        if refusal is not None:
            raise DatacrumbsError(refusal)

    def accept_probes(self) -> None:
        """The probe file, read as the job user (on a root-squashed home only they can), its
        signature and summary checked."""
        self.probe_file: ProbeFile = accept_probe_file(
            self.probe_path, self.settings, self.job_user.name, self.job_user
        )
        self.requested = [_target_of(p, f) for p in self.probe_file.categories for f in p.functions]

    # -- claims and files -----------------------------------------------------------------
    def claim_run_files(self) -> None:
        """The run-id's lock, run-id file and (stale) ready file, in the node's run dir."""
        s = self.settings
        self.files = RunFiles(s.server_run_dir, self.run_id, s.server_run_id_file)
        self.files.acquire()
        self.cleanup.callback(self.files.release)
        if self.files.prepare():
            self.log.info("removed a stale ready file %s", self.files.ready)

    def open_trace_location(self) -> None:
        self.location: TraceLocation = open_trace_location(
            self.settings, self.job_user, self.run_id, self.probe_path
        )
        self.cleanup.callback(self.location.close)

    def open_status_db(self) -> None:
        """This node's status database (in the state directory, made if missing), written as
        the install user; the targets known to fail are skipped."""
        state_dir = self.settings.state_dir
        try:
            for made in make_dirs(state_dir, 0o755):  # 0755 whatever the unit's umask
                os.chown(made, self.owner.uid, self.owner.gid)
        except OSError as exc:
            raise DatacrumbsError(f"state directory {state_dir}: {exc.strerror}") from None
        self.status_db = StatusDB(
            status_db_path(state_dir, self.owner.name, self.job_user.uid, self.probe_path),
            identity=self.owner,
        )
        self.known_bad = self.status_db.known_invalid(self.requested)
        self.probes = _without_known_invalid(self.probe_file.categories, self.known_bad)
        for target, reason in sorted(self.known_bad.items()):
            self.log.info(
                "skipped %s %s: known to fail (%s)",
                target.probe_group,
                target.function_name,
                reason,
            )

    # -- the engine -----------------------------------------------------------------------
    def build_engine(self) -> None:
        s = self.settings
        if s.job_cgroup is not None and s.job_parent_cmdline is not None:
            raise DatacrumbsError(
                "DATACRUMBS_JOB_CGROUP and DATACRUMBS_JOB_PARENT_CMDLINE both scope the job: "
                "give one"
            )
        if not s.bpf_object_file.is_file():
            raise DatacrumbsError(
                f"BPF object {s.bpf_object_file} is missing: run datacrumbs_install"
            )
        self.profiles = profiles = s.mode == "profile"
        # profile mode: the rings carry file names and thread names only; within the job's
        # memory limit and the daemon's bound (issue 25, N4)
        self.budget = MemoryBudget.of(s.daemon_memory_mb << 20)
        # the valve makes small rings safe: a burst they cannot hold folds into aggregates
        small = s.valve and not profiles and not s.ring_buffer_mb
        layout = ring_layout(
            s.ring_buffer_mb << 20 or (PROFILE_TOTAL if profiles else 0),
            limit=self.budget.rings,
            max_ring=min(self.budget.ring, VALVE_RING) if small else self.budget.ring,
            job_memory=cgroup_memory_limit(s.job_cgroup) if s.job_cgroup is not None else 0,
        )
        self.log.info(
            "ring buffers: %d x %d MiB",
            layout.rings,
            layout.ring_bytes >> 20,
            extra={"RINGS": layout.rings, "RING_BYTES": layout.ring_bytes},
        )
        self.engine = Engine(
            EngineConfig(
                uid=self.job_user.uid,
                rings=layout.rings,
                ringbuf_bytes=layout.ring_bytes,
                cgroup_later=s.job_cgroup is not None,
                parent_cmdline=s.job_parent_cmdline,
                bpf_object=s.bpf_object_file,
                # io_uring_enter brings up to URING_OPS functions more
                function_slots=len(self.requested) + 1 + URING_OPS,
                profile_interval_ns=s.profile_interval_ms * 1_000_000 if profiles else 0,
                profile_keys=s.profile_max_keys,
                valve_interval_ns=s.profile_interval_ms * 1_000_000 if s.valve else 0,
                fold_above=s.valve_high_water_percent / 100,
                # counted per tenth of a second, as upstream's cap (20,000 hits per 100 ms)
                rate_limit=-(-s.probe_rate_limit // 10),
                rate_window_ns=100_000_000,
                drain_bytes_per_s=s.consume_limit_mb_s << 20,
                uprobe_scope=s.uprobe_scope,
            )
        )
        if profiles:
            self.log.info(
                "profile mode: %d ms intervals, at most %d aggregates held",
                s.profile_interval_ms,
                s.profile_max_keys,
            )
        elif s.valve:
            self.log.info(
                "valve: calls fold into %d ms aggregates above %d%% of a ring, past %s calls/s "
                "per function and CPU, past %s MiB of trace",
                s.profile_interval_ms,
                s.valve_high_water_percent,
                s.probe_rate_limit or "any",
                s.trace_max_mb or "any",
            )
        self.scope: JobScope | None = None
        if s.job_cgroup is not None:  # the job's cgroup to trace alone, checked now
            self.scope = JobScope(self.engine, s.job_cgroup, self.log, lambda fields: None)
            self.scope.check()
        # The checked binaries stay open for the whole run: a uprobe group attached again after
        # a runaway neighbour was detached must reach the very file that was checked.
        self.pinned = PinnedBinaries(self.probes)
        self.cleanup.callback(self.pinned.close)
        self.cleanup.callback(self.engine.close)
        if self.scope is not None:
            self.cleanup.callback(self.scope.close)

    def attach(self) -> None:
        """Load and attach; what the kernel refused is recorded. Not recorded: a binary that
        is not the signed file (a re-signed file must be tried at once), and a target the
        document names twice (nothing about the target: issue 25, N3)."""
        self.engine.load()
        attempted = self.engine.attach(self.pinned.probes, self.pinned.kernel_paths)
        by_category = {p.name: p for p in self.probes}
        self.status_db.record(
            Outcome(_outcome_target(o, by_category), o.attached, o.reason or "")
            for o in self.pinned.unusable + attempted
            if not o.conflict
        )
        outcomes = self.pinned.unusable + self.pinned.unsigned + attempted
        attached = sum(o.attached for o in outcomes)
        failed = len(outcomes) - attached  # the engine logged each reason
        self.attached = _Attached(len(self.requested), attached, failed, len(self.known_bad))
        self.log.info(
            "probes: %d requested, %d attached, %d failed, %d skipped as known-bad",
            len(self.requested),
            attached,
            failed,
            len(self.known_bad),
            extra={
                "PROBES_REQUESTED": len(self.requested),
                "PROBES_ATTACHED": attached,
                "PROBES_FAILED": failed,
                "PROBES_SKIPPED": len(self.known_bad),
            },
        )
        if attached == 0:
            raise DatacrumbsError("no probe could be attached; nothing to trace")

    # -- the trace ------------------------------------------------------------------------
    def start_trace(self) -> None:
        """The trace file (the job user's), the run recorded, and the recording started."""
        s = self.settings
        self.writer: TraceWriter = self.location.create_writer()
        self.status_db.record_run(
            self.run_id,
            s.hostname,
            s.mode,
            s.profile_interval_ms if self.profiles else None,
            str(self.location.path),
        )
        self.recording = Recording(
            self.engine, self.writer, s.hostname, self.budget, s.trace_max_mb << 20, s.aggregate_ph
        )
        self.recording.start()
        user = self.job_user.name
        if s.job_parent_cmdline is not None:
            self.log.info(
                "tracing what processes whose command line starts with %r fork, and their "
                "descendants",
                s.job_parent_cmdline,
            )
            self.writer.write_notice("job_scope", {"scope": "parent_cmdline",
                                                   "parent_cmdline": s.job_parent_cmdline,
                                                   "user": user})  # fmt: skip
        elif self.scope is None:
            self.writer.write_notice("job_scope", {"scope": "user", "user": user})
        else:
            writer = self.writer
            self.scope.announce = lambda fields: writer.write_notice("job_scope", fields)
            self.scope.begin()

    def announce_ready(self) -> None:
        """The ready file, then ``READY=1``: tracing is on."""
        self.files.mark_ready(self.location.path)
        a = self.attached
        self.ready_status = (
            f"{'profiling' if self.profiles else 'tracing'} {self.job_user.name} "
            f"(run {self.run_id}): {a.attached} probes attached, {a.failed} failed -> "
            f"{self.location.path}"
        )
        self.notifier = Notifier()
        self.notifier.ready(self.ready_status)
        self.log.info("ready in %.3f s: %s", time.monotonic() - self.started, self.ready_status)

    def trace_until_stopped(self) -> None:
        s = self.settings
        runaways = Runaways(
            self.engine,
            HitLimit(s.uprobe_hit_limit),
            self.writer,
            self.log,
            budget_fraction=s.uprobe_time_budget,
            cgroup=s.job_cgroup,
        )

        def tick() -> None:
            runaways.check()
            self._report_write_failure()

        _wait_for_stop(self.recording, self.notifier, self.stop, tick, self.profiles)

    def _report_write_failure(self) -> None:
        """One line, the first time a write of the trace fails (its disk or quota is full):
        tracing goes on, and what cannot be written is counted lost."""
        failure = self.writer.write_failure
        if failure is not None and not self._write_failure_reported:
            self._write_failure_reported = True
            self.log.warning(
                "trace %s: %s; tracing goes on, events are counted lost until there is room",
                self.location.path,
                failure,
                extra={"TRACE_FILE": str(self.location.path), "WRITE_ERROR": failure},
            )

    def finish(self) -> RecordingStats:
        """Drain, and finish the trace with its summary."""
        self.notifier.stopping("stopping: draining the ring buffer and finishing the trace")
        summary: dict[str, int | float | str] = {
            "run_id": self.run_id,
            "user": self.job_user.name,
            "duration_s": round(time.monotonic() - self.started, 3),
        }
        following = self.engine.following
        if following is not None:  # uprobes scoped to the job: how soon each process had them
            summary |= {
                "uprobe_processes": following.followed,
                "uprobe_processes_missed": following.missed,
                "uprobe_attach_delay": following.latency_summary(),
            }
            self.log.info(
                "uprobes were given to %d job processes (attach delay %s; %d gone before, "
                "%d refused by the kernel)",
                following.followed,
                following.latency_summary() or "not measured",
                following.missed,
                following.failed,
            )
        return self.recording.stop(summary=summary)

    def report(self, final: RecordingStats) -> None:
        """The end, in the journal and the status database (where it is said even when the
        trace's disk stayed full)."""
        self.stop.report()  # signals that came while stopping
        self._report_write_failure()
        path = self.location.path
        try:
            self.status_db.record_run_result(
                self.run_id,
                self.settings.hostname,
                events=final.events,
                lost=final.lost,
                unwritten=final.unwritten,
                write_error=final.write_failure,
                complete=self.writer.complete,
            )
        except DatacrumbsError as exc:  # its own disk may be full too: the journal has it
            self.log.warning("cannot record the run's end: %s", exc)
        if final.write_failure is not None:
            self.log.warning(
                "trace %s: %d events could not be written (%s), counted lost; the trace %s",
                path,
                final.unwritten,
                final.write_failure,
                "is complete" if self.writer.complete else "ends at its last complete record",
                extra={"EVENTS_UNWRITTEN": final.unwritten, "WRITE_ERROR": final.write_failure},
            )
        self.log.info(
            "finished: %d events, %d lost, %.1f s, trace %s (%d bytes); %d of the events "
            "are calls in %d aggregated records",
            final.events,
            final.lost,
            time.monotonic() - self.started,
            path,
            final.trace_bytes,
            final.aggregated_calls,
            final.aggregates,
            extra={
                "EVENTS": final.events,
                "EVENTS_LOST": final.lost,
                "EVENTS_AGGREGATED": final.aggregated_calls,
                "TRACE_FILE": str(path),
            },
        )


def _wait_for_stop(
    recording: Recording,
    notifier: Notifier,
    stop: StopSignal,
    tick: Callable[[], None],
    profiles: bool,
) -> None:
    interval = TICK_SECONDS
    if notifier.watchdog_interval is not None:
        interval = min(interval, notifier.watchdog_interval)
    while not stop.wait(interval):
        if recording.engine.failure is not None:
            return  # stop() reports it; the ready file goes on exit
        tick()
        notifier.status(_status_line(recording.stats(), profiles))
        notifier.watchdog()
    stop.report()
