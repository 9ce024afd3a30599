"""Benchmark 4: a 60 s IVR flow on the virtual clock, one call and 100 at once.

The flow, in clock time from placing the call (answered after 1 s):

- 1 s: subscribeToTone; playPrompt 5 s; playPrompt 8 s; recordResponse with a
  2 s prompt, the beep and maxRecordDurationInSeconds 10. The caller presses
  1 at 8 s and 2 at 12.1 s, then speaks 12 s from 16 s on, so the recording
  ends on its 10 s maximum.
- 27 s: playPrompt 30 s; 45 s: cancelMediaProcessing, then playPrompt 3 s.
- 60 s: hang up.

The bench drives the engine directly and moves the clock with the virtual
driver, as fast as it goes. Two compositions are timed side by side:

- ``Runtime`` as ``graphcomms serve --clock virtual`` builds it: SQLite,
  prompts fetched over HTTP from the bot process (once, then cached), every
  notification POSTed to the bot while the clock runs;
- the engine and media plane alone (``world.py``: prompts from memory,
  notifications rendered and counted).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from harness import Budget, Table, bench_main, bot
from world import World, sine

from graphcomms.callers.simulated import CallerAction
from graphcomms.clock import VirtualDriver
from graphcomms.engine.engine import Engine, NewCall
from graphcomms.engine.operation import ApiVersion, PromptSource, RecordSettings
from graphcomms.runtime import Runtime, Settings

FLOW_MS = 60_000
V1 = ApiVersion.V1


class Flow:
    """The IVR flow's steps for a set of calls, on one engine."""

    def __init__(self, engine: Engine, prompt: Callable[[int], PromptSource]) -> None:
        self.engine = engine
        self.prompt = prompt

    def steps(self) -> list[tuple[int, Callable[[str], None]]]:
        """Return (clock ms from the start, action on one call), in order."""
        e = self.engine
        return [
            (1_000, self.open_menu),
            (27_000, lambda c: self.play(c, 30_000)),
            (
                45_000,
                lambda c: e.cancel_media_processing(
                    c, all_operations=True, client_context="stop", api_version=V1
                ),
            ),
            (45_000, lambda c: self.play(c, 3_000)),
            (60_000, e.hang_up),
        ]

    def play(self, call_id: str, ms: int) -> None:
        """Queue one prompt of ``ms`` milliseconds."""
        self.engine.play_prompt(
            call_id, (self.prompt(ms),), client_context=None, loop=False, api_version=V1
        )

    def open_menu(self, call_id: str) -> None:
        """Subscribe, queue two prompts and a recording, script the caller."""
        e = self.engine
        e.subscribe_to_tone(call_id, client_context=None, api_version=V1)
        self.play(call_id, 5_000)
        self.play(call_id, 8_000)
        e.record_response(
            call_id,
            RecordSettings(
                prompt=self.prompt(2_000),
                play_beep=True,
                initial_silence_timeout_s=5,
                max_silence_timeout_s=5,
                max_record_duration_s=10,
            ),
            client_context="record",
            api_version=V1,
        )
        for action in (
            CallerAction("silence", ms=7_000),
            CallerAction("dtmf", keys="1"),
            CallerAction("silence", ms=4_000),
            CallerAction("dtmf", keys="2"),
            CallerAction("silence", ms=3_800),
            CallerAction("speak", ms=12_000),
        ):
            e.caller_action(call_id, action)


async def run_flow(
    engine: Engine,
    advance: Callable[[int], Awaitable[int]],
    prompt: Callable[[int], PromptSource],
    calls: int,
) -> tuple[float, list[str]]:
    """Run the flow on ``calls`` calls at once; return wall seconds and ids."""
    flow = Flow(engine, prompt)
    started = time.perf_counter()
    start_ms = engine.clock.now_ms()
    spec = NewCall(callback_uri=CALLBACK[0], api_version=V1)
    ids = [str(engine.create_call(spec).id) for _ in range(calls)]
    for at_ms, action in flow.steps():
        delta = start_ms + at_ms - engine.clock.now_ms()
        if delta > 0:
            await advance(delta)
        for call_id in ids:
            action(call_id)
    await advance(20)
    return time.perf_counter() - started, ids


CALLBACK = ["http://127.0.0.1:9/callback"]


def outcome(engine: Engine, call_id: str) -> dict[str, Any]:
    """Summarise what the flow did on one call, to check it ran as meant."""
    call = engine.call_record(call_id)
    ops = engine.operations_record(call_id)
    return {
        "tones": call.tone_sequence,
        "state": call.state.value,
        "ops": [
            f"{op.kind.value}:{op.status.value}:"
            f"{op.completion_reason.value if op.completion_reason else ''}"
            for op in ops
        ],
        "record_ms": next(
            (op.recording_ms for op in ops if op.kind.value == "record"), None
        ),
    }


def expected(result: dict[str, Any]) -> bool:
    """Tell whether the flow ran as designed: two keys, a 10 s recording, a cancel."""
    ops = result["ops"]
    return (
        result["tones"] == 2
        and any(
            op.startswith("record:completed:maxRecordDurationReached") for op in ops
        )
        and any(op.endswith("mediaOperationCanceled") for op in ops)
        and result["state"] == "terminated"
    )


async def measure_runtime(
    bot_port: int, log_dir: Path, repeats: int, many: int
) -> dict[str, Any]:
    """Time the flow on the Runtime (SQLite, HTTP prompts, webhooks)."""
    CALLBACK[0] = f"http://127.0.0.1:{bot_port}/callback"
    data_dir = Path(tempfile.mkdtemp(prefix="virtual-", dir=log_dir))
    runtime = Runtime(Settings(data_dir=data_dir, clock_mode="virtual"))
    await runtime.start()

    def prompt(ms: int) -> PromptSource:
        uri = f"http://127.0.0.1:{bot_port}/prompt/{ms}.wav"
        return PromptSource(uri=uri, resource_id=f"p{ms}")

    try:
        await run_flow(
            runtime.engine, runtime.advance_clock, prompt, 1
        )  # fetch prompts
        await runtime.delivery.drain(60)
        singles = []
        for _ in range(repeats):
            wall, ids = await run_flow(runtime.engine, runtime.advance_clock, prompt, 1)
            singles.append(wall)
            await runtime.delivery.drain(60)
        check = outcome(runtime.engine, ids[0])
        wall_many, many_ids = await run_flow(
            runtime.engine, runtime.advance_clock, prompt, many
        )
        drain_started = time.perf_counter()
        await runtime.delivery.drain(120)
        drain_s = time.perf_counter() - drain_started
        check_many = outcome(runtime.engine, many_ids[-1])
    finally:
        await runtime.stop()
    return {
        "one_call_s": singles,
        "many_s": wall_many,
        "many_delivery_drain_s": drain_s,
        "check_one": check,
        "check_many": check_many,
    }


async def measure_world(repeats: int, many: int) -> dict[str, Any]:
    """Time the flow on the engine and media plane alone."""
    world = World()
    driver = VirtualDriver(world.clock)
    CALLBACK[0] = "http://127.0.0.1:9/callback"

    def prompt(ms: int) -> PromptSource:
        uri = f"mem://prompt/{ms}"
        world.prompts.audio.setdefault(uri, sine(ms))
        return PromptSource(uri=uri, resource_id=uri)

    singles = []
    for _ in range(repeats + 1):
        wall, ids = await run_flow(world.engine, driver.advance, prompt, 1)
        singles.append(wall)
    check = outcome(world.engine, ids[0])
    wall_many, many_ids = await run_flow(world.engine, driver.advance, prompt, many)
    check_many = outcome(world.engine, many_ids[-1])
    world.close()
    return {
        "one_call_s": singles[1:],
        "many_s": wall_many,
        "check_one": check,
        "check_many": check_many,
    }


def run(budget: Budget, log_dir: Path) -> Table:
    """Time both compositions and return the table."""
    table = Table("4. Virtual clock: a 60 s IVR flow, 1 call and 100 calls")
    repeats = budget.pick(1, 5)
    many = 100
    with bot(log_dir) as receiver:
        served = asyncio.run(measure_runtime(receiver.port, log_dir, repeats, many))
    alone = asyncio.run(measure_world(repeats, many))
    table.data = {"runtime": served, "engine_media": alone}
    for label, result in (("Runtime", served), ("engine+media", alone)):
        one = statistics.median(result["one_call_s"])
        speedup = FLOW_MS / 1000 / one
        table.add(
            f"{label}: 1 call, 60 s flow",
            one * 1000,
            "ms",
            ">= 1000x real time",
            speedup >= 1000,
            f"{speedup:,.0f}x real time; median of {len(result['one_call_s'])}; "
            f"flow as designed: {expected(result['check_one'])}",
        )
        note = f"{FLOW_MS / 1000 * many / result['many_s']:,.0f} call-seconds/s"
        if "many_delivery_drain_s" in result:
            drain_s = result["many_delivery_drain_s"]
            note += f"; webhooks still draining {drain_s:.1f} s after"
        note += f"; flow as designed: {expected(result['check_many'])}"
        table.add(
            f"{label}: {many} calls at once",
            result["many_s"],
            "s",
            "<= 10 s",
            result["many_s"] <= 10,
            note,
        )
    table.notes.append(
        "Runtime = SQLite store, prompts over HTTP (cached after the first run), "
        "webhooks POSTed to the bot during the run; engine+media = prompts in "
        "memory, notifications rendered and counted."
    )
    return table


if __name__ == "__main__":
    bench_main(run)
