"""Checkpoints run outside commits once a service defers them."""

from __future__ import annotations

from pathlib import Path

from graphcomms.store.sqlite import SqliteStore


def wal_frames(store: SqliteStore) -> int:
    """Return how many frames the store's WAL holds."""
    _, log, _ = store._db.execute("PRAGMA wal_checkpoint(NOOP)").fetchone()
    return int(log)


def test_deferred_store_leaves_the_wal_to_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "gc.db"
    store = SqliteStore(path)
    store.defer_checkpoints()
    for n in range(1500):
        store.add_notification(
            "c", "http://bot.example.test/", {"n": n, "pad": "x" * 200}
        )
    # past SQLite's 1,000-page automatic checkpoint, the WAL kept growing
    assert wal_frames(store) > 1000

    store.checkpoint()
    store.add_notification("c", "http://bot.example.test/", {"n": 1500})

    # everything was copied back, so the WAL started over
    assert wal_frames(store) < 10
    assert [e.payload["n"] for e in store.pending_notifications()][-1] == 1500
    store.close()
