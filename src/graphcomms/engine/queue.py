"""The IVR queue of one call, as a pure state machine.

Transitions change state and *return* what must happen next; the engine
performs those effects (start or stop media, notify, persist). Nothing here
awaits, reads a clock or touches I/O, so every rule of design.md can be
checked on this class alone.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from graphcomms.engine.operation import Operation, OperationStatus


@dataclass(frozen=True, slots=True)
class Start:
    """Start this operation's media now."""

    op: Operation


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop the media of this (running) operation within one frame."""

    op: Operation


@dataclass(frozen=True, slots=True)
class Dropped:
    """This operation was stopped before finishing; it needs its terminal notice."""

    op: Operation


Effect = Start | Stop | Dropped


class MediaQueue:
    """playPrompt and recordResponse of one call, run one at a time in order."""

    def __init__(self) -> None:
        self.running: Operation | None = None
        self.waiting: deque[Operation] = deque()

    def __repr__(self) -> str:
        head = self.running.id if self.running else None
        return f"<MediaQueue running={head} waiting={len(self.waiting)}>"

    def __len__(self) -> int:
        return len(self.waiting) + (self.running is not None)

    def pending(self) -> list[Operation]:
        """Return the running operation, then the waiting ones in order."""
        head = [self.running] if self.running is not None else []
        return head + list(self.waiting)

    def enqueue(self, op: Operation) -> list[Effect]:
        """Add ``op`` at the back; it runs at once if the queue was empty."""
        if self.running is None:
            return self._promote(op)
        op.status = OperationStatus.NOT_STARTED
        self.waiting.append(op)
        return []

    def finish(self, op: Operation) -> list[Effect]:
        """Record that the running ``op`` ended by itself; start the next one."""
        if self.running is not op:
            return []
        self.running = None
        return self._advance()

    def cancel(self, *, all_operations: bool) -> list[Effect]:
        """Stop the running operation and, with ``all_operations``, the queue.

        The running operation is dropped first, then the waiting ones in
        order. Without ``all_operations`` the next waiting one starts.
        """
        effects: list[Effect] = []
        if self.running is not None:
            effects += [Stop(self.running), Dropped(self.running)]
            self.running = None
        if all_operations:
            effects += [Dropped(op) for op in self.waiting]
            self.waiting.clear()
        return effects + self._advance()

    def barge_in(self, op: Operation) -> list[Effect]:
        """Stop everything, as a cancel of all does, then start ``op`` at once."""
        return self.cancel(all_operations=True) + self.enqueue(op)

    def clear(self) -> list[Effect]:
        """Drop everything because the call is ending; nothing starts."""
        effects = self.cancel(all_operations=True)
        return [e for e in effects if not isinstance(e, Start)]

    def _advance(self) -> list[Effect]:
        if self.running is not None or not self.waiting:
            return []
        return self._promote(self.waiting.popleft())

    def _promote(self, op: Operation) -> list[Effect]:
        self.running = op
        op.status = OperationStatus.RUNNING
        return [Start(op)]
