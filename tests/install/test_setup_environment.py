"""``source datacrumbs_setup`` and ``module load datacrumbs`` give the same environment."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from datacrumbs.common.layout import ROOT_COMMANDS, USER_COMMANDS, InstallLayout
from datacrumbs.common.settings import load_settings

LMOD_INIT = "/usr/share/lmod/lmod/init/bash"
BASE_PATH = "/usr/bin:/bin"


def _clean_bash(script: str, **env: str) -> dict[str, str]:
    """Run ``script`` in ``env -i bash`` and return the environment it ends with."""
    out = subprocess.run(
        [
            "env",
            "-i",
            f"PATH={BASE_PATH}",
            *(f"{k}={v}" for k, v in env.items()),
            "bash",
            "-c",
            f"set -e; {script}; env -0",
        ],
        check=True,
        capture_output=True,
    ).stdout
    pairs = (item.split(b"=", 1) for item in out.split(b"\0") if item)
    return {k.decode(): v.decode() for k, v in pairs}


def _datacrumbs(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("DATACRUMBS_")}


def _expected(prefix: Path) -> dict[str, str]:
    return load_settings(install_prefix=prefix).as_environment()


def test_sourcing_setup_exports_the_installation(product: Path) -> None:
    env = _clean_bash(f"source {product}/bin/datacrumbs_setup")
    assert _datacrumbs(env) == _expected(product)
    assert env["DATACRUMBS_INSTALL_PREFIX"] == str(product)
    assert env["PATH"] == f"{product}/bin:{product}/sbin:{BASE_PATH}"
    assert env["MODULEPATH"].split(":")[0] == f"{product}/etc/datacrumbs/lmod/modulefiles"


def test_sourcing_setup_twice_adds_nothing_twice(product: Path) -> None:
    once = _clean_bash(f"source {product}/bin/datacrumbs_setup")
    twice = _clean_bash(
        f"source {product}/bin/datacrumbs_setup; source {product}/bin/datacrumbs_setup"
    )
    assert twice["PATH"] == once["PATH"]
    assert twice["MODULEPATH"] == once["MODULEPATH"]


def test_setup_keeps_a_value_the_user_already_set(product: Path) -> None:
    env = _clean_bash(f"source {product}/bin/datacrumbs_setup", DATACRUMBS_LOG_DIR="/mine")
    assert env["DATACRUMBS_LOG_DIR"] == "/mine"
    assert env["DATACRUMBS_DATA_DIR"] == f"{product}/share/datacrumbs/data"


def test_setup_puts_exactly_the_installed_commands_on_path(product: Path) -> None:
    names = " ".join([*USER_COMMANDS, *ROOT_COMMANDS, "datacrumbs_install", "pip", "python"])
    env = _clean_bash(
        f'source {product}/bin/datacrumbs_setup; export FOUND="$(for n in '
        f'{names}; do command -v $n || true; done)"'
    )
    layout = InstallLayout(product)
    expected = [str(layout.command(name)) for name in (*USER_COMMANDS, *ROOT_COMMANDS)]
    # Not the installer, pip or the runtime's python: from the prefix, only the commands.
    found = [line for line in env["FOUND"].split("\n") if line.startswith(f"{product}/")]
    assert found == expected
    on_path = sorted(
        p.name
        for d in (layout.bin_dir, layout.sbin_dir)
        for p in d.iterdir()
        if os.access(p, os.X_OK)
    )
    assert on_path == sorted((*USER_COMMANDS, *ROOT_COMMANDS))


def test_module_load_matches_setup_and_unload_removes_it(product: Path) -> None:
    modulepath = product / "etc/datacrumbs/lmod/modulefiles"
    lmod = f"source {LMOD_INIT}; module use {modulepath}"
    loaded = _clean_bash(f"{lmod}; module load datacrumbs/0.1.0")
    sourced = _clean_bash(f"source {product}/bin/datacrumbs_setup")
    assert _datacrumbs(loaded) == _datacrumbs(sourced) == _expected(product)
    assert loaded["PATH"] == sourced["PATH"]
    assert str(modulepath) in loaded["MODULEPATH"].split(":")

    unloaded = _clean_bash(f"{lmod}; module load datacrumbs/0.1.0; module unload datacrumbs")
    assert _datacrumbs(unloaded) == {}
    assert unloaded["PATH"] == BASE_PATH


def test_module_keeps_a_value_the_user_already_set_through_unload(product: Path) -> None:
    lmod = f"source {LMOD_INIT}; module use {product}/etc/datacrumbs/lmod/modulefiles"
    env = _clean_bash(f"{lmod}; module load datacrumbs/0.1.0", DATACRUMBS_LOG_DIR="/mine")
    assert env["DATACRUMBS_LOG_DIR"] == "/mine"
    env = _clean_bash(
        f"{lmod}; module load datacrumbs/0.1.0; module unload datacrumbs",
        DATACRUMBS_LOG_DIR="/mine",
    )
    assert _datacrumbs(env) == {"DATACRUMBS_LOG_DIR": "/mine"}
