"""The probe-file signature is exactly the documented HMAC, and every tampering is refused."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from pathlib import Path

import pytest

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.signing import read_secret, sign, verify

KEY_TEXT = "ab" * 32


def _document() -> dict:
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
        "checksum_algorithm": "hmac-sha256",
    }


def _signed() -> dict:
    doc = _document()
    doc["checksum"] = sign(KEY_TEXT.encode(), doc)
    return doc


def test_signature_is_the_documented_hmac_sha256() -> None:
    doc = _document()
    message = json.dumps(
        {
            "summary": doc["summary"],
            "categories": doc["categories"],
            "checksum_algorithm": "hmac-sha256",
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode("utf-8")
    expected = hmac.new(KEY_TEXT.encode(), message, hashlib.sha256).hexdigest()
    assert sign(KEY_TEXT.encode(), doc) == expected


def test_signed_document_verifies() -> None:
    verify(KEY_TEXT.encode(), _signed())


def test_non_ascii_content_is_signed_as_utf8() -> None:
    doc = _document()
    doc["summary"]["config_file_path"] = "/home/zoë/probes.yaml"
    doc["checksum"] = sign(KEY_TEXT.encode(), doc)
    verify(KEY_TEXT.encode(), doc)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["categories"][0]["functions"].append("read"), "signature mismatch"),
        (lambda d: d["summary"].update(user="mallory"), "signature mismatch"),
        (lambda d: d.pop("checksum"), "not signed"),
        (lambda d: d.update(checksum_algorithm="md5"), "only 'hmac-sha256' is accepted"),
        (lambda d: d.update(checksum=d["checksum"][:40]), "not 64 lowercase hex digits"),
        (lambda d: d.update(checksum=d["checksum"].upper()), "not 64 lowercase hex digits"),
    ],
)
def test_tampered_document_is_refused(change, message: str) -> None:
    doc = copy.deepcopy(_signed())
    change(doc)
    with pytest.raises(DatacrumbsError, match=message):
        verify(KEY_TEXT.encode(), doc)


def test_another_secret_is_refused() -> None:
    with pytest.raises(DatacrumbsError, match="signature mismatch"):
        verify(b"cd" * 32, _signed())


def test_secret_text_is_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(f"  {KEY_TEXT}\n")
    assert read_secret(secret) == KEY_TEXT.encode()


def test_missing_secret_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DatacrumbsError, match="does not exist; run datacrumbs_install"):
        read_secret(tmp_path / "nope")
