"""The installation stands on its own: with the checkout it was made from hidden (as if
deleted), an unprivileged user makes a signed probe file, root runs the signer and the daemon
from ``P/sbin``, the user's job is traced and ``datacrumbs_summary`` from ``P/bin`` reads the
trace. Every command runs from the prefix; the environment is only ``datacrumbs_setup``'s.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
CHAIN = Path(__file__).with_name("standalone_chain.sh")
WORKLOAD = CHECKOUT / "tests/engine/c/file_io.c"
BLOCKS, SIZE = 25, 4096
CONFIG = """\
capture_probes:
  - name: posix_data
    probe: syscalls
    functions: [openat, write, pread64, fsync, close]
"""


def test_user_job_is_traced_with_the_checkout_hidden(product: Path, reachable_dir: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    home = reachable_dir / "home"
    home.mkdir(mode=0o755)
    (home / "probes.yaml").write_text(CONFIG)
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    (reachable_dir / "run").mkdir(mode=0o755)
    workload = reachable_dir / "file_io"
    subprocess.run(["gcc", "-O1", "-o", str(workload), str(WORKLOAD)], check=True)

    result = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "bash",
            str(CHAIN),
            str(product),
            str(CHECKOUT),
            str(reachable_dir),
            str(workload),
            str(BLOCKS),
            str(SIZE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (result.stderr, _logs(reachable_dir))

    configured = (reachable_dir / "configurator.out").read_text()
    assert f"{home}/probes.json.gz: 5 functions in 1 categories, signed for nobody" in configured
    pid = int((reachable_dir / "workload.out").read_text().split()[0])
    summary = json.loads((reachable_dir / "summary.json").read_text())
    calls = {f["name"]: (f["count"], f["bytes"]) for f in summary["functions"]}
    assert summary["complete"] and summary["pids"] == [pid]
    assert calls["write"] == (BLOCKS + 1, BLOCKS * SIZE + len(f"{pid} 3\n"))
    assert calls["fsync"] == (1, 0)
    files = {f["path"]: (f["count"], f["bytes"]) for f in summary["files"]}
    # openat, the writes, the preads (the loader's own preads are of libc), fsync, close
    assert files[f"{home}/data"] == (2 * BLOCKS + 3, 2 * BLOCKS * SIZE)
    assert summary["lost_events"] == 0
    # Nothing of it is left: the namespace (and its tmpfs over the checkout) died with it.
    assert any(CHECKOUT.iterdir())


def _logs(work: Path) -> str:
    return " | ".join(
        f"{p.name}: {p.read_text(errors='replace')[-800:]}" for p in sorted(work.glob("*.log"))
    )
