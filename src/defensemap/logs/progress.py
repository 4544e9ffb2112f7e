"""Progress of an ingest, in bytes over all files, reported to a callback."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import duckdb

from defensemap.logs.sql import _one

ProgressCallback = Callable[[int, int], None]

_PLANNING = 0.6  # share of the work before loading starts


class _Progress:
    """Bytes-based progress over all files; DuckDB queries are polled from a thread."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        callback: ProgressCallback | None,
        sizes: list[int],
    ) -> None:
        self.con = con
        self.callback = callback
        self.sizes = [max(s, 1) for s in sizes]
        self.total = sum(self.sizes)
        self.starts = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.index = 0
        self.lo = self.hi = 0.0
        self.reported = -1
        self.lock = threading.Lock()
        self.saved: list[tuple[str, Any]] = []
        self.polling = False

    def __enter__(self) -> _Progress:
        if self.callback is not None:
            try:
                for setting in ("enable_progress_bar", "enable_progress_bar_print"):
                    value = _one(self.con.execute("SELECT current_setting(?)", [setting]))
                    self.saved.append((setting, value[0] if value else None))
                self.con.execute("SET enable_progress_bar = true")
                self.con.execute("SET enable_progress_bar_print = false")
                self.polling = True
            except duckdb.Error:
                self.polling = False
            self._report(0)
        return self

    def __exit__(self, *exc: object) -> None:
        for setting, value in self.saved:
            with suppress(duckdb.Error):
                self.con.execute(f"SET {setting} = {'true' if value else 'false'}")

    def file(self, index: int) -> None:
        self.index = index
        self.lo = self.hi = 0.0

    def stage(self, lo: float, hi: float) -> None:
        self.lo, self.hi = lo, hi
        self.fraction(0.0)

    def fraction(self, done: float) -> None:
        """``done`` of the current stage. A file's stages run from 0 to 1: planning (reading
        and checking) up to _PLANNING, loading after it; all files are planned before any is
        loaded, so the bar covers planning of every file, then loading of every file."""
        if self.callback is None:
            return
        done = min(max(done, 0.0), 1.0)
        within = self.lo + (self.hi - self.lo) * done
        if within <= _PLANNING:
            base, weight, part = 0.0, _PLANNING, within / _PLANNING
        else:
            base, weight, part = _PLANNING, 1 - _PLANNING, (within - _PLANNING) / (1 - _PLANNING)
        position = self.starts[self.index] + self.sizes[self.index] * part
        self._report(int(self.total * base + weight * position))

    def finish(self) -> None:
        if self.callback is not None:
            self._report(self.total)

    def _report(self, value: int) -> None:
        assert self.callback is not None
        with self.lock:
            if value <= self.reported:
                return
            self.reported = value
        self.callback(value, self.total)

    @contextmanager
    def query(self) -> Iterator[None]:
        """Report DuckDB's progress on the running query until the block ends."""
        if self.callback is None or not self.polling:
            yield
            return
        stop = threading.Event()

        def poll() -> None:
            while not stop.wait(0.2):
                with suppress(duckdb.Error, RuntimeError):
                    percent = self.con.query_progress()
                    if percent >= 0:
                        self.fraction(percent / 100)

        thread = threading.Thread(target=poll, name="defensemap-ingest-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
        self.fraction(1.0)
