"""What the store hands out besides calls and operations: outbox rows, recordings.

A notification enters the outbox ``pending``. Each delivery attempt is
recorded with its outcome: ``delivered`` ends it, ``retrying`` keeps it
pending for the next try, and ``failed`` parks it, kept and visible, until
someone requeues it by hand. The transitions are pure functions here, so
every store applies the same rules and only the storage differs.

``RecordingEntry`` lives here too, as the other row type the stores share.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from graphcomms.types import CallId, OperationId

OutboxStatus = Literal["pending", "delivered", "failed"]
AttemptOutcome = Literal["delivered", "retrying", "failed"]

_STATUS_AFTER: dict[AttemptOutcome, OutboxStatus] = {
    "delivered": "delivered",
    "retrying": "pending",
    "failed": "failed",
}


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at delivering a notification, and what came of it."""

    at: float
    """Wall-clock time of the try, in seconds since the epoch."""
    status_code: int | None
    """The HTTP status the callback answered, or None if none came."""
    error: str | None
    outcome: AttemptOutcome


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A notification kept until it is delivered, with every try at it."""

    seq: int
    """Global order of the outbox; also the entry's id."""
    call_id: str
    url: str
    payload: dict[str, Any]
    status: OutboxStatus
    attempts: int
    last_error: str | None
    """The error of the latest try that did not deliver, if any did not."""
    created_at: float
    delivered_at: float | None
    attempt_log: tuple[Attempt, ...] = ()


@dataclass(frozen=True, slots=True)
class RecordingEntry:
    """A recording file served at ``recordingLocation`` until it expires."""

    op_id: OperationId
    call_id: CallId
    path: str
    token: str = dataclasses.field(repr=False)
    """The bearer token that unlocks the file; never shown in a repr."""
    expires_at: float


def after_attempt(entry: OutboxEntry, attempt: Attempt) -> OutboxEntry:
    """Return ``entry`` as it stands once ``attempt`` is recorded.

    Raises:
        ValueError: ``entry`` is not pending, so nothing should be trying it.
    """
    if entry.status != "pending":
        raise ValueError(
            f"notification {entry.seq} is {entry.status}; only pending "
            "notifications are delivered (requeue a failed one first)"
        )
    delivered = attempt.outcome == "delivered"
    return dataclasses.replace(
        entry,
        status=_STATUS_AFTER[attempt.outcome],
        attempts=entry.attempts + 1,
        last_error=entry.last_error if delivered else _describe(attempt, entry),
        delivered_at=attempt.at if delivered else None,
        attempt_log=(*entry.attempt_log, attempt),
    )


def requeued(entry: OutboxEntry) -> OutboxEntry | None:
    """Return ``entry`` pending again, or None unless it had failed."""
    if entry.status != "failed":
        return None
    return dataclasses.replace(entry, status="pending")


def _describe(attempt: Attempt, entry: OutboxEntry) -> str | None:
    if attempt.error is not None:
        return attempt.error
    if attempt.status_code is not None:
        return f"HTTP {attempt.status_code}"
    return entry.last_error
