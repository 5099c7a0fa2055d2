"""The probe-file signature is exactly the documented Ed25519 one, and every tampering, unknown
key, rotated-out key past its time and old shared-secret file is refused."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.signing import (
    SigningKey,
    VerifyKey,
    VerifyKeys,
    read_signing_key,
    read_verify_keys,
    sign,
    signing_message,
    verify,
)

KEY = SigningKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
OTHER = SigningKey(Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))))
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
KEYS = VerifyKeys(keys=[VerifyKey.of(KEY.private.public_key(), NOW - timedelta(days=1))])


def _document() -> dict[str, Any]:
    return {
        "summary": {
            "hostname": "node1",
            "user": "alice",
            "install_user": "root",
            "config_file_path": "/home/alice/probes.yaml",
        },
        "categories": [
            {"type": 0, "name": "posix", "functions": ["openat", "write"]},
            {
                "type": 2,
                "name": "stdio",
                "functions": ["fopen"],
                "binary_path": "/usr/lib/x86_64-linux-gnu/libc.so.6",
            },
        ],
        "checksum_algorithm": "ed25519",
    }


def _signed(key: SigningKey = KEY) -> dict[str, Any]:
    doc = _document()
    doc["checksum"] = sign(key, doc)
    doc["signing_key"] = key.key_id
    return doc


def test_signature_is_the_documented_ed25519() -> None:
    doc = _document()
    message = json.dumps(
        {
            "summary": doc["summary"],
            "categories": doc["categories"],
            "checksum_algorithm": "ed25519",
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode("utf-8")
    signature = bytes.fromhex(sign(KEY, doc))
    KEY.private.public_key().verify(signature, message)  # raises if it is not
    raw = KEY.private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert KEY.key_id == hashlib.sha256(raw).hexdigest()[:16]


def test_signed_document_verifies() -> None:
    assert verify(KEYS, _signed(), NOW).key_id == KEY.key_id


#: The known answer: Ed25519 is deterministic, so a change of encoding or canonical form (of
#: what every signed file in the field was signed over) fails here.
NON_ASCII_SIGNATURE = (
    "2aa4ae50d70278e4e1edd4140e8a1b6ba73072b24282c1e19587df00cf615bab"
    "923876cde06c87df63220a57da293cf30a854ef7255432d345b6a94d6eed5302"
)


def test_non_ascii_content_is_signed_as_utf8() -> None:
    doc = _document()
    doc["summary"]["config_file_path"] = "/home/zoë/probes.yaml"
    checksum = sign(KEY, doc)
    assert checksum == NON_ASCII_SIGNATURE
    message = signing_message(doc)
    assert b"/home/zo\xc3\xab/probes.yaml" in message  # UTF-8, not an escape, not Latin-1
    KEY.private.public_key().verify(bytes.fromhex(checksum), message)
    doc |= {"checksum": checksum, "signing_key": KEY.key_id}
    verify(KEYS, doc, NOW)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["categories"][0]["functions"].append("read"), "signature mismatch"),
        (lambda d: d["summary"].update(user="mallory"), "signature mismatch"),
        (lambda d: d.pop("checksum"), "not signed"),
        (lambda d: d.update(checksum_algorithm="md5"), "only 'ed25519' is accepted"),
        (lambda d: d.update(checksum_algorithm="hmac-sha256"), "shared secret of an older"),
        (lambda d: d.update(checksum=d["checksum"][:64]), "not 128 lowercase hex digits"),
        (lambda d: d.update(checksum=d["checksum"].upper()), "not 128 lowercase hex digits"),
        (lambda d: d.update(signing_key="0" * 16), "a key this installation does not know"),
        (lambda d: d.pop("signing_key"), "a key this installation does not know"),
    ],
)
def test_tampered_document_is_refused(change: Any, message: str) -> None:
    doc = copy.deepcopy(_signed())
    change(doc)
    with pytest.raises(DatacrumbsError, match=message):
        verify(KEYS, doc, NOW)


def test_another_key_is_refused_even_under_the_known_name() -> None:
    """Root on a compute node holds the public keys only: whatever it signs with, no daemon
    accepts it, also when it names the installation's key."""
    forged = _signed(OTHER)
    with pytest.raises(DatacrumbsError, match="does not know"):
        verify(KEYS, forged, NOW)
    forged["signing_key"] = KEY.key_id
    with pytest.raises(DatacrumbsError, match="signature mismatch"):
        verify(KEYS, forged, NOW)


def test_a_rotated_out_key_is_accepted_until_its_files_expire() -> None:
    rotated = NOW - timedelta(days=10)
    old = VerifyKey.of(OTHER.private.public_key(), NOW - timedelta(days=400)).model_copy(
        update={"retired_at": rotated, "accepted_until": rotated + timedelta(days=90)}
    )
    keys = VerifyKeys(keys=[*KEYS.keys, old])
    assert verify(keys, _signed(OTHER), NOW).key_id == OTHER.key_id
    with pytest.raises(DatacrumbsError, match=r"rotated out at .* accepted only until"):
        verify(keys, _signed(OTHER), rotated + timedelta(days=91))


def test_verify_keys_file_round_trips_and_bad_ones_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(KEYS.dumps())
    assert read_verify_keys(path) == KEYS
    two_current = VerifyKeys(keys=[*KEYS.keys, VerifyKey.of(OTHER.private.public_key(), NOW)])
    path.write_text(two_current.dumps())
    with pytest.raises(DatacrumbsError, match="exactly one key must be current"):
        read_verify_keys(path)
    swapped = KEYS.keys[0].model_copy(update={"key_id": OTHER.key_id})
    path.write_text(VerifyKeys(keys=[swapped]).dumps())
    with pytest.raises(DatacrumbsError, match="does not match its key_id"):
        verify(read_verify_keys(path), _signed(OTHER), NOW)
    path.write_text('{"keys": []}')
    with pytest.raises(DatacrumbsError, match=r"^verify keys .*: keys: List should have"):
        read_verify_keys(path)
    with pytest.raises(DatacrumbsError, match="do not exist; run datacrumbs_install"):
        read_verify_keys(tmp_path / "nope")


def test_signing_key_must_be_root_only(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the key's owner must be root")
    path = tmp_path / "key.pem"
    path.write_bytes(
        KEY.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o400)
    assert read_signing_key(path).key_id == KEY.key_id
    path.chmod(0o440)
    with pytest.raises(DatacrumbsError, match="no one else can read"):
        read_signing_key(path)
    path.chmod(0o400)
    link = tmp_path / "link.pem"
    link.symlink_to(path)
    with pytest.raises(DatacrumbsError, match="cannot be opened"):
        read_signing_key(link)
    with pytest.raises(DatacrumbsError, match="does not exist; run datacrumbs_install"):
        read_signing_key(tmp_path / "nope")
