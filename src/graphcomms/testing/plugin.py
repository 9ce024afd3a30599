"""The pytest plugin of graphcomms: fixtures for testing calling bots.

Installed with graphcomms and registered as the ``graphcomms`` pytest11
entry point, so the fixtures are there in any test suite:

- ``graphcomms_server``: a real graphcomms on a free port, virtual clock,
  fresh state for each test (a ``GraphcommsServer``).
- ``graphcomms_server_factory``: start more servers, e.g. a second one on
  the same data directory to test a restart.
- ``webhook_receiver``: a real webhook that records notifications.
- ``prompt_server``: serves prompt WAVs (and 404s, and stalls).
- ``graph_client`` / ``graph_beta_client``: the official SDKs pointed at
  ``graphcomms_server`` (skipped when the SDK is not installed).

Settings of the server come from the ``graphcomms`` marker, e.g.
``@pytest.mark.graphcomms(prompt_timeout_s=0.5)`` on a test, class or
module (the closest wins), or from overriding ``graphcomms_settings``.

This module is imported by every pytest run in an environment that has
graphcomms, so it imports the service only when a fixture is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from graphcomms.testing.prompts import PromptServer
    from graphcomms.testing.server import GraphcommsServer
    from graphcomms.testing.webhook import WebhookReceiver

MARKER = "graphcomms"


class ServerFactory(Protocol):
    """Start a ``GraphcommsServer``; the fixture stops it after the test."""

    def __call__(
        self, data_dir: Path | str | None = None, **settings: Any
    ) -> GraphcommsServer:
        """Start a server on ``data_dir`` (a fresh one if None) with ``settings``.

        The settings are merged over the test's ``graphcomms`` marker.
        """
        ...


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``graphcomms`` marker."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**settings): graphcomms.runtime.Settings overrides for the "
        "graphcomms_server fixture, e.g. prompt_timeout_s=0.5",
    )


@pytest.fixture
def graphcomms_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Return the server settings asked for by ``graphcomms`` markers."""
    merged: dict[str, Any] = {}
    markers = list(request.node.iter_markers(MARKER))
    for marker in reversed(markers):  # the closest marker wins
        merged.update(marker.kwargs)
    return merged


@pytest.fixture
def graphcomms_server(
    tmp_path: Path, graphcomms_settings: dict[str, Any]
) -> Iterator[GraphcommsServer]:
    """Run graphcomms for one test: virtual clock, state in ``tmp_path``."""
    from graphcomms.testing.server import GraphcommsServer

    with GraphcommsServer(tmp_path / "graphcomms", **graphcomms_settings) as server:
        yield server


@pytest.fixture
def graphcomms_server_factory(
    tmp_path: Path, graphcomms_settings: dict[str, Any]
) -> Iterator[ServerFactory]:
    """Return a function that starts servers; all are stopped after the test."""
    from graphcomms.testing.server import GraphcommsServer

    started: list[GraphcommsServer] = []

    def start(data_dir: Path | str | None = None, **settings: Any) -> GraphcommsServer:
        where = data_dir or tmp_path / f"graphcomms-{len(started)}"
        server = GraphcommsServer(where, **{**graphcomms_settings, **settings})
        started.append(server)
        return server.start()

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """Receive the notifications of calls at ``webhook_receiver.url``."""
    from graphcomms.testing.webhook import WebhookReceiver

    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def prompt_server() -> Iterator[PromptServer]:
    """Serve prompt WAVs registered with ``prompt_server.add(name, audio)``."""
    from graphcomms.testing.prompts import PromptServer

    with PromptServer() as server:
        yield server


@pytest.fixture
def graph_client(graphcomms_server: GraphcommsServer) -> Any:
    """Return a v1.0 ``msgraph.GraphServiceClient`` for ``graphcomms_server``."""
    pytest.importorskip("msgraph", reason="needs msgraph-sdk")
    from graphcomms.testing.sdk import graph_client

    return graph_client(graphcomms_server.graph_url("v1.0"))


@pytest.fixture
def graph_beta_client(graphcomms_server: GraphcommsServer) -> Any:
    """Return a beta ``msgraph_beta.GraphServiceClient`` for ``graphcomms_server``."""
    pytest.importorskip("msgraph_beta", reason="needs msgraph-beta-sdk")
    from graphcomms.testing.sdk import graph_beta_client

    return graph_beta_client(graphcomms_server.graph_url("beta"))
