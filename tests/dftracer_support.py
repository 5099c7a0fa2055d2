"""dftracer-analyzer as the project's users run it (the pinned set in ``.venv-dftracer``, made
by scripts/bootstrap), for the tests that check what it reports from datacrumbs' traces."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dftracer  # the test extra; scripts/bootstrap installs it

ROOT = Path(__file__).resolve().parents[1]
ANALYZER = ROOT / ".venv-dftracer" / "bin"
FLAT_VIEW = """
import json, sys
import pandas as pd
df = pd.read_parquet(sys.argv[1])
cols = [c for c in df.columns if c.endswith(("_count_sum", "_size_sum"))]
print(json.dumps({str(k): {c: float(v) for c, v in row.items() if pd.notna(v)}
                  for k, row in df[cols].iterrows()}))
"""


def analyze(traces: Sequence[Path], work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The analyzer's JSON summary and its per-class sums by file (its flat view), over
    ``traces`` together: one Dask job over a directory holding them (``trace_path`` the
    directory: every trace in it, as a job's node traces are read)."""
    together = work / "traces"
    together.mkdir()
    for trace in traces:
        shutil.copyfile(trace, together / trace.name)
    out = work / "out"
    # Its Dask cluster works in a directory of this run's own (the default, /tmp/<job>-<user>/0,
    # is shared by every run on the machine), in a session of its own: on a timeout the
    # workers go with it, not left holding that directory.
    proc = subprocess.Popen(
        [str(ANALYZER / "dfanalyzer"), "analyzer=dftracer", "analyzer/preset=posix",
         f"trace_path={together}", "cluster.n_workers=1",
         f"cluster.local_directory={work / 'dask'}",
         f"hydra.run.dir={out}", "output=json", "view_types=[file_name,proc_name]"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=work,
        env={**os.environ, "USER": "root"}, start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    summary = json.loads((out / "dfanalyzer_output.json").read_text())
    flat = subprocess.run(
        [str(ANALYZER / "python"), "-c", FLAT_VIEW,
         str(out / "checkpoints" / "_flat_view_file_name_1.parquet")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return summary, json.loads(flat.stdout)


def dftracer_tool(tool: str, *args: str) -> str:
    """The output of one of the ``dftracer`` wheel's tools (``dftracer_validate``,
    ``dftracer_event_count``, ...), which must succeed."""
    tools = Path(dftracer.__file__).parent
    env = dict(os.environ, LD_LIBRARY_PATH=f"{tools / 'lib64'}:{tools / 'lib'}")
    run = subprocess.run(
        [str(tools / "bin" / tool), *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert run.returncode == 0, run.stderr
    return run.stdout
