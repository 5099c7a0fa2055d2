"""One job across two nodes, traced by the shipped Slurm prolog and epilog (issue 14).

The installation is shared by every machine (one prefix, bound at the same path), installed on
the login machine. The user makes the probe file there, signed by the signer unit; the job asks
for tracing with ``--comment=datacrumbs=PATH``. The prolog starts ``datacrumbs@<jobid>`` on each
node, scoped to the job's cgroup (which slurmstepd makes after the prolog); the epilog stops it.
All machines share one kernel: the scoping alone keeps node1's trace free of node2's job and of
the user's other processes.
"""

from __future__ import annotations

import contextlib
import json
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import pytest
from dftracer_support import analyze
from nspawn_support import machines_allowed
from slurm_cluster import SlurmCluster
from support import command

from datacrumbs.install.runtime import default_cache_dir
from datacrumbs.trace.reading import read_trace_lines

NOBODY = pwd.getpwnam("nobody")
UNITS = ("datacrumbs@.service", "datacrumbs_sign_probes.service")
SIGNER = "datacrumbs_sign_probes.service"
K, S = 9, 1024
FILE_IO = Path(__file__).parents[1] / "engine" / "c" / "file_io.c"
CONFIG = """\
capture_probes:
  - name: posix_io
    probe: syscalls
    functions: [openat, write, pread64, fsync, close]
"""


class TracedCluster(NamedTuple):
    cluster: SlurmCluster
    prefix: Path  # the installation every machine shares


@pytest.fixture(scope="module", params=[True, False], ids=["job-cgroups", "no-job-cgroups"])
def traced_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, product: Path
) -> Iterator[TracedCluster]:
    """The cluster with datacrumbs installed in a prefix all machines share, the units linked
    on every machine, the signer running on the login machine, and the shipped hooks in
    slurm.conf; once with job cgroups (proctrack/cgroup), once without (proctrack/linuxproc:
    the prolog's fallback follows the step daemons' children). ``product`` (a host
    installation) has filled the installer's caches the login machine installs from."""
    # not under /tmp or /var/tmp: the units give the daemon and the signer private ones
    name = f"datacrumbs-slurm-test-{tmp_path_factory.getbasetemp().name}-{request.param_index}"
    prefix = Path("/opt") / name
    hooks = prefix / "etc/datacrumbs/slurm"
    cluster = SlurmCluster(
        conf=[f"Prolog={hooks}/prolog.sh", f"Epilog={hooks}/epilog.sh",
              "PrologFlags=Alloc,Contain"],
        shared=[prefix],
        job_cgroups=request.param,
    )  # fmt: skip
    with machines_allowed("boots a cluster of containers"), _cleaned(cluster, prefix):
        prefix.mkdir(mode=0o755)
        cluster.start()
        cluster.login.run(
            command("datacrumbs_install"), "--prefix", str(prefix),
            "--wheelhouse", str(default_cache_dir() / "wheelhouse"), timeout=300,
        )  # fmt: skip
        units = [str(prefix / "etc/datacrumbs/systemd" / unit) for unit in UNITS]
        for machine in cluster.machines.values():
            machine.run("ln", "-sf", *units, "/etc/systemd/system/")
            machine.run("systemctl", "daemon-reload")
        cluster.login.run("systemctl", "enable", "--now", SIGNER)
        yield TracedCluster(cluster, prefix)


@contextlib.contextmanager
def _cleaned(cluster: SlurmCluster, prefix: Path) -> Iterator[None]:
    try:
        yield
    finally:
        try:
            cluster.close()
        finally:
            shutil.rmtree(prefix, ignore_errors=True)


def _nobody(cluster: SlurmCluster, machine: str, *argv: str) -> str:
    result = cluster.run_as(machine, NOBODY.pw_uid, NOBODY.pw_gid, *argv)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _wait(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout} s")
        time.sleep(0.1)


def _trace_path(prefix: Path, job: str, node: str) -> Path:
    """Where node's daemon writes the job's trace (the default pattern, the user's day)."""
    day = datetime.now().strftime("%Y/%m/%d")
    return prefix / f"var/datacrumbs/traces/nobody/{day}/trace-nobody-{job}-{node}-probes.pfw.gz"


def _trace(path: Path) -> list[dict]:
    lines = read_trace_lines(path)
    assert lines[-1] == "]", f"{path} is not finished"
    return [json.loads(line) for line in lines[1:-1]]


def _job_files(cluster: SlurmCluster, prefix: Path) -> Path:
    """The workload and the user's probe file, made on the login node by the configurator and
    signed by the signer (once per cluster); the probe file's path."""
    shared = cluster.shared
    probes = shared / "probes.json.gz"
    if probes.exists():
        return probes
    subprocess.run(["gcc", "-O1", "-Wall", "-o", str(shared / "file_io"), str(FILE_IO)],
                   check=True)  # fmt: skip
    (shared / "probes.yaml").write_text(CONFIG)
    said = _nobody(cluster, "login", str(prefix / "bin/datacrumbs_probe_configurator"),
                   str(shared / "probes.yaml"), str(probes))  # fmt: skip
    assert "signed for nobody on login" in said
    return probes


def _submit(cluster: SlurmCluster, name: str, body: str, comment: str) -> str:
    """Submit ``body`` (shell lines) as the user's two-node job ``name`` with ``comment``,
    from the login node; its job id. Its output goes to ``<shared>/<name>.out``."""
    shared = cluster.shared
    script = shared / f"{name}.sh"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return _nobody(
        cluster, "login", "sbatch", "--parsable", "-N2", f"--chdir={shared}",
        f"--output={shared}/{name}.out", f"--comment={comment}", str(script),
    ).strip()  # fmt: skip


def _task_line(shared: Path, prefix: str) -> str:
    """A job line: one task per node runs file_io on its own ``<prefix>-<node>.bin`` and
    prints ``<node> <pid> <fd>``."""
    return (
        f"srun -N2 --ntasks-per-node=1 sh -c 'echo $(hostname) "
        f"$({shared}/file_io {shared}/{prefix}-$(hostname).bin {K} {S})'\n"
    )


def _finished_traces(cluster: SlurmCluster, prefix: Path, job: str) -> list[Path]:
    """Each node's trace of ``job``, once the epilogs have finished them all."""
    ends = [_trace_path(prefix, job, node) for node in cluster.nodes]
    try:
        _wait(
            lambda: all(p.exists() and read_trace_lines(p)[-1:] == ["]"] for p in ends),
            90, "both nodes' traces finished by the epilog",
        )  # fmt: skip
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_diagnosis(cluster, prefix, job)}") from None
    return ends


def _tasks(output: Path) -> dict[str, int]:
    """Node → pid of its task, from the job's output (``_task_line``)."""
    tasks = {}
    for line in output.read_text().split("\n"):
        if line.strip():
            host, pid, _fd = line.split()
            tasks[host] = int(pid)
    return tasks


def _diagnosis(cluster: SlurmCluster, prefix: Path, job: str) -> str:
    """What the nodes say about the job's tracing (for a failure's message)."""
    parts = [f"traces: {sorted(str(p) for p in (prefix / 'var').rglob('*.pfw.gz'))}"]
    for node in cluster.nodes:
        machine = cluster.machines[node]
        for argv in (
            ["journalctl", "--no-pager", "-n", "30", "-t", "datacrumbs"],
            ["journalctl", "--no-pager", "-n", "30", "-u", f"datacrumbs@{job}.service"],
            ["tail", "-n", "15", "/var/log/slurm/slurmd.log"],
        ):
            out = machine.run(*argv, check=False)
            parts.append(f"{node}: {' '.join(argv)}:\n{out.stdout}{out.stderr}")
    return "\n".join(parts)


def test_each_node_traces_exactly_its_share_of_the_job(
    traced_cluster: TracedCluster, tmp_path: Path
) -> None:
    cluster, prefix = traced_cluster
    shared = cluster.shared
    probes = _job_files(cluster, prefix)

    # The job: one task per node writes its own file, then waits until the test has run the
    # user's processes outside the job on both nodes.
    job = _submit(
        cluster, "job",
        _task_line(shared, "job")
        + f"touch {shared}/ran\n"
        + f"for i in $(seq 300); do [ -e {shared}/go ] && exit 0; sleep 0.1; done\n",
        f"datacrumbs={probes}",
    )  # fmt: skip
    _wait(lambda: (shared / "ran").exists(), 60, "the job's tasks")
    outside = {}
    for node in cluster.nodes:  # the same user, on the same nodes, not in the job
        out = _nobody(cluster, node, str(shared / "file_io"), str(shared / f"out-{node}.bin"),
                      str(K), str(S))  # fmt: skip
        outside[node] = int(out.split()[0])
    (shared / "go").touch()
    ends = _finished_traces(cluster, prefix, job)
    tasks = _tasks(shared / "job.out")
    assert sorted(tasks) == cluster.nodes
    for node in cluster.nodes:
        events = _trace(_trace_path(prefix, job, node))
        names = {e["args"]["value"]: e["args"]["name"] for e in events if e["name"] == "FH"}
        calls = [e for e in events if e.get("ph") == "X"]
        writes: dict[str, int] = {}
        for e in calls:
            if e["name"] == "write" and e["args"]["size"] == S:
                name = names.get(e["args"].get("fhash"), "?")
                writes[Path(name).name] = writes.get(Path(name).name, 0) + 1
        # exactly this node's task: none of the other node's, none of the user's outside
        assert writes == {f"job-{node}.bin": K}, (node, writes)
        mine = [e for e in calls if e["pid"] == tasks[node]]
        data = [e for e in mine if names.get(e["args"].get("fhash"), "").endswith(f"-{node}.bin")]
        assert [e["name"] for e in data] == ["open", *["write"] * K, *["pread"] * K, "fsync",
                                             "close"]  # fmt: skip
        assert outside[node] not in {e["pid"] for e in calls}
        [scope] = [e["args"] for e in events if e["name"] == "job_scope"]
        if cluster.job_cgroups:
            assert scope["scope"] == "cgroup" and scope["cgroup"].endswith(f"/job_{job}")
        else:
            assert scope == {"scope": "parent_cmdline", "user": "nobody",
                             "parent_cmdline": f"slurmstepd: [{job}."}  # fmt: skip

    # The job's node traces read together by dftracer-analyzer (docs/deploy.md's recipe):
    # the job's totals, per file, as the tasks made them.
    _summary, by_file = analyze(ends, tmp_path)
    for node in cluster.nodes:
        found = by_file[str(shared / f"job-{node}.bin")]
        assert (found["posix_write_count_sum"], found["posix_write_size_sum"]) == (K, K * S)
        assert (found["posix_read_count_sum"], found["posix_read_size_sum"]) == (K, K * S)
    assert not any(name.endswith(("out-node1.bin", "out-node2.bin")) for name in by_file)


def test_a_job_asks_for_profile_mode_with_its_comment(traced_cluster: TracedCluster) -> None:
    """``--comment=datacrumbs:profile=PATH``: the prolog starts each node's daemon in profile
    mode; each node's trace holds aggregates of exactly its own task's calls, no events."""
    cluster, prefix = traced_cluster
    shared = cluster.shared
    probes = _job_files(cluster, prefix)
    job = _submit(cluster, "profile-job", _task_line(shared, "prof"),
                  f"datacrumbs:profile={probes}")  # fmt: skip
    _finished_traces(cluster, prefix, job)
    tasks = _tasks(shared / "profile-job.out")
    for node in cluster.nodes:
        events = _trace(_trace_path(prefix, job, node))
        assert [e["args"]["mode"] for e in events if e["name"] == "datacrumbs_mode"] == ["profile"]
        assert not [e for e in events if e.get("ph") == "X"]
        names = {e["args"]["value"]: e["args"]["name"] for e in events if e["name"] == "FH"}
        totals: dict[tuple[str, str], list[int]] = {}
        for e in events:
            if e.get("ph") == "C" and e["pid"] == tasks[node]:
                name = Path(names.get(e["args"].get("fhash"), "?")).name
                t = totals.setdefault((e["name"], name), [0, 0])
                t[0] += e["args"]["dft_cnt"]
                t[1] += e["args"].get("ret_sum", 0)
        mine = {k: v for k, v in totals.items() if k[1].startswith("prof-")}
        assert mine == {
            ("open", f"prof-{node}.bin"): [1, 0],
            ("write", f"prof-{node}.bin"): [K, K * S],
            ("pread", f"prof-{node}.bin"): [K, K * S],
            ("fsync", f"prof-{node}.bin"): [1, 0],
            ("close", f"prof-{node}.bin"): [1, 0],
        }, (node, totals)
