"""Test a calling bot against a real graphcomms, in milliseconds of CI time.

The pytest plugin (``graphcomms.testing.plugin``, registered automatically)
provides fixtures built from these classes, which also work on their own:

- ``GraphcommsServer``: the service in a background thread, virtual clock.
- ``WebhookReceiver``: a real webhook recording commsNotifications.
- ``PromptServer`` and ``tone_wav``: prompt files over HTTP.
- ``press``, ``speak``, ``silence``, ``hang_up``: steps of a caller script.
- ``graph_client`` and ``graph_beta_client``: the official SDKs, pointed
  at a local service.

A whole test::

    def test_menu_plays(graphcomms_server, webhook_receiver, prompt_server):
        menu = prompt_server.add("menu.wav", tone_wav(2000))
        call_id = graphcomms_server.place_call(webhook_receiver.url)
        ...

Names are imported lazily, so that loading the plugin costs nothing until a
fixture is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graphcomms.testing.prompts import PromptServer, read_wav, tone_pcm, tone_wav
    from graphcomms.testing.sdk import graph_beta_client, graph_client
    from graphcomms.testing.server import (
        TEST_SETTINGS,
        CallerControl,
        GraphcommsServer,
        SimRequestFailed,
        hang_up,
        press,
        silence,
        speak,
    )
    from graphcomms.testing.webhook import (
        Notification,
        NotificationTimeout,
        ToneInfo,
        WebhookReceiver,
    )

_HOMES = {
    "PromptServer": "prompts",
    "read_wav": "prompts",
    "tone_pcm": "prompts",
    "tone_wav": "prompts",
    "graph_client": "sdk",
    "graph_beta_client": "sdk",
    "TEST_SETTINGS": "server",
    "CallerControl": "server",
    "GraphcommsServer": "server",
    "SimRequestFailed": "server",
    "hang_up": "server",
    "press": "server",
    "silence": "server",
    "speak": "server",
    "Notification": "webhook",
    "NotificationTimeout": "webhook",
    "ToneInfo": "webhook",
    "WebhookReceiver": "webhook",
}

__all__ = [
    "TEST_SETTINGS",
    "CallerControl",
    "GraphcommsServer",
    "Notification",
    "NotificationTimeout",
    "PromptServer",
    "SimRequestFailed",
    "ToneInfo",
    "WebhookReceiver",
    "graph_beta_client",
    "graph_client",
    "hang_up",
    "press",
    "read_wav",
    "silence",
    "speak",
    "tone_pcm",
    "tone_wav",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
