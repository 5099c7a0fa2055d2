"""dftracer-analyzer as the project's users run it (the pinned set in ``.venv-dftracer``, made
by scripts/bootstrap), for the tests that check what it reports from datacrumbs' traces."""

from __future__ import annotations

import json
import os
import shutil
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
    result = subprocess.run(
        [str(ANALYZER / "dfanalyzer"), "analyzer=dftracer", "analyzer/preset=posix",
         f"trace_path={together}", "cluster.n_workers=1",
         f"hydra.run.dir={out}", "output=json", "view_types=[file_name,proc_name]"],
        capture_output=True, text=True, timeout=600, cwd=work,
        env={**os.environ, "USER": "root"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
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
