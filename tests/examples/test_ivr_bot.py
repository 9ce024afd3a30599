"""The reference bot of ``examples/ivr_bot`` against a real graphcomms.

The bot (msgraph-sdk for its Graph requests) serves its webhook on this
test's event loop; graphcomms runs on a virtual clock in the
``graphcomms_server`` fixture. The clock moves 20 ms at a time, and only
once delivery is drained: the bot acts before it answers each webhook, so
a drained outbox means it has reacted.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import sys
import wave
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from graphcomms.demo.caller import ivr_script
from graphcomms.demo.serving import LocalServer, free_socket
from graphcomms.media.levels import beep_pcm
from graphcomms.media.wav import parse_prompt_wav
from graphcomms.types import samples_to_ms

pytest.importorskip("msgraph", reason="the example bot needs msgraph-sdk")
# the SDK warns about its own generated code
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:msgraph.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:kiota_abstractions.*"),
]

EXAMPLE = Path(__file__).parents[2] / "examples" / "ivr_bot" / "bot.py"
SOUNDS = Path(__file__).parents[2] / "src" / "graphcomms" / "media" / "sounds"
CLOCK_LIMIT_MS = 60_000


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ivr_bot_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def length_ms(name: str) -> int:
    return samples_to_ms(len(parse_prompt_wav((SOUNDS / f"{name}.wav").read_bytes())))


def caller_presses_2_then_leaves_a_reply() -> list[dict[str, Any]]:
    steps = ivr_script(
        welcome_ms=length_ms("welcome"),
        menu_ms=length_ms("menu"),
        billing_ms=length_ms("billing"),
        beep_ms=samples_to_ms(len(beep_pcm())),
    )
    return [step.action for step in steps]


async def run_clock_until(server: Any, done: Callable[[], bool]) -> None:
    """Tick the service clock, letting the bot react between ticks."""
    await asyncio.to_thread(server.drain)
    now_ms = 0
    while not done():
        assert now_ms < CLOCK_LIMIT_MS, "the call did not end"
        now_ms = await asyncio.to_thread(server.advance, 20)
        await asyncio.to_thread(server.drain)


async def test_ivr_bot_records_the_reply_and_hangs_up(
    graphcomms_server: Any, tmp_path: Path
) -> None:
    """Menu, key 2, cancel, billing, recording downloaded, goodbye, hang-up."""
    ivr = load_example()
    sock = free_socket()
    callback_url = f"http://127.0.0.1:{sock.getsockname()[1]}{ivr.CALLBACK_PATH}"
    bot = ivr.IvrBot(
        ivr.graph_client(graphcomms_server.graph_url("v1.0")),
        callback_url=callback_url,
        prompts_url=f"{graphcomms_server.base_url}/_sim/sounds",
        recordings_dir=tmp_path / "recordings",
    )
    bot.warm_up()
    server = LocalServer(bot.app, sock)
    await server.start()
    try:
        call_id = await asyncio.to_thread(
            graphcomms_server.place_call,
            callback_url,
            script=caller_presses_2_then_leaves_a_reply(),
        )
        await run_clock_until(
            graphcomms_server,
            lambda: (
                call_id in bot.calls and bot.calls[call_id].stage is ivr.Stage.ENDED
            ),
        )
    finally:
        await server.stop()
        await bot.http.aclose()

    # the reply was downloaded: a WAV of about the 3 s the caller spoke
    flow = bot.calls[call_id]
    assert flow.recording is not None
    with wave.open(io.BytesIO(flow.recording.read_bytes())) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (
            1,
            2,
            16_000,
        )
        assert 3.0 <= wav.getnframes() / 16_000 <= 3.8

    # the service's story: the cancel stopped the menu and its queued repeat
    story = await asyncio.to_thread(graphcomms_server.history, call_id)
    assert story["result"] == "200/7000"
    ended = {
        op["resource"].get("clientContext"): op["resource"]
        for op in story["operations"]
        if op["kind"] == "playPrompt"
    }
    for cancelled in ("menu", "menu-repeat"):
        assert ended[cancelled]["status"] == "failed"
        assert ended[cancelled]["resultInfo"]["subcode"] == 8508
    for played in ("welcome", "billing", "goodbye"):
        assert ended[played]["status"] == "completed"
