"""One job across two nodes, traced by the shipped Slurm prolog and epilog (issue 14), on a
site laid out as a real one is (issue 24).

The installation is one prefix, ``/opt/<name>``, installed on the login machine (the signer's
host), where it is writable; the compute nodes see it at the same path through a read-only,
root-squashed export (:mod:`rootsquash`, a FUSE stand-in for NFS: this kernel has no NFS
client). The users' scratch, ``/scratch`` on every machine, is a writable root-squashed export
with one 0700 directory per user, and the traces go there (``DATACRUMBS_TRACE_DIR_PATTERN``):
root on a node is ``nobody`` on both, so the daemon gets to its user's probe file and writes the
trace only as the job user. The private signing key exists on the login machine alone; no
machine sees the host's own ``/etc/datacrumbs``, ``/var/lib/datacrumbs`` or
``/var/log/datacrumbs``.

The user makes the probe file on the login machine, signed by the signer unit; the job asks for
tracing with ``--comment=datacrumbs=PATH``. The prolog starts ``datacrumbs@<jobid>`` on each
node, scoped to the job's cgroup (which slurmstepd makes after the prolog); the epilog stops it.
All machines share one kernel: the scoping alone keeps node1's trace free of node2's job and of
the user's other processes.

The job user is ``daemon`` (uid 1): an account every Debian system has that is neither root nor
``nobody``, root's squashed self (with ``nobody`` as the user the squash would prove nothing).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import pytest
from dftracer_support import analyze
from nspawn_support import machines_allowed
from rootsquash import FSTYPE, rootsquash_mount
from slurm_cluster import Bind, SlurmCluster
from support import command

from datacrumbs.install.runtime import default_cache_dir
from datacrumbs.trace.reading import read_trace_lines

#: The job user: not root, and not nobody (what root is squashed to).
USER = pwd.getpwnam("daemon")
#: The users' scratch inside every machine: one root-squashed export, a directory per user.
SCRATCH = Path("/scratch")
TRACE_DIR_PATTERN = f"{SCRATCH}/%USER%/datacrumbs/%YY%/%MM%/%DD%"
SIGNING_KEY = Path("/etc/datacrumbs/probe-signing-key.pem")
#: The host's own datacrumbs state, which a fresh node has none of.
HOST_STATE = [SIGNING_KEY.parent, Path("/var/lib/datacrumbs"), Path("/var/log/datacrumbs")]
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
    prefix: Path  # the installation every machine shares (its source on the host)
    scratch: Path  # the scratch export's source on the host (SCRATCH in the machines)


@pytest.fixture(scope="module", params=[True, False], ids=["job-cgroups", "no-job-cgroups"])
def traced_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, product: Path
) -> Iterator[TracedCluster]:
    """The cluster on a root-squashed site (the module's docstring): datacrumbs installed on
    the login machine into the prefix, which the compute nodes see read-only and squashed; the
    units linked on every machine, the signer running on the login machine, and the shipped
    hooks in slurm.conf; once with job cgroups (proctrack/cgroup), once without
    (proctrack/linuxproc: the prolog's fallback follows the step daemons' children).
    ``product`` (a host installation) has filled the installer's caches the login machine
    installs from. At the end, also after a failure: the machines powered off, then both
    exports unmounted, their mountpoints, the prefix and the scratch removed."""
    # not under /tmp or /var/tmp: the units give the daemon and the signer private ones
    name = f"datacrumbs-slurm-test-{tmp_path_factory.getbasetemp().name}-{request.param_index}"
    prefix = Path("/opt") / name
    hooks = prefix / "etc/datacrumbs/slurm"
    with machines_allowed("boots a cluster of containers"), contextlib.ExitStack() as stack:
        # the host's side of the site: the scratch export's source and both mountpoints
        site = Path(tempfile.mkdtemp(prefix=f"{name}-site-", dir="/srv"))
        stack.callback(_remove_site, site)
        prefix.mkdir(mode=0o755)
        stack.callback(shutil.rmtree, prefix, ignore_errors=True)
        scratch = site / "scratch-export"
        scratch.mkdir(mode=0o755)
        (scratch / USER.pw_name).mkdir(mode=0o700)
        os.chown(scratch / USER.pw_name, USER.pw_uid, USER.pw_gid)
        # mounted before the machines boot (their binds are set then); the prefix is filled
        # later, through the login machine's bind of its source
        squashed_prefix = stack.enter_context(
            rootsquash_mount(prefix, site / "prefix", read_only=True)
        )
        squashed_scratch = stack.enter_context(rootsquash_mount(scratch, site / "scratch"))
        cluster = SlurmCluster(
            conf=[f"Prolog={hooks}/prolog.sh", f"Epilog={hooks}/epilog.sh",
                  "PrologFlags=Alloc,Contain"],
            job_cgroups=request.param,
            binds=[Bind(prefix, prefix, nodes=False),  # the signer's host installs there
                   Bind(squashed_prefix, prefix, login=False),
                   Bind(squashed_scratch, SCRATCH)],
            hidden=HOST_STATE,
        )  # fmt: skip
        stack.callback(cluster.close)  # before the exports are unmounted
        cluster.start()
        installed = cluster.login.run(
            command("datacrumbs_install"), "--prefix", str(prefix),
            "--wheelhouse", str(default_cache_dir() / "wheelhouse"), timeout=300,
            env={"DATACRUMBS_TRACE_DIR_PATTERN": TRACE_DIR_PATTERN},
        )  # fmt: skip
        assert "signing key created" in installed.stdout, installed.stdout
        units = [str(prefix / "etc/datacrumbs/systemd" / unit) for unit in UNITS]
        for machine in cluster.machines.values():
            machine.run("ln", "-sf", *units, "/etc/systemd/system/")
            machine.run("systemctl", "daemon-reload")
        cluster.login.run("systemctl", "enable", "--now", SIGNER)
        yield TracedCluster(cluster, prefix, scratch)


def _remove_site(site: Path) -> None:
    """The site's host directory, its exports unmounted: the scratch's source with everything
    in it, the mountpoints with rmdir (which never reaches through a mount still there)."""
    shutil.rmtree(site / "scratch-export", ignore_errors=True)
    for mountpoint in (site / "prefix", site / "scratch"):
        with contextlib.suppress(FileNotFoundError):
            mountpoint.rmdir()
    site.rmdir()


def _as_user(cluster: SlurmCluster, machine: str, *argv: str) -> str:
    result = cluster.run_as(machine, USER.pw_uid, USER.pw_gid, *argv)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _wait(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout} s")
        time.sleep(0.1)


def _trace_path(scratch: Path, job: str, node: str) -> Path:
    """Where node's daemon writes the job's trace (TRACE_DIR_PATTERN, the user's day), on the
    scratch export's source."""
    day = datetime.now().strftime("%Y/%m/%d")
    user = USER.pw_name
    return scratch / f"{user}/datacrumbs/{day}/trace-{user}-{job}-{node}-probes.pfw.gz"


def _assert_users_own(scratch: Path, trace: Path) -> None:
    """The trace is the job user's, 0600, on the export (the daemon wrote it as the user), in
    directories the user owns, 0700, from their scratch directory down."""
    info = trace.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (
        USER.pw_uid, USER.pw_gid, 0o600,
    ), trace  # fmt: skip
    home = scratch / USER.pw_name
    for directory in trace.relative_to(home).parents:
        info = (home / directory).stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (USER.pw_uid, 0o700), directory


def _trace(path: Path) -> list[dict]:
    lines = read_trace_lines(path)
    assert lines[-1] == "]", f"{path} is not finished"
    return [json.loads(line) for line in lines[1:-1]]


def _job_files(cluster: SlurmCluster, prefix: Path, scratch: Path) -> Path:
    """The workload and the user's probe file, made on the login node by the configurator and
    signed by the signer (once per cluster); the probe file's path in the machines: in the
    user's own scratch directory, which only the user can enter (root is squashed)."""
    shared = cluster.shared
    probes = SCRATCH / USER.pw_name / "probes.json.gz"
    if (scratch / probes.relative_to(SCRATCH)).exists():
        return probes
    subprocess.run(["gcc", "-O1", "-Wall", "-o", str(shared / "file_io"), str(FILE_IO)],
                   check=True)  # fmt: skip
    (shared / "probes.yaml").write_text(CONFIG)
    said = _as_user(cluster, "login", str(prefix / "bin/datacrumbs_probe_configurator"),
                    str(shared / "probes.yaml"), str(probes))  # fmt: skip
    assert f"signed for {USER.pw_name} on login" in said
    return probes


def _submit(cluster: SlurmCluster, name: str, body: str, comment: str) -> str:
    """Submit ``body`` (shell lines) as the user's two-node job ``name`` with ``comment``,
    from the login node; its job id. Its output goes to ``<shared>/<name>.out``."""
    shared = cluster.shared
    script = shared / f"{name}.sh"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return _as_user(
        cluster, "login", "sbatch", "--parsable", "-N2", f"--chdir={shared}",
        f"--output={shared}/{name}.out", f"--comment={comment}", str(script),
    ).strip()  # fmt: skip


def _task_line(shared: Path, prefix: str) -> str:
    """A job line: one task per node runs file_io on its own ``<prefix>-<node>.bin`` and
    prints ``<node> <pid> <fd>``; file_io lingers 1 s, so that the daemon reads its rank
    (a process gone before its /proc is read is shown by node and pid)."""
    return (
        f"srun -N2 --ntasks-per-node=1 sh -c 'echo $(hostname) "
        f"$({shared}/file_io {shared}/{prefix}-$(hostname).bin {K} {S} linger)'\n"
    )


def _finished_traces(cluster: SlurmCluster, scratch: Path, job: str) -> list[Path]:
    """Each node's trace of ``job``, once the epilogs have finished them all."""
    ends = [_trace_path(scratch, job, node) for node in cluster.nodes]
    try:
        _wait(
            lambda: all(p.exists() and read_trace_lines(p)[-1:] == ["]"] for p in ends),
            90, "both nodes' traces finished by the epilog",
        )  # fmt: skip
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_diagnosis(cluster, scratch, job)}") from None
    return ends


def _tasks(output: Path) -> dict[str, int]:
    """Node → pid of its task, from the job's output (``_task_line``)."""
    tasks = {}
    for line in output.read_text().split("\n"):
        if line.strip():
            host, pid, _fd = line.split()
            tasks[host] = int(pid)
    return tasks


def _diagnosis(cluster: SlurmCluster, scratch: Path, job: str) -> str:
    """What the nodes say about the job's tracing (for a failure's message)."""
    parts = [f"traces: {sorted(str(p) for p in scratch.rglob('*.pfw.gz'))}"]
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


def _report(traces: list[Path], work: Path) -> dict[str, list[dict]]:
    """datacrumbs_report's numbers of the job's node traces together (its --json)."""
    out = work / "report.json"
    done = subprocess.run(
        [command("datacrumbs_report"), *map(str, traces), "--json", str(out), "--quiet",
         "-o", str(work / "report.html")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())["sections"]


def _assert_report(sections: dict[str, list[dict]], shared: Path, prefix: str,
                   nodes: list[str], mode: str) -> None:  # fmt: skip
    """The job's report: both nodes' traces whole, each node's file exactly as its task made
    it, and each task's rank (Slurm's task id: one per node, in node order) on its node."""
    traces = {t["host"]: t for t in sections["traces"]}
    assert sorted(traces) == nodes
    assert {t["mode"] for t in traces.values()} == {mode}
    assert all(loss["lost_events"] == 0 and loss["finished"] for loss in sections["loss"])
    files = {f["path"]: f for f in sections["files"]}
    ranks = {r["label"]: r for r in sections["ranks"]}
    for rank, node in enumerate(nodes):
        found = files[str(shared / f"{prefix}-{node}.bin")]
        assert {k: found[k] for k in ("calls", "reads", "writes", "read_bytes", "write_bytes",
                                      "ranks")} == {
            "calls": 2 * K + 3, "reads": K, "writes": K, "read_bytes": K * S,
            "write_bytes": K * S, "ranks": 1}  # fmt: skip
        assert ranks[f"rank {rank}"]["host"] == node
        assert ranks[f"rank {rank}"]["write_bytes"] >= K * S, sections["ranks"]
    if mode == "profile":
        assert all(t["aggregated"] == t["calls"] > 0 for t in traces.values())


def test_the_site_is_root_squashed_and_only_the_login_node_can_sign(
    traced_cluster: TracedCluster,
) -> None:
    """What the traced jobs below run on: on every compute node the prefix is the read-only
    export and root cannot write it, the scratch is the squashed export and root cannot reach
    into the user's directory while the user can; the private key is on the login machine
    alone, and the public keys are readable everywhere."""
    cluster, prefix, scratch = traced_cluster
    home = SCRATCH / USER.pw_name

    def fstype(machine: str, path: Path) -> str:
        found = cluster.machines[machine].run("findmnt", "-n", "-o", "FSTYPE", "-M", str(path))
        return found.stdout.strip()

    verify_keys = prefix / "share/datacrumbs/data/probe-verify-keys.json"
    published = json.loads(verify_keys.read_text())
    assert published["keys"]
    key = cluster.login.run("stat", "-c", "%u %a", str(SIGNING_KEY)).stdout.split()
    assert key == ["0", "400"]
    assert fstype("login", prefix) != FSTYPE  # the signer's host: its own, writable prefix
    for name, machine in cluster.machines.items():
        assert fstype(name, SCRATCH) == FSTYPE
        denied = machine.run("touch", str(home / "root-was-here"), check=False)
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, denied
        made = home / f"made-on-{name}"
        _as_user(cluster, name, "touch", str(made))
        info = (scratch / made.relative_to(SCRATCH)).stat()
        assert (info.st_uid, info.st_gid) == (USER.pw_uid, USER.pw_gid)
        _as_user(cluster, name, "rm", str(made))
        if name == "login":
            continue
        assert fstype(name, prefix) == FSTYPE
        refused = machine.run("touch", str(prefix / "root-was-here"), check=False)
        assert refused.returncode != 0 and "Read-only file system" in refused.stderr, refused
        refused = machine.run("mkdir", str(prefix / "etc/root-was-here"), check=False)
        assert refused.returncode != 0 and "Read-only file system" in refused.stderr, refused
        absent = machine.run("stat", str(SIGNING_KEY), check=False)
        assert absent.returncode != 0 and "No such file" in absent.stderr, absent
        # the public keys: root (squashed) and the user read what the login machine published
        assert json.loads(machine.run("cat", str(verify_keys)).stdout) == published
        assert json.loads(_as_user(cluster, name, "cat", str(verify_keys))) == published
    assert not (scratch / USER.pw_name / "root-was-here").exists()
    assert not (prefix / "root-was-here").exists()


def test_each_node_traces_exactly_its_share_of_the_job(
    traced_cluster: TracedCluster, tmp_path: Path
) -> None:
    cluster, prefix, scratch = traced_cluster
    shared = cluster.shared
    probes = _job_files(cluster, prefix, scratch)

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
        out = _as_user(cluster, node, str(shared / "file_io"), str(shared / f"out-{node}.bin"),
                       str(K), str(S))  # fmt: skip
        outside[node] = int(out.split()[0])
    (shared / "go").touch()
    ends = _finished_traces(cluster, scratch, job)
    tasks = _tasks(shared / "job.out")
    assert sorted(tasks) == cluster.nodes
    for node in cluster.nodes:
        _assert_users_own(scratch, _trace_path(scratch, job, node))
        events = _trace(_trace_path(scratch, job, node))
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
            assert scope == {"scope": "parent_cmdline", "user": USER.pw_name,
                             "parent_cmdline": f"slurmstepd: [{job}."}  # fmt: skip

    # The job's node traces read together by dftracer-analyzer (docs/deploy.md's recipe):
    # the job's totals, per file, as the tasks made them.
    _summary, by_file = analyze(ends, tmp_path)
    for node in cluster.nodes:
        found = by_file[str(shared / f"job-{node}.bin")]
        assert (found["posix_write_count_sum"], found["posix_write_size_sum"]) == (K, K * S)
        assert (found["posix_read_count_sum"], found["posix_read_size_sum"]) == (K, K * S)
    assert not any(name.endswith(("out-node1.bin", "out-node2.bin")) for name in by_file)
    # and datacrumbs_report's, per node and rank
    _assert_report(_report(ends, tmp_path), shared, "job", cluster.nodes, "trace")


def test_a_job_asks_for_profile_mode_with_its_comment(
    traced_cluster: TracedCluster, tmp_path: Path
) -> None:
    """``--comment=datacrumbs:profile=PATH``: the prolog starts each node's daemon in profile
    mode; each node's trace holds aggregates of exactly its own task's calls, no events."""
    cluster, prefix, scratch = traced_cluster
    shared = cluster.shared
    probes = _job_files(cluster, prefix, scratch)
    job = _submit(cluster, "profile-job", _task_line(shared, "prof"),
                  f"datacrumbs:profile={probes}")  # fmt: skip
    ends = _finished_traces(cluster, scratch, job)
    tasks = _tasks(shared / "profile-job.out")
    for node in cluster.nodes:
        _assert_users_own(scratch, _trace_path(scratch, job, node))
        events = _trace(_trace_path(scratch, job, node))
        assert [e["args"]["mode"] for e in events if e["name"] == "datacrumbs_mode"] == ["profile"]
        assert not [e for e in events if e.get("ph") == "X"]
        names = {e["args"]["value"]: e["args"]["name"] for e in events if e["name"] == "FH"}
        totals: dict[tuple[str, str], list[int]] = {}
        for e in events:
            if e.get("ph") == 3 and e["pid"] == tasks[node]:
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
    _assert_report(_report(ends, tmp_path), shared, "prof", cluster.nodes, "profile")
