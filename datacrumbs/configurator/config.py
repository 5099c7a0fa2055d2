"""The configurator's YAML config: which probes a user asks for (format in docs/probes.md).

::

    expires_in_days: 30            # optional, 1-90
    capture_probes:
      - name: posix_io             # the category: ``cat`` in the trace
        probe: syscalls            # syscalls | uprobe | kprobe | usdt
        regex: "read|write"        # optional: must match a whole discovered name
        functions: [openat]        # optional: explicit names (must exist)
        delivery: valve            # optional: valve | events | aggregate (trace mode)
        function_delivery: {write: aggregate}   # optional: exceptions by function
      - name: stdio
        probe: uprobe
        binary_path: "%LIBC%"      # or ``file:``; %LIBC% is the settings' C library
        regex: "f(open|close)"

Every mistake is one line that names the config file and the probe.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.input_file import read_input
from datacrumbs.common.probes import Delivery

__all__ = ["LIBC_PLACEHOLDER", "PROBE_KINDS", "CaptureProbe", "ProbeConfig", "load_config"]

#: Kinds a config may ask for (upstream's names).
PROBE_KINDS = ("syscalls", "kprobe", "uprobe", "usdt")
#: Stands for the settings' C library (``DATACRUMBS_LIBC_SO``) in ``binary_path``.
LIBC_PLACEHOLDER = "%LIBC%"
MAX_CONFIG_BYTES = 1 << 20
_NAME = re.compile(r"^[A-Za-z0-9_.:+-]{1,128}$")


class CaptureProbe(BaseModel):
    """One entry of ``capture_probes``: one category of the probe file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    probe: str
    regex: str | None = None
    functions: list[str] = Field(default_factory=list)
    binary_path: str | None = None
    provider: str | None = None
    delivery: Delivery = "valve"
    function_delivery: dict[str, Delivery] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _file_is_binary_path(cls, data: Any) -> Any:
        if isinstance(data, dict) and "file" in data:
            if "binary_path" in data:
                raise ValueError("give binary_path or file, not both")
            data = {("binary_path" if k == "file" else k): v for k, v in data.items()}
        return data

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(f"{name!r} must be 1-128 letters, digits or _ . : + -")
        return name

    @field_validator("probe")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in PROBE_KINDS:
            raise ValueError(f"unknown probe kind {kind!r} (known: {', '.join(PROBE_KINDS)})")
        return kind

    @field_validator("regex")
    @classmethod
    def _compiles(cls, regex: str | None) -> str | None:
        if regex is not None:
            try:
                re.compile(regex)
            except re.error as exc:
                raise ValueError(f"bad regex {regex!r}: {exc}") from None
        return regex

    @model_validator(mode="after")
    def _consistent(self) -> CaptureProbe:
        if self.regex is None and not self.functions:
            raise ValueError("give a regex or functions (or both)")
        binary_kind = self.probe in ("uprobe", "usdt")
        if binary_kind and not self.binary_path:
            raise ValueError(f"a {self.probe} probe needs binary_path (or file)")
        if not binary_kind and self.binary_path:
            raise ValueError(f"a {self.probe} probe takes no binary_path")
        if (self.probe == "usdt") != (self.provider is not None):
            raise ValueError("provider is required for usdt probes and only them")
        return self


class ProbeConfig(BaseModel):
    """A whole config file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    capture_probes: list[CaptureProbe] = Field(min_length=1)
    expires_in_days: int = Field(default=30, ge=1, le=90)


def _describe(error: ErrorDetails, data: Any) -> str:
    loc = list(error["loc"])
    where = ".".join(str(p) for p in loc) or "config"
    if len(loc) >= 2 and loc[0] == "capture_probes" and isinstance(loc[1], int):
        entries = data.get("capture_probes") if isinstance(data, dict) else None
        entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        field = ".".join(str(p) for p in loc[2:])
        where = f"probe {name!r}" if isinstance(name, str) else f"capture_probes[{loc[1]}]"
        where += f" ({field})" if field else ""
    return f"{where}: {error['msg'].removeprefix('Value error, ')}"


def load_config(path: Path) -> ProbeConfig:
    """Read and check ``path``; every problem is one :class:`DatacrumbsError` line."""
    raw = read_input(path, "config", MAX_CONFIG_BYTES)
    try:
        data = yaml.safe_load(raw)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise DatacrumbsError(f"config {path}: invalid YAML{at}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise DatacrumbsError(f"config {path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise DatacrumbsError(f"config {path}: expected a mapping with capture_probes")
    try:
        return ProbeConfig.model_validate(data)
    except ValidationError as exc:
        raise DatacrumbsError(f"config {path}: {_describe(exc.errors()[0], data)}") from None
