"""``datacrumbs_install``: lay out the shared installation under a prefix.

What it makes (all root-owned; see docs/install.md)::

    P/libexec/datacrumbs/venv/                                     0755  the program: datacrumbs
                                                                         and its dependencies
    P/bin/{datacrumbs_probe_configurator,_summary,_sqlite_extract} links into the runtime
    P/sbin/{datacrumbs,datacrumbs_sign_probes,datacrumbs_service}  links into the runtime
    P/bin/datacrumbs_setup                                         0644  bash, to source
    P/etc/datacrumbs/lmod/modulefiles/datacrumbs/<version>.lua     0644  Lmod modulefile
    P/etc/datacrumbs/systemd/<unit>                                0644  rendered unit templates
    P/etc/datacrumbs/slurm/{prolog,epilog}.sh                      0755  Slurm's Prolog/Epilog
    P/share/datacrumbs/data/system-probe-<user>-<host>.sqlite      0644  system configuration
    P/share/datacrumbs/data/probe-verify-keys.json                 0644  public keys: every node
                                                                         verifies with them
    P/lib/datacrumbs/datacrumbs.bpf.o                              0644  the BPF programs
    P/libexec/datacrumbs/datacrumbs_probe_configurator_exec  root:datacrumbs 2755  setgid launcher
    /etc/datacrumbs/probe-signing-key.pem                          0400  private key (signer's
                                                                         host only, not in P)
    /var/lib/datacrumbs (state dir), /var/log/datacrumbs           0755  this node's own state

Nothing under P is written after the installation: a site may export it read-only and
root-squashed. On a node that only verifies (``--verify-only``) no private key is made or read.

Everything a user or a node runs is under P and names only P (and the base interpreter, which
must be one every user can run): the checkout the installer ran from can be deleted. The BPF
object is the one the wheel ships (CO-RE, built where the wheel was built), checked by loading
it into this kernel; it is rebuilt with clang only when asked or when it does not load. The
launcher is compiled against the runtime's interpreter; the ``datacrumbs`` group is created if
missing (see docs/security.md).

Every step is idempotent; values an earlier run stored in the system configuration are kept
unless the environment or a flag now says otherwise (the settings' own precedence).
"""

from __future__ import annotations

import os
import platform
import pwd
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path

from datacrumbs.common.directories import closed_to_others
from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.layout import InstallLayout
from datacrumbs.common.settings import Settings, load_settings
from datacrumbs.common.signing import read_verify_keys
from datacrumbs.common.system_config import read_table, system_config_path, write_system_config
from datacrumbs.install.bpf_object import install_bpf_object
from datacrumbs.install.files import ensure_dir, ensure_file
from datacrumbs.install.interpreter import choose_interpreter
from datacrumbs.install.launcher import install_configurator_exec
from datacrumbs.install.rendering import (
    MODULEFILE_TEMPLATE,
    render,
    slurm_templates,
    systemd_templates,
)
from datacrumbs.install.runtime import (
    default_cache_dir,
    ensure_command_links,
    ensure_runtime,
    find_wheel,
)
from datacrumbs.install.setup_script import setup_script
from datacrumbs.install.signing_key import (
    check_signer_host,
    copy_verify_keys,
    ensure_signing_key,
    publish_verify_keys,
)

__all__ = ["InstallOptions", "Installation", "install"]

# Characters that would need quoting in a unit file, a Lua string or a shell word.
_UNSAFE = re.compile(r"[\s\"'\\$`]")


@dataclass(frozen=True)
class InstallOptions:
    """How to install, beyond where: the command line's flags."""

    install_user: str | None = None
    host: str | None = None
    python: Path | None = None
    wheel: Path | None = None
    wheelhouse: Path | None = None
    rebuild_bpf: bool = False
    state_dir: Path | None = None
    signing_key: Path | None = None
    verify_only: bool = False
    verify_keys: Path | None = None  # --verify-only: the signer host's file to copy
    rotate_key: bool = False
    revoke: bool = False


@dataclass(frozen=True)
class Installation:
    """Where an installation's parts are, derived from its settings."""

    settings: Settings

    @property
    def layout(self) -> InstallLayout:
        return InstallLayout(self.settings.install_prefix)

    @property
    def modulefile(self) -> Path:
        return self.layout.modulepath / "datacrumbs" / f"{package_version('datacrumbs')}.lua"

    @property
    def system_config(self) -> Path:
        s = self.settings
        return system_config_path(s.data_dir, s.install_user, s.host)


def _require_root() -> None:
    if os.geteuid() != 0:
        raise DatacrumbsError(
            "must run as root: it creates the signing key owned by root with mode 0400"
        )


def _check_options(options: InstallOptions, settings: Settings) -> None:
    if options.verify_only and (options.rotate_key or options.revoke):
        raise DatacrumbsError("--rotate-key and --revoke are for the signer's host, not with "
                              "--verify-only")  # fmt: skip
    if options.verify_keys is not None and not options.verify_only:
        raise DatacrumbsError("--verify-keys copies the signer's public keys: give it with "
                              "--verify-only")  # fmt: skip
    if options.revoke and not options.rotate_key:
        raise DatacrumbsError("--revoke drops the keys a rotation retires: give --rotate-key")
    if options.verify_only and options.verify_keys is None:
        read_verify_keys(settings.verify_keys_file)  # a shared prefix: published by the signer
    key = settings.signing_key_file
    if not options.verify_only and key.resolve().is_relative_to(settings.install_prefix.resolve()):
        raise DatacrumbsError(
            f"the signing key {key} must not be under the prefix, which every node can read: "
            "give --signing-key outside it (default /etc/datacrumbs/probe-signing-key.pem)"
        )
    if not options.verify_only:
        check_signer_host(key, settings.verify_keys_file)


def _check_reachable(prefix: Path) -> None:
    """Every user runs the installation: a prefix behind a private directory is refused now,
    not found out later by every user command failing with "Permission denied"."""
    closed = closed_to_others(prefix)
    if closed is not None:
        directory, mode = closed
        raise DatacrumbsError(
            f"other users cannot reach {prefix}: {directory} is {mode:04o}; choose a prefix "
            f"every user can reach or make {directory} traversable (chmod o+x)"
        )


@contextmanager
def _shared_umask() -> Iterator[None]:
    """Files made for every user are readable by every user, whatever root's umask."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _template_values(inst: Installation) -> dict[str, str]:
    layout = inst.layout
    values = inst.settings.as_environment()
    values |= {
        "DATACRUMBS_VERSION": package_version("datacrumbs"),
        "DATACRUMBS_BIN_DIR": str(layout.bin_dir),
        "DATACRUMBS_SBIN_DIR": str(layout.sbin_dir),
        "DATACRUMBS_MODULEPATH": str(layout.modulepath),
    }
    for name, value in values.items():
        if _UNSAFE.search(value):
            raise DatacrumbsError(
                f"{name}: {value!r} holds white space, a quote, a backslash, $ or `, "
                "which units and modulefiles cannot carry safely"
            )
    return values


def install(prefix: Path, options: InstallOptions | None = None) -> list[str]:
    """Lay out the installation at ``prefix``; return one report line per path."""
    options = options or InstallOptions()
    _require_root()
    if not prefix.is_absolute():
        raise DatacrumbsError(f"--prefix must be an absolute path, got {str(prefix)!r}")
    settings = load_settings(
        install_prefix=prefix,
        install_user=options.install_user,
        host=options.host,
        state_dir=options.state_dir,
        signing_key_file=options.signing_key,
    )
    try:
        pwd.getpwnam(settings.install_user)
    except KeyError:
        raise DatacrumbsError(
            f"install user {settings.install_user!r} does not exist on this host"
        ) from None
    _check_options(options, settings)
    inst = Installation(settings)
    values = _template_values(inst)
    _check_reachable(prefix)
    with _shared_umask():
        return _lay_out(inst, values, options)


def _lay_out(inst: Installation, values: dict[str, str], options: InstallOptions) -> list[str]:
    settings, layout = inst.settings, inst.layout
    report: list[str] = []

    def note(action: str, path: Path) -> None:
        report.append(f"{action:<24} {path}")

    base = choose_interpreter(options.python)
    cache_dir = default_cache_dir()
    wheel = find_wheel(options.wheel, cache_dir, layout.prefix)
    for directory in (
        layout.prefix,
        layout.bin_dir,
        layout.sbin_dir,
        layout.libexec_dir,
        inst.modulefile.parent,
        layout.systemd_dir,
        layout.slurm_dir,
        settings.data_dir,
        settings.log_dir,
    ):
        note(ensure_dir(directory), directory)
    note(_ensure_state_dir(settings), settings.state_dir)
    note(ensure_runtime(layout, base, wheel, options.wheelhouse, cache_dir), layout.runtime_dir)
    for action, link in ensure_command_links(layout):
        note(action, link)

    env = settings.as_environment()
    text = setup_script(
        version=values["DATACRUMBS_VERSION"],
        prefix=layout.prefix,
        env=env,
        path_dirs=[layout.bin_dir, layout.sbin_dir],
        modulepath=layout.modulepath,
    )
    note(ensure_file(layout.setup_file, text), layout.setup_file)

    modulefile = render(
        MODULEFILE_TEMPLATE.read_text(encoding="utf-8"), values, source=MODULEFILE_TEMPLATE
    )
    note(ensure_file(inst.modulefile, modulefile), inst.modulefile)

    # systemd expands %-specifiers in units: a literal % (as in %YY%) must be written %%.
    unit_values = {k: v.replace("%", "%%") for k, v in values.items()}
    for template in systemd_templates():
        target = layout.systemd_dir / template.name.removesuffix(".in")
        unit = render(template.read_text(encoding="utf-8"), unit_values, source=template)
        note(ensure_file(target, unit), target)
    for template in slurm_templates():
        target = layout.slurm_dir / template.name.removesuffix(".in")
        hook = render(template.read_text(encoding="utf-8"), values, source=template)
        note(ensure_file(target, hook, mode=0o755), target)

    note(_write_system_config(inst), inst.system_config)
    for line in _keys(settings, options):
        report.append(line)
    note(install_bpf_object(layout, base, options.rebuild_bpf), layout.bpf_object)
    note(*install_configurator_exec(layout, base))
    return report


def _keys(settings: Settings, options: InstallOptions) -> list[str]:
    """The signing key (signer's host) or the verify keys alone (``--verify-only``)."""
    keys = settings.verify_keys_file
    lines = []
    if options.verify_only:
        if options.verify_keys is not None:
            copied = copy_verify_keys(keys, options.verify_keys)
            lines.append(f"{'verify keys ' + copied:<24} {keys}")
        else:
            read_verify_keys(keys)  # a shared prefix: the signer's host published them
            lines.append(f"{'verify keys kept':<24} {keys}")
    else:
        action, key = ensure_signing_key(settings.signing_key_file, rotate=options.rotate_key)
        lines.append(f"{'signing key ' + action:<24} {settings.signing_key_file}")
        published = publish_verify_keys(
            keys, key, rotated=options.rotate_key, revoke=options.revoke
        )
        lines.append(f"{'verify keys ' + published:<24} {keys}")
    old_secret = settings.data_dir / ".datacrumbs-probe-secret"
    if old_secret.exists() or old_secret.is_symlink():
        old_secret.unlink()  # the shared HMAC secret of earlier versions: no node accepts it
        lines.append(f"{'removed old secret':<24} {old_secret}")
    return lines


def _ensure_state_dir(settings: Settings) -> str:
    """This host's state directory: the install user's (who the daemon writes the status
    databases as), 0755."""
    owner = pwd.getpwnam(settings.install_user)
    try:
        action = ensure_dir(settings.state_dir)
        info = settings.state_dir.stat()
        if (info.st_uid, info.st_gid) != (owner.pw_uid, owner.pw_gid):
            os.chown(settings.state_dir, owner.pw_uid, owner.pw_gid)
            action += " (owner set)" if action == "created" else " (owner repaired)"
    except OSError as exc:
        raise DatacrumbsError(f"state directory {settings.state_dir}: {exc.strerror}") from None
    return action


def _write_system_config(inst: Installation) -> str:
    path = inst.system_config
    existed = path.is_file()
    created_at = read_table(path, "summary").get("created_at") if existed else None
    summary = {
        "host": inst.settings.host,
        "hostname": inst.settings.hostname,  # where it was installed, for the record
        "install_user": inst.settings.install_user,
        "kernel_release": platform.release(),
        "libc_so": str(inst.settings.libc_so),
        "datacrumbs_version": package_version("datacrumbs"),
        "created_at": created_at or datetime.now(UTC).isoformat(timespec="seconds"),
    }
    config = inst.settings.as_environment(policy=True) | {
        "DATACRUMBS_KERNEL_UNAME_R": platform.release()
    }
    changed = write_system_config(path, config, summary)
    os.chown(path, 0, 0)
    os.chmod(path, 0o644)
    if not changed:
        return "kept"
    return "updated" if existed else "created"
