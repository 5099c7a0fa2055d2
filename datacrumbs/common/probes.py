"""The probe file's model: what a signed ``*.json.gz`` asks the daemon to trace.

The shape follows upstream DataCrumbs so that files stay interchangeable:
``{"summary": {...}, "categories": [<probe>, ...], "checksum_algorithm", "checksum"}``.
``type`` keeps upstream's integers (0 syscalls, 1 kprobe, 2 uprobe, 3 usdt, 4 custom).
Models are strict about unknown keys so that a typo is an error, not a silently ignored probe.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from datacrumbs.common.binary_identity import BinaryIdentity

__all__ = [
    "MAX_FUNCTIONS",
    "Delivery",
    "FunctionArgument",
    "Probe",
    "ProbeFile",
    "ProbeSummary",
    "ProbeType",
]

#: Upstream's cap on the functions one probe file may name.
MAX_FUNCTIONS = 16_384


#: How a category's (or a function's) calls reach a trace-mode trace: ``valve``, events until
#: the daemon's valve opens (its ring filling up, the function's rate, the trace's budget), then
#: aggregates; ``events``, always events (never folded: a full ring loses them, counted);
#: ``aggregate``, always aggregated (as profile mode makes them). Profile mode aggregates all.
Delivery = Literal["valve", "events", "aggregate"]


class ProbeType(IntEnum):
    """Probe kinds, numbered as upstream DataCrumbs numbers them."""

    SYSCALLS = 0
    KPROBE = 1
    UPROBE = 2
    USDT = 3
    CUSTOM = 4


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FunctionArgument(_Strict):
    """One argument of a traced function to capture (uprobes): its position and how to read it."""

    index: int = Field(ge=0, le=5)
    num_bytes: int = Field(default=8, ge=1, le=8)
    is_pointer: bool = False
    label: str = Field(min_length=1)
    c_type: str = ""


class Probe(_Strict):
    """One category of the probe file: a kind, a name (the trace's ``cat``) and its functions."""

    type: ProbeType
    name: str = Field(min_length=1)
    functions: list[str] = Field(min_length=1)
    function_arguments: dict[str, list[FunctionArgument]] = Field(default_factory=dict)
    binary_path: str | None = None
    #: The signed file behind ``binary_path`` (uprobe and USDT categories; see
    #: binary_identity.py): the daemon attaches to nothing else.
    binary_identity: BinaryIdentity | None = None
    include_offsets: bool = False
    provider: str | None = None
    #: How this category's calls are delivered (:data:`Delivery`), and the exceptions of some
    #: of its functions.
    delivery: Delivery = "valve"
    function_delivery: dict[str, Delivery] = Field(default_factory=dict)

    @field_validator("type", mode="before")
    @classmethod
    def _known_type(cls, value: object) -> object:
        if isinstance(value, bool) or value not in {t.value for t in ProbeType}:
            known = ", ".join(f"{t.value} {t.name.lower()}" for t in ProbeType)
            raise ValueError(f"unknown probe type {value!r} (known: {known})")
        return value

    @field_validator("functions")
    @classmethod
    def _names_are_plain(cls, functions: list[str]) -> list[str]:
        for name in functions:
            if not name or any(c.isspace() for c in name):
                raise ValueError(f"function name {name!r} is empty or has white space")
        return functions

    @model_validator(mode="after")
    def _delivery_of_own_functions(self) -> Probe:
        unknown = sorted(set(self.function_delivery) - set(self.functions))
        if unknown:
            raise ValueError(f"function_delivery names functions not in the category: {unknown}")
        return self

    def delivery_of(self, function: str) -> Delivery:
        """How ``function``'s calls are delivered."""
        return self.function_delivery.get(function, self.delivery)


class ProbeSummary(_Strict):
    """Who and what a probe file was made for; the daemon refuses a file made for others.

    A file is bound to its user and to the installation (``host``: ``DATACRUMBS_HOST``, shared
    by every node, and ``install_user``), not to a node: signed once on the login node, it runs
    on every compute node of the job. ``hostname`` records where it was signed."""

    config_file_path: str = ""
    probe_file_path: str = ""
    hostname: str
    host: str | None = None  # None: signed before files were bound to installations
    user: str
    install_user: str
    created_at: str | None = None
    expires_at: str | None = None

    def time(self, field: str) -> datetime:
        """``created_at`` or ``expires_at`` as an aware datetime (UTC when the text names no
        zone); :class:`ValueError` with a one-line reason when it is missing or not ISO 8601.
        Signer and daemon read the times through this one function."""
        text = getattr(self, field)
        if not text:
            raise ValueError(f"summary.{field} is missing")
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"summary.{field} {text!r} is not an ISO 8601 time") from None
        return when if when.tzinfo else when.replace(tzinfo=UTC)

    def mismatch(
        self, *, user: str, host: str, install_user: str, hostname: str | None = None
    ) -> tuple[str, str, str] | None:
        """The first of user, host, install_user (and hostname, where given: the signer checks
        the record of where it signs) that differs from where the file is used, as ``(field,
        in the file, here)``; None when the file was made for here."""
        checks = [
            ("user", self.user, user),
            ("host", self.host or "", host),
            ("install_user", self.install_user, install_user),
        ]
        if hostname is not None:
            checks.append(("hostname", self.hostname, hostname))
        for field, claimed, actual in checks:
            if claimed != actual:
                return field, claimed, actual
        return None


class ProbeFile(_Strict):
    """A whole probe file as read from disk (signature fields included)."""

    summary: ProbeSummary
    categories: list[Probe] = Field(min_length=1)
    checksum_algorithm: str = "ed25519"
    checksum: str = ""
    signing_key: str = ""

    @field_validator("categories")
    @classmethod
    def _within_function_cap(cls, categories: list[Probe]) -> list[Probe]:
        total = sum(len(p.functions) for p in categories)
        if total > MAX_FUNCTIONS:
            raise ValueError(f"{total} functions exceed the maximum of {MAX_FUNCTIONS}")
        return categories
