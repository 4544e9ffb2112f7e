#!/usr/bin/env python3
"""Benchmarks for KQL through duckdb-kql (``defensemap.engine.kql``).

Two independent parts:

``corpus DIR``
    Runs ``check_kql`` over every query found under DIR (a local checkout of public
    Defender/Sentinel hunting queries, see bench/kql_corpus.md): each ``.kql`` / ``.csl`` /
    ``.txt`` file split at blank lines into the queries Kusto Explorer would run (see
    ``split_queries``), each YAML file's ``query:`` field is one (every document of
    a multi-document file), and with ``--markdown`` each fenced ```kql / ```kusto block of a
    ``.md`` file is one. Reports the share that would run offline, the problems by kind, and
    the most frequent missing constructs (a Counter of ``unsupported_feature`` constructs),
    unknown tables and parse errors: the list of what to ask duckdb-kql for next.

``speed``
    Generates N rows of DeviceProcessEvents-like data in DuckDB (synthetic, generated here;
    nothing is read from disk), then runs two detections written in KQL (through
    ``run_kql`` on the locked-down connection, translation included) and the same
    detections written by hand in DuckDB SQL, checks that both return the same rows, and
    reports the median times and the KQL/SQL ratio (target ≤ 1.5× over 10 M rows).

Run with the project interpreter::

    .venv/bin/python bench/bench_kql.py corpus ~/src/Azure-Sentinel/Hunting\\ Queries
    .venv/bin/python bench/bench_kql.py speed --rows 10000000 --repeat 3
    .venv/bin/python bench/bench_kql.py speed --rows 200000          # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUERY_SUFFIXES = {".kql", ".csl", ".txt"}
YAML_SUFFIXES = {".yaml", ".yml"}
FENCE = re.compile(r"^```[ \t]*(?:kql|kusto)[ \t]*\n(?P<body>.*?)^```", re.M | re.S | re.I)
SPEED_TARGET = 1.5


# --- corpus -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    path: Path
    index: int  # position within the file (YAML documents, Markdown blocks)
    text: str

    @property
    def name(self) -> str:
        return f"{self.path}" + (f"#{self.index}" if self.index else "")


#: A paragraph whose last code line ends like this continues into the next paragraph.
_OPEN_END = re.compile(r"(?:[;,(\[{|=+\-*/<>!~]|\b(?:and|or|not|by|on|with|let))\s*\Z")
#: A paragraph whose first code line starts like this begins a new query.
_NEW_START = re.compile(r"[A-Za-z_]")
_CONTINUES = re.compile(r"(?:and|or|by|on|with|asc|desc|kind)\b")


def _code_lines(paragraph: str) -> list[str]:
    """The lines that hold code, without ``//`` comments (left alone on a line with a
    quote, where ``//`` may be inside a string)."""
    lines = (
        line.split("//", 1)[0].rstrip()
        if "//" in line and '"' not in line and "'" not in line
        else line.rstrip()
        for line in paragraph.splitlines()
    )
    return [line for line in lines if line.strip() and not line.lstrip().startswith("//")]


def split_queries(text: str) -> list[str]:
    """The queries of a whole-file query: Kusto Explorer, Log Analytics and Advanced
    hunting treat a blank line as the end of a query, so files holding a Sentinel and an
    Advanced-hunting variant (or several examples) are several queries. A paragraph only
    starts a new query when the text before it is complete (does not end in ``;``, ``|``,
    ``,``, an open bracket or an operator) and it starts with a name (not ``|``, ``)``,
    ``and``…); otherwise blank lines inside one query are kept."""
    queries: list[list[str]] = []
    pending: list[str] = []  # comment-only paragraphs waiting for the next code
    for paragraph in re.split(r"\n[ \t]*\n(?:[ \t]*\n)*", text):
        code = _code_lines(paragraph)
        if not code:
            pending.append(paragraph)
            continue
        first = code[0].lstrip()
        current = queries[-1] if queries else None
        previous = _code_lines("\n\n".join(current)) if current else []
        starts_new = not previous or (
            not _OPEN_END.search(previous[-1])
            and _NEW_START.match(first) is not None
            and _CONTINUES.match(first) is None
        )
        if starts_new:
            queries.append([*pending, paragraph])
        else:
            assert current is not None
            current.extend([*pending, paragraph])
        pending = []
    return ["\n\n".join(q) for q in queries if q]


def find_queries(root: Path, *, markdown: bool) -> Iterator[Query]:
    """Every query under ``root``, in path order."""
    import yaml

    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        suffix = path.suffix.lower()
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError):
            continue
        if suffix in QUERY_SUFFIXES:
            parts = split_queries(text)
            for index, part in enumerate(parts, start=1 if len(parts) > 1 else 0):
                yield Query(path, index, part)
        elif suffix in YAML_SUFFIXES:
            try:
                documents = list(yaml.safe_load_all(text))
            except yaml.YAMLError:
                continue
            for index, document in enumerate(documents):
                query = document.get("query") if isinstance(document, dict) else None
                if isinstance(query, str) and query.strip():
                    yield Query(path, index, query)
        elif markdown and suffix == ".md":
            for index, match in enumerate(FENCE.finditer(text), start=1):
                if match["body"].strip():
                    yield Query(path, index, match["body"])


def run_corpus(args: argparse.Namespace) -> int:
    from defensemap.engine.kql import check_kql

    root = Path(args.dir).expanduser()
    if not root.is_dir():
        print(f"no such directory: {root}", file=sys.stderr)
        return 2
    queries = list(find_queries(root, markdown=args.markdown))
    if args.limit:
        queries = queries[: args.limit]
    if not queries:
        print(f"no queries found under {root}", file=sys.stderr)
        return 2

    kinds: Counter[str] = Counter()
    unsupported: Counter[str] = Counter()
    unknown_tables: Counter[str] = Counter()
    unknown_columns: Counter[str] = Counter()
    parse_errors: Counter[str] = Counter()
    examples: dict[str, str] = {}
    failures: list[dict[str, Any]] = []
    timings: list[float] = []
    passed = 0
    check_kql("print x = 1")  # warm-up: imports, catalog
    for query in queries:
        start = time.perf_counter()
        check = check_kql(query.text)
        timings.append(time.perf_counter() - start)
        if check.ok:
            passed += 1
            continue
        problem = check.problems[0]
        kinds[problem.kind] += 1
        bucket = {
            "unsupported_feature": unsupported,
            "unknown_table": unknown_tables,
            "unknown_column": unknown_columns,
            "parse_error": parse_errors,
        }.get(problem.kind)
        if bucket is not None:
            bucket[problem.construct] += 1
        key = f"{problem.kind}:{problem.construct}"
        examples.setdefault(key, query.name)
        failures.append({"query": query.name, **problem.to_dict()})

    total = len(queries)
    print(f"corpus: {root}")
    print(f"queries: {total}   pass: {passed} ({passed / total:.1%})   fail: {total - passed}")
    print(
        f"check time per query: median {statistics.median(timings) * 1000:.0f} ms, "
        f"p95 {_percentile(timings, 0.95) * 1000:.0f} ms, total {sum(timings):.1f} s"
    )
    print("\nfirst problem, by kind:")
    for kind, count in kinds.most_common():
        print(f"  {kind:<20} {count:>5}  {count / total:.1%}")
    for kind, title, counter in (
        ("unsupported_feature", "missing constructs (unsupported_feature)", unsupported),
        ("unknown_table", "unknown tables", unknown_tables),
        ("unknown_column", "unknown columns", unknown_columns),
        ("parse_error", "parse errors (offending text)", parse_errors),
    ):
        if not counter:
            continue
        print(f"\ntop {title}:")
        for construct, count in counter.most_common(args.top):
            example = examples.get(f"{kind}:{construct}", "")
            print(f"  {count:>5}  {construct:<32} e.g. {example}")
    if args.json:
        document = {
            "root": str(root),
            "queries": total,
            "passed": passed,
            "share": passed / total,
            "kinds": dict(kinds),
            "unsupported": dict(unsupported.most_common()),
            "unknown_tables": dict(unknown_tables.most_common()),
            "unknown_columns": dict(unknown_columns.most_common()),
            "parse_errors": dict(parse_errors.most_common()),
            "median_check_ms": statistics.median(timings) * 1000,
            "failures": failures,
        }
        Path(args.json).write_text(json.dumps(document, indent=2), encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# --- speed ------------------------------------------------------------------------------

GENERATE = r"""
CREATE TABLE DeviceProcessEvents AS
WITH base AS (
    SELECT i,
           hash(i, 11) AS h1, hash(i, 13) AS h2, hash(i, 17) AS h3, hash(i, 19) AS h4
    FROM range({rows}) t(i)
)
SELECT
    TIMESTAMP '2024-01-01' + to_seconds(CAST(h1 % (30 * 86400) AS BIGINT)) AS Timestamp,
    'dev-' || CAST(h2 % 5000 AS VARCHAR) AS DeviceId,
    'host-' || CAST(h2 % 5000 AS VARCHAR) || '.contoso.com' AS DeviceName,
    'user' || CAST(h3 % 2000 AS VARCHAR) AS AccountName,
    list_element(['powershell.exe', 'cmd.exe', 'rundll32.exe', 'notepad.exe', 'conhost.exe',
                  'PowerShell.EXE', 'regsvr32.exe', 'svchost.exe'],
                 CAST(1 + h4 % 8 AS INTEGER)) AS FileName,
    list_element(['powershell.exe', 'cmd.exe', 'rundll32.exe', 'notepad.exe', 'conhost.exe',
                  'PowerShell.EXE', 'regsvr32.exe', 'svchost.exe'],
                 CAST(1 + h4 % 8 AS INTEGER))
        || ' ' || list_element(['-NoProfile -enc SQBFAFgA',
                                '-ExecutionPolicy Bypass -File a.ps1',
                                '/c whoami /all',
                                'C:\Windows\System32\shell32.dll,Control_RunDLL',
                                '-w hidden -EncodedCommand ZQBjAGgAbwA=',
                                'C:\Users\Public\notes.txt',
                                '-k netsvcs -p -s Schedule', 'bypassing nothing'],
                               CAST(1 + (h1 // 7) % 8 AS INTEGER))
        || ' ' || CAST(i % 997 AS VARCHAR) AS ProcessCommandLine,
    list_element(['winword.exe', 'EXCEL.EXE', 'explorer.exe', 'cmd.exe', 'services.exe',
                  'outlook.exe', 'chrome.exe'],
                 CAST(1 + (h3 // 5) % 7 AS INTEGER)) AS InitiatingProcessFileName,
    'C:\Windows\System32\' AS FolderPath,
    md5(CAST(h4 % 100000 AS VARCHAR)) AS MD5,
    CAST('{{"ProcessTokenElevation": "' ||
         list_element(['TokenElevationTypeFull', 'TokenElevationTypeDefault',
                       'TokenElevationTypeLimited'], CAST(1 + (h2 // 3) % 3 AS INTEGER))
         || '", "Pid": ' || CAST(i % 65536 AS VARCHAR) || '}}' AS JSON) AS AdditionalFields
FROM base
"""

DETECTIONS: dict[str, tuple[str, str]] = {
    "office-encoded-powershell (filters, has, summarize by bin)": (
        """
DeviceProcessEvents
| where Timestamp > datetime(2024-01-05)
| where InitiatingProcessFileName in~ ("winword.exe", "excel.exe", "outlook.exe")
| where FileName =~ "powershell.exe"
| where ProcessCommandLine contains "-enc" or ProcessCommandLine has "bypass"
| summarize Runs = count(), Devices = dcount(DeviceId), FirstSeen = min(Timestamp)
    by AccountName, bin(Timestamp, 1h)
| where Runs > 1
""",
        r"""
SELECT AccountName, time_bucket(INTERVAL 1 HOUR, Timestamp) AS Timestamp,
       count(*) AS Runs, count(DISTINCT DeviceId) AS Devices, min(Timestamp) AS FirstSeen
FROM DeviceProcessEvents
WHERE Timestamp > TIMESTAMP '2024-01-05'
  AND lower(InitiatingProcessFileName) IN ('winword.exe', 'excel.exe', 'outlook.exe')
  AND lower(FileName) = 'powershell.exe'
  AND (ProcessCommandLine ILIKE '%-enc%'
       OR regexp_matches(ProcessCommandLine, '(?i)(?:^|[^\pL\pN])bypass(?:$|[^\pL\pN])'))
GROUP BY AccountName, time_bucket(INTERVAL 1 HOUR, Timestamp)
HAVING count(*) > 1
""",
    ),
    "elevated-lolbins (dynamic field, top)": (
        """
DeviceProcessEvents
| where FileName in~ ("rundll32.exe", "regsvr32.exe")
| extend Elevation = tostring(parse_json(AdditionalFields).ProcessTokenElevation)
| where Elevation == "TokenElevationTypeFull"
| summarize Count = count(), Accounts = dcount(AccountName) by DeviceName
| sort by Count desc, DeviceName asc
| take 10
""",
        """
SELECT DeviceName, count(*) AS Count, count(DISTINCT AccountName) AS Accounts
FROM DeviceProcessEvents
WHERE lower(FileName) IN ('rundll32.exe', 'regsvr32.exe')
  AND AdditionalFields ->> 'ProcessTokenElevation' = 'TokenElevationTypeFull'
GROUP BY DeviceName
ORDER BY Count DESC, DeviceName ASC
LIMIT 10
""",
    ),
}


def _interleaved(works: list[Any], repeat: int) -> tuple[list[list[float]], list[Any]]:
    """Run each of ``works`` once untimed (the answers), then ``repeat`` timed rounds that
    take them in turn, so that drift in the machine's load hits all of them alike."""
    answers = [work() for work in works]
    times: list[list[float]] = [[] for _ in works]
    for _ in range(repeat):
        for index, work in enumerate(works):
            start = time.perf_counter()
            work()
            times[index].append(time.perf_counter() - start)
    return times, answers


def _normalise(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(
        (tuple(v.replace(tzinfo=None) if hasattr(v, "tzinfo") else v for v in row) for row in rows),
        key=repr,
    )


def run_speed(args: argparse.Namespace) -> int:
    from defensemap.engine.kql import run_kql
    from defensemap.logs.duck import connect, lock_down

    con = connect()
    if args.threads:
        con.execute(f"SET threads = {int(args.threads)}")
    start = time.perf_counter()
    con.execute(GENERATE.format(rows=int(args.rows)))
    generated = time.perf_counter() - start
    lock_down(con, args.memory_limit)
    threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    print(
        f"rows: {args.rows:,}  generated in {generated:.1f} s  threads: {threads}  "
        f"repeat: {args.repeat} (median)  duckdb {_version('duckdb')}  "
        f"duckdb-kql {_version('duckdb-kql')}  python {platform.python_version()}"
    )
    worst = 0.0
    report: list[dict[str, Any]] = []
    for name, (kql, sql) in DETECTIONS.items():

        def run_kql_once(kql: str = kql, label: str = name) -> Any:
            return run_kql(
                con, kql, timeout=600, label=label, tables_present=["DeviceProcessEvents"]
            )

        def run_sql(sql_text: str = sql) -> Any:
            return con.execute(sql_text).fetchall()

        result = run_kql_once()
        translated = result.sql

        def run_translated(sql_text: str = translated) -> Any:
            return con.execute(sql_text).fetchall()

        (kql_times, exec_times, sql_times), (_, _, sql_rows) = _interleaved(
            [run_kql_once, run_translated, run_sql], args.repeat
        )
        same = _normalise(result.rows) == _normalise(sql_rows)
        kql_median = statistics.median(kql_times)
        exec_median = statistics.median(exec_times)
        sql_median = statistics.median(sql_times)
        ratio = kql_median / sql_median
        worst = max(worst, ratio)
        print(f"\n{name}")
        print(f"  rows returned      {len(result.rows):>10}   same rows as SQL: {same}")
        print(f"  KQL (run_kql)      {kql_median * 1000:>10.1f} ms")
        print(f"  KQL (SQL only)     {exec_median * 1000:>10.1f} ms")
        print(f"  hand-written SQL   {sql_median * 1000:>10.1f} ms")
        only = exec_median / sql_median
        print(f"  ratio KQL/SQL      {ratio:>10.2f}x  (execution only {only:.2f}x)")
        report.append(
            {
                "detection": name,
                "rows_returned": len(result.rows),
                "same_rows": same,
                "kql_ms": kql_times,
                "kql_sql_only_ms": exec_times,
                "sql_ms": sql_times,
                "ratio": ratio,
            }
        )
        if not same:
            print("  MISMATCH: the KQL and SQL answers differ", file=sys.stderr)
            return 1
    verdict = "PASS" if worst <= SPEED_TARGET else "FAIL"
    print(f"\nworst ratio {worst:.2f}x, target ≤ {SPEED_TARGET}x: {verdict}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"rows": args.rows, "threads": threads, "results": report}, indent=2),
            encoding="utf-8",
        )
    return 0 if verdict == "PASS" or args.no_fail else 1


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    corpus = sub.add_parser("corpus", help="check_kql over every query under a directory")
    corpus.add_argument("dir", help="directory holding .kql/.csl/.txt files and YAML rules")
    corpus.add_argument("--markdown", action="store_true", help="also ```kql blocks in .md")
    corpus.add_argument("--top", type=int, default=20, help="rows per top list (default 20)")
    corpus.add_argument("--limit", type=int, default=0, help="check only the first N queries")
    corpus.add_argument("--json", help="write the summary and every failure as JSON")
    speed = sub.add_parser("speed", help="KQL vs hand-written SQL on synthetic data")
    speed.add_argument("--rows", type=int, default=10_000_000, help="default 10,000,000")
    speed.add_argument("--repeat", type=int, default=3, help="timed runs per query (median)")
    speed.add_argument("--threads", type=int, default=0, help="DuckDB threads (default: all)")
    speed.add_argument("--memory-limit", default=os.environ.get("BENCH_MEMORY", "8GB"))
    speed.add_argument("--json", help="write every timing as JSON")
    speed.add_argument("--no-fail", action="store_true", help="exit 0 even above the target")
    args = parser.parse_args(argv)
    return run_corpus(args) if args.command == "corpus" else run_speed(args)


if __name__ == "__main__":
    sys.exit(main())
