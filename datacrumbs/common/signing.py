"""The probe-file signature, defined once for the signer and the daemon alike.

Probe files are signed with Ed25519. The private key lives only on the signer's host (root,
0400, outside the shared installation: ``DATACRUMBS_SIGNING_KEY_FILE``); every node verifies
with the public keys the installation publishes (``DATACRUMBS_VERIFY_KEYS_FILE``, world-readable,
in the prefix). Root on a compute node can thus verify probe files but never make one: the
shared HMAC secret of earlier versions let root on any node that could read it sign files every
other node's root daemon would run.

``checksum_algorithm`` is ``"ed25519"``. The message is the canonical JSON of the file's
``summary`` and ``categories`` exactly as they stand in the file, plus the algorithm::

    json.dumps({"summary": ..., "categories": ..., "checksum_algorithm": "ed25519"},
               sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

``checksum`` is the 64-byte signature as 128 lowercase hex digits; ``signing_key`` names the
key that made it (:func:`key_id`: the first 16 hex digits of the SHA-256 of the raw public
key). A key that was rotated out stays in the published list with the time until which files it
signed are still accepted (the furthest expiry a file signed at rotation could have); past
that, and for keys the list does not hold, files are refused. See docs/signature.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from datacrumbs.common.errors import DatacrumbsError

__all__ = [
    "ALGORITHM",
    "MAX_EXPIRY",
    "SigningKey",
    "VerifyKey",
    "VerifyKeys",
    "key_id",
    "read_signing_key",
    "read_verify_keys",
    "sign",
    "signing_message",
    "verify",
]

ALGORITHM = "ed25519"
#: The furthest expiry the signer accepts: a signed file is a standing permission. A key rotated
#: out is accepted this long after its rotation, so every file it signed runs until it expires.
MAX_EXPIRY = timedelta(days=90)
#: The algorithm of earlier versions' shared secret: named in the refusal of such files.
_OLD_ALGORITHM = "hmac-sha256"


def key_id(public: Ed25519PublicKey) -> str:
    """The short name of a key: 16 hex digits of the SHA-256 of its 32 raw bytes."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    """The signer's private key and its name."""

    private: Ed25519PrivateKey

    @property
    def key_id(self) -> str:
        return key_id(self.private.public_key())


class VerifyKey(BaseModel):
    """One published public key: current (no ``retired_at``) or rotated out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    public_key: str = Field(description="the 32 raw bytes, base64")
    created_at: datetime
    retired_at: datetime | None = None
    #: rotated-out keys: files they signed are accepted until then (their latest expiry)
    accepted_until: datetime | None = None

    def public(self) -> Ed25519PublicKey:
        try:
            raw = base64.b64decode(self.public_key, validate=True)
            key = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            raise DatacrumbsError(f"public key {self.key_id} is not 32 base64 bytes") from None
        if key_id(key) != self.key_id:
            raise DatacrumbsError(f"public key {self.key_id} does not match its key_id")
        return key

    @classmethod
    def of(cls, public: Ed25519PublicKey, created_at: datetime) -> VerifyKey:
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return cls(
            key_id=key_id(public),
            public_key=base64.b64encode(raw).decode("ascii"),
            created_at=created_at,
        )


class VerifyKeys(BaseModel):
    """The published list: exactly one current key, and the rotated-out ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: list[VerifyKey] = Field(min_length=1)

    @property
    def current(self) -> VerifyKey:
        return next(k for k in self.keys if k.retired_at is None)

    def dumps(self) -> str:
        return self.model_dump_json(indent=2, exclude_none=True) + "\n"


def read_verify_keys(path: Path) -> VerifyKeys:
    """The public keys published at ``path``, or one :class:`DatacrumbsError` line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatacrumbsError(
            f"verify keys {path} do not exist; run datacrumbs_install (on the signer's host, or "
            "with --verify-only --verify-keys FILE on a node that has its own prefix)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatacrumbsError(f"verify keys {path} cannot be read: {exc}") from None
    try:
        keys = VerifyKeys.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DatacrumbsError(f"verify keys {path}: {where}: {first['msg']}") from None
    if sum(k.retired_at is None for k in keys.keys) != 1:
        raise DatacrumbsError(f"verify keys {path}: exactly one key must be current")
    return keys


def read_signing_key(path: Path, *, strict: bool = True) -> SigningKey:
    """The private key at ``path`` (root's, 0400: reading it needs root). A key readable by
    anyone else is refused (it would no longer be the signer's alone), unless not ``strict``
    (the installer learning which key it is, before it repairs the mode)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise DatacrumbsError(
            f"signing key {path} does not exist; run datacrumbs_install on the signer's host"
        ) from None
    except OSError as exc:
        raise DatacrumbsError(f"signing key {path} cannot be opened: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        loose = info.st_uid != 0 or info.st_mode & 0o077
        if not stat.S_ISREG(info.st_mode) or (strict and loose):
            raise DatacrumbsError(
                f"signing key {path} must be a regular file of root's that no one else can "
                f"read (it is {stat.filemode(info.st_mode)}, uid {info.st_uid})"
            )
        data = file.read()
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise DatacrumbsError(f"signing key {path} is not a PEM private key: {exc}") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise DatacrumbsError(f"signing key {path} is not an Ed25519 key")
    return SigningKey(private)


def signing_message(document: dict[str, Any]) -> bytes:
    """The bytes that are signed: canonical JSON of summary, categories and the algorithm."""
    payload = {
        "summary": document.get("summary"),
        "categories": document.get("categories"),
        "checksum_algorithm": ALGORITHM,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def sign(key: SigningKey, document: dict[str, Any]) -> str:
    """The ``checksum`` of ``document`` under ``key``: 128 lowercase hex digits."""
    return key.private.sign(signing_message(document)).hex()


def verify(keys: VerifyKeys, document: dict[str, Any], now: datetime | None = None) -> VerifyKey:
    """The key that signed ``document``; :class:`DatacrumbsError` unless it carries a valid
    signature by a key the installation accepts now."""
    now = now or datetime.now(UTC)
    algorithm = document.get("checksum_algorithm")
    if algorithm == _OLD_ALGORITHM:
        raise DatacrumbsError(
            f"it is signed with the shared secret of an older datacrumbs ({_OLD_ALGORITHM}), "
            "which no node accepts any more: make it again with datacrumbs_probe_configurator"
        )
    if algorithm != ALGORITHM:
        raise DatacrumbsError(
            f"checksum_algorithm is {algorithm!r}; only {ALGORITHM!r} is accepted"
        )
    checksum = document.get("checksum")
    if not checksum:
        raise DatacrumbsError("the probe file is not signed (no checksum)")
    try:
        signature = bytes.fromhex(checksum) if isinstance(checksum, str) else b""
    except ValueError:
        signature = b""
    if len(signature) != 64 or checksum != checksum.lower():
        raise DatacrumbsError("the checksum is not 128 lowercase hex digits")
    name = document.get("signing_key")
    key = next((k for k in keys.keys if k.key_id == name), None)
    if key is None:
        raise DatacrumbsError(
            f"it is signed with a key this installation does not know (signing_key {name!r})"
        )
    try:
        key.public().verify(signature, signing_message(document))
    except InvalidSignature:
        raise DatacrumbsError(
            "signature mismatch: the probe file was changed after signing or signed with "
            "another key"
        ) from None
    if key.retired_at is not None and (key.accepted_until is None or now > key.accepted_until):
        until = key.accepted_until.isoformat() if key.accepted_until else "its rotation"
        raise DatacrumbsError(
            f"it is signed with key {key.key_id}, rotated out at {key.retired_at.isoformat()} "
            f"and accepted only until {until}: make it again with datacrumbs_probe_configurator"
        )
    return key
