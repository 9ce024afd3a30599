"""Restarts, and data directories that are corrupt, read-only or unwritable.

The promises (README "Restarts", design.md "Persistence"): a restart loses
nothing acknowledged; pending notifications are delivered by the next run;
a call live at the stop is ended cleanly on the next start, its pending
operations failed (400/8528) and notified before the call's own end
(500/9999). A service that cannot use its data directory fails to start,
quickly and with a clear message.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import robustness_support as rs

from graphcomms.testing import (
    GraphcommsServer,
    PromptServer,
    WebhookReceiver,
    speak,
    tone_wav,
)
from graphcomms.testing.plugin import ServerFactory

PATIENT = {
    "delivery_attempts": 10_000,
    "delivery_initial_delay_s": 0.02,
    "delivery_max_delay_s": 0.05,
}
"""Retry a dead receiver for as long as the test runs: rows stay pending."""
START_TIMEOUT_S = 20


def _answer(server: GraphcommsServer, call_id: str) -> None:
    body = {"acceptedModalities": ["audio"], "mediaConfig": rs.SERVICE_HOSTED}
    assert rs.graph(server, call_id, "answer", body).status_code == 202
    server.advance(rs.ESTABLISH_MS)


def test_restart_mid_call_delivers_pending_and_fails_ops_before_call_end(
    graphcomms_server_factory: ServerFactory,
    webhook_receiver: WebhookReceiver,
    prompt_server: PromptServer,
    tmp_path: Path,
) -> None:
    """Queued, running and sending ops and a dead receiver, then a restart."""
    receiver = webhook_receiver
    short = prompt_server.add("short.wav", tone_wav(100))
    long = prompt_server.add("long.wav", tone_wav(3000))
    data_dir = tmp_path / "state"
    receiver.go_down()  # from the start: no kept-alive connection can cheat

    first = graphcomms_server_factory(data_dir, **PATIENT)
    call_id = first.place_call(receiver.url, script=[speak(5000)])
    _answer(first, call_id)
    rs.operation(first, call_id, "subscribeToTone")
    done = rs.play(first, call_id, short)["id"]
    pending = [rs.play(first, call_id, long)["id"] for _ in range(3)]
    pending.append(rs.operation(first, call_id, "recordResponse", rs.RECORD)["id"])
    tones = {"tones": ["tone1"] * 50}
    pending.append(rs.operation(first, call_id, "sendDtmfTones", tones)["id"])
    first.advance(500)
    assert not first.drain(0.3)
    before = first.history(call_id)["notifications"]
    assert [n["status"] for n in before] == ["pending"] * len(before)
    assert len(before) == 4  # created, establishing, established, short's end
    first.stop()
    assert receiver.notifications == []

    receiver.come_up()
    second = graphcomms_server_factory(data_dir, **PATIENT)
    story = rs.assert_call_story(second, receiver, call_id)

    assert rs.result_of(rs.ends(receiver, done)[0]) == ("completed", 200, 0)
    for op_id in pending:
        assert rs.result_of(rs.ends(receiver, op_id)[0]) == ("failed", 400, 8528)
    last = receiver.for_call(call_id)[-1].data
    assert last["resultInfo"]["code"] == 500 and last["resultInfo"]["subcode"] == 9999
    assert [n["seq"] for n in story["notifications"][: len(before)]] == [
        n["seq"] for n in before
    ]
    rs.assert_call_gone(second, call_id, [done, *pending])


def test_restart_with_delivery_in_flight_sends_it_again_never_zero_times(
    graphcomms_server_factory: ServerFactory, tmp_path: Path
) -> None:
    """Stopped while a POST waits on a slow receiver: the next run resends it."""
    received: list[dict[str, Any]] = []
    slow = threading.Event()
    slow.set()

    def answer(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        if slow.is_set():
            time.sleep(1.0)  # the service stops meanwhile
            return
        received.append(json.loads(body))
        handler.send_response(202)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    side = rs.SideServer(answer)
    try:
        data_dir = tmp_path / "state"
        first = graphcomms_server_factory(data_dir, delivery_timeout_s=5.0)
        call_id = first.place_call(side.url("/hook"))
        deadline = time.monotonic() + 5
        while side.requests == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert side.requests == 1
        first.stop()
        slow.clear()

        second = graphcomms_server_factory(data_dir)
        assert second.drain(5.0)
        stored = second.history(call_id)["notifications"]
        assert [n["status"] for n in stored] == ["delivered"] * len(stored)
        assert len(stored) == 2  # created, then the end on restart
        assert received == [n["payload"] for n in stored]
    finally:
        side.close()


@pytest.mark.graphcomms(
    delivery_attempts=2, delivery_initial_delay_s=0.01, delivery_max_delay_s=0.02
)
def test_restart_keeps_failed_notifications_redeliverable(
    graphcomms_server_factory: ServerFactory,
    webhook_receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    """Failed rows survive the restart, listed, and are redelivered after it."""
    receiver = webhook_receiver
    receiver.go_down()
    data_dir = tmp_path / "state"
    first = graphcomms_server_factory(data_dir)
    call_id = first.place_call(receiver.url)
    rs.graph(first, call_id, "reject", {"reason": "busy"})
    assert first.drain(5.0)
    failed = first.sim("GET", "/_sim/notifications").json()["value"]
    assert [n["status"] for n in failed] == ["failed", "failed"]
    first.stop()

    receiver.come_up()
    second = graphcomms_server_factory(data_dir)
    assert second.drain(2.0)
    assert receiver.notifications == []  # failed rows are not sent by themselves
    kept = second.sim("GET", "/_sim/notifications").json()["value"]
    assert [n["seq"] for n in kept] == [n["seq"] for n in failed]
    for note in kept:
        second.sim("POST", f"/_sim/notifications/{note['seq']}/redeliver")
    assert second.drain(5.0)

    states = [n.data.get("state") for n in receiver.for_call(call_id)]
    assert states == ["incoming", "terminated"]
    assert second.sim("GET", "/_sim/notifications").json()["value"] == []


def _corrupt(where: Path) -> Path:
    where.mkdir()
    (where / "graphcomms.db").write_bytes(b"this is not SQLite " * 300)
    return where


def _truncated(where: Path) -> Path:
    where.mkdir()
    db = where / "graphcomms.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(500)])
    conn.close()
    data = db.read_bytes()
    db.write_bytes(data[:100] + b"\x00" * 200 + data[300:])
    return where


def _a_file(where: Path) -> Path:
    where.write_text("a file, not a directory")
    return where


def _read_only(where: Path) -> Path:
    where.mkdir()
    where.chmod(0o555)
    return where


BROKEN_DATA_DIRS = {
    "corrupt-db": _corrupt,
    "truncated-db": _truncated,
    "data-dir-is-a-file": _a_file,
    "read-only-dir": _read_only,
}


def _serve_command(data_dir: Path) -> list[str]:
    """Return ``graphcomms serve`` on ``data_dir``, on a free port.

    As root, a read-only directory is still writable, so the command runs
    without the capabilities that bypass file permissions.
    """
    command = [
        sys.executable,
        "-m",
        "graphcomms.cli",
        "serve",
        "--data-dir",
        str(data_dir),
        "--port",
        "0",
        "--clock",
        "virtual",
    ]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv to drop DAC override")
        drop = "-dac_override,-dac_read_search,-fowner"
        command = [setpriv, f"--bounding-set={drop}", "--", *command]
    return command


Run = tuple[Path, int, str]


@pytest.fixture(scope="module")
def broken_serves(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Run ``graphcomms serve`` on each broken data directory, all at once.

    Each must exit by itself; one still running after 20 s is killed and
    counted as a hang.
    """
    base = tmp_path_factory.mktemp("broken")
    started = {}
    for name, make in BROKEN_DATA_DIRS.items():
        data_dir = make(base / name)
        process = subprocess.Popen(
            _serve_command(data_dir),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        started[name] = (data_dir, process)
    runs = {}
    for name, (data_dir, process) in started.items():
        try:
            _, stderr = process.communicate(timeout=START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
            stderr += f"\n(hung: killed after {START_TIMEOUT_S} s)"
        runs[name] = (data_dir, process.returncode, stderr)
    return runs


@pytest.mark.parametrize("broken", list(BROKEN_DATA_DIRS))
def test_serve_on_unusable_data_dir_exits_fast_with_an_error(
    broken_serves: dict[str, Run], broken: str
) -> None:
    """It does not hang and does not serve: a non-zero exit within 20 s."""
    _, returncode, stderr = broken_serves[broken]
    assert "hung" not in stderr, stderr[-2000:]
    assert returncode not in (0, None), stderr[-2000:]
    assert "Uvicorn running" not in stderr


@pytest.mark.parametrize("broken", list(BROKEN_DATA_DIRS))
def test_serve_on_unusable_data_dir_names_the_file_without_a_traceback(
    broken_serves: dict[str, Run], broken: str
) -> None:
    """The message is one clear line that says which path is unusable."""
    data_dir, _, stderr = broken_serves[broken]
    assert "Traceback" not in stderr, stderr[-600:]
    assert str(data_dir) in stderr


@pytest.mark.parametrize("broken", ["corrupt-db", "truncated-db"])
def test_server_on_corrupt_database_fails_to_start_in_process(
    tmp_path: Path, broken: str
) -> None:
    """The pytest plugin's server raises at once instead of hanging."""
    data_dir = BROKEN_DATA_DIRS[broken](tmp_path / "state")
    with pytest.raises(RuntimeError, match=r"did not start.*DatabaseError"):
        GraphcommsServer(data_dir).start()


def test_recording_that_cannot_be_saved_fails_its_operation(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    prompt_server: PromptServer,
) -> None:
    """The record ends once (failed), and the prompt queued behind it plays."""
    server, receiver = graphcomms_server, webhook_receiver
    short = prompt_server.add("short.wav", tone_wav(100))
    (server.settings.data_dir / "recordings").write_text("in the way")
    call_id = rs.answered_call(server, receiver, script=[speak(3000)])
    body = {"maxRecordDurationInSeconds": 1, "playBeep": False}
    record = rs.operation(server, call_id, "recordResponse", body)
    queued = rs.play(server, call_id, short)

    advanced = server.http.post("/_sim/clock/advance", json={"ms": 2000})

    assert advanced.status_code == 200, advanced.text
    ended = rs.wait_for_end(server, receiver, record["id"])
    assert ended["status"] == "failed"
    assert ended["recordingLocation"] == ""
    done = rs.wait_for_end(server, receiver, queued["id"])
    assert rs.result_of(done) == ("completed", 200, 0)
