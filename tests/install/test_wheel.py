"""``python -m build`` makes a wheel that carries the BPF C source and a prebuilt CO-RE object;
``pip install`` of it into any environment gives working commands, and its installer lays out a
prefix with the shipped object (no compiler needed on the node)."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import clean_env, command, install_options

from datacrumbs.common.layout import ROOT_COMMANDS, USER_COMMANDS, InstallLayout
from datacrumbs.install.bpf_object import load_error

CHECKOUT = Path(__file__).resolve().parents[2]
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
EM_BPF = 247  # ELF e_machine of BPF objects


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The wheel ``python -m build`` makes (sdist, then the wheel from it) of a copy of the
    checkout, so nothing is written into the checkout."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(
        CHECKOUT,
        source,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    subprocess.run(
        [sys.executable, "-m", "build", "-o", str(work / "dist"), str(source)],
        check=True,
        capture_output=True,
        text=True,
    )
    [built] = (work / "dist").glob("datacrumbs-*.whl")
    yield built


def test_wheel_carries_the_bpf_source_and_a_prebuilt_object(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        obj = archive.read("datacrumbs/ebpf/datacrumbs.bpf.o")
    assert {
        "datacrumbs/ebpf/bpf/maps.bpf.c",
        "datacrumbs/ebpf/bpf/syscalls.bpf.c",
        "datacrumbs/ebpf/bpf/dc_records.h",
        "datacrumbs/configurator/launcher.c",
        "datacrumbs/install/templates/systemd/datacrumbs@.service.in",
        "datacrumbs/install/templates/modulefiles/datacrumbs.lua.in",
    } <= names
    assert obj[:4] == b"\x7fELF" and int.from_bytes(obj[18:20], "little") == EM_BPF
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in names)


def test_pip_installed_wheel_runs_and_installs_a_prefix(
    wheel: Path, prefix: Path, tmp_path: Path
) -> None:
    env = tmp_path / "env"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(env)], check=True)
    subprocess.run(
        [str(env / "bin/pip"), "install", "-q", "--disable-pip-version-check", str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    for name in (*USER_COMMANDS, *ROOT_COMMANDS, "datacrumbs_install"):
        result = subprocess.run([str(env / "bin" / name), "--help"], capture_output=True, text=True)
        assert result.returncode == 0 and result.stdout.startswith("usage:"), name

    # Its installer installs the very wheel it came from, and the object the wheel ships.
    flags, paths = install_options(prefix)  # not this host's own /etc, /var/lib, /var/log
    result = subprocess.run(
        [str(env / "bin/datacrumbs_install"), "--prefix", str(prefix), *flags],
        capture_output=True,
        text=True,
        env=clean_env(**paths),
    )
    assert result.returncode == 0, result.stderr
    assert (
        f"created (shipped)        {prefix}/lib/datacrumbs/datacrumbs.bpf.o"
        in result.stdout.splitlines()
    )
    layout = InstallLayout(prefix)
    with zipfile.ZipFile(wheel) as archive:
        assert layout.bpf_object.read_bytes() == archive.read("datacrumbs/ebpf/datacrumbs.bpf.o")
    result = subprocess.run(
        [*NOBODY, str(layout.command("datacrumbs_summary")), "--help"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and result.stdout.startswith("usage:"), result.stderr

    # Asked to, it compiles the object for this kernel instead.
    result = subprocess.run(
        [str(env / "bin/datacrumbs_install"), "--prefix", str(prefix), "--rebuild-bpf"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.endswith("datacrumbs.bpf.o")]
    assert line.split()[1] == "(rebuilt)", line


def _with_object(wheel: Path, data: bytes, out: Path) -> Path:
    """A copy of ``wheel`` whose BPF object is ``data`` (its RECORD line rewritten to match)."""
    member = "datacrumbs/ebpf/datacrumbs.bpf.o"
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    doctored = out / wheel.name
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(doctored, "w") as target:
        for item in source.infolist():
            content = source.read(item)
            if item.filename == member:
                content = data
            elif item.filename.endswith(".dist-info/RECORD"):
                lines = [
                    f"{member},sha256={digest},{len(data)}"
                    if line.startswith(member + ",")
                    else line
                    for line in content.decode().splitlines()
                ]
                content = ("\n".join(lines) + "\n").encode()
            target.writestr(item, content)
    return doctored


def test_shipped_object_that_does_not_load_is_rebuilt(
    wheel: Path, prefix: Path, tmp_path: Path
) -> None:
    # An ELF the kernel cannot take (the BPF object's header, cut short) stands for an object
    # built for another architecture or a kernel without the features it uses.
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("datacrumbs/ebpf/datacrumbs.bpf.o")
    broken = _with_object(wheel, shipped[:64], tmp_path)
    flags, paths = install_options(prefix)
    result = subprocess.run(
        [command("datacrumbs_install"), "--prefix", str(prefix), "--wheel", str(broken), *flags],
        capture_output=True,
        text=True,
        env=clean_env(**paths),
    )
    assert result.returncode == 0, result.stderr
    layout = InstallLayout(prefix)
    assert f"created (rebuilt)        {layout.bpf_object}" in result.stdout.splitlines()
    assert load_error(layout.bpf_object) is None
    assert layout.bpf_object.read_bytes() != shipped[:64]
