#!/usr/bin/env python3
"""Benchmark the Mappings Explorer features against the issue's targets.

Measures, each in a fresh child process started as a user would start it:

* ``defensemap import mappings <data>/mappings/mappings`` (every published file) into a fresh
  data home: wall time and the child's peak RSS, ``--repeat`` times (target ≤ 2 s);
* ``defensemap mappings T1021.007 --json`` on a home holding those sets and ATT&CK 18.1
  (enterprise, mobile, ICS) (target ≤ 0.3 s);
* ``defensemap export mappings --framework nist_800_53 --framework-version rev5 --format F``
  for every format (target ≤ 1 s each);

and, in one child process, the export functions alone on an open store: ``build_export`` and
each exporter (first call, which pays the lazy imports of openpyxl / PyYAML, then the median).

Run it with the project's interpreter: ``.venv/bin/python bench/bench_mappings.py``.
Shares its process helpers with bench_attack.py; see bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_attack import (
    MIB,
    Run,
    base_parser,
    check,
    checked_args,
    child_env,
    cli_command,
    median,
    mib,
    ms,
    print_table,
    run_child,
    self_rss,
    version_of,
)

MAPPINGS = Path("mappings") / "mappings"
ATTACK_18 = [
    Path("attack") / "enterprise-attack-18.1.json",
    Path("attack") / "mobile-attack-18.1.json",
    Path("attack") / "stix21" / "ics-attack-18.1.json",
]
IMPORT_SECONDS = 2.0
QUERY_SECONDS = 0.3
EXPORT_SECONDS = 1.0
FORMATS = ("csv", "xlsx", "json", "yaml", "stix", "navigator")
NIST_REV5 = ["--framework", "nist_800_53", "--framework-version", "rev5"]
QUERY = ["mappings", "T1021.007", "--json"]
IN_PROCESS_REPEAT = 5


# --- worker (this script re-run as a child with --worker) -----------------------------------


def worker_exporters(home: str, repeat: int) -> dict[str, Any]:
    """``build_export`` and every exporter on an open store, timed in-process."""
    from defensemap.config import Settings
    from defensemap.export.mappings import EXPORTERS, build_export
    from defensemap.store.db import open_store

    store = open_store(Settings.resolve(home).store_path)
    try:
        builds = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            export = build_export(
                store, "nist_800_53", framework_version="rev5", with_techniques=True
            )
            builds.append(time.perf_counter() - t0)
    finally:
        store.close()
    out: dict[str, Any] = {
        "rows": len(export.rows),
        "title": export.title,
        "build_export_s": builds,
        "exporters": {},
    }
    for fmt, exporter in EXPORTERS.items():
        times = []
        size = 0
        for _ in range(repeat + 1):  # the first call also pays lazy imports
            t0 = time.perf_counter()
            size = len(exporter(export))
            times.append(time.perf_counter() - t0)
        out["exporters"][fmt] = {"first_s": times[0], "runs_s": times[1:], "bytes": size}
    return out


# --- the benchmark ---------------------------------------------------------------------------


def summarize(runs: list[Run]) -> dict[str, Any]:
    seconds = [r.seconds for r in runs]
    return {
        "runs_s": seconds,
        "median_s": median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "max_rss_bytes": max(r.max_rss for r in runs),
    }


def bench_import(cli: list[str], folder: Path, repeat: int, env: dict[str, str], keep: Path):
    """``repeat`` imports of every mapping file, each into a fresh home; the first is kept."""
    runs = []
    for index in range(repeat):
        home = keep if index == 0 else Path(tempfile.mkdtemp(prefix="home-", dir=keep.parent))
        run = check(
            run_child(
                [*cli, "--home", str(home), "import", "mappings", str(folder), "--json"], env
            ),
            "defensemap import mappings",
        )
        outcomes = json.loads(run.stdout)["data"]
        if {o["status"] for o in outcomes} != {"imported"}:
            sys.exit(f"unexpected import outcome: {outcomes}")
        runs.append(run)
        print(
            f"  import run {index + 1}/{repeat}: {run.seconds:.3f} s, "
            f"peak RSS {run.max_rss / MIB:.0f} MiB, {len(outcomes)} sets",
            file=sys.stderr,
        )
    result = summarize(runs)
    result["sets"] = len(outcomes)
    result["rows_stored"] = sum(o["rows_stored"] for o in outcomes)
    result["rows_in_files"] = sum(o["rows_in_file"] for o in outcomes)
    return result


def timed(argv: list[str], repeat: int, env: dict[str, str], what: str, accept) -> dict[str, Any]:
    """One untimed warm-up, then ``repeat`` timed runs; ``accept(run)`` checks each answer."""
    warmup = check(run_child(argv, env), what)
    accept(warmup)
    runs = []
    for _ in range(repeat):
        run = check(run_child(argv, env), what)
        accept(run)
        runs.append(run)
    result = summarize(runs)
    result["warmup_s"] = warmup.seconds
    print(
        f"  {what}: median {ms(result['median_s'])}, max {ms(result['max_s'])}",
        file=sys.stderr,
    )
    return result


def bench_query(cli: list[str], home: Path, repeat: int, env: dict[str, str]) -> dict[str, Any]:
    def accept(run: Run) -> None:
        doc = json.loads(run.stdout)
        if not doc.get("ok") or not doc["data"]["frameworks"]:
            sys.exit(f"`{' '.join(QUERY)}` answered {doc}")

    return timed([*cli, "--home", str(home), *QUERY], repeat, env, " ".join(QUERY[:2]), accept)


def bench_exports(
    cli: list[str], home: Path, out_dir: Path, repeat: int, env: dict[str, str]
) -> dict[str, Any]:
    results = {}
    for fmt in FORMATS:
        out = out_dir / f"nist-rev5.{fmt}"
        argv = [*cli, "--home", str(home), "export", "mappings", *NIST_REV5, "--format", fmt]
        argv += ["-o", str(out)]

        def accept(run: Run, out: Path = out) -> None:
            if not run.stdout.startswith(b"wrote") or out.stat().st_size == 0:
                sys.exit(f"export wrote nothing: {run.stdout!r} {run.stderr!r}")

        results[fmt] = timed(argv, repeat, env, f"export {fmt}", accept)
        results[fmt]["bytes"] = out.stat().st_size
    return results


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [
        ("import all mapping files, median wall", result["import"]["median_s"], IMPORT_SECONDS),
        (
            "fresh process → mappings T1021.007 --json, median",
            result["query"]["median_s"],
            QUERY_SECONDS,
        ),
    ]
    rows += [
        (f"fresh process → export NIST rev5 as {fmt}, median", r["median_s"], EXPORT_SECONDS)
        for fmt, r in result["exports"].items()
    ]
    return [
        {"target": name, "value": value, "limit": limit, "unit": "s", "pass": value <= limit}
        for name, value, limit in rows
    ]


def report(result: dict[str, Any]) -> None:
    imp, query, exports = result["import"], result["query"], result["exports"]
    inproc, env = result["in_process"], result["environment"]
    print(
        f"\ndefensemap {env['defensemap']} · Python {env['python']} · {env['cpus']} CPU(s) · "
        f"{imp['sets']} mapping sets ({imp['rows_in_files']} rows, {imp['rows_stored']} stored) · "
        f"{result['repeat']} run(s) each · CLI: {' '.join(env['cli'])}"
    )
    rows = [
        ["import mappings (wall)", ms(imp["median_s"]), ms(imp["min_s"]), ms(imp["max_s"])],
        ["import mappings (peak RSS)", mib(imp["max_rss_bytes"]), "", ""],
        [
            "mappings T1021.007 --json (fresh process)",
            ms(query["median_s"]),
            ms(query["min_s"]),
            ms(query["max_s"]),
        ],
    ]
    rows += [
        [f"export {fmt} (fresh process)", ms(r["median_s"]), ms(r["min_s"]), ms(r["max_s"])]
        for fmt, r in exports.items()
    ]
    print_table("defensemap mappings", ["Measurement", "Median", "Min", "Max"], rows)

    rows = [
        [
            "build_export (choose set, read rows, STIX ids)",
            ms(median(inproc["build_export_s"])),
            "",
            "",
            "",
        ]
    ]
    for fmt, r in inproc["exporters"].items():
        fresh = exports[fmt]["median_s"]
        rows.append(
            [
                f"export_{fmt}",
                ms(median(r["runs_s"])),
                ms(r["first_s"]),
                f"{r['bytes'] / MIB:.2f} MiB",
                ms(fresh),
            ]
        )
    print_table(
        f"In-process, {inproc['title']}, {inproc['rows']} rows (median of {IN_PROCESS_REPEAT})",
        ["Function", "Median", "First call", "Output", "Fresh process"],
        rows,
    )

    rows = [
        [t["target"], ms(t["value"]), f"≤ {ms(t['limit'])}", "PASS" if t["pass"] else "FAIL"]
        for t in result["targets"]
    ]
    print_table("Targets", ["Target", "Measured", "Limit", "Result"], rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return checked_args(base_parser(__doc__), argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        kind, home = args.worker
        if kind != "exporters":
            sys.exit(f"unknown worker {kind}")
        print(json.dumps(worker_exporters(home, IN_PROCESS_REPEAT)))
        return 0

    folder = (args.data / MAPPINGS).resolve()
    bundles = [(args.data / p).resolve() for p in ATTACK_18]
    for path in [folder, *bundles]:
        if not path.exists():
            sys.exit(f"missing {path}; pass --data DIR (the directory holding mappings/, attack/)")
    cli = cli_command(args.cli)
    env = child_env()
    parent_rss = self_rss()
    with tempfile.TemporaryDirectory(prefix="defensemap-bench-") as tmp:
        home = Path(tmp) / "home"
        print(f"importing {folder} {args.repeat}× (fresh home each time) ...", file=sys.stderr)
        imported = bench_import(cli, folder, args.repeat, env, home)
        print("importing ATT&CK 18.1 (enterprise, mobile, ICS; untimed setup) ...", file=sys.stderr)
        setup = check(
            run_child([*cli, "--home", str(home), "import", "attack", *map(str, bundles)], env),
            "defensemap import attack",
        )
        print("fresh-process query ...", file=sys.stderr)
        query = bench_query(cli, home, args.repeat, env)
        print("fresh-process exports of NIST 800-53 rev5 ...", file=sys.stderr)
        out_dir = Path(tmp) / "exports"
        exports = bench_exports(cli, home, out_dir, args.repeat, env)
        print("in-process exporters ...", file=sys.stderr)
        worker = check(
            run_child(
                [sys.executable, str(Path(__file__).resolve()), "--worker", "exporters", str(home)],
                env,
            ),
            "exporters worker",
        )
        in_process = json.loads(worker.stdout)

    result: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "repeat": args.repeat,
        "environment": {
            "defensemap": version_of("defensemap"),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
            "mappings": str(folder),
            "attack": [str(b) for b in bundles],
            "cli": cli,
            "parent_max_rss_bytes": parent_rss,
        },
        "import": imported,
        "attack_setup_s": setup.seconds,
        "query": query,
        "exports": exports,
        "in_process": in_process,
    }
    result["targets"] = targets(result)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}", file=sys.stderr)
    failed = [t["target"] for t in result["targets"] if not t["pass"]]
    if failed and not args.no_fail:
        print(f"\nFAILED: {'; '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
