#!/usr/bin/env python3
"""Benchmark the ATT&CK knowledge base against the issue's targets and mitreattack-python.

Measures, each in a fresh child process:

* ``defensemap import attack enterprise-attack-18.1.json`` into a fresh data home
  (wall time and the child's peak RSS), ``--repeat`` times;
* ``defensemap technique T1021.007 --json`` (the target), ``group G0016 --json`` and
  ``search "cloud services" --json``, ``--repeat`` times each;
* if ``mitreattack`` is importable: ``MitreAttackData(path)`` load time, peak RSS, time from a
  fresh process to the first answer, and the median of 20 ``get_object_by_attack_id`` lookups
  per id, next to defensemap's in-process ``describe`` for the same ids.

Run it with the project's interpreter: ``.venv/bin/python bench/bench_attack.py``.
See bench/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data"
ENTERPRISE = Path("attack") / "enterprise-attack-18.1.json"

IMPORT_SECONDS = 2.0
IMPORT_RSS_BYTES = 1 << 30
QUERY_SECONDS = 0.3
LOOKUP_REPEAT = 20
MIB = 1 << 20

# label -> CLI arguments after `--home HOME`; only the first is a target, the others are
# measured against the same budget for information.
QUERIES: dict[str, list[str]] = {
    "technique T1021.007": ["technique", "T1021.007", "--json"],
    "group G0016": ["group", "G0016", "--json"],
    'search "cloud services"': ["search", "cloud services", "--json"],
}
TARGET_QUERY = "technique T1021.007"
# (ATT&CK id, STIX type for mitreattack-python, defensemap kind)
LOOKUPS: list[tuple[str, str, str]] = [
    ("T1021.007", "attack-pattern", "technique"),
    ("T1059.001", "attack-pattern", "technique"),
    ("G0016", "intrusion-set", "group"),
    ("S0154", "malware", "software"),
]


# --- child processes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One child process: wall time, its own peak RSS (bytes) and what it printed."""

    seconds: float
    max_rss: int
    returncode: int
    stdout: bytes
    stderr: bytes


def run_child(argv: list[str], env: dict[str, str] | None = None) -> Run:
    """Run ``argv`` to completion and reap it with ``os.wait4``.

    ``wait4`` returns the same ``ru_maxrss`` that ``getrusage(RUSAGE_CHILDREN)`` accumulates,
    but for this one child only, so every run gets its own peak RSS. Output goes to temporary
    files (not pipes), so nothing has to be drained while the child runs.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(seconds, usage.ru_maxrss * 1024, proc.returncode, out.read(), err.read())


def check(run: Run, what: str) -> Run:
    if run.returncode != 0:
        sys.exit(
            f"{what} failed with exit code {run.returncode}:\n"
            f"{run.stderr.decode(errors='replace')}{run.stdout.decode(errors='replace')}"
        )
    return run


def cli_command(mode: str) -> list[str]:
    """The console script next to ``sys.executable``, else ``python -m defensemap``."""
    script = Path(sys.executable).parent / "defensemap"
    if mode in {"auto", "script"} and script.is_file():
        return [str(script)]
    if mode == "script":
        sys.exit(f"no console script at {script}; install the repo: pip install -e .")
    spec = importlib.util.find_spec("defensemap")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if any((Path(loc) / "__main__.py").is_file() for loc in locations):
        return [sys.executable, "-m", "defensemap"]
    sys.exit(
        f"cannot run defensemap with {sys.executable}: no console script at {script} and no "
        "defensemap/__main__.py; run this with the project's .venv/bin/python"
    )


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DEFENSEMAP_HOME", None)  # every command gets an explicit --home
    env.setdefault("NO_COLOR", "1")
    return env


def self_rss() -> int:
    """This process's current peak RSS in bytes; a vfork/exec'd child's peak starts from it."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- workers (this script re-run as a child with --worker) ----------------------------------


def worker_mitreattack(path: str) -> dict[str, Any]:
    start = time.perf_counter()
    from mitreattack.stix20 import MitreAttackData

    imported = time.perf_counter()
    data = MitreAttackData(path)
    loaded = time.perf_counter()
    first = data.get_object_by_attack_id(LOOKUPS[0][0], LOOKUPS[0][1])
    answered = time.perf_counter()
    if first is None:
        sys.exit(f"mitreattack-python found no {LOOKUPS[0][0]}")
    lookups: dict[str, list[float]] = {}
    for ident, stix_type, _ in LOOKUPS:
        times = []
        for _ in range(LOOKUP_REPEAT):
            t0 = time.perf_counter()
            obj = data.get_object_by_attack_id(ident, stix_type)
            times.append(time.perf_counter() - t0)
            if obj is None:
                sys.exit(f"mitreattack-python found no {ident} ({stix_type})")
        lookups[ident] = times
    return {
        "module_import_s": imported - start,
        "load_s": loaded - imported,
        "first_lookup_s": answered - loaded,
        "lookups_s": lookups,
        "tail_s": time.perf_counter() - answered,
    }


def worker_defensemap(home: str) -> dict[str, Any]:
    from defensemap.config import Settings
    from defensemap.kb.attack import describe
    from defensemap.store.db import open_store

    store = open_store(Settings.resolve(home).store_path)
    lookups: dict[str, list[float]] = {}
    try:
        for ident, _, kind in LOOKUPS:
            times = []
            for _ in range(LOOKUP_REPEAT):
                t0 = time.perf_counter()
                doc = describe(store, kind, ident)
                times.append(time.perf_counter() - t0)
                if getattr(doc, "id", ident) != ident:
                    sys.exit(f"defensemap returned {doc.id} for {ident}")
            lookups[ident] = times
    finally:
        store.close()
    return {"lookups_s": lookups}


def run_worker(kind: str, arg: str, env: dict[str, str]) -> tuple[Run, dict[str, Any]]:
    run = check(
        run_child([sys.executable, str(Path(__file__).resolve()), "--worker", kind, arg], env),
        f"{kind} worker",
    )
    return run, json.loads(run.stdout)


# --- the benchmark ---------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def bench_import(cli: list[str], bundle: Path, repeat: int, env: dict[str, str], keep: Path):
    """``repeat`` imports, each into a fresh home; the first run's home is kept in ``keep``."""
    runs = []
    for index in range(repeat):
        home = keep if index == 0 else Path(tempfile.mkdtemp(prefix="home-", dir=keep.parent))
        run = check(
            run_child([*cli, "--home", str(home), "import", "attack", str(bundle)], env),
            "defensemap import attack",
        )
        if b"imported" not in run.stdout:
            sys.exit(f"unexpected import output: {run.stdout.decode(errors='replace')}")
        runs.append(run)
        print(
            f"  import run {index + 1}/{repeat}: {run.seconds:.3f} s, "
            f"peak RSS {run.max_rss / MIB:.0f} MiB",
            file=sys.stderr,
        )
    children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    seconds = [r.seconds for r in runs]
    rss = [r.max_rss for r in runs]
    return {
        "runs_s": seconds,
        "median_s": median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "rss_bytes": rss,
        "median_rss_bytes": int(median(rss)),
        "max_rss_bytes": max(rss),
        "rusage_children_max_rss_bytes": children_peak,
    }


def bench_queries(cli: list[str], home: Path, repeat: int, env: dict[str, str]):
    results = {}
    for label, args in QUERIES.items():
        argv = [*cli, "--home", str(home), *args]
        warmup = check(run_child(argv, env), f"defensemap {label}")
        doc = json.loads(warmup.stdout)
        if not doc.get("ok"):
            sys.exit(f"defensemap {label} answered {doc}")
        runs = [check(run_child(argv, env), f"defensemap {label}") for _ in range(repeat)]
        seconds = [r.seconds for r in runs]
        results[label] = {
            "argv": args,
            "warmup_s": warmup.seconds,
            "runs_s": seconds,
            "median_s": median(seconds),
            "min_s": min(seconds),
            "max_s": max(seconds),
            "max_rss_bytes": max(r.max_rss for r in runs),
        }
        print(
            f"  {label}: median {median(seconds) * 1000:.0f} ms, max {max(seconds) * 1000:.0f} ms",
            file=sys.stderr,
        )
    return results


def bench_lookups(home: Path, bundle: Path, env: dict[str, str], with_mitre: bool):
    _, dm = run_worker("defensemap", str(home), env)
    out: dict[str, Any] = {
        "defensemap_describe_median_s": {k: median(v) for k, v in dm["lookups_s"].items()},
    }
    if not with_mitre:
        return out
    print("  mitreattack-python: loading (takes several seconds) ...", file=sys.stderr)
    run, mitre = run_worker("mitreattack", str(bundle), env)
    out["mitreattack"] = {
        "version": version_of("mitreattack-python"),
        "module_import_s": mitre["module_import_s"],
        "load_s": mitre["load_s"],
        "first_lookup_s": mitre["first_lookup_s"],
        # wall time of the worker minus what it did after the first answer
        "fresh_process_to_answer_s": run.seconds - mitre["tail_s"],
        "max_rss_bytes": run.max_rss,
        "lookup_median_s": {k: median(v) for k, v in mitre["lookups_s"].items()},
        "lookup_max_s": {k: max(v) for k, v in mitre["lookups_s"].items()},
    }
    return out


def version_of(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    imp = result["import"]
    query = result["queries"][TARGET_QUERY]
    rows = [
        ("import enterprise 18.1, median wall", imp["median_s"], IMPORT_SECONDS, "s"),
        (
            "import enterprise 18.1, peak RSS (max of runs)",
            imp["max_rss_bytes"],
            IMPORT_RSS_BYTES,
            "B",
        ),
        (f"fresh process → {TARGET_QUERY} --json, median", query["median_s"], QUERY_SECONDS, "s"),
    ]
    return [
        {"target": name, "value": value, "limit": limit, "unit": unit, "pass": value <= limit}
        for name, value, limit, unit in rows
    ]


# --- reporting -------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def mib(size: int) -> str:
    return f"{size / MIB:.0f} MiB"


def ratio(slow: float, fast: float) -> str:
    return f"{slow / fast:.1f}×" if fast > 0 else "-"


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
        print(f"\n{title}")
        print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
        for row in rows:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
        return
    console = Console()
    if not console.is_terminal:  # piped or redirected: do not squeeze into 80 columns
        console = Console(width=120)
    table = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def report(result: dict[str, Any]) -> None:
    imp, queries, lookups = result["import"], result["queries"], result["lookups"]
    env = result["environment"]
    print(
        f"\ndefensemap {env['defensemap']} · Python {env['python']} · {env['cpus']} CPU(s) · "
        f"{env['bundle']} · {result['repeat']} run(s) each · CLI: {' '.join(env['cli'])}"
    )
    rows = [
        ["import attack (wall)", ms(imp["median_s"]), ms(imp["min_s"]), ms(imp["max_s"])],
        [
            "import attack (peak RSS)",
            mib(imp["median_rss_bytes"]),
            mib(min(imp["rss_bytes"])),
            mib(imp["max_rss_bytes"]),
        ],
    ]
    rows += [
        [f"{label} --json (fresh process)", ms(q["median_s"]), ms(q["min_s"]), ms(q["max_s"])]
        for label, q in queries.items()
    ]
    print_table("defensemap", ["Measurement", "Median", "Min", "Max"], rows)

    mitre = lookups.get("mitreattack")
    dm_lookup = lookups["defensemap_describe_median_s"]
    if mitre:
        rows = [
            [
                "load the bundle (one-time)",
                ms(imp["median_s"]),
                ms(mitre["load_s"]),
                ratio(mitre["load_s"], imp["median_s"]),
            ],
            [
                "peak RSS of that process",
                mib(imp["max_rss_bytes"]),
                mib(mitre["max_rss_bytes"]),
                ratio(mitre["max_rss_bytes"], imp["max_rss_bytes"]),
            ],
            [
                f"fresh process → {LOOKUPS[0][0]} answered",
                ms(queries[TARGET_QUERY]["median_s"]),
                ms(mitre["fresh_process_to_answer_s"]),
                ratio(mitre["fresh_process_to_answer_s"], queries[TARGET_QUERY]["median_s"]),
            ],
        ]
        rows += [
            [
                f"lookup {ident} (in-process, median of {LOOKUP_REPEAT})",
                ms(dm_lookup[ident]),
                ms(mitre["lookup_median_s"][ident]),
                ratio(mitre["lookup_median_s"][ident], dm_lookup[ident]),
            ]
            for ident, _, _ in LOOKUPS
        ]
        print_table(
            f"defensemap vs mitreattack-python {mitre['version']}",
            ["Measurement", "defensemap", "mitreattack-python", "mitre ÷ defensemap"],
            rows,
        )
    else:
        print(
            "\nmitreattack-python not measured (not importable or --no-mitre); "
            "install it with: .venv/bin/pip install -e '.[bench]'"
        )

    rows = []
    for t in result["targets"]:
        show = mib if t["unit"] == "B" else ms
        rows.append(
            [
                t["target"],
                show(t["value"]),
                f"≤ {show(t['limit'])}",
                "PASS" if t["pass"] else "FAIL",
            ]
        )
    for label, q in queries.items():
        if label != TARGET_QUERY:
            rows.append(
                [
                    f"fresh process → {label} --json, median (info)",
                    ms(q["median_s"]),
                    f"≤ {ms(QUERY_SECONDS)}",
                    "ok" if q["median_s"] <= QUERY_SECONDS else "over",
                ]
            )
    print_table("Targets", ["Target", "Measured", "Limit", "Result"], rows)


# --- main ------------------------------------------------------------------------------------


def base_parser(doc: str) -> argparse.ArgumentParser:
    """The options every fresh-process benchmark shares (bench_mappings uses it too)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help=f"shared data directory (default: {DEFAULT_DATA})",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="runs per measurement; the median is reported (default: 5)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results here")
    parser.add_argument("--no-fail", action="store_true", help="exit 0 even when a target fails")
    parser.add_argument(
        "--cli",
        choices=["auto", "script", "module"],
        default="auto",
        help="how to start defensemap: console script next to sys.executable "
        "or `python -m defensemap` (default: auto, script first)",
    )
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "ARG"), help=argparse.SUPPRESS)
    return parser


def checked_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = base_parser(__doc__)
    parser.add_argument(
        "--no-mitre", action="store_true", help="skip the mitreattack-python comparison"
    )
    return checked_args(parser, argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        kind, arg = args.worker
        work = {"mitreattack": worker_mitreattack, "defensemap": worker_defensemap}[kind]
        print(json.dumps(work(arg)))
        return 0

    bundle = (args.data / ENTERPRISE).resolve()
    if not bundle.is_file():
        sys.exit(f"missing {bundle}; pass --data DIR (the directory holding attack/)")
    cli = cli_command(args.cli)
    env = child_env()
    with_mitre = not args.no_mitre and importlib.util.find_spec("mitreattack") is not None
    parent_rss = self_rss()
    with tempfile.TemporaryDirectory(prefix="defensemap-bench-") as tmp:
        home = Path(tmp) / "home"
        print(f"importing {bundle.name} {args.repeat}× (fresh home each time) ...", file=sys.stderr)
        imported = bench_import(cli, bundle, args.repeat, env, home)
        print("fresh-process queries ...", file=sys.stderr)
        queries = bench_queries(cli, home, args.repeat, env)
        print("in-process lookups ...", file=sys.stderr)
        lookups = bench_lookups(home, bundle, env, with_mitre)

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
            "bundle": str(bundle),
            "cli": cli,
            "parent_max_rss_bytes": parent_rss,
        },
        "import": imported,
        "queries": queries,
        "lookups": lookups,
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
