"""The installer builds the setgid launcher once, and the launcher runs only our code."""

from __future__ import annotations

import grp
import stat
import subprocess
from pathlib import Path

from signer_support import Node, run, write_file
from support import clean_env, command, install

from datacrumbs.common.layout import InstallLayout


def test_launcher_is_root_owned_setgid_datacrumbs(node: Node) -> None:
    info = node.launcher.stat()
    assert (info.st_uid, info.st_gid) == (0, grp.getgrnam("datacrumbs").gr_gid)
    assert stat.S_IMODE(info.st_mode) == 0o2755
    assert node.launcher.read_bytes().startswith(b"\x7fELF")


def test_reinstalling_changes_nothing(world: Path) -> None:
    prefix = world / "reinstall"
    install(prefix)
    launcher = InstallLayout(prefix).launcher
    before = (launcher.read_bytes(), launcher.stat().st_mtime_ns, launcher.stat().st_ino)
    result = subprocess.run(
        [command("datacrumbs_install"), "--prefix", str(prefix)],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=True,
    )
    assert f"kept                     {launcher}\n" in result.stdout
    assert "group" not in result.stdout  # the group exists: nothing to say about it
    after = (launcher.read_bytes(), launcher.stat().st_mtime_ns, launcher.stat().st_ino)
    assert after == before


def test_reinstall_repairs_a_lost_setgid_bit(world: Path) -> None:
    prefix = world / "repair"
    install(prefix)
    launcher = InstallLayout(prefix).launcher
    launcher.chmod(0o755)
    install(prefix)
    assert stat.S_IMODE(launcher.stat().st_mode) == 0o2755


def test_launcher_ignores_pythonpath_and_the_current_directory(
    node: Node, nobody_dir: Path, world: Path
) -> None:
    # A user's own datacrumbs package on PYTHONPATH or in the cwd must never run setgid.
    evil = world / "evil"
    package = evil / "datacrumbs" / "configurator"
    package.mkdir(parents=True, exist_ok=True)
    marker = world / "evil-ran"
    for directory in (evil / "datacrumbs", package):
        write_file(directory / "__init__.py", "")
    write_file(package / "exec_main.py", f"open({str(marker)!r}, 'w').write('ran')\n")
    for path in (evil, evil / "datacrumbs", package):
        path.chmod(0o755)
    result, _ = run(
        ["sh", "-c", f'cd "{evil}" && exec "{node.launcher}" --help'],
        node.env(
            PYTHONPATH=str(evil), PYTHONSTARTUP=str(package / "exec_main.py"), PYTHONINSPECT="1"
        ),
        as_nobody=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: datacrumbs_probe_configurator [-h] config output")
    assert not marker.exists()
