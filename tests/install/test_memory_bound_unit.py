"""The daemon's memory bound (DATACRUMBS_DAEMON_MEMORY_MB, issue 25, N4) is its unit's
``MemoryMax=`` and what the daemon sizes its rings and tables within: one value, set when
installing, kept in the system configuration."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support import clean_env, command, install_options

from datacrumbs.common.settings import load_settings
from datacrumbs.trace.memory_budget import DEFAULT_TOTAL

UNIT = "etc/datacrumbs/systemd/datacrumbs@.service"


def _memory_lines(prefix: Path) -> list[str]:
    return [
        line for line in (prefix / UNIT).read_text().splitlines() if line.startswith("MemoryMax")
    ]


def _install(prefix: Path, memory_mb: str) -> subprocess.CompletedProcess[str]:
    flags, env = install_options(prefix)
    return subprocess.run(
        [command("datacrumbs_install"), "--prefix", str(prefix), *flags],
        env=clean_env(**env, DATACRUMBS_DAEMON_MEMORY_MB=memory_mb),
        capture_output=True,
        text=True,
    )


def test_the_default_bound_is_the_units_and_the_daemons(product: Path) -> None:
    assert _memory_lines(product) == [f"MemoryMax={DEFAULT_TOTAL >> 20}M"]
    assert load_settings(install_prefix=product).daemon_memory_mb << 20 == DEFAULT_TOTAL


def test_a_sites_bound_is_rendered_into_the_unit_and_kept(prefix: Path) -> None:
    result = _install(prefix, "512")
    assert result.returncode == 0, result.stderr
    assert _memory_lines(prefix) == ["MemoryMax=512M"]
    assert load_settings(install_prefix=prefix).daemon_memory_mb == 512


def test_a_bound_too_small_to_run_in_is_refused(prefix: Path) -> None:
    result = _install(prefix, "64")
    assert result.returncode != 0
    assert result.stderr.splitlines()[-1].startswith(
        "datacrumbs_install: error: DATACRUMBS_DAEMON_MEMORY_MB:"
    ), result.stderr
    assert not (prefix / UNIT).exists()
