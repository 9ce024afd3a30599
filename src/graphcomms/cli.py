"""The ``graphcomms`` command: ``serve`` runs the service."""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from graphcomms import __version__
from graphcomms.runtime import Settings


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``graphcomms`` command."""
    parser = argparse.ArgumentParser(
        prog="graphcomms",
        description="The Microsoft Graph calling API with real media, served locally.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the Graph calling API service",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".graphcomms"),
        help="where the SQLite database and recordings live",
    )
    serve.add_argument(
        "--clock",
        choices=["real", "virtual", "fast"],
        default="real",
        help="real time; virtual, advanced through POST /_sim/clock/advance; "
        "or fast, running ahead whenever nothing is in flight",
    )
    serve.add_argument("--public-url", help="base URL clients use to reach us")
    serve.add_argument(
        "--answer-delay-ms",
        type=int,
        default=1000,
        help="how long a simulated callee rings before answering",
    )
    defaults = Settings()
    serve.add_argument(
        "--prompt-timeout-s",
        type=float,
        default=defaults.prompt_timeout_s,
        help="longest a prompt download may take, in seconds",
    )
    serve.add_argument(
        "--prompt-max-bytes",
        type=int,
        default=defaults.prompt_max_bytes,
        help="largest prompt file accepted, in bytes",
    )
    serve.add_argument(
        "--delivery-attempts",
        type=int,
        default=defaults.delivery_attempts,
        help="tries per webhook notification before it is kept as failed",
    )
    serve.add_argument(
        "--recording-retention-s",
        type=float,
        default=defaults.recording_retention_s,
        help="how long recordings can be fetched, in seconds",
    )
    serve.add_argument(
        "--cancelled-dtmf-status",
        choices=["completed", "failed"],
        default=defaults.cancelled_dtmf_status,
        help="how a cancelled sendDtmfTones ends (Graph's page says completed)",
    )
    serve.add_argument("--log-level", default="INFO", help="Python logging level")

    demo = commands.add_parser(
        "demo", help="play a whole IVR call: service, bot and caller in one process"
    )
    demo.add_argument(
        "--fast",
        action="store_true",
        help="run on the virtual clock: the call takes about a second",
    )
    demo.add_argument(
        "--out",
        type=Path,
        help="where to save the recording, the caller's audio and the timeline "
        "(default: a new temporary directory)",
    )
    demo.add_argument("--log-level", default="WARNING")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    """Return the service settings that ``serve``'s arguments ask for."""
    return Settings(
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        clock_mode=args.clock,
        public_base_url=args.public_url,
        answer_delay_ms=args.answer_delay_ms,
        prompt_timeout_s=args.prompt_timeout_s,
        prompt_max_bytes=args.prompt_max_bytes,
        delivery_attempts=args.delivery_attempts,
        recording_retention_s=args.recording_retention_s,
        cancelled_dtmf_status=args.cancelled_dtmf_status,
    )


def serve(args: argparse.Namespace) -> int:
    """Run the service until interrupted."""
    import uvicorn

    from graphcomms.api.app import create_app
    from graphcomms.runtime import Runtime

    settings = settings_from(args)
    try:
        runtime = Runtime(settings)
    except (OSError, sqlite3.Error) as exc:
        print(
            f"graphcomms: error: cannot use the data directory {settings.data_dir} "
            f"({settings.data_dir / 'graphcomms.db'}): {exc}. Choose another "
            "--data-dir, or move the broken file away.",
            file=sys.stderr,
        )
        return 1
    app = create_app(runtime)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level.lower(),
        access_log=False,
        lifespan="on",
    )
    # run() sets up uvicorn's event loop (uvloop when installed)
    uvicorn.Server(config).run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``graphcomms`` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request at INFO, callback URLs (and their keys) included
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.command == "serve":
        return serve(args)
    if args.command == "demo":
        from graphcomms.demo import main as demo

        return demo(fast=args.fast, out_dir=args.out)
    return 2


if __name__ == "__main__":
    sys.exit(main())
