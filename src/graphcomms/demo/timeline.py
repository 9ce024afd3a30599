"""The demo's timeline: what happened, when, by whom, as data and as text.

Each event is stamped with the service clock (virtual or real, in ms since
the service started) and printed as one aligned line the moment it is
added. Tests read ``Timeline.events`` rather than the text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO, TypedDict, Unpack

Who = Literal["caller", "bot → graph", "graph → bot", "bot", "demo"]
EventKind = Literal["caller", "request", "notification", "file", "note"]

TIME_WIDTH = 9
WHO_WIDTH = 12
WHAT_WIDTH = 34


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the timeline, with the facts behind it.

    Attributes:
        at_ms: Service clock time when the event was seen.
        who: The actor, e.g. ``bot → graph`` for a request the bot made.
        kind: ``caller`` (an action of the simulated caller), ``request``
            (an HTTP request and its answer), ``notification`` (a webhook
            the bot received), ``file`` (something saved) or ``note``.
        what: The printed description (left column).
        outcome: The printed result (right column).
        name: What the event is about: an action name (``playPrompt``,
            ``answer``, ``hangUp``, ``recording``), a notified resource
            (``call``, ``playPrompt``, ``record``) or a caller action
            (``ring``, ``press``, ``speak``).
        label: The operation's clientContext, when there is one.
        http_status: The HTTP status of a request.
        status: An operation's status, or a call's state.
        change_type: ``created``, ``updated`` or ``deleted``.
        result: ``code/subcode`` of a resultInfo, e.g. ``400/8508``.
        completion_reason: An operation's completionReason.
        tone: A tone name (``tone2``, ``pound``) or the caller's keys.
        path: A file the event saved.
    """

    at_ms: int
    who: Who
    kind: EventKind
    what: str
    outcome: str = ""
    name: str = ""
    label: str | None = None
    http_status: int | None = None
    status: str | None = None
    change_type: str | None = None
    result: str | None = None
    completion_reason: str | None = None
    tone: str | None = None
    path: Path | None = None

    def line(self) -> str:
        """Return the event as one aligned line of text."""
        time = f"{self.at_ms / 1000:.3f}s".rjust(TIME_WIDTH)
        what = self.what.ljust(WHAT_WIDTH)
        return f"{time}  {self.who.ljust(WHO_WIDTH)} {what} {self.outcome}".rstrip()


class Facts(TypedDict, total=False):
    """The optional fields of an ``Event``, as keyword arguments."""

    outcome: str
    name: str
    label: str | None
    http_status: int | None
    status: str | None
    change_type: str | None
    result: str | None
    completion_reason: str | None
    tone: str | None
    path: Path | None


def header() -> str:
    """Return the column titles that go above the first event."""
    time = "time".rjust(TIME_WIDTH)
    return f"{time}  {'who'.ljust(WHO_WIDTH)} {'what'.ljust(WHAT_WIDTH)} result"


class Timeline:
    """Events in the order they were seen, printed as they come.

    Args:
        now_ms: The service clock.
        out: Where lines are printed; None prints nothing.
    """

    def __init__(self, now_ms: Callable[[], int], out: TextIO | None = None):
        self._now_ms = now_ms
        self._out = out
        self.events: list[Event] = []

    def __repr__(self) -> str:
        return f"<Timeline events={len(self.events)}>"

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def now_ms(self) -> int:
        """Return the service clock time."""
        return self._now_ms()

    def add(
        self,
        who: Who,
        kind: EventKind,
        what: str,
        *,
        at_ms: int | None = None,
        **facts: Unpack[Facts],
    ) -> Event:
        """Keep and print an event, stamped ``at_ms`` or else with the clock."""
        stamp = self._now_ms() if at_ms is None else at_ms
        event = Event(stamp, who, kind, what, **facts)
        self.events.append(event)
        self.print(event.line())
        return event

    def print(self, text: str = "") -> None:
        """Print a line of text outside the events (headers, summary)."""
        if self._out is None:
            return
        self._out.write(text + "\n")
        self._out.flush()

    def first(self, match: Callable[[Event], bool]) -> Event | None:
        """Return the first event for which ``match`` is true."""
        return next((event for event in self.events if match(event)), None)
