"""The daemon side: a signed file changed afterwards, or past its expiry, is refused."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from signer_support import Node, document, run, write_file

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.probe_file import write_probe_file
from datacrumbs.common.signing import read_signing_key, sign
from datacrumbs.daemon.probe_acceptance import accept_probe_file

CONFIG = "capture_probes:\n  - name: posix_io\n    probe: syscalls\n    functions: [read]\n"


def _signed_file(node: Node, nobody_dir: Path) -> Path:
    config = write_file(nobody_dir / "p.yaml", CONFIG)
    output = nobody_dir / "p.json.gz"
    result, _ = run([node.configurator, str(config), str(output)], node.env(), as_nobody=True)
    assert result.returncode == 0, result.stderr
    return output


@pytest.mark.parametrize("change", ["function", "user", "expiry"])
def test_file_changed_after_signing_is_refused(node: Node, nobody_dir: Path, change: str) -> None:
    path = _signed_file(node, nobody_dir)
    doc = json.loads(gzip.decompress(path.read_bytes()))
    if change == "function":
        doc["categories"][0]["functions"] = ["read", "execve"]
    elif change == "user":
        doc["summary"]["user"] = "root"
    else:
        doc["summary"]["expires_at"] = "2099-01-01T00:00:00+00:00"
    write_probe_file(path, doc)
    with pytest.raises(DatacrumbsError) as refused:
        accept_probe_file(path, node.settings(), "nobody" if change != "user" else "root")
    assert str(refused.value) == (
        f"probe file {path} refused: signature mismatch: the probe file was changed after "
        "signing or signed with another key"
    )


def test_expired_file_is_refused(node: Node, nobody_dir: Path) -> None:
    # The signer never signs a past expiry; a file that was valid when signed just ages.
    settings = node.settings()
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")
    doc = document(settings, "nobody", expires_at=past)
    key = read_signing_key(settings.signing_key_file)
    doc |= {"checksum": sign(key, doc), "signing_key": key.key_id}
    path = nobody_dir / "old.json.gz"
    write_probe_file(path, doc)
    with pytest.raises(DatacrumbsError) as refused:
        accept_probe_file(path, settings, "nobody")
    assert str(refused.value) == f"probe file {path} refused: expired at {past}"
