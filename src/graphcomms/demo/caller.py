"""The demo's caller: a script for the simulated caller, and when each step runs.

The simulated caller starts its script the moment the call is established
and runs it frame by frame on the service clock, so each step's start is
known in advance: ``established + offset_ms``. The demo prints each step
when the clock reaches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphcomms.types import FRAME_MS

SPEECH_MS = 3000
"""How long the caller speaks after the beep."""
MENU_PRESS_FRACTION = 0.65
"""How far into the menu prompt the caller presses 2."""
BEEP_MARGIN_MS = 200
"""How long the caller waits after the beep should have ended, before speaking."""
KEY_MS = 200
"""How long one key press takes the simulated caller: a 100 ms tone, then a
100 ms gap (its defaults)."""


@dataclass(frozen=True, slots=True)
class Step:
    """One action of the caller's script and when it starts.

    Attributes:
        offset_ms: Start, in ms after the call is established.
        action: The action as ``POST /_sim/calls`` takes it in ``script``.
        name: ``listen``, ``press`` or ``speak``.
        says: What the timeline prints when the step starts.
        keys: The keys pressed, for ``press``.
    """

    offset_ms: int
    action: dict[str, Any]
    name: str
    says: str
    keys: str | None = None


def _frames(ms: float) -> int:
    """Return ``ms`` rounded up to whole 20 ms frames."""
    return -(-int(ms) // FRAME_MS) * FRAME_MS


def ivr_script(
    *, welcome_ms: int, menu_ms: int, billing_ms: int, beep_ms: int
) -> list[Step]:
    """Return the demo caller: listen, press 2 in the menu, speak, press #.

    The key press lands while the first menu prompt plays and a repeat of
    it waits in the queue, so the bot's cancel stops one running and one
    queued prompt. Speech starts just after the billing prompt and the
    beep, and ``#`` ends the recording.
    """
    press_at = _frames(welcome_ms + menu_ms * MENU_PRESS_FRACTION)
    after_press = press_at + KEY_MS
    wait_ms = _frames(billing_ms + beep_ms + BEEP_MARGIN_MS)
    speak_at = after_press + wait_ms
    pound_at = speak_at + SPEECH_MS
    return [
        Step(
            0,
            {"action": "silence", "ms": press_at},
            "listen",
            "listens to the welcome and the menu",
        ),
        Step(press_at, {"action": "dtmf", "tones": "2"}, "press", "presses 2", "2"),
        Step(
            after_press,
            {"action": "silence", "ms": wait_ms},
            "listen",
            "listens to the billing prompt, waits for the beep",
        ),
        Step(
            speak_at,
            {"action": "speak", "ms": SPEECH_MS},
            "speak",
            f"speaks for {SPEECH_MS / 1000:.1f} s",
        ),
        Step(pound_at, {"action": "dtmf", "tones": "#"}, "press", "presses #", "#"),
    ]


class CallerSchedule:
    """Announces the caller's steps when the service clock reaches them."""

    def __init__(self, steps: list[Step]) -> None:
        self._steps = list(steps)
        self._next = 0
        self.established_ms: int | None = None

    def __repr__(self) -> str:
        return f"<CallerSchedule {self._next}/{len(self._steps)} steps announced>"

    @property
    def script(self) -> list[dict[str, Any]]:
        """Return the script to give ``POST /_sim/calls``."""
        return [step.action for step in self._steps]

    def due(self, now_ms: int) -> list[tuple[int, Step]]:
        """Return the steps that start by ``now_ms`` and were not yet returned.

        Each comes with its clock time. Nothing is due before the call is
        established (``established_ms`` is set).
        """
        if self.established_ms is None:
            return []
        due: list[tuple[int, Step]] = []
        while self._next < len(self._steps):
            step = self._steps[self._next]
            at_ms = self.established_ms + step.offset_ms
            if at_ms > now_ms:
                break
            due.append((at_ms, step))
            self._next += 1
        return due
