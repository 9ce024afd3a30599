"""Benchmark 3: playPrompt requests/s, graphcomms against a bare endpoint.

One load generator (wrk, one thread, 16 connections, a Lua script that
POSTs a v1.0 playPrompt body round-robin over 100 call ids) runs in its own
process against two servers in turn, each started fresh for each round:

- ``server.py``: graphcomms as served (real clock, SQLite, 100 established
  calls, each playing a 60 s prompt, so every request queues an operation);
- ``bare.py``: FastAPI + uvicorn started the same way, one route that reads
  the body and answers like playPrompt.

Rounds alternate (bare, real, bare, real...) and the ratio is of medians. The
full run also measures both on uvloop, which ``graphcomms serve`` does not
use today (it runs ``asyncio.run``), to show what that choice costs.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from harness import (
    Budget,
    Client,
    Table,
    bench_main,
    bot,
    child,
    create_call_body,
    graphcomms_server,
    play_prompt_body,
    wait_until,
)

CALLS = 100
CONNECTIONS = 16
PROMPT_MS = 60_000

LUA = """
local ids = {%(ids)s}
local body = '%(body)s'
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i %% #ids + 1
  local path = "/v1.0/communications/calls/" .. ids[i] .. "/playPrompt"
  return wrk.format(nil, path, nil, body)
end
"""


def run(budget: Budget, log_dir: Path) -> Table:
    """Measure both servers round by round and return the table."""
    table = Table(
        "3. API throughput: playPrompt req/s, graphcomms vs bare FastAPI endpoint"
    )
    if shutil.which("wrk") is None:
        table.notes.append("wrk is not installed (apt-get install -y wrk): skipped")
        return table
    rounds = budget.pick(1, 3)
    seconds = budget.pick(3, 6)
    loops = budget.pick(["asyncio"], ["asyncio", "uvloop"])
    with bot(log_dir) as receiver:
        for loop in loops:
            results: dict[str, list[dict[str, Any]]] = {"bare": [], "real": []}
            for _ in range(rounds):
                results["bare"].append(bare_round(log_dir, seconds, loop))
                results["real"].append(
                    real_round(log_dir, receiver.port, seconds, loop)
                )
            table.data[loop] = results
            add_rows(table, loop, results)
    table.notes.append(
        f"wrk -t1 -c{CONNECTIONS} -d{seconds}s, {rounds} round(s) per server, "
        "medians; each round on a freshly started server, after a 1 s warm-up."
    )
    return table


def bare_round(log_dir: Path, seconds: int, loop: str) -> dict[str, Any]:
    """Load the bare endpoint for one round."""
    with child("bare", ["bare.py", "--loop", loop], log_dir) as server:
        ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(CALLS)]
        body = play_prompt_body("http://127.0.0.1:9/prompt/60000.wav", "p60")
        return load(server.port, ids, body, seconds, log_dir)


def real_round(log_dir: Path, bot_port: int, seconds: int, loop: str) -> dict[str, Any]:
    """Load graphcomms for one round, on CALLS established, playing calls."""
    with graphcomms_server(log_dir, loop=loop) as server:
        client = Client(server.port)
        callback = f"http://127.0.0.1:{bot_port}/callback"
        body = play_prompt_body(
            f"http://127.0.0.1:{bot_port}/prompt/{PROMPT_MS}.wav", "p60"
        )
        ids = [
            client.json(
                "POST", "/v1.0/communications/calls", create_call_body(callback)
            )["id"]
            for _ in range(CALLS)
        ]
        for call_id in ids:
            path = f"/v1.0/communications/calls/{call_id}/playPrompt"
            while client.call("POST", path, body)[0] != 200:
                time.sleep(0.05)  # not established yet
        wait_until(lambda: client.json("GET", "/_bench/stats")["deliveryIdle"], 60)
        before = client.json("GET", "/_bench/stats")
        result = load(server.port, ids, body, seconds, log_dir)
        after = client.json("GET", f"/_bench/stats?since={before['ticks']}")
        client.close()
        result["tick_late_ms"] = after["late"]
        result["server_cpu_share"] = (after["cpuS"] - before["cpuS"]) / (
            after["mono"] - before["mono"]
        )
        return result


def load(
    port: int, ids: list[str], body: dict[str, Any], seconds: int, log_dir: Path
) -> dict[str, Any]:
    """Warm up for 1 s, then run wrk for ``seconds`` and parse its report."""
    script = log_dir / f"play-{port}.lua"
    script.write_text(
        LUA % {"ids": ",".join(f'"{i}"' for i in ids), "body": json.dumps(body)}
    )
    url = f"http://127.0.0.1:{port}"
    _wrk(script, url, 1)
    return _wrk(script, url, seconds)


def _wrk(script: Path, url: str, seconds: int) -> dict[str, Any]:
    command = [
        "wrk",
        "-t1",
        f"-c{CONNECTIONS}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    output = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    return parse_wrk(output)


def parse_wrk(output: str) -> dict[str, Any]:
    """Return requests/s, non-2xx count and latency percentiles from wrk."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    total = int(re.search(r"(\d+) requests in", output).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    latency = {
        pct: _ms(value)
        for pct, value in re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)", output, re.MULTILINE)
    }
    return {
        "rps": rps,
        "requests": total,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "latency_ms": latency,
    }


def _ms(text: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def add_rows(table: Table, loop: str, results: dict[str, list[dict[str, Any]]]) -> None:
    """Add the rows of one event loop."""
    bare = statistics.median(r["rps"] for r in results["bare"])
    real = statistics.median(r["rps"] for r in results["real"])
    label = "" if loop == "asyncio" else " (uvloop)"
    for name, rounds, rps in (
        ("bare endpoint", results["bare"], bare),
        ("graphcomms", results["real"], real),
    ):
        last = rounds[-1]
        extra = ""
        if "server_cpu_share" in last:
            extra = (
                f"; server CPU {100 * last['server_cpu_share']:.0f}%; tick p99 "
                f"{last['tick_late_ms']['p99']:.1f} ms"
            )
        table.add(
            f"{name}{label} playPrompt",
            rps,
            "req/s",
            "",
            None,
            f"latency p50 {last['latency_ms'].get('50', float('nan')):.1f} / p99 "
            f"{last['latency_ms'].get('99', float('nan')):.1f} ms; "
            f"non-2xx {sum(r['non_2xx'] for r in rounds)}{extra}",
        )
    ratio = real / bare
    if loop == "asyncio":
        table.add("ratio graphcomms / bare", ratio, "", ">= 0.7", ratio >= 0.7)
    else:
        table.add(f"ratio graphcomms / bare{label}", ratio, "", "", None)


if __name__ == "__main__":
    bench_main(run)
