"""A job's traces, loaded once into DuckDB: the table ``lines``, a row per traced call,
aggregate or metadata record, seen through two views, ``rec`` (calls and aggregates, their
stamps on the job's one timeline) and ``meta`` (metadata); every section of the report is a
query over those.

Why DuckDB: a job's traces hold up to hundreds of millions of lines. DuckDB's JSON reader
decompresses and parses them in C++, on all the machine's cores, into a columnar table that
spills to disk past ``memory_limit``: the report's memory is bounded by that setting (the
group-bys that follow spill the same way), not by the traces' size. The same SQL runs on a
laptop and on a fat node; ``docs/report.md`` has the figures and why not Dask.

A trace whose daemon was killed (no gzip trailer) makes DuckDB's gzip reader fail; such a trace
is salvaged first: its complete lines (:func:`~datacrumbs.trace.reading.iter_trace_lines`)
are copied into a temporary trace, which is loaded instead, and the report says it was cut.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
from isal import isal_zlib

from datacrumbs.common.dftracer_names import BYTE_RETURNS
from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.trace.reading import iter_trace_lines

__all__ = ["LOAD_SQL", "READS", "WRITES", "JobTables", "find_traces", "load"]

#: The calls each direction's bytes come from (the rest are metadata): the tools' classes.
READS = ("read", "pread", "readv", "preadv", "fread", "fread_unlocked")
WRITES = tuple(sorted(BYTE_RETURNS - set(READS)))
TRACE_SUFFIXES = (".pfw.gz",)  # what the daemon writes: gzip members

_COLUMNS = (
    "{name: 'VARCHAR', cat: 'VARCHAR', pid: 'BIGINT', tid: 'BIGINT', ts: 'BIGINT', "
    "dur: 'BIGINT', ph: 'VARCHAR', args: 'JSON'}"
)
#: args read once per line (one JSON parse): index 1.. in the list below.
_ARGS = (
    "ret",
    "size",
    "offset",
    "fhash",
    "in_fhash",
    "category",
    "dft_cnt",
    "dur_sum",
    "ret_sum",
    "ret_log2",
    "syscall",
    "name",
    "value",
)
_A = {key: i + 1 for i, key in enumerate(_ARGS)}


def _sql_list(names: Iterable[str]) -> str:
    return ", ".join(f"'{n}'" for n in sorted(names))


#: The columns of table ``rec``, from one line of a trace. ``calls``, ``bytes`` and ``us`` follow
#: datacrumbs_summary's rules (trace/summary.py): an aggregate holds ``dft_cnt`` calls and
#: ``dur_sum`` µs, and its ``ret_sum`` bytes for the data calls; an event moved its positive
#: ``ret`` when it is a data call, or a call that asked for a ``size`` its ``ret`` is within.
_SELECT = f"""
    name, cat AS layer, pid, tid, ts, ph,
    coalesce(a[{_A["category"]}], cat) AS category,
    a[{_A["syscall"]}] = 'io_uring' AS uring,
    a[{_A["fhash"]}] AS fhash, a[{_A["in_fhash"]}] AS in_fhash,
    ph <> 'X' AS aggregated,
    CASE WHEN ph = 'X' THEN 1 ELSE a[{_A["dft_cnt"]}]::BIGINT END AS calls,
    CASE WHEN ph = 'X' THEN dur ELSE a[{_A["dur_sum"]}]::BIGINT END AS us,
    CASE
      WHEN ph <> 'X' THEN CASE WHEN name IN ({_sql_list(BYTE_RETURNS)})
                          THEN greatest(coalesce(a[{_A["ret_sum"]}]::BIGINT, 0), 0) ELSE 0 END
      WHEN a[{_A["ret"]}]::BIGINT > 0 AND (name IN ({_sql_list(BYTE_RETURNS)})
           OR a[{_A["ret"]}]::BIGINT <= a[{_A["size"]}]::BIGINT) THEN a[{_A["ret"]}]::BIGINT
      ELSE 0 END AS bytes,
    CASE WHEN name IN ({_sql_list(READS)}) THEN 'read'
         WHEN name IN ({_sql_list(WRITES)}) THEN 'write' ELSE 'meta' END AS dir,
    CASE WHEN ph = 'X' THEN a[{_A["ret"]}]::BIGINT END AS ret,
    CASE WHEN ph = 'X' THEN a[{_A["offset"]}]::BIGINT END AS "offset",
    CASE WHEN ph <> 'X' THEN a[{_A["ret_log2"]}]::BIGINT[] END AS ret_log2
"""
_META = f"""
    cat, a[{_A["name"]}] AS key, a[{_A["value"]}] AS value,
    CASE WHEN ph = 'M' THEN args END AS args
"""


#: the lines kept: events, aggregates (ph "C" or 3 with dft_cnt) and metadata
_KEEP = f"ph IN ('X', 'M') OR (ph IN ('C', '3') AND a[{_A['dft_cnt']}] IS NOT NULL)"
#: Each node's clock, from its trace's clock records: a call's stamp is its CLOCK_MONOTONIC
#: time plus the wall-clock offset read when the trace started; the offset read at the end says
#: how far the node's wall clock moved against CLOCK_MONOTONIC meanwhile (NTP's slewing, a
#: step), and each stamp gets its share of that, linearly in time: the nodes' calls then lie on
#: the wall clocks' one timeline as well as those agree (their error: ``clocks``).
_CLOCKS = """
CREATE TABLE clock_fix AS
SELECT trace, min(ts) FILTER (point = 'start') AS ts0, max(ts) FILTER (point = 'end') AS ts1,
       (max(off) FILTER (point = 'end') - min(off) FILTER (point = 'start')) / 1000 AS drift_us
FROM (SELECT trace, ts, json_extract_string(args, '$.at') AS point,
             TRY_CAST(json_extract(args, '$.realtime_minus_monotonic_ns') AS BIGINT) AS off
      FROM lines WHERE ph = 'M' AND name = 'datacrumbs_clock')
GROUP BY trace;
"""
_VIEWS = (
    _CLOCKS + "CREATE VIEW rec AS SELECT l.* EXCLUDE (cat, key, value, args, ts),"
    " l.ts + coalesce(CASE WHEN f.ts1 > f.ts0 THEN round(f.drift_us * (l.ts - f.ts0)"
    " / (f.ts1 - f.ts0))::BIGINT END, 0) AS ts"
    " FROM lines l LEFT JOIN clock_fix f USING (trace) WHERE l.ph <> 'M';\n"
    "CREATE VIEW meta AS SELECT trace, name, cat, pid, tid, ts, key, value, args FROM lines"
    " WHERE ph = 'M';"
)


def _q(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _reader(paths: Sequence[str]) -> str:
    files = ", ".join(map(_q, paths))
    return (
        f"(SELECT *, json_extract_string(args, [{', '.join(repr('$.' + k) for k in _ARGS)}]) AS a"
        f" FROM read_json([{files}], format = 'newline_delimited', compression = 'gzip',"
        f" ignore_errors = true, filename = true, columns = {_COLUMNS}))"
    )


def _lines(paths: Sequence[str], trace: str = "filename") -> str:
    """One pass over the traces: the table ``lines``, a row per kept line."""
    return (
        f"CREATE OR REPLACE TABLE lines AS SELECT {trace} AS trace, {_SELECT}, {_META}"
        f" FROM {_reader(paths)} WHERE {_KEEP}"
    )


#: The load, as SQL a reader can run again (the traces' names in place of ``TRACES``).
LOAD_SQL = f"{_lines(['TRACES'])};\n{_VIEWS}"


@dataclass
class JobTables:
    """The loaded traces: ``rec`` (calls and aggregates), ``meta`` (metadata records), in
    ``con``; ``cut``: the traces salvaged from a killed daemon."""

    con: duckdb.DuckDBPyConnection
    traces: list[Path]
    cut: list[Path]
    scratch: tempfile.TemporaryDirectory[str]

    def close(self) -> None:
        self.con.close()
        self.scratch.cleanup()


def find_traces(args: Sequence[str]) -> list[Path]:
    """The traces named, a directory standing for the traces in it (not below)."""
    found: list[Path] = []
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.name.endswith(TRACE_SUFFIXES))
            if not inside:
                raise DatacrumbsError(f"{path}: no traces (*.pfw.gz) in this directory")
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            raise DatacrumbsError(f"{path}: no such trace or directory")
    if not found:
        raise DatacrumbsError("no traces given")
    return sorted(set(found), key=found.index)


def _salvage(trace: Path, into: Path) -> Path:
    """The complete lines of a cut trace, as a trace of their own in ``into``."""
    out = into / f"{len(list(into.iterdir()))}-{trace.name}"
    z = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31)
    with open(out, "wb") as fh:
        for line in iter_trace_lines(trace):
            fh.write(z.compress(line + b"\n"))
        fh.write(z.flush())
    return out


def load(traces: Sequence[Path], *, memory_mb: int = 1024, threads: int | None = None) -> JobTables:
    """Load ``traces`` (whole or cut) into a DuckDB database in a temporary directory (spilling
    there past ``memory_mb``), raising :class:`DatacrumbsError` for a file that is no trace."""
    scratch = tempfile.TemporaryDirectory(prefix="datacrumbs-report-")
    con = duckdb.connect(os.path.join(scratch.name, "job.duckdb"))
    con.execute(f"SET memory_limit = '{int(memory_mb)}MB'")
    con.execute(f"SET temp_directory = '{scratch.name}/spill'")
    con.execute("SET preserve_insertion_order = false")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    salvage = Path(scratch.name) / "salvaged"
    salvage.mkdir()
    tables = JobTables(con, list(traces), [], scratch)
    real = {str(t): t for t in traces}
    for t in traces:
        with open(t, "rb") as fh:
            if fh.read(2) != b"\x1f\x8b":
                tables.close()
                raise DatacrumbsError(f"{t}: not a datacrumbs trace (not gzip data)")
    todo = {str(t): str(t) for t in traces}  # as loaded -> as named
    while True:
        # the salvaged copies' rows carry the name of the trace they came from
        renames = " ".join(f"WHEN {_q(k)} THEN {_q(v)}" for k, v in todo.items() if k != v)
        trace_of = f"CASE filename {renames} ELSE filename END" if renames else "filename"
        try:
            con.execute(_lines(list(todo), trace_of))
            break
        except duckdb.IOException as exc:
            bad = next((p for p in todo if p in str(exc)), None)
            if bad is None or real.get(todo[bad]) in tables.cut:
                tables.close()
                raise DatacrumbsError(f"cannot read the traces: {exc}") from None
            named = real[todo.pop(bad)]
            tables.cut.append(named)
            try:
                todo[str(_salvage(named, salvage))] = str(named)
            except DatacrumbsError:
                tables.close()
                raise
    con.execute(_VIEWS)
    return tables
