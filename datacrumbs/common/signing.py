"""The probe-file signature, defined once for the signer and the daemon alike.

``checksum_algorithm`` is ``"hmac-sha256"``. The key is the secret file's text with surrounding
white space stripped, as UTF-8 bytes. The message is the canonical JSON of the file's
``summary`` and ``categories`` exactly as they stand in the file, plus the algorithm::

    json.dumps({"summary": ..., "categories": ..., "checksum_algorithm": "hmac-sha256"},
               sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

``checksum`` is the lowercase hex digest. Verification compares in constant time
(``cryptography``'s HMAC ``verify``). See docs/signature.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac

from datacrumbs.common.errors import DatacrumbsError

__all__ = ["ALGORITHM", "read_secret", "sign", "signing_message", "verify"]

ALGORITHM = "hmac-sha256"


def read_secret(path: Path) -> bytes:
    """The HMAC key held in ``path`` (root-only: reading it needs root)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatacrumbsError(
            f"probe secret {path} does not exist; run datacrumbs_install"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatacrumbsError(f"probe secret {path} cannot be read: {exc}") from None
    key = text.strip().encode("utf-8")
    if not key:
        raise DatacrumbsError(f"probe secret {path} is empty")
    return key


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


def _mac(key: bytes, document: dict[str, Any]) -> hmac.HMAC:
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(signing_message(document))
    return mac


def sign(key: bytes, document: dict[str, Any]) -> str:
    """The ``checksum`` of ``document`` under ``key``: lowercase hex."""
    return _mac(key, document).finalize().hex()


def verify(key: bytes, document: dict[str, Any]) -> None:
    """Raise :class:`DatacrumbsError` unless ``document`` carries a valid signature."""
    algorithm = document.get("checksum_algorithm")
    if algorithm != ALGORITHM:
        raise DatacrumbsError(
            f"checksum_algorithm is {algorithm!r}; only {ALGORITHM!r} is accepted"
        )
    checksum = document.get("checksum")
    if not checksum:
        raise DatacrumbsError("the probe file is not signed (no checksum)")
    try:
        expected = bytes.fromhex(checksum) if isinstance(checksum, str) else b""
    except ValueError:
        expected = b""
    if len(expected) != 32 or checksum != checksum.lower():
        raise DatacrumbsError("the checksum is not 64 lowercase hex digits")
    try:
        _mac(key, document).verify(expected)
    except InvalidSignature:
        raise DatacrumbsError(
            "signature mismatch: the probe file was changed after signing or signed with "
            "another secret"
        ) from None
