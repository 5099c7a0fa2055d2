"""The installation's BPF object: the one the wheel ships, unless it does not load here.

The object is CO-RE, so the copy compiled where the wheel was built relocates on any kernel
with BTF, and compute nodes need no compiler. "Does it load" is answered by the kernel, not
guessed: the installer loads it exactly as the daemon will (verifier and CO-RE relocations
included) and unloads it at once. Only when that fails, or when ``--rebuild-bpf`` asks, is the
object compiled from the C sources the runtime carries, for this kernel.
"""

from __future__ import annotations

from pathlib import Path

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.layout import InstallLayout
from datacrumbs.ebpf.build import BuildError, build_bpf_object
from datacrumbs.ebpf.engine import Engine, EngineConfig, EngineError
from datacrumbs.install.files import ensure_dir, ensure_file
from datacrumbs.install.interpreter import Interpreter
from datacrumbs.install.runtime import runtime_package

__all__ = ["install_bpf_object", "load_error"]

_OBJECT = "datacrumbs.bpf.o"


def load_error(path: Path) -> str | None:
    """Why the BPF object at ``path`` does not load into this kernel, or None if it does."""
    try:
        with Engine(EngineConfig(uid=0, bpf_object=path)) as engine:
            engine.load()
    except EngineError as exc:
        return str(exc)
    return None


def install_bpf_object(layout: InstallLayout, base: Interpreter, rebuild: bool) -> str:
    """Put the object at ``layout.bpf_object``; the report word says where it came from."""
    package = runtime_package(layout, base) / "ebpf"
    shipped = package / _OBJECT
    if rebuild:
        why: str | None = "asked by --rebuild-bpf"
    elif not shipped.is_file():
        why = "the wheel ships none"
    else:
        reason = load_error(shipped)
        why = None if reason is None else f"the shipped one does not load: {reason}"
    chosen, origin = shipped, "shipped"
    if why is not None:
        chosen, origin = _rebuild(package / "bpf", why), "rebuilt"
        if (reason := load_error(chosen)) is not None:
            raise DatacrumbsError(f"the BPF object built for this kernel does not load: {reason}")
    ensure_dir(layout.bpf_object.parent)
    return f"{ensure_file(layout.bpf_object, chosen.read_bytes())} ({origin})"


def _rebuild(sources: Path, why: str) -> Path:
    try:
        return build_bpf_object(source_dir=sources)  # cached by content and kernel BTF
    except BuildError as exc:
        raise DatacrumbsError(f"cannot build the BPF programs ({why}): {exc}") from None
