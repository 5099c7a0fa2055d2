"""The signer serves only the installed launcher: every impostor is refused, with its reason,
and nothing is signed for it."""

from __future__ import annotations

import grp
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from signer_support import Node, document, frame, run, write_file

from datacrumbs.common.layout import InstallLayout
from datacrumbs.install.launcher import LAUNCHER_MODE

CONFIG = """\
capture_probes:
  - name: posix_io
    probe: syscalls
    functions: [read]
"""


def _gid() -> int:
    return grp.getgrnam("datacrumbs").gr_gid


def _assert_refused_only(node: Node, pid: int, reason: str) -> None:
    lines = node.audit(pid)
    assert len(lines) == 1, lines
    assert "DECISION=refused FUNCTIONS=0 " in lines[0]
    assert lines[0].endswith(f"REASON={reason}")


def test_python_client_is_refused_because_its_exe_is_the_interpreter(node: Node) -> None:
    result, pid = run([sys.executable, "-c", _client_script(node, "root")], node.env())
    exe = os.path.realpath(sys.executable)
    reason = f"peer executable {exe} is not the configurator launcher {node.launcher}"
    assert json.loads(result.stdout) == {"ok": False, "error": reason}, result.stderr
    _assert_refused_only(node, pid, reason)


def test_copy_of_the_launcher_at_another_path_is_refused(
    node: Node, nobody_dir: Path, world: Path
) -> None:
    copy = world / "copies" / "launcher-copy"
    copy.parent.mkdir(exist_ok=True, mode=0o755)
    shutil.copyfile(node.launcher, copy)
    os.chown(copy, 0, _gid())
    os.chmod(copy, LAUNCHER_MODE)
    config = write_file(nobody_dir / "p.yaml", CONFIG)
    result, pid = run(
        [str(copy), str(config), str(nobody_dir / "p.json.gz")], node.env(), as_nobody=True
    )
    reason = f"peer executable {copy} is not the configurator launcher {node.launcher}"
    assert result.returncode == 2
    assert result.stderr == f"datacrumbs_probe_configurator: error: signer refused: {reason}\n"
    assert not (nobody_dir / "p.json.gz").exists()
    _assert_refused_only(node, pid, reason)


def test_same_named_binary_elsewhere_is_refused(node: Node, world: Path) -> None:
    # Upstream compares only the basename: this impostor would pass there.
    impostor = world / "impostor" / node.launcher.name
    impostor.parent.mkdir(exist_ok=True, mode=0o755)
    shutil.copyfile(os.path.realpath(sys.executable), impostor)
    impostor.chmod(0o755)
    script = _client_script(node, "root")
    result, pid = run([str(impostor), "-c", script], node.env())
    reason = f"peer executable {impostor} is not the configurator launcher {node.launcher}"
    assert json.loads(result.stdout) == {"ok": False, "error": reason}, result.stderr
    _assert_refused_only(node, pid, reason)


def test_other_file_mounted_over_the_launcher_path_is_refused(node: Node, world: Path) -> None:
    # In a private mount namespace the path reads right, but the file is another one.
    fake = world / "impostor" / "python-copy"
    fake.parent.mkdir(exist_ok=True, mode=0o755)
    shutil.copyfile(os.path.realpath(sys.executable), fake)
    fake.chmod(0o755)
    script = _client_script(node, "root")
    shell = f'mount --bind "{fake}" "{node.launcher}" && exec "{node.launcher}" -c "$0"'
    result, pid = run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", shell, script], node.env()
    )
    reason = (
        f"peer executable is not the installed file {node.launcher} (device/inode "
        "differ: another file is mounted over that path or it was replaced)"
    )
    assert json.loads(result.stdout) == {"ok": False, "error": reason}, result.stderr
    _assert_refused_only(node, pid, reason)


def _connect_then_exec(node: Node, world: Path, gid: int, *, early: bool) -> tuple[str, int]:
    """The red team's attack: a process connects (with group ``gid``), then execs the real
    launcher, so that /proc/<pid>/exe shows the launcher when the signer looks.

    ``early``: it writes its request before the exec. Otherwise a forked child keeps the
    socket and answers the challenge once the parent is the launcher. The signer is stopped
    until the exec is done, so it looks exactly when the attacker wants it to. Returns the
    child's pid and the reply it got (if any), and the connecting pid.
    """
    fifo = world / f"fifo-{time.monotonic_ns()}"
    os.mkfifo(fifo)
    doc = document(node.settings(), "root")
    helper = f"""
import json, os, socket, struct, sys, time
os.setegid({gid})  # as if it ran a program setgid to that group
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect({str(node.socket)!r})
os.setegid(0)

def frame(message):
    body = json.dumps(message).encode()
    return struct.pack(">I", len(body)) + body

def message():
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    return json.loads(data[4:])

parent = os.getpid()
if {early!r}:
    sock.sendall(frame({{"challenge": "0" * 32, "document": {doc!r}}}))
elif os.fork() == 0:
    while os.readlink(f"/proc/{{parent}}/exe") != {str(node.launcher)!r}:
        time.sleep(0.01)
    print("exec done", os.getpid(), flush=True)
    first = message()
    if first and "challenge" in first:
        sock.sendall(frame({{"challenge": first["challenge"], "document": {doc!r}}}))
        first = message()
    print(json.dumps(first), flush=True)
    os._exit(0)
os.set_inheritable(sock.fileno(), True)
os.execv({str(node.launcher)!r}, [{str(node.launcher)!r}, {str(fifo)!r}, "/dev/null"])
"""
    assert node.process is not None
    node.process.send_signal(signal.SIGSTOP)
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", helper],
            env=node.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        if early:
            while os.readlink(f"/proc/{process.pid}/exe") != str(node.launcher):
                time.sleep(0.01)
        else:
            child = process.stdout.readline()
            assert child.startswith("exec done ")
    finally:
        node.process.send_signal(signal.SIGCONT)
    try:
        node.audit(process.pid)  # waits for the decision
        output = "" if early else child.split()[2] + " " + process.stdout.readline()
    finally:
        with open(fifo, "w"):
            pass  # the launcher, blocked opening its config, reads an empty one and exits
        process.communicate(timeout=30)
    return output, process.pid


def test_client_that_connects_then_execs_the_launcher_is_refused(node: Node, world: Path) -> None:
    # The exe check alone would pass; the group recorded at connect() gives it away.
    output, pid = _connect_then_exec(node, world, 0, early=False)
    output = output.split(" ", 1)[1]
    reason = (
        f"peer connected with group id 0, not the launcher's group id {_gid()}: it was "
        "not running the setgid launcher when it connected"
    )
    assert json.loads(output) == {"ok": False, "error": reason}
    _assert_refused_only(node, pid, reason)


def test_other_setgid_program_whose_child_answers_after_the_exec_is_refused(
    node: Node, world: Path
) -> None:
    # Another program setgid datacrumbs passes the group check too; the child that kept the
    # socket answers the challenge, but the kernel names it, not the launcher, as the sender.
    output, pid = _connect_then_exec(node, world, _gid(), early=False)
    child_pid, text = output.split(" ", 1)
    reply, child = json.loads(text), int(child_pid)
    reason = f"request header bytes sent by process {child}, not by the connected process {pid}"
    assert child != pid
    assert reply == {"ok": False, "error": reason}
    _assert_refused_only(node, pid, reason)


def test_other_setgid_program_that_writes_before_the_exec_is_refused(
    node: Node, world: Path
) -> None:
    # Bytes written before the exec are the other program's: nothing may precede the challenge.
    _, pid = _connect_then_exec(node, world, _gid(), early=True)
    _assert_refused_only(node, pid, "request sent before the signer's challenge")


def _client_script(node: Node, user: str) -> str:
    """Python source of a client that sends a valid document and prints the reply."""
    request = frame({"document": document(node.settings(), user)})
    return f"""
import socket
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect({str(node.socket)!r})
sock.sendall({request!r})
data = b""
while chunk := sock.recv(65536):
    data += chunk
print(data[4:].decode())
"""


def test_direct_run_without_the_launcher_group_cannot_reach_the_socket(
    node: Node, nobody_dir: Path
) -> None:
    # The module run by a plain interpreter is not setgid: the 0660 socket stays closed.
    config = write_file(nobody_dir / "p.yaml", CONFIG)
    python = InstallLayout(node.prefix).runtime_python
    result, _ = run(
        [
            str(python),
            "-m",
            "datacrumbs.configurator.exec_main",
            str(config),
            str(nobody_dir / "p.json.gz"),
        ],
        node.env(),
        as_nobody=True,
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"datacrumbs_probe_configurator: error: permission denied on the signer socket "
        f"{node.socket}: use datacrumbs_probe_configurator (the launcher must be installed "
        "setgid datacrumbs)\n"
    )
    assert oct(node.socket.stat().st_mode & 0o7777) == "0o660"
    assert node.socket.stat().st_gid == _gid()
