"""``datacrumbs_sqlite_extract`` prints sections as JSON and refuses bad files in one line."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

from support import command

from datacrumbs.common.system_config import read_table


def _extract(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [command("datacrumbs_sqlite_extract"), *args], capture_output=True, text=True
    )


def test_sections_print_as_json(installed: Path) -> None:
    db = installed / f"share/datacrumbs/data/system-probe-root-{socket.gethostname()}.sqlite"
    for section, table in (
        ("system-configuration", "system_configuration"),
        ("summary", "summary"),
    ):
        result = _extract(str(db), "--section", section)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == read_table(db, table)
    config = json.loads(_extract(str(db), "--section", "system-configuration").stdout)
    assert config["DATACRUMBS_INSTALL_PREFIX"] == str(installed)


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    result = _extract(str(tmp_path / "nope.sqlite"), "--section", "summary")
    assert result.returncode == 2
    expected = f"datacrumbs_sqlite_extract: error: {tmp_path}/nope.sqlite: no such file\n"
    assert result.stderr == expected


def test_file_that_is_not_sqlite_is_one_line(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.sqlite"
    bogus.write_text("not a database, just text\n")
    result = _extract(str(bogus), "--section", "summary")
    assert result.returncode == 2
    assert result.stderr == (
        f"datacrumbs_sqlite_extract: error: {bogus}: cannot read table "
        "summary: file is not a database\n"
    )


def test_unknown_section_is_refused() -> None:
    result = _extract("/dev/null", "--section", "probes")
    assert result.returncode == 2
    assert "invalid choice: 'probes'" in result.stderr
