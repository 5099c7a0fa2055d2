"""The test cluster itself: real Slurm (slurmctld, slurmd, munge) across nspawn machines, as
the multi-node tracing tests use it (issue 14)."""

from __future__ import annotations

import pwd

from slurm_cluster import SlurmCluster

NOBODY = pwd.getpwnam("nobody")


def test_a_two_node_job_runs_on_both_nodes_as_the_user(cluster: SlurmCluster) -> None:
    result = cluster.run_as(
        "login", NOBODY.pw_uid, NOBODY.pw_gid, "srun", "-N2", "--ntasks-per-node=1", "sh", "-c",
        'echo "$(hostname) $(id -u) $SLURM_JOB_ID $SLURM_PROCID $(tail -1 /proc/self/cgroup)"',
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = sorted(line.split() for line in result.stdout.splitlines())
    assert [(host, uid, rank) for host, uid, _job, rank, _cg in lines] == [
        ("node1", str(NOBODY.pw_uid), "0"),
        ("node2", str(NOBODY.pw_uid), "1"),
    ]
    [job] = {job for _h, _u, job, _r, _cg in lines}  # one job across both nodes
    # each node's task in that node's job cgroup (cgroup/v2, proctrack/cgroup)
    for host, _u, _j, _r, cgroup in lines:
        assert cgroup.startswith(f"0::/system.slice/{host}_slurmstepd.scope/job_{job}/step_0/")


def test_a_batch_job_writes_to_the_shared_directory(cluster: SlurmCluster) -> None:
    out = cluster.shared / "batch.out"
    script = cluster.shared / "job.sh"
    script.write_text("#!/bin/sh\nsrun -N2 hostname\n")
    script.chmod(0o755)
    submitted = cluster.run_as(
        "login", NOBODY.pw_uid, NOBODY.pw_gid,
        "sbatch", "--wait", "-N2", f"--output={out}", f"--chdir={cluster.shared}", str(script),
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    assert sorted(out.read_text().split()) == ["node1", "node2"]
