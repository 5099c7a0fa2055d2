"""``datacrumbs_install``: lay out the shared installation under a prefix.

What it makes (all root-owned; see docs/install.md)::

    P/bin/datacrumbs_setup                                         0644  bash, to source
    P/etc/datacrumbs/lmod/modulefiles/datacrumbs/<version>.lua     0644  Lmod modulefile
    P/etc/datacrumbs/systemd/<unit>                                0644  rendered unit templates
    P/share/datacrumbs/data/system-probe-<user>-<host>.sqlite      0644  system configuration
    P/share/datacrumbs/data/.datacrumbs-probe-secret               0400  HMAC key, created once
    P/lib/datacrumbs/datacrumbs.bpf.o                              0644  the compiled BPF programs
    P/libexec/datacrumbs/datacrumbs_probe_configurator_exec  root:datacrumbs 2755  setgid launcher
    <log dir>                                                      0755

The BPF object is compiled here (clang against this kernel's BTF, CO-RE) so the daemon only
loads it: no compiler runs when a job starts. The launcher is compiled against the venv's
Python; the ``datacrumbs`` group is created if missing (see docs/security.md).

Every step is idempotent; values an earlier run stored in the system configuration are kept
unless the environment or a flag now says otherwise (the settings' own precedence).
"""

from __future__ import annotations

import os
import platform
import pwd
import re
import sys
import sysconfig
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.settings import Settings, load_settings
from datacrumbs.common.system_config import read_table, system_config_path, write_system_config
from datacrumbs.configurator.launcher_build import install_configurator_exec
from datacrumbs.ebpf.build import BuildError, build_bpf_object
from datacrumbs.install.files import ensure_dir, ensure_file
from datacrumbs.install.secret import ensure_secret
from datacrumbs.install.setup_script import setup_script
from datacrumbs.install.templates import (
    MODULEFILE_TEMPLATE,
    SYSTEMD_TEMPLATES,
    render,
    template_dir,
)

__all__ = ["Installation", "install"]

# Characters that would need quoting in a unit file, a Lua string or a shell word.
_UNSAFE = re.compile(r"[\s\"'\\$`]")


@dataclass(frozen=True)
class Installation:
    """Where an installation's parts are, derived from its settings."""

    settings: Settings

    @property
    def prefix(self) -> Path:
        return self.settings.install_prefix

    @property
    def bin_dir(self) -> Path:
        return self.prefix / "bin"

    @property
    def setup_file(self) -> Path:
        return self.bin_dir / "datacrumbs_setup"

    @property
    def modulepath(self) -> Path:
        return self.prefix / "etc/datacrumbs/lmod/modulefiles"

    @property
    def modulefile(self) -> Path:
        return self.modulepath / "datacrumbs" / f"{package_version('datacrumbs')}.lua"

    @property
    def systemd_dir(self) -> Path:
        return self.prefix / "etc/datacrumbs/systemd"

    @property
    def system_config(self) -> Path:
        s = self.settings
        return system_config_path(s.data_dir, s.install_user, s.hostname)


def _code_paths() -> list[Path]:
    """The venv and the source tree the commands run from (one, if the venv is inside it)."""
    venv = Path(sys.prefix).resolve()
    source = Path(__file__).resolve().parents[2]
    return [source] if venv.is_relative_to(source) else [source, venv]


def _require_root() -> None:
    if os.geteuid() != 0:
        raise DatacrumbsError(
            "must run as root: it creates the probe secret owned by root with mode 0400"
        )


def _template_values(inst: Installation, scripts_dir: Path) -> dict[str, str]:
    values = inst.settings.as_environment()
    values |= {
        "DATACRUMBS_VERSION": package_version("datacrumbs"),
        "DATACRUMBS_BIN_DIR": str(inst.bin_dir),
        "DATACRUMBS_SCRIPTS_DIR": str(scripts_dir),
        "DATACRUMBS_MODULEPATH": str(inst.modulepath),
    }
    code_paths = [str(p) for p in _code_paths()]
    checked = [*values.items(), *(("the code path", p) for p in code_paths)]
    for name, value in checked:
        if _UNSAFE.search(value):
            raise DatacrumbsError(
                f"{name}: {value!r} holds white space, a quote, a backslash, $ or `, "
                "which units and modulefiles cannot carry safely"
            )
    # '-': a missing path is skipped rather than failing the unit.
    values["DATACRUMBS_CODE_PATHS"] = " ".join(f"-{p}" for p in code_paths)
    return values


def install(prefix: Path, install_user: str | None = None, host: str | None = None) -> list[str]:
    """Lay out the installation at ``prefix``; return one report line per path."""
    _require_root()
    if not prefix.is_absolute():
        raise DatacrumbsError(f"--prefix must be an absolute path, got {str(prefix)!r}")
    settings = load_settings(install_prefix=prefix, install_user=install_user, hostname=host)
    try:
        pwd.getpwnam(settings.install_user)
    except KeyError:
        raise DatacrumbsError(
            f"install user {settings.install_user!r} does not exist on this host"
        ) from None
    inst = Installation(settings)
    scripts_dir = Path(sysconfig.get_path("scripts"))
    values = _template_values(inst, scripts_dir)
    report: list[str] = []

    def note(action: str, path: Path) -> None:
        report.append(f"{action:<24} {path}")

    for directory in (inst.bin_dir, inst.modulefile.parent, inst.systemd_dir, settings.data_dir,
                      settings.log_dir):
        note(ensure_dir(directory), directory)

    env = settings.as_environment()
    text = setup_script(
        version=values["DATACRUMBS_VERSION"],
        prefix=prefix,
        env=env,
        path_dirs=[inst.bin_dir, scripts_dir],
        modulepath=inst.modulepath,
    )
    note(ensure_file(inst.setup_file, text), inst.setup_file)

    source = template_dir(MODULEFILE_TEMPLATE)
    modulefile = render(source.read_text(encoding="utf-8"), values, source=source)
    note(ensure_file(inst.modulefile, modulefile), inst.modulefile)

    # systemd expands %-specifiers in units: a literal % (as in %YY%) must be written %%.
    unit_values = {k: v.replace("%", "%%") for k, v in values.items()}
    for template in sorted(template_dir(SYSTEMD_TEMPLATES).iterdir()):
        if template.name == "README.md" or not template.is_file():
            continue
        target = inst.systemd_dir / template.name.removesuffix(".in")
        unit = render(template.read_text(encoding="utf-8"), unit_values, source=template)
        note(ensure_file(target, unit), target)

    note(_write_system_config(inst, env), inst.system_config)
    note(f"secret {ensure_secret(settings.probe_secret_file)}", settings.probe_secret_file)
    note(_install_bpf_object(settings.bpf_object_file), settings.bpf_object_file)
    note(*install_configurator_exec(prefix))
    return report


def _install_bpf_object(target: Path) -> str:
    try:
        built = build_bpf_object()  # cached by content: clang runs only when sources change
    except BuildError as exc:
        raise DatacrumbsError(f"cannot build the BPF programs: {exc}") from None
    ensure_dir(target.parent)
    return ensure_file(target, built.read_bytes())


def _write_system_config(inst: Installation, env: dict[str, str]) -> str:
    path = inst.system_config
    existed = path.is_file()
    created_at = read_table(path, "summary").get("created_at") if existed else None
    summary = {
        "hostname": inst.settings.hostname,
        "install_user": inst.settings.install_user,
        "kernel_release": platform.release(),
        "libc_so": str(inst.settings.libc_so),
        "datacrumbs_version": package_version("datacrumbs"),
        "created_at": created_at or datetime.now(UTC).isoformat(timespec="seconds"),
    }
    config = env | {"DATACRUMBS_KERNEL_UNAME_R": platform.release()}
    changed = write_system_config(path, config, summary)
    os.chown(path, 0, 0)
    os.chmod(path, 0o644)
    if not changed:
        return "kept"
    return "updated" if existed else "created"
