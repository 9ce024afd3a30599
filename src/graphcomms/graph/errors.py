"""Graph's error envelope, and which status and code each failure gets.

Every error graphcomms answers has Graph's shape::

    {"error": {"code": "8522", "message": "Call not found.",
               "innerError": {"request-id": "...", "date": "...",
                              "client-request-id": "..."}}}

The calling service puts numeric strings in ``code`` (8522 not found, 8523
invalid argument, 8500 media mode, 8501 not established, 8519 conflict);
failures outside the calling service use Graph's generic names
(``itemNotFound``, ``invalidRequest``, ``generalException``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from graphcomms.errors import (
    CallNotEstablished,
    CallNotFound,
    CallStateConflict,
    GraphcommsError,
    InvalidRequest,
    MediaModeNotSupported,
    OperationNotFound,
    RecordingAccessDenied,
    RecordingNotFound,
    VirtualClockRequired,
)


@dataclass(frozen=True, slots=True)
class GraphError:
    """An error answer: HTTP status, Graph ``code`` and ``message``."""

    status: int
    code: str
    message: str


UNEXPECTED = GraphError(
    500,
    "9999",
    "generalException: the service failed unexpectedly; quote the request-id "
    "when reporting it.",
)
UNAUTHENTICATED = GraphError(
    401,
    "InvalidAuthenticationToken",
    "Access token is empty or invalid: send Authorization: Bearer <token>.",
)

# most specific first: the first class that matches decides; a message of
# None means the exception's own
_BY_ERROR: tuple[tuple[type[GraphcommsError], int, str, str | None], ...] = (
    (CallNotFound, 404, "8522", None),
    (OperationNotFound, 404, "8522", None),
    (InvalidRequest, 400, "8523", None),
    (CallNotEstablished, 400, "8501", None),
    (MediaModeNotSupported, 400, "8500", None),
    (CallStateConflict, 400, "8519", None),
    (VirtualClockRequired, 400, "invalidRequest", None),
    # the exception carries only the id, which the client already has
    (RecordingAccessDenied, 401, UNAUTHENTICATED.code, UNAUTHENTICATED.message),
    (
        RecordingNotFound,
        404,
        "itemNotFound",
        "The recording does not exist or has expired.",
    ),
)

_BY_STATUS: dict[int, tuple[str, str]] = {
    400: ("invalidRequest", "The request is invalid."),
    401: (UNAUTHENTICATED.code, UNAUTHENTICATED.message),
    403: ("accessDenied", "Access to this resource is denied."),
    404: ("itemNotFound", "The resource could not be found."),
    405: ("notSupported", "This HTTP method is not supported on this resource."),
    413: ("requestEntityTooLarge", "The request body is too large."),
    415: ("unsupportedMediaType", "The request body must be application/json."),
    501: ("notSupported", "This feature is not implemented."),
}


def error_for(exc: GraphcommsError) -> GraphError:
    """Return the answer for a graphcomms failure.

    A failure missing from the table is a bug in graphcomms, so it answers
    500 rather than pretending the client erred.
    """
    for kind, status, code, message in _BY_ERROR:
        if isinstance(exc, kind):
            return GraphError(status, code, message or _message(exc))
    return GraphError(UNEXPECTED.status, UNEXPECTED.code, _message(exc))


def error_for_status(status: int, message: str | None = None) -> GraphError:
    """Return the answer for a plain HTTP failure (unknown path, wrong method)."""
    code, default = _BY_STATUS.get(status, ("generalException", "Request failed."))
    if status >= 500 and status not in _BY_STATUS:
        code = UNEXPECTED.code
    return GraphError(status, code, message or default)


def error_body(
    error: GraphError,
    *,
    request_id: str,
    client_request_id: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Return the JSON envelope of ``error`` for one request."""
    date = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S")
    return {
        "error": {
            "code": error.code,
            "message": error.message,
            "innerError": {
                "request-id": request_id,
                "date": date,
                "client-request-id": client_request_id,
            },
        }
    }


def _message(exc: GraphcommsError) -> str:
    return str(exc) or type(exc).__doc__ or type(exc).__name__
