"""The FastAPI application: routes, Graph's edge conventions, one error mapping.

Every response, success or failure, leaves through ``GraphEdge``, which
adds ``request-id`` and ``client-request-id`` (echoed, or made up when the
client sent none) and, on the Graph surface, ``OData-Version: 4.0``. Every
failure becomes Graph's error envelope in ``graph_error``; FastAPI's own
422 shape never reaches a client.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphcomms import __version__
from graphcomms.api import calls, emulator, recordings
from graphcomms.api.http import (
    SCOPE_CLIENT_REQUEST_ID,
    SCOPE_ORIGINAL_PATH,
    SCOPE_REQUEST_ID,
    SCOPE_VERSION,
    GraphJSONResponse,
    RequestRejected,
    canonical_path,
    original_path,
)
from graphcomms.errors import GraphcommsError
from graphcomms.graph.errors import (
    UNEXPECTED,
    GraphError,
    error_body,
    error_for,
    error_for_status,
)
from graphcomms.graph.requests import describe_errors

if TYPE_CHECKING:
    from graphcomms.runtime import Runtime

logger = logging.getLogger(__name__)

_HANDLED = (GraphcommsError, RequestRejected, RequestValidationError)


def create_app(runtime: Runtime) -> FastAPI:
    """Return the service's ASGI app; its lifespan starts and stops ``runtime``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="graphcomms",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.include_router(calls.router)
    app.include_router(emulator.router)
    app.include_router(recordings.router)
    app.add_api_route("/health", health, methods=["GET"])
    for kind in (*_HANDLED, StarletteHTTPException):
        app.add_exception_handler(kind, error_response)
    # the last added runs first: GraphEdge canonicalises, then InFlight counts
    app.add_middleware(InFlight, runtime=runtime)
    app.add_middleware(GraphEdge)
    return app


async def health() -> JSONResponse:
    """Answer that the service is up."""
    return JSONResponse({"status": "ok"})


# -- errors ---------------------------------------------------------------------


def graph_error(exc: Exception, request: Request) -> GraphError:
    """Return the status, code and message that ``exc`` answers with.

    This is the one place where exceptions become HTTP answers.
    """
    if isinstance(exc, GraphcommsError):
        return error_for(exc)
    if isinstance(exc, RequestRejected):
        return exc.error
    if isinstance(exc, RequestValidationError):
        return GraphError(400, "8523", describe_errors(exc.errors()))
    if isinstance(exc, StarletteHTTPException):
        message = None
        if exc.status_code == 404:
            message = f"Resource not found for the path '{original_path(request)}'."
        return error_for_status(exc.status_code, message)
    return UNEXPECTED


async def error_response(request: Request, exc: Exception) -> Response:
    """Answer ``exc`` with Graph's error envelope."""
    headers: dict[str, str] = {}
    if isinstance(exc, RequestRejected):
        headers.update(exc.headers)
    if isinstance(exc, StarletteHTTPException) and exc.headers:
        headers.update(exc.headers)
    return envelope(request.scope, graph_error(exc, request), headers)


def envelope(
    scope: Scope, error: GraphError, headers: dict[str, str] | None = None
) -> Response:
    """Return the error response for ``error`` within the request ``scope``."""
    body = error_body(
        error,
        request_id=str(scope.get(SCOPE_REQUEST_ID, "")),
        client_request_id=str(scope.get(SCOPE_CLIENT_REQUEST_ID, "")),
    )
    return GraphJSONResponse(body, status_code=error.status, headers=headers)


# -- the edge -------------------------------------------------------------------


INJECTED_FAULT = GraphError(
    503, "serviceNotAvailable", "Injected fault: the service is unavailable."
)
RETRY_AFTER = {"Retry-After": "1"}


class InFlight:
    """Count the requests being handled, so a fast clock waits for them.

    It also answers the share of Graph requests a fault plan asks for with
    503, before they reach the engine.
    """

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        runtime = self.runtime
        graph = scope["path"].startswith(("/v1.0/", "/beta/"))
        if graph and runtime.api_faults.roll(runtime.faults.api_errors):
            await envelope(scope, INJECTED_FAULT, RETRY_AFTER)(scope, receive, send)
            return
        runtime.requests_in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            runtime.requests_in_flight -= 1


class GraphEdge:
    """ASGI middleware: canonical paths, request ids, Graph headers, last resort.

    It rewrites the path before routing (see ``canonical_path``), stamps
    the ids on the scope for error bodies and on every response, and turns
    an exception nothing else handled into a 500 envelope with an ERROR log
    line, so a client always gets Graph's shape.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = _stamped(scope)
        graph = scope["path"].startswith(("/v1.0/", "/beta/"))
        extra = _response_headers(scope, graph=graph)
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            logger.exception(
                "%s %s failed unexpectedly; answered 500 (request-id %s)",
                scope.get("method"),
                scope.get(SCOPE_ORIGINAL_PATH),
                scope.get(SCOPE_REQUEST_ID),
            )
            if started:
                raise
            await envelope(scope, UNEXPECTED)(scope, receive, send_with_headers)


def _stamped(scope: Scope) -> Scope:
    path, version = canonical_path(scope["path"])
    client_request_id = _header(scope, b"client-request-id") or str(uuid.uuid4())
    return {
        **scope,
        "path": path,
        "raw_path": path.encode(),
        SCOPE_ORIGINAL_PATH: scope["path"],
        SCOPE_VERSION: version,
        SCOPE_REQUEST_ID: str(uuid.uuid4()),
        SCOPE_CLIENT_REQUEST_ID: client_request_id,
    }


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            text: str = value.decode("latin-1").strip()
            return text or None
    return None


def _response_headers(scope: Scope, *, graph: bool) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"request-id", str(scope[SCOPE_REQUEST_ID]).encode()),
        (b"client-request-id", str(scope[SCOPE_CLIENT_REQUEST_ID]).encode("latin-1")),
    ]
    if graph:
        headers.append((b"odata-version", b"4.0"))
    return headers
