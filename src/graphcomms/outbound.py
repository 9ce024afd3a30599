"""HTTP clients for what graphcomms fetches and posts (prompts, webhooks).

Loopback addresses are always reached directly: an ``HTTP_PROXY`` set for
the internet must not swallow a bot's ``http://localhost`` callback or a
prompt served on the same machine. Other hosts follow the environment.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx

from graphcomms import __version__

USER_AGENT = f"graphcomms/{__version__}"

LOOPBACK_DIRECT: dict[str, httpx.AsyncBaseTransport | None] = {
    "all://127.0.0.1": None,
    "all://localhost": None,
    "all://[::1]": None,
}
"""httpx mounts that send loopback traffic around any configured proxy."""


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # loading the CA bundle costs about 0.1 s: once per process is enough
    return ssl.create_default_context()


def outbound_client(**options: Any) -> httpx.AsyncClient:
    """Return an ``httpx.AsyncClient`` that reaches loopback hosts directly."""
    headers = {"User-Agent": USER_AGENT, **options.pop("headers", {})}
    options.setdefault("verify", _tls_context())
    return httpx.AsyncClient(mounts=LOOPBACK_DIRECT, headers=headers, **options)
