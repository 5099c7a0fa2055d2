"""Fixtures for the engine tests: real kernel, real workloads, real traces.

The tests that load BPF or run workloads as other users need root (the ``root`` fixture, which
``traced_user`` and ``bpf_object`` depend on, skips them without it). Workloads are small C
programs compiled into a 0755 directory so that the unprivileged users the tests trace and use
as intruders (bare numeric uids no one else uses, so that other activity on the machine cannot
leak in) can run them. The pytest process itself runs as root and is never traced.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from engine_support import Session, User
from support import public_subdir

from datacrumbs.common.probes import Probe
from datacrumbs.ebpf.build import build_bpf_object
from datacrumbs.ebpf.engine import EngineConfig

C_DIR = Path(__file__).parent / "c"


@pytest.fixture(scope="session")
def root() -> None:
    """What needs root (BPF, setpriv, cgroups) skips without it, saying so; the pure tests
    (formatter, ABI, ring sizing, writer, BTF parsing) run as anyone. CI runs as root, where
    a skip is a failure (DC_TEST_NO_SKIPS)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (BPF, setpriv, cgroups)")


def _unused_id(start: int) -> int:
    """A uid/gid (same number) that no account and no running process uses: tests on a shared
    machine must not see other people's processes under the traced uid."""
    taken = {p.pw_uid for p in pwd.getpwall()}
    for proc in Path("/proc").iterdir():
        try:
            taken.add(proc.stat().st_uid)
        except OSError:
            continue
    return next(n for n in range(start, start + 1000) if n not in taken)


@pytest.fixture(scope="session")
def traced_user(root: None) -> User:
    """The job user the tests trace: a bare numeric uid (setpriv needs no account)."""
    uid = _unused_id(45870)
    return User(f"uid{uid}", uid, uid)


@pytest.fixture(scope="session")
def intruder_user(traced_user: User) -> User:
    """Another user whose processes run at the same time and must not be traced."""
    uid = _unused_id(traced_user.uid + 1)
    return User(f"uid{uid}", uid, uid)


#: The kernel matrix (tests/kernels/) sets this to the object built on the host: what a wheel
#: ships is built on one kernel and loaded on others (CO-RE), and that is what it tests.
PREBUILT_OBJECT = os.environ.get("DC_TEST_BPF_OBJECT")


@pytest.fixture(scope="session")
def bpf_object(root: None) -> Path:
    return Path(PREBUILT_OBJECT) if PREBUILT_OBJECT else build_bpf_object()


@pytest.fixture(scope="session")
def public_dir(public_root: Path) -> Path:
    """A 0755 directory outside pytest's 0700 tree: other users can run what is in it."""
    return public_subdir(public_root, "engine")


@pytest.fixture(scope="session")
def compile_c(public_dir: Path):  # type: ignore[no-untyped-def]
    """Compile tests/engine/c/<name>.c (plus extra gcc arguments) into the public dir."""

    def compile_(source: str, output: str, *extra: str) -> Path:
        out = public_dir / output
        if not out.exists():
            subprocess.run(
                ["gcc", "-O1", "-Wall", "-o", str(out), str(C_DIR / source), *extra],
                check=True,
            )
        return out

    return compile_


@pytest.fixture
def session(bpf_object: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """``session(probes, uid=..., **config)`` → a :class:`Session` writing tmp_path/trace
    (``trace_max_bytes``: the recording's budget for trace mode's valve; ``aggregate_ph``: the
    aggregated records' form)."""
    count = 0

    def make(
        probes: Sequence[Probe], trace_max_bytes: int = 0, aggregate_ph: str = "3", **config: object
    ) -> Session:
        nonlocal count
        count += 1
        cfg = EngineConfig(bpf_object=bpf_object, **config)  # type: ignore[arg-type]
        path = tmp_path / f"trace-{count}.pfw.gz"
        return Session(cfg, probes, path, trace_max_bytes, aggregate_ph)

    return make
