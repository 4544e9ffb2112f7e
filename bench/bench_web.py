#!/usr/bin/env python3
"""Measure the web UI (issue 8): page latency under load on loopback, and build-site.

`defensemap serve` runs as its own process; the load generator (bench/loadgen.py: raw
keep-alive HTTP/1.1 over asyncio) runs in this one. Measured: one client alone (service
time); first views of enterprise technique pages (render cost before a page is kept); the
target run — ``--clients`` connections offering ``--rate`` requests/s in total for
``--seconds`` (open loop, latency from each request's scheduled time); and the capacity
(the same connections sending back to back). Then `defensemap build-site` of the whole site,
and the technique pages alone (every loaded domain) rendered in-process (target ≤ 60 s). See
bench/README.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench_attack import base_parser, checked_args, child_env, cli_command, print_table
from bench_coverage import _load_home
from loadgen import Tally, closed_loop, open_loop

URLS = (
    "/techniques/T1021.007",
    "/techniques/T1021.007",
    "/techniques/T1059.001",
    "/groups/G0016",
    "/capabilities/nist_800_53/IA-05",
    "/api/v1/techniques/T1021.007",
    "/",
)
TARGETS = {"p50_ms": 10.0, "p99_ms": 50.0, "errors": 0, "technique_pages_s": 60.0}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(cli: list[str], home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    argv = [*cli, "--home", str(home), "serve", "--port", str(port)]
    server = subprocess.Popen(argv, env=child_env(), stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/api/v1/status", timeout=2).status_code == 200:
                return server, url
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    sys.exit("defensemap serve did not answer within 30 s")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summarise(tally: Tally, clients: int, rate: float | None = None) -> dict[str, Any]:
    lat = tally.latencies
    return {
        "clients": clients,
        "offered_per_s": rate,
        "seconds": round(tally.elapsed, 1),
        "requests": len(lat),
        "requests_per_s": round(len(lat) / tally.elapsed, 1),
        "errors": tally.errors,
        "error_examples": tally.error_examples,
        "p50_ms": round(percentile(lat, 0.50) * 1000, 2),
        "p95_ms": round(percentile(lat, 0.95) * 1000, 2),
        "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
        "max_ms": round(max(lat) * 1000, 1),
        "p50_ms_by_url": {
            url: round(percentile(v, 0.5) * 1000, 2) for url, v in sorted(tally.by_path.items())
        },
    }


def first_views(base: str, home: Path, count: int) -> dict[str, Any]:
    """Enterprise technique pages nobody has opened yet: what a page costs before it is kept."""
    from defensemap.config import Settings
    from defensemap.web.site import plan_site

    entries, _ = plan_site(Settings(home), "")
    kept = {"/techniques/T1021.007", "/techniques/T1059.001"}
    urls = [e.url for e in entries if e.kind == "technique" and e.url not in kept][:count]
    seconds = []
    with httpx.Client(base_url=base, timeout=60) as http:
        for url in urls:
            start = time.perf_counter()
            http.get(url).raise_for_status()
            seconds.append(time.perf_counter() - start)
    return {
        "pages": len(seconds),
        "p50_ms": round(percentile(seconds, 0.5) * 1000, 1),
        "p99_ms": round(percentile(seconds, 0.99) * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
    }


def bench_build_site(cli: list[str], home: Path, out: Path) -> dict[str, Any]:
    start = time.perf_counter()
    run = subprocess.run(
        [*cli, "--home", str(home), "build-site", str(out)],
        env=child_env(),
        capture_output=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        sys.exit(f"build-site failed: {run.stderr.decode(errors='replace')}")
    pages = sum(1 for _ in out.rglob("index.html"))
    return {"seconds": round(seconds, 1), "pages": pages, "summary": run.stderr.decode().strip()}


def bench_technique_pages(home: Path, out: Path) -> dict[str, Any]:
    """Only the technique pages (every loaded domain), rendered the way build-site does."""
    from defensemap.config import Settings
    from defensemap.web.site import plan_site, prepare_out, render_pages

    settings = Settings(home)
    entries, _ = plan_site(settings, "")
    urls = [e.url for e in entries if e.kind == "technique"]
    prepare_out(out)
    jobs = min(4, len(os.sched_getaffinity(0)))
    start = time.perf_counter()
    statuses = render_pages(settings, out, urls, "", jobs, lambda done: None)
    seconds = time.perf_counter() - start
    failed = [url for url, code in statuses if code != 200]
    return {"seconds": round(seconds, 1), "pages": len(urls), "failed": failed, "jobs": jobs}


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--home", type=Path, help="use this loaded data home (else build one)")
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients (200)")
    parser.add_argument("--rate", type=float, default=1000, help="offered requests/s (1000)")
    parser.add_argument("--seconds", type=float, default=60, help="load duration (60)")
    parser.add_argument("--first-views", type=int, default=100, help="cold technique pages")
    parser.add_argument("--no-build", action="store_true", help="skip the build-site timings")
    args = checked_args(parser, argv)
    cli = cli_command(args.cli)
    with tempfile.TemporaryDirectory(prefix="defensemap-bench-web-") as tmp:
        home = args.home or Path(tmp) / "home"
        if not args.home:
            print("building a data home ...", file=sys.stderr)
            _load_home(args.data, home)
        server, base = start_server(cli, home)
        try:
            result = _serve_measurements(base, home, args)
        finally:
            server.terminate()
            server.wait(10)
        result["machine"] = (
            f"{platform.platform()}, Python {platform.python_version()}, "
            f"{len(os.sched_getaffinity(0))} CPUs, load {os.getloadavg()[0]:.1f}"
        )
        if not args.no_build:
            print("build-site (whole site) ...", file=sys.stderr)
            result["build_site"] = bench_build_site(cli, home, Path(tmp) / "site")
            print("technique pages only ...", file=sys.stderr)
            result["technique_pages"] = bench_technique_pages(home, Path(tmp) / "techniques")
    _print(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if _passed(result) or args.no_fail else 1


def _serve_measurements(base: str, home: Path, args: Any) -> dict[str, Any]:
    host, port = base.removeprefix("http://").split(":")
    warm = {}
    for url in dict.fromkeys(URLS):
        start = time.perf_counter()
        httpx.get(base + url, timeout=60).raise_for_status()
        warm[url] = round((time.perf_counter() - start) * 1000, 1)
    print("1 client ...", file=sys.stderr)
    single = asyncio.run(closed_loop(host, int(port), URLS, 1, min(args.seconds, 10)))
    print(f"first views of {args.first_views} technique pages ...", file=sys.stderr)
    cold = first_views(base, home, args.first_views)
    print(
        f"{args.clients} clients, {args.rate:g} req/s offered, {args.seconds:g} s ...",
        file=sys.stderr,
    )
    offered = asyncio.run(open_loop(host, int(port), URLS, args.clients, args.rate, args.seconds))
    print(f"capacity: {args.clients} clients back to back ...", file=sys.stderr)
    capacity = asyncio.run(closed_loop(host, int(port), URLS, args.clients, 20))
    return {
        "first_render_ms": warm,
        "single_client": summarise(single, 1),
        "first_views": cold,
        "load": summarise(offered, args.clients, args.rate),
        "capacity": summarise(capacity, args.clients),
    }


def _passed(result: dict[str, Any]) -> bool:
    load = result["load"]
    ok = (
        load["p50_ms"] <= TARGETS["p50_ms"]
        and load["p99_ms"] <= TARGETS["p99_ms"]
        and load["errors"] == TARGETS["errors"]
    )
    pages = result.get("technique_pages")
    return ok and (pages is None or pages["seconds"] <= TARGETS["technique_pages_s"])


def _print(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=2))
    runs = (
        ("1 client, back to back", result["single_client"]),
        ("offered load (open loop)", result["load"]),
        ("capacity (closed loop)", result["capacity"]),
    )
    rows = [
        [
            f"{label}: {run['clients']} clients × {run['seconds']} s"
            + (f", {run['offered_per_s']:g} req/s offered" if run["offered_per_s"] else ""),
            f"{run['p50_ms']} / {run['p95_ms']} / {run['p99_ms']} ms",
            f"{run['requests_per_s']} req/s",
            str(run["errors"]),
        ]
        for label, run in runs
    ]
    cold = result["first_views"]
    rows.append(
        [
            f"first views of {cold['pages']} technique pages, one at a time",
            f"{cold['p50_ms']} / - / {cold['p99_ms']} ms",
            "",
            "0",
        ]
    )
    print_table("Pages", ["Run", "p50 / p95 / p99", "Throughput", "Errors"], rows)
    if "build_site" in result:
        b, t = result["build_site"], result["technique_pages"]
        print_table(
            "build-site",
            ["Measurement", "Pages", "Seconds", "Target"],
            [
                ["whole site (fresh process)", str(b["pages"]), str(b["seconds"]), ""],
                [
                    f"technique pages ({t['jobs']} processes)",
                    str(t["pages"]),
                    str(t["seconds"]),
                    f"≤ {TARGETS['technique_pages_s']:g} s",
                ],
            ],
        )


if __name__ == "__main__":
    sys.exit(main())
