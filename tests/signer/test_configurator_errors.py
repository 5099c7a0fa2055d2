"""Every mistake a configurator user can make ends in one line and a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pytest
from signer_support import Node, run, write_file

from datacrumbs.common.status_db import status_db_path
from datacrumbs.daemon.probe_acceptance import accept_probe_file

PREFIX = "datacrumbs_probe_configurator: error: "


def _configure(node: Node, nobody_dir: Path, config_text: str, **env: str) -> tuple[int, str, Path]:
    config = write_file(nobody_dir / "probes.yaml", config_text)
    output = nobody_dir / "probes.json.gz"
    result, _ = run([node.configurator, str(config), str(output)], node.env(**env), as_nobody=True)
    assert result.stdout == ""
    assert not output.exists()
    return result.returncode, result.stderr, config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "capture_probes:\n  - name: [unclosed\n",
            "invalid YAML at line 3, column 1: expected ',' or ']', but got '<stream end>'",
        ),
        ("- just a list\n", "expected a mapping with capture_probes"),
        (
            "capture_probes:\n  - name: p\n    probe: uprobes\n    regex: x\n",
            "probe 'p' (probe): unknown probe kind 'uprobes' "
            "(known: syscalls, kprobe, uprobe, usdt)",
        ),
        (
            "capture_probes:\n  - name: p\n    probe: syscalls\n    regex: '(read'\n",
            "probe 'p' (regex): bad regex '(read': "
            "missing ), unterminated subpattern at position 0",
        ),
        (
            "capture_probes:\n  - name: p\n    probe: syscalls\n    regex: read\n    colour: red\n",
            "probe 'p' (colour): Extra inputs are not permitted",
        ),
        (
            "capture_probes:\n  - name: p\n    probe: uprobe\n    regex: read\n",
            "probe 'p': a uprobe probe needs binary_path (or file)",
        ),
        (
            "capture_probes:\n  - name: p\n    probe: syscalls\n    regex: read\n"
            "    delivery: sometimes\n",
            "probe 'p' (delivery): Input should be 'valve', 'events' or 'aggregate'",
        ),
        (
            "expires_in_days: 365\n"
            "capture_probes:\n  - name: p\n    probe: syscalls\n    regex: read\n",
            "expires_in_days: Input should be less than or equal to 90",
        ),
    ],
)
def test_bad_config_is_one_line(node: Node, nobody_dir: Path, text: str, message: str) -> None:
    code, stderr, config = _configure(node, nobody_dir, text)
    assert code == 2
    assert stderr == f"{PREFIX}config {config}: {message}\n"


def test_missing_binary_is_one_line(node: Node, nobody_dir: Path) -> None:
    code, stderr, _ = _configure(
        node,
        nobody_dir,
        "capture_probes:\n  - name: app\n    probe: uprobe\n    file: /nonexistent/app\n"
        "    regex: main\n",
    )
    assert (code, stderr) == (2, f"{PREFIX}probe 'app': binary /nonexistent/app does not exist\n")


def test_regex_matching_nothing_names_the_probe(node: Node, nobody_dir: Path) -> None:
    code, stderr, _ = _configure(
        node,
        nobody_dir,
        "capture_probes:\n  - name: nothing\n    probe: syscalls\n    regex: 'zz_no_such_call'\n",
    )
    assert (code, stderr) == (
        2,
        f"{PREFIX}probe 'nothing': regex 'zz_no_such_call' matches nothing in the syscalls "
        "of this kernel\n",
    )


def test_unknown_explicit_function_names_the_probe(node: Node, nobody_dir: Path) -> None:
    code, stderr, _ = _configure(
        node,
        nobody_dir,
        "capture_probes:\n  - name: stdio\n    probe: uprobe\n    binary_path: '%LIBC%'\n"
        "    functions: [fopen, no_such_function]\n",
    )
    assert code == 2
    assert stderr.startswith(
        f"{PREFIX}probe 'stdio': no_such_function not found in the functions of /"
    )
    assert stderr.count("\n") == 1


def test_signer_not_running_says_which_service_to_start(
    node: Node, nobody_dir: Path, world: Path
) -> None:
    socket_path = world / "prefix-run" / "nobody-listens-here.sock"
    code, stderr, _ = _configure(
        node,
        nobody_dir,
        "capture_probes:\n  - name: p\n    probe: syscalls\n    regex: read\n",
        DATACRUMBS_SIGN_PROBES_SOCKET_PATH=str(socket_path),
    )
    assert (code, stderr) == (
        2,
        f"{PREFIX}signer not running at {socket_path} — start "
        "datacrumbs_sign_probes.service on this node\n",
    )


def test_kernel_functions_come_from_btf(node: Node, nobody_dir: Path) -> None:
    config = write_file(
        nobody_dir / "k.yaml",
        "capture_probes:\n  - name: vfs\n    probe: kprobe\n    regex: 'vfs_(read|write)'\n",
    )
    output = nobody_dir / "k.json.gz"
    result, _ = run([node.configurator, str(config), str(output)], node.env(), as_nobody=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{output}: 2 functions in 1 categories")


def test_uninstalled_launcher_is_one_line(node: Node, world: Path) -> None:
    result, _ = run(
        [node.configurator, "a.yaml", "b.json.gz"],
        {"PATH": "/usr/bin:/bin", "DATACRUMBS_INSTALL_PREFIX": str(world / "none")},
        as_nobody=True,
    )
    launcher = world / "none/libexec/datacrumbs/datacrumbs_probe_configurator_exec"
    assert (result.returncode, result.stderr) == (
        2,
        f"{PREFIX}{launcher} is not installed or not executable; an admin runs "
        "datacrumbs_install to install it\n",
    )


def test_binary_in_a_directory_the_user_cannot_enter_is_one_line(
    node: Node, world: Path, nobody_dir: Path
) -> None:
    closed = world / "closed-bin"
    closed.mkdir(mode=0o700, exist_ok=True)
    code, stderr, _ = _configure(
        node,
        nobody_dir,
        f"capture_probes:\n  - name: app\n    probe: uprobe\n    binary_path: {closed}/app\n"
        "    regex: main\n",
    )
    assert code == 2
    assert stderr == (
        f"{PREFIX}probe 'app': binary {closed}/app cannot be used: Permission denied\n"
    )


def test_corrupt_status_database_is_one_line(node: Node, nobody_dir: Path) -> None:
    # Run as root, the install user, who can read the node's status database.
    settings = node.settings()
    config = write_file(
        nobody_dir / "probes.yaml",
        "capture_probes:\n  - name: p\n    probe: syscalls\n    regex: read\n",
    )
    output = nobody_dir / "corrupt.json.gz"
    db = status_db_path(settings.state_dir, settings.install_user, 0, output)
    db.write_bytes(b"this is not an SQLite database" * 100)
    try:
        result, _ = run([str(node.launcher), str(config), str(output)], node.env())
    finally:
        db.unlink()
    # The file is signed all the same; the corrupt database is named in one note.
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        f"note: status database {db}: file is not a database; targets known to fail are not "
        "dropped here (the daemon still skips them)\n"
    )


def test_output_name_too_long_is_one_line(node: Node, nobody_dir: Path) -> None:
    config = write_file(
        nobody_dir / "probes.yaml",
        "capture_probes:\n  - name: p\n    probe: syscalls\n    regex: read\n",
    )
    output = nobody_dir / ("x" * 250 + ".json.gz")
    result, _ = run([node.configurator, str(config), str(output)], node.env(), as_nobody=True)
    assert result.returncode == 2
    assert result.stderr == f"{PREFIX}cannot write {output}: File name too long\n"


def test_hot_library_functions_are_left_out_with_a_note(node: Node, nobody_dir: Path) -> None:
    config = write_file(
        nobody_dir / "hot.yaml",
        "capture_probes:\n  - name: libc\n    probe: uprobe\n"
        "    binary_path: '%LIBC%'\n    regex: '^(malloc|free|fopen|fclose)$'\n",
    )
    output = nobody_dir / "hot.json.gz"
    result, _ = run([node.configurator, str(config), str(output)], node.env(), as_nobody=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "note: probe 'libc': left out 2 hot shared-library functions (free, malloc): a uprobe "
        "on them slows every process of the node (DATACRUMBS_HOT_FUNCTIONS)\n"
    )
    model = accept_probe_file(output, node.settings(), "nobody")
    assert model.categories[0].functions == ["fclose", "fopen"]
