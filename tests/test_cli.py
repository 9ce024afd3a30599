"""The ``graphcomms`` command line."""

from pathlib import Path

import pytest

from graphcomms.cli import build_parser, settings_from
from graphcomms.runtime import Settings


def test_serve_defaults_are_the_embedded_settings():
    args = build_parser().parse_args(["serve"])
    assert settings_from(args) == Settings()


def test_serve_flags_reach_the_settings():
    args = build_parser().parse_args(
        [
            "serve",
            "--port=9001",
            "--data-dir=/tmp/gc",
            "--clock=fast",
            "--prompt-timeout-s=2.5",
            "--delivery-attempts=3",
            "--cancelled-dtmf-status=failed",
        ]
    )
    settings = settings_from(args)
    assert (settings.port, settings.data_dir, settings.clock_mode) == (
        9001,
        Path("/tmp/gc"),
        "fast",
    )
    assert (settings.prompt_timeout_s, settings.delivery_attempts) == (2.5, 3)
    assert settings.cancelled_dtmf_status == "failed"
    assert settings.base_url == "http://127.0.0.1:9001"


def test_unknown_clock_mode_is_refused():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--clock=warp"])
