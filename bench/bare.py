"""The reference endpoint: the same web stack as graphcomms, and nothing else.

FastAPI on uvicorn, started the way ``graphcomms serve`` starts (one worker,
``asyncio.run(Server.serve())``, log level WARNING, no access log), with one
route shaped like playPrompt: it reads the JSON body and answers 200 with a
Location header and a small operation, as graphcomms does, but does no work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid

import uvicorn
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.post("/{version}/communications/calls/{call_id}/playPrompt")
async def play_prompt(request: Request, version: str, call_id: str) -> JSONResponse:
    """Read the body and answer like playPrompt, with no engine behind it."""
    body = json.loads(await request.body())
    op_id = str(uuid.uuid4())
    location = (
        f"http://127.0.0.1/{version}/communications/calls/{call_id}/operations/{op_id}"
    )
    return JSONResponse(
        {
            "@odata.type": "#microsoft.graph.playPromptOperation",
            "id": op_id,
            "status": "running",
            "clientContext": body.get("clientContext"),
            "resultInfo": None,
        },
        headers={"Location": location},
    )


@app.get("/health")
async def health() -> JSONResponse:
    """Answer that the endpoint is up."""
    return JSONResponse({"status": "ok"})


def main() -> None:
    """Serve until terminated."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(server.serve())
    else:
        asyncio.run(server.serve())


if __name__ == "__main__":
    main()
