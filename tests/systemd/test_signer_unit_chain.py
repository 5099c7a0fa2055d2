"""The whole chain under systemd: the signer unit signs what the configurator asks for a normal
user, and the tracing unit runs that file."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nspawn_support import CONTAINER_HOSTNAME
from systemd_node import JOB_USER, Node

SIGNER = "datacrumbs_sign_probes.service"
CONFIG = """\
capture_probes:
  - name: posix_io
    probe: syscalls
    functions: [openat, write, close]
"""


@pytest.fixture(scope="module")
def signer(node: Node) -> Iterator[Node]:
    """The signer enabled and started as docs/deploy.md says; disabled again afterwards."""
    node.systemctl("enable", "--now", SIGNER, check=True)
    yield node
    node.systemctl("disable", "--now", SIGNER, check=True)


def _configure(node: Node, directory: Path) -> tuple[str, Path]:
    config = node.container.host_path(directory / "probes.yaml")
    config.write_text(CONFIG)
    config.chmod(0o644)
    output = directory / "probes.json.gz"
    result = node.as_job_user(
        node.command("datacrumbs_probe_configurator"),
        str(directory / "probes.yaml"),
        str(output),
        env={"DATACRUMBS_INSTALL_PREFIX": str(node.prefix)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout, output


def test_signer_unit_listens_on_a_group_socket(signer: Node) -> None:
    state = signer.show(SIGNER, "ActiveState", "SubState", "UnitFileState", "StatusText")
    socket = signer.run_dir / "datacrumbs_sign_probes.sock"
    assert state == {
        "ActiveState": "active",
        "SubState": "running",
        "UnitFileState": "enabled",
        "StatusText": f"listening on {socket}",
    }
    mode = signer.container.run("stat", "-c", "%A %U %G", str(socket)).stdout
    assert mode == "srw-rw---- root datacrumbs\n"


def test_configurator_file_signed_by_the_unit_is_traced_by_the_daemon_unit(signer: Node) -> None:
    directory = signer.job_dir("chain")
    said, probe_file = _configure(signer, directory)
    assert said.startswith(
        f"{probe_file}: 3 functions in 1 categories, signed for {JOB_USER} on {CONTAINER_HOSTNAME}"
    )
    audit = [e["MESSAGE"] for e in signer.journal("-u", SIGNER, "DECISION=signed")]
    assert len(audit) == 1 and "PEER_UID=65534 " in audit[0]

    started = signer.service("start", "chain", JOB_USER, str(probe_file))
    assert (started.returncode, started.stderr) == (0, "")
    status = signer.show("datacrumbs@chain.service", "ActiveState", "StatusText")
    assert status["ActiveState"] == "active"
    assert status["StatusText"].startswith(f"tracing {JOB_USER} (run chain): 3 probes attached")
    assert signer.service("stop", "chain").stdout == "datacrumbs@chain.service stopped\n"


def test_signer_is_restarted_after_a_crash(signer: Node) -> None:
    first = signer.show(SIGNER, "MainPID")["MainPID"]
    signer.container.run("kill", "-9", first)
    deadline = time.monotonic() + 30
    state = signer.show(SIGNER, "ActiveState", "MainPID", "NRestarts")
    while not (state["ActiveState"] == "active" and state["MainPID"] not in ("0", first)):
        assert time.monotonic() < deadline, state
        time.sleep(0.1)
        state = signer.show(SIGNER, "ActiveState", "MainPID", "NRestarts")
    assert state["NRestarts"] == "1"
    said, _ = _configure(signer, signer.job_dir("after-restart"))
    assert " signed for " in said
