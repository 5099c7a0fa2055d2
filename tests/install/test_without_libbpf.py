"""Without libbpf every command still starts (``--help`` imports everything); the daemon says
in one line that the library is missing when it needs it. libbpf is hidden in a private mount
namespace (``/dev/null`` bound over it), so the host is untouched."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from support import signed_document, signing_key_path

from datacrumbs.common.layout import ROOT_COMMANDS, USER_COMMANDS, InstallLayout
from datacrumbs.common.probe_file import write_probe_file

LIBBPF = os.path.realpath("/usr/lib/x86_64-linux-gnu/libbpf.so.1")


def _without_libbpf(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = 'mount --bind /dev/null "$0" && exec "$@"'
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, LIBBPF, *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_every_command_starts_and_the_daemon_names_the_missing_library(
    product: Path, reachable_dir: Path
) -> None:
    layout = InstallLayout(product)
    env = {"PATH": "/usr/bin:/bin"}
    commands = [str(layout.command(name)) for name in (*USER_COMMANDS, *ROOT_COMMANDS)]
    for command in [*commands, str(layout.runtime_dir / "bin/datacrumbs_install")]:
        result = _without_libbpf([command, "--help"], env)
        assert result.returncode == 0 and result.stdout.startswith("usage:"), result.stderr

    key = signing_key_path(product)
    probes = reachable_dir / "probes.json.gz"
    write_probe_file(
        probes,
        signed_document(key, [{"type": 0, "name": "posix", "functions": ["write"]}], user="nobody"),
    )
    env |= {
        "DATACRUMBS_USER": "nobody",
        "DATACRUMBS_SERVER_RUN_DIR": str(reachable_dir / "run"),
        "DATACRUMBS_SERVER_RUN_ID_FILE": str(reachable_dir / "run/runid"),
        "DATACRUMBS_TRACE_DIR_PATTERN": str(reachable_dir / "traces"),
    }
    result = _without_libbpf([str(layout.command("datacrumbs")), str(probes), "nolib"], env)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == [
        "datacrumbs: error: libbpf cannot be loaded (install libbpf1): "
        "/lib/x86_64-linux-gnu/libbpf.so.1: file too short"
    ]
    assert "Traceback" not in result.stderr
