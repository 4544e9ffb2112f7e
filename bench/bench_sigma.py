#!/usr/bin/env python3
"""Benchmark for Sigma rules through ``defensemap.engine.sigma`` against the classic approach.

Two modes:

``speed`` (default)
    Generates N synthetic Sysmon process-creation events (``defensemap.generate.telemetry``,
    cached under ``--work``), ingests them into a DuckDB file (table ``WindowsEvents``), locks
    the connection down and runs every Windows ``process_creation`` rule of ``--sigma`` with
    ``run_sigma`` (no per-rule cap). The same events and rule files are then handed to a worker
    running in a *separate* interpreter (``--sqlite-python``) that has pySigma 2 and
    pySigma-backend-sqlite: it converts every rule with the sqlite backend and the Sysmon
    pipeline, loads the NDJSON into an in-memory SQLite table ``logs`` built as Zircolite
    builds it (one column per field, ``TEXT COLLATE NOCASE`` for strings, ``INTEGER`` for
    integers, ``REGEXP`` as a Python ``re.search`` function) and runs each rule's query.
    The alert sets (record numbers per rule) are compared and the timings reported, query time
    alone and end to end (ingest/load + convert + query), against the ≥ 5× target.

``report``
    Loads all of ``--sigma`` with our loader and converts it (``compile_rules``, no query is
    run) for ``WindowsEvents`` and every Defender XDR table, then prints converted / failed /
    not applicable per logsource category and the most frequent failure reasons.

The sqlite venv (pySigma 2 cannot live next to our pySigma 1.5)::

    python3 -m venv /tmp/sqlite-venv
    /tmp/sqlite-venv/bin/pip install "pysigma-backend-sqlite==2.1.1"
    # pysigma-pipeline-sysmon 2.0.0 declares pysigma<2 but works with pySigma 2.0.1:
    /tmp/sqlite-venv/bin/pip install --no-deps "pysigma-pipeline-sysmon==2.0.0"

Run with the project interpreter::

    .venv/bin/python bench/bench_sigma.py --rows 100000          # quick
    .venv/bin/python bench/bench_sigma.py                        # 1 M events
    .venv/bin/python bench/bench_sigma.py report
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SIGMA = REPO.parent / "shared" / "data" / "sigma"
SPEED_TARGET = 5.0
# Sysmon event 1 fields the generator does not write: added (all NULL) to both tables so the
# rules that use them run on both engines (SQLite fails "no such column" otherwise, while our
# engine reads an absent column as NULL).
SYSMON_EID1_FIELDS = (
    "RuleName",
    "UtcTime",
    "ProcessGuid",
    "ProcessId",
    "FileVersion",
    "Description",
    "Product",
    "Company",
    "OriginalFileName",
    "CurrentDirectory",
    "LogonGuid",
    "LogonId",
    "TerminalSessionId",
    "Hashes",
    "ParentProcessGuid",
    "ParentProcessId",
    "ParentUser",
)

WORKER = r"""
import json, re, sqlite3, sys, time
from sigma.backends.sqlite import sqliteBackend
from sigma.collection import SigmaCollection
from sigma.pipelines.sysmon import sysmon_pipeline

args = json.loads(open(sys.argv[1], encoding="utf-8").read())
out = {"failed": {}, "alerts": {}, "query_errors": {}, "queries": {}}

# -- convert (as Zircolite: sqlite backend + sysmon pipeline, field names as in the events)
start = time.perf_counter()
backend = sqliteBackend(sysmon_pipeline(), table="logs")
for path in args["rule_files"]:
    try:
        collection = SigmaCollection.from_yaml(open(path, encoding="utf-8").read())
    except Exception as exc:
        out["failed"][path] = f"load: {exc}"
        continue
    for rule in collection.rules:
        rid = str(rule.id) if rule.id else (rule.title or path)
        try:
            queries = backend.convert_rule(rule)
        except Exception as exc:
            out["failed"][rid] = f"{type(exc).__name__}: {exc}"
            continue
        out["queries"][rid] = queries
out["convert_seconds"] = time.perf_counter() - start

# -- load (as Zircolite: in-memory table, TEXT COLLATE NOCASE / INTEGER, row_id = record)
start = time.perf_counter()
con = sqlite3.connect(":memory:")

def regexp(pattern, value):
    if value is None:
        return 0
    return 1 if re.search(pattern, str(value)) else 0

con.create_function("regexp", 2, regexp, deterministic=True)
events = []
fields = {}
with open(args["events"], encoding="utf-8") as handle:
    for line in handle:
        event = json.loads(line)
        events.append(event)
        for key, value in event.items():
            if key not in fields:
                is_int = isinstance(value, int) and not isinstance(value, bool)
                fields[key] = "INTEGER" if is_int else "TEXT COLLATE NOCASE"
for key in args["extra_fields"]:  # Sysmon EID 1 fields the synthetic events leave out
    fields.setdefault(key, "TEXT COLLATE NOCASE")
names = list(fields)
columns = ", ".join(f'"{n}" {t}' for n, t in fields.items())
con.execute(f"CREATE TABLE logs (row_id INTEGER PRIMARY KEY AUTOINCREMENT, {columns})")
marks = ", ".join("?" for _ in names)
quoted = ", ".join(f'"{n}"' for n in names)
con.executemany(
    f"INSERT INTO logs ({quoted}) VALUES ({marks})",
    ([e.get(n) for n in names] for e in events),
)
con.commit()
del events
out["rows"] = con.execute("SELECT count(*) FROM logs").fetchone()[0]
out["load_seconds"] = time.perf_counter() - start

# -- query: each rule's query as converted, results fetched (SELECT *), record = row_id
start = time.perf_counter()
for rid, queries in out["queries"].items():
    hits = set()
    try:
        for query in queries:
            cur = con.execute(query)
            index = [d[0] for d in cur.description].index("row_id")
            hits.update(row[index] for row in cur.fetchall())
    except sqlite3.Error as exc:
        out["query_errors"][rid] = str(exc)
        continue
    out["alerts"][rid] = sorted(hits)
out["query_seconds"] = time.perf_counter() - start
out["sqlite_version"] = sqlite3.sqlite_version
json.dump(out, open(args["out"], "w", encoding="utf-8"))
"""


# --- events ------------------------------------------------------------------------------------


def events_file(work: Path, rows: int, seed: int) -> Path:
    from defensemap.generate.telemetry import generate

    path = work / f"sysmon_{rows}_{seed}.ndjson"
    if not path.exists():
        start = time.perf_counter()
        generate("Sysmon", rows, path, seed=seed)
        print(f"generated {path} in {time.perf_counter() - start:.1f} s")
    return path


def process_creation_rules(sigma: Path) -> Any:
    from defensemap.engine.sigma.rules import RuleSet, load_rules

    loaded = load_rules([sigma])
    chosen = [
        r
        for r in loaded.rules
        if r.logsource.category == "process_creation" and r.logsource.product == "windows"
    ]
    return RuleSet(rules=chosen), loaded


# --- speed -------------------------------------------------------------------------------------


def run_ours(events: Path, work: Path, rules: Any, timeout: float) -> dict[str, Any]:
    from defensemap.engine.sigma.rules import compile_rules
    from defensemap.engine.sigma.run import run_compiled, table_schemas
    from defensemap.logs.duck import connect, lock_down
    from defensemap.logs.ingest import ingest

    db = work / f"bench_sigma_{events.stem}.duckdb"
    db.unlink(missing_ok=True)
    con = connect(db)
    try:
        start = time.perf_counter()
        ingest(con, [events])
        present = {c.casefold() for c in table_schemas(con, ["WindowsEvents"])["WindowsEvents"]}
        for name in SYSMON_EID1_FIELDS:
            if name.casefold() not in present:
                con.execute(f'ALTER TABLE WindowsEvents ADD COLUMN "{name}" VARCHAR')
        ingest_s = time.perf_counter() - start
        lock_down(con)
        start = time.perf_counter()
        compilation = compile_rules(rules, table_schemas(con, ["WindowsEvents"]))
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        run = run_compiled(
            con,
            compilation,
            load_problems=rules.problems,
            timeout=timeout,
            max_matches_per_rule=None,
        )
        query_s = time.perf_counter() - start
        rows = con.execute("SELECT count(*) FROM WindowsEvents").fetchone()
    finally:
        con.close()
        db.unlink(missing_ok=True)
    alerts: dict[str, set[int]] = defaultdict(set)
    samples: dict[int, dict[str, Any]] = {}
    for m in run.matches:
        record = int(m.row["_dm_record"])
        alerts[m.rule_id].add(record)
        samples.setdefault(record, {k: v for k, v in m.row.items() if not k.startswith("_dm")})
    conditions = {r.info.rule_id: r.condition for rs in compilation.rules.values() for r in rs}
    return {
        "rows": rows[0] if rows else 0,
        "ingest_s": ingest_s,
        "compile_s": compile_s,
        "query_s": query_s,
        "run": run,
        "compilation": compilation,
        "alerts": {rid: alerts.get(rid, set()) for rid in run.counts},
        "samples": samples,
        "conditions": conditions,
    }


def run_classic(python: str, events: Path, work: Path, rule_files: list[str]) -> dict[str, Any]:
    worker = work / "bench_sigma_worker.py"
    worker.write_text(WORKER, encoding="utf-8")
    args_path = work / "bench_sigma_worker_args.json"
    out_path = work / "bench_sigma_worker_out.json"
    args_path.write_text(
        json.dumps(
            {
                "rule_files": rule_files,
                "events": str(events),
                "out": str(out_path),
                "extra_fields": list(SYSMON_EID1_FIELDS),
            }
        ),
        encoding="utf-8",
    )
    start = time.perf_counter()
    subprocess.run([python, str(worker), str(args_path)], check=True)
    wall = time.perf_counter() - start
    result: dict[str, Any] = json.loads(out_path.read_text(encoding="utf-8"))
    result["wall_s"] = wall
    return result


def speed(args: argparse.Namespace) -> int:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    events = events_file(work, args.rows, args.seed)
    rules, _ = process_creation_rules(Path(args.sigma))
    rule_files = sorted({str(r.source.path) for r in rules.rules if r.source and r.source.path})
    print(f"{len(rules.rules)} Windows process_creation rules in {len(rule_files)} files")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, {platform.python_version()}")

    ours = run_ours(events, work, rules, args.timeout)
    run = ours["run"]
    print(
        f"\nours (DuckDB): {ours['rows']:,} rows; {len(ours['conditions'])} rules converted, "
        f"{len(run.problems)} problems, {len(run.not_applicable)} not applicable"
    )
    print(
        f"  ingest {ours['ingest_s']:.2f} s, convert {ours['compile_s']:.2f} s, "
        f"query {ours['query_s']:.2f} s"
    )

    classic = run_classic(args.sqlite_python, events, work, rule_files)
    print(
        f"\nclassic (pySigma sqlite backend + SQLite {classic['sqlite_version']}): "
        f"{classic['rows']:,} rows; {len(classic['queries'])} rules converted, "
        f"{len(classic['failed'])} failed to convert, {len(classic['query_errors'])} query errors"
    )
    print(
        f"  load {classic['load_seconds']:.2f} s, convert {classic['convert_seconds']:.2f} s, "
        f"query {classic['query_seconds']:.2f} s (worker wall {classic['wall_s']:.2f} s)"
    )
    for rid, reason in sorted(classic["failed"].items())[:10]:
        print(f"    failed {rid}: {reason[:150]}")
    for rid, reason in sorted(classic["query_errors"].items())[:10]:
        print(f"    query error {rid}: {reason[:150]}")

    # -- agreement
    theirs = {rid: set(v) for rid, v in classic["alerts"].items()}
    both = sorted(set(ours["alerts"]) & set(theirs))
    differ = [rid for rid in both if ours["alerts"][rid] != theirs[rid]]
    only_ours = sorted(set(ours["alerts"]) - set(theirs))
    only_theirs = sorted(set(theirs) - set(ours["alerts"]))
    alerts_ours = sum(len(ours["alerts"][r]) for r in both)
    alerts_theirs = sum(len(theirs[r]) for r in both)
    firing = sum(1 for r in both if ours["alerts"][r] or theirs[r])
    print(
        f"\nagreement: {len(both)} rules run by both, {firing} fire in either, "
        f"{len(both) - len(differ)} identical alert sets, {len(differ)} differ; "
        f"alerts {alerts_ours:,} (ours) vs {alerts_theirs:,} (classic)"
    )
    titles = {r: i.title for r, i in ours["compilation"].infos.items()}
    for rid in differ:
        mine, other = ours["alerts"][rid], theirs[rid]
        print(
            f"  DIFF {titles.get(rid, rid)} [{rid}]: ours {len(mine)}, classic {len(other)}, "
            f"only ours {len(mine - other)}, only classic {len(other - mine)}"
        )
        if args.verbose:
            print(f"    ours:    {ours['conditions'].get(rid, '')[:600]}")
            print(f"    classic: {' | '.join(classic['queries'].get(rid, []))[:600]}")
            for record in sorted(mine - other)[:2]:
                print(f"    only ours #{record}: {ours['samples'].get(record)}")
            for record in sorted(other - mine)[:2]:
                print(f"    only classic #{record}")
    if only_ours:
        print(f"  {len(only_ours)} rules run only by ours: {', '.join(only_ours[:10])}")
    if only_theirs:
        reasons = Counter(
            p.reason.split(":")[0] for p in run.problems if p.rule_id in set(only_theirs)
        )
        print(f"  {len(only_theirs)} rules run only by classic; our reasons: {dict(reasons)}")
        for p in [p for p in run.problems if p.rule_id in set(only_theirs)][:10]:
            print(f"    {p.rule_id}: {p.reason[:150]}")

    # -- speed
    ours_e2e = ours["ingest_s"] + ours["compile_s"] + ours["query_s"]
    theirs_e2e = classic["load_seconds"] + classic["convert_seconds"] + classic["query_seconds"]
    q_ratio = classic["query_seconds"] / ours["query_s"]
    e_ratio = theirs_e2e / ours_e2e
    print("\nspeed (classic / ours, target ≥ 5×):")
    print(
        f"  query only:  ours {ours['query_s']:.2f} s, classic {classic['query_seconds']:.2f} s"
        f"  -> {q_ratio:.1f}× {'PASS' if q_ratio >= SPEED_TARGET else 'FAIL'}"
    )
    print(
        f"  end to end:  ours {ours_e2e:.2f} s, classic {theirs_e2e:.2f} s"
        f"  -> {e_ratio:.1f}× {'PASS' if e_ratio >= SPEED_TARGET else 'FAIL'}"
    )
    if args.json:
        summary = {
            "rows": ours["rows"],
            "rules": len(rules.rules),
            "ours": {k: ours[k] for k in ("ingest_s", "compile_s", "query_s")},
            "classic": {
                k: classic[k] for k in ("load_seconds", "convert_seconds", "query_seconds")
            },
            "query_ratio": q_ratio,
            "e2e_ratio": e_ratio,
            "rules_differ": differ,
            "classic_failed": classic["failed"],
        }
        Path(args.json).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    ok = q_ratio >= SPEED_TARGET and not differ
    return 0 if ok or args.no_fail else 1


# --- report ------------------------------------------------------------------------------------


def report(args: argparse.Namespace) -> int:
    from defensemap.catalog import load_catalog
    from defensemap.engine.sigma.pipelines import DEFENDER_TABLES
    from defensemap.engine.sigma.rules import compile_rules, load_rules
    from defensemap.engine.sigma.run import table_schemas
    from defensemap.logs.duck import connect
    from defensemap.logs.ingest import ingest

    start = time.perf_counter()
    rules = load_rules([Path(args.sigma)])
    load_s = time.perf_counter() - start
    # WindowsEvents as ingested from Sysmon events; Defender tables from the catalog
    with tempfile.TemporaryDirectory() as tmp:
        events = events_file(Path(tmp), 10, 1)
        con = connect()
        ingest(con, [events])
        schemas = table_schemas(con, ["WindowsEvents"])
        con.close()
    catalog = load_catalog()
    for name in sorted(DEFENDER_TABLES):
        table = catalog.table(name)
        if table is not None:
            schemas[name] = {c.name: c.duckdb_type for c in table.columns}
    start = time.perf_counter()
    compilation = compile_rules(rules, schemas)
    compile_s = time.perf_counter() - start

    print(
        f"{args.sigma}: {len(rules)} rules loaded ({len(rules.correlations)} correlations), "
        f"{len(rules.problems)} failed to load; load {load_s:.1f} s, convert {compile_s:.1f} s"
    )
    by_cat: dict[str, Counter[str]] = defaultdict(Counter)
    for rid, outcome in compilation.outcome.items():
        info = compilation.infos[rid]
        cat = info.category or (f"service:{info.service}" if info.service else "-")
        by_cat[f"{info.product or '-'}/{cat}"][outcome] += 1
    for _problem in rules.problems:
        by_cat["(load error)"]["load_failed"] += 1
    total: Counter[str] = Counter()
    print(f"\n{'product/category':45} {'rules':>6} {'conv':>6} {'failed':>6} {'n/a':>6}")
    for key, counts in sorted(by_cat.items(), key=lambda kv: -sum(kv[1].values())):
        total.update(counts)
        print(
            f"{key[:45]:45} {sum(counts.values()):6} {counts['converted']:6} "
            f"{counts['failed'] + counts['load_failed']:6} {counts['not_applicable']:6}"
        )
    print(
        f"{'TOTAL':45} {sum(total.values()):6} {total['converted']:6} "
        f"{total['failed'] + total['load_failed']:6} {total['not_applicable']:6}"
    )
    print("\nconverted rules per table:")
    for table, compiled in sorted(compilation.rules.items()):
        print(f"  {table:28} {len(compiled)}")
    reasons = Counter(p.reason[:90] for p in [*rules.problems, *compilation.problems])
    print("\nfailure reasons:")
    for reason, n in reasons.most_common(15):
        print(f"  {n:5}  {reason}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", choices=["speed", "report"], default="speed")
    parser.add_argument("--sigma", default=str(DEFAULT_SIGMA), help="Sigma rules folder")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "bench_sigma"))
    parser.add_argument("--sqlite-python", default="/tmp/sqlite-venv/bin/python")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--json", help="write a summary as JSON")
    parser.add_argument("--verbose", "-v", action="store_true", help="show differing rules")
    parser.add_argument("--no-fail", action="store_true")
    args = parser.parse_args()
    return speed(args) if args.mode == "speed" else report(args)


if __name__ == "__main__":
    sys.exit(main())
