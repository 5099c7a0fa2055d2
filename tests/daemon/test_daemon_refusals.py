"""Every bad input stops the daemon before anything is attached: one line, exit 2, no ready
file, nothing of another run harmed."""

from __future__ import annotations

import gzip
import json
import os
import pwd
import socket
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from daemon_support import JOB_USER, run_daemon
from support import install

from datacrumbs.common.settings import load_settings
from datacrumbs.daemon.probe_acceptance import accept_probe_file

POSIX = [{"type": 0, "name": "posix", "functions": ["openat", "write", "close"]}]


@pytest.fixture(scope="module")
def installed(public_root: Path) -> Path:
    """One installation for every refusal: each is refused before the daemon writes anything
    into it (each test still has its own run and trace directories)."""
    return install(public_root / "refusals")


def _refused(result, run_dir: Path) -> str:
    assert result.returncode == 2, result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith("datacrumbs: error: ")
    assert "Traceback" not in result.stderr
    assert not list(run_dir.glob("*.ready")) if run_dir.exists() else True
    return last.removeprefix("datacrumbs: error: ")


def _run_dir(env: dict[str, str]) -> Path:
    return Path(env["DATACRUMBS_SERVER_RUN_DIR"])


def test_missing_probe_file(run_env: dict[str, str], reachable_dir: Path) -> None:
    result = run_daemon(reachable_dir / "none.json.gz", "job1", env=run_env)
    message = _refused(result, _run_dir(run_env))
    assert message == f"probe file {reachable_dir}/none.json.gz does not exist"


def test_probe_file_is_read_as_the_job_user(
    run_env: dict[str, str], make_probe_file: Callable[..., Path], tmp_path: Path
) -> None:
    """Root's 0700 directory is no way to the file: the daemon reads it as the job user (as a
    root-squashed home allows, and as the prolog checked)."""
    path = make_probe_file(POSIX).rename(tmp_path / "probes.json.gz")
    message = _refused(run_daemon(path, "job1", env=run_env), _run_dir(run_env))
    assert message == f"probe file {path} cannot be read: Permission denied"


def test_probe_file_neither_gzip_nor_json(run_env: dict[str, str], reachable_dir: Path) -> None:
    path = reachable_dir / "p.json.gz"
    path.write_bytes(b"\x00\x01binary junk")
    message = _refused(run_daemon(path, "job1", env=run_env), _run_dir(run_env))
    assert message.startswith(f"probe file {path}: neither gzip nor")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[" * 100_000, "JSON nested too deeply"),
        (
            b'{"summary": {"user": ' + b"9" * 5000 + b"}}",
            "unusable JSON (Exceeds the limit (4300 digits) for integer string conversion",
        ),
        (
            b'{"summary": {}, "categories": [{"type": 0, "name": "p", "functions": ["\\ud800"]}]}',
            "a string is not valid Unicode (a lone surrogate escape)",
        ),
    ],
)
def test_hostile_json_is_one_line(
    run_env: dict[str, str], reachable_dir: Path, content: bytes, message: str
) -> None:
    path = reachable_dir / "hostile.json.gz"
    path.write_bytes(gzip.compress(content))
    refused = _refused(run_daemon(path, "job1", env=run_env), _run_dir(run_env))
    assert refused.startswith(f"probe file {path}: {message}")


def test_truncated_gzip(run_env: dict[str, str], make_probe_file: Callable[..., Path]) -> None:
    path = make_probe_file(POSIX)
    path.write_bytes(path.read_bytes()[:-12])
    message = _refused(run_daemon(path, "job1", env=run_env), _run_dir(run_env))
    assert message == f"probe file {path}: truncated gzip data"


def test_wrong_shape(run_env: dict[str, str], reachable_dir: Path) -> None:
    path = reachable_dir / "p.json"
    path.write_text(json.dumps({"summary": [], "categories": "all"}))
    message = _refused(run_daemon(path, "job1", env=run_env), _run_dir(run_env))
    assert message == (
        f"probe file {path}: summary: Input should be a valid dictionary or "
        "instance of ProbeSummary; categories: Input should be a valid list"
    )


def test_signature_mismatch(run_env: dict[str, str], make_probe_file: Callable[..., Path]) -> None:
    path = make_probe_file(POSIX)
    document = json.loads(gzip.decompress(path.read_bytes()))
    document["categories"][0]["functions"].append("read")
    path.write_bytes(gzip.compress(json.dumps(document).encode()))
    message = _refused(run_daemon(path, "job1", env=run_env), _run_dir(run_env))
    assert message == (
        f"probe file {path} refused: signature mismatch: the probe file was "
        "changed after signing or signed with another key"
    )


def test_unsigned_file(run_env: dict[str, str], make_probe_file: Callable[..., Path]) -> None:
    path = make_probe_file(POSIX, signed=False)
    message = _refused(run_daemon(path, "job1", env=run_env), _run_dir(run_env))
    assert message == f"probe file {path} refused: the probe file is not signed (no checksum)"


def test_unknown_probe_type(run_env: dict[str, str], make_probe_file: Callable[..., Path]) -> None:
    path = make_probe_file([{"type": 7, "name": "x", "functions": ["f"]}])
    message = _refused(run_daemon(path, "job1", env=run_env), _run_dir(run_env))
    assert message == (
        f"probe file {path}: categories[0].type: unknown probe type 7 (known: "
        "0 syscalls, 1 kprobe, 2 uprobe, 3 usdt, 4 custom)"
    )


def test_empty_probe_list(run_env: dict[str, str], make_probe_file: Callable[..., Path]) -> None:
    path = make_probe_file([])
    message = _refused(run_daemon(path, "job1", env=run_env), _run_dir(run_env))
    assert message == (
        f"probe file {path}: categories: List should have at least 1 item after validation, not 0"
    )


def test_file_made_for_another_user(
    run_env: dict[str, str], make_probe_file: Callable[..., Path]
) -> None:
    path = make_probe_file(POSIX, user="daemon")
    job_user = pwd.getpwnam(JOB_USER)
    os.chown(path, job_user.pw_uid, job_user.pw_gid)  # another user's file, copied
    message = _refused(run_daemon(path, "job1", env=run_env), _run_dir(run_env))
    assert message == (
        f"probe file {path} refused: made for user 'daemon', this daemon runs for 'nobody'"
    )


def test_file_made_for_another_installation(
    run_env: dict[str, str], make_probe_file: Callable[..., Path]
) -> None:
    path = make_probe_file(POSIX, host="othercluster")
    message = _refused(run_daemon(path, "job1", env=run_env), _run_dir(run_env))
    assert message == (
        f"probe file {path} refused: made for installation 'othercluster', "
        f"this daemon runs for '{socket.gethostname()}'"
    )


def test_file_that_names_no_installation(
    run_env: dict[str, str], make_probe_file: Callable[..., Path]
) -> None:
    path = make_probe_file(POSIX, host=None)  # signed by a datacrumbs before issue 14
    message = _refused(run_daemon(path, "job1", env=run_env), _run_dir(run_env))
    assert message == (
        f"probe file {path} refused: it names no installation (summary.host); it was signed "
        "by an older datacrumbs: make it again with datacrumbs_probe_configurator"
    )


def test_file_signed_on_another_node_of_the_installation_is_accepted(
    run_env: dict[str, str], make_probe_file: Callable[..., Path]
) -> None:
    # Signed on the login node, run on a compute node of the same installation (another
    # node name): accepted, and the file names where it was signed.
    path = make_probe_file(POSIX, hostname="login1")
    settings = load_settings(
        install_prefix=Path(run_env["DATACRUMBS_INSTALL_PREFIX"]), hostname="node17"
    )
    assert settings.host == socket.gethostname()  # the installation's, from its configuration
    model = accept_probe_file(path, settings, JOB_USER)
    assert (model.summary.hostname, model.summary.host) == ("login1", socket.gethostname())


def test_expired_file(run_env: dict[str, str], make_probe_file: Callable[..., Path]) -> None:
    expired = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")
    path = make_probe_file(POSIX, expires_at=expired)
    message = _refused(run_daemon(path, "job1", env=run_env), _run_dir(run_env))
    assert message == f"probe file {path} refused: expired at {expired}"


def test_file_without_expiry(run_env: dict[str, str], make_probe_file: Callable[..., Path]) -> None:
    # Signed with the key but never expiring: the signer always sets one (finding 7).
    path = make_probe_file(POSIX, expires_at=None)
    message = _refused(run_daemon(path, "job1", env=run_env), _run_dir(run_env))
    assert message == f"probe file {path} refused: it has no expiry (summary.expires_at)"


def test_file_valid_for_a_century(
    run_env: dict[str, str], make_probe_file: Callable[..., Path]
) -> None:
    """Signed by the installation's key, but for longer than the signer ever signs (issue 25,
    N10): the daemon holds the 90-day limit itself."""
    far = (datetime.now(UTC) + timedelta(days=36500)).isoformat(timespec="seconds")
    path = make_probe_file(POSIX, expires_at=far)
    message = _refused(run_daemon(path, "job1", env=run_env), _run_dir(run_env))
    assert message == (
        f"probe file {path} refused: it is valid until {far}, more than 90 days away"
    )


@pytest.mark.parametrize("run_id", ["../etc", "a/b", "job 42", ".hidden", "x" * 129])
def test_unsafe_run_id(
    run_env: dict[str, str], make_probe_file: Callable[..., Path], run_id: str
) -> None:
    message = _refused(run_daemon(make_probe_file(POSIX), run_id, env=run_env), _run_dir(run_env))
    assert message.startswith(f"run-id {run_id!r} from the command line is not safe in file names")
    assert not _run_dir(run_env).exists()


def test_unsafe_run_id_from_the_scheduler(
    run_env: dict[str, str], make_probe_file: Callable[..., Path]
) -> None:
    env = run_env | {"SLURM_JOB_ID": "../../x"}
    message = _refused(run_daemon(make_probe_file(POSIX), env=env), _run_dir(run_env))
    assert message.startswith("run-id '../../x' from $SLURM_JOB_ID is not safe")


def test_job_user_is_required(
    run_env: dict[str, str], make_probe_file: Callable[..., Path]
) -> None:
    env = {k: v for k, v in run_env.items() if k != "DATACRUMBS_USER"}
    message = _refused(run_daemon(make_probe_file(POSIX), "job1", env=env), _run_dir(run_env))
    assert message == (
        "DATACRUMBS_USER is not set: name the job user whose processes are "
        "traced (the unit's environment file sets it)"
    )


def test_unwritable_run_directory(
    run_env: dict[str, str], make_probe_file: Callable[..., Path]
) -> None:
    env = run_env | {"DATACRUMBS_SERVER_RUN_DIR": "/dev/null/run"}
    result = run_daemon(make_probe_file(POSIX), "job1", env=env)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "datacrumbs: error: run directory /dev/null/run: Not a directory"
    )


def test_unwritable_trace_directory(
    run_env: dict[str, str], make_probe_file: Callable[..., Path]
) -> None:
    env = run_env | {"DATACRUMBS_TRACE_DIR_PATTERN": "/dev/null/traces/%YY%"}
    result = run_daemon(make_probe_file(POSIX), "job1", env=env)
    year = datetime.now().year
    assert _refused(result, _run_dir(run_env)) == (
        f"trace directory /dev/null/traces/{year}: /dev/null is not a directory"
    )
    # The run-id lock was released: nothing of this run stays ready.
    assert not (_run_dir(run_env) / "datacrumbs-job1.ready").exists()


def test_probe_file_swapped_for_a_link_to_a_root_only_file(
    run_env: dict[str, str], make_probe_file: Callable[..., Path], job_dir: Path
) -> None:
    # The prolog checked the file as the user; the user then points the path at a root-only
    # file: the daemon (root) must not read it (issue 11, finding 7).
    secret = make_probe_file(POSIX, name="root-only.json.gz")
    os.chown(secret, 0, 0)
    secret.chmod(0o600)
    link = job_dir / "probes.json.gz"
    pw = pwd.getpwnam(JOB_USER)
    subprocess.run(
        [
            "setpriv",
            f"--reuid={pw.pw_uid}",
            f"--regid={pw.pw_gid}",
            "--clear-groups",
            "ln",
            "-s",
            str(secret),
            str(link),
        ],
        check=True,
    )
    message = _refused(run_daemon(link, "job1", env=run_env), _run_dir(run_env))
    assert message == f"probe file {link} is a symbolic link; not following it"


def test_probe_file_s_directory_swapped_for_a_link_to_root_s(
    run_env: dict[str, str],
    make_probe_file: Callable[..., Path],
    job_dir: Path,
    reachable_dir: Path,
) -> None:
    """After the prolog's check the user swaps a *directory* of the path for a link to a
    root-only one holding a file of the same name (issue 25, N6): the daemon opens the path as
    the user, so it reads nothing the user could not."""
    private = reachable_dir / "root-only"  # its parents are open to all: only it is closed
    private.mkdir(mode=0o700)
    (private / "probes.json.gz").write_text('{"summary": {"root_password_hint": "x"}}')
    (private / "probes.json.gz").chmod(0o600)
    probes = job_dir / "probes"
    probes.mkdir()
    make_probe_file(POSIX).rename(probes / "probes.json.gz")
    pw = pwd.getpwnam(JOB_USER)
    os.chown(probes, pw.pw_uid, pw.pw_gid)
    path = probes / "probes.json.gz"
    swap = f"mv {probes} {probes}.old && ln -s {private} {probes}"
    subprocess.run(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
                    "--clear-groups", "sh", "-c", swap], check=True)  # fmt: skip
    result = run_daemon(path, "job1", env=run_env)
    message = _refused(result, _run_dir(run_env))
    assert message == f"probe file {path} cannot be read: Permission denied"
    assert "root_password_hint" not in result.stderr


def test_probe_file_of_another_user_is_not_read(
    run_env: dict[str, str], make_probe_file: Callable[..., Path]
) -> None:
    path = make_probe_file(POSIX)
    os.chown(path, pwd.getpwnam("daemon").pw_uid, -1)
    path.chmod(0o644)  # readable by the job user, but not theirs
    message = _refused(run_daemon(path, "job1", env=run_env), _run_dir(run_env))
    uid = pwd.getpwnam("daemon").pw_uid
    assert message == f"probe file {path} belongs to uid {uid}, not to the job user"
