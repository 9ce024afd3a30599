"""Benchmark 2: real-time capacity, memory per idle call, and tick cost.

Three parts, each on an in-process graphcomms (``world.py``):

1. Capacity. For N stepping up, N calls run the workload for a few seconds
   under the real ``RealTimeDriver``: every caller talks (speech, a key press,
   a pause, again), 90 % of calls play a looping prompt, 10 % record. A step
   holds real time when p99 tick lateness < 5 ms and no tick is a whole frame
   (20 ms) late. CPU is this process's CPU time over wall time.
2. Memory per idle established call: tracemalloc and RSS deltas for calls
   with silent callers and nothing playing, right after establishment and
   after 60 s of (virtual) time idle.
3. Tick cost: ``Clock.tick()`` on a virtual clock, no sleeping, with the same
   workload, per N; then the same ticks with timers around the plane's
   phases: receive (callers' frames in), speech detection, tone detection,
   the rest of analysis, record timers, and send (what remains: each call's
   outbound frame and its caller's ``hear``).
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import Budget, Table, bench_main, percentile, rss_kb, summary
from world import World, settle

import graphcomms.media.plane as plane_module
from graphcomms.clock import RealTimeDriver

LATE_P99_MS = 5.0
FRAME_MS = 20.0


def run(budget: Budget, log_dir: Path) -> Table:
    """Run the three parts and return the table."""
    table = Table(
        "2. Real-time capacity (playback + tone/speech detection, 10 % recording)"
    )
    steps = budget.pick([500, 1000, 2000], [250, 500, 1000, 1500, 2000, 3000])
    seconds = budget.pick(1.5, 5.0)
    capacity = asyncio.run(capacity_steps(steps, seconds, log_dir))
    table.data["capacity"] = capacity
    holding = [s["n"] for s in capacity if s["holds"]]
    best = max(holding) if holding else 0
    for step in capacity:
        late = step["late_ms"]
        table.add(
            f"N={step['n']} p99 / max tick lateness",
            f"{late['p99']:.1f} / {late['max']:.1f}",
            "ms",
            "p99 < 5, none >= 20",
            step["holds"],
            f"CPU {100 * step['cpu_share']:.0f}% of a core = "
            f"{step['cpu_us_per_call_tick']:.1f} us/call/tick; "
            f"RSS +{step['rss_mb_per_1000']:.0f} MB/1000 calls; "
            f"GC max {step['gc_max_ms']:.0f} ms; load avg {step['load_avg']:.1f}",
        )
    table.add("capacity (largest N holding)", best, "calls", ">= 2000", best >= 2000)

    memory = asyncio.run(idle_memory(budget.pick(200, 500)))
    table.data["idle_memory"] = memory
    table.add(
        "idle established call, at establishment",
        memory["kb_per_call_established"],
        "KB",
        "",
        None,
        f"tracemalloc; RSS {memory['rss_kb_per_call_established']:.0f} KB",
    )
    table.add(
        "idle established call, after 60 s idle",
        memory["kb_per_call_after_60s"],
        "KB",
        "",
        None,
        f"grows {memory['kb_per_call_per_minute']:.1f} KB/min",
    )
    cap_min = memory["heard_limit_min"]
    projected = (
        memory["kb_per_call_established"] + cap_min * memory["kb_per_call_per_minute"]
    )
    memory["kb_per_call_projected_at_cap"] = projected
    table.add(
        f"idle established call, projected at {cap_min:.0f} min",
        projected,
        "KB",
        "<= 50 KB",
        projected <= 50,
        "where an idle call settles: growth stops at the heard-audio cap",
    )

    sizes = budget.pick([100, 1000], [100, 500, 1000, 2000, 3000])
    ticks = budget.pick(100, 300)
    costs = asyncio.run(tick_costs(sizes, ticks))
    table.data["tick_cost"] = costs
    for cost in costs:
        parts = cost["parts_ms"]
        table.add(
            f"tick CPU N={cost['n']} (virtual clock)",
            cost["tick_ms"]["p50"],
            "ms",
            "",
            None,
            f"{1000 * cost['tick_ms']['p50'] / cost['n']:.1f} us/call; "
            + " ".join(f"{k} {v:.2f}" for k, v in parts.items()),
        )
    blas = blas_threads_effect(budget.pick([1000], [500, 1000, 2000, 3000]))
    table.data["blas_threads"] = blas
    for row in blas:
        table.add(
            f"ToneDetector.detect CPU N={row['n']}, BLAS default / 1 thread",
            f"{row['default_ms']:.2f} / {row['one_thread_ms']:.2f}",
            "ms",
            "",
            None,
            f"{row['default_ms'] / row['one_thread_ms']:.1f}x; BLAS: {row['blas']}",
        )
    table.notes.append(
        "tick CPU = process time of Clock.tick(), so neighbours on a shared "
        "machine do not inflate it; parts (ms per tick, median): receive = "
        "callers' next_frame and "
        "the inbound batch; vad = is_speech; dtmf = ToneDetector.detect; "
        "analyse = the rest of _analyse; record = record timers; send = the rest "
        "of the tick (outbound frames, caller.hear, timers)."
    )
    table.notes.append(
        "calls are placed through the engine in-process; notifications are "
        "rendered but not sent (benchmark 5 measures delivery)."
    )
    return table


# -- 1. capacity ----------------------------------------------------------------


async def capacity_steps(
    steps: list[int], seconds: float, log_dir: Path
) -> list[dict[str, Any]]:
    """Run each step; stop after two steps in a row that do not hold."""
    results: list[dict[str, Any]] = []
    misses = 0
    for n in steps:
        if misses >= 2:
            break
        result = await capacity_step(n, seconds, log_dir)
        results.append(result)
        misses = 0 if result["holds"] else misses + 1
        gc.collect()
    return results


async def capacity_step(n: int, seconds: float, log_dir: Path) -> dict[str, Any]:
    """Hold ``n`` calls in real time for ``seconds`` and measure the ticks."""
    rss_before = rss_kb()
    world = World(data_dir=_fresh(log_dir, f"capacity-{n}"))
    driver = RealTimeDriver(world.clock)
    task = asyncio.create_task(driver.run())
    try:
        world.place_calls(n)
        await asyncio.sleep(0.2)  # established after 20 ms of clock
        world.load(n, seconds + 5)
        await asyncio.sleep(1.0)  # warm up: first key presses, recordings start

        pauses = _GcPauses()
        first = len(driver.late_ms)
        wall0, cpu0 = time.monotonic(), time.process_time()
        await asyncio.sleep(seconds)
        wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
        late = driver.late_ms[first:]
        pauses.stop()
        expected_ticks = wall * 1000 / FRAME_MS
        rss_after = rss_kb()
    finally:
        task.cancel()
        world.close()
    late_summary = summary(late)
    cpu_share = cpu / wall
    return {
        "n": n,
        "seconds": wall,
        "late_ms": late_summary,
        "ticks_over_20ms": sum(1 for ms in late if ms >= FRAME_MS),
        "tick_shortfall": expected_ticks - len(late),
        "holds": late_summary["p99"] < LATE_P99_MS
        and all(ms < FRAME_MS for ms in late),
        "cpu_share": cpu_share,
        "cpu_us_per_call_tick": cpu_share * FRAME_MS * 1000 / n,
        "rss_mb_per_1000": (rss_after - rss_before) / 1024 * 1000 / n,
        "gc_max_ms": max(pauses.ms, default=0.0),
        "gc_total_ms": sum(pauses.ms),
        "notifications": world.outbox.count,
        "load_avg": os.getloadavg()[0],
    }


class _GcPauses:
    """Time every garbage collection while it is installed."""

    def __init__(self) -> None:
        self.ms: list[float] = []
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.ms.append((time.perf_counter() - self._started) * 1000)

    def stop(self) -> None:
        gc.callbacks.remove(self._on_gc)


# -- 2. memory per idle call ------------------------------------------------------


async def idle_memory(n: int) -> dict[str, Any]:
    """Measure what idle established calls cost, at once and after 60 s."""
    gc.collect()
    world = World()
    # warm up every code path once, outside the measurement
    world.place_calls(1)
    for _ in range(3):
        world.clock.tick()
    await settle()
    gc.collect()

    tracemalloc.start()
    base_traced = tracemalloc.get_traced_memory()[0]
    base_rss = rss_kb()
    world.place_calls(n)
    for _ in range(3):
        world.clock.tick()
    await settle()
    gc.collect()
    established = tracemalloc.get_traced_memory()[0] - base_traced
    rss_established = rss_kb() - base_rss
    for _ in range(60_000 // 20):
        world.clock.tick()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] - base_traced
    rss_after = rss_kb() - base_rss
    tracemalloc.stop()
    world.close()
    from graphcomms.callers.simulated import HEARD_LIMIT_FRAMES
    from graphcomms.types import FRAME_MS

    return {
        "calls": n,
        "heard_limit_min": HEARD_LIMIT_FRAMES * FRAME_MS / 60_000,
        "kb_per_call_established": established / 1024 / n,
        "kb_per_call_after_60s": after / 1024 / n,
        "kb_per_call_per_minute": (after - established) / 1024 / n,
        "rss_kb_per_call_established": rss_established / n,
        "rss_kb_per_call_after_60s": rss_after / n,
    }


# -- 3. tick cost -------------------------------------------------------------------


async def tick_costs(sizes: list[int], ticks: int) -> list[dict[str, Any]]:
    """Measure ``Clock.tick()`` per N, whole and in parts."""
    results = []
    for n in sizes:
        world = World()
        world.place_calls(n)
        for _ in range(2):
            world.clock.tick()
        await settle()
        world.load(n, (3 * ticks) * FRAME_MS / 1000 + 10)
        await settle()
        for _ in range(60):  # warm up: recordings listen, callers talk
            world.clock.tick()
            await settle(1)

        whole = await _time_ticks(world, ticks)
        parts = _Parts(world)
        parted = await _time_ticks(world, ticks)
        parts.remove()
        results.append(
            {
                "n": n,
                "tick_ms": summary(whole),
                "tick_ms_with_part_timers": summary(parted),
                "parts_ms": parts.medians(parted),
            }
        )
        world.close()
        gc.collect()
    return results


async def _time_ticks(world: World, ticks: int) -> list[float]:
    """Return each tick's CPU time in ms (process time: other processes on a
    shared machine do not count, BLAS helper threads do)."""
    durations = []
    for _ in range(ticks):
        started = time.process_time()
        world.clock.tick()
        durations.append((time.process_time() - started) * 1000)
        await settle(1)
    return durations


class _Parts:
    """Timers around the plane's phases, installed on one plane instance.

    Phases that are not there (renamed, merged) are left out; ``send`` is
    whatever the tick spends outside the timed phases.
    """

    def __init__(self, world: World) -> None:
        self.ms: dict[str, list[float]] = {}
        self._undo: list[Callable[[], None]] = []
        media = world.media
        self._wrap(media, "_receive", "receive")
        self._wrap(media, "_analyse", "analyse")
        self._wrap(media, "_check_record_timers", "record")
        detector = getattr(media, "_detector", None)
        if detector is not None:
            self._wrap(detector, "detect", "dtmf")
        if hasattr(plane_module, "is_speech"):
            self._wrap(plane_module, "is_speech", "vad", module=True)

    def _wrap(self, owner: Any, name: str, part: str, module: bool = False) -> None:
        original = getattr(owner, name, None)
        if original is None:
            return
        spent = self.ms.setdefault(part, [])

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                spent.append((time.process_time() - started) * 1000)

        setattr(owner, name, timed)
        if module:
            self._undo.append(lambda: setattr(owner, name, original))
        else:
            self._undo.append(lambda: owner.__dict__.pop(name, None))

    def remove(self) -> None:
        for undo in self._undo:
            undo()

    def medians(self, ticks_ms: list[float]) -> dict[str, float]:
        """Return each phase's median ms per tick, ``send`` as the remainder."""
        ticks = len(ticks_ms)
        per_tick: dict[str, list[float]] = {}
        for part, spent in self.ms.items():
            if part == "record":
                # called once per recording call: sum per tick
                calls_per_tick = max(1, len(spent) // ticks)
                spent = [
                    sum(spent[i : i + calls_per_tick])
                    for i in range(0, len(spent), calls_per_tick)
                ]
            per_tick[part] = spent
        out = {part: percentile(values, 50) for part, values in per_tick.items()}
        if "analyse" in out:
            out["analyse"] -= out.get("vad", 0.0) + out.get("dtmf", 0.0)
        out["send"] = percentile(ticks_ms, 50) - sum(out.values())
        order = ["send", "receive", "vad", "dtmf", "analyse", "record"]
        return {part: out[part] for part in order if part in out}


def blas_threads_effect(sizes: list[int], repeats: int = 40) -> list[dict[str, Any]]:
    """Time ``ToneDetector.detect`` on speech with BLAS as configured and on 1 thread.

    The detector projects frames with a matrix product; on a 2-core machine
    OpenBLAS's thread hand-off can cost more than the product itself.
    """
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return []
    import numpy as np

    from graphcomms.callers.simulated import speech_for
    from graphcomms.media.dtmf import ToneDetector

    speech = speech_for(3000)
    blas = "; ".join(
        f"{p.get('internal_api')} threads={p.get('num_threads')}"
        for p in threadpool_info()
    )
    results = []
    for n in sizes:
        offsets = [(i * 2240) % (len(speech) - 320) for i in range(n)]
        frames = np.stack([speech[o : o + 320] for o in offsets])
        slots = np.arange(n, dtype=np.intp)

        def timed(slots: Any = slots, frames: Any = frames) -> float:
            detector = ToneDetector()
            for _ in range(5):
                detector.detect(slots, frames)
            started = time.process_time()
            for _ in range(repeats):
                detector.detect(slots, frames)
            return (time.process_time() - started) / repeats * 1000

        default_ms = timed()
        with threadpool_limits(limits=1, user_api="blas"):
            one_ms = timed()
        results.append(
            {"n": n, "default_ms": default_ms, "one_thread_ms": one_ms, "blas": blas}
        )
    return results


def _fresh(log_dir: Path, name: str) -> Path:
    path = log_dir / name
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("graphcomms.db*"):
        old.unlink()
    return path


if __name__ == "__main__":
    bench_main(run)
