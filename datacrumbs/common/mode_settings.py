"""The settings of how a run's calls become its trace: trace or profile mode, the aggregates'
interval and tables, and trace mode's valve. A part of :class:`~datacrumbs.common.settings.
Settings` (which inherits them, with its sources and validators), kept apart to keep each module
small.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

__all__ = ["PROFILE_INTERVAL_MS_MAX", "ModeSettings"]

PROFILE_INTERVAL_MS_MAX = 3_600_000


class ModeSettings(BaseSettings):
    """How calls become the trace (env names: ``DATACRUMBS_<FIELD>``)."""

    mode: Literal["trace", "profile"] = Field(
        default="trace",
        description=(
            "trace: every call is an event of the trace. profile: calls are aggregated in the "
            "kernel per process, thread, function, file and interval, and the trace holds one "
            "DFTracer aggregated record per aggregate."
        ),
    )
    profile_interval_ms: int = Field(
        default=1000,
        ge=1,
        le=PROFILE_INTERVAL_MS_MAX,
        description=(
            "Profile mode and trace mode's valve: the length of an aggregate's interval, in "
            "milliseconds."
        ),
    )
    aggregate_ph: Literal["3", "C"] = Field(
        default="3",
        description=(
            "How aggregated records are written (profile mode, the valve): 3, as DFTracer's "
            'trace-format spec and DFTracer 2.2 write them ("ph": 3, read by dftracer-utils '
            '0.0.14), with its end record; or C, "ph": "C", the form the released '
            "dftracer-analyzer 0.0.9 (with dftracer-utils 0.0.12) reads, without the end record."
        ),
    )
    profile_max_keys: int = Field(
        default=32768,
        ge=16,
        le=1 << 20,  # 900 MiB of kernel memory
        description=(
            "Profile mode: aggregates the kernel holds at most, in each of its two tables "
            "(the open intervals' and the handed-over ones: about 430 bytes an entry, "
            "allocated at start, 28 MiB in all for 32768); a call that finds no room is "
            "counted lost."
        ),
    )
    valve: bool = Field(
        default=True,
        description=(
            "Trace mode's valve: a call that would be an event is folded into its aggregate "
            "(as profile mode makes them) instead of lost when its ring buffer is filling up "
            "or full, when its function passes DATACRUMBS_PROBE_RATE_LIMIT, when the trace "
            "reaches DATACRUMBS_TRACE_MAX_MB, or when the probe file's rule says so; the trace "
            "marks when and why each function switched and back (docs/trace-format.md)."
        ),
    )
    valve_high_water_percent: int = Field(
        default=50,
        ge=1,
        le=100,
        description=(
            "Trace mode's valve: how full a ring buffer may get (bytes not yet consumed, in "
            "percent of its size) before the calls that would go to it are folded (100: only "
            "when it is full)."
        ),
    )
    probe_rate_limit: int = Field(
        default=0,
        ge=0,
        description=(
            "Trace mode's valve: calls a second one function may turn into events on one CPU "
            "(counted per 100 ms); the rest of the window are folded (0: no limit)."
        ),
    )
    trace_max_mb: int = Field(
        default=0,
        ge=0,
        description=(
            "Trace mode's valve: once the trace file holds this many MiB, every call that may "
            "fold is folded into aggregates for the rest of the run (0: no budget)."
        ),
    )
    consume_limit_mb_s: int = Field(
        default=0,
        ge=0,
        description=(
            "For tests and benchmarks of the valve: the daemon's consumer moves at most this "
            "many MiB a second out of the ring buffers (0: as fast as it can)."
        ),
    )
