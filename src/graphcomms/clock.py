"""Time as a dependency: one tick-driven clock for the engine and the media plane.

The clock advances in 20 ms ticks. Each tick first runs the timers that fell
due, then hands the tick to its listeners (the media plane), so a prompt that
started at tick N has played N..N+k frames by the time anyone looks. Nothing
in the engine or media reads the wall clock: two drivers move this clock,

- ``RealTimeDriver`` ticks it every 20 ms of monotonic time (serving), and
- ``VirtualDriver`` ticks it on demand (tests, ``--clock virtual``), waiting
  before each tick for work that takes no virtual time (prompt downloads),
- ``FastDriver`` ticks it as fast as the system allows (``--clock fast``):
  whenever no request, download or notification is in flight and the bot
  has had a moment to react to the last one.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from graphcomms.types import FRAME_MS

logger = logging.getLogger(__name__)

TickListener = Callable[[int], None]

YIELD_EVERY_TICKS = 25
"""A virtual run lets other tasks in at least every 500 ms of clock time."""


@dataclass(order=True, slots=True)
class Timer:
    """A callback due at a clock time; ``cancel()`` makes it a no-op."""

    due_ms: int
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        """Stop the timer from firing; safe to call more than once."""
        self.cancelled = True


class Clock:
    """Tick-driven time: ``now_ms`` moves only when ``tick()`` is called."""

    def __init__(self) -> None:
        self._now_ms = 0
        self._timers: list[Timer] = []
        self._seq = itertools.count()
        self._listeners: list[TickListener] = []
        self._pending: set[asyncio.Future[object]] = set()

    def __repr__(self) -> str:
        return f"<Clock now_ms={self._now_ms} timers={len(self._timers)}>"

    def now_ms(self) -> int:
        """Return the clock time in milliseconds since the clock started."""
        return self._now_ms

    def call_later(self, delay_ms: int, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` on the first tick at or after ``delay_ms`` from now."""
        timer = Timer(self._now_ms + max(0, delay_ms), next(self._seq), callback)
        heapq.heappush(self._timers, timer)
        return timer

    def add_listener(self, listener: TickListener) -> None:
        """Call ``listener(now_ms)`` on every tick, after the due timers."""
        self._listeners.append(listener)

    def hold(self, future: asyncio.Future[object]) -> None:
        """Ask virtual drivers not to tick until ``future`` is done.

        Used for work that should take no time on a virtual clock, such as a
        prompt download: a virtual run stays exact whatever the network does.
        """
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    def pending(self) -> list[asyncio.Future[object]]:
        """Return the held futures that are not done yet."""
        return [f for f in self._pending if not f.done()]

    def next_due_ms(self) -> int | None:
        """Return when the next live timer is due, if any."""
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0].due_ms if self._timers else None

    def tick(self) -> None:
        """Advance one frame: run due timers, then the tick listeners."""
        self._now_ms += FRAME_MS
        now = self._now_ms
        while self._timers and self._timers[0].due_ms <= now:
            timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                self._run(timer.callback)
        for listener in self._listeners:
            self._run(listener, now)

    def _run(self, callback: Callable[..., None], *args: int) -> None:
        # one failing callback must not stop time for every other call
        try:
            callback(*args)
        except Exception:
            logger.exception(
                "clock: %r failed at %d ms; time goes on", callback, self._now_ms
            )


class RealTimeDriver:
    """Ticks a clock every 20 ms of monotonic time and measures lateness."""

    def __init__(
        self, clock: Clock, *, monotonic: Callable[[], float] = time.monotonic
    ):
        self.clock = clock
        self._monotonic = monotonic
        self.late_ms: list[float] = []
        self.ticks = 0

    async def run(self) -> None:
        """Tick until cancelled; a late tick catches up rather than skipping."""
        start = self._monotonic()
        period = FRAME_MS / 1000
        while True:
            due = start + (self.ticks + 1) * period
            delay = due - self._monotonic()
            # a late tick still yields, so catching up never starves the API
            await asyncio.sleep(max(delay, 0))
            lateness = self._monotonic() - due
            self.clock.tick()
            self.ticks += 1
            if len(self.late_ms) < 100_000:
                self.late_ms.append(lateness * 1000)


class VirtualDriver:
    """Ticks a clock on demand, as fast as the work allows."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._lock = asyncio.Lock()

    async def advance(self, ms: int) -> int:
        """Move the clock forward by ``ms`` (rounded up to whole ticks)."""
        ticks = -(-ms // FRAME_MS)
        async with self._lock:
            for tick in range(1, ticks + 1):
                await self._wait_for_held_work()
                self.clock.tick()
                if self.clock.pending() or tick % YIELD_EVERY_TICKS == 0:
                    await self._let_effects_run()
            await self._let_effects_run()
        return self.clock.now_ms()

    async def _wait_for_held_work(self) -> None:
        await _wait_for_held_work(self.clock)

    async def _let_effects_run(self) -> None:
        # two passes let a task started by the tick start its own follow-up
        await asyncio.sleep(0)
        await asyncio.sleep(0)


async def _wait_for_held_work(clock: Clock) -> None:
    while pending := clock.pending():
        await asyncio.wait(pending)
        await asyncio.sleep(0)


class FastDriver:
    """Ticks a clock as fast as possible while the system is quiescent.

    Before each tick it waits until ``busy()`` is false (no API request or
    webhook delivery in flight) and has stayed false for ``grace_s`` of real
    time since it last was true, so a bot that answers its webhook first and
    calls back right after still gets its request in before time moves on.
    With nothing to tick for (``has_work()`` false), it sleeps.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        busy: Callable[[], bool],
        has_work: Callable[[], bool],
        grace_s: float = 0.05,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self._busy = busy
        self._has_work = has_work
        self._grace_s = grace_s
        self._monotonic = monotonic
        self.ticks = 0

    async def run(self) -> None:
        """Tick until cancelled."""
        last_busy = self._monotonic()
        while True:
            await _wait_for_held_work(self.clock)
            now = self._monotonic()
            if self._busy():
                last_busy = now
                await asyncio.sleep(0.001)
                continue
            if now - last_busy < self._grace_s:
                await asyncio.sleep(self._grace_s - (now - last_busy))
                continue
            if not self._has_work():
                await asyncio.sleep(0.01)
                continue
            self.clock.tick()
            self.ticks += 1
            # let requests and callbacks the tick caused get going
            await asyncio.sleep(0)
