"""The report's numbers: each section one SQL query over the loaded traces (:mod:`.load`'s
tables ``rec`` and ``meta``), kept here as text so that the report can show it beside its
answer — every number in it is reproducible from the traces with DuckDB and these queries.

Who did a call: a process is known by its trace (its node) and pid; its MPI or Slurm rank, when
it had one, comes from its ``PR`` record ``rank`` (trace/process_info.py), and the report's
per-rank views group the processes of a rank (a task's shell and the program it runs) together.
Processes without a rank are shown by node and pid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datacrumbs.report.load import JobTables

__all__ = ["HEAT_BINS", "QUERIES", "JobNumbers", "compute"]

#: Columns of the time x rank heat map.
HEAT_BINS = 60

#: Who each process is: its node, rank (or none) and command name; the label the views use.
WHO = """
CREATE OR REPLACE TEMP VIEW who AS
WITH host AS (SELECT trace, any_value(key) AS host FROM meta WHERE name = 'HH' GROUP BY trace),
rank AS (SELECT trace, pid, max(TRY_CAST(value AS BIGINT)) AS rank FROM meta
         WHERE name = 'PR' AND key = 'rank' GROUP BY ALL),
comm AS (SELECT trace, pid, any_value(json_extract_string(args, '$.name')) AS comm FROM meta
         WHERE name = 'process_name' GROUP BY ALL),
procs AS (SELECT DISTINCT trace, pid FROM rec)
SELECT p.trace, p.pid, coalesce(h.host, p.trace) AS host, r.rank, c.comm,
       CASE WHEN r.rank IS NOT NULL THEN 'rank ' || r.rank
            ELSE coalesce(h.host, '?') || ' pid ' || p.pid END AS label
FROM procs p LEFT JOIN host h USING (trace) LEFT JOIN rank r USING (trace, pid)
LEFT JOIN comm c USING (trace, pid)
"""

QUERIES: dict[str, str] = {
    "traces": """
WITH r AS (SELECT trace, sum(calls) AS calls, sum(calls) FILTER (aggregated) AS aggregated,
                  min(ts) AS first_us, max(ts + us) AS last_us FROM rec GROUP BY trace),
h AS (SELECT trace, any_value(key) AS host FROM meta WHERE name = 'HH' GROUP BY trace),
m AS (SELECT trace, any_value(json_extract_string(args, '$.mode')) AS mode FROM meta
      WHERE name = 'datacrumbs_mode' GROUP BY trace)
SELECT t.trace, h.host, m.mode, coalesce(r.calls, 0) AS calls,
       coalesce(r.aggregated, 0) AS aggregated, r.first_us, r.last_us
FROM (SELECT DISTINCT trace FROM meta) t LEFT JOIN h USING (trace) LEFT JOIN m USING (trace)
LEFT JOIN r USING (trace) ORDER BY h.host, t.trace""",
    "loss": """
SELECT trace,
  greatest(max(TRY_CAST(json_extract(args, '$.lost_events') AS BIGINT)),
           max(TRY_CAST(json_extract(value, '$.lost_events') AS BIGINT))) AS lost_events,
  greatest(max(TRY_CAST(json_extract(args, '$.lost_names') AS BIGINT)),
           max(TRY_CAST(json_extract(value, '$.lost_names') AS BIGINT))) AS lost_names,
  greatest(max(TRY_CAST(json_extract(args, '$.lost_tasks') AS BIGINT)),
           max(TRY_CAST(json_extract(value, '$.lost_tasks') AS BIGINT))) AS lost_tasks,
  bool_or(key = 'datacrumbs_summary') AS finished
FROM meta WHERE name IN ('datacrumbs_loss', 'datacrumbs_summary') GROUP BY trace""",
    "clocks": """
SELECT trace, json_extract_string(args, '$.at') AS at, ts,
       TRY_CAST(json_extract(args, '$.synced') AS BOOLEAN) AS synced,
       TRY_CAST(json_extract(args, '$.maxerror_us') AS BIGINT) AS maxerror_us
FROM meta WHERE name = 'datacrumbs_clock' ORDER BY trace, ts""",
    "marks": """
SELECT trace, name, ts, json_extract_string(args, '$.function') AS function,
       json_extract_string(args, '$.state') AS state,
       json_extract_string(args, '$.reasons') AS reasons,
       TRY_CAST(json_extract(args, '$.folded') AS BIGINT) AS folded
FROM meta WHERE name IN ('datacrumbs_valve', 'datacrumbs_budget') ORDER BY ts""",
    "ranks": """
WITH p AS (SELECT trace, pid, sum(calls) AS calls,
                  sum(bytes) FILTER (dir = 'read') AS read_bytes,
                  sum(bytes) FILTER (dir = 'write') AS write_bytes,
                  sum(us) FILTER (dir = 'read') AS read_us,
                  sum(us) FILTER (dir = 'write') AS write_us,
                  sum(us) FILTER (dir = 'meta') AS meta_us
           FROM rec GROUP BY trace, pid)
SELECT w.label, any_value(w.host) AS host, min(w.rank) AS rank, count(*) AS processes,
       sum(p.calls) AS calls, sum(p.read_bytes) AS read_bytes, sum(p.write_bytes) AS write_bytes,
       sum(p.read_us) AS read_us, sum(p.write_us) AS write_us, sum(p.meta_us) AS meta_us
FROM p JOIN who w USING (trace, pid)
GROUP BY w.label ORDER BY min(w.rank) NULLS LAST, w.label""",
    "heat": f"""
WITH span AS (SELECT min(ts) AS t0, greatest(max(ts) - min(ts), 1) AS width FROM rec),
p AS (SELECT trace, pid, least({HEAT_BINS} - 1, (ts - span.t0) * {HEAT_BINS} // span.width) AS bin,
             sum(bytes) AS bytes
      FROM rec, span WHERE bytes > 0 AND dir <> 'meta' GROUP BY ALL)
SELECT w.label, p.bin, sum(p.bytes) AS bytes FROM p JOIN who w USING (trace, pid) GROUP BY ALL""",
    "sizes": """
SELECT dir, bucket, sum(n) AS calls FROM (
  SELECT dir, CASE WHEN ret <= 0 THEN 0 ELSE least(31, 1 + floor(log2(ret))::BIGINT) END AS bucket,
         1 AS n FROM rec WHERE NOT aggregated AND dir <> 'meta' AND name <> 'sendfile'
  UNION ALL
  SELECT dir, g.i - 1 AS bucket, ret_log2[g.i] AS n
  FROM rec, generate_series(1, 32) AS g(i) WHERE aggregated AND ret_log2 IS NOT NULL
) GROUP BY ALL HAVING sum(n) > 0 ORDER BY dir, bucket""",
    "common_sizes": """
SELECT dir, ret AS size, count(*) AS calls FROM rec
WHERE NOT aggregated AND dir <> 'meta' AND ret > 0
GROUP BY dir, ret QUALIFY row_number() OVER (PARTITION BY dir ORDER BY count(*) DESC, ret) <= 4
ORDER BY dir, calls DESC""",
    "operations": """
SELECT layer, name, sum(calls) AS calls, sum(bytes) AS bytes, sum(us) AS us,
       sum(calls) FILTER (aggregated) AS aggregated, sum(calls) FILTER (uring) AS uring
FROM rec GROUP BY ALL ORDER BY calls DESC, layer, name""",
    "files": """
WITH names AS (SELECT trace, value AS fhash, any_value(key) AS path FROM meta
               WHERE name = 'FH' GROUP BY ALL),
touch AS (SELECT trace, pid, fhash, dir, layer, sum(calls) AS calls, sum(bytes) AS bytes
          FROM rec WHERE fhash IS NOT NULL GROUP BY ALL
          UNION ALL
          SELECT trace, pid, in_fhash, 'read', layer, sum(calls), sum(bytes) FROM rec
          WHERE in_fhash IS NOT NULL GROUP BY ALL)
SELECT coalesce(n.path, '<unnamed ' || t.fhash || '>') AS path, sum(t.calls) AS calls,
       sum(t.calls) FILTER (t.dir = 'read') AS reads,
       sum(t.calls) FILTER (t.dir = 'write') AS writes,
       sum(t.bytes) FILTER (t.dir = 'read') AS read_bytes,
       sum(t.bytes) FILTER (t.dir = 'write') AS write_bytes,
       count(DISTINCT w.label) AS ranks,
       string_agg(DISTINCT t.layer, ',' ORDER BY t.layer) AS layers
FROM touch t LEFT JOIN names n USING (trace, fhash) JOIN who w USING (trace, pid)
GROUP BY 1 ORDER BY coalesce(read_bytes, 0) + coalesce(write_bytes, 0) DESC, calls DESC, path""",
    "layers": """
SELECT layer, dir, sum(calls) AS calls, sum(bytes) AS bytes, sum(us) AS us
FROM rec GROUP BY ALL ORDER BY layer, dir""",
    "access": """
WITH seq AS (
  SELECT dir, "offset", ret,
         lag("offset" + ret) OVER (PARTITION BY trace, pid, fhash ORDER BY ts) AS expected
  FROM rec WHERE NOT aggregated AND dir <> 'meta' AND "offset" IS NOT NULL AND ret > 0)
SELECT dir, count(*) AS calls, count(*) FILTER ("offset" % 4096 <> 0) AS misaligned,
       count(*) FILTER (expected IS NOT NULL AND "offset" <> expected) AS random
FROM seq GROUP BY dir ORDER BY dir""",
}


@dataclass
class JobNumbers:
    """Each query's rows, as dicts (column -> value), by section name."""

    sections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    cut: list[str] = field(default_factory=list)

    def __getitem__(self, section: str) -> list[dict[str, Any]]:
        return self.sections[section]


def compute(tables: JobTables) -> JobNumbers:
    """Run every query of :data:`QUERIES` over ``tables``."""
    tables.con.execute(WHO)
    numbers = JobNumbers(cut=[str(p) for p in tables.cut])
    for section, sql in QUERIES.items():
        cursor = tables.con.execute(sql)
        columns = [d[0] for d in cursor.description or ()]
        numbers.sections[section] = [
            dict(zip(columns, row, strict=True)) for row in cursor.fetchall()
        ]
    return numbers
