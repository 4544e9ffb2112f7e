#!/usr/bin/env python3
"""Measure threat-informed coverage (issue 7): 20 groups over all of enterprise ATT&CK.

Inputs: ATT&CK enterprise 18.1, every Mappings Explorer file, every capability of NIST 800-53
rev5 implemented as controls, and every detection deployed (the library and all SigmaHQ
community rules). Measured: ``compute_coverage`` in-process (median of ``--repeat`` runs;
target ≤ 1 s), the inputs it reads (profile, library, community rules), and one fresh-process
``defensemap coverage … --json`` run end to end.

Shares its process helpers with bench_attack.py; see bench/README.md.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bench_attack import (
    base_parser,
    check,
    checked_args,
    child_env,
    cli_command,
    median,
    print_table,
    run_child,
)
from defensemap.coverage.compute import compute_coverage
from defensemap.coverage.inputs import community_rules, framework_controls, library_rules
from defensemap.kb.threat import resolve_profile
from defensemap.library.loader import load_library
from defensemap.model.coverage import CoverageInputs, CoverageReport
from defensemap.store.db import Store, open_store

T = TypeVar("T")
TARGET_SECONDS = 1.0
ENTERPRISE = Path("attack") / "enterprise-attack-18.1.json"
MAPPINGS = Path("mappings") / "mappings"
SIGMA = Path("sigma")
GROUPS = (
    "G0016", "G0007", "G0032", "G0096", "G0010", "G0034", "G0046", "G0050", "G0006", "G0022",
    "G0045", "G0049", "G0059", "G0069", "G0094", "G0102", "G0114", "G0125", "G1004", "G0035",
)  # fmt: skip


def _timed(work: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = work()
    return result, time.perf_counter() - start


def _load_home(data: Path, home: Path) -> None:
    """A data home with enterprise 18.1, every mapping file and the SigmaHQ rules."""
    from defensemap.sources.attack_stix import load_bundle
    from defensemap.sources.mappings import collect_files, load_mapping_file
    from defensemap.sources.sigma_rules import scan_rules
    from defensemap.store.attack import ingest_attack
    from defensemap.store.mappings import ingest_mappings
    from defensemap.store.sigma import replace_rules

    home.mkdir(parents=True, exist_ok=True)
    store = open_store(home / "defensemap.sqlite", write=True)
    try:
        ingest_attack(store, [load_bundle(data / ENTERPRISE)])
        files = collect_files([data / MAPPINGS])
        ingest_mappings(store, [load_mapping_file(p) for p in files])
        replace_rules(store, scan_rules([data / SIGMA]))
    finally:
        store.close()


def _inputs(store: Store, timings: dict[str, float]) -> CoverageInputs:
    profile, timings["resolve_profile"] = _timed(lambda: resolve_profile(store, groups=GROUPS))
    library, timings["load_library"] = _timed(load_library)
    community, timings["community_rules"] = _timed(lambda: community_rules(store))
    controls, timings["framework_controls"] = _timed(
        lambda: framework_controls(store, "nist_800_53", "rev5")
    )
    return CoverageInputs(
        attack_version="18.1",
        profile=profile,
        controls=tuple(controls),
        rules=(*library_rules(library), *community),
    )


def _in_process(home: Path, repeat: int) -> tuple[dict[str, Any], CoverageReport]:
    store = open_store(home / "defensemap.sqlite")
    try:
        timings: dict[str, float] = {}
        inputs = _inputs(store, timings)
        library = load_library()
        runs = []
        report = None
        for _ in range(repeat):
            report, seconds = _timed(lambda: compute_coverage(store, inputs, library=library))
            runs.append(seconds)
    finally:
        store.close()
    assert report is not None
    return {"inputs_seconds": timings, "compute_runs": runs, "compute_median": median(runs)}, report


def _fresh_process(cli: list[str], home: Path) -> dict[str, Any]:
    groups = [arg for group in GROUPS for arg in ("--group", group)]
    argv = [
        *cli, "--home", str(home), "coverage", *groups, "--framework-all", "nist_800_53",
        "--detections", "all", "--community", "--rules", "none", "--json",
    ]  # fmt: skip
    run = check(run_child(argv, child_env()), "defensemap coverage")
    data = json.loads(run.stdout)["data"]
    return {
        "seconds": run.seconds,
        "peak_rss_mib": round(run.max_rss / 2**20),
        "json_mib": round(len(run.stdout) / 2**20, 1),
        "techniques": data["summary"]["techniques"],
    }


def _describe(report: CoverageReport) -> dict[str, Any]:
    inputs = report.inputs
    return {
        "groups": len(inputs.profile.actors),
        "techniques": len(report.techniques),
        "procedures": len(inputs.profile.procedures),
        "controls": len(inputs.controls),
        "rules": len(inputs.rules),
        "control_hits": sum(len(t.controls) for t in report.techniques),
        "detection_hits": sum(len(t.detections) for t in report.techniques),
        "gaps": len(report.gaps),
        "average_score": round(sum(t.score for t in report.techniques) / len(report.techniques), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__ or "")
    parser.add_argument(
        "--home", type=Path, help="use this loaded data home instead of building one"
    )
    args = checked_args(parser, argv)
    cli = cli_command(args.cli)
    with tempfile.TemporaryDirectory(prefix="defensemap-bench-") as tmp:
        home = args.home or Path(tmp) / "home"
        setup = 0.0
        if not args.home:
            _, setup = _timed(lambda: _load_home(args.data, home))
        measured, report = _in_process(home, args.repeat)
        fresh = _fresh_process(cli, home)
    result = {
        "machine": f"{platform.platform()}, Python {platform.python_version()}",
        "setup_seconds": round(setup, 1),
        "report": _describe(report),
        **measured,
        "cli": fresh,
    }
    _print(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    passed = result["compute_median"] <= TARGET_SECONDS
    return 0 if passed or args.no_fail else 1


def _print(result: dict[str, Any]) -> None:
    print(json.dumps({"report": result["report"], "inputs_seconds": result["inputs_seconds"]}))
    rows = [
        [
            "compute_coverage (median)",
            f"{result['compute_median']:.3f} s",
            f"{TARGET_SECONDS:g} s",
            "ok" if result["compute_median"] <= TARGET_SECONDS else "FAIL",
        ],
        ["defensemap coverage --json (fresh process)", f"{result['cli']['seconds']:.2f} s", "", ""],
    ]
    print_table("Coverage", ["Measurement", "Measured", "Target", "Result"], rows)


if __name__ == "__main__":
    sys.exit(main())
