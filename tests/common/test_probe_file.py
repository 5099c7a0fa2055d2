"""Probe files load from gzip or plain JSON; every malformed file is one line naming it."""

from __future__ import annotations

import gzip
import json
import stat
from pathlib import Path

import pytest

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.probe_file import read_probe_file, write_probe_file
from datacrumbs.common.probes import ProbeType

DOC = {
    "summary": {"hostname": "node1", "user": "alice", "install_user": "root"},
    "categories": [{"type": 0, "name": "posix", "functions": ["openat", "write"]}],
    "checksum_algorithm": "hmac-sha256",
    "checksum": "0" * 64,
}


def test_gzip_file_round_trips_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "probes.json.gz"
    write_probe_file(path, DOC)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    document, model = read_probe_file(path)
    assert document == DOC
    assert model.categories[0].type is ProbeType.SYSCALLS
    assert model.categories[0].functions == ["openat", "write"]


def test_plain_json_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "probes.json"
    path.write_text(json.dumps(DOC))
    assert read_probe_file(path)[0] == DOC


def _error(path: Path) -> str:
    with pytest.raises(DatacrumbsError) as caught:
        read_probe_file(path)
    return str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    assert _error(tmp_path / "x.json.gz") == f"probe file {tmp_path}/x.json.gz does not exist"


def test_not_gzip_and_not_json(tmp_path: Path) -> None:
    path = tmp_path / "p.json.gz"
    path.write_text("hello, not a probe file")
    assert _error(path).startswith(f"probe file {path}: neither gzip nor JSON (Expecting value")


def test_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "p.json.gz"
    data = gzip.compress(json.dumps(DOC).encode())
    path.write_bytes(data[: len(data) // 2])
    assert _error(path) == f"probe file {path}: truncated gzip data"


def test_wrong_shape_is_reduced_to_readable_line(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"summary": {"hostname": "h"}, "categories": []}))
    assert _error(path) == (
        f"probe file {path}: summary.user: Field required; summary.install_user: Field "
        "required; categories: List should have at least 1 item after validation, not 0"
    )


def test_unknown_probe_type(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps(DOC | {"categories": [{"type": 9, "name": "x", "functions": ["f"]}]})
    )
    assert _error(path) == (
        f"probe file {path}: categories[0].type: unknown probe type 9 (known: 0 syscalls, "
        "1 kprobe, 2 uprobe, 3 usdt, 4 custom)"
    )


def test_top_level_list(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text("[1, 2]")
    assert _error(path) == f"probe file {path}: expected a JSON object, found a list"
