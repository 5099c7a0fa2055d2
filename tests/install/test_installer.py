"""``datacrumbs_install`` lays out the prefix with the right owners and modes, idempotently,
and refuses in one line a prefix or an interpreter other users cannot reach."""

from __future__ import annotations

import grp
import os
import re
import socket
import stat
import subprocess
from pathlib import Path

from support import command, install_options, signing_key_path

from datacrumbs.common.layout import ROOT_COMMANDS, USER_COMMANDS, InstallLayout
from datacrumbs.common.settings import load_settings
from datacrumbs.common.signing import read_signing_key, read_verify_keys
from datacrumbs.common.system_config import read_table
from datacrumbs.install.rendering import slurm_templates, systemd_templates

VERSION = "0.1.0"
HOST = socket.gethostname()


def _run_install(
    prefix: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    installer: str | None = None,
    user: str | None = None,
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DATACRUMBS_")}
    flags, paths = install_options(prefix)
    argv = [installer or command("datacrumbs_install"), "--prefix", str(prefix), *flags, *extra]
    base |= paths
    if user:
        argv = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", *argv]
    return subprocess.run(argv, capture_output=True, text=True, env=base | (env or {}))


def _snapshot(prefix: Path) -> dict[str, tuple[bytes, int, int, int]]:
    files = {}
    for path in sorted(prefix.rglob("*")):
        info = path.lstat()
        content = path.read_bytes() if path.is_file() else b""
        files[str(path)] = (content, info.st_mode, info.st_uid, info.st_mtime_ns)
    return files


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_install_creates_every_path_with_owner_and_mode(prefix: Path) -> None:
    """The default layout: the prefix, read only after this; the node's own state, logs and
    (on the signer's host) the private key outside it (here under a stand-in for the node's
    root, so as not to touch this host's)."""
    node = prefix.parent / f"{prefix.name}.node"
    key = node / "etc/datacrumbs/probe-signing-key.pem"
    state, logs = node / "var/lib/datacrumbs", node / "var/log/datacrumbs"
    result = _run_install(prefix, "--signing-key", str(key), "--state-dir", str(state),
                          env={"DATACRUMBS_LOG_DIR": str(logs)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = prefix / "share/datacrumbs/data"
    expected = {
        prefix / "bin/datacrumbs_setup": 0o644,
        prefix / f"etc/datacrumbs/lmod/modulefiles/datacrumbs/{VERSION}.lua": 0o644,
        data / f"system-probe-root-{HOST}.sqlite": 0o644,
        data / "probe-verify-keys.json": 0o644,
        prefix / "lib/datacrumbs/datacrumbs.bpf.o": 0o644,
        key: 0o400,
    }
    for path, mode in expected.items():
        assert path.is_file(), path
        assert _mode(path) == mode, (path, oct(_mode(path)))
        assert (path.stat().st_uid, path.stat().st_gid) == (0, 0), path
    for directory in (
        "bin",
        "sbin",
        "libexec/datacrumbs",
        "libexec/datacrumbs/venv",
        "etc/datacrumbs/systemd",
        "etc/datacrumbs/slurm",
        "share/datacrumbs/data",
    ):
        assert (prefix / directory).is_dir()
        assert _mode(prefix / directory) == 0o755
    assert not (prefix / "var").exists()  # nothing the daemons write is under the prefix
    assert (_mode(state), _mode(logs), _mode(key.parent)) == (0o755, 0o755, 0o700)
    assert read_verify_keys(data / "probe-verify-keys.json").current.key_id == (
        read_signing_key(key).key_id
    )
    assert not list(data.glob(".datacrumbs-probe-secret"))  # no shared secret any more
    assert (prefix / "lib/datacrumbs/datacrumbs.bpf.o").read_bytes()[:4] == b"\x7fELF"
    launcher = prefix / "libexec/datacrumbs/datacrumbs_probe_configurator_exec"
    info = launcher.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o2755, 0)
    assert grp.getgrgid(info.st_gid).gr_name == "datacrumbs"
    # One report line per path, each naming what was done.
    lines = result.stdout.splitlines()
    units = systemd_templates()
    for unit in units:
        rendered = prefix / "etc/datacrumbs/systemd" / unit.name.removesuffix(".in")
        assert rendered.is_file() and _mode(rendered) == 0o644
        assert "@DATACRUMBS_" not in rendered.read_text()
    hooks = slurm_templates()
    for hook in hooks:  # the Slurm prolog and epilog: executable, naming this prefix
        rendered = prefix / "etc/datacrumbs/slurm" / hook.name.removesuffix(".in")
        assert rendered.is_file() and _mode(rendered) == 0o755
        text = rendered.read_text()
        assert "@DATACRUMBS_" not in text and f"{prefix}/sbin/datacrumbs_service" in text
    assert len(hooks) == 2
    assert len(lines) == 25 + len(units) + len(hooks)  # + the hooks' directory
    assert all(line.split()[0] in {"created", "signing", "verify"} for line in lines), lines
    assert f"created (shipped)        {prefix}/lib/datacrumbs/datacrumbs.bpf.o" in lines
    assert f"signing key created      {key}" in lines


def test_commands_are_the_runtime_s_in_bin_and_sbin(product: Path) -> None:
    layout = InstallLayout(product)
    assert sorted(p.name for p in layout.bin_dir.iterdir()) == sorted(
        [*USER_COMMANDS, "datacrumbs_setup"]
    )
    assert sorted(p.name for p in layout.sbin_dir.iterdir()) == sorted(ROOT_COMMANDS)
    for name in (*USER_COMMANDS, *ROOT_COMMANDS):
        command_path = layout.command(name)
        target = command_path.resolve()
        assert target == layout.runtime_dir.resolve() / "bin" / name
        shebang = target.read_text().splitlines()[0]
        assert shebang == f"#!{layout.runtime_python}", shebang
    # The runtime is made from an interpreter outside any private directory (not root's pyenv).
    cfg = dict(
        line.split(" = ", 1)
        for line in (layout.runtime_dir / "pyvenv.cfg").read_text().splitlines()
        if " = " in line
    )
    assert not cfg["home"].startswith("/root")
    assert os.path.realpath(layout.runtime_python).startswith(cfg["home"].rsplit("/", 1)[0])


def test_no_installed_file_names_the_checkout(product: Path) -> None:
    """The checkout (and its .venv) can be deleted: no file under the prefix refers to it,
    whether text (units, modulefile, setup, scripts, pyvenv.cfg) or binary (the launcher)."""
    checkout = str(Path(__file__).resolve().parents[2]).encode()
    naming = [
        path
        for path in product.rglob("*")
        if path.is_file() and not path.is_symlink() and checkout in path.read_bytes()
    ]
    assert naming == []
    launcher = InstallLayout(product).launcher.read_bytes()
    assert str(InstallLayout(product).runtime_python).encode() in launcher


def test_system_configuration_holds_install_paths_and_summary(installed: Path) -> None:
    db = installed / f"share/datacrumbs/data/system-probe-root-{HOST}.sqlite"
    config = read_table(db, "system_configuration")
    assert config["DATACRUMBS_INSTALL_PREFIX"] == str(installed)
    assert config["DATACRUMBS_INSTALL_USER"] == "root"
    assert config["DATACRUMBS_DATA_DIR"] == str(installed / "share/datacrumbs/data")
    assert config["DATACRUMBS_VERIFY_KEYS_FILE"] == str(
        installed / "share/datacrumbs/data/probe-verify-keys.json"
    )
    assert config["DATACRUMBS_SIGNING_KEY_FILE"] == str(signing_key_path(installed))
    assert config["DATACRUMBS_STATE_DIR"] == str(installed / "share/datacrumbs/data")
    assert config["DATACRUMBS_SERVER_RUN_DIR"] == "/run/datacrumbs"
    assert config["DATACRUMBS_KERNEL_UNAME_R"] == os.uname().release
    assert "DATACRUMBS_USER" not in config  # per job, never installation-wide
    summary = read_table(db, "summary")
    assert summary["hostname"] == summary["host"] == HOST
    assert summary["install_user"] == "root"
    assert summary["kernel_release"] == os.uname().release
    assert Path(summary["libc_so"]).name == "libc.so.6"
    assert Path(summary["libc_so"]).is_file()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", summary["created_at"])


def test_second_install_changes_nothing(installed: Path) -> None:
    before = _snapshot(installed)
    result = _run_install(installed)
    assert result.returncode == 0, result.stderr
    assert _snapshot(installed) == before  # bytes, modes, owners and mtimes: secret included
    assert all(" kept " in f" {line} " for line in result.stdout.splitlines())


def test_reinstall_keeps_values_stored_by_an_earlier_run(prefix: Path) -> None:
    custom = {"DATACRUMBS_TRACE_DIR_PATTERN": "/srv/traces/%USER%/%YY%-%MM%-%DD%"}
    assert _run_install(prefix, env=custom).returncode == 0
    assert _run_install(prefix).returncode == 0  # no longer in the environment
    db = prefix / f"share/datacrumbs/data/system-probe-root-{HOST}.sqlite"
    pattern = read_table(db, "system_configuration")["DATACRUMBS_TRACE_DIR_PATTERN"]
    assert pattern == custom["DATACRUMBS_TRACE_DIR_PATTERN"]
    setup = (prefix / "bin/datacrumbs_setup").read_text()
    assert "DATACRUMBS_TRACE_DIR_PATTERN=/srv/traces/%USER%/%YY%-%MM%-%DD%" in setup


def test_signing_key_is_never_overwritten_and_its_mode_is_repaired(installed: Path) -> None:
    key = signing_key_path(installed)
    original = key.read_bytes()
    os.chmod(key, 0o644)
    result = _run_install(installed)
    assert result.returncode == 0, result.stderr
    assert key.read_bytes() == original
    assert _mode(key) == 0o400
    assert f"signing key kept (mode repaired) {key}" in " ".join(result.stdout.split())


def test_install_user_and_host_name_the_system_configuration(prefix: Path) -> None:
    result = _run_install(prefix, "--install-user", "daemon", "--host", "node17")
    assert result.returncode == 0, result.stderr
    db = prefix / "share/datacrumbs/data/system-probe-daemon-node17.sqlite"
    assert read_table(db, "summary")["host"] == "node17"
    assert read_table(db, "summary")["hostname"] == socket.gethostname()  # where, for the record
    config = read_table(db, "system_configuration")
    assert config["DATACRUMBS_INSTALL_USER"] == "daemon"
    assert config["DATACRUMBS_HOST"] == "node17"
    # every node of the installation finds it, whatever its own name, and reads the name
    settings = load_settings(install_prefix=prefix, hostname="compute-3")
    assert (settings.host, settings.install_user, settings.hostname) == (
        "node17",
        "daemon",
        "compute-3",
    )


def test_non_root_is_refused_with_one_line(prefix: Path, product: Path) -> None:
    # The installer of an installation's runtime: nobody may not be able to reach this clone.
    installer = InstallLayout(product).runtime_dir / "bin/datacrumbs_install"
    result = _run_install(prefix, installer=str(installer), user="nobody")
    assert result.returncode == 2
    assert result.stderr == (
        "datacrumbs_install: error: must run as root: it creates the signing key owned by "
        "root with mode 0400\n"
    )
    assert not prefix.exists()


def test_unknown_install_user_is_refused(prefix: Path) -> None:
    result = _run_install(prefix, "--install-user", "no_such_user_dc")
    assert result.returncode == 2
    assert result.stderr == (
        "datacrumbs_install: error: install user 'no_such_user_dc' does not exist on this host\n"
    )


def test_prefix_other_users_cannot_reach_is_refused_in_one_line(reachable_dir: Path) -> None:
    closed = reachable_dir / "home"
    closed.mkdir(mode=0o700)
    result = _run_install(closed / "prefix")
    assert result.returncode == 2
    assert result.stderr == (
        f"datacrumbs_install: error: other users cannot reach {closed}/prefix: {closed} is "
        f"0700; choose a prefix every user can reach or make {closed} traversable (chmod o+x)\n"
    )
    assert not (closed / "prefix").exists()


def test_interpreter_other_users_cannot_run_is_refused_in_one_line(
    prefix: Path, reachable_dir: Path
) -> None:
    private = reachable_dir / "pyenv"
    private.mkdir(mode=0o700)
    python = private / "python3"
    python.symlink_to(os.path.realpath("/usr/bin/python3"))
    result = _run_install(prefix, "--python", str(python))
    assert result.returncode == 2
    assert result.stderr == (
        f"datacrumbs_install: error: no Python interpreter every user can run ({python}: "
        f"{private} is 0700, so other users cannot reach {python})\n"
    )
    assert not (prefix / "libexec").exists()


def test_prefix_unsafe_for_units_is_refused(tmp_path: Path) -> None:
    result = _run_install(tmp_path / "with space")
    assert result.returncode == 2
    assert result.stderr.startswith("datacrumbs_install: error: DATACRUMBS_INSTALL_PREFIX: ")
    assert "white space" in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_wheel_that_is_no_zip_is_refused_in_one_line(prefix: Path, reachable_dir: Path) -> None:
    fake = reachable_dir / "datacrumbs-0.1.0-py3-none-any.whl"
    fake.write_text("not a zip\n")
    result = _run_install(prefix, "--wheel", str(fake))
    assert result.returncode == 2
    assert result.stderr == (
        f"datacrumbs_install: error: --wheel {fake}: not a usable wheel (File is not a zip file)\n"
    )
