"""Browser tests: the real server (uvicorn on a free loopback port, in a thread) and Debian's
chromium driven by Playwright. Locally a missing chromium skips; in CI (CI=true) it fails,
since `./dev test` installs it."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("DEFENSEMAP_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1440, "height": 900}


def require_chromium() -> Path:
    if not CHROMIUM.is_file():
        message = f"{CHROMIUM} is missing (`./dev test` installs Debian's chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(home: Path) -> Iterator[str]:
    """`create_app` over ``home`` served by uvicorn on loopback; yields the base URL."""
    import uvicorn

    from defensemap.config import Settings
    from defensemap.web.app import create_app

    port = _free_port()
    config = uvicorn.Config(
        create_app(Settings(home)), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def web_home(tmp_path_factory: pytest.TempPathFactory, loaded_store_path: Path) -> Path:
    """A data home holding a copy of the session store (enterprise 18.1 + every mapping)."""
    home = tmp_path_factory.mktemp("web-home")
    shutil.copy(loaded_store_path, home / "defensemap.sqlite")
    return home


@pytest.fixture(scope="session")
def server(web_home: Path) -> Iterator[str]:
    with running_server(web_home) as url:
        yield url


@pytest.fixture(scope="session")
def browser_context() -> Iterator[Any]:
    """One persistent chromium context with a fresh user-data dir, clipboard allowed."""
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory(prefix="defensemap-chromium-") as profile,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(executable),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
            color_scheme="light",
            permissions=["clipboard-read", "clipboard-write"],
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: Any) -> Iterator[Any]:
    """A new tab; any JavaScript dialog (alert/confirm/prompt) it opens is recorded in
    ``page.dialogs`` and dismissed, and console errors in ``page.errors``."""
    tab = browser_context.new_page()
    dialogs: list[str] = []
    errors: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    tab.on("dialog", on_dialog)
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.dialogs = dialogs
    tab.errors = errors
    try:
        yield tab
    finally:
        tab.close()
