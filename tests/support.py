"""Helpers shared by tests in several folders (importable: tests/ is on sys.path via conftest)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from datacrumbs.common.binary_identity import file_identity
from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.layout import InstallLayout
from datacrumbs.common.signing import read_signing_key, sign

SCRIPTS = Path(sys.executable).parent


def command(name: str) -> str:
    """Absolute path of one of the project's console scripts in this venv (run as root)."""
    return str(SCRIPTS / name)


def installed_command(prefix: Path, name: str) -> str:
    """An installed command of the installation at ``prefix`` (what users and units run)."""
    return str(InstallLayout(prefix).command(name))


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any DATACRUMBS_* setting, plus ``extra``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DATACRUMBS_")} | extra


def install(prefix: Path, *extra: str) -> Path:
    """Install into ``prefix`` with the real ``datacrumbs_install`` (about 5 s: a runtime),
    with :func:`install_options`."""
    flags, env = install_options(prefix)
    subprocess.run(
        [command("datacrumbs_install"), "--prefix", str(prefix), *flags, *extra],
        check=True,
        capture_output=True,
        text=True,
        env=clean_env(**env),
    )
    return prefix


def install_options(prefix: Path) -> tuple[list[str], dict[str, str]]:
    """The tests' installations leave the host's own ``/etc/datacrumbs``,
    ``/var/lib/datacrumbs`` and ``/var/log/datacrumbs`` alone: the signing key goes next to
    the prefix (``<prefix>.signing-key/``: outside it, as a site's is), the state and the logs
    into the prefix, as a site that keeps its prefix writable and local may have them
    (docs/deploy.md). Returns the flags and the environment."""
    flags = ["--signing-key", str(signing_key_path(prefix)),
             "--state-dir", str(prefix / "share/datacrumbs/data")]  # fmt: skip
    return flags, {"DATACRUMBS_LOG_DIR": str(prefix / "var/log/datacrumbs")}


def signing_key_path(prefix: Path) -> Path:
    """Where :func:`install` puts the signing key of the installation at ``prefix``."""
    return prefix.parent / f"{prefix.name}.signing-key" / "probe-signing-key.pem"


@contextlib.contextmanager
def small_tmpfs(mount: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``mount`` (made), that anyone may create in (sticky, as /tmp),
    for a disk that fills up; unmounted afterwards."""
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=1777", "tmpfs", str(mount)], check=True
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def public_subdir(root: Path, name: str) -> Path:
    """``root/name``, a 0755 directory other users can reach (made once per session)."""
    path = root / name
    path.mkdir(mode=0o755, exist_ok=True)
    path.chmod(0o755)
    return path


def with_identity(category: dict[str, Any]) -> dict[str, Any]:
    """``category`` with the identity of its binary, as the configurator records it (when the
    binary exists and the category has none yet)."""
    path = category.get("binary_path")
    if not isinstance(path, str) or "binary_identity" in category:
        return category
    try:
        return category | {"binary_identity": file_identity(path).model_dump()}
    except DatacrumbsError:
        return category  # no such binary: signed without, as a missing file cannot be pinned


def signed_document(
    signing_key: Path,
    categories: list[dict[str, Any]],
    *,
    user: str,
    signed: bool = True,
    **summary: Any,
) -> dict[str, Any]:
    """A probe document as the signer would sign it for ``user`` on this host (a day's
    expiry), signed with the private key at ``signing_key``; ``summary`` overrides fields
    (None: left out)."""
    expires = datetime.now(UTC) + timedelta(days=1)
    base = {
        "hostname": socket.gethostname(),
        "host": socket.gethostname(),  # the installation: installed here, without --host
        "user": user,
        "install_user": "root",
        "expires_at": expires.isoformat(timespec="seconds"),
    }
    document: dict[str, Any] = {
        "summary": {k: v for k, v in (base | summary).items() if v is not None},
        "categories": [with_identity(c) for c in categories],
        "checksum_algorithm": "ed25519",
    }
    if signed:
        key = read_signing_key(signing_key)
        document["checksum"] = sign(key, document)
        document["signing_key"] = key.key_id
    return document
