"""Durable state: calls, operations, the notification outbox and recordings.

``SqliteStore`` is the embedded default, one file in the data directory.
``MemoryStore`` keeps the same state in dicts, with the same behaviour, for
unit tests of the layers above. Both implement ``engine.ports.Store``.
"""

from graphcomms.store.memory import MemoryStore
from graphcomms.store.outbox import (
    Attempt,
    AttemptOutcome,
    OutboxEntry,
    OutboxStatus,
    RecordingEntry,
)
from graphcomms.store.sqlite import SCHEMA_VERSION, SqliteStore

__all__ = [
    "SCHEMA_VERSION",
    "Attempt",
    "AttemptOutcome",
    "MemoryStore",
    "OutboxEntry",
    "OutboxStatus",
    "RecordingEntry",
    "SqliteStore",
]
