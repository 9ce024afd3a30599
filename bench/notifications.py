"""Benchmark 5: webhook notification delivery to a local receiver.

A ``Runtime`` (real clock, SQLite outbox, ``WebhookDelivery``) runs in this
process with 100 live calls, each playing a looping prompt and subscribed to
tones; the bot process receives. ``WebhookDelivery.enqueue`` is wrapped to
stamp each payload with ``benchEnqueuedAt`` (``time.monotonic()``), so the
bot can tell each notification's delay from event (enqueue) to receipt.

1. Delay: every caller presses a key about every 4 s (real DTMF audio, found
   by the detector), so toneInfo notifications flow at ~25/s, a rate the
   delivery keeps up with, and the delay is not a backlog.
2. Throughput: a burst of mute/unmute on every call (one roster notification
   each), timed from the burst to the bot holding all of them.
3. Reference, same run, same receiver: a bare ``httpx.AsyncClient`` posting
   the same payload with the same concurrency (one in flight per call);
   ``aiohttp`` too where it is installed.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import Budget, Table, bench_main, bot, request, summary

from graphcomms.callers.simulated import CallerAction
from graphcomms.engine.engine import NewCall
from graphcomms.engine.operation import ApiVersion, PromptSource
from graphcomms.runtime import Runtime, Settings

CALLS = 100
PRESS_EVERY_S = 4.0
V1 = ApiVersion.V1


async def measure(
    bot_port: int, log_dir: Path, seconds: float, burst: int
) -> dict[str, Any]:
    """Run the delay and throughput parts on a Runtime, then the references."""
    data_dir = Path(tempfile.mkdtemp(prefix="notify-", dir=log_dir))
    runtime = Runtime(
        Settings(data_dir=data_dir, clock_mode="real", answer_delay_ms=100)
    )
    sample: list[dict[str, Any]] = []
    enqueue = runtime.delivery.enqueue

    def stamped(call_id: str, url: str, payload: dict[str, Any]) -> int:
        payload["benchEnqueuedAt"] = time.monotonic()
        if not sample and "participants" in json.dumps(payload):
            sample.append(payload)
        return enqueue(call_id, url, payload)

    runtime.delivery.enqueue = stamped  # type: ignore[method-assign]
    await runtime.start()
    engine = runtime.engine
    callback = f"http://127.0.0.1:{bot_port}/callback"
    prompt = PromptSource(
        uri=f"http://127.0.0.1:{bot_port}/prompt/10000.wav", resource_id="n10"
    )
    try:
        # set up: live calls, playing, subscribed
        ids = [
            str(engine.create_call(NewCall(callback_uri=callback, api_version=V1)).id)
            for _ in range(CALLS)
        ]
        await asyncio.sleep(0.5)
        for call_id in ids:
            engine.play_prompt(
                call_id,
                (prompt,),
                client_context=None,
                loop=True,
                api_version=ApiVersion.BETA,
            )
            engine.subscribe_to_tone(call_id, client_context=None, api_version=V1)
        await runtime.delivery.drain(60)
        request("POST", bot_port, "/_reset")

        # 1. delay under a steady flow of key presses
        rng = random.Random(5)
        presses = int(seconds / PRESS_EVERY_S) + 2
        for call_id in ids:
            offset_ms = rng.randrange(20, int(PRESS_EVERY_S * 1000), 20)
            engine.caller_action(call_id, CallerAction("silence", ms=offset_ms))
            for _ in range(presses):
                engine.caller_action(call_id, CallerAction("dtmf", keys="5"))
                gap_ms = int(PRESS_EVERY_S * 1000) - 100
                engine.caller_action(call_id, CallerAction("silence", ms=gap_ms))
        started = time.monotonic()
        await asyncio.sleep(seconds)
        steady_s = time.monotonic() - started
        await runtime.delivery.drain(120)
        receipts = _receipts(bot_port)
        delays = [(r[0] - r[5]) * 1000 for r in receipts if r[5] is not None]
        for call_id in ids:
            engine.caller_action(call_id, CallerAction("hangup"))
        await asyncio.sleep(0.5)  # hang the callers up: no more presses
        ids = [
            str(engine.create_call(NewCall(callback_uri=callback, api_version=V1)).id)
            for _ in range(CALLS)
        ]
        await asyncio.sleep(0.5)
        await runtime.delivery.drain(60)

        # 2. throughput: a burst of roster notifications
        request("POST", bot_port, "/_reset")
        rounds = max(1, burst // CALLS)
        started = time.monotonic()
        for index in range(rounds):
            for call_id in ids:
                if index % 2 == 0:
                    engine.mute(call_id, client_context=None, api_version=V1)
                else:
                    engine.unmute(call_id, client_context=None, api_version=V1)
        enqueued_s = time.monotonic() - started
        await runtime.delivery.drain(300)
        burst_s = time.monotonic() - started
        burst_receipts = _receipts(bot_port)
        burst_delays = [
            (r[0] - r[5]) * 1000 for r in burst_receipts if r[5] is not None
        ]
    finally:
        await runtime.stop()

    total = rounds * CALLS
    payload = sample[0] if sample else {"value": []}
    return {
        "steady": {
            "seconds": steady_s,
            "received": len(delays),
            "rate_per_s": len(delays) / steady_s,
            "offered_per_s": CALLS / PRESS_EVERY_S,
            "delay_ms": summary(delays),
        },
        "burst": {
            "notifications": total,
            "received": len(burst_receipts),
            "enqueue_s": enqueued_s,
            "seconds": burst_s,
            "rate_per_s": total / burst_s,
            "delay_ms": summary(burst_delays),
        },
        "bare_httpx": await bare_httpx(bot_port, payload, total),
        "bare_aiohttp": await bare_aiohttp(bot_port, payload, total),
        "payload_bytes": len(json.dumps(payload)),
    }


def _receipts(bot_port: int) -> list[list[Any]]:
    _, raw = request("GET", bot_port, "/_receipts")
    return json.loads(raw)


async def bare_httpx(
    bot_port: int, payload: dict[str, Any], total: int
) -> dict[str, Any]:
    """POST ``total`` payloads with httpx, one in flight per each of 100 workers."""
    import httpx

    url = f"http://127.0.0.1:{bot_port}/callback"
    async with httpx.AsyncClient() as client:

        async def worker(count: int) -> None:
            for _ in range(count):
                response = await client.post(url, json=payload)
                response.raise_for_status()

        return await _timed(worker, total)


async def bare_aiohttp(
    bot_port: int, payload: dict[str, Any], total: int
) -> dict[str, Any] | None:
    """The same with aiohttp, if it is installed."""
    try:
        import aiohttp
    except ImportError:
        return None
    url = f"http://127.0.0.1:{bot_port}/callback"
    async with aiohttp.ClientSession() as session:

        async def worker(count: int) -> None:
            for _ in range(count):
                async with session.post(url, json=payload) as response:
                    response.raise_for_status()
                    await response.read()

        return await _timed(worker, total)


async def _timed(worker: Any, total: int) -> dict[str, Any]:
    per_worker = max(1, total // CALLS)
    started = time.monotonic()
    await asyncio.gather(*(worker(per_worker) for _ in range(CALLS)))
    seconds = time.monotonic() - started
    return {
        "notifications": per_worker * CALLS,
        "seconds": seconds,
        "rate_per_s": per_worker * CALLS / seconds,
    }


def run(budget: Budget, log_dir: Path) -> Table:
    """Measure delivery and the references; return the table."""
    table = Table("5. Notification delivery to a local receiver (100 live calls)")
    with bot(log_dir) as receiver:
        result = asyncio.run(
            measure(
                receiver.port, log_dir, budget.pick(4.0, 10.0), budget.pick(300, 1000)
            )
        )
    table.data = result
    steady, burst = result["steady"], result["burst"]
    delay = steady["delay_ms"]
    table.add(
        "delay event -> receipt p50 / p99",
        f"{delay['p50']:.1f} / {delay['p99']:.1f}",
        "ms",
        "",
        None,
        f"toneInfo, ~{steady['offered_per_s']:.0f}/s offered by key presses; "
        f"max {delay['max']:.0f} ms",
    )
    bare = result["bare_httpx"]
    ratio = burst["rate_per_s"] / bare["rate_per_s"]
    table.add(
        "throughput (burst)",
        burst["rate_per_s"],
        "notif/s",
        "",
        None,
        f"{burst['notifications']} roster notifications in {burst['seconds']:.1f} s; "
        f"burst delay p99 {burst['delay_ms']['p99']:.0f} ms",
    )
    table.add(
        "reference: bare httpx, same concurrency",
        bare["rate_per_s"],
        "posts/s",
        "",
        None,
        f"delivery / bare httpx = {ratio:.2f}",
    )
    if result["bare_aiohttp"]:
        table.add(
            "reference: bare aiohttp, same concurrency",
            result["bare_aiohttp"]["rate_per_s"],
            "posts/s",
            "",
            None,
            "what a client swap could reach",
        )
    table.notes.append(
        f"payload {result['payload_bytes']} bytes; delivery keeps one POST in flight "
        "per call (per-call order), so 100 calls = up to 100 in flight."
    )
    return table


if __name__ == "__main__":
    bench_main(run)
