"""A light OpenAI-compatible completions server for the generate scenario's tests: each token
is its number after a fixed sleep (no model, so it starts in a moment), streamed as server-sent
events. It can misbehave as real servers do (``--fault``) and start processes of its own
(``--spawn``), so that the tests can check that stopping it ends them too.

    python tests/token_server.py --port 8000 [--token-ms 2] [--fault hang|drop|short|http]
        [--spawn]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

settings: dict[str, Any] = {"token_ms": 2.0, "fault": None}


async def events(body: dict[str, Any]) -> AsyncIterator[str]:
    """A chunk per token after ``token_ms`` each; ``drop`` ends without [DONE], ``short`` sends
    half the tokens and a proper end."""
    wanted = int(body.get("max_tokens", 16))
    fault = settings["fault"]
    count = wanted // 2 if fault in ("drop", "short") else wanted
    for token in range(count):
        await asyncio.sleep(settings["token_ms"] / 1000)
        chunk = {"id": "cmpl-test", "object": "text_completion", "model": "counter",
                 "choices": [{"index": 0, "text": f" {token}", "finish_reason": None}]}
        yield f"data: {json.dumps(chunk)}\n\n"
    if fault == "drop":
        raise ConnectionResetError("dropped on purpose")  # uvicorn aborts the response
    usage = {"prompt_tokens": len(body.get("prompt") or []), "completion_tokens": count}
    yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
    yield "data: [DONE]\n\n"


async def completions(request: Request) -> Response:
    body = await request.json()
    if settings["fault"] == "hang":
        await asyncio.sleep(3600)
    if settings["fault"] == "http":
        return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
    return StreamingResponse(events(body), media_type="text/event-stream")


async def models(request: Request) -> Response:
    return JSONResponse({"object": "list", "data": [{"id": "counter", "object": "model"}]})


app = Starlette(routes=[Route("/v1/completions", completions, methods=["POST"]),
                        Route("/v1/models", models)])


def spawn_helpers() -> None:
    """A child that stays in the server's group, and a daemon that leaves it (``setsid``):
    both must end with the server. Their pids go to $SERVER_PID_FILE."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    daemon = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                              start_new_session=True)
    path = os.environ.get("SERVER_PID_FILE")
    if path:
        with open(path, "w") as out:
            out.write(f"{os.getpid()} {child.pid} {daemon.pid}\n")


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-ms", type=float, default=2.0)
    parser.add_argument("--fault", choices=["hang", "drop", "short", "http"])
    parser.add_argument("--spawn", action="store_true")
    arguments = parser.parse_args()
    settings.update(token_ms=arguments.token_ms, fault=arguments.fault)
    if arguments.spawn:
        spawn_helpers()
    uvicorn.run(app, host="127.0.0.1", port=arguments.port, log_level="warning")


if __name__ == "__main__":
    main()
