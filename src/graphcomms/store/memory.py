"""The store in dicts, for unit tests of the layers above it.

It behaves as ``SqliteStore`` does, down to ordering and rollback: objects are
kept as the same JSON text (so a saved object is a snapshot, and anything that
would not survive SQLite fails here too), and outbox transitions are the same
pure functions from ``outbox``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from graphcomms.engine.call import Call, CallState
from graphcomms.engine.operation import Operation
from graphcomms.store.outbox import (
    Attempt,
    AttemptOutcome,
    OutboxEntry,
    RecordingEntry,
    after_attempt,
    requeued,
)
from graphcomms.store.serial import (
    call_from_json,
    call_to_json,
    dump_json,
    operation_from_json,
    operation_to_json,
)
from graphcomms.types import CallId, OperationId


@dataclass(frozen=True, slots=True)
class _CallRow:
    state: CallState
    created_ms: int
    json: str


@dataclass(frozen=True, slots=True)
class _OperationRow:
    call_id: str
    json: str


@dataclass(slots=True)
class _State:
    """Everything stored. Rows are immutable, so a shallow copy is a snapshot."""

    # dicts keep insertion order, and an upsert keeps a key's place: that is
    # creation order, as SQLite's autoincrement keys give it
    calls: dict[str, _CallRow] = dataclasses.field(default_factory=dict)
    operations: dict[str, _OperationRow] = dataclasses.field(default_factory=dict)
    outbox: dict[int, OutboxEntry] = dataclasses.field(default_factory=dict)
    recordings: dict[str, RecordingEntry] = dataclasses.field(default_factory=dict)
    last_seq: int = 0

    def copy(self) -> _State:
        return _State(
            dict(self.calls),
            dict(self.operations),
            dict(self.outbox),
            dict(self.recordings),
            self.last_seq,
        )


class MemoryStore:
    """Keep calls, operations, the notification outbox and recordings in memory."""

    def __init__(self, *, wall_clock: Callable[[], float] = time.time) -> None:
        """Start empty.

        Args:
            wall_clock: Source of ``created_at`` for new notifications.
        """
        self._state = _State()
        self._wall_clock = wall_clock

    def __repr__(self) -> str:
        return f"<MemoryStore calls={len(self._state.calls)}>"

    def close(self) -> None:
        """Do nothing; present for parity with ``SqliteStore``."""

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group the writes inside; if the block raises, none of them remain.

        Nested blocks behave as SQLite savepoints: each undoes only its own
        writes when it raises.
        """
        saved = self._state.copy()
        try:
            yield
        except BaseException:
            self._state = saved
            raise

    # calls

    def save_call(self, call: Call) -> None:
        """Insert ``call``, or replace the stored state of a call with its id."""
        row = _CallRow(call.state, call.created_ms, call_to_json(call))
        self._state.calls[call.id] = row

    def get_call(self, call_id: str) -> Call | None:
        """Return the call stored under ``call_id``, or None."""
        row = self._state.calls.get(call_id)
        return call_from_json(row.json) if row else None

    def live_calls(self) -> list[Call]:
        """Return the calls not yet terminated, in creation order."""
        return [
            call_from_json(row.json)
            for row in self._state.calls.values()
            if row.state != CallState.TERMINATED
        ]

    def all_calls(self) -> Iterator[Call]:
        """Yield every call, newest first (by ``created_ms``, then creation order)."""
        rows = list(enumerate(self._state.calls.values()))
        rows.sort(key=lambda item: (item[1].created_ms, item[0]), reverse=True)
        return (call_from_json(row.json) for _, row in rows)

    # operations

    def save_operation(self, op: Operation) -> None:
        """Insert ``op``, or replace the stored state of an operation with its id."""
        self._state.operations[op.id] = _OperationRow(op.call_id, operation_to_json(op))

    def get_operation(self, op_id: str) -> Operation | None:
        """Return the operation stored under ``op_id``, or None."""
        row = self._state.operations.get(op_id)
        return operation_from_json(row.json) if row else None

    def operations_of(self, call_id: str) -> list[Operation]:
        """Return the operations of ``call_id`` in creation order."""
        return [
            operation_from_json(row.json)
            for row in self._state.operations.values()
            if row.call_id == call_id
        ]

    # notification outbox

    def add_notification(self, call_id: str, url: str, payload: dict[str, Any]) -> int:
        """Queue ``payload`` for delivery to ``url``, pending; return its seq."""
        # through JSON text, as SQLite stores it: same failures, no aliasing
        stored = json.loads(dump_json(payload))
        seq = self._state.last_seq + 1
        self._state.outbox[seq] = OutboxEntry(
            seq=seq,
            call_id=call_id,
            url=url,
            payload=stored,
            status="pending",
            attempts=0,
            last_error=None,
            created_at=self._wall_clock(),
            delivered_at=None,
        )
        self._state.last_seq = seq
        return seq

    def pending_notifications(self) -> list[OutboxEntry]:
        """Return the notifications still to deliver, in seq order."""
        return self._entries(lambda entry: entry.status == "pending")

    def failed_notifications(self) -> list[OutboxEntry]:
        """Return the notifications given up on, in seq order."""
        return self._entries(lambda entry: entry.status == "failed")

    def notifications_of(self, call_id: str) -> list[OutboxEntry]:
        """Return every notification of ``call_id`` in seq order, with attempts."""
        return self._entries(lambda entry: entry.call_id == call_id)

    def record_attempt(
        self,
        seq: int,
        *,
        at: float,
        status_code: int | None,
        error: str | None,
        outcome: AttemptOutcome,
    ) -> None:
        """Log one delivery attempt of notification ``seq`` and apply its outcome.

        Raises:
            LookupError: No notification has this seq.
            ValueError: The notification is not pending.
        """
        entry = self._state.outbox.get(seq)
        if entry is None:
            raise LookupError(f"notification {seq} is not in the outbox")
        attempt = Attempt(at, status_code, error, outcome)
        self._state.outbox[seq] = after_attempt(entry, attempt)

    def requeue(self, seq: int) -> bool:
        """Set failed notification ``seq`` pending again; False if it had not failed."""
        entry = self._state.outbox.get(seq)
        updated = requeued(entry) if entry else None
        if updated is None:
            return False
        self._state.outbox[seq] = updated
        return True

    # recordings

    def save_recording(
        self,
        op_id: str,
        call_id: str,
        path: str,
        token: str,
        expires_at: float,
    ) -> None:
        """Insert or replace the recording of operation ``op_id``."""
        entry = RecordingEntry(
            OperationId(op_id), CallId(call_id), path, token, expires_at
        )
        self._state.recordings[op_id] = entry

    def get_recording(self, op_id: str) -> RecordingEntry | None:
        """Return the recording of operation ``op_id``, expired or not, or None."""
        return self._state.recordings.get(op_id)

    def expired_recordings(self, now: float) -> list[RecordingEntry]:
        """Return the recordings whose ``expires_at`` is at or before ``now``."""
        expired = [r for r in self._state.recordings.values() if r.expires_at <= now]
        return sorted(expired, key=lambda r: (r.expires_at, r.op_id))

    def delete_recording(self, op_id: str) -> None:
        """Forget the recording of operation ``op_id``; no error if it is unknown."""
        self._state.recordings.pop(op_id, None)

    # helpers

    def _entries(self, keep: Callable[[OutboxEntry], bool]) -> list[OutboxEntry]:
        # the dict is in seq order already; copy payloads so callers cannot
        # change what is stored
        return [
            dataclasses.replace(entry, payload=copy.deepcopy(entry.payload))
            for entry in self._state.outbox.values()
            if keep(entry)
        ]
