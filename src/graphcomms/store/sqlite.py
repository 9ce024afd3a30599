"""The embedded store: one SQLite file in the data directory.

Writes are synchronous on purpose. The engine saves from inside its own
transitions, and in WAL mode with ``synchronous=NORMAL`` a write costs tens of
microseconds, so the state on disk never lags what the API acknowledged.

Every table keys its rows by an explicit ``INTEGER PRIMARY KEY AUTOINCREMENT``
column, so creation order survives upserts and ``VACUUM`` alike; the public
ids are ``UNIQUE`` columns beside it. Objects and payloads are JSON text.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
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

SCHEMA_VERSION = 1
"""Kept in ``PRAGMA user_version``; a file with a newer one is refused."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS calls (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        json TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS calls_by_state ON calls (state)",
    "CREATE INDEX IF NOT EXISTS calls_by_age ON calls (created_ms, seq)",
    """CREATE TABLE IF NOT EXISTS operations (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        call_id TEXT NOT NULL,
        status TEXT NOT NULL,
        json TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS operations_by_call ON operations (call_id, seq)",
    """CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id TEXT NOT NULL,
        url TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'delivered', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        last_error TEXT,
        delivered_at REAL)""",
    "CREATE INDEX IF NOT EXISTS outbox_by_status ON outbox (status, seq)",
    "CREATE INDEX IF NOT EXISTS outbox_by_call ON outbox (call_id, seq)",
    """CREATE TABLE IF NOT EXISTS outbox_attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        seq INTEGER NOT NULL REFERENCES outbox (seq),
        at REAL NOT NULL,
        status_code INTEGER,
        error TEXT,
        outcome TEXT NOT NULL
            CHECK (outcome IN ('delivered', 'retrying', 'failed')))""",
    "CREATE INDEX IF NOT EXISTS outbox_attempts_by_seq ON outbox_attempts (seq, id)",
    """CREATE TABLE IF NOT EXISTS recordings (
        op_id TEXT PRIMARY KEY,
        call_id TEXT NOT NULL,
        path TEXT NOT NULL,
        token TEXT NOT NULL,
        expires_at REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS recordings_by_expiry ON recordings (expires_at)",
)

_ALL_CALLS_PAGE = 200
"""Calls read per query by ``all_calls``."""

_ENTRY_COLUMNS = (
    "seq, call_id, url, payload, status, attempts, last_error, created_at, delivered_at"
)


class SqliteStore:
    """Keep calls, operations, the notification outbox and recordings in SQLite.

    One connection serves every thread (``check_same_thread=False``); a
    re-entrant lock keeps a transaction and the statements of other threads
    from interleaving.
    """

    def __init__(
        self, path: Path | str, *, wall_clock: Callable[[], float] = time.time
    ) -> None:
        """Open (or create) the database at ``path``; ``":memory:"`` is allowed.

        Args:
            path: The database file.
            wall_clock: Source of ``created_at`` for new notifications.

        Raises:
            RuntimeError: The file was written by a newer schema version.
        """
        # isolation_level=None: sqlite3 issues no implicit BEGIN, so a write
        # outside transaction() commits at once
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        self._depth = 0
        self._wall_clock = wall_clock
        self._path = str(path)
        self._checkpointer: sqlite3.Connection | None = None
        self._checkpoint_lock = threading.Lock()
        try:
            self._open_schema()
        except BaseException:
            self._db.close()
            raise

    def __repr__(self) -> str:
        return f"<SqliteStore {self._path}>"

    def close(self) -> None:
        """Close the connection; idempotent."""
        with self._lock:
            self._db.close()
        with self._checkpoint_lock:
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None

    def defer_checkpoints(self) -> None:
        """Stop checkpointing inside commits; the owner calls ``checkpoint()``.

        SQLite checkpoints the WAL from whichever commit crosses 1,000 pages,
        and that commit then waits for an fsync: tens of milliseconds on the
        event loop. A service runs ``checkpoint()`` in a worker thread instead.
        """
        with self._lock:
            self._db.execute("PRAGMA wal_autocheckpoint = 0")

    def checkpoint(self) -> None:
        """Copy the WAL into the database without blocking writers (any thread)."""
        with self._checkpoint_lock:
            if self._checkpointer is None:
                self._checkpointer = sqlite3.connect(
                    self._path, isolation_level=None, check_same_thread=False
                )
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group the writes inside into one commit.

        Only the outermost block commits. A nested block is a savepoint: if it
        raises, its own writes are undone and the exception goes on to the
        enclosing block, which rolls back everything unless it handles it.
        """
        with self._lock:
            depth = self._depth
            self._db.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT s{depth}")
            self._depth = depth + 1
            try:
                yield
            except BaseException:
                self._undo(depth)
                raise
            else:
                self._finish(depth)
            finally:
                self._depth = depth

    # calls

    def save_call(self, call: Call) -> None:
        """Insert ``call``, or replace the stored state of a call with its id."""
        with self._lock:
            self._db.execute(
                "INSERT INTO calls (id, state, created_ms, json) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET state = excluded.state, "
                "created_ms = excluded.created_ms, json = excluded.json",
                (call.id, call.state.value, call.created_ms, call_to_json(call)),
            )

    def get_call(self, call_id: str) -> Call | None:
        """Return the call stored under ``call_id``, or None."""
        rows = self._rows("SELECT json FROM calls WHERE id = ?", (call_id,))
        return call_from_json(rows[0][0]) if rows else None

    def live_calls(self) -> list[Call]:
        """Return the calls not yet terminated, in creation order."""
        rows = self._rows(
            "SELECT json FROM calls WHERE state != ? ORDER BY seq",
            (CallState.TERMINATED.value,),
        )
        return [call_from_json(text) for (text,) in rows]

    def all_calls(self) -> Iterator[Call]:
        """Yield every call, newest first (by ``created_ms``, then creation order).

        Calls are read a page at a time, so a long history costs little memory
        and no lock is held between pages.
        """
        rows = self._rows(
            "SELECT created_ms, seq, json FROM calls "
            "ORDER BY created_ms DESC, seq DESC LIMIT ?",
            (_ALL_CALLS_PAGE,),
        )
        while rows:
            yield from (call_from_json(text) for _, _, text in rows)
            if len(rows) < _ALL_CALLS_PAGE:
                return
            created_ms, seq, _ = rows[-1]
            rows = self._rows(
                "SELECT created_ms, seq, json FROM calls "
                "WHERE (created_ms, seq) < (?, ?) "
                "ORDER BY created_ms DESC, seq DESC LIMIT ?",
                (created_ms, seq, _ALL_CALLS_PAGE),
            )

    # operations

    def save_operation(self, op: Operation) -> None:
        """Insert ``op``, or replace the stored state of an operation with its id."""
        with self._lock:
            self._db.execute(
                "INSERT INTO operations (id, call_id, status, json) "
                "VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET call_id = excluded.call_id, "
                "status = excluded.status, json = excluded.json",
                (op.id, op.call_id, op.status.value, operation_to_json(op)),
            )

    def get_operation(self, op_id: str) -> Operation | None:
        """Return the operation stored under ``op_id``, or None."""
        rows = self._rows("SELECT json FROM operations WHERE id = ?", (op_id,))
        return operation_from_json(rows[0][0]) if rows else None

    def operations_of(self, call_id: str) -> list[Operation]:
        """Return the operations of ``call_id`` in creation order."""
        rows = self._rows(
            "SELECT json FROM operations WHERE call_id = ? ORDER BY seq", (call_id,)
        )
        return [operation_from_json(text) for (text,) in rows]

    # notification outbox

    def add_notification(self, call_id: str, url: str, payload: dict[str, Any]) -> int:
        """Queue ``payload`` for delivery to ``url``, pending; return its seq."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO outbox (call_id, url, payload, created_at) "
                "VALUES (?, ?, ?, ?)",
                (call_id, url, dump_json(payload), self._wall_clock()),
            )
            assert cursor.lastrowid is not None  # set by every INSERT
            return cursor.lastrowid

    def pending_notifications(self) -> list[OutboxEntry]:
        """Return the notifications still to deliver, in seq order."""
        return self._entries("status = ?", ("pending",))

    def failed_notifications(self) -> list[OutboxEntry]:
        """Return the notifications given up on, in seq order."""
        return self._entries("status = ?", ("failed",))

    def notifications_of(self, call_id: str) -> list[OutboxEntry]:
        """Return every notification of ``call_id`` in seq order, with attempts."""
        return self._entries("call_id = ?", (call_id,))

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
        attempt = Attempt(at, status_code, error, outcome)
        with self.transaction():
            entry = after_attempt(self._entry(seq), attempt)
            self._update_entry(entry)
            self._db.execute(
                "INSERT INTO outbox_attempts (seq, at, status_code, error, outcome) "
                "VALUES (?, ?, ?, ?, ?)",
                (seq, at, status_code, error, outcome),
            )

    def requeue(self, seq: int) -> bool:
        """Set failed notification ``seq`` pending again; False if it had not failed."""
        with self.transaction():
            entries = self._entries("seq = ?", (seq,))
            entry = requeued(entries[0]) if entries else None
            if entry is None:
                return False
            self._update_entry(entry)
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
        with self._lock:
            self._db.execute(
                "INSERT INTO recordings (op_id, call_id, path, token, expires_at) "
                "VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (op_id) DO UPDATE SET call_id = excluded.call_id, "
                "path = excluded.path, token = excluded.token, "
                "expires_at = excluded.expires_at",
                (op_id, call_id, path, token, expires_at),
            )

    def get_recording(self, op_id: str) -> RecordingEntry | None:
        """Return the recording of operation ``op_id``, expired or not, or None."""
        rows = self._rows(
            "SELECT op_id, call_id, path, token, expires_at FROM recordings "
            "WHERE op_id = ?",
            (op_id,),
        )
        return _recording(rows[0]) if rows else None

    def expired_recordings(self, now: float) -> list[RecordingEntry]:
        """Return the recordings whose ``expires_at`` is at or before ``now``."""
        rows = self._rows(
            "SELECT op_id, call_id, path, token, expires_at FROM recordings "
            "WHERE expires_at <= ? ORDER BY expires_at, op_id",
            (now,),
        )
        return [_recording(row) for row in rows]

    def delete_recording(self, op_id: str) -> None:
        """Forget the recording of operation ``op_id``; no error if it is unknown."""
        with self._lock:
            self._db.execute("DELETE FROM recordings WHERE op_id = ?", (op_id,))

    # helpers

    def _open_schema(self) -> None:
        # journal_mode reports "memory" for ":memory:" databases; that is fine
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA foreign_keys = ON")
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self._path} has store schema {version}, and this graphcomms "
                f"reads up to {SCHEMA_VERSION}: run a newer graphcomms on it, "
                "or point it at another data directory"
            )
        with self.transaction():
            for statement in _SCHEMA:
                self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _undo(self, depth: int) -> None:
        if depth == 0:
            self._db.execute("ROLLBACK")
        else:
            self._db.execute(f"ROLLBACK TO s{depth}")
            self._db.execute(f"RELEASE s{depth}")

    def _finish(self, depth: int) -> None:
        if depth > 0:
            self._db.execute(f"RELEASE s{depth}")
            return
        try:
            self._db.execute("COMMIT")
        except BaseException:
            # a failed COMMIT can leave the transaction open; never reuse it
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _entries(self, where: str, params: tuple[Any, ...]) -> list[OutboxEntry]:
        # ``where`` is one of this module's own constants, never caller input
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM outbox WHERE {where} ORDER BY seq",
                params,
            ).fetchall()
            attempts = self._db.execute(
                "SELECT seq, at, status_code, error, outcome FROM outbox_attempts "
                f"WHERE seq IN (SELECT seq FROM outbox WHERE {where}) ORDER BY id",
                params,
            ).fetchall()
        log: dict[int, list[Attempt]] = {}
        for seq, *fields in attempts:
            log.setdefault(seq, []).append(Attempt(*fields))
        return [_entry(row, tuple(log.get(row[0], ()))) for row in rows]

    def _entry(self, seq: int) -> OutboxEntry:
        entries = self._entries("seq = ?", (seq,))
        if not entries:
            raise LookupError(f"notification {seq} is not in the outbox")
        return entries[0]

    def _update_entry(self, entry: OutboxEntry) -> None:
        self._db.execute(
            "UPDATE outbox SET status = ?, attempts = ?, last_error = ?, "
            "delivered_at = ? WHERE seq = ?",
            (
                entry.status,
                entry.attempts,
                entry.last_error,
                entry.delivered_at,
                entry.seq,
            ),
        )


def _entry(row: tuple[Any, ...], attempt_log: tuple[Attempt, ...]) -> OutboxEntry:
    seq, call_id, url, payload, status, attempts, last_error, created_at, done = row
    return OutboxEntry(
        seq=seq,
        call_id=call_id,
        url=url,
        payload=json.loads(payload),
        status=status,
        attempts=attempts,
        last_error=last_error,
        created_at=created_at,
        delivered_at=done,
        attempt_log=attempt_log,
    )


def _recording(row: tuple[Any, ...]) -> RecordingEntry:
    op_id, call_id, path, token, expires_at = row
    return RecordingEntry(OperationId(op_id), CallId(call_id), path, token, expires_at)
