"""The signer re-validates what it signs: a document the real configurator would never send
(here sent by a crafted client the signer takes for the launcher) is refused with its reason."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from signer_support import Node, converse, document, frame

from datacrumbs.common.signing import read_verify_keys, verify
from datacrumbs.ebpf.elf_symbols import ElfSymbols

LIBC_FUNCTIONS = ["fopen", "fclose"]


def _send(node: Node, request: dict[str, Any] | bytes) -> tuple[dict[str, Any], list[str]]:
    reply, pid = converse(node, request)
    return reply, node.audit(pid)


def _refused(node: Node, nobody_dir: Path, doc: dict[str, Any] | bytes) -> str:
    reply, audit = _send(node, doc if isinstance(doc, bytes) else {"document": doc})
    assert reply["ok"] is False and "checksum" not in reply
    assert len(audit) == 1 and "DECISION=refused FUNCTIONS=0 " in audit[0]
    return reply["error"]


def _uprobe_on(doc: dict[str, Any], binary: str) -> dict[str, Any]:
    doc["categories"][1]["binary_path"] = binary
    return doc


def test_valid_document_from_the_trusted_launcher_is_signed(
    crafted_node: Node, nobody_dir: Path
) -> None:
    doc = document(crafted_node.settings(), "nobody")
    reply, audit = _send(crafted_node, {"document": doc})
    assert reply["ok"] is True
    verify(read_verify_keys(crafted_node.settings().verify_keys_file), doc | reply)
    assert "DECISION=signed FUNCTIONS=4 " in audit[0]


def test_summary_for_another_user_is_refused(crafted_node: Node, nobody_dir: Path) -> None:
    doc = document(crafted_node.settings(), "root")
    assert _refused(crafted_node, nobody_dir, doc) == (
        "summary.user is 'root', but must be 'nobody'"
    )


def test_summary_for_another_host_is_refused(crafted_node: Node, nobody_dir: Path) -> None:
    # the record of where the file was signed must be true
    doc = document(crafted_node.settings(), "nobody", hostname="elsewhere")
    host = crafted_node.settings().hostname
    assert _refused(crafted_node, nobody_dir, doc) == (
        f"summary.hostname is 'elsewhere', but must be '{host}'"
    )


def test_summary_for_another_installation_name_is_refused(
    crafted_node: Node, nobody_dir: Path
) -> None:
    host = crafted_node.settings().host
    for claimed in ("othercluster", None):
        doc = document(crafted_node.settings(), "nobody", host=claimed)
        assert _refused(crafted_node, nobody_dir, doc) == (
            f"summary.host is {claimed or ''!r}, but must be {host!r}"
        )


def test_summary_for_another_installation_is_refused(crafted_node: Node, nobody_dir: Path) -> None:
    doc = document(crafted_node.settings(), "nobody", install_user="nobody")
    assert _refused(crafted_node, nobody_dir, doc) == (
        "summary.install_user is 'nobody', but must be 'root'"
    )


def test_nonexistent_binary_path_is_refused(crafted_node: Node, nobody_dir: Path) -> None:
    doc = _uprobe_on(document(crafted_node.settings(), "nobody"), "/nonexistent/libfoo.so")
    assert _refused(crafted_node, nobody_dir, doc) == (
        "binary path /nonexistent/libfoo.so does not exist"
    )


def test_world_writable_binary_is_refused(
    crafted_node: Node, nobody_dir: Path, world: Path
) -> None:
    binary = world / "writable" / "libc-copy.so"
    binary.parent.mkdir(exist_ok=True, mode=0o755)
    shutil.copyfile(crafted_node.settings().libc_so, binary)
    binary.chmod(0o666)
    doc = _uprobe_on(document(crafted_node.settings(), "nobody"), str(binary))
    assert _refused(crafted_node, nobody_dir, doc) == (
        f"binary path {binary} is writable by group or others"
    )


def test_binary_in_a_directory_others_can_write_is_refused(
    crafted_node: Node, nobody_dir: Path, world: Path
) -> None:
    directory = world / "open-dir"
    directory.mkdir(exist_ok=True)
    directory.chmod(0o777)  # anyone could swap the file after signing
    binary = directory / "libc-copy.so"
    shutil.copyfile(crafted_node.settings().libc_so, binary)
    binary.chmod(0o755)
    doc = _uprobe_on(document(crafted_node.settings(), "nobody"), str(binary))
    assert _refused(crafted_node, nobody_dir, doc) == (
        f"directory of binary path {directory} is writable by group or others"
    )


def test_binary_that_is_not_elf_is_refused(
    crafted_node: Node, nobody_dir: Path, world: Path
) -> None:
    script = world / "not-elf.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    doc = _uprobe_on(document(crafted_node.settings(), "nobody"), str(script))
    assert _refused(crafted_node, nobody_dir, doc) == f"binary path {script} is not an ELF file"


def test_symlinked_binary_path_is_refused(
    crafted_node: Node, nobody_dir: Path, world: Path
) -> None:
    link = world / "libc-link.so"
    link.unlink(missing_ok=True)
    link.symlink_to(crafted_node.settings().libc_so)
    doc = _uprobe_on(document(crafted_node.settings(), "nobody"), str(link))
    assert _refused(crafted_node, nobody_dir, doc) == (
        f"binary path {link} is not absolute and canonical (no symlinks)"
    )


@pytest.mark.parametrize(
    ("expires", "reason"),
    [
        (None, "summary.expires_at is missing"),
        (
            "2020-01-01T00:00:00+00:00",
            "summary.expires_at 2020-01-01T00:00:00+00:00 is in the past",
        ),
        ("next week", "summary.expires_at 'next week' is not an ISO 8601 time"),
    ],
)
def test_missing_or_expired_expiry_is_refused(
    crafted_node: Node, nobody_dir: Path, expires: str | None, reason: str
) -> None:
    doc = document(crafted_node.settings(), "nobody")
    if expires is None:
        del doc["summary"]["expires_at"]
    else:
        doc["summary"]["expires_at"] = expires
    assert _refused(crafted_node, nobody_dir, doc) == reason


def test_expiry_too_far_away_is_refused(crafted_node: Node, nobody_dir: Path) -> None:
    far = (datetime.now(UTC) + timedelta(days=91)).isoformat(timespec="seconds")
    doc = document(crafted_node.settings(), "nobody", expires_at=far)
    assert _refused(crafted_node, nobody_dir, doc) == (
        f"summary.expires_at {far} is more than 90 days away"
    )


def test_unknown_probe_kind_is_refused(crafted_node: Node, nobody_dir: Path) -> None:
    doc = document(crafted_node.settings(), "nobody")
    doc["categories"][0]["type"] = 9
    assert _refused(crafted_node, nobody_dir, doc) == (
        "schema: categories.0.type: unknown probe type 9 (known: 0 syscalls, 1 kprobe, "
        "2 uprobe, 3 usdt, 4 custom)"
    )


def test_custom_probe_kind_is_not_signed(crafted_node: Node, nobody_dir: Path) -> None:
    doc = document(crafted_node.settings(), "nobody")
    doc["categories"][0]["type"] = 4
    assert _refused(crafted_node, nobody_dir, doc) == (
        "categories[0] ('posix_io'): probe kind custom is not signed"
    )


def test_more_than_16384_functions_are_refused(crafted_node: Node, nobody_dir: Path) -> None:
    doc = document(crafted_node.settings(), "nobody")
    doc["categories"][0]["functions"] = [f"f{i}" for i in range(16_384)]
    assert _refused(crafted_node, nobody_dir, doc) == (
        "schema: categories: 16386 functions exceed the maximum of 16384"
    )


def test_document_that_carries_a_checksum_is_refused(crafted_node: Node, nobody_dir: Path) -> None:
    doc = document(crafted_node.settings(), "nobody") | {"checksum": "0" * 64}
    assert _refused(crafted_node, nobody_dir, doc) == "unexpected document keys: checksum"


def test_duplicate_keys_are_refused(crafted_node: Node, nobody_dir: Path) -> None:
    # Two parsers could read a duplicated key two ways; the signer reads it none.
    body = json.dumps({"document": document(crafted_node.settings(), "nobody")})
    body = body.replace('"user": "nobody"', '"user": "root", "user": "nobody"')
    assert _refused(crafted_node, nobody_dir, frame(body.encode())) == (
        "malformed request: duplicate key 'user'"
    )


def test_newline_in_a_path_cannot_forge_an_audit_record(
    crafted_node: Node, nobody_dir: Path
) -> None:
    forged = "/tmp/x\nDECISION=signed FUNCTIONS=99 REASON=forged"
    doc = _uprobe_on(document(crafted_node.settings(), "nobody"), forged)
    _refused(crafted_node, nobody_dir, doc)
    log = crafted_node.log.read_text()
    assert not any(line.startswith("DECISION=") for line in log.splitlines())
    assert "/tmp/x\\nDECISION=signed FUNCTIONS=99 REASON=forged" in log


def test_identity_other_than_the_file_s_is_refused(crafted_node: Node, nobody_dir: Path) -> None:
    doc = document(crafted_node.settings(), "nobody")
    libc = doc["categories"][1]["binary_path"]
    doc["categories"][1]["binary_identity"] = {
        **doc["categories"][1]["binary_identity"],
        "sha256": "0" * 64,
    }
    assert _refused(crafted_node, nobody_dir, doc) == (
        f"binary path {libc} is not the file the configurator read (sha256 differ)"
    )


def test_uprobe_without_identity_is_refused(crafted_node: Node, nobody_dir: Path) -> None:
    doc = document(crafted_node.settings(), "nobody")
    libc = doc["categories"][1]["binary_path"]
    del doc["categories"][1]["binary_identity"]
    assert _refused(crafted_node, nobody_dir, doc) == (
        f"binary path {libc}: binary_identity is missing"
    )


def test_offset_that_starts_no_function_is_refused(crafted_node: Node, nobody_dir: Path) -> None:
    doc = document(crafted_node.settings(), "nobody")
    libc = doc["categories"][1]["binary_path"]
    start = ElfSymbols.read(libc).offset("fopen")
    doc["categories"][1]["functions"] = [f"fopen:{start + 4:#x}"]
    assert _refused(crafted_node, nobody_dir, doc) == (
        f"binary path {libc}: offset {start + 4:#x} is not the start of a function of {libc}"
    )
    doc["categories"][1]["functions"] = [f"fopen:{start:#x}"]
    reply, _ = _send(crafted_node, {"document": doc})
    assert reply["ok"] is True


@pytest.mark.parametrize("target", ["malloc", "pthread_mutex_lock", "alias"])
def test_hot_shared_library_functions_are_refused(
    crafted_node: Node, nobody_dir: Path, target: str
) -> None:
    # A breakpoint on malloc traps in every process of the node (issue 11, finding 4); an
    # explicit offset under another name is recognised by the symbols at that offset.
    doc = document(crafted_node.settings(), "nobody")
    libc = doc["categories"][1]["binary_path"]
    function = target
    if target == "alias":
        function = f"harmless:{ElfSymbols.read(libc).offset('malloc'):#x}"
    doc["categories"][1]["functions"] = ["fopen", function]
    refused = _refused(crafted_node, nobody_dir, doc)
    assert refused.startswith(f"binary path {libc}: {function} is a hot shared-library function (")
    assert refused.endswith(
        "): a uprobe on it slows every process of the node; refused by "
        "the site's DATACRUMBS_HOT_FUNCTIONS"
    )


def _kprobe_reading(doc: dict[str, Any], pointer: bool) -> dict[str, Any]:
    """``doc`` with a kprobe category on vfs_read that captures its ``buf`` argument, read
    through as a pointer when ``pointer``."""
    buf = {"index": 1, "label": "buf", "num_bytes": 8, "is_pointer": pointer}
    doc["categories"].append(
        {
            "type": 1,
            "name": "vfs",
            "functions": ["vfs_read"],
            "function_arguments": {"vfs_read": [buf]},
        }
    )
    return doc


def test_kprobe_argument_read_as_a_pointer_is_refused(crafted_node: Node, nobody_dir: Path) -> None:
    # Issue 25, N10: a kernel function's pointer is a kernel address, what it points to kernel
    # memory; the daemon refuses the target too (tests/engine/test_kernel_btf.py).
    doc = _kprobe_reading(document(crafted_node.settings(), "nobody"), pointer=True)
    assert _refused(crafted_node, nobody_dir, doc) == (
        "categories[2] ('vfs'): function_arguments['vfs_read']: argument 1 ('buf') is_pointer: "
        "a kernel function's pointer points to kernel memory, which is never read"
    )


def test_uprobe_pointer_and_kprobe_value_arguments_are_signed(
    crafted_node: Node, nobody_dir: Path
) -> None:
    # A uprobe's pointer is read with bpf_probe_read_user in a process the job user could
    # ptrace (N1): nothing the user could not read. A kprobe's plain argument is signed as
    # asked; whether it is recorded is the node's BTF's to say (N9), not the signer's.
    doc = _kprobe_reading(document(crafted_node.settings(), "nobody"), pointer=False)
    mode = {"index": 1, "label": "mode", "num_bytes": 1, "is_pointer": True}
    doc["categories"][1]["function_arguments"] = {"fopen": [mode]}
    reply, audit = _send(crafted_node, {"document": doc})
    assert reply["ok"] is True, reply
    verify(read_verify_keys(crafted_node.settings().verify_keys_file), doc | reply)
    assert "DECISION=signed FUNCTIONS=5 " in audit[0]
