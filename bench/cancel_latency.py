"""Benchmark 1: cancel latency with N calls playing prompts in real time.

For each N (1, 100, 1000) a fresh graphcomms server (``server.py``: the real
Runtime, real clock, SQLite, webhook delivery) gets N calls over HTTP, each
with a simulated caller and a 300 s prompt served by the bot process. Then,
one at a time, a call's prompt is cancelled over HTTP and, 60 ms later (so
the silence is heard), started again so that N calls keep playing. Prompts
are a 10 s sine played with beta's ``loop: true`` (each playPrompt copies its
audio, so a long prompt would cost N copies; see the notes). For each
cancel three times are taken, all from the moment the request is sent
(``time.monotonic()`` in this process):

(a) the HTTP response to cancelMediaProcessing, beside a reference in the
    same run: ``GET /health`` on the same connection (same server and
    middleware, no engine work);
(b) the first silent frame the caller hears after it, in frames after the
    cancel's clock tick (1 = the very next frame) and in ms;
(c) the bot receiving the cancelled operation's terminal notification.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from harness import (
    Budget,
    Client,
    Table,
    bench_main,
    bot,
    create_call_body,
    graphcomms_server,
    play_prompt_body,
    request,
    summary,
    wait_until,
)

PROMPT_MS = 10_000
REPLAY_AFTER_S = 0.06
SETTLE_AFTER_REPLAY_S = 0.05
FRAME_MS = 20


def run(budget: Budget, log_dir: Path) -> Table:
    """Measure cancel latency for each N and return the table."""
    table = Table(
        "1. Cancel latency, real time (cancel sent -> response / silence / webhook)"
    )
    sizes = [1, 100, 1000]
    samples = budget.pick({1: 30, 100: 40, 1000: 40}, {1: 150, 100: 300, 1000: 300})
    with bot(log_dir) as receiver:
        for n in sizes:
            request("POST", receiver.port, "/_reset")
            with graphcomms_server(log_dir) as server:
                result = measure(server.port, receiver.port, n, samples[n])
            table.data[f"n{n}"] = result
            add_rows(table, n, result)
    table.notes.append(
        "(a) is the HTTP round trip on one keep-alive connection; the reference "
        "is GET /health on the same connection in the same loop."
    )
    table.notes.append(
        "(b) frames: 1 = the first frame after the cancel's clock tick is silent "
        "(the target); ms: from sending the cancel to that frame's tick, so it "
        "includes waiting for the next 20 ms tick."
    )
    table.notes.append(
        "calls are created (v1.0) and started (beta playPrompt, loop) over HTTP; "
        "callers are silent (no inbound analysis); server log level WARNING."
    )
    return table


def measure(port: int, bot_port: int, n: int, count: int) -> dict[str, Any]:
    """Set up ``n`` playing calls, cancel ``count`` times, collect the times."""
    client = Client(port)
    callback = f"http://127.0.0.1:{bot_port}/callback"
    prompt = play_prompt_body(
        f"http://127.0.0.1:{bot_port}/prompt/{PROMPT_MS}.wav", "bench-loop", loop=True
    )

    # set up: n calls, established, each playing the long prompt
    setup_started = time.monotonic()
    call_ids = [
        client.json("POST", "/v1.0/communications/calls", create_call_body(callback))[
            "id"
        ]
        for _ in range(n)
    ]
    playing: dict[str, str] = {}
    for call_id in call_ids:
        playing[call_id] = start_prompt(client, call_id, prompt)
    drained = wait_until(
        lambda: client.json("GET", "/_bench/stats")["deliveryIdle"], 60
    )
    time.sleep(1.0)  # let the clock settle before measuring
    setup_s = time.monotonic() - setup_started

    # measure: cancel one call at a time, replay it, move on
    before = client.json("GET", "/_bench/stats")
    samples: list[dict[str, Any]] = []
    reference_ms: list[float] = []
    rng = random.Random(n)
    for k in range(count):
        call_id = call_ids[k % n]
        path = f"/v1.0/communications/calls/{call_id}/cancelMediaProcessing"
        sent = time.monotonic()
        status, _, _ = client.call("POST", path, {"clientContext": f"cancel-{k}"})
        answered = time.monotonic()
        samples.append(
            {
                "call": call_id,
                "op": playing[call_id],
                "sent": sent,
                "response_ms": (answered - sent) * 1000,
                "status": status,
            }
        )
        started = time.monotonic()
        client.call("GET", "/health")
        reference_ms.append((time.monotonic() - started) * 1000)
        time.sleep(REPLAY_AFTER_S)
        playing[call_id] = start_prompt(client, call_id, prompt)
        if n == 1:
            time.sleep(SETTLE_AFTER_REPLAY_S)  # be audible again before the next
        time.sleep(rng.uniform(0.0, 0.02))  # land anywhere in the 20 ms tick
    window_s = time.monotonic() - before["mono"]
    after = client.json("GET", f"/_bench/stats?since={before['ticks']}")

    # collect: silences heard, terminal notifications received
    wait_until(lambda: client.json("GET", "/_bench/stats")["deliveryIdle"], 60)
    probed = client.json(
        "POST", "/_bench/silences", {"callIds": sorted(set(s["call"] for s in samples))}
    )
    _, raw = request("GET", bot_port, "/_receipts")
    receipts = json.loads(raw)
    client.close()
    return analyse(samples, reference_ms, probed, receipts) | {
        "n": n,
        "setup_s": setup_s,
        "setup_drained": drained,
        "window_s": window_s,
        "server_cpu_share": (after["cpuS"] - before["cpuS"]) / window_s,
        "tick_late_ms": after["late"],
        "ticks_late_over_20ms": after["lateOver20"],
        "server_rss_mb": after["rssKb"] / 1024,
    }


def start_prompt(client: Client, call_id: str, body: dict[str, Any]) -> str:
    """Play the long prompt on a call, waiting for it to be established."""
    path = f"/beta/communications/calls/{call_id}/playPrompt"
    for _ in range(200):
        status, _, payload = client.call("POST", path, body)
        if status == 200:
            return str(json.loads(payload)["id"])
        time.sleep(0.05)  # not established yet
    raise RuntimeError(
        f"playPrompt on {call_id} kept failing: {status} {payload[:200]!r}"
    )


def analyse(
    samples: list[dict[str, Any]],
    reference_ms: list[float],
    probed: dict[str, Any],
    receipts: list[list[Any]],
) -> dict[str, Any]:
    """Turn the raw times into the three latencies."""
    terminal = {
        row[1].rsplit("/", 1)[-1]: row[0]
        for row in receipts
        if row[2] == "deleted" and row[3] == "#microsoft.graph.playPromptOperation"
    }
    seen: dict[str, int] = {}
    frames: list[float] = []
    silence_ms: list[float] = []
    webhook_ms: list[float] = []
    missing_silence = missing_webhook = 0
    for sample in samples:
        call_id = sample["call"]
        nth = seen.get(call_id, 0)
        seen[call_id] = nth + 1
        info = probed[call_id]
        cancel_tick = info["cancels"][nth] if nth < len(info["cancels"]) else None
        switch = next(
            (
                s
                for s in info["silences"]
                if s[1] > sample["sent"]
                and (cancel_tick is None or s[0] >= cancel_tick)
            ),
            None,
        )
        if switch is None or cancel_tick is None:
            missing_silence += 1
        else:
            frames.append((switch[0] - cancel_tick) / FRAME_MS)
            silence_ms.append((switch[1] - sample["sent"]) * 1000)
        received = terminal.get(sample["op"])
        if received is None:
            missing_webhook += 1
        else:
            webhook_ms.append((received - sample["sent"]) * 1000)
    response_ms = [s["response_ms"] for s in samples]
    return {
        "response_ms": summary(response_ms),
        "reference_ms": summary(reference_ms),
        "silence_frames": summary(frames),
        "silence_ms": summary(silence_ms),
        "webhook_ms": summary(webhook_ms),
        "missing_silence": missing_silence,
        "missing_webhook": missing_webhook,
        "non_200": sum(1 for s in samples if s["status"] != 200),
        "frames_over_1": sum(1 for f in frames if f > 1),
    }


def add_rows(table: Table, n: int, r: dict[str, Any]) -> None:
    """Add the rows of one N."""
    resp, ref = r["response_ms"], r["reference_ms"]
    met = resp["p99"] <= 5.0 if n == 100 else None
    table.add(
        f"N={n} (a) response p50 / p99",
        f"{resp['p50']:.2f} / {resp['p99']:.2f}",
        "ms",
        "p99 <= 5 ms" if n == 100 else "",
        met,
        f"ref GET /health {ref['p50']:.2f} / {ref['p99']:.2f} ms; "
        f"p99 ratio {resp['p99'] / ref['p99']:.1f}x",
    )
    frames, ms = r["silence_frames"], r["silence_ms"]
    table.add(
        f"N={n} (b) silent after p50 / p99 / max",
        f"{frames['p50']:.0f} / {frames['p99']:.0f} / {frames['max']:.0f}",
        "frames",
        "p99 <= 1 frame" if n == 1000 else "",
        frames["p99"] <= 1 if n == 1000 else None,
        f"{ms['p50']:.1f} / {ms['p99']:.1f} ms after send; "
        f"{r['missing_silence']} unseen of {frames['n'] + r['missing_silence']}",
    )
    hook = r["webhook_ms"]
    table.add(
        f"N={n} (c) webhook p50 / p99",
        f"{hook['p50']:.1f} / {hook['p99']:.1f}",
        "ms",
        "",
        None,
        f"{r['missing_webhook']} missing",
    )
    late = r["tick_late_ms"]
    table.add(
        f"N={n} tick lateness p99 while cancelling",
        late["p99"],
        "ms",
        "",
        None,
        f"server CPU {100 * r['server_cpu_share']:.0f}% of a core; "
        f"RSS {r['server_rss_mb']:.0f} MB; setup {r['setup_s']:.0f} s",
    )


if __name__ == "__main__":
    bench_main(run)
