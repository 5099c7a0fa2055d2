"""The program itself under the prefix: a virtual environment holding datacrumbs and its
dependencies, made from an interpreter every user can run.

Why a venv under ``P/libexec/datacrumbs/venv`` and not the environment the installer runs
from: an installation is made once and run by every user on every node (often from a shared
file system); it must not point back at a checkout or at root's private interpreter.

What goes in is a wheel: the one given (``--wheel``), else one built from the source tree the
installer runs from (built from a clean copy, cached by the tree's content), else the wheel the
running datacrumbs was installed from. Dependencies come from a wheelhouse: ``--wheelhouse``
for a site without network access (nothing else is consulted), else a cache that pip fills from
the package index the first time and that later installs use offline.

Idempotent: when the runtime already holds exactly the wheel's files (compared by the hashes
in the wheel's RECORD) on the same interpreter, nothing is touched.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from urllib.parse import unquote, urlparse

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.layout import ROOT_COMMANDS, USER_COMMANDS, InstallLayout, running_prefix
from datacrumbs.ebpf.build import cache_home
from datacrumbs.install.files import ensure_dir
from datacrumbs.install.interpreter import Interpreter, inspect_interpreter

__all__ = [
    "default_cache_dir",
    "ensure_command_links",
    "ensure_runtime",
    "find_wheel",
    "runtime_package",
]

#: What a source tree is copied as when its wheel is built (nothing else of a checkout).
_SOURCE_PARTS = ("datacrumbs", "pyproject.toml", "setup.py", "README.md")
_PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]


def default_cache_dir() -> Path:
    """``$DATACRUMBS_INSTALL_CACHE``, else ``install`` beside the BPF build cache
    (``~/.cache/datacrumbs/install``): built wheels and the wheelhouse."""
    explicit = os.environ.get("DATACRUMBS_INSTALL_CACHE")
    return Path(explicit) if explicit else cache_home() / "install"


def _run(argv: list[str], what: str) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        raise DatacrumbsError(f"{what} did not finish within 30 minutes") from None
    return result


def _failure(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or [f"exit status {result.returncode}"])[-1]


# -- which wheel ----------------------------------------------------------------------------


def _source_tree() -> Path | None:
    """The checkout this datacrumbs runs from (an editable install), or None."""
    root = Path(__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "datacrumbs"' in pyproject.read_text(encoding="utf-8"):
        return root
    return None


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for part in _SOURCE_PARTS:
        top = root / part
        files = (
            [top]
            if top.is_file()
            else sorted(
                p
                for p in top.rglob("*")
                if p.is_file()
                and "__pycache__" not in p.parts
                and p.suffix not in (".pyc", ".o", ".so")
            )
        )
        for path in files:
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def _build_wheel(root: Path, cache_dir: Path) -> Path:
    """A wheel of the source tree at ``root``, built once per content from a clean copy (a
    checkout's stale ``build/`` must never leak old modules into the wheel, nor an extension
    built in place: the wheel compiles its own)."""
    out = cache_dir / "wheels" / _tree_digest(root)
    built = sorted(out.glob("datacrumbs-*.whl")) if out.is_dir() else []
    if built:
        return built[0]
    with tempfile.TemporaryDirectory(prefix="datacrumbs-wheel-") as scratch:
        copy = Path(scratch) / "src"
        copy.mkdir()
        for part in _SOURCE_PARTS:
            source = root / part
            if source.is_dir():
                shutil.copytree(
                    source,
                    copy / part,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.o", "*.so"),
                )
            else:
                shutil.copy2(source, copy / part)
        dist = Path(scratch) / "dist"
        result = _run(
            [*_PIP, "wheel", "-q", "--no-deps", "-w", str(dist), str(copy)],
            "building the datacrumbs wheel",
        )
        wheels = sorted(dist.glob("datacrumbs-*.whl"))
        if result.returncode != 0 or not wheels:
            raise DatacrumbsError(
                f"cannot build the datacrumbs wheel from {root}: {_failure(result)}"
            )
        ensure_dir(out)
        shutil.copy2(wheels[0], out / wheels[0].name)
    return out / wheels[0].name


def _installed_from_wheel() -> Path | None:
    """The wheel file the running datacrumbs was pip-installed from, if it is still there."""
    try:
        text = distribution("datacrumbs").read_text("direct_url.json")
    except PackageNotFoundError:
        return None
    if not text:
        return None
    url = urlparse(json.loads(text).get("url", ""))
    path = Path(unquote(url.path))
    if url.scheme == "file" and path.suffix == ".whl" and path.is_file():
        return path
    return None


def find_wheel(explicit: Path | None, cache_dir: Path, prefix: Path) -> Path | None:
    """The wheel to install into ``prefix``; None when the installer runs from that prefix's
    runtime itself (and was not installed from a wheel that is still there)."""
    if explicit is not None:
        if (
            not explicit.is_file()
            or not explicit.name.startswith("datacrumbs-")
            or explicit.suffix != ".whl"
        ):
            raise DatacrumbsError(f"--wheel {explicit}: not a datacrumbs-*.whl file")
        try:
            _wheel_record(explicit)
        except (zipfile.BadZipFile, StopIteration, KeyError, OSError) as exc:
            raise DatacrumbsError(
                f"--wheel {explicit}: not a usable wheel ({exc or 'no RECORD'})"
            ) from None
        return explicit.resolve()
    source = _source_tree()
    if source is not None:
        return _build_wheel(source, cache_dir)
    wheel = _installed_from_wheel()
    if wheel is not None:
        return wheel
    if running_prefix() == prefix:
        return None
    raise DatacrumbsError(
        "cannot tell which datacrumbs to install: this one was not installed "
        "from a source tree or a wheel that is still there; pass --wheel "
        "datacrumbs-<version>-py3-none-any.whl"
    )


# -- the runtime ----------------------------------------------------------------------------


def _venv_matches(layout: InstallLayout, base: Interpreter) -> bool:
    python = layout.runtime_python
    if not python.exists():
        return False
    if os.path.realpath(python) != os.path.realpath(base.path):
        return False
    try:
        return inspect_interpreter(python).version == base.version
    except DatacrumbsError:
        return False


def runtime_package(layout: InstallLayout, base: Interpreter) -> Path:
    """The ``datacrumbs`` package directory inside the runtime."""
    return _site_packages(layout, base) / "datacrumbs"


def _site_packages(layout: InstallLayout, base: Interpreter) -> Path:
    return layout.runtime_dir / "lib" / f"python{base.version_text}" / "site-packages"


def _wheel_record(wheel: Path) -> tuple[list[tuple[str, str]], bytes]:
    """The (path, hash) of every file the wheel installs outside its dist-info, and its
    METADATA (name, version, dependencies)."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        record_name = next(n for n in names if n.endswith(".dist-info/RECORD"))
        metadata = archive.read(record_name.replace("RECORD", "METADATA"))
        rows = csv.reader(io.StringIO(archive.read(record_name).decode("utf-8")))
        files = [(row[0], row[1]) for row in rows if row and row[1] and ".dist-info/" not in row[0]]
    return files, metadata


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _holds_wheel(layout: InstallLayout, base: Interpreter, wheel: Path) -> bool:
    """Whether the runtime already holds exactly this wheel's files and metadata."""
    site = _site_packages(layout, base)
    files, metadata = _wheel_record(wheel)
    installed = sorted(site.glob("datacrumbs-*.dist-info/METADATA"))
    if len(installed) != 1 or installed[0].read_bytes() != metadata:
        return False
    for name, expected in files:
        path = site / name
        if not path.is_file() or _file_hash(path) != expected:
            return False
    return True


def _drop_own_wheels(house: Path) -> None:
    """The wheelhouse holds dependencies only. ``pip wheel`` copies the wheel it is given
    there too, and a later fill would take that copy (same file name, an older build) for the
    new wheel: its dependencies, not the new ones."""
    for stale in house.glob("datacrumbs-*.whl"):
        stale.unlink()


def _pip_install(
    layout: InstallLayout, wheel: Path, wheelhouse: Path | None, cache_dir: Path
) -> None:
    offline = wheelhouse is not None
    house = wheelhouse if wheelhouse is not None else cache_dir / "wheelhouse"
    install = [
        *_PIP,
        "--python",
        str(layout.runtime_python),
        "install",
        "-q",
        "--root-user-action=ignore",
        "--no-warn-script-location",
        "--force-reinstall",
        "--no-index",
        "--find-links",
        str(house),
        str(wheel),
    ]
    result = _run(install, "installing the runtime")
    if result.returncode != 0 and not offline:
        ensure_dir(house)
        _drop_own_wheels(house)
        # Built by the runtime's interpreter, bypassing pip's cache: a wheel compiled by
        # another interpreter may carry its private library path (a RUNPATH into /root).
        fill = _run(
            [
                *_PIP,
                "--python",
                str(layout.runtime_python),
                "wheel",
                "-q",
                "--no-cache-dir",
                "-w",
                str(house),
                str(wheel),
            ],
            "downloading the dependencies",
        )
        _drop_own_wheels(house)
        if fill.returncode != 0:
            raise DatacrumbsError(f"cannot get the dependencies of {wheel.name}: {_failure(fill)}")
        result = _run(install, "installing the runtime")
    if result.returncode != 0:
        where = f" from the wheelhouse {house}" if offline else ""
        raise DatacrumbsError(
            f"cannot install {wheel.name} into {layout.runtime_dir}{where}: {_failure(result)}"
        )


def ensure_runtime(
    layout: InstallLayout,
    base: Interpreter,
    wheel: Path | None,
    wheelhouse: Path | None,
    cache_dir: Path,
) -> str:
    """Make ``layout.runtime_dir`` a venv of ``base`` holding ``wheel``; the report word."""
    if wheel is None:
        return "kept (the installer runs from it)"
    fresh = not _venv_matches(layout, base)
    if fresh:
        if layout.runtime_dir.exists():
            shutil.rmtree(layout.runtime_dir)
        ensure_dir(layout.runtime_dir.parent)
        result = _run(
            [str(base.path), "-I", "-m", "venv", "--without-pip", str(layout.runtime_dir)],
            "creating the runtime",
        )
        if result.returncode != 0:
            raise DatacrumbsError(
                f"cannot create a virtual environment with {base.path}: {_failure(result)}"
            )
    elif _holds_wheel(layout, base, wheel):
        return "kept"
    _pip_install(layout, wheel, wheelhouse, cache_dir)
    return "created" if fresh else "updated"


def ensure_command_links(layout: InstallLayout) -> list[tuple[str, Path]]:
    """``P/bin`` and ``P/sbin`` entries for the installed commands: relative symlinks into the
    runtime's scripts, so that exactly these commands (no pip, no python) land on PATH."""
    report = []
    for names, directory in ((USER_COMMANDS, layout.bin_dir), (ROOT_COMMANDS, layout.sbin_dir)):
        ensure_dir(directory)
        for name in names:
            target = os.path.relpath(layout.runtime_dir / "bin" / name, directory)
            link = directory / name
            try:
                current = os.readlink(link)
            except FileNotFoundError:
                current = None
            except OSError:
                current = ""  # something that is not a symlink: replaced
            if current == target:
                report.append(("kept", link))
                continue
            temporary = directory / f".{name}.new"
            temporary.unlink(missing_ok=True)
            os.symlink(target, temporary)
            os.replace(temporary, link)
            report.append(("created" if current is None else "updated", link))
    return report
