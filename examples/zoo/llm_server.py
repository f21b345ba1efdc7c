"""A small OpenAI-compatible completions server for the tiny Llama, streaming server-sent
events as vLLM does (one chunk per token, ``data: [DONE]`` at the end): starlette + uvicorn.

    python -m zoo.llm_server --port 8000       # from examples/

``POST /v1/completions`` takes ``prompt`` (token ids, or text: its UTF-8 bytes are the ids),
``max_tokens``, ``min_tokens`` / ``ignore_eos`` (vLLM's: exactly ``max_tokens``), ``stream``
and ``stream_options.include_usage``. Greedy. ``GET /v1/models`` lists the one model.
"""

from __future__ import annotations

import argparse
import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import torch
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from zoo.tiny_llm import VOCAB_SIZE, TinyLlama

MODEL_NAME = "tiny-llama"
torch.set_num_threads(1)
model = TinyLlama().eval()


class QueueStreamer:
    """Hands each generated step to the request's response (the prompt, put first, is left
    out)."""

    def __init__(self) -> None:
        self.tokens: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self.first = True

    def put(self, value: torch.Tensor) -> None:
        if self.first:
            self.first = False
            return
        self.tokens.put(int(value.reshape(-1)[0]))

    def end(self) -> None:
        self.tokens.put(None)


def token_ids(prompt: Any) -> list[int]:
    """Token ids as given, or the bytes of a text prompt (this model has no tokenizer)."""
    if isinstance(prompt, str):
        return [b % VOCAB_SIZE for b in prompt.encode()]
    return [int(t) for t in prompt]


def generate(ids: list[int], body: dict[str, Any], streamer: QueueStreamer) -> None:
    """Greedy generation into the streamer (a thread per request)."""
    options: dict[str, Any] = {"max_new_tokens": int(body.get("max_tokens", 16)),
                               "do_sample": False, "pad_token_id": 0, "streamer": streamer}
    if body.get("ignore_eos") or body.get("min_tokens"):
        options["min_new_tokens"] = int(body.get("min_tokens") or options["max_new_tokens"])
    try:
        with torch.inference_mode():
            model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids),
                                                                          dtype=torch.long),
                           **options)
    finally:
        streamer.end()


def events(ids: list[int], body: dict[str, Any]) -> Iterator[str]:
    """The response's server-sent events: a chunk per token, usage, then [DONE]."""
    streamer = QueueStreamer()
    threading.Thread(target=generate, args=(ids, body, streamer), daemon=True).start()
    name, created, count = f"cmpl-{uuid.uuid4().hex}", int(time.time()), 0
    while (token := streamer.tokens.get()) is not None:
        count += 1
        chunk = {"id": name, "object": "text_completion", "created": created,
                 "model": MODEL_NAME, "choices": [{"index": 0, "text": f" {token}",
                                                   "logprobs": None, "finish_reason": None}]}
        yield f"data: {json.dumps(chunk)}\n\n"
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {"prompt_tokens": len(ids), "completion_tokens": count,
                 "total_tokens": len(ids) + count}
        yield f"data: {json.dumps({'id': name, 'choices': [], 'usage': usage})}\n\n"
    yield "data: [DONE]\n\n"


async def completions(request: Request) -> Response:
    """``POST /v1/completions``: streamed (server-sent events) or whole."""
    body = await request.json()
    ids = token_ids(body.get("prompt", ""))
    if not ids:
        return JSONResponse({"error": {"message": "empty prompt"}}, status_code=400)
    if body.get("stream"):
        return StreamingResponse(events(ids, body), media_type="text/event-stream")
    text = "".join(json.loads(e[6:])["choices"][0]["text"] for e in events(ids, body)
                   if e.startswith("data: {") and '"text"' in e)
    return JSONResponse({"object": "text_completion", "model": MODEL_NAME,
                         "choices": [{"index": 0, "text": text, "finish_reason": "length"}]})


async def models(request: Request) -> Response:
    """``GET /v1/models``: the one served model."""
    return JSONResponse({"object": "list", "data": [{"id": MODEL_NAME, "object": "model"}]})


app = Starlette(routes=[Route("/v1/completions", completions, methods=["POST"]),
                        Route("/v1/models", models)])


def main() -> None:
    """Serve on 127.0.0.1 (``--port``; 0: any free port)."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    arguments = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=arguments.port, log_level="warning")


if __name__ == "__main__":
    main()
