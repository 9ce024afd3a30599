"""The SQLite store keeps what it acknowledged; the memory store behaves the same.

Behavioural tests run against three stores: SQLite in memory, SQLite in a
file, and ``MemoryStore``. Tests of durability and of what other connections
see run against a file only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from graphcomms.engine.call import Call, CallState, Direction
from graphcomms.engine.operation import (
    CALL_TERMINATED,
    ApiVersion,
    Operation,
    OperationKind,
    OperationStatus,
    PromptSource,
    RecordSettings,
)
from graphcomms.engine.ports import Store
from graphcomms.store import (
    SCHEMA_VERSION,
    Attempt,
    MemoryStore,
    OutboxEntry,
    RecordingEntry,
    SqliteStore,
)
from graphcomms.types import CallId, OperationId

AnyStore = SqliteStore | MemoryStore


class FakeWallClock:
    """Return a fixed time that a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeWallClock:
    return FakeWallClock()


@pytest.fixture(params=["sqlite-memory", "sqlite-file", "memory"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeWallClock
) -> Iterator[AnyStore]:
    s: AnyStore
    if request.param == "sqlite-memory":
        s = SqliteStore(":memory:", wall_clock=clock)
    elif request.param == "sqlite-file":
        s = SqliteStore(tmp_path / "graphcomms.db", wall_clock=clock)
    else:
        s = MemoryStore(wall_clock=clock)
    yield s
    s.close()


def make_call(
    call_id: str, *, created_ms: int = 0, state: CallState = CallState.ESTABLISHED
) -> Call:
    return Call(
        CallId(call_id),
        Direction.INCOMING,
        ApiVersion.V1,
        "http://localhost:9000/cb",
        state=state,
        created_ms=created_ms,
        prefetch=(PromptSource("https://x/a.wav", "a"),),
        history=[(created_ms, "created")],
    )


def make_op(op_id: str, call_id: str = "c-1", **changes: object) -> Operation:
    op = Operation(
        OperationId(op_id),
        CallId(call_id),
        OperationKind.RECORD,
        ApiVersion.BETA,
        record=RecordSettings(stop_tones=("#",)),
        prompts=(PromptSource("https://x/p.wav"),),
    )
    for name, value in changes.items():
        setattr(op, name, value)
    return op


def test_both_stores_satisfy_the_engine_port(tmp_path: Path) -> None:
    stores: list[Store] = [SqliteStore(tmp_path / "a.db"), MemoryStore()]
    assert len(stores) == 2


# calls


def test_call_saved_comes_back_equal(store: AnyStore) -> None:
    call = make_call("c-1", created_ms=5)
    call.result_info = CALL_TERMINATED

    store.save_call(call)

    assert store.get_call(CallId("c-1")) == call
    assert store.get_call(CallId("nope")) is None


def test_save_call_twice_updates_in_place(store: AnyStore) -> None:
    store.save_call(make_call("c-1", created_ms=1))
    store.save_call(make_call("c-2", created_ms=1))
    call = make_call("c-1", created_ms=1)
    call.state = CallState.TERMINATING
    call.note(9, "hang up")

    store.save_call(call)

    assert store.get_call(CallId("c-1")) == call
    assert [c.id for c in store.live_calls()] == ["c-1", "c-2"]
    assert len(list(store.all_calls())) == 2


def test_saved_call_is_a_snapshot(store: AnyStore) -> None:
    call = make_call("c-1")
    store.save_call(call)

    call.note(1, "changed after saving")
    call.state = CallState.TERMINATED

    stored = store.get_call(CallId("c-1"))
    assert stored is not None
    assert stored.state is CallState.ESTABLISHED
    assert stored.history == [(0, "created")]


def test_live_calls_excludes_terminated_in_creation_order(store: AnyStore) -> None:
    store.save_call(make_call("c-3", created_ms=30))
    store.save_call(make_call("c-1", created_ms=10, state=CallState.TERMINATED))
    store.save_call(make_call("c-2", created_ms=20, state=CallState.TERMINATING))
    store.save_call(make_call("c-4", created_ms=5, state=CallState.INCOMING))

    assert [c.id for c in store.live_calls()] == ["c-3", "c-2", "c-4"]


def test_all_calls_newest_first_ties_by_creation_order(store: AnyStore) -> None:
    for i in range(450):  # more than one page of the SQLite reader
        store.save_call(make_call(f"c-{i}", created_ms=i // 3))

    ids = [c.id for c in store.all_calls()]

    expected = sorted(range(450), key=lambda i: (i // 3, i), reverse=True)
    assert ids == [f"c-{i}" for i in expected]


# operations


def test_operation_saved_comes_back_equal(store: AnyStore) -> None:
    op = make_op("o-1", status=OperationStatus.RUNNING, started_ms=3)

    store.save_operation(op)

    assert store.get_operation(OperationId("o-1")) == op
    assert store.get_operation(OperationId("nope")) is None


def test_operations_of_keeps_creation_order_across_updates(store: AnyStore) -> None:
    for op_id, call_id in [("o-b", "c-1"), ("o-x", "c-2"), ("o-a", "c-1")]:
        store.save_operation(make_op(op_id, call_id))
    finished = make_op("o-b", status=OperationStatus.COMPLETED, finished_ms=40)

    store.save_operation(finished)

    ops = store.operations_of(CallId("c-1"))
    assert [op.id for op in ops] == ["o-b", "o-a"]
    assert ops[0] == finished
    assert [op.id for op in store.operations_of(CallId("c-2"))] == ["o-x"]
    assert store.operations_of(CallId("c-9")) == []


# outbox


def test_add_notification_numbers_in_one_global_order(
    store: AnyStore, clock: FakeWallClock
) -> None:
    first = store.add_notification("c-1", "http://a/cb", {"value": [1]})
    clock.now += 1
    second = store.add_notification("c-2", "http://b/cb", {"value": [2]})
    third = store.add_notification("c-1", "http://a/cb", {"value": [3]})

    assert first < second < third
    pending = store.pending_notifications()
    assert [e.seq for e in pending] == [first, second, third]
    assert pending[0] == OutboxEntry(
        seq=first,
        call_id="c-1",
        url="http://a/cb",
        payload={"value": [1]},
        status="pending",
        attempts=0,
        last_error=None,
        created_at=1_700_000_000.0,
        delivered_at=None,
    )
    assert pending[1].created_at == 1_700_000_001.0


def test_payload_round_trips_with_non_ascii(store: AnyStore) -> None:
    payload = {"value": [{"changeType": "deleted", "text": "été ☎", "n": 1.5}]}

    seq = store.add_notification("c-1", "http://a/cb", payload)

    (entry,) = store.notifications_of("c-1")
    assert entry.seq == seq
    assert entry.payload == payload


def test_payload_is_copied_in_and_out(store: AnyStore) -> None:
    payload: dict[str, object] = {"value": []}
    store.add_notification("c-1", "http://a/cb", payload)
    payload["value"] = ["changed"]

    store.pending_notifications()[0].payload["value"] = ["changed again"]

    assert store.pending_notifications()[0].payload == {"value": []}


def test_payload_that_json_cannot_hold_is_refused(store: AnyStore) -> None:
    with pytest.raises(TypeError):
        store.add_notification("c-1", "http://a/cb", {"x": object()})

    assert store.pending_notifications() == []


def test_retrying_attempt_keeps_notification_pending(store: AnyStore) -> None:
    seq = store.add_notification("c-1", "http://a/cb", {})

    store.record_attempt(seq, at=10.0, status_code=503, error=None, outcome="retrying")
    store.record_attempt(
        seq, at=12.0, status_code=None, error="connect timeout", outcome="retrying"
    )

    (entry,) = store.pending_notifications()
    assert entry.status == "pending"
    assert entry.attempts == 2
    assert entry.last_error == "connect timeout"
    assert entry.delivered_at is None
    assert entry.attempt_log == (
        Attempt(10.0, 503, None, "retrying"),
        Attempt(12.0, None, "connect timeout", "retrying"),
    )


def test_delivered_attempt_ends_pending(store: AnyStore) -> None:
    seq = store.add_notification("c-1", "http://a/cb", {})
    store.record_attempt(seq, at=10.0, status_code=500, error=None, outcome="retrying")

    store.record_attempt(seq, at=14.0, status_code=202, error=None, outcome="delivered")

    assert store.pending_notifications() == []
    (entry,) = store.notifications_of("c-1")
    assert entry.status == "delivered"
    assert entry.delivered_at == 14.0
    assert entry.attempts == 2
    assert entry.last_error == "HTTP 500"  # why the first try failed stays visible


def test_failed_attempt_parks_notification_until_requeued(store: AnyStore) -> None:
    kept = store.add_notification("c-1", "http://a/cb", {"n": 1})
    lost = store.add_notification("c-1", "http://a/cb", {"n": 2})

    store.record_attempt(lost, at=1.0, status_code=410, error="gone", outcome="failed")

    assert [e.seq for e in store.pending_notifications()] == [kept]
    (failed,) = store.failed_notifications()
    assert (failed.seq, failed.status, failed.last_error) == (lost, "failed", "gone")

    assert store.requeue(lost) is True

    assert [e.seq for e in store.pending_notifications()] == [kept, lost]
    assert store.failed_notifications() == []
    requeued = store.pending_notifications()[1]
    assert requeued.attempts == 1
    assert len(requeued.attempt_log) == 1


def test_requeue_refuses_what_has_not_failed(store: AnyStore) -> None:
    pending = store.add_notification("c-1", "http://a/cb", {})
    done = store.add_notification("c-1", "http://a/cb", {})
    store.record_attempt(done, at=1.0, status_code=200, error=None, outcome="delivered")

    assert store.requeue(pending) is False
    assert store.requeue(done) is False
    assert store.requeue(999) is False
    assert [e.status for e in store.notifications_of("c-1")] == ["pending", "delivered"]


def test_record_attempt_on_unknown_seq_raises(store: AnyStore) -> None:
    with pytest.raises(LookupError):
        store.record_attempt(
            42, at=1.0, status_code=200, error=None, outcome="delivered"
        )


def test_record_attempt_on_delivered_raises_and_changes_nothing(
    store: AnyStore,
) -> None:
    seq = store.add_notification("c-1", "http://a/cb", {})
    store.record_attempt(seq, at=1.0, status_code=200, error=None, outcome="delivered")

    with pytest.raises(ValueError, match="delivered"):
        store.record_attempt(
            seq, at=2.0, status_code=200, error=None, outcome="delivered"
        )

    (entry,) = store.notifications_of("c-1")
    assert entry.attempts == 1
    assert len(entry.attempt_log) == 1


def test_notifications_of_keeps_calls_apart(store: AnyStore) -> None:
    a1 = store.add_notification("c-a", "http://a/cb", {"n": 1})
    b1 = store.add_notification("c-b", "http://b/cb", {"n": 2})
    a2 = store.add_notification("c-a", "http://a/cb", {"n": 3})
    store.record_attempt(b1, at=1.0, status_code=500, error=None, outcome="retrying")
    store.record_attempt(a2, at=2.0, status_code=200, error=None, outcome="delivered")

    entries = store.notifications_of("c-a")

    assert [e.seq for e in entries] == [a1, a2]
    assert [len(e.attempt_log) for e in entries] == [0, 1]
    assert store.notifications_of("c-z") == []


# recordings


def test_recordings_save_get_expire_delete(store: AnyStore) -> None:
    store.save_recording(OperationId("o-2"), CallId("c-1"), "/r/o-2.wav", "t2", 200.0)
    store.save_recording(OperationId("o-1"), CallId("c-1"), "/r/o-1.wav", "t1", 100.0)
    store.save_recording(OperationId("o-3"), CallId("c-2"), "/r/o-3.wav", "t3", 300.0)

    assert store.get_recording(OperationId("o-1")) == RecordingEntry(
        OperationId("o-1"), CallId("c-1"), "/r/o-1.wav", "t1", 100.0
    )
    assert store.get_recording(OperationId("nope")) is None
    assert store.expired_recordings(99.0) == []
    expired = store.expired_recordings(200.0)
    assert [r.op_id for r in expired] == ["o-1", "o-2"]

    store.delete_recording(OperationId("o-1"))
    store.delete_recording(OperationId("o-1"))

    assert store.get_recording(OperationId("o-1")) is None
    assert [r.op_id for r in store.expired_recordings(1e9)] == ["o-2", "o-3"]


def test_save_recording_twice_replaces_it(store: AnyStore) -> None:
    store.save_recording(OperationId("o-1"), CallId("c-1"), "/r/a.wav", "t1", 100.0)
    store.save_recording(OperationId("o-1"), CallId("c-1"), "/r/b.wav", "t2", 500.0)

    entry = store.get_recording(OperationId("o-1"))

    assert entry is not None
    assert (entry.path, entry.token, entry.expires_at) == ("/r/b.wav", "t2", 500.0)
    assert store.expired_recordings(200.0) == []


def test_recording_repr_hides_the_token() -> None:
    entry = RecordingEntry(OperationId("o"), CallId("c"), "/r.wav", "s3cr3t", 1.0)

    assert "s3cr3t" not in repr(entry)


# transactions


def write_one_of_each(store: AnyStore, n: int) -> None:
    store.save_call(make_call(f"c-{n}"))
    store.save_operation(make_op(f"o-{n}", f"c-{n}"))
    store.add_notification(f"c-{n}", "http://a/cb", {"n": n})
    store.save_recording(OperationId(f"o-{n}"), CallId(f"c-{n}"), "/r", "t", 1.0)


def assert_written(store: AnyStore, n: int, present: bool) -> None:
    assert (store.get_call(CallId(f"c-{n}")) is not None) is present
    assert (store.get_operation(OperationId(f"o-{n}")) is not None) is present
    assert bool(store.notifications_of(f"c-{n}")) is present
    assert (store.get_recording(OperationId(f"o-{n}")) is not None) is present


def test_transaction_commits_its_writes(store: AnyStore) -> None:
    with store.transaction():
        write_one_of_each(store, 1)

    assert_written(store, 1, present=True)


def test_transaction_that_raises_writes_nothing(store: AnyStore) -> None:
    seq = store.add_notification("c-0", "http://a/cb", {})

    with pytest.raises(RuntimeError), store.transaction():
        write_one_of_each(store, 1)
        store.record_attempt(
            seq, at=1.0, status_code=200, error=None, outcome="delivered"
        )
        raise RuntimeError("boom")

    assert_written(store, 1, present=False)
    (entry,) = store.pending_notifications()
    assert (entry.seq, entry.attempts, entry.attempt_log) == (seq, 0, ())


def test_outer_failure_undoes_a_finished_inner_block(store: AnyStore) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        with store.transaction():
            write_one_of_each(store, 1)
        write_one_of_each(store, 2)
        raise RuntimeError("boom")

    assert_written(store, 1, present=False)
    assert_written(store, 2, present=False)


def test_inner_failure_undoes_only_the_inner_block(store: AnyStore) -> None:
    with store.transaction():
        write_one_of_each(store, 1)
        with pytest.raises(RuntimeError), store.transaction():
            write_one_of_each(store, 2)
            raise RuntimeError("boom")
        write_one_of_each(store, 3)

    assert_written(store, 1, present=True)
    assert_written(store, 2, present=False)
    assert_written(store, 3, present=True)


def test_store_is_usable_after_a_rollback(store: AnyStore) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        raise RuntimeError("boom")

    with store.transaction():
        write_one_of_each(store, 1)
    write_one_of_each(store, 2)

    assert_written(store, 1, present=True)
    assert_written(store, 2, present=True)


# durability (SQLite file only)


def count_calls_elsewhere(path: Path) -> int:
    """Count calls through a second connection: what another process sees."""
    with sqlite3.connect(path) as other:
        (n,) = other.execute("SELECT count(*) FROM calls").fetchone()
    other.close()
    return int(n)


def test_only_the_outermost_block_commits(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    store = SqliteStore(path)

    with store.transaction():
        with store.transaction():
            store.save_call(make_call("c-1"))
        assert count_calls_elsewhere(path) == 0
    assert count_calls_elsewhere(path) == 1

    store.save_call(make_call("c-2"))  # outside a transaction: at once
    assert count_calls_elsewhere(path) == 2
    store.close()


def test_file_store_uses_wal_and_records_its_schema(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    SqliteStore(path).close()

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    db.close()


def test_everything_survives_close_and_reopen(
    tmp_path: Path, clock: FakeWallClock
) -> None:
    path = tmp_path / "g.db"
    store = SqliteStore(path, wall_clock=clock)
    call = make_call("c-1", created_ms=7)
    op = make_op("o-1", status=OperationStatus.RUNNING)
    store.save_call(call)
    store.save_call(make_call("c-0", state=CallState.TERMINATED))
    store.save_operation(op)
    waiting = store.add_notification("c-1", "http://a/cb", {"n": 1})
    retried = store.add_notification("c-1", "http://a/cb", {"n": 2})
    failed = store.add_notification("c-1", "http://a/cb", {"n": 3})
    store.record_attempt(
        retried, at=5.0, status_code=503, error=None, outcome="retrying"
    )
    store.record_attempt(
        failed, at=6.0, status_code=None, error="dns", outcome="failed"
    )
    store.save_recording(OperationId("o-1"), CallId("c-1"), "/r/o-1.wav", "t", 9.0)
    before = store.notifications_of("c-1")
    store.close()

    reopened = SqliteStore(path)

    assert reopened.get_call(CallId("c-1")) == call
    assert [c.id for c in reopened.live_calls()] == ["c-1"]
    assert reopened.operations_of(CallId("c-1")) == [op]
    assert reopened.notifications_of("c-1") == before
    assert [e.seq for e in reopened.pending_notifications()] == [waiting, retried]
    assert [e.seq for e in reopened.failed_notifications()] == [failed]
    assert reopened.pending_notifications()[1].attempt_log == (
        Attempt(5.0, 503, None, "retrying"),
    )
    assert reopened.expired_recordings(10.0)[0].path == "/r/o-1.wav"
    assert reopened.add_notification("c-1", "http://a/cb", {}) > failed
    reopened.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    SqliteStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()

    with pytest.raises(RuntimeError, match="schema"):
        SqliteStore(path)


def test_close_twice_is_harmless(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "g.db")

    store.close()
    store.close()
