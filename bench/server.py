"""``graphcomms serve`` as the benchmarks run it, with read-only probes.

The service is built exactly as the ``graphcomms`` command builds it (the
same ``Runtime``, ``create_app`` and uvicorn settings: one worker, uvicorn's
default loop and HTTP parser), at log level WARNING. Three additions observe
without steering:

- every caller's ``hear`` is wrapped when its call's media is attached, to
  note the clock tick and the monotonic time of each switch from audio to
  silence (the prompts the bot serves have no silent frame, so a switch marks
  a stop);
- ``GET /_bench/stats?since=K`` returns the media clock's tick lateness from
  tick K on, how many calls are live, whether delivery is idle, RSS and CPU;
- ``POST /_bench/silences`` returns, per call id, those switches and the
  clock times of its cancelMediaProcessing operations.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse

from graphcomms.api.app import create_app
from graphcomms.runtime import Runtime, Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import rss_kb, summary

_silences: dict[str, list[tuple[int, float]]] = {}


def install_probes(runtime: Runtime) -> None:
    """Wrap ``MediaPlane.attach`` so each attached caller's ``hear`` is observed."""
    media = runtime.media
    clock = runtime.clock
    attach = media.attach

    def probed_attach(call_id: Any, caller: Any) -> None:
        hear = caller.hear
        switches = _silences.setdefault(str(call_id), [])
        audible = [False]

        def probed_hear(frame: np.ndarray) -> None:
            hear(frame)
            # two scalar reads settle almost every frame; any() the rest
            if frame[0] or frame[160] or frame.any():
                audible[0] = True
            elif audible[0]:
                audible[0] = False
                switches.append((clock.now_ms(), time.monotonic()))

        caller.hear = probed_hear
        attach(call_id, caller)

    media.attach = probed_attach  # type: ignore[method-assign]


def add_routes(app: Any, runtime: Runtime) -> None:
    """Add the ``/_bench`` routes to the service's app."""

    async def stats(request: Request) -> JSONResponse:
        since = int(request.query_params.get("since", "0"))
        driver = runtime.real_driver
        late = driver.late_ms[since:] if driver is not None else []
        return JSONResponse(
            {
                "nowMs": runtime.clock.now_ms(),
                "ticks": len(driver.late_ms) if driver is not None else 0,
                "late": summary(late),
                "lateOver20": sum(1 for ms in late if ms >= 20.0),
                "live": runtime.engine.live_call_count,
                "deliveryIdle": runtime.delivery.idle,
                "rssKb": rss_kb(),
                "cpuS": time.process_time(),
                "mono": time.monotonic(),
            }
        )

    async def silences(request: Request) -> JSONResponse:
        ids = (await request.json())["callIds"]
        out: dict[str, Any] = {}
        for call_id in ids:
            cancels = [
                op.created_ms
                for op in runtime.engine.operations_record(call_id)
                if op.kind.value == "cancelMediaProcessing"
            ]
            out[call_id] = {"silences": _silences.get(call_id, []), "cancels": cancels}
        return JSONResponse(out)

    app.add_api_route("/_bench/stats", stats, methods=["GET"])
    app.add_api_route("/_bench/silences", silences, methods=["POST"])


def main() -> None:
    """Serve until terminated."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--answer-delay-ms", type=int, default=100)
    parser.add_argument("--clock", choices=["real", "virtual"], default="real")
    parser.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="asyncio is what `graphcomms serve` runs today (asyncio.run)",
    )
    args = parser.parse_args()

    logging.basicConfig(level=logging.WARNING)
    settings = Settings(
        data_dir=args.data_dir,
        host="127.0.0.1",
        port=args.port,
        clock_mode=args.clock,
        answer_delay_ms=args.answer_delay_ms,
    )
    runtime = Runtime(settings)
    install_probes(runtime)
    app = create_app(runtime)
    add_routes(app, runtime)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(server.serve())
    else:
        asyncio.run(server.serve())


if __name__ == "__main__":
    main()
