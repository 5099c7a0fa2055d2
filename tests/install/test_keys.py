"""The signing key stays on the signer's host; every other node verifies only; rotation keeps
files signed before it valid until they expire, and ``--revoke`` refuses them at once."""

from __future__ import annotations

import gzip
import json
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support import clean_env, command, signed_document, signing_key_path

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.probe_file import write_probe_file
from datacrumbs.common.settings import load_settings
from datacrumbs.common.signing import MAX_EXPIRY, read_verify_keys
from datacrumbs.daemon.probe_acceptance import accept_probe_file

POSIX = [{"type": 0, "name": "posix", "functions": ["write"]}]


def _install(prefix: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [command("datacrumbs_install"), "--prefix", str(prefix), *flags],
        capture_output=True,
        text=True,
        env=clean_env(DATACRUMBS_LOG_DIR=str(prefix.parent / "log")),
    )


def _probe_file(directory: Path, key: Path, name: str) -> Path:
    path = directory / name
    write_probe_file(path, signed_document(key, POSIX, user="nobody"))
    return path


def _other_key(path: Path) -> None:
    """A private key of another host's at ``path`` (root 0400)."""
    path.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )  # fmt: skip
    path.chmod(0o400)


def _accepts(prefix: Path, path: Path) -> str | None:
    """None when the daemons of ``prefix`` accept the file; else their reason."""
    try:
        accept_probe_file(path, load_settings(install_prefix=prefix), "nobody")
    except DatacrumbsError as exc:
        return str(exc)
    return None


def test_a_verify_only_node_cannot_sign_what_its_daemons_accept(
    installed: Path, reachable_dir: Path
) -> None:
    """A node with a prefix of its own gets the signer's public keys only; whatever its root
    signs with, no daemon accepts it."""
    node = reachable_dir / "node-prefix"
    untouched = reachable_dir / "node-etc/probe-signing-key.pem"
    keys = installed / "share/datacrumbs/data/probe-verify-keys.json"
    result = _install(node, "--verify-only", "--verify-keys", str(keys), "--signing-key",
                      str(untouched), "--state-dir", str(reachable_dir / "st"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    copied = node / "share/datacrumbs/data/probe-verify-keys.json"
    assert f"verify keys copied       {copied}" in result.stdout.splitlines()
    assert read_verify_keys(copied) == read_verify_keys(keys)
    assert not untouched.parent.exists()  # no private key is made on such a node
    signed = _probe_file(reachable_dir, signing_key_path(installed), "a.json.gz")
    assert _accepts(node, signed) is None
    # root on that node makes a key of its own and signs with it
    forged_key = reachable_dir / "forged/key.pem"
    forged_key.parent.mkdir(mode=0o700)
    _other_key(forged_key)
    forged = _probe_file(reachable_dir, forged_key, "forged.json.gz")
    assert "signed with a key this installation does not know" in (_accepts(node, forged) or "")
    # ... and under the installation's key name: the signature does not verify
    document = json.loads(gzip.decompress(forged.read_bytes()))
    document["signing_key"] = read_verify_keys(keys).current.key_id
    write_probe_file(forged, document)
    assert "signature mismatch" in (_accepts(node, forged) or "")
    assert "signature mismatch" in (_accepts(installed, forged) or "")


def test_verify_only_needs_published_keys(prefix: Path) -> None:
    result = _install(prefix, "--verify-only")
    assert result.returncode == 2
    keys = prefix / "share/datacrumbs/data/probe-verify-keys.json"
    assert result.stderr == (
        f"datacrumbs_install: error: verify keys {keys} do not exist; run datacrumbs_install "
        "(on the signer's host, or with --verify-only --verify-keys FILE on a node that has its "
        "own prefix)\n"
    )


def test_rotation_keeps_earlier_files_until_they_expire_and_revoke_ends_them(
    installed: Path, reachable_dir: Path
) -> None:
    key = signing_key_path(installed)
    keys = installed / "share/datacrumbs/data/probe-verify-keys.json"
    old_id = read_verify_keys(keys).current.key_id
    before = _probe_file(reachable_dir, key, "before.json.gz")
    result = _install(installed, "--rotate-key")
    assert result.returncode == 0, result.stderr
    assert f"signing key rotated      {key}" in result.stdout.splitlines()
    assert f"verify keys updated      {keys}" in result.stdout.splitlines()
    published = read_verify_keys(keys)
    assert published.current.key_id != old_id
    (old,) = [k for k in published.keys if k.key_id == old_id]
    assert old.retired_at is not None and old.accepted_until == old.retired_at + MAX_EXPIRY
    assert timedelta(days=90) == MAX_EXPIRY  # the signer's longest expiry
    after = _probe_file(reachable_dir, key, "after.json.gz")
    assert _accepts(installed, before) is None  # signed with the rotated-out key, not expired
    assert _accepts(installed, after) is None
    result = _install(installed, "--rotate-key", "--revoke")
    assert result.returncode == 0, result.stderr
    assert [k.retired_at for k in read_verify_keys(keys).keys] == [None]
    assert "does not know" in (_accepts(installed, before) or "")
    assert "does not know" in (_accepts(installed, after) or "")


def test_another_hosts_key_does_not_replace_the_installations(
    installed: Path, reachable_dir: Path
) -> None:
    """Installing again from a host with another key (not the signer's) is refused: it would
    invalidate every file the real signer made."""
    keys = installed / "share/datacrumbs/data/probe-verify-keys.json"
    before = keys.read_bytes()
    other = reachable_dir / "other-host/probe-signing-key.pem"
    result = _install(installed, "--signing-key", str(other))
    assert result.returncode == 2
    current = read_verify_keys(keys).current.key_id
    assert result.stderr.startswith(
        f"datacrumbs_install: error: {keys} names key {current} as the installation's signing "
        f"key, but this host holds none ({other}): run datacrumbs_install on the signer's host, "
        "or here with --verify-only"
    )
    assert not other.parent.exists()  # no stray private key on that host
    for flags in ([], ["--rotate-key"]):  # nor a rotation from it, with a key of its own
        other.parent.mkdir(mode=0o700, exist_ok=True)
        if not other.exists():
            _other_key(other)
        result = _install(installed, "--signing-key", str(other), *flags)
        assert result.returncode == 2 and "but this host's key is" in result.stderr
    assert keys.read_bytes() == before


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rotate-key", "--verify-only"], "--rotate-key and --revoke are for the signer's host"),
        (["--verify-keys", "/x.json"], "--verify-keys copies the signer's public keys"),
        (["--revoke"], "--revoke drops the keys a rotation retires"),
    ],
)
def test_contradictory_flags_are_one_line(prefix: Path, flags: list[str], message: str) -> None:
    result = _install(prefix, *flags)
    assert result.returncode == 2
    assert result.stderr.startswith(f"datacrumbs_install: error: {message}")
    assert result.stderr.count("\n") == 1


def test_signing_key_under_the_prefix_is_refused(prefix: Path) -> None:
    key = prefix / "share/datacrumbs/key.pem"
    result = _install(prefix, "--signing-key", str(key))
    assert result.returncode == 2
    assert result.stderr == (
        f"datacrumbs_install: error: the signing key {key} must not be under the prefix, which "
        "every node can read: give --signing-key outside it (default "
        "/etc/datacrumbs/probe-signing-key.pem)\n"
    )
