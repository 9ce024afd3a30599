"""What every route shares: the runtime, bodies, paths, ids and JSON replies.

Graph is forgiving about spelling where OData is: path segments and action
names match case-insensitively, and the deprecated ``/app/calls`` (and the
2018 ``/applications/{appId}/calls``) name the same collection as
``/communications/calls``. ``canonical_path`` maps all of those onto the one
spelling the routes are declared with, so each route exists once.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, cast

from starlette.requests import Request
from starlette.responses import JSONResponse

from graphcomms.engine.operation import ApiVersion
from graphcomms.graph.errors import GraphError, error_for_status

if TYPE_CHECKING:
    from graphcomms.runtime import Runtime

GRAPH_JSON = "application/json; odata.metadata=minimal"

# keys this service adds to the ASGI scope
SCOPE_REQUEST_ID = "graphcomms.request_id"
SCOPE_CLIENT_REQUEST_ID = "graphcomms.client_request_id"
SCOPE_ORIGINAL_PATH = "graphcomms.original_path"
SCOPE_VERSION = "graphcomms.version"

_VERSIONS = {version.value: version for version in ApiVersion}
_JSON_MEDIA_TYPES = frozenset({"application/json", "text/json"})


class RequestRejected(Exception):
    """The request was refused before it reached the engine (size, type, auth)."""

    def __init__(self, error: GraphError, headers: dict[str, str] | None = None):
        super().__init__(error.message)
        self.error = error
        self.headers = headers or {}


class GraphJSONResponse(JSONResponse):
    """A JSON body as Graph sends it: ``odata.metadata=minimal``."""

    media_type = GRAPH_JSON


def runtime_of(request: Request) -> Runtime:
    """Return the runtime the app was created with."""
    return cast("Runtime", request.app.state.runtime)


def graph_json(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> GraphJSONResponse:
    """Return ``body`` as a Graph JSON response."""
    return GraphJSONResponse(body, status_code=status, headers=headers)


# -- bodies ---------------------------------------------------------------------


async def read_body(request: Request) -> bytes:
    """Return the request body, refusing one over the configured size.

    The declared Content-Length is checked first, then the bytes as they
    arrive, so a client that lies or streams cannot make us buffer more than
    the limit.

    Raises:
        RequestRejected: 413 for a body over the limit, 415 for a body that
            is declared as something other than JSON.
    """
    limit = runtime_of(request).settings.max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    _check_content_type(request, body)
    return body


def _too_large(limit: int) -> RequestRejected:
    message = f"The request body is larger than {limit} bytes."
    return RequestRejected(error_for_status(413, message))


def _check_content_type(request: Request, body: bytes) -> None:
    """Refuse a body declared as non-JSON; a missing Content-Type is fine."""
    declared = request.headers.get("content-type")
    if declared is None or not body.strip():
        return
    media_type = declared.split(";", 1)[0].strip().lower()
    if media_type in _JSON_MEDIA_TYPES or media_type.endswith("+json"):
        return
    message = (
        f"Content-Type {media_type or '(empty)'} is not supported; "
        "send the body as application/json."
    )
    raise RequestRejected(error_for_status(415, message))


# -- paths and ids --------------------------------------------------------------


def canonical_path(path: str) -> tuple[str, ApiVersion | None]:
    """Return the spelling routes are declared with, and the API version.

    >>> canonical_path("/V1.0/Communications/Calls/ABC/Operations/x")
    ('/v1.0/communications/calls/ABC/operations/x', <ApiVersion.V1: 'v1.0'>)
    >>> canonical_path("/beta/app/calls/abc/playPrompt")[0]
    '/beta/communications/calls/abc/playPrompt'
    >>> canonical_path("/v1.0/_sim/clock")
    ('/_sim/clock', <ApiVersion.V1: 'v1.0'>)

    Ids and action names are left as they are: the routes compare those.
    """
    segments = [segment for segment in path.split("/") if segment]
    version = _VERSIONS.get(segments[0].lower()) if segments else None
    if version is not None:
        segments = segments[1:]
    if segments and segments[0].lower() == "_sim":
        return "/" + "/".join(["_sim", *segments[1:]]), version
    segments = _canonical_calls(segments)
    prefix = [version.value] if version is not None else []
    return "/" + "/".join(prefix + segments), version


def _canonical_calls(segments: list[str]) -> list[str]:
    lowered = [segment.lower() for segment in segments[:3]]
    if lowered[:2] in (["communications", "calls"], ["app", "calls"]):
        rest = segments[2:]
    elif len(lowered) == 3 and lowered[0] == "applications" and lowered[2] == "calls":
        rest = segments[3:]
    else:
        return segments
    if len(rest) >= 2 and rest[1].lower() == "operations":
        rest = [rest[0], "operations", *rest[2:]]
    return ["communications", "calls", *rest]


def canonical_id(raw: str) -> str:
    """Return a call or operation id as the engine spells it.

    Graph writes ids as lowercase GUIDs with dashes, but notifications may
    show them uppercase without dashes; both name the same resource.
    """
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return raw


def parse_version(segment: str) -> ApiVersion:
    """Return the API version named by a path segment.

    Raises:
        RequestRejected: 404, the segment names no version.
    """
    version = _VERSIONS.get(segment.lower())
    if version is None:
        message = f"Resource not found for the segment '{segment}'."
        raise RequestRejected(error_for_status(404, message))
    return version


def scope_version(request: Request) -> ApiVersion:
    """Return the version a ``/{version}/_sim`` path named (v1.0 if none)."""
    version = request.scope.get(SCOPE_VERSION)
    return version if isinstance(version, ApiVersion) else ApiVersion.V1


def original_path(request: Request) -> str:
    """Return the path as the client sent it, before canonicalisation."""
    path = request.scope.get(SCOPE_ORIGINAL_PATH)
    return path if isinstance(path, str) else request.url.path


def base_url(request: Request) -> str:
    """Return the public base URL of this service, without a trailing slash."""
    return runtime_of(request).settings.base_url.rstrip("/")
