"""The composition root: builds store, media, delivery and engine, and runs them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from graphcomms.clock import Clock, FastDriver, RealTimeDriver, VirtualDriver
from graphcomms.engine.engine import Engine, EngineSettings
from graphcomms.errors import VirtualClockRequired
from graphcomms.media.plane import MediaPlane
from graphcomms.media.prompts import PromptCache
from graphcomms.notify.delivery import RetryPolicy, WebhookDelivery
from graphcomms.notify.faults import FaultDice, FaultPlan
from graphcomms.notify.notifier import GraphNotifier
from graphcomms.store.sqlite import SqliteStore

logger = logging.getLogger(__name__)

ClockMode = Literal["real", "virtual", "fast"]

RECORDING_SWEEP_S = 60.0
CHECKPOINT_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``graphcomms serve`` can be told; defaults are the embedded ones."""

    data_dir: Path = Path(".graphcomms")
    host: str = "127.0.0.1"
    port: int = 8000
    clock_mode: ClockMode = "real"
    public_base_url: str | None = None
    """Where clients reach this service; defaults to http://host:port."""
    max_body_bytes: int = 1024 * 1024
    answer_delay_ms: int = 1000
    prompt_timeout_s: float = 10.0
    prompt_max_bytes: int = 20 * 1024 * 1024
    delivery_attempts: int = 8
    delivery_initial_delay_s: float = 0.5
    delivery_max_delay_s: float = 30.0
    delivery_timeout_s: float = 5.0
    recording_retention_s: float = 3600.0
    cancelled_dtmf_status: Literal["completed", "failed"] = "completed"

    @property
    def base_url(self) -> str:
        """Return the public base URL, without a trailing slash."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class Runtime:
    """One graphcomms service: its parts, wired, with start and stop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.clock = Clock()
        self.store = SqliteStore(settings.data_dir / "graphcomms.db")
        self.prompts = PromptCache(
            max_bytes=settings.prompt_max_bytes,
            timeout_s=settings.prompt_timeout_s,
            clock=self.clock,
        )
        self.delivery = WebhookDelivery(
            self.store,
            policy=RetryPolicy(
                attempts=settings.delivery_attempts,
                initial_delay_s=settings.delivery_initial_delay_s,
                max_delay_s=settings.delivery_max_delay_s,
                timeout_s=settings.delivery_timeout_s,
            ),
        )
        self.media = MediaPlane(self.clock)
        self.engine = Engine(
            clock=self.clock,
            media=self.media,
            prompts=self.prompts,
            notifier=GraphNotifier(self.delivery),
            store=self.store,
            settings=EngineSettings(
                public_base_url=settings.base_url,
                recordings_dir=settings.data_dir / "recordings",
                answer_delay_ms=settings.answer_delay_ms,
                recording_retention_s=settings.recording_retention_s,
                cancelled_dtmf_status=settings.cancelled_dtmf_status,
            ),
        )
        self.media.listener = self.engine
        self.api_faults = FaultDice(FaultPlan())
        """Decides which Graph requests a fault plan answers with 503."""
        self.requests_in_flight = 0
        """API requests being handled now (the fast clock waits for them)."""
        self.real_driver: RealTimeDriver | None = None
        self.virtual_driver: VirtualDriver | None = None
        self.fast_driver: FastDriver | None = None
        if settings.clock_mode == "virtual":
            self.virtual_driver = VirtualDriver(self.clock)
        elif settings.clock_mode == "fast":
            self.fast_driver = FastDriver(
                self.clock, busy=self._busy, has_work=self._has_work
            )
        else:
            self.real_driver = RealTimeDriver(self.clock)
        self._tasks: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        return f"<Runtime clock={self.settings.clock_mode} {self.engine!r}>"

    async def start(self) -> None:
        """Recover what a previous run left, then start delivery and the clock."""
        await self.delivery.start()
        self.engine.recover()
        if self.real_driver is not None:
            self._spawn(self.real_driver.run(), "media-clock")
        if self.fast_driver is not None:
            self._spawn(self.fast_driver.run(), "media-clock")
        self._spawn(self._sweep_recordings(), "recording-sweeper")
        self.store.defer_checkpoints()
        self._spawn(self._checkpoints(), "store-checkpoints")
        logger.debug(
            "graphcomms ready at %s (clock %s, data %s)",
            self.settings.base_url,
            self.settings.clock_mode,
            self.settings.data_dir,
        )

    async def stop(self) -> None:
        """Stop the clock and delivery; what is undelivered stays in the store."""
        for task in self._tasks:
            task.cancel()
        try:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            self._tasks.clear()
        await self.delivery.aclose()
        await self.prompts.aclose()
        self.store.close()

    async def advance_clock(self, ms: int) -> int:
        """Move a virtual clock forward by ``ms``; return the new time."""
        if self.virtual_driver is None:
            raise VirtualClockRequired()
        return await self.virtual_driver.advance(ms)

    @property
    def faults(self) -> FaultPlan:
        """Return the faults being injected (none by default)."""
        return self.api_faults.plan

    def set_faults(self, plan: FaultPlan) -> None:
        """Inject ``plan``'s faults into webhook delivery and the Graph API."""
        self.api_faults = FaultDice(plan)
        self.delivery.faults = plan
        # a warning: faults are on purpose, but nobody should miss them
        logger.warning("fault injection %s: %s", "on" if plan.active else "off", plan)

    def _busy(self) -> bool:
        return self.requests_in_flight > 0 or not self.delivery.idle

    def _has_work(self) -> bool:
        return self.engine.live_call_count > 0 or self.clock.next_due_ms() is not None

    def sound_path(self, name: str) -> Path | None:
        """Return the path of a shipped sound such as ``welcome.wav``."""
        if "/" in name or "\\" in name or not name.endswith(".wav"):
            return None
        sounds = resources.files("graphcomms.media").joinpath("sounds")
        candidate = Path(str(sounds)) / name
        return candidate if candidate.is_file() else None

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.append(task)

    async def _checkpoints(self) -> None:
        # the WAL is copied back off the event loop, so no commit waits for it
        while True:
            await asyncio.sleep(CHECKPOINT_EVERY_S)
            await asyncio.to_thread(self.store.checkpoint)

    async def _sweep_recordings(self) -> None:
        while True:
            for entry in self.store.expired_recordings(time.time()):
                await asyncio.to_thread(Path(entry.path).unlink, missing_ok=True)
                self.store.delete_recording(entry.op_id)
                logger.debug("recording op=%s expired", entry.op_id)
            await asyncio.sleep(RECORDING_SWEEP_S)
