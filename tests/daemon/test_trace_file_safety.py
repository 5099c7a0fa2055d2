"""The root daemon writes into a trace directory the job user can write: what the user plants
there must never redirect root (issue 11, finding 2). The attacker here is the job user
``nobody``, acting with ``setpriv`` in a directory of their own."""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from daemon_support import JOB_USER, Daemon, run_as_job_user, run_daemon

POSIX = [{"type": 0, "name": "posix", "functions": ["openat", "write", "close"]}]


def _victim_dir(public_dir: Path, name: str) -> Path:
    victim = public_dir / name
    victim.mkdir(mode=0o755)
    return victim


def test_symlinked_trace_directory_is_refused_and_not_followed(
    run_env: dict[str, str], make_probe_file: Callable[..., Path], job_dir: Path, public_dir: Path
) -> None:
    victim = _victim_dir(public_dir, f"victim-{job_dir.name}")
    run_as_job_user("ln", "-s", str(victim), str(job_dir / "traces"))
    env = run_env | {"DATACRUMBS_TRACE_DIR_PATTERN": f"{job_dir}/traces/%YY%"}
    result = run_daemon(make_probe_file(POSIX), "job1", env=env)
    year = datetime.now().year
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"datacrumbs: error: trace directory {job_dir}/traces/{year}: {job_dir}/traces is a "
        "symbolic link that a user could have placed; not following it"
    )
    assert list(victim.iterdir()) == []  # root made nothing in the link's target


def test_links_planted_at_the_trace_path_are_moved_aside_and_the_trace_is_the_users(
    run_env: dict[str, str], make_probe_file: Callable[..., Path], job_dir: Path, public_dir: Path
) -> None:
    secret = _victim_dir(public_dir, f"root-{job_dir.name}") / "secret"
    secret.write_text("root's own\n")
    secret.chmod(0o600)
    year = datetime.now().strftime("%Y")
    traces = job_dir / "traces" / year
    run_as_job_user("mkdir", "-p", str(traces))
    planted = traces / f"trace-{JOB_USER}-job2-{os.uname().nodename}-probes.pfw.gz"
    run_as_job_user("ln", "-s", str(secret), str(planted))
    env = run_env | {"DATACRUMBS_TRACE_DIR_PATTERN": f"{job_dir}/traces/%YY%"}

    daemon = Daemon(make_probe_file(POSIX), "job2", env=env)
    daemon.wait_ready("job2")
    assert daemon.stop() == 0, daemon.stderr

    info = secret.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o600)
    assert secret.read_text() == "root's own\n"
    trace = planted.lstat()
    nobody = pwd.getpwnam(JOB_USER)
    assert stat.S_ISREG(trace.st_mode)
    assert (trace.st_uid, trace.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert stat.S_IMODE(trace.st_mode) == 0o600  # the user's alone, not their group's
    [aside] = [p for p in traces.iterdir() if p != planted]
    assert aside.is_symlink() and os.readlink(aside) == str(secret)


def test_the_users_part_of_the_trace_directory_is_theirs_to_index_in(
    run_env: dict[str, str], make_probe_file: Callable[..., Path], public_dir: Path
) -> None:
    # The default pattern's shape: root's directories above %USER%, the job user's below it,
    # so that the user's own tools (DFTracer's indexers) can write next to the trace.
    top = _victim_dir(public_dir, f"traces-{os.getpid()}-{datetime.now().microsecond}")
    env = run_env | {"DATACRUMBS_TRACE_DIR_PATTERN": f"{top}/all/%USER%/%YY%/%MM%"}
    daemon = Daemon(make_probe_file(POSIX), "job3", env=env)
    trace = Path(daemon.wait_ready("job3").read_text().splitlines()[1])
    assert daemon.stop() == 0, daemon.stderr

    pw = pwd.getpwnam(JOB_USER)
    month = trace.parent
    owners = {
        p: (p.stat().st_uid, p.stat().st_gid, stat.S_IMODE(p.stat().st_mode))
        for p in (top / "all", top / "all" / JOB_USER, month.parent, month)
    }
    assert owners == {
        top / "all": (0, 0, 0o755),
        top / "all" / JOB_USER: (pw.pw_uid, pw.pw_gid, 0o700),
        month.parent: (pw.pw_uid, pw.pw_gid, 0o700),
        month: (pw.pw_uid, pw.pw_gid, 0o700),
    }
    run_as_job_user("touch", str(month / f"{trace.name}.dftindex"))
    assert (month / f"{trace.name}.dftindex").stat().st_uid == pw.pw_uid
