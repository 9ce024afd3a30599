"""What every benchmark shares: the machine, statistics, tables, processes, HTTP.

Benchmarks are plain functions that take a ``Budget`` (quick or full) and
return a ``Table``. Figures that have a target carry it, so each table says
beside every figure whether the target is met. Nothing here asserts: a missed
target is a result, not a failure.

Processes: the graphcomms server (``server.py``), the bare endpoint
(``bare.py``) and the bot (``bot.py``: webhook receiver and prompt host) run
as children of ``run.py``, each on a free port of 127.0.0.1, and are ended by
their own pid. ``time.monotonic()`` is CLOCK_MONOTONIC on Linux, one clock for
every process of the machine, so times taken in different processes subtract.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"


# -- run settings ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Budget:
    """How much each benchmark measures: ``quick`` (< 2 min) or full (< 10 min)."""

    quick: bool

    def pick(self, quick: Any, full: Any) -> Any:
        """Return ``quick`` in a quick run, ``full`` otherwise."""
        return quick if self.quick else full


# -- statistics -----------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Return the ``pct`` percentile (nearest rank), NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return float(ordered[rank - 1])


def summary(values: Sequence[float]) -> dict[str, float]:
    """Return count, p50, p90, p99 and max of ``values``."""
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else math.nan,
    }


# -- tables ---------------------------------------------------------------------


@dataclass(slots=True)
class Row:
    """One figure: what, its value, its unit, and the target it is held to."""

    name: str
    value: float | str
    unit: str = ""
    target: str = ""
    met: bool | None = None
    """True or False where there is a target; None where the row only informs."""
    note: str = ""


@dataclass(slots=True)
class Table:
    """A benchmark's result: rows for the console, ``data`` for the JSON."""

    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0

    def add(self, *args: Any, **kwargs: Any) -> Row:
        """Append a row and return it."""
        row = Row(*args, **kwargs)
        self.rows.append(row)
        return row

    def render(self) -> str:
        """Return the table as aligned text."""
        header = ("figure", "value", "target", "met", "note")
        lines = [
            (
                row.name,
                f"{format_value(row.value)} {row.unit}".strip(),
                row.target,
                {True: "yes", False: "NO", None: ""}[row.met],
                row.note,
            )
            for row in self.rows
        ]
        widths = [
            max(len(header[i]), *(len(line[i]) for line in lines)) if lines else 0
            for i in range(5)
        ]
        out = [f"== {self.title} ({self.wall_s:.0f} s)"]
        out.append(
            "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()
        )
        out.append("  ".join("-" * w for w in widths))
        for line in lines:
            out.append(
                "  ".join(
                    c.ljust(w) for c, w in zip(line, widths, strict=True)
                ).rstrip()
            )
        out.extend(f"  * {note}" for note in self.notes)
        return "\n".join(out)

    def to_json(self) -> dict[str, Any]:
        """Return the table and its raw data as JSON-ready values."""
        return {
            "title": self.title,
            "wall_s": round(self.wall_s, 2),
            "rows": [
                {
                    "name": row.name,
                    "value": row.value,
                    "unit": row.unit,
                    "target": row.target,
                    "met": row.met,
                    "note": row.note,
                }
                for row in self.rows
            ],
            "notes": self.notes,
            "data": self.data,
        }


def format_value(value: float | str) -> str:
    """Return a figure with three significant digits or so."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if math.isnan(value):
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


# -- the machine ----------------------------------------------------------------


def machine() -> dict[str, Any]:
    """Describe the machine and the Python stack the figures were measured on."""
    import numpy as np

    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "openblas_env": {
            key: os.environ[key]
            for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS")
            if key in os.environ
        },
        "load_avg_at_start": os.getloadavg(),
    }
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            f"{pool.get('internal_api')} {pool.get('version')} "
            f"{pool.get('architecture')} threads={pool.get('num_threads')}"
            for pool in threadpool_info()
        ]
    except ImportError:
        info["blas"] = ["(threadpoolctl not installed)"]
    for package in ("fastapi", "starlette", "uvicorn", "httpx", "pydantic"):
        try:
            from importlib.metadata import version

            info[package] = version(package)
        except Exception:
            info[package] = "?"
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def rss_kb(pid: int | None = None) -> int:
    """Return the resident set size of a process (this one by default), in KiB."""
    status = Path(f"/proc/{pid or 'self'}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """Return user + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# -- processes ------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port of 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Child:
    """A benchmark process on 127.0.0.1, ended by its own pid."""

    def __init__(self, name: str, args: list[str], port: int, log_dir: Path) -> None:
        self.name = name
        self.port = port
        self.log_path = log_dir / f"{name}-{port}.log"
        self._log = self.log_path.open("w")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(BENCH_DIR),
        )

    @property
    def pid(self) -> int:
        """Return the process id."""
        return self.proc.pid

    def wait_ready(self, path: str = "/health", timeout_s: float = 30.0) -> None:
        """Wait until ``GET path`` answers 200.

        Raises:
            RuntimeError: the process died or did not answer in time.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.log_path}")
            try:
                status, _ = request("GET", self.port, path, timeout_s=1.0)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start in {timeout_s} s")

    def stop(self) -> None:
        """End the process (SIGTERM, then SIGKILL after 5 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@contextmanager
def child(
    name: str, args: list[str], log_dir: Path, ready: str = "/health"
) -> Iterator[Child]:
    """Run ``bench/<args>`` on a free port for the ``with`` block."""
    port = free_port()
    proc = Child(name, [*args, "--port", str(port)], port, log_dir)
    try:
        proc.wait_ready(ready)
        yield proc
    finally:
        proc.stop()


# -- a small HTTP/1.1 client ------------------------------------------------------


class Client:
    """One keep-alive connection to 127.0.0.1:port; low overhead, blocking."""

    def __init__(self, port: int, timeout_s: float = 30.0) -> None:
        self.port = port
        self._timeout_s = timeout_s
        self._conn = http.client.HTTPConnection(HOST, port, timeout=timeout_s)

    def call(
        self, method: str, path: str, body: Any = None
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request and return status, headers and body."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in range(2):
            try:
                self._conn.request(method, path, body=data, headers=headers)
                response = self._conn.getresponse()
                payload = response.read()
                return response.status, dict(response.getheaders()), payload
            except (http.client.HTTPException, ConnectionError):
                # the server closed an idle keep-alive connection: reconnect once
                self._conn.close()
                self._conn = http.client.HTTPConnection(
                    HOST, self.port, timeout=self._timeout_s
                )
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: Any = None) -> Any:
        """Send one request and return its JSON body.

        Raises:
            RuntimeError: the answer was not 2xx.
        """
        status, _, payload = self.call(method, path, body)
        if not 200 <= status < 300:
            raise RuntimeError(f"{method} {path} -> {status}: {payload[:300]!r}")
        return json.loads(payload) if payload else None

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


def request(
    method: str, port: int, path: str, body: Any = None, timeout_s: float = 30.0
) -> tuple[int, bytes]:
    """Send one request on a fresh connection; return status and body."""
    client = Client(port, timeout_s)
    try:
        status, _, payload = client.call(method, path, body)
        return status, payload
    finally:
        client.close()


def wait_until(
    condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.05
) -> bool:
    """Poll ``condition`` until it holds; return False after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return condition()


# -- Graph bodies ---------------------------------------------------------------


def create_call_body(callback_uri: str) -> dict[str, Any]:
    """Return a POST /communications/calls body: one phone target, hosted media."""
    return {
        "@odata.type": "#microsoft.graph.call",
        "callbackUri": callback_uri,
        "targets": [
            {
                "@odata.type": "#microsoft.graph.invitationParticipantInfo",
                "identity": {
                    "@odata.type": "#microsoft.graph.identitySet",
                    "phone": {
                        "@odata.type": "#microsoft.graph.identity",
                        "id": "+15550100200",
                    },
                },
            }
        ],
        "requestedModalities": ["audio"],
        "mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
    }


def play_prompt_body(
    uri: str, resource_id: str, context: str = "bench", *, loop: bool | None = None
) -> dict[str, Any]:
    """Return a playPrompt body with one media prompt (``loop`` is beta's)."""
    body: dict[str, Any] = {
        "clientContext": context,
        "prompts": [
            {
                "@odata.type": "#microsoft.graph.mediaPrompt",
                "mediaInfo": {"uri": uri, "resourceId": resource_id},
            }
        ],
    }
    if loop is not None:
        body["loop"] = loop
    return body


# -- running one benchmark as a program -------------------------------------------


def bench_main(run: Callable[[Budget, Path], Table]) -> None:
    """Run one benchmark: ``--quick``, ``--json PATH``, ``--log-dir DIR``."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, help="write the table here as JSON")
    parser.add_argument("--log-dir", type=Path)
    args = parser.parse_args()
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="graphcomms-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    table = run(Budget(quick=args.quick), log_dir)
    table.wall_s = time.monotonic() - started
    print(table.render(), flush=True)
    if args.json:
        args.json.write_text(json.dumps(table.to_json(), indent=1, default=str))


@contextmanager
def bot(log_dir: Path) -> Iterator[Child]:
    """Run the bot (webhook receiver and prompt host) for the ``with`` block."""
    with child("bot", ["bot.py"], log_dir) as proc:
        yield proc


@contextmanager
def graphcomms_server(
    log_dir: Path,
    *,
    answer_delay_ms: int = 100,
    clock: str = "real",
    loop: str = "asyncio",
) -> Iterator[Child]:
    """Run ``server.py`` (graphcomms with probes) on a fresh data dir."""
    import tempfile

    data_dir = Path(tempfile.mkdtemp(prefix="data-", dir=log_dir))
    args = [
        "server.py",
        "--data-dir",
        str(data_dir),
        "--answer-delay-ms",
        str(answer_delay_ms),
        "--clock",
        clock,
        "--loop",
        loop,
    ]
    with child("server", args, log_dir) as proc:
        yield proc
