"""One tracing run, from start-up to a finished trace: what ``datacrumbs`` does.

Start-up runs in the order the unit and the job scripts rely on: limits, settings, the probe
file (signature and summary checked before anything is attached), the run-id lock, the
run-id file, the trace directory, the status database, attaching, and only then the ready
file and ``READY=1``. Any failure before the ready point ends the run with one line and a
non-zero exit; any failure after it still removes the ready file.
"""

from __future__ import annotations

import logging
import os
import pwd
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.fd_paths import open_directory
from datacrumbs.common.logs import journal_only, setup_logging
from datacrumbs.common.notify import Notifier
from datacrumbs.common.probe_file import config_name
from datacrumbs.common.probes import Probe, ProbeFile
from datacrumbs.common.run_files import RunFiles
from datacrumbs.common.run_id import resolve_run_id
from datacrumbs.common.settings import Settings, expand_trace_dir, load_settings, user_component
from datacrumbs.common.status_db import Outcome, StatusDB, Target, status_db_path
from datacrumbs.common.status_db import target_of as status_target
from datacrumbs.daemon.hit_limit import HitLimit
from datacrumbs.daemon.job_scope import JobScope
from datacrumbs.daemon.limits import raise_soft_limits
from datacrumbs.daemon.pinned_binaries import PinnedBinaries
from datacrumbs.daemon.probe_acceptance import accept_probe_file
from datacrumbs.ebpf import features
from datacrumbs.ebpf.attach_syscalls import URING_OPS
from datacrumbs.ebpf.engine import Engine, EngineConfig, EngineError, TargetOutcome
from datacrumbs.ebpf.libbpf import BpfError
from datacrumbs.ebpf.ring_sizing import PROFILE_TOTAL, ring_layout
from datacrumbs.trace.recording import Recording, RecordingStats
from datacrumbs.trace.writer import TraceWriter

__all__ = ["TICK_SECONDS", "run_daemon", "target_of"]

#: Seconds between checks of the probes' hit rates and STATUS= updates while tracing.
TICK_SECONDS = 1.0


def target_of(probe: Probe, function: str) -> Target:
    """The status-database key of one function of one probe."""
    return status_target(probe.type, probe.binary_path, probe.provider, function)


def _outcome_target(outcome: TargetOutcome, probes: dict[str, Probe]) -> Target:
    return target_of(probes[outcome.category], outcome.function)


def _without_known_invalid(probes: Iterable[Probe], known: dict[Target, str]) -> list[Probe]:
    kept = []
    for probe in probes:
        functions = [f for f in probe.functions if target_of(probe, f) not in known]
        if functions:
            kept.append(probe.model_copy(update={"functions": functions}))
    return kept


def _job_user(settings: Settings) -> pwd.struct_passwd:
    if not settings.user:
        raise DatacrumbsError(
            "DATACRUMBS_USER is not set: name the job user whose processes are traced "
            "(the unit's environment file sets it)"
        )
    try:
        return pwd.getpwnam(settings.user)
    except KeyError:
        raise DatacrumbsError(f"DATACRUMBS_USER: no user {settings.user!r} on this host") from None


def _install_owner(settings: Settings) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(settings.install_user)
    except KeyError:
        raise DatacrumbsError(
            f"DATACRUMBS_INSTALL_USER: no user {settings.install_user!r} on this host"
        ) from None


@dataclass
class _TraceLocation:
    """The trace's directory, held open (every later step acts relative to it), and its path."""

    dir_fd: int
    path: Path

    def close(self) -> None:
        os.close(self.dir_fd)


def _trace_location(
    settings: Settings, job_user: pwd.struct_passwd, run_id: str, probe_path: Path
) -> _TraceLocation:
    """Open (creating it if needed) the run's trace directory and choose the trace's name.

    The directories from the pattern's ``%USER%`` component down are created the job user's
    (0700), so that they can index and analyse their traces in place. The directory may thus be
    one the job user can write: it is walked and created by descriptor, following no link the
    user could have placed, and an earlier trace of the run-id is moved aside within it by name
    (rename never follows a link) — see common/fd_paths.py."""
    user = job_user.pw_name
    directory = expand_trace_dir(
        settings.trace_dir_pattern, user=user, run_id=run_id, host=settings.hostname
    )
    owned_from = user_component(settings.trace_dir_pattern)
    try:
        dir_fd = open_directory(
            directory, owned_from=owned_from, owner=(job_user.pw_uid, job_user.pw_gid)
        )
    except DatacrumbsError as exc:
        raise DatacrumbsError(f"trace directory {directory}: {exc}") from None
    location = _TraceLocation(
        dir_fd,
        directory / (f"trace-{user}-{run_id}-{settings.hostname}-{config_name(probe_path)}.pfw.gz"),
    )
    name = location.path.name
    try:
        older = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return location
    except OSError as exc:
        location.close()
        raise DatacrumbsError(f"trace directory {directory}: {exc.strerror}") from None
    # A trace of an earlier run with this run-id is kept, under its own time.
    stamp = datetime.fromtimestamp(older.st_mtime).strftime("%Y%m%dT%H%M%S")
    os.rename(
        name, name.replace(".pfw.gz", f".{stamp}.pfw.gz"), src_dir_fd=dir_fd, dst_dir_fd=dir_fd
    )
    return location


def _status_line(stats: RecordingStats, profiles: bool) -> str:
    size = f"trace {stats.trace_bytes / 1048576:.1f} MiB"
    if profiles:
        return f"profiling: {stats.events} calls in {stats.aggregates} aggregates, " + (
            f"{stats.lost} lost, {size}"
        )
    return f"tracing: {stats.events} events, {stats.lost} lost, {size}"


class _StopSignal:
    """SIGTERM/SIGINT set an event; a second signal while stopping is logged, not obeyed.

    The handler only records the signal and sets the event; the main thread logs it
    (:meth:`report`). A handler runs between two bytecodes of the main thread, which may be in
    the middle of a write to stderr: a log line written from the handler is a reentrant write
    that Python refuses with RuntimeError, which then escaped into the interrupted code before
    the event was set, and the daemon never stopped (seen under a slow, emulated CPU)."""

    def __init__(self, log: logging.Logger) -> None:
        self.event = threading.Event()
        self._log = log
        self._received: list[str] = []  # appended by the handler; list.append is atomic
        self._reported = 0
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._received.append(signal.Signals(signum).name)
        self.event.set()

    def report(self) -> None:
        """Log the signals received since the last report (from the main thread)."""
        while self._reported < len(self._received):
            name = self._received[self._reported]
            if self._reported == 0:
                self._log.info("%s: stopping", name)
            else:
                self._log.info("%s while stopping: already finishing the trace", name)
            self._reported += 1


def run_daemon(probe_path: Path, run_id_argument: str | None) -> int:
    """Trace one run until SIGTERM/SIGINT; return the exit status."""
    log = setup_logging("datacrumbs", "datacrumbs")
    stop = _StopSignal(log)
    log.info("limits: %s", "; ".join(raise_soft_limits()))
    try:
        return _run(probe_path, run_id_argument, stop)
    except DatacrumbsError as exc:
        journal_only(logging.getLogger("datacrumbs"), logging.ERROR, str(exc))
        raise


def _run(probe_path: Path, run_id_argument: str | None, stop: _StopSignal) -> int:
    settings = load_settings()
    job_user = _job_user(settings)
    owner = _install_owner(settings)
    run_id, source = resolve_run_id(run_id_argument, settings.job_id_var)
    log = setup_logging(
        "datacrumbs", "datacrumbs", DATACRUMBS_RUN_ID=run_id, DATACRUMBS_USER=job_user.pw_name
    )
    log.info(
        "run-id %s (from %s), user %s, probe file %s", run_id, source, job_user.pw_name, probe_path
    )
    # before anything is written: a node whose kernel is too old gets one line, no empty trace
    try:
        refusal = features.kernel_refusal()
    except BpfError as exc:  # libbpf itself is missing or broken: one line too
        raise DatacrumbsError(str(exc)) from None
    if refusal is not None:
        raise DatacrumbsError(refusal)
    probe_file = accept_probe_file(probe_path, settings, job_user.pw_name)

    files = RunFiles(settings.server_run_dir, run_id, settings.server_run_id_file)
    files.acquire()
    try:
        if files.prepare():
            log.info("removed a stale ready file %s", files.ready)
        location = _trace_location(settings, job_user, run_id, probe_path)
        try:
            return _trace(
                settings,
                probe_file,
                probe_path,
                job_user,
                owner,
                run_id,
                files,
                location,
                stop,
                log,
            )
        finally:
            location.close()
    finally:
        files.release()


def _trace(
    settings: Settings,
    probe_file: ProbeFile,
    probe_path: Path,
    job_user: pwd.struct_passwd,
    owner: pwd.struct_passwd,
    run_id: str,
    files: RunFiles,
    location: _TraceLocation,
    stop: _StopSignal,
    log: logging.Logger,
) -> int:
    trace_path = location.path
    notifier = Notifier()
    status_db = StatusDB(
        status_db_path(settings.data_dir, settings.install_user, job_user.pw_name, probe_path),
        owner_uid=owner.pw_uid,
        owner_gid=owner.pw_gid,
    )
    requested = [target_of(p, f) for p in probe_file.categories for f in p.functions]
    known_bad = status_db.known_invalid(requested)
    probes = _without_known_invalid(probe_file.categories, known_bad)
    for target, reason in sorted(known_bad.items()):
        log.info(
            "skipped %s %s: known to fail (%s)", target.probe_group, target.function_name, reason
        )

    started = time.monotonic()
    if settings.job_cgroup is not None and settings.job_parent_cmdline is not None:
        raise DatacrumbsError(
            "DATACRUMBS_JOB_CGROUP and DATACRUMBS_JOB_PARENT_CMDLINE both scope the job: give one"
        )
    bpf_object = settings.bpf_object_file
    if not bpf_object.is_file():
        raise DatacrumbsError(f"BPF object {bpf_object} is missing: run datacrumbs_install")
    profiles = settings.mode == "profile"
    # profile mode: the rings carry file names and thread names only
    layout = ring_layout(settings.ring_buffer_mb << 20 or (PROFILE_TOTAL if profiles else 0))
    log.info(
        "ring buffers: %d x %d MiB",
        layout.rings,
        layout.ring_bytes >> 20,
        extra={"RINGS": layout.rings, "RING_BYTES": layout.ring_bytes},
    )
    engine = Engine(
        EngineConfig(
            uid=job_user.pw_uid,
            rings=layout.rings,
            ringbuf_bytes=layout.ring_bytes,
            cgroup_later=settings.job_cgroup is not None,
            parent_cmdline=settings.job_parent_cmdline,
            bpf_object=bpf_object,
            # io_uring_enter brings up to URING_OPS functions more
            function_slots=len(requested) + 1 + URING_OPS,
            profile_interval_ns=settings.profile_interval_ms * 1_000_000 if profiles else 0,
            profile_keys=settings.profile_max_keys,
        )
    )
    if profiles:
        log.info(
            "profile mode: %d ms intervals, at most %d aggregates held",
            settings.profile_interval_ms,
            settings.profile_max_keys,
        )
    scope = _job_scope(settings, engine, log)
    # The checked binaries stay open for the whole run: a uprobe group attached again after a
    # runaway neighbour was detached must reach the very file that was checked.
    pinned = PinnedBinaries(probes)
    try:
        engine.load()
        attempted = engine.attach(pinned.probes, pinned.kernel_paths)
        by_category = {p.name: p for p in probes}
        # What the kernel refused is recorded; a binary that is not the signed file is not a
        # target known to fail, and a re-signed file must be tried at once.
        status_db.record(
            Outcome(_outcome_target(o, by_category), o.attached, o.reason or "")
            for o in pinned.unusable + attempted
        )
        outcomes = pinned.unusable + pinned.unsigned + attempted
        attached = sum(o.attached for o in outcomes)
        failed = [o for o in outcomes if not o.attached]  # the engine logged each reason
        log.info(
            "probes: %d requested, %d attached, %d failed, %d skipped as known-bad",
            len(requested),
            attached,
            len(failed),
            len(known_bad),
            extra={
                "PROBES_REQUESTED": len(requested),
                "PROBES_ATTACHED": attached,
                "PROBES_FAILED": len(failed),
                "PROBES_SKIPPED": len(known_bad),
            },
        )
        if attached == 0:
            raise DatacrumbsError("no probe could be attached; nothing to trace")

        # Created in the held directory (O_EXCL, O_NOFOLLOW) and handed over by descriptor:
        # 0600, the job user's alone, whatever group they share with others.
        writer = TraceWriter(trace_path, dir_fd=location.dir_fd, mode=0o600)
        os.fchown(writer.fileno(), job_user.pw_uid, job_user.pw_gid)
        status_db.record_run(
            run_id,
            settings.hostname,
            settings.mode,
            settings.profile_interval_ms if profiles else None,
            str(trace_path),
        )
        recording = Recording(engine, writer, settings.hostname)
        recording.start()
        if settings.job_parent_cmdline is not None:
            log.info(
                "tracing what processes whose command line starts with %r fork, and their "
                "descendants",
                settings.job_parent_cmdline,
            )
            writer.write_notice("job_scope", {"scope": "parent_cmdline",
                                              "parent_cmdline": settings.job_parent_cmdline,
                                              "user": job_user.pw_name})  # fmt: skip
        elif scope is None:
            writer.write_notice("job_scope", {"scope": "user", "user": job_user.pw_name})
        else:
            scope.announce = lambda fields: writer.write_notice("job_scope", fields)
            scope.begin()
        files.mark_ready(trace_path)
        ready_status = (
            f"{'profiling' if profiles else 'tracing'} {job_user.pw_name} (run {run_id}): "
            f"{attached} probes "
            f"attached, {len(failed)} failed -> {trace_path}"
        )
        notifier.ready(ready_status)
        log.info("ready in %.3f s: %s", time.monotonic() - started, ready_status)

        runaways = _Runaways(
            engine, HitLimit(settings.uprobe_hit_limit), writer, status_db, by_category, log
        )
        _wait_for_stop(recording, notifier, stop, runaways.check, profiles)
        notifier.stopping("stopping: draining the ring buffer and finishing the trace")
        final = recording.stop(
            summary={
                "run_id": run_id,
                "user": job_user.pw_name,
                "duration_s": round(time.monotonic() - started, 3),
            }
        )
    except EngineError as exc:
        raise DatacrumbsError(str(exc)) from None
    finally:
        if scope is not None:
            scope.close()
        engine.close()
        pinned.close()
    stop.report()  # signals that came while stopping
    duration = time.monotonic() - started
    log.info(
        "finished: %d events, %d lost, %.1f s, trace %s (%d bytes)",
        final.events,
        final.lost,
        duration,
        trace_path,
        final.trace_bytes,
        extra={"EVENTS": final.events, "EVENTS_LOST": final.lost, "TRACE_FILE": str(trace_path)},
    )
    return 0


def _job_scope(settings: Settings, engine: Engine, log: logging.Logger) -> JobScope | None:
    """The job's cgroup to trace alone, checked now (None: no cgroup scopes the run)."""
    if settings.job_cgroup is None:
        return None
    scope = JobScope(engine, settings.job_cgroup, log, lambda fields: None)
    scope.check()
    return scope


@dataclass
class _Runaways:
    """Detaches the functions that take the job over its hit limit, and says so: in the
    journal, in the status database (so the next run skips them while the binary is the same)
    and in the trace, where an instant event marks the moment the function stops appearing."""

    engine: Engine
    limit: HitLimit
    writer: TraceWriter
    status_db: StatusDB
    probes: dict[str, Probe]
    log: logging.Logger

    def check(self) -> None:
        if not self.limit.limit:
            return
        over = self.limit.over(self.engine.function_hits(), time.monotonic())
        if not over:
            return
        reasons = {
            fid: (
                f"detached: {rate:,} hits/s in all processes, over this job's limit of "
                f"{self.limit.limit:,} (DATACRUMBS_UPROBE_HIT_LIMIT)"
            )
            for fid, rate in over.items()
        }
        outcomes = self.engine.detach_functions(reasons)
        self.status_db.record(
            Outcome(_outcome_target(o, self.probes), False, o.reason or "") for o in outcomes
        )
        for outcome in outcomes:
            self.log.warning(
                "stopped tracing %s:%s: %s",
                outcome.category,
                outcome.function,
                outcome.reason,
                extra={
                    "CATEGORY": outcome.category,
                    "FUNCTION": outcome.function,
                    "BINARY": outcome.binary or "",
                },
            )
            self.writer.write_notice(
                "probe_detached",
                {
                    "category": outcome.category,
                    "function": outcome.function,
                    "binary": outcome.binary or "",
                    "reason": outcome.reason or "",
                },
            )


def _wait_for_stop(
    recording: Recording,
    notifier: Notifier,
    stop: _StopSignal,
    tick: Callable[[], None],
    profiles: bool,
) -> None:
    interval = TICK_SECONDS
    if notifier.watchdog_interval is not None:
        interval = min(interval, notifier.watchdog_interval)
    while not stop.event.wait(interval):
        if recording.engine.failure is not None:
            return  # stop() reports it; the ready file goes on exit
        tick()
        notifier.status(_status_line(recording.stats(), profiles))
        notifier.watchdog()
    stop.report()
