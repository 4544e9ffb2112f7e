#!/usr/bin/env python3
"""Benchmark ``defensemap logs ingest``: throughput per format and peak RSS.

For each case (DeviceProcessEvents as NDJSON, CSV and Parquet, plus the generator's Sysmon
NDJSON as a second, Windows-style NDJSON case) this writes ``--rows`` synthetic rows with
:func:`defensemap.generate.telemetry.generate`, then runs
``defensemap --home H logs ingest FILE --db H/logs.duckdb --json`` in a fresh child process
``--repeat`` times (fresh database each time) and reports the median wall time as rows/s and
MB/s (input file size / time) and the child's peak RSS (``os.wait4``).

``--big-gb X`` also builds an NDJSON file of about X GB (a generated chunk repeated; rows are
not renumbered) and ingests it once, checking the issue's target: peak RSS ≤ 2 GiB.

All scratch data lives in a temporary directory (``--tmp``, default the system one) and is
deleted at the end. Run it with the project's interpreter:
``.venv/bin/python bench/bench_ingest.py [--rows N] [--repeat N] [--big-gb X] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIG_RSS_BYTES = 2 << 30  # issue: a 2 GB NDJSON ingests with peak RSS ≤ 2 GiB
MIB = 1 << 20
MB = 1_000_000
GB = 1_000_000_000
BIG_CHUNK_ROWS = 100_000  # ~245 MB of NDJSON (all catalog columns)
MIN_FREE_FACTOR = 4  # big file + its DuckDB database + temp space, with margin

# label -> (generator table, file suffix)
CASES: dict[str, tuple[str, str]] = {
    "ndjson": ("DeviceProcessEvents", ".ndjson"),
    "csv": ("DeviceProcessEvents", ".csv"),
    "parquet": ("DeviceProcessEvents", ".parquet"),
    "sysmon-ndjson": ("Sysmon", ".ndjson"),
}


# --- child processes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One child process: wall time, its own peak RSS (bytes) and what it printed."""

    seconds: float
    max_rss: int
    returncode: int
    stdout: bytes
    stderr: bytes


def run_child(argv: list[str], env: dict[str, str]) -> Run:
    """Run ``argv`` to completion and reap it with ``os.wait4`` (peak RSS of this child only)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(seconds, usage.ru_maxrss * 1024, proc.returncode, out.read(), err.read())


def cli_command() -> list[str]:
    script = Path(sys.executable).parent / "defensemap"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "defensemap"]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DEFENSEMAP_HOME", None)
    env.setdefault("NO_COLOR", "1")
    return env


def ingest_once(cli: list[str], path: Path, home: Path, env: dict[str, str]) -> tuple[Run, int]:
    """Ingest ``path`` into a fresh database under ``home``; the run and the rows loaded."""
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    argv = [*cli, "--home", str(home), "logs", "ingest", str(path)]
    argv += ["--db", str(home / "logs.duckdb"), "--json"]
    run = run_child(argv, env)
    if run.returncode != 0:
        sys.exit(
            f"ingest of {path} failed with exit code {run.returncode}:\n"
            f"{run.stderr.decode(errors='replace')}{run.stdout.decode(errors='replace')}"
        )
    doc = json.loads(run.stdout)
    rows = sum(int(f["rows"]) for f in doc["data"]["files"])
    shutil.rmtree(home, ignore_errors=True)
    return run, rows


# --- measurements ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    case: str
    table: str
    rows: int
    file_bytes: int
    runs: int
    seconds: float  # median wall time of the child
    seconds_all: list[float]
    rows_per_s: float
    mb_per_s: float
    max_rss: int  # largest peak RSS over the runs
    generate_seconds: float


def generate_file(table: str, rows: int, path: Path, env: dict[str, str]) -> float:
    """Write the file in a child process; the seconds it took.

    Not in this process: a child's ``ru_maxrss`` starts from the RSS of the process that
    spawned it (``posix_spawn``/``vfork`` shares its memory until exec), so this process must
    stay small (no DuckDB, no generated data) for the ingest children's peaks to be their own.
    """
    code = (
        "import sys; from pathlib import Path; "
        "from defensemap.generate.telemetry import generate; "
        "generate(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), seed=1)"
    )
    run = run_child([sys.executable, "-c", code, table, str(rows), str(path)], env)
    if run.returncode != 0:
        sys.exit(f"generating {path} failed:\n{run.stderr.decode(errors='replace')}")
    Path(f"{path}.truth.json").unlink(missing_ok=True)
    return run.seconds


def bench_case(
    label: str, cli: list[str], work: Path, rows: int, repeat: int, env: dict[str, str]
) -> Result:
    table, suffix = CASES[label]
    path = work / f"{label}{suffix}"
    generated = generate_file(table, rows, path, env)
    size = path.stat().st_size
    times: list[float] = []
    rss: list[int] = []
    loaded = 0
    for _ in range(repeat):
        run, loaded = ingest_once(cli, path, work / "home", env)
        times.append(run.seconds)
        rss.append(run.max_rss)
    seconds = statistics.median(times)
    path.unlink()
    return Result(
        label,
        table,
        loaded,
        size,
        repeat,
        seconds,
        times,
        loaded / seconds,
        size / MB / seconds,
        max(rss),
        generated,
    )


def build_big(work: Path, target_bytes: int, env: dict[str, str]) -> tuple[Path, int]:
    """An NDJSON file of about ``target_bytes``: one generated chunk repeated (not renumbered)."""
    chunk = work / "chunk.ndjson"
    generate_file("DeviceProcessEvents", BIG_CHUNK_ROWS, chunk, env)
    chunk_size = chunk.stat().st_size
    copies = max(1, round(target_bytes / chunk_size))
    big = work / "big.ndjson"
    with big.open("wb") as out:
        for _ in range(copies):
            with chunk.open("rb") as src:
                shutil.copyfileobj(src, out, 16 * MIB)
    chunk.unlink()
    return big, copies


def bench_big(cli: list[str], work: Path, gb: float, env: dict[str, str]) -> dict[str, Any]:
    free = shutil.disk_usage(work).free
    need = int(gb * GB * MIN_FREE_FACTOR)
    if free < need:
        print(f"skipping --big-gb {gb}: {free / GB:.1f} GB free under {work}, want {need / GB:.1f}")
        return {"skipped": True, "free_bytes": free, "needed_bytes": need}
    start = time.perf_counter()
    big, copies = build_big(work, int(gb * GB), env)
    built = time.perf_counter() - start
    size = big.stat().st_size
    try:
        run, rows = ingest_once(cli, big, work / "home-big", env)
    finally:
        big.unlink(missing_ok=True)
    return {
        "skipped": False,
        "file_bytes": size,
        "chunk_copies": copies,
        "build_seconds": built,
        "rows": rows,
        "seconds": run.seconds,
        "rows_per_s": rows / run.seconds,
        "mb_per_s": size / MB / run.seconds,
        "max_rss": run.max_rss,
        "rss_target": BIG_RSS_BYTES,
        "pass": run.max_rss <= BIG_RSS_BYTES,
    }


# --- output ----------------------------------------------------------------------------------


def print_table(results: list[Result], big: dict[str, Any] | None) -> None:
    head = (
        f"{'case':<14} {'table':<20} {'rows':>10} {'file MB':>9} {'median s':>9} "
        f"{'rows/s':>11} {'MB/s':>8} {'peak RSS MiB':>13}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r.case:<14} {r.table:<20} {r.rows:>10,} {r.file_bytes / MB:>9.1f} "
            f"{r.seconds:>9.2f} {r.rows_per_s:>11,.0f} {r.mb_per_s:>8.1f} "
            f"{r.max_rss / MIB:>13.0f}"
        )
    if big is None:
        return
    print()
    if big["skipped"]:
        print("big NDJSON: skipped (not enough free disk)")
        return
    verdict = "PASS" if big["pass"] else "FAIL"
    print(
        f"big NDJSON: {big['file_bytes'] / GB:.2f} GB, {big['rows']:,} rows in "
        f"{big['seconds']:.1f} s ({big['rows_per_s']:,.0f} rows/s, {big['mb_per_s']:.1f} MB/s); "
        f"peak RSS {big['max_rss'] / MIB:.0f} MiB vs target ≤ {BIG_RSS_BYTES / MIB:.0f} MiB: "
        f"{verdict}"
    )


def environment() -> dict[str, Any]:
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "duckdb": metadata.version("duckdb"),
        "parent_peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per format")
    parser.add_argument("--repeat", type=int, default=3, help="ingest runs per format")
    parser.add_argument(
        "--formats", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}"
    )
    parser.add_argument("--big-gb", type=float, default=0.0, help="also ingest ~X GB of NDJSON")
    parser.add_argument("--tmp", type=Path, default=None, help="scratch directory parent")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    labels = [s.strip() for s in args.formats.split(",") if s.strip()]
    unknown = [s for s in labels if s not in CASES]
    if unknown:
        parser.error(f"unknown format(s) {unknown}; choose from {list(CASES)}")
    if args.rows < 1 or args.repeat < 1:
        parser.error("--rows and --repeat must be at least 1")

    cli = cli_command()
    env = child_env()
    results: list[Result] = []
    big: dict[str, Any] | None = None
    work = Path(tempfile.mkdtemp(prefix="defensemap-bench-ingest-", dir=args.tmp))
    try:
        for label in labels:
            print(
                f"[{label}] generating {args.rows:,} rows, ingesting x{args.repeat} ...",
                file=sys.stderr,
                flush=True,
            )
            results.append(bench_case(label, cli, work, args.rows, args.repeat, env))
        if args.big_gb > 0:
            print(
                f"[big] building ~{args.big_gb} GB NDJSON and ingesting ...",
                file=sys.stderr,
                flush=True,
            )
            big = bench_big(cli, work, args.big_gb, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print_table(results, big)
    if args.json:
        doc = {
            "environment": environment(),
            "rows": args.rows,
            "repeat": args.repeat,
            "formats": [asdict(r) for r in results],
            "big": big,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    if big and not big["skipped"] and not big["pass"]:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
