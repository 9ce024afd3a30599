"""``graphcomms demo --fast``: the whole IVR call, asserted from its timeline.

The demo runs once per module through the command line's ``main()``; the
tests read the timeline it saved (``timeline.json``, the same events
``run_demo`` returns) rather than its printed text.
"""

from __future__ import annotations

import contextlib
import io
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from graphcomms import cli
from graphcomms.demo import Event
from graphcomms.demo import run as demo_run

Match = Callable[[Event], bool]


@dataclass(frozen=True)
class DemoRun:
    exit_code: int
    stdout: str
    stderr: str
    out_dir: Path
    events: list[Event]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(argv)
    return code, stdout.getvalue(), stderr.getvalue()


def load_events(path: Path) -> list[Event]:
    rows = json.loads(path.read_text())
    return [
        Event(**{**row, "path": Path(row["path"]) if row["path"] else None})
        for row in rows
    ]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    out_dir = tmp_path_factory.mktemp("demo")
    code, stdout, stderr = run_cli(["demo", "--fast", "--out", str(out_dir)])
    events = load_events(out_dir / "timeline.json")
    return DemoRun(code, stdout, stderr, out_dir, events)


def in_order(events: list[Event], *matches: Match) -> list[int]:
    """Return where each match is first found, each after the one before."""
    found: list[int] = []
    start = 0
    for number, match in enumerate(matches):
        index = next((i for i in range(start, len(events)) if match(events[i])), None)
        assert index is not None, (
            f"step {number} not found after event {start}:\n"
            + "\n".join(e.line() for e in events[start:])
        )
        found.append(index)
        start = index + 1
    return found


def request(name: str, label: str | None = None, **facts: object) -> Match:
    def match(e: Event) -> bool:
        return (
            e.kind == "request"
            and e.who == "bot → graph"
            and e.name == name
            and (label is None or e.label == label)
            and all(getattr(e, k) == v for k, v in facts.items())
        )

    return match


def notified(name: str, label: str | None = None, **facts: object) -> Match:
    def match(e: Event) -> bool:
        return (
            e.kind == "notification"
            and e.name == name
            and (label is None or e.label == label)
            and all(getattr(e, k) == v for k, v in facts.items())
        )

    return match


def caller(name: str, tone: str | None = None) -> Match:
    def match(e: Event) -> bool:
        return e.who == "caller" and e.name == name and e.tone == tone

    return match


def read_wav(path: Path) -> tuple[dict[str, int], np.ndarray]:
    """Return a PCM WAV's header fields and samples, read from the raw bytes."""
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
    pos, fmt, samples = 12, None, None
    while pos + 8 <= len(data):
        chunk = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        body = data[pos + 8 : pos + 8 + size]
        if chunk == b"fmt ":
            tag, channels, rate, byte_rate, align, bits = struct.unpack(
                "<HHIIHH", body[:16]
            )
            fmt = {
                "format": tag,
                "channels": channels,
                "rate": rate,
                "byte_rate": byte_rate,
                "block_align": align,
                "bits": bits,
            }
        elif chunk == b"data":
            samples = np.frombuffer(body, dtype="<i2")
        pos += 8 + size + (size & 1)
    assert fmt is not None and samples is not None
    return fmt, samples


PCM_16K_MONO_16 = {
    "format": 1,
    "channels": 1,
    "rate": 16_000,
    "byte_rate": 32_000,
    "block_align": 2,
    "bits": 16,
}


def test_demo_fast_exits_zero_and_prints_the_timeline(demo: DemoRun) -> None:
    """The command succeeds and prints aligned lines, the files and a summary."""
    assert demo.exit_code == 0, demo.stderr
    lines = demo.stdout.splitlines()
    assert any(line.split()[:3] == ["time", "who", "what"] for line in lines)
    assert f"  recording      {demo.out_dir / 'recording.wav'}" in lines
    assert f"  caller heard   {demo.out_dir / 'heard.wav'}" in lines
    assert lines[-1].startswith("OK: answered, key 2 cancelled 2 prompts")
    printed = [line for line in lines if line.endswith(tuple("0123456789s"))]
    assert len(printed) > 0
    for event in demo.events:
        assert event.line() in lines


def test_demo_timeline_runs_the_whole_ivr_flow_in_order(demo: DemoRun) -> None:
    """Answer, menu, key 2, cancel, billing, record, download, goodbye, hang-up."""
    in_order(
        demo.events,
        request("answer", http_status=202),
        notified("call", change_type="updated", status="established"),
        request("subscribeToTone", status="completed"),
        request("playPrompt", "welcome", status="running"),
        request("playPrompt", "menu", status="notStarted"),
        request("playPrompt", "menu-repeat", status="notStarted"),
        notified("playPrompt", "welcome", status="completed", result="200/0"),
        caller("press", "2"),
        notified("call", tone="tone2"),
        request("cancelMediaProcessing", status="completed", http_status=200),
        request("playPrompt", "billing", status="running"),
        request("recordResponse", "reply", status="notStarted"),
        notified("playPrompt", "menu", status="failed", result="400/8508"),
        notified("playPrompt", "menu-repeat", status="failed", result="400/8508"),
        notified("playPrompt", "billing", status="completed"),
        caller("speak"),
        caller("press", "#"),
        notified(
            "record",
            "reply",
            status="completed",
            result="200/8514",
            completion_reason="stopToneDetected",
        ),
        request("recording", http_status=200),
        request("playPrompt", "goodbye", status="running"),
        notified("playPrompt", "goodbye", status="completed"),
        request("hangUp", http_status=204),
        notified("call", change_type="updated", status="terminating"),
        notified("call", change_type="deleted", status="terminated", result="200/7000"),
    )


def test_demo_cancel_stops_the_running_prompt_then_the_queued_one(
    demo: DemoRun,
) -> None:
    """Both prompts end failed 400/8508 mediaOperationCanceled, running one first."""
    events = demo.events
    cancel = in_order(events, request("cancelMediaProcessing"))[0]
    cancelled = [
        e for e in events if e.kind == "notification" and e.result == "400/8508"
    ]
    assert [e.label for e in cancelled] == ["menu", "menu-repeat"]
    assert {e.completion_reason for e in cancelled} == {"mediaOperationCanceled"}
    assert all(events.index(e) > cancel for e in cancelled)
    # the menu was running when the key came: the welcome had finished
    welcome_done = in_order(events, notified("playPrompt", "welcome"))[0]
    press = in_order(events, caller("press", "2"))[0]
    assert welcome_done < press
    assert "(all: true)" in events[cancel].outcome


def test_demo_tone_pound_is_notified_before_the_recording_it_ends(
    demo: DemoRun,
) -> None:
    """# is a toneInfo update first, then the stop tone that ends the recording."""
    press, _, done = in_order(
        demo.events,
        caller("press", "#"),
        notified("call", tone="pound"),
        notified("record", "reply"),
    )
    assert demo.events[done].at_ms - demo.events[press].at_ms <= 100


def test_demo_recording_is_16k_mono_16bit_about_the_speech_length(
    demo: DemoRun,
) -> None:
    """The downloaded recording is PCM 16 kHz mono 16-bit, about 3 s long."""
    path = demo.out_dir / "recording.wav"
    saved = in_order(demo.events, lambda e: e.kind == "file" and e.who == "bot")
    assert demo.events[saved[0]].path == path
    fmt, samples = read_wav(path)
    assert fmt == PCM_16K_MONO_16
    seconds = len(samples) / 16_000
    assert 3.0 <= seconds <= 3.8, seconds
    # the caller spoke: the recording is not silence
    assert np.sqrt(np.mean(samples.astype(np.float64) ** 2)) > 100


def test_demo_heard_audio_covers_the_call(demo: DemoRun) -> None:
    """What the caller heard spans established to hang-up, prompts included."""
    fmt, samples = read_wav(demo.out_dir / "heard.wav")
    assert fmt == PCM_16K_MONO_16
    established, ended = in_order(
        demo.events,
        notified("call", status="established"),
        notified("call", change_type="deleted"),
    )
    call_s = (demo.events[ended].at_ms - demo.events[established].at_ms) / 1000
    assert abs(len(samples) / 16_000 - call_s) <= 0.1
    welcome = samples[: 16_000 * 3].astype(np.float64)
    assert np.sqrt(np.mean(welcome**2)) > 100


def test_demo_that_does_not_finish_says_where_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run cut short by the clock limit exits 1 and names the bot's stage."""
    monkeypatch.setattr(demo_run, "VIRTUAL_LIMIT_MS", 5_000)
    code, _, stderr = run_cli(["demo", "--fast", "--out", str(tmp_path)])
    assert code == 1
    assert "the call was not over after 5 s" in stderr
    assert "playing the menu, waiting for key 2" in stderr
    assert not (tmp_path / "recording.wav").exists()
