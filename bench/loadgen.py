"""A small HTTP/1.1 load generator for the web bench: keep-alive connections over raw asyncio
streams (an HTTP client library costs more CPU per request than the server spends on a kept
page, and on 2 CPUs the generator shares the machine with the server).

Two modes:

* open loop (``open_loop``): ``clients`` connections, each sending on a fixed schedule so the
  whole run offers ``rate`` requests per second (each connection has one request in flight, so a
  stalled answer holds back that connection's next sends). Latency is taken from
  the *scheduled* send time, so a slow answer that delays the next request is charged to the
  requests it delayed (no coordinated omission).
* closed loop (``closed_loop``): every connection sends its next request when the previous one
  has answered: the server's capacity, and latency ≈ clients ÷ throughput.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class Tally:
    """Every request's latency (seconds), by path; errors are transport errors or non-200s."""

    latencies: list[float] = field(default_factory=list)
    by_path: dict[str, list[float]] = field(default_factory=dict)
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    def add(self, path: str, seconds: float, error: str | None) -> None:
        self.latencies.append(seconds)
        self.by_path.setdefault(path, []).append(seconds)
        if error is not None:
            self.errors += 1
            if len(self.error_examples) < 5:
                self.error_examples.append(f"{path}: {error}")


class Connection:
    """One keep-alive connection; reconnects after a transport error."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str) -> str | None:
        """Send one GET and read the whole answer; None when it was a 200 with a body."""
        try:
            if self._streams is None:
                self._streams = await asyncio.open_connection(self.host, self.port)
            reader, writer = self._streams
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status, length = _parse_head(head)
            body = await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            await self.close()
            return f"{type(e).__name__}: {e}"
        if status != 200 or not body:
            return f"HTTP {status}, {len(body)} bytes"
        return None

    async def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


def _parse_head(head: bytes) -> tuple[int, int]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return status, int(value)
    raise ValueError("no content-length (chunked answers are not expected here)")


async def open_loop(
    host: str, port: int, paths: tuple[str, ...], clients: int, rate: float, seconds: float
) -> Tally:
    """``clients`` connections offering ``rate`` requests/s in total for ``seconds``."""
    tally = Tally()
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.5

    async def client(n: int) -> None:
        connection = Connection(host, port)
        await connection.get("/static/style.css")  # connect before the clock starts
        k = 0
        while (due := start + (n + k * clients) / rate) < start + seconds:
            path = paths[(n + k) % len(paths)]
            k += 1
            await asyncio.sleep(max(0.0, due - loop.time()))
            error = await connection.get(path)
            tally.add(path, loop.time() - due, error)
        await connection.close()

    began = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    tally.elapsed = time.perf_counter() - began - 0.5
    return tally


async def closed_loop(
    host: str, port: int, paths: tuple[str, ...], clients: int, seconds: float
) -> Tally:
    """``clients`` connections, each sending as soon as its previous answer is in."""
    tally = Tally()
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        connection = Connection(host, port)
        k = n
        while time.perf_counter() < deadline:
            path = paths[k % len(paths)]
            k += 1
            sent = time.perf_counter()
            error = await connection.get(path)
            tally.add(path, time.perf_counter() - sent, error)
        await connection.close()

    began = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    tally.elapsed = time.perf_counter() - began
    return tally
