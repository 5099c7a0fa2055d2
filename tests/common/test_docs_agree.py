"""The documentation says what the code does, where it states a fact the code holds: the
settings table of docs/settings.md and the modes of the files the daemon and its helpers make.

Why a test: issue 26 found the trace's mode written as 0640 in two documents while the code
(and docs/security.md) made it 0600, and settings documented after they changed. A reader acts
on these facts (who may read a trace, which variable to set), and a review does not catch a
number that drifted in a fourth document.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic_core import PydanticUndefined

from datacrumbs.common.settings import Settings
from datacrumbs.ebpf import arch
from datacrumbs.service.exec_step import LOG_FILE_MODE
from datacrumbs.service.job_hooks import ENV_FILE_MODE
from datacrumbs.trace.writer import TRACE_MODE

ROOT = Path(__file__).resolve().parents[2]
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]

# -- the settings table ----------------------------------------------------------------------

#: Settings whose default depends on the machine or is too long for a cell: described in
#: words (the test checks that each has its row, and that no other default is).
DESCRIBED = {"install_prefix", "hostname", "host", "libc_so", "hot_functions"}
#: What a derived default is written with in the table, for the setting it is built from.
DERIVED_FROM = {
    "install_prefix": Path("<prefix>"),
    "data_dir": Path("<data-dir>"),
    "server_run_dir": Path("<run-dir>"),
}


def _settings_rows() -> dict[str, str]:
    """docs/settings.md's table of settings: variable → its default cell."""
    text = (ROOT / "docs" / "settings.md").read_text()
    table = text.split("## The settings", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in table.splitlines():
        if not line.startswith("| `"):
            continue
        m = re.match(r"\| `(DATACRUMBS_\w+)` \| (.*?) \| ", line)
        assert m is not None, f"a row of no setting: {line[:80]}"
        assert m[1] not in rows, f"{m[1]} has two rows"
        rows[m[1]] = m[2]
    return rows


def _takes_data(factory: Any) -> bool:
    try:
        return len(inspect.signature(factory).parameters) == 1
    except ValueError:  # a builtin (socket.gethostname)
        return False


def _documented_default(name: str) -> str:
    """How the table must write the code's default of field ``name``."""
    field = Settings.model_fields[name]
    if field.default_factory is not None:
        assert _takes_data(field.default_factory), f"{name}: say its default in DESCRIBED"
        return f"derived: `{field.default_factory(DERIVED_FROM)}`"  # type: ignore[call-arg]
    assert field.default is not PydanticUndefined, name
    return "—" if field.default is None else f"`{field.default}`"


def test_every_setting_has_its_row_and_no_row_names_another() -> None:
    rows = _settings_rows()
    assert set(rows) == {Settings.env_name(name) for name in Settings.model_fields}


@pytest.mark.parametrize("name", sorted(set(Settings.model_fields) - DESCRIBED))
def test_each_documented_default_is_the_code_s(name: str) -> None:
    assert _settings_rows()[Settings.env_name(name)] == _documented_default(name)


def test_the_defaults_written_in_words_are_the_machine_dependent_ones() -> None:
    rows = _settings_rows()
    for name in DESCRIBED:
        cell = rows[Settings.env_name(name)]
        assert not cell.startswith(("`", "derived:", "—")), (name, cell)
    assert "hot_functions.py" in rows["DATACRUMBS_HOT_FUNCTIONS"]


def test_derived_defaults_follow_their_base() -> None:
    """The placeholders the table writes derived defaults with are what the code derives."""
    base = Settings(install_prefix=Path("/p"), server_run_dir=Path("/r"))
    assert base.data_dir == Path("/p/share/datacrumbs/data")
    assert base.server_run_id_file == Path("/r/datacrumbs.runid")
    assert base.verify_keys_file == Path("/p/share/datacrumbs/data/probe-verify-keys.json")


# -- the files' modes ------------------------------------------------------------------------

#: Each kind of file: the mode the code gives it, and what names it in a sentence or a table
#: cell (after paths are replaced by TRACEFILE, LOGFILE and ENVFILE, other code by CODE).
SUBJECTS = {
    "trace": (TRACE_MODE, r"TRACEFILE|\bthe trace\b(?! dir)|\btraces are\b|writer creates the"),
    "log": (LOG_FILE_MODE, r"LOGFILE|\blog\b(?![-_ ]?dir)"),
    "env": (ENV_FILE_MODE, r"ENVFILE|\benv(ironment)? file\b"),
}
_PATHS = (
    (re.compile(r"`?[^\s`|()]+\.pfw\.gz`?"), "TRACEFILE"),
    (re.compile(r"`?[^\s`|()]+_<host>\.log`?"), "LOGFILE"),
    (re.compile(r"`?[^\s`|()]+\.env`?"), "ENVFILE"),
    (re.compile(r"`[^`]*`"), "CODE"),
)
_MODE = re.compile(r"\b0[0-7]{3}\b")
#: A clause: a table cell, or a sentence or part of one.
_CLAUSE = re.compile(r"\||;|\.\s")


def _statements(text: str) -> list[tuple[str, int, str]]:
    """(kind, mode, clause) for each mode a clause gives a subject: the first mode after it,
    or the mode just before it ("the user-owned 0600 log"), unless a directory is what the
    mode is said of."""
    found = []
    for line in text.splitlines():
        for pattern, marker in _PATHS:
            line = pattern.sub(marker, line)
        for clause in _CLAUSE.split(line):
            for kind, (_mode, subject) in SUBJECTS.items():
                for m in re.finditer(subject, clause):
                    after = _MODE.search(clause, m.end())
                    before = re.search(r"\b(0[0-7]{3})[\w -]{0,12}$", clause[: m.start()])
                    if after and "director" not in clause[m.end() : after.start()]:
                        found.append((kind, int(after[0], 8), clause.strip()))
                    elif before:
                        found.append((kind, int(before[1], 8), clause.strip()))
    return found


def test_every_mode_the_documents_give_a_trace_log_or_env_file_is_the_code_s() -> None:
    seen: dict[str, int] = dict.fromkeys(SUBJECTS, 0)
    wrong = []
    for doc in DOCS:
        for kind, mode, clause in _statements(doc.read_text()):
            seen[kind] += 1
            if mode != SUBJECTS[kind][0]:
                wrong.append(f"{doc.name}: {kind} {mode:04o} in {clause!r}")
    assert wrong == []
    # what is written today: a rewording that hides a statement from the sweep fails here
    assert seen == {"trace": 6, "log": 5, "env": 3}


def test_the_sweep_catches_a_wrong_mode_in_each_way_it_is_written() -> None:
    text = "\n".join(
        [
            "The writer creates the file itself (`O_CREAT | O_EXCL`, mode 0640): it never",
            "| trace | `<trace-dir>/trace-<user>.pfw.gz` (job user, 0644) |",
            "the trace directory (walked and created, 0700), the trace (0604)",
            "appending to the user-owned 0644 log needs it",
            "writes `<run-dir>/datacrumbs-RUN_ID.env` (root, 0600, atomically)",
        ]
    )
    assert [(kind, f"{mode:04o}") for kind, mode, _ in _statements(text)] == [
        ("trace", "0640"),
        ("trace", "0644"),
        ("trace", "0604"),
        ("log", "0644"),
        ("env", "0600"),
    ]


# -- the ia32 table --------------------------------------------------------------------------


def test_the_ia32_table_of_the_trace_format_is_the_engine_s() -> None:
    """Issue 26, item 3: each ia32 syscall glibc uses is traced with its layout or counted
    lost, and docs/trace-format.md lists each as ``ebpf/arch.py`` reads it."""
    text = (ROOT / "docs" / "trace-format.md").read_text()
    documented = {
        m.group(1): re.findall(r"`([\w]+)`: ([^;|]+?)\s*(?=;|$)", m.group(2))
        for m in re.finditer(r"^\| `(\w+)` \| (`.+?) \|$", text, re.MULTILINE)
    }
    lost = {c.name for calls in arch._I386_LAYOUTS.values() for c in calls if c.layout is None}
    assert set(documented) == set(arch._I386_LAYOUTS)
    for tracepoint, calls in arch._I386_LAYOUTS.items():
        rows = documented[tracepoint]
        assert [name for name, _ in rows] == [c.name for c in calls], tracepoint
        for name, how in rows:
            assert how.startswith("counted lost") == (name in lost), (tracepoint, name)
