#!/usr/bin/env python3
"""Measure the detection library and the SigmaHQ community rules (issue 6).

* the library: ``defensemap test`` over every detection (cases, seconds) and ``content
  validate`` (findings, seconds), in-process;
* every library detection and every SigmaHQ rule through every conversion target: exact /
  approximate / refused counts per target, and the most frequent refusal reasons;
* ``import sigma`` of the whole SigmaHQ snapshot (found / loaded / skipped, seconds).

Run it with the project's interpreter: ``.venv/bin/python bench/bench_library.py``; results
are printed and, with ``--json FILE``, written as JSON. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from defensemap.engine.testing import run_detection_tests
from defensemap.library.convert import TARGETS, convert, convert_detection
from defensemap.library.loader import load_library
from defensemap.sources.sigma_rules import scan_rules

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _library(report: dict[str, Any]) -> None:
    library = load_library()
    started = time.perf_counter()
    results = [run_detection_tests(d) for d in library.detections]
    cases = sum(len(r.cases) for r in results)
    report["library"] = {
        "detections": len(library.detections),
        "techniques": len({t for d in library.detections for t in d.detection.techniques}),
        "test_checks": cases,
        "failing": [r.title for r in results if not r.ok],
        "test_seconds": round(time.perf_counter() - started, 2),
    }
    counts: dict[str, Counter[str]] = {t: Counter() for t in TARGETS}
    for loaded in library.detections:
        for target in TARGETS:
            counts[target][convert_detection(loaded.detection, target).status] += 1
    report["library"]["conversions"] = {t: dict(c) for t, c in counts.items()}


def _community(data: Path, report: dict[str, Any]) -> None:
    started = time.perf_counter()
    scan = scan_rules([data / "sigma"])
    loaded_seconds = time.perf_counter() - started
    counts: dict[str, Counter[str]] = {t: Counter() for t in TARGETS}
    reasons: dict[str, Counter[str]] = {t: Counter() for t in TARGETS}
    started = time.perf_counter()
    for rule in scan.rules:
        document = yaml.safe_load(rule.yaml)
        for target in TARGETS:
            result = convert(document, target)
            counts[target][result.status] += 1
            if result.status == "refused" and result.notes:
                reasons[target][result.notes[0].split(":")[0][:80]] += 1
    report["community"] = {
        "files": scan.found,
        "loaded": len(scan.rules),
        "skipped": len(scan.skipped),
        "load_seconds": round(loaded_seconds, 2),
        "convert_seconds": round(time.perf_counter() - started, 2),
        "conversions": {t: dict(c) for t, c in counts.items()},
        "top_refusals": {t: r.most_common(3) for t, r in reasons.items()},
    }


def _print(report: dict[str, Any]) -> None:
    lib = report["library"]
    print(
        f"library: {lib['detections']} detections, {lib['techniques']} techniques;"
        f" defensemap test: {lib['test_checks']} case checks in {lib['test_seconds']} s,"
        f" failing: {lib['failing'] or 'none'}"
    )
    for name in ("library", "community"):
        if name not in report:
            continue
        print(f"\n{name} conversions (exact / approximate / refused):")
        for target, counts in report[name]["conversions"].items():
            row = " / ".join(str(counts.get(s, 0)) for s in ("exact", "approximate", "refused"))
            print(f"  {target:15} {row}")
    if "community" in report:
        com = report["community"]
        print(
            f"\ncommunity: {com['files']} files, {com['loaded']} loaded, {com['skipped']} skipped"
            f" (scan {com['load_seconds']} s); conversions {com['convert_seconds']} s"
        )
        for target, reasons in com["top_refusals"].items():
            print(f"  {target:15} " + "; ".join(f"{n}× {r}" for r, n in reasons))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data directory")
    parser.add_argument("--no-community", action="store_true", help="library only")
    parser.add_argument("--json", type=Path, help="write the report as JSON")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {
        "machine": f"{platform.platform()}, Python {platform.python_version()}",
    }
    _library(report)
    if not args.no_community:
        _community(args.data, report)
    _print(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if report["library"]["failing"] else 0


if __name__ == "__main__":
    sys.exit(main())
