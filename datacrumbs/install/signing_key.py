"""The signing key pair: the private key on the signer's host, the public keys in the prefix.

On the signer's host the installer creates the Ed25519 private key once (root, 0400, in a root
0700 directory outside the prefix) and publishes its public key in the installation's verify
keys (root, 0644): what every node checks probe files with. ``--rotate-key`` makes a new pair
and keeps the old public key, accepted for files signed before the rotation until the latest
expiry such a file can have (:data:`MAX_EXPIRY`); with ``--revoke`` the old keys are dropped at
once (a key that leaked). Keys past their acceptance are pruned from the list.

A node that does not sign (``--verify-only``) never has a private key: its prefix must already
hold the verify keys (a shared prefix) or it is given the signer host's file to copy.
"""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from datacrumbs.common.atomic_file import write_atomically
from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.signing import (
    MAX_EXPIRY,
    SigningKey,
    VerifyKey,
    VerifyKeys,
    read_signing_key,
    read_verify_keys,
)

__all__ = [
    "KEY_MODE",
    "check_signer_host",
    "copy_verify_keys",
    "ensure_signing_key",
    "publish_verify_keys",
]

KEY_MODE = 0o400


def _pem(private: Ed25519PrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _key_dir(path: Path) -> None:
    """The key's directory: made root's and 0700 when missing; an existing one must be root's
    and writable by no one else (whoever can write it can replace the key)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        info = path.parent.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
            raise DatacrumbsError(
                f"{path.parent} must be a directory of root's that no one else can write"
            ) from None


def check_signer_host(key_path: Path, keys_path: Path) -> None:
    """Refuse, before any key is made or replaced, a host that is not the installation's
    signer: the published current key must be the one this host holds (or none is published
    yet). Otherwise installing here would leave a stray private key, and publishing or rotating
    would make this host the signer and invalidate every file the real one made."""
    if not keys_path.exists():
        return
    current = read_verify_keys(keys_path).current.key_id
    mine = read_signing_key(key_path, strict=False).key_id if key_path.exists() else None
    if mine != current:
        held = f"this host's key is {mine}" if mine else f"this host holds none ({key_path})"
        raise DatacrumbsError(
            f"{keys_path} names key {current} as the installation's signing key, but {held}: "
            "run datacrumbs_install on the signer's host, or here with --verify-only (a lost "
            f"key: remove {keys_path.name} and install again; files signed before are refused)"
        )


def ensure_signing_key(path: Path, *, rotate: bool = False) -> tuple[str, SigningKey]:
    """The signer's private key at ``path``: created unless it exists, replaced by a new one
    with ``rotate``; returns what was done (for the report) and the key.

    An existing key is kept byte for byte; only a wrong owner or mode is repaired. Anything at
    ``path`` that is not a regular file holding an Ed25519 key is refused."""
    _key_dir(path)
    if rotate:
        write_atomically(path, _pem(Ed25519PrivateKey.generate()), mode=KEY_MODE, owner=(0, 0))
        return "rotated", read_signing_key(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, KEY_MODE)
    except FileExistsError:
        return _check_existing(path)
    try:
        os.fchown(fd, 0, 0)
        os.fchmod(fd, KEY_MODE)
        os.write(fd, _pem(Ed25519PrivateKey.generate()))
        os.fsync(fd)
    finally:
        os.close(fd)
    return "created", read_signing_key(path)


def _check_existing(path: Path) -> tuple[str, SigningKey]:
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode):
        raise DatacrumbsError(f"{path} exists and is not a regular file; remove it first")
    repaired = []
    if info.st_uid != 0 or info.st_gid != 0:
        os.chown(path, 0, 0, follow_symlinks=False)
        repaired.append("owner")
    if stat.S_IMODE(info.st_mode) != KEY_MODE:
        os.chmod(path, KEY_MODE)
        repaired.append("mode")
    key = read_signing_key(path)
    return (f"kept ({' and '.join(repaired)} repaired)" if repaired else "kept"), key


def publish_verify_keys(
    path: Path, key: SigningKey, *, rotated: bool = False, revoke: bool = False
) -> str:
    """Make the verify keys at ``path`` name ``key`` as current; return what was done.

    After a rotation the previous current key is kept as rotated out (dropped with
    ``revoke``). Without one, a list whose current key is another key is refused: this host is
    then not the installation's signer, and publishing its key would invalidate every file the
    real signer made."""
    now = datetime.now(UTC).replace(microsecond=0)
    public = key.private.public_key()
    existing = read_verify_keys(path) if path.exists() else None
    keys: list[VerifyKey] = []
    if existing is not None:
        current = existing.current
        if current.key_id == key.key_id:
            keys = list(existing.keys)
        elif not rotated:
            raise DatacrumbsError(
                f"{path} names key {current.key_id} as the installation's signing key, but "
                f"this host's key is {key.key_id}: run datacrumbs_install on the signer's host, "
                "or here with --verify-only"
            )
        else:
            retired = current.model_copy(
                update={"retired_at": now, "accepted_until": now + MAX_EXPIRY}
            )
            keys = [] if revoke else [*(k for k in existing.keys if k is not current), retired]
            keys.append(VerifyKey.of(public, now))
    else:
        keys = [VerifyKey.of(public, now)]
    kept = [k for k in keys if k.accepted_until is None or k.accepted_until >= now]
    if revoke:
        kept = [k for k in kept if k.retired_at is None]
    result = VerifyKeys(keys=kept)
    if existing is not None and result == existing:
        _repair(path)
        return "kept"
    write_atomically(path, result.dumps(), mode=0o644, owner=(0, 0))
    dropped = len(keys) - len(kept)
    action = "updated" if existing is not None else "created"
    return f"{action} ({dropped} expired key{'s' * (dropped != 1)} dropped)" if dropped else action


def copy_verify_keys(path: Path, source: Path) -> str:
    """Install the signer host's verify keys ``source`` at ``path`` (a node that only verifies
    and has a prefix of its own); return what was done."""
    keys = read_verify_keys(source)
    if path.exists() and read_verify_keys(path) == keys:
        _repair(path)
        return "kept"
    write_atomically(path, keys.dumps(), mode=0o644, owner=(0, 0))
    return "copied"


def _repair(path: Path) -> None:
    info = path.lstat()
    if info.st_uid != 0 or info.st_gid != 0 or stat.S_IMODE(info.st_mode) != 0o644:
        os.chown(path, 0, 0, follow_symlinks=False)
        os.chmod(path, 0o644)
