"""Fuzzing what a user controls: probe files the root daemon reads and requests the root signer
parses. Whatever the bytes, the outcome is the checked model or one refusal line — never
another exception, which would be a traceback (issue 11, finding 8)."""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.probe_file import read_probe_file
from datacrumbs.common.settings import load_settings
from datacrumbs.common.signing import SigningKey, VerifyKey, VerifyKeys, sign
from datacrumbs.daemon.probe_acceptance import accept_probe_file
from datacrumbs.signer.content_checks import ContentRefused, check_document
from datacrumbs.signer.server import _Refusal, _request_document

# Text with what breaks naive code: lone surrogates, NULs, newlines, path-like strings.
_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "\ud800",
            "a\x00b",
            "line\nforged=1",
            "/etc/shadow",
            "%LIBC%",
            "read",
            "write",
            "posix",
            "/lib/x86_64-linux-gnu/libc.so.6",
            "9" * 5000,
        ]
    ),
)
_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _TEXT)
_JSON = st.recursive(
    _SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_TEXT, inner, max_size=4)),
    max_leaves=20,
)


def _category() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "type": st.one_of(st.integers(-1, 8), _SCALAR),
            "name": _TEXT,
            "functions": st.one_of(st.lists(_TEXT, max_size=4), _JSON),
        },
        optional={"binary_path": _TEXT, "provider": _TEXT, "extra": _JSON},
    )


def _document() -> st.SearchStrategy[dict[str, Any]]:
    summary = st.fixed_dictionaries(
        {},
        optional={
            "user": _TEXT,
            "hostname": st.just(socket.gethostname()) | _TEXT,
            "host": st.just(socket.gethostname()) | _TEXT,
            "install_user": st.just("root") | _TEXT,
            "expires_at": _TEXT,
            "created_at": _TEXT,
        },
    )
    return st.fixed_dictionaries(
        {
            "summary": st.one_of(summary, _JSON),
            "categories": st.one_of(st.lists(_category(), max_size=3), _JSON),
        },
        optional={"checksum_algorithm": _TEXT, "checksum": _TEXT, "other": _JSON},
    )


def _encode(document: Any) -> bytes:
    return json.dumps(document).encode()  # ASCII escapes: a lone surrogate stays "\ud800"


CHALLENGE = "0123456789abcdef0123456789abcdef"

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SigningKey]:
    """The verify keys file of one key, and that key."""
    key = SigningKey(Ed25519PrivateKey.from_private_bytes(b"\xab" * 32))
    path = tmp_path_factory.mktemp("keys") / "probe-verify-keys.json"
    now = datetime.now(UTC)
    path.write_text(VerifyKeys(keys=[VerifyKey.of(key.private.public_key(), now)]).dumps())
    return path, key


def _daemon_reads(path: Path, keys_file: Path) -> str | None:
    """None when the daemon accepts the file, else its one-line reason."""
    try:
        read_probe_file(path)
        settings_ = load_settings(verify_keys_file=keys_file)
        accept_probe_file(path, settings_, "nobody")
    except DatacrumbsError as exc:
        assert "\n" not in str(exc)
        return str(exc)
    return None


@FUZZ
@given(document=_document(), zipped=st.booleans(), signed=st.booleans())
def test_probe_documents_are_accepted_or_refused_in_one_line(
    tmp_path: Path,
    keys: tuple[Path, SigningKey],
    document: dict[str, Any],
    zipped: bool,
    signed: bool,
) -> None:
    signed_right = False
    if signed:  # an unsignable document stays unsigned: the signer never produced it
        with contextlib.suppress(TypeError, ValueError, UnicodeError):
            document = {**document, "checksum_algorithm": "ed25519"}
            checksum = sign(keys[1], document)
            document = {**document, "checksum": checksum, "signing_key": keys[1].key_id}
            signed_right = True
    data = _encode(document)
    path = tmp_path / "probes.json.gz"
    path.write_bytes(gzip.compress(data) if zipped else data)
    refused = _daemon_reads(path, keys[0])
    if signed_right and refused is not None:  # the checks after the signature are reached
        assert "signature mismatch" not in refused and "does not know" not in refused


@FUZZ
@given(raw=st.binary(max_size=400) | st.builds(gzip.compress, st.binary(max_size=400)))
def test_probe_file_bytes_are_refused_in_one_line(
    tmp_path: Path, keys: tuple[Path, SigningKey], raw: bytes
) -> None:
    path = tmp_path / "probes.json.gz"
    path.write_bytes(raw)
    _daemon_reads(path, keys[0])


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=300),
        _document().map(lambda d: _encode({"challenge": CHALLENGE, "document": d})),
        _JSON.map(_encode),
    )
)
def test_signer_requests_are_signed_or_refused_in_one_line(
    keys: tuple[Path, SigningKey], body: bytes
) -> None:
    settings_ = load_settings(verify_keys_file=keys[0])
    try:
        document = _request_document(body, CHALLENGE)
        check_document(document, "nobody", settings_)
    except (_Refusal, ContentRefused) as exc:
        assert "\n" not in str(exc)
        return
    sign(keys[1], document)  # what passed the checks can be signed
