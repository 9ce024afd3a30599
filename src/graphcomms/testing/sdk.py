"""Official Graph SDK clients pointed at a local graphcomms.

Both SDKs are optional test dependencies (``msgraph-sdk``,
``msgraph-beta-sdk``); this module imports them only when a client is made.

The SDKs are imported with ``importlib`` and their clients typed ``Any``:
type-checking against msgraph's generated code takes mypy minutes.

Two things differ from a client built for graph.microsoft.com:

- Authentication is anonymous, and ``base_url`` is the local service.
- The SDK's RetryHandler is off by default. It retries 429, 503 and 504
  up to 3 times with a 3 s delay, so one 503 would stall a test for 12 s.
"""

from __future__ import annotations

import importlib
from typing import Any

import httpx

from graphcomms.testing._httpd import tls_context

REQUEST_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5.0
RETRY_DELAY_S = 0.05


def sdk_http_client(*, beta: bool = False, max_retries: int = 0) -> httpx.AsyncClient:
    """Return an httpx client with the Graph SDK's middleware.

    Args:
        beta: Build it for the beta SDK's telemetry.
        max_retries: How often the RetryHandler retries 429/503/504
            (0: never), ``RETRY_DELAY_S`` apart.
    """
    from kiota_http.middleware.options import RetryHandlerOption

    core = importlib.import_module("msgraph_core")
    retry = RetryHandlerOption(
        delay=RETRY_DELAY_S, max_retries=max_retries, should_retry=max_retries > 0
    )
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
        trust_env=False,
        verify=tls_context(),
    )
    versions = core.APIVersion
    wrapped: httpx.AsyncClient = core.GraphClientFactory.create_with_default_middleware(
        api_version=versions.beta if beta else versions.v1,
        client=client,
        options={retry.get_key(): retry},
    )
    return wrapped


def graph_client(base_url: str, *, max_retries: int = 0) -> Any:
    """Return a v1.0 ``msgraph.GraphServiceClient`` for ``base_url``.

    Args:
        base_url: The Graph root, e.g. ``server.graph_url("v1.0")``.
        max_retries: Retries of 429/503/504 responses (0 by default).
    """
    return _client("msgraph", base_url, sdk_http_client(max_retries=max_retries))


def graph_beta_client(base_url: str, *, max_retries: int = 0) -> Any:
    """Return a beta ``msgraph_beta.GraphServiceClient`` for ``base_url``.

    Args:
        base_url: The Graph root, e.g. ``server.graph_url("beta")``.
        max_retries: Retries of 429/503/504 responses (0 by default).
    """
    http = sdk_http_client(beta=True, max_retries=max_retries)
    return _client("msgraph_beta", base_url, http)


def _client(package: str, base_url: str, http: httpx.AsyncClient) -> Any:
    """Return ``package``'s GraphServiceClient on ``http``, anonymous."""
    from kiota_abstractions.authentication import AnonymousAuthenticationProvider

    sdk = importlib.import_module(package)
    adapter = sdk.GraphRequestAdapter(AnonymousAuthenticationProvider(), client=http)
    adapter.base_url = base_url
    return sdk.GraphServiceClient(request_adapter=adapter)
