"""The job's traces as Drishti reads them: ``datacrumbs_report --drishti OUT`` writes the three
tables drishti-io 0.8 loads in place of a Recorder trace (``OUT.intervals.csv``,
``OUT.records.csv``, ``OUT.filemap.csv``, beside an empty directory ``OUT``), and ``drishti
OUT`` then gives its insights on the job.

Why this form: Drishti has no reader of DFTracer or DataCrumbs traces; it reads Darshan logs and
Recorder traces, and a Recorder trace's parsed tables when they are there
(``handlers/handle_recorder.py``). Each file is named once in the file map (its id a hash of its
path, under 2^53: Drishti passes ids through floating point), so every file the traces name is
resolved; a call whose file the traces never named is
left out and counted (:class:`DrishtiExport`).

What is approximate, because the traces do not hold it: the offset of a read or write that does
not give one (read, write, readv, writev, fread, fwrite) is taken as where the process's
previous data call on the file ended (``lseek`` is not followed); an aggregate of N calls
becomes N rows of its mean size at its interval's start. Times are seconds from the job's
first traced call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.report.load import JobTables

__all__ = ["DrishtiExport", "export"]

_API = "CASE layer WHEN 'STDIO' THEN 'STDIO' WHEN 'MPI' THEN 'MPI-IO' ELSE 'POSIX' END"

_PREPARE = f"""
CREATE OR REPLACE TEMP VIEW drishti_calls AS
WITH t0 AS (SELECT min(ts) AS t0 FROM rec),
names AS (SELECT trace, value AS fhash, any_value(key) AS path FROM meta
          WHERE name = 'FH' GROUP BY ALL),
ids AS (SELECT trace, pid, coalesce(rank, 1000000 + dense_rank() OVER (ORDER BY trace, pid))
        AS rank FROM who)
SELECT r.*, n.path, hash(n.path) % 9007199254740991 AS file_id, i.rank,
       (r.ts - t0.t0) / 1e6 AS start, (r.ts - t0.t0 + r.us) / 1e6 AS "end", {_API} AS api
FROM rec r JOIN ids i USING (trace, pid) LEFT JOIN names n USING (trace, fhash), t0
"""
_INTERVALS = """
SELECT file_id, rank, name AS function,
       coalesce("offset", coalesce(sum(bytes) OVER (PARTITION BY trace, pid, fhash ORDER BY ts
                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)) AS "offset",
       bytes AS size, start, "end", api, "end" - start AS duration
FROM drishti_calls WHERE dir <> 'meta' AND NOT aggregated AND path IS NOT NULL
UNION ALL
SELECT file_id, rank, name, NULL, bytes // calls, start, start + us / calls / 1e6, api,
       us / calls / 1e6
FROM drishti_calls, generate_series(1, calls) WHERE dir <> 'meta' AND aggregated
  AND path IS NOT NULL
"""
_RECORDS = """
SELECT path AS fname, rank, name AS function, start, "end", "end" - start AS duration
FROM drishti_calls WHERE dir = 'meta' AND NOT aggregated
"""
_FILEMAP = """
SELECT DISTINCT file_id, path AS file_name FROM drishti_calls
WHERE dir <> 'meta' AND path IS NOT NULL
"""


@dataclass(frozen=True)
class DrishtiExport:
    out: Path
    files: int  # files with reads or writes, each in the file map
    unnamed_calls: int  # reads and writes of files the traces never named: left out


def export(tables: JobTables, out: Path) -> DrishtiExport:
    """Write Drishti's three tables for ``out`` (and the empty directory it checks for)."""
    try:
        out.mkdir(exist_ok=True)
    except OSError as exc:
        raise DatacrumbsError(f"{out}: cannot make the directory: {exc.strerror}") from None
    if any(out.iterdir()):
        raise DatacrumbsError(f"{out}: not empty (Drishti would read it as a Recorder trace)")
    con = tables.con
    con.execute(_PREPARE)
    for suffix, sql in (("intervals", _INTERVALS), ("records", _RECORDS), ("filemap", _FILEMAP)):
        target = str(out) + f".{suffix}.csv"
        con.execute(
            f"COPY ({sql}) TO '{target.replace(chr(39), chr(39) * 2)}' (HEADER, DELIMITER ',')"
        )
    files, unnamed = con.execute(
        "SELECT count(DISTINCT file_id) FILTER (path IS NOT NULL),"
        " coalesce(sum(calls) FILTER (path IS NULL AND fhash IS NOT NULL), 0)"
        " FROM drishti_calls WHERE dir <> 'meta'"
    ).fetchone() or (0, 0)
    return DrishtiExport(out, int(files), int(unnamed))
