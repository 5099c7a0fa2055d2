"""The per-run environment file: quoted so that systemd reads back exactly what was written."""

from __future__ import annotations

import pytest
from systemd_node import JOB_USER, Node

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.service.instance_files import render_env_file

VALUES = {
    "DATACRUMBS_PROBE_FILE": '/srv/a b/$HOME "q" `x` \\n.json.gz',
    "DATACRUMBS_USER": "alice",
    "DATACRUMBS_SERVICE_RUN_ID": "42",
    "DATACRUMBS_LOG_DIR": "/var/log/datacrumbs",
    "DATACRUMBS_INSTALL_PREFIX": "/opt/datacrumbs",
}


def test_values_are_quoted_and_escaped_for_systemd() -> None:
    assert render_env_file(VALUES).splitlines() == [
        "# datacrumbs@42.service: written by datacrumbs_service start, removed by "
        "datacrumbs_service stop",
        'DATACRUMBS_PROBE_FILE="/srv/a b/\\$HOME \\"q\\" \\`x\\` \\\\n.json.gz"',
        'DATACRUMBS_USER="alice"',
        'DATACRUMBS_SERVICE_RUN_ID="42"',
        'DATACRUMBS_LOG_DIR="/var/log/datacrumbs"',
        'DATACRUMBS_INSTALL_PREFIX="/opt/datacrumbs"',
    ]


def test_a_newline_in_a_value_is_refused() -> None:
    with pytest.raises(DatacrumbsError) as refused:
        render_env_file(VALUES | {"DATACRUMBS_PROBE_FILE": "/srv/p.json.gz\nDATACRUMBS_USER=root"})
    assert str(refused.value) == (
        "DATACRUMBS_PROBE_FILE: '/srv/p.json.gz\\nDATACRUMBS_USER=root' holds a control character"
    )


def test_systemd_hands_the_daemon_an_odd_probe_path_intact(node: Node) -> None:
    directory = node.job_dir('odd $HOME "dir" `x`')
    probe_file = node.make_probe_file(
        directory, [{"type": 0, "name": "posix", "functions": ["openat"]}]
    )
    started = node.service("start", "odd-path", JOB_USER, str(probe_file))
    try:
        assert (started.returncode, started.stderr) == (0, "")
        log = node.read(node.log_file("odd-path"))
        assert f"user {JOB_USER}, probe file {probe_file}\n" in log
    finally:
        assert node.service("stop", "odd-path").returncode == 0


def test_the_job_cgroup_reaches_the_daemon_through_systemd(node: Node) -> None:
    # A directory outside any cgroup v2 hierarchy: the daemon, started by systemd from the
    # environment file, refuses it in one line, which the start reports.
    directory = node.job_dir("scoped")
    probe_file = node.make_probe_file(
        directory, [{"type": 0, "name": "posix", "functions": ["openat"]}]
    )
    where = "/srv/not-a-cgroup/job_1"
    started = node.service("start", "scoped", JOB_USER, str(probe_file), "--job-cgroup", where)
    assert started.returncode == 2, started.stdout
    assert f"DATACRUMBS_JOB_CGROUP {where} is not in a cgroup v2 hierarchy" in started.stderr
    stopped = node.service("stop", "scoped")  # the failed unit: reported, and reset
    assert stopped.returncode == 2 and "its trace may be incomplete" in stopped.stderr
