#!/usr/bin/env python3
"""Screenshots of the main pages for the README (docs/screenshots/, 1440×900, light scheme).

Serves ``--home`` (a loaded data home) on a free loopback port and drives Debian's chromium
(/usr/bin/chromium, as the browser tests do)::

    .venv/bin/python bench/screenshots.py --home /path/to/loaded/home
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
# file name, URL path, element to scroll to the top (None: the top of the page)
SHOTS = (
    ("home.png", "/", None),
    ("technique-T1021.007.png", "/techniques/T1021.007", None),
    ("technique-T1021.007-detect.png", "/techniques/T1021.007", "#how-to-detect-it"),
    ("capability-nist-IA-05.png", "/capabilities/nist_800_53/IA-05", None),
    ("coverage.png", "/coverage?group=G0016", None),
)


def serve(home: Path) -> tuple[str, object]:
    import socket

    import uvicorn

    from defensemap.config import Settings
    from defensemap.web.app import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(Settings(home)), host="127.0.0.1", port=port, log_level="error")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--home", type=Path, required=True, help="a loaded data home")
    parser.add_argument("--out", type=Path, default=OUT, help=f"directory (default: {OUT})")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    base, server = serve(args.home)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1440, "height": 900},
            color_scheme="light",
        )
        page = context.new_page()
        for name, path, anchor in SHOTS:
            page.goto(base + path, wait_until="networkidle")
            if anchor:
                page.locator(anchor).evaluate("node => node.scrollIntoView({block: 'start'})")
            page.screenshot(path=str(args.out / name))
            print(args.out / name)
        context.close()
    server.should_exit = True  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
